"""Face detection and identity embeddings: one thin wrapper over deepface for every stage.

Validation (is this one person, is the face big and sharp?) and generated-image selection
(does this headshot still look like them?) both ask the same two questions, so they share
this module. The detector and recognizer are names from deepface's model table; tests and
the local demo use the offline pair ``opencv`` + ``Dlib`` (weights ship in PyPI packages,
see :func:`install_weights`), production may bake ``retinaface`` + ``ArcFace``.

Conventions: images are RGB ``uint8`` arrays (H, W, 3); boxes are ``(x, y, w, h)`` in the
pixel coordinates of the array given to :meth:`FaceAnalyzer.detect`; embeddings are
L2-normalised float32 vectors compared by cosine distance.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

# Cosine-distance thresholds for "same person", per recognizer. They are deepface's published
# thresholds (deepface.modules.verification.find_threshold) except Dlib: we feed Dlib the
# 5-landmark-aligned chip it was trained on (deepface feeds a plain box crop, threshold 0.07).
# dlib's own rule is a Euclidean distance of 0.6 between raw descriptors, whose norm is about
# 1.4: 0.6 / 1.4 = 0.43 between unit vectors, i.e. a cosine distance of 0.43**2 / 2 = 0.09.
# On the sample photos (tests/fixtures/faces.py) one person stays under 0.06, two people
# over 0.10.
THRESHOLDS: dict[str, float] = {
    "Dlib": 0.09,
    "ArcFace": 0.68,
    "Facenet512": 0.30,
    "Facenet": 0.40,
    "VGG-Face": 0.68,
    "SFace": 0.593,
    "GhostFaceNet": 0.65,
    "OpenFace": 0.10,
    "DeepFace": 0.23,
    "DeepID": 0.015,
    "Buffalo_L": 0.55,
}

# The dlib model files deepface looks for under $DEEPFACE_HOME/.deepface/weights/: the ResNet
# recognizer and the 5-point landmark model used by deepface's ``dlib`` detector.
DLIB_WEIGHT_FILES: tuple[str, ...] = (
    "dlib_face_recognition_resnet_model_v1.dat",
    "shape_predictor_5_face_landmarks.dat",
)

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class FaceModelConfig:
    """Which deepface models to use and where their weights live.

    ``weights_home`` becomes ``$DEEPFACE_HOME`` (deepface reads weights from
    ``<home>/.deepface/weights/``); ``None`` keeps whatever the environment says.
    ``detect_max_side`` is the longest side detection runs at: bigger inputs are downscaled
    for the detector and boxes mapped back (``None``: detect at full resolution).
    ``crop_margin`` pads the face box on every side before embedding (fraction of the box;
    recognizers other than Dlib, which gets dlib's own landmark-aligned chip instead).
    """

    detector: str = "opencv"
    recognizer: str = "Dlib"
    weights_home: Path | None = None
    detect_max_side: int | None = 640
    crop_margin: float = 0.0


@dataclass
class Face:
    """One detected face. ``box`` is (x, y, w, h) in the analysed image's pixels."""

    box: Box
    confidence: float
    embedding: np.ndarray | None = None
    left_eye: tuple[int, int] | None = None
    right_eye: tuple[int, int] | None = None

    @property
    def area(self) -> int:
        return int(self.box[2]) * int(self.box[3])


def install_weights(home: Path) -> list[Path]:
    """Copy dlib's model files from the ``face_recognition_models`` package into
    ``home/.deepface/weights/`` so deepface never tries to download them. Idempotent:
    files already there with the same size are left alone. Returns the installed paths."""
    target = Path(home) / ".deepface" / "weights"
    target.mkdir(parents=True, exist_ok=True)
    source = _face_recognition_models_dir()
    installed: list[Path] = []
    for name in DLIB_WEIGHT_FILES:
        src, dst = source / name, target / name
        if not src.is_file():
            raise FileNotFoundError(f"{src} is missing: reinstall face-recognition-models")
        if not dst.is_file() or dst.stat().st_size != src.stat().st_size:
            tmp = dst.with_suffix(dst.suffix + ".part")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        installed.append(dst)
    return installed


def _face_recognition_models_dir() -> Path:
    """Where the package keeps its .dat files, found without importing it (its __init__
    needs pkg_resources, which recent setuptools no longer provides)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the face-recognition-models package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def l2_normalize(vector: np.ndarray) -> np.ndarray:
    """Unit-length float32 copy (a zero vector stays zero)."""
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cosine similarity; 0 for identical directions, up to 2 for opposite ones."""
    a_n, b_n = l2_normalize(a), l2_normalize(b)
    return float(1.0 - float(np.dot(a_n, b_n)))


def identity_centroid(references: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """The normalised mean of the normalised reference embeddings: the set's identity."""
    refs = np.stack([l2_normalize(r) for r in references])
    return l2_normalize(refs.mean(axis=0))


def identity_distance(embedding: np.ndarray, references: np.ndarray | list[np.ndarray]) -> float:
    """Distance from one face to a SET of faces of a person: cosine distance to the
    normalised centroid of the references. The centroid averages out pose and lighting
    of single photos, so one odd reference cannot make a stranger look close (as the
    minimum over references would) nor one bad photo push the person away (as the maximum
    would). Compare with :attr:`FaceAnalyzer.threshold`."""
    if len(references) == 0:
        raise ValueError("identity_distance needs at least one reference embedding")
    return cosine_distance(embedding, identity_centroid(references))


def threshold_for(recognizer: str) -> float:
    """The "same person" cosine-distance threshold of a recognizer."""
    try:
        return THRESHOLDS[recognizer]
    except KeyError:
        raise ValueError(f"no distance threshold known for recognizer {recognizer!r}; "
                         f"known: {sorted(THRESHOLDS)}") from None


def _eye_angle(face: Face) -> float:
    """Roll of the face in degrees from its eyes (0 when unknown or implausible)."""
    if face.left_eye is None or face.right_eye is None:
        return 0.0
    (lx, ly), (rx, ry) = face.left_eye, face.right_eye
    # deepface's left eye is the person's left, i.e. on the viewer's right.
    dx, dy = lx - rx, ly - ry
    if dx <= 0:
        return 0.0
    angle = math.degrees(math.atan2(dy, dx))
    return angle if abs(angle) <= 30 else 0.0


def aligned_crop(image_rgb: np.ndarray, face: Face, margin: float) -> np.ndarray:
    """The face box padded by ``margin`` on each side, rotated upright by the eye line.

    Only the padded region (plus room for the rotation) is touched, so this costs the same
    on a 12 MP photo as on a thumbnail."""
    h_img, w_img = image_rgb.shape[:2]
    x, y, w, h = face.box
    cx, cy = x + w / 2.0, y + h / 2.0
    half = max(w, h) * (0.5 + margin)
    angle = _eye_angle(face)
    # Region big enough to hold the rotated square.
    reach = half * (math.sqrt(2.0) if angle else 1.0)
    x0, y0 = max(0, int(cx - reach)), max(0, int(cy - reach))
    x1, y1 = min(w_img, int(math.ceil(cx + reach))), min(h_img, int(math.ceil(cy + reach)))
    region = image_rgb[y0:y1, x0:x1]
    if region.size == 0:
        raise ValueError(f"face box {face.box} lies outside the {w_img}x{h_img} image")
    lcx, lcy = cx - x0, cy - y0
    if angle:
        matrix = cv2.getRotationMatrix2D((lcx, lcy), angle, 1.0)
        region = cv2.warpAffine(region, matrix, (region.shape[1], region.shape[0]),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    cx0, cy0 = max(0, int(lcx - half)), max(0, int(lcy - half))
    cx1 = min(region.shape[1], int(math.ceil(lcx + half)))
    cy1 = min(region.shape[0], int(math.ceil(lcy + half)))
    return np.ascontiguousarray(region[cy0:cy1, cx0:cx1])


class FaceAnalyzer:
    """Detector + recognizer, loaded once when the analyzer is built (not per call)."""

    def __init__(self, config: FaceModelConfig | None = None) -> None:
        self.config = config or FaceModelConfig()
        self.threshold: float = threshold_for(self.config.recognizer)
        if self.config.weights_home is not None:
            # deepface reads DEEPFACE_HOME each time it resolves a weight file.
            os.environ["DEEPFACE_HOME"] = str(self.config.weights_home)
        from deepface.modules import (
            modeling,  # heavy: imported only when faces are needed
        )

        self._detector: Any = modeling.build_model(task="face_detector",
                                                   model_name=self.config.detector)
        self._recognizer: Any = modeling.build_model(task="facial_recognition",
                                                     model_name=self.config.recognizer)
        self._input_shape: tuple[int, int] = tuple(self._recognizer.input_shape)  # type: ignore[assignment]
        self._landmarks: Any = None
        if self.config.recognizer == "Dlib":
            import dlib
            from deepface.commons import folder_utils

            path = (Path(folder_utils.get_deepface_home()) / ".deepface" / "weights"
                    / "shape_predictor_5_face_landmarks.dat")
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing: run `headshots assets`")
            self._landmarks = dlib.shape_predictor(str(path))

    def detect(self, image_rgb: np.ndarray) -> list[Face]:
        """Faces in the image, largest first, boxes in the given image's pixels."""
        _check_rgb(image_rgb)
        h, w = image_rgb.shape[:2]
        scale = 1.0
        small = image_rgb
        limit = self.config.detect_max_side
        if limit is not None and max(h, w) > limit:
            scale = limit / float(max(h, w))
            small = cv2.resize(image_rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
        regions = self._detector.detect_faces(np.ascontiguousarray(small[:, :, ::-1]))
        faces = [_to_face(r, 1.0 / scale, w, h) for r in regions]
        faces = [f for f in faces if f.box[2] > 0 and f.box[3] > 0]
        faces.sort(key=lambda f: (-f.area, f.box))
        return faces

    def embed(self, image_rgb: np.ndarray, face: Face) -> np.ndarray:
        """Identity embedding of one face (L2-normalised float32). Dlib gets the chip dlib's
        ResNet was trained on (5 landmarks, 25% padding); others an eye-aligned box crop."""
        _check_rgb(image_rgb)
        if self._landmarks is not None:
            return self.embed_crop(self._dlib_chip(image_rgb, face))
        return self.embed_crop(aligned_crop(image_rgb, face, self.config.crop_margin))

    def _dlib_chip(self, image_rgb: np.ndarray, face: Face) -> np.ndarray:
        import dlib

        x, y, w, h = face.box
        image = np.ascontiguousarray(image_rgb)
        shape = self._landmarks(image, dlib.rectangle(int(x), int(y), int(x + w), int(y + h)))
        size = self._input_shape[0]
        return np.asarray(dlib.get_face_chip(image, shape, size=size, padding=0.25))

    def embed_crop(self, face_rgb: np.ndarray) -> np.ndarray:
        """Embedding of an image that is already just the face (e.g. a generated headshot
        cropped by the caller)."""
        from deepface.modules import preprocessing

        target = (self._input_shape[1], self._input_shape[0])
        batch = preprocessing.resize_image(img=np.ascontiguousarray(face_rgb[:, :, ::-1]),
                                           target_size=target)
        batch = preprocessing.normalize_input(img=batch, normalization="base")
        return l2_normalize(np.asarray(self._recognizer.forward(batch), dtype=np.float32))

    def faces(self, image_rgb: np.ndarray) -> list[Face]:
        """Detect, then embed every face found (largest first)."""
        return [replace(f, embedding=self.embed(image_rgb, f)) for f in self.detect(image_rgb)]


def _check_rgb(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")


def _to_face(region: Any, factor: float, w_img: int, h_img: int) -> Face:
    """deepface FacialAreaRegion (detector pixels) -> Face (caller's pixels, clipped)."""
    x0 = max(0, int(round(region.x * factor)))
    y0 = max(0, int(round(region.y * factor)))
    x1 = min(w_img, int(round((region.x + region.w) * factor)))
    y1 = min(h_img, int(round((region.y + region.h) * factor)))

    def eye(p: Any) -> tuple[int, int] | None:
        return None if p is None else (int(round(p[0] * factor)), int(round(p[1] * factor)))

    conf = region.confidence
    return Face(box=(x0, y0, x1 - x0, y1 - y0),
                confidence=float(conf) if conf is not None else 0.0,
                left_eye=eye(region.left_eye), right_eye=eye(region.right_eye))


__all__ = [
    "Box", "DLIB_WEIGHT_FILES", "Face", "FaceAnalyzer", "FaceModelConfig", "THRESHOLDS",
    "aligned_crop", "cosine_distance", "identity_centroid", "identity_distance",
    "install_weights", "l2_normalize", "threshold_for",
]
