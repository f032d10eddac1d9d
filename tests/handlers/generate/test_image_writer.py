"""The writer thread: kept images land in order, off the generation thread, bounded, loudly."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handlers.generate.config import GenerateConfig
from handlers.generate.image_source import ImageRequest
from handlers.generate.image_writer import ImageWriter
from handlers.generate.loop import generate_and_select
from handlers.generate.prompts import load_prompt_set
from handlers.generate.records import ImageRecord
from handlers.generate.select import SelectConfig


def _record(i: int) -> ImageRecord:
    return ImageRecord(i, f"prompt {i}", seed=i, attempt=0, file=f"p{i:03d}-a0.png", accepted=True,
                       distance=None)


def _image(i: int) -> np.ndarray:
    return np.full((16, 16, 3), i * 10, dtype=np.uint8)


def test_background_writes_land_in_order_with_each_file_written_before_it_is_handed_on(tmp_path: Path) -> None:
    seen: list[tuple[int, bool, str]] = []

    def on_image(record: ImageRecord) -> None:
        seen.append((record.prompt_index, (tmp_path / record.file).is_file(), threading.current_thread().name))

    with ImageWriter(tmp_path, on_image, background=True, max_pending=3) as writer:
        for i in range(10):
            writer.submit(_record(i), _image(i))
    assert [s[0] for s in seen] == list(range(10))
    assert all(written for _, written, _ in seen)
    assert all(name.startswith("image-writer") for _, _, name in seen)
    assert np.asarray(Image.open(tmp_path / "p007-a0.png")).tolist() == _image(7).tolist()  # lossless


def test_inline_writes_hand_each_record_on_before_submit_returns(tmp_path: Path) -> None:
    seen: list[int] = []
    writer = ImageWriter(tmp_path, lambda r: seen.append(r.prompt_index), background=False)
    writer.submit(_record(0), _image(0))
    assert seen == [0]
    writer.close()


def test_a_failed_write_is_raised_by_the_next_submit_or_by_close(tmp_path: Path) -> None:
    def on_image(record: ImageRecord) -> None:
        if record.prompt_index == 1:
            raise OSError("upload refused")

    writer = ImageWriter(tmp_path, on_image, background=True)
    writer.submit(_record(0), _image(0))
    writer.submit(_record(1), _image(1))
    with pytest.raises(OSError, match="upload refused"):
        writer.close()

    later = ImageWriter(tmp_path, on_image, background=True)
    later.submit(_record(1), _image(1))
    later._pool.shutdown(wait=True)  # let the failure happen before the next submit
    with pytest.raises(OSError, match="upload refused"):
        later.submit(_record(2), _image(2))


def test_submit_blocks_once_max_pending_images_are_queued(tmp_path: Path) -> None:
    release = threading.Event()
    writer = ImageWriter(tmp_path, lambda r: release.wait(10), background=True, max_pending=2)
    writer.submit(_record(0), _image(0))
    writer.submit(_record(1), _image(1))
    third = threading.Thread(target=writer.submit, args=(_record(2), _image(2)))
    third.start()
    third.join(0.3)
    assert third.is_alive(), "a third image was queued past max_pending"
    release.set()
    third.join(5)
    assert not third.is_alive()
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p000-a0.png", "p001-a0.png", "p002-a0.png"]


def test_an_error_in_the_loop_still_lets_queued_writes_land_and_is_the_one_raised(tmp_path: Path) -> None:
    seen: list[int] = []
    with pytest.raises(KeyError):
        with ImageWriter(tmp_path, lambda r: seen.append(r.prompt_index), background=True) as writer:
            writer.submit(_record(0), _image(0))
            writer.submit(_record(1), _image(1))
            raise KeyError("the GPU fell over")
    assert seen == [0, 1]


class _GatedSource:
    """Real photos as generated images; records when each batch is asked for."""

    def __init__(self, photo: np.ndarray) -> None:
        self.photo = photo
        self.second_batch_asked = threading.Event()
        self.calls = 0

    def generate_images(self, requests: Sequence[ImageRequest]) -> list[np.ndarray]:
        self.calls += 1
        if self.calls == 2:
            self.second_batch_asked.set()
        return [self.photo for _ in requests]


@pytest.mark.parametrize("background", [True, False])
def test_the_next_batch_generates_while_the_previous_one_is_uploaded_only_with_background_writes(
        tmp_path: Path, background: bool, selection_photos) -> None:
    source = _GatedSource(selection_photos.shots[0])
    overlapped: list[bool] = []

    def on_image(record: ImageRecord) -> None:  # an upload that finishes only if generation moves on
        overlapped.append(source.second_batch_asked.wait(timeout=10 if background else 0.2))

    cfg = GenerateConfig(num_images=4, batch_size=2, resolution=128, background_writes=background)
    result = generate_and_select(source, load_prompt_set(), "sks", None, tmp_path, cfg,
                                 SelectConfig(mode="report"), None, on_image=on_image)
    assert len(result.records) == 4 and all((tmp_path / r.file).is_file() for r in result.records)
    assert overlapped[0] is background
