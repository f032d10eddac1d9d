"""The tiny model's hand-made CLIP tokenizer fits the headshot prompts as SDXL's real one does.

SDXL's real tokenizer gives the prompts of ``prompts/headshots.toml`` 24-39 tokens (BOS and
EOS included): whole words. A tokenizer that spells words letter by letter gave 48-176, so
every long prompt was truncated at 77 and the demo's console filled with warnings.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from transformers import CLIPTokenizer

from handlers.generate.prompts import load_prompt_set
from handlers.sdxl.tokenizer import bpe, build_clip_vocab, pretokens, prompt_words
from handlers.train.identifier import choose_identifier

# CLIP's own BPE gives these prompts 36-53 tokens as "person" (tests/prompts/test_headshots.py counts
# them); the tiny vocabulary's whole words make a few a token or two shorter, never letter soup.
REAL_RANGE = (32, 53)


@pytest.fixture(scope="module")
def tokenizers(tiny_model_dir: Path) -> tuple[CLIPTokenizer, CLIPTokenizer]:
    return (CLIPTokenizer.from_pretrained(tiny_model_dir / "tokenizer"),
            CLIPTokenizer.from_pretrained(tiny_model_dir / "tokenizer_2"))


def test_every_prompt_fits_77_tokens_with_counts_in_the_real_tokenizers_range(tokenizers) -> None:
    ps = load_prompt_set()
    identifier = choose_identifier(*tokenizers)
    for tok in tokenizers:
        counts = [len(tok(p)["input_ids"]) for p in ps.render(identifier)]
        assert REAL_RANGE[0] <= min(counts) and max(counts) <= REAL_RANGE[1], (min(counts), max(counts))
        assert len(tok(ps.negative_prompt)["input_ids"]) <= tok.model_max_length == 77
        assert len(tok(ps.render_instance(identifier))["input_ids"]) == 7  # a photo of <id> person


def test_every_prompt_word_is_one_whole_word_token(tokenizers) -> None:
    tok, _ = tokenizers
    words = prompt_words()
    assert len(words) > 200
    split = [w for w in words if tok.tokenize(w) != [w + "</w>"]]
    assert split == []


def test_the_identifier_is_still_the_rarest_candidate(tokenizers) -> None:
    assert choose_identifier(*tokenizers) == "wpz"


def test_bpe_model_matches_the_transformers_tokenizer_on_words_in_and_out_of_the_vocabulary(
        tmp_path: Path) -> None:
    from handlers.sdxl.tokenizer import write_tokenizer

    vocab, merges = build_clip_vocab(["studio", "stud", "dio", "tudor", "lighting", "light"])
    write_tokenizer(tmp_path, vocab, merges, pad="!")
    tok = CLIPTokenizer.from_pretrained(tmp_path)
    ranks = {tuple(m.split(" ")): i for i, m in enumerate(merges)}
    rng = random.Random(0)
    samples = ["studio", "stud", "dio", "tudor", "lighting", "light", "studios", "lightdio"]
    samples += ["".join(rng.choice("studiolgh") for _ in range(rng.randint(2, 9))) for _ in range(200)]
    for word in samples:
        assert bpe(word, ranks) == tok.tokenize(word), word
    assert pretokens("85mm lens, three-quarter") == ["8", "5", "mm", "lens", ",", "three", "-", "quarter"]
