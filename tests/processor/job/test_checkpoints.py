"""The checkpoint protocol under jobs/<job>/work/, on the moto server: epoch-scoped keys, the
marker last, complete-or-invisible reads, fenced writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.aws.storage import ObjectStore
from processor.errors import LostOwnership
from processor.job.checkpoints import MARKER, JobCheckpoints, files_under, safe_name
from processor.job.fence import Fence
from processor.settings import Settings


def _tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "trainable.safetensors").write_bytes(b"weights" * 100)
    (root / "sub" / "state.json").write_text('{"step": 4}')
    (root / "skip.partial").write_bytes(b"half")
    return root


async def test_a_checkpoint_is_its_files_under_its_epoch_then_a_marker_listing_them(
        aws_settings: Settings, job_id: str, tmp_path: Path) -> None:
    src = _tree(tmp_path / "step-4")
    async with ObjectStore(aws_settings) as store:
        ck = JobCheckpoints(store, aws_settings.output_bucket, job_id, Fence(job_id, epoch=3))
        assert await ck.done("train") is None and await ck.find("train", "step-") == {}
        saved = await ck.save("train", "step-000004", files_under(src), {"step": 4})
        await ck.mark_done("validate", {"summary": {"usable": 12}})
        keys = await store.list_keys(aws_settings.output_bucket, f"jobs/{job_id}/work/")
        [found] = (await ck.find("train", "step-")).values()
        assert found == saved and found.epoch == 3 and found.meta == {"step": 4}
        assert (await ck.done("validate")).meta == {"summary": {"usable": 12}}  # type: ignore[union-attr]
        assert await ck.read(found, "sub/state.json") == b'{"step": 4}'
        paths = await ck.download(found, tmp_path / "restore")
    prefix = f"jobs/{job_id}/work/train/step-000004/e3/"
    assert sorted(keys) == sorted([prefix + "sub/state.json", prefix + "trainable.safetensors", prefix + MARKER,
                                   f"jobs/{job_id}/work/validate/done/e3/{MARKER}"])
    assert sorted(p.relative_to(tmp_path / "restore").as_posix() for p in paths) == \
        ["sub/state.json", "trainable.safetensors"]


async def test_a_folder_without_its_marker_is_invisible_and_never_hides_a_complete_one(
        aws_settings: Settings, job_id: str, tmp_path: Path) -> None:
    """A kill -9 mid-upload leaves files and no marker: resume must not see them (the old
    layout picked the highest step folder and crashed on its missing files, every attempt)."""
    src = _tree(tmp_path / "ckpt")
    async with ObjectStore(aws_settings) as store:
        older = JobCheckpoints(store, aws_settings.output_bucket, job_id, Fence(job_id, epoch=1))
        await older.save("train", "step-000002", files_under(src), {"step": 2})
        newer = JobCheckpoints(store, aws_settings.output_bucket, job_id, Fence(job_id, epoch=2))
        half = newer.folder("train", "step-000004")
        await store.put_bytes(aws_settings.output_bucket, half + "trainable.safetensors", b"half of it")
        half_same_name = newer.folder("train", "step-000002")
        await store.put_bytes(aws_settings.output_bucket, half_same_name + "trainable.safetensors", b"x")
        found = await newer.find("train", "step-")
    assert list(found) == ["step-000002"] and found["step-000002"].epoch == 1


async def test_a_reader_takes_the_highest_epoch_not_above_its_own(aws_settings: Settings, job_id: str) -> None:
    async with ObjectStore(aws_settings) as store:
        def at(epoch: int) -> JobCheckpoints:
            return JobCheckpoints(store, aws_settings.output_bucket, job_id, Fence(job_id, epoch=epoch))
        for epoch in (1, 2, 4):
            await at(epoch).mark_done("deliver", {"by": epoch})
        assert (await at(3).done("deliver")).meta == {"by": 2}  # type: ignore[union-attr]
        assert (await at(5).done("deliver")).meta == {"by": 4}  # type: ignore[union-attr]


async def test_a_writer_whose_fence_closes_between_its_check_and_its_write_lands_nothing(
        aws_settings: Settings, job_id: str, tmp_path: Path) -> None:
    """The storage edge checks the fence again as each request leaves: a pause (here: the lease
    lost) after the caller's own check cannot let the write through."""
    src = _tree(tmp_path / "ckpt")
    fence = Fence(job_id, epoch=1)

    def lose_the_lease(point: str) -> None:
        if point == "checkpoint.train.fenced":
            fence.close()
    async with ObjectStore(aws_settings) as store:
        ck = JobCheckpoints(store, aws_settings.output_bucket, job_id, fence, hit=lose_the_lease)
        with pytest.raises(LostOwnership):
            await ck.save("train", "step-000004", files_under(src), {"step": 4})
        assert await store.list_keys(aws_settings.output_bucket, f"jobs/{job_id}/") == []


async def test_every_fenced_write_carries_its_writers_epoch(aws_settings: Settings, job_id: str) -> None:
    async with ObjectStore(aws_settings) as store:
        ck = JobCheckpoints(store, aws_settings.output_bucket, job_id, Fence(job_id, epoch=7))
        saved = await ck.save("manifest", "upload", {"manifest.json": b"{}"})
        for key in (saved.folder + "manifest.json", saved.folder + MARKER):
            head = await store.client.head_object(Bucket=aws_settings.output_bucket, Key=key)
            assert head["Metadata"] == {"headshots-epoch": "7"}


@pytest.mark.parametrize("bad", ["../x", "/abs", "a//b", "a/./b", "", MARKER])
def test_checkpoint_file_names_cannot_escape_their_folder(bad: str) -> None:
    with pytest.raises(ValueError):
        safe_name(bad)


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "x" * 300])
def test_checkpoint_and_stage_names_are_one_plain_segment(bad: str, job_id: str) -> None:
    ck = JobCheckpoints(None, "b", job_id, Fence(job_id))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ck.folder("train", bad)
    with pytest.raises(ValueError):
        ck.stage_prefix(bad)
