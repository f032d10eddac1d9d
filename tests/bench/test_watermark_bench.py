"""bench/watermark.py: one JSON line; the mark is read back after both encodes and never found
where it was not put."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_watermark_bench_reads_every_mark_after_both_encodes_and_none_in_unmarked_images() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "watermark.py"), "--quick"],
                          capture_output=True, text=True, timeout=300, check=True, cwd=REPO)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    d = json.loads(lines[0])
    assert d["bench"] == "watermark" and d["images"] == 12  # 2 photos + the backdrop, at 4 sizes
    assert d["found_delivered"] == d["found_q75"] == d["images"]
    assert d["ber_q75"]["max"] <= 2 / d["payload_bits"]
    assert d["unmarked_found"] == 0 and d["unmarked_reads"] == 24
    assert d["psnr_db"]["min"] > 44
    assert d["at_1024"]["delivery_encode_ms_marked"] > 0 and d["at_1024"]["marked_vs_unmarked_encode"] > 0
