"""The lease an attempt holds and its fence: validity counted from when the claim was sent,
the fence closed before the lease is released. On the moto server."""

from __future__ import annotations

import asyncio
import time

import pytest

from processor.aws.storage import ObjectStore
from processor.errors import LostOwnership
from processor.job.fence import Fence
from processor.job.lease import LeaseKeeper
from processor.job.store import JobStore
from processor.settings import Settings


def test_a_fence_counts_from_when_the_claim_was_sent_not_from_its_answer() -> None:
    """A claim answered after the lease's validity has used it up: no writes on a lease a rival
    may already see as stale."""
    clock = [100.0]
    sent = clock[0]
    clock[0] += 12.0  # the claim's answer took 12 s (S3 retries)
    fence = Fence("j", 1, valid_for_s=10.0, clock=lambda: clock[0], started_at=sent)
    assert fence.expired
    with pytest.raises(LostOwnership):
        fence.ensure()
    fence.renewed(clock[0])  # a renewal sent now, and answered: valid again
    assert not fence.lost


async def test_releasing_the_lease_closes_the_fence_first(aws_settings: Settings, job_id: str) -> None:
    """A stage thread still finishing a step must not land a write after the next owner took over."""
    async with ObjectStore(aws_settings) as store:
        jobs = JobStore(store, aws_settings.output_bucket, aws_settings.stale_after_s)
        claim = await jobs.claim(job_id, "w1", time.time(), "m1")
        lease = LeaseKeeper(jobs, aws_settings, job_id, "w1", claim.status.lease_epoch)
        assert not lease.fence.lost
        await lease.release()
        assert lease.fence.lost
        with pytest.raises(LostOwnership):
            lease.fence.ensure()
        status, _ = await jobs.get(job_id)  # type: ignore[misc]
    assert status.owner is None and status.crashes == 0


async def test_a_release_after_an_exception_counts_one_crash(aws_settings: Settings, job_id: str) -> None:
    async with ObjectStore(aws_settings) as store:
        jobs = JobStore(store, aws_settings.output_bucket, aws_settings.stale_after_s)
        claim = await jobs.claim(job_id, "w1", time.time(), "m1")
        await LeaseKeeper(jobs, aws_settings, job_id, "w1", claim.status.lease_epoch).release(crashed=True)
        status, _ = await jobs.get(job_id)  # type: ignore[misc]
    assert status.crashes == 1 and status.owner is None


async def test_a_renewal_racing_the_jobs_own_terminal_write_ends_quietly(aws_settings: Settings, job_id: str) -> None:
    """The attempt's terminal write drops the owner; a heartbeat already on its way then finds no
    owner. That is the lease ending, not ownership lost: no warning, the fence closes."""
    from structlog.testing import capture_logs

    from processor.errors import LeaseEnded
    from processor.job.state import JobState

    async with ObjectStore(aws_settings) as store:
        jobs = JobStore(store, aws_settings.output_bucket, aws_settings.stale_after_s)
        claim = await jobs.claim(job_id, "w1", time.time(), "m1")
        epoch = claim.status.lease_epoch
        await jobs.update(job_id, lambda s: s.end(JobState.FAILED, time.time(), error="x"))
        with pytest.raises(LeaseEnded):
            await jobs.heartbeat(job_id, "w1", time.time(), epoch=epoch)
        lease = LeaseKeeper(jobs, aws_settings.model_copy(update={"heartbeat_interval_s": 0.05}), job_id, "w1",
                            epoch)
        with capture_logs() as logs:
            async with lease:
                for _ in range(100):
                    if lease.fence.lost:
                        break
                    await asyncio.sleep(0.02)
        assert lease.fence.lost
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == []
        # a rival's newer lease is still ownership lost
        await jobs.update(job_id, lambda s: s.model_copy(update={"lease_epoch": epoch + 1, "owner": "w2"}))
        with pytest.raises(LostOwnership) as err:
            await jobs.heartbeat(job_id, "w1", time.time(), epoch=epoch)
        assert not isinstance(err.value, LeaseEnded)
