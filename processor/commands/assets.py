"""``headshots assets``: put the face weights and the sample photos in place (idempotent).

Where the face weights live (``DEEPFACE_HOME``), in order: ``HEADSHOTS_DEEPFACE_HOME``, an
already exported ``DEEPFACE_HOME``, else ``<repo>/.cache/deepface`` (the same default the
tests use). Every command that builds a FaceAnalyzer resolves it through
:func:`resolve_deepface_home` and exports it, so deepface never looks in ``~``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from processor.devkit.samples import default_cache_dir

REPO_ROOT = Path(__file__).resolve().parents[2]


def resolve_deepface_home(configured: Path | None = None) -> Path:
    """The DEEPFACE_HOME to use, exported into this process's environment."""
    if configured is not None:
        home = Path(configured)
    elif os.environ.get("DEEPFACE_HOME"):
        home = Path(os.environ["DEEPFACE_HOME"])
    else:
        home = REPO_ROOT / ".cache" / "deepface"
    home = home.resolve()
    os.environ["DEEPFACE_HOME"] = str(home)
    return home


def _run(args: argparse.Namespace) -> int:
    from handlers.faces import install_weights
    from processor.devkit.samples import fetch_sample_sources
    from processor.settings import load_settings

    started = time.monotonic()
    home = resolve_deepface_home(load_settings().deepface_home)
    weights = install_weights(home)
    print(f"face weights: {len(weights)} files in {weights[0].parent}")
    if not args.no_samples:
        sources = fetch_sample_sources(Path(args.cache_dir) if args.cache_dir else default_cache_dir())
        print(f"sample photos: {len(list(sources.root.iterdir()))} files in {sources.root}")
    print(f"assets ready in {time.monotonic() - started:.1f}s (DEEPFACE_HOME={home})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("assets", help="install face weights and sample photos (idempotent)")
    p.add_argument("--cache-dir", default=None, help="sample photo cache (default .cache/assets)")
    p.add_argument("--no-samples", action="store_true", help="face weights only")
    p.set_defaults(handler=_run)
