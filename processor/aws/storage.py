"""The S3 edge: bytes, JSON and files in and out, with ETags and conditional writes.

Fenced writes: a write made for a job's attempt passes a :class:`WriteGuard` (the attempt's
fence). The guard is checked just before each HTTP attempt leaves (botocore's ``before-send``,
so every retry too), and the write carries the writer's lease epoch as object metadata
(``x-amz-meta-headshots-epoch``), so an auditor at the HTTP edge can tell a write made under a
lease that was already lost (``processor.devkit.fault_proxy``).

Reads report the object's age on S3's own clock (the response's ``Date`` less its
``Last-Modified``): the one clock every worker shares, so a lease's staleness is judged without
comparing two hosts' wall clocks.

Conditional PUTs (``If-Match: <etag>`` / ``If-None-Match: *``) are what let two workers
share ``status.json`` safely; a lost race surfaces as :class:`PreconditionFailed`. Every call
goes through the retry policy. Note for callers: a conditional PUT that is retried after a
transient error may report :class:`PreconditionFailed` for a write that did land the first
time; write a token you can recognise and read it back when that matters.

moto server (5.x) honours ``If-None-Match: *`` and ``If-Match: <etag>`` (quoted or not) on
PutObject; ``If-None-Match: <etag>`` is ignored on PutObject (real S3 only accepts ``*``
there too). ``If-Match`` on a missing key answers 404 ``NoSuchKey`` (-> :class:`NotFound`).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol, Self

from botocore.exceptions import ClientError

from processor.aws.clients import AsyncAwsClient
from processor.errors import NotFound, ObjectTooLarge, PreconditionFailed, StorageError

_CHUNK = 1024 * 1024
#: The metadata key every fenced write carries (``x-amz-meta-headshots-epoch``).
EPOCH_METADATA = "headshots-epoch"


class WriteGuard(Protocol):
    """What a fenced write is checked against (the attempt's :class:`processor.job.fence.Fence`)."""

    epoch: int

    def ensure(self) -> None:
        """Raise (LostOwnership) when the writer may no longer write."""


_GUARD: contextvars.ContextVar[WriteGuard | None] = contextvars.ContextVar("headshots_write_guard", default=None)


@contextlib.contextmanager
def _guarded(guard: WriteGuard | None) -> Iterator[None]:
    token = _GUARD.set(guard)
    try:
        yield
    finally:
        _GUARD.reset(token)


def _check_guard_before_send(request: Any = None, **_: Any) -> None:
    """botocore ``before-send``: the last moment before an attempt's bytes leave this process."""
    guard = _GUARD.get()
    if guard is not None and getattr(request, "method", "GET") not in ("GET", "HEAD"):
        guard.ensure()


def _epoch_metadata(guard: WriteGuard | None, epoch: int | None) -> dict[str, str]:
    value = epoch if epoch is not None else (guard.epoch if guard is not None else None)
    return {EPOCH_METADATA: str(value)} if value is not None else {}


def _http_date(value: str | None) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp() if value else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class StoredObject:
    """An object's bytes and the ETag they were read at.

    ``size`` is the whole object's size; after a bounded read (``max_bytes``) ``body`` may
    be shorter: :attr:`truncated` says so. ``last_modified`` and ``server_date`` are S3's
    clock (seconds since the epoch, whole seconds as HTTP dates carry them)."""

    body: bytes
    etag: str
    content_type: str | None = None
    size: int | None = None
    last_modified: float | None = None
    server_date: float | None = None

    @property
    def truncated(self) -> bool:
        return self.size is not None and self.size > len(self.body)

    @property
    def age_s(self) -> float | None:
        """How long the object had been unchanged when S3 answered, on S3's clock (±1 s)."""
        if self.last_modified is None or self.server_date is None:
            return None
        return max(0.0, self.server_date - self.last_modified)


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: key, size in bytes and ETag, as ListObjectsV2 gives them."""

    key: str
    size: int
    etag: str = ""


@dataclass(frozen=True)
class StoredJson:
    """A JSON object's decoded value and the ETag it was read at."""

    data: Any
    etag: str


_XML_CHAR = re.compile("[\t\n\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")


def xml_safe_key(key: str) -> bool:
    """True when an XML 1.0 body carries ``key`` unchanged (no control characters, no CR,
    no U+FFFE/U+FFFF): only then may a bulk delete name it."""
    return _XML_CHAR.fullmatch(key) is not None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _translate(exc: ClientError) -> Exception:
    code = _code(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in ("NoSuchKey", "NoSuchBucket", "NotFound", "404") or status == 404:
        return NotFound(code or "404")
    if code in ("PreconditionFailed", "ConditionalRequestConflict", "412") or status in (409, 412):
        return PreconditionFailed(code or str(status))
    return exc


def _total_size(resp: dict[str, Any], read: int) -> int:
    """The whole object's size from a GET: ``Content-Range: bytes 0-9/100`` -> 100."""
    content_range = resp.get("ContentRange")
    if isinstance(content_range, str) and "/" in content_range:
        total = content_range.rpartition("/")[2]
        if total.isdigit():
            return int(total)
    length = resp.get("ContentLength")
    return int(length) if isinstance(length, int) else read


class ObjectStore(AsyncAwsClient):
    """S3 over aioboto3. Use as ``async with ObjectStore(settings) as store:``."""

    service = "s3"

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.client.meta.events.register("before-send.s3", _check_guard_before_send)
        return self

    def _translate(self, exc: ClientError) -> Exception:
        return _translate(exc)

    # --- reads -----------------------------------------------------------------------
    async def get_bytes(self, bucket: str, key: str, *, max_bytes: int | None = None) -> StoredObject:
        """The object's bytes; with ``max_bytes``, a ranged GET of at most that many (an
        oversized object then costs ``max_bytes`` of memory, never its size)."""
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if max_bytes is not None:
            params["Range"] = f"bytes=0-{max_bytes - 1}"

        async def op() -> StoredObject:
            try:
                resp = await self.client.get_object(**params)
            except ClientError as exc:
                if _code(exc) == "InvalidRange" and max_bytes is not None:  # an empty object
                    head = await self.client.head_object(Bucket=bucket, Key=key)
                    return StoredObject(body=b"", etag=head["ETag"], content_type=head.get("ContentType"),
                                        size=int(head.get("ContentLength", 0)))
                raise
            stream = resp["Body"]
            try:
                body = await stream.read()
            finally:
                stream.close()
            modified = resp.get("LastModified")
            return StoredObject(body=body, etag=resp["ETag"], content_type=resp.get("ContentType"),
                                size=_total_size(resp, len(body)),
                                last_modified=modified.timestamp() if isinstance(modified, datetime) else None,
                                server_date=_http_date(resp.get("ResponseMetadata", {}).get("HTTPHeaders", {})
                                                       .get("date")))
        return await self._call(op)

    async def get_json(self, bucket: str, key: str) -> StoredJson:
        obj = await self.get_bytes(bucket, key)
        return StoredJson(data=json.loads(obj.body), etag=obj.etag)

    async def head_etag(self, bucket: str, key: str) -> str | None:
        """The object's ETag, or None when it does not exist."""
        async def op() -> str:
            return (await self.client.head_object(Bucket=bucket, Key=key))["ETag"]
        try:
            return await self._call(op)
        except NotFound:
            return None

    async def exists(self, bucket: str, key: str) -> bool:
        return await self.head_etag(bucket, key) is not None

    async def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        """All keys under ``prefix``, in S3 order (lexicographic)."""
        return [o.key for o in await self.list_objects(bucket, prefix)]

    async def list_objects(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        """Every object under ``prefix`` with its size, in S3 order: sizes known before any GET."""
        async def op() -> list[ObjectInfo]:
            found: list[ObjectInfo] = []
            paginator = self.client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                found.extend(ObjectInfo(key=item["Key"], size=int(item.get("Size", 0)),
                                        etag=str(item.get("ETag", ""))) for item in page.get("Contents", []))
            return found
        return await self._call(op)

    async def download_file(self, bucket: str, key: str, path: Path, *, max_bytes: int | None = None) -> Path:
        """Stream an object to ``path`` (parents created); a partial file never survives.

        With ``max_bytes``, an object that turns out bigger (it may have been replaced since it
        was listed) stops the download at the limit and raises :class:`ObjectTooLarge`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")

        async def op() -> None:
            resp = await self.client.get_object(Bucket=bucket, Key=key)
            stream = resp["Body"]
            try:
                length = resp.get("ContentLength")
                if max_bytes is not None and isinstance(length, int) and length > max_bytes:
                    raise ObjectTooLarge(key, length, max_bytes)
                written = 0
                with tmp.open("wb") as fh:
                    async for chunk in stream.iter_chunks(_CHUNK):
                        written += len(chunk)
                        if max_bytes is not None and written > max_bytes:
                            raise ObjectTooLarge(key, written, max_bytes)
                        fh.write(chunk)
            finally:
                stream.close()
        try:
            await self._call(op)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    # --- writes ----------------------------------------------------------------------
    async def put_bytes(self, bucket: str, key: str, body: bytes, *, content_type: str | None = None,
                        if_match: str | None = None, if_none_match: bool = False,
                        guard: WriteGuard | None = None, epoch: int | None = None) -> str:
        """Write ``body``; returns the new ETag. Conditional forms raise PreconditionFailed.

        ``guard``: checked before every HTTP attempt; ``epoch`` (default: the guard's) is
        recorded as the writer's lease epoch in the object's metadata."""
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": body}
        if content_type:
            params["ContentType"] = content_type
        if if_match is not None:
            params["IfMatch"] = if_match
        if if_none_match:
            params["IfNoneMatch"] = "*"
        if metadata := _epoch_metadata(guard, epoch):
            params["Metadata"] = metadata

        async def op() -> str:
            return (await self.client.put_object(**params))["ETag"]
        with _guarded(guard):
            return await self._call(op)

    async def put_json(self, bucket: str, key: str, data: Any, *, if_match: str | None = None,
                       if_none_match: bool = False, guard: WriteGuard | None = None) -> str:
        body = json.dumps(data, indent=2, sort_keys=True).encode()
        return await self.put_bytes(bucket, key, body, content_type="application/json",
                                    if_match=if_match, if_none_match=if_none_match, guard=guard)

    async def upload_file(self, bucket: str, key: str, path: Path, *,
                          content_type: str | None = None, guard: WriteGuard | None = None) -> str:
        """Upload a local file in one PUT (files here are at most tens of MB); returns the ETag."""
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if content_type:
            params["ContentType"] = content_type
        if metadata := _epoch_metadata(guard, None):
            params["Metadata"] = metadata

        async def op() -> str:
            with path.open("rb") as fh:
                return (await self.client.put_object(Body=fh, **params))["ETag"]
        with _guarded(guard):
            return await self._call(op)

    async def delete(self, bucket: str, key: str) -> None:
        async def op() -> None:
            await self.client.delete_object(Bucket=bucket, Key=key)
        await self._call(op)

    async def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every key under ``prefix`` (which must be non-empty); returns how many.

        Keys go in bulk (DeleteObjects, 1,000 a request) when its XML body can carry them, one by
        one (DeleteObject, the key in the URL) when it cannot: S3 accepts any UTF-8 key, XML 1.0
        neither control characters nor a carriage return that survives parsing. One such key in
        a batch would otherwise fail the whole batch, and a stranger's upload keep every file."""
        if not prefix:
            raise ValueError("refusing to delete a whole bucket: prefix is empty")
        keys = await self.list_keys(bucket, prefix)
        for key in (k for k in keys if not xml_safe_key(k)):
            await self.delete(bucket, key)
        bulk = [k for k in keys if xml_safe_key(k)]
        for start in range(0, len(bulk), 1000):
            batch = [{"Key": k} for k in bulk[start:start + 1000]]

            async def op(batch: list[dict[str, str]] = batch) -> None:
                resp = await self.client.delete_objects(Bucket=bucket,
                                                        Delete={"Objects": batch, "Quiet": True})
                if resp.get("Errors"):
                    raise StorageError(f"{len(resp['Errors'])} keys could not be deleted")
            await self._call(op)
        return len(keys)

    async def abort_multipart_uploads(self, bucket: str, prefix: str) -> int:
        """Abort unfinished multipart uploads under ``prefix`` (non-empty): their parts are
        stored (and billed) but never listed as objects. Returns how many were aborted."""
        if not prefix:
            raise ValueError("refusing to abort uploads for a whole bucket: prefix is empty")

        async def op() -> list[tuple[str, str]]:
            pending: list[tuple[str, str]] = []
            paginator = self.client.get_paginator("list_multipart_uploads")
            async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                pending.extend((u["Key"], u["UploadId"]) for u in page.get("Uploads", []))
            return pending
        pending = await self._call(op)
        for key, upload_id in pending:
            async def abort(key: str = key, upload_id: str = upload_id) -> None:
                try:
                    await self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
                except ClientError as exc:
                    if _code(exc) != "NoSuchUpload":  # finished or aborted meanwhile: fine
                        raise
            await self._call(abort)
        return len(pending)

    async def presign_get(self, bucket: str, key: str, ttl_s: int) -> str:
        """A GET link valid for ``ttl_s`` seconds (SigV4 allows at most 7 days)."""
        if not 1 <= ttl_s <= 7 * 24 * 3600:
            raise ValueError("ttl_s must be between 1 s and 7 days")
        return await self.client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=ttl_s)
