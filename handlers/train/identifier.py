"""The rare-token identifier that DreamBooth binds the person to.

Why rare: a word with a strong prior meaning ("man", "blue") would have to be unlearned before
the model could attach the person to it, and the meaning leaks into the generated images. The
DreamBooth recipe therefore picks a short token from the rare tail of the vocabulary. For
SDXL the identifier must be one token in *both* tokenizers, otherwise one text encoder would
see it split into pieces with their own meanings.

The choice is a pure function of the two vocabularies, so every run (and every retry of a
job) trains with the same identifier.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

WORD_END = "</w>"
# Candidates containing a vowel-free run are less likely to be words; we do not rely on it,
# but we never pick anything the captions and prompts themselves use.
_CAPTION_WORDS = frozenset({"a", "photo", "of", "person", "man", "woman", "the"})


class Tokenizer(Protocol):
    """The part of a Hugging Face CLIP tokenizer this module uses."""

    def get_vocab(self) -> dict[str, int]: ...

    def __call__(self, text: str, add_special_tokens: bool = ...) -> Any: ...


def _candidates(vocab: dict[str, int], min_len: int, max_len: int,
                exclude: frozenset[str]) -> Iterator[str]:
    """Whole-word letter-only tokens, rarest (highest id) first."""
    for token, _ in sorted(vocab.items(), key=lambda kv: kv[1], reverse=True):
        if not token.endswith(WORD_END):
            continue
        word = token[: -len(WORD_END)]
        if not (min_len <= len(word) <= max_len):
            continue
        if not (word.isascii() and word.isalpha() and word.islower()):
            continue
        if word in exclude:
            continue
        yield word


def is_single_token(tokenizer: Tokenizer, word: str) -> bool:
    """True when ``word`` encodes to exactly one token (no BOS/EOS) in ``tokenizer``."""
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    return len(ids) == 1


def choose_identifier(tokenizer: Tokenizer, tokenizer_2: Tokenizer, *,
                      min_len: int = 3, max_len: int = 4,
                      exclude: Iterable[str] = ()) -> str:
    """Pick the rarest short letter-only word that is a single token in both tokenizers.

    Rarity is read from the BPE vocabulary's order: CLIP assigns ids in merge order, so the
    highest ids are the least frequent words of its training text. ``exclude`` adds words
    that must never be chosen (e.g. every word of the prompts).
    """
    banned = _CAPTION_WORDS | frozenset(w.lower() for w in exclude)
    vocab_2 = tokenizer_2.get_vocab()
    for word in _candidates(tokenizer.get_vocab(), min_len, max_len, banned):
        if word + WORD_END not in vocab_2:
            continue
        if is_single_token(tokenizer, word) and is_single_token(tokenizer_2, word):
            return word
    raise ValueError(
        f"no letter-only word of {min_len}-{max_len} characters is a single token in both tokenizers"
    )
