"""An invisible mark that says "made by this service's AI", kept through JPEG re-encoding.

Why our own: the maintained library for this, ``invisible-watermark`` (the one diffusers' SDXL
pipeline uses), requires ``opencv-python``, which cannot sit beside the locked
``opencv-contrib-python-headless`` (both are the ``cv2`` module; ``pip check`` fails), and its
mark is embedded by the pipeline before our crops and resizes, which would move it off its
grid. This one is embedded last, on the delivered pixels, with numpy (the DCT as its basis
matrices) and OpenCV (saturating adds).

How (a DWT-DCT mark with quantisation-index modulation, QIM):

1. luma ``Y`` of the RGB image (BT.601, the weights JPEG uses);
2. one-level Haar DWT: the LL band, each 2x2 pixel block's sum / 2 (orthonormal);
3. LL cut into 4x4 blocks, i.e. the 8x8 pixel blocks of JPEG's own grid, and a 2-D DCT of each;
4. the three lowest AC coefficients of each block, (0,1), (1,0) and (1,1), each carry one bit:
   the coefficient moves to the nearest point of ``STEP * Z`` (bit 0) or ``STEP * Z + STEP/2``
   (bit 1). JPEG at quality 75 moves these coefficients by at most about 3 (its quantiser step
   there is ~6), well inside the decision margin of ``STEP/4``;
5. every payload bit is spread over many carriers (a keyed permutation assigns carriers to
   bits, a keyed keystream flips half of them so flat areas show no pattern) and read back by
   a soft majority vote, so a region lost to clipping (pure white, pure black) costs nothing;
6. the change of LL goes back to pixels by the inverse Haar (each pixel of a 2x2 block moves by
   half the LL change) and is added equally to R, G and B: that moves luma by exactly that
   amount and leaves the chroma, which JPEG subsamples, untouched.

What it is not: tamper-proof. It is a public, fixed mark for honest labelling, read back by
``headshots eval``; cropping or resizing the image moves it off its grid and loses it (the XMP
label in :mod:`handlers.marks.xmp` says the same thing in words). ``bench/watermark.py``
measures its bit-error rate after the delivery encode and a quality-75 re-encode.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

#: 48 bits (as SDXL's own mark): the first six bytes of SHA-256 of this service's label.
PAYLOAD_LABEL = b"headshots: AI-generated image (trainedAlgorithmicMedia), mark v1"
PAYLOAD_BITS = 48
#: A mark is found when at most this many of the 48 bits differ. An unmarked image reads as 48
#: coin flips: P(<= 6 errors) = sum C(48, k <= 6) / 2^48 ~ 5e-8.
MAX_BIT_ERRORS = 6
#: QIM step of an LL-band DCT coefficient: the mark's strength. 16 moves pixels by about one
#: grey level (rms ~1.0, PSNR ~48 dB; bench/watermark.py measures it).
STEP = 16.0
BLOCK = 4  # LL-band block side: 8x8 image pixels
COEFFICIENTS = ((0, 1), (1, 0), (1, 1))
_LUMA = np.array([[0.299, 0.587, 0.114]], dtype=np.float32)


def _bits_of(data: bytes, count: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8))[:count].astype(np.int8)


PAYLOAD: np.ndarray = _bits_of(hashlib.sha256(PAYLOAD_LABEL).digest(), PAYLOAD_BITS)


@dataclass(frozen=True)
class MarkReading:
    """What a read found: the bits that differ from the payload, and the verdict."""

    bit_errors: int
    bits: int
    carriers: int  # carriers the image had (0: too small to hold the mark)

    @property
    def found(self) -> bool:
        return self.carriers > 0 and self.bit_errors <= MAX_BIT_ERRORS

    @property
    def bit_error_rate(self) -> float:
        return self.bit_errors / self.bits

    def to_dict(self) -> dict[str, object]:
        return {"found": self.found, "bit_errors": self.bit_errors, "bits": self.bits,
                "bit_error_rate": round(self.bit_error_rate, 4), "carriers": self.carriers}


def _dct_matrix(n: int = BLOCK) -> np.ndarray:
    """The orthonormal DCT-II matrix (rows are the basis vectors)."""
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


def _basis() -> np.ndarray:
    """The carrier coefficients' 2-D DCT basis images, flattened: (len(COEFFICIENTS), 16).

    Orthonormal, so one matrix both measures a coefficient (a dot product with the block) and
    puts a change of it back into the block.
    """
    d = _dct_matrix()
    return np.stack([np.outer(d[i], d[j]).ravel() for i, j in COEFFICIENTS])


_BASIS = _basis().astype(np.float32)


def _carrier_plan(blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """(payload bit index, keystream bit) of each carrier, in (block, coefficient) order.

    A pure function of the image's block count, so the reader finds the writer's plan.
    """
    n = blocks * len(COEFFICIENTS)
    seed = int.from_bytes(hashlib.sha256(PAYLOAD_LABEL + b"/plan").digest()[:8], "big")
    rng = np.random.default_rng([seed, n])
    bit_index = rng.permutation(n) % PAYLOAD_BITS
    keystream = rng.integers(0, 2, n, dtype=np.int8)
    return bit_index, keystream


def _grid(shape: tuple[int, ...]) -> tuple[int, int]:
    """Block rows and columns: the image's top-left part that whole 8x8 blocks cover."""
    return shape[0] // (2 * BLOCK), shape[1] // (2 * BLOCK)


def _luma(rgb: np.ndarray, rows: int, cols: int) -> np.ndarray:
    side = 2 * BLOCK
    return cv2.transform(rgb[: rows * side, : cols * side].astype(np.float32), _LUMA)


def _ll_blocks(luma: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The LL band of ``luma`` as flattened 4x4 blocks, (rows * cols, 16), in raster order."""
    ll = (luma[0::2, 0::2] + luma[1::2, 0::2] + luma[0::2, 1::2] + luma[1::2, 1::2]) / 2.0
    return ll.reshape(rows, BLOCK, cols, BLOCK).transpose(0, 2, 1, 3).reshape(rows * cols, BLOCK * BLOCK)


def embed(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` (H x W x 3 uint8) with the mark; images under 8x8 pixels come back unchanged."""
    rows, cols = _grid(rgb.shape)
    if rows == 0 or cols == 0:
        return rgb.copy()
    coefficients = _ll_blocks(_luma(rgb, rows, cols), rows, cols) @ _BASIS.T  # (blocks, 3)
    bit_index, keystream = _carrier_plan(rows * cols)
    offset = ((PAYLOAD[bit_index] ^ keystream).reshape(coefficients.shape) * (STEP / 2)).astype(np.float32)
    change = np.round((coefficients - offset) / STEP) * STEP + offset - coefficients
    ll_change = (change @ _BASIS).reshape(rows, cols, BLOCK, BLOCK).transpose(0, 2, 1, 3)
    # inverse Haar of LL: each pixel of a 2x2 block moves by half its LL change. Pixels are whole
    # numbers, so rounding the move first gives the same image as rounding the sum; saturating
    # uint8 adds (OpenCV) then clip it to 0..255 as np.clip(rgb + move) would, without int16 copies.
    half = np.rint(ll_change.reshape(rows * BLOCK, cols * BLOCK) / 2.0)
    up = np.clip(half, 0, 255).astype(np.uint8)
    down = np.clip(-half, 0, 255).astype(np.uint8)
    size = (2 * BLOCK * cols, 2 * BLOCK * rows)
    out = rgb.copy()
    covered = out[: size[1], : size[0]]
    for move, apply in ((up, cv2.add), (down, cv2.subtract)):
        full = cv2.cvtColor(cv2.resize(move, size, interpolation=cv2.INTER_NEAREST), cv2.COLOR_GRAY2RGB)
        covered[...] = apply(covered, full)
    return out


def read(rgb: np.ndarray) -> MarkReading:
    """Read the mark from ``rgb`` (H x W x 3 uint8) by a soft majority vote per payload bit."""
    rows, cols = _grid(rgb.shape)
    if rows == 0 or cols == 0:
        return MarkReading(bit_errors=PAYLOAD_BITS, bits=PAYLOAD_BITS, carriers=0)
    coefficients = (_ll_blocks(_luma(rgb, rows, cols), rows, cols) @ _BASIS.T).ravel()
    bit_index, keystream = _carrier_plan(rows * cols)
    # +1 on the bit-0 lattice, -1 on the bit-1 lattice, 0 half-way: a vote with its confidence
    vote = np.cos(2 * np.pi * coefficients / STEP) * np.where(keystream == 1, -1.0, 1.0)
    tally = np.bincount(bit_index, weights=vote, minlength=PAYLOAD_BITS)
    bits = (tally < 0).astype(np.int8)
    return MarkReading(bit_errors=int(np.sum(bits != PAYLOAD)), bits=PAYLOAD_BITS, carriers=len(coefficients))
