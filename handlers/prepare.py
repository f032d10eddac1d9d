"""Instance images for DreamBooth: face-centred crops at several framings, each captioned for it.

Why: the model learns the person from what the crops show, and the prompts ask for close-ups,
head-and-shoulders and waist-up shots. So every photo gives up to three framings
(:data:`FRAMINGS`: the close-up always, the wider ones where the photo holds them), each
captioned for its framing ("a close-up photo of <id> man"), so the framing is bound to its
words and not to the identifier. Each crop's true size and position in the photo travel with it
into SDXL's size conditioning (``original_size``, ``crops_coords_top_left``), so an upsampled
crop is not taught as a sharp 1024 px photo.

Augmentation is identity-safe: a slightly rotated and zoomed copy per crop, never mirrored by
default (faces are not symmetric: a mirror swaps the hair parting, moles and a crooked smile;
``mirror=True`` keeps the old behaviour as an option). Each copy is one affine warp of the
original photo, zoomed in far enough that it samples only pixels of the photo: nothing is
reflected or invented at a border.

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
from handlers.subject import CLASS_WORDS

Box = tuple[int, int, int, int]  # x, y, w, h in the EXIF-rotated photo's pixels
CropBox = tuple[float, float, float, float]  # x, y, w, h of a training crop, same pixels
DATASET_FILE = "dataset.json"


@dataclass(frozen=True)
class Framing:
    """One framing of the crop plan: a square ``scale`` times the face box's larger side, its
    centre ``drop`` face sides below the face centre (so the top of the head stays in frame)."""

    name: str
    scale: float
    drop: float


#: Close-up (face and hair, a little neck), head-and-shoulders, waist-up. The dlib face box runs
#: from the brows to the chin; the head's top sits about 1.0-1.2 box sides above its centre, so
#: each framing keeps that much room above the face. The close-up is the crop of issues 1-21.
FRAMINGS: tuple[Framing, ...] = (
    Framing("close-up", 2.2, 0.1),
    Framing("head-and-shoulders", 3.6, 0.6),
    Framing("waist-up", 6.0, 1.7),
)
#: A wider framing is made only if the photo holds it with its centre moved by at most this many
#: face box sides (further, and the face would sit off where the framing puts it: not that framing).
MAX_FRAMING_SHIFT = 0.5


@dataclass(frozen=True)
class PlannedCrop:
    """One training crop: its framing and its (x, y, w, h) box in the photo's pixels."""

    framing: str
    x: float
    y: float
    w: float
    h: float

    @property
    def box(self) -> CropBox:
        return (self.x, self.y, self.w, self.h)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x + self.w / 2.0, self.y + self.h / 2.0)


@dataclass(frozen=True)
class PrepareConfig:
    """How photos become training images."""

    identifier: str
    resolution: int = 1024
    class_noun: str = "person"
    framings: tuple[Framing, ...] = FRAMINGS
    augment_copies: int = 1  # extra augmented copies per crop (the plain crop is always kept)
    mirror: bool = False  # mirror every other copy (off: faces are not symmetric)
    max_rotation_deg: float = 6.0
    max_scale_change: float = 0.1  # copies zoom by a factor in [1/(1+s), 1+s], then in to stay in the photo
    seed: int = 0

    def __post_init__(self) -> None:
        if self.class_noun not in CLASS_WORDS:
            raise ValueError(f"class_noun must be one of {CLASS_WORDS}")
        if not self.framings:
            raise ValueError("at least one framing")

    @property
    def instance_prompt(self) -> str:
        return f"a photo of {self.identifier} {self.class_noun}"

    @property
    def class_prompt(self) -> str:
        return f"a photo of a {self.class_noun}"

    def caption(self, framing: str) -> str:
        """The training caption of one crop: its framing named, e.g. "a close-up photo of sks man"."""
        return f"a {framing} photo of {self.identifier} {self.class_noun}"


@dataclass(frozen=True)
class Augmentation:
    """The geometric change applied to one copy (identity for the plain crop)."""

    mirrored: bool = False
    rotation_deg: float = 0.0
    scale: float = 1.0


@dataclass(frozen=True)
class PreparedImage:
    """One training image. ``original_size`` (h, w) and ``crop_top_left`` (top, left) are the
    pixels of the photo it shows, in the photo's own pixels: SDXL's size conditioning."""

    path: Path
    caption: str
    source: str  # file name of the original photo
    augmentation: Augmentation = field(default_factory=Augmentation)
    framing: str = "close-up"
    original_size: tuple[int, int] | None = None  # None: a dataset from before issue 22 (the resolution)
    crop_top_left: tuple[int, int] = (0, 0)

    def size_conditioning(self, resolution: int) -> tuple[int, int, int, int]:
        """(original height, original width, crop top, crop left) for SDXL's time ids."""
        h, w = self.original_size or (resolution, resolution)
        return (h, w, *self.crop_top_left)


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
                        "augmentation": asdict(img.augmentation), "framing": img.framing,
                        "original_size": list(img.original_size) if img.original_size else None,
                        "crop_top_left": list(img.crop_top_left)} for img in self.images],
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
                          augmentation=Augmentation(**d["augmentation"]), framing=d.get("framing", "close-up"),
                          original_size=tuple(d["original_size"]) if d.get("original_size") else None,
                          crop_top_left=tuple(d.get("crop_top_left", (0, 0))))
            for d in doc["images"]
        )
        return cls(root=root, images=images, identifier=doc["identifier"],
                   instance_prompt=doc["instance_prompt"], class_prompt=doc["class_prompt"],
                   resolution=int(doc["resolution"]))


def decode_photo(path: Path) -> np.ndarray:
    """RGB uint8 pixels with EXIF orientation applied (the frame the face boxes refer to)."""
    return load_image(Path(path))


def crop_plan(box: Box, width: int, height: int,
              framings: Sequence[Framing] = FRAMINGS) -> tuple[PlannedCrop, ...]:
    """The training crops of one photo, every one inside the photo.

    The first framing (the close-up) is always made: moved inside the photo, and shrunk to it
    when the photo is smaller. A wider framing is made only where the photo holds it whole,
    with its centre moved by at most :data:`MAX_FRAMING_SHIFT` face sides; nothing is padded.

    Pure, and the one place the crops are decided: prepare renders these boxes, and the gate
    refuses a photo with another person's face inside any of them (``multiple_faces``)."""
    x, y, w, h = box
    face = float(max(w, h))
    fx, fy = x + w / 2.0, y + h / 2.0
    crops: list[PlannedCrop] = []
    for k, framing in enumerate(framings):
        side = framing.scale * face
        if k > 0 and side > min(width, height):
            continue  # the photo does not hold this framing
        side = min(side, float(width), float(height))
        half = side / 2.0
        cx0, cy0 = fx, fy + framing.drop * face
        cx = min(max(cx0, half), width - half)
        cy = min(max(cy0, half), height - half)
        if k > 0 and max(abs(cx - cx0), abs(cy - cy0)) > MAX_FRAMING_SHIFT * face:
            continue
        crops.append(PlannedCrop(framing.name, cx - half, cy - half, side, side))
    return tuple(crops)


def augmentations(n_copies: int, config: PrepareConfig, photo_index: int,
                  crop_index: int = 0) -> list[Augmentation]:
    """The plain crop, then ``n_copies`` rotated and zoomed copies, seeded per photo and crop;
    every other copy mirrored only when ``config.mirror`` asks for it."""
    rng = np.random.default_rng([config.seed, photo_index, crop_index])
    out = [Augmentation()]
    s = config.max_scale_change
    for k in range(n_copies):
        out.append(Augmentation(
            mirrored=config.mirror and k % 2 == 0,
            rotation_deg=float(rng.uniform(-config.max_rotation_deg, config.max_rotation_deg)),
            scale=float(math.exp(rng.uniform(-math.log1p(s), math.log1p(s)))) if s > 0 else 1.0,
        ))
    return out


def inside_photo(aug: Augmentation, crop: PlannedCrop, width: int, height: int) -> Augmentation:
    """``aug`` zoomed in just enough that its rotated window samples only the photo's pixels."""
    theta = math.radians(abs(aug.rotation_deg))
    spread = math.cos(theta) + math.sin(theta)  # the rotated square's bounding box / its side
    cx, cy = crop.centre
    room = min(cx, width - cx, cy, height - cy)  # half the widest window centred here
    needed = crop.w * spread / (2.0 * room) if room > 0 else aug.scale
    return aug if aug.scale >= needed else Augmentation(aug.mirrored, aug.rotation_deg, needed)


def sampled_region(crop: PlannedCrop, aug: Augmentation) -> tuple[tuple[int, int], tuple[int, int]]:
    """(original_size (h, w), crop_top_left (top, left)) of what one copy shows, in photo pixels
    (a rotated copy: its unrotated square)."""
    side = crop.w / aug.scale
    cx, cy = crop.centre
    return (round(side), round(side)), (round(cy - side / 2.0), round(cx - side / 2.0))


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
    # the window lies inside the photo (inside_photo); replicate covers only sub-pixel rounding
    out = cv2.warpAffine(pixels, m, (resolution, resolution), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    if aug.mirrored:
        out = np.ascontiguousarray(out[:, ::-1])
    return out


def prepare_instance_images(photos: Sequence[Path], boxes: Sequence[Box], out_dir: Path,
                            config: PrepareConfig) -> PreparedDataset:
    """Crop (every framing of the plan), augment and caption every usable photo into ``out_dir``
    (PNG) plus ``dataset.json``."""
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
        for c, crop in enumerate(crop_plan(box, width, height, config.framings)):
            for j, aug in enumerate(augmentations(config.augment_copies, config, i, c)):
                aug = inside_photo(aug, crop, width, height) if j else aug
                path = out_dir / f"instance-{i:03d}-{c}-{j}.png"
                Image.fromarray(render_crop(pixels, crop.centre, crop.w, config.resolution, aug)).save(path)
                size, top_left = sampled_region(crop, aug)
                images.append(PreparedImage(path=path, caption=config.caption(crop.framing),
                                            source=Path(photo).name, augmentation=aug, framing=crop.framing,
                                            original_size=size, crop_top_left=top_left))
    dataset = PreparedDataset(root=out_dir, images=tuple(images), identifier=config.identifier,
                              instance_prompt=config.instance_prompt,
                              class_prompt=config.class_prompt, resolution=config.resolution)
    dataset.save()
    return dataset
