"""Stage checkpoints of one job under ``jobs/<job>/work/<stage>/`` in the output bucket.

Why: a worker can die at any moment (spot interruption, OOM, a deploy). Everything a later
attempt needs to skip a finished stage, or to resume a half-finished one, is written here as
soon as it exists: the validation report, the prepared dataset, training checkpoints and the
final LoRA weights, every accepted headshot with its record, and the list of delivered files.
A stage counts as finished only when its ``_done.json`` exists (written last). Every write
passes the attempt's :class:`~processor.job.fence.Fence` first, so a worker that lost the job
writes nothing more here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from processor.aws.storage import NotFound, ObjectStore
from processor.aws.transfers import bounded, download_many
from processor.job.fence import Fence
from processor.manifest import job_prefix

log = structlog.get_logger(__name__)

DONE = "_done.json"
RECORDS = "records"  # generate/records/<image>.json, one per accepted image


def safe_name(name: str) -> str:
    """A checkpoint name: relative, no empty, '.' or '..' parts."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad checkpoint name {name!r}")
    return name


@dataclass(frozen=True)
class JobCheckpoints:
    """The checkpoint folder of one job: its own keys, its own reads, fenced writes."""

    store: ObjectStore
    bucket: str
    job_id: str
    fence: Fence

    # --- keys ------------------------------------------------------------------------
    def work_prefix(self, stage: str) -> str:
        if not stage or "/" in stage or stage in (".", ".."):
            raise ValueError(f"bad stage name {stage!r}")
        return f"{job_prefix(self.job_id)}work/{stage}/"

    def key(self, stage: str, name: str) -> str:
        return self.work_prefix(stage) + safe_name(name)

    # --- done records ----------------------------------------------------------------
    async def done(self, stage: str) -> dict[str, Any] | None:
        """The stage's done record (what the next attempt needs), or None if it never finished."""
        try:
            return (await self.store.get_json(self.bucket, self.work_prefix(stage) + DONE)).data
        except NotFound:
            return None

    async def is_done(self, stage: str) -> bool:
        return await self.store.exists(self.bucket, self.work_prefix(stage) + DONE)

    async def mark_done(self, stage: str, meta: dict[str, Any] | None = None) -> None:
        """Record that the stage finished; ``meta`` is whatever the next attempt needs to skip it."""
        await self.fence.check()
        await self.store.put_json(self.bucket, self.work_prefix(stage) + DONE, meta or {})

    # --- single objects --------------------------------------------------------------
    async def put_bytes(self, stage: str, name: str, body: bytes) -> None:
        await self.fence.check()
        await self.store.put_bytes(self.bucket, self.key(stage, name), body)

    async def get_bytes(self, stage: str, name: str) -> bytes | None:
        try:
            return (await self.store.get_bytes(self.bucket, self.key(stage, name))).body
        except NotFound:
            return None

    async def put_json(self, stage: str, name: str, data: Any) -> None:
        await self.put_bytes(stage, name, json.dumps(data, indent=1, sort_keys=True).encode())

    async def get_json(self, stage: str, name: str) -> Any | None:
        body = await self.get_bytes(stage, name)
        return None if body is None else json.loads(body)

    async def upload_file(self, stage: str, name: str, path: Path) -> None:
        await self.fence.check()
        await self.store.upload_file(self.bucket, self.key(stage, name), path)

    # --- folders ---------------------------------------------------------------------
    async def names(self, stage: str, under: str = "") -> list[str]:
        """Names (relative to ``<stage>/<under>/``) of the stage's checkpoint objects."""
        base = self.work_prefix(stage)
        prefix = f"{under}/" if under else ""
        found = [k[len(base):] for k in await self.store.list_keys(self.bucket, base + prefix)]
        return [n[len(prefix):] for n in found if n != DONE]

    async def upload_tree(self, stage: str, root: Path, under: str = "") -> int:
        """Upload every file below ``root`` as ``<stage>/<under>/<relative path>``."""
        paths = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".partial"))

        def name(path: Path) -> str:
            rel = path.relative_to(root).as_posix()
            return f"{under}/{rel}" if under else rel
        await bounded([lambda p=p: self.upload_file(stage, name(p), p) for p in paths])
        return len(paths)

    async def download_tree(self, stage: str, dest: Path, under: str = "") -> list[Path]:
        """Copy ``<stage>/<under>/...`` into ``dest`` keeping relative paths."""
        prefix = f"{under}/" if under else ""
        items = [(self.key(stage, prefix + name), dest.joinpath(*safe_name(name).split("/")))
                 for name in await self.names(stage, under)]
        return await download_many(self.store, self.bucket, items)

    async def delete_all(self) -> int:
        """Remove the whole ``work/`` folder (after the job ended: it holds the person's data)."""
        await self.fence.check()
        return await self.store.delete_prefix(self.bucket, job_prefix(self.job_id) + "work/")

    # --- train -----------------------------------------------------------------------
    async def latest_train_checkpoint(self, dest: Path) -> Path | None:
        """Download the newest ``checkpoints/step-<N>/`` into ``dest``; its path, or None."""
        steps: dict[int, str] = {}
        for name in await self.names("train", "checkpoints"):
            folder = name.split("/", 1)[0]
            if folder.startswith("step-") and folder[5:].isdigit():
                steps[int(folder[5:])] = folder
        if not steps:
            return None
        folder = steps[max(steps)]
        await self.download_tree("train", dest / folder, f"checkpoints/{folder}")
        return dest / folder

    # --- generate --------------------------------------------------------------------
    async def save_image(self, file: str, record: dict[str, Any], image_dir: Path) -> None:
        """One accepted headshot: the image first, its record last (the record marks it whole)."""
        await self.upload_file("generate", f"images/{file}", image_dir / file)
        await self.put_json("generate", f"{RECORDS}/{file}.json", record)

    async def load_images(self, image_dir: Path, file_of: Callable[[dict[str, Any]], str]) -> list[dict[str, Any]]:
        """The accepted headshots' records of earlier attempts; their images downloaded into ``image_dir``."""
        records = []
        for name in sorted(await self.names("generate", RECORDS)):
            data = await self.get_json("generate", f"{RECORDS}/{name}")
            if data is None:
                continue
            file = file_of(data)
            await self.store.download_file(self.bucket, self.key("generate", f"images/{file}"), image_dir / file)
            records.append(data)
        return records
