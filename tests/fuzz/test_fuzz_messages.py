"""Fuzz: the email a person gets, built from text they control (their name, their file names).

Invariants: rendering every kind and building the MIME message never raise for any name; the
message has exactly the headers we set, one ``To`` holding only the manifest's address; HTML
never carries the person's markup unescaped; the greeting stays on one line.
"""

from __future__ import annotations

import email
import email.policy
import time
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from markupsafe import escape

from processor.email import (
    MAX_DETAIL_CHARS,
    MAX_NAME_CHARS,
    MAX_PHOTO_NAME_CHARS,
    RenderedEmail,
    build_message,
    render_email,
    shown_text,
)
from tests.fixtures.hypothesis_profiles import examples

pytestmark = pytest.mark.fuzz

ADDRESS = "ada@example.com"
HEADERS = {"Subject", "From", "To", "Date", "Message-ID", "X-Headshots-Job", "MIME-Version", "Content-Type"}
CONTROL = "".join(map(chr, [*range(0, 32), 127, 0x85, 0x2028, 0x2029]))
# (built from a list: st.text() never yields lone surrogates, which an OS error message can hold)
hostile = st.lists(st.characters() | st.sampled_from(CONTROL + "\ud800\udcff" + '"\\<>@,;:()=?&\'%'),
                   max_size=120).map("".join)
names = st.none() | hostile | st.sampled_from(["Ada\r\nBcc: victim@evil.example", "=?utf-8?q?x?=", "é " * 3000,
                                               '"Ada" <evil@x.y>, b@c.d', "\ud800"])


def _parse(msg: email.message.EmailMessage) -> email.message.EmailMessage:
    return email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)  # type: ignore[return-value]


def _contexts(name: str | None, text: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("rejected", {"job_id": "j", "name": name, "usable": 3,
                      "bad_photos": [{"name": text or "x", "reason": "r", "advice": "a", "code": "missing"}]}),
        ("failed", {"job_id": "j", "name": name, "reason": text or "x", "attempts": 2}),
        ("bad_manifest", {"job_id": "j", "name": name, "problems": [text or "x"]}),
        ("no_likeness", {"job_id": "j", "name": name, "generated": 50}),
    ]


@hsettings(max_examples=examples(150))
@given(names)
@example("Ada\r\nBcc: victim@evil.example")  # the report: killed the worker
@example("\x00")
@example("é " * 5000)  # found: 24 s in the stdlib's header folding; names are now cut at 100 characters
def test_any_name_builds_a_message_with_one_recipient_and_no_extra_header(name: str | None) -> None:
    rendered = RenderedEmail(subject="Your headshots", text="body", html="<p>body</p>")
    started = time.perf_counter()
    msg = build_message(rendered, "headshots@example.com", ADDRESS, job_id="job-1", recipient_name=name)
    msg.as_bytes()
    assert time.perf_counter() - started < 2.0  # (a 10,000-character name once took 24 s)
    parsed = _parse(msg)
    assert set(parsed.keys()) == HEADERS
    assert len(parsed.get_all("To") or []) == 1
    [addr] = parsed["To"].addresses
    assert addr.addr_spec == ADDRESS
    assert not set(addr.display_name) & set(CONTROL)


PLACEHOLDER = "QZXPLACEHOLDERXZQ"


def _inert(raw: str, shown: str, kind: str, ctx_of) -> None:  # noqa: ANN001
    """The HTML rendered from ``raw`` is exactly the placeholder's with ``shown`` escaped in:
    whatever the person typed lands as text, never as markup."""
    got = render_email(kind, ctx_of(raw)).html
    want = render_email(kind, ctx_of(PLACEHOLDER)).html.replace(PLACEHOLDER, str(escape(shown)))
    assert got == want


@hsettings(max_examples=examples(60))
@given(names, hostile)
@example("<script>alert(1)</script>", "<img src=x onerror=alert(1)>")
@example(None, "<")  # found by the long run: a test that looked for "<" in HTML full of tags
@example(None, "[Errno 2] No such file: 'IMG_\udcff.jpg'")  # found: a lone surrogate crashed the MIME encoder
def test_every_failure_email_renders_any_text_inert(name: str | None, text: str) -> None:
    text = text or "x"
    for kind, ctx in _contexts(name, text):
        out = render_email(kind, ctx)
        assert "\n" not in out.subject and "\r" not in out.subject
        greeting = out.text.splitlines()[0]
        assert greeting.startswith("Hi") and greeting.endswith(",")
        msg = build_message(out, "headshots@example.com", ADDRESS, job_id="j", recipient_name=name)
        assert set(_parse(msg).keys()) == HEADERS
    shown_name = shown_text(name or "", MAX_NAME_CHARS)
    if shown_name:
        for kind, _ in _contexts(None, "x"):
            _inert(name or "", shown_name, kind, lambda v, k=kind: dict(_contexts(v, "x"))[k])
    shown_as = {"rejected": shown_text(text, MAX_PHOTO_NAME_CHARS) or shown_text(repr(text), MAX_PHOTO_NAME_CHARS),
                "failed": shown_text(text, MAX_DETAIL_CHARS) or "unknown error",
                "bad_manifest": shown_text(text, MAX_DETAIL_CHARS) or "?"}
    for kind, _ in _contexts(None, text):
        if kind in shown_as:
            _inert(text, shown_as[kind], kind, lambda v, k=kind: dict(_contexts(None, v))[k])


BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"


def _hidden(text: str) -> set[str]:
    """Characters of ``text`` no email may carry: control and format (bidi, zero-width) ones."""
    import unicodedata

    return {ch for ch in text if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")}


@hsettings(max_examples=examples(60))
@given(names, st.lists(hostile | st.sampled_from([f"{BIDI[4]}gpj.exe", "Visit cheap-pills.example " * 12,
                                                  f"IMG{BIDI[7]}_1.jpg"]), min_size=1, max_size=40))
@example("Ada \u202eWin a prize at spam.example\u202c " + "x" * 200, ["\u202egpj.exe"] * 30)
def test_a_rejection_email_of_hostile_names_lists_a_bounded_few_each_short_and_plain(
        name: str | None, photos: list[str]) -> None:
    """The issue's spam relay: 20 'never received' names of 255 characters, a 100-character name
    in the greeting and the To header, bidi overrides in both. Now: at most MAX_LISTED_PHOTOS
    names, each cut, nothing invisible, the greeting's name a first name's length."""
    from processor.email import MAX_LISTED_PHOTOS

    ctx = {"job_id": "j", "name": name, "usable": 2,
           "bad_photos": [{"name": p or "x", "reason": "r", "advice": "a", "code": "missing"} for p in photos]}
    out = render_email("rejected", ctx)
    for part in (out.text, out.subject):
        assert not _hidden(part.replace("\n", "")), sorted(map(hex, map(ord, _hidden(part))))
    listed = [line for line in out.text.splitlines() if line.startswith("- ") and line.endswith("What to do: a")]
    assert len(listed) == min(len(photos), MAX_LISTED_PHOTOS)
    for line in listed:
        shown = line[2:].split(": r What to do", 1)[0]
        assert len(shown) <= MAX_PHOTO_NAME_CHARS
    if len(photos) > MAX_LISTED_PHOTOS:
        assert f"and {len(photos) - MAX_LISTED_PHOTOS} more photo" in out.text
    greeting = out.text.splitlines()[0]
    assert len(greeting) <= len("Hi ,") + MAX_NAME_CHARS
    built = build_message(out, "headshots@example.com", ADDRESS, job_id="j", recipient_name=name)
    [addr] = built["To"].addresses
    assert len(addr.display_name) <= MAX_NAME_CHARS and not _hidden(addr.display_name)
    msg = _parse(built)
    assert not _hidden(msg.get_body(("html",)).get_content().replace("\n", "").replace("\r", ""))  # type: ignore[union-attr]
