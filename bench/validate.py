"""Quality-gate benchmark: 20 photos of 12 megapixels, our gate vs the naive one, plus real
turned faces and iPhone-style HEIC photos.

Ours decodes JPEGs at reduced scale (``draft``), runs dlib's HOG detector on a <= 800 px copy
and its CNN only where HOG finds no face, and embeds from the face crop; the naive gate
decodes and detects at full resolution. Each run is a fresh child process so its peak RSS (VmHWM)
is its own. The turned and HEIC sets run through our gate too; every run reports the time of
each detector path (``hog``, ``cnn``) and of the embeddings, from the analyzer's own counters.
Prints ONE JSON line.

    .venv/bin/python bench/validate.py [--photos 20] [--naive-photos 20] [--heic 4]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DEEPFACE_HOME", str(ROOT / ".cache" / "deepface"))
os.environ.setdefault("OMP_NUM_THREADS", "2")
SIDE = 3464  # 3464 x 3464 = 12.0 MP


def make_photos(dest: Path, n: int) -> list[Path]:
    """``n`` distinct photos of one person, each 3464 x 3464 (12.0 MP) JPEG."""
    from PIL import Image

    from processor.devkit.samples import build_person_set

    out = []
    for p in build_person_set(dest / "src", n=n, person="obama"):
        big = dest / p.name
        with Image.open(p) as img:
            img.resize((SIDE, SIDE), Image.Resampling.BICUBIC).save(big, "JPEG", quality=90)
        out.append(big)
    return out


def make_turned(dest: Path) -> list[Path]:
    """Real turned faces (a man at about 45 degrees, a woman at about 15, frames of a woman's
    three-quarter turns), each scaled to 12 MP as a phone would shoot them."""
    from PIL import Image

    from processor.devkit.samples import ONE_WOMAN_FRAMES, default_cache_dir, fetch_sample_sources, video_frames

    src = fetch_sample_sources(default_cache_dir())
    images = [Image.open(src.path("turned_45.jpg")), Image.open(src.path("turned_15.jpg"))]
    images += [Image.fromarray(f) for f in video_frames(src.path("one_woman.mp4"), ONE_WOMAN_FRAMES["turned"][::3])]
    out = []
    for i, img in enumerate(images):
        s = (12e6 / (img.width * img.height)) ** 0.5
        path = dest / f"turned-{i:02d}.jpg"
        img.convert("RGB").resize((round(img.width * s), round(img.height * s)), Image.Resampling.BICUBIC).save(
            path, "JPEG", quality=90)
        out.append(path)
    return out


def make_heic(dest: Path, photos: list[Path], n: int) -> list[Path]:
    """``n`` of the photos as iPhone-style 12 MP HEIC (4032 x 3024, stored sideways)."""
    from PIL import Image

    from processor.devkit.samples import write_heic

    out = []
    for p in photos[:n]:
        with Image.open(p) as img:
            out.append(write_heic(img, dest / (p.stem + ".heic"), (3024, 4032)))
    return out


def child(mode: str, files: list[Path]) -> dict[str, object]:
    from handlers.faces import FaceAnalyzer, FaceModelConfig, install_weights
    from handlers.validate.config import ValidateConfig
    from handlers.validate.gate import validate_photos

    home = Path(os.environ["DEEPFACE_HOME"])
    install_weights(home)
    if mode == "naive":
        config = ValidateConfig(analysis_max_side=None,
                                face=FaceModelConfig(weights_home=home, detect_max_side=None, cnn_max_side=None))
    else:
        config = ValidateConfig(face=FaceModelConfig(weights_home=home))
    analyzer = FaceAnalyzer(config.face)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    report = validate_photos(files, config, analyzer)
    seconds = time.perf_counter() - started
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    paths = {name: {"calls": analyzer.times.calls[name],
                    "ms_per_call": round(1000 * analyzer.times.seconds[name] / analyzer.times.calls[name], 1)}
             for name in sorted(analyzer.times.calls)}
    return {"seconds": seconds, "cpu_seconds": cpu, "usable": report.usable,
            "found": sum(1 for p in report.photos if p.faces), "paths": paths,
            "reasons": sorted({p.reason or "ok" for p in report.photos}),
            "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM). ``ru_maxrss`` would not do: Linux
    carries the parent's peak across fork and exec, and the parent made the photos."""
    import re

    text = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) / 1024  # type: ignore[union-attr]


def run_child(mode: str, files: list[Path]) -> dict[str, object]:
    out = subprocess.run([sys.executable, __file__, "--child", mode, *map(str, files)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--naive-photos", type=int, default=20)
    parser.add_argument("--heic", type=int, default=4)
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        import logging

        import structlog

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        print(json.dumps(child(args.child[0], [Path(f) for f in args.child[1:]])))
        return
    with tempfile.TemporaryDirectory() as tmp:
        files = make_photos(Path(tmp), args.photos)
        (Path(tmp) / "turned").mkdir()
        (Path(tmp) / "heic").mkdir()
        turned = make_turned(Path(tmp) / "turned")
        heic = make_heic(Path(tmp) / "heic", files, args.heic)
        ours = run_child("ours", files)
        naive = run_child("naive", files[: args.naive_photos])
        turned_run = run_child("ours", turned)
        heic_run = run_child("ours", heic)
    n_naive = min(args.naive_photos, args.photos)
    ours_rate = args.photos / float(ours["seconds"])  # type: ignore[arg-type]
    naive_rate = n_naive / float(naive["seconds"])  # type: ignore[arg-type]

    def extra(run: dict[str, object], n: int) -> dict[str, object]:
        return {"photos": n, "faces_found": run["found"], "seconds": round(float(run["seconds"]), 2),  # type: ignore[arg-type]
                "s_per_photo": round(float(run["seconds"]) / n, 3),  # type: ignore[arg-type]
                "peak_rss_mb": round(float(run["peak_rss_mb"])), "paths": run["paths"]}  # type: ignore[arg-type]

    print(json.dumps({
        "bench": "validate", "photos": args.photos, "megapixels": 12.0,
        "seconds": round(float(ours["seconds"]), 2), "cpu_seconds": round(float(ours["cpu_seconds"]), 2),  # type: ignore[arg-type]
        "photos_per_s": round(ours_rate, 2),
        "peak_rss_mb": round(float(ours["peak_rss_mb"])), "usable": ours["usable"],  # type: ignore[arg-type]
        "paths": ours["paths"],
        "naive_photos": n_naive,
        "naive_seconds": round(float(naive["seconds"]), 2),  # type: ignore[arg-type]
        "naive_cpu_seconds": round(float(naive["cpu_seconds"]), 2), "naive_photos_per_s": round(naive_rate, 2),  # type: ignore[arg-type]
        "naive_peak_rss_mb": round(float(naive["peak_rss_mb"])), "naive_usable": naive["usable"],  # type: ignore[arg-type]
        "naive_paths": naive["paths"],
        "speedup": round(ours_rate / naive_rate, 2),
        "rss_ratio": round(float(naive["peak_rss_mb"]) / float(ours["peak_rss_mb"]), 2),  # type: ignore[arg-type]
        "turned": extra(turned_run, len(turned)), "heic_12mp": extra(heic_run, len(heic)),
        "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
