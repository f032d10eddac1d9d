"""Which files of the upload folder a job reads."""

from __future__ import annotations

from processor.job.uploads import MAX_PHOTOS, photo_names


def test_without_a_list_every_file_beside_the_manifest_is_a_photo_in_name_order() -> None:
    available = ["b.jpg", "manifest.json", "a.png", "nested/c.jpg", ".."]
    assert photo_names(available, listed=None) == ["a.png", "b.jpg"]


def test_the_manifest_list_decides_order_and_keeps_names_that_were_never_uploaded() -> None:
    # a listed but missing photo must reach the gate, which rejects it by name
    assert photo_names(["a.jpg", "b.jpg", "extra.jpg"], listed=["b.jpg", "gone.jpg", "a.jpg"]) == [
        "b.jpg", "gone.jpg", "a.jpg"]


def test_an_explicit_subset_wins_over_the_manifest_list() -> None:
    assert photo_names(["a.jpg", "b.jpg"], listed=["a.jpg", "b.jpg"], wanted=["b.jpg"]) == ["b.jpg"]


def test_at_most_max_photos_are_looked_at() -> None:
    many = [f"{i:04d}.jpg" for i in range(MAX_PHOTOS + 50)]
    assert photo_names(many, listed=None) == many[:MAX_PHOTOS]


# --- issue 15: hostile and odd uploads ------------------------------------------------------
import asyncio  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import unicodedata  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from processor.aws.storage import ObjectStore  # noqa: E402
from processor.errors import ManifestError, NotFound  # noqa: E402
from processor.job.uploads import (  # noqa: E402
    MAX_LOCAL_NAME_BYTES,
    download_photos,
    list_uploads,
    local_name,
    plan_photos,
    read_manifest,
    remove_uploads,
    wait_for_photos,
)
from processor.manifest import MAX_MANIFEST_BYTES  # noqa: E402
from processor.settings import Settings  # noqa: E402
from processor.stages import Interrupted, PhotoFiles  # noqa: E402

LONG_NAME = "é" * 150 + ".jpg"  # 304 bytes of UTF-8: over the 255 a local file name may have


@pytest.mark.parametrize("name", [LONG_NAME, "a\r\nb.jpg", "tab\there.png", "..", ".hidden.jpg",
                                  "back\\slash.jpg", "nul\x00.jpg", "\ud800.jpg", "x" * 300])
def test_unsafe_key_names_get_short_hash_based_local_names(name: str) -> None:
    local = local_name(name)
    assert local.startswith("photo-") and len(local.encode()) <= MAX_LOCAL_NAME_BYTES
    assert local.isascii() and "/" not in local and local_name(name) == local  # deterministic
    Path("/tmp").joinpath(local)  # a plain, valid path component


@pytest.mark.parametrize("name", ["IMG_0001.JPG", "照片.png", "Zoë at the beach.webp", "é" * 90 + ".jpg"])
def test_safe_key_names_are_kept_as_the_person_wrote_them(name: str) -> None:
    assert local_name(name) == name


def test_plan_refuses_missing_and_oversized_photos_before_any_download() -> None:
    plan = plan_photos({"a.jpg": 10, "big.jpg": 30 * 2**20}, ["a.jpg", "gone.jpg", "big.jpg"])
    by = {p.name: p for p in plan}
    assert by["a.jpg"].refused is None
    assert by["gone.jpg"].refused == ("missing", "listed in manifest.json but never uploaded")
    assert by["big.jpg"].refused is not None and by["big.jpg"].refused[0] == "too_large"
    assert "30.0 MB" in by["big.jpg"].refused[1]


def test_plan_matches_a_manifest_name_to_its_upload_in_another_unicode_normal_form() -> None:
    nfd = unicodedata.normalize("NFD", "café.jpg")  # how a Mac names the file it uploads
    [photo] = plan_photos({nfd: 100}, ["café.jpg"])
    assert photo.key_name == nfd and photo.refused is None and photo.name == "café.jpg"


def test_plan_gives_every_photo_a_distinct_local_name() -> None:
    hashed = local_name(LONG_NAME)
    plan = plan_photos({LONG_NAME: 1, hashed: 1}, None)  # a safe name equal to another's hash
    assert len({p.local for p in plan}) == 2


# --- against the local stack ---------------------------------------------------------------
def _put(local_stack, settings: Settings, job_id: str, name: str, body: bytes) -> None:  # noqa: ANN001
    local_stack.client("s3", settings).put_object(Bucket=settings.input_bucket,
                                                  Key=f"uploads/{job_id}/{name}", Body=body)


async def test_a_304_byte_key_name_downloads_under_a_safe_name_and_keeps_its_own_name(
        local_stack, aws_settings: Settings, job_id: str, tmp_path: Path) -> None:
    for name in (LONG_NAME, "ok.jpg", ".hidden.jpg"):  # (moto refuses CR/LF in keys; S3 does not)
        _put(local_stack, aws_settings, job_id, name, b"photo bytes of " + name.encode())
    async with ObjectStore(aws_settings) as store:
        files = await download_photos(store, aws_settings.input_bucket, job_id, tmp_path / "photos", None)
    assert isinstance(files, PhotoFiles) and files.refused == {}
    assert sorted(files.names) == sorted([LONG_NAME, "ok.jpg", ".hidden.jpg"])
    for path, name in zip(files, files.names, strict=True):
        assert path.read_bytes() == b"photo bytes of " + name.encode()
        assert len(path.name.encode()) <= MAX_LOCAL_NAME_BYTES


async def test_photos_over_the_cap_are_never_downloaded_and_a_listed_absent_one_is_missing(
        local_stack, aws_settings: Settings, job_id: str, tmp_path: Path) -> None:
    _put(local_stack, aws_settings, job_id, "small.jpg", b"x" * 100)
    _put(local_stack, aws_settings, job_id, "huge.jpg", b"x" * 5000)
    async with ObjectStore(aws_settings) as store:
        files = await download_photos(store, aws_settings.input_bucket, job_id, tmp_path,
                                      ["small.jpg", "huge.jpg", "never-sent.jpg"], max_bytes=1000)
    assert files.names == ["small.jpg", "huge.jpg", "never-sent.jpg"]
    assert [p.exists() for p in files] == [True, False, False]  # huge.jpg: not one byte read
    assert files.refused["huge.jpg"][0] == "too_large"
    assert files.refused["never-sent.jpg"][0] == "missing"


async def test_a_download_that_grows_past_the_cap_stops_and_leaves_no_file(
        local_stack, aws_settings: Settings, job_id: str, tmp_path: Path) -> None:
    _put(local_stack, aws_settings, job_id, "grows.jpg", b"x" * 5000)
    async with ObjectStore(aws_settings) as store:
        # the listing said 10 bytes (a stale listing): the GET itself enforces the cap
        files = await download_photos(store, aws_settings.input_bucket, job_id, tmp_path, None,
                                      max_bytes=1000, available={"grows.jpg": 10})
    assert files.refused["grows.jpg"][0] == "too_large" and list(tmp_path.iterdir()) == []


async def test_the_manifest_is_read_with_a_bounded_ranged_get(
        local_stack, aws_settings: Settings, job_id: str) -> None:
    big = b'{"version": 1, "email": "a@b.co", "pad": "' + b"x" * (3 * 2**20) + b'"}'
    _put(local_stack, aws_settings, job_id, "manifest.json", big)
    async with ObjectStore(aws_settings) as store:
        got = await store.get_bytes(aws_settings.input_bucket, f"uploads/{job_id}/manifest.json",
                                    max_bytes=MAX_MANIFEST_BYTES + 1)
        assert len(got.body) == MAX_MANIFEST_BYTES + 1 and got.size == len(big) and got.truncated
        with pytest.raises(ManifestError) as info:
            await read_manifest(store, aws_settings.input_bucket, job_id)
        assert f"{len(big)} bytes" in info.value.reason and "64 KB" in info.value.reason
        _put(local_stack, aws_settings, job_id, "manifest.json", b"")  # empty: a range is unsatisfiable
        assert await read_manifest(store, aws_settings.input_bucket, job_id) == b""
        ok = json.dumps({"version": 1, "email": "a@b.co"}).encode()
        _put(local_stack, aws_settings, job_id, "manifest.json", ok)
        assert await read_manifest(store, aws_settings.input_bucket, job_id) == ok
        with pytest.raises(NotFound):
            await read_manifest(store, aws_settings.input_bucket, job_id + "-absent")


async def test_waiting_for_listed_photos_stops_early_once_all_arrived(
        local_stack, aws_settings: Settings, job_id: str) -> None:
    _put(local_stack, aws_settings, job_id, "a.jpg", b"a")
    calls = 0
    async with ObjectStore(aws_settings) as store:
        async def listing() -> dict[str, int]:
            nonlocal calls
            calls += 1
            return await list_uploads(store, aws_settings.input_bucket, job_id)

        async def late_upload() -> None:  # the client's parallel upload, racing its manifest
            await asyncio.sleep(0.6)
            await asyncio.to_thread(_put, local_stack, aws_settings, job_id, "b.jpg", b"b")
        started = time.monotonic()
        uploader = asyncio.create_task(late_upload())
        got = await wait_for_photos(listing, ["a.jpg", "b.jpg"], grace_s=30, first_delay_s=0.2)
        await uploader
    assert set(got) == {"a.jpg", "b.jpg"}
    assert time.monotonic() - started < 5  # not the 30 s grace
    assert 2 <= calls <= 5  # backoff: 0.2, 0.4, 0.8 ... not a busy loop


async def test_waiting_gives_up_after_the_grace_period_and_the_photo_counts_as_missing(
        local_stack, aws_settings: Settings, job_id: str) -> None:
    _put(local_stack, aws_settings, job_id, "a.jpg", b"a")
    async with ObjectStore(aws_settings) as store:
        started = time.monotonic()
        got = await wait_for_photos(lambda: list_uploads(store, aws_settings.input_bucket, job_id),
                                    ["a.jpg", "never.jpg"], grace_s=1.0, first_delay_s=0.2)
    assert 0.9 <= time.monotonic() - started < 3
    assert plan_photos(got, ["a.jpg", "never.jpg"])[1].refused[0] == "missing"


async def test_a_stop_request_interrupts_the_wait_promptly(
        local_stack, aws_settings: Settings, job_id: str) -> None:
    deadline = time.monotonic() + 0.5
    async with ObjectStore(aws_settings) as store:
        started = time.monotonic()
        with pytest.raises(Interrupted):
            await wait_for_photos(lambda: list_uploads(store, aws_settings.input_bucket, job_id),
                                  ["never.jpg"], grace_s=60, should_stop=lambda: time.monotonic() > deadline)
    assert time.monotonic() - started < 2.5


async def test_without_a_photo_list_there_is_nothing_to_wait_for(
        local_stack, aws_settings: Settings, job_id: str) -> None:
    async with ObjectStore(aws_settings) as store:
        started = time.monotonic()
        await wait_for_photos(lambda: list_uploads(store, aws_settings.input_bucket, job_id), None, grace_s=60)
    assert time.monotonic() - started < 1


async def test_removing_uploads_takes_late_photos_and_unfinished_multipart_uploads(
        local_stack, aws_settings: Settings, job_id: str) -> None:
    s3 = local_stack.client("s3", aws_settings)
    for name in ("manifest.json", "a.jpg", "late-after-manifest.jpg", LONG_NAME, "nested/x.jpg"):
        _put(local_stack, aws_settings, job_id, name, b"x")
    s3.create_multipart_upload(Bucket=aws_settings.input_bucket, Key=f"uploads/{job_id}/still-uploading.jpg")
    _put(local_stack, aws_settings, job_id + "-other", "keep.jpg", b"x")  # another job's: untouched
    async with ObjectStore(aws_settings) as store:
        removed = await remove_uploads(store, aws_settings.input_bucket, job_id)
        assert removed == 5
        assert await store.list_keys(aws_settings.input_bucket, f"uploads/{job_id}/") == []
        assert await store.list_keys(aws_settings.input_bucket, f"uploads/{job_id}-other/")
    pending = s3.list_multipart_uploads(Bucket=aws_settings.input_bucket, Prefix=f"uploads/{job_id}/")
    assert not pending.get("Uploads")


async def test_the_gate_reports_every_photo_under_the_persons_own_name(
        local_stack, aws_settings: Settings, job_id: str, job_photos: Path, face_analyzer, tmp_path: Path) -> None:
    """The whole chain for odd names: listing -> safe local copies -> gate -> summary -> the
    accepted names fetch the same files again (what prepare and generate do)."""
    from handlers.validate.config import ValidateConfig
    from handlers.validate.gate import validate_photos
    from processor.job.validation import summarize

    sources = sorted(job_photos.glob("*.jpg"))[:11]
    names = [LONG_NAME, *(p.name for p in sources[1:10])]
    for name, src in zip(names, sources, strict=False):
        _put(local_stack, aws_settings, job_id, name, src.read_bytes())
    _put(local_stack, aws_settings, job_id, "huge.jpg", sources[10].read_bytes() + b"\0" * 4_000_000)
    listed = [*names, "huge.jpg", "never-sent.jpg"]
    async with ObjectStore(aws_settings) as store:
        files = await download_photos(store, aws_settings.input_bucket, job_id, tmp_path / "v", listed,
                                      max_bytes=3_000_000)
        report = validate_photos(list(files), ValidateConfig(), face_analyzer, names=files.names,
                                 refused=files.refused)
        summary = summarize(report, 10)
        assert [p.file for p in summary.photos] == listed
        verdicts = {p.file: p.reason for p in summary.photos}
        assert verdicts["huge.jpg"] == "too_large" and verdicts["never-sent.jpg"] == "missing"
        assert summary.accepted and LONG_NAME in summary.accepted_files
        again = await download_photos(store, aws_settings.input_bucket, job_id, tmp_path / "p", listed,
                                      list(summary.accepted_files))
    assert again.refused == {} and all(p.exists() for p in again)
    assert again[again.names.index(LONG_NAME)].read_bytes() == sources[0].read_bytes()
