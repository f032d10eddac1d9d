"""The words on every delivered image: XMP saying it is AI-made and which service made it.

Why XMP with IPTC's ``DigitalSourceType``: it is the field photo tools, news agencies and
platforms read for "how was this image made" (IPTC Photo Metadata Standard, Extension schema;
its vocabulary names ``trainedAlgorithmicMedia`` for "created by a model trained on sampled
content", which a DreamBooth-tuned SDXL image is). Pillow writes the packet into the JPEG's
APP1 segment (``save(..., xmp=...)``) and hands it back raw in ``Image.info["xmp"]``; it is
read here with the standard library (Pillow's ``getxmp`` needs defusedxml, not in the lock).
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import metadata

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
XMP = "http://ns.adobe.com/xap/1.0/"
DC = "http://purl.org/dc/elements/1.1/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DESCRIPTION = "AI-generated headshot, made from the person's own photos; it also carries an invisible watermark."


@functools.cache
def creator_tool() -> str:
    """The service's name and version, as XMP's CreatorTool names the software that made a file."""
    try:
        version = metadata.version("headshots")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"headshots {version} (AI headshot service: SDXL with DreamBooth)"


@functools.cache
def packet(tool: str | None = None) -> bytes:
    """The XMP packet written into every delivered JPEG (no timestamps: same image, same bytes)."""
    tool = tool or creator_tool()
    doc = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f' <rdf:RDF xmlns:rdf="{RDF}">\n'
        f'  <rdf:Description rdf:about="" xmlns:Iptc4xmpExt="{IPTC_EXT}" xmlns:xmp="{XMP}" xmlns:dc="{DC}"\n'
        f'    Iptc4xmpExt:DigitalSourceType="{TRAINED_ALGORITHMIC_MEDIA}"\n'
        f'    xmp:CreatorTool="{_attr(tool)}">\n'
        f'   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{_attr(DESCRIPTION)}</rdf:li></rdf:Alt>'
        '</dc:description>\n'
        '  </rdf:Description>\n'
        ' </rdf:RDF>\n'
        '</x:xmpmeta>\n'
        '<?xpacket end="r"?>'
    )
    return doc.encode("utf-8")


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


@dataclass(frozen=True)
class XmpReading:
    """What an image's XMP says about its origin (None: the field is absent)."""

    digital_source_type: str | None
    creator_tool: str | None

    @property
    def ai_generated(self) -> bool:
        return self.digital_source_type == TRAINED_ALGORITHMIC_MEDIA

    def to_dict(self) -> dict[str, object]:
        return {"ai_generated": self.ai_generated, "digital_source_type": self.digital_source_type,
                "creator_tool": self.creator_tool}


def read(raw: bytes | None) -> XmpReading:
    """Parse an XMP packet (``Image.info["xmp"]``); a missing or unreadable one says nothing.

    A packet with a DOCTYPE is refused unparsed: ours never has one, and entity tricks live there.
    """
    if not raw or b"<!DOCTYPE" in raw.upper():
        return XmpReading(None, None)
    try:
        root = ET.fromstring(raw)
    except ET.ParseError:
        return XmpReading(None, None)
    source = tool = None
    for node in root.iter(f"{{{RDF}}}Description"):
        source = source or _value(node, IPTC_EXT, "DigitalSourceType")
        tool = tool or _value(node, XMP, "CreatorTool")
    return XmpReading(source, tool)


def _value(node: ET.Element, namespace: str, name: str) -> str | None:
    """A simple property written either as an attribute or as a child element (both are XMP)."""
    attr = node.get(f"{{{namespace}}}{name}")
    if attr is not None:
        return attr
    child = node.find(f"{{{namespace}}}{name}")
    if child is None:
        return None
    resource = child.get(f"{{{RDF}}}resource")
    return resource if resource is not None else (child.text or "").strip() or None
