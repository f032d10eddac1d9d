"""Every exception the runtime raises on purpose, under one root.

Why one module: a newcomer reading ``except`` clauses in the worker or the pipeline finds
what each error means, who raises it and whether it is the person's fault, ours, or
another worker's, in one place. The stages' own errors (``handlers.errors``: a photo or a
stage that cannot succeed, a stop request) stay with the stages, which never import the
runtime; :mod:`processor.stages` re-exports them.
"""

from __future__ import annotations

from typing import Any


class HeadshotsError(Exception):
    """Root of the runtime's exceptions."""


# --- start-up ------------------------------------------------------------------------
class SettingsError(HeadshotsError, ValueError):
    """Bad ``HEADSHOTS_*`` values; the message lists every one (the CLI prints it, exit 2)."""


# --- the job contract at the door (processor.manifest) ------------------------------------
class InvalidJobId(HeadshotsError, ValueError):
    """The job id cannot be used: it would escape its folder or break the key layout."""


class MalformedMessage(HeadshotsError, ValueError):
    """An SQS body that is not an S3 event notification; it belongs in the dead-letter queue."""


class ManifestError(HeadshotsError, ValueError):
    """``manifest.json`` is unreadable or breaks the schema; ``email`` is set when readable.

    The person's fault, not ours: ``problems`` lists each thing to fix, one line each, for the
    bad-manifest email (``reason`` is them joined, for logs and status.json)."""

    def __init__(self, reason: str, email: str | None = None,
                 problems: tuple[str, ...] | None = None, proof: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.email = email
        self.problems = problems or (reason,)
        self.proof = proof  # the manifest's address proof, when it had one (see Manifest.proof)


# --- job records (processor.job) -----------------------------------------------------
class InvalidTransition(HeadshotsError, ValueError):
    """A move the state machine does not allow (e.g. out of a terminal state)."""


class LostOwnership(HeadshotsError, RuntimeError):
    """Another worker now owns the job (or this worker's lease ran out): stop working on it."""


class LeaseEnded(LostOwnership):
    """The job ended under this very lease (its terminal write dropped the owner): nothing was
    lost, so a renewal racing that write stops quietly."""


class ConflictError(HeadshotsError, RuntimeError):
    """status.json kept changing under us for every try of a read-modify-write."""


# --- AWS edges (processor.aws) -------------------------------------------------------
class StorageError(HeadshotsError, RuntimeError):
    """Base of the S3 edge's own errors."""


class NotFound(StorageError):
    """The bucket or key does not exist."""


class PreconditionFailed(StorageError):
    """A conditional write lost: the object changed (If-Match) or exists (If-None-Match)."""


class ObjectTooLarge(StorageError):
    """An object is over the size a read allows (an upload bigger than the contract's cap)."""

    def __init__(self, key: str, size: int, limit: int) -> None:
        super().__init__(f"{key}: at least {size} bytes, over the {limit}-byte limit")
        self.key = key
        self.size = size
        self.limit = limit


class MessageLost(HeadshotsError, RuntimeError):
    """The receipt handle is no longer valid: the message was deleted or redelivered."""


class EmailSendError(HeadshotsError):
    """A send attempt that did not end with the provider taking the message. Its subclass
    :class:`processor.send_rule.SendFailed` says how far the request got and what that means
    (retry, failed for good, or unknown: never retried, it could mail twice)."""


class ProtectionError(HeadshotsError):
    """The ECS agent refused or failed a task-protection request (best effort: logged, not fatal).

    ``failure`` is the :class:`processor.aws.task_protection.ProtectionFailure` it ended in.
    """

    def __init__(self, failure: Any) -> None:
        super().__init__(getattr(failure, "reason", str(failure)))
        self.failure = failure


# --- test hooks -----------------------------------------------------------------------
class FailpointError(HeadshotsError, RuntimeError):
    """Raised by a ``raise`` failpoint: stands in for a bug in a stage."""
