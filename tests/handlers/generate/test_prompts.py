"""The packaged headshot prompts and the rules the loader enforces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from handlers.generate.prompts import (
    PromptError,
    PromptSet,
    load_prompt_set,
    parse_prompt_set,
)

GOOD = """
placeholder = "{identifier}"
instance_prompt = "a photo of {identifier} person"
class_prompt = "a photo of a person"
negative_prompt = "blurry, cartoon"
prompts = ["headshot of {identifier} person, grey suit", "portrait of {identifier} person, outdoors"]
"""


def test_packaged_prompts_hold_at_least_sixty_distinct_prompts() -> None:
    ps = load_prompt_set()
    assert len(ps) >= 60
    normalised = {" ".join(p.lower().split()) for p in ps.prompts}
    assert len(normalised) == len(ps.prompts)


def test_every_packaged_prompt_renders_with_the_identifier_and_no_placeholder_left() -> None:
    ps = load_prompt_set()
    rendered = ps.render("sks")
    assert len(rendered) == len(ps.prompts)
    for text in rendered:
        assert re.search(r"\bsks person\b", text), text
        assert "{" not in text and "}" not in text
    assert len(set(rendered)) == len(rendered)


def test_packaged_class_instance_and_negative_prompts_are_the_dreambooth_ones() -> None:
    ps = load_prompt_set()
    assert ps.for_subject(None).class_prompt == "a photo of a person"
    assert ps.for_subject("woman").class_prompt == "a photo of a woman"
    assert ps.render_instance("ohwx") == "a photo of ohwx person"
    assert ps.render_instance("ohwx", "man") == "a photo of ohwx man"
    assert "blurry" in ps.negative_prompt and "cartoon" in ps.negative_prompt


def test_packaged_prompts_vary_background_attire_lighting_and_angle() -> None:
    text = " ".join(load_prompt_set().prompts).lower()
    for word in ("background", "backdrop", "suit", "blazer", "lighting", "light", "smile",
                 "three-quarter", "outdoor", "office", "close-up", "angle"):
        assert word in text, word


def test_prompt_file_is_read_from_an_explicit_path(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(GOOD, encoding="utf-8")
    ps = load_prompt_set(path)
    assert ps.render("zwx") == ("headshot of zwx person, grey suit", "portrait of zwx person, outdoors")


def test_prompt_without_placeholder_is_rejected_at_load() -> None:
    bad = GOOD.replace('"portrait of {identifier} person, outdoors"', '"portrait of a person, outdoors"')
    with pytest.raises(PromptError, match="prompt 2: must contain"):
        parse_prompt_set(bad)


def test_duplicate_prompts_are_rejected_even_when_spacing_and_case_differ() -> None:
    bad = GOOD.replace('"portrait of {identifier} person, outdoors"', '"Headshot of  {identifier} person, grey suit"')
    with pytest.raises(PromptError, match="prompt 2: duplicates prompt 1"):
        parse_prompt_set(bad)


def test_empty_negative_or_class_prompt_is_rejected() -> None:
    with pytest.raises(PromptError, match="negative_prompt is empty"):
        parse_prompt_set(GOOD.replace('"blurry, cartoon"', '"  "'))
    with pytest.raises(PromptError, match="class_prompt is empty"):
        parse_prompt_set(GOOD.replace('class_prompt = "a photo of a person"', 'class_prompt = ""'))


def test_prompt_too_long_for_clip_is_rejected() -> None:
    long_prompt = "headshot of {identifier} person, " + ", ".join(["soft light"] * 40)
    with pytest.raises(PromptError, match="too long"):
        PromptSet(prompts=(long_prompt,), negative_prompt="blurry", class_prompt="a photo of a person",
                  instance_prompt="a photo of {identifier} person")


def test_missing_keys_and_bad_toml_are_reported_by_name() -> None:
    with pytest.raises(PromptError, match="lacks class_prompt"):
        parse_prompt_set(GOOD.replace('class_prompt = "a photo of a person"', ""))
    with pytest.raises(PromptError, match="not valid TOML"):
        parse_prompt_set("prompts = [")


def test_render_refuses_an_empty_or_spaced_identifier() -> None:
    ps = parse_prompt_set(GOOD)
    with pytest.raises(PromptError):
        ps.render("")
    with pytest.raises(PromptError):
        ps.render(" sks")
