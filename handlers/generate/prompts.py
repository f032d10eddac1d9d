"""The hand-engineered headshot prompts, loaded from ``prompts/headshots.toml`` and checked.

Why a loader that validates: a prompt without the identifier would generate a stranger, and
a duplicate would waste one of the 50 slots on a near-copy. Both are caught when the file is
read, not after an hour of GPU time. The data is read through ``importlib.resources`` so it is
found from a checkout, an installed wheel and the Docker image alike.

Why per-class attire: the file names the person's class as ``{class}`` and each outfit as
``{attire.<name>}``, written once per class word (``[attire.<name>]`` with ``person``, ``man``,
``woman``). CLIP reads every word of "suit or blouse", so an "X or Y" outfit makes attire and
gender drift; :meth:`PromptSet.for_subject` binds one class and its outfits instead.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from handlers.subject import CLASS_WORDS, class_word

DEFAULT_RESOURCE = "headshots.toml"
# CLIP text encoders see 77 tokens, two of them BOS/EOS. Words and punctuation are a lower
# bound on CLIP BPE tokens; a prompt over this many is truncated for sure.
MAX_WORDS_AND_PUNCTUATION = 70
_TOKENISH = re.compile(r"\w+|[^\w\s]")
CLASS_PLACEHOLDER = "{class}"
_ATTIRE_REF = re.compile(r"\{attire\.([A-Za-z0-9_]+)\}")
#: Words that invite hands into the picture (they come out with extra fingers).
HAND_WORDS = frozenset({"hand", "hands", "finger", "fingers", "arm", "arms", "holding", "holds", "gesture",
                        "gesturing", "wrist", "palm", "fist", "thumb", "crossed"})
_OR = re.compile(r"\bor\b", re.IGNORECASE)


class PromptError(ValueError):
    """The prompt file breaks a rule; the message names the prompt and the rule."""


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class PromptSet:
    """Prompts with an identifier placeholder, plus the shared negative and class prompts."""

    prompts: tuple[str, ...]
    negative_prompt: str
    class_prompt: str
    instance_prompt: str
    placeholder: str = "{identifier}"
    #: outfit name -> class word ("person", "man", "woman") -> its words
    attire: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = validate_prompts(self)
        if problems:
            raise PromptError("invalid prompt set:\n  " + "\n  ".join(problems))

    @property
    def templated(self) -> bool:
        """Whether the class or an outfit is still a placeholder (bind it with :meth:`for_subject`)."""
        texts = (*self.prompts, self.negative_prompt, self.class_prompt, self.instance_prompt)
        return any(CLASS_PLACEHOLDER in t or _ATTIRE_REF.search(t) for t in texts)

    def for_subject(self, subject: str | None) -> PromptSet:
        """The set with the person's class and that class's outfits written in; ``subject`` is
        the manifest's "man" / "woman", or None ("person")."""
        word = class_word(subject)

        def bind(text: str) -> str:
            text = text.replace(CLASS_PLACEHOLDER, word)
            return _ATTIRE_REF.sub(lambda m: self.attire[m.group(1)][word], text)

        if not self.templated:
            return self
        return PromptSet(prompts=tuple(bind(p) for p in self.prompts), negative_prompt=bind(self.negative_prompt),
                         class_prompt=bind(self.class_prompt), instance_prompt=bind(self.instance_prompt),
                         placeholder=self.placeholder)

    def render(self, identifier: str, subject: str | None = None) -> tuple[str, ...]:
        """Every prompt with the placeholder replaced by this job's identifier (and, in a set
        still templated, the class of ``subject``: unset is "person")."""
        _check_identifier(identifier)
        bound = self.for_subject(subject)
        return tuple(p.replace(self.placeholder, identifier) for p in bound.prompts)

    def render_instance(self, identifier: str, subject: str | None = None) -> str:
        """The training caption for the user's photos, e.g. "a photo of sks person"."""
        _check_identifier(identifier)
        return self.for_subject(subject).instance_prompt.replace(self.placeholder, identifier)

    def __len__(self) -> int:
        return len(self.prompts)


def _check_identifier(identifier: str) -> None:
    if not identifier or identifier != identifier.strip() or "{" in identifier:
        raise PromptError(f"identifier must be a non-empty bare token, got {identifier!r}")


def validate_prompts(ps: PromptSet) -> list[str]:
    """Every rule the prompt set breaks, as readable lines (empty when it is valid)."""
    problems: list[str] = []
    if not ps.placeholder:
        problems.append("placeholder is empty")
        return problems
    if not ps.prompts:
        problems.append("no prompts")
    if not ps.negative_prompt.strip():
        problems.append("negative_prompt is empty")
    elif len(_TOKENISH.findall(ps.negative_prompt)) > MAX_WORDS_AND_PUNCTUATION:
        problems.append("negative_prompt: too long for CLIP's 77-token window")
    if not ps.class_prompt.strip():
        problems.append("class_prompt is empty")
    if ps.placeholder in ps.class_prompt:
        problems.append("class_prompt must not contain the identifier placeholder")
    if ps.instance_prompt.count(ps.placeholder) != 1:
        problems.append(f"instance_prompt must contain {ps.placeholder} exactly once")
    problems += _attire_problems(ps)
    seen: dict[str, int] = {}
    for i, prompt in enumerate(ps.prompts):
        label = f"prompt {i + 1}"
        count = prompt.count(ps.placeholder)
        if count != 1:
            problems.append(f"{label}: must contain {ps.placeholder} exactly once (found {count})")
        if len(_TOKENISH.findall(prompt)) > MAX_WORDS_AND_PUNCTUATION:
            problems.append(f"{label}: too long for CLIP's 77-token window")
        hands = sorted(set(re.findall(r"[a-z]+", prompt.lower())) & HAND_WORDS)
        if hands:
            problems.append(f"{label}: invites hands ({', '.join(hands)}), which come out with extra fingers")
        if _OR.search(_ATTIRE_REF.sub("", prompt)):
            problems.append(f"{label}: says \"or\": CLIP reads both words; write the outfit per class in [attire]")
        key = _normalise(prompt)
        if key in seen:
            problems.append(f"{label}: duplicates prompt {seen[key] + 1}")
        else:
            seen[key] = i
    return problems


def _attire_problems(ps: PromptSet) -> list[str]:
    """Outfits: every one named is defined for every class word, none says "or"; and each
    class's bound set keeps every rule (length included)."""
    problems: list[str] = []
    for name, by_class in ps.attire.items():
        missing = [w for w in CLASS_WORDS if not str(by_class.get(w, "")).strip()]
        if missing:
            problems.append(f"attire.{name}: no outfit for {', '.join(missing)}")
        problems += [f"attire.{name}.{w}: says \"or\" (one outfit per class)" for w, text in by_class.items()
                     if _OR.search(str(text))]
    texts = (*ps.prompts, ps.negative_prompt, ps.class_prompt, ps.instance_prompt)
    unknown = sorted({m for t in texts for m in _ATTIRE_REF.findall(t)} - set(ps.attire))
    problems += [f"{{attire.{name}}} is used but not defined" for name in unknown]
    if problems or not ps.templated:
        return problems
    for subject in (None, "man", "woman"):
        try:
            ps.for_subject(subject)
        except PromptError as exc:
            problems.append(f"as {class_word(subject)}: {exc}")
    return problems


def parse_prompt_set(text: str) -> PromptSet:
    """Build a validated ``PromptSet`` from the TOML text of a prompt file."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PromptError(f"prompt file is not valid TOML: {exc}") from None
    missing = [k for k in ("prompts", "negative_prompt", "class_prompt", "instance_prompt") if k not in data]
    if missing:
        raise PromptError(f"prompt file lacks {', '.join(missing)}")
    prompts = data["prompts"]
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise PromptError("prompts must be a list of strings")
    attire = data.get("attire", {})
    if not isinstance(attire, dict) or not all(
            isinstance(v, dict) and all(isinstance(t, str) for t in v.values()) for v in attire.values()):
        raise PromptError("attire must be tables of class word = outfit text")
    return PromptSet(
        prompts=tuple(" ".join(p.split()) for p in prompts),
        negative_prompt=" ".join(str(data["negative_prompt"]).split()),
        class_prompt=str(data["class_prompt"]).strip(),
        instance_prompt=str(data["instance_prompt"]).strip(),
        placeholder=str(data.get("placeholder", "{identifier}")),
        attire={name: {w: " ".join(t.split()) for w, t in v.items()} for name, v in attire.items()},
    )


def load_prompt_set(path: Path | None = None) -> PromptSet:
    """Load a prompt file: ``path`` if given, else the packaged ``prompts/headshots.toml``."""
    if path is not None:
        return parse_prompt_set(Path(path).read_text(encoding="utf-8"))
    return parse_prompt_set(files("prompts").joinpath(DEFAULT_RESOURCE).read_text(encoding="utf-8"))
