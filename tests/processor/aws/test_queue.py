"""The SQS edge on the moto server: receive counts, delete, release, heartbeat, redrive."""

from __future__ import annotations

import asyncio
import time

import pytest

from processor.aws.queue import Heartbeat, JobQueue, MessageLost
from processor.settings import Settings


async def test_receive_reports_body_and_receive_count(aws_settings: Settings) -> None:
    async with JobQueue(aws_settings) as q:
        await q.send('{"hello": 1}')
        [first] = await q.receive(wait_time_s=1, visibility_timeout_s=1)
        assert first.body == '{"hello": 1}' and first.receive_count == 1
        assert first.sent_at_ms is not None
        await asyncio.sleep(1.2)
        [again] = await q.receive(wait_time_s=1)
        assert again.message_id == first.message_id and again.receive_count == 2


async def test_deleted_message_never_comes_back(aws_settings: Settings) -> None:
    async with JobQueue(aws_settings) as q:
        await q.send("x")
        [msg] = await q.receive(wait_time_s=1, visibility_timeout_s=1)
        await q.delete(msg)
        await asyncio.sleep(1.2)
        assert await q.receive(wait_time_s=0) == []
        assert await q.approximate_counts() == (0, 0)


async def test_release_makes_the_message_visible_at_once(aws_settings: Settings) -> None:
    async with JobQueue(aws_settings) as q:
        await q.send("x")
        [msg] = await q.receive(wait_time_s=1)  # invisible for the settings' 120 s
        assert await q.receive(wait_time_s=0) == []
        await q.release(msg)
        [back] = await q.receive(wait_time_s=1)
        assert back.message_id == msg.message_id


async def test_release_with_delay_keeps_it_hidden_until_then(aws_settings: Settings) -> None:
    async with JobQueue(aws_settings) as q:
        await q.send("x")
        [msg] = await q.receive(wait_time_s=1)
        await q.release(msg, delay_s=2)
        assert await q.receive(wait_time_s=0) == []
        await asyncio.sleep(2.2)
        assert len(await q.receive(wait_time_s=1)) == 1


async def test_heartbeat_keeps_a_message_invisible_while_a_thread_is_busy(aws_settings: Settings) -> None:
    """Visibility 2 s, job 5 s of blocking work in a thread: nobody else may receive it."""
    async with JobQueue(aws_settings) as q, JobQueue(aws_settings) as other:
        await q.send("long job")
        [msg] = await q.receive(wait_time_s=1, visibility_timeout_s=2)
        seen_by_other = []

        async def poll_other() -> None:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                seen_by_other.extend(await other.receive(wait_time_s=1))

        async with q.heartbeat(msg, interval_s=0.5, visibility_timeout_s=2) as hb:
            await asyncio.gather(asyncio.to_thread(time.sleep, 5), poll_other())
        assert seen_by_other == []
        assert hb.beats >= 6 and not hb.lost
        # after the heartbeat stops, the message reappears once the last extension runs out
        await asyncio.sleep(2.2)
        assert [m.message_id for m in await other.receive(wait_time_s=1)] == [msg.message_id]


async def test_without_a_heartbeat_the_message_is_redelivered(aws_settings: Settings) -> None:
    """The control for the test above: the same 2 s visibility lapses without beats."""
    async with JobQueue(aws_settings) as q:
        await q.send("long job")
        [msg] = await q.receive(wait_time_s=1, visibility_timeout_s=2)
        await asyncio.to_thread(time.sleep, 2.5)
        [again] = await q.receive(wait_time_s=1)
        assert again.message_id == msg.message_id and again.receive_count == 2


async def test_heartbeat_notices_a_deleted_message(aws_settings: Settings) -> None:
    async with JobQueue(aws_settings) as q:
        await q.send("x")
        [msg] = await q.receive(wait_time_s=1)
        await q.delete(msg)
        with pytest.raises(MessageLost):
            await q.change_visibility(msg, 30)
        async with q.heartbeat(msg, interval_s=0.1, visibility_timeout_s=30) as hb:
            await asyncio.sleep(0.5)
        assert hb.lost


def test_heartbeat_interval_must_be_shorter_than_visibility(aws_settings: Settings) -> None:
    q = JobQueue(aws_settings)
    from processor.aws.queue import QueueMessage

    msg = QueueMessage("id", "handle", "", 1)
    with pytest.raises(ValueError):
        Heartbeat(q, msg, interval_s=10, visibility_timeout_s=10)


async def test_message_goes_to_the_dlq_after_max_receive_count(make_aws_settings, local_stack) -> None:  # type: ignore[no-untyped-def]
    settings = make_aws_settings(max_receive_count=2)
    async with JobQueue(settings) as q:
        await q.send("poison")
        for attempt in (1, 2):
            [msg] = await q.receive(wait_time_s=1, visibility_timeout_s=1)
            assert msg.receive_count == attempt
            await q.release(msg)
        assert await q.receive(wait_time_s=1) == []
    [dead] = local_stack.dlq_messages(settings)
    assert dead.body == "poison"
    assert len(local_stack.dlq_messages(settings)) == 1  # reading leaves it there
