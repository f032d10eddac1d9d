"""bench/faults.py --quick runs to its one JSON line, and every count it holds to zero is zero.

The bench crashed once on a closed log file and nobody noticed for a while: this keeps it
running in CI, at the production timing it defaults to, with one case of each kind of trouble
(AWS's rude modes included: tests/integration/rude_scenarios.py), none repeated in the fault suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ZERO = ("jobs_lost", "duplicate_emails", "missing_emails", "duplicate_runs", "dlq_without_email",
        "orphaned_local_dirs", "unexpected_queue_messages", "leftover_objects", "stale_writes", "unfenced_writes",
        "resumable_jobs_failed", "worker_exits", "two_live_owners", "phantom_crashes")
RUDE = ("aws_rude_sqs_s3_ses", "smtp_quit_fails_after_250", "kill9_mid_checkpoint_upload",
        "sigstop_between_check_and_write", "kill9_mid_handbacks", "stray_dlq_copy_sweeper_killed", "clock_skew_60s",
        "slow_claim")


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_the_quick_fault_bench_prints_one_json_line_with_nothing_lost_duplicated_or_left() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "faults.py"), "--quick"],
                          capture_output=True, text=True, timeout=2400, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout[-2000:]
    d = json.loads(lines[0])
    assert d["bench"] == "faults" and d["quick"] and d["timing"] == "production"
    assert d["jobs_submitted"] >= 13 and d["jobs_ended_as_expected"] == d["jobs_submitted"]
    assert {k: d[k] for k in ZERO} == dict.fromkeys(ZERO, 0), d["details"]
    assert set(RUDE) <= set(d["cases_s"]), d["cases_s"]
    assert 0 < d["rework_vs_naive"] < 1  # a kill costs the stage in progress, not the job
    assert d["residual_windows"]["fenced_write_check_to_answer"]["p99_ms"] < 1000
