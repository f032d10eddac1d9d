"""The rude scenarios: AWS's real failure modes, played with real worker processes.

Beside the polite faults of :mod:`tests.integration.scenarios` (every kill at a safe point, every
error a clean answer), these are what production does: SQS throttling, 5xx and outages on every
call the worker makes; connections reset *after* S3, SES or an SMTP relay took the request; a
relay that says 250 and then fails the QUIT; kill -9 and SIGSTOP in the middle of a multi-file
checkpoint upload and between a fence check and its write; kill -9 between a hand-back's send
and its delete, and between the lease release and the hand-back; kill -9 in the middle of the
dead-letter sweeper's work; two workers whose clocks are a minute apart; a claim whose answer
comes back after the lease's validity. ``bench/faults.py`` counts them (``--quick``: one case of
each kind, in CI); the fault suite does not repeat them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from processor.devkit.fault_proxy import Fault, Request
from processor.devkit.smtp_fault_proxy import Mode, SmtpFaultProxy
from tests.integration.harness import (
    dlq_count,
    s3_event_body,
    send_raw,
    submit,
    wait_for,
    wait_for_stage,
    wait_for_state,
)
from tests.integration.scenarios import JOB_TIMEOUT, Outcome, Scenarios


def _creating_status(req: Request) -> bool:
    """The first claim of a job: the PUT that creates its status.json (If-None-Match: *)."""
    return req.path.endswith("/status.json") and any(k.lower() == "if-none-match" for k in req.headers)


def _checkpoint_file(name: str) -> Any:
    return lambda req: "/work/train/" in req.path and req.path.endswith(name)


@dataclass
class RudeScenarios(Scenarios):
    """:class:`Scenarios` plus AWS's real failure modes."""

    def _spot_interrupt(self, worker: Any, grace_s: float) -> int:
        """SIGTERM a worker frozen by a pause failpoint (delivered the moment it runs again)."""
        worker.wait_paused(JOB_TIMEOUT)
        worker.terminate()
        worker.resume()
        return worker.wait(grace_s + 10)

    # --- SQS, S3 and SES, all rude at once ---------------------------------------------------
    def aws_rude(self, job_id: str) -> Outcome:
        """SQS throttles and fails receives, deletes and visibility changes, goes down for 8 s,
        and fails the job's final delete (and its hand-back) every try; S3 resets a tenth of PUTs
        after storing them (status.json's compare-and-swap among them) and some GETs before; SES
        resets the email's connection after taking it; a SIGTERM hands the job back while the send
        of its copy lands twice and the old message's delete fails every try."""
        settings = self.job_settings(num_images=2, train_steps=12, email_backend="ses")
        submit(settings, self.photos, f"{job_id}@example.com", job_id)
        faults = (Fault("sqs", "throttle", operation="ReceiveMessage", rate=0.2),
                  Fault("sqs", "throttle", operation="ChangeMessageVisibility", rate=0.2),
                  Fault("sqs", "server_error", operation="DeleteMessage", rate=0.2),
                  Fault("sqs", "reset_after", operation="SendMessage", first=1),
                  Fault("s3", "reset_after", operation="PutObject", rate=0.1),
                  Fault("s3", "reset_before", operation="GetObject", rate=0.05),
                  Fault("ses", "reset_after", first=1))
        with self.fleet(settings, faults, seed=11) as fleet:
            assert fleet.proxy is not None
            spot = fleet.start("spot", HEADSHOTS_FAILPOINTS="train.step=pause@3")
            spot.wait_paused(JOB_TIMEOUT)
            fleet.proxy.add(Fault("sqs", "server_error", operation="DeleteMessage", first=6))  # every try
            spot_exit = self._spot_interrupt(spot, settings.shutdown_grace_s)
            fleet.proxy.outage("sqs", 8.0)
            fleet.start("rest")
            wait_for_stage(self.stack, settings, job_id, "generate", JOB_TIMEOUT, fleet=fleet)
            # the job's own end: its delete fails every try, and so does handing it back
            fleet.proxy.add(Fault("sqs", "server_error", operation="DeleteMessage", first=6))
            fleet.proxy.add(Fault("sqs", "throttle", operation="ChangeMessageVisibility", first=12))
            wait_for_state(self.stack, settings, job_id, ["delivered"], JOB_TIMEOUT, fleet=fleet)
            self.drained(settings, fleet)
            injected = dict(fleet.proxy.counts.injected)
            return self.outcome(settings, fleet, [job_id], ses=True, injected=injected, spot_exit=spot_exit)

    def smtp_rude(self, job_id: str, mode: Mode = "quit_fails") -> Outcome:
        """The relay takes the message, then fails the QUIT (or resets before its 250)."""
        base = self.stack.settings
        with SmtpFaultProxy(base.smtp_host, base.smtp_port, mode, first=1) as relay:
            settings = self.job_settings(num_images=2, smtp_host=relay.host, smtp_port=relay.port)
            submit(settings, self.photos, f"{job_id}@example.com", job_id)
            with self.fleet(settings) as fleet:
                fleet.start("w")
                wait_for_state(self.stack, settings, job_id, ["delivered"], JOB_TIMEOUT, fleet=fleet)
                self.drained(settings, fleet)
                return self.outcome(settings, fleet, [job_id], relay_faults=relay.faults)

    # --- kill -9 and SIGSTOP where writes are half done ---------------------------------------
    def kill9_mid_checkpoint(self, job_id: str) -> Outcome:
        """A training checkpoint's optimizer file is stuck on the way while its other files land;
        the worker is killed; a worker restarted on the same disk must not resume from the
        half-written folder (the old layout crashed on it on every attempt, then failed the job)."""
        settings = self.job_settings(train_steps=8, num_images=2)
        stuck = Fault("s3", "stall", operation="PutObject", first=1, seconds=60,
                      match=_checkpoint_file("optimizer.pt"))
        with self.fleet(settings, (stuck,)) as fleet:
            first = fleet.start("node")
            submit(settings, self.photos, f"{job_id}@example.com", job_id)
            wait_for(lambda: stuck.fired >= 1 or not first.alive, JOB_TIMEOUT, what="a checkpoint upload",
                     on_timeout=first.logs)
            time.sleep(1.0)  # its sibling files land meanwhile
            first.kill9()
            fleet.start("node")
            wait_for_state(self.stack, settings, job_id, ["delivered", "failed"], JOB_TIMEOUT, fleet=fleet)
            self.drained(settings, fleet)
            return self.outcome(settings, fleet, [job_id])

    def paused_between_check_and_write(self, job_id: str, kill: bool = False) -> Outcome:
        """The owner freezes (SIGSTOP) after its fence check passed and before the write went
        out, for longer than a takeover; a rival delivers; then the owner wakes and carries on
        with the write. With ``kill``: it is killed there instead, and restarted."""
        settings = self.job_settings(num_images=4, generation_batch_size=1)
        with self.fleet(settings) as fleet:
            old = fleet.start("old", HEADSHOTS_FAILPOINTS="checkpoint.generate.fenced=pause@2")
            submit(settings, self.photos, f"{job_id}@example.com", job_id)
            old.wait_paused(JOB_TIMEOUT)
            if kill:
                old.kill9()
                fleet.start("old")
                wait_for_state(self.stack, settings, job_id, ["delivered"], JOB_TIMEOUT, fleet=fleet)
            else:
                fleet.start("new")
                wait_for_state(self.stack, settings, job_id, ["delivered"], JOB_TIMEOUT, fleet=fleet)
                old.resume()
                wait_for(lambda: any(e.get("event") in ("job_lost_to_other_worker", "ownership_lost")
                                     for e in old.events()), 60, what="the old owner to notice",
                         on_timeout=old.logs)
                time.sleep(2 * settings.heartbeat_interval_s)  # time to do anything it still would
            self.drained(settings, fleet)
            return self.outcome(settings, fleet, [job_id], old_alive=old.alive)

    # --- hand-backs and the sweeper, killed half-way -------------------------------------------
    def handback_kills(self, job_id: str) -> Outcome:
        """Two spot interruptions, each killed half-way through its hand-back: between the copy's
        send and the old message's delete, then between the lease release and the copy. The old
        message outlives its delete and must be deleted once seen, never carry a crash."""
        settings = self.job_settings(train_steps=24, num_images=2)
        submit(settings, self.photos, f"{job_id}@example.com", job_id)
        with self.fleet(settings) as fleet:
            exits = [self._spot_interrupt(
                fleet.start("spot1", HEADSHOTS_FAILPOINTS="train.step=pause@2,requeue.sent=kill"),
                settings.shutdown_grace_s)]
            exits.append(self._spot_interrupt(
                fleet.start("spot2", HEADSHOTS_FAILPOINTS="train.step=pause@2,lease.released=kill"),
                settings.shutdown_grace_s))
            fleet.start("last")
            wait_for_state(self.stack, settings, job_id, ["delivered", "failed"], JOB_TIMEOUT, fleet=fleet)
            self.drained(settings, fleet)
            return self.outcome(settings, fleet, [job_id], exits=exits)

    def stray_dlq_copy(self, job_id: str) -> Outcome:
        """A spot interruption is killed between the lease release and the hand-back; in that gap
        a stray copy of the job's message is in the DLQ (a failed requeue send left it there). An
        idle worker's sweeper must hand it back, not fail the job (it claimed any free lease and
        sent "we could not finish"); the sweeper is itself killed between the hand-back and the
        DLQ delete, and the next worker finishes the job."""
        settings = self.job_settings(train_steps=24, num_images=2)
        body = s3_event_body(settings.input_bucket, f"uploads/{job_id}/manifest.json")
        submit(settings, self.photos, f"{job_id}@example.com", job_id)
        with self.fleet(settings) as fleet:
            spot = fleet.start("spot", HEADSHOTS_FAILPOINTS="train.step=pause@6,lease.released=kill")
            wait_for_stage(self.stack, settings, job_id, "validate", JOB_TIMEOUT, fleet=fleet)
            sweeper = fleet.start("sweeper", HEADSHOTS_FAILPOINTS="dlq.handed_back=kill@1")  # idle: the job is held
            wait_for(lambda: any(e.get("event") == "worker_started" for e in sweeper.events()), JOB_TIMEOUT,
                     what="the sweeping worker", on_timeout=sweeper.logs)
            exits = [self._spot_interrupt(spot, settings.shutdown_grace_s)]
            self.stack.client("sqs", settings).send_message(QueueUrl=settings.dlq_url, MessageBody=body)
            wait_for(lambda: not sweeper.alive, JOB_TIMEOUT, what="the sweeper's hand-back",
                     on_timeout=sweeper.logs)
            fleet.start("last")
            wait_for_state(self.stack, settings, job_id, ["delivered", "failed"], JOB_TIMEOUT, fleet=fleet)
            wait_for(lambda: dlq_count(self.stack, settings) == 0, 120, what="the DLQ swept",
                     on_timeout=lambda: "\n".join(w.logs()[-3000:] for w in fleet.workers))
            self.drained(settings, fleet)
            return self.outcome(settings, fleet, [job_id], exits=exits)

    # --- clocks and slow answers -----------------------------------------------------------------
    def clock_skew(self, job_id: str) -> Outcome:
        """The owner's clock runs 30 s behind, a rival's 30 s ahead; the rival receives three
        duplicates of the job's event while it runs. Staleness read from the owner's wall-clock
        heartbeat made the rival take a live job over."""
        settings = self.job_settings(num_images=3)
        body = s3_event_body(settings.input_bucket, f"uploads/{job_id}/manifest.json")
        with self.fleet(settings) as fleet:
            fleet.start("behind", clock_offset_s=-30.0)
            submit(settings, self.photos, f"{job_id}@example.com", job_id)
            wait_for_stage(self.stack, settings, job_id, "validate", JOB_TIMEOUT, fleet=fleet)
            fleet.start("ahead", clock_offset_s=30.0)
            time.sleep(5.0)  # the rival is up and polling
            for _ in range(3):
                send_raw(self.stack, settings, body)
                time.sleep(2.0)
            wait_for_state(self.stack, settings, job_id, ["delivered"], JOB_TIMEOUT, fleet=fleet)
            self.drained(settings, fleet)
            return self.outcome(settings, fleet, [job_id])

    def slow_claim(self, job_id: str) -> Outcome:
        """The claim lands at once but its answer comes back two stalenesses later; meanwhile a
        rival receives a duplicate and (rightly) takes the silent lease over. The slow claimer must
        not then run the job too, as it did when its lease counted from the answer."""
        settings = self.job_settings(num_images=2)
        stale = settings.stale_after_s
        slow = Fault("s3", "delay", operation="PutObject", first=1, seconds=2 * stale + 2, match=_creating_status)
        body = s3_event_body(settings.input_bucket, f"uploads/{job_id}/manifest.json")
        with self.fleet(settings, (slow,)) as fleet:
            fleet.start("slow")
            submit(settings, self.photos, f"{job_id}@example.com", job_id)
            wait_for(lambda: slow.fired >= 1, JOB_TIMEOUT, what="the claim")
            fleet.start("rival")
            time.sleep(max(0.0, slow.fired_at[0] + stale + 2 - time.monotonic()))
            send_raw(self.stack, settings, body)
            wait_for_state(self.stack, settings, job_id, ["delivered"], JOB_TIMEOUT, fleet=fleet)
            self.drained(settings, fleet)
            return self.outcome(settings, fleet, [job_id])
