"""Exceptions shared by the stages and understood by the runtime."""

from __future__ import annotations


class StageError(Exception):
    """A stage cannot go on with this job's data: permanent, reported to the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Interrupted(Exception):
    """The runtime asked the stage to stop (SIGTERM); its last checkpoint is on disk."""
