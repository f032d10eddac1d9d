"""A face analyzer whose answers the test sets, through the selector's ``Analyzer`` protocol.

The issue asks for it: the judge's decisions (the pool's best, the checkpoint choice, the
detail pass's keep) are tested with a scorer whose answer is known. Each image carries its
answer in its pixels: the grey level at the face box's centre is looked up in ``distances``
(grey level -> identity distance to the reference ``[1, 0]``); a level not in the table means
no face.
"""

from __future__ import annotations

import math

import numpy as np

from handlers.faces import Face

REFERENCES = np.array([[1.0, 0.0]], dtype=np.float32)


def embedding_at(distance: float) -> np.ndarray:
    """A unit vector at cosine distance ``distance`` from ``REFERENCES[0]``."""
    c = 1.0 - distance
    return np.array([c, math.sqrt(max(0.0, 1.0 - c * c))], dtype=np.float32)


class ScriptedAnalyzer:
    def __init__(self, distances: dict[int, float], box: tuple[int, int, int, int], threshold: float = 0.5) -> None:
        self.distances = distances
        self.box = box
        self._threshold = threshold
        self.calls = 0

    @property
    def threshold(self) -> float:
        return self._threshold

    def faces(self, image_rgb: np.ndarray) -> list[Face]:
        self.calls += 1
        x, y, w, h = self.box
        level = int(image_rgb[y + h // 2, x + w // 2, 0])
        if level not in self.distances:
            return []
        return [Face(box=self.box, confidence=0.99, embedding=embedding_at(self.distances[level]))]


def grey(level: int, size: int = 64) -> np.ndarray:
    return np.full((size, size, 3), level, dtype=np.uint8)
