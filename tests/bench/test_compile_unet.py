"""bench/compile_unet.py's arithmetic: when a compile pays back (the run itself is GPU-sized;
the compile path it measures is pinned by tests/handlers/test_generate_overlap.py)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.compile_unet import payback  # noqa: E402


def test_a_compile_that_costs_more_than_one_job_saves_pays_back_over_several_jobs() -> None:
    out = payback(eager_batch_s=10.0, compiled_batch_s=8.0, batches_per_job=9,
                  compile_costs_s={"cold": 90.0, "second_job_same_process": 0.5})
    assert out["saving_per_job_s"] == 18.0
    assert out["jobs_to_pay_back"] == {"cold": 5.0, "second_job_same_process": 0.03}
    assert out["pays_back_within_first_job"] is False


def test_a_cheap_compile_pays_back_within_the_first_job() -> None:
    out = payback(10.0, 8.0, 9, {"cold": 12.0})
    assert out["pays_back_within_first_job"] is True


def test_a_compile_that_is_not_faster_never_pays_back() -> None:
    out = payback(8.0, 8.5, 9, {"cold": 12.0})
    assert out["saving_per_job_s"] < 0 and out["jobs_to_pay_back"] == {"cold": None}
    assert out["pays_back_within_first_job"] is False

