"""The job state machine and ``status.json``, as pure values.

Every change is a function ``JobStatus -> JobStatus`` that refuses moves the contract does not
allow, so the job store can apply it inside a compare-and-swap loop and retry it on conflict.
Times are epoch seconds passed in by the caller (no clock in here).
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from processor.errors import InvalidTransition
from processor.job.photo_names import anonymous_photos


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


class EmailState(StrEnum):
    """What became of a job's one email, as its terminal status names it (the ``email`` field)."""

    SENT = "sent"        # the provider took it
    UNKNOWN = "unknown"  # it may or may not have gone out: never resent; alarmed (email_unknown)
    FAILED = "failed"    # there was an address and it certainly did not go out, even after the
    #                      retry window: alarmed (email_missing)
    NONE = "none"        # there was no address to write to (no readable manifest)
    WITHHELD = "withheld"  # the manifest carries no valid proof that the address's owner asked
    #                        for it (the front door's address proof): nothing is sent; never missing


#: The terminal email states that mean "an address, and no email": each is logged as
#: ``email_missing`` (a metric filter and an alarm in terraform/modules/compute/monitoring.tf).
#: Every other state is accounted for: ``sent``; ``unknown`` has its own alarm; ``none`` had no
#: address. ``withheld`` (an address not proven by its owner) is a decision, never a missing email.
MISSING_EMAIL: frozenset[EmailState] = frozenset({EmailState.FAILED})


def email_missing(state: EmailState | str | None) -> bool:
    """True when a terminal status's email state means the person was due an email and got none."""
    return state is not None and EmailState(state) in MISSING_EMAIL


#: What status.json keeps of an ended job's verdict besides each photo's (see
#: :func:`ended_validation`): the counts and the set's problem, no list of accepted files.
KEPT_VALIDATION_FIELDS = ("accepted", "usable", "required", "problem")


def ended_validation(validation: dict[str, Any] | None) -> dict[str, Any] | None:
    """``validation`` as an ended job keeps it: what the status page shows and needs no name.

    Per photo its number in the job's list, ok, reason code and a message that quotes no photo
    (:func:`processor.job.photo_names.anonymous_photos`): never its file name (a rejected job's
    names live in ``results/<job>/photos.json`` and expire with the results), nor the face boxes
    and measures (distances, sharpness, ...) the running job records. Idempotent.
    """
    if validation is None:
        return None
    kept = {k: validation[k] for k in KEPT_VALIDATION_FIELDS if k in validation}
    return {**kept, "photos": anonymous_photos(validation)}


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
    #: The id of the exact queue message the owner holds: any other message for the job while
    #: the lease is live is a duplicate (deleted once seen); this one coming back means the
    #: owner's visibility lapsed.
    owner_message: str | None = None
    #: Attempts that ended without settling (killed, crashed): the crash budget spent. Counted
    #: here, not from receive counts, so hand-backs and stray copies never spend it.
    crashes: int = Field(0, ge=0)
    #: Unique to each write: a conditional write retried after its answer was lost recognises
    #: that its first try landed (processor.job.store).
    revision: str = ""
    #: What became of the job's one email (:class:`EmailState`), or None while it is not due.
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
            email: EmailState | str | None = None) -> JobStatus:
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
            updates["email"] = EmailState(email)
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

    def claimed_by(self, owner: str, message: str | None, now: float, *, attempt: bool = True,
                   crashed: bool = False) -> JobStatus:
        """A new lease for ``owner``: the next epoch, and one more attempt unless it only ends the job.

        ``crashed``: the lease is taken over from an owner that went silent: its attempt counts
        as a crash."""
        return self.model_copy(update={"owner": owner, "owner_heartbeat_at": now, "owner_message": message,
                                       "lease_epoch": self.lease_epoch + 1,
                                       "attempts": self.attempts + (1 if attempt else 0),
                                       "crashes": self.crashes + (1 if crashed else 0), "updated_at": now})

    def released(self, now: float, *, crashed: bool = False) -> JobStatus:
        """The owner gives the lease up (a hand-back, or after ``crashed``: an exception)."""
        return self.with_owner(None, now).model_copy(update={"crashes": self.crashes + (1 if crashed else 0)})

    def revised(self) -> JobStatus:
        """The same status with a new write token (:attr:`revision`)."""
        return self.model_copy(update={"revision": uuid.uuid4().hex})

    def holds_lease(self, owner: str, epoch: int) -> bool:
        return self.owner == owner and self.lease_epoch == epoch

    def with_email(self, outcome: EmailState | str, now: float) -> JobStatus:
        return self.model_copy(update={"email": EmailState(outcome), "updated_at": now})
