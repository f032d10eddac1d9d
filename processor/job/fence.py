"""The one gate every write of an attempt passes: checkpoints, done records, results, the email.

Why one place: a worker presumed dead may still be running (a long pause, a lost network), and
whatever it writes after another worker took the job over could undo the new owner's work or
send a second email. The rule: an attempt may write only while it holds the job's lease, that
is, until the ownership heartbeat finds another lease on the job (:meth:`Fence.close`), and no
longer than ``valid_for_s`` after its last successful renewal. The second half is what makes a
paused or cut-off worker stop on its own: a rival takes over only once the lease has gone
unrenewed for the staleness, and this worker's own deadline falls a margin before that (see
:func:`processor.settings.owner_validity`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from processor.errors import LostOwnership


class Fence:
    """Open while this attempt holds its job's lease; closed for good once it does not."""

    def __init__(self, job_id: str, epoch: int = 0, valid_for_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.job_id = job_id
        self.epoch = epoch
        self.valid_for_s = valid_for_s
        self._clock = clock
        self._renewed = clock()
        self._closed = threading.Event()  # set from the event loop, read from stage threads too

    def renewed(self, started_at: float) -> None:
        """A renewal that started at ``started_at`` (this fence's clock) succeeded."""
        self._renewed = max(self._renewed, started_at)

    def close(self) -> None:
        """Another lease holds the job now (the ownership heartbeat found out)."""
        self._closed.set()

    @property
    def expired(self) -> bool:
        return self.valid_for_s is not None and self._clock() - self._renewed > self.valid_for_s

    @property
    def lost(self) -> bool:
        return self._closed.is_set() or self.expired

    def remaining_s(self) -> float | None:
        """Seconds of validity left (None: no deadline)."""
        if self.valid_for_s is None:
            return None
        return self.valid_for_s - (self._clock() - self._renewed)

    async def check(self) -> None:
        """Raise :class:`LostOwnership` when this attempt may no longer write."""
        if self._closed.is_set():
            raise LostOwnership(f"job {self.job_id}: another worker holds the lease")
        if self.expired:
            raise LostOwnership(f"job {self.job_id}: lease not renewed for {self.valid_for_s:g} s")
