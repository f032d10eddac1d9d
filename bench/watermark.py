"""The invisible AI-made mark (handlers/marks/watermark.py): bit errors after the delivery encode
and after a quality-75 re-encode, false finds on unmarked images, its visibility, its cost.

Images: the real photos the sample set ships (face_recognition's, scikit-image's astronaut,
matplotlib's Grace Hopper) plus one smooth studio-like backdrop (flat areas are where a mark
clips and rounds away), each resized to every delivery size: the 1024 square, the 896x1120
portrait, and the tiny model's 128 square and 112x140 portrait (the demo's).

For each: mark and save exactly as delivery does (``save_marked_jpeg``, quality 95, optimised,
progressive), decode, read; re-encode at quality 75, read; and at quality 50 (beyond what is
promised, to show the margin). The baseline, measured in the same run, is the same image
unmarked: how often the reader wrongly finds a mark there, and how long the delivery encode
takes without the mark (the mark's cost is reported as a ratio to it).

Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from handlers.marks import reencode, save_marked_jpeg  # noqa: E402
from handlers.marks.watermark import MAX_BIT_ERRORS, PAYLOAD_BITS, embed, read  # noqa: E402

SIZES = [(1024, 1024), (896, 1120), (128, 128), (112, 140)]
PHOTOS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "astronaut.png", "grace_hopper.jpg")


def load_images(quick: bool) -> dict[str, Image.Image]:
    from processor.devkit.samples import default_cache_dir, fetch_sample_sources

    sources = fetch_sample_sources(default_cache_dir())
    names = PHOTOS[:2] if quick else PHOTOS
    images = {name: Image.open(sources.path(name)).convert("RGB") for name in names}
    yy, xx = np.mgrid[0:512, 0:512] / 512.0
    backdrop = np.stack([200 + 40 * xx, 205 + 30 * yy, 215 + 25 * xx * yy], axis=-1)  # pale, smooth, near white
    images["studio-backdrop"] = Image.fromarray(np.clip(backdrop, 0, 255).astype(np.uint8))
    return images


def delivered(image: Image.Image, marked: bool, repeats: int = 1) -> tuple[np.ndarray, float]:
    """The image as a person downloads it, and the seconds the delivery encode took (the
    fastest of ``repeats``: the machine is shared, the minimum is the encode's own cost)."""
    times = []
    for _ in range(repeats):
        buffer = io.BytesIO()
        t0 = time.perf_counter()
        if marked:
            save_marked_jpeg(image, buffer, quality=95, optimize=True, progressive=True)
        else:
            image.save(buffer, "JPEG", quality=95, optimize=True, progressive=True)
        times.append(time.perf_counter() - t0)
    with Image.open(io.BytesIO(buffer.getvalue())) as img:
        return np.asarray(img.convert("RGB")), min(times)


def fastest(call: object, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two photos and the backdrop (the test's run)")
    args = parser.parse_args()

    images = load_images(args.quick)
    delivered(next(iter(images.values())), marked=True)  # warm-up: first calls load code and tables
    errors: dict[str, list[int]] = {"delivered": [], "q75": [], "q50": []}
    unmarked_found = 0
    psnrs: list[float] = []
    by_size: dict[str, dict[str, int]] = {}
    encode_s = {"marked": 0.0, "unmarked": 0.0}
    embed_s, read_s, big = 0.0, 0.0, 0
    for image in images.values():
        for size in SIZES:
            picture = image.resize(size, Image.Resampling.LANCZOS)
            plain = np.asarray(picture)
            repeats = 3 if size == (1024, 1024) else 1
            marked, seconds = delivered(picture, marked=True, repeats=repeats)
            unmarked, plain_seconds = delivered(picture, marked=False, repeats=repeats)
            if size == (1024, 1024):  # cost at the delivery size
                encode_s["marked"] += seconds
                encode_s["unmarked"] += plain_seconds
                embed_s += fastest(lambda: embed(plain))  # noqa: B023
                read_s += fastest(lambda: read(marked))  # noqa: B023
                big += 1
            psnrs.append(psnr(embed(plain), plain))
            readings = {"delivered": read(marked), "q75": read(reencode(marked, 75)), "q50": read(reencode(marked, 50))}
            for key, reading in readings.items():
                errors[key].append(reading.bit_errors)
            row = by_size.setdefault(f"{size[0]}x{size[1]}", {"images": 0, "found_delivered": 0, "found_q75": 0})
            row["images"] += 1
            row["found_delivered"] += readings["delivered"].found
            row["found_q75"] += readings["q75"].found
            unmarked_found += read(unmarked).found + read(reencode(unmarked, 75)).found

    n = len(errors["delivered"])
    figures = {
        "bench": "watermark",
        "images": n,
        "payload_bits": PAYLOAD_BITS,
        "found_if_bit_errors_at_most": MAX_BIT_ERRORS,
        **{f"ber_{key}": {"mean": round(float(np.mean(v)) / PAYLOAD_BITS, 5),
                          "max": round(max(v) / PAYLOAD_BITS, 5)} for key, v in errors.items()},
        **{f"found_{key}": sum(e <= MAX_BIT_ERRORS for e in v) for key, v in errors.items()},
        "unmarked_reads": 2 * n,
        "unmarked_found": unmarked_found,
        "psnr_db": {"min": round(min(psnrs), 2), "mean": round(float(np.mean(psnrs)), 2)},
        "by_size": by_size,
        "at_1024": {"embed_ms": round(1000 * embed_s / big, 2), "read_ms": round(1000 * read_s / big, 2),
                    "delivery_encode_ms_unmarked": round(1000 * encode_s["unmarked"] / big, 2),
                    "delivery_encode_ms_marked": round(1000 * encode_s["marked"] / big, 2),
                    "marked_vs_unmarked_encode": round(encode_s["marked"] / encode_s["unmarked"], 3)},
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
