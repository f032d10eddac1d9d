"""Bounded concurrent transfers: results in order, and one failure stops the rest."""

from __future__ import annotations

import asyncio

import pytest

from processor.aws.transfers import bounded


async def test_results_come_back_in_input_order_with_a_bounded_number_in_flight() -> None:
    running, peak = 0, 0

    async def call(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01 * (5 - i % 5))
        running -= 1
        return i
    assert await bounded([lambda i=i: call(i) for i in range(12)], limit=3) == list(range(12))
    assert peak == 3


async def test_a_failed_upload_cancels_its_siblings_before_the_error_is_raised() -> None:
    """A sibling left running would go on writing after the attempt gave up (e.g. lost its lease)."""
    finished: list[int] = []
    cancelled: list[int] = []

    async def slow(i: int) -> None:
        try:
            await asyncio.sleep(5)
            finished.append(i)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise

    async def fails() -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("lease lost")
    started = asyncio.get_running_loop().time()
    with pytest.raises(RuntimeError, match="lease lost"):
        await bounded([lambda: slow(0), fails, lambda: slow(2), lambda: slow(3)], limit=2)
    assert asyncio.get_running_loop().time() - started < 1
    assert finished == [] and 0 in cancelled and 3 not in cancelled  # 3 never started
    await asyncio.sleep(0.1)
    assert finished == []
