"""``headshots submit DIR --email ADDR``: upload a folder of photos as a client would.

Photos first, ``manifest.json`` last: the manifest's arrival is what starts the job (the S3
notification fires on it), so it must never arrive before the photos it lists.

No code email: this is the operator's tool, run with credentials that can write the input
bucket and read the link key, so the operator vouches for the address and signs the
manifest's address proof with the link key (:func:`processor.links.address_proof`). Without
the link key (``HEADSHOTS_LINK_SECRET_ID`` unset) the job still runs, but its email is
withheld (status ``email: withheld``): the worker emails only proven addresses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: The manifest's ``formats`` when portraits are asked for: squares and 4:5 portraits.
PORTRAIT_FORMATS = ["square", "portrait"]
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif"})


@dataclass(frozen=True)
class Upload:
    """What ``submit`` will put under ``uploads/<job>/``, in order (manifest last)."""

    job_id: str
    photos: tuple[Path, ...]
    manifest: bytes


def photo_files(folder: Path) -> list[Path]:
    """The photos of a folder (by extension), sorted by name; sub-folders are not looked into."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)


def new_job_id() -> str:
    """A fresh job id: 128 random bits (unguessable: the id is part of every link and key).

    No name in it: job ids are in every log line, and a person's name is not to be logged.
    """
    return f"job-{secrets.token_hex(16)}"


def plan_upload(folder: Path, email: str, name: str | None = None, job_id: str | None = None,
                formats: list[str] | None = None) -> Upload:
    """Check everything before the first byte goes out: job id, manifest schema, photos present.

    ``formats``: the manifest's delivery formats (e.g. ``["square", "portrait"]``); None leaves
    the field out (squares only).
    """
    from processor.manifest import parse_manifest, validate_job_id

    photos = photo_files(folder)
    if not photos:
        raise ValueError(f"no photos ({', '.join(sorted(PHOTO_SUFFIXES))}) in {folder}")
    job = validate_job_id(job_id) if job_id else new_job_id()
    doc: dict[str, object] = {"version": 1, "email": email, "photos": [p.name for p in photos]}
    if name:
        doc["name"] = name
    if formats:
        doc["formats"] = list(formats)
    body = json.dumps(doc, indent=2).encode()
    parse_manifest(body)  # raises ManifestError with the reason
    return Upload(job_id=job, photos=tuple(photos), manifest=body)


async def upload(plan: Upload, settings: object, show_progress: bool = True) -> str:
    """Put the photos (with a progress bar), then the manifest; returns the manifest's key."""
    from tqdm import tqdm

    from processor.aws.storage import ObjectStore
    from processor.manifest import MANIFEST_NAME, uploads_prefix
    from processor.settings import Settings

    assert isinstance(settings, Settings)
    prefix = uploads_prefix(plan.job_id)
    manifest = await signed_manifest(plan, settings)
    total = sum(p.stat().st_size for p in plan.photos)
    async with ObjectStore(settings) as store:
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"upload {plan.job_id}",
                  disable=not show_progress, file=sys.stderr) as bar:
            for path in plan.photos:
                await store.upload_file(settings.input_bucket, prefix + path.name, path,
                                        content_type=_content_type(path))
                bar.update(path.stat().st_size)
        await store.put_bytes(settings.input_bucket, prefix + MANIFEST_NAME, manifest,
                              content_type="application/json")
    return prefix + MANIFEST_NAME


async def signed_manifest(plan: Upload, settings: object) -> bytes:
    """The plan's manifest with the operator's address proof, when the link key is configured."""
    from processor.aws.secrets import read_link_keys
    from processor.links import address_proof
    from processor.settings import Settings

    assert isinstance(settings, Settings)
    if not settings.link_secret_id:
        print("headshots submit: HEADSHOTS_LINK_SECRET_ID is not set: the job will run, but no email "
              "will be sent (the address is not proven)", file=sys.stderr)
        return plan.manifest
    doc = json.loads(plan.manifest)
    key = (await read_link_keys(settings)).signing(time.time())  # read once, outside the worker's cache
    doc["proof"] = address_proof(key, plan.job_id, doc["email"])
    return json.dumps(doc, indent=2).encode()


def _content_type(path: Path) -> str:
    return {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
            ".heic": "image/heic", ".heif": "image/heif"}.get(path.suffix.lower(), "application/octet-stream")


def _run(args: argparse.Namespace) -> int:
    from processor.logging import configure_logging
    from processor.manifest import InvalidJobId, ManifestError
    from processor.settings import load_settings

    settings = load_settings()
    configure_logging(settings)
    try:
        plan = plan_upload(Path(args.folder), args.email, args.name, args.job_id,
                           PORTRAIT_FORMATS if args.portraits else None)
    except (ValueError, ManifestError, InvalidJobId, OSError) as exc:
        print(f"headshots submit: {exc}", file=sys.stderr)
        return 2
    key = asyncio.run(upload(plan, settings, show_progress=not args.quiet))
    print(plan.job_id)
    print(f"uploaded {len(plan.photos)} photos and s3://{settings.input_bucket}/{key}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("submit", help="upload a folder of photos and its manifest (manifest last)",
                              description=__doc__)
    p.add_argument("folder", help="folder of JPEG/PNG/WebP photos")
    p.add_argument("--email", required=True, help="where the headshots are sent")
    p.add_argument("--name", help="the person's first name, for the email")
    p.add_argument("--job-id", help="job id (default: generated); A-Z a-z 0-9 . _ -, 1-128 chars")
    p.add_argument("--portraits", action="store_true",
                   help="also deliver a 4:5 portrait crop of each headshot (manifest formats: square, portrait)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_run)
