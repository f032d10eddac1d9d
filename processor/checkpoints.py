"""Stage checkpoints of one job under ``jobs/<job>/work/<stage>/`` in the output bucket.

Why: a worker can die at any moment (spot interruption, OOM, a deploy). Everything a later
attempt needs to skip a finished stage, or to resume a half-finished one, is written here as
soon as it exists: the validation report, the prepared dataset, training checkpoints and the
final LoRA weights, every accepted headshot with its record, and the list of delivered files.
A stage counts as finished only when its ``_done.json`` exists (written last).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from processor.job_store import JobStore
from processor.transfers import bounded, download_many

if TYPE_CHECKING:
    from handlers.generation_records import ImageRecord, SelectionResult

log = structlog.get_logger(__name__)

RECORDS = "records"  # generate/records/<image>.json, one per accepted image


@dataclass(frozen=True)
class JobCheckpoints:
    """The checkpoint folder of one job, over the job store."""

    jobs: JobStore
    job_id: str

    async def done(self, stage: str) -> dict[str, Any] | None:
        """The stage's done record (what the next attempt needs), or None if it never finished."""
        return await self.jobs.done_meta(self.job_id, stage)

    async def mark_done(self, stage: str, meta: dict[str, Any] | None = None) -> None:
        await self.jobs.mark_done(self.job_id, stage, meta or {})

    async def put_json(self, stage: str, name: str, data: Any) -> None:
        body = json.dumps(data, indent=1, sort_keys=True).encode()
        await self.jobs.put_checkpoint(self.job_id, stage, name, body)

    async def get_json(self, stage: str, name: str) -> Any | None:
        body = await self.jobs.get_checkpoint(self.job_id, stage, name)
        return None if body is None else json.loads(body)

    async def put_bytes(self, stage: str, name: str, body: bytes) -> None:
        await self.jobs.put_checkpoint(self.job_id, stage, name, body)

    async def get_bytes(self, stage: str, name: str) -> bytes | None:
        return await self.jobs.get_checkpoint(self.job_id, stage, name)

    async def upload_tree(self, stage: str, root: Path, under: str = "") -> int:
        """Upload every file below ``root`` as ``<stage>/<under>/<relative path>``."""
        paths = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".partial"))

        def name(path: Path) -> str:
            rel = path.relative_to(root).as_posix()
            return f"{under}/{rel}" if under else rel
        await bounded([lambda p=p: self.jobs.upload_checkpoint(self.job_id, stage, name(p), p) for p in paths])
        return len(paths)

    async def download_tree(self, stage: str, dest: Path, under: str = "") -> list[Path]:
        """Copy ``<stage>/<under>/...`` into ``dest`` keeping relative paths."""
        prefix = f"{under}/" if under else ""
        base = self.jobs.work_prefix(self.job_id, stage)
        items = [(base + name, dest.joinpath(*name[len(prefix):].split("/")))
                 for name in await self.jobs.list_checkpoints(self.job_id, stage) if name.startswith(prefix)]
        return await download_many(self.jobs.store, self.jobs.bucket, items)

    async def names(self, stage: str, under: str = "") -> list[str]:
        prefix = f"{under}/" if under else ""
        return [n[len(prefix):] for n in await self.jobs.list_checkpoints(self.job_id, stage)
                if n.startswith(prefix)]

    async def delete_all(self) -> int:
        """Remove the whole ``work/`` folder (after the job ended: it holds the person's data)."""
        return await self.jobs.store.delete_prefix(self.jobs.bucket, self.jobs.prefix(self.job_id) + "work/")

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
    async def save_image(self, record: ImageRecord, image_dir: Path) -> None:
        """One accepted headshot: the image first, its record last (the record marks it whole)."""
        await self.jobs.upload_checkpoint(self.job_id, "generate", f"images/{record.file}",
                                          image_dir / record.file)
        await self.put_json("generate", f"{RECORDS}/{record.file}.json", record.to_dict())

    async def load_images(self, image_dir: Path) -> list[ImageRecord]:
        """The accepted headshots of earlier attempts, downloaded into ``image_dir``."""
        from handlers.generation_records import ImageRecord

        records = []
        for name in sorted(await self.names("generate", RECORDS)):
            data = await self.get_json("generate", f"{RECORDS}/{name}")
            if data is None:
                continue
            record = ImageRecord.from_dict(data)
            await self.jobs.store.download_file(
                self.jobs.bucket, self.jobs.work_prefix(self.job_id, "generate") + f"images/{record.file}",
                image_dir / record.file)
            records.append(record)
        return sorted(records, key=lambda r: r.prompt_index)


def selection_to_dict(selection: SelectionResult) -> dict[str, Any]:
    """Everything of a SelectionResult except its local folder (for the generate done record)."""
    return {
        "records": [r.to_dict() for r in selection.records],
        "attempts": [a.to_dict() for a in selection.attempts],
        "requested": selection.requested, "mode": selection.mode, "threshold": selection.threshold,
        "seconds": selection.seconds, "generated": selection.generated, "extra": selection.extra,
    }


def selection_from_dict(data: dict[str, Any], image_dir: Path) -> SelectionResult:
    from handlers.generation_records import Attempt, ImageRecord, SelectionResult

    return SelectionResult(
        image_dir=image_dir,
        records=tuple(ImageRecord.from_dict(r) for r in data["records"]),
        attempts=tuple(Attempt.from_dict(a) for a in data["attempts"]),
        requested=int(data["requested"]), mode=str(data["mode"]), threshold=data.get("threshold"),
        seconds=float(data["seconds"]), generated=int(data.get("generated", 0)),
        extra=dict(data.get("extra") or {}),
    )
