"""The email backends: SES ``SendRawEmail`` and plain SMTP, each judged by the one send rule.

Each backend only reports what it saw (:class:`processor.send_rule.SendFailed`: how far the
request got, what the provider answered); :func:`processor.send_rule.verdict` decides, the same
way for both, and only a ``RETRY`` verdict is retried here. So a reset after SES had the whole
request, or an SMTP connection lost after the data, is ``UNKNOWN`` and never sent again, and an
SMTP relay that answered 250 and then failed the QUIT has sent the message.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
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
def _reply(code: int) -> Answer:
    """An SMTP reply code as an answer: 4xx refuses for now, 5xx for good (RFC 5321 4.2.1)."""
    if 400 <= code < 500:
        return Answer.REFUSED_FOR_NOW
    if 500 <= code < 600:
        return Answer.REFUSED
    return Answer.NONE


_LEADING_DOT = re.compile(rb"(?m)^\.")


def data_payload(message: EmailMessage) -> bytes:
    """The DATA payload: CRLF lines, leading dots doubled, the final ``.`` line (RFC 5321 4.5.2)."""
    body = _LEADING_DOT.sub(b"..", message.as_bytes(policy=message.policy.clone(linesep="\r\n")))
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


class SmtpSender:
    """Plain SMTP (the local sink, or a relay); blocking smtplib runs in a thread.

    The conversation is driven step by step so every failure is placed: up to the ``354`` that
    invites the data, nothing was sent; once the data went out, only the reply to its final dot
    decides, and after a ``250`` nothing that follows (a failed QUIT) unsends it.
    """

    backend = "smtp"

    def __init__(self, host: str, port: int, timeout_s: float = 30.0,
                 policy: RetryPolicy = DEFAULT_POLICY) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._policy = policy

    def _send_blocking(self, message: EmailMessage) -> None:
        sender = parseaddr(str(message["From"]))[1]
        recipients = [addr for _, addr in getaddresses([str(message["To"])])]
        try:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        except smtplib.SMTPResponseException as exc:
            raise SendFailed(Reached.NOTHING, _reply(exc.smtp_code), f"greeting {exc.smtp_code}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise SendFailed(Reached.NOTHING, Answer.NONE, type(exc).__name__) from exc
        accepted = False
        try:
            try:
                smtp.ehlo_or_helo_if_needed()
                steps = [("MAIL", lambda: smtp.mail(sender), (250,))]
                steps += [("RCPT", lambda r=r: smtp.rcpt(r), (250, 251)) for r in recipients]
                steps += [("DATA", lambda: smtp.docmd("DATA"), (354,))]
                for verb, step, ok in steps:
                    code, _ = step()
                    if code not in ok:
                        raise SendFailed(Reached.NOTHING, _reply(code), f"{verb} {code}")
            except smtplib.SMTPResponseException as exc:
                raise SendFailed(Reached.NOTHING, _reply(exc.smtp_code), f"reply {exc.smtp_code}") from exc
            except (OSError, smtplib.SMTPException) as exc:
                raise SendFailed(Reached.NOTHING, Answer.NONE, type(exc).__name__) from exc
            try:  # from here on the message is out: only the reply to the final dot decides
                smtp.send(data_payload(message))
                code, _ = smtp.getreply()
            except (OSError, smtplib.SMTPException) as exc:
                raise SendFailed(Reached.MESSAGE, Answer.NONE, type(exc).__name__) from exc
            if code != 250:
                raise SendFailed(Reached.MESSAGE, _reply(code), f"end of data {code}")
            accepted = True
        finally:
            self._close(smtp, accepted)

    @staticmethod
    def _close(smtp: smtplib.SMTP, accepted: bool) -> None:
        """QUIT politely; its failure changes nothing (after a 250 the message is sent)."""
        try:
            if accepted:
                code, _ = smtp.docmd("QUIT")
                if code != 221:
                    log.info("smtp_quit_refused", code=code)
        except (OSError, smtplib.SMTPException) as exc:
            log.info("smtp_quit_failed", error=type(exc).__name__)
        finally:
            smtp.close()

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
