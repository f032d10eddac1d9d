"""Job creation is rate-limited per client and per email address: fixed windows, pure decisions.

The counters live in DynamoDB (one item per subject and window, ``ADD`` is atomic, a TTL
attribute removes old windows); the decision is made here from the counts the increments
return. Subjects are stored only as keyed digests, so the table holds no address and no IP.
IPv6 clients are counted per /64 (one household or host gets one /64).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    name: str  # "client" or "address"
    allowed: int
    period_s: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: str | None = None
    retry_after_s: int = 0


def window_start(now: float, period_s: int) -> int:
    return int(now // period_s) * period_s


def client_subject(source_ip: str) -> str:
    """The client a request counts against: the IPv4 address, or the IPv6 /64."""
    try:
        ip = ipaddress.ip_address(source_ip)
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def address_subject(email: str) -> str:
    """The address a request counts against: lower-cased, ``+tag`` removed (one inbox)."""
    local, _, domain = email.strip().lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def counter_key(key: bytes, limit: Limit, subject: str, now: float) -> str:
    """``<limit>#<keyed digest of subject>#<window start>``: no personal data in the table."""
    digest = hmac.new(key, f"ratelimit\n{limit.name}\n{subject}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{limit.name}#{digest}#{window_start(now, limit.period_s)}"


def decide(counts: Mapping[Limit, int], now: float) -> Decision:
    """Allowed when every counter, after this request's increment, is within its limit."""
    for limit, count in counts.items():
        if count > limit.allowed:
            reset = window_start(now, limit.period_s) + limit.period_s
            return Decision(False, limit.name, max(1, int(reset - now)))
    return Decision(True)
