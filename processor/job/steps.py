"""The checkpointed stages of a job, each declared once: validate, prepare, train, choose
(checkpoint and LoRA scale), generate + select, detail (the face detail pass), deliver.

Each declaration (:class:`~processor.job.stage.Stage`) names the stage, the job state it shows,
what it does with its inputs (one call into :mod:`processor.stages`, run off the event loop,
and the S3 transfers around it), its done record and how a later attempt restores it.
:func:`~processor.job.stage.drive` runs any of them the same way; :mod:`processor.pipeline`
runs them in order and ends the job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from processor import stages
from processor.aws.storage import ObjectStore
from processor.failpoints import Failpoints
from processor.job.attempt import Attempt
from processor.job.checkpoints import Checkpoint, files_under
from processor.job.class_cache import ensure_class_images
from processor.job.publish import publish_results
from processor.job.stage import Stage
from processor.job.state import JobState
from processor.job.uploads import download_photos
from processor.job.validation import ValidationSummary, summarize
from processor.settings import Settings
from processor.stages import SelectionResult

ENCODED_DIR = "delivery-encoded"  # local: delivery JPEGs made while generation runs


@dataclass(frozen=True)
class Env:
    """What every stage of every attempt shares: settings, the S3 edge, face models, failpoints."""

    settings: Settings
    store: ObjectStore
    faces: stages.FaceModels
    failpoints: Failpoints
    pipes: stages.TrainedPipelines = field(default_factory=stages.TrainedPipelines)

    def hit(self, point: str) -> None:
        self.failpoints.hit(point)


@dataclass(frozen=True)
class Prepared:
    dataset: Any | None  # handlers.prepare.PreparedDataset; None: trained already, not needed
    identifier: str
    folder: Path | None = None  # where the dataset's files are (the done checkpoint's files)


@dataclass(frozen=True)
class Trained:
    weights_dir: Path
    record: dict[str, Any]


@dataclass(frozen=True)
class ChooseInputs:
    summary: ValidationSummary
    trained: Trained
    identifier: str


@dataclass(frozen=True)
class Chosen:
    """The checkpoint and LoRA scale generation uses, and results.json's record of the choice."""

    weights_dir: Path
    scale: float
    record: dict[str, Any]


@dataclass(frozen=True)
class GenerateInputs:
    summary: ValidationSummary
    weights_dir: Path
    identifier: str
    lora_scale: float = 1.0
    choice: dict[str, Any] | None = None


# --- validate: the quality gate -------------------------------------------------------------
async def _validate(env: Env, job: Attempt, _: None) -> ValidationSummary:
    photos = await _download_photos(env, job)
    env.hit("validate.running")
    report = await asyncio.to_thread(stages.run_validate, photos, env.settings, env.faces)
    summary = summarize(report, stages.validate_config(env.settings).min_usable)
    env.hit("validate.checkpointed")
    return summary


async def _restore_validate(env: Env, job: Attempt, done: Checkpoint, _: None) -> ValidationSummary:
    return ValidationSummary.from_dict(done.meta["summary"])


# --- prepare: crops, augmentation, captions -------------------------------------------------
def photo_split(summary: ValidationSummary) -> Any:
    """Training photos and held-out ones (``handlers.holdout.HoldOut``): a pure function of the
    validation summary, so every attempt and every stage agrees on it."""
    return stages.held_out_photos(summary.accepted_files, {p.file: p.measures for p in summary.photos})


def _training_photos(summary: ValidationSummary) -> tuple[list[str], list[tuple[int, int, int, int]]]:
    """The accepted photos minus the held-out ones, with their face boxes."""
    training = set(photo_split(summary).training)
    pairs = [(f, b) for f, b in zip(summary.accepted_files, summary.boxes, strict=True) if f in training]
    return [f for f, _ in pairs], [b for _, b in pairs]


async def _prepare(env: Env, job: Attempt, summary: ValidationSummary) -> Prepared:
    folder = job.dir("prepare")
    files, boxes = _training_photos(summary)  # held-out photos never reach training
    photos = await _download_photos(env, job, files)
    identifier = await asyncio.to_thread(stages.choose_job_identifier, env.settings.base_model)
    dataset = await asyncio.to_thread(stages.run_prepare, photos, boxes, folder,
                                      env.settings, identifier, _subject(job))
    return Prepared(dataset, identifier, folder)


async def _restore_prepare(env: Env, job: Attempt, done: Checkpoint, _: ValidationSummary) -> Prepared:
    identifier = str(done.meta["identifier"])
    if env.settings.train_method == "lora" and await job.ckpt.done("train") is not None:
        return Prepared(None, identifier)  # trained already: the images are not needed
    folder = job.dir("prepare")
    await job.ckpt.download(done, folder, "dataset")
    return Prepared(stages.load_prepared(folder), identifier, folder)


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
        resume = await _latest_train_step(job, out_dir / "checkpoints")
    if resume is not None:
        job.log.info("train_resuming", checkpoint=resume.name)
    loop = asyncio.get_running_loop()

    def on_checkpoint(path: Path) -> None:
        if full:
            return
        # Wait for the upload: a checkpoint counts only once it is in S3 (marker last).
        step = int(path.name.removeprefix("step-"))
        candidate = (path / "weights").is_dir()  # a checkpoint choice's candidate (50%, 75%)
        asyncio.run_coroutine_threadsafe(
            job.ckpt.save("train", f"step-{step:06d}", files_under(path), {"step": step, "candidate": candidate}),
            loop).result()
        env.hit("train.checkpointed")

    def should_stop() -> bool:
        env.hit("train.step")
        return job.run.should_stop()

    result = await asyncio.to_thread(
        stages.run_train, prepared.dataset, class_dir, out_dir, env.settings,
        job.status.progress_fn("train"), should_stop, on_checkpoint, resume)
    return Trained(result.weights_dir, {"steps": result.steps, "final_loss": result.final_loss,
                                        "method": result.method, "local_only": full,
                                        "seconds": round(result.seconds, 3)})


async def _latest_train_step(job: Attempt, dest: Path) -> Path | None:
    """The newest complete ``step-<N>`` checkpoint in S3, downloaded into ``dest/step-<N>``.

    Newest by epoch, then step: a run restarted under a changed training config writes under a
    later epoch, so its checkpoints win over the old config's (which would be refused again)."""
    steps = await job.ckpt.find("train", "step-")
    if not steps:
        return None
    newest = max(steps.values(), key=lambda c: (c.epoch, int(c.meta.get("step", 0))))
    folder = dest / f"step-{int(newest.meta.get('step', 0))}"
    await job.ckpt.download(newest, folder)
    return folder


def _train_files(trained: Trained) -> dict[str, Path]:
    """A LoRA's weights ride in the done checkpoint; a full fine-tune's stay on local disk."""
    return {} if trained.record.get("local_only") else files_under(trained.weights_dir, "weights")


async def _restore_train(env: Env, job: Attempt, done: Checkpoint, _: Prepared) -> Trained | None:
    weights_dir = _train_dir(env, job) / "weights"
    if done.meta.get("local_only"):
        # A full fine-tune's weights stay on the disk that trained them; elsewhere: train again.
        return Trained(weights_dir, done.meta) if (weights_dir / "train_result.json").exists() else None
    await job.ckpt.download(done, weights_dir, "weights")
    return Trained(weights_dir, done.meta)


# --- choose: the checkpoint and LoRA scale closest to the held-out photos ----------------------
def _unjudged(trained: Trained, reason: str) -> Chosen:
    return Chosen(trained.weights_dir, 1.0, {"step": trained.record.get("steps"), "scale": 1.0, "judged": False,
                                             "skipped": reason, "candidates": []})


async def _choose(env: Env, job: Attempt, inputs: ChooseInputs) -> Chosen:
    trained = inputs.trained
    if trained.record.get("method") == "full":
        return _unjudged(trained, "a full fine-tune keeps only its last checkpoint (gigabytes each)")
    if env.settings.choice_prompts == 0:
        return _unjudged(trained, "HEADSHOTS_CHOICE_PROMPTS=0")
    total = int(trained.record["steps"])
    checkpoints = [(total, trained.weights_dir)]
    wanted = set(stages.candidate_steps(total))
    for ckpt in (await job.ckpt.find("train", "step-")).values():
        step = int(ckpt.meta.get("step", 0))
        if ckpt.meta.get("candidate") and step in wanted:
            folder = job.dir("candidates") / f"step-{step}"
            await job.ckpt.download(ckpt, folder, "weights")
            checkpoints.append((step, folder))
    split = photo_split(inputs.summary)
    kind = "held_out" if split.held_out else "training"
    photos = await _download_photos(env, job, list(split.held_out or split.training))
    references = await asyncio.to_thread(stages.reference_embeddings, photos, env.faces)
    choice = await asyncio.to_thread(stages.run_choose, checkpoints, references, kind, inputs.identifier,
                                     env.settings, env.faces, job.job_id, _subject(job))
    train_s = float(trained.record.get("seconds") or 0.0)
    record = {**choice.to_dict(), "train_seconds": train_s,
              "share_of_training": round(choice.seconds / train_s, 4) if train_s else None}
    job.log.info("checkpoint_chosen", step=choice.step, scale=choice.scale, judged=choice.judged,
                 images=choice.images, seconds=round(choice.seconds, 2))
    return Chosen(choice.weights_dir, choice.scale, record)


def _chosen_files(chosen: Chosen) -> dict[str, Path]:
    """The chosen LoRA rides in the done record (a full fine-tune's weights stay on local disk)."""
    return {} if chosen.record.get("skipped") else files_under(chosen.weights_dir, "weights")


async def _restore_choose(env: Env, job: Attempt, done: Checkpoint, inputs: ChooseInputs) -> Chosen:
    if done.meta.get("skipped"):
        return Chosen(inputs.trained.weights_dir, 1.0, done.meta)
    folder = job.dir("chosen")
    await job.ckpt.download(done, folder, "weights")
    return Chosen(folder, float(done.meta["scale"]), done.meta)


# --- generate + select ----------------------------------------------------------------------
async def _generate(env: Env, job: Attempt, inputs: GenerateInputs) -> SelectionResult:
    image_dir = job.dir("generated")
    finished = await _load_images(job, image_dir)
    if finished:
        job.log.info("generate_resuming", images=len(finished))
    # selection compares with the training photos; the held-out ones judge (choice, eval)
    photos = await _download_photos(env, job, _training_photos(inputs.summary)[0])
    references = await asyncio.to_thread(stages.reference_embeddings, photos, env.faces)
    loop = asyncio.get_running_loop()
    encoded_dir = job.dir(ENCODED_DIR)

    def on_image(record: stages.ImageRecord) -> None:
        # On generation's writer thread, while the GPU samples the next batch: the checkpoint
        # upload first (durability), then the delivery JPEG, so deliver only renames files.
        asyncio.run_coroutine_threadsafe(
            job.ckpt.save("generate", f"image-{record.file}", {record.file: image_dir / record.file},
                          record.to_dict()), loop).result()
        env.hit("generate.image")
        stages.encode_headshot(image_dir / record.file, encoded_dir)

    def generate(settings: Settings, done: list[stages.ImageRecord]) -> Awaitable[SelectionResult]:
        return asyncio.to_thread(
            stages.run_generate, job.job_id, inputs.weights_dir, inputs.identifier, references, image_dir, settings,
            env.faces, job.status.progress_fn("generate"), job.run.should_stop, on_image, done, _subject(job),
            inputs.lora_scale, env.pipes)

    judge = {"held_out": photo_split(inputs.summary).to_dict(), "checkpoint_choice": inputs.choice}
    selection = await generate(env.settings, finished)
    if selection.records or selection.mode != "enforce":
        return replace(selection, extra={**selection.extra, **judge})
    # Nothing passed the likeness check: one more round, with more tries per prompt, before
    # telling the person (the job then ends with the no_likeness email).
    job.log.warning("no_image_passed_selection", attempts=len(selection.attempts))
    second = await generate(stages.extra_round(env.settings), [])
    return replace(second, attempts=selection.attempts + second.attempts,
                   generated=selection.generated + second.generated,
                   seconds=selection.seconds + second.seconds,
                   extra={**second.extra, **judge, "extra_round": True})


async def _load_images(job: Attempt, image_dir: Path) -> list[stages.ImageRecord]:
    """The accepted headshots of earlier attempts (one complete checkpoint each), downloaded."""
    found = await job.ckpt.find("generate", "image-")
    for ckpt in found.values():
        await job.ckpt.download(ckpt, image_dir)
    return sorted((stages.ImageRecord.from_dict(c.meta) for c in found.values()), key=lambda r: r.prompt_index)


async def _restore_generate(env: Env, job: Attempt, done: Checkpoint, _: GenerateInputs) -> SelectionResult:
    image_dir = job.dir("generated")
    await _load_images(job, image_dir)
    return SelectionResult.from_dict(done.meta["selection"], image_dir)


# --- detail: the face detail pass, one checkpoint per image ------------------------------------
@dataclass(frozen=True)
class DetailInputs:
    summary: ValidationSummary
    selection: SelectionResult
    weights_dir: Path
    lora_scale: float


async def _detail(env: Env, job: Attempt, inputs: DetailInputs) -> SelectionResult:
    selection = inputs.selection
    if not env.settings.detail_pass:
        return replace(selection, extra={**selection.extra, "detail": {"enabled": False}})
    image_dir = selection.image_dir
    done = await _load_details(job, image_dir)
    if done:
        job.log.info("detail_resuming", images=len(done))
    photos = await _download_photos(env, job, _training_photos(inputs.summary)[0])
    references = await asyncio.to_thread(stages.reference_embeddings, photos, env.faces)
    loop = asyncio.get_running_loop()

    def on_outcome(outcome: dict[str, Any]) -> None:
        # the detailed file (when kept) and the outcome, before the next image starts
        files = {outcome["output"]: image_dir / outcome["output"]} if outcome["output"] != outcome["file"] else {}
        asyncio.run_coroutine_threadsafe(
            job.ckpt.save("detail", f"image-{outcome['file']}", files, outcome), loop).result()
        env.hit("detail.image")

    records, record = await asyncio.to_thread(
        stages.run_detail, selection.records, image_dir, inputs.weights_dir, inputs.lora_scale, references,
        env.settings, env.faces, env.pipes, done, on_outcome, job.run.should_stop, job.status.progress_fn("detail"))
    return replace(selection, records=tuple(records), extra={**selection.extra, "detail": record})


async def _load_details(job: Attempt, image_dir: Path) -> dict[str, dict[str, Any]]:
    """The detail pass's outcomes of earlier attempts, by generated file (detailed files downloaded)."""
    found = await job.ckpt.find("detail", "image-")
    for ckpt in found.values():
        await job.ckpt.download(ckpt, image_dir)
    return {str(c.meta["file"]): c.meta for c in found.values()}


async def _restore_detail(env: Env, job: Attempt, done: Checkpoint, inputs: DetailInputs) -> SelectionResult:
    await _load_details(job, inputs.selection.image_dir)
    return SelectionResult.from_dict(done.meta["selection"], inputs.selection.image_dir)


# --- deliver: results/<job>/ ----------------------------------------------------------------
async def _deliver(env: Env, job: Attempt, selection: SelectionResult) -> dict[str, Any]:
    # results.json records the run's settings too (model, method, steps): the metrics' breakdown
    selection = replace(selection, extra={**selection.extra, **stages.run_settings(env.settings)})
    deliverables = await asyncio.to_thread(stages.run_deliver, selection, job.dir("results"),
                                           job.dir(ENCODED_DIR))
    return await publish_results(env.store, env.settings.output_bucket, job.job_id, deliverables,
                                 job.fence, env.hit)


async def _restore_deliver(env: Env, job: Attempt, done: Checkpoint, _: SelectionResult) -> dict[str, Any]:
    return done.meta


VALIDATE = Stage("validate", JobState.VALIDATING, _validate, lambda s: {"summary": s.to_dict()},
                 _restore_validate, status_fields=lambda s: {"validation": s.public_dict()})
PREPARE = Stage("prepare", JobState.TRAINING, _prepare,
                lambda p: {"identifier": p.identifier, "images": len(p.dataset.images)}, _restore_prepare,
                files=lambda p: files_under(p.folder, "dataset") if p.folder else {})
TRAIN = Stage("train", JobState.TRAINING, _train, lambda t: t.record, _restore_train, files=_train_files)
CHOOSE = Stage("choose", JobState.TRAINING, _choose, lambda c: c.record, _restore_choose, files=_chosen_files)
GENERATE = Stage("generate", JobState.GENERATING, _generate, lambda s: {"selection": s.to_dict()},
                 _restore_generate)
DETAIL = Stage("detail", JobState.GENERATING, _detail, lambda s: {"selection": s.to_dict()}, _restore_detail)
DELIVER = Stage("deliver", JobState.DELIVERING, _deliver, lambda meta: meta, _restore_deliver)


def _subject(job: Attempt) -> str | None:
    """The person's class the manifest names ("man" / "woman"), or None: "person"."""
    return job.manifest.subject if job.manifest is not None else None


async def _download_photos(env: Env, job: Attempt, names: list[str] | None = None) -> list[Path]:
    """The job's photos (all listed ones, or ``names``); the first fetch waits for late uploads."""
    listed = list(job.manifest.photos) if job.manifest and job.manifest.photos else None
    return await download_photos(env.store, env.settings.input_bucket, job.job_id, job.dir("photos"),
                                 listed, names, grace_s=env.settings.missing_photo_grace_s,
                                 should_stop=job.run.should_stop)
