"""The cached tiny model's folder is versioned by what builds it, so a changed builder rebuilds."""

from __future__ import annotations

from pathlib import Path

from processor.devkit.tiny_sdxl import TinySDXLSpec, model_version
from processor.devkit.tiny_sdxl import tiny_model_dir as versioned_dir


def test_version_follows_the_spec_and_names_the_cached_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
    version = model_version()
    assert version == model_version(TinySDXLSpec()) and len(version) == 12
    assert model_version(TinySDXLSpec(text_hidden=64)) != version
    assert tiny_model_dir.name == f"tiny-sdxl-{version}"  # the session's model is this version's
    assert versioned_dir(tmp_path) == tmp_path / f"tiny-sdxl-{version}"


def test_a_changed_vocabulary_changes_the_version(monkeypatch) -> None:  # noqa: ANN001
    import processor.devkit.tiny_sdxl as tiny

    before = model_version()
    real = tiny.build_clip_vocab
    monkeypatch.setattr(tiny, "build_clip_vocab", lambda: real(["only", "these", "words"]))
    assert model_version() != before
