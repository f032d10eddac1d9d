"""The ready email's links and preview (email v2): signed front-door links that expire exactly
``link_ttl_s`` after the results were published, never a presigned URL of the worker's."""

from __future__ import annotations

import io
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from processor.aws.storage import ObjectStore
from processor.devkit.local_stack import LocalStack
from processor.errors import SettingsError
from processor.links import LinkCheck, check, download_parts, gallery_parts
from processor.notify import link_expiry, ready_links
from processor.settings import Settings
from processor.stages import build_deliverables


def delivered(job_id: str, n: int = 3, published_at: float | None = None) -> dict[str, object]:
    record: dict[str, object] = {"prefix": f"results/{job_id}/", "headshots": [f"headshot-{i:03d}.jpg" for i in
                                                                           range(1, n + 1)],
                                 "contact_sheet": "contact-sheet.jpg", "archive": "headshots.zip", "summary": {}}
    if published_at is not None:
        record["published_at"] = published_at
    return record


def test_links_expire_ttl_after_publication_not_after_sending() -> None:
    settings = Settings(link_ttl_s=86400)
    assert link_expiry(settings, delivered("j", published_at=1000.5), now=99999) == 1000 + 86400
    assert link_expiry(settings, delivered("j"), now=5000) == 5000 + 86400  # an old record: from now


def _sheet(tmp_path, n: int) -> bytes:  # noqa: ANN001
    from handlers.deliver import render_contact_sheet

    images = [Image.new("RGB", (64, 64), (20 * i, 100, 200 - 10 * i)) for i in range(n)]
    buf = io.BytesIO()
    render_contact_sheet(images).save(buf, "JPEG")
    return buf.getvalue()


async def test_ready_links_are_front_door_links_signed_with_the_secret_and_carry_a_preview(
        local_stack: LocalStack, aws_settings: Settings, job_id: str, tmp_path) -> None:  # noqa: ANN001
    async with ObjectStore(aws_settings) as store:
        await store.put_bytes(aws_settings.output_bucket, f"results/{job_id}/contact-sheet.jpg", _sheet(tmp_path, 12))
        published = time.time() - 3600
        links = await ready_links(store, aws_settings, delivered(job_id, 12, published))
    keys = local_stack.link_keys(aws_settings)
    assert links.expires_at == int(published) + aws_settings.link_ttl_s
    origin = urlsplit(aws_settings.frontdoor_url or "").netloc
    for link in [*links.headshots, *links.rating_urls]:
        assert urlsplit(link.url).netloc == origin and "X-Amz" not in link.url  # nothing of the worker's
    q = {k: v[0] for k, v in parse_qs(urlsplit(links.headshots[1].url).query).items()}
    now = time.time()
    assert check(keys, q["sig"], q["exp"], now, *download_parts(job_id, "headshot-002.jpg")) is LinkCheck.OK
    q = {k: v[0] for k, v in parse_qs(urlsplit(links.gallery_url).query).items()}
    assert check(keys, q["sig"], q["exp"], now, *gallery_parts(job_id)) is LinkCheck.OK
    assert [parse_qs(urlsplit(r.url).query)["stars"][0] for r in links.rating_urls] == ["1", "2", "3", "4", "5"]
    assert links.preview_jpeg is not None
    with Image.open(io.BytesIO(links.preview_jpeg)) as preview:
        assert preview.format == "JPEG" and preview.size == (8 + 4 * 264, 8 + 2 * 264)  # tiles 1-8, 4 a row


async def test_a_missing_contact_sheet_costs_the_preview_not_the_email(aws_settings: Settings, job_id: str) -> None:
    async with ObjectStore(aws_settings) as store:
        links = await ready_links(store, aws_settings, delivered(job_id, 2, time.time()))
    assert links.preview_jpeg is None and len(links.headshots) == 2


async def test_the_ready_email_mentions_portrait_crops_when_the_job_delivered_them(
        local_stack: LocalStack, aws_settings: Settings, job_id: str) -> None:
    from processor.job.fence import Fence
    from processor.manifest import Manifest
    from processor.notify import Notifier
    from tests.integration.harness import emails_for, text_body

    settings = aws_settings.model_copy(update={"email_backend": "smtp"})
    async with ObjectStore(settings) as store:
        for job, formats in ((job_id, ["square", "portrait"]), (job_id + "-sq", ["square"])):
            record = {**delivered(job, 2, time.time()), "summary": {"formats": formats}}
            links = await ready_links(store, settings, record)
            assert links.formats == tuple(formats)
            manifest = Manifest(version=1, email="ada@example.com", name="Ada")  # formats: the worker's default
            assert await Notifier(settings, store).ready(job, manifest, links, Fence(job), note=None) == "sent"
    [with_crops], [squares] = emails_for(local_stack.outbox, job_id), emails_for(local_stack.outbox, job_id + "-sq")
    assert "4:5 portrait crop" in text_body(with_crops) and "portrait" not in text_body(squares)


async def test_without_a_front_door_the_ready_email_is_refused_with_the_setting_named(
        aws_settings: Settings, job_id: str) -> None:
    settings = Settings(**{**aws_settings.model_dump(), "frontdoor_url": None})
    async with ObjectStore(settings) as store:
        with pytest.raises(SettingsError, match="HEADSHOTS_FRONTDOOR_URL"):
            await ready_links(store, settings, delivered(job_id))


def test_results_json_records_the_runs_settings_for_the_metrics(tmp_path) -> None:  # noqa: ANN001
    from handlers.generate.records import ImageRecord, SelectionResult
    from processor.stages import run_settings

    settings = Settings(base_model="/models/tiny", train_method="full", train_steps=42)
    recorded = run_settings(settings)
    assert {k: recorded[k] for k in ("model", "train_method", "train_steps")} == {
        "model": "/models/tiny", "train_method": "full", "train_steps": 42}
    assert recorded["recipe"]["method"] == "full"  # the recipe's values ride along (docs/recipe.md)
    Image.new("RGB", (16, 16)).save(tmp_path / "img.png")
    record = ImageRecord(prompt="p", prompt_index=0, seed=1, attempt=0, file="img.png", distance=None,
                         accepted=True)
    selection = SelectionResult(image_dir=tmp_path, records=(record,), attempts=(), requested=1, mode="report",
                                threshold=None, seconds=1.0, generated=1, extra=run_settings(settings))
    out = build_deliverables(selection, tmp_path / "out")
    assert {k: out.summary[k] for k in ("model", "train_method", "train_steps", "recipe")} == run_settings(settings)
