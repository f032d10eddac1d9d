"""Failpoints: named places in the job's code path where a fault suite can make the process die.

Why: "kill -9 during the deliver stage" must land *inside* that stage every time, even when the
stage lasts 200 ms. A failpoint is the deterministic way to do it (as etcd's gofail or TiKV's
fail-rs): ``HEADSHOTS_FAILPOINTS="deliver.uploaded=kill"`` makes the worker send itself
SIGKILL at that point. The default is empty, and an empty spec costs one dict lookup.

Spec grammar: comma-separated ``point=action``; action is ``kill`` (SIGKILL this process),
``pause`` (SIGSTOP this process, so a test can ``kill -9`` it from outside at exactly that
point), ``raise`` (an unexpected exception, as a bug would) or ``exit`` (``os._exit(137)``). It fires
every time the point is reached, or with ``@N`` only the N-th time (1-based).
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass
from typing import Literal

from processor.errors import FailpointError

Action = Literal["kill", "pause", "raise", "exit"]
_ACTIONS: tuple[str, ...] = ("kill", "pause", "raise", "exit")


@dataclass(frozen=True)
class Failpoint:
    point: str
    action: Action
    nth: int | None = None  # None: every time


def parse_failpoints(spec: str) -> dict[str, Failpoint]:
    """Parse ``"a.b=kill,c.d=raise@2"``; raise ValueError naming the bad entry."""
    points: dict[str, Failpoint] = {}
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        name, sep, action = entry.partition("=")
        nth: int | None = None
        if "@" in action:
            action, _, count = action.partition("@")
            if not count.isdigit() or int(count) < 1:
                raise ValueError(f"failpoint {entry!r}: @N must be a positive integer")
            nth = int(count)
        if not sep or not name or action not in _ACTIONS:
            raise ValueError(f"failpoint {entry!r}: expected point=kill|pause|raise|exit[@N]")
        points[name] = Failpoint(name, action, nth)  # type: ignore[arg-type]
    return points


class Failpoints:
    """The armed failpoints of this process; ``hit(point)`` is called by the pipeline."""

    def __init__(self, spec: str = "") -> None:
        self._points = parse_failpoints(spec)
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._points)

    def hit(self, point: str) -> None:
        fp = self._points.get(point)
        if fp is None:
            return
        with self._lock:
            self._counts[point] = self._counts.get(point, 0) + 1
            if fp.nth is not None and self._counts[point] != fp.nth:
                return
        if fp.action == "raise":
            raise FailpointError(f"failpoint {point} fired")
        if fp.action == "exit":
            os._exit(137)
        if fp.action == "pause":
            os.kill(os.getpid(), signal.SIGSTOP)  # every thread stops here until SIGCONT or SIGKILL
            return
        os.kill(os.getpid(), signal.SIGKILL)
