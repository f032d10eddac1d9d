"""Email rendering and MIME building (the SES and SMTP backends: tests/processor/test_senders.py)."""

from __future__ import annotations

import email
import email.policy

import pytest
from markupsafe import escape

from processor.email import (
    GENERIC_ADVICE,
    MAX_NAME_CHARS,
    FailedContext,
    InlineImage,
    Link,
    ReadyContext,
    RejectedContext,
    RejectedPhoto,
    advice_for,
    build_message,
    render_email,
)

ADDRESS = "ada.lovelace@example.com"


EXPIRES = 1_784_021_400  # Tuesday 14 July 2026, 09:30 UTC
PREVIEW = InlineImage(cid="preview.1@headshots", data=b"\xff\xd8\xff\xe0 a jpeg")


def ready(name: str | None = "Ada", n: int = 3, preview: InlineImage | None = None) -> ReadyContext:
    return ReadyContext(
        job_id="job-1", name=name, headshot_count=n,
        gallery_url="http://fd/g/job-1?exp=1&sig=a&b", contact_sheet_url="http://fd/d/job-1/contact-sheet.jpg?exp=1",
        zip_url="http://fd/d/job-1/headshots.zip?exp=1",
        rating_urls=[Link(label=f"{k} star{'s' if k != 1 else ''}", url=f"http://fd/g/job-1?stars={k}#rate")
                     for k in range(1, 6)],
        link_ttl_s=7 * 86400, expires_at=EXPIRES, preview=preview)


def rejected() -> RejectedContext:
    return RejectedContext(job_id="job-2", name="Ada", usable=3, required=10, bad_photos=[
        RejectedPhoto(name="IMG_0001.jpg", reason="We could not find a face in it.", advice=advice_for("no_face")),
        RejectedPhoto(name="IMG_0002.jpg", reason="It is blurry.", advice=advice_for("blurry")),
        RejectedPhoto(name="IMG_0003.jpg", reason="Something odd."),
    ])


# --- rendering -------------------------------------------------------------------------
def test_ready_email_has_the_gallery_zip_sheet_ratings_and_the_exact_expiry_in_both_parts() -> None:
    out = render_email("ready", ready(preview=PREVIEW))
    assert out.subject == "Your 3 headshots are ready"
    for body in (out.text, out.html):
        assert "headshots.zip" in body and "contact-sheet.jpg" in body and "7 days" in body
        assert "Tuesday 14 July 2026, 09:30 UTC" in body
        for k in range(1, 6):
            assert f"stars={k}#rate" in body
    assert "http://fd/g/job-1?exp=1&sig=a&b" in out.text  # text part complete: every link is there
    assert 'href="http://fd/g/job-1?exp=1&amp;sig=a&amp;b"' in out.html
    assert 'src="cid:preview.1@headshots"' in out.html and out.inline == (PREVIEW,)
    assert out.html.count('id="gallery"') == 1  # one primary button
    assert render_email("ready", ready(n=1)).subject == "Your 1 headshot is ready"


def test_ready_email_without_a_preview_has_no_broken_image() -> None:
    out = render_email("ready", ready())
    assert "cid:" not in out.html and out.inline == ()


def test_html_autoescapes_a_name_with_markup_but_text_keeps_it_literal() -> None:
    out = render_email("ready", ready(name="<script>alert('x')</script>"))
    assert "<script>" not in out.html
    assert "&lt;script&gt;" in out.html
    assert "Hi <script>alert('x')</script>," in out.text


def test_rejected_email_names_each_bad_photo_with_reason_advice_and_how_many_more() -> None:
    out = render_email("rejected", rejected())
    assert out.subject == "We need 7 more good photos to make your headshots"
    for body, shown in ((out.text, str), (out.html, lambda t: str(escape(t)))):
        assert "IMG_0001.jpg" in body and "We could not find a face in it." in body
        assert shown(advice_for("no_face")) in body and shown(advice_for("blurry")) in body
        assert shown(GENERIC_ADVICE) in body  # photo without a specific code still gets advice
        assert "upload 7 more good photos" in body and "need at least 10" in body


def test_rejected_email_for_a_bad_manifest_states_the_problem() -> None:
    ctx = RejectedContext(job_id="j", usable=12, problem="Your manifest.json lists a photo path, not a file name.")
    out = render_email("rejected", ctx)
    assert "manifest.json lists a photo path" in out.text and "more good photo" not in out.text
    assert "a fix" in out.subject


def test_failed_email_says_what_happened_in_plain_words() -> None:
    out = render_email("failed", FailedContext(job_id="j", reason="The image generator ran out of memory.",
                                               attempts=3))
    assert out.subject == "We could not finish your headshots"
    assert "ran out of memory" in out.text and "3 attempts" in out.html


def test_render_accepts_dicts_and_refuses_unknown_kinds_or_missing_fields() -> None:
    out = render_email("failed", {"job_id": "j", "reason": "x"})
    assert "after 1 attempt." in out.text
    with pytest.raises(ValueError):
        render_email("welcome", {"job_id": "j"})
    with pytest.raises(ValueError):
        render_email("ready", {"job_id": "j"})  # no links: refused, not mailed blank


def test_advice_has_a_generic_fallback_for_unknown_codes() -> None:
    assert advice_for("no_face") != GENERIC_ADVICE
    assert advice_for("some_new_gate") == GENERIC_ADVICE and advice_for(None) == GENERIC_ADVICE


def test_message_is_multipart_alternative_with_text_and_html() -> None:
    msg = build_message(render_email("ready", ready()), "headshots@example.com", ADDRESS,
                        job_id="job-1", recipient_name="Ada")
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed["To"] == f"Ada <{ADDRESS}>" and parsed["X-Headshots-Job"] == "job-1"
    assert parsed["Message-ID"].endswith("@example.com>")
    assert "headshots.zip" in parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_an_inline_preview_rides_in_multipart_related_beside_the_html() -> None:
    msg = build_message(render_email("ready", ready(preview=PREVIEW)), "headshots@example.com", ADDRESS)
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    text, related = parsed.iter_parts()
    assert text.get_content_type() == "text/plain" and related.get_content_type() == "multipart/related"
    html, image = related.iter_parts()
    assert html.get_content_type() == "text/html" and image.get_content_type() == "image/jpeg"
    assert image["Content-ID"] == "<preview.1@headshots>" and image.get_content() == PREVIEW.data
    assert parsed.get_body(("html",)) is not None and "cid:preview.1@headshots" in parsed.get_body(("html",)).get_content()


def test_templates_are_found_as_package_resources() -> None:
    from importlib.resources import files

    names = {p.name for p in files("templates").iterdir()}
    assert {"ready.html", "ready.txt", "rejected.html", "rejected.txt", "failed.html", "failed.txt"} <= names


# --- issue 15: hostile names, and every email a person gets when a job does not deliver ------
HOSTILE_NAME = "<b>Ada</b>\r\nBcc: victim@evil.example"


def _parsed(msg: email.message.EmailMessage) -> email.message.EmailMessage:
    return email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)  # type: ignore[return-value]


@pytest.mark.parametrize("name", ["Ada\r\nBcc: victim@evil.example", "Ada\nBcc: v@e.x", "Ada\rX",
                                  "Ada\x00\x1b", "Ada\u2028Bcc: v@e.x", '"Ada" <evil@x.y>, b@c.d', "Zoë 李"])
def test_build_message_never_raises_or_injects_a_header_for_a_hostile_name(name: str) -> None:
    msg = build_message(render_email("failed", {"job_id": "j", "reason": "x"}), "headshots@example.com",
                        ADDRESS, job_id="j", recipient_name=name)
    parsed = _parsed(msg)
    assert "Bcc" not in parsed and parsed.get_all("To") and len(parsed.get_all("To")) == 1
    [addr] = parsed["To"].addresses
    assert addr.addr_spec == ADDRESS  # one recipient: the manifest's address, nobody else
    assert "\n" not in addr.display_name and "\r" not in addr.display_name


def test_build_message_refuses_an_address_that_is_not_one_address() -> None:
    rendered = render_email("failed", {"job_id": "j", "reason": "x"})
    for bad in ("", "ada@example.com\r\nBcc: v@e.x", "no-at-sign"):
        with pytest.raises(ValueError):
            build_message(rendered, "headshots@example.com", bad)


def bad_manifest() -> dict:
    return {"job_id": "job-3", "problems": ["name: must not contain line breaks, tabs or other control characters",
                                            "phots: is not a manifest field (allowed: version, email, name, photos, formats)"]}


def test_bad_manifest_email_says_the_upload_needs_fixing_and_what_was_wrong() -> None:
    out = render_email("bad_manifest", bad_manifest())
    assert out.subject == "Your upload's manifest.json needs a fix"
    for body in (out.text, out.html):
        assert "2 problems" in body and "must not contain line breaks" in body and "phots" in body
        assert "Nothing went wrong on our side" in body and "correct" in body
        assert "You do not need to change" not in body  # the old, wrong promise
    with pytest.raises(ValueError):
        render_email("bad_manifest", {"job_id": "j", "problems": []})  # nothing to fix: not mailed


def test_failed_email_says_it_was_our_fault_and_nothing_needs_changing() -> None:
    out = render_email("failed", FailedContext(job_id="j", reason="internal error", attempts=3))
    for body in (out.text, out.html):
        assert "our side" in body and "our fault" in body and "You do not need to change anything" in body


def test_rejected_email_says_we_never_received_a_missing_photo_not_that_it_is_damaged() -> None:
    ctx = RejectedContext(job_id="j", usable=9, required=10, bad_photos=[
        RejectedPhoto(name="IMG_7.jpg", reason="We never received this file.", advice=advice_for("missing"),
                      code="missing"),
        RejectedPhoto(name="IMG_8.jpg", reason="Not a readable photo.", advice=advice_for("unreadable"),
                      code="unreadable")])
    out = render_email("rejected", ctx)
    for body in (out.text, out.html):
        assert "We never received IMG_7.jpg" in body.replace("<strong>", "")
        assert "Nothing went wrong on our side" in body
    missing_line = next(line for line in out.text.splitlines() if line.startswith("- IMG_7.jpg"))
    assert "damaged" not in missing_line and "never received" in missing_line
    assert "damaged" in next(line for line in out.text.splitlines() if line.startswith("- IMG_8.jpg"))


def test_no_likeness_email_says_photos_were_fine_and_to_try_more_varied_ones() -> None:
    out = render_email("no_likeness", {"job_id": "job-4", "name": "Ada", "generated": 50, "photos_used": 14})
    assert out.subject == "Your headshots did not look enough like you"
    for body in (out.text, out.html):
        assert "none of the 50 headshots" in body and "trained on 14" in body
        assert "more varied photos" in body and "good soft light" in body
    with pytest.raises(ValueError):
        render_email("no_likeness", {"job_id": "j", "generated": 0})


@pytest.mark.parametrize("kind, ctx", [
    ("rejected", {"job_id": "j", "usable": 3, "bad_photos": [{"name": "<img src=x>.jpg", "reason": "r"}]}),
    ("failed", {"job_id": "j", "reason": "<script>x</script>"}),
    ("bad_manifest", {"job_id": "j", "problems": ["photos: photo '<script>x</script>' must be a plain file name"]}),
    ("no_likeness", {"job_id": "j", "generated": 5}),
])
def test_every_failure_kind_autoescapes_html_and_keeps_a_hostile_name_inert(kind: str, ctx: dict) -> None:
    out = render_email(kind, {**ctx, "name": HOSTILE_NAME})
    assert "<b>Ada</b>" not in out.html and "&lt;b&gt;Ada&lt;/b&gt;" in out.html
    assert "<script>" not in out.html and "<img src=x>" not in out.html
    greeting = out.text.splitlines()[0]
    assert greeting == "Hi <b>Ada</b> Bcc: victim@evil.example,"  # one line: the break became a space
    assert not any(line.startswith("Bcc:") for line in out.text.splitlines())
    msg = build_message(out, "headshots@example.com", ADDRESS, job_id="j", recipient_name=HOSTILE_NAME)
    assert "Bcc" not in _parsed(msg)


def test_every_kind_has_both_templates_and_a_context_model() -> None:
    from importlib.resources import files

    from processor.email import CONTEXTS, KINDS

    names = {p.name for p in files("templates").iterdir()}
    assert set(KINDS) == set(CONTEXTS)
    for kind in KINDS:
        assert {f"{kind}.txt", f"{kind}.html"} <= names


def test_a_very_long_non_ascii_name_is_cut_and_builds_fast() -> None:
    """Found by the fuzz suite: the stdlib folds a 10,000-character non-ASCII name in ~24 s."""
    import time

    started = time.perf_counter()
    msg = build_message(render_email("failed", {"job_id": "j", "reason": "x"}), "headshots@example.com",
                        ADDRESS, recipient_name="é " * 5000)
    [addr] = _parsed(msg)["To"].addresses
    assert time.perf_counter() - started < 2 and addr.addr_spec == ADDRESS
    [built] = msg["To"].addresses
    assert len(built.display_name) == MAX_NAME_CHARS and built.display_name.endswith("…")


def test_a_lone_surrogate_in_a_reason_never_breaks_the_message() -> None:
    """Found by the fuzz suite: an OS error naming an undecodable file holds a lone surrogate."""
    out = render_email("failed", {"job_id": "j", "reason": "No such file: 'IMG_\udcff.jpg'"})
    parsed = _parsed(build_message(out, "headshots@example.com", ADDRESS))
    assert "No such file: 'IMG_ .jpg'" in parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]



def test_ready_email_says_in_one_plain_sentence_that_the_images_are_ai_made_and_marked() -> None:
    out = render_email("ready", ready())
    sentence = ("These headshots were made by AI from your photos, and every image is marked as AI-made, "
                "in its metadata and with an invisible watermark.")
    assert sentence in out.text and sentence in out.html


def test_ready_email_mentions_the_portrait_crops_in_one_sentence_only_when_the_job_has_them() -> None:
    sentence = "Each image also comes as a 4:5 portrait crop, for CVs, speaker pages and team pages."
    with_crops = render_email("ready", ready().model_copy(update={"portraits": True}))
    assert with_crops.text.count(sentence) == 1 and with_crops.html.count(sentence) == 1
    squares = render_email("ready", ready())
    assert "portrait" not in squares.text and "portrait" not in squares.html
    assert with_crops.subject == squares.subject  # the subject still counts images
