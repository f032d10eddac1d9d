"""The one gate every write of an attempt passes: checkpoints, done records, results, the email.

Why one place: a worker presumed dead may still be running (a long pause, a lost network), and
whatever it writes after another worker took the job over could undo the new owner's work or
send a second email. The rule: an attempt may write only while it holds the job's lease, that
is, until the ownership heartbeat finds another lease on the job (:meth:`Fence.close`), and no
longer than ``valid_for_s`` after its last successful renewal. The second half is what makes a
paused or cut-off worker stop on its own: a rival takes over only once the lease has gone
unrenewed for the staleness, and this worker's own deadline falls a margin before that (see
:func:`processor.settings.owner_validity`).

The deadline counts from the moment the lease's write was *sent* (``started_at``: before the
claim's request, before each renewal's), never from its answer: a claim or renewal that took
long to answer has used up its own validity, so a slow answer can never leave this worker
believing in a lease a rival already sees as stale. The storage edge checks the fence before
every HTTP attempt of every fenced write (:mod:`processor.aws.storage`), retries included.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from processor.errors import LostOwnership


class Fence:
    """Open while this attempt holds its job's lease; closed for good once it does not."""

    def __init__(self, job_id: str, epoch: int = 0, valid_for_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic, started_at: float | None = None) -> None:
        self.job_id = job_id
        self.epoch = epoch
        self.valid_for_s = valid_for_s
        self._clock = clock
        self._renewed = clock() if started_at is None else started_at
        self._closed = threading.Event()  # set from the event loop, read from stage threads too

    def renewed(self, started_at: float) -> None:
        """A renewal that started at ``started_at`` (this fence's clock) succeeded."""
        self._renewed = max(self._renewed, started_at)

    def close(self) -> None:
        """No more writes: another lease holds the job (the renewal found out), or this worker
        is giving the lease up (closed before the release, so nothing lands after it)."""
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

    def ensure(self) -> None:
        """Raise :class:`LostOwnership` when this attempt may no longer write (any thread)."""
        if self._closed.is_set():
            raise LostOwnership(f"job {self.job_id}: the lease is gone (released, or another worker holds it)")
        if self.expired:
            raise LostOwnership(f"job {self.job_id}: lease not renewed for {self.valid_for_s:g} s")

    async def check(self) -> None:
        """:meth:`ensure`, for async callers."""
        self.ensure()
