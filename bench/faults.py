"""The fault matrix, counted: no job lost, no email twice or never, no work twice, no data left.

Plays the fault suite's scenarios (``tests/integration/scenarios.py``) with worker child
processes on the embedded local stack and the tiny model: kill -9 in each stage (then a worker
restarted on the same disk), several SIGTERMs in a row, an owner paused past its lease's
staleness, one S3 event five times, two workers on several jobs, 30% S3 SlowDown + SES
throttling, an SES answer lost after the send, kill -9 between the email marker and the send,
a job whose message reaches the dead-letter queue, poison messages, and a visibility timeout
shorter than the job. Rework per kill is the stage time repeated after the kill (kill time
minus the start of the killed stage); the naive baseline measured in the same run is what a
worker without stage checkpoints would repeat (kill time minus the start of the job).

``--timing production`` (the default) runs the production defaults' visibility : heartbeat :
staleness : receive-count ratios scaled to a tenth; ``fast`` the old fast test timing.
Prints ONE JSON line. ``--quick`` runs one case of each kind of trouble: a kill -9, a
SIGTERM, duplicate events, poison messages (CI runs it; the fault suite covers the rest).
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
from tests.integration.scenarios import Outcome, Scenarios, extra_stage_runs  # noqa: E402

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
    rework: dict[str, float] = field(default_factory=dict)
    naive_rework: dict[str, float] = field(default_factory=dict)
    cases: dict[str, Any] = field(default_factory=dict)

    def count(self, outcome: Outcome, expected: dict[str, str], reruns: dict[str, int] | None = None,
              unknown_allowed: bool = False) -> None:
        """One scenario's jobs: terminal state, emails, work done twice, what was left behind."""
        for job_id, state in expected.items():
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
            extra = extra_stage_runs(outcome, job_id, reruns)
            if extra:
                self.duplicate_runs += sum(extra.values())
                self.duplicate_run_details.append(f"{job_id}: {sum(extra.values())} extra runs of "
                                                  f"{', '.join(sorted(extra))}")
        dead = [e.get("job_id") for e in outcome.events if e.get("event") == "job_dead_lettered"]
        self.dlq_without_email += sum(1 for j in dead if outcome.emails.get(j, 0) == 0)
        self.dlq_without_email += outcome.dlq  # still in the DLQ at the end: nobody told
        self.orphaned_local_dirs += len(outcome.leftover_dirs)
        self.unexpected_queue_messages += sum(outcome.queue)


def run_cases(scenarios: Scenarios, tally: Tally, quick: bool) -> None:
    def case(name: str, fn: Callable[[], None]) -> None:
        started = time.monotonic()
        fn()
        tally.cases[name] = round(time.monotonic() - started, 1)
        print(f"bench/faults: {name} done in {tally.cases[name]}s", file=sys.stderr)

    def kill(stage: str) -> None:
        outcome = scenarios.kill9(stage, f"kill-{stage}")
        tally.rework[stage] = outcome.extra["rework_s"]
        tally.naive_rework[stage] = outcome.extra["naive_rework_s"]
        tally.count(outcome, {f"kill-{stage}": "delivered"}, reruns={stage: 1})

    def sigterms(n: int) -> None:
        outcome = scenarios.sigterms("spot", times=n)
        tally.cases[f"sigterm_x{n}_exits"] = outcome.extra["exits"]
        tally.count(outcome, {"spot": "delivered"}, reruns={"train": n})

    def faults() -> None:
        outcome = scenarios.injected_faults("faulty")
        tally.cases["faults_injected"] = sum(outcome.extra["injected"].values())
        tally.cases["retries_logged"] = outcome.event_count("aws_retry")
        tally.count(outcome, {"faulty": "delivered"}, reruns={s: 9 for s in STAGES + ("prepare",)})

    # --quick: one case of each kind of trouble (a kill, an interruption, duplicates, poison).
    for stage in (("train",) if quick else STAGES):
        case(f"kill9_{stage}", lambda s=stage: kill(s))
    n_terms = 1 if quick else 4
    case(f"sigterm_x{n_terms}", lambda: sigterms(n_terms))
    case("duplicates_x5", lambda: tally.count(scenarios.duplicates("dup5"), {"dup5": "delivered"}))
    case("poison", lambda: tally.count(scenarios.poison("after-poison", "no-manifest"),
                                       {"after-poison": "delivered", "no-manifest": "failed"}))
    if not quick:
        jobs = [f"pair-{i}" for i in range(6)]
        case("two_workers_x6", lambda: tally.count(scenarios.two_workers(jobs), {j: "delivered" for j in jobs}))
        case("s3_ses_faults_30pct", faults)
        case("ses_answer_lost", lambda: tally.count(scenarios.ses_answer_lost("ses-lost"),
                                                    {"ses-lost": "delivered"}, unknown_allowed=True))
        case("paused_past_staleness", lambda: tally.count(scenarios.paused_past_staleness("paused"),
                                                          {"paused": "delivered"}, reruns={"generate": 1}))
        # The kill lands inside notify, so notify starts again once, as in kill9_notify.
        case("kill9_marker_send", lambda: tally.count(scenarios.kill_between_marker_and_send("marker"),
                                                      {"marker": "delivered"}, reruns={"notify": 1},
                                                      unknown_allowed=True))
        case("dead_lettered", lambda: tally.count(scenarios.dead_lettered("dlq-job"), {"dlq-job": "failed"},
                                                  reruns={"validate": 3, "prepare": 3, "train": 3}))
        case("visibility_2s", lambda: tally.count(scenarios.long_job_short_visibility("long-job"),
                                                  {"long-job": "delivered"}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one case of each kind")
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
            run_cases(Scenarios(stack, photos, settings, root / "fleets", timing), tally, args.quick)
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
        "rework_s_by_killed_stage": tally.rework, "naive_rework_s_by_killed_stage": tally.naive_rework,
        "rework_s_total": round(rework, 2), "naive_rework_s_total": round(naive, 2),
        "rework_vs_naive": round(rework / naive, 3) if naive else None,
        "cases_s": tally.cases, "wall_s": round(time.monotonic() - started, 1),
    }))


if __name__ == "__main__":
    main()
