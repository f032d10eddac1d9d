"""A CLIP-structured byte-level BPE tokenizer, written by hand (no hub download).

Why here and not in the dev kit: the SDXL-shaped benches (:mod:`handlers.sdxl.configs`) need
tokenizer files too, and handlers never import the runtime or its dev kit. The vocabulary
holds the words the prompts and captions use as whole-word tokens, and a handful of rare,
meaningless strings the identifier picker can choose from.
"""

from __future__ import annotations

import json
from pathlib import Path

_WORDS = (
    "a photo of person man woman portrait professional headshot studio background light "
    "lighting soft natural suit shirt blazer office smile smiling looking at camera the and "
    "with in on wearing dark grey gray white blue black navy neutral sharp focus high quality "
    "detailed face close up shot linkedin corporate outdoor bokeh warm cool window business "
    "casual confident friendly portrait, lens 85mm dslr blurry lowres deformed ugly cartoon "
    "painting text watermark bad anatomy extra fingers cropped"
).split()


_RARE = ("sks", "ohwx", "zwx", "qzv", "phol", "krz", "vbn", "xjq", "tqw", "wpz")


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


def build_clip_vocab() -> tuple[dict[str, int], list[str]]:
    """A CLIP-structured BPE vocabulary: byte alphabet, its ``</w>`` forms, merges, specials.

    Merges are chained left to right for each word, rarest candidates last, so the rare
    identifier candidates get the highest ids, as rare words do in the real CLIP vocabulary.
    """
    alphabet = list(_bytes_to_unicode().values())
    vocab_list: list[str] = alphabet + [c + "</w>" for c in alphabet]
    seen = set(vocab_list)
    merges: list[str] = []
    for word in list(dict.fromkeys(w.strip(",") for w in _WORDS)) + list(_RARE):
        if len(word) < 2:
            continue
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        current = symbols[0]
        for nxt in symbols[1:]:
            merged = current + nxt
            pair = f"{current} {nxt}"
            if merged not in seen:
                merges.append(pair)
                vocab_list.append(merged)
                seen.add(merged)
            current = merged
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(vocab_list)}, merges


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
