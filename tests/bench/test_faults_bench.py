"""bench/faults.py --quick runs to its one JSON line, and its five counts are zero.

The bench crashed once on a closed log file and nobody noticed for a while: this keeps it
running in CI, at the production timing it defaults to.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ZERO = ("jobs_lost", "duplicate_emails", "duplicate_runs", "dlq_without_email", "orphaned_local_dirs")


@pytest.mark.slow
def test_the_quick_fault_bench_prints_one_json_line_with_nothing_lost_duplicated_or_left() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "faults.py"), "--quick"],
                          capture_output=True, text=True, timeout=1500, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout[-2000:]
    d = json.loads(lines[0])
    assert d["bench"] == "faults" and d["quick"] and d["timing"] == "production"
    assert d["jobs_submitted"] >= 5 and d["jobs_ended_as_expected"] == d["jobs_submitted"]
    assert {k: d[k] for k in ZERO} == dict.fromkeys(ZERO, 0), d
    assert d["missing_emails"] == 0 and d["unexpected_queue_messages"] == 0
    assert 0 < d["rework_vs_naive"] < 1  # a kill costs the stage in progress, not the job
