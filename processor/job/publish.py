"""Publishing a job's results under ``results/<job>/`` in the output bucket.

Fixed names, so a repeated delivery overwrites and never duplicates. Headshots go first and
concurrently; the files that describe them (contact sheet, archive, summary) after, so a
reader that sees the summary can trust the headshots it lists are there. Each upload passes
the attempt's fence before every HTTP attempt and carries its lease epoch; one failed upload
cancels the others (:func:`processor.aws.transfers.bounded`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from processor import clock
from processor.aws.storage import ObjectStore
from processor.aws.transfers import bounded
from processor.job.fence import Fence
from processor.manifest import results_prefix
from processor.stages import Deliverables

CONTENT_TYPES = {".jpg": "image/jpeg", ".zip": "application/zip", ".json": "application/json"}


def delivery_record(prefix: str, deliverables: Deliverables, published_at: float | None = None) -> dict[str, Any]:
    """What the job remembers of a delivery (the ``deliver`` done record, JSON-safe).

    ``published_at`` is taken before the first upload: every result object is at least that
    old, so links that expire ``link_ttl_s`` after it never outlive the results/ lifecycle.
    """
    return {"prefix": prefix, "files": [p.name for p in deliverables.files()],
            "published_at": published_at if published_at is not None else clock.now(),
            "headshots": [p.name for p in deliverables.headshots],
            "contact_sheet": deliverables.contact_sheet.name if deliverables.contact_sheet else None,
            "archive": deliverables.archive.name if deliverables.archive else None,
            "summary": json.loads(json.dumps(deliverables.summary, default=str))}


async def publish_results(store: ObjectStore, bucket: str, job_id: str, deliverables: Deliverables,
                          fence: Fence, hit: Callable[[str], None]) -> dict[str, Any]:
    """Upload every deliverable; ``hit`` is the failpoint hook after each upload group."""
    prefix = results_prefix(job_id)
    published_at = clock.now()

    async def upload(path: Path) -> str:
        fence.ensure()  # fail fast; the storage edge checks again before each attempt leaves
        return await store.upload_file(bucket, prefix + path.name, path,
                                       content_type=CONTENT_TYPES.get(path.suffix), guard=fence)
    paths = list(deliverables.files())
    await bounded([lambda p=p: upload(p) for p in paths if p.suffix == ".jpg"])
    hit("deliver.uploaded")
    for path in (p for p in paths if p.suffix != ".jpg"):
        await upload(path)
        hit("deliver.uploaded")
    return delivery_record(prefix, deliverables, published_at)
