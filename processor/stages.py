"""The one door from the runtime into ``handlers/``: ``Settings`` mapped to each handler's
config, the blocking work of each stage as one function over local folders, and the handler
types and errors the runtime names.

Why one module: the pipeline (``processor/pipeline.py``) decides *when* a stage runs, what it
skips and where its checkpoints go; this module decides *how* a stage is called, and it is
the only runtime module that imports ``handlers`` (pyproject's import contract checks it).
Every function here is synchronous and runs off the event loop (``asyncio.to_thread``), so
nothing here touches S3, SQS or email; callbacks carry progress and checkpoints back to the
runtime. Torch-heavy handler modules are imported inside the functions, so the worker and
the CLI start fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handlers.deliver import Deliverables, build_deliverables, encode_headshot
from handlers.errors import Interrupted, StageError
from handlers.generate.records import ImageRecord, SelectionResult
from handlers.images import MISSING as PHOTO_MISSING
from handlers.images import TOO_LARGE as PHOTO_TOO_LARGE
from handlers.images import ImageLimits
from handlers.progress import Progress, ProgressFn, StopFn
from handlers.validate.messages import ADVICE as GATE_ADVICE
from handlers.validate.messages import LABELS as REASON_LABELS
from processor.settings import Settings

if TYPE_CHECKING:  # heavy imports stay out of the worker's start-up
    from handlers.choose import Choice
    from handlers.class_prior import PipelineLoader
    from handlers.detail import DetailConfig
    from handlers.faces import FaceAnalyzer, FaceModelConfig
    from handlers.generate.config import GenerateConfig
    from handlers.generate.select import SelectConfig
    from handlers.holdout import HoldOut
    from handlers.prepare import PrepareConfig, PreparedDataset
    from handlers.train.config import TrainConfig
    from handlers.train.trained_model import TrainResult
    from handlers.validate.config import ValidateConfig
    from handlers.validate.gate import ValidationReport

__all__ = [
    "Deliverables", "GATE_ADVICE", "ImageRecord", "Interrupted", "PHOTO_MAX_BYTES", "PHOTO_MISSING",
    "PHOTO_TOO_LARGE", "PhotoFiles", "Progress", "ProgressFn", "REASON_LABELS", "SelectionResult",
    "StageError", "StopFn", "build_deliverables", "encode_headshot",
]

#: The contract's per-photo size cap (DESIGN.md: 25 MB), checked before any download too.
PHOTO_MAX_BYTES: int = ImageLimits().max_bytes


def quiet_library_progress() -> None:
    """diffusers/transformers draw tqdm bars on stderr per call; a worker reports progress itself."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


# --- Settings -> handler configs (pure) ----------------------------------------------
def face_model_config(settings: Settings) -> FaceModelConfig:
    from handlers.faces import FaceModelConfig

    return FaceModelConfig(detector=settings.face_detector, recognizer=settings.face_recognizer,
                           weights_home=settings.deepface_home)


def validate_config(settings: Settings) -> ValidateConfig:
    from handlers.validate.config import ValidateConfig

    return ValidateConfig(face=face_model_config(settings))


def prepare_config(settings: Settings, identifier: str, subject: str | None = None) -> PrepareConfig:
    """``subject``: the manifest's "man" / "woman", or None ("person")."""
    from handlers.prepare import PrepareConfig
    from handlers.subject import class_word

    return PrepareConfig(identifier=identifier, resolution=settings.resolution, seed=settings.seed,
                         class_noun=class_word(subject), mirror=settings.mirror_photos)


def train_config(settings: Settings) -> TrainConfig:
    from handlers.train.config import TrainConfig

    return TrainConfig(
        base_model=settings.base_model, method=settings.train_method, steps=settings.train_steps,
        instance_loss_weight=settings.instance_loss_weight,
        prior_loss_weight=settings.prior_loss_weight, num_class_images=settings.num_class_images,
        resolution=settings.resolution, mixed_precision=settings.mixed_precision,
        device=settings.device, seed=settings.seed, train_text_encoder=settings.train_text_encoder,
        checkpoint_every=checkpoint_every(settings), batch_size=settings.train_batch_size,
        class_batch_size=settings.train_class_batch_size,
        instance_samples_per_photo=settings.train_instance_samples_per_photo,
        min_instance_samples=settings.train_min_instance_samples,
        max_instance_samples=settings.train_max_instance_samples,
        noise_offset=settings.noise_offset, snr_gamma=settings.snr_gamma or None,
        text_encoder_lr=settings.text_encoder_lr,
    )


def checkpoint_every(settings: Settings) -> int:
    """Training checkpoints: about ten per run (a kill loses at most a tenth of training), but
    never every step: each LoRA checkpoint is an upload."""
    steps = settings.train_steps or 1000
    return max(2, steps // 10)


def generate_config(settings: Settings, job_id: str) -> GenerateConfig:
    """``job_id`` seeds the job's own noise (resumes and the extra round draw from it too)."""
    from handlers.generate.config import GenerateConfig

    return GenerateConfig(
        num_images=settings.num_images, steps=settings.inference_steps,
        guidance_scale=settings.guidance_scale, resolution=settings.resolution,
        batch_size=settings.generation_batch_size, seed=settings.seed,
        max_regenerations=settings.max_regenerations, sampler=settings.sampler,
        overlap_scoring=settings.overlap_scoring, compile_unet=settings.compile_unet,
        formats=tuple(settings.formats), job_id=job_id, pool_size=settings.pool_size,
    )


def select_config(settings: Settings) -> SelectConfig:
    from handlers.generate.select import SelectConfig

    return SelectConfig(mode=settings.selection_mode, threshold=settings.selection_threshold)


def extra_round(settings: Settings) -> Settings:
    """The settings of one more generation round when no image passed selection.

    Twice the regenerations per prompt (at least two more), from a different base seed so no
    image of the first round is drawn again.
    """
    return settings.model_copy(update={"max_regenerations": max(2 * settings.max_regenerations,
                                                                settings.max_regenerations + 2),
                                       "seed": (settings.seed + 1_000_003) % 2**32})


# --- the blocking work of each stage ---------------------------------------------------
@dataclass
class FaceModels:
    """One face analyzer per worker process: loading deepface costs seconds, so it is reused."""

    settings: Settings
    _analyzer: FaceAnalyzer | None = None

    def analyzer(self) -> FaceAnalyzer:
        if self._analyzer is None:
            from handlers.faces import FaceAnalyzer

            self._analyzer = FaceAnalyzer(face_model_config(self.settings))
        return self._analyzer


class PhotoFiles(list[Path]):
    """Local copies of a person's photos, plus what the gate must know about them.

    A plain list of paths to every stage; for validation it also carries ``names`` (the
    person's own name of each file: a local copy may have a safe, shorter name) and
    ``refused`` (by name, ``(reason code, detail)`` for photos never downloaded: never
    uploaded, or over the size cap). Built by :func:`processor.job.uploads.download_photos`."""

    def __init__(self, paths: Sequence[Path] = (), names: Sequence[str] | None = None,
                 refused: dict[str, tuple[str, str]] | None = None) -> None:
        super().__init__(paths)
        self.names = list(names) if names is not None else [p.name for p in paths]
        if len(self.names) != len(self):
            raise ValueError("one name per path")
        self.refused = dict(refused or {})


def run_validate(photos: Sequence[Path], settings: Settings, faces: FaceModels) -> ValidationReport:
    """The gate over ``photos``; a :class:`PhotoFiles` reports in the person's names."""
    from handlers.validate.gate import validate_photos

    names = photos.names if isinstance(photos, PhotoFiles) else None
    refused = photos.refused if isinstance(photos, PhotoFiles) else None
    return validate_photos(list(photos), validate_config(settings), analyzer=faces.analyzer(),
                           names=names, refused=refused)


def held_out_photos(files: Sequence[str], measures: dict[str, dict[str, Any]]) -> HoldOut:
    """Which accepted photos train and which are held out as the judge's references
    (``measures``: the gate's numbers per file, from the validation summary)."""
    from handlers.holdout import PhotoStats, choose_held_out

    return choose_held_out([PhotoStats(f, measures.get(f, {}).get("identity_distance"),
                                       measures.get(f, {}).get("pose_yaw")) for f in files])


def choose_job_identifier(base_model: str) -> str:
    """The rare token for this base model (a pure function of its two tokenizers)."""
    from transformers import CLIPTokenizer

    from handlers.train.identifier import choose_identifier

    tok = CLIPTokenizer.from_pretrained(base_model, subfolder="tokenizer")
    tok2 = CLIPTokenizer.from_pretrained(base_model, subfolder="tokenizer_2")
    return choose_identifier(tok, tok2)


def run_prepare(photos: Sequence[Path], boxes: Sequence[tuple[int, int, int, int]], out_dir: Path,
                settings: Settings, identifier: str, subject: str | None = None) -> PreparedDataset:
    from handlers.prepare import prepare_instance_images

    return prepare_instance_images(list(photos), list(boxes), out_dir,
                                   prepare_config(settings, identifier, subject))


def class_images_key(settings: Settings, class_prompt: str) -> str:
    from handlers.class_prior import class_cache_key

    return class_cache_key(settings.base_model, class_prompt, settings.resolution,
                           **class_sampler(settings))


def class_sampler(settings: Settings) -> dict[str, Any]:
    return {"inference_steps": settings.inference_steps, "guidance_scale": settings.guidance_scale,
            "seed": settings.seed}


def run_class_images(settings: Settings, class_prompt: str, progress: ProgressFn | None,
                     loader: PipelineLoader | None = None) -> Path | None:
    """The class-prior folder (generated only where the cache lacks images); None without prior."""
    if settings.prior_loss_weight <= 0:
        return None
    from handlers.class_prior import ensure_class_images

    return ensure_class_images(settings.class_cache_dir, settings.base_model, class_prompt,
                               settings.num_class_images, resolution=settings.resolution,
                               pipeline_loader=loader, batch_size=settings.generation_batch_size,
                               progress=progress, **class_sampler(settings))


def run_train(dataset: PreparedDataset, class_dir: Path | None, out_dir: Path, settings: Settings,
              progress: ProgressFn | None, should_stop: StopFn | None,
              on_checkpoint: Callable[[Path], None] | None, resume_from: Path | None) -> TrainResult:
    from handlers.train.dreambooth import train_dreambooth

    return train_dreambooth(dataset, class_dir, out_dir, train_config(settings), progress=progress,
                            should_stop=should_stop, on_checkpoint=on_checkpoint, resume_from=resume_from)


def reference_embeddings(photos: Sequence[Path], faces: FaceModels) -> Any:
    """Embeddings of the user's accepted photos: what every generated face is compared with."""
    import numpy as np

    from handlers.images import load_image

    analyzer = faces.analyzer()
    refs = []
    for path in photos:
        found = analyzer.faces(load_image(path))
        if found and found[0].embedding is not None:
            refs.append(np.asarray(found[0].embedding, dtype=np.float32))
    if not refs:
        raise ValueError("none of the accepted photos gave a face embedding")
    return np.stack(refs)


@dataclass
class TrainedPipelines:
    """The job's generation pipeline (its chosen LoRA fused at the chosen scale), loaded once
    and shared by generation, its extra round and the detail pass; dropped when the job's
    attempt ends (:meth:`clear`)."""

    _key: tuple[str, str, float] | None = None
    _pipe: Any = None

    def get(self, settings: Settings, weights_dir: Path, lora_scale: float) -> Any:
        key = (settings.base_model, str(weights_dir), float(lora_scale))
        if self._key != key:
            self.clear()
            from handlers.sdxl.loading import torch_dtype
            from handlers.train.dreambooth import resolve_device, resolve_precision
            from handlers.train.trained_model import load_trained_pipeline

            device = resolve_device(settings.device)
            dtype = torch_dtype(resolve_precision(device, settings.mixed_precision))
            self._pipe = load_trained_pipeline(settings.base_model, weights_dir, device, dtype, lora_scale=lora_scale)
            self._pipe.set_progress_bar_config(disable=True)
            self._key = key
        return self._pipe

    def clear(self) -> None:
        self._key, self._pipe = None, None


def run_generate(job_id: str, weights_dir: Path, identifier: str, references: Any, out_dir: Path,
                 settings: Settings, faces: FaceModels, progress: ProgressFn | None,
                 should_stop: StopFn | None, on_image: Callable[[ImageRecord], None],
                 done: Sequence[ImageRecord], subject: str | None = None, lora_scale: float = 1.0,
                 pipes: TrainedPipelines | None = None) -> SelectionResult:
    """``subject``: the manifest's class ("man" / "woman" / None), which the prompts' class and
    attire follow; ``lora_scale``: the checkpoint choice's scale; ``pipes``: the job's loaded
    pipeline, shared with the detail pass."""
    from handlers.generate.loop import generate_and_select
    from handlers.generate.prompts import load_prompt_set

    pipe = (pipes or TrainedPipelines()).get(settings, weights_dir, lora_scale)
    return generate_and_select(pipe, load_prompt_set().for_subject(subject), identifier, references, out_dir,
                               generate_config(settings, job_id), select_config(settings),
                               faces.analyzer(), progress=progress, should_stop=should_stop,
                               on_image=on_image, done=list(done))


def candidate_steps(total: int) -> tuple[int, ...]:
    """Training steps whose checkpoints are the checkpoint choice's candidates (besides the last)."""
    from handlers.train.checkpoint import candidate_steps as steps

    return steps(total)


def run_choose(checkpoints: Sequence[tuple[int, Path]], references: Any, references_kind: str, identifier: str,
               settings: Settings, faces: FaceModels, job_id: str = "", subject: str | None = None) -> Choice:
    """Render the validation prompts (in the person's class) for every checkpoint x LoRA scale
    on one base pipeline (each checkpoint an adapter) and choose the closest to ``references``."""
    from handlers.choose import LoraRenderer, choose_checkpoint, validation_requests
    from handlers.generate.prompts import load_prompt_set
    from handlers.sdxl.loading import torch_dtype
    from handlers.train.dreambooth import resolve_device, resolve_precision
    from handlers.train.trained_model import load_base_pipeline

    device = resolve_device(settings.device)
    pipe = load_base_pipeline(settings.base_model, device,
                              torch_dtype(resolve_precision(device, settings.mixed_precision)))
    prompts = load_prompt_set()
    requests = validation_requests(prompts.render(identifier, subject), settings.choice_prompts)
    renderer = LoraRenderer(pipe, generate_config(settings, job_id), prompts.negative_prompt)
    return choose_checkpoint(checkpoints, settings.choice_scales, renderer, requests, faces.analyzer(),
                             references, references_kind)


def detail_config(settings: Settings) -> DetailConfig:
    from handlers.detail import DetailConfig

    return DetailConfig(strength=settings.detail_strength, crop_factor=settings.detail_crop_factor,
                        resolution=settings.resolution, steps=settings.inference_steps,
                        guidance_scale=settings.guidance_scale)


def run_detail(records: Sequence[ImageRecord], image_dir: Path, weights_dir: Path, lora_scale: float,
               references: Any, settings: Settings, faces: FaceModels, pipes: TrainedPipelines,
               done: dict[str, dict[str, Any]], on_outcome: Callable[[dict[str, Any]], None],
               should_stop: StopFn | None, progress: ProgressFn | None) -> tuple[list[ImageRecord], dict[str, Any]]:
    """The face detail pass over ``records`` (outcomes in ``done``, by file, are not redone);
    ``on_outcome`` gets each new outcome as a dict once its file is written. Returns the
    records to deliver and results.json's ``detail`` record."""
    import time

    from handlers.detail import DetailOutcome, Img2ImgRefiner, detail_pass, summarize
    from handlers.generate.prompts import load_prompt_set

    started = time.perf_counter()
    config = detail_config(settings)
    todo = [r for r in records if r.file not in done]
    refiner = Img2ImgRefiner(pipes.get(settings, weights_dir, lora_scale), config,
                             load_prompt_set().negative_prompt) if todo else None
    kept, outcomes = detail_pass(records, image_dir, refiner, faces.analyzer(), references, config,  # type: ignore[arg-type]
                                 {f: DetailOutcome.from_dict(o) for f, o in done.items()},
                                 lambda o: on_outcome(o.to_dict()), should_stop, progress)
    return kept, summarize(outcomes, config, time.perf_counter() - started)


def load_prepared(folder: Path) -> PreparedDataset:
    """A training set prepared by an earlier attempt (its files downloaded into ``folder``)."""
    from handlers.prepare import PreparedDataset

    return PreparedDataset.load(folder)


def latest_local_train_checkpoint(out_dir: Path) -> Path | None:
    """A full fine-tune's newest checkpoint on this disk (they are gigabytes: never uploaded)."""
    from handlers.train.checkpoint import latest_checkpoint

    return latest_checkpoint(out_dir)


def run_deliver(selection: SelectionResult, out_dir: Path, encoded_dir: Path) -> Deliverables:
    """JPEGs, contact sheet, zip and results.json (what was encoded ahead is reused)."""
    return build_deliverables(selection, out_dir, encoded_dir)


def run_settings(settings: Settings) -> dict[str, Any]:
    """What results.json records of the settings a job ran with (the metrics' breakdown), and
    the training recipe's values (docs/recipe.md)."""
    return {"model": settings.base_model, "train_method": settings.train_method,
            "train_steps": settings.train_steps,
            "recipe": {**train_config(settings).recipe(), "mirror_photos": settings.mirror_photos}}


def email_preview(sheet_jpeg: bytes, count: int) -> bytes:
    """The ready email's inline preview, cut from the contact sheet (blocking: PIL)."""
    from handlers.deliver import email_preview as preview

    return preview(sheet_jpeg, count)
