"""Marked as AI-made: every JPEG the service delivers says so twice.

- in words, as XMP metadata (:mod:`handlers.marks.xmp`): IPTC ``DigitalSourceType``
  ``trainedAlgorithmicMedia`` and the service as ``CreatorTool``; tools and platforms read it,
  and anyone can strip it;
- in the pixels, as an invisible watermark (:mod:`handlers.marks.watermark`) that survives the
  delivery JPEG encode and a re-encode at quality 75, and survives a metadata strip.

:func:`save_marked_jpeg` is the only way delivery writes a JPEG; :func:`check_marks` is what
``headshots eval`` reports per image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from handlers.marks import watermark, xmp
from handlers.marks.watermark import MarkReading
from handlers.marks.xmp import XmpReading

#: The re-encode ``check_marks`` also reads the watermark after (a common "save for web" quality).
REENCODE_QUALITY = 75


def save_marked_jpeg(image: Image.Image, target: Path | IO[bytes], **options: Any) -> None:
    """Save ``image`` as a JPEG carrying both marks; ``options`` are Pillow's JPEG options.

    The watermark goes in last, on the final pixels: any crop or resize after it would move it
    off its grid.
    """
    marked = Image.fromarray(watermark.embed(np.asarray(image.convert("RGB"))))
    marked.save(target, "JPEG", xmp=xmp.packet(), **options)


@dataclass(frozen=True)
class Marks:
    """Both marks of one image, and the watermark again after a quality-75 re-encode."""

    xmp: XmpReading
    watermark: MarkReading
    watermark_reencoded: MarkReading

    @property
    def complete(self) -> bool:
        return self.xmp.ai_generated and self.watermark.found and self.watermark_reencoded.found

    def to_dict(self) -> dict[str, Any]:
        return {"xmp": self.xmp.to_dict(), "watermark": self.watermark.to_dict(),
                f"watermark_after_q{REENCODE_QUALITY}": self.watermark_reencoded.to_dict(),
                "complete": self.complete}


def reencode(rgb: np.ndarray, quality: int) -> np.ndarray:
    """``rgb`` through one more JPEG encode and decode at ``quality`` (Pillow's defaults)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    with Image.open(io.BytesIO(buffer.getvalue())) as img:
        return np.asarray(img.convert("RGB"))


def check_marks(path: Path) -> Marks:
    """Read both marks of the JPEG at ``path``, and the watermark after a quality-75 re-encode."""
    with Image.open(path) as img:
        raw = img.info.get("xmp")
        rgb = np.asarray(img.convert("RGB"))
    return Marks(xmp=xmp.read(raw if isinstance(raw, bytes) else None), watermark=watermark.read(rgb),
                 watermark_reencoded=watermark.read(reencode(rgb, REENCODE_QUALITY)))


__all__ = ["MarkReading", "Marks", "REENCODE_QUALITY", "XmpReading", "check_marks", "reencode", "save_marked_jpeg"]
