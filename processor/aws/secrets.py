"""The link-signing key, read from Secrets Manager (the worker's side; the front door has its own).

Why a cache: the key is needed once per ready email, and a rotated key must still be picked
up by a long-running worker; five minutes bounds both the calls and the staleness. Right
after a rotation the previous key keeps signing until the new one has settled
(:func:`processor.links.settled_key`): the front door's cache may not know the new one yet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from botocore.exceptions import ClientError

from processor.aws.clients import AsyncAwsClient
from processor.aws.retry import describe
from processor.errors import SettingsError
from processor.links import settled_key
from processor.settings import Settings

CACHE_S = 300.0


@dataclass(frozen=True)
class _Cached:
    keys: LinkKeys
    read_at: float


@dataclass(frozen=True)
class LinkKeys:
    """The link key's two live versions, as read: the current one (and when it was made) and the
    one before the last rotation (None if there was none)."""

    current: bytes
    current_since: float
    previous: bytes | None

    def verifying(self) -> tuple[bytes, ...]:
        return (self.current, self.previous) if self.previous else (self.current,)

    def signing(self, now: float) -> bytes:
        return settled_key(self.current, self.current_since, self.previous, now)


_cache: dict[str, _Cached] = {}


class SecretsClient(AsyncAwsClient):
    service = "secretsmanager"
    _name = "secrets"

    async def secret_bytes(self, secret_id: str, stage: str = "AWSCURRENT") -> bytes:
        return (await self.secret_version(secret_id, stage))[0]

    async def secret_version(self, secret_id: str, stage: str = "AWSCURRENT") -> tuple[bytes, float]:
        """A version's value and when it was made (epoch seconds)."""
        async def op() -> tuple[bytes, float]:
            resp = await self.client.get_secret_value(SecretId=secret_id, VersionStage=stage)
            value = resp.get("SecretString")
            created = resp.get("CreatedDate")
            return (value.encode() if value is not None else bytes(resp["SecretBinary"]),
                    created.timestamp() if created is not None else 0.0)
        return await self._call(op)


async def link_keys(settings: Settings, now: float | None = None) -> LinkKeys:
    """The link key's current and previous versions (cached for five minutes)."""
    secret_id = settings.link_secret_id
    if not secret_id:
        raise SettingsError("HEADSHOTS_LINK_SECRET_ID is not set: the emails' links cannot be signed "
                            "nor their addresses' proofs checked")
    clock = time.monotonic() if now is None else now
    hit = _cache.get(secret_id)
    if hit is not None and clock - hit.read_at < CACHE_S:
        return hit.keys
    keys = await read_link_keys(settings)
    _cache[secret_id] = _Cached(keys, clock)
    return keys


async def read_link_keys(settings: Settings) -> LinkKeys:
    """The link key's versions, read now (no cache: e.g. ``headshots submit``, once)."""
    secret_id = settings.link_secret_id
    if not secret_id:
        raise SettingsError("HEADSHOTS_LINK_SECRET_ID is not set")
    async with SecretsClient(settings) as client:
        current, since = await client.secret_version(secret_id)
        previous = await _previous_or_none(client, secret_id)
    short = [len(k) for k in (current, previous) if k is not None and len(k) < 32]
    if short:
        raise SettingsError(f"the link-signing secret must hold at least 32 bytes, it holds {short[0]}")
    return LinkKeys(current, since, previous)


async def link_signing_key(settings: Settings, now: float | None = None) -> bytes:
    """The key that signs now: the current one once settled, else the previous one."""
    return (await link_keys(settings, now)).signing(time.time())


async def _previous_or_none(client: SecretsClient, secret_id: str) -> bytes | None:
    try:
        return await client.secret_bytes(secret_id, "AWSPREVIOUS")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("ResourceNotFoundException", "InvalidRequestException"):
            raise
        return None


async def check_link_key(settings: Settings) -> None:
    """Read the link key once, as a worker starting up must: :class:`SettingsError` naming the
    reason when it cannot be read (missing secret, no grant, too short)."""
    try:
        await link_signing_key(settings)
    except SettingsError:
        raise
    except Exception as exc:
        raise SettingsError(f"the link-signing key {settings.link_secret_id!r} (HEADSHOTS_LINK_SECRET_ID) cannot be "
                            f"read: {describe(exc)}") from exc
