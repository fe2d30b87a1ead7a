"""PDF pages via pypdfium2.

A scanned PDF page is usually exactly one image covering the page. Such a page is *extracted* at
the image's native resolution (the JPEG bytes decoded by Pillow, other filters decoded by pdfium)
instead of being rendered, which would resample the scan. Every other page is rendered at
``limits.pdf_dpi``, lowered when the page would exceed ``limits.max_pixels``.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Generator
from typing import BinaryIO, Final

import numpy as np
import numpy.typing as npt
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from appliance.errors import CorruptFile, EncryptedDocument, LimitExceeded
from appliance.settings import DecodeLimits

from .formats import RawPage
from .raster import check_pixels, decode_embedded_jpeg

__all__ = ["iter_pdf_pages"]

logger = logging.getLogger(__name__)

# An OCR'd scan carries invisible text objects (one per word) next to its image; pages with more
# objects than this are rendered without looking further.
_MAX_OBJECTS_SCANNED: Final = 5000
# The image must cover the page up to this fraction of the page size (or 2 pt) on every edge.
_EDGE_TOLERANCE: Final = 0.02
_EXTRACTABLE_COLORSPACES: Final = frozenset(
    {
        pdfium_c.FPDF_COLORSPACE_DEVICEGRAY,
        pdfium_c.FPDF_COLORSPACE_DEVICERGB,
        pdfium_c.FPDF_COLORSPACE_DEVICECMYK,
        pdfium_c.FPDF_COLORSPACE_CALGRAY,
        pdfium_c.FPDF_COLORSPACE_CALRGB,
        pdfium_c.FPDF_COLORSPACE_ICCBASED,
    }
)
_FILTER_NAMES: Final = {
    "DCTDecode": "jpeg",
    "CCITTFaxDecode": "ccitt",
    "JBIG2Decode": "jbig2",
    "JPXDecode": "jpx",
    "FlateDecode": "flate",
    "LZWDecode": "lzw",
    "RunLengthDecode": "rle",
}


def iter_pdf_pages(fh: BinaryIO, limits: DecodeLimits) -> Generator[RawPage, None, None]:
    """Decode every page of a PDF from an open file, page by page."""
    pdf = _open(fh)
    try:
        count = len(pdf)
        if count < 1:
            raise CorruptFile("the PDF has no pages", code="no_pages")
        if count > limits.max_pages:
            raise LimitExceeded(
                f"the PDF has {count} pages, more than the limit of {limits.max_pages}; "
                "split it into smaller files",
                code="too_many_pages",
            )
        for index in range(count):
            yield _decode_page(pdf, index, limits)
    finally:
        pdf.close()


def _open(fh: BinaryIO) -> pdfium.PdfDocument:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pdfium.PdfDocument(fh)
    except pdfium.PdfiumError as e:
        logger.debug("pdfium refused a PDF: %s", e)
        if e.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise EncryptedDocument(
                "the PDF is password-protected; ask for an unprotected copy, or print and scan it"
            ) from None
        if e.err_code == pdfium_c.FPDF_ERR_SECURITY:
            raise EncryptedDocument(
                "the PDF uses an unsupported protection scheme; ask for an unprotected copy",
                code="unsupported_security",
            ) from None
        raise CorruptFile("damaged or unreadable PDF file") from None


def _decode_page(pdf: pdfium.PdfDocument, index: int, limits: DecodeLimits) -> RawPage:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            page = pdf[index]
            try:
                rotation = page.get_rotation() % 360
                ccw = (360 - rotation) % 360
                extracted = _extract_scan(page, limits)
                if extracted is None:
                    return _render(page, limits, ccw)
                pixels, dpi, source = extracted
            finally:
                page.close()
    except (pdfium.PdfiumError, ValueError, OverflowError) as e:
        logger.debug("pdfium failed on page %d: %r", index + 1, e)
        raise CorruptFile(f"page {index + 1} of the PDF is damaged or unreadable") from None
    if rotation:  # /Rotate is clockwise; the renderer applies it, so extraction does too
        pixels = np.ascontiguousarray(np.rot90(pixels, k=-(rotation // 90)))
        if rotation in (90, 270) and dpi is not None:
            dpi = (dpi[1], dpi[0])
    return RawPage(pixels, dpi, source, ccw)


def _extract_scan(
    page: pdfium.PdfPage, limits: DecodeLimits
) -> tuple[npt.NDArray[np.uint8], tuple[float, float], str] | None:
    """The pixels of a page that is exactly one upright full-page image, else ``None``."""
    image = _single_image(page)
    if image is None or pdfium_c.FPDFPage_HasTransparency(page.raw):
        return None
    a, b, c, d, _e, _f = image.get_matrix().get()
    if b != 0 or c != 0 or a <= 0 or d <= 0:
        return None  # rotated, skewed or mirrored placement: let the renderer handle it
    if not _covers_page(image.get_bounds(), page.get_cropbox()):
        return None
    px_w, px_h = image.get_px_size()
    if px_w * px_h > limits.max_pixels or px_w <= 0 or px_h <= 0:
        return None  # render it at a capped resolution instead
    meta = image.get_metadata()
    if meta.colorspace not in _EXTRACTABLE_COLORSPACES:
        return None  # indexed, separation, stencil masks, ...: the renderer knows best
    all_filters = image.get_filters()
    filters = [f for f in all_filters if f not in pdfium.PdfImage.SIMPLE_FILTERS]
    pixels: npt.NDArray[np.uint8] | None
    if filters == ["DCTDecode"]:
        try:
            pixels = decode_embedded_jpeg(bytes(image.get_data(decode_simple=True)), limits)
        except CorruptFile as e:
            raise CorruptFile("the scanned image inside the PDF is damaged", code=e.code) from e
    elif len(filters) <= 1:
        pixels = _image_bitmap(image)
    else:
        return None
    if pixels is None or pixels.shape[:2] != (px_h, px_w):
        return None
    left, bottom, right, top = image.get_bounds()
    dpi = (round(px_w * 72 / (right - left), 3), round(px_h * 72 / (top - bottom), 3))
    kind = _FILTER_NAMES.get((filters or all_filters or ["raw"])[-1], "raw")
    return pixels, dpi, f"pdf/embedded-{kind}"


def _single_image(page: pdfium.PdfPage) -> pdfium.PdfImage | None:
    image = None
    for n, obj in enumerate(page.get_objects(max_depth=1)):
        if n >= _MAX_OBJECTS_SCANNED:
            return None
        if obj.type == pdfium_c.FPDF_PAGEOBJ_IMAGE and image is None:
            image = obj
        elif obj.type == pdfium_c.FPDF_PAGEOBJ_TEXT and (
            pdfium_c.FPDFTextObj_GetTextRenderMode(obj.raw) == pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE
        ):
            continue  # an OCR text layer
        else:
            return None
    return image if isinstance(image, pdfium.PdfImage) else None


def _covers_page(bounds: tuple[float, float, float, float], box: tuple[float, float, float, float]) -> bool:
    width, height = box[2] - box[0], box[3] - box[1]
    if width <= 0 or height <= 0:
        return False
    tol_x, tol_y = max(2.0, width * _EDGE_TOLERANCE), max(2.0, height * _EDGE_TOLERANCE)
    return (
        abs(bounds[0] - box[0]) <= tol_x
        and abs(bounds[2] - box[2]) <= tol_x
        and abs(bounds[1] - box[1]) <= tol_y
        and abs(bounds[3] - box[3]) <= tol_y
    )


def _image_bitmap(image: pdfium.PdfImage) -> npt.NDArray[np.uint8] | None:
    """Decode the image stream at native size with pdfium (no transform, no mask)."""
    bitmap = image.get_bitmap(render=False)
    try:
        view = bitmap.to_numpy()
        if bitmap.format == pdfium_c.FPDFBitmap_Gray:
            return np.array(view, dtype=np.uint8, order="C")
        if bitmap.format in (pdfium_c.FPDFBitmap_BGR, pdfium_c.FPDFBitmap_BGRx):
            return np.array(view[:, :, :3], dtype=np.uint8, order="C")
        return None  # BGRA: transparency, render instead
    finally:
        bitmap.warn_on_close = False  # the pixels were copied above; nothing uses the buffer after
        bitmap.close()


def _render(page: pdfium.PdfPage, limits: DecodeLimits, ccw: int) -> RawPage:
    width_pt, height_pt = page.get_size()
    if not (width_pt > 0 and height_pt > 0 and math.isfinite(width_pt * height_pt)):
        raise CorruptFile("the PDF page has no valid size")
    dpi = float(limits.pdf_dpi)
    pixels = math.ceil(width_pt * dpi / 72) * math.ceil(height_pt * dpi / 72)
    while pixels > limits.max_pixels:  # lower the resolution until the page fits the limit
        dpi = math.floor(dpi * math.sqrt(limits.max_pixels / pixels) * 0.999 * 100) / 100
        if dpi < 1:
            raise LimitExceeded("the PDF page is too large to render", code="too_many_pixels")
        pixels = math.ceil(width_pt * dpi / 72) * math.ceil(height_pt * dpi / 72)
    bitmap = page.render(scale=dpi / 72, may_draw_forms=False, draw_annots=True)
    try:
        if bitmap.format != pdfium_c.FPDFBitmap_BGR:
            raise CorruptFile("unexpected PDF render format")
        check_pixels((bitmap.width, bitmap.height), limits)
        bgr: npt.NDArray[np.uint8] = bitmap.to_numpy()
        if np.array_equal(bgr[:, :, 0], bgr[:, :, 1]) and np.array_equal(bgr[:, :, 1], bgr[:, :, 2]):
            out = np.ascontiguousarray(bgr[:, :, 0])  # a grey page stays one channel
        else:
            out = np.ascontiguousarray(bgr)
    finally:
        bitmap.close()  # a native bitmap: the numpy view keeps its buffer alive
    return RawPage(out, (dpi, dpi), f"pdf/render@{dpi:g}dpi", ccw)
