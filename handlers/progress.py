"""Progress reports from long stages to whoever runs them (status.json, a progress bar)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Progress:
    stage: str
    step: int
    total: int
    loss: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


ProgressFn = Callable[[Progress], None]
StopFn = Callable[[], bool]


def report(progress: ProgressFn | None, item: Progress) -> None:
    """Call ``progress`` if one was given; stages never need to check for None themselves."""
    if progress is not None:
        progress(item)
