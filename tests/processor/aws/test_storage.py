"""The S3 edge against the moto server over HTTP: bytes, JSON, files, conditional writes."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from processor.aws.retry import RetryPolicy
from processor.aws.storage import NotFound, ObjectStore, PreconditionFailed
from processor.settings import Settings


async def test_put_then_get_returns_the_bytes_and_the_same_etag(aws_settings: Settings) -> None:
    async with ObjectStore(aws_settings) as store:
        etag = await store.put_bytes(aws_settings.output_bucket, "a/b.bin", b"\x00\x01payload",
                                     content_type="application/octet-stream")
        got = await store.get_bytes(aws_settings.output_bucket, "a/b.bin")
    assert got.body == b"\x00\x01payload" and got.etag == etag
    assert got.content_type == "application/octet-stream"


async def test_json_round_trip(aws_settings: Settings) -> None:
    async with ObjectStore(aws_settings) as store:
        etag = await store.put_json(aws_settings.output_bucket, "x.json", {"a": [1, 2], "b": "é"})
        got = await store.get_json(aws_settings.output_bucket, "x.json")
    assert got.data == {"a": [1, 2], "b": "é"} and got.etag == etag


async def test_missing_key_raises_not_found(aws_settings: Settings) -> None:
    async with ObjectStore(aws_settings) as store:
        with pytest.raises(NotFound):
            await store.get_bytes(aws_settings.output_bucket, "nope")
        assert await store.head_etag(aws_settings.output_bucket, "nope") is None
        assert not await store.exists(aws_settings.output_bucket, "nope")


async def test_if_none_match_creates_once_then_refuses(aws_settings: Settings) -> None:
    b = aws_settings.output_bucket
    async with ObjectStore(aws_settings) as store:
        await store.put_bytes(b, "k", b"first", if_none_match=True)
        with pytest.raises(PreconditionFailed):
            await store.put_bytes(b, "k", b"second", if_none_match=True)
        assert (await store.get_bytes(b, "k")).body == b"first"


async def test_if_match_writes_only_over_the_etag_it_read(aws_settings: Settings) -> None:
    b = aws_settings.output_bucket
    async with ObjectStore(aws_settings) as store:
        v1 = await store.put_bytes(b, "k", b"v1")
        v2 = await store.put_bytes(b, "k", b"v2", if_match=v1)
        with pytest.raises(PreconditionFailed):
            await store.put_bytes(b, "k", b"stale", if_match=v1)
        await store.put_bytes(b, "k", b"v3", if_match=v2.strip('"'))  # unquoted ETag works too
        assert (await store.get_bytes(b, "k")).body == b"v3"
        with pytest.raises(NotFound):
            await store.put_bytes(b, "absent", b"x", if_match=v1)


async def test_concurrent_if_none_match_writers_exactly_one_wins(aws_settings: Settings) -> None:
    b = aws_settings.output_bucket
    async with ObjectStore(aws_settings) as store:
        async def attempt(i: int) -> bool:
            try:
                await store.put_bytes(b, "race", f"writer-{i}".encode(), if_none_match=True)
                return True
            except PreconditionFailed:
                return False
        results = await asyncio.gather(*(attempt(i) for i in range(12)))
        winner = (await store.get_bytes(b, "race")).body.decode()
    assert sum(results) == 1
    assert winner == f"writer-{results.index(True)}"


async def test_files_upload_download_list_and_delete_prefix(aws_settings: Settings, tmp_path: Path) -> None:
    b = aws_settings.output_bucket
    src = tmp_path / "src.bin"
    src.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    async with ObjectStore(aws_settings) as store:
        await store.upload_file(b, "p/one.bin", src, content_type="application/octet-stream")
        await store.put_bytes(b, "p/sub/two.txt", b"2")
        await store.put_bytes(b, "q/other.txt", b"3")
        dest = await store.download_file(b, "p/one.bin", tmp_path / "out" / "one.bin")
        assert dest.read_bytes() == src.read_bytes()
        assert not list((tmp_path / "out").glob("*.part"))
        assert await store.list_keys(b, "p/") == ["p/one.bin", "p/sub/two.txt"]
        assert await store.delete_prefix(b, "p/") == 2
        assert await store.list_keys(b, "") == ["q/other.txt"]
        with pytest.raises(ValueError):
            await store.delete_prefix(b, "")
        await store.delete(b, "q/other.txt")
        assert await store.list_keys(b) == []


async def test_download_of_a_missing_key_leaves_no_file(aws_settings: Settings, tmp_path: Path) -> None:
    async with ObjectStore(aws_settings) as store:
        with pytest.raises(NotFound):
            await store.download_file(aws_settings.output_bucket, "missing", tmp_path / "f")
    assert list(tmp_path.iterdir()) == []


async def test_presigned_link_downloads_the_object_over_http(aws_settings: Settings) -> None:
    async with ObjectStore(aws_settings) as store:
        await store.put_bytes(aws_settings.output_bucket, "results/j/headshot-001.jpg", b"\xff\xd8jpeg")
        url = await store.presign_get(aws_settings.output_bucket, "results/j/headshot-001.jpg", 3600)
        with pytest.raises(ValueError):
            await store.presign_get(aws_settings.output_bucket, "x", 8 * 24 * 3600)
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=3600" in url
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 (local moto URL)
        assert resp.status == 200 and resp.read() == b"\xff\xd8jpeg"


async def test_transient_s3_errors_are_retried_and_permanent_ones_are_not(aws_settings: Settings) -> None:
    """A botocore hook answers 503 SlowDown to the first two PutObject calls."""
    b = aws_settings.output_bucket
    failures = {"left": 2}
    calls = []

    def inject(**kwargs: object) -> None:
        calls.append(kwargs.get("event_name"))
        if failures["left"]:
            failures["left"] -= 1
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "injected"},
                               "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject")

    fast = RetryPolicy(attempts=5, initial_s=0.01, max_wait_s=0.02, jitter_s=0.01)
    async with ObjectStore(aws_settings, policy=fast) as store:
        store.client.meta.events.register("before-call.s3.PutObject", inject)
        await store.put_bytes(b, "flaky", b"ok")
        assert len(calls) == 3
        assert (await store.get_bytes(b, "flaky")).body == b"ok"
        failures["left"] = 100
        with pytest.raises(ClientError):
            await store.put_bytes(b, "flaky", b"never")
        assert len(calls) == 3 + fast.attempts


# --- issue 15: sizes before bytes -------------------------------------------------------
async def test_a_bounded_get_reads_at_most_max_bytes_and_reports_the_whole_size(aws_settings: Settings) -> None:
    b = aws_settings.input_bucket
    async with ObjectStore(aws_settings) as store:
        await store.put_bytes(b, "big", b"x" * 10_000)
        await store.put_bytes(b, "small", b"abc")
        await store.put_bytes(b, "empty", b"")
        big = await store.get_bytes(b, "big", max_bytes=100)
        small = await store.get_bytes(b, "small", max_bytes=100)
        empty = await store.get_bytes(b, "empty", max_bytes=100)
        with pytest.raises(NotFound):
            await store.get_bytes(b, "absent", max_bytes=100)
    assert (len(big.body), big.size, big.truncated) == (100, 10_000, True)
    assert (small.body, small.size, small.truncated) == (b"abc", 3, False)
    assert (empty.body, empty.size, empty.truncated) == (b"", 0, False)


async def test_listing_gives_each_objects_size(aws_settings: Settings) -> None:
    b = aws_settings.input_bucket
    async with ObjectStore(aws_settings) as store:
        await store.put_bytes(b, "p/a", b"12345")
        await store.put_bytes(b, "p/b", b"")
        listed = await store.list_objects(b, "p/")
    assert [(o.key, o.size) for o in listed] == [("p/a", 5), ("p/b", 0)]


async def test_download_with_a_cap_refuses_a_bigger_object_and_leaves_nothing(aws_settings: Settings,
                                                                              tmp_path: Path) -> None:
    from processor.errors import ObjectTooLarge

    b = aws_settings.input_bucket
    async with ObjectStore(aws_settings) as store:
        await store.put_bytes(b, "k", b"x" * 5000)
        with pytest.raises(ObjectTooLarge):
            await store.download_file(b, "k", tmp_path / "k.jpg", max_bytes=4999)
        assert list(tmp_path.iterdir()) == []
        await store.download_file(b, "k", tmp_path / "k.jpg", max_bytes=5000)
    assert (tmp_path / "k.jpg").stat().st_size == 5000


async def test_unfinished_multipart_uploads_under_a_prefix_are_aborted(aws_settings: Settings) -> None:
    b = aws_settings.input_bucket
    async with ObjectStore(aws_settings) as store:
        await store.client.create_multipart_upload(Bucket=b, Key="up/j/a.jpg")
        await store.client.create_multipart_upload(Bucket=b, Key="up/other/b.jpg")
        assert await store.abort_multipart_uploads(b, "up/j/") == 1
        left = await store.client.list_multipart_uploads(Bucket=b, Prefix="up/")
        with pytest.raises(ValueError):
            await store.abort_multipart_uploads(b, "")
    assert [u["Key"] for u in left.get("Uploads", [])] == ["up/other/b.jpg"]


async def test_a_fenced_write_is_checked_again_before_each_retry_and_carries_its_epoch(
        aws_settings: Settings, local_stack) -> None:  # noqa: ANN001
    """The first try gets 503 SlowDown; the lease is lost during the backoff: the retry must not
    go out (it used to be checked once, then retried for up to six tries)."""
    from processor.devkit.fault_proxy import FaultProxy
    from processor.errors import LostOwnership

    class LeaseLostAfterFirstTry:
        epoch = 4
        checks = 0

        def ensure(self) -> None:
            self.checks += 1
            if self.checks > 1:
                raise LostOwnership("the lease moved on during the backoff")

    guard = LeaseLostAfterFirstTry()
    with FaultProxy(local_stack.endpoint_url, fail_first={"s3": 1}) as proxy:
        async with ObjectStore(aws_settings.model_copy(update={"aws_endpoint_url": proxy.url})) as store:
            with pytest.raises(LostOwnership):
                await store.put_bytes(aws_settings.output_bucket, "jobs/j/work/x/e4/f", b"x", guard=guard)
        assert proxy.counts.injected == {"s3": 1} and "s3" not in proxy.counts.forwarded
    async with ObjectStore(aws_settings) as store:
        assert not await store.exists(aws_settings.output_bucket, "jobs/j/work/x/e4/f")
        await store.put_bytes(aws_settings.output_bucket, "jobs/j/ok", b"x", guard=type("G", (), {
            "epoch": 4, "ensure": lambda self: None})())
        head = await store.client.head_object(Bucket=aws_settings.output_bucket, Key="jobs/j/ok")
    assert head["Metadata"] == {"headshots-epoch": "4"} and guard.checks == 2
