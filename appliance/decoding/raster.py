"""JPEG, PNG and TIFF pages via Pillow.

Rules for untrusted images:

* the pixel count is checked against ``limits.max_pixels`` from the *declared* size, before any
  pixel buffer is allocated (``Image.MAX_IMAGE_PIXELS`` is set too, and its
  ``DecompressionBombWarning`` is turned into an error);
* ``LOAD_TRUNCATED_IMAGES`` stays off, so a truncated file fails instead of yielding a partial page;
* warnings Pillow emits while parsing or decoding mean damage (a corrupt TIFF directory, a broken
  EXIF block) and fail the file, except a short list of warnings about metadata that does not
  affect the pixels or their orientation (:data:`_BENIGN_WARNINGS`);
* EXIF / TIFF orientation is applied exactly once: Pillow (via libtiff or its own TIFF loader)
  already applies the TIFF Orientation tag during ``load()`` and removes it, so the tag is read
  before and after loading and only a tag still present after loading is applied here.
"""

from __future__ import annotations

import io
import logging
import re
import struct
import warnings
import zlib
from collections.abc import Generator
from types import TracebackType
from typing import BinaryIO, Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile, TiffImagePlugin

from appliance.errors import CorruptFile, DecodeError, LimitExceeded, UnsupportedFormat
from appliance.settings import DecodeLimits

from .formats import RawPage, clean_dpi

__all__ = ["PILLOW_ERRORS", "decode_embedded_jpeg", "iter_raster_pages", "to_pixels"]

logger = logging.getLogger(__name__)

_PIL_FORMAT: Final = {"jpeg": "JPEG", "png": "PNG", "tiff": "TIFF"}
_LABEL: Final = {"jpeg": "JPEG", "png": "PNG", "tiff": "TIFF"}

#: What Pillow and its C decoders raise on malformed input (anything else is a bug of ours).
PILLOW_ERRORS: Final = (
    OSError,  # includes UnidentifiedImageError, "image file is truncated", "decoder error -2"
    ValueError,
    SyntaxError,
    struct.error,
    EOFError,
    TypeError,
    KeyError,
    IndexError,
    ZeroDivisionError,
    OverflowError,
    NotImplementedError,
    RecursionError,
    AssertionError,
    zlib.error,
)

#: Warnings about metadata that neither changes the pixels nor their orientation.
_BENIGN_WARNINGS: Final = (
    "Metadata Warning",  # a single-valued TIFF tag stored with extra values; the first is used
    "MakerNote",  # camera maker notes
    "XMP data",  # XMP needs defusedxml; we never read XMP
    "Invalid APNG",  # animation control chunk broken; the default PNG image is complete
    "malformed MPO",  # multi-picture JPEG index broken; the primary JPEG image is complete
)

# EXIF/TIFF orientation -> (transpose that makes the image upright, its rotation in degrees CCW).
# Mirrored orientations (2, 4, 5, 7) report the rotation that follows a left-right mirror.
_ORIENTATION: Final = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT, 0),
    3: (Image.Transpose.ROTATE_180, 180),
    4: (Image.Transpose.FLIP_TOP_BOTTOM, 180),
    5: (Image.Transpose.TRANSPOSE, 90),
    6: (Image.Transpose.ROTATE_270, 270),
    7: (Image.Transpose.TRANSVERSE, 270),
    8: (Image.Transpose.ROTATE_90, 90),
}
_ORIENTATION_TAG: Final = 0x0112
_SKIPPED_TAG: Final = re.compile(r"Skipping tag (\d+)")
_BOMB_PIXELS: Final = re.compile(r"\((\d+) pixels\)")

# TIFF compressions every scanner uses; a decode failure of anything else is reported as
# "unsupported compression" rather than "damaged file".
_COMMON_TIFF: Final = frozenset(
    {"raw", "group3", "group4", "tiff_ccitt", "tiff_lzw", "jpeg", "packbits", "tiff_adobe_deflate"}
    | {"tiff_deflate"}
)
_TIFF_SOURCE: Final = {"tiff_jpeg": "ojpeg", "tiff_adobe_deflate": "deflate", "tiff_ccitt": "ccitt"}


class _Strict:
    """Pillow state for one step of a decode: the pixel limit, no truncated images, warnings
    recorded (and checked by :meth:`check`), Pillow's exceptions mapped to :class:`DecodeError`."""

    def __init__(self, fmt: str, limits: DecodeLimits) -> None:
        self.fmt = fmt
        self.limits = limits
        self.caught: list[warnings.WarningMessage] = []
        self._guard = warnings.catch_warnings(record=True)
        self._saved: tuple[int | None, bool] = (None, False)

    def __enter__(self) -> _Strict:
        self._saved = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
        Image.MAX_IMAGE_PIXELS = self.limits.max_pixels
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        self.caught = self._guard.__enter__()
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._guard.__exit__(None, None, None)
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = self._saved
        if e is None or isinstance(e, DecodeError | MemoryError):
            return
        if isinstance(e, Image.DecompressionBombError | Image.DecompressionBombWarning):
            declared = _BOMB_PIXELS.search(str(e))
            raise _too_many_pixels(int(declared.group(1)) if declared else None, self.limits) from None
        if isinstance(e, PILLOW_ERRORS):
            logger.debug("Pillow rejected a %s file: %r", self.fmt, e)
            label = _LABEL[self.fmt]
            if isinstance(e, EOFError) or "truncated" in str(e):
                raise _truncated(label) from e
            self.check()  # a damage warning before the failure says more than the failure itself
            raise CorruptFile(f"damaged or unreadable {label} file") from e

    def check(self) -> None:
        """Fail if Pillow warned about damage since the last check."""
        # Pillow reports damage with plain UserWarnings; deprecation and resource warnings are not
        # about the file
        fatal = [
            str(w.message)
            for w in self.caught
            if issubclass(w.category, UserWarning) and _is_damage(self.fmt, str(w.message))
        ]
        for w in self.caught:
            logger.debug("Pillow warning on a %s file: %s", self.fmt, w.message)
        self.caught.clear()
        if fatal and self.fmt == "tiff":
            if any("only got" in m for m in fatal):  # a directory running past the end of the file
                raise _truncated("TIFF")
            raise CorruptFile("damaged TIFF file: its directory is corrupt", code="damaged_metadata")
        if fatal:
            raise CorruptFile(
                f"damaged {_LABEL[self.fmt]} file: its EXIF metadata is corrupt, so the page "
                "orientation is unknown",
                code="damaged_metadata",
            )


def _is_damage(fmt: str, message: str) -> bool:
    """Whether a Pillow warning means the page could come out incomplete or wrongly oriented.

    In a TIFF the directory *is* the image's structure (strip offsets, sizes, compression): any
    trouble there is damage. In a JPEG or PNG the EXIF block is metadata beside complete pixel
    data: one skipped tag is harmless unless it is the Orientation tag, but a truncated EXIF
    directory ("Corrupt EXIF data") may have lost the orientation.
    """
    if any(b in message for b in _BENIGN_WARNINGS):
        return False
    if fmt == "tiff":
        return True
    skipped = _SKIPPED_TAG.search(message)
    return skipped is None or int(skipped.group(1)) == _ORIENTATION_TAG


def _truncated(label: str) -> CorruptFile:
    return CorruptFile(f"the {label} file is truncated (incomplete); scan or send it again", code="truncated")


def _too_many_pixels(size: tuple[int, int] | int | None, limits: DecodeLimits) -> LimitExceeded:
    if isinstance(size, tuple):
        what = f"a page of {size[0]}×{size[1]} pixels"
    else:
        what = f"a page of {size:,} pixels" if size else "a page"
    return LimitExceeded(
        f"{what} exceeds the limit of {limits.max_pixels:,} pixels; scan at a lower resolution",
        code="too_many_pixels",
    )


def check_pixels(size: tuple[int, int], limits: DecodeLimits) -> None:
    """Refuse a declared page size before anything is allocated for it."""
    w, h = size
    if w <= 0 or h <= 0:
        raise CorruptFile("the image declares no pixels (width or height is 0)")
    if w * h > limits.max_pixels:
        raise _too_many_pixels((w, h), limits)


def iter_raster_pages(fh: BinaryIO, fmt: str, limits: DecodeLimits) -> Generator[RawPage, None, None]:
    """Decode a JPEG / PNG (one page) or TIFF (every frame) from an open file, page by page."""
    if fmt == "tiff":
        yield from _iter_tiff(fh, limits)
        return
    with _Strict(fmt, limits) as s:
        im = Image.open(fh, formats=[_PIL_FORMAT[fmt]])
        try:
            s.check()
            check_pixels(im.size, limits)
            page = _finish(im, s, source=fmt)
        finally:
            im.close()
    yield page


def _iter_tiff(fh: BinaryIO, limits: DecodeLimits) -> Generator[RawPage, None, None]:
    with _Strict("tiff", limits) as s:
        im = Image.open(fh, formats=["TIFF"])
        try:
            s.check()
            count = _count_frames(im, s, limits)
        except BaseException:
            im.close()
            raise
    try:
        for index in range(count):
            with _Strict("tiff", limits) as s:
                im.seek(index)
                s.check()
                check_pixels(im.size, limits)
                compression = str(im.info.get("compression", "raw"))
                source = "tiff/" + _TIFF_SOURCE.get(compression, compression.removeprefix("tiff_"))
                try:
                    page = _finish(im, s, source=source)
                except PILLOW_ERRORS as e:
                    if compression in _COMMON_TIFF:
                        raise
                    logger.debug("TIFF compression %s failed: %r", compression, e)
                    raise UnsupportedFormat(
                        f"this TIFF uses a compression the box cannot decode ({source}); "
                        "scan as JPEG, PNG, PDF or a standard TIFF",
                        code="unsupported_compression",
                    ) from e
            yield page
    finally:
        im.close()


def _count_frames(im: Image.Image, s: _Strict, limits: DecodeLimits) -> int:
    """Walk the TIFF directory chain (cheap, no pixels) to count pages, checking each page's size."""
    check_pixels(im.size, limits)
    count = 1
    while True:
        try:
            im.seek(count)
        except EOFError:
            break
        s.check()
        check_pixels(im.size, limits)
        count += 1
        if count > limits.max_pages:
            raise LimitExceeded(
                f"the TIFF has more than {limits.max_pages} pages; split it into smaller files",
                code="too_many_pages",
            )
    im.seek(0)
    return count


def _orientation(im: Image.Image) -> int:
    """The pending EXIF/TIFF orientation (1 = none); a TIFF's own tag is read per frame."""
    if isinstance(im, TiffImagePlugin.TiffImageFile):
        value = im.tag_v2.get(_ORIENTATION_TAG)
    else:
        value = im.getexif().get(_ORIENTATION_TAG)
    return value if isinstance(value, int) and value in _ORIENTATION else 1


def _finish(im: Image.Image, s: _Strict, source: str) -> RawPage:
    """Load the pixels of the current frame, apply the orientation once, convert to grey/BGR."""
    before = _orientation(im)
    s.check()
    dpi = clean_dpi(im.info.get("dpi"))
    im.load()
    s.check()
    after = _orientation(im)
    s.check()
    tag = after if after != 1 else before  # a tag gone after load() was applied by the loader
    out = im
    if after != 1:
        out = im.transpose(_ORIENTATION[after][0])
    degrees = _ORIENTATION[tag][1] if tag != 1 else 0
    if dpi is not None and degrees in (90, 270):
        dpi = (dpi[1], dpi[0])
    try:
        pixels = to_pixels(out)
        s.check()
    finally:
        if out is not im:
            out.close()
    return RawPage(pixels, dpi, source, degrees)


def decode_embedded_jpeg(data: bytes, limits: DecodeLimits) -> npt.NDArray[np.uint8]:
    """Pixels of a JPEG stream taken out of a PDF (EXIF orientation ignored, as PDF viewers do)."""
    with _Strict("jpeg", limits) as s, Image.open(io.BytesIO(data), formats=["JPEG"]) as im:
        s.check()
        check_pixels(im.size, limits)
        im.load()
        s.check()
        return to_pixels(im)


def to_pixels(im: Image.Image) -> npt.NDArray[np.uint8]:
    """H×W uint8 for grey modes, H×W×3 uint8 BGR for colour; transparency composited on white."""
    mode = im.mode
    if mode.startswith("I") or mode == "F":
        return _scale_to_8bit(im)
    if mode == "1":
        im = im.convert("L")  # 0 / 255
    elif mode == "P":
        im = _from_palette(im)
    elif mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        im = _on_white(im)
    if im.mode == "L":
        return np.frombuffer(im.tobytes(), np.uint8).reshape(im.height, im.width)
    if im.mode != "RGB":
        im = im.convert("RGB")  # CMYK (Adobe inversion handled by the JPEG plugin), YCbCr, LAB, ...
    return np.frombuffer(im.tobytes("raw", "BGR"), np.uint8).reshape(im.height, im.width, 3)


def _from_palette(im: Image.Image) -> Image.Image:
    if "transparency" in im.info:
        return _on_white(im.convert("RGBA"))
    pal = im.getpalette("RGB") or []
    grey = all(pal[i] == pal[i + 1] == pal[i + 2] for i in range(0, len(pal) - 2, 3))
    return im.convert("L" if grey and pal else "RGB")


def _on_white(im: Image.Image) -> Image.Image:
    """Composite on a white page: black text on a transparent background stays black on white."""
    grey = im.mode in ("LA", "La")
    im = im.convert("LA" if grey else "RGBA")
    out = Image.new("L" if grey else "RGB", im.size, 255 if grey else (255, 255, 255))
    out.paste(im.convert(out.mode), mask=im.getchannel("A"))
    return out


def _scale_to_8bit(im: Image.Image) -> npt.NDArray[np.uint8]:
    """16-bit / 32-bit / float grey to 8 bits by the actual range (not by truncation)."""
    a = np.asarray(im)
    if a.ndim != 2:
        raise CorruptFile(f"unexpected {im.mode} image layout")
    out = np.empty(a.shape, np.uint8)
    if a.size == 0:
        return out
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise CorruptFile("the image holds invalid (non-finite) pixel values")
    if hi <= lo:  # a uniform page: keep its level relative to the full range of the type
        full = 65535.0 if a.dtype.itemsize == 2 else 255.0
        out.fill(int(min(max(lo / full, 0.0), 1.0) * 255 + 0.5))
        return out
    scale = 255.0 / (hi - lo)
    for r in range(0, a.shape[0], 512):  # in bands: a float copy of a whole page would be large
        band = a[r : r + 512].astype(np.float32)
        band -= lo
        band *= scale
        band += 0.5
        np.nan_to_num(band, copy=False)
        np.clip(band, 0, 255, out=band)
        out[r : r + 512] = band.astype(np.uint8)
    return out
