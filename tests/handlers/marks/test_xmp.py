"""The XMP label: IPTC DigitalSourceType trainedAlgorithmicMedia and the service's name, written
by Pillow into the JPEG and read back with the standard library."""

from __future__ import annotations

import io

from PIL import Image

from handlers.marks import check_marks, save_marked_jpeg
from handlers.marks.xmp import TRAINED_ALGORITHMIC_MEDIA, creator_tool, packet, read


def test_a_marked_jpeg_carries_the_iptc_digital_source_type_and_the_service_as_creator_tool(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "a.jpg"
    save_marked_jpeg(Image.new("RGB", (64, 64), (90, 120, 150)), path, quality=95)
    with Image.open(path) as img:
        raw = img.info["xmp"]
    assert TRAINED_ALGORITHMIC_MEDIA.encode() in raw
    reading = read(raw)
    assert reading.ai_generated and reading.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
    assert reading.creator_tool == creator_tool() and reading.creator_tool.startswith("headshots ")
    assert check_marks(path).xmp == reading


def test_the_packet_is_the_same_bytes_every_time() -> None:
    assert packet() == packet()  # no timestamp: the same images give a byte-identical zip


def test_the_property_is_read_in_element_form_too_and_other_sources_are_not_ai_made() -> None:
    element = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
               b'<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
               b'<Iptc4xmpExt:DigitalSourceType>http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture'
               b'</Iptc4xmpExt:DigitalSourceType></rdf:Description></rdf:RDF></x:xmpmeta>')
    reading = read(element)
    assert reading.digital_source_type.endswith("/digitalCapture") and not reading.ai_generated


def test_missing_broken_or_doctype_packets_say_nothing() -> None:
    assert not read(None).ai_generated
    assert read(b"<x:xmpmeta").digital_source_type is None
    bomb = b'<!DOCTYPE x [<!ENTITY a "' + TRAINED_ALGORITHMIC_MEDIA.encode() + b'">]>' + packet()
    assert read(bomb).digital_source_type is None


def test_a_plain_jpeg_has_no_xmp_mark(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "plain.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue())
    marks = check_marks(path)
    assert not marks.xmp.ai_generated and not marks.watermark.found and not marks.complete
