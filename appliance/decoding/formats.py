"""Magic-byte sniffing, and the small value types shared by the raster and PDF decoders.

The format of an untrusted file is decided by its first bytes only; the file name is never
consulted (a PNG called ``scan.jpg`` is a PNG). Anything that is not JPEG, PNG, TIFF or PDF is
refused with a message that says what the bytes look like, so counter staff know what to do.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from appliance.errors import DecodeError, UnsupportedFormat

__all__ = ["HEAD_BYTES", "DecodedPage", "RawPage", "clean_dpi", "page_file_name", "sniff_format"]

#: How many leading bytes :func:`sniff_format` looks at (a PDF header may follow some junk).
HEAD_BYTES: Final = 1024

_ACCEPTED: Final = "scan as JPEG, PNG, TIFF or PDF"

_JPEG: Final = b"\xff\xd8\xff"
_PNG: Final = b"\x89PNG\r\n\x1a\n"
_TIFF: Final = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_PDF: Final = b"%PDF-"

# (prefix, offset, what it is) for formats we recognise but do not accept.
_KNOWN_OTHERS: Final[tuple[tuple[bytes, int, str], ...]] = (
    (b"GIF87a", 0, "GIF images"),
    (b"GIF89a", 0, "GIF images"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", 0, "JPEG 2000 images"),
    (b"\xff\x4f\xff\x51", 0, "JPEG 2000 images"),
    (b"\xff\x0a", 0, "JPEG XL images"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", 0, "JPEG XL images"),
    (b"ftypavif", 4, "AVIF images"),
    (b"ftypheic", 4, "HEIC photos"),
    (b"ftypheix", 4, "HEIC photos"),
    (b"ftypmif1", 4, "HEIF photos"),
    (b"ftypmsf1", 4, "HEIF photos"),
    (b"PK\x03\x04", 0, "ZIP-based files (OFD, Word, Excel, archives)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0, "old Microsoft Office files"),
    (b"Rar!\x1a\x07", 0, "RAR archives"),
    (b"7z\xbc\xaf\x27\x1c", 0, "7-Zip archives"),
    (b"\x1f\x8b", 0, "gzip archives"),
    (b"%!PS", 0, "PostScript files"),
    (b"{\\rtf", 0, "RTF documents"),
    (b"\x7fELF", 0, "programs"),
)
# Two-byte signatures are weak: only consulted when the bytes do not look like text.
_WEAK_OTHERS: Final = ((b"BM", "BMP images"), (b"MZ", "Windows programs"))


def sniff_format(head: bytes) -> str:
    """``"jpeg"``, ``"png"``, ``"tiff"`` or ``"pdf"`` from the first bytes of a file.

    Raises :class:`UnsupportedFormat` for anything else, with a message saying what it looks like.
    """
    if not head:
        raise UnsupportedFormat(f"empty file (0 bytes); {_ACCEPTED}")
    if head.startswith(_JPEG):
        return "jpeg"
    if head.startswith(_PNG):
        return "png"
    if head.startswith(_TIFF):
        return "tiff"
    if _PDF in head[:HEAD_BYTES]:
        return "pdf"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        raise UnsupportedFormat(f"WebP images are not accepted; {_ACCEPTED}")
    for prefix, offset, what in _KNOWN_OTHERS:
        if head[offset : offset + len(prefix)] == prefix:
            raise UnsupportedFormat(f"{what} are not accepted; {_ACCEPTED}")
    if _looks_like_text(head):
        raise UnsupportedFormat(f"a text file, not a scan; {_ACCEPTED}")
    for prefix, what in _WEAK_OTHERS:
        if head.startswith(prefix):
            raise UnsupportedFormat(f"{what} are not accepted; {_ACCEPTED}")
    raise UnsupportedFormat(f"not a recognised image or PDF file; {_ACCEPTED}")


def _looks_like_text(head: bytes) -> bool:
    sample = head[:HEAD_BYTES]
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as e:
        # a multi-byte character cut at the end of the sample is still text
        return e.start >= len(sample) - 3 and e.reason == "unexpected end of data"
    return True


@dataclass(frozen=True)
class DecodedPage:
    """One page of a decoded file; the pixels wait in a ``.npy`` file in the scratch dir.

    The caller processes the page and deletes ``path``.
    """

    index: int  # 0-based page index within the file
    width: int
    height: int
    channels: int  # 1 (grey) or 3 (BGR)
    dpi: tuple[float, float] | None  # from JFIF / EXIF / Photoshop / TIFF tags; render dpi for PDF
    source: str  # e.g. "jpeg", "tiff/group4", "tiff/ojpeg", "pdf/render@300dpi", "pdf/embedded-jpeg"
    orientation_applied: int  # EXIF/TIFF orientation or PDF page rotation applied, degrees CCW
    path: Path  # .npy file holding the pixels

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.height, self.width) if self.channels == 1 else (self.height, self.width, 3)

    def load(self) -> npt.NDArray[np.uint8]:
        """H×W uint8 (grey) or H×W×3 uint8 BGR, C-contiguous."""
        arr = np.load(self.path, allow_pickle=False)
        if arr.dtype != np.uint8 or arr.shape != self.shape:
            raise DecodeError(f"page {self.index + 1}: decoded pixels do not match their description")
        return np.ascontiguousarray(arr)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "path"}

    @classmethod
    def from_json(cls, item: dict[str, Any], index: int, path: Path, max_pixels: int) -> DecodedPage:
        """Rebuild a page reported by the sandbox child (untrusted): every field is checked, and so
        is the ``.npy`` header of ``path``. Raises ValueError, KeyError or TypeError."""
        width, height, channels = item["width"], item["height"], item["channels"]
        dpi, source, orientation = item["dpi"], item["source"], item["orientation_applied"]
        if not (
            item["index"] == index
            and all(type(v) is int and v > 0 for v in (width, height))
            and width * height <= max_pixels
            and channels in (1, 3)
            and orientation in (0, 90, 180, 270)
            and isinstance(source, str)
            and _SOURCE_RE.match(source)
            and (dpi is None or (len(dpi) == 2 and all(math.isfinite(v) and v > 0 for v in map(float, dpi))))
        ):
            raise ValueError("invalid page description")
        page = cls(
            index=index,
            width=width,
            height=height,
            channels=channels,
            dpi=None if dpi is None else (float(dpi[0]), float(dpi[1])),
            source=source,
            orientation_applied=orientation,
            path=path,
        )
        _check_npy(path, page.shape)
        return page


def page_file_name(token: str, index: int) -> str:
    return f"{token}.p{index:04d}.npy"


_SOURCE_RE: Final = re.compile(r"^[a-z0-9][a-z0-9/@._-]{0,47}$")


def _check_npy(path: Path, shape: tuple[int, ...]) -> None:
    """The file is a regular, C-ordered uint8 ``.npy`` of exactly ``shape`` (no pickles)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("page file is not a regular file")
        version = np.lib.format.read_magic(f)
        read_header = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        got_shape, fortran, dtype = read_header(f)
        if got_shape != shape or fortran or dtype != np.uint8 or st.st_size != f.tell() + math.prod(shape):
            raise ValueError("page file does not match its description")


class RawPage(NamedTuple):
    """One decoded page, before it is written to the scratch dir.

    ``pixels`` is H×W (grey) or H×W×3 (BGR), uint8 and C-contiguous.
    """

    pixels: npt.NDArray[np.uint8]
    dpi: tuple[float, float] | None
    source: str
    orientation_applied: int


# A resolution outside this range is a placeholder (e.g. "1 dpi") and would mislead the size-based
# heuristics downstream; such a page is reported with dpi=None instead.
_MIN_DPI: Final = 20.0
_MAX_DPI: Final = 9600.0


def clean_dpi(value: object) -> tuple[float, float] | None:
    """A plausible (x, y) resolution in dots per inch, or ``None``."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        return None
    try:
        x, y = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) and _MIN_DPI <= v <= _MAX_DPI for v in (x, y)):
        return None
    return (round(x, 3), round(y, 3))
