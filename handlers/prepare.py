"""Instance images for DreamBooth: face-centred square crops at the model resolution.

Why: the model learns the person from what the crops show. Centring each crop on the face box
from the validation report (slightly below it, so chin and shoulders are in frame) makes every
training image a headshot at the same scale; mirrored, slightly rotated and rescaled copies
teach the identity rather than one head pose and framing. Each copy is one affine warp of the
original photo (crop + rotation + scale + resize in a single resampling), so no copy is blurred
twice and no black corners appear (borders are reflected).

Every random choice comes from ``PrepareConfig.seed``: the same photos give the same dataset.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from handlers.images import load_image

Box = tuple[int, int, int, int]  # x, y, w, h in the EXIF-rotated photo's pixels
CropBox = tuple[float, float, float, float]  # x, y, w, h of a training crop, same pixels
DATASET_FILE = "dataset.json"
CROP_SCALE = 2.2  # crop side / larger side of the face box
FACE_DROP = 0.1  # crop centre sits this many face heights below the face centre


@dataclass(frozen=True)
class PrepareConfig:
    """How photos become training images."""

    identifier: str
    resolution: int = 1024
    class_noun: str = "person"
    crop_scale: float = CROP_SCALE
    face_drop: float = FACE_DROP
    augment_copies: int = 2  # extra augmented copies per photo (the plain crop is always kept)
    max_rotation_deg: float = 6.0
    max_scale_change: float = 0.1  # copies zoom by a factor in [1/(1+s), 1+s]
    seed: int = 0

    @property
    def instance_prompt(self) -> str:
        return f"a photo of {self.identifier} {self.class_noun}"

    @property
    def class_prompt(self) -> str:
        return f"a photo of a {self.class_noun}"


@dataclass(frozen=True)
class Augmentation:
    """The geometric change applied to one copy (identity for the plain crop)."""

    mirrored: bool = False
    rotation_deg: float = 0.0
    scale: float = 1.0


@dataclass(frozen=True)
class PreparedImage:
    path: Path
    caption: str
    source: str  # file name of the original photo
    augmentation: Augmentation = field(default_factory=Augmentation)


@dataclass(frozen=True)
class PreparedDataset:
    """Training images on disk plus the prompts they were captioned with."""

    root: Path
    images: tuple[PreparedImage, ...]
    identifier: str
    instance_prompt: str
    class_prompt: str
    resolution: int

    @property
    def n_photos(self) -> int:
        """Distinct source photos (the step rule counts photos, not augmented copies)."""
        return len({img.source for img in self.images})

    def save(self) -> Path:
        """Write ``dataset.json`` next to the images, so a resumed job can reload it."""
        doc = {
            "identifier": self.identifier, "instance_prompt": self.instance_prompt,
            "class_prompt": self.class_prompt, "resolution": self.resolution,
            "images": [{"file": img.path.name, "caption": img.caption, "source": img.source,
                        "augmentation": asdict(img.augmentation)} for img in self.images],
        }
        path = self.root / DATASET_FILE
        path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, root: Path) -> "PreparedDataset":
        root = Path(root)
        doc = json.loads((root / DATASET_FILE).read_text(encoding="utf-8"))
        images = tuple(
            PreparedImage(path=root / d["file"], caption=d["caption"], source=d["source"],
                          augmentation=Augmentation(**d["augmentation"]))
            for d in doc["images"]
        )
        return cls(root=root, images=images, identifier=doc["identifier"],
                   instance_prompt=doc["instance_prompt"], class_prompt=doc["class_prompt"],
                   resolution=int(doc["resolution"]))


def decode_photo(path: Path) -> np.ndarray:
    """RGB uint8 pixels with EXIF orientation applied (the frame the face boxes refer to)."""
    return load_image(Path(path))


def crop_plan(box: Box, width: int, height: int, crop_scale: float = CROP_SCALE,
              face_drop: float = FACE_DROP) -> tuple[CropBox, ...]:
    """The training crops of one photo: (x, y, w, h) boxes in the photo's pixels, each kept
    inside the photo. Today one face-centred square, ``crop_scale`` times the face box's larger
    side, a little below the face so chin and shoulders are in frame.

    Pure, and the one place the crops are decided: prepare renders these boxes, and the gate
    refuses a photo with another person's face inside any of them (``multiple_faces``)."""
    x, y, w, h = box
    side = min(crop_scale * max(w, h), float(width), float(height))
    cx = x + w / 2.0
    cy = y + h / 2.0 + face_drop * h
    half = side / 2.0
    cx = min(max(cx, half), width - half)
    cy = min(max(cy, half), height - half)
    return ((cx - half, cy - half, side, side),)


def crop_square(box: Box, width: int, height: int, config: PrepareConfig) -> tuple[float, float, float]:
    """Centre (cx, cy) and side of the face-centred square crop (:func:`crop_plan`'s)."""
    x, y, side, _ = crop_plan(box, width, height, config.crop_scale, config.face_drop)[0]
    return x + side / 2.0, y + side / 2.0, side


def augmentations(n_copies: int, config: PrepareConfig, photo_index: int) -> list[Augmentation]:
    """The plain crop, then ``n_copies`` copies alternating mirrored / not, seeded per photo."""
    rng = np.random.default_rng([config.seed, photo_index])
    out = [Augmentation()]
    s = config.max_scale_change
    for k in range(n_copies):
        out.append(Augmentation(
            mirrored=(k % 2 == 0),
            rotation_deg=float(rng.uniform(-config.max_rotation_deg, config.max_rotation_deg)),
            scale=float(math.exp(rng.uniform(-math.log1p(s), math.log1p(s)))) if s > 0 else 1.0,
        ))
    return out


def render_crop(pixels: np.ndarray, centre: tuple[float, float], side: float, resolution: int,
                aug: Augmentation) -> np.ndarray:
    """One affine warp: crop of ``side`` around ``centre``, rotated, zoomed, resized, mirrored."""
    cx, cy = centre
    shrink = side / resolution
    if shrink > 1.5:  # area-downscale first so the warp does not alias
        factor = shrink
        small = cv2.resize(pixels, (max(1, round(pixels.shape[1] / factor)),
                                    max(1, round(pixels.shape[0] / factor))),
                           interpolation=cv2.INTER_AREA)
        fx, fy = small.shape[1] / pixels.shape[1], small.shape[0] / pixels.shape[0]
        pixels, cx, cy, side = small, cx * fx, cy * fy, side * (fx + fy) / 2.0
    s = side / (resolution * aug.scale)  # source pixels per output pixel
    theta = math.radians(aug.rotation_deg)
    a, b = s * math.cos(theta), s * math.sin(theta)
    half = resolution / 2.0
    # dst -> src map: src = C + s*R*(dst - half)
    m = np.array([[a, -b, cx - a * half + b * half],
                  [b, a, cy - b * half - a * half]], dtype=np.float64)
    out = cv2.warpAffine(pixels, m, (resolution, resolution), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REFLECT_101)
    if aug.mirrored:
        out = np.ascontiguousarray(out[:, ::-1])
    return out


def prepare_instance_images(photos: Sequence[Path], boxes: Sequence[Box], out_dir: Path,
                            config: PrepareConfig) -> PreparedDataset:
    """Crop, augment and caption every usable photo into ``out_dir`` (PNG) plus ``dataset.json``."""
    if len(photos) != len(boxes):
        raise ValueError(f"{len(photos)} photos but {len(boxes)} face boxes")
    if not photos:
        raise ValueError("no photos to prepare")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images: list[PreparedImage] = []
    for i, (photo, box) in enumerate(zip(photos, boxes)):
        pixels = decode_photo(Path(photo))
        height, width = pixels.shape[:2]
        cx, cy, side = crop_square(box, width, height, config)
        for j, aug in enumerate(augmentations(config.augment_copies, config, i)):
            path = out_dir / f"instance-{i:03d}-{j}.png"
            Image.fromarray(render_crop(pixels, (cx, cy), side, config.resolution, aug)).save(path)
            images.append(PreparedImage(path=path, caption=config.instance_prompt,
                                        source=Path(photo).name, augmentation=aug))
    dataset = PreparedDataset(root=out_dir, images=tuple(images), identifier=config.identifier,
                              instance_prompt=config.instance_prompt,
                              class_prompt=config.class_prompt, resolution=config.resolution)
    dataset.save()
    return dataset
