"""The gallery says, in one plain sentence, that the images are AI-made and marked (issue 23's
one line in frontdoor/templates/gallery.html), with each delivered file listed by its name,
which names its format."""

from __future__ import annotations

from frontdoor import pages
from frontdoor.views import gallery_items

SENTENCE = ("These headshots were made by AI from your photos, and every image is marked as AI-made, "
            "in its metadata and with an invisible watermark.")


def test_the_gallery_says_the_images_are_ai_made_and_lists_every_format_from_results_json() -> None:
    results = {"summary": {"formats": ["square", "portrait"]}, "images": [
        {"number": 1, "file": "headshot-001.jpg", "format": "square"},
        {"number": 1, "file": "headshot-001-portrait.jpg", "format": "portrait"}]}
    items = [{**item, "url": f"https://fd/d/j/{item['file']}?exp=1"} for item in gallery_items(results)]
    page = pages.render("gallery.html", base="", job_id="j", items=items, expires_at=1, expires_text="soon",
                        zip_url="https://fd/d/j/headshots.zip", sheet_url="https://fd/d/j/contact-sheet.jpg",
                        rate_action="/g/j/rate", stars=None, rated=False, report_mode=False)
    assert page.count(SENTENCE) == 1
    assert ">headshot-001.jpg</a>" in page and ">headshot-001-portrait.jpg</a>" in page
