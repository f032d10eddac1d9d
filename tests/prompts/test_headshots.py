"""prompts/headshots.toml linted with the real CLIP BPE vocabulary (issue 22).

The tiny test tokenizer knows every prompt word as one token, so it cannot tell a prompt that
overflows CLIP's 77-token window. The real vocabulary ships in the open-clip-torch wheel: it is
fetched once with pip into the asset cache (as the sample photos are) and read by the project's
own BPE code (handlers/sdxl/tokenizer.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from handlers.generate.prompts import HAND_WORDS, load_prompt_set
from handlers.sdxl.tokenizer import clip_merge_ranks, clip_token_count
from processor.devkit.samples import default_cache_dir

CLIP_WINDOW = 77
OPEN_CLIP = "open-clip-torch==2.32.0"  # any release: the BPE file has not changed since CLIP's
BPE_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
SUBJECTS = (None, "man", "woman")


@pytest.fixture(scope="module")
def clip_ranks() -> dict[tuple[str, str], int]:
    cache = default_cache_dir() / "clip-bpe"
    bpe = cache / "bpe_simple_vocab_16e6.txt.gz"
    if not bpe.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "--disable-pip-version-check",
                        "--only-binary=:all:", "-d", str(cache), OPEN_CLIP], check=True)
        [wheel] = cache.glob("open_clip_torch-*.whl")
        with zipfile.ZipFile(wheel) as zf:
            bpe.write_bytes(zf.read(BPE_MEMBER))
        wheel.unlink()
    return clip_merge_ranks(bpe)


def test_the_real_vocabulary_counts_tokens_as_clip_does(clip_ranks) -> None:
    assert len(clip_ranks) == 49152 - 256 - 2
    assert clip_token_count("a photo of a man", clip_ranks) == 7  # each word one token, plus BOS/EOS
    assert clip_token_count("head-and-shoulders", clip_ranks) == 2 + 5  # head - and - shoulders
    assert clip_token_count("sks", clip_ranks) == 2 + 1


@pytest.mark.parametrize("subject", SUBJECTS)
def test_every_prompt_fits_clips_77_tokens_for_every_class(clip_ranks, subject) -> None:
    prompts = load_prompt_set().for_subject(subject)
    rendered = prompts.render("sks")
    over = {i + 1: n for i, p in enumerate(rendered) if (n := clip_token_count(p, clip_ranks)) > CLIP_WINDOW}
    assert over == {}, f"prompts over {CLIP_WINDOW} tokens (number: tokens): {over}"
    assert clip_token_count(prompts.negative_prompt, clip_ranks) <= CLIP_WINDOW
    assert clip_token_count(prompts.render_instance("sks"), clip_ranks) <= CLIP_WINDOW


def test_at_least_sixty_prompts_varied_in_framing_without_hands_or_either_or_attire() -> None:
    ps = load_prompt_set()
    assert len(ps) >= 60
    framings = {f: sum(f in p for p in ps.prompts) for f in ("close-up", "head-and-shoulders", "waist-up")}
    assert all(n >= 10 for n in framings.values()), framings
    for subject in SUBJECTS:
        for prompt in ps.render("sks", subject):
            words = set(re.findall(r"[a-z]+", prompt.lower()))
            assert not words & HAND_WORDS, prompt
            assert not {"teeth", "grin", "laughing"} & words, prompt
            assert " or " not in f" {prompt} ", prompt
            assert "natural skin texture" in prompt and "subtle film grain" in prompt
            assert not {"photorealistic", "ultra"} & words, prompt
    for name, by_class in ps.attire.items():
        assert set(by_class) == {"person", "man", "woman"}, name
        assert all(" or " not in f" {text} " for text in by_class.values()), name
    negative = ps.negative_prompt.lower()
    assert all(w in negative for w in ("plastic", "waxy", "airbrushed", "cgi", "doll")), negative


def test_the_class_and_its_outfits_follow_the_subject() -> None:
    ps = load_prompt_set()
    man, woman, person = (ps.for_subject(s) for s in ("man", "woman", None))
    assert (man.class_prompt, woman.class_prompt, person.class_prompt) == \
        ("a photo of a man", "a photo of a woman", "a photo of a person")
    assert all("sks man" in p and "person" not in p for p in man.render("sks"))
    assert any("blouse" in p for p in woman.render("sks")) and not any("blouse" in p for p in man.render("sks"))
    assert any(" tie" in p for p in man.render("sks")) and not any(" tie" in p for p in woman.render("sks"))
    with pytest.raises(ValueError, match="man"):
        ps.for_subject("robot")
