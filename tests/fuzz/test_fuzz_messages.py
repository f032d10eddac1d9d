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

from processor.email import RenderedEmail, build_message, one_line, render_email
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
    shown_name = one_line(name or "")
    if shown_name:
        for kind, _ in _contexts(None, "x"):
            _inert(name or "", shown_name, kind, lambda v, k=kind: dict(_contexts(v, "x"))[k])
    for kind, _ in _contexts(None, text):
        shown = (one_line(text) or repr(text)) if kind == "rejected" else text
        _inert(text, shown, kind, lambda v, k=kind: dict(_contexts(None, v))[k])
