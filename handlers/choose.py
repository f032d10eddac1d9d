"""The checkpoint and LoRA-scale choice: which of training's kept checkpoints, at which
strength, looks most like the person, judged against photos training never saw.

Why: a DreamBooth LoRA's likeness rises with steps and then overfits (the training photos'
backgrounds, clothes and phone look creep in, faces stiffen); where it peaks depends on the
person and the photos. Training keeps its checkpoints at 50%, 75% and 100% of the steps
(``handlers/train/checkpoint.py: candidate_steps``); each is rendered on a few fixed validation
prompts at each LoRA scale (0.8 and 1.0 by default: docs/judge.md), every image is scored
against the held-out photos (``handlers/holdout.py``; the training photos when none were held
out), and the closest candidate wins. Same prompts and seeds for every candidate, so the
comparison is paired: only the weights differ.

The decision (:func:`pick`) is a function of the scores; the model is reached through a
:class:`Renderer` (production: :class:`LoraRenderer`, one base pipeline with every candidate
loaded as an adapter), the faces through the selector's ``Analyzer`` protocol.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from handlers.generate.image_source import ImageRequest
from handlers.generate.select import Analyzer, subject_faces

#: Base of the validation images' seeds (prompt i gets VALIDATION_SEED + i): fixed, so every
#: candidate, every job and every rerun renders the same noise.
VALIDATION_SEED = 20240
#: The distance an image without exactly one face counts for: the worst a cosine distance
#: between unit vectors gets in practice (2 is opposite vectors), far above any threshold.
NO_FACE_DISTANCE = 1.0


@dataclass(frozen=True)
class Candidate:
    """One checkpoint at one LoRA scale."""

    step: int
    weights_dir: Path
    scale: float

    @property
    def name(self) -> str:
        return f"step-{self.step}@{self.scale:g}"


@dataclass(frozen=True)
class CandidateScore:
    """A candidate's images judged: the mean identity distance (no face counts
    :data:`NO_FACE_DISTANCE`), and how many of its images showed one face."""

    step: int
    scale: float
    score: float
    faces: int
    images: int
    distances: tuple[float | None, ...]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["distances"] = [None if d is None else round(d, 5) for d in self.distances]
        data["score"] = round(self.score, 5)
        return data


@dataclass(frozen=True)
class Choice:
    """The chosen checkpoint and scale, every candidate's score, and what the choice cost."""

    step: int
    scale: float
    weights_dir: Path
    scores: tuple[CandidateScore, ...]
    judged: bool  # False: no candidate showed a face, so the last checkpoint at 1.0 was taken
    references: str  # "held_out" | "training"
    images: int  # images rendered for the choice
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """results.json's ``checkpoint_choice`` (no local paths)."""
        return {"step": self.step, "scale": self.scale, "judged": self.judged, "references": self.references,
                "images": self.images, "seconds": round(self.seconds, 3),
                "candidates": [s.to_dict() for s in self.scores]}


class Renderer(Protocol):
    """Renders the validation requests with one candidate's weights at its scale."""

    def render(self, candidate: Candidate, requests: Sequence[ImageRequest]) -> list[np.ndarray]: ...


def validation_requests(prompts: Sequence[str], count: int) -> list[ImageRequest]:
    """The first ``count`` rendered prompts with their fixed seeds (prompt_index = position)."""
    return [ImageRequest(i, 0, prompts[i], VALIDATION_SEED + i) for i in range(min(count, len(prompts)))]


def candidate_score(candidate: Candidate, distances: Sequence[float | None]) -> CandidateScore:
    """Mean distance over the candidate's images, an image without one face counting as far."""
    values = [NO_FACE_DISTANCE if d is None else d for d in distances]
    return CandidateScore(candidate.step, candidate.scale, float(np.mean(values)) if values else NO_FACE_DISTANCE,
                          sum(d is not None for d in distances), len(values), tuple(distances))


def pick(scores: Sequence[CandidateScore]) -> CandidateScore:
    """The lowest score; ties go to the later checkpoint, then to the scale nearer 1.0 (what
    generation used before the choice existed), so an unjudgeable set picks the last at 1.0."""
    if not scores:
        raise ValueError("no candidate to choose from")
    return min(scores, key=lambda s: (round(s.score, 9), -s.step, abs(s.scale - 1.0), -s.scale))


def identity_distances(images: Sequence[np.ndarray], analyzer: Analyzer, references: np.ndarray,
                       min_face_ratio: float = 0.5) -> list[float | None]:
    """Each image's distance to the references' centroid (None: not exactly one face)."""
    from handlers.faces import identity_distance

    out: list[float | None] = []
    for image in images:
        faces = subject_faces(analyzer.faces(image), min_face_ratio)
        out.append(float(identity_distance(np.asarray(faces[0].embedding, dtype=np.float32), references))
                   if len(faces) == 1 else None)
    return out


def choose_checkpoint(checkpoints: Sequence[tuple[int, Path]], scales: Sequence[float], renderer: Renderer,
                      requests: Sequence[ImageRequest], analyzer: Analyzer, references: np.ndarray,
                      references_kind: str) -> Choice:
    """Render ``requests`` for every checkpoint x scale, score them, pick the best."""
    if not checkpoints:
        raise ValueError("no checkpoint to choose from")
    started = time.perf_counter()
    by_key: dict[tuple[int, float], Candidate] = {}
    scores = []
    for step, weights_dir in sorted(checkpoints):
        for scale in scales:
            candidate = Candidate(step, Path(weights_dir), float(scale))
            by_key[(step, candidate.scale)] = candidate
            images = renderer.render(candidate, requests) if requests else []
            scores.append(candidate_score(candidate, identity_distances(images, analyzer, references)))
    best = pick(scores)  # no face anywhere: all tie, and the tie-break takes the last at 1.0
    judged = any(s.faces for s in scores)
    chosen = by_key[(best.step, best.scale)]
    return Choice(chosen.step, chosen.scale, chosen.weights_dir, tuple(scores), judged, references_kind,
                  sum(s.images for s in scores), time.perf_counter() - started)


class LoraRenderer:
    """One base pipeline, every candidate's LoRA loaded into it as a named adapter; a render
    activates one adapter at the candidate's scale (diffusers' ``set_adapters``)."""

    def __init__(self, pipeline: Any, config: Any, negative_prompt: str) -> None:
        from handlers.generate.image_source import DiffusionSource

        self.pipeline = pipeline
        self.source = DiffusionSource(pipeline, config, negative_prompt)
        self.loaded: dict[Path, str] = {}

    def _adapter(self, weights_dir: Path) -> str:
        from handlers.train.trained_model import load_lora

        if weights_dir not in self.loaded:
            name = f"candidate{len(self.loaded)}"
            with warnings.catch_warnings():  # several adapters in one model is the point here
                warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                load_lora(self.pipeline, weights_dir, adapter_name=name)
            self.loaded[weights_dir] = name
        return self.loaded[weights_dir]

    def render(self, candidate: Candidate, requests: Sequence[ImageRequest]) -> list[np.ndarray]:
        name = self._adapter(candidate.weights_dir)
        self.pipeline.set_adapters([name], adapter_weights=[candidate.scale])
        return self.source.generate_images(requests)
