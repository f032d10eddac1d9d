"""The class-prior image cache, mirrored between a worker's disk and ``class-images/<key>/`` in S3.

Why: class images depend only on the base model and the class prompt, so the first job on the
fleet generates them and every later job, on any machine, downloads them instead: a new user
never waits for them. The key (``handlers.class_prior.class_cache_key``) names the folder in
both places.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from processor import stages
from processor.aws.storage import ObjectStore
from processor.aws.transfers import download_many, upload_many
from processor.settings import Settings
from processor.stages import Progress

PREFIX = "class-images"


async def ensure_class_images(store: ObjectStore, settings: Settings, class_prompt: str,
                              progress: Callable[[Progress], None] | None) -> Path | None:
    """The local class-image folder: fetched from S3, topped up by generation, pushed back."""
    if settings.prior_loss_weight <= 0:
        return None
    key = stages.class_images_key(settings, class_prompt)
    local = settings.class_cache_dir / key
    prefix = f"{PREFIX}/{key}/"
    remote = {k[len(prefix):] for k in await store.list_keys(settings.output_bucket, prefix)}
    await download_many(store, settings.output_bucket,
                        [(prefix + name, local / name) for name in sorted(remote)
                         if "/" not in name and not (local / name).exists()])
    folder = await asyncio.to_thread(stages.run_class_images, settings, class_prompt, progress)
    if folder is not None:
        new = [p for p in sorted(folder.iterdir())
               if p.is_file() and not p.name.endswith(".partial") and p.name not in remote]
        await upload_many(store, settings.output_bucket, [(p, prefix + p.name) for p in new])
    return folder
