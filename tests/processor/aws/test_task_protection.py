"""ECS task scale-in protection: the pure request/response rules, the HTTP client against a
real local agent endpoint (tests/fixtures/ecs_agent.py), and the best-effort holder the worker
uses. The worker around real jobs: tests/processor/test_worker_protection.py."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
import structlog

from processor.aws.retry import RetryPolicy
from processor.aws.task_protection import (
    MAX_MINUTES,
    RETRY_AFTER_FAILURE_S,
    ProtectionError,
    ProtectionFailure,
    ProtectionState,
    ScaleInProtection,
    TaskProtectionClient,
    interpret_response,
    next_renewal_s,
    protection_request,
    renewal_interval_s,
    scale_in_protection,
)
from processor.settings import Settings, SettingsError, load_settings
from tests.fixtures.ecs_agent import TASK_ARN, FakeEcsAgent

FAST = RetryPolicy(attempts=3, initial_s=0.01, max_wait_s=0.02, jitter_s=0.0)


# --- pure: the request -------------------------------------------------------------------
def test_request_body_enables_for_the_given_minutes_and_releases_with_the_flag_alone() -> None:
    assert protection_request(True, 120) == {"ProtectionEnabled": True, "ExpiresInMinutes": 120}
    assert protection_request(True) == {"ProtectionEnabled": True}  # the agent's default: 120 min
    assert protection_request(False) == {"ProtectionEnabled": False}
    assert protection_request(False, 30) == {"ProtectionEnabled": False}  # no expiry on a release


@pytest.mark.parametrize("minutes", [0, -5, MAX_MINUTES + 1, True])
def test_request_refuses_an_expiry_ecs_would_refuse(minutes: int) -> None:
    with pytest.raises(ValueError, match="1..2880"):
        protection_request(True, minutes)


# --- pure: the answer --------------------------------------------------------------------
def test_a_protection_answer_means_protected_or_released() -> None:
    protected = {"protection": {"ExpirationDate": "2023-12-20T21:57:44.837Z", "ProtectionEnabled": True,
                                "TaskArn": TASK_ARN}}
    released = {"protection": {"ExpirationDate": None, "ProtectionEnabled": False, "TaskArn": TASK_ARN}}
    assert interpret_response(200, protected, True) == ProtectionState(True, "2023-12-20T21:57:44.837Z")
    assert interpret_response(200, released, False) == ProtectionState(False, None)


def test_a_failure_is_a_failure_even_with_http_200_and_is_not_worth_retrying() -> None:
    body = {"failure": {"Arn": TASK_ARN, "Detail": None, "Reason": "TASK_NOT_VALID"}}
    assert interpret_response(200, body, True) == ProtectionFailure("TASK_NOT_VALID", transient=False)


@pytest.mark.parametrize(("code", "transient"), [
    ("ThrottlingException", True),
    ("RequestCanceled", True),       # the agent timed out calling ECS
    ("ServerException", True),
    ("AccessDeniedException", False),  # the task role lacks ecs:UpdateTaskProtection
    ("InvalidParameterException", False),
])
def test_an_error_object_names_its_code_and_only_throttling_or_timeouts_are_retried(code: str,
                                                                                   transient: bool) -> None:
    body = {"requestID": "12345-abc", "error": {"Arn": TASK_ARN, "Code": code, "Message": "User: arn:... is not"}}
    result = interpret_response(400, body, True)
    assert result == ProtectionFailure(code, transient=transient)
    assert "arn" not in result.reason  # the message (ARNs, role names) never reaches the logs


@pytest.mark.parametrize(("status", "transient"), [(500, True), (503, True), (429, True), (400, False), (404, False)])
def test_an_http_error_without_a_json_body_is_retried_only_when_the_server_is_at_fault(status: int,
                                                                                       transient: bool) -> None:
    assert interpret_response(status, None, True) == ProtectionFailure(f"http {status}", transient)


@pytest.mark.parametrize("payload", [None, {}, [], "protected", {"protection": "yes"}])
def test_a_200_without_a_recognisable_answer_is_a_failure(payload: object) -> None:
    result = interpret_response(200, payload, True)
    assert isinstance(result, ProtectionFailure) and not result.transient


def test_a_protection_answer_in_the_other_state_than_asked_is_a_failure() -> None:
    released = {"protection": {"ExpirationDate": None, "ProtectionEnabled": False, "TaskArn": TASK_ARN}}
    assert interpret_response(200, released, True) == ProtectionFailure("unexpected protection state", False)


def test_renewal_comes_at_half_the_expiry_and_sooner_after_a_failure() -> None:
    assert renewal_interval_s(120) == 3600.0
    assert renewal_interval_s(1) == 30.0
    assert next_renewal_s(3600.0, last_ok=True) == 3600.0
    assert next_renewal_s(3600.0, last_ok=False) == RETRY_AFTER_FAILURE_S
    assert next_renewal_s(0.2, last_ok=False) == 0.2


# --- settings ------------------------------------------------------------------------------
def test_the_expiry_setting_defaults_well_above_a_job_and_is_checked_against_what_ecs_allows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECS_AGENT_URI", raising=False)
    settings = Settings()
    assert settings.task_protection_minutes == 120 and settings.ecs_agent_uri is None
    monkeypatch.setenv("HEADSHOTS_TASK_PROTECTION_MINUTES", "45")
    assert load_settings().task_protection_minutes == 45
    for bad in ("0", "2881"):
        monkeypatch.setenv("HEADSHOTS_TASK_PROTECTION_MINUTES", bad)
        with pytest.raises(SettingsError, match="HEADSHOTS_TASK_PROTECTION_MINUTES"):
            load_settings()


def test_ecs_agent_uri_is_read_under_the_name_ecs_gives_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECS_AGENT_URI", "http://169.254.170.2/api/0123456789abcdef0/")
    assert load_settings().ecs_agent_uri == "http://169.254.170.2/api/0123456789abcdef0"
    monkeypatch.setenv("ECS_AGENT_URI", "")
    assert load_settings().ecs_agent_uri is None
    monkeypatch.setenv("ECS_AGENT_URI", "169.254.170.2/api/x")
    with pytest.raises(SettingsError, match=r"\n  ECS_AGENT_URI: "):
        load_settings()


# --- the client against a real local agent endpoint ------------------------------------------
async def test_client_puts_the_documented_json_to_the_agents_state_path(ecs_agent: FakeEcsAgent) -> None:
    async with TaskProtectionClient(ecs_agent.uri + "/") as client:
        on = await client.put_state(True, 120)
        off = await client.put_state(False)
    assert on.enabled is True and on.expires_at is not None
    assert off == ProtectionState(False, None)
    [enable, release] = ecs_agent.requests
    assert (enable.method, enable.path) == ("PUT", "/api/0123456789abcdef0/task-protection/v1/state")
    assert enable.content_type is not None and enable.content_type.startswith("application/json")
    assert enable.body == {"ProtectionEnabled": True, "ExpiresInMinutes": 120}
    assert (release.method, release.path, release.body) == ("PUT", enable.path, {"ProtectionEnabled": False})


async def test_client_retries_a_server_error_then_succeeds(ecs_agent: FakeEcsAgent) -> None:
    ecs_agent.script = ["500", "throttled"]
    async with TaskProtectionClient(ecs_agent.uri, policy=FAST) as client:
        state = await client.put_state(True, 30)
    assert state.enabled is True
    assert len(ecs_agent.puts()) == 3


async def test_client_does_not_retry_a_failure_answer(ecs_agent: FakeEcsAgent) -> None:
    ecs_agent.mode = "failure"
    async with TaskProtectionClient(ecs_agent.uri, policy=FAST) as client:
        with pytest.raises(ProtectionError) as raised:
            await client.put_state(True, 30)
    assert raised.value.failure == ProtectionFailure("TASK_NOT_VALID", transient=False)
    assert len(ecs_agent.puts()) == 1


async def test_client_gives_up_after_its_bounded_retries_when_no_agent_listens() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    async with TaskProtectionClient(f"http://127.0.0.1:{port}/api/x", policy=FAST, timeout_s=1.0) as client:
        with pytest.raises(OSError):  # aiohttp's ClientConnectorError is an OSError
            await client.put_state(True, 30)
    assert time.monotonic() - started < 5


# --- the best-effort holder --------------------------------------------------------------
async def test_held_enables_before_the_body_and_releases_after_it(ecs_agent: FakeEcsAgent) -> None:
    async with TaskProtectionClient(ecs_agent.uri, policy=FAST) as client:
        protection = ScaleInProtection(client, expires_in_minutes=90)
        async with protection.held("job-1"):
            ecs_agent.mark("body")
    assert ecs_agent.labels() == ["PUT true", "body", "PUT false"]
    assert [r.body for r in ecs_agent.puts()] == [{"ProtectionEnabled": True, "ExpiresInMinutes": 90},
                                                  {"ProtectionEnabled": False}]


async def test_held_releases_when_the_body_raises_and_lets_the_error_through(ecs_agent: FakeEcsAgent) -> None:
    async with TaskProtectionClient(ecs_agent.uri, policy=FAST) as client:
        with pytest.raises(RuntimeError, match="stage blew up"):
            async with ScaleInProtection(client, 30).held("job-1"):
                raise RuntimeError("stage blew up")
    assert ecs_agent.labels() == ["PUT true", "PUT false"]


async def test_held_renews_on_its_timer_while_the_body_runs(ecs_agent: FakeEcsAgent) -> None:
    async with TaskProtectionClient(ecs_agent.uri, policy=FAST) as client:
        protection = ScaleInProtection(client, expires_in_minutes=1, renew_every_s=0.1)
        async with protection.held("job-1"):
            await asyncio.sleep(0.55)
    labels = ecs_agent.labels()
    assert labels[-1] == "PUT false" and labels[:-1] == ["PUT true"] * (len(labels) - 1)
    assert len(labels) - 1 >= 4  # the enable and at least three renewals
    assert all(r.body == {"ProtectionEnabled": True, "ExpiresInMinutes": 1} for r in ecs_agent.puts()[:-1])


@pytest.mark.parametrize("mode", ["failure", "500", "denied"])
async def test_a_failing_agent_costs_a_warning_never_an_error(ecs_agent: FakeEcsAgent, mode: str) -> None:
    ecs_agent.mode = mode
    async with TaskProtectionClient(ecs_agent.uri, policy=FAST) as client:
        protection = ScaleInProtection(client, 30)
        with structlog.testing.capture_logs() as logs:
            async with protection.held("job-1"):
                ecs_agent.mark("body")
    warnings = [e for e in logs if e["event"] == "task_protection_failed"]
    assert [(w["log_level"], w["action"]) for w in warnings] == [("warning", "enable"), ("warning", "release")]
    assert all(w["job_id"] == "job-1" and w["error"] for w in warnings)
    assert "body" in ecs_agent.labels()


async def test_without_an_agent_nothing_is_asked_and_that_is_said_once(ecs_agent: FakeEcsAgent,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECS_AGENT_URI", raising=False)
    with structlog.testing.capture_logs() as logs:
        async with scale_in_protection(Settings()) as protection:
            assert not protection.enabled
            async with protection.held("job-1"):
                pass
            assert await protection.enable("job-2") is False
    assert [e["event"] for e in logs] == ["task_protection_unavailable"]
    assert ecs_agent.requests == []


async def test_with_an_agent_the_settings_expiry_is_used(ecs_agent: FakeEcsAgent) -> None:
    settings = Settings(ecs_agent_uri=ecs_agent.uri, task_protection_minutes=45)
    async with scale_in_protection(settings) as protection:
        assert protection.enabled and protection.renew_every_s == 45 * 30
        assert await protection.enable("job-1") is True
    assert [r.body for r in ecs_agent.puts()] == [{"ProtectionEnabled": True, "ExpiresInMinutes": 45}]
