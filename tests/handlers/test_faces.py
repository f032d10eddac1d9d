"""The deepface wrapper with real offline weights: detection, embeddings, identity."""

from __future__ import annotations

import os

import numpy as np
import pytest

from handlers.faces import (
    DLIB_WEIGHT_FILES,
    FaceAnalyzer,
    FaceModelConfig,
    cosine_distance,
    identity_distance,
    install_weights,
    threshold_for,
)
from handlers.images import load_image


@pytest.fixture(scope="module")
def photos(sample_sources):
    return {name: load_image(sample_sources.path(name)) for name in
            ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "astronaut.png",
             "grace_hopper.jpg")}


def test_install_weights_copies_the_dlib_files_once(tmp_path):
    paths = install_weights(tmp_path)
    assert [p.name for p in paths] == list(DLIB_WEIGHT_FILES)
    assert all(p.parent == tmp_path / ".deepface" / "weights" and p.stat().st_size > 5e5 for p in paths)
    mtimes = [p.stat().st_mtime_ns for p in paths]
    assert install_weights(tmp_path) == paths
    assert [p.stat().st_mtime_ns for p in paths] == mtimes


def test_detect_finds_the_one_face_with_a_plausible_box(face_analyzer, photos):
    faces = face_analyzer.detect(photos["obama.jpg"])
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 250 < w < 400 and 250 < h < 400 and 250 < x + w / 2 < 650 and 150 < y + h / 2 < 450


def test_detect_on_a_downscaled_copy_maps_boxes_back(deepface_home, photos):
    full = FaceAnalyzer(FaceModelConfig(weights_home=deepface_home, detect_max_side=None))
    small = FaceAnalyzer(FaceModelConfig(weights_home=deepface_home, detect_max_side=800))
    a, b = full.detect(photos["obama3.jpg"])[0].box, small.detect(photos["obama3.jpg"])[0].box
    assert np.abs(np.array(a) - np.array(b)).max() < 0.15 * a[2]


def test_no_face_in_a_photo_without_one(face_analyzer, sample_sources):
    assert face_analyzer.detect(load_image(sample_sources.path("retina.jpg"), max_side=1024)) == []


def test_embeddings_are_unit_float32_vectors(face_analyzer, photos):
    face = face_analyzer.faces(photos["obama.jpg"])[0]
    assert face.embedding.dtype == np.float32 and face.embedding.shape == (128,)
    assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)


def test_same_person_is_under_the_threshold_and_others_over_it(face_analyzer, photos):
    emb = {k: face_analyzer.faces(v)[0].embedding for k, v in photos.items()}
    t = face_analyzer.threshold
    obama = [emb["obama.jpg"], emb["obama2.jpg"], emb["obama3.jpg"]]
    assert max(cosine_distance(a, b) for a in obama for b in obama) < t
    for other in ("biden.jpg", "astronaut.png", "grace_hopper.jpg"):
        assert identity_distance(emb[other], obama) > t
        assert min(cosine_distance(emb[other], o) for o in obama) > t
    assert identity_distance(emb["obama2.jpg"], [emb["obama.jpg"], emb["obama3.jpg"]]) < t


def test_mirrored_photo_stays_the_same_person(face_analyzer, photos):
    img = photos["obama2.jpg"]
    a = face_analyzer.faces(img)[0].embedding
    b = face_analyzer.faces(np.ascontiguousarray(img[:, ::-1]))[0].embedding
    assert cosine_distance(a, b) < face_analyzer.threshold / 2


def test_cosine_and_identity_distance_basics():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    assert cosine_distance(a, a * 3) == pytest.approx(0.0)
    assert cosine_distance(a, b) == pytest.approx(1.0)
    assert identity_distance(np.array([1.0, 1.0]), [a, b]) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        identity_distance(a, [])


def test_thresholds_are_per_recognizer():
    assert threshold_for("Dlib") == 0.09
    with pytest.raises(ValueError):
        threshold_for("ArcFace")  # deepface's recognizers are not on the analyzer's path


def test_weights_home_is_exported_for_deepface(face_analyzer, deepface_home):
    assert os.environ["DEEPFACE_HOME"] == str(deepface_home)


def test_the_cnn_runs_only_where_hog_finds_no_face(face_analyzer, photos, sample_sources):
    before = dict(face_analyzer.times.calls)
    faces = face_analyzer.detect(photos["obama.jpg"])
    assert faces[0].detector == "hog" and len(faces[0].landmarks) == 5
    assert face_analyzer.times.calls.get("cnn", 0) == before.get("cnn", 0)
    assert face_analyzer.detect(load_image(sample_sources.path("retina.jpg"), max_side=1024)) == []
    assert face_analyzer.times.calls["cnn"] == before.get("cnn", 0) + 1
    assert face_analyzer.times.calls["hog"] == before.get("hog", 0) + 2


def test_landmarks_put_the_persons_left_eye_on_the_viewers_right(face_analyzer, photos):
    face = face_analyzer.detect(photos["obama.jpg"])[0]
    x, y, w, h = face.box
    assert face.left_eye[0] > face.right_eye[0]
    assert all(x <= px <= x + w and y <= py <= y + h for px, py in face.landmarks)
    nose = face.landmarks[4]
    assert nose[1] > max(face.left_eye[1], face.right_eye[1])  # below the eyes


def test_the_analyzer_refuses_unknown_models(deepface_home):
    with pytest.raises(ValueError):
        FaceAnalyzer(FaceModelConfig(detector="opencv"))
    with pytest.raises(ValueError):
        FaceAnalyzer(FaceModelConfig(recognizer="ArcFace"))
