"""The link key rotates by itself, and every emailed link works for exactly its stated life.

The rotation function (``frontdoor.key_rotation``) runs each step of Secrets Manager's rotation
contract against the embedded stack's Secrets Manager (moto cannot invoke a Lambda: the test
calls the steps as Secrets Manager would). The schedule test rotates on the shortest period
Terraform allows (``link_key_rotation_days >= results_retention_days + 1``), records the key
state after each rotation, and checks every link the worker signs in between (with the key it
reads now and with the one its five-minute cache may still hold; a new key signs only once
settled) at every moment of its life, as the front door checks it (current and previous key,
read now or up to five minutes ago): valid until ``exp``, expired at it. A period shorter than
a link's life is shown to break links, so the check can fail.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from frontdoor.aws import KEY_CACHE_S
from frontdoor.key_rotation import handler, rotate_step
from processor.aws.secrets import CACHE_S as WORKER_CACHE_S
from processor.devkit.local_stack import LocalStack
from processor.links import KEY_SETTLE_S, LinkCheck, LinkSigner, check, gallery_parts, settled_key
from processor.settings import Settings
from tests.frontdoor.client import call, deliver

DAY = 86400
RETENTION_DAYS = 7  # the deployment's default: links live 7 days
LINK_TTL_S = RETENTION_DAYS * DAY
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


def stages(sm: Any, secret_id: str) -> dict[str, list[str]]:
    return dict(sm.describe_secret(SecretId=secret_id)["VersionIdsToStages"])


def value(sm: Any, secret_id: str, stage: str) -> bytes | None:
    try:
        return sm.get_secret_value(SecretId=secret_id, VersionStage=stage)["SecretString"].encode()
    except sm.exceptions.ResourceNotFoundException:
        return None


def rotate(sm: Any, secret_id: str) -> None:
    token = str(uuid.uuid4())
    for step in STEPS:
        rotate_step(sm, secret_id, token, step)


def test_a_rotation_makes_a_new_current_key_and_keeps_the_old_one_as_previous(
        local_stack: LocalStack, aws_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    sm, secret = local_stack.client("secretsmanager", aws_settings), aws_settings.link_secret_id
    before = value(sm, secret, "AWSCURRENT")
    token = str(uuid.uuid4())
    rotate_step(sm, secret, token, "createSecret")
    pending = value(sm, secret, "AWSPENDING")
    rotate_step(sm, secret, token, "createSecret")  # Secrets Manager retries a step: nothing new
    assert value(sm, secret, "AWSPENDING") == pending and value(sm, secret, "AWSCURRENT") == before
    for step in STEPS[1:]:
        rotate_step(sm, secret, token, step)
    after = value(sm, secret, "AWSCURRENT")
    assert after == pending and after != before and len(after or b"") >= 32
    assert value(sm, secret, "AWSPREVIOUS") == before and value(sm, secret, "AWSPENDING") is None
    rotate_step(sm, secret, token, "finishSecret")  # a retried finish changes nothing
    assert value(sm, secret, "AWSCURRENT") == after
    with pytest.raises(ValueError):
        rotate_step(sm, secret, str(uuid.uuid4()), "finishSecret")  # not a version of this secret

    # The Lambda entry point, as Secrets Manager calls it (its client from the environment).
    monkeypatch.setenv("AWS_ENDPOINT_URL", local_stack.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", aws_settings.aws_region)
    token = str(uuid.uuid4())
    for step in STEPS:
        handler({"SecretId": secret, "ClientRequestToken": token, "Step": step})
    assert value(sm, secret, "AWSPREVIOUS") == after and value(sm, secret, "AWSCURRENT") not in (before, after)
    assert [s for s in stages(sm, secret).values() if "AWSCURRENT" in s] == [["AWSCURRENT"]]


@dataclass(frozen=True)
class KeyState:
    since: float
    current: bytes
    previous: bytes | None


class KeyHistory:
    """The secret's states, each from the rotation that made it (the key changes only then)."""

    def __init__(self) -> None:
        self.states: list[KeyState] = []

    def at(self, t: float) -> KeyState:
        return [s for s in self.states if s.since <= t][-1]

    def signing(self, t: float) -> bytes:
        state = self.at(t)
        return settled_key(state.current, state.since, state.previous, t)

    def verifying(self, t: float) -> tuple[bytes, ...]:
        state = self.at(t)
        return (state.current, state.previous) if state.previous else (state.current,)


def run_schedule(local_stack: LocalStack, settings: Settings, period_s: int, periods: int = 3) -> Iterator[str]:
    """Rotate every ``period_s`` on the real secret; yield every way a link failed its promise."""
    sm, secret = local_stack.client("secretsmanager", settings), settings.link_secret_id
    history = KeyHistory()
    history.states.append(KeyState(-10 * DAY, value(sm, secret, "AWSCURRENT") or b"", value(sm, secret, "AWSPREVIOUS")))
    for k in range(1, periods + 2):
        rotate(sm, secret)
        history.states.append(KeyState(k * period_s, value(sm, secret, "AWSCURRENT") or b"",
                                       value(sm, secret, "AWSPREVIOUS")))
    rotations = [s.since for s in history.states[1:]]
    offsets = (0, 1, KEY_SETTLE_S - 1, KEY_SETTLE_S, KEY_SETTLE_S + WORKER_CACHE_S, period_s // 2, period_s - 1)
    signed_at = sorted({int(k * period_s + d) for k in range(periods + 1) for d in offsets})
    for t in signed_at:
        # The worker signs with the key it reads now, or the one its cache read up to five minutes ago.
        for key in {history.signing(t), history.signing(t - int(WORKER_CACHE_S))}:
            exp = t + LINK_TTL_S  # published before signing: the link never outlives the results
            sig = LinkSigner(key, "https://fd.example").gallery_url("job-1", exp).split("sig=")[1]
            moments = {t, t + 1, exp - 1, *(int(m) for r in rotations for m in (r - 1, r, r + 1, r + KEY_CACHE_S)
                                             if t <= m < exp)}
            for v in sorted(moments):
                for read_at in (v, v - KEY_CACHE_S):  # the front door's keys: read now, or cached
                    got = check(history.verifying(read_at), sig, str(exp), v, *gallery_parts("job-1"))
                    if got is not LinkCheck.OK:
                        yield f"signed at {t}, expiring {exp}: {got.value} at {v} (keys read at {read_at})"
            if check(history.verifying(exp), sig, str(exp), exp, *gallery_parts("job-1")) is not LinkCheck.EXPIRED:
                yield f"signed at {t}: not expired at its exp {exp}"


def test_every_link_works_for_its_whole_stated_life_when_the_key_rotates_on_schedule(
        local_stack: LocalStack, aws_settings: Settings) -> None:
    shortest_allowed = (RETENTION_DAYS + 1) * DAY  # Terraform: link_key_rotation_days >= retention + 1
    failures = list(run_schedule(local_stack, aws_settings, shortest_allowed))
    assert failures == [], failures[:5]


def test_a_rotation_faster_than_a_link_lives_would_break_links(
        make_aws_settings: Any, local_stack: LocalStack) -> None:
    """The control: the same check finds broken links when the period is shorter than a link's life
    (what the Terraform validation refuses)."""
    failures = list(run_schedule(local_stack, make_aws_settings(), (RETENTION_DAYS - 1) * DAY))
    assert any(": bad at " in f for f in failures), failures[:3]


async def test_right_after_a_rotation_links_are_signed_with_a_key_every_front_door_already_knows(
        local_stack: LocalStack, aws_settings: Settings, job_id: str) -> None:
    """A front door's keys are cached for five minutes: a link signed with a key minted a second
    ago would be refused by it. The worker (and the front door itself) sign with the previous key
    until the new one has settled; the front door's cache, read before the rotation, accepts it."""
    from processor.aws import secrets as worker_secrets

    assert aws_settings.frontdoor_url and aws_settings.link_secret_id
    published = deliver(local_stack, aws_settings, job_id, n=1)
    expires = int(published) + aws_settings.link_ttl_s
    sm = local_stack.client("secretsmanager", aws_settings)
    before = value(sm, aws_settings.link_secret_id, "AWSCURRENT") or b""
    assert call(LinkSigner(before, aws_settings.frontdoor_url).gallery_url(job_id, expires)).status == 200  # cached
    rotate(sm, aws_settings.link_secret_id)
    worker_secrets._cache.clear()  # the worker reads the keys after the rotation
    key = await worker_secrets.link_signing_key(aws_settings)
    assert key == before != value(sm, aws_settings.link_secret_id, "AWSCURRENT")
    assert call(LinkSigner(key, aws_settings.frontdoor_url).gallery_url(job_id, expires)).status == 200
