"""The gallery page, rendered from results.json as the worker writes it: one tile per image
(its ``number``), the crops of a portrait job together and named by format, the header counting
images, the one plain AI-made sentence (issue 23); a squares-only job's page as before."""

from __future__ import annotations

import re
from typing import Any

from frontdoor import pages
from frontdoor.views import gallery_items, gallery_tiles

SENTENCE = ("These headshots were made by AI from your photos, and every image is marked as AI-made, "
            "in its metadata and with an invisible watermark.")


def results_json(n: int, portraits: bool) -> dict[str, Any]:
    """results.json's ``images`` as ``handlers.deliver.results_document`` lists them."""
    images: list[dict[str, Any]] = []
    for number in range(1, n + 1):
        images.append({"number": number, "file": f"headshot-{number:03d}.jpg", "format": "square",
                       "width": 1024, "height": 1024})
        if portraits:
            images.append({"number": number, "file": f"headshot-{number:03d}-portrait.jpg", "format": "portrait",
                           "width": 896, "height": 1120})
    return {"summary": {"formats": ["square", "portrait"] if portraits else ["square"]}, "images": images}


def render(results: dict[str, Any]) -> str:
    tiles = gallery_tiles([{**item, "url": f"https://fd/d/j/{item['file']}?exp=1"} for item in gallery_items(results)])
    return pages.render("gallery.html", base="", job_id="j", tiles=tiles, expires_at=1, expires_text="soon",
                        crops=any(len(t["crops"]) > 1 for t in tiles), zip_url="https://fd/d/j/headshots.zip",
                        sheet_url="https://fd/d/j/contact-sheet.jpg", rate_action="/g/j/rate", stars=None,
                        rated=False, report_mode=False)


def tiles_of(page: str) -> list[str]:
    return re.findall(r'<li data-number="\d+">.*?</li>', page, re.S)


def test_the_crops_of_one_image_share_a_tile_the_square_first_each_named_by_format_and_size() -> None:
    results = results_json(3, portraits=True)
    results["images"][0], results["images"][1] = results["images"][1], results["images"][0]  # order is no rule
    tiles = gallery_tiles(gallery_items(results))
    assert [t["number"] for t in tiles] == [1, 2, 3]
    assert [[c["file"] for c in t["crops"]] for t in tiles][0] == ["headshot-001.jpg", "headshot-001-portrait.jpg"]
    assert [(c["name"], c["size"], c["box"]) for c in tiles[0]["crops"]] == [
        ("Square", "1024\u00d71024", (1024, 1024)), ("Portrait 4:5", "896\u00d71120", (896, 1120))]
    assert tiles[0]["file"] == "headshot-001.jpg"  # what a favourite names: the image's square
    # an older results.json: no format (squares), no pixel size (drawn in a box of its shape)
    [old] = gallery_tiles(gallery_items({"images": [{"number": 1, "file": "headshot-001.jpg"}]}))
    assert old["crops"][0]["format"] == "square" and old["crops"][0]["size"] is None


def test_a_portrait_jobs_gallery_counts_images_and_offers_both_downloads_in_each_tile() -> None:
    page = render(results_json(3, portraits=True))
    assert "<h1>Your 3 headshots</h1>" in page  # images, not the 6 files
    tiles = tiles_of(page)
    assert len(tiles) == 3
    for number, tile in enumerate(tiles, start=1):
        downloads = re.findall(r'<a class="download" data-format="(\w+)" href="([^"]+)"[^>]*>([^<]+)</a>', tile)
        assert [(fmt, href.rsplit("/", 1)[1], text) for fmt, href, text in downloads] == [
            ("square", f"headshot-{number:03d}.jpg?exp=1", "Square &middot; 1024\u00d71024"),
            ("portrait", f"headshot-{number:03d}-portrait.jpg?exp=1", "Portrait 4:5 &middot; 896\u00d71120")]
        # each picture drawn in a box of its own shape: the portrait is not cut square
        assert re.findall(r'<img [^>]*width="(\d+)" height="(\d+)"', tile) == [("1024", "1024"), ("896", "1120")]
        assert tile.count('name="favourite"') == 1
    assert 'id="formats-note"' in page and page.count(SENTENCE) == 1


def test_a_squares_only_gallery_looks_as_before() -> None:
    page = render(results_json(2, portraits=False))
    assert "<h1>Your 2 headshots</h1>" in page and 'id="formats-note"' not in page and "with-crops" not in page
    for number, tile in enumerate(tiles_of(page), start=1):
        assert re.findall(r'<a class="download"[^>]*>([^<]+)</a>', tile) == [f"headshot-{number:03d}.jpg"]
        assert f'alt="Headshot {number}"' in tile
    assert page.count(SENTENCE) == 1


def test_the_stylesheet_draws_gallery_pictures_at_their_own_shape() -> None:
    """The old rule drew every gallery image as a 1:1 box with object-fit: cover, which cut a
    portrait square; the browser test measures the drawn portrait too."""
    from importlib.resources import files

    css = files("frontdoor").joinpath("static", "style.css").read_text()
    gallery_rules = [rule for selectors, rule in re.findall(r"([^{}]+)\{([^}]*)\}", css) if ".gallery img" in selectors]
    assert gallery_rules and not any("aspect-ratio" in r or "object-fit: cover" in r for r in gallery_rules)
