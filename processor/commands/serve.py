"""``headshots serve``: the embedded stack, the front door and a worker, up until Ctrl-C.

Open the printed upload page in a browser, choose 10-20 photos, enter the code from the code
email (it lands in the outbox folder), and follow the job on its status page; the job's email
lands in the outbox too, and its links (gallery, downloads, ratings) work for as long as this
command runs. The front door's rate-limit table is created with the stack (it takes no job
without one). The same stack as ``headshots demo``: moto
server, SMTP sink, the front door's Lambda handler behind a local HTTP adapter, and the
tiny model unless ``--model`` names a real one.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


async def run_serve(cache: Path, model: str | None, num_images: int, port: int) -> int:
    from processor.commands.demo import demo_settings, ensure_face_weights
    from processor.devkit.local_stack import LocalStack
    from processor.settings import Settings
    from processor.worker import serve

    ensure_face_weights()
    base = Settings(**demo_settings(cache, model, num_images=num_images))
    async with LocalStack(base, outbox=cache / "outbox", frontdoor_port=port) as stack:
        s = stack.settings
        print(f"upload page: {s.frontdoor_url}/", flush=True)
        print(f"outbox:      {stack.outbox}", flush=True)
        print(f"metrics:     HEADSHOTS_AWS_ENDPOINT_URL={s.aws_endpoint_url} AWS_ACCESS_KEY_ID=testing "
              f"AWS_SECRET_ACCESS_KEY=testing headshots metrics", flush=True)
        print("Ctrl-C stops the worker and the stack.", file=sys.stderr, flush=True)
        return await serve(s)


def _run(args: argparse.Namespace) -> int:
    from processor.logging import configure_logging

    configure_logging("console", "INFO")
    return asyncio.run(run_serve(Path(args.cache).resolve(), args.model, args.num_images, args.port))


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("serve", help="the upload page, front door, embedded stack and a worker, until Ctrl-C",
                              description=__doc__)
    p.add_argument("--port", type=int, default=8080, help="the front door's port on 127.0.0.1 (0: any free port)")
    p.add_argument("--model", help="Hugging Face id or local path of an SDXL pipeline (default: tiny model)")
    p.add_argument("--num-images", type=int, default=50, help="headshots per job (default 50)")
    p.add_argument("--cache", default=".cache/serve", help="working folder (outbox, class images, scratch)")
    p.set_defaults(handler=_run)
