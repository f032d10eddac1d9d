"""Offline quality metrics of a delivered job: identity, diversity, faces, CLIP and DINO, and
the AI-made marks of every delivered file.

Why these: the DreamBooth paper judges subject fidelity (CLIP-I, DINO: generated vs real
images), prompt fidelity (CLIP-T: image vs its prompt) and, for people, identity (the face
recognizer's similarity to the user's photos). Diversity guards against 50 copies of one
picture. Face metrics need only the recognizer that ships with the service; CLIP and DINO run
when their weights are on local disk (nothing is downloaded). The metrics look at one file
per image (its square: a portrait crop of the same image would count as a near-copy); the
marks (:mod:`handlers.marks`) are read from every delivered JPEG.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from handlers.generate.select import Analyzer, subject_faces

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif")


@dataclass(frozen=True)
class EvalConfig:
    """Where optional metric weights live (a local ``from_pretrained`` folder, or None)."""

    clip_model: Path | None = None
    dino_model: Path | None = None
    threshold: float | None = None  # identity pass/fail line; None: the recognizer's own
    min_face_ratio: float = 0.5
    device: str = "cpu"


@dataclass
class EvalReport:
    """Every figure ``headshots eval`` prints; ``skipped`` says which metric did not run and why."""

    headshots: int
    photos: int
    faces_found: dict[str, Any] = field(default_factory=dict)
    identity_similarity: dict[str, Any] = field(default_factory=dict)
    diversity: dict[str, Any] = field(default_factory=dict)
    clip_t: float | None = None
    clip_i: float | None = None
    dino: float | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    marks: dict[str, Any] = field(default_factory=dict)  # see mark_report
    # the judge: identity against the photos held out of training (the selector never saw
    # them), apart from identity against the selection's own references (see held_out_split)
    held_out: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def distribution(values: Sequence[float]) -> dict[str, Any]:
    """Count, mean, spread and percentiles of a list of numbers (empty -> count 0 only)."""
    if len(values) == 0:
        return {"count": 0}
    v = np.asarray(values, dtype=np.float64)
    p10, p50, p90 = np.percentile(v, [10, 50, 90])
    return {"count": int(v.size), "mean": round(float(v.mean()), 4), "std": round(float(v.std()), 4),
            "min": round(float(v.min()), 4), "p10": round(float(p10), 4), "median": round(float(p50), 4),
            "p90": round(float(p90), 4), "max": round(float(v.max()), 4)}


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms == 0, 1.0, norms)


def pairwise_cosine_distances(vectors: np.ndarray) -> np.ndarray:
    """Cosine distance of every unordered pair of rows (the upper triangle, flattened)."""
    v = _unit_rows(vectors)
    if len(v) < 2:
        return np.zeros(0)
    sims = v @ v.T
    return np.clip(1.0 - sims[np.triu_indices(len(v), k=1)], 0.0, 2.0)  # no -0.0 from rounding


def mean_cross_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine similarity over all pairs (one row of ``a``, one row of ``b``)."""
    return float((_unit_rows(a) @ _unit_rows(b).T).mean())


def thumbnail_vectors(images: Sequence[np.ndarray], side: int = 32) -> np.ndarray:
    """Mean-centred grey thumbnails: a model-free picture signature for pixel diversity."""
    import cv2

    rows = []
    for img in images:
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        small = cv2.resize(grey, (side, side), interpolation=cv2.INTER_AREA).astype(np.float64).ravel()
        rows.append(small - small.mean())
    return np.stack(rows)


def face_metrics(headshots: Sequence[np.ndarray], photos: Sequence[np.ndarray], analyzer: Analyzer,
                 min_face_ratio: float, threshold: float | None = None,
                 ) -> tuple[dict[str, Any], dict[str, Any], np.ndarray]:
    """(faces found, identity similarity distribution, headshot face embeddings)."""
    from handlers.faces import identity_distance

    refs = []
    for photo in photos:
        subjects = subject_faces(analyzer.faces(photo), min_face_ratio)
        if len(subjects) == 1:
            refs.append(np.asarray(subjects[0].embedding, dtype=np.float32))
    counts: list[int] = []
    embeddings: list[np.ndarray] = []
    for image in headshots:
        subjects = subject_faces(analyzer.faces(image), min_face_ratio)
        counts.append(len(subjects))
        if len(subjects) == 1:
            embeddings.append(np.asarray(subjects[0].embedding, dtype=np.float32))
    faces = {"exactly_one": counts.count(1), "none": counts.count(0),
             "several": sum(1 for c in counts if c > 1), "of": len(counts),
             "reference_photos_with_one_face": len(refs)}
    identity: dict[str, Any] = {"count": 0}
    if refs and embeddings:
        distances = [identity_distance(e, np.stack(refs)) for e in embeddings]
        identity = distribution([1.0 - d for d in distances])
        line = threshold if threshold is not None else analyzer.threshold
        identity["threshold_similarity"] = round(1.0 - line, 4)
        identity["pass_rate"] = round(sum(d <= line for d in distances) / len(distances), 4)
    return faces, identity, np.stack(embeddings) if embeddings else np.zeros((0, 0))


def clip_metrics(model_dir: Path, headshots: Sequence[np.ndarray], prompts: Sequence[str] | None,
                 photos: Sequence[np.ndarray], device: str = "cpu") -> tuple[float | None, float]:
    """(CLIP-T, CLIP-I) with a local CLIP model; CLIP-T is None when no prompts are known."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(model_dir).to(device).eval()
    processor = CLIPProcessor.from_pretrained(model_dir)

    def image_features(images: Sequence[np.ndarray]) -> np.ndarray:
        inputs = processor(images=list(images), return_tensors="pt").to(device)
        with torch.no_grad():
            out = model.get_image_features(**inputs)
        return _features(out).cpu().numpy()

    gen = image_features(headshots)
    clip_i = mean_cross_similarity(gen, image_features(photos))
    clip_t = None
    if prompts:
        inputs = processor(text=list(prompts), return_tensors="pt", padding=True, truncation=True).to(device)
        with torch.no_grad():
            text = _features(model.get_text_features(**inputs)).cpu().numpy()
        clip_t = float(np.mean(np.sum(_unit_rows(gen) * _unit_rows(text), axis=1)))
    return clip_t, clip_i


def _features(out: Any) -> Any:
    """Projected embeddings from get_*_features (a tensor, or an output object in newer transformers)."""
    return out if hasattr(out, "cpu") else out.pooler_output


def dino_features(model_dir: Path, images: Sequence[np.ndarray], device: str = "cpu") -> np.ndarray:
    """CLS-token features of a local self-supervised ViT (DINO), one row per image."""
    import torch
    from transformers import AutoImageProcessor, AutoModel

    model = AutoModel.from_pretrained(model_dir).to(device).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir)
    inputs = processor(images=list(images), return_tensors="pt").to(device)
    with torch.no_grad():
        hidden = model(**inputs).last_hidden_state
    return hidden[:, 0].cpu().numpy()


#: A delivered square without results.json to say so: ``headshot-001.jpg`` (crops add a suffix).
SQUARE_FILE = re.compile(r"headshot-\d{3,}\.jpg")


def read_results(results_dir: Path) -> tuple[list[Path], list[str] | None]:
    """The delivered headshots, one file per image (its square), sorted, and, when
    results.json is there, their prompts."""
    results_dir = Path(results_dir)
    doc_path = results_dir / "results.json"
    if not doc_path.exists():
        return sorted(p for p in results_dir.glob("headshot-*.jpg") if SQUARE_FILE.fullmatch(p.name)), None
    squares = [img for img in json.loads(doc_path.read_text())["images"]
               if img.get("format", "square") == "square" and (results_dir / img["file"]).exists()]
    squares.sort(key=lambda img: img["file"])
    prompts = [img.get("prompt") for img in squares]
    return ([results_dir / img["file"] for img in squares],
            None if any(p is None for p in prompts) else [str(p) for p in prompts])


def held_out_files(results_dir: Path) -> dict[str, Any] | None:
    """results.json's ``held_out`` record (files and reason), or None for a job from before it."""
    doc_path = Path(results_dir) / "results.json"
    if not doc_path.exists():
        return None
    record = json.loads(doc_path.read_text()).get("summary", {}).get("held_out")
    return dict(record) if isinstance(record, dict) else None


def held_out_split(names: Sequence[str], record: dict[str, Any] | None) -> tuple[list[int], list[int], str | None]:
    """(indices of the held-out photos, of the selection's references, a plain note when the
    judge has nothing of its own). Photos are matched by file name."""
    held = set(record.get("files") or []) if record else set()
    held_idx = [i for i, n in enumerate(names) if n in held]
    refs_idx = [i for i, n in enumerate(names) if n not in held]
    if record is None:
        return [], refs_idx, "results.json records no held-out photos (a job from before they existed)"
    if not held:
        return [], refs_idx, f"nothing was held out: {record.get('reason') or 'fewer than 12 usable photos'}"
    if not held_idx:
        return [], refs_idx, f"the held-out photos {sorted(held)} are not in the photos folder"
    return held_idx, refs_idx, None


def held_out_identity(headshots: Sequence[np.ndarray], held_out: Sequence[np.ndarray], analyzer: Analyzer,
                      config: EvalConfig, note: str | None, files: Sequence[str]) -> dict[str, Any]:
    """Identity of the headshots against the held-out photos alone (the honest judge)."""
    if note is not None:
        return {"count": 0, "note": note}
    _, identity, _ = face_metrics(headshots, held_out, analyzer, config.min_face_ratio, config.threshold)
    return {"photos": list(files), **identity}


def delivered_jpegs(results_dir: Path) -> list[Path]:
    """Every JPEG a job delivered: each listed file in every format, then the contact sheet."""
    results_dir = Path(results_dir)
    doc_path = results_dir / "results.json"
    if doc_path.exists():
        names = [img["file"] for img in json.loads(doc_path.read_text())["images"]]
    else:
        names = sorted(p.name for p in results_dir.glob("headshot-*.jpg"))
    names.append("contact-sheet.jpg")
    return [results_dir / n for n in names if (results_dir / n).exists()]


def mark_report(paths: Sequence[Path]) -> dict[str, Any]:
    """Both AI-made marks of each file (the watermark also after a quality-75 re-encode), and
    how many files carry each."""
    from handlers.marks import REENCODE_QUALITY, check_marks

    files = {p.name: check_marks(p) for p in paths}
    after = f"watermark_after_q{REENCODE_QUALITY}"
    return {
        "summary": {"files": len(files), "xmp": sum(m.xmp.ai_generated for m in files.values()),
                    "watermark": sum(m.watermark.found for m in files.values()),
                    after: sum(m.watermark_reencoded.found for m in files.values()),
                    "complete": sum(m.complete for m in files.values())},
        "files": {name: m.to_dict() for name, m in files.items()},
    }


def list_photos(photos_dir: Path) -> list[Path]:
    return sorted(p for p in Path(photos_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def evaluate(headshots: Sequence[np.ndarray], photos: Sequence[np.ndarray], prompts: Sequence[str] | None,
             analyzer: Analyzer | None, config: EvalConfig | None = None) -> EvalReport:
    """All metrics that can run with what is installed; the rest are listed in ``skipped``."""
    config = config or EvalConfig()
    report = EvalReport(headshots=len(headshots), photos=len(photos))
    if not headshots or not photos:
        raise ValueError("evaluation needs at least one headshot and one photo")
    pixel = pairwise_cosine_distances(thumbnail_vectors(headshots))
    report.diversity["pixel"] = distribution(pixel.tolist())
    if analyzer is not None:
        faces, identity, embeddings = face_metrics(headshots, photos, analyzer, config.min_face_ratio,
                                                   config.threshold)
        report.faces_found, report.identity_similarity = faces, identity
        report.diversity["face"] = distribution(pairwise_cosine_distances(embeddings).tolist()) \
            if len(embeddings) > 1 else {"count": 0}
    else:
        report.skipped["faces"] = "no face analyzer (--no-faces)"
    if config.clip_model is not None and Path(config.clip_model).is_dir():
        report.clip_t, report.clip_i = clip_metrics(config.clip_model, headshots, prompts, photos, config.device)
        if report.clip_t is None:
            report.skipped["clip_t"] = "results.json with prompts not found"
    else:
        report.skipped["clip"] = f"no local CLIP model ({config.clip_model or 'not configured'})"
    if config.dino_model is not None and Path(config.dino_model).is_dir():
        gen = dino_features(config.dino_model, headshots, config.device)
        ref = dino_features(config.dino_model, photos, config.device)
        report.dino = mean_cross_similarity(gen, ref)
        report.diversity["dino"] = distribution(pairwise_cosine_distances(gen).tolist())
    else:
        report.skipped["dino"] = f"no local DINO model ({config.dino_model or 'not configured'})"
    return report


def format_report(report: EvalReport) -> str:
    """A few readable lines for the terminal."""
    lines = [f"headshots: {report.headshots}   reference photos: {report.photos}"]
    if report.faces_found:
        f = report.faces_found
        lines.append(f"faces found: exactly one in {f['exactly_one']}/{f['of']}, none in {f['none']}, "
                     f"several in {f['several']}")
    held = report.held_out
    if held.get("note"):
        lines.append(f"held-out judge: {held['note']}; identity below is against the photos selection used")
    elif held.get("count"):
        lines.append(f"identity vs held-out photos ({', '.join(held['photos'])}): mean {held['mean']} "
                     f"median {held['median']} min {held['min']} (pass >= {held['threshold_similarity']}: "
                     f"{held['pass_rate']:.0%})")
    ident = report.identity_similarity
    if ident.get("count"):
        lines.append(f"identity similarity{' vs the selection references' if held.get('count') else ''}: mean {ident['mean']} median {ident['median']} "
                     f"p10 {ident['p10']} min {ident['min']} (pass >= {ident['threshold_similarity']}: "
                     f"{ident['pass_rate']:.0%})")
    for kind, d in report.diversity.items():
        if d.get("count"):
            lines.append(f"pairwise diversity ({kind}): mean {d['mean']} min {d['min']} (cosine distance)")
    for name, value in (("CLIP-T", report.clip_t), ("CLIP-I", report.clip_i), ("DINO", report.dino)):
        if value is not None:
            lines.append(f"{name}: {value:.4f}")
    lines += [f"skipped {name}: {why}" for name, why in report.skipped.items()]
    lines += format_marks(report.marks)
    return "\n".join(lines)


def format_marks(marks: dict[str, Any]) -> list[str]:
    """The marks as a summary line and one line per file."""
    if not marks:
        return []
    s = marks["summary"]
    after = next(k for k in s if k.startswith("watermark_after_q"))
    lines = [f"AI-made marks: XMP (trainedAlgorithmicMedia) in {s['xmp']}/{s['files']} files, invisible "
             f"watermark in {s['watermark']}/{s['files']}, after a quality-{after.removeprefix('watermark_after_q')} "
             f"re-encode in {s[after]}/{s['files']}"]
    for name, m in marks["files"].items():
        x, w, r = m["xmp"], m["watermark"], m[after]
        xmp_text = f"XMP {'AI-made' if x['ai_generated'] else 'missing'}"
        if x["creator_tool"]:
            xmp_text += f" by {x['creator_tool']}"
        lines.append(f"  {name}: {xmp_text}; watermark {'found' if w['found'] else 'NOT found'} "
                     f"({w['bit_errors']}/{w['bits']} bits off), after re-encode "
                     f"{'found' if r['found'] else 'NOT found'} ({r['bit_errors']}/{r['bits']} bits off)")
    return lines
