"""Turn a selection into what the user receives: numbered JPEGs, a contact sheet, a zip and
results.json.

Why numbered files and a numbered sheet: the email links to the sheet first, and a person who
likes tile 17 must find ``headshot-017.jpg`` without guessing. results.json keeps the prompt,
seed and attempt of each image so any headshot can be regenerated exactly.

Formats (:mod:`handlers.crops`): every image is delivered in each format the job asked for,
cut from the same generated image around its face: the square as ``headshot-017.jpg`` (the
contract's name), the 4:5 portrait as ``headshot-017-portrait.jpg``. results.json lists every
file with its format and size, and the zip holds them all. Every JPEG written here carries
both AI-made marks (:mod:`handlers.marks`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from handlers.crops import FORMATS, SQUARE, canvas_formats, cut, normalize_formats
from handlers.generate.image_writer import read_face_box
from handlers.generate.records import ImageRecord, SelectionResult
from handlers.marks import save_marked_jpeg
from handlers.marks.watermark import PAYLOAD_BITS
from handlers.marks.xmp import TRAINED_ALGORITHMIC_MEDIA

JPEG_QUALITY = 95
SHEET_TILE = 256
SHEET_COLUMNS = 10
SHEET_GAP = 8
_ZIP_DATE = (2024, 1, 1, 0, 0, 0)  # fixed: the same images give a byte-identical zip
#: What results.json says about the marks every delivered JPEG carries (handlers/marks).
MARKS_SUMMARY = {"xmp_digital_source_type": TRAINED_ALGORITHMIC_MEDIA,
                 "invisible_watermark": f"DWT-DCT, {PAYLOAD_BITS} bits (handlers/marks/watermark.py)"}


@dataclass(frozen=True)
class Deliverables:
    """The files written for one job, ready to upload to ``results/<job>/``.

    ``headshots`` are the squares (one per image: what the email counts and previews);
    ``crops`` the other formats' files, in the same order.
    """

    out_dir: Path
    headshots: tuple[Path, ...]
    contact_sheet: Path | None
    archive: Path | None
    results_json: Path
    summary: dict[str, Any]
    crops: tuple[Path, ...] = ()

    def files(self) -> tuple[Path, ...]:
        """Every file to upload, headshots first."""
        extra = tuple(p for p in (self.contact_sheet, self.archive) if p is not None)
        return self.headshots + self.crops + extra + (self.results_json,)


def headshot_name(number: int, fmt: str = SQUARE) -> str:
    """``headshot-001.jpg`` for number 1 (three digits keep the files sorted);
    ``headshot-001-portrait.jpg`` for its portrait."""
    return f"headshot-{number:03d}{FORMATS[fmt].suffix}.jpg"


def sheet_layout(count: int, columns: int = SHEET_COLUMNS) -> tuple[int, int]:
    """(columns, rows) of a contact sheet for ``count`` tiles."""
    if count <= 0:
        return (0, 0)
    cols = min(columns, count)
    return cols, math.ceil(count / cols)


def tile_origin(index: int, columns: int, tile: int = SHEET_TILE, gap: int = SHEET_GAP) -> tuple[int, int]:
    """Top-left pixel of tile ``index`` (0-based) on the sheet."""
    row, col = divmod(index, columns)
    return gap + col * (tile + gap), gap + row * (tile + gap)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def render_contact_sheet(images: list[Image.Image], tile: int = SHEET_TILE,
                         columns: int = SHEET_COLUMNS) -> Image.Image:
    """A grid of ``images`` with tile k labelled ``k`` (1-based), matching the file numbers."""
    cols, rows = sheet_layout(len(images), columns)
    width = SHEET_GAP + cols * (tile + SHEET_GAP)
    height = SHEET_GAP + rows * (tile + SHEET_GAP)
    sheet = Image.new("RGB", (width, height), (245, 245, 245))
    draw = ImageDraw.Draw(sheet)
    font = _font(max(12, tile // 9))
    for i, img in enumerate(images):
        x, y = tile_origin(i, cols, tile)
        thumb = img.convert("RGB")
        thumb.thumbnail((tile, tile), Image.Resampling.LANCZOS)
        sheet.paste(thumb, (x + (tile - thumb.width) // 2, y + (tile - thumb.height) // 2))
        label = str(i + 1)
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        pad = max(3, tile // 64)
        box = (x + pad, y + pad, x + pad + (right - left) + 2 * pad, y + pad + (bottom - top) + 2 * pad)
        draw.rectangle(box, fill=(0, 0, 0))
        draw.text((box[0] + pad - left, box[1] + pad - top), label, fill=(255, 255, 255), font=font)
    return sheet


def delivered_formats(selection: SelectionResult) -> tuple[str, ...]:
    """The formats a selection's images were generated for (results of old runs: squares)."""
    return normalize_formats(selection.extra.get("formats"))


def results_document(selection: SelectionResult, sizes: list[dict[str, tuple[int, int]]]) -> dict[str, Any]:
    """The content of results.json: one entry per delivered file, then the run's summary.

    ``sizes[k]`` maps each format of image k+1 to its (width, height). Every file is listed
    (the gallery shows what is listed), its format named; the crops of one image share its
    number, prompt and seed.
    """
    delivered_prompts = {r.prompt_index for r in selection.records}
    abandoned = sorted({a.prompt_index for a in selection.attempts} - delivered_prompts)
    images = []
    for number, (formats, record) in enumerate(zip(sizes, selection.records, strict=True), start=1):
        for fmt, (width, height) in formats.items():
            images.append({
                "number": number,
                "file": headshot_name(number, fmt),
                "format": fmt,
                "width": width,
                "height": height,
                "prompt": record.prompt,
                "prompt_index": record.prompt_index,
                "seed": record.seed,
                "attempt": record.attempt,
                "identity_distance": record.distance,
                "accepted": record.accepted,
                "face_box": list(record.face_box) if record.face_box is not None else None,
                "history": [a.to_dict() for a in record.history],
            })
    return {
        "version": 1,
        "summary": {**selection.summary(), "abandoned_prompts": abandoned,
                    "formats": list(delivered_formats(selection)), "marks": MARKS_SUMMARY},
        "images": images,
    }


@dataclass(frozen=True)
class EncodedHeadshot:
    """One image made ready for delivery: a marked JPEG per format and its contact-sheet tile."""

    jpegs: dict[str, Path]
    tile: Path

    @property
    def jpeg(self) -> Path:
        """The square's JPEG."""
        return self.jpegs[SQUARE]

    def exists(self) -> bool:
        return self.tile.is_file() and all(p.is_file() for p in self.jpegs.values())


def encoded_paths(encoded_dir: Path, image_file: str, formats: tuple[str, ...] = (SQUARE,)) -> EncodedHeadshot:
    stem = Path(image_file).stem
    return EncodedHeadshot({fmt: Path(encoded_dir) / f"{stem}.{fmt}.jpg" for fmt in normalize_formats(formats)},
                           Path(encoded_dir) / f"{stem}.tile.png")


def encode_headshot(source: Path, encoded_dir: Path, formats: tuple[str, ...] | None = None) -> EncodedHeadshot:
    """Cut one generated image into its formats and encode each for delivery, both marks in.

    ``formats``: by default those its canvas was generated for (a portrait canvas gives the
    square and the portrait). Each cut follows the face box the generator stored in the file.
    Why a separate step: the runtime calls it on the writer thread while the GPU generates the
    next batch, so delivery only renames files. Every file is written whole (temp + rename): a
    file that exists is complete.
    """
    encoded_dir = Path(encoded_dir)
    encoded_dir.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as img:
        face = read_face_box(img)
        rgb = img.convert("RGB")
    wanted = normalize_formats(formats) if formats else canvas_formats(rgb.size)
    out = encoded_paths(encoded_dir, Path(source).name, wanted)
    cuts = {fmt: cut(rgb, fmt, face) for fmt in wanted}
    thumb = cuts[SQUARE].copy()
    thumb.thumbnail((SHEET_TILE, SHEET_TILE), Image.Resampling.LANCZOS)
    for fmt, image in cuts.items():
        _write_whole(out.jpegs[fmt], lambda fh, image=image: save_marked_jpeg(
            image, fh, quality=JPEG_QUALITY, optimize=True, progressive=True))
    _write_whole(out.tile, lambda fh: thumb.save(fh, format="PNG"))
    return out


def _write_whole(target: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    with os.fdopen(fd, "wb") as fh:
        write(fh)
    os.replace(tmp, target)


def _encode_missing(selection: SelectionResult, encoded_dir: Path, formats: tuple[str, ...],
                    workers: int) -> None:
    """Encode, in parallel, what was not encoded ahead (a resumed job, or a direct call)."""
    todo: list[ImageRecord] = [r for r in selection.records
                               if not encoded_paths(encoded_dir, r.file, formats).exists()]
    if not todo:
        return
    with ThreadPoolExecutor(max(1, min(workers, len(todo))), thread_name_prefix="encode") as pool:
        # PIL releases the GIL while it encodes and resizes: threads use every core
        list(pool.map(lambda r: encode_headshot(selection.path(r), encoded_dir, formats), todo))


def build_deliverables(selection: SelectionResult, out_dir: Path, encoded_dir: Path | None = None,
                       workers: int | None = None) -> Deliverables:
    """Write headshot-NNN.jpg, contact-sheet.jpg, headshots.zip and results.json to ``out_dir``.

    ``encoded_dir`` holds what :func:`encode_headshot` made ahead of time; whatever is missing
    there is encoded now on ``workers`` threads. The files are the same either way.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:  # a scratch folder only when nothing was encoded ahead
        encoded = (Path(encoded_dir) if encoded_dir is not None
                   else Path(stack.enter_context(tempfile.TemporaryDirectory(dir=out_dir.parent))))
        formats = delivered_formats(selection)
        _encode_missing(selection, encoded, formats, workers or min(8, os.cpu_count() or 1))
        headshots: list[Path] = []
        crops: list[Path] = []
        in_order: list[Path] = []  # each image's formats together: the zip's order
        sizes: list[dict[str, tuple[int, int]]] = []
        thumbs: list[Image.Image] = []
        for number, record in enumerate(selection.records, start=1):
            ready = encoded_paths(encoded, record.file, formats)
            sizes.append({})
            for fmt, jpeg in ready.jpegs.items():
                target = out_dir / headshot_name(number, fmt)
                shutil.copyfile(jpeg, target)
                with Image.open(target) as img:
                    sizes[-1][fmt] = img.size
                (headshots if fmt == SQUARE else crops).append(target)
                in_order.append(target)
            with Image.open(ready.tile) as tile:
                thumbs.append(tile.convert("RGB"))

    sheet_path: Path | None = None
    zip_path: Path | None = None
    if headshots:
        sheet_path = out_dir / "contact-sheet.jpg"
        save_marked_jpeg(render_contact_sheet(thumbs), sheet_path, quality=90, optimize=True)
        zip_path = out_dir / "headshots.zip"
        with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as zf:
            for path in [*in_order, sheet_path]:
                info = zipfile.ZipInfo(path.name, date_time=_ZIP_DATE)
                info.external_attr = 0o644 << 16
                zf.writestr(info, path.read_bytes())

    document = results_document(selection, sizes)
    results_path = out_dir / "results.json"
    results_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return Deliverables(out_dir=out_dir, headshots=tuple(headshots), contact_sheet=sheet_path,
                        archive=zip_path, results_json=results_path, summary=document["summary"],
                        crops=tuple(crops))


def email_preview(sheet_jpeg: bytes, count: int, tiles: int = 8, per_row: int = 4,
                  quality: int = 82) -> bytes:
    """The ready email's inline preview: the contact sheet's first ``tiles`` tiles, ``per_row``
    to a row, as a JPEG (about 1060 px wide: sharp at the email's ~560 px on a 2x screen).

    Why from the sheet and not the headshots: the sheet is one small download with the tiles
    already labelled by number, so the preview shows the numbers the gallery uses.
    """
    import io

    shown = max(1, min(tiles, count))
    cols = min(per_row, shown)
    rows = math.ceil(shown / cols)
    sheet_cols, _ = sheet_layout(count)
    with Image.open(io.BytesIO(sheet_jpeg)) as raw:
        sheet = raw.convert("RGB")
    out = Image.new("RGB", (SHEET_GAP + cols * (SHEET_TILE + SHEET_GAP), SHEET_GAP + rows * (SHEET_TILE + SHEET_GAP)),
                    (245, 245, 245))
    for index in range(shown):
        x, y = tile_origin(index, sheet_cols)
        tile = sheet.crop((x, y, x + SHEET_TILE, y + SHEET_TILE))
        out.paste(tile, tile_origin(index, cols))
    buffer = io.BytesIO()
    save_marked_jpeg(out, buffer, quality=quality, optimize=True, progressive=True)
    return buffer.getvalue()
