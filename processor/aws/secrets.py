"""The link-signing key, read from Secrets Manager (the worker's side; the front door has its own).

Why a cache: the key is needed once per ready email, and a rotated key must still be picked
up by a long-running worker; five minutes bounds both the calls and the staleness.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from processor.aws.clients import AsyncAwsClient
from processor.aws.retry import describe
from processor.errors import SettingsError
from processor.settings import Settings

CACHE_S = 300.0


@dataclass(frozen=True)
class _Cached:
    key: bytes
    read_at: float


_cache: dict[str, _Cached] = {}


class SecretsClient(AsyncAwsClient):
    service = "secretsmanager"
    _name = "secrets"

    async def secret_bytes(self, secret_id: str) -> bytes:
        async def op() -> bytes:
            resp = await self.client.get_secret_value(SecretId=secret_id)
            value = resp.get("SecretString")
            return value.encode() if value is not None else bytes(resp["SecretBinary"])
        return await self._call(op)


async def link_signing_key(settings: Settings, now: float | None = None) -> bytes:
    """The current HMAC key of ``HEADSHOTS_LINK_SECRET_ID`` (cached for five minutes)."""
    secret_id = settings.link_secret_id
    if not secret_id:
        raise SettingsError("HEADSHOTS_LINK_SECRET_ID is not set: the ready email's links cannot be signed")
    clock = time.monotonic() if now is None else now
    hit = _cache.get(secret_id)
    if hit is not None and clock - hit.read_at < CACHE_S:
        return hit.key
    async with SecretsClient(settings) as client:
        key = await client.secret_bytes(secret_id)
    if len(key) < 32:
        raise SettingsError(f"the link-signing secret must hold at least 32 bytes, it holds {len(key)}")
    _cache[secret_id] = _Cached(key, clock)
    return key


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
