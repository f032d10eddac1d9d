"""The person's upload folder: which files a job reads from it, and fetching them.

The choice of names is a pure function (:func:`photo_names`) so its rules are tested on
plain lists; :func:`download_photos` is the thin S3 edge around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from processor.aws.storage import ObjectStore
from processor.aws.transfers import download_many
from processor.manifest import MANIFEST_NAME, uploads_prefix

#: At most this many uploaded files are looked at (the manifest schema allows 200).
MAX_PHOTOS = 200


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


def _is_photo_name(name: str) -> bool:
    return name != MANIFEST_NAME and "/" not in name and name not in ("", ".", "..")


async def download_photos(store: ObjectStore, bucket: str, job_id: str, folder: Path,
                          listed: Sequence[str] | None, wanted: Sequence[str] | None = None) -> list[Path]:
    """Fetch the job's photos into ``folder``; returns a path per name, fetched or not.

    A listed photo that was never uploaded has no file at its path: the validation gate then
    reports it as unreadable, by name, instead of this step failing the whole job.
    """
    prefix = uploads_prefix(job_id)
    available = [k[len(prefix):] for k in await store.list_keys(bucket, prefix)]
    paths = [folder / name for name in photo_names(available, listed, wanted)]
    present = {n for n in available if _is_photo_name(n)}
    await download_many(store, bucket, [(prefix + p.name, p) for p in paths if p.name in present])
    return paths
