"""What the front door counts and how much it allows: limits, subjects, counter keys, decisions.

Everything here is pure; the counters live in DynamoDB (one item per subject and window,
``ADD`` is atomic, a TTL attribute removes old windows), the decision is made here from the
counts the increments return. Subjects are stored only as keyed digests, so the table holds
no address and no IP.

Three sets of counters, kept apart on purpose:

- **code emails** (``POST /api/jobs``): per address (an hour and a day), per client, per IPv6
  network, and globally per hour. What a stranger can spend here is email to an address,
  each one a fixed text with a code.
- **started jobs** (``.../start``, which only a proven address reaches): per address, per
  client, per IPv6 network, globally. A stranger who used up an address's code emails has
  touched none of these, so the address's owner, holding a code, can always start.
- **wrong codes**: per job (the job's code is dead after :data:`WRONG_CODES_PER_JOB`) and per
  address (past :data:`WRONG_CODES_PER_ADDRESS_PER_DAY` in a day the address gets no new code
  email, so nobody can buy new guesses for it; codes already sent keep working).

A client is an IPv4 address or an IPv6 /64 (one household or host); an IPv6 /48 (one site)
also counts, at :data:`NETWORK_FACTOR` times the client's allowance, so the 65,536 /64s of a
/48 are not 65,536 clients. Addresses are counted as the big providers deliver them: lower
case, ``+tag`` removed, and for Gmail the dots removed and ``googlemail.com`` read as
``gmail.com``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from processor.settings import Settings

HOUR, DAY = 3600, 86400
#: An IPv6 /48 may do this many times what one client (a /64) may.
NETWORK_FACTOR = 4
#: Tries one job's code is checked at most (counted before each check); then it is dead and the
#: person starts again.
WRONG_CODES_PER_JOB = 5
#: Wrong codes per address a day after which the address gets no new code email that day.
WRONG_CODES_PER_ADDRESS_PER_DAY = 10
#: Domains that deliver ``a.d.a@`` to ``ada@`` (and each other's mail).
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


@dataclass(frozen=True)
class Limit:
    """``allowed`` per ``period_s`` window (0: one window for the subject's whole life)."""

    name: str
    allowed: int
    period_s: int
    alarm: bool = False  # a global cap: hitting it is logged as ``frontdoor_cap_hit`` (alarmed)


@dataclass(frozen=True)
class Count:
    """One counter a request takes: a limit and the subject it counts."""

    limit: Limit
    subject: str


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: str | None = None
    retry_after_s: int = 0
    alarm: bool = False


def window_start(now: float, period_s: int) -> int:
    return int(now // period_s) * period_s if period_s else 0


def client_subjects(source_ip: str) -> dict[str, str]:
    """The clients a request counts against: ``client`` (IPv4 address or IPv6 /64) and, for
    IPv6, ``network`` (its /48)."""
    try:
        ip = ipaddress.ip_address(source_ip)
    except ValueError:
        return {"client": "unknown"}
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return {"client": str(ip.ipv4_mapped)}
        return {"client": str(ipaddress.ip_network(f"{ip}/64", strict=False)),
                "network": str(ipaddress.ip_network(f"{ip}/48", strict=False))}
    return {"client": str(ip)}


def address_subject(email: str) -> str:
    """The inbox an address delivers to: lower-cased, ``+tag`` removed; Gmail's dots removed
    and ``googlemail.com`` read as ``gmail.com``."""
    local, _, domain = email.strip().lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def counter_key(key: bytes, limit: Limit, subject: str, now: float) -> str:
    """``<limit>#<keyed digest of subject>#<window start>``: no personal data in the table."""
    digest = hmac.new(key, f"ratelimit\n{limit.name}\n{subject}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{limit.name}#{digest}#{window_start(now, limit.period_s)}"


def counter_expiry(limit: Limit, now: float, lifetime_s: int = DAY) -> int:
    """When DynamoDB's TTL may drop the counter: two windows on (a lifelong one: ``lifetime_s``)."""
    return int(now) + (2 * limit.period_s if limit.period_s else lifetime_s)


def decide(counts: Mapping[Limit, int], now: float) -> Decision:
    """Allowed when every counter, after this request's increment, is within its limit."""
    for limit, count in counts.items():
        if count > limit.allowed:
            reset = window_start(now, limit.period_s) + limit.period_s if limit.period_s else now + DAY
            return Decision(False, limit.name, max(1, int(reset - now)), limit.alarm)
    return Decision(True)


def _per_client(limit: Limit, clients: Mapping[str, str]) -> list[Count]:
    out = [Count(limit, clients["client"])]
    if "network" in clients:
        out.append(Count(Limit(limit.name.replace("client", "network"), limit.allowed * NETWORK_FACTOR,
                               limit.period_s), clients["network"]))
    return out


def proof_email_counts(settings: Settings, email: str, source_ip: str) -> list[Count]:
    """What sending one code email takes: the address, then the client, then everyone."""
    address, clients = address_subject(email), client_subjects(source_ip)
    return [Count(Limit("proof_address_hour", settings.frontdoor_proof_emails_per_address_per_hour, HOUR), address),
            Count(Limit("proof_address_day", settings.frontdoor_proof_emails_per_address_per_day, DAY), address),
            *_per_client(Limit("proof_client_hour", settings.frontdoor_proof_emails_per_client_per_hour, HOUR),
                         clients),
            Count(Limit("proof_all_hour", settings.frontdoor_proof_emails_per_hour, HOUR, alarm=True), "all")]


def start_counts(settings: Settings, email: str, source_ip: str) -> list[Count]:
    """What starting one (proven) job takes: its address, its client, everyone."""
    address, clients = address_subject(email), client_subjects(source_ip)
    return [Count(Limit("start_address_day", settings.frontdoor_jobs_per_address_per_day, DAY), address),
            *_per_client(Limit("start_client_hour", settings.frontdoor_jobs_per_client_per_hour, HOUR), clients),
            Count(Limit("start_all_hour", settings.frontdoor_jobs_per_hour, HOUR, alarm=True), "all")]


def wrong_code_counts(job_id: str, email: str) -> Sequence[Count]:
    """What a wrong code takes: one of its job's few guesses and one of its address's."""
    return (Count(Limit("wrong_code_job", WRONG_CODES_PER_JOB, 0), job_id),
            Count(Limit("wrong_code_address_day", WRONG_CODES_PER_ADDRESS_PER_DAY, DAY), address_subject(email)))
