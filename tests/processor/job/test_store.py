"""status.json ownership and updates, on the moto server."""

from __future__ import annotations

import asyncio

import pytest

from processor.aws.storage import NotFound, ObjectStore
from processor.job.state import InvalidTransition, JobState, JobStatus
from processor.job.store import ClaimOutcome, JobStore, LostOwnership, decide_claim
from processor.settings import Settings

STALE = 60.0


def jobs(store: ObjectStore, settings: Settings) -> JobStore:
    return JobStore(store, settings.output_bucket, owner_stale_after_s=STALE)


# --- the pure decision -----------------------------------------------------------------
def test_decide_claim_covers_new_finished_busy_stale_and_own_jobs() -> None:
    """The lease's age is read on S3's clock (whole seconds, so one more is waited for)."""
    running = JobStatus.new("j", 0).with_owner("w1", 100)
    assert decide_claim(None, "w2", None, STALE) is ClaimOutcome.OWNED
    assert decide_claim(running, "w2", 30, STALE) is ClaimOutcome.BUSY
    assert decide_claim(running, "w2", STALE + 1, STALE) is ClaimOutcome.BUSY
    assert decide_claim(running, "w2", STALE + 1.5, STALE) is ClaimOutcome.TAKEN_OVER
    assert decide_claim(running, "w2", None, STALE) is ClaimOutcome.BUSY  # an unknown age is never stale
    assert decide_claim(running, "w1", 500, STALE) is ClaimOutcome.OWNED
    assert decide_claim(running.with_owner(None, 120), "w2", 0, STALE) is ClaimOutcome.OWNED
    done = running.transition(JobState.VALIDATING, 1).transition(JobState.REJECTED, 2)
    assert decide_claim(done, "w2", 1000, STALE) is ClaimOutcome.FINISHED


def test_staleness_never_reads_the_owners_wall_clock() -> None:
    """An owner whose clock runs 30 s behind writes an old-looking heartbeat time: irrelevant."""
    skewed = JobStatus.new("j", 0).with_owner("w1", now=-30.0)
    assert decide_claim(skewed, "w2", age_s=2.0, stale_after_s=6.0) is ClaimOutcome.BUSY


# --- against S3 --------------------------------------------------------------------------
async def test_first_claim_creates_status_owned_with_one_attempt(aws_settings: Settings, job_id: str) -> None:
    async with ObjectStore(aws_settings) as store:
        js = jobs(store, aws_settings)
        claim = await js.claim(job_id, "w1", now=100)
        assert claim.outcome is ClaimOutcome.OWNED and claim.runnable
        status, etag = await js.get(job_id)  # type: ignore[misc]
    assert status.owner == "w1" and status.attempts == 1 and status.state is JobState.RECEIVED
    assert etag == claim.etag


async def test_two_concurrent_claimers_exactly_one_wins(aws_settings: Settings, job_id: str) -> None:
    async with ObjectStore(aws_settings) as store:
        js = jobs(store, aws_settings)
        claims = await asyncio.gather(*(js.claim(job_id, f"w{i}", now=100) for i in range(6)))
        status, _ = await js.get(job_id)  # type: ignore[misc]
    winners = [c for c in claims if c.runnable]
    assert len(winners) == 1
    assert all(c.outcome is ClaimOutcome.BUSY for c in claims if not c.runnable)
    assert status.owner == winners[0].status.owner and status.attempts == 1


async def test_busy_job_is_left_and_stale_owner_is_taken_over(aws_settings: Settings, job_id: str) -> None:
    """Stale = status.json unchanged for the staleness on S3's clock; the wall times the workers
    pass (here absurd ones) are only recorded."""
    async with ObjectStore(aws_settings) as store:
        js = JobStore(store, aws_settings.output_bucket, owner_stale_after_s=1.0)
        await js.claim(job_id, "w1", now=100)
        await js.heartbeat(job_id, "w1", now=10_000)
        busy = await js.claim(job_id, "w2", now=-10_000)
        assert busy.outcome is ClaimOutcome.BUSY and busy.age_s is not None and busy.age_s <= 1
        await asyncio.sleep(3.1)
        taken = await js.claim(job_id, "w2", now=0)
        assert taken.outcome is ClaimOutcome.TAKEN_OVER
        assert taken.status.owner == "w2" and taken.status.attempts == 2 and taken.status.crashes == 1
        with pytest.raises(LostOwnership):
            await js.heartbeat(job_id, "w1", now=212)


async def test_finished_job_is_reported_without_taking_ownership(aws_settings: Settings, job_id: str) -> None:
    async with ObjectStore(aws_settings) as store:
        js = jobs(store, aws_settings)
        await js.claim(job_id, "w1", now=1)
        await js.update(job_id, lambda s: s.transition(JobState.VALIDATING, 2).transition(JobState.REJECTED, 3))
        claim = await js.claim(job_id, "w2", now=4)
        assert claim.outcome is ClaimOutcome.FINISHED and not claim.runnable
        assert claim.status.owner == "w1" and claim.status.attempts == 1


async def test_released_job_is_claimed_at_once_by_the_next_worker(aws_settings: Settings, job_id: str) -> None:
    async with ObjectStore(aws_settings) as store:
        js = jobs(store, aws_settings)
        await js.claim(job_id, "w1", now=1)
        released = await js.release(job_id, "w1", now=2)
        assert released is not None and released.owner is None
        assert (await js.claim(job_id, "w2", now=3)).outcome is ClaimOutcome.OWNED
        assert await js.release(job_id, "w1", now=4) is None  # not ours any more


async def test_concurrent_updates_are_all_kept(aws_settings: Settings, job_id: str) -> None:
    async with ObjectStore(aws_settings) as store:
        js = jobs(store, aws_settings)
        await js.claim(job_id, "w1", now=0)

        async def stage(name: str) -> None:
            await js.update(job_id, lambda s: s.start_stage(name, 1).finish_stage(name, 2))
        await asyncio.gather(*(stage(f"s{i}") for i in range(5)))
        status, _ = await js.get(job_id)  # type: ignore[misc]
    assert sorted(status.stages) == [f"s{i}" for i in range(5)]


async def test_invalid_transition_in_update_writes_nothing(aws_settings: Settings, job_id: str) -> None:
    async with ObjectStore(aws_settings) as store:
        js = jobs(store, aws_settings)
        etag = (await js.claim(job_id, "w", 0)).etag
        with pytest.raises(InvalidTransition):
            await js.update(job_id, lambda s: s.transition(JobState.DELIVERED, 1))
        assert (await js.get(job_id))[1] == etag  # type: ignore[index]
        with pytest.raises(NotFound):
            await js.update("no-such-job", lambda s: s)


def test_job_keys_refuse_bad_job_ids() -> None:
    from processor.manifest import InvalidJobId

    with pytest.raises(InvalidJobId):
        JobStore.prefix("../x")


async def test_a_status_write_that_landed_but_lost_its_answer_is_not_applied_twice(
        aws_settings: Settings, local_stack, job_id: str) -> None:  # noqa: ANN001
    """S3 reset the connection after it stored the write: the retry gets 412 and must recognise
    its own landing (its revision token), not apply the change again (a stage run counted twice)."""
    from processor.devkit.fault_proxy import Fault, FaultProxy

    async with ObjectStore(aws_settings) as store:
        await jobs(store, aws_settings).claim(job_id, "w1", now=0)
    reset = Fault("s3", "reset_after", operation="PutObject", first=1, match=lambda r: "status.json" in r.path)
    with FaultProxy(local_stack.endpoint_url, faults=[reset]) as proxy:
        async with ObjectStore(aws_settings.model_copy(update={"aws_endpoint_url": proxy.url})) as store:
            status, _ = await jobs(store, aws_settings).update(job_id, lambda s: s.start_stage("train", 1))
        assert reset.fired == 1
    assert status.stages["train"].runs == 1
    async with ObjectStore(aws_settings) as store:
        stored, _ = await jobs(store, aws_settings).get(job_id)  # type: ignore[misc]
    assert stored.stages["train"].runs == 1


async def test_a_read_reports_how_long_the_status_has_been_unchanged_on_s3s_clock(
        aws_settings: Settings, job_id: str) -> None:
    async with ObjectStore(aws_settings) as store:
        js = jobs(store, aws_settings)
        await js.claim(job_id, "w1", now=0)
        fresh = await js.read(job_id)
        await asyncio.sleep(2.2)
        older = await js.read(job_id)
    assert fresh is not None and older is not None
    assert fresh.age_s is not None and fresh.age_s <= 1
    assert older.age_s is not None and 1 <= older.age_s <= 4
