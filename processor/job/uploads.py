"""The person's upload folder: which files a job reads from it, fetching them, and removing it.

Uploads are untrusted names and sizes. The choices are pure functions (:func:`photo_names`,
:func:`plan_photos`, :func:`local_name`), tested on plain values; the rest is the thin S3
edge around them:

- sizes come from the listing (ListObjectsV2), so a photo over the cap is never downloaded,
  and a download stops at the cap if the object grew since it was listed;
- ``manifest.json`` is read with a bounded, ranged GET (:func:`read_manifest`);
- a key's name becomes a local file name only when it is safe (short enough for the local
  filesystem, no control characters, no path tricks); otherwise the local copy gets a
  hash-based name, and the person still sees their own name everywhere;
- manifest names match uploaded keys exactly, else by Unicode normal form (NFC), since
  some systems (macOS) upload decomposed names while the manifest holds composed ones;
- photos the manifest lists but that are not there yet are waited for, up to a grace period
  (:func:`wait_for_photos`): clients that upload in parallel race their own manifest;
- the whole ``uploads/<job>/`` prefix goes when the job ends (:func:`remove_uploads`).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from processor.aws.storage import ObjectStore
from processor.aws.transfers import bounded
from processor.errors import ManifestError, ObjectTooLarge
from processor.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    has_control_characters,
    uploads_prefix,
)
from processor.stages import (
    PHOTO_MAX_BYTES,
    PHOTO_MISSING,
    PHOTO_TOO_LARGE,
    Interrupted,
    PhotoFiles,
)

log = structlog.get_logger(__name__)

#: At most this many uploaded files are looked at (the manifest schema allows 200).
MAX_PHOTOS = 200
#: Longest local file name kept as is, in UTF-8 bytes: ext4/xfs allow 255 per name, and the
#: download writes ``<name>.part`` first. Longer names get a hash-based local name.
MAX_LOCAL_NAME_BYTES = 200
_SAFE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}$")

StopFn = Callable[[], bool]
Sleep = Callable[[float], Awaitable[None]]


def _never_stop() -> bool:
    return False


# --- names (pure) ---------------------------------------------------------------------------
def _is_photo_name(name: str) -> bool:
    return name != MANIFEST_NAME and "/" not in name and name not in ("", ".", "..")


def is_safe_local_name(name: str) -> bool:
    """True when ``name`` can be a local file name exactly as the person wrote it."""
    if not _is_photo_name(name) or "\\" in name or name.startswith(".") or has_control_characters(name):
        return False
    try:
        return len(name.encode("utf-8")) <= MAX_LOCAL_NAME_BYTES
    except UnicodeEncodeError:  # a lone surrogate: not a name any filesystem takes
        return False


def local_name(name: str) -> str:
    """The local file name for an uploaded photo called ``name``.

    The name itself when safe; else ``photo-<hash>.<ext>``: deterministic, ASCII, short,
    keeping a plain extension so the file is recognisable when debugging."""
    return name if is_safe_local_name(name) else _hashed_name(name)


def _hashed_name(name: str, salt: int = 0) -> str:
    seed = f"{salt}\0{name}" if salt else name
    digest = hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    suffix = _SAFE_SUFFIX.search(name)
    return f"photo-{digest}{suffix.group(0).lower() if suffix else ''}"


def photo_names(available: Sequence[str], listed: Sequence[str] | None,
                wanted: Sequence[str] | None = None) -> list[str]:
    """The photo file names to fetch, in order.

    ``available``: names found beside the manifest; ``listed``: the manifest's ``photos``
    (None or empty: every file there, sorted); ``wanted``: an explicit subset (e.g. the
    photos validation accepted), which wins. The manifest, sub-folders and path tricks are
    never photos; at most :data:`MAX_PHOTOS` are returned.
    """
    if wanted is not None:
        names = list(wanted)
    elif listed:
        names = list(listed)
    else:
        names = sorted(n for n in available if _is_photo_name(n))
    return names[:MAX_PHOTOS]


def match_uploaded(names: Sequence[str], available: Sequence[str]) -> dict[str, str]:
    """Each of ``names`` that was uploaded -> the uploaded name it is (exact, else the one
    upload with the same NFC form). Names with no upload are left out."""
    have = set(available)
    by_nfc: dict[str, list[str]] = {}
    for n in available:
        by_nfc.setdefault(unicodedata.normalize("NFC", n), []).append(n)
    found: dict[str, str] = {}
    for name in names:
        if name in have:
            found[name] = name
        else:
            twins = by_nfc.get(unicodedata.normalize("NFC", name), [])
            if len(twins) == 1:
                found[name] = twins[0]
    return found


@dataclass(frozen=True)
class PlannedPhoto:
    """One photo of the job: the person's name for it, and where it comes from and goes.

    ``key_name``: the uploaded name under ``uploads/<job>/`` (None: never received);
    ``refused``: ``(reason code, detail)`` when it is not downloaded."""

    name: str
    local: str
    key_name: str | None
    size: int | None
    refused: tuple[str, str] | None = None


def plan_photos(available: Mapping[str, int], listed: Sequence[str] | None,
                wanted: Sequence[str] | None = None, max_bytes: int = PHOTO_MAX_BYTES) -> list[PlannedPhoto]:
    """Which photos to download, under which local names, and which are refused unseen.

    ``available``: uploaded name -> size in bytes (from the listing). A listed photo never
    uploaded is refused as ``missing``; one over ``max_bytes`` as ``too_large``, before any
    byte of it is read. Local names are unique within the job."""
    names = photo_names(list(available), listed, wanted)
    uploaded = match_uploaded(names, [n for n in available if _is_photo_name(n)])
    plan: list[PlannedPhoto] = []
    used: set[str] = set()
    for name in names:
        local, salt = local_name(name), 0
        while local in used:  # a safe name that happens to equal another's hashed one
            salt += 1
            local = _hashed_name(name, salt)
        used.add(local)
        key_name = uploaded.get(name)
        size = available[key_name] if key_name is not None else None
        refused = None
        if key_name is None:
            refused = (PHOTO_MISSING, "listed in manifest.json but never uploaded")
        elif size is not None and size > max_bytes:
            refused = (PHOTO_TOO_LARGE, f"file is {size / 2**20:.1f} MB, over the "
                                        f"{max_bytes / 2**20:.0f} MB limit")
        plan.append(PlannedPhoto(name=name, local=local, key_name=key_name, size=size, refused=refused))
    return plan


# --- the S3 edge ----------------------------------------------------------------------------
async def list_uploads(store: ObjectStore, bucket: str, job_id: str) -> dict[str, int]:
    """Uploaded name (relative to ``uploads/<job>/``) -> size in bytes, from one listing."""
    prefix = uploads_prefix(job_id)
    return {o.key[len(prefix):]: o.size for o in await store.list_objects(bucket, prefix)}


async def read_manifest(store: ObjectStore, bucket: str, job_id: str) -> bytes:
    """``uploads/<job>/manifest.json`` read with a ranged GET of at most 64 KiB + 1 byte, so a
    300 MB manifest costs 64 KiB, not 300 MB (twice). Raises :class:`ManifestError` when it is
    over :data:`MAX_MANIFEST_BYTES`, ``NotFound`` when absent."""
    obj = await store.get_bytes(bucket, uploads_prefix(job_id) + MANIFEST_NAME,
                                max_bytes=MAX_MANIFEST_BYTES + 1)
    size = obj.size if obj.size is not None else len(obj.body)
    if obj.truncated or len(obj.body) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest.json is {size} bytes; it must be at most {MAX_MANIFEST_BYTES} "
                            f"bytes (64 KB)")
    return obj.body


async def wait_for_photos(list_fn: Callable[[], Awaitable[dict[str, int]]], listed: Sequence[str] | None, *,
                          grace_s: float, should_stop: StopFn = _never_stop, sleep: Sleep = asyncio.sleep,
                          clock: Callable[[], float] = time.monotonic, first_delay_s: float = 0.5,
                          max_delay_s: float = 8.0) -> dict[str, int]:
    """Poll the upload folder until every photo the manifest lists is there, or ``grace_s`` ran out.

    Returns the last listing (name -> size). Polls with exponential backoff (``first_delay_s``
    doubling up to ``max_delay_s``) and returns at once when nothing is missing or the manifest
    lists no photos (then "every file there" is the contract, nothing to wait for). Raises
    :class:`~processor.stages.Interrupted` as soon as ``should_stop()`` turns true (checked at
    least once a second), so a worker told to stop never waits out the grace period.
    """
    start = clock()
    listing = await list_fn()
    if not listed or grace_s <= 0:
        return listing
    delay = first_delay_s
    while True:
        missing = [n for n in listed if n not in match_uploaded([n], list(listing))]
        if not missing:
            return listing
        remaining = grace_s - (clock() - start)
        if remaining <= 0:
            log.info("photos_still_missing", missing=len(missing), waited_s=round(clock() - start, 1))
            return listing
        log.info("photos_waiting", missing=len(missing), remaining_s=round(remaining, 1))
        pause_until = clock() + min(delay, remaining)
        while (left := pause_until - clock()) > 0:
            if should_stop():
                raise Interrupted("stop requested while waiting for listed photos")
            await sleep(min(1.0, left))
        if should_stop():
            raise Interrupted("stop requested while waiting for listed photos")
        delay = min(delay * 2, max_delay_s)
        listing = await list_fn()


async def download_photos(store: ObjectStore, bucket: str, job_id: str, folder: Path,
                          listed: Sequence[str] | None, wanted: Sequence[str] | None = None, *,
                          max_bytes: int = PHOTO_MAX_BYTES, grace_s: float = 0.0,
                          should_stop: StopFn = _never_stop,
                          available: Mapping[str, int] | None = None) -> PhotoFiles:
    """Fetch the job's photos into ``folder``: a path per photo, fetched or not, in order.

    The result also carries the person's name for each path and the photos refused unseen
    (``missing``: listed, never uploaded, even after waiting ``grace_s``; ``too_large``: over
    ``max_bytes`` in the listing, or found so while downloading), so the gate reports them by
    name instead of this step failing the whole job. ``available``: a listing already made
    (e.g. by :func:`wait_for_photos`); otherwise the folder is listed (and waited on when
    ``grace_s`` > 0 and no ``wanted`` subset is given).
    """
    prefix = uploads_prefix(job_id)
    if available is None:
        if wanted is None and grace_s > 0:
            available = await wait_for_photos(lambda: list_uploads(store, bucket, job_id), listed,
                                              grace_s=grace_s, should_stop=should_stop)
        else:
            available = await list_uploads(store, bucket, job_id)
    plan = plan_photos(available, listed, wanted, max_bytes)
    refused = {p.name: p.refused for p in plan if p.refused is not None}

    async def fetch(p: PlannedPhoto) -> None:
        try:
            await store.download_file(bucket, prefix + (p.key_name or ""), folder / p.local, max_bytes=max_bytes)
        except ObjectTooLarge as exc:
            refused[p.name] = (PHOTO_TOO_LARGE, f"file is over the {exc.limit / 2**20:.0f} MB limit")
    folder.mkdir(parents=True, exist_ok=True)
    await bounded([lambda p=p: fetch(p) for p in plan if p.refused is None])
    if refused:
        log.info("photos_refused_unseen", missing=sum(r[0] == PHOTO_MISSING for r in refused.values()),
                 too_large=sum(r[0] == PHOTO_TOO_LARGE for r in refused.values()))
    return PhotoFiles([folder / p.local for p in plan], names=[p.name for p in plan], refused=refused)


async def remove_uploads(store: ObjectStore, bucket: str, job_id: str, *, rounds: int = 3) -> int:
    """Delete everything under ``uploads/<job>/``, late arrivals included; returns how many objects.

    Unfinished multipart uploads are aborted first (their parts are never listed as objects),
    then the prefix is deleted and listed again, up to ``rounds`` times, until nothing is left:
    a photo that lands while the job ends goes too. What arrives later still is the lifecycle
    rule's (the backstop on ``uploads/``)."""
    prefix = uploads_prefix(job_id)
    removed = 0
    for _ in range(max(1, rounds)):
        await store.abort_multipart_uploads(bucket, prefix)
        deleted = await store.delete_prefix(bucket, prefix)
        removed += deleted
        if deleted == 0 or not await store.list_keys(bucket, prefix):
            break
    return removed
