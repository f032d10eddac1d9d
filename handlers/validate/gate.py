"""The photo quality gate: which uploads can train a good likeness, and what to tell the
person about the others.

Each photo is checked in a fixed order (:data:`validate_messages.REASON_ORDER`) and gets
the first reason that fails; photos that pass every per-photo check are then compared
with each other (near-duplicates, then the majority identity). The set is accepted when
at least ``min_usable`` photos pass; at most ``max_selected`` are kept for training, the
best by quality while keeping a spread of head poses. The result depends only on the
files and the config, in the order given (callers pass a sorted or manifest order).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from handlers.faces import FaceAnalyzer
from handlers.images import DecodedImage, ImageError, decode_image
from handlers.prepare import crop_plan
from handlers.validate.checks import (
    comparable_faces,
    faces_in_crops,
    hamming,
    measure_face,
    phash,
)
from handlers.validate.config import ValidateConfig
from handlers.validate.coverings import measure_coverings
from handlers.validate.identity import group_identities
from handlers.validate.messages import photo_message, set_message

log = structlog.get_logger(__name__)


@dataclass
class PhotoResult:
    """One photo's verdict and measurements.

    ``face_box`` is (x, y, w, h) of the main face in ORIGINAL-image pixels after EXIF
    rotation, i.e. in the coordinates of ``handlers.images.load_image(path)`` at full size;
    ``handlers.prepare`` crops around it."""

    file: str
    path: Path
    ok: bool = False
    reason: str | None = None
    message: str = ""
    detail: str | None = None  # technical note for logs and debugging (never shown as advice)
    width: int | None = None
    height: int | None = None
    faces: int | None = None
    face_box: tuple[int, int, int, int] | None = None
    face_fraction: float | None = None
    sharpness: float | None = None
    exposure: float | None = None
    contrast: float | None = None
    clipped: float | None = None  # share of the inner face crushed to black or blown to white
    eye_skin: float | None = None  # coverings (handlers/validate/coverings.py); None: not judged
    lower_skin: float | None = None
    mouth_orientation: float | None = None
    outside: float | None = None
    detector: str | None = None  # which detector path found the face (hog or cnn)
    identity_distance: float | None = None
    pose_yaw: float | None = None
    duplicate_of: str | None = None
    quality: float | None = None
    selected: bool = False
    # L2-normalised identity embedding of the face (photos that reached the identity check).
    # Kept out of to_dict(): embeddings never go into logs, status files or emails.
    embedding: np.ndarray | None = field(default=None, repr=False)

    @property
    def measures(self) -> dict[str, Any]:
        """The numbers recorded for debugging (job status, email), without the verdict."""
        keys = ("width", "height", "faces", "face_fraction", "sharpness", "exposure", "contrast",
                "clipped", "eye_skin", "lower_skin", "mouth_orientation", "outside", "detector",
                "identity_distance", "pose_yaw", "quality", "duplicate_of")
        return {k: getattr(self, k) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("path")
        d.pop("embedding")
        d["face_box"] = list(self.face_box) if self.face_box else None
        order = ["file", "ok", "reason", "message"]
        return {k: d[k] for k in order} | {k: v for k, v in d.items() if k not in order}


@dataclass
class ValidationReport:
    """The gate's verdict on a set. ``selected`` are the files to train on (<= 20)."""

    accepted: bool
    photos: list[PhotoResult]
    usable: int
    needed: int
    selected: list[Path]
    identity_conflict: bool
    message: str
    thresholds: dict[str, float]
    min_usable: int = 10

    def to_dict(self) -> dict[str, Any]:
        """The CLI's ``--json`` object: ``accepted``, ``photos``, ``usable`` as the issue
        specifies, plus measurements and set-level extras under additional keys."""
        return {
            "accepted": self.accepted,
            "photos": [p.to_dict() for p in self.photos],
            "usable": self.usable,
            "needed": self.needed,
            "selected": [p.name for p in self.selected],
            "identity_conflict": self.identity_conflict,
            "message": self.message,
            "thresholds": dict(self.thresholds),
        }

    @property
    def required(self) -> int:
        """Good photos a set needs (``min_usable``)."""
        return self.min_usable

    @property
    def problem(self) -> str | None:
        """Why the set was rejected, in words (None when accepted)."""
        return None if self.accepted else self.message

    @property
    def rejected_photos(self) -> list[PhotoResult]:
        return [p for p in self.photos if not p.ok]


def _quality(r: PhotoResult, config: ValidateConfig) -> float:
    """Photographic quality, bigger is better: sharpness (log scale), contrast, and how little
    of the face is clipped. Nothing rewards a face for being near mid-grey: well-lit dark skin
    and light skin rank alike, and the same photo one stop darker ranks the same (exposure
    only has to pass the gate's band)."""
    sharp = min(1.0, math.log10(max(r.sharpness or 1.0, 1.0) / config.min_sharpness) / 1.5)
    contrast = min(1.0, (r.contrast or 0.0) / 0.6)
    unclipped = 1.0 - min(1.0, (r.clipped or 0.0) / config.max_clipped)
    return round(sharp + contrast + unclipped, 6)


def _pose_bin(yaw: float | None) -> int:
    if yaw is None or abs(yaw) <= 0.15:
        return 0
    return -1 if yaw < 0 else 1


def select_training_photos(results: list[PhotoResult], limit: int) -> list[PhotoResult]:
    """The best ``limit`` usable photos, taken round-robin over head-pose bins (left,
    frontal, right) in quality order, so trimming never leaves only one pose."""
    usable = [r for r in results if r.ok]
    if len(usable) <= limit:
        return usable
    bins: dict[int, list[PhotoResult]] = {}
    for r in sorted(usable, key=lambda r: (-(r.quality or 0.0), r.file)):
        bins.setdefault(_pose_bin(r.pose_yaw), []).append(r)
    chosen: list[PhotoResult] = []
    while len(chosen) < limit:
        for key in (0, -1, 1):
            if bins.get(key) and len(chosen) < limit:
                chosen.append(bins[key].pop(0))
    keep = {id(r) for r in chosen}
    return [r for r in usable if id(r) in keep]


def _decode(path: Path, config: ValidateConfig) -> DecodedImage | ImageError:
    """The photo's pixels at the analysis size, or why not (returned, so it can run ahead)."""
    try:
        return decode_image(path, config.limits, config.analysis_max_side)
    except ImageError as exc:
        return exc


def _check_photo(path: Path, name: str, config: ValidateConfig, analyzer: FaceAnalyzer,
                 accepted_hashes: list[tuple[str, int]],
                 refused: tuple[str, str] | None = None,
                 decoded: DecodedImage | ImageError | None = None) -> tuple[PhotoResult, Any]:
    """Per-photo checks in order; returns the result and, when it passed, its embedding.
    ``decoded``: the photo already decoded by :func:`_decode` (else it is decoded here)."""
    r = PhotoResult(file=name, path=path)
    if refused is not None:  # decided before the file reached us (never uploaded, over the cap)
        r.reason, r.detail = refused
        return r, None
    img = decoded if decoded is not None else _decode(path, config)
    if isinstance(img, ImageError):
        r.reason, r.detail = img.code, img.message
        return r, None
    r.width, r.height = img.info.width, img.info.height
    if min(r.width, r.height) < config.min_short_side:
        r.reason = "too_small"
        r.detail = f"{r.width}x{r.height}"
        return r, None
    faces = analyzer.detect(img.pixels)
    r.faces = len(faces)
    if not faces:
        r.reason = "no_face"
        return r, None
    face = faces[0]
    m = measure_face(img.pixels, face, img.scale, (r.width, r.height))
    r.face_box, r.face_fraction = m.face_box, round(m.face_fraction, 4)
    r.sharpness, r.exposure = round(m.sharpness, 2), round(m.exposure, 2)
    r.contrast, r.clipped = round(m.contrast, 4), round(m.clipped_dark + m.clipped_bright, 4)
    r.pose_yaw = None if m.pose_yaw is None else round(m.pose_yaw, 3)
    r.detector = face.detector
    cover = measure_coverings(img.pixels, face.landmarks or (), (r.width, r.height), img.scale)
    r.outside = round(cover.outside, 4)
    r.mouth_orientation = round(min(cover.mouth_orientation, 99.0), 3)
    r.eye_skin = None if cover.eye_skin is None else round(cover.eye_skin, 3)
    r.lower_skin = None if cover.lower_skin is None else round(cover.lower_skin, 3)
    crops = [c.box for c in crop_plan(m.face_box, r.width, r.height)]  # every framing's crop
    if cover.outside > config.max_outside:
        r.reason = "face_cut"
    elif (comparable_faces([face] + [f for f in faces[1:] if f.confidence >= config.min_second_face_confidence],
                           config.comparable_face_ratio) > 1
          or faces_in_crops(faces, crops, img.scale, config.min_second_face_px,
                             config.min_second_face_confidence) > 0):
        r.reason = "multiple_faces"
    elif m.face_fraction < config.min_face_fraction:
        r.reason = "face_too_small"
    elif m.sharpness < config.min_sharpness:
        r.reason = "blurry"
    elif m.exposure < config.min_exposure or m.clipped_dark > config.max_clipped:
        r.reason = "too_dark"
    elif m.exposure > config.max_exposure or m.clipped_bright > config.max_clipped:
        r.reason = "too_bright"
    # coverings are read from skin colour and edges: only on a face exposed well enough to show them
    elif ((cover.lower_skin is not None and cover.lower_skin < config.min_lower_skin)
          or cover.mouth_orientation < config.min_mouth_orientation):
        r.reason = "face_covered"
    elif cover.eye_skin is not None and cover.eye_skin < config.min_eye_skin:
        r.reason = "eyes_covered"
    if r.reason:
        return r, None
    h = phash(img.pixels)
    for name, other in accepted_hashes:
        if hamming(h, other) <= config.duplicate_max_hamming:
            r.reason, r.duplicate_of = "duplicate", name
            return r, None
    accepted_hashes.append((r.file, h))
    r.quality = _quality(r, config)
    return r, analyzer.embed(img.pixels, face)


def validate_photos(paths: Sequence[Path], config: ValidateConfig | None = None,
                    analyzer: FaceAnalyzer | None = None, *, names: Sequence[str] | None = None,
                    refused: Mapping[str, tuple[str, str]] | None = None) -> ValidationReport:
    """Run the gate over ``paths`` (in the order given) and decide on the set.

    ``names``: what the person calls each file (default: the file's own name), used in the
    report and its messages; a local copy may have a shorter, safe name. ``refused``: by
    name, ``(reason code, detail)`` for photos refused before they reached the gate (never
    uploaded, over the size cap): reported, never opened."""
    config = config or ValidateConfig()
    analyzer = analyzer or FaceAnalyzer(config.face)
    shown = list(names) if names is not None else [Path(p).name for p in paths]
    if len(shown) != len(paths):
        raise ValueError("names must give one name per path")
    refused = refused or {}
    results: list[PhotoResult] = []
    embedded: list[tuple[PhotoResult, Any]] = []
    hashes: list[tuple[str, int]] = []
    # The next photo decodes on a second thread while this one is checked: JPEG/HEIC decoding and
    # resizing run in C without the GIL, so on two cores they overlap the detector and the
    # recognizer. One photo ahead at most: memory holds two analysis-size images, not a folder.
    todo = [(Path(p), n) for p, n in zip(paths, shown, strict=True)]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gate-decode") as ahead:
        def submit(i: int) -> Future[DecodedImage | ImageError] | None:
            if i >= len(todo) or todo[i][1] in refused:
                return None
            return ahead.submit(_decode, todo[i][0], config)

        pending = submit(0)
        for i, (path, name) in enumerate(todo):
            current, pending = pending, submit(i + 1)
            decoded = current.result() if current is not None else None
            r, emb = _check_photo(path, name, config, analyzer, hashes, refused.get(name), decoded)
            del decoded
            results.append(r)
            if emb is not None:
                embedded.append((r, emb))

    groups = group_identities([e for _, e in embedded], analyzer.threshold, config.majority_margin)
    for i, (r, emb) in enumerate(embedded):
        r.identity_distance = round(groups.distances[i], 4)
        r.embedding = emb
    for i in groups.others:
        embedded[i][0].reason = "different_person"
    for r in results:
        r.ok = r.reason is None

    usable = sum(r.ok for r in results)
    accepted = usable >= config.min_usable and not groups.conflict
    chosen = select_training_photos(results, config.max_selected) if accepted else []
    for r in chosen:
        r.selected = True
    for r in results:
        r.message = photo_message(r.reason, r.duplicate_of, r.selected or not accepted,
                                  config.max_selected)
        log.info("photo_checked", file=r.file, reason=r.reason, sharpness=r.sharpness,
                 exposure=r.exposure, identity_distance=r.identity_distance)
    needed = max(0, config.min_usable - usable)
    report = ValidationReport(
        accepted=accepted, photos=results, usable=usable, needed=needed,
        selected=[r.path for r in chosen],
        identity_conflict=groups.conflict,
        message=set_message(accepted, usable, needed, config.min_usable, groups.conflict,
                            len(groups.majority), groups.second_size),
        thresholds={"identity": analyzer.threshold, "sharpness": config.min_sharpness,
                    "min_exposure": config.min_exposure, "max_exposure": config.max_exposure,
                    "min_face_fraction": config.min_face_fraction,
                    "max_outside": config.max_outside, "min_lower_skin": config.min_lower_skin,
                    "min_mouth_orientation": config.min_mouth_orientation,
                    "min_eye_skin": config.min_eye_skin},
        min_usable=config.min_usable,
    )
    log.info("photos_validated", photos=len(results), usable=usable, accepted=accepted,
             identity_conflict=groups.conflict)
    return report
