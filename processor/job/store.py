"""``jobs/<job>/status.json`` in the output bucket: the job's status and who owns it.

Checkpoints (:mod:`processor.job.checkpoints`) and the email marker (:mod:`processor.notify`)
keep their own objects beside it.

status.json is created with ``If-None-Match: *`` and changed only by read-modify-write on
``If-Match: <etag>``, so concurrent writers never lose each other's updates and two workers
can never both believe they own a job. The decision of who may run a job is the pure
function :func:`decide_claim`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import structlog

from processor.aws.storage import NotFound, ObjectStore, PreconditionFailed
from processor.errors import ConflictError, LostOwnership
from processor.job.state import JobStatus
from processor.manifest import job_prefix

log = structlog.get_logger(__name__)

class ClaimOutcome(StrEnum):
    OWNED = "owned"            # we own it now (new job, released job, or our own earlier claim)
    TAKEN_OVER = "taken_over"  # the previous owner stopped heart-beating; we own it now
    BUSY = "busy"              # another live worker owns it: leave the message for later
    FINISHED = "finished"      # terminal already: acknowledge the message, do nothing


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    status: JobStatus
    etag: str

    @property
    def runnable(self) -> bool:
        return self.outcome in (ClaimOutcome.OWNED, ClaimOutcome.TAKEN_OVER)


def decide_claim(current: JobStatus | None, worker_id: str, now: float,
                 stale_after_s: float) -> ClaimOutcome:
    """Who may run the job, given its current status (None: no status yet)."""
    if current is None:
        return ClaimOutcome.OWNED
    if current.is_terminal:
        return ClaimOutcome.FINISHED
    if current.owner in (None, worker_id):
        return ClaimOutcome.OWNED
    if current.owner_is_stale(now, stale_after_s):
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
    async def get(self, job_id: str) -> tuple[JobStatus, str] | None:
        """The status and its ETag, or None when the job has no status yet."""
        try:
            obj = await self.store.get_bytes(self.bucket, self.status_key(job_id))
        except NotFound:
            return None
        return JobStatus.from_json(obj.body), obj.etag

    async def create(self, status: JobStatus) -> str:
        """Write a first status; raises PreconditionFailed when one exists already."""
        return await self.store.put_bytes(self.bucket, self.status_key(status.job_id), status.to_json(),
                                          content_type="application/json", if_none_match=True)

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
            new = change(status)
            try:
                new_etag = await self.store.put_bytes(
                    self.bucket, self.status_key(job_id), new.to_json(),
                    content_type="application/json", if_match=etag)
            except PreconditionFailed:
                log.info("status_conflict", job_id=job_id)
                continue
            return new, new_etag
        raise ConflictError(f"status of job {job_id} changed on every one of {self.max_conflicts} tries")

    async def claim(self, job_id: str, worker_id: str, now: float, message: str | None = None, *,
                    attempt: bool = True) -> Claim:
        """Try to take the job's lease; a new lease bumps the epoch and counts an attempt.

        ``message``: the origin id of the queue message that carries the job for this worker,
        recorded so a later receiver can tell the owner's own message from a duplicate.
        ``attempt=False``: the lease is taken only to end the job (the dead-letter sweeper).
        """
        for _ in range(self.max_conflicts):
            current = await self.get(job_id)
            if current is None:
                status = JobStatus.new(job_id, now).claimed_by(worker_id, message, now, attempt=attempt)
                try:
                    etag = await self.create(status)
                except PreconditionFailed:
                    continue  # someone created it first: decide again on what they wrote
                return Claim(ClaimOutcome.OWNED, status, etag)
            status, etag = current
            outcome = decide_claim(status, worker_id, now, self.owner_stale_after_s)
            if outcome in (ClaimOutcome.BUSY, ClaimOutcome.FINISHED):
                return Claim(outcome, status, etag)
            if outcome is ClaimOutcome.TAKEN_OVER:
                log.warning("job_taken_over", job_id=job_id, previous_owner=status.owner,
                            owner_silent_s=round(now - (status.owner_heartbeat_at or now), 1))
            claimed = status.claimed_by(worker_id, message, now, attempt=attempt)
            try:
                new_etag = await self.store.put_bytes(
                    self.bucket, self.status_key(job_id), claimed.to_json(),
                    content_type="application/json", if_match=etag)
            except PreconditionFailed:
                continue
            return Claim(outcome, claimed, new_etag)
        raise ConflictError(f"could not claim job {job_id}: status kept changing")

    async def heartbeat(self, job_id: str, worker_id: str, now: float, *, epoch: int | None = None) -> JobStatus:
        """Renew our lease; raises LostOwnership when another lease (owner or epoch) holds the job."""
        def beat(status: JobStatus) -> JobStatus:
            _require_lease(status, job_id, worker_id, epoch)
            return status.with_owner(worker_id, now)
        return (await self.update(job_id, beat))[0]

    async def release(self, job_id: str, worker_id: str, now: float, *,
                      epoch: int | None = None) -> JobStatus | None:
        """Give up the lease (on shutdown) so the next worker need not wait for staleness."""
        def drop(status: JobStatus) -> JobStatus:
            _require_lease(status, job_id, worker_id, epoch)
            return status.with_owner(None, now)
        try:
            return (await self.update(job_id, drop))[0]
        except LostOwnership:
            return None


def _require_lease(status: JobStatus, job_id: str, worker_id: str, epoch: int | None) -> None:
    """Raise LostOwnership unless ``worker_id`` holds the job's lease (of ``epoch``, when given)."""
    if status.owner != worker_id or (epoch is not None and status.lease_epoch != epoch):
        raise LostOwnership(f"job {job_id} is held by another lease")
