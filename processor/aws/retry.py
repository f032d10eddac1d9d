"""Retry policy for AWS calls: transient errors back off and retry, permanent ones fail fast.

S3 answers ``503 SlowDown`` under load, SQS and SES throttle, and connections get reset; those
are worth another try. A missing key, a failed precondition or a bad request never gets better,
so retrying it only delays the real error. botocore's own retries are switched off for our
clients (:data:`BOTOCORE_NO_RETRIES`) so that every retry happens here, and is logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from processor.errors import EmailSendError

log = structlog.get_logger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: Error codes AWS services use for "slow down, try again".
THROTTLING_CODES: frozenset[str] = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "ThrottledException", "Throttled",
    "RequestLimitExceeded", "RequestThrottled", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "BandwidthLimitExceeded", "PriorRequestNotComplete",
})
#: Error codes that mean the service failed this request, not that the request was wrong.
SERVER_CODES: frozenset[str] = frozenset({
    "InternalError", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException",
    "RequestTimeout", "RequestTimeoutException", "ServerError",
})

#: Client config fragment that disables botocore's built-in retries (tenacity owns them).
# botocore counts "max_attempts" as RETRIES (1 = one silent retry); "total_max_attempts" counts all.
BOTOCORE_NO_RETRIES: dict[str, Any] = {"total_max_attempts": 1, "mode": "standard"}


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: total attempts and the exponential-backoff-with-jitter shape."""

    attempts: int = 6
    initial_s: float = 0.2
    max_wait_s: float = 5.0
    jitter_s: float = 0.2


DEFAULT_POLICY = RetryPolicy()


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    meta = exc.response.get("ResponseMetadata", {})
    try:
        return int(meta.get("HTTPStatusCode", 0))
    except (TypeError, ValueError):
        return 0


def is_transient(exc: BaseException) -> bool:
    """True when the same request may well succeed if sent again a little later."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = http_status(exc)
        return code in THROTTLING_CODES or code in SERVER_CODES or status == 429 or status >= 500
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError,
                        ReadTimeoutError, BotoConnectionError)):
        return True
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
                        TimeoutError, asyncio.TimeoutError)):
        return True
    # aiohttp's connection errors, without importing aiohttp at module import time
    return type(exc).__module__.startswith("aiohttp") and "Connection" in type(exc).__name__


def describe(exc: BaseException) -> str:
    """A short label for logs: the AWS error code, a send failure's own detail, else the type."""
    if isinstance(exc, ClientError):
        return f"{error_code(exc) or 'ClientError'} ({http_status(exc)})"
    if isinstance(exc, EmailSendError):
        return str(getattr(exc, "detail", None) or type(exc).__name__)
    return type(exc).__name__


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    fn = getattr(state.fn, "__qualname__", None) if state.fn else None
    log.warning(
        "aws_retry",
        operation=fn,
        attempt=state.attempt_number,
        error=describe(exc) if exc else None,
        sleep_s=round(state.next_action.sleep, 3) if state.next_action else None,
    )


def _kwargs(policy: RetryPolicy, transient: Callable[[BaseException], bool] = is_transient) -> dict[str, Any]:
    return {
        "retry": retry_if_exception(transient),
        "stop": stop_after_attempt(policy.attempts),
        "wait": (wait_exponential(multiplier=policy.initial_s, max=policy.max_wait_s)
                 + wait_random(0, policy.jitter_s)),
        "before_sleep": _log_retry,
        "reraise": True,
    }


def aws_retrying(policy: RetryPolicy = DEFAULT_POLICY,
                 transient: Callable[[BaseException], bool] = is_transient) -> AsyncRetrying:
    """An ``AsyncRetrying`` for ``async for attempt in aws_retrying(): with attempt: ...``.

    ``transient`` widens or narrows what is retried (e.g. SMTP 4xx replies for email).
    """
    return AsyncRetrying(**_kwargs(policy, transient))


def sync_retrying(policy: RetryPolicy = DEFAULT_POLICY) -> Retrying:
    """The blocking twin of :func:`aws_retrying`, for boto3 code (CLI submit, local stack)."""
    return Retrying(**_kwargs(policy))


def aws_retry(fn: F | None = None, *, policy: RetryPolicy = DEFAULT_POLICY) -> Any:
    """Decorator (bare or with ``policy=``) for sync or async functions making AWS calls."""
    decorator = retry(**_kwargs(policy))
    if fn is not None:
        return decorator(fn)
    return decorator
