"""One job, start to finish: validate -> prepare -> train -> generate+select -> deliver -> notify.

The five checkpointed stages are declared once each in :mod:`processor.job.steps`;
:func:`~processor.job.stage.drive` runs any of them the same way: skip it when its done record
exists, else show its state, run it, checkpoint it, time it and mark it done. This module runs
them in order, sends the job's one email and writes its terminal state. Every heavy call runs
off the event loop, so the visibility heartbeat and the lease keep beating while a GPU step
runs. A worker that dies loses at most the stage in progress (and, inside training and
generation, at most one checkpoint interval or one image).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from typing import Any

import structlog

from processor import clock, stages
from processor.aws.storage import NotFound, ObjectStore
from processor.dispatch import overdue_reason
from processor.errors import LostOwnership, ManifestError
from processor.failpoints import Failpoints
from processor.job.attempt import Attempt, JobResult, JobRun
from processor.job.photo_names import photo_names, photo_names_key
from processor.job.stage import Stage, drive, enter
from processor.job.state import TERMINAL, EmailState, JobState, email_missing
from processor.job.steps import (
    CHOOSE,
    DELIVER,
    DETAIL,
    GENERATE,
    PREPARE,
    TRAIN,
    VALIDATE,
    ChooseInputs,
    Chosen,
    DetailInputs,
    Env,
    GenerateInputs,
    Prepared,
    Trained,
)
from processor.job.store import JobStore
from processor.job.uploads import read_manifest, remove_uploads
from processor.job.validation import ValidationSummary
from processor.manifest import (
    MANIFEST_NAME,
    Manifest,
    job_prefix,
    parse_manifest,
)
from processor.notify import (
    EmailOutcome,
    MarkerState,
    Notifier,
    address_proven,
    earlier_outcome,
    ready_links,
    selection_note,
)
from processor.send_rule import SendFailed
from processor.settings import Settings
from processor.stages import Interrupted, StageError

log = structlog.get_logger(__name__)

NO_LIKENESS = ("none of the {generated} headshots we generated looked enough like you to send, even after "
               "an extra round")


def job_settings(settings: Settings, manifest: Manifest | None) -> Settings:
    """The settings one job runs with: the worker's, with what its manifest chose (``formats``)."""
    if manifest is None or manifest.formats is None:
        return settings
    return settings.model_copy(update={"formats": tuple(manifest.formats)})


class Pipeline:
    """Runs attempts at jobs for one worker process (face models are loaded once and reused).

    Implements the worker's ``JobRunner``: ``run`` one attempt, ``fail`` a job for good, and
    ``cleanup`` after a job that ended.
    """

    def __init__(self, settings: Settings, store: ObjectStore, jobs: JobStore,
                 notifier: Notifier | None = None, failpoints: Failpoints | None = None) -> None:
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self.notifier = notifier or Notifier(settings, store)
        self.env = Env(settings, store, stages.FaceModels(settings), failpoints or Failpoints(settings.failpoints))
        stages.quiet_library_progress()

    def _begin(self, run: JobRun) -> Attempt:
        return Attempt.begin(run, self.settings.work_dir, self.store, self.jobs, log, self.env.hit)

    async def _drive(self, stage: Stage[Env, Any, Any], job: Attempt, inputs: Any) -> Any:
        return await drive(stage, self._job_env(job), job, inputs, self.env.hit)

    def _job_env(self, job: Attempt) -> Env:
        """The worker's env with what this job's manifest asks for (its delivery formats)."""
        settings = job_settings(self.env.settings, job.manifest)
        return self.env if settings is self.env.settings else replace(self.env, settings=settings)

    # --- the worker's entry points ------------------------------------------------------
    async def run(self, run: JobRun) -> JobResult:
        """One attempt. Its local folder goes however it ends: the checkpoints are in S3."""
        job = self._begin(run)
        job.clear_local()
        try:
            return await self._run(job)
        except Interrupted as exc:
            if run.overdue:
                await self._end(job, JobState.FAILED, error=overdue_reason(self.settings))
                return JobResult.TERMINAL
            job.log.info("job_interrupted", reason=str(exc))
            return JobResult.INTERRUPTED
        except LostOwnership:
            return JobResult.LOST
        except StageError as exc:
            job.log.warning("job_stage_error", code=exc.code, reason=exc.message)
            await self._end(job, JobState.FAILED, error=exc.message, kind=exc.code)
            return JobResult.TERMINAL
        finally:
            self.env.pipes.clear()  # the job's model leaves memory with its attempt
            shutil.rmtree(job.root, ignore_errors=True)

    async def fail(self, run: JobRun, reason: str) -> None:
        """The last word on a job that kept crashing: failed, and one email if it can go out.

        A job whose ready email went out before its last attempt died has been delivered: it
        ends so. Otherwise it ends failed; a manifest that is missing or invalid leaves no
        address (``email: none``), an email that certainly cannot go out is retried for
        ``email_retry_window_s`` and then recorded ``failed`` (``email_missing``). Anything
        else (S3 trouble reading the manifest) raises: the message comes back to try again,
        rather than end the job with a silence it does not owe the person.
        """
        job = self._begin(run)
        try:
            self.env.hit("fail.start")
            if await self._ended_delivered(job):
                return
            email_to = None
            try:
                job.manifest = await self._load_manifest(job)
            except (NotFound, ManifestError) as exc:
                job.log.warning("fail_without_manifest", error=type(exc).__name__)
                job.manifest = None
                email_to = exc.email if isinstance(exc, ManifestError) else None
            await self._end(job, JobState.FAILED, error=reason, email_to=email_to, best_effort_email=True)
        finally:
            shutil.rmtree(job.root, ignore_errors=True)

    async def _ended_delivered(self, job: Attempt) -> bool:
        """If the results were published and the ready email went (or may have), end the job
        delivered: a kill between the email and the terminal write must not turn a delivered
        job into a failed one."""
        done = await job.ckpt.done("deliver")
        marker = self.notifier.marker(job.job_id)
        found = await marker.read() if done is not None else None
        if done is None or found is None or found[0].kind != "ready" or found[0].state is MarkerState.FAILED:
            return False
        email = await earlier_outcome(marker, "ready", job.fence)  # sent; or unknown, alarmed
        job.log.warning("job_delivered_before_its_last_attempt_died", email=email.value)
        await self._end(job, JobState.DELIVERED, result=done.meta, email=email)
        return True

    async def cleanup(self, job_id: str) -> None:
        """Remove what a finished job may still have in S3 (late uploads, a duplicate's leftovers)."""
        try:
            removed = await remove_uploads(self.store, self.settings.input_bucket, job_id)
            work = await self.store.delete_prefix(self.settings.output_bucket, job_prefix(job_id) + "work/")
            if removed or work:
                log.info("job_data_removed", job_id=job_id, uploads=removed, work_objects=work, late=True)
        except Exception as exc:
            log.warning("job_data_removal_failed", job_id=job_id, error=type(exc).__name__)

    async def _run(self, job: Attempt) -> JobResult:
        try:
            job.manifest = await self._load_manifest(job)
        except NotFound:
            await self._end(job, JobState.FAILED, error="manifest.json is missing from the upload")
            return JobResult.TERMINAL
        except ManifestError as exc:
            job.manifest = None
            await self._end(job, JobState.FAILED, error=f"manifest.json is invalid: {exc.reason}",
                            email_to=exc.email, kind="bad_manifest",
                            details={"problems": list(exc.problems), "proof": exc.proof})
            return JobResult.TERMINAL

        summary: ValidationSummary = await self._drive(VALIDATE, job, None)
        if not summary.accepted:
            await self._end(job, JobState.REJECTED, error=summary.problem, validation=summary)
            return JobResult.TERMINAL
        job.check_stop()
        prepared: Prepared = await self._drive(PREPARE, job, summary)
        job.check_stop()
        trained: Trained = await self._drive(TRAIN, job, prepared)
        job.check_stop()
        chosen: Chosen = await self._drive(CHOOSE, job, ChooseInputs(summary, trained, prepared.identifier))
        job.check_stop()
        selection = await self._drive(GENERATE, job, GenerateInputs(summary, chosen.weights_dir, prepared.identifier,
                                                                    chosen.scale, chosen.record))
        job.check_stop()
        if not selection.records:  # even after the extra round (processor/job/steps.py)
            await self._end(job, JobState.FAILED, error=NO_LIKENESS.format(generated=len(selection.attempts)),
                            kind="no_likeness", details={"generated": len(selection.attempts),
                                                         "photos_used": len(summary.accepted_files)})
            return JobResult.TERMINAL
        selection = await self._drive(DETAIL, job, DetailInputs(summary, selection, chosen.weights_dir, chosen.scale))
        job.check_stop()
        delivered = await self._drive(DELIVER, job, selection)
        job.check_stop()
        email = await self._notify_ready(job, delivered)
        await self._end(job, JobState.DELIVERED, result=delivered, email=email)
        return JobResult.TERMINAL

    async def _load_manifest(self, job: Attempt) -> Manifest:
        """The job's manifest: from its checkpoint (uploads may be gone), else from the upload."""
        saved = await job.ckpt.latest("manifest", "upload")
        if saved is not None:
            return parse_manifest(await job.ckpt.read(saved, MANIFEST_NAME))
        body = await read_manifest(self.store, self.settings.input_bucket, job.job_id)  # bounded read
        manifest = parse_manifest(body)
        await job.ckpt.save("manifest", "upload", {MANIFEST_NAME: body})
        return manifest

    async def _withheld(self, job: Attempt, to: str, proof: str | None) -> bool:
        """True when the job's address is not proven: then it gets no email at all."""
        if await address_proven(self.settings, job.job_id, to, proof):
            return False
        job.log.warning("email_withheld", reason="the address is not proven")
        return True

    async def _notify_ready(self, job: Attempt, delivered: dict[str, Any]) -> EmailOutcome:
        await enter(job, "notify", JobState.DELIVERING, self.env.hit)
        assert job.manifest is not None
        if await self._withheld(job, str(job.manifest.email), job.manifest.proof):
            await job.status.leave("notify", None)
            return EmailState.WITHHELD
        links = await ready_links(self.store, self.settings, delivered)
        outcome = await self.notifier.ready(job.job_id, job.manifest, links, job.fence,
                                            note=selection_note(delivered["summary"], self.settings),
                                            hit=self.env.hit)
        await job.status.leave("notify", None)
        return outcome

    async def _end(self, job: Attempt, state: JobState, *, error: str | None = None,
                   validation: ValidationSummary | None = None, result: dict[str, Any] | None = None,
                   email_to: str | None = None, kind: str | None = None, details: dict[str, Any] | None = None,
                   email: EmailState | None = None, best_effort_email: bool = False) -> None:
        """Terminal state: one email (send-once, fenced), a rejected job's photo names beside its
        results (``results/<job>/photos.json``, which expires with them: status.json keeps none),
        the status, then the person's data goes.

        ``best_effort_email``: the job ends whatever happens to its email (the failure path): an
        email that certainly cannot go out is retried for ``email_retry_window_s``, then the
        status records ``failed`` and ``email_missing`` raises the alarm."""
        assert state in TERMINAL
        patience = self.settings.email_retry_window_s if best_effort_email else 0.0
        try:
            if email is None:
                email = await self._terminal_email(job, state, error, validation, email_to, kind, details or {},
                                                   patience)
        except SendFailed as exc:
            if not best_effort_email:
                raise
            job.log.error("terminal_email_failed", error=exc.detail)
            email = EmailState.FAILED
        now = clock.now()
        public_validation = validation.public_dict() if validation is not None else None
        if state is JobState.REJECTED and public_validation is not None:  # the names go with the results
            await self.store.put_bytes(self.settings.output_bucket, photo_names_key(job.job_id),
                                       photo_names(public_validation).to_json(), content_type="application/json",
                                       guard=job.fence)
        await job.status.update(lambda s: s.end(state, now, error=error, validation=public_validation,
                                                result=result, email=email))
        if email_missing(email):
            job.log.error("email_missing", state=state.value, kind=kind or state.value, error=error)
        job.log.info("job_ended", state=state.value, error=error, email=email.value)
        await self._cleanup(job)

    async def _terminal_email(self, job: Attempt, state: JobState, error: str | None,
                              validation: ValidationSummary | None, email_to: str | None,
                              kind: str | None, details: dict[str, Any], patience: float) -> EmailState:
        hit = self.env.hit
        if state is JobState.REJECTED and job.manifest is not None and validation is not None:
            if await self._withheld(job, str(job.manifest.email), job.manifest.proof):
                return EmailState.WITHHELD
            return await self.notifier.rejected(job.job_id, job.manifest, validation, job.fence, hit, patience)
        if state is not JobState.FAILED:
            return EmailState.NONE
        to = job.manifest.email if job.manifest is not None else email_to
        if not to:
            return EmailState.NONE
        if await self._withheld(job, str(to), job.manifest.proof if job.manifest else details.get("proof")):
            return EmailState.WITHHELD
        name = job.manifest.name if job.manifest else None
        if kind == "no_likeness":
            return await self.notifier.no_likeness(job.job_id, str(to), name, details["generated"],
                                                   details["photos_used"], job.fence, hit, patience)
        if kind == "bad_manifest":
            return await self.notifier.bad_manifest(job.job_id, str(to), details["problems"], job.fence,
                                                    hit, patience)
        current = await self.jobs.get(job.job_id)
        attempts = current[0].attempts if current else job.run.attempt
        return await self.notifier.failed(job.job_id, str(to), name, error or "unknown error", attempts,
                                          job.fence, hit, patience)

    async def _cleanup(self, job: Attempt) -> None:
        """Privacy: uploads and work files go once the job has ended (a lifecycle rule is the backstop)."""
        try:
            removed = await remove_uploads(self.store, self.settings.input_bucket, job.job_id)
            work = await self.store.delete_prefix(self.settings.output_bucket, job_prefix(job.job_id) + "work/")
        except Exception as exc:  # the job has ended: a duplicate message or the lifecycle rule retries
            job.log.warning("job_data_removal_failed", error=type(exc).__name__)
            return
        job.log.info("job_data_removed", uploads=removed, work_objects=work)
