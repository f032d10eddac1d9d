"""The checkpoint protocol: what an attempt leaves for the next one, complete or invisible.

Why: a worker can die at any moment (spot interruption, OOM, a deploy), pause for minutes and
wake up, or lose its lease while a write is on the wire. Everything a later attempt needs to
skip a finished stage, or to resume a half-finished one, is a *checkpoint*: a named set of
files plus a small JSON ``meta``, under one stage, written by one attempt. The rules, the same
for every stage (a new checkpointed step only picks a stage and a name):

1. **Epoch-scoped keys.** ``jobs/<job>/work/<stage>/<name>/e<epoch>/<file>``: an attempt writes
   only under its own lease epoch, so a stale writer (an owner presumed dead that wakes up)
   cannot reach a key the current owner writes or reads back.
2. **Marker last.** The files go first (concurrently; one failure cancels the rest), then
   ``_complete.json``, which lists every file with its size. A checkpoint exists once its
   marker does; a folder without one (a kill, a pause, an outage mid-upload) is invisible.
3. **Read what the marker lists.** A reader takes, per name, the complete checkpoint of the
   highest epoch not above its own, and reads exactly the files its marker names.
4. **Fenced.** Every write passes the attempt's :class:`~processor.job.fence.Fence`, checked by
   the storage edge before each HTTP attempt (retries included), and carries its epoch.
5. **No contention with the lease.** Nothing here touches status.json: renewals (compare-and-swap
   on status.json) and checkpoint writes never race each other.

A stage's done record is its ``done`` checkpoint: the meta is what the next attempt needs to
skip the stage, the files are the stage's outputs (prepare's dataset, train's LoRA weights).
Inside a stage, progress is a series of checkpoints (train's ``step-000040``, generate's
``image-<file>``), found again with :meth:`JobCheckpoints.find`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from processor.aws.storage import NotFound, ObjectStore
from processor.aws.transfers import bounded, download_many
from processor.job.fence import Fence
from processor.manifest import job_prefix

log = structlog.get_logger(__name__)

MARKER = "_complete.json"
DONE = "done"  # the name of a stage's done checkpoint
_EPOCH = re.compile(r"^e(\d+)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+=-]{0,200}$")

Hit = Callable[[str], None]


def _no_hit(point: str) -> None:
    return None


def safe_name(name: str) -> str:
    """A checkpoint file name: relative, no empty, '.' or '..' parts, not the marker's."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts) or name == MARKER:
        raise ValueError(f"bad checkpoint file name {name!r}")
    return name


def _checked(kind: str, value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"bad {kind} name {value!r}")
    return value


def files_under(root: Path, under: str = "") -> dict[str, Path]:
    """Every file below ``root`` as ``{"<under>/<relative path>": path}`` (``.partial`` left out)."""
    found = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".partial")):
        rel = path.relative_to(root).as_posix()
        found[f"{under}/{rel}" if under else rel] = path
    return found


@dataclass(frozen=True)
class Checkpoint:
    """One complete checkpoint: where it lives, the files its marker lists, and its meta."""

    stage: str
    name: str
    epoch: int
    files: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    folder: str = ""  # the key prefix of its epoch folder


@dataclass(frozen=True)
class JobCheckpoints:
    """The checkpoints of one job, as one attempt (its fence, its epoch) reads and writes them."""

    store: ObjectStore
    bucket: str
    job_id: str
    fence: Fence
    #: failpoints: ``checkpoint.<stage>.fenced`` (a file's fence checked, its request not yet
    #: sent) and ``checkpoint.<stage>.file`` (a file uploaded, the marker not yet written)
    hit: Hit = _no_hit

    @property
    def epoch(self) -> int:
        return self.fence.epoch

    # --- keys ------------------------------------------------------------------------
    def stage_prefix(self, stage: str) -> str:
        return f"{job_prefix(self.job_id)}work/{_checked('stage', stage)}/"

    def folder(self, stage: str, name: str, epoch: int | None = None) -> str:
        return f"{self.stage_prefix(stage)}{_checked('checkpoint', name)}/e{self.epoch if epoch is None else epoch}/"

    # --- writing ---------------------------------------------------------------------
    async def save(self, stage: str, name: str, files: Mapping[str, Path | bytes] | None = None,
                   meta: dict[str, Any] | None = None) -> Checkpoint:
        """Write one checkpoint under this attempt's epoch: its files, then its marker."""
        self.fence.ensure()
        folder = self.folder(stage, name)
        files = {safe_name(n): body for n, body in (files or {}).items()}

        async def put(file: str, body: Path | bytes) -> int:
            self.fence.ensure()  # fail fast; the storage edge checks again as the request leaves
            self.hit(f"checkpoint.{stage}.fenced")
            if isinstance(body, bytes):
                await self.store.put_bytes(self.bucket, folder + file, body, guard=self.fence)
                size = len(body)
            else:
                await self.store.upload_file(self.bucket, folder + file, body, guard=self.fence)
                size = body.stat().st_size
            self.hit(f"checkpoint.{stage}.file")
            return size
        sizes = await bounded([lambda f=f, b=b: put(f, b) for f, b in files.items()])
        marker = {"stage": stage, "name": name, "epoch": self.epoch, "meta": meta or {},
                  "files": dict(zip(files, sizes, strict=True))}
        await self.store.put_json(self.bucket, folder + MARKER, marker, guard=self.fence)
        return Checkpoint(stage, name, self.epoch, tuple(files), meta or {}, folder)

    async def mark_done(self, stage: str, meta: dict[str, Any] | None = None,
                        files: Mapping[str, Path | bytes] | None = None) -> Checkpoint:
        """The stage finished: ``meta`` is what the next attempt needs to skip it, ``files`` its outputs."""
        return await self.save(stage, DONE, files, meta)

    # --- reading ---------------------------------------------------------------------
    async def find(self, stage: str, prefix: str = "") -> dict[str, Checkpoint]:
        """The stage's complete checkpoints whose name starts with ``prefix``: for each name, the
        one of the highest epoch not above this attempt's (a newer one is a newer owner's)."""
        base = self.stage_prefix(stage)
        best: dict[str, int] = {}
        for key in await self.store.list_keys(self.bucket, base + prefix):
            parts = key[len(base):].split("/")
            epoch = _EPOCH.match(parts[1]) if len(parts) == 3 and parts[2] == MARKER else None
            if epoch is None or not parts[0].startswith(prefix):
                continue
            n = int(epoch.group(1))
            if n <= self.epoch and n > best.get(parts[0], -1):
                best[parts[0]] = n
        found = {}
        for name, epoch in sorted(best.items()):
            folder = self.folder(stage, name, epoch)
            try:
                data = (await self.store.get_json(self.bucket, folder + MARKER)).data
            except NotFound:  # removed meanwhile (the job ended)
                continue
            found[name] = Checkpoint(stage, name, epoch, tuple(data.get("files", {})), dict(data.get("meta") or {}),
                                     folder)
        return found

    async def latest(self, stage: str, name: str) -> Checkpoint | None:
        """The complete checkpoint ``name`` of ``stage`` (highest epoch), or None."""
        return (await self.find(stage, name)).get(name)

    async def done(self, stage: str) -> Checkpoint | None:
        """The stage's done checkpoint, or None if it never finished."""
        return await self.latest(stage, DONE)

    async def read(self, ckpt: Checkpoint, file: str) -> bytes:
        return (await self.store.get_bytes(self.bucket, ckpt.folder + safe_name(file))).body

    async def download(self, ckpt: Checkpoint, dest: Path, under: str = "") -> list[Path]:
        """Copy the checkpoint's files (those below ``under/``, that prefix dropped) into ``dest``."""
        prefix = f"{under}/" if under else ""
        items = [(ckpt.folder + name, dest.joinpath(*name[len(prefix):].split("/")))
                 for name in ckpt.files if name.startswith(prefix)]
        return await download_many(self.store, self.bucket, items)

    # --- the end ---------------------------------------------------------------------
    async def delete_all(self) -> int:
        """Remove the whole ``work/`` folder (after the job ended: it holds the person's data)."""
        return await self.store.delete_prefix(self.bucket, job_prefix(self.job_id) + "work/")
