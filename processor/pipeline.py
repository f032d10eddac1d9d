"""One job, start to finish: validate -> prepare -> train -> generate+select -> deliver -> notify.

The pipeline decides when each stage runs and what it may skip; :mod:`processor.stages` says
how a stage is called. Every heavy stage runs off the event loop (``asyncio.to_thread``), so
the visibility and ownership heartbeats keep beating while a GPU step runs. Each stage's
outputs are checkpointed under ``jobs/<job>/work/`` as they appear (:mod:`processor.checkpoints`),
and a stage with a done record is skipped on the next attempt: a worker that dies loses at
most the stage in progress (and, inside training and generation, at most one checkpoint
interval or one image). Every status change goes through the job store's compare-and-swap
and first checks that this worker still owns the job.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from handlers.deliver import build_deliverables, encode_headshot
from handlers.errors import Interrupted, StageError
from handlers.progress import Progress
from processor import stages
from processor.attempt import Attempt
from processor.checkpoints import selection_from_dict, selection_to_dict
from processor.class_cache import ensure_class_images
from processor.failpoints import Failpoints
from processor.job_store import JobStore, LostOwnership
from processor.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    parse_manifest,
    uploads_prefix,
)
from processor.notify import Notifier, ready_links, selection_note
from processor.publish import publish_results
from processor.settings import Settings
from processor.state import TERMINAL, JobState
from processor.storage import NotFound, ObjectStore
from processor.uploads import download_photos
from processor.validation import ValidationSummary, summarize
from processor.worker import JobResult, JobRun

log = structlog.get_logger(__name__)

ENCODED_DIR = "delivery-encoded"  # local: delivery JPEGs made while generation runs


class Pipeline:
    """Runs attempts at jobs for one worker process (face models are loaded once and reused).

    Implements the worker's ``JobRunner``: ``run`` one attempt, or ``fail`` a job for good.
    """

    def __init__(self, settings: Settings, store: ObjectStore, jobs: JobStore,
                 notifier: Notifier | None = None, failpoints: Failpoints | None = None) -> None:
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self.notifier = notifier or Notifier(settings, store, jobs)
        self.failpoints = failpoints or Failpoints(settings.failpoints)
        self.faces = stages.FaceModels(settings)
        stages.quiet_library_progress()

    # --- the worker's entry points ------------------------------------------------------
    async def run(self, run: JobRun) -> JobResult:
        job = Attempt.begin(run, self.settings.work_dir, self.jobs, log)
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
        job = Attempt.begin(run, self.settings.work_dir, self.jobs, log)
        try:
            job.manifest = await self._load_manifest(job)
        except (ManifestError, NotFound):
            job.manifest = None
        await self._end(job, JobState.FAILED, error=reason)

    # --- the stages -----------------------------------------------------------------
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

        summary = await self._validate(job)
        if not summary.accepted:
            await self._end(job, JobState.REJECTED, error=summary.problem, validation=summary)
            return JobResult.TERMINAL
        job.check_stop()
        dataset, identifier = await self._prepare(job, summary)
        job.check_stop()
        class_dir = await self._class_images(job, dataset.class_prompt) if dataset is not None else None
        job.check_stop()
        weights_dir = await self._train(job, dataset, class_dir)
        job.check_stop()
        selection = await self._generate(job, summary, weights_dir, identifier)
        job.check_stop()
        delivered = await self._deliver(job, selection)
        job.check_stop()
        await self._notify_ready(job, delivered)
        await self._end(job, JobState.DELIVERED, result=delivered)
        return JobResult.TERMINAL

    async def _load_manifest(self, job: Attempt) -> Manifest:
        """The job's manifest: from its checkpoint (uploads may be gone), else from the upload."""
        saved = await job.ckpt.get_bytes("manifest", MANIFEST_NAME)
        if saved is not None:
            return parse_manifest(saved)
        obj = await self.store.get_bytes(self.settings.input_bucket,
                                         uploads_prefix(job.job_id) + MANIFEST_NAME)
        manifest = parse_manifest(obj.body)
        await job.ckpt.put_bytes("manifest", MANIFEST_NAME, obj.body)
        return manifest

    async def _download_photos(self, job: Attempt, names: list[str] | None = None) -> list[Path]:
        listed = list(job.manifest.photos) if job.manifest and job.manifest.photos else None
        return await download_photos(self.store, self.settings.input_bucket, job.job_id,
                                     job.dir("photos"), listed, names)

    async def _validate(self, job: Attempt) -> ValidationSummary:
        done = await job.ckpt.done("validate")
        if done is not None:
            job.log.info("stage_skipped", stage="validate")
            return ValidationSummary.from_dict(done["summary"])
        await self._enter(job, "validate", JobState.VALIDATING)
        photos = await self._download_photos(job)
        self.failpoints.hit("validate.running")
        report = await asyncio.to_thread(stages.run_validate, photos, self.settings, self.faces)
        summary = summarize(report, stages.validate_config(self.settings).min_usable)
        await job.ckpt.put_json("validate", "report.json", summary.to_dict())
        self.failpoints.hit("validate.checkpointed")
        await job.ckpt.mark_done("validate", {"summary": summary.to_dict()})
        await self._leave(job, "validate", validation=summary)
        return summary

    async def _prepare(self, job: Attempt, summary: ValidationSummary) -> tuple[Any | None, str]:
        """The training set and identifier; the set is None when training finished already."""
        from handlers.prepare import PreparedDataset

        folder = job.dir("prepare")
        done = await job.ckpt.done("prepare")
        if done is not None:
            job.log.info("stage_skipped", stage="prepare")
            lora = self.settings.train_method == "lora"
            if lora and await job.ckpt.done("train") is not None:
                return None, str(done["identifier"])  # trained already: the images are not needed
            await job.ckpt.download_tree("prepare", folder, "dataset")
            return PreparedDataset.load(folder), str(done["identifier"])
        await self._enter(job, "prepare", JobState.TRAINING)
        photos = await self._download_photos(job, list(summary.accepted_files))
        identifier = await asyncio.to_thread(stages.choose_job_identifier, self.settings.base_model)
        dataset = await asyncio.to_thread(stages.run_prepare, photos, list(summary.boxes), folder,
                                          self.settings, identifier)
        await job.ckpt.upload_tree("prepare", folder, "dataset")
        await job.ckpt.mark_done("prepare", {"identifier": identifier, "images": len(dataset.images)})
        await self._leave(job, "prepare")
        return dataset, identifier

    async def _class_images(self, job: Attempt, class_prompt: str) -> Path | None:
        return await ensure_class_images(self.store, self.settings, class_prompt,
                                         self._progress_fn(job, "class_images"))

    async def _train(self, job: Attempt, dataset: Any | None, class_dir: Path | None) -> Path:
        full = self.settings.train_method == "full"
        out_dir = job.dir("train-full" if full else "train")
        weights_dir = out_dir / "weights"
        done = await job.ckpt.done("train")
        # A full fine-tune's weights stay on the disk that trained them; elsewhere: train again.
        if done is not None and (not full or (weights_dir / "train_result.json").exists()):
            job.log.info("stage_skipped", stage="train")
            if not full:
                await job.ckpt.download_tree("train", weights_dir, "weights")
            return weights_dir
        await self._enter(job, "train", JobState.TRAINING)
        resume = None
        if full:  # a full fine-tune's checkpoints are gigabytes: local disk only
            from handlers.train_checkpoint import latest_checkpoint

            resume = latest_checkpoint(out_dir)
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
            self.failpoints.hit("train.checkpointed")

        def should_stop() -> bool:
            self.failpoints.hit("train.step")
            return job.run.should_stop()

        result = await asyncio.to_thread(
            stages.run_train, dataset, class_dir, out_dir, self.settings,
            self._progress_fn(job, "train"), should_stop, on_checkpoint, resume)
        if not full:
            await job.ckpt.upload_tree("train", result.weights_dir, "weights")
        await job.ckpt.mark_done("train", {"steps": result.steps, "final_loss": result.final_loss,
                                           "method": result.method, "local_only": full})
        await self._leave(job, "train")
        return result.weights_dir

    async def _generate(self, job: Attempt, summary: ValidationSummary, weights_dir: Path,
                        identifier: str) -> Any:
        image_dir = job.dir("generated")
        done = await job.ckpt.done("generate")
        if done is not None:
            job.log.info("stage_skipped", stage="generate")
            await job.ckpt.load_images(image_dir)
            return selection_from_dict(done["selection"], image_dir)
        await self._enter(job, "generate", JobState.GENERATING)
        finished = await job.ckpt.load_images(image_dir)
        if finished:
            job.log.info("generate_resuming", images=len(finished))
        references = await self._references(job, summary)
        loop = asyncio.get_running_loop()

        encoded_dir = job.dir(ENCODED_DIR)

        def on_image(record: Any) -> None:
            # On generation's writer thread, while the GPU samples the next batch: the checkpoint
            # upload first (durability), then the delivery JPEG, so deliver only renames files.
            asyncio.run_coroutine_threadsafe(job.ckpt.save_image(record, image_dir), loop).result()
            self.failpoints.hit("generate.image")
            encode_headshot(image_dir / record.file, encoded_dir)

        selection = await asyncio.to_thread(
            stages.run_generate, weights_dir, identifier, references, image_dir, self.settings,
            self.faces, self._progress_fn(job, "generate"), job.run.should_stop, on_image, finished)
        await job.ckpt.mark_done("generate", {"selection": selection_to_dict(selection)})
        await self._leave(job, "generate")
        return selection

    async def _references(self, job: Attempt, summary: ValidationSummary) -> Any:
        """Embeddings of the training photos (recomputed: embeddings are never stored)."""
        photos = await self._download_photos(job, list(summary.accepted_files))
        return await asyncio.to_thread(stages.reference_embeddings, photos, self.faces)

    async def _deliver(self, job: Attempt, selection: Any) -> dict[str, Any]:
        """Results under ``results/<job>/`` (:mod:`processor.publish`)."""
        done = await job.ckpt.done("deliver")
        if done is not None:
            job.log.info("stage_skipped", stage="deliver")
            return done
        await self._enter(job, "deliver", JobState.DELIVERING)
        deliverables = await asyncio.to_thread(build_deliverables, selection, job.dir("results"),
                                               job.dir(ENCODED_DIR))
        meta = await publish_results(self.store, self.settings.output_bucket, job.job_id, deliverables,
                                     self.failpoints.hit)
        await job.ckpt.mark_done("deliver", meta)
        await self._leave(job, "deliver")
        return meta

    async def _notify_ready(self, job: Attempt, delivered: dict[str, Any]) -> None:
        await self._enter(job, "notify", JobState.DELIVERING)
        assert job.manifest is not None
        links = await ready_links(self.store, self.settings, delivered)
        await self.notifier.ready(job.job_id, job.manifest, links,
                                  note=selection_note(delivered["summary"], self.settings),
                                  hit=self.failpoints.hit)
        await self._leave(job, "notify")

    # --- status.json ----------------------------------------------------------------
    async def _enter(self, job: Attempt, stage: str, state: JobState) -> None:
        job.check_stop()
        self.failpoints.hit(f"{stage}.start")
        await job.status.enter(stage, state)

    async def _leave(self, job: Attempt, stage: str, validation: ValidationSummary | None = None) -> None:
        await job.status.leave(stage, {"validation": validation.public_dict()} if validation else None)

    def _progress_fn(self, job: Attempt, stage: str) -> Callable[[Progress], None]:
        return job.status.progress_fn(stage)

    async def _end(self, job: Attempt, state: JobState, *, error: str | None = None,
                   validation: ValidationSummary | None = None, result: dict[str, Any] | None = None,
                   email_to: str | None = None) -> None:
        """Terminal state: one email (send-once), status, then the person's data is removed."""
        assert state in TERMINAL
        if state is JobState.REJECTED and job.manifest is not None and validation is not None:
            await self.notifier.rejected(job.job_id, job.manifest, validation, hit=self.failpoints.hit)
        elif state is JobState.FAILED:
            current = await self.jobs.get(job.job_id)
            attempts = current[0].attempts if current else job.run.attempt
            to = job.manifest.email if job.manifest is not None else email_to
            if to:
                await self.notifier.failed(job.job_id, str(to), job.manifest.name if job.manifest else None,
                                           error or "unknown error", attempts, hit=self.failpoints.hit)
        now = time.time()
        public_validation = validation.public_dict() if validation is not None else None
        await job.status.update(lambda s: s.end(state, now, error=error, validation=public_validation,
                                                result=result))
        job.log.info("job_ended", state=state.value, error=error)
        await self._cleanup(job)

    async def _cleanup(self, job: Attempt) -> None:
        """Privacy: uploads and work files go once the job has ended (a lifecycle rule is the backstop)."""
        removed = await self.store.delete_prefix(self.settings.input_bucket, uploads_prefix(job.job_id))
        work = await job.ckpt.delete_all()
        job.log.info("job_data_removed", uploads=removed, work_objects=work)

