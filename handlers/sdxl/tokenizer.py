"""A CLIP-structured byte-level BPE tokenizer, written by hand (no hub download).

Why here and not in the dev kit: the SDXL-shaped benches (:mod:`handlers.sdxl.configs`) need
tokenizer files too, and handlers never import the runtime or its dev kit.

Why whole words: SDXL's real tokenizer knows every common English word as one token, so the
headshot prompts take 24-39 tokens there. A vocabulary that spells words letter by letter
would give them 48-176 and every prompt would be truncated at 77 (and flood the console
with warnings), which is not the behaviour the tests stand in for. So the vocabulary holds
every word of ``prompts/headshots.toml`` (plus a few caption words) as one whole-word token,
built so that the BPE merges provably reproduce each word, and a handful of rare,
meaningless strings the identifier picker can choose from, last (highest ids), as rare words
are in the real vocabulary.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path

from handlers.generate.prompts import PromptSet, load_prompt_set

# Caption and test words beyond the prompt file (class prompt, a few the tests use).
_WORDS = (
    "a photo of person man woman portrait professional headshot studio background light "
    "lighting soft natural suit shirt blazer office smile smiling looking at camera the and "
    "with in on wearing dark grey gray white blue black navy neutral sharp focus high quality "
    "detailed face close up shot linkedin corporate outdoor bokeh warm cool window business "
    "casual confident friendly lens dslr blurry lowres deformed ugly cartoon "
    "painting text watermark bad anatomy extra fingers cropped head shoulders waist"
).split()

_RARE = ("sks", "ohwx", "zwx", "qzv", "phol", "krz", "vbn", "xjq", "tqw", "wpz")

#: CLIP's pre-tokenisation after lower-casing: letter runs, single digits, punctuation runs.
#: (CLIP uses ``\p{L}``/``\p{N}``; the prompts are ASCII, where these coincide.)
_PRETOKEN = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_+")
WORD_END = "</w>"


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP/GPT-2 reversible byte -> printable-unicode table (the BPE alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def pretokens(text: str) -> list[str]:
    """The pieces CLIP's tokenizer splits ``text`` into before BPE (lower-cased)."""
    return _PRETOKEN.findall(" ".join(text.lower().split()))


def prompt_words(prompt_set: PromptSet | None = None) -> list[str]:
    """Every letter-run of the prompt file (prompts, negative, class and instance prompts), as
    written for each class (person, man, woman: each with its own outfits)."""
    ps = prompt_set or load_prompt_set()
    texts: list[str] = []
    for bound in (ps.for_subject(s) for s in (None, "man", "woman")):
        texts += [p.replace(bound.placeholder, " ") for p in (*bound.prompts, bound.instance_prompt)]
        texts += [bound.negative_prompt, bound.class_prompt]
    return list(dict.fromkeys(w for t in texts for w in pretokens(t) if w.isalpha()))


#: Merges in OpenAI CLIP's BPE file that its tokenizer uses (49152 - 256 bytes - 2 specials).
CLIP_MERGES = 49152 - 256 - 2


def clip_merge_ranks(bpe_file: Path) -> dict[tuple[str, str], int]:
    """The merge ranks of CLIP's own BPE file (``bpe_simple_vocab_16e6.txt.gz``, which the
    open-clip-torch wheel ships): what SDXL's tokenizers merge by."""
    lines = gzip.decompress(Path(bpe_file).read_bytes()).decode("utf-8").split("\n")
    merges = lines[1:CLIP_MERGES + 1]
    return {(a, b): i for i, (a, b) in enumerate(tuple(m.split()) for m in merges)}


def clip_token_count(text: str, ranks: dict[tuple[str, str], int]) -> int:
    """How many tokens CLIP's tokenizer makes of ``text`` under ``ranks``, BOS and EOS included
    (the 77-token window counts them)."""
    byte_chars = _bytes_to_unicode()
    pieces = 0
    for token in pretokens(text):
        pieces += len(bpe("".join(byte_chars[b] for b in token.encode("utf-8")), ranks))
    return pieces + 2


def bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """CLIP's BPE of one pre-token: repeatedly merge the lowest-ranked adjacent pair."""
    symbols = list(word[:-1]) + [word[-1] + WORD_END]
    while len(symbols) > 1:
        pairs = [(ranks.get((a, b)), i) for i, (a, b) in enumerate(zip(symbols, symbols[1:], strict=False))]
        ranked = [(r, i) for r, i in pairs if r is not None]
        if not ranked:
            break
        best = min(ranked)[0]
        merged: list[str] = []
        i = 0
        while i < len(symbols):
            if i < len(symbols) - 1 and ranks.get((symbols[i], symbols[i + 1])) == best:
                merged.append(symbols[i] + symbols[i + 1])
                i += 2
            else:
                merged.append(symbols[i])
                i += 1
        symbols = merged
    return symbols


def build_clip_vocab(words: Iterable[str] | None = None) -> tuple[dict[str, int], list[str]]:
    """A CLIP-structured BPE vocabulary: byte alphabet, its ``</w>`` forms, merges, specials.

    Each word is first run through the merges made so far; whatever pieces remain are chained
    left to right by new merges appended at the end. New merges outrank nothing that came
    before, so BPE reaches the same pieces for this word as before and then the chain, which
    outranks every later merge: each word ends as exactly one token, whatever the other words.
    The rare identifier candidates come last, so they get the highest ids.
    """
    alphabet = list(_bytes_to_unicode().values())
    vocab_list: list[str] = alphabet + [c + WORD_END for c in alphabet]
    seen = set(vocab_list)
    merges: list[str] = []
    ranks: dict[tuple[str, str], int] = {}
    base = list(words) if words is not None else [*prompt_words(), *_WORDS]
    ordered = [w for w in dict.fromkeys(w.lower() for w in base) if w not in _RARE] + list(_RARE)
    for word in ordered:
        if len(word) < 2 or not word.isascii():
            continue
        pieces = bpe(word, ranks)
        current = pieces[0]
        for nxt in pieces[1:]:
            ranks[(current, nxt)] = len(merges)
            merges.append(f"{current} {nxt}")
            current += nxt
            if current not in seen:
                vocab_list.append(current)
                seen.add(current)
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(vocab_list)}, merges


def vocab_fingerprint(vocab: dict[str, int], merges: list[str]) -> str:
    """A short digest of a vocabulary and its merges (part of a cached model's version)."""
    digest = hashlib.sha256(json.dumps(vocab, sort_keys=True).encode())
    digest.update("\n".join(merges).encode())
    return digest.hexdigest()[:16]


def write_tokenizer(folder: Path, vocab: dict[str, int], merges: list[str], pad: str) -> None:
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tok = CLIPTokenizer(
        vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"), pad_token=pad,
        model_max_length=77,
    )
    tok.save_pretrained(folder)
