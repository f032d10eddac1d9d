"""Quality-gate benchmark: 20 photos of 12 megapixels, our gate vs the naive one.

Ours decodes JPEGs at reduced scale (``draft``), detects on a <= 1024 px copy and embeds
from the face crop; the naive gate decodes and detects at full resolution. Each runs in a
fresh child process so its peak RSS is its own. Prints ONE JSON line.

    .venv/bin/python bench/validate.py [--photos 20] [--naive-photos 20]
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


def make_photos(dest: Path, n: int) -> list[Path]:
    """``n`` distinct photos of one person, each 3464 x 3464 (12.0 MP) JPEG."""
    from PIL import Image

    from processor.devkit.samples import build_person_set

    out = []
    for p in build_person_set(dest / "src", n=n, person="obama"):
        big = dest / p.name
        with Image.open(p) as img:
            img.resize((3464, 3464), Image.Resampling.BICUBIC).save(big, "JPEG", quality=90)
        out.append(big)
    return out


def child(mode: str, files: list[Path]) -> dict[str, float]:
    from handlers.faces import FaceAnalyzer, FaceModelConfig, install_weights
    from handlers.validate.config import ValidateConfig
    from handlers.validate.gate import validate_photos

    home = Path(os.environ["DEEPFACE_HOME"])
    install_weights(home)
    if mode == "ours":
        config = ValidateConfig(face=FaceModelConfig(weights_home=home))
    else:
        config = ValidateConfig(analysis_max_side=None,
                                face=FaceModelConfig(weights_home=home, detect_max_side=None))
    analyzer = FaceAnalyzer(config.face)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    report = validate_photos(files, config, analyzer)
    seconds = time.perf_counter() - started
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {"seconds": seconds, "cpu_seconds": cpu, "usable": report.usable,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(mode: str, files: list[Path]) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", mode, *map(str, files)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--naive-photos", type=int, default=20)
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
        ours = run_child("ours", files)
        naive = run_child("naive", files[: args.naive_photos])
    ours_rate = args.photos / ours["seconds"]
    naive_rate = min(args.naive_photos, args.photos) / naive["seconds"]
    print(json.dumps({
        "bench": "validate", "photos": args.photos, "megapixels": 12.0,
        "seconds": round(ours["seconds"], 2), "cpu_seconds": round(ours["cpu_seconds"], 2),
        "photos_per_s": round(ours_rate, 2),
        "peak_rss_mb": round(ours["peak_rss_mb"]), "usable": ours["usable"],
        "naive_photos": min(args.naive_photos, args.photos),
        "naive_seconds": round(naive["seconds"], 2),
        "naive_cpu_seconds": round(naive["cpu_seconds"], 2), "naive_photos_per_s": round(naive_rate, 2),
        "naive_peak_rss_mb": round(naive["peak_rss_mb"]), "naive_usable": naive["usable"],
        "speedup": round(ours_rate / naive_rate, 2),
        "rss_ratio": round(naive["peak_rss_mb"] / ours["peak_rss_mb"], 2),
        "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
