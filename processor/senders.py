"""The email backends: SES ``SendRawEmail`` and plain SMTP, each judged by the one send rule.

Each backend only reports what it saw (:class:`processor.send_rule.SendFailed`: how far the
request got, what the provider answered); :func:`processor.send_rule.verdict` decides, the same
way for both, and only a ``RETRY`` verdict is retried here. So a reset after SES had the whole
request, or an SMTP connection lost after the data, is ``UNKNOWN`` and never sent again, and an
SMTP relay that answered 250 and then failed the QUIT has sent the message.
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import Protocol

import aioboto3
import aiohttp
import structlog
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

from processor.aws.clients import client_kwargs, new_session
from processor.aws.retry import (
    DEFAULT_POLICY,
    THROTTLING_CODES,
    RetryPolicy,
    aws_retrying,
    describe,
    error_code,
    http_status,
)
from processor.send_rule import Answer, Reached, SendFailed, Verdict
from processor.settings import Settings
from processor.smtp import send_smtp

log = structlog.get_logger(__name__)


class EmailSender(Protocol):
    """Sends one MIME message; returns the provider's message id, or raises :class:`SendFailed`."""

    backend: str

    async def send(self, message: EmailMessage) -> str: ...


def _retry_only_certain_failures(exc: BaseException) -> bool:
    return isinstance(exc, SendFailed) and exc.verdict is Verdict.RETRY


# --- SES ---------------------------------------------------------------------------------
def ses_observation(exc: BaseException) -> SendFailed:
    """What an SES call's exception says about how far the request got and SES's answer.

    Only a connection that was never made, or an explicit throttle/4xx, proves SES did not take
    the message. aiobotocore reports a reset after the request as ``EndpointConnectionError``
    too: the underlying aiohttp error tells the two apart (``ClientConnectorError`` = the
    connection was never made)."""
    if isinstance(exc, ClientError):
        status = http_status(exc)
        if error_code(exc) in THROTTLING_CODES or status == 429:
            return SendFailed(Reached.NOTHING, Answer.REFUSED_FOR_NOW, describe(exc))
        if 400 <= status < 500:
            return SendFailed(Reached.MESSAGE, Answer.REFUSED, describe(exc))
        return SendFailed(Reached.MESSAGE, Answer.NONE, describe(exc))  # SES's own 5xx: may have sent
    if isinstance(exc, ConnectTimeoutError):
        return SendFailed(Reached.NOTHING, Answer.NONE, describe(exc))
    if isinstance(exc, EndpointConnectionError) and isinstance(exc.kwargs.get("error"), aiohttp.ClientConnectorError):
        return SendFailed(Reached.NOTHING, Answer.NONE, "no connection")
    return SendFailed(Reached.MESSAGE, Answer.NONE, describe(exc))


class SesSender:
    """Amazon SES ``SendRawEmail`` (the sender identity must be verified)."""

    backend = "ses"

    def __init__(self, settings: Settings, session: aioboto3.Session | None = None,
                 policy: RetryPolicy = DEFAULT_POLICY) -> None:
        self.settings = settings
        self._session = session or new_session()
        self._policy = policy

    async def send(self, message: EmailMessage) -> str:
        raw = message.as_bytes()
        async with self._session.client("ses", **client_kwargs(self.settings, "ses")) as ses:
            async for attempt in aws_retrying(self._policy, transient=_retry_only_certain_failures):
                with attempt:
                    try:
                        resp = await ses.send_raw_email(Source=str(message["From"]),
                                                        Destinations=[a.addr_spec for a in message["To"].addresses],
                                                        RawMessage={"Data": raw})
                    except Exception as exc:
                        raise ses_observation(exc) from exc
        return str(resp["MessageId"])


# --- SMTP --------------------------------------------------------------------------------
class SmtpSender:
    """Plain SMTP (the local sink, or a relay): :func:`processor.smtp.send_smtp` in a thread,
    retried only where the rule says the message certainly did not go out."""

    backend = "smtp"

    def __init__(self, host: str, port: int, timeout_s: float = 30.0,
                 policy: RetryPolicy = DEFAULT_POLICY) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._policy = policy

    def _send_blocking(self, message: EmailMessage) -> None:
        send_smtp(self.host, self.port, message, self.timeout_s)

    async def send(self, message: EmailMessage) -> str:
        async for attempt in aws_retrying(self._policy, transient=_retry_only_certain_failures):
            with attempt:
                await asyncio.to_thread(self._send_blocking, message)
        return str(message["Message-ID"])


def make_sender(settings: Settings) -> EmailSender:
    """The backend ``HEADSHOTS_EMAIL_BACKEND`` names."""
    if settings.email_backend == "ses":
        return SesSender(settings)
    return SmtpSender(settings.smtp_host, settings.smtp_port)
