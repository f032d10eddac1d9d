"""Offline evaluation: face metrics on real photos, CLIP/DINO code paths on tiny random models
saved and loaded through ``from_pretrained`` (real weights never reach CI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from handlers.evaluate import (
    EvalConfig,
    distribution,
    evaluate,
    format_report,
    mean_cross_similarity,
    pairwise_cosine_distances,
    thumbnail_vectors,
)


def _pictures(n: int, seed: int, side: int = 96) -> list[np.ndarray]:
    """Distinct smooth pictures (gradients and discs), different per seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    out = []
    for _ in range(n):
        a, b, c = rng.uniform(0, 1, 3)
        cx, cy, r = rng.uniform(0.2, 0.8, 3) * [1, 1, 0.4]
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < r**2).astype(float)
        img = np.stack([a * xx + (1 - a) * disc, b * yy, c * (1 - xx) * disc + 0.2], axis=-1)
        out.append((np.clip(img, 0, 1) * 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight CLIP with SDXL's tiny tokenizer, saved like a hub folder."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    from handlers.sdxl.tokenizer import build_clip_vocab, write_tokenizer

    out = tmp_path_factory.mktemp("tiny-clip")
    vocab, merges = build_clip_vocab()
    write_tokenizer(out / "_tok", vocab, merges, pad="<|endoftext|>")
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77,
                         bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                         pad_token_id=vocab["<|endoftext|>"]),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=4),
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(out)
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=CLIPTokenizer.from_pretrained(out / "_tok"),
    )
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_dino_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight ViT with an image processor: the shape of facebook/dino-vits16."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    out = tmp_path_factory.mktemp("tiny-dino")
    torch.manual_seed(0)
    ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64), add_pooling_layer=False).save_pretrained(out)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(out)
    return out


def test_distribution_reports_percentiles_and_handles_empty() -> None:
    d = distribution([0.1 * i for i in range(11)])
    assert d["count"] == 11 and d["min"] == 0.0 and d["max"] == 1.0 and d["median"] == 0.5
    assert d["p10"] == pytest.approx(0.1) and d["p90"] == pytest.approx(0.9)
    assert distribution([]) == {"count": 0}


def test_pairwise_distances_are_zero_for_copies_and_positive_for_different_pictures() -> None:
    pics = _pictures(3, seed=1)
    same = pairwise_cosine_distances(thumbnail_vectors([pics[0], pics[0].copy()]))
    assert same.shape == (1,) and same[0] == pytest.approx(0.0, abs=1e-9)
    diff = pairwise_cosine_distances(thumbnail_vectors(pics))
    assert diff.shape == (3,) and (diff > 0.01).all()
    assert mean_cross_similarity(np.eye(3), np.eye(3)) == pytest.approx(1 / 3)


def test_clip_and_dino_metrics_run_from_local_folders(tiny_clip_dir: Path, tiny_dino_dir: Path) -> None:
    headshots, photos = _pictures(4, seed=2), _pictures(3, seed=3)
    prompts = [f"professional headshot of sks person, grey suit, studio light {i}" for i in range(4)]
    report = evaluate(headshots, photos, prompts, analyzer=None,
                      config=EvalConfig(clip_model=tiny_clip_dir, dino_model=tiny_dino_dir))
    assert report.clip_t is not None and -1.0 <= report.clip_t <= 1.0
    assert report.clip_i is not None and -1.0 <= report.clip_i <= 1.0
    assert report.dino is not None and -1.0 <= report.dino <= 1.0
    assert report.diversity["dino"]["count"] == 6 and report.diversity["pixel"]["count"] == 6
    assert set(report.skipped) == {"faces"}


def test_clip_i_and_dino_are_one_when_every_headshot_is_the_single_reference_photo(
        tiny_clip_dir: Path, tiny_dino_dir: Path) -> None:
    photo = _pictures(1, seed=4)[0]
    report = evaluate([photo, photo.copy()], [photo], None, analyzer=None,
                      config=EvalConfig(clip_model=tiny_clip_dir, dino_model=tiny_dino_dir))
    assert report.clip_i == pytest.approx(1.0, abs=1e-5)
    assert report.dino == pytest.approx(1.0, abs=1e-5)
    assert report.clip_t is None and "clip_t" in report.skipped
    other = evaluate([photo], _pictures(1, seed=5), None, analyzer=None,
                     config=EvalConfig(clip_model=tiny_clip_dir, dino_model=tiny_dino_dir))
    assert other.clip_i < 0.9999 and other.dino < 0.9999


def test_missing_model_folders_are_skipped_with_a_reason(tmp_path: Path) -> None:
    report = evaluate(_pictures(2, seed=6), _pictures(2, seed=7), None, analyzer=None,
                      config=EvalConfig(clip_model=tmp_path / "absent"))
    assert report.clip_i is None and report.dino is None
    assert "absent" in report.skipped["clip"] and "not configured" in report.skipped["dino"]
    text = format_report(report)
    assert "skipped clip" in text and "pairwise diversity (pixel)" in text


def test_face_metrics_on_real_photos_separate_the_person_from_a_stranger(
        face_analyzer, selection_photos) -> None:
    p = selection_photos
    headshots = [p.shots[0], p.shots[1], p.strangers["biden"], p.no_face]
    report = evaluate(headshots, p.references, None, face_analyzer)
    assert report.faces_found["exactly_one"] == 3 and report.faces_found["none"] == 1
    assert report.faces_found["reference_photos_with_one_face"] == 6
    ident = report.identity_similarity
    assert ident["count"] == 3 and ident["threshold_similarity"] == pytest.approx(1 - face_analyzer.threshold)
    # the user's own new shots pass, the stranger does not
    assert ident["max"] > 0.95 and ident["min"] < 1 - face_analyzer.threshold
    assert ident["pass_rate"] == pytest.approx(2 / 3, abs=1e-4)
    face_div = report.diversity["face"]
    assert face_div["count"] == 3 and face_div["max"] > 0.1 > face_div["min"]
    assert "identity similarity" in format_report(report)
