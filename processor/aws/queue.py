"""The SQS edge: receive, delete, change visibility, and the visibility heartbeat.

A job runs far longer than any sane visibility timeout, so while it runs a :class:`Heartbeat`
task keeps pushing the message's visibility forward. It lives on the event loop; the GPU work
runs in a thread or a child process, so a busy stage cannot starve it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aioboto3
import structlog
from botocore.exceptions import ClientError

from processor.aws.clients import AsyncAwsClient
from processor.aws.retry import DEFAULT_POLICY, RetryPolicy, describe
from processor.errors import MessageLost
from processor.settings import Settings

log = structlog.get_logger(__name__)

#: Error codes meaning the receipt handle no longer refers to a message we hold.
_LOST_CODES = frozenset({"ReceiptHandleIsInvalid", "InvalidParameterValue", "MessageNotInflight",
                         "AWS.SimpleQueueService.NonExistentQueue"})


#: The message attribute the worker adds when it puts a job's message back as a fresh one.
ORIGIN_ATTRIBUTE = "headshots-origin"    # the first message's id, kept across re-enqueues (for logs)


@dataclass(frozen=True)
class QueueMessage:
    """One received SQS message.

    ``origin``: the id of the message this one continues (itself unless re-enqueued), for logs;
    which message carries a job is its exact ``message_id`` (status.json's ``owner_message``).
    """

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    sent_at_ms: int | None = None
    origin: str = ""

    def __post_init__(self) -> None:
        if not self.origin:
            object.__setattr__(self, "origin", self.message_id)


class JobQueue(AsyncAwsClient):
    """SQS over aioboto3. Use as ``async with JobQueue(settings) as queue:``."""

    service = "sqs"

    def __init__(self, settings: Settings, queue_url: str | None = None,
                 session: aioboto3.Session | None = None, policy: RetryPolicy = DEFAULT_POLICY) -> None:
        super().__init__(settings, session, policy)
        self.queue_url = queue_url or settings.queue_url
        if not self.queue_url:
            raise ValueError("no queue URL: set HEADSHOTS_QUEUE_URL")

    def _translate(self, exc: ClientError) -> Exception:
        if str(exc.response.get("Error", {}).get("Code", "")) in _LOST_CODES:
            return MessageLost(describe(exc))
        return exc

    async def receive(self, max_messages: int = 1, wait_time_s: int | None = None,
                      visibility_timeout_s: int | None = None) -> list[QueueMessage]:
        """Long-poll for up to ``max_messages``; each is invisible for the visibility timeout."""
        params = {
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": max_messages,
            "WaitTimeSeconds": self.settings.wait_time_s if wait_time_s is None else wait_time_s,
            "VisibilityTimeout": (self.settings.visibility_timeout_s if visibility_timeout_s is None
                                  else visibility_timeout_s),
            "MessageSystemAttributeNames": ["ApproximateReceiveCount", "SentTimestamp"],
            "MessageAttributeNames": [ORIGIN_ATTRIBUTE],
        }

        async def op() -> list[QueueMessage]:
            resp = await self.client.receive_message(**params)
            return [_to_message(m) for m in resp.get("Messages", [])]
        return await self._call(op)

    async def send(self, body: str, delay_s: int = 0, attributes: dict[str, str] | None = None) -> str:
        """Send a message (tests, re-queues); returns its id."""
        params: dict[str, Any] = {"QueueUrl": self.queue_url, "MessageBody": body, "DelaySeconds": delay_s}
        if attributes:
            params["MessageAttributes"] = {k: {"DataType": "String", "StringValue": v}
                                           for k, v in attributes.items()}

        async def op() -> str:
            return (await self.client.send_message(**params))["MessageId"]
        return await self._call(op)

    async def requeue(self, message: QueueMessage, delay_s: int = 0,
                      between: Callable[[], None] | None = None) -> str:
        """Put ``message`` back as a fresh copy (receive count 1), then delete the old one.

        Why not ``ChangeMessageVisibility``: every receive of the same message counts toward the
        queue's maxReceiveCount, so handing a healthy job back on SIGTERM would dead-letter it
        after three spot interruptions. If the old message outlives its delete (the delete
        failed, or the worker died in ``between``), it comes back after its visibility timeout
        as a duplicate of the copy's job and is deleted once seen; it is never released early,
        so the copy is received first. Raises when the copy could not be sent (the caller then
        hands the old message back instead).
        """
        new_id = await self.send(message.body, delay_s=max(0, min(900, int(delay_s))),
                                 attributes={ORIGIN_ATTRIBUTE: message.origin})
        if between is not None:
            between()
        try:
            await self.delete(message)
        except MessageLost:
            log.warning("requeue_old_message_gone", message_id=message.message_id)
        except Exception as exc:  # it comes back as a duplicate, deleted then
            log.warning("requeue_old_message_kept", message_id=message.message_id, error=describe(exc))
        return new_id

    async def delete(self, message: QueueMessage) -> None:
        """Acknowledge: the message is done with and will not come back."""
        async def op() -> None:
            await self.client.delete_message(QueueUrl=self.queue_url,
                                             ReceiptHandle=message.receipt_handle)
        await self._call(op)

    async def change_visibility(self, message: QueueMessage, timeout_s: int) -> None:
        """Make the message invisible for ``timeout_s`` more seconds from now (0: visible now)."""
        async def op() -> None:
            await self.client.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=message.receipt_handle,
                VisibilityTimeout=timeout_s)
        await self._call(op)

    async def release(self, message: QueueMessage, delay_s: int = 0) -> None:
        """Hand the message back: visible again after ``delay_s`` seconds (0: at once)."""
        await self.change_visibility(message, delay_s)

    async def approximate_counts(self) -> tuple[int, int]:
        """(visible, in flight) message counts, for tests and the status command."""
        async def op() -> tuple[int, int]:
            resp = await self.client.get_queue_attributes(
                QueueUrl=self.queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
            attrs = resp["Attributes"]
            return (int(attrs["ApproximateNumberOfMessages"]),
                    int(attrs["ApproximateNumberOfMessagesNotVisible"]))
        return await self._call(op)

    def heartbeat(self, message: QueueMessage, interval_s: float | None = None,
                  visibility_timeout_s: int | None = None) -> Heartbeat:
        """A :class:`Heartbeat` for ``message`` with the settings' interval and timeout."""
        return Heartbeat(
            self, message,
            interval_s=self.settings.heartbeat_interval_s if interval_s is None else interval_s,
            visibility_timeout_s=(self.settings.visibility_timeout_s if visibility_timeout_s is None
                                  else visibility_timeout_s),
        )


def _to_message(raw: dict[str, Any]) -> QueueMessage:
    attrs = raw.get("Attributes", {})
    sent = attrs.get("SentTimestamp")
    custom = {k: v.get("StringValue", "") for k, v in (raw.get("MessageAttributes") or {}).items()}
    return QueueMessage(
        message_id=raw["MessageId"],
        receipt_handle=raw["ReceiptHandle"],
        body=raw.get("Body", ""),
        receive_count=int(attrs.get("ApproximateReceiveCount", "1")),
        sent_at_ms=int(sent) if sent is not None else None,
        origin=custom.get(ORIGIN_ATTRIBUTE, "")[:128],
    )


class Heartbeat:
    """Async context manager extending a message's visibility every ``interval_s`` until exit.

    Failures are logged and retried at the next beat; a lost receipt handle sets :attr:`lost`
    and ends the task (the job should stop: another worker may now hold the message).
    """

    def __init__(self, queue: JobQueue, message: QueueMessage, *, interval_s: float,
                 visibility_timeout_s: int) -> None:
        if interval_s <= 0 or interval_s >= visibility_timeout_s:
            raise ValueError("heartbeat interval must be positive and shorter than the visibility timeout")
        self.queue = queue
        self.message = message
        self.interval_s = interval_s
        self.visibility_timeout_s = visibility_timeout_s
        self.beats = 0
        self.failures = 0
        self.lost = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Heartbeat:
        self._task = asyncio.create_task(self._run(), name=f"heartbeat-{self.message.message_id}")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop beating (idempotent); the message keeps its current visibility."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.queue.change_visibility(self.message, self.visibility_timeout_s)
                self.beats += 1
            except MessageLost:
                self.lost = True
                log.warning("heartbeat_lost_message", message_id=self.message.message_id)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep beating: the next beat may get through
                self.failures += 1
                log.warning("heartbeat_failed", message_id=self.message.message_id,
                            error=describe(exc))
