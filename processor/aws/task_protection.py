"""ECS task scale-in protection: the worker's task is not scaled in (or replaced by a deploy)
while it runs a job.

Why: service auto scaling and deployments pick tasks to stop without knowing that one of them
is half-way through a DreamBooth run; the job would lose its stage in progress and be retried
elsewhere. Inside an ECS task the container agent offers ``PUT $ECS_AGENT_URI/task-protection/v1/state``
with ``{"ProtectionEnabled": true, "ExpiresInMinutes": N}`` (and ``{"ProtectionEnabled": false}``
to release). The agent answers JSON carrying one of ``protection`` (the task's new state),
``failure`` (ECS refused, e.g. ``TASK_NOT_VALID`` for a standalone task: it comes with HTTP
200) or ``error`` (the ECS call failed: ``AccessDeniedException``, ``ThrottlingException``,
``RequestCanceled`` on a timeout).

Protection is best effort: the job must never fail or wait long because of it, so every
failure ends as a logged warning after a few bounded retries, and the expiry is the backstop
when a release never arrives (process killed). Off ECS there is no agent (``ECS_AGENT_URI``
unset: local runs, tests, the demo) and :class:`ScaleInProtection` is a no-op.

The pure pieces (:func:`protection_request`, :func:`interpret_response`,
:func:`next_renewal_s`) decide; :class:`TaskProtectionClient` (aiohttp) and
:class:`ScaleInProtection` do the I/O.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Self

import aiohttp
import structlog

from processor.aws.retry import (
    SERVER_CODES,
    THROTTLING_CODES,
    RetryPolicy,
    aws_retrying,
    is_transient,
)
from processor.errors import ProtectionError
from processor.settings import Settings

log = structlog.get_logger(__name__)

#: The agent's task-protection path, appended to ``$ECS_AGENT_URI``.
STATE_PATH = "/task-protection/v1/state"
#: ExpiresInMinutes bounds that ECS accepts.
MIN_MINUTES = 1
MAX_MINUTES = 2880
#: After a failed enable or renewal, try again this soon rather than half an expiry later.
RETRY_AFTER_FAILURE_S = 60.0
#: Few, quick retries: the job waits for the enable, so the wait must stay short and bounded.
PROTECTION_POLICY = RetryPolicy(attempts=3, initial_s=0.2, max_wait_s=1.0, jitter_s=0.1)
#: Per request: the agent is local, a slow answer means it is stuck on the ECS API.
REQUEST_TIMEOUT_S = 3.0

#: Error codes the agent passes on from ECS (or sets itself) that another try may fix.
_TRANSIENT_CODES: frozenset[str] = THROTTLING_CODES | SERVER_CODES | frozenset({
    "ServerException", "RequestCanceled", "RequestError", "RequestTimeout",
})


# --- pure ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProtectionState:
    """The agent accepted the request: the task is now protected (``enabled``) or released."""

    enabled: bool
    expires_at: str | None = None  # the agent's ExpirationDate (ISO-8601), None when released


@dataclass(frozen=True)
class ProtectionFailure:
    """The agent (or ECS behind it) did not do it; ``reason`` is a code, safe to log."""

    reason: str
    transient: bool


def protection_request(enabled: bool, expires_in_minutes: int | None = None) -> dict[str, Any]:
    """The JSON body of the PUT: enable for ``expires_in_minutes`` (1..2880), or release.

    Raises ValueError for an expiry ECS would refuse, so a bad value fails here, not on ECS.
    """
    if not enabled:
        return {"ProtectionEnabled": False}
    body: dict[str, Any] = {"ProtectionEnabled": True}
    if expires_in_minutes is not None:
        if isinstance(expires_in_minutes, bool) or not MIN_MINUTES <= expires_in_minutes <= MAX_MINUTES:
            raise ValueError(f"ExpiresInMinutes must be {MIN_MINUTES}..{MAX_MINUTES}, got {expires_in_minutes!r}")
        body["ExpiresInMinutes"] = int(expires_in_minutes)
    return body


def _http_transient(status: int) -> bool:
    return status == 429 or status >= 500


def interpret_response(status: int, payload: object, wanted_enabled: bool) -> ProtectionState | ProtectionFailure:
    """What the agent's answer means for a PUT that asked for ``wanted_enabled``.

    ``payload`` is the decoded JSON body (None when it was not JSON). A ``failure`` or
    ``error`` object is a failure whatever the HTTP status (a ``failure`` comes with 200);
    a ``protection`` object whose state is not the one asked for is a failure too.
    """
    body: Mapping[str, Any] = payload if isinstance(payload, Mapping) else {}
    failure, error, protection = body.get("failure"), body.get("error"), body.get("protection")
    if isinstance(failure, Mapping):
        return ProtectionFailure(str(failure.get("Reason") or "failure"), transient=False)
    if isinstance(error, Mapping):
        code = str(error.get("Code") or "error")
        return ProtectionFailure(code, transient=code in _TRANSIENT_CODES or _http_transient(status))
    if not 200 <= status < 300:
        return ProtectionFailure(f"http {status}", transient=_http_transient(status))
    if isinstance(protection, Mapping):
        enabled = protection.get("ProtectionEnabled")
        if enabled is not wanted_enabled:
            return ProtectionFailure("unexpected protection state", transient=False)
        expires = protection.get("ExpirationDate")
        return ProtectionState(enabled=wanted_enabled, expires_at=str(expires) if expires else None)
    return ProtectionFailure("unrecognised response", transient=False)


def renewal_interval_s(expires_in_minutes: int) -> float:
    """Renew at half the expiry: one missed renewal still leaves the task protected."""
    return expires_in_minutes * 60.0 / 2.0


def next_renewal_s(renew_every_s: float, last_ok: bool) -> float:
    """Seconds to the next renewal: the usual interval, or sooner after a failure."""
    return renew_every_s if last_ok else min(renew_every_s, RETRY_AFTER_FAILURE_S)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ProtectionError):
        return exc.failure.transient
    return isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)) or is_transient(exc)


def _describe(exc: BaseException) -> str:
    return exc.failure.reason if isinstance(exc, ProtectionError) else type(exc).__name__


# --- I/O -------------------------------------------------------------------------------
class TaskProtectionClient:
    """The agent's task-protection endpoint over HTTP; transient failures are retried (tenacity).

    Use inside ``async with``: it holds one aiohttp session.
    """

    def __init__(self, agent_uri: str, *, policy: RetryPolicy = PROTECTION_POLICY,
                 timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.url = agent_uri.rstrip("/") + STATE_PATH
        self._policy = policy
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None

    async def put_state(self, enabled: bool, expires_in_minutes: int | None = None) -> ProtectionState:
        """Set (or clear) protection; raises ProtectionError or a connection error after retries."""
        body = protection_request(enabled, expires_in_minutes)
        async for attempt in aws_retrying(self._policy, transient=_is_transient):
            with attempt:
                return await self._put_once(body)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _put_once(self, body: dict[str, Any]) -> ProtectionState:
        if self._session is None:
            raise RuntimeError("TaskProtectionClient used outside 'async with'")
        async with self._session.put(self.url, json=body) as resp:
            status, text = resp.status, await resp.text()
        try:
            payload: object = json.loads(text) if text else None
        except ValueError:
            payload = None
        result = interpret_response(status, payload, wanted_enabled=body["ProtectionEnabled"])
        if isinstance(result, ProtectionFailure):
            raise ProtectionError(result)
        return result


class ScaleInProtection:
    """What the worker uses: hold protection while one job runs; never raises, never required.

    Without a client (no ``ECS_AGENT_URI``) every method does nothing.
    """

    def __init__(self, client: TaskProtectionClient | None, expires_in_minutes: int = 120,
                 renew_every_s: float | None = None) -> None:
        protection_request(True, expires_in_minutes)  # validates the expiry up front
        self.client = client
        self.expires_in_minutes = expires_in_minutes
        self.renew_every_s = renew_every_s if renew_every_s is not None else renewal_interval_s(expires_in_minutes)
        if self.renew_every_s <= 0:
            raise ValueError("renew_every_s must be positive")

    @classmethod
    def disabled(cls) -> ScaleInProtection:
        """Off ECS: no agent to ask."""
        return cls(None)

    @property
    def enabled(self) -> bool:
        return self.client is not None

    async def enable(self, job_id: str) -> bool:
        """Protect the task (or extend the protection) for the configured minutes."""
        return await self._put(True, job_id)

    async def release(self, job_id: str) -> bool:
        """Let the task be scaled in again."""
        return await self._put(False, job_id)

    async def _put(self, enabled: bool, job_id: str) -> bool:
        if self.client is None:
            return False
        action = "enable" if enabled else "release"
        try:
            state = await self.client.put_state(enabled, self.expires_in_minutes if enabled else None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # best effort: the job goes on unprotected
            log.warning("task_protection_failed", action=action, job_id=job_id, error=_describe(exc))
            return False
        log.info("task_protection_enabled" if enabled else "task_protection_released",
                 job_id=job_id, expires_at=state.expires_at)
        return True

    async def _renew(self, job_id: str, last_ok: bool) -> None:
        while True:
            await asyncio.sleep(next_renewal_s(self.renew_every_s, last_ok))
            last_ok = await self.enable(job_id)

    @asynccontextmanager
    async def held(self, job_id: str) -> AsyncIterator[None]:
        """Protected for the body of the ``async with``: enable, renew on a timer, release."""
        if self.client is None:
            yield
            return
        ok = await self.enable(job_id)
        renew = asyncio.create_task(self._renew(job_id, ok), name=f"protection-{job_id}")
        try:
            yield
        finally:
            renew.cancel()
            try:
                await renew
            except asyncio.CancelledError:
                pass
            await self.release(job_id)


@asynccontextmanager
async def scale_in_protection(settings: Settings) -> AsyncIterator[ScaleInProtection]:
    """The worker's protection for this process: through the agent on ECS, a no-op elsewhere.

    Logs once which of the two it is.
    """
    if not settings.ecs_agent_uri:
        log.info("task_protection_unavailable", reason="ECS_AGENT_URI not set (not on ECS)")
        yield ScaleInProtection.disabled()
        return
    async with TaskProtectionClient(settings.ecs_agent_uri) as client:
        log.info("task_protection_available", expires_in_minutes=settings.task_protection_minutes)
        yield ScaleInProtection(client, settings.task_protection_minutes)
