"""The job state machine and ``status.json``, as pure values.

Every change is a function ``JobStatus -> JobStatus`` that refuses moves the contract does not
allow, so the job store can apply it inside a compare-and-swap loop and retry it on conflict.
Times are epoch seconds passed in by the caller (no clock in here).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from processor.errors import InvalidTransition


class JobState(StrEnum):
    RECEIVED = "received"
    VALIDATING = "validating"
    REJECTED = "rejected"
    TRAINING = "training"
    GENERATING = "generating"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILED = "failed"


TERMINAL: frozenset[JobState] = frozenset({JobState.REJECTED, JobState.DELIVERED, JobState.FAILED})

EmailState = Literal["sent", "unknown", "failed", "none", "withheld"]

#: What status.json keeps of each photo's verdict once the job has ended: what the status page
#: shows (the rejected page's photo names and reasons), not the face boxes and measures
#: (distances, sharpness, ...) the running job records for debugging.
KEPT_PHOTO_FIELDS = ("file", "ok", "reason", "message")


def ended_validation(validation: dict[str, Any] | None) -> dict[str, Any] | None:
    """``validation`` as an ended job keeps it (see :data:`KEPT_PHOTO_FIELDS`)."""
    if validation is None:
        return None
    photos = [{k: p[k] for k in KEPT_PHOTO_FIELDS if k in p} for p in validation.get("photos") or []
              if isinstance(p, dict)]
    return {**validation, "photos": photos}

#: Forward moves. Any non-terminal state may also fail, and may be re-entered (a resumed attempt).
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.RECEIVED: frozenset({JobState.VALIDATING}),
    JobState.VALIDATING: frozenset({JobState.REJECTED, JobState.TRAINING}),
    JobState.TRAINING: frozenset({JobState.GENERATING}),
    JobState.GENERATING: frozenset({JobState.DELIVERING}),
    JobState.DELIVERING: frozenset({JobState.DELIVERED}),
    JobState.REJECTED: frozenset(),
    JobState.DELIVERED: frozenset(),
    JobState.FAILED: frozenset(),
}


def can_transition(current: JobState, target: JobState) -> bool:
    """Whether ``current -> target`` is allowed."""
    if current in TERMINAL:
        return False
    return target == current or target == JobState.FAILED or target in TRANSITIONS[current]


class StageTiming(BaseModel):
    """When a stage last started and finished, and how many times it was started."""

    model_config = ConfigDict(frozen=True)

    started_at: float | None = None
    finished_at: float | None = None
    runs: int = 0

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)


class ProgressInfo(BaseModel):
    """The latest progress report of the running stage."""

    model_config = ConfigDict(frozen=True)

    stage: str
    step: int = Field(ge=0)
    total: int = Field(ge=0)
    loss: float | None = None


class JobStatus(BaseModel):
    """The content of ``jobs/<job>/status.json``."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    state: JobState = JobState.RECEIVED
    created_at: float
    updated_at: float
    attempts: int = Field(0, ge=0)
    stages: dict[str, StageTiming] = Field(default_factory=dict)
    progress: ProgressInfo | None = None
    error: str | None = None
    owner: str | None = None
    owner_heartbeat_at: float | None = None
    #: The lease: bumped by every claim, so a write can say which lease it was made under.
    lease_epoch: int = Field(0, ge=0)
    #: The origin id of the queue message the owner holds (kept across re-enqueues).
    owner_message: str | None = None
    #: What became of the job's one email: sent, unknown (outcome ambiguous: alarmed), failed
    #: (it could not be delivered), none (no readable address), withheld (the manifest carries
    #: no valid proof that the address's owner asked for it: nothing is sent; never "missing"),
    #: or None while it is not due.
    email: EmailState | None = None
    validation: dict[str, Any] | None = None
    result: dict[str, Any] | None = None

    @classmethod
    def new(cls, job_id: str, now: float) -> JobStatus:
        return cls(job_id=job_id, created_at=now, updated_at=now)

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> JobStatus:
        return cls.model_validate_json(data)

    # --- pure updates: each returns a new JobStatus -----------------------------------
    def transition(self, target: JobState, now: float, *, error: str | None = None) -> JobStatus:
        """Move to ``target`` or raise :class:`InvalidTransition`; ``error`` is kept on failure."""
        if not can_transition(self.state, target):
            raise InvalidTransition(f"{self.state.value} -> {target.value} is not allowed")
        changes: dict[str, Any] = {"state": target, "updated_at": now}
        if error is not None:
            changes["error"] = error
        if target in TERMINAL:
            changes["progress"] = None
        return self.model_copy(update=changes)

    def end(self, target: JobState, now: float, *, error: str | None = None,
            validation: dict[str, Any] | None = None, result: dict[str, Any] | None = None,
            email: EmailState | None = None) -> JobStatus:
        """The terminal update: idempotent for the same end, refused after a different one.

        A repeat (a redelivered message, a retried write) must not bump ``updated_at`` or
        overwrite the first end's record; a job that already ended otherwise stays as it ended.
        """
        if target not in TERMINAL:
            raise InvalidTransition(f"{target.value} is not a terminal state")
        if self.state is target:
            return self
        if self.is_terminal:
            raise InvalidTransition(f"job already ended as {self.state.value}")
        updates: dict[str, Any] = {"validation": ended_validation(validation if validation is not None
                                                                  else self.validation)}
        if email is not None:
            updates["email"] = email
        if result is not None:
            updates["result"] = {k: result[k] for k in ("prefix", "files", "summary", "published_at")
                                 if k in result}
        return self.model_copy(update=updates).transition(target, now, error=error).with_owner(None, now)

    def start_stage(self, stage: str, now: float) -> JobStatus:
        old = self.stages.get(stage, StageTiming())
        timing = StageTiming(started_at=now, finished_at=None, runs=old.runs + 1)
        return self.model_copy(update={"stages": {**self.stages, stage: timing}, "updated_at": now,
                                       "progress": None})

    def finish_stage(self, stage: str, now: float) -> JobStatus:
        old = self.stages.get(stage, StageTiming(started_at=now, runs=1))
        timing = old.model_copy(update={"finished_at": now})
        return self.model_copy(update={"stages": {**self.stages, stage: timing}, "updated_at": now})

    def with_progress(self, progress: ProgressInfo | None, now: float) -> JobStatus:
        return self.model_copy(update={"progress": progress, "updated_at": now})

    def with_owner(self, owner: str | None, now: float) -> JobStatus:
        """Renew (same owner) or drop (None) the lease; the epoch is the claim's, unchanged."""
        return self.model_copy(update={"owner": owner, "owner_heartbeat_at": now if owner else None,
                                       "owner_message": self.owner_message if owner else None,
                                       "updated_at": now})

    def claimed_by(self, owner: str, message: str | None, now: float, *, attempt: bool = True) -> JobStatus:
        """A new lease for ``owner``: the next epoch, and one more attempt unless it only ends the job."""
        return self.model_copy(update={"owner": owner, "owner_heartbeat_at": now, "owner_message": message,
                                       "lease_epoch": self.lease_epoch + 1,
                                       "attempts": self.attempts + (1 if attempt else 0), "updated_at": now})

    def holds_lease(self, owner: str, epoch: int) -> bool:
        return self.owner == owner and self.lease_epoch == epoch

    def with_email(self, outcome: EmailState, now: float) -> JobStatus:
        return self.model_copy(update={"email": outcome, "updated_at": now})

    def owner_is_stale(self, now: float, stale_after_s: float) -> bool:
        """True when nobody owns the job or its owner has not checked in for ``stale_after_s``."""
        if self.owner is None or self.owner_heartbeat_at is None:
            return True
        return now - self.owner_heartbeat_at > stale_after_s
