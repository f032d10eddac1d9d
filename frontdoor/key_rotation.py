"""The link key's automatic rotation: a Secrets Manager rotation function (``handler``).

Secrets Manager calls it on the schedule Terraform sets (``link_key_rotation_days``), once per
step of AWS's rotation contract: ``createSecret`` stages a new random key as AWSPENDING,
``setSecret`` has nothing to do (the key lives only in the secret), ``testSecret`` checks it,
``finishSecret`` makes it AWSCURRENT; Secrets Manager moves the old one to AWSPREVIOUS.

Why a schedule at least one link lifetime (plus a day) long keeps every link working for its
whole stated life: the worker signs with AWSCURRENT, and the front door verifies with
AWSCURRENT and AWSPREVIOUS. A link signed at ``t`` with the key made at rotation ``n`` (at
``n*P``; the worker may still use it five minutes into the next period, its cache) expires at
``t + L``, before rotation ``n+2`` at ``(n+2)*P`` drops that key, as long as
``P >= L + 5 minutes``. The code email's manifest proof, checked by the worker when the job
ends, is covered the same way as long as a job ends within ``P`` of its start (Terraform
also holds ``P`` to 15 days, over SQS's longest retention). ``tests/frontdoor/test_key_rotation.py``
rotates on that schedule and checks every link.

It deploys in the front door's zip with a role of its own (it may write the secret; the
public front door may only read it).
"""

from __future__ import annotations

import secrets
from typing import Any

import boto3

#: A new key: 48 random bytes, 64 URL-safe characters (the link key must be at least 32).
KEY_BYTES = 48
MIN_KEY_CHARS = 32


def new_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def _stages(client: Any, secret_id: str) -> dict[str, list[str]]:
    return dict(client.describe_secret(SecretId=secret_id).get("VersionIdsToStages") or {})


def create_secret(client: Any, secret_id: str, token: str) -> None:
    """Stage a new key as AWSPENDING under ``token`` (nothing if it has one already: a retry)."""
    try:
        client.get_secret_value(SecretId=secret_id, VersionId=token, VersionStage="AWSPENDING")
        return
    except client.exceptions.ResourceNotFoundException:
        pass  # Secrets Manager staged the version; its value is ours to make
    client.put_secret_value(SecretId=secret_id, ClientRequestToken=token, SecretString=new_key(),
                            VersionStages=["AWSPENDING"])


def check_pending(client: Any, secret_id: str, token: str) -> None:
    value = client.get_secret_value(SecretId=secret_id, VersionId=token, VersionStage="AWSPENDING")["SecretString"]
    if len(value) < MIN_KEY_CHARS:
        raise ValueError(f"the pending link key is {len(value)} characters, under {MIN_KEY_CHARS}")


def finish_secret(client: Any, secret_id: str, token: str) -> None:
    """Make ``token`` AWSCURRENT (the old current becomes AWSPREVIOUS) and drop its AWSPENDING."""
    stages = _stages(client, secret_id)
    current = next((v for v, st in stages.items() if "AWSCURRENT" in st), None)
    if current != token:
        client.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSCURRENT", MoveToVersionId=token,
                                           RemoveFromVersionId=current)
    if "AWSPENDING" in stages.get(token, []):
        client.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSPENDING", RemoveFromVersionId=token)


def rotate_step(client: Any, secret_id: str, token: str, step: str) -> None:
    """One step of Secrets Manager's rotation contract, for the link key's secret."""
    stages = _stages(client, secret_id).get(token)
    if stages is None and step != "createSecret":
        raise ValueError("the rotation's version is not a version of this secret")
    if stages and "AWSCURRENT" in stages and step != "finishSecret":
        return  # this rotation already finished
    if step == "createSecret":
        create_secret(client, secret_id, token)
    elif step == "setSecret":
        return  # the key is used only by this service: nothing outside the secret to update
    elif step == "testSecret":
        check_pending(client, secret_id, token)
    elif step == "finishSecret":
        finish_secret(client, secret_id, token)
    else:
        raise ValueError(f"unknown rotation step {step!r}")


def handler(event: dict[str, Any], context: Any = None) -> None:
    """The Lambda entry point Secrets Manager invokes (``{"SecretId", "ClientRequestToken", "Step"}``)."""
    rotate_step(boto3.client("secretsmanager"), str(event["SecretId"]), str(event["ClientRequestToken"]),
                str(event["Step"]))
