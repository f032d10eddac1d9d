"""The one gate every write of an attempt passes: checkpoints, done records, results, the email.

Why one place: a worker presumed dead may still be running (a long pause, a lost network), and
whatever it writes after another worker took the job over can undo the new owner's work or
send a second email. Every write of an attempt calls :meth:`Fence.check` first; the rule it
applies lives here and nowhere else.
"""

from __future__ import annotations

import threading

from processor.errors import LostOwnership


class Fence:
    """Open while this attempt owns its job; closed for good once it learns it does not."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self._lost = threading.Event()  # set from the event loop, read from stage threads too

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def close(self) -> None:
        """Another worker owns the job now (the ownership heartbeat found out)."""
        self._lost.set()

    async def check(self) -> None:
        """Raise :class:`LostOwnership` when this attempt may no longer write."""
        if self._lost.is_set():
            raise LostOwnership(f"job {self.job_id} is owned by another worker")
