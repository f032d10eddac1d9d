"""``jobs/<job>/status.json`` in the output bucket: the job's status and who owns it.

Checkpoints (:mod:`processor.job.checkpoints`) and the email marker (:mod:`processor.notify`)
keep their own objects beside it.

status.json is created with ``If-None-Match: *`` and changed only by read-modify-write on
``If-Match: <etag>``, so concurrent writers never lose each other's updates and two workers
can never both believe they own a job. Every write carries a fresh ``revision`` token, so a
conditional write whose answer was lost (a reset after S3 had it) and that is retried into a
412 recognises that its first try landed, instead of applying its change twice.

Who may run a job is the pure function :func:`decide_claim`. A lease is stale when status.json
has not changed for the staleness, as S3's own clock tells it (its ``Date`` less the object's
``Last-Modified``): the owner renews every half heartbeat, so an unchanged object means a
silent owner, and no two workers' wall clocks are ever compared (docs/delivery.md, "The lease").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import structlog

from processor.aws.storage import NotFound, ObjectStore, PreconditionFailed
from processor.errors import ConflictError, LeaseEnded, LostOwnership
from processor.job.state import JobStatus
from processor.manifest import job_prefix

log = structlog.get_logger(__name__)

#: HTTP dates carry whole seconds: an age read as N s may be up to 1 s short or long.
CLOCK_RESOLUTION_S = 1.0


class ClaimOutcome(StrEnum):
    OWNED = "owned"            # we own it now (new job, released job, or our own earlier claim)
    TAKEN_OVER = "taken_over"  # the previous owner went silent for the staleness; we own it now
    BUSY = "busy"              # another live worker owns it: leave the message for later
    FINISHED = "finished"      # terminal already: acknowledge the message, do nothing


@dataclass(frozen=True)
class StatusRead:
    """status.json as read: the value, its ETag, and how long it had been unchanged (S3's clock;
    None when S3 did not say)."""

    status: JobStatus
    etag: str
    age_s: float | None = None


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    status: JobStatus
    etag: str
    age_s: float | None = None  # for BUSY: how long the live lease had been unchanged

    @property
    def runnable(self) -> bool:
        return self.outcome in (ClaimOutcome.OWNED, ClaimOutcome.TAKEN_OVER)


def lease_is_stale(age_s: float | None, stale_after_s: float) -> bool:
    """True when a held lease has been unchanged for longer than ``stale_after_s`` (S3's clock).

    An unknown age is never stale: taking a job over on a guess is how two owners happen."""
    return age_s is not None and age_s - CLOCK_RESOLUTION_S > stale_after_s


def decide_claim(current: JobStatus | None, worker_id: str, age_s: float | None,
                 stale_after_s: float) -> ClaimOutcome:
    """Who may run the job, given its current status (None: no status yet) and its age."""
    if current is None:
        return ClaimOutcome.OWNED
    if current.is_terminal:
        return ClaimOutcome.FINISHED
    if current.owner in (None, worker_id):
        return ClaimOutcome.OWNED
    if lease_is_stale(age_s, stale_after_s):
        return ClaimOutcome.TAKEN_OVER
    return ClaimOutcome.BUSY


class JobStore:
    """Job records in the output bucket, over an open :class:`ObjectStore`."""

    def __init__(self, store: ObjectStore, bucket: str, owner_stale_after_s: float,
                 max_conflicts: int = 20) -> None:
        self.store = store
        self.bucket = bucket
        self.owner_stale_after_s = owner_stale_after_s
        self.max_conflicts = max_conflicts

    # --- keys ------------------------------------------------------------------------
    @staticmethod
    def prefix(job_id: str) -> str:
        return job_prefix(job_id)

    def status_key(self, job_id: str) -> str:
        return job_prefix(job_id) + "status.json"

    # --- status.json -----------------------------------------------------------------
    async def read(self, job_id: str) -> StatusRead | None:
        """The status, its ETag and age, or None when the job has no status yet."""
        try:
            obj = await self.store.get_bytes(self.bucket, self.status_key(job_id))
        except NotFound:
            return None
        return StatusRead(JobStatus.from_json(obj.body), obj.etag, obj.age_s)

    async def get(self, job_id: str) -> tuple[JobStatus, str] | None:
        """The status and its ETag, or None when the job has no status yet."""
        found = await self.read(job_id)
        return (found.status, found.etag) if found else None

    async def _put(self, status: JobStatus, *, if_match: str | None = None) -> tuple[JobStatus, str]:
        """One conditional write (``If-Match``, else ``If-None-Match: *``) that knows its own landing."""
        new = status.revised()
        try:
            etag = await self.store.put_bytes(self.bucket, self.status_key(new.job_id), new.to_json(),
                                              content_type="application/json", if_match=if_match,
                                              if_none_match=if_match is None, epoch=new.lease_epoch)
        except PreconditionFailed:
            found = await self.read(new.job_id)
            if found is not None and found.status.revision == new.revision:
                return found.status, found.etag  # our first try landed; its answer was lost
            raise
        return new, etag

    async def create(self, status: JobStatus) -> str:
        """Write a first status; raises PreconditionFailed when one exists already."""
        return (await self._put(status))[1]

    async def update(self, job_id: str, change: Callable[[JobStatus], JobStatus]) -> tuple[JobStatus, str]:
        """Apply ``change`` to the latest status with compare-and-swap; retried on conflicts.

        ``change`` must be pure: it may run several times. Exceptions it raises (e.g.
        InvalidTransition, LostOwnership) propagate unchanged.
        """
        for _ in range(self.max_conflicts):
            current = await self.get(job_id)
            if current is None:
                raise NotFound(f"no status for job {job_id}")
            status, etag = current
            try:
                return await self._put(change(status), if_match=etag)
            except PreconditionFailed:
                log.info("status_conflict", job_id=job_id)
        raise ConflictError(f"status of job {job_id} changed on every one of {self.max_conflicts} tries")

    async def claim(self, job_id: str, worker_id: str, now: float, message: str | None = None, *,
                    attempt: bool = True) -> Claim:
        """Try to take the job's lease; a new lease bumps the epoch and counts an attempt.

        ``message``: the id of the queue message that carries the job for this worker, recorded
        so a later receiver can tell the owner's own message from a duplicate. Taking over a
        silent owner's lease counts that owner's attempt as a crash. ``attempt=False``: the lease
        is taken only to end the job (the dead-letter sweeper). ``now`` (a wall clock) is only
        recorded, never compared.
        """
        for _ in range(self.max_conflicts):
            current = await self.read(job_id)
            if current is None:
                status = JobStatus.new(job_id, now).claimed_by(worker_id, message, now, attempt=attempt)
                try:
                    written, etag = await self._put(status)
                except PreconditionFailed:
                    continue  # someone created it first: decide again on what they wrote
                return Claim(ClaimOutcome.OWNED, written, etag)
            status, etag = current.status, current.etag
            outcome = decide_claim(status, worker_id, current.age_s, self.owner_stale_after_s)
            if outcome in (ClaimOutcome.BUSY, ClaimOutcome.FINISHED):
                return Claim(outcome, status, etag, current.age_s)
            if outcome is ClaimOutcome.TAKEN_OVER:
                log.warning("job_taken_over", job_id=job_id, previous_owner=status.owner,
                            lease_unchanged_s=round(current.age_s or 0.0, 1))
            claimed = status.claimed_by(worker_id, message, now, attempt=attempt,
                                        crashed=outcome is ClaimOutcome.TAKEN_OVER)
            try:
                written, new_etag = await self._put(claimed, if_match=etag)
            except PreconditionFailed:
                continue
            return Claim(outcome, written, new_etag)
        raise ConflictError(f"could not claim job {job_id}: status kept changing")

    async def heartbeat(self, job_id: str, worker_id: str, now: float, *, epoch: int | None = None) -> JobStatus:
        """Renew our lease; raises LostOwnership when another lease (owner or epoch) holds the job."""
        def beat(status: JobStatus) -> JobStatus:
            _require_lease(status, job_id, worker_id, epoch)
            return status.with_owner(worker_id, now)
        return (await self.update(job_id, beat))[0]

    async def release(self, job_id: str, worker_id: str, now: float, *,
                      epoch: int | None = None, crashed: bool = False) -> JobStatus | None:
        """Give up the lease (a hand-back; ``crashed``: after an exception, one crash counted)
        so the next worker need not wait for staleness."""
        def drop(status: JobStatus) -> JobStatus:
            _require_lease(status, job_id, worker_id, epoch)
            return status.released(now, crashed=crashed)
        try:
            return (await self.update(job_id, drop))[0]
        except LostOwnership:
            return None


def _require_lease(status: JobStatus, job_id: str, worker_id: str, epoch: int | None) -> None:
    """Raise LostOwnership unless ``worker_id`` holds the job's lease (of ``epoch``, when given);
    LeaseEnded when the job ended under that very lease (a renewal that raced the terminal write)."""
    if status.is_terminal and status.owner is None and epoch is not None and status.lease_epoch == epoch:
        raise LeaseEnded(f"job {job_id} ended under this lease")
    if status.owner != worker_id or (epoch is not None and status.lease_epoch != epoch):
        raise LostOwnership(f"job {job_id} is held by another lease")
