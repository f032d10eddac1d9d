"""The person's class word: what the manifest's optional ``subject`` becomes in captions and prompts.

Why one place: the training captions ("a close-up photo of <id> man"), the class-prior prompt
(and so the prior cache's key) and the prompts' attire must all name the same class; "person"
pins down neither gender nor age, so a job whose manifest says "man" or "woman" trains and
generates as that class.
"""

from __future__ import annotations

#: Manifest ``subject`` -> class word (unset: "person").
SUBJECT_CLASSES: dict[str | None, str] = {None: "person", "man": "man", "woman": "woman"}
CLASS_WORDS: tuple[str, ...] = ("person", "man", "woman")


def class_word(subject: str | None) -> str:
    """The class word of a manifest ``subject``; an unknown one is refused by name."""
    try:
        return SUBJECT_CLASSES[subject]
    except KeyError:
        raise ValueError(f'subject must be "man", "woman" or unset, not {subject!r}') from None
