"""Generate headshots from the trained pipeline and keep those that still show the person.

Why the loop looks like this: one image per hand-engineered prompt gives variety; an image
that fails selection is regenerated from the *same* prompt with new noise (a different seed)
up to K times, because the prompt is usually fine and the noise was unlucky; after K failures
the prompt is abandoned for the next unused one. Images are generated in batches (the GPU is
much faster per image that way) with one ``torch.Generator`` per image, and every seed is a
pure function of (base seed, job id, prompt index, attempt), so any image can be made again,
and no two jobs share noise (a bad seed is one job's bad luck, not every customer's).

The image source is injectable (:class:`ImageSource`): production wraps a diffusers pipeline
in :class:`DiffusionSource`; tests can feed real photos through the same selection loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from PIL import Image

from handlers.errors import Interrupted
from handlers.generate.config import GenerateConfig
from handlers.generate.image_source import (
    DiffusionSource,
    ImageRequest,
    ImageSource,
    as_image_source,
)
from handlers.generate.image_writer import ImageWriter
from handlers.generate.prompts import PromptSet
from handlers.generate.records import Attempt, ImageRecord, SelectionResult
from handlers.generate.select import (
    REASON_NEAR_DUPLICATE,
    Analyzer,
    SelectConfig,
    Verdict,
    best_of_pool,
    is_near_duplicate,
    score_image,
    subject_faces,
)
from handlers.progress import Progress, ProgressFn, StopFn, report

log = structlog.get_logger(__name__)




def seed_for(base_seed: int, prompt_index: int, attempt: int, job_id: str = "") -> int:
    """The seed of one image: well mixed, stable across runs, machines and batch sizes.

    ``job_id`` makes each job's noise its own; the same job resumed draws the same seeds. It
    enters as a SHA-256 digest (Python's ``hash`` of a str changes per process)."""
    job = int.from_bytes(hashlib.sha256(job_id.encode("utf-8")).digest()[:16], "big")
    return int(np.random.SeedSequence([base_seed, job, prompt_index, attempt]).generate_state(1)[0])


class AttemptPlanner:
    """Which (prompt, attempt) pairs to generate next: a pure schedule over verdicts.

    Retries of rejected prompts go first; fresh prompts fill the rest of a batch; nothing is
    scheduled beyond what could still be needed to reach ``num_images``.
    """

    def __init__(self, n_prompts: int, num_images: int, max_regenerations: int,
                 skip: Sequence[int] = (), already_accepted: int = 0) -> None:
        self.num_images = num_images
        self.max_regenerations = max_regenerations
        self.accepted = already_accepted
        self.in_flight = 0
        self.retries: deque[tuple[int, int]] = deque()
        skipped = set(skip)
        self.fresh: deque[int] = deque(i for i in range(n_prompts) if i not in skipped)
        self.abandoned: list[int] = []

    def next_batch(self, size: int) -> list[tuple[int, int]]:
        batch: list[tuple[int, int]] = []
        while len(batch) < size and self.accepted + self.in_flight < self.num_images:
            if self.retries:
                batch.append(self.retries.popleft())
            elif self.fresh:
                batch.append((self.fresh.popleft(), 0))
            else:
                break
            self.in_flight += 1
        return batch

    def record(self, prompt_index: int, attempt: int, accepted: bool) -> None:
        self.in_flight -= 1
        if accepted:
            self.accepted += 1
        elif attempt < self.max_regenerations:
            self.retries.append((prompt_index, attempt + 1))
        else:
            self.abandoned.append(prompt_index)

    @property
    def finished(self) -> bool:
        no_work = not self.retries and not self.fresh
        return self.accepted >= self.num_images or (no_work and self.in_flight == 0)


def image_file(prompt_index: int, attempt: int) -> str:
    return f"p{prompt_index:03d}-a{attempt}.png"


@dataclass
class _Scoring:
    """A generated batch whose verdicts a worker thread is computing."""

    batch: list[tuple[int, int]]
    requests: list[ImageRequest]
    images: list[np.ndarray]
    verdicts: Future[list[Verdict]]
    seconds: float  # main-thread time spent on it so far (its generation)


def _unscored(accepted: bool = True) -> Verdict:
    return Verdict(accepted=accepted, reason=None, distance=None, faces=-1)


def _done_embeddings(done: Sequence[ImageRecord], out_dir: Path, analyzer: Analyzer | None,
                     min_face_ratio: float) -> list[np.ndarray]:
    """Face embeddings of a retried job's finished images, for the near-duplicate check."""
    if analyzer is None:
        return []
    embeddings = []
    for record in done:
        path = out_dir / record.file
        if path.exists():
            with Image.open(path) as img:
                faces = subject_faces(analyzer.faces(np.asarray(img.convert("RGB"))), min_face_ratio)
            if len(faces) == 1:
                embeddings.append(np.asarray(faces[0].embedding, dtype=np.float32))
    return embeddings


def generate_and_select(
    pipeline: Any,
    prompts: PromptSet,
    identifier: str,
    references: np.ndarray | None,
    out_dir: Path,
    config: GenerateConfig,
    select_config: SelectConfig,
    analyzer: Analyzer | None,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    on_image: Callable[[ImageRecord], None] | None = None,
    done: Sequence[ImageRecord] = (),
) -> SelectionResult:
    """Generate until ``config.pool`` images pass selection or the prompt budget ends, then keep
    the best ``config.num_images`` of that pool by identity (:func:`best_of_pool`).

    ``pipeline`` is a diffusers pipeline or any :class:`ImageSource`. Every accepted image is
    written to ``out_dir`` and passed to ``on_image`` at once (every pool image: a resumed job
    makes none of them again); ``done`` holds the records of a
    retried job (their files in ``out_dir``), which count and are not generated again. Without
    an ``analyzer`` (no face model installed) only ``mode="report"`` is allowed: images are
    kept unscored.
    """
    if analyzer is None and select_config.mode == "enforce":
        raise ValueError("enforce mode needs a face analyzer")
    if analyzer is not None and (references is None or len(references) == 0):
        raise ValueError("scoring needs the embeddings of the user's accepted photos")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = as_image_source(pipeline, config, prompts.negative_prompt)
    rendered = prompts.render(identifier)
    enforce = select_config.mode == "enforce"
    threshold = select_config.threshold_for(analyzer.threshold) if analyzer is not None else None
    duplicate_distance = select_config.duplicate_for(analyzer.threshold) if analyzer is not None else 0.0

    target = config.pool  # generate the pool; the best num_images of it are delivered
    planner = AttemptPlanner(len(rendered), target,
                             config.max_regenerations if enforce else 0,
                             skip=[r.prompt_index for r in done], already_accepted=len(done))
    kept_embeddings = _done_embeddings(done, out_dir, analyzer, select_config.min_face_ratio)
    records: list[ImageRecord] = list(done)
    attempts: list[Attempt] = [a for r in done for a in r.history]
    history: dict[int, list[Attempt]] = {}
    generated = 0
    started = time.perf_counter()

    def settle(batch: list[tuple[int, int]], requests: list[ImageRequest], images: list[np.ndarray],
               verdicts: list[Verdict], main_seconds: float) -> None:
        """Apply one batch's verdicts in order: duplicates, schedule, files, records, progress."""
        nonlocal generated
        t0 = time.perf_counter()
        for request, image, verdict in zip(requests, images, verdicts, strict=True):
            if (verdict.accepted and enforce and verdict.embedding is not None
                    and is_near_duplicate(verdict.embedding, kept_embeddings, duplicate_distance)):
                verdict = Verdict(False, REASON_NEAR_DUPLICATE, verdict.distance, verdict.faces, verdict.embedding,
                                  verdict.box)
            keep = verdict.accepted or not enforce
            history.setdefault(request.prompt_index, [])
            attempt = Attempt(request.prompt_index, request.attempt, request.seed, verdict.accepted,
                              verdict.reason, verdict.distance,
                              verdict.faces if verdict.faces >= 0 else None, 0.0, tuple(batch))
            history[request.prompt_index].append(attempt)
            planner.record(request.prompt_index, request.attempt, keep)
            if keep:
                if verdict.embedding is not None and verdict.accepted:
                    kept_embeddings.append(verdict.embedding)
                record = ImageRecord(request.prompt_index, request.prompt, request.seed, request.attempt,
                                     image_file(request.prompt_index, request.attempt), verdict.accepted,
                                     verdict.distance, tuple(history[request.prompt_index]), verdict.box)
                records.append(record)
                writer.submit(record, image)  # the file, then on_image (maybe on the writer thread)
        # each image's share of the main thread's time on its batch
        seconds = round((main_seconds + time.perf_counter() - t0) / len(requests), 4)
        for request in requests:
            h = history[request.prompt_index]
            i = next(k for k, a in enumerate(h) if a.attempt == request.attempt)
            h[i] = replace(h[i], seconds=seconds)
            attempts.append(h[i])
        generated += len(requests)
        log.info("generate.batch", images=len(requests), kept=len(records), target=target,
                 seconds_per_image=round(seconds, 3))
        report(progress, Progress("generate", len(records), target,
                                  extra={"generated": generated, "rejected": sum(not a.accepted for a in attempts)}))

    def verdicts_of(images: list[np.ndarray]) -> list[Verdict]:
        return [score_image(img, analyzer, references, select_config) if analyzer is not None
                else _unscored() for img in images]

    def finish(job: _Scoring) -> None:
        t1 = time.perf_counter()
        verdicts = job.verdicts.result()
        settle(job.batch, job.requests, job.images, verdicts, job.seconds + time.perf_counter() - t1)

    pending: _Scoring | None = None  # the batch being scored while the next one generates
    # Unwound in reverse, however the loop ends: scoring finishes, then every queued write lands
    # (on an error, the writer's own error does not replace the one on its way out).
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(ImageWriter(out_dir, on_image, background=config.background_writes,
                                                 max_pending=2 * config.batch_size))
        pool = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="score")) if (
            config.overlap_scoring and analyzer is not None) else None
        while True:
            batch = planner.next_batch(config.batch_size)
            if not batch and pending is None:
                break
            made: _Scoring | None = None
            if batch:
                requests = [ImageRequest(p, a, rendered[p], seed_for(config.seed, p, a, config.job_id))
                            for p, a in batch]
                t0 = time.perf_counter()
                images = source.generate_images(requests)
                if len(images) != len(requests):
                    raise RuntimeError(f"image source returned {len(images)} images for {len(requests)} requests")
                if pool is None:
                    settle(batch, requests, images, verdicts_of(images), time.perf_counter() - t0)
                else:
                    made = _Scoring(batch, requests, images, pool.submit(verdicts_of, images),
                                    time.perf_counter() - t0)
            if pending is not None:
                finish(pending)
            pending = made
            if should_stop is not None and should_stop():
                if pending is not None:  # never lose an image already generated
                    finish(pending)
                    pending = None
                if not planner.finished:
                    raise Interrupted(f"generation stopped with {len(records)} of {target} images")

    by_prompt = {r.prompt_index: r for r in records}
    pool = [_with_history(by_prompt[p], history.get(p)) for p in sorted(by_prompt)]
    final = tuple(pool[i] for i in best_of_pool(pool, config.num_images))
    delivered = {r.file for r in final}
    return SelectionResult(
        image_dir=out_dir, records=final, attempts=tuple(attempts), requested=config.num_images,
        mode=select_config.mode, threshold=threshold, seconds=time.perf_counter() - started,
        generated=generated,
        extra={"base_seed": config.seed, "steps": config.steps, "guidance_scale": config.guidance_scale,
               "resolution": config.resolution, "formats": list(config.formats), "width": config.canvas[0],
               "height": config.canvas[1], "batch_size": config.batch_size, "sampler": config.sampler,
               "max_regenerations": config.max_regenerations, "scored": analyzer is not None,
               "pool": {"size": target, "made": len(pool), "delivered": len(final),
                        "not_delivered": [r.file for r in pool if r.file not in delivered]}},
    )


def _with_history(record: ImageRecord, history: list[Attempt] | None) -> ImageRecord:
    """The record with its attempts' final timings (records handed to on_image had none yet)."""
    if not history:
        return record
    return replace(record, history=tuple(history))


def regenerate(pipeline: Any, prompts: PromptSet, identifier: str, attempt: Attempt,
               config: GenerateConfig) -> np.ndarray:
    """Make one recorded image again, bit for bit, by re-running its recorded batch.

    The seed alone fixes the noise; re-running the same batch also fixes the arithmetic
    (batched kernels round differently from single-image ones in the last float bits).
    """
    if seed_for(config.seed, attempt.prompt_index, attempt.attempt, config.job_id) != attempt.seed:
        raise ValueError("the record's seed does not follow from config.seed and config.job_id: wrong base "
                         "seed or job")
    source = as_image_source(pipeline, config, prompts.negative_prompt)
    rendered = prompts.render(identifier)
    batch = attempt.batch or ((attempt.prompt_index, attempt.attempt),)
    requests = [ImageRequest(p, a, rendered[p], seed_for(config.seed, p, a, config.job_id)) for p, a in batch]
    return source.generate_images(requests)[batch.index((attempt.prompt_index, attempt.attempt))]


__all__ = [
    "AttemptPlanner", "DiffusionSource", "GenerateConfig", "ImageRequest", "ImageSource",
    "as_image_source", "generate_and_select", "image_file", "regenerate", "seed_for",
]
