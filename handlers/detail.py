"""The face detail pass: each delivered image's face re-rendered at the model's resolution.

Why: in a head-and-shoulders or waist-up shot at 1024 px the face is 150-300 px wide, too
few latent pixels (1/8 of them) for eyes, teeth and skin to come out right. Commercial
services, and ADetailer in the open-source world, crop the face with some context, upscale
the crop to the model's resolution, run img2img on it at a moderate strength with the same
prompt, and paste it back with a feathered edge. Here the img2img runs with the job's LoRA
(the same components as generation: no second model load) and the result is kept only when
the face recognizer says it is closer to the person than before: the pass can only help.

Pure logic (where to crop, the feathered mask, the paste, which image to keep) is separate
from the model call, which goes through :class:`Refiner` (production: :class:`Img2ImgRefiner`).
The defaults and their sources: docs/judge.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import structlog
from PIL import Image

from handlers.errors import Interrupted
from handlers.generate.records import ImageRecord
from handlers.generate.select import Analyzer, subject_faces
from handlers.progress import Progress, ProgressFn, StopFn, report

log = structlog.get_logger(__name__)

Box = tuple[int, int, int, int]

KEPT_DETAILED = "detailed"
KEPT_ORIGINAL = "original"
NO_FACE = "no_face"


@dataclass(frozen=True)
class DetailConfig:
    """``strength``: img2img denoising strength (0.4, ADetailer's default); ``crop_factor``: the
    crop's side over the face box's longer side; ``resolution``: the side the crop is rendered
    at (the model's); ``feather``: the width of the paste's soft edge as a fraction of the crop."""

    strength: float = 0.4
    crop_factor: float = 1.6
    resolution: int = 1024
    feather: float = 0.125
    steps: int = 25
    guidance_scale: float = 5.0

    def __post_init__(self) -> None:
        if not 0.0 < self.strength < 1.0:
            raise ValueError("strength must be in (0, 1)")
        if self.crop_factor < 1.0 or not 0.0 < self.feather <= 0.5:
            raise ValueError("crop_factor >= 1 and feather in (0, 0.5]")


@dataclass(frozen=True)
class DetailOutcome:
    """What the pass did to one image: which file is kept and the identity before and after."""

    file: str  # the generated image's file
    kept: str  # KEPT_DETAILED | KEPT_ORIGINAL | NO_FACE
    output: str  # the file delivered (the detailed one when kept, else ``file``)
    before: float | None
    after: float | None
    crop: Box | None = None  # (x, y, side, side) of the re-rendered square

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["crop"] = list(self.crop) if self.crop is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DetailOutcome:
        crop = data.get("crop")
        return cls(str(data["file"]), str(data["kept"]), str(data["output"]), data.get("before"), data.get("after"),
                   tuple(int(v) for v in crop) if crop else None)  # type: ignore[arg-type]


class Refiner(Protocol):
    """img2img of one square crop already at the model's resolution, same size out."""

    def refine(self, crop_rgb: np.ndarray, prompt: str, seed: int) -> np.ndarray: ...


# --- pure decisions ---------------------------------------------------------------------------
def crop_square(face: Box, width: int, height: int, factor: float) -> Box:
    """A square of ``factor`` times the face box's longer side, centred on the face and moved
    (never shrunk, unless the image is smaller) to lie inside the image."""
    x, y, w, h = face
    side = int(round(min(max(w, h) * factor, width, height)))
    cx, cy = x + w / 2, y + h / 2
    x0 = int(round(min(max(cx - side / 2, 0), width - side)))
    y0 = int(round(min(max(cy - side / 2, 0), height - side)))
    return (x0, y0, side, side)


def feather_mask(side: int, feather: float) -> np.ndarray:
    """A (side, side) float32 mask: 1 in the middle, falling linearly to 0 at the crop's edge
    over ``feather * side`` pixels, so the pasted face has no seam."""
    ramp = max(1.0, feather * side)
    idx = np.arange(side, dtype=np.float32)
    edge = np.minimum(idx, side - 1 - idx)
    one = np.clip((edge + 0.5) / ramp, 0.0, 1.0)
    return np.minimum.outer(one, one).astype(np.float32)


def paste_back(image: np.ndarray, patch: np.ndarray, crop: Box, mask: np.ndarray) -> np.ndarray:
    """``image`` with ``patch`` (crop-sized) blended in at ``crop`` through ``mask``."""
    x, y, w, h = crop
    out = image.copy()
    region = out[y:y + h, x:x + w].astype(np.float32)
    blend = mask[..., None] * patch.astype(np.float32) + (1.0 - mask[..., None]) * region
    out[y:y + h, x:x + w] = np.clip(np.round(blend), 0, 255).astype(np.uint8)
    return out


def keep_detailed(before: float | None, after: float | None) -> bool:
    """Keep the detailed image only when its face is found and closer to the person."""
    return after is not None and (before is None or after < before)


def detailed_name(file: str) -> str:
    return f"{Path(file).stem}-detail.png"


# --- one image, then every delivered one ------------------------------------------------------
def _distance(image: np.ndarray, analyzer: Analyzer, references: np.ndarray,
              min_face_ratio: float) -> tuple[float | None, Box | None]:
    from handlers.faces import identity_distance

    faces = subject_faces(analyzer.faces(image), min_face_ratio)
    if len(faces) != 1:
        return None, None
    box = tuple(int(v) for v in faces[0].box)
    return float(identity_distance(np.asarray(faces[0].embedding, dtype=np.float32), references)), box  # type: ignore[return-value]


def detail_one(image: np.ndarray, record: ImageRecord, refiner: Refiner, analyzer: Analyzer,
               references: np.ndarray, config: DetailConfig,
               min_face_ratio: float = 0.5) -> tuple[np.ndarray | None, DetailOutcome]:
    """The detailed image (None when the original stays) and the outcome for one image."""
    before, box = record.distance, record.face_box
    if before is None or box is None:
        before, box = _distance(image, analyzer, references, min_face_ratio)
    if box is None:
        return None, DetailOutcome(record.file, NO_FACE, record.file, None, None)
    height, width = image.shape[:2]
    crop = crop_square(box, width, height, config.crop_factor)
    x, y, side, _ = crop
    region = Image.fromarray(image[y:y + side, x:x + side])
    up = np.asarray(region.resize((config.resolution, config.resolution), Image.Resampling.LANCZOS))
    refined = refiner.refine(up, record.prompt, record.seed)
    down = np.asarray(Image.fromarray(refined).resize((side, side), Image.Resampling.LANCZOS))
    candidate = paste_back(image, down, crop, feather_mask(side, config.feather))
    after, _ = _distance(candidate, analyzer, references, min_face_ratio)
    if keep_detailed(before, after):
        return candidate, DetailOutcome(record.file, KEPT_DETAILED, detailed_name(record.file), before, after, crop)
    return None, DetailOutcome(record.file, KEPT_ORIGINAL, record.file, before, after, crop)


def detail_pass(records: Sequence[ImageRecord], image_dir: Path, refiner: Refiner, analyzer: Analyzer,
                references: np.ndarray, config: DetailConfig, done: Mapping[str, DetailOutcome] | None = None,
                on_outcome: Callable[[DetailOutcome], None] | None = None, should_stop: StopFn | None = None,
                progress: ProgressFn | None = None) -> tuple[list[ImageRecord], list[DetailOutcome]]:
    """Detail every record's image; a detailed image is written beside it in ``image_dir``.

    ``done`` (by generated file) are outcomes of an earlier attempt: not redone. ``on_outcome``
    is called once per image as soon as its file is written (the runtime checkpoints it).
    Returns the records to deliver (a kept detailed image replaces its file and distance) and
    every outcome, in the records' order.
    """
    done = dict(done or {})
    outcomes: list[DetailOutcome] = []
    for i, record in enumerate(records):
        outcome = done.get(record.file)
        if outcome is None:
            with Image.open(image_dir / record.file) as img:
                image = np.asarray(img.convert("RGB"))
            detailed, outcome = detail_one(image, record, refiner, analyzer, references, config)
            if detailed is not None:
                tmp = image_dir / (outcome.output + ".partial")
                Image.fromarray(detailed).save(tmp, format="PNG")
                tmp.replace(image_dir / outcome.output)
            if on_outcome is not None:
                on_outcome(outcome)
            log.info("detail.image", file=record.file, kept=outcome.kept, before=outcome.before, after=outcome.after)
        outcomes.append(outcome)
        report(progress, Progress("detail", i + 1, len(records)))
        if should_stop is not None and should_stop() and i + 1 < len(records):
            raise Interrupted(f"detail pass stopped after {i + 1} of {len(records)} images")
    return [_applied(r, o) for r, o in zip(records, outcomes, strict=True)], outcomes


def _applied(record: ImageRecord, outcome: DetailOutcome) -> ImageRecord:
    if outcome.kept != KEPT_DETAILED:
        return record
    return replace(record, file=outcome.output, distance=outcome.after)


def summarize(outcomes: Sequence[DetailOutcome], config: DetailConfig, seconds: float) -> dict[str, Any]:
    """results.json's ``detail`` record."""
    return {"enabled": True, "strength": config.strength, "crop_factor": config.crop_factor,
            "resolution": config.resolution, "seconds": round(seconds, 3),
            "detailed": sum(o.kept == KEPT_DETAILED for o in outcomes),
            "kept_original": sum(o.kept == KEPT_ORIGINAL for o in outcomes),
            "no_face": sum(o.kept == NO_FACE for o in outcomes),
            "images": [o.to_dict() for o in outcomes]}


class Img2ImgRefiner:
    """diffusers' SDXL img2img built from the generation pipeline's own components
    (``from_pipe``: no second load; the fused LoRA comes with the UNet)."""

    def __init__(self, pipeline: Any, config: DetailConfig, negative_prompt: str) -> None:
        self.source = pipeline
        self.config = config
        self.negative_prompt = negative_prompt
        self.calls = 0
        self._pipe: Any = None

    @property
    def pipe(self) -> Any:
        """Built on first use (a job whose images show no face never needs it)."""
        if self._pipe is None:
            from diffusers import StableDiffusionXLImg2ImgPipeline
            from diffusers.utils import logging as diffusers_logging

            level = diffusers_logging.get_verbosity()
            diffusers_logging.set_verbosity_error()  # from_pipe's notes on module dtypes it keeps as they are
            try:
                self._pipe = StableDiffusionXLImg2ImgPipeline.from_pipe(self.source)
            finally:
                diffusers_logging.set_verbosity(level)
            self._pipe.set_progress_bar_config(disable=True)
        return self._pipe

    def refine(self, crop_rgb: np.ndarray, prompt: str, seed: int) -> np.ndarray:
        import torch
        from diffusers.utils import logging as diffusers_logging

        self.calls += 1
        pipe = self.pipe
        level = diffusers_logging.get_verbosity()
        # img2img casts an SDXL VAE (force_upcast) to fp32 to encode and back, and diffusers warns
        # about that cast on every call: the cast is the documented fix for fp16 overflow
        diffusers_logging.set_verbosity_error()
        try:
            out = pipe(prompt=prompt, negative_prompt=self.negative_prompt, image=Image.fromarray(crop_rgb),
                        strength=self.config.strength,
                        # at least one denoising step (img2img runs int(steps * strength) of them)
                        num_inference_steps=max(self.config.steps, math.ceil(1 / self.config.strength)),
                        guidance_scale=self.config.guidance_scale,
                        generator=torch.Generator("cpu").manual_seed(seed), output_type="np")
        finally:
            diffusers_logging.set_verbosity(level)
        return np.clip(np.round(out.images[0] * 255.0), 0, 255).astype(np.uint8)
