"""The fault matrix, counted: no job lost, no email twice or never, no work twice, no data left,
no write on a lost lease, no two live owners, no worker dying on its own.

Plays the fault suite's scenarios (``tests/integration/scenarios.py``) and the rude ones
(``tests/integration/rude_scenarios.py``) with worker child processes on the embedded local
stack and the tiny model: kill -9 in each stage (then a worker restarted on the same disk),
several SIGTERMs in a row, an owner paused past its lease's staleness, one S3 event five times,
two workers on several jobs, 30% S3 SlowDown + SES throttling, an SES answer lost after the
send, kill -9 between the email marker and the send, a job whose message reaches the dead-letter
queue, poison messages, a visibility timeout shorter than the job; and AWS's rude modes: SQS
throttling, 5xx and an outage on receive/delete/visibility/send, resets after S3, SES and an
SMTP relay took the request, a relay failing the QUIT after its 250, kill -9 mid checkpoint
upload, SIGSTOP (and kill -9) between a fence check and its write, kill -9 half-way through two
hand-backs and through the sweeper's hand-back of a stray dead-lettered copy, workers 60 s apart
in clock, a claim answered after its lease's validity.

Every fleet runs behind an auditing fault proxy: ``stale_writes`` are job writes that landed
after their writer's lease had moved on (a later epoch claimed, or the job ended);
``leftover_objects`` are keys left under ``uploads/<job>/`` or ``jobs/<job>/work/`` after the
job ended, read from S3; ``resumable_jobs_failed`` jobs that ended failed although they could
have resumed; ``worker_exits`` worker processes that ended without being asked;
``two_live_owners`` times two workers ran one job at once. Rework per kill is the stage time
repeated after the kill (kill time minus the start of the killed stage); the naive baseline
measured in the same run is what a worker without stage checkpoints would repeat (kill time
minus the start of the job).

``--timing production`` (the default) runs the production defaults' visibility : heartbeat :
staleness : receive-count ratios scaled to a tenth; ``fast`` the old fast test timing.
Prints ONE JSON line. ``--quick`` runs one case of each kind of trouble (CI runs it; the
fault suite, tests/integration/test_faults.py, covers the rest of the polite ones).
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

from processor.devkit.local_stack import LocalStack  # noqa: E402
from processor.devkit.profiles import (  # noqa: E402
    fast_queue_settings,
    production_timing,
    tiny_model_settings,
)
from processor.settings import Settings  # noqa: E402
from tests.integration.rude_scenarios import RudeScenarios  # noqa: E402
from tests.integration.scenarios import Outcome, extra_stage_runs  # noqa: E402

STAGES = ("validate", "train", "generate", "deliver", "notify")


@dataclass
class Tally:
    submitted: int = 0
    ended_as_expected: int = 0
    duplicate_emails: int = 0
    missing_emails: int = 0
    email_unknown: int = 0
    duplicate_runs: int = 0
    duplicate_run_details: list[str] = field(default_factory=list)
    dlq_without_email: int = 0
    orphaned_local_dirs: int = 0
    unexpected_queue_messages: int = 0
    leftover_objects: int = 0
    stale_writes: int = 0
    unfenced_writes: int = 0
    resumable_jobs_failed: int = 0
    worker_exits: int = 0
    two_live_owners: int = 0
    phantom_crashes: int = 0
    details: list[str] = field(default_factory=list)
    rework: dict[str, float] = field(default_factory=dict)
    takeover_s: list[float] = field(default_factory=list)
    naive_rework: dict[str, float] = field(default_factory=dict)
    cases: dict[str, Any] = field(default_factory=dict)

    def count(self, outcome: Outcome, expected: dict[str, str], reruns: dict[str, int] | None = None,
              unknown_allowed: bool = False, crashes: int | None = None) -> None:
        """One scenario's jobs: terminal state, emails, work done twice, what was left behind.

        ``crashes``: the crashes the scenario really caused (kills of an owner mid-attempt); any
        more charged to the job's budget (hand-backs, duplicates, a lapsed message) are phantom."""
        for job_id, state in expected.items():
            if crashes is not None:
                charged = max([int(outcome.jobs.get(job_id, {}).get("crashes", 0))] +
                              [int(e.get("crashes", 0)) for e in outcome.events
                               if e.get("event") == "job_claimed" and e.get("job_id") == job_id])
                if charged > crashes:
                    self.phantom_crashes += charged - crashes
                    self.details.append(f"{job_id}: {charged} crashes charged, {crashes} caused")
            self.submitted += 1
            status = outcome.jobs.get(job_id, {})
            self.ended_as_expected += status.get("state") == state
            emails = outcome.emails.get(job_id, 0)
            self.duplicate_emails += max(0, emails - 1)
            unknown = status.get("email") == "unknown"
            self.email_unknown += unknown
            wants_email = status.get("email") not in ("none",) and state != "none"
            if wants_email and emails == 0 and not (unknown and unknown_allowed):
                self.missing_emails += 1
            if state == "delivered" and status.get("state") == "failed":
                self.resumable_jobs_failed += 1
                self.details.append(f"{job_id}: failed ({status.get('error')})")
            extra = extra_stage_runs(outcome, job_id, reruns)
            if extra:
                self.duplicate_runs += sum(extra.values())
                self.duplicate_run_details.append(f"{job_id}: {sum(extra.values())} extra runs of "
                                                  f"{', '.join(sorted(extra))}")
        dead = [e.get("job_id") for e in outcome.events if e.get("event") == "job_dead_lettered"]
        unmailed = [j for j in dead if outcome.emails.get(j, 0) == 0]
        self.dlq_without_email += len(unmailed) + outcome.dlq  # outcome.dlq: still in the DLQ at the end
        if unmailed or outcome.dlq:
            self.details.append(f"{', '.join(sorted(expected))}: {len(unmailed)} dead-lettered without an email, "
                                f"{outcome.dlq} message(s) left in the DLQ")
        self.orphaned_local_dirs += len(outcome.leftover_dirs)
        self.unexpected_queue_messages += sum(outcome.queue)
        self.leftover_objects += sum(len(keys) for keys in outcome.leftover_objects.values())
        self.stale_writes += len(outcome.stale_writes)
        self.unfenced_writes += len(outcome.unfenced_writes)
        self.worker_exits += outcome.worker_exits
        self.two_live_owners += outcome.owner_overlaps
        self.details += [f"left in S3: {k!r}" for keys in outcome.leftover_objects.values() for k in keys]
        self.details += [f"stale write: {w}" for w in outcome.stale_writes]
        self.details += [f"unfenced write: {w}" for w in outcome.unfenced_writes]


def run_cases(scenarios: RudeScenarios, tally: Tally, quick: bool, only: set[str] | None = None) -> None:
    def case(name: str, fn: Callable[[], None]) -> None:
        if only and name not in only:
            return
        started = time.monotonic()
        fn()
        tally.cases[name] = round(time.monotonic() - started, 1)
        print(f"bench/faults: {name} done in {tally.cases[name]}s", file=sys.stderr)

    def kill(stage: str) -> None:
        outcome = scenarios.kill9(stage, f"kill-{stage}")
        tally.rework[stage] = outcome.extra["rework_s"]
        if outcome.extra.get("takeover_s") is not None:
            tally.takeover_s.append(outcome.extra["takeover_s"])
        tally.naive_rework[stage] = outcome.extra["naive_rework_s"]
        tally.count(outcome, {f"kill-{stage}": "delivered"}, reruns={stage: 1}, crashes=1)

    def sigterms(n: int) -> None:
        outcome = scenarios.sigterms("spot", times=n)
        tally.cases[f"sigterm_x{n}_exits"] = outcome.extra["exits"]
        tally.count(outcome, {"spot": "delivered"}, reruns={"train": n}, crashes=0)

    def faults() -> None:
        outcome = scenarios.injected_faults("faulty")
        tally.cases["faults_injected"] = sum(outcome.extra["injected"].values())
        tally.cases["retries_logged"] = outcome.event_count("aws_retry")
        tally.count(outcome, {"faulty": "delivered"}, reruns={s: 9 for s in STAGES + ("prepare",)}, crashes=0)

    # --quick: one case of each kind of trouble (a kill, an interruption, duplicates, poison,
    # and each of AWS's rude modes).
    for stage in (("train",) if quick else STAGES):
        case(f"kill9_{stage}", lambda s=stage: kill(s))
    n_terms = 1 if quick else 4
    case(f"sigterm_x{n_terms}", lambda: sigterms(n_terms))
    case("duplicates_x5", lambda: tally.count(scenarios.duplicates("dup5"), {"dup5": "delivered"}, crashes=0))
    case("poison", lambda: tally.count(scenarios.poison("after-poison", "no-manifest"),
                                       {"after-poison": "delivered", "no-manifest": "failed"}, crashes=0))
    # The rude ones: each stage may run again where a kill, an interruption or a takeover hit it.
    any_stage = {s: 3 for s in STAGES + ("prepare",)}
    case("aws_rude_sqs_s3_ses", lambda: tally.count(scenarios.aws_rude("aws-rude"), {"aws-rude": "delivered"},
                                                    reruns=any_stage, unknown_allowed=True, crashes=0))
    case("smtp_quit_fails_after_250", lambda: tally.count(scenarios.smtp_rude("smtp-quit"),
                                                          {"smtp-quit": "delivered"}, crashes=0))
    case("kill9_mid_checkpoint_upload", lambda: tally.count(scenarios.kill9_mid_checkpoint("half-ckpt"),
                                                            {"half-ckpt": "delivered"}, reruns={"train": 1}, crashes=1))
    case("sigstop_between_check_and_write", lambda: tally.count(
        scenarios.paused_between_check_and_write("stopped-write"), {"stopped-write": "delivered"},
        reruns={"generate": 1}, crashes=1))
    case("kill9_mid_handbacks", lambda: tally.count(scenarios.handback_kills("handback"),
                                                    {"handback": "delivered"}, reruns={"train": 2}, crashes=0))
    case("stray_dlq_copy_sweeper_killed", lambda: tally.count(scenarios.stray_dlq_copy("stray"),
                                                              {"stray": "delivered"}, reruns={"train": 1}, crashes=0))
    case("clock_skew_60s", lambda: tally.count(scenarios.clock_skew("skewed"), {"skewed": "delivered"}, crashes=0))
    # The slow claimer's silent lease is taken over: its attempt counts as the one crash.
    case("slow_claim", lambda: tally.count(scenarios.slow_claim("slow-claim"), {"slow-claim": "delivered"},
                                           crashes=1))
    if not quick:
        jobs = [f"pair-{i}" for i in range(6)]
        case("two_workers_x6", lambda: tally.count(scenarios.two_workers(jobs), {j: "delivered" for j in jobs},
                                                   crashes=0))
        case("s3_ses_faults_30pct", faults)
        case("ses_answer_lost", lambda: tally.count(scenarios.ses_answer_lost("ses-lost"),
                                                    {"ses-lost": "delivered"}, unknown_allowed=True, crashes=0))
        case("paused_past_staleness", lambda: tally.count(scenarios.paused_past_staleness("paused"),
                                                          {"paused": "delivered"}, reruns={"generate": 1},
                                                          crashes=1))
        # The kill lands inside notify, so notify starts again once, as in kill9_notify.
        case("kill9_marker_send", lambda: tally.count(scenarios.kill_between_marker_and_send("marker"),
                                                      {"marker": "delivered"}, reruns={"notify": 1},
                                                      unknown_allowed=True, crashes=1))
        case("dead_lettered", lambda: tally.count(scenarios.dead_lettered("dlq-job"), {"dlq-job": "failed"},
                                                  reruns={"validate": 3, "prepare": 3, "train": 3}, crashes=3))
        case("visibility_4s", lambda: tally.count(scenarios.long_job_short_visibility("long-job"),
                                                  {"long-job": "delivered"}, crashes=0))
        case("smtp_reset_after_data", lambda: tally.count(scenarios.smtp_rude("smtp-reset", "reset_after_data"),
                                                          {"smtp-reset": "delivered"}, unknown_allowed=True,
                                                          crashes=0))
        case("kill9_between_check_and_write", lambda: tally.count(
            scenarios.paused_between_check_and_write("killed-write", kill=True), {"killed-write": "delivered"},
            reruns={"generate": 1}, crashes=1))


def measure_write_window(settings: Settings, writes: int = 200) -> dict[str, float]:
    """The residual window of a fenced write: from its last fence check (as the request leaves,
    botocore's before-send) to S3's answer, in ms, over ``writes`` 64 KiB PUTs on the stack."""
    import asyncio

    from processor.aws.storage import ObjectStore

    class Timed:
        epoch = 1
        checked = 0.0

        def ensure(self) -> None:
            self.checked = time.perf_counter()

    async def run() -> list[float]:
        guard, spans = Timed(), []
        async with ObjectStore(settings) as store:
            for i in range(writes):
                await store.put_bytes(settings.output_bucket, f"jobs/window/work/probe/e1/{i}", b"x" * 65536,
                                      guard=guard)
                spans.append((time.perf_counter() - guard.checked) * 1000)
            await store.delete_prefix(settings.output_bucket, "jobs/window/")
        return sorted(spans)
    spans = asyncio.run(run())
    return {"p50_ms": round(spans[len(spans) // 2], 2), "p99_ms": round(spans[int(len(spans) * 0.99) - 1], 2),
            "max_ms": round(spans[-1], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one case of each kind")
    parser.add_argument("--only", default="", help="comma-separated case names (a debugging aid)")
    parser.add_argument("--timing", choices=("production", "fast"), default="production",
                        help="production: the production ratios scaled to a tenth (default); "
                             "fast: the old fast test timing")
    args = parser.parse_args()

    from handlers.faces import install_weights
    from processor.devkit.samples import build_person_set
    from processor.logging import configure_logging
    from tests.fixtures.models import ensure_tiny_model

    configure_logging("console", "WARNING")  # logs to stderr: stdout carries the one JSON line
    install_weights(Path(os.environ["DEEPFACE_HOME"]))
    model = ensure_tiny_model()
    timing = production_timing() if args.timing == "production" else {
        **fast_queue_settings(visibility_timeout_s=10, heartbeat_interval_s=2.0, owner_stale_after_s=6.0),
        "dlq_sweep_interval_s": 2.0}
    started = time.monotonic()
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        root = Path(tmp)
        photos = root / "photos"
        build_person_set(photos, n=12)
        with LocalStack(Settings(email_backend="smtp"), outbox=root / "outbox") as stack:
            counter = iter(range(1, 1000))

            def settings(**overrides: Any) -> Settings:
                values = {**tiny_model_settings(model, root / "cache", num_images=3),
                          "email_backend": "smtp", "log_format": "json", **overrides}
                return stack.provision(f"bench{next(counter):02d}", **values)
            window = measure_write_window(settings())
            run_cases(RudeScenarios(stack, photos, settings, root / "fleets", timing), tally, args.quick,
                      set(filter(None, args.only.split(","))) or None)
    rework, naive = sum(tally.rework.values()), sum(tally.naive_rework.values())
    print(json.dumps({
        "bench": "faults", "quick": args.quick, "timing": args.timing,
        "timing_settings": {k: v for k, v in timing.items() if k != "dlq_sweep_interval_s"},
        "jobs_submitted": tally.submitted, "jobs_ended_as_expected": tally.ended_as_expected,
        "jobs_lost": tally.submitted - tally.ended_as_expected,
        "duplicate_emails": tally.duplicate_emails, "missing_emails": tally.missing_emails,
        "email_unknown": tally.email_unknown,
        "duplicate_runs": tally.duplicate_runs, "duplicate_run_details": tally.duplicate_run_details,
        "dlq_without_email": tally.dlq_without_email, "orphaned_local_dirs": tally.orphaned_local_dirs,
        "unexpected_queue_messages": tally.unexpected_queue_messages,
        "leftover_objects": tally.leftover_objects, "stale_writes": tally.stale_writes,
        "unfenced_writes": tally.unfenced_writes, "resumable_jobs_failed": tally.resumable_jobs_failed,
        "worker_exits": tally.worker_exits, "two_live_owners": tally.two_live_owners,
        "phantom_crashes": tally.phantom_crashes, "details": tally.details,
        "residual_windows": {
            "fenced_write_check_to_answer": window,
            "fence_margin_s": round(Settings(**{k: v for k, v in timing.items()}).heartbeat_interval_s / 6, 2),
            "takeover_after_kill9_s": {"max": max(tally.takeover_s), "min": min(tally.takeover_s)}
            if tally.takeover_s else None},
        "rework_s_by_killed_stage": tally.rework, "naive_rework_s_by_killed_stage": tally.naive_rework,
        "rework_s_total": round(rework, 2), "naive_rework_s_total": round(naive, 2),
        "rework_vs_naive": round(rework / naive, 3) if naive else None,
        "cases_s": tally.cases, "wall_s": round(time.monotonic() - started, 1),
    }))


if __name__ == "__main__":
    main()
