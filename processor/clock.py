"""The one wall clock the runtime reads.

Why one: wall clocks differ between hosts (the fault suite runs workers 30 s apart), and every
place the runtime reads the time of day is a place where that skew can matter. Reading it here,
and only here, makes the list of such places a grep (``clock.now``), and lets the dev kit run a
worker whose clock is off (:func:`set_offset`, called only by ``processor.devkit.skewed_clock``)
to prove that none of them decides who owns a job. Ownership never compares wall clocks: a
lease's age is read on S3's clock (:mod:`processor.job.store`), deadlines on the owner's
monotonic clock (:mod:`processor.job.fence`).
"""

from __future__ import annotations

import time

_offset_s = 0.0


def now() -> float:
    """Seconds since the epoch, as this host (plus any dev-kit offset) tells it."""
    return time.time() + _offset_s


def set_offset(seconds: float) -> None:
    """Skew this process's wall clock by ``seconds`` (dev kit only: never set in production)."""
    global _offset_s
    _offset_s = float(seconds)


def offset() -> float:
    return _offset_s
