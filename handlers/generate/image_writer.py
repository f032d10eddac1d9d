"""Write kept images and hand them on, off the generation thread.

Why: every kept image is PNG-encoded (~75 ms at 1024 px on one core) and the runtime's
``on_image`` uploads it as a checkpoint and prepares its delivery JPEG. Done inline, the GPU
waits for all of that once per image; on one writer thread it runs while the next batch
samples. Order is kept (one thread, FIFO), memory is bounded (``max_pending`` images queued;
``submit`` blocks beyond that, so a stalled upload slows generation instead of filling RAM),
and nothing fails silently: a writer error is raised by the next ``submit`` or by ``close``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from handlers.generate.records import ImageRecord

OnImage = Callable[[ImageRecord], Any]
#: PNG text key of the face box (x,y,w,h) selection found: the file carries it to delivery,
#: which cuts each format around it, however the file got there (checkpoint, resumed job).
FACE_BOX_KEY = "headshots:face_box"


def write_png(image: np.ndarray, path: Path, face_box: tuple[int, int, int, int] | None = None) -> None:
    """Lossless and fast: the checkpoint is re-read for resumption and delivery."""
    info = None
    if face_box is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text(FACE_BOX_KEY, ",".join(str(int(v)) for v in face_box))
    Image.fromarray(image).save(path, compress_level=1, pnginfo=info)


def read_face_box(image: Image.Image) -> tuple[int, int, int, int] | None:
    """The face box :func:`write_png` stored in a generated image, or None."""
    text = image.info.get(FACE_BOX_KEY)
    if not isinstance(text, str):
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        return None
    return (x, y, w, h) if w > 0 and h > 0 else None


class ImageWriter:
    """Writes ``image`` to ``out_dir / record.file``, then calls ``on_image(record)``.

    ``background=False`` does both inline (the caller's thread), for callers that need each
    record handed on before ``submit`` returns.
    """

    def __init__(self, out_dir: Path, on_image: OnImage | None, background: bool = True,
                 max_pending: int = 16) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.out_dir = Path(out_dir)
        self.on_image = on_image
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="image-writer") if background else None
        self._slots = threading.BoundedSemaphore(max_pending)
        self._futures: list[Future[None]] = []
        self._closed = False

    def _write(self, record: ImageRecord, image: np.ndarray) -> None:
        write_png(image, self.out_dir / record.file, record.face_box)
        if self.on_image is not None:
            self.on_image(record)

    def submit(self, record: ImageRecord, image: np.ndarray) -> None:
        if self._closed:
            raise RuntimeError("ImageWriter is closed")
        self._raise_first_error(done_only=True)
        if self._pool is None:
            self._write(record, image)
            return
        self._slots.acquire()
        try:
            future = self._pool.submit(self._write, record, image)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def close(self, raise_errors: bool = True) -> None:
        """Wait for every queued image; re-raise the first writer error unless told not to."""
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if raise_errors:
            self._raise_first_error(done_only=False)

    def _raise_first_error(self, done_only: bool) -> None:
        for future in self._futures:
            if done_only and not future.done():
                continue
            error = future.exception()
            if error is not None:
                raise error

    def __enter__(self) -> ImageWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # an error already on its way out wins; the writes it left queued still land
        self.close(raise_errors=exc_type is None)
