"""One SMTP conversation, step by step, judged by the one send rule (blocking).

Why here and not inside the worker's sender: the front door's code email goes through the same
relay locally, and must obey the same rule (:mod:`processor.send_rule`). The worker runs this in
a thread (:class:`processor.senders.SmtpSender`); the front door calls it directly. Every
failure is placed: up to the ``354`` that invites the data, nothing was sent; once the data went
out, only the reply to its final dot decides, and after a ``250`` nothing that follows (a failed
QUIT) unsends it.
"""

from __future__ import annotations

import re
import smtplib
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

import structlog

from processor.send_rule import Answer, Reached, SendFailed

log = structlog.get_logger(__name__)

_LEADING_DOT = re.compile(rb"(?m)^\.")


def reply_answer(code: int) -> Answer:
    """An SMTP reply code as an answer: 4xx refuses for now, 5xx for good (RFC 5321 4.2.1)."""
    if 400 <= code < 500:
        return Answer.REFUSED_FOR_NOW
    if 500 <= code < 600:
        return Answer.REFUSED
    return Answer.NONE


def data_payload(message: EmailMessage) -> bytes:
    """The DATA payload: CRLF lines, leading dots doubled, the final ``.`` line (RFC 5321 4.5.2)."""
    body = _LEADING_DOT.sub(b"..", message.as_bytes(policy=message.policy.clone(linesep="\r\n")))
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


def send_smtp(host: str, port: int, message: EmailMessage, timeout_s: float = 30.0) -> None:
    """Send ``message`` once; raises :class:`SendFailed` saying how far it got and the answer."""
    sender = parseaddr(str(message["From"]))[1]
    recipients = [addr for _, addr in getaddresses([str(message["To"])])]
    try:
        smtp = smtplib.SMTP(host, port, timeout=timeout_s)
    except smtplib.SMTPResponseException as exc:
        raise SendFailed(Reached.NOTHING, reply_answer(exc.smtp_code), f"greeting {exc.smtp_code}") from exc
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
                    raise SendFailed(Reached.NOTHING, reply_answer(code), f"{verb} {code}")
        except smtplib.SMTPResponseException as exc:
            raise SendFailed(Reached.NOTHING, reply_answer(exc.smtp_code), f"reply {exc.smtp_code}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise SendFailed(Reached.NOTHING, Answer.NONE, type(exc).__name__) from exc
        try:  # from here on the message is out: only the reply to the final dot decides
            smtp.send(data_payload(message))
            code, _ = smtp.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            raise SendFailed(Reached.MESSAGE, Answer.NONE, type(exc).__name__) from exc
        if code != 250:
            raise SendFailed(Reached.MESSAGE, reply_answer(code), f"end of data {code}")
        accepted = True
    finally:
        _close(smtp, accepted)


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
