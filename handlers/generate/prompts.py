"""The hand-engineered headshot prompts, loaded from ``prompts/headshots.toml`` and checked.

Why a loader that validates: a prompt without the identifier would generate a stranger, and
a duplicate would waste one of the 50 slots on a near-copy. Both are caught when the file is
read, not after an hour of GPU time. The data is read through ``importlib.resources`` so it is
found from a checkout, an installed wheel and the Docker image alike.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

DEFAULT_RESOURCE = "headshots.toml"
# CLIP text encoders see 77 tokens, two of them BOS/EOS. Words and punctuation are a lower
# bound on CLIP BPE tokens; a prompt over this many is truncated for sure.
MAX_WORDS_AND_PUNCTUATION = 70
_TOKENISH = re.compile(r"\w+|[^\w\s]")


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

    def __post_init__(self) -> None:
        problems = validate_prompts(self)
        if problems:
            raise PromptError("invalid prompt set:\n  " + "\n  ".join(problems))

    def render(self, identifier: str) -> tuple[str, ...]:
        """Every prompt with the placeholder replaced by this job's identifier."""
        _check_identifier(identifier)
        return tuple(p.replace(self.placeholder, identifier) for p in self.prompts)

    def render_instance(self, identifier: str) -> str:
        """The training caption for the user's photos, e.g. "a photo of sks person"."""
        _check_identifier(identifier)
        return self.instance_prompt.replace(self.placeholder, identifier)

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
    seen: dict[str, int] = {}
    for i, prompt in enumerate(ps.prompts):
        label = f"prompt {i + 1}"
        count = prompt.count(ps.placeholder)
        if count != 1:
            problems.append(f"{label}: must contain {ps.placeholder} exactly once (found {count})")
        if len(_TOKENISH.findall(prompt)) > MAX_WORDS_AND_PUNCTUATION:
            problems.append(f"{label}: too long for CLIP's 77-token window")
        key = _normalise(prompt)
        if key in seen:
            problems.append(f"{label}: duplicates prompt {seen[key] + 1}")
        else:
            seen[key] = i
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
    return PromptSet(
        prompts=tuple(" ".join(p.split()) for p in prompts),
        negative_prompt=" ".join(str(data["negative_prompt"]).split()),
        class_prompt=str(data["class_prompt"]).strip(),
        instance_prompt=str(data["instance_prompt"]).strip(),
        placeholder=str(data.get("placeholder", "{identifier}")),
    )


def load_prompt_set(path: Path | None = None) -> PromptSet:
    """Load a prompt file: ``path`` if given, else the packaged ``prompts/headshots.toml``."""
    if path is not None:
        return parse_prompt_set(Path(path).read_text(encoding="utf-8"))
    return parse_prompt_set(files("prompts").joinpath(DEFAULT_RESOURCE).read_text(encoding="utf-8"))
