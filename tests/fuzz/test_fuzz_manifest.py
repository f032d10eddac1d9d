"""Fuzz: ``manifest.json`` parsing, the first thing a person's upload reaches.

Invariants for every input: ``parse_manifest`` returns a :class:`Manifest` or raises
:class:`ManifestError` (never another exception type); an error carries at least one problem
line a person can act on (the bad-manifest email lists them); memory stays bounded; and an
accepted manifest holds nothing that could break an email header or a file name.

Each generator names the outcome the person must get (``EXPECT_*``).
"""

from __future__ import annotations

import json
import tracemalloc
import unicodedata
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from processor.email import BadManifestContext, render_email
from processor.manifest import (
    MAX_MANIFEST_BYTES,
    Manifest,
    ManifestError,
    parse_manifest,
)
from tests.fixtures.hypothesis_profiles import examples

pytestmark = pytest.mark.fuzz

CONTROL = "".join(map(chr, [*range(0, 32), 127, *range(0x80, 0xA0), 0x2028, 0x2029]))

# --- generators, each with the outcome a person must get --------------------------------------
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
any_json = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=5)
                        | st.dictionaries(st.text(max_size=10), kids, max_size=5), max_leaves=25)
EXPECT_ANY = "a Manifest, or ManifestError with problem lines (bad_manifest email)"

good_email = st.sampled_from(["ada@example.com", "a.b+c@sub.example.org", "zoë@example.com"])
field_values = st.one_of(any_json, st.text(), st.lists(st.text(max_size=30), max_size=5))
wrong_types = st.fixed_dictionaries({}, optional={
    "version": st.one_of(st.just(1), any_json), "email": st.one_of(good_email, any_json),
    "name": field_values, "photos": field_values, "extra": any_json,
    "formats": st.one_of(field_values, st.lists(st.sampled_from(["square", "portrait", "Square"]), max_size=3))})
EXPECT_WRONG_TYPES = "ManifestError naming each wrong field, unless every field is right"

hostile_text = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(CONTROL), min_size=1, max_size=60)


@st.composite
def with_control(draw: st.DrawFn, prefix: str = "Ada", suffix: str = "L") -> str:
    """A name with at least one control character inside (not at the ends, which are stripped)."""
    return prefix + draw(st.text(max_size=10)) + draw(st.sampled_from(CONTROL)) + draw(st.text(max_size=10)) + suffix


EXPECT_CONTROL_NAME = "ManifestError 'name: must not contain line breaks...' with the email kept"
EXPECT_CONTROL_PHOTO = "ManifestError 'photos: photo ... must not contain line breaks...'"
EXPECT_LONG_NAME = "ManifestError 'name: String should have at most 100 characters'"
EXPECT_EXTRA = "ManifestError '<field>: is not a manifest field'"
EXPECT_TOO_BIG = "ManifestError 'manifest is larger than 65536 bytes', read no further"


def _check(data: bytes | str) -> Manifest | ManifestError:
    """The invariants shared by every case; returns what parsing gave."""
    try:
        m = parse_manifest(data)
    except ManifestError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        assert exc.reason == "; ".join(exc.problems) or len(exc.problems) == 1
        render_email("bad_manifest", BadManifestContext(job_id="j", problems=list(exc.problems)))
        return exc
    assert m.version == 1 and type(m.version) is int
    for text in ([m.name] if m.name else []) + list(m.photos or []):
        assert not any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in text)
    for photo in m.photos or []:
        assert "/" not in photo and "\\" not in photo and photo not in (".", "..", "manifest.json")
    return m


# --- properties ---------------------------------------------------------------------------------
@hsettings(max_examples=examples(150))
@given(any_json)
@example([[[]]])
@example({"version": 1, "email": "a@b.co", "photos": [None]})
def test_any_json_document_parses_or_is_a_manifest_error(doc: Any) -> None:
    _check(json.dumps(doc))


@hsettings(max_examples=examples(300))
@given(st.binary(max_size=300) | st.text(max_size=300))
@example(b"[" * 60000)  # found by the fuzz: RecursionError escaped json.loads
@example(b"\xff\xfe{")
@example("\ud800")
def test_any_bytes_or_text_parse_or_are_a_manifest_error(data: bytes | str) -> None:
    _check(data)


@hsettings(max_examples=examples(150))
@given(wrong_types)
@example({"version": True, "email": "ada@example.com"})  # JSON true once passed as version 1
@example({"version": 1.0, "email": "ada@example.com"})
def test_fields_of_any_type_are_refused_by_name_unless_right(doc: dict[str, Any]) -> None:
    got = _check(json.dumps(doc))
    if isinstance(got, Manifest):  # accepted only with every field of the right type
        assert type(doc["version"]) is int and doc["version"] == 1, EXPECT_WRONG_TYPES
        assert doc.get("name") is None or isinstance(doc["name"], str)
        assert doc.get("photos") is None or all(isinstance(p, str) for p in doc["photos"])
        assert doc.get("formats") is None or (set(doc["formats"]) <= {"square", "portrait"}
                                              and "square" in doc["formats"]
                                              and len(set(doc["formats"])) == len(doc["formats"]))
        assert "extra" not in doc
    elif "version" in doc and (type(doc["version"]) is not int or doc["version"] != 1):
        assert any(p.startswith("version:") for p in got.problems)


@hsettings(max_examples=examples(300))
@given(with_control(), good_email)
@example("Ada\r\nBcc: victim@evil.example", "ada@example.com")
def test_a_name_with_control_characters_is_refused_and_the_email_kept(name: str, email: str) -> None:
    got = _check(json.dumps({"version": 1, "email": email, "name": name}))
    assert isinstance(got, ManifestError), EXPECT_CONTROL_NAME
    assert got.problems == ("name: must not contain line breaks, tabs or other control characters",)
    assert got.email == email


@hsettings(max_examples=examples(200))
@given(with_control(prefix="IMG", suffix=".jpg"))
@example("IMG\x7f.jpg")  # found: DEL, C1 controls and U+2028 passed the old "ord < 32" check
@example("IMG\x85.jpg")
def test_a_photo_name_with_control_characters_is_refused(photo: str) -> None:
    got = _check(json.dumps({"version": 1, "email": "ada@example.com", "photos": ["a.jpg", photo]}))
    assert isinstance(got, ManifestError), EXPECT_CONTROL_PHOTO
    assert any("control characters" in p for p in got.problems)


@hsettings(max_examples=examples(150))
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp", "Zs")),
               min_size=101, max_size=5000))
def test_a_very_long_name_is_refused_with_its_limit(name: str) -> None:
    got = _check(json.dumps({"version": 1, "email": "ada@example.com", "name": name}))
    assert isinstance(got, ManifestError), EXPECT_LONG_NAME
    assert got.problems == ("name: String should have at most 100 characters",)


@hsettings(max_examples=examples(100))
@given(st.text(min_size=1, max_size=20).filter(lambda k: k not in ("version", "email", "name", "photos", "proof", "formats")),
       any_json)
def test_an_extra_field_is_refused_by_name(key: str, value: Any) -> None:
    got = _check(json.dumps({"version": 1, "email": "ada@example.com", key: value}))
    assert isinstance(got, ManifestError), EXPECT_EXTRA
    assert f"{key}: is not a manifest field (allowed: version, email, name, photos, proof, formats, subject)" in got.problems


@hsettings(max_examples=examples(200))
@given(hostile_text, st.lists(hostile_text, max_size=4))
def test_unicode_names_and_photos_either_pass_clean_or_are_refused(name: str, photos: list[str]) -> None:
    _check(json.dumps({"version": 1, "email": "ada@example.com", "name": name, "photos": photos or None}))


@hsettings(max_examples=examples(25))
@given(st.integers(min_value=MAX_MANIFEST_BYTES + 1, max_value=8 * 2**20), st.sampled_from([b" ", b"[", b"x"]))
def test_an_oversized_manifest_is_refused_before_parsing_in_bounded_memory(size: int, fill: bytes) -> None:
    data = fill * size
    tracemalloc.start()
    try:
        got = _check(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(got, ManifestError) and "larger than" in got.reason, EXPECT_TOO_BIG
    assert peak < 1 * 2**20  # no copy of the input, no parse


@hsettings(max_examples=examples(40))
@given(st.sampled_from(["[", "{\"a\":", "[0,", "\"" + "\\u00e9" * 3]), st.integers(1000, MAX_MANIFEST_BYTES // 7))
def test_the_largest_allowed_manifests_parse_in_bounded_memory(unit: str, repeat: int) -> None:
    """64 KiB of the costliest JSON shapes (deep nesting, many small objects) peak well under
    100 MB of Python allocations."""
    data = (unit * repeat)[:MAX_MANIFEST_BYTES]
    tracemalloc.start()
    try:
        _check(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20
