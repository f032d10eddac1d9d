"""The fault scenarios: what the fleet does to a job, played with real worker processes.

Shared by the fault suite (``tests/integration/test_faults.py``, which asserts the promise of
each) and ``bench/faults.py`` (which counts, over all of them, jobs lost, duplicate emails and
runs, dead-lettered jobs without an email, job folders left on a worker's disk, objects left in
S3, stale writes, two live owners and workers that died on their own). Each scenario returns an
:class:`Outcome`: what an operator can see afterwards. The rude ones (AWS's real failure modes)
are in ``tests/integration/rude_scenarios.py``.

Workers are ``python -m processor.cli worker`` child processes on the embedded stack, pointed at
it through their environment only, so ``kill -9``, SIGSTOP and SIGTERM are the real thing. Every
fleet runs behind an auditing fault proxy (:class:`~processor.devkit.fault_proxy.FaultProxy`):
each write of a job's keys is judged against the job's lease as S3 holds it. A worker that is
killed is restarted under the same name, i.e. on the same instance disk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processor.devkit.fault_proxy import Fault, FaultProxy
from processor.devkit.local_stack import LocalStack
from processor.settings import Settings
from tests.integration.harness import (
    Fleet,
    dlq_count,
    emails_for,
    job_status,
    keys,
    leftover_objects,
    owner_overlaps,
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
JOB_TIMEOUT = 300.0
#: Where each kill lands: a pause failpoint freezes the worker there (SIGSTOP), the scenario
#: then kills it from outside at exactly that point (a tiny job's stages last milliseconds).
KILL_POINTS = {
    "validate": "validate.running",         # photos downloaded, the gate running
    "train": "train.step@5",                # a checkpoint at step 4, step 5 done: one step lost
    "generate": "generate.image@2",         # two headshots checkpointed, two to go
    "deliver": "deliver.uploaded@2",        # headshots and contact sheet uploaded, zip not yet
    "notify": "notify.sent",                # email sent and recorded, status not yet delivered
}


@dataclass
class Outcome:
    """What an operator sees once a scenario is over."""

    settings: Settings
    jobs: dict[str, dict[str, Any]]        # job id -> its status.json (empty: none)
    emails: dict[str, int]                 # job id -> emails in the outbox (or SES) about it
    queue: tuple[int, int]                 # (visible, in flight) on the job queue
    dlq: int                               # messages left in the dead-letter queue
    leftover_dirs: list[Path]              # job folders still on a worker's disk
    events: list[dict[str, Any]]           # every worker's JSON log lines
    extra: dict[str, Any] = field(default_factory=dict)
    leftover_objects: dict[str, list[str]] = field(default_factory=dict)  # job -> keys left in S3
    stale_writes: list[str] = field(default_factory=list)     # writes that landed on a lost lease
    unfenced_writes: list[str] = field(default_factory=list)  # job writes carrying no epoch
    worker_exits: int = 0                  # workers that ended without being asked
    owner_overlaps: int = 0                # times two workers were live owners of one job

    def state(self, job_id: str) -> str | None:
        return self.jobs.get(job_id, {}).get("state")

    def event_count(self, name: str) -> int:
        return sum(1 for e in self.events if e.get("event") == name)


@dataclass
class Scenarios:
    """Plays scenarios on ``stack`` with ``photos``; ``settings(**overrides)`` provisions a job set."""

    stack: LocalStack
    photos: Path
    settings: Callable[..., Settings]
    root: Path
    timing: dict[str, Any]
    _fleets: int = 0

    @contextmanager
    def fleet(self, settings: Settings, faults: tuple[Fault, ...] = (), **proxy: Any) -> Iterator[Fleet]:
        """Workers behind an auditing fault proxy (``faults`` and ``proxy`` options: its plan)."""
        self._fleets += 1
        with FaultProxy(self.stack.endpoint_url, faults=faults, audit=True, **proxy) as fault_proxy:
            fleet = Fleet(self.stack, settings, self.root / f"fleet{self._fleets}", [], fault_proxy)
            try:
                yield fleet
            finally:
                fleet.stop_all()

    def job_settings(self, **overrides: Any) -> Settings:
        return self.settings(**{**self.timing, **overrides})

    def outcome(self, settings: Settings, fleet: Fleet, job_ids: list[str], ses: bool = False,
                **extra: Any) -> Outcome:
        exits = fleet.unasked_exits()
        fleet.stop_all()
        if ses:
            sent = self.stack.ses_sent_messages()
            emails = {j: sum(1 for m in sent if f"X-Headshots-Job: {j}" in m.raw) for j in job_ids}
        else:
            emails = {j: len(emails_for(self.stack.outbox, j)) for j in job_ids}
        jobs = {j: job_status(self.stack, settings, j) or {} for j in job_ids}
        ended = [j for j in job_ids if jobs[j].get("state") in ("delivered", "rejected", "failed")]
        audit = fleet.proxy.audit if fleet.proxy is not None else None
        events = fleet.all_events()
        return Outcome(settings, jobs, emails, queue_counts(self.stack, settings), dlq_count(self.stack, settings),
                       fleet.leftover_job_dirs(), events, extra,
                       leftover_objects={j: left for j in ended if (left := leftover_objects(self.stack, settings, j))},
                       stale_writes=[f"{w.key} (epoch {w.epoch}, lease {w.lease_epoch}, {w.state})"
                                     for w in (audit.stale if audit else [])],
                       unfenced_writes=[w.key for w in (audit.unfenced if audit else [])],
                       worker_exits=exits,
                       owner_overlaps=sum(owner_overlaps(events, j, fleet.pauses()) for j in job_ids))

    def drained(self, settings: Settings, fleet: Fleet) -> None:
        wait_for(lambda: queue_counts(self.stack, settings) == (0, 0), 60, what="an empty queue",
                 on_timeout=lambda: "\n".join(w.logs()[-2000:] for w in fleet.workers))
        # A copy dead-lettered by SQS's own faults (a delete that failed every try) is the
        # sweeper's to drop once its job has ended: give its next sweeps the time (a few of
        # dlq_sweep_interval_s) before the outcome counts what is left in the DLQ.
        deadline = time.monotonic() + min(30.0, 10 * max(settings.dlq_sweep_interval_s, 1.0))
        while dlq_count(self.stack, settings) and time.monotonic() < deadline:
            time.sleep(0.5)

    # --- kill -9 and SIGTERM --------------------------------------------------------------
    def kill9(self, stage: str, job_id: str) -> Outcome:
        """Freeze a worker inside ``stage``, kill -9 it, restart a worker on the same disk."""
        settings = self.job_settings(train_steps=8, num_images=4, generation_batch_size=1)
        with self.fleet(settings) as fleet:
            name, _, nth = KILL_POINTS[stage].partition("@")
            first = fleet.start("node", HEADSHOTS_FAILPOINTS=f"{name}=pause" + (f"@{nth}" if nth else ""))
            submit(settings, self.photos, f"{job_id}@example.com", job_id)
            first.wait_paused(JOB_TIMEOUT)
            status = job_status(self.stack, settings, job_id) or {}
            inside = status.get("stages", {}).get(stage, {}).get("finished_at", 0) is None
            first.kill9()
            killed_at = time.time()
            left_behind = [p.name for p in fleet.work_dir("node").iterdir()]
            fleet.start("node")  # the same instance, its disk as the dead worker left it
            wait_for_state(self.stack, settings, job_id, ["delivered"], JOB_TIMEOUT, fleet=fleet)
            self.drained(settings, fleet)
            return self.outcome(settings, fleet, [job_id], inside_stage=inside, left_behind=left_behind,
                                rework_s=round(killed_at - status["stages"][stage]["started_at"], 2),
                                naive_rework_s=round(killed_at - status["created_at"], 2),
                                exit_code=first.proc.returncode,
                                takeover_s=takeover_after(fleet.all_events(), job_id, killed_at))

    def sigterms(self, job_id: str, times: int) -> Outcome:
        """SIGTERM the worker running the job ``times`` times in a row (spot interruptions),
        each during training, then let a worker finish it."""
        settings = self.job_settings(train_steps=24)
        exits: list[tuple[int, float]] = []
        with self.fleet(settings) as fleet:
            submit(settings, self.photos, f"{job_id}@example.com", job_id)
            for i in range(times):
                worker = fleet.start(f"spot{i}", HEADSHOTS_FAILPOINTS=f"train.step=pause@{2 + 2 * i}")
                worker.wait_paused(JOB_TIMEOUT)
                started = time.monotonic()
                worker.terminate()  # pending while frozen; delivered the moment it runs again
                worker.resume()
                exits.append((worker.wait(settings.shutdown_grace_s), round(time.monotonic() - started, 2)))
            fleet.start("last")
            wait_for_state(self.stack, settings, job_id, ["delivered"], JOB_TIMEOUT, fleet=fleet)
            self.drained(settings, fleet)
            return self.outcome(settings, fleet, [job_id], exits=exits)

    def paused_past_staleness(self, job_id: str) -> Outcome:
        """The owner freezes in generate for longer than the lease's staleness; another worker
        takes over and delivers; then the old owner wakes up."""
        settings = self.job_settings(num_images=4, generation_batch_size=1)
        with self.fleet(settings) as fleet:
            old = fleet.start("old", HEADSHOTS_FAILPOINTS="generate.image=pause@2")
            submit(settings, self.photos, f"{job_id}@example.com", job_id)
            old.wait_paused(JOB_TIMEOUT)
            fleet.start("new")
            wait_for_state(self.stack, settings, job_id, ["delivered"], JOB_TIMEOUT, fleet=fleet)
            old.resume()
            wait_for(lambda: any(e.get("event") in ("job_lost_to_other_worker", "ownership_lost")
                                 for e in old.events()), 60, what="the old owner to notice",
                     on_timeout=old.logs)
            time.sleep(2 * settings.heartbeat_interval_s)  # time to do anything it still would
            self.drained(settings, fleet)
            results = keys(self.stack, settings.output_bucket, f"results/{job_id}/", settings)
            return self.outcome(settings, fleet, [job_id], old_alive=old.alive, results=len(results),
                                old_events=[e.get("event") for e in old.events()])

    # --- duplicates and concurrency -----------------------------------------------------------
    def duplicates(self, job_id: str) -> Outcome:
        """The same S3 event five times, three of them while the job runs, two workers."""
        settings = self.job_settings(num_images=3)
        body = s3_event_body(settings.input_bucket, f"uploads/{job_id}/manifest.json")
        with self.fleet(settings) as fleet:
            submit(settings, self.photos, f"{job_id}@example.com", job_id)
            send_raw(self.stack, settings, body)
            fleet.start("a")
            fleet.start("b")
            wait_for_stage(self.stack, settings, job_id, "validate", JOB_TIMEOUT, fleet=fleet)
            for _ in range(3):
                send_raw(self.stack, settings, body)
            wait_for_state(self.stack, settings, job_id, ["delivered"], JOB_TIMEOUT, fleet=fleet)
            self.drained(settings, fleet)
            return self.outcome(settings, fleet, [job_id])

    def two_workers(self, job_ids: list[str]) -> Outcome:
        settings = self.job_settings(num_images=2)
        with self.fleet(settings) as fleet:
            fleet.start("a")
            fleet.start("b")
            for i, job in enumerate(job_ids):
                submit(settings, self.photos, f"user{i}@example.com", job)
            for job in job_ids:
                wait_for_state(self.stack, settings, job, ["delivered"], JOB_TIMEOUT * 2, fleet=fleet)
            self.drained(settings, fleet)
            claims = {w.log_path.parent.name: sum(1 for e in w.events() if e.get("event") == "job_claimed")
                      for w in fleet.workers}
            return self.outcome(settings, fleet, job_ids, claims_by_worker=claims)

    def long_job_short_visibility(self, job_id: str) -> Outcome:
        """A job far longer than the visibility timeout, two workers polling.

        Visibility 4 s and heartbeat 1 s: 30 times production's 120 s and 30 s. At 2 s and 0.5 s
        the lease's staleness came within a pipeline load's GIL-bound second (the choice
        stage's adapters), a compression artefact no production timing has."""
        settings = self.job_settings(num_images=3, visibility_timeout_s=4, heartbeat_interval_s=1.0)
        with self.fleet(settings) as fleet:
            fleet.start("a")
            fleet.start("b")
            submit(settings, self.photos, f"{job_id}@example.com", job_id)
            started = time.monotonic()
            wait_for_state(self.stack, settings, job_id, ["delivered"], JOB_TIMEOUT, fleet=fleet)
            seconds = time.monotonic() - started
            self.drained(settings, fleet)
            return self.outcome(settings, fleet, [job_id], seconds=seconds)

    # --- AWS faults and email ---------------------------------------------------------------
    def injected_faults(self, job_id: str) -> Outcome:
        """30% of S3 calls answer 503 SlowDown and SES Throttling (its first call always)."""
        settings = self.job_settings(num_images=3, email_backend="ses")
        submit(settings, self.photos, f"{job_id}@example.com", job_id)
        with self.fleet(settings, rates={"s3": 0.3, "ses": 0.3}, seed=7, fail_first={"ses": 1}) as fleet:
            fleet.start("faulty")
            wait_for_state(self.stack, settings, job_id, ["delivered"], JOB_TIMEOUT, fleet=fleet)
            self.drained(settings, fleet)
            injected = dict(fleet.proxy.counts.injected) if fleet.proxy else {}
            return self.outcome(settings, fleet, [job_id], ses=True, injected=injected)

    def ses_answer_lost(self, job_id: str) -> Outcome:
        """SES takes the email but the connection drops before its answer (a timeout after the
        send): the worker must not send it again."""
        settings = self.job_settings(num_images=2, email_backend="ses")
        submit(settings, self.photos, f"{job_id}@example.com", job_id)
        with self.fleet(settings, drop_after_forward={"ses": 1}) as fleet:
            fleet.start("w")
            wait_for_state(self.stack, settings, job_id, ["delivered"], JOB_TIMEOUT, fleet=fleet)
            self.drained(settings, fleet)
            forwarded = dict(fleet.proxy.counts.forwarded) if fleet.proxy else {}
            return self.outcome(settings, fleet, [job_id], ses=True, forwarded=forwarded)

    def kill_between_marker_and_send(self, job_id: str) -> Outcome:
        settings = self.job_settings(num_images=2)
        with self.fleet(settings) as fleet:
            first = fleet.start("node", HEADSHOTS_FAILPOINTS="notify.marked=pause")
            submit(settings, self.photos, f"{job_id}@example.com", job_id)
            first.wait_paused(JOB_TIMEOUT)
            first.kill9()
            fleet.start("node")
            wait_for_state(self.stack, settings, job_id, ["delivered"], JOB_TIMEOUT, fleet=fleet)
            self.drained(settings, fleet)
            return self.outcome(settings, fleet, [job_id])

    # --- jobs that cannot finish --------------------------------------------------------------
    def dead_lettered(self, job_id: str) -> Outcome:
        """Every attempt is killed (kill -9 at training's start) until SQS moves the message to
        the DLQ; the sweeper of a worker then fails the job with one email."""
        settings = self.job_settings(num_images=2)
        with self.fleet(settings) as fleet:
            submit(settings, self.photos, f"{job_id}@example.com", job_id)
            deadline = time.monotonic() + JOB_TIMEOUT
            restarts = 0
            while (job_status(self.stack, settings, job_id) or {}).get("state") not in ("failed", "delivered"):
                if time.monotonic() > deadline:
                    raise TimeoutError("the job never ended")
                if not fleet.workers or not fleet.workers[-1].alive:
                    fleet.start("node", HEADSHOTS_FAILPOINTS="train.start=kill")
                    restarts += 1
                time.sleep(0.5)
            wait_for(lambda: dlq_count(self.stack, settings) == 0, 60, what="the DLQ swept")
            self.drained(settings, fleet)
            return self.outcome(settings, fleet, [job_id], restarts=restarts)

    def poison(self, good_job: str, missing_job: str) -> Outcome:
        """Not JSON, a path-escaping job id, an event for a job with no upload, then a good job."""
        settings = self.job_settings(num_images=2)
        not_json = "<html>not an event</html>"
        bad_id = s3_event_body(settings.input_bucket, "uploads/../../etc/manifest.json")
        with self.fleet(settings) as fleet:
            send_raw(self.stack, settings, not_json)
            send_raw(self.stack, settings, bad_id)
            send_raw(self.stack, settings, s3_event_body(settings.input_bucket, f"uploads/{missing_job}/manifest.json"))
            submit(settings, self.photos, f"{good_job}@example.com", good_job)
            worker = fleet.start("w")
            wait_for_state(self.stack, settings, good_job, ["delivered"], JOB_TIMEOUT, fleet=fleet)
            wait_for(lambda: fleet.all_events() and sum(
                1 for e in fleet.all_events() if e.get("event") == "dlq_poison_dropped") >= 2, 120,
                what="the poison swept from the DLQ", on_timeout=worker.logs)
            self.drained(settings, fleet)
            alive = worker.alive
            return self.outcome(settings, fleet, [good_job, missing_job], worker_alive=alive)


def takeover_after(events: list[dict[str, Any]], job_id: str, since: float) -> float | None:
    """Seconds from ``since`` (a wall time) to the first takeover of ``job_id`` logged after it."""
    from datetime import datetime

    for e in events:
        if e.get("event") == "job_taken_over" and e.get("job_id") == job_id:
            at = datetime.fromisoformat(str(e["timestamp"]).replace("Z", "+00:00")).timestamp()
            if at >= since:
                return round(at - since, 2)
    return None


def extra_stage_runs(outcome: Outcome, job_id: str, allowed: dict[str, int] | None = None) -> dict[str, int]:
    """Each stage's runs beyond one (plus its ``allowed`` reruns), for the stages that have any."""
    allowed = allowed or {}
    extra = {s: runs - 1 - allowed.get(s, 0) for s, runs in stage_runs(outcome.jobs[job_id]).items()}
    return {s: n for s, n in extra.items() if n > 0}


def stage_reruns(outcome: Outcome, job_id: str, allowed: dict[str, int] | None = None) -> int:
    """Stage runs beyond one per stage (plus ``allowed`` reruns): work done twice."""
    return sum(extra_stage_runs(outcome, job_id, allowed).values())
