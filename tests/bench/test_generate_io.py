"""bench/generate_io.py: one JSON line; the writer thread takes host work off the GPU's path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_generate_io_bench_reports_both_profiles_and_delivery_needs_no_encoding_after_generation() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "generate_io.py"), "--images", "12",
                           "--batch-size", "4", "--resolution", "512", "--gpu-seconds-per-image", "0.1"],
                          capture_output=True, text=True, timeout=300, check=True, cwd=REPO)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    d = json.loads(lines[0])
    assert d["bench"] == "generate_io" and d["images"] == 12
    naive, optimized = d["naive"], d["optimized"]
    for run in (naive, optimized):  # the modelled GPU worked 12 x 0.1 s in both
        assert 1.1 < run["gpu_busy_s"] < 2.0
        assert run["total_s"] >= run["gpu_busy_s"]
    # the JPEGs were made on the writer thread: delivery only copies them
    assert optimized["deliver_build_s"] < naive["deliver_build_s"]
    assert d["speedup"] == round(naive["total_s"] / optimized["total_s"], 3)
