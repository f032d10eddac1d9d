"""The ready email (v2) as a person sees it: its HTML in headless Chromium at 600x800.

Chromium does not resolve ``cid:`` references, so the MIME message's related parts are
inlined as data URIs first; then the preview must have decoded (naturalWidth > 0) and the
preview and the one primary button must be above the fold.
"""

from __future__ import annotations

import base64
import email
import email.policy
import io
from pathlib import Path
from typing import Any

from PIL import Image

from processor.email import InlineImage, Link, ReadyContext, build_message, render_email
from processor.stages import email_preview


def ready_message(n: int = 50, portraits: bool = True) -> email.message.EmailMessage:
    """The longest ready email above the preview: with the portrait sentence (and a note)."""
    from handlers.deliver import render_contact_sheet

    tiles = [Image.new("RGB", (256, 256), (5 * i % 256, 120, 255 - 5 * i % 256)) for i in range(n)]
    sheet = io.BytesIO()
    render_contact_sheet(tiles).save(sheet, "JPEG", quality=90)
    ctx = ReadyContext(
        job_id="job-render", name="Ada", headshot_count=n, gallery_url="https://fd.example/g/job-render?exp=1&sig=s",
        contact_sheet_url="https://fd.example/d/job-render/contact-sheet.jpg?exp=1&sig=s",
        zip_url="https://fd.example/d/job-render/headshots.zip?exp=1&sig=s",
        rating_urls=[Link(label=f"{k} stars", url=f"https://fd.example/g/job-render?stars={k}#rate") for k in range(1, 6)],
        link_ttl_s=30 * 86400, expires_at=1_784_021_400,
        preview=InlineImage(cid="preview.render@headshots", data=email_preview(sheet.getvalue(), n)),
        selection_note="Identity selection ran in report mode: every generated image is included.",
        portraits=portraits)
    raw = build_message(render_email("ready", ctx), "headshots@example.com", "ada@example.com").as_bytes()
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def html_with_inlined_cids(msg: email.message.EmailMessage) -> str:
    """The HTML part with every ``cid:`` reference replaced by its part as a data URI."""
    html_part = msg.get_body(preferencelist=("html",))
    assert html_part is not None
    html = html_part.get_content()
    for part in msg.walk():
        cid = part.get("Content-ID")
        if cid:
            data = base64.b64encode(part.get_payload(decode=True)).decode()
            html = html.replace(f"cid:{cid.strip('<>')}", f"data:{part.get_content_type()};base64,{data}")
    assert "cid:" not in html
    return html


def test_preview_and_primary_button_are_above_the_fold_at_600x800(chromium: Any, tmp_path: Path) -> None:
    page = tmp_path / "ready.html"
    page.write_text(html_with_inlined_cids(ready_message()), encoding="utf-8")
    chromium.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                             {"width": 600, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    chromium.get(page.as_uri())
    chromium.execute_async_script(
        "const done = arguments[0], img = document.getElementById('preview');"
        "img.complete ? done() : img.addEventListener('load', () => done());")
    found = chromium.execute_script("""
        const rect = id => document.getElementById(id).getBoundingClientRect().toJSON();
        const img = document.getElementById('preview');
        return {w: innerWidth, h: innerHeight, natural: img.naturalWidth, preview: rect('preview'),
                button: rect('gallery'), text: document.getElementById('gallery').textContent};""")
    assert (found["w"], found["h"]) == (600, 800)
    assert found["natural"] > 0  # the inline image decoded
    for box in (found["preview"], found["button"]):
        assert box["width"] > 0 and box["height"] > 0
        assert 0 <= box["top"] and box["bottom"] <= 800 and box["right"] <= 600, found
    assert found["preview"]["width"] >= 400  # a real preview, not a thumbnail speck
    assert found["text"].strip() == "See all 50 headshots"
