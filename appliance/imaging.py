"""Page clean-up kernels: the typed Python face of the native module ``appliance._native``.

Pages are numpy ``uint8`` arrays, ``H x W`` (grey) or ``H x W x 3`` (BGR, as OpenCV decodes
them). C-contiguous arrays are read in place; other layouts are copied once. The kernels release
the GIL while they run, so do not modify an array from another thread while a kernel reads it.

Wrong inputs raise the ``appliance.errors`` image errors: ``ImageDtypeError`` (not ``uint8``),
``ImageShapeError`` (not ``H x W`` or ``H x W x 3``, or a rotation canvas that would be too
large) and ``EmptyImageError`` (no rows or no columns); all are ``ImageKernelError`` and
``ValueError``. Bad parameters raise ``ValueError``, a non-array ``TypeError``.

Sign convention (shared with the whole project): ``deskew_deg`` is the counter-clockwise rotation
in degrees, as the page is displayed, that straightens the page; it is positive when text lines
descend to the right. ``rotate(page, deskew_deg)`` straightens the page.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from appliance import _native

__all__ = [
    "DEFAULT_MAX_SKEW_DEG",
    "DEFAULT_THUMBNAIL_MAX_SIDE",
    "CleanReport",
    "CleanedPage",
    "SkewEstimate",
    "clean_page",
    "estimate_skew",
    "find_content_box",
    "red_channel",
    "rotate",
    "rotate_quarter",
    "thumbnail",
    "to_grey",
]

Page = npt.NDArray[np.uint8]
"""A grey (``H x W``) or BGR (``H x W x 3``) ``uint8`` page."""

DEFAULT_THUMBNAIL_MAX_SIDE = 320
DEFAULT_MAX_SKEW_DEG = 15.0


@dataclass(frozen=True)
class SkewEstimate:
    """Result of :func:`estimate_skew`."""

    deskew_deg: float
    """Counter-clockwise rotation (degrees) that straightens the page; positive when text lines
    descend to the right."""
    confidence: float
    """0 (no evidence: blank page, noise, a photo) to 1 (many sharp text lines)."""


@dataclass(frozen=True)
class CleanReport:
    """What :func:`clean_page` did to a page."""

    deskew_deg: float
    """Counter-clockwise rotation applied, degrees; positive when lines descended to the right.
    0.0 when the estimate was below 0.05 degrees or its confidence below 0.3."""
    skew_confidence: float
    """Confidence of the skew estimate, 0..1 (reported even when no rotation was applied)."""
    crop_box: tuple[int, int, int, int]
    """``(x0, y0, x1, y1)`` of the kept region (exclusive ends) in the deskewed page."""
    border_share: float
    """Fraction of the scanned (deskewed) page area removed as dark border."""
    input_size: tuple[int, int]
    """``(width, height)`` of the input."""
    output_size: tuple[int, int]
    """``(width, height)`` of the cleaned page."""
    colour: bool
    """True for BGR input."""

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable form (tuples become lists)."""
        return {
            "deskew_deg": self.deskew_deg,
            "skew_confidence": self.skew_confidence,
            "crop_box": list(self.crop_box),
            "border_share": self.border_share,
            "input_size": list(self.input_size),
            "output_size": list(self.output_size),
            "colour": self.colour,
        }


@dataclass(frozen=True, eq=False)
class CleanedPage:
    """A cleaned page and its derived images."""

    image: Page
    """Deskewed and cropped page, same channels as the input."""
    ocr_input: Page
    """``H x W`` grey page for OCR: the red channel of ``image`` for colour input (red seals fade
    in it while black text stays dark), ``image`` itself (the same array) for grey input."""
    thumbnail: Page
    """``image`` area-averaged so that its long side is at most the requested bound."""
    report: CleanReport


def _size(image: Page) -> tuple[int, int]:
    return (int(image.shape[1]), int(image.shape[0])) if image.ndim >= 2 else (0, 0)


def clean_page(
    image: Page,
    *,
    thumbnail_max_side: int = DEFAULT_THUMBNAIL_MAX_SIDE,
    max_skew_deg: float = DEFAULT_MAX_SKEW_DEG,
    threads: int = 1,
) -> CleanedPage:
    """Clean one scanned page: estimate the skew, rotate it away, crop the dark scanner border
    and make a thumbnail.

    ``max_skew_deg`` (0 < x <= 45) bounds the skew search; ``threads`` (1..64) parallelises the
    rotation. The rotation is applied only when the estimate is at least 0.05 degrees and its
    confidence at least 0.3; the crop never cuts into the paper.
    """
    page, ocr, thumb, deskew_deg, confidence, crop_box, border_share = _native.clean_page(
        image, thumbnail_max_side, max_skew_deg, threads
    )
    report = CleanReport(
        deskew_deg=deskew_deg,
        skew_confidence=confidence,
        crop_box=crop_box,
        border_share=border_share,
        input_size=_size(image),
        output_size=_size(page),
        colour=page.ndim == 3,
    )
    return CleanedPage(
        image=page,
        ocr_input=page if ocr is None else ocr,
        thumbnail=thumb,
        report=report,
    )


def estimate_skew(image: Page, *, max_deg: float = DEFAULT_MAX_SKEW_DEG) -> SkewEstimate:
    """Skew of a page within ``±max_deg`` degrees (0 < max_deg <= 45), measured on its text
    lines; dark borders, photos and (on colour pages) red seals do not vote."""
    deskew_deg, confidence = _native.estimate_skew(image, max_deg)
    return SkewEstimate(deskew_deg=deskew_deg, confidence=confidence)


def rotate(image: Page, angle_deg: float, *, threads: int = 1) -> Page:
    """Rotate counter-clockwise by ``angle_deg`` about the centre, bilinear, white (255) fill.

    The canvas grows to hold the whole rotated page, by an even number of pixels per axis so
    that the page centre stays on the pixel grid; the page sits centred on it. Quarter turns are
    exact, but :func:`rotate_quarter` also gives them the tight canvas.
    """
    return _native.rotate(image, angle_deg, threads)


def rotate_quarter(image: Page, turns: int) -> Page:
    """Rotate by ``turns`` quarter turns counter-clockwise (negative: clockwise), exactly;
    the same as ``numpy.rot90(image, turns)`` but contiguous."""
    return _native.rotate_quarter(image, turns)


def find_content_box(
    image: Page,
    *,
    source_size: tuple[int, int] | None = None,
    angle_deg: float = 0.0,
) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` (exclusive ends) of the paper inside the dark scanner bed and lid
    shadows at the edges of ``image``; the whole image when there is no border.

    When ``image`` is ``rotate(page, angle_deg)``, pass the page's ``(width, height)`` as
    ``source_size`` so that the white fill around the rotated page is ignored.
    """
    if source_size is None and angle_deg != 0.0:
        raise ValueError("angle_deg describes a rotation canvas and needs source_size")
    return _native.find_content_box(image, source_size, angle_deg)


def thumbnail(image: Page, max_side: int = DEFAULT_THUMBNAIL_MAX_SIDE) -> Page:
    """Area-averaged copy with the long side at most ``max_side`` (a copy if it already fits)."""
    return _native.thumbnail(image, max_side)


def to_grey(image: Page) -> Page:
    """Luma (ITU-R BT.601, as OpenCV's ``COLOR_BGR2GRAY``) of a BGR page; grey pages are
    copied."""
    return _native.to_grey(image)


def red_channel(image: Page) -> Page:
    """Red channel of a BGR page (what OCR reads on colour pages); grey pages are copied."""
    return _native.red_channel(image)
