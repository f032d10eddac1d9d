"""Settings reach each handler's config unchanged; checkpoints are spaced sensibly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from processor.settings import Settings
from processor.stages import (
    checkpoint_every,
    extra_round,
    generate_config,
    select_config,
    train_config,
)


def test_train_config_carries_the_training_settings() -> None:
    s = Settings(base_model="/models/x", train_method="full", train_steps=50, prior_loss_weight=0.5,
                 instance_loss_weight=2.0, num_class_images=7, resolution=512, mixed_precision="no",
                 device="cpu", seed=9, train_text_encoder=True)
    c = train_config(s)
    assert (c.base_model, c.method, c.steps, c.prior_loss_weight, c.instance_loss_weight) == \
        ("/models/x", "full", 50, 0.5, 2.0)
    assert (c.num_class_images, c.resolution, c.mixed_precision, c.device, c.seed, c.train_text_encoder) == \
        (7, 512, "no", "cpu", 9, True)


def test_generate_and_select_configs_carry_their_settings() -> None:
    s = Settings(num_images=12, inference_steps=7, guidance_scale=6.5, resolution=256,
                 generation_batch_size=3, seed=5, max_regenerations=2, selection_mode="report")
    g = generate_config(s, "job-1")
    assert (g.num_images, g.steps, g.guidance_scale, g.resolution, g.batch_size, g.seed, g.max_regenerations) == \
        (12, 7, 6.5, 256, 3, 5, 2)
    assert select_config(s).mode == "report"


def test_about_ten_checkpoints_per_run_but_never_every_step() -> None:
    assert checkpoint_every(Settings(train_steps=1000)) == 100
    assert checkpoint_every(Settings(train_steps=60)) == 6
    assert checkpoint_every(Settings(train_steps=8)) == 2


def test_the_selection_threshold_setting_reaches_the_workers_selection() -> None:
    assert select_config(Settings(selection_threshold=0.31)).threshold == 0.31
    assert select_config(Settings()).threshold is None  # the recognizer's own


def test_the_extra_round_tries_harder_from_other_seeds() -> None:
    s = Settings(max_regenerations=3, seed=7)
    extra = extra_round(s)
    assert extra.max_regenerations == 6 and extra.seed != s.seed
    assert extra_round(Settings(max_regenerations=0)).max_regenerations == 2


class _GreyFrames:
    """An image source that records what it was asked for and draws no face (every image fails)."""

    def __init__(self) -> None:
        self.requests: list[tuple[int, int, int]] = []

    def generate_images(self, requests):  # noqa: ANN001, ANN201
        self.requests.extend((r.prompt_index, r.attempt, r.seed) for r in requests)
        return [np.full((64, 64, 3), 128, np.uint8) for _ in requests]


def _drawn_seeds(settings: Settings, job_id: str, analyzer, out: Path) -> list[tuple[int, int, int]]:  # noqa: ANN001
    """(prompt, attempt, seed) of every image one generation round asks for: first round, every
    regeneration (nothing passes), then the extra round, as processor/job/steps.py runs them."""
    from handlers.generate.loop import generate_and_select
    from handlers.generate.prompts import PromptSet

    prompts = PromptSet(prompts=("a photo of {identifier} person, grey", "a photo of {identifier} person, blue"),
                        negative_prompt="blurry", class_prompt="a photo of a person",
                        instance_prompt="a photo of {identifier} person")
    refs = np.ones((1, 128), np.float32) / np.sqrt(128)
    source = _GreyFrames()
    for round_settings in (settings, extra_round(settings)):
        result = generate_and_select(source, prompts, "sks", refs, out, generate_config(round_settings, job_id),
                                     select_config(round_settings), analyzer)
        assert result.records == ()
    return source.requests


def test_each_job_draws_its_own_seeds_and_a_rerun_of_the_job_draws_the_same_ones(tmp_path: Path,
                                                                                 face_analyzer) -> None:
    """Issue 22: every customer got the same noise (seeds from the global seed alone)."""
    settings = Settings(num_images=2, max_regenerations=1, generation_batch_size=4, overlap_scoring=False)
    first = _drawn_seeds(settings, "job-a", face_analyzer, tmp_path / "a1")
    again = _drawn_seeds(settings, "job-a", face_analyzer, tmp_path / "a2")  # the job resumed on another worker
    other = _drawn_seeds(settings, "job-b", face_analyzer, tmp_path / "b")
    # 2 prompts x (1 + 1 regeneration), then the extra round's 2 x (1 + 3)
    assert len(first) == 4 + 8 and len({seed for _, _, seed in first}) == 12
    assert first == again
    assert [(p, a) for p, a, _ in other] == [(p, a) for p, a, _ in first]
    assert not {seed for _, _, seed in first} & {seed for _, _, seed in other}


def test_validation_reports_photo_files_under_the_persons_names_with_refusals(tmp_path, face_analyzer) -> None:
    """Issue 15: what ``download_photos`` hands the pipeline reaches the gate with the person's
    own names (a local copy may be hash-named) and the refusals decided before download."""
    from processor.stages import FaceModels, PhotoFiles, run_validate

    (tmp_path / "photo-abc.jpg").write_bytes(b"<html>not a photo</html>")
    files = PhotoFiles([tmp_path / "photo-abc.jpg", tmp_path / "huge.jpg", tmp_path / "gone.jpg"],
                       names=["é" * 150 + ".jpg", "huge.jpg", "gone.jpg"],
                       refused={"huge.jpg": ("too_large", "30 MB"), "gone.jpg": ("missing", "never uploaded")})
    report = run_validate(files, Settings(), FaceModels(Settings(), _analyzer=face_analyzer))
    assert [(p.file, p.reason) for p in report.photos] == [
        ("é" * 150 + ".jpg", "unreadable"), ("huge.jpg", "too_large"), ("gone.jpg", "missing")]
    assert "never" not in report.photos[0].message and "Upload it again" in report.photos[2].message


def test_a_manifest_asking_for_portraits_sets_its_jobs_formats_and_generation_canvas() -> None:
    from processor.manifest import parse_manifest
    from processor.pipeline import job_settings

    worker = Settings(resolution=1024)
    old = parse_manifest(b'{"version": 1, "email": "ada@example.com"}')
    assert job_settings(worker, old) is worker and generate_config(worker, "j").canvas == (1024, 1024)
    asks = parse_manifest(b'{"version": 1, "email": "ada@example.com", "formats": ["square", "portrait"]}')
    job = job_settings(worker, asks)
    assert job.formats == ("square", "portrait") and worker.formats == ("square",)
    assert generate_config(job, "j").formats == ("square", "portrait") and generate_config(job, "j").canvas == (896, 1152)


def test_the_formats_setting_is_checked_like_the_manifest_field(monkeypatch) -> None:  # noqa: ANN001
    import pytest

    from processor.devkit.local_stack import settings_env
    from processor.errors import SettingsError
    from processor.settings import load_settings

    assert Settings(formats=["portrait", "square"]).formats == ("square", "portrait")
    with pytest.raises(ValueError, match='must include "square"'):
        Settings(formats=["portrait"])
    for text in ("square,portrait", '["square", "portrait"]', settings_env(Settings(formats=["square", "portrait"]))
                 ["HEADSHOTS_FORMATS"]):
        monkeypatch.setenv("HEADSHOTS_FORMATS", text)
        assert load_settings().formats == ("square", "portrait")
    monkeypatch.setenv("HEADSHOTS_FORMATS", "portrait")  # one readable line, not a traceback
    with pytest.raises(SettingsError, match='HEADSHOTS_FORMATS: Value error, must include "square"'):
        load_settings()


def test_the_face_settings_name_the_analyzers_paths_and_refuse_the_old_deepface_names() -> None:
    import pydantic

    from processor.stages import face_model_config

    config = face_model_config(Settings(face_detector="cnn"))
    assert (config.detector, config.recognizer) == ("cnn", "Dlib")
    assert face_model_config(Settings()).detector == "hog+cnn"
    with pytest.raises(pydantic.ValidationError):
        Settings(face_detector="opencv")


def test_the_manifests_subject_names_the_class_of_captions_prior_and_its_cache_key() -> None:
    """Issue 22: the class was always "person"; a manifest's "man" / "woman" now trains as that class."""
    from processor.stages import class_images_key, prepare_config

    s = Settings()
    woman, unset = prepare_config(s, "sks", "woman"), prepare_config(s, "sks", None)
    assert (woman.class_prompt, woman.caption("close-up")) == ("a photo of a woman", "a close-up photo of sks woman")
    assert unset.class_prompt == "a photo of a person" and not woman.mirror
    assert class_images_key(s, woman.class_prompt) != class_images_key(s, unset.class_prompt)
    with pytest.raises(ValueError, match="man"):
        prepare_config(s, "sks", "robot")


def test_results_record_the_recipe() -> None:
    from processor.stages import run_settings

    recipe = run_settings(Settings())["recipe"]
    assert (recipe["noise_offset"], recipe["snr_gamma"], recipe["batch_size"]) == (0.0357, 5.0, 4)
    assert recipe["instance_samples"] == {"per_photo": 200, "min": 2000, "max": 2000}
    assert recipe["class_batch_size"] == 1
    assert recipe["text_encoder_lr"] is None and recipe["mirror_photos"] is False
    assert run_settings(Settings(train_text_encoder=True))["recipe"]["text_encoder_lr"] == 5e-6
