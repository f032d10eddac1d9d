"""The rare-token identifier: one token in both SDXL tokenizers, rare, stable."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import CLIPTokenizer

from handlers.train.identifier import WORD_END, choose_identifier, is_single_token


@pytest.fixture(scope="module")
def tokenizers(tiny_model_dir: Path) -> tuple[CLIPTokenizer, CLIPTokenizer]:
    return (CLIPTokenizer.from_pretrained(tiny_model_dir / "tokenizer"),
            CLIPTokenizer.from_pretrained(tiny_model_dir / "tokenizer_2"))


def test_identifier_is_a_single_token_in_both_tokenizers(tokenizers):
    word = choose_identifier(*tokenizers)
    for tok in tokenizers:
        assert len(tok(word, add_special_tokens=False)["input_ids"]) == 1
        # and stays one token inside the caption it is trained with
        caption = tok.tokenize(f"a photo of {word} person")
        assert caption == ["a" + WORD_END, "photo" + WORD_END, "of" + WORD_END, word + WORD_END,
                           "person" + WORD_END]


def test_identifier_is_stable_across_calls_and_fresh_tokenizer_loads(tokenizers, tiny_model_dir):
    first = choose_identifier(*tokenizers)
    reloaded = (CLIPTokenizer.from_pretrained(tiny_model_dir / "tokenizer"),
                CLIPTokenizer.from_pretrained(tiny_model_dir / "tokenizer_2"))
    assert choose_identifier(*reloaded) == first
    assert choose_identifier(*tokenizers) == first


def test_identifier_is_the_rarest_short_letter_word_of_the_vocabulary(tokenizers):
    word = choose_identifier(*tokenizers)
    vocab = tokenizers[0].get_vocab()
    eligible = {t: i for t, i in vocab.items()
                if t.endswith(WORD_END) and t[:-4].isalpha() and t[:-4].isascii()
                and 3 <= len(t[:-4]) <= 4}
    assert vocab[word + WORD_END] == max(eligible.values())
    assert word.isalpha() and word.islower() and 3 <= len(word) <= 4


def test_excluded_words_are_skipped_for_the_next_rarest(tokenizers):
    first = choose_identifier(*tokenizers)
    second = choose_identifier(*tokenizers, exclude=[first])
    vocab = tokenizers[0].get_vocab()
    assert second != first
    assert vocab[second + WORD_END] < vocab[first + WORD_END]
    assert all(is_single_token(t, second) for t in tokenizers)


def test_caption_words_are_never_chosen(tokenizers):
    word = choose_identifier(*tokenizers, min_len=1, max_len=20)
    assert word not in {"a", "photo", "of", "person"}


def test_no_eligible_word_raises(tokenizers):
    with pytest.raises(ValueError, match="single token"):
        choose_identifier(*tokenizers, min_len=30, max_len=40)
