"""One tiny-model job through the worker *inside the built image* (manual check; needs a Docker engine).

The local stack (moto server + SMTP sink, from the dev kit) runs in this process; the worker
runs in ``docker run --network host`` with the stack's HEADSHOTS_* settings, on the tiny SDXL
model (CPU). While it works, ``headshots worker --check-health`` must pass in the container; the
job must end ``delivered`` with its email in the outbox.

    docker build -t headshots-worker .          # any base: see docs/deploy.md
    .venv/bin/python scripts/image_smoke.py headshots-worker [--workdir /tmp/headshots-smoke]

Where no base image can be pulled, a Debian one can be made:
``debootstrap --variant=minbase bookworm ROOTFS && tar -C ROOTFS -c . | docker import - debian-base``,
then ``docker build --build-arg BASE_IMAGE=debian-base ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from processor.commands.status import read_status
from processor.commands.submit import plan_upload, upload
from processor.devkit.local_stack import LocalStack
from processor.devkit.profiles import fast_queue_settings, tiny_model_settings
from processor.devkit.samples import build_person_set
from processor.devkit.tiny_sdxl import build_tiny_sdxl
from processor.settings import Settings


async def smoke(image: str, root: Path, docker: str) -> int:
    model, cache, photos = root / "tiny-sdxl", root / "cache", root / "photos"
    if not (model / "model_index.json").exists():
        build_tiny_sdxl(model)
    if not photos.exists():
        build_person_set(photos, n=12)
    for d in (cache / "class-images", cache / "work"):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o777)  # the image's worker is uid 10001
    for path in (model, photos):
        for p in (path, *path.rglob("*")):
            p.chmod(p.stat().st_mode | (0o555 if p.is_dir() else 0o444))
    base = Settings(email_backend="smtp", log_format="json", **fast_queue_settings(),
                    **tiny_model_settings(model, cache, num_images=10))
    async with LocalStack(base, outbox=root / "outbox") as stack:
        settings = stack.settings
        plan = plan_upload(photos, "smoke@example.com", name="Smoke")
        await upload(plan, settings)
        before = set(stack.outbox_messages())
        # the image's own face weights (baked) and health file, not this machine's
        env = {k: v for k, v in stack.settings_env().items()
               if k not in ("HEADSHOTS_DEEPFACE_HOME", "HEADSHOTS_HEALTH_FILE")}
        name = f"headshots-smoke-{os.getpid()}"
        started = time.monotonic()
        worker = await asyncio.create_subprocess_exec(
            docker, "run", "--rm", "--name", name, "--network", "host", "-v", f"{root}:{root}",
            *[a for k, v in env.items() for a in ("-e", f"{k}={v}")],
            image, "worker", "--max-jobs", "1", "--idle-exit", "120")
        health = None
        while worker.returncode is None and health != 0:
            await asyncio.sleep(5)
            probe = await asyncio.create_subprocess_exec(docker, "exec", name, "headshots", "worker",
                                                         "--check-health")
            health = await probe.wait()
        rc = await worker.wait()
        status = await read_status(settings, plan.job_id)
        emails = sorted(set(stack.outbox_messages()) - before)
        state = status.state.value if status else None
        print(f"check-health in the running container: rc={health}; worker rc={rc} after "
              f"{time.monotonic() - started:.0f}s; job {plan.job_id}: {state}; email: "
              f"{emails[-1].name if emails else None}")
        return 0 if health == 0 and rc == 0 and state == "delivered" and emails else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--workdir", default="/tmp/headshots-smoke")
    parser.add_argument("--docker", default=os.environ.get("DOCKER", "docker"))
    args = parser.parse_args()
    root = Path(args.workdir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return asyncio.run(smoke(args.image, root, args.docker))


if __name__ == "__main__":
    sys.exit(main())
