"""Retry policy: which AWS errors are transient, and that retries happen, back off and log."""

from __future__ import annotations

import asyncio

import pytest
import structlog
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from processor.aws.retry import RetryPolicy, aws_retry, aws_retrying, is_transient

FAST = RetryPolicy(attempts=4, initial_s=0.001, max_wait_s=0.002, jitter_s=0.001)


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


@pytest.mark.parametrize("code, status", [
    ("SlowDown", 503), ("Throttling", 400), ("ThrottlingException", 400),
    ("RequestLimitExceeded", 400), ("InternalError", 500), ("ServiceUnavailable", 503),
    ("Anything", 502), ("TooManyRequestsException", 429), ("RequestTimeout", 400),
])
def test_throttling_and_server_errors_are_transient(code: str, status: int) -> None:
    assert is_transient(client_error(code, status))


@pytest.mark.parametrize("code, status", [
    ("NoSuchKey", 404), ("PreconditionFailed", 412), ("AccessDenied", 403),
    ("InvalidParameterValue", 400), ("MessageRejected", 400), ("ReceiptHandleIsInvalid", 404),
])
def test_client_mistakes_are_permanent(code: str, status: int) -> None:
    assert not is_transient(client_error(code, status))


@pytest.mark.parametrize("exc", [
    EndpointConnectionError(endpoint_url="http://x"), ConnectionClosedError(endpoint_url="http://x"),
    ReadTimeoutError(endpoint_url="http://x"), ConnectionResetError(), TimeoutError(),
    asyncio.TimeoutError(),
])
def test_connection_resets_and_timeouts_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [NoCredentialsError(), ValueError("x"), KeyError("k")])
def test_programming_and_config_errors_are_permanent(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_decorated_sync_function_retries_transient_errors_until_success() -> None:
    calls = []

    @aws_retry(policy=FAST)
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise client_error("SlowDown", 503)
        return "ok"

    with structlog.testing.capture_logs() as logs:
        assert flaky() == "ok"
    assert len(calls) == 3
    retries = [e for e in logs if e["event"] == "aws_retry"]
    assert [e["attempt"] for e in retries] == [1, 2]
    assert retries[0]["error"] == "SlowDown (503)"


def test_permanent_error_fails_on_the_first_try() -> None:
    calls = []

    @aws_retry(policy=FAST)
    def missing() -> None:
        calls.append(1)
        raise client_error("NoSuchKey", 404)

    with pytest.raises(ClientError):
        missing()
    assert len(calls) == 1


def test_gives_up_after_the_policy_attempts_and_reraises_the_original_error() -> None:
    calls = []

    @aws_retry(policy=FAST)
    def always_throttled() -> None:
        calls.append(1)
        raise client_error("Throttling", 400)

    with pytest.raises(ClientError) as info:
        always_throttled()
    assert len(calls) == FAST.attempts
    assert info.value.response["Error"]["Code"] == "Throttling"


async def test_async_retrying_retries_coroutines() -> None:
    calls = []

    async def flaky() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionResetError()
        return 7

    result = None
    async for attempt in aws_retrying(FAST):
        with attempt:
            result = await flaky()
    assert result == 7 and len(calls) == 2


async def test_decorator_works_on_async_functions() -> None:
    calls = []

    @aws_retry(policy=FAST)
    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 2:
            raise client_error("InternalError", 500)
        return "done"

    assert await flaky() == "done" and len(calls) == 2


def test_default_backoff_grows_exponentially_with_jitter() -> None:
    from processor.aws.retry import DEFAULT_POLICY, _kwargs

    wait = _kwargs(DEFAULT_POLICY)["wait"]

    class State:
        def __init__(self, n: int) -> None:
            self.attempt_number = n

    first = [wait(State(1)) for _ in range(50)]
    third = [wait(State(3)) for _ in range(50)]
    assert min(third) > max(first) - DEFAULT_POLICY.jitter_s
    assert len(set(first)) > 1  # jitter
    assert max(wait(State(20)) for _ in range(20)) <= DEFAULT_POLICY.max_wait_s + DEFAULT_POLICY.jitter_s
