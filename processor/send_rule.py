"""The one rule for sending an email: retry only what certainly did not go out.

Why one rule for two backends: SES and SMTP fail in different words, but the question is the
same, and answering it twice is how the two drifted apart (a reset after SES had the request
was read as "never connected" and retried; an SMTP relay that said 250 and then failed the QUIT
was read as a failure and sent again). Each backend says only what it saw, as two facts:

- how far the request got (:class:`Reached`): ``NOTHING`` when no connection was made or the
  provider refused before the message went out; ``MESSAGE`` once the whole message was sent
  (SES: the request left, or may have; SMTP: the data and its final dot);
- what the provider answered (:class:`Answer`): accepted, refused for now (throttled, 4xx),
  refused for good, or no answer to trust (a reset, a timeout, SES's own 5xx).

:func:`verdict` turns the two into what to do. An answer that says the message was taken means
sent, whatever happens next (a failed QUIT does not unsend it); an explicit refusal means not
sent; no answer after the message went out means nobody can tell: ``UNKNOWN``, never retried,
because a second send could mail the person twice. Pure: no I/O here.
"""

from __future__ import annotations

from enum import StrEnum

from processor.errors import EmailSendError


class Reached(StrEnum):
    NOTHING = "nothing"  # no connection, or refused before the message left
    MESSAGE = "message"  # the whole message went out (or may have)


class Answer(StrEnum):
    ACCEPTED = "accepted"            # the provider took the message (SES MessageId, SMTP 250)
    REFUSED_FOR_NOW = "refused_for_now"  # throttled / 4xx: it did not take it, try later
    REFUSED = "refused"              # a permanent refusal: it did not take it, never will
    NONE = "none"                    # no answer, or none to trust (reset, timeout, SES 5xx)


class Verdict(StrEnum):
    SENT = "sent"        # done: record it
    RETRY = "retry"      # certainly not sent, and worth another try
    FAILED = "failed"    # certainly not sent, and another try will not help
    UNKNOWN = "unknown"  # may have been sent: never send again; alarm


def verdict(reached: Reached, answer: Answer) -> Verdict:
    """What a send attempt's outcome means (the module docstring is the rule in words)."""
    if answer is Answer.ACCEPTED:
        return Verdict.SENT
    if answer is Answer.REFUSED_FOR_NOW:
        return Verdict.RETRY
    if answer is Answer.REFUSED:
        return Verdict.FAILED
    return Verdict.RETRY if reached is Reached.NOTHING else Verdict.UNKNOWN


class SendFailed(EmailSendError):
    """A send attempt that did not end in ``SENT``: what the backend saw, and the verdict.

    ``detail`` is safe to log (an error code or exception type, never the address)."""

    def __init__(self, reached: Reached, answer: Answer, detail: str) -> None:
        self.reached = reached
        self.answer = answer
        self.detail = detail
        self.verdict = verdict(reached, answer)
        super().__init__(f"{self.verdict.value}: {detail} (reached {reached.value}, answer {answer.value})")

    @property
    def retryable(self) -> bool:
        return self.verdict is Verdict.RETRY
