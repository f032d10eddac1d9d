"""Stage checkpoints and done records under jobs/<job>/work/, on the moto server."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.aws.storage import ObjectStore
from processor.job.checkpoints import JobCheckpoints, safe_name
from processor.job.fence import Fence
from processor.settings import Settings


async def test_stage_checkpoints_and_done_markers(aws_settings: Settings, job_id: str, tmp_path: Path) -> None:
    src = tmp_path / "adapter.safetensors"
    src.write_bytes(b"weights" * 100)
    async with ObjectStore(aws_settings) as store:
        ck = JobCheckpoints(store, aws_settings.output_bucket, job_id, Fence(job_id))
        assert not await ck.is_done("train")
        assert await ck.done("train") is None
        await ck.upload_file("train", "step-100/adapter.safetensors", src)
        await ck.put_bytes("generate", "headshot-001.json", b'{"seed": 1}')
        await ck.mark_done("train", {"steps": 100})
        assert await ck.is_done("train")
        assert await ck.done("train") == {"steps": 100}
        assert await ck.names("train") == ["step-100/adapter.safetensors"]
        assert await ck.get_bytes("generate", "headshot-001.json") == b'{"seed": 1}'
        assert await ck.get_bytes("generate", "headshot-002.json") is None
        paths = await ck.download_tree("train", tmp_path / "restore")
        keys = await store.list_keys(aws_settings.output_bucket, f"jobs/{job_id}/work/")
    assert paths == [tmp_path / "restore" / "step-100" / "adapter.safetensors"]
    assert paths[0].read_bytes() == src.read_bytes()
    assert f"jobs/{job_id}/work/train/step-100/adapter.safetensors" in keys


@pytest.mark.parametrize("bad", ["../x", "/abs", "a//b", "a/./b", ""])
def test_checkpoint_names_cannot_escape_the_stage_folder(bad: str) -> None:
    with pytest.raises(ValueError):
        safe_name(bad)
