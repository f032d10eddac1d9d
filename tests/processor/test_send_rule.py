"""The one send rule: retry only what certainly did not go out (pure)."""

from __future__ import annotations

import pytest

from processor.send_rule import Answer, Reached, SendFailed, Verdict, verdict


@pytest.mark.parametrize(("reached", "answer", "expected"), [
    (Reached.MESSAGE, Answer.ACCEPTED, Verdict.SENT),        # SES MessageId, SMTP 250 (whatever follows)
    (Reached.NOTHING, Answer.REFUSED_FOR_NOW, Verdict.RETRY),  # throttled, 4xx before the data
    (Reached.MESSAGE, Answer.REFUSED_FOR_NOW, Verdict.RETRY),  # 4xx to the final dot: not taken
    (Reached.NOTHING, Answer.REFUSED, Verdict.FAILED),       # 550 no such user
    (Reached.MESSAGE, Answer.REFUSED, Verdict.FAILED),       # SES MessageRejected, 5xx to the dot
    (Reached.NOTHING, Answer.NONE, Verdict.RETRY),           # no connection was ever made
    (Reached.MESSAGE, Answer.NONE, Verdict.UNKNOWN),         # reset or timeout after the request
])
def test_the_verdict_of_every_outcome(reached: Reached, answer: Answer, expected: Verdict) -> None:
    assert verdict(reached, answer) is expected


def test_only_a_retry_verdict_is_retryable_and_the_message_never_holds_an_address() -> None:
    failure = SendFailed(Reached.MESSAGE, Answer.NONE, "ClientOSError")
    assert failure.verdict is Verdict.UNKNOWN and not failure.retryable
    assert SendFailed(Reached.NOTHING, Answer.NONE, "no connection").retryable
    assert "ClientOSError" in str(failure) and "@" not in str(failure)
