"""The fault matrix of issue 6, counted: no job lost, no email twice, no run twice, rework bounded.

Runs worker child processes on the embedded local stack with the tiny model through: kill -9
in each stage, SIGTERM in training, one S3 event five times, two workers on six jobs, 30% S3
SlowDown + SES throttling, poison messages, and a visibility timeout shorter than the job.
Rework per kill is the stage time repeated after the kill (kill time minus the start of the
killed stage); the naive baseline measured in the same run is what a worker without stage
checkpoints would repeat (kill time minus the start of the job).

Prints ONE JSON line. ``--quick`` runs one case of each kind (kill -9 in training only, two
workers on two jobs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DEEPFACE_HOME", str(REPO / ".cache" / "deepface"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from processor.devkit.fault_proxy import FaultProxy
from processor.devkit.local_stack import LocalStack
from processor.devkit.profiles import fast_queue_settings, tiny_model_settings
from processor.settings import Settings  # noqa: E402
from tests.integration.harness import (  # noqa: E402
    Fleet,
    dlq_count,
    emails_for,
    job_status,
    queue_counts,
    s3_event_body,
    send_raw,
    stage_runs,
    submit,
    wait_for,
    wait_for_stage,
    wait_for_state,
)

STAGES = ("validate", "prepare", "train", "generate", "deliver", "notify")
#: Where each kill lands (a pause failpoint freezes the worker there; then kill -9 from outside).
KILL_POINTS = {"validate": "validate.running", "train": "train.step@5", "generate": "generate.image@2",
               "deliver": "deliver.uploaded@2", "notify": "notify.sent"}
TIMEOUT = 600


@dataclass
class Tally:
    submitted: int = 0
    ended_as_expected: int = 0
    duplicate_emails: int = 0
    missing_emails: int = 0
    duplicate_runs: int = 0
    duplicate_run_details: list[str] = field(default_factory=list)
    dlq_unexpected: int = 0
    rework: dict[str, float] = field(default_factory=dict)
    naive_rework: dict[str, float] = field(default_factory=dict)
    cases: dict[str, float] = field(default_factory=dict)

    def job(self, stack: LocalStack, settings: Settings, job_id: str, expected: str,
            reruns: dict[str, int] | None = None) -> None:
        """Count one job: terminal state, emails, stage runs beyond what the case allows."""
        self.submitted += 1
        status = job_status(stack, settings, job_id) or {}
        if status.get("state") == expected:
            self.ended_as_expected += 1
        emails = len(emails_for(stack.outbox, job_id))
        self.duplicate_emails += max(0, emails - 1)
        self.missing_emails += 1 if emails == 0 and expected != "failed" else 0
        allowed = reruns or {}
        for stage, runs in stage_runs(status).items():
            extra = max(0, runs - 1 - allowed.get(stage, 0))
            if extra:
                self.duplicate_runs += extra
                self.duplicate_run_details.append(f"{job_id}:{stage}x{runs}")


class Bench:
    def __init__(self, stack: LocalStack, photos: Path, model: Path, root: Path) -> None:
        self.stack, self.photos, self.model, self.root = stack, photos, model, root
        self.tally = Tally()
        self.n = 0

    def settings(self, **overrides: Any) -> Settings:
        self.n += 1
        values = {**tiny_model_settings(self.model, self.root / "cache", num_images=3),
                  **fast_queue_settings(visibility_timeout_s=10, heartbeat_interval_s=2.0,
                                        owner_stale_after_s=6.0, shutdown_grace_s=30.0),
                  "email_backend": "smtp", "log_format": "json", **overrides}
        return self.stack.provision(f"bench{self.n:02d}", **values)

    def fleet(self, settings: Settings, name: str) -> Fleet:
        return Fleet(self.stack, settings, self.root / name, [])

    def case(self, name: str, fn: Callable[[], None]) -> None:
        started = time.monotonic()
        fn()
        self.tally.cases[name] = round(time.monotonic() - started, 1)
        print(f"bench/faults: {name} done in {self.tally.cases[name]}s", file=sys.stderr)

    def drained(self, settings: Settings, dlq_expected: int = 0) -> None:
        wait_for(lambda: queue_counts(self.stack, settings) == (0, 0), 60, what="an empty queue")
        self.tally.dlq_unexpected += abs(dlq_count(self.stack, settings) - dlq_expected)

    # --- cases ---------------------------------------------------------------------------
    def kill(self, stage: str) -> None:
        """Freeze the worker inside ``stage`` (pause failpoint), kill -9 it, let another finish."""
        settings = self.settings(train_steps=8, num_images=4, generation_batch_size=1)
        fleet = self.fleet(settings, f"kill-{stage}")
        job_id = f"kill-{stage}"
        name, _, nth = KILL_POINTS[stage].partition("@")
        try:
            first = fleet.start("first", HEADSHOTS_FAILPOINTS=f"{name}=pause" + (f"@{nth}" if nth else ""))
            submit(settings, self.photos, f"{job_id}@example.com", job_id)
            first.wait_paused(TIMEOUT)
            status = job_status(self.stack, settings, job_id) or {}
            first.kill9()
            killed_at = time.time()
            self.tally.rework[stage] = round(killed_at - status["stages"][stage]["started_at"], 2)
            self.tally.naive_rework[stage] = round(killed_at - status["created_at"], 2)
            fleet.start("second")
            wait_for_state(self.stack, settings, job_id, ["delivered"], TIMEOUT, fleet=fleet)
            self.drained(settings)
        finally:
            fleet.stop_all()
        self.tally.job(self.stack, settings, job_id, "delivered", reruns={stage: 1})

    def sigterm(self) -> None:
        settings = self.settings(train_steps=20, visibility_timeout_s=60, heartbeat_interval_s=5.0)
        fleet = self.fleet(settings, "sigterm")
        try:
            first = fleet.start("first", HEADSHOTS_FAILPOINTS="train.step=pause@5")
            submit(settings, self.photos, "term@example.com", "sigterm")
            first.wait_paused(TIMEOUT)
            t0 = time.monotonic()
            first.terminate()
            first.resume()
            rc = first.wait(settings.shutdown_grace_s)
            self.tally.cases["sigterm_exit_s"] = round(time.monotonic() - t0, 2)
            self.tally.cases["sigterm_exit_code"] = rc
            self.tally.cases["sigterm_message_visible"] = queue_counts(self.stack, settings)[0]
            fleet.start("second")
            wait_for_state(self.stack, settings, "sigterm", ["delivered"], TIMEOUT, fleet=fleet)
            self.drained(settings)
        finally:
            fleet.stop_all()
        self.tally.job(self.stack, settings, "sigterm", "delivered", reruns={"train": 1})

    def duplicates(self) -> None:
        settings = self.settings()
        fleet = self.fleet(settings, "dup")
        body = s3_event_body(settings.input_bucket, "uploads/dup5/manifest.json")
        try:
            submit(settings, self.photos, "dup@example.com", "dup5")
            send_raw(self.stack, settings, body)
            fleet.start("a")
            fleet.start("b")
            wait_for_stage(self.stack, settings, "dup5", "validate", TIMEOUT)
            for _ in range(3):
                send_raw(self.stack, settings, body)
            wait_for_state(self.stack, settings, "dup5", ["delivered"], TIMEOUT, fleet=fleet)
            self.drained(settings)
        finally:
            fleet.stop_all()
        self.tally.job(self.stack, settings, "dup5", "delivered")

    def two_workers(self, n_jobs: int) -> None:
        settings = self.settings(num_images=2)
        fleet = self.fleet(settings, "two")
        jobs = [f"pair-{i}" for i in range(n_jobs)]
        try:
            fleet.start("a")
            fleet.start("b")
            for job in jobs:
                submit(settings, self.photos, f"{job}@example.com", job)
            for job in jobs:
                wait_for_state(self.stack, settings, job, ["delivered"], TIMEOUT, fleet=fleet)
            self.drained(settings)
        finally:
            fleet.stop_all()
        for job in jobs:
            self.tally.job(self.stack, settings, job, "delivered")

    def injected_faults(self) -> None:
        settings = self.settings(email_backend="ses")
        fleet = self.fleet(settings, "faulty")
        try:
            submit(settings, self.photos, "faulty@example.com", "faulty")
            with FaultProxy(self.stack.endpoint_url, {"s3": 0.3, "ses": 0.3}, seed=11,
                            fail_first={"ses": 1}) as proxy:
                worker = fleet.start("w", HEADSHOTS_AWS_ENDPOINT_URL=proxy.url)
                wait_for_state(self.stack, settings, "faulty", ["delivered"], TIMEOUT, fleet=fleet)
                self.drained(settings)
                self.tally.cases["faults_injected"] = sum(proxy.counts.injected.values())
            self.tally.cases["retries_logged"] = sum(1 for e in worker.events() if e.get("event") == "aws_retry")
            sent = [m for m in self.stack.ses_sent_messages() if "X-Headshots-Job: faulty" in m.raw]
        finally:
            fleet.stop_all()
        self.tally.submitted += 1
        status = job_status(self.stack, settings, "faulty") or {}
        self.tally.ended_as_expected += status.get("state") == "delivered"
        self.tally.duplicate_emails += max(0, len(sent) - 1)
        self.tally.missing_emails += not sent
        # At 30% faults a call can exhaust its 6 tries (0.3**6 per call): that attempt crashes and
        # the queue retries the job, one attempt after another; that is a retry, not a duplicate.
        self.tally.cases["faults_job_attempts"] = status.get("attempts", 0)
        claims = sum(1 for e in worker.events() if e.get("event") == "job_claimed")
        if claims != status.get("attempts"):
            self.tally.duplicate_runs += 1
            self.tally.duplicate_run_details.append(f"faulty: {claims} claims for {status.get('attempts')} attempts")

    def poison(self) -> None:
        settings = self.settings(num_images=2)
        fleet = self.fleet(settings, "poison")
        try:
            send_raw(self.stack, settings, "not json")
            send_raw(self.stack, settings, s3_event_body(settings.input_bucket, "uploads/../x/manifest.json"))
            send_raw(self.stack, settings, s3_event_body(settings.input_bucket, "uploads/no-manifest/manifest.json"))
            submit(settings, self.photos, "good@example.com", "after-poison")
            fleet.start("w")
            wait_for_state(self.stack, settings, "after-poison", ["delivered"], TIMEOUT, fleet=fleet)
            wait_for(lambda: dlq_count(self.stack, settings) == 2, 60, what="poison in the DLQ")
            self.drained(settings, dlq_expected=2)
        finally:
            fleet.stop_all()
        self.tally.job(self.stack, settings, "after-poison", "delivered")
        self.tally.job(self.stack, settings, "no-manifest", "failed")

    def visibility(self) -> None:
        settings = self.settings(visibility_timeout_s=2, heartbeat_interval_s=0.5)
        fleet = self.fleet(settings, "visibility")
        try:
            fleet.start("a")
            fleet.start("b")
            submit(settings, self.photos, "vis@example.com", "long-job")
            wait_for_state(self.stack, settings, "long-job", ["delivered"], TIMEOUT, fleet=fleet)
            self.drained(settings)
            claims = sum(1 for e in fleet.all_events() if e.get("event") == "job_claimed")
        finally:
            fleet.stop_all()
        self.tally.job(self.stack, settings, "long-job", "delivered")
        if claims > 1:
            self.tally.duplicate_runs += claims - 1
            self.tally.duplicate_run_details.append(f"long-job:claimed x{claims}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one case of each kind")
    args = parser.parse_args()

    from handlers.faces import install_weights
    from processor.devkit.samples import build_person_set
    from processor.logging import configure_logging
    from tests.fixtures.models import ensure_tiny_model

    configure_logging("console", "WARNING")  # logs to stderr: stdout carries the one JSON line
    install_weights(Path(os.environ["DEEPFACE_HOME"]))
    model = ensure_tiny_model()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        root = Path(tmp)
        photos = root / "photos"
        build_person_set(photos, n=12)
        with LocalStack(Settings(email_backend="smtp"), outbox=root / "outbox") as stack:
            bench = Bench(stack, photos, model, root)
            for stage in (("train",) if args.quick else ("validate", "train", "generate", "deliver", "notify")):
                bench.case(f"kill9_{stage}", lambda s=stage: bench.kill(s))
            bench.case("sigterm_train", bench.sigterm)
            bench.case("duplicates_x5", bench.duplicates)
            n_jobs = 2 if args.quick else 6
            bench.case(f"two_workers_x{n_jobs}", lambda: bench.two_workers(n_jobs))
            bench.case("s3_ses_faults_30pct", bench.injected_faults)
            bench.case("poison", bench.poison)
            bench.case("visibility_2s", bench.visibility)
    t = bench.tally
    rework = sum(t.rework.values())
    naive = sum(t.naive_rework.values())
    print(json.dumps({
        "bench": "faults", "quick": args.quick,
        "jobs_submitted": t.submitted, "jobs_ended_as_expected": t.ended_as_expected,
        "jobs_lost": t.submitted - t.ended_as_expected,
        "duplicate_emails": t.duplicate_emails, "missing_emails": t.missing_emails,
        "duplicate_runs": t.duplicate_runs, "duplicate_run_details": t.duplicate_run_details,
        "unexpected_dlq_messages": t.dlq_unexpected,
        "rework_s_by_killed_stage": t.rework,
        "naive_rework_s_by_killed_stage": t.naive_rework,
        "rework_s_total": round(rework, 2), "naive_rework_s_total": round(naive, 2),
        "rework_vs_naive": round(rework / naive, 3) if naive else None,
        "cases_s": t.cases, "wall_s": round(time.monotonic() - started, 1),
    }))


if __name__ == "__main__":
    main()
