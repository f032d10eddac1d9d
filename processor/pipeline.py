"""One job, start to finish: validate -> prepare -> train -> generate+select -> deliver -> notify.

The five checkpointed stages are declared below, once each (:class:`~processor.job.stage.Stage`);
:func:`~processor.job.stage.drive` runs any of them the same way: skip it when its done record
exists, else show its state, run it, checkpoint it, time it and mark it done. How a stage
calls into ``handlers/`` lives in :mod:`processor.stages`. Every heavy call runs off the event
loop (``asyncio.to_thread``), so the visibility and ownership heartbeats keep beating while a
GPU step runs. A worker that dies loses at most the stage in progress (and, inside training and
generation, at most one checkpoint interval or one image).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from processor import stages
from processor.aws.storage import NotFound, ObjectStore
from processor.errors import LostOwnership, ManifestError
from processor.failpoints import Failpoints
from processor.job.attempt import Attempt, JobResult, JobRun
from processor.job.class_cache import ensure_class_images
from processor.job.publish import publish_results
from processor.job.stage import Stage, drive, enter
from processor.job.state import TERMINAL, JobState
from processor.job.store import JobStore
from processor.job.uploads import download_photos, read_manifest, remove_uploads
from processor.job.validation import ValidationSummary, summarize
from processor.manifest import MANIFEST_NAME, Manifest, parse_manifest
from processor.notify import Notifier, ready_links, selection_note
from processor.settings import Settings
from processor.stages import Interrupted, SelectionResult, StageError

log = structlog.get_logger(__name__)

ENCODED_DIR = "delivery-encoded"  # local: delivery JPEGs made while generation runs


@dataclass(frozen=True)
class Env:
    """What every stage of every attempt shares: settings, the S3 edge, face models, failpoints."""

    settings: Settings
    store: ObjectStore
    faces: stages.FaceModels
    failpoints: Failpoints

    def hit(self, point: str) -> None:
        self.failpoints.hit(point)


@dataclass(frozen=True)
class Prepared:
    dataset: Any | None  # handlers.prepare.PreparedDataset; None: trained already, not needed
    identifier: str


@dataclass(frozen=True)
class Trained:
    weights_dir: Path
    record: dict[str, Any]


@dataclass(frozen=True)
class GenerateInputs:
    summary: ValidationSummary
    weights_dir: Path
    identifier: str


# --- validate: the quality gate -------------------------------------------------------------
async def _validate(env: Env, job: Attempt, _: None) -> ValidationSummary:
    photos = await _download_photos(env, job)
    env.hit("validate.running")
    report = await asyncio.to_thread(stages.run_validate, photos, env.settings, env.faces)
    summary = summarize(report, stages.validate_config(env.settings).min_usable)
    await job.ckpt.put_json("validate", "report.json", summary.to_dict())
    env.hit("validate.checkpointed")
    return summary


async def _restore_validate(env: Env, job: Attempt, done: dict[str, Any], _: None) -> ValidationSummary:
    return ValidationSummary.from_dict(done["summary"])


# --- prepare: crops, augmentation, captions -------------------------------------------------
async def _prepare(env: Env, job: Attempt, summary: ValidationSummary) -> Prepared:
    folder = job.dir("prepare")
    photos = await _download_photos(env, job, list(summary.accepted_files))
    identifier = await asyncio.to_thread(stages.choose_job_identifier, env.settings.base_model)
    dataset = await asyncio.to_thread(stages.run_prepare, photos, list(summary.boxes), folder,
                                      env.settings, identifier)
    await job.ckpt.upload_tree("prepare", folder, "dataset")
    return Prepared(dataset, identifier)


async def _restore_prepare(env: Env, job: Attempt, done: dict[str, Any], _: ValidationSummary) -> Prepared:
    identifier = str(done["identifier"])
    if env.settings.train_method == "lora" and await job.ckpt.is_done("train"):
        return Prepared(None, identifier)  # trained already: the images are not needed
    folder = job.dir("prepare")
    await job.ckpt.download_tree("prepare", folder, "dataset")
    return Prepared(stages.load_prepared(folder), identifier)


# --- train: class images, then DreamBooth ---------------------------------------------------
def _train_dir(env: Env, job: Attempt) -> Path:
    return job.dir("train-full" if env.settings.train_method == "full" else "train")


async def _train(env: Env, job: Attempt, prepared: Prepared) -> Trained:
    full = env.settings.train_method == "full"
    out_dir = _train_dir(env, job)
    class_dir = await ensure_class_images(env.store, env.settings, prepared.dataset.class_prompt,
                                          job.status.progress_fn("class_images"))
    if full:  # a full fine-tune's checkpoints are gigabytes: local disk only
        resume = stages.latest_local_train_checkpoint(out_dir)
    else:
        resume = await job.ckpt.latest_train_checkpoint(out_dir / "checkpoints")
    if resume is not None:
        job.log.info("train_resuming", checkpoint=resume.name)
    loop = asyncio.get_running_loop()

    def on_checkpoint(path: Path) -> None:
        if full:
            return
        # Wait for the upload: a checkpoint counts only once it is in S3.
        asyncio.run_coroutine_threadsafe(
            job.ckpt.upload_tree("train", path, f"checkpoints/{path.name}"), loop).result()
        env.hit("train.checkpointed")

    def should_stop() -> bool:
        env.hit("train.step")
        return job.run.should_stop()

    result = await asyncio.to_thread(
        stages.run_train, prepared.dataset, class_dir, out_dir, env.settings,
        job.status.progress_fn("train"), should_stop, on_checkpoint, resume)
    if not full:
        await job.ckpt.upload_tree("train", result.weights_dir, "weights")
    return Trained(result.weights_dir, {"steps": result.steps, "final_loss": result.final_loss,
                                        "method": result.method, "local_only": full})


async def _restore_train(env: Env, job: Attempt, done: dict[str, Any], _: Prepared) -> Trained | None:
    weights_dir = _train_dir(env, job) / "weights"
    if done.get("local_only"):
        # A full fine-tune's weights stay on the disk that trained them; elsewhere: train again.
        return Trained(weights_dir, done) if (weights_dir / "train_result.json").exists() else None
    await job.ckpt.download_tree("train", weights_dir, "weights")
    return Trained(weights_dir, done)


# --- generate + select ----------------------------------------------------------------------
async def _generate(env: Env, job: Attempt, inputs: GenerateInputs) -> SelectionResult:
    image_dir = job.dir("generated")
    finished = await _load_images(job, image_dir)
    if finished:
        job.log.info("generate_resuming", images=len(finished))
    photos = await _download_photos(env, job, list(inputs.summary.accepted_files))
    references = await asyncio.to_thread(stages.reference_embeddings, photos, env.faces)
    loop = asyncio.get_running_loop()
    encoded_dir = job.dir(ENCODED_DIR)

    def on_image(record: stages.ImageRecord) -> None:
        # On generation's writer thread, while the GPU samples the next batch: the checkpoint
        # upload first (durability), then the delivery JPEG, so deliver only renames files.
        asyncio.run_coroutine_threadsafe(
            job.ckpt.save_image(record.file, record.to_dict(), image_dir), loop).result()
        env.hit("generate.image")
        stages.encode_headshot(image_dir / record.file, encoded_dir)

    return await asyncio.to_thread(
        stages.run_generate, inputs.weights_dir, inputs.identifier, references, image_dir, env.settings,
        env.faces, job.status.progress_fn("generate"), job.run.should_stop, on_image, finished)


async def _load_images(job: Attempt, image_dir: Path) -> list[stages.ImageRecord]:
    records = await job.ckpt.load_images(image_dir, file_of=lambda data: str(data["file"]))
    return sorted((stages.ImageRecord.from_dict(r) for r in records), key=lambda r: r.prompt_index)


async def _restore_generate(env: Env, job: Attempt, done: dict[str, Any], _: GenerateInputs) -> SelectionResult:
    image_dir = job.dir("generated")
    await _load_images(job, image_dir)
    return SelectionResult.from_dict(done["selection"], image_dir)


# --- deliver: results/<job>/ ----------------------------------------------------------------
async def _deliver(env: Env, job: Attempt, selection: SelectionResult) -> dict[str, Any]:
    deliverables = await asyncio.to_thread(stages.run_deliver, selection, job.dir("results"),
                                           job.dir(ENCODED_DIR))
    return await publish_results(env.store, env.settings.output_bucket, job.job_id, deliverables,
                                 job.fence, env.hit)


async def _restore_deliver(env: Env, job: Attempt, done: dict[str, Any], _: SelectionResult) -> dict[str, Any]:
    return done


VALIDATE = Stage("validate", JobState.VALIDATING, _validate, lambda s: {"summary": s.to_dict()},
                 _restore_validate, status_fields=lambda s: {"validation": s.public_dict()})
PREPARE = Stage("prepare", JobState.TRAINING, _prepare,
                lambda p: {"identifier": p.identifier, "images": len(p.dataset.images)}, _restore_prepare)
TRAIN = Stage("train", JobState.TRAINING, _train, lambda t: t.record, _restore_train)
GENERATE = Stage("generate", JobState.GENERATING, _generate, lambda s: {"selection": s.to_dict()},
                 _restore_generate)
DELIVER = Stage("deliver", JobState.DELIVERING, _deliver, lambda meta: meta, _restore_deliver)


async def _download_photos(env: Env, job: Attempt, names: list[str] | None = None) -> list[Path]:
    """The job's photos (all listed ones, or ``names``); the first fetch waits for late uploads."""
    listed = list(job.manifest.photos) if job.manifest and job.manifest.photos else None
    return await download_photos(env.store, env.settings.input_bucket, job.job_id, job.dir("photos"),
                                 listed, names, grace_s=env.settings.missing_photo_grace_s,
                                 should_stop=job.run.should_stop)


class Pipeline:
    """Runs attempts at jobs for one worker process (face models are loaded once and reused).

    Implements the worker's ``JobRunner``: ``run`` one attempt, or ``fail`` a job for good.
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
        return Attempt.begin(run, self.settings.work_dir, self.store, self.jobs, log)

    async def _drive(self, stage: Stage[Env, Any, Any], job: Attempt, inputs: Any) -> Any:
        return await drive(stage, self.env, job, inputs, self.env.hit)

    # --- the worker's entry points ------------------------------------------------------
    async def run(self, run: JobRun) -> JobResult:
        job = self._begin(run)
        job.clear_local(keep=("train-full",))
        try:
            return await self._run(job)
        except Interrupted as exc:
            job.log.info("job_interrupted", reason=str(exc))
            return JobResult.INTERRUPTED
        except LostOwnership:
            return JobResult.LOST
        except StageError as exc:
            job.log.warning("job_stage_error", code=exc.code, reason=exc.message)
            await self._end(job, JobState.FAILED, error=exc.message)
            return JobResult.TERMINAL
        finally:
            if not run.should_stop():
                shutil.rmtree(job.root, ignore_errors=True)

    async def fail(self, run: JobRun, reason: str) -> None:
        """The worker's last word on a job that kept crashing: failed, and one email."""
        job = self._begin(run)
        try:
            job.manifest = await self._load_manifest(job)
        except (ManifestError, NotFound):
            job.manifest = None
        await self._end(job, JobState.FAILED, error=reason)

    async def _run(self, job: Attempt) -> JobResult:
        try:
            job.manifest = await self._load_manifest(job)
        except NotFound:
            await self._end(job, JobState.FAILED, error="manifest.json is missing from the upload")
            return JobResult.TERMINAL
        except ManifestError as exc:
            job.manifest = None
            await self._end(job, JobState.FAILED, error=f"manifest.json is invalid: {exc.reason}",
                            email_to=exc.email)
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
        selection = await self._drive(GENERATE, job, GenerateInputs(summary, trained.weights_dir,
                                                                    prepared.identifier))
        job.check_stop()
        delivered = await self._drive(DELIVER, job, selection)
        job.check_stop()
        await self._notify_ready(job, delivered)
        await self._end(job, JobState.DELIVERED, result=delivered)
        return JobResult.TERMINAL

    async def _load_manifest(self, job: Attempt) -> Manifest:
        """The job's manifest: from its checkpoint (uploads may be gone), else from the upload."""
        saved = await job.ckpt.get_bytes("manifest", MANIFEST_NAME)
        if saved is not None:
            return parse_manifest(saved)
        body = await read_manifest(self.store, self.settings.input_bucket, job.job_id)  # bounded read
        manifest = parse_manifest(body)
        await job.ckpt.put_bytes("manifest", MANIFEST_NAME, body)
        return manifest

    async def _notify_ready(self, job: Attempt, delivered: dict[str, Any]) -> None:
        await enter(job, "notify", JobState.DELIVERING, self.env.hit)
        assert job.manifest is not None
        links = await ready_links(self.store, self.settings, delivered)
        await self.notifier.ready(job.job_id, job.manifest, links, job.fence,
                                  note=selection_note(delivered["summary"], self.settings),
                                  hit=self.env.hit)
        await job.status.leave("notify", None)

    async def _end(self, job: Attempt, state: JobState, *, error: str | None = None,
                   validation: ValidationSummary | None = None, result: dict[str, Any] | None = None,
                   email_to: str | None = None) -> None:
        """Terminal state: one email (send-once), status, then the person's data is removed."""
        assert state in TERMINAL
        if state is JobState.REJECTED and job.manifest is not None and validation is not None:
            await self.notifier.rejected(job.job_id, job.manifest, validation, job.fence, hit=self.env.hit)
        elif state is JobState.FAILED:
            current = await self.jobs.get(job.job_id)
            attempts = current[0].attempts if current else job.run.attempt
            to = job.manifest.email if job.manifest is not None else email_to
            if to:
                await self.notifier.failed(job.job_id, str(to), job.manifest.name if job.manifest else None,
                                           error or "unknown error", attempts, job.fence, hit=self.env.hit)
        now = time.time()
        public_validation = validation.public_dict() if validation is not None else None
        await job.status.update(lambda s: s.end(state, now, error=error, validation=public_validation,
                                                result=result))
        job.log.info("job_ended", state=state.value, error=error)
        await self._cleanup(job)

    async def _cleanup(self, job: Attempt) -> None:
        """Privacy: uploads and work files go once the job has ended (a lifecycle rule is the backstop)."""
        removed = await remove_uploads(self.store, self.settings.input_bucket, job.job_id)
        work = await job.ckpt.delete_all()
        job.log.info("job_data_removed", uploads=removed, work_objects=work)
