"""Shared pytest setup. Fixtures live in ``tests/fixtures/`` (one module per area) and are
re-exported here so every test directory sees them."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE = REPO_ROOT / ".cache"

# Faces: deepface reads its weights from $DEEPFACE_HOME/.deepface/weights (installed by
# `headshots assets`). Nothing may be downloaded from a hub in tests.
os.environ.setdefault("DEEPFACE_HOME", str(CACHE / "deepface"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Two cores shared by everything: keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "2")

import pytest  # noqa: E402
import structlog  # noqa: E402

from tests.fixtures.aws import *  # noqa: E402,F401,F403
from tests.fixtures.browser import *  # noqa: E402,F401,F403
from tests.fixtures.ecs_agent import *  # noqa: E402,F401,F403
from tests.fixtures.faces import *  # noqa: E402,F401,F403
from tests.fixtures.hypothesis_profiles import *  # noqa: E402,F401,F403
from tests.fixtures.jobs import *  # noqa: E402,F401,F403
from tests.fixtures.models import *  # noqa: E402,F401,F403
from tests.fixtures.selection_photos import *  # noqa: E402,F401,F403
from tests.fixtures.smtp_peers import *  # noqa: E402,F401,F403


@pytest.fixture(autouse=True)
def _fresh_structlog_config():
    """A test that configures logging (e.g. at WARNING level) must not silence the next
    test's ``structlog.testing.capture_logs``: restore the defaults after every test."""
    yield
    structlog.reset_defaults()


def pytest_configure(config: pytest.Config) -> None:
    """The library warnings the service drops (processor/logging.py: LIBRARY_NOISE, each with its
    reason) are dropped in tests too: pytest's warning capture would show them again. As ini
    filters, so they also hold while module fixtures generate images."""
    import re

    from processor.logging import LIBRARY_NOISE

    for noise in LIBRARY_NOISE:
        if noise.kind == "warning":  # a regex without ':' (the filter's field separator)
            message = re.escape(noise.message).replace(":", r"\x3a")
            config.addinivalue_line("filterwarnings",
                                    f"ignore:{message}:{noise.category.__name__}:{noise.source}")
