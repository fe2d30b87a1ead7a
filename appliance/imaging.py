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
descend to the right. ``rotate(page, deskew_deg)`` straightens the page. ``orientation_deg``
(0, 90, 180, 270) is the counter-clockwise quarter turn that makes it upright.

Kernels that work on one channel use the luma of BGR pages, except the skew and border analysis
(``estimate_skew``, ``find_content_box``), which reads the red channel so that red seals do not
vote. ``clean_page`` reads colour pages in luma too, and in red inside the seals it finds (see
``CleanedPage.ocr_input``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from appliance import _native

__all__ = [
    "DEFAULT_MAX_SKEW_DEG",
    "DEFAULT_SAUVOLA_K",
    "DEFAULT_SAUVOLA_WINDOW",
    "DEFAULT_THUMBNAIL_MAX_SIDE",
    "FLAGS",
    "CleanReport",
    "CleanedPage",
    "OrientationEstimate",
    "PageAssessment",
    "PageMetrics",
    "SkewEstimate",
    "assess_page",
    "binarise",
    "clean_page",
    "despeckle",
    "estimate_orientation",
    "estimate_skew",
    "find_content_box",
    "find_seals",
    "hamming",
    "phash",
    "red_channel",
    "rotate",
    "rotate_quarter",
    "thumbnail",
    "to_grey",
]

Page = npt.NDArray[np.uint8]
"""A grey (``H x W``) or BGR (``H x W x 3``) ``uint8`` page."""
Box = tuple[int, int, int, int]
"""``(x0, y0, x1, y1)`` in pixels, exclusive ends."""

DEFAULT_THUMBNAIL_MAX_SIDE = 320
DEFAULT_MAX_SKEW_DEG = 15.0
DEFAULT_SAUVOLA_WINDOW = 49
DEFAULT_SAUVOLA_K = 0.2

FLAGS: dict[str, str] = {
    "blank": "no content: ink (not counting specks, bleed-through and scanner-bed remnants) covers "
    "less than 0.05% of the page, and there is no seal",
    "skewed": "the scan lay more than 3 degrees off level (|metrics.skew_deg| > 3, confident estimate)",
    "blurry": "the text edges look blurred by more than 0.2 mm (metrics.blur_mm > 0.2) on a page "
    "with content",
    "too_dark": "the paper is darker than 60% of white (metrics.paper_level < 0.6)",
    "low_dpi": "effective resolution below 190 dpi (200 dpi less 5% for the crop)",
    "upside_down": "the page was turned by 180 degrees (orientation_deg == 180)",
    "sideways": "the page was turned by a quarter (orientation_deg 90 or 270)",
    "seal": "a red seal was found (DA/T 31: keep the colour scan of this page)",
}
"""The flags :func:`clean_page` may report, in the order it lists them, and what each means.
Flags describe the scan as it came in; ``skewed`` and the turns are corrected in the cleaned
page (see ``metrics.residual_skew_deg`` and ``orientation_deg``)."""


@dataclass(frozen=True)
class SkewEstimate:
    """Result of :func:`estimate_skew`."""

    deskew_deg: float
    """Counter-clockwise rotation (degrees) that straightens the page; positive when text lines
    descend to the right."""
    confidence: float
    """0 (no evidence: blank page, noise, a photo) to 1 (many sharp text lines)."""


@dataclass(frozen=True)
class OrientationEstimate:
    """Result of :func:`estimate_orientation`."""

    orientation_deg: int
    """Counter-clockwise quarter turn (0, 90, 180 or 270) that makes the page upright."""
    confidence: float
    """0..1: how clear the up/down evidence (punctuation at the foot of the lines) is."""


@dataclass(frozen=True)
class PageMetrics:
    """Quality measurements of a page (all shares are 0..1)."""

    sharpness: float
    """Edge sharpness, 0..1: the median steepest one-pixel step across the edges of the text,
    over the ink contrast. A crisp edge steps at once (1.0); a Gaussian blur of ``s`` pixels
    gives about ``0.4 / s``. (The variance of the Laplacian was tried: sensor noise inflates it
    once blur has flattened the text, so it does not fall monotonically with blur.)"""
    blur_mm: float
    """The Gaussian blur (standard deviation, millimetres) that explains ``sharpness`` at
    ``effective_dpi``; 0 when the page has no edges to judge."""
    contrast: float
    """Paper level minus ink level, as a share of full scale."""
    brightness: float
    """Mean level of the page (OCR channel), as a share of white."""
    paper_level: float
    """Level of the paper (95th percentile), as a share of white."""
    skew_deg: float
    """Skew of the scan in degrees (the estimate, applied or not)."""
    residual_skew_deg: float
    """Skew left in the cleaned page: the part of the estimate that was not applied."""
    effective_dpi: float
    """Resolution: as given to :func:`clean_page`, else from the page size taken as A4."""
    border_share: float
    """Share of the scan removed as dark border."""
    ink_coverage: float
    """Share of the page that is black in the bilevel copy (after despeckling)."""
    colour_share: float
    """Share of clearly coloured pixels (0 for grey pages)."""


@dataclass(frozen=True)
class CleanReport:
    """What :func:`clean_page` did to a page and found on it."""

    deskew_deg: float
    """Counter-clockwise rotation applied to straighten the lines, degrees; positive when lines
    descended to the right. 0.0 when the estimate was below 0.05 degrees or its confidence below
    0.3."""
    skew_confidence: float
    """Confidence of the skew estimate, 0..1 (reported even when no rotation was applied)."""
    orientation_deg: int
    """Counter-clockwise quarter turn applied to make the page upright (0, 90, 180, 270): an
    exact turn, before the deskew."""
    orientation_confidence: float
    """0..1: how clear the up/down evidence was (0 for pages without punctuation)."""
    crop_box: Box
    """Kept region of ``rotate(rotate_quarter(input, orientation_deg // 90), deskew_deg)`` (for
    0 and 180, the same as ``rotate(input, orientation_deg + deskew_deg)``)."""
    border_share: float
    """Fraction of the scanned page area removed as dark border."""
    seal_boxes: tuple[Box, ...]
    """Red seals, in pixels of the cleaned page."""
    blank: bool
    """No content (see ``FLAGS["blank"]``)."""
    phash: int
    """64-bit perceptual hash of the cleaned page; compare with :func:`hamming` (a rescan of the
    same page differs in a few bits, another page in about half)."""
    metrics: PageMetrics
    flags: tuple[str, ...]
    """Names from :data:`FLAGS` that apply, in its order."""
    input_size: tuple[int, int]
    """``(width, height)`` of the input."""
    output_size: tuple[int, int]
    """``(width, height)`` of the cleaned page."""
    colour: bool
    """True for BGR input."""

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable form: tuples become lists, ``phash`` a 16-digit hex string."""
        return {
            "deskew_deg": self.deskew_deg,
            "skew_confidence": self.skew_confidence,
            "orientation_deg": self.orientation_deg,
            "orientation_confidence": self.orientation_confidence,
            "crop_box": list(self.crop_box),
            "border_share": self.border_share,
            "seal_boxes": [list(b) for b in self.seal_boxes],
            "blank": self.blank,
            "phash": f"{self.phash:016x}",
            "metrics": asdict(self.metrics),
            "flags": list(self.flags),
            "input_size": list(self.input_size),
            "output_size": list(self.output_size),
            "colour": self.colour,
        }


@dataclass(frozen=True, eq=False)
class CleanedPage:
    """A cleaned page and its derived images."""

    image: Page
    """Upright, deskewed and cropped page, same channels as the input."""
    ocr_input: Page
    """``H x W`` grey page for OCR: for colour input, the luma of ``image``, and its red channel
    inside ``report.seal_boxes`` (there the seal ink turns as light as the paper while black and
    blue ink under it stays dark, so OCR reads the text under a seal and not the seal; red print
    that is not a seal, a letterhead, stays legible in luma); for grey input, ``image`` itself
    (the same array)."""
    bilevel: Page
    """``H x W`` bilevel copy of ``ocr_input`` (0 = black, 255 = white): Sauvola-binarised and
    despeckled, red seals drawn back in as a 50% halftone (unless ``seal_halftone=False``). OCR
    reads ``ocr_input``; this is the archive/access copy."""
    thumbnail: Page
    """``image`` area-averaged so that its long side is at most the requested bound."""
    report: CleanReport


@dataclass(frozen=True)
class PageAssessment:
    """Result of :func:`assess_page`."""

    blank: bool
    metrics: PageMetrics


def _size(image: Page) -> tuple[int, int]:
    return (int(image.shape[1]), int(image.shape[0])) if image.ndim >= 2 else (0, 0)


def _metrics(values: dict[str, float]) -> PageMetrics:
    return PageMetrics(**values)


def clean_page(
    image: Page,
    *,
    thumbnail_max_side: int = DEFAULT_THUMBNAIL_MAX_SIDE,
    max_skew_deg: float = DEFAULT_MAX_SKEW_DEG,
    threads: int = 1,
    dpi: float | None = None,
    sauvola_window: int | None = None,
    sauvola_k: float = DEFAULT_SAUVOLA_K,
    speck_max_area: int | None = None,
    speck_keep_radius: int | None = None,
    orientation: bool = True,
    seal_halftone: bool = True,
) -> CleanedPage:
    """Clean one scanned page in one call: estimate the skew, find the orientation, crop the dark
    scanner border, rotate, binarise (Sauvola) and despeckle, find red seals, judge blank pages,
    measure quality, make a thumbnail and a perceptual hash.

    ``max_skew_deg`` (0 < x <= 45) bounds the skew search; ``threads`` (1..64) parallelises the
    full-resolution passes. The rotation is applied only when the estimate is at least 0.05
    degrees and its confidence at least 0.3; the crop never cuts into the paper. ``dpi`` is the
    scan's resolution when known (else estimated from the page size, taken as A4); it scales the
    defaults of the Sauvola window (``sauvola_window``, about 4 mm), the largest speck removed
    (``speck_max_area``, about 0.6 mm across) and the distance within which a small mark next to
    text is kept as punctuation (``speck_keep_radius``, about 2 mm). ``orientation=False``
    skips the quarter-turn detection. The bilevel copy is made from ``ocr_input``, where the seals
    fade; ``seal_halftone`` draws them back in as a 50% checkerboard over their ink, so they stay
    visible while black text under them stays solid.
    """
    page, ocr, bilevel, thumb, raw = _native.clean_page(
        image,
        thumbnail_max_side,
        max_skew_deg,
        threads,
        dpi,
        sauvola_window,
        sauvola_k,
        speck_max_area,
        speck_keep_radius,
        orientation,
        seal_halftone,
    )
    metrics = _metrics(raw["metrics"])
    report = CleanReport(
        deskew_deg=raw["deskew_deg"],
        skew_confidence=raw["skew_confidence"],
        orientation_deg=raw["orientation_deg"],
        orientation_confidence=raw["orientation_confidence"],
        crop_box=raw["crop_box"],
        border_share=metrics.border_share,
        seal_boxes=tuple(raw["seal_boxes"]),
        blank=raw["blank"],
        phash=raw["phash"],
        metrics=metrics,
        flags=tuple(raw["flags"]),
        input_size=_size(image),
        output_size=_size(page),
        colour=page.ndim == 3,
    )
    return CleanedPage(
        image=page,
        ocr_input=page if ocr is None else ocr,
        bilevel=bilevel,
        thumbnail=thumb,
        report=report,
    )


def estimate_skew(image: Page, *, max_deg: float = DEFAULT_MAX_SKEW_DEG) -> SkewEstimate:
    """Skew of a page within ``±max_deg`` degrees (0 < max_deg <= 45), measured on its text
    lines; dark borders, photos and (on colour pages) red seals do not vote."""
    deskew_deg, confidence = _native.estimate_skew(image, max_deg)
    return SkewEstimate(deskew_deg=deskew_deg, confidence=confidence)


def estimate_orientation(image: Page, *, threads: int = 1) -> OrientationEstimate:
    """Quarter turn that makes a deskewed page upright. Lines run along the rows or down the
    columns (nearest neighbours of character-sized marks); up or down is told by punctuation
    (full stops, commas, 。，、 sit at the foot of their line). Without evidence: 0."""
    degrees, confidence = _native.estimate_orientation(image, threads)
    return OrientationEstimate(orientation_deg=degrees, confidence=confidence)


def binarise(
    image: Page, *, window: int = DEFAULT_SAUVOLA_WINDOW, k: float = DEFAULT_SAUVOLA_K, threads: int = 1
) -> Page:
    """Sauvola binarisation (``T = m * (1 + k * (s / 128 - 1))`` over a ``window``-pixel square,
    7 <= window <= 1785, 0 < k <= 1) of the page (luma for BGR), from integral images over blocks
    of a seventh of the window. Black (0) where the value is at most the threshold, else white (255):
    a bilevel page comes back unchanged."""
    return _native.binarise(image, window, k, threads)


def despeckle(image: Page, *, max_area: int = 50, keep_radius: int = 24) -> Page:
    """Remove black components (luma below 128) of at most ``max_area`` pixels with no larger
    component within ``keep_radius`` pixels (1..4096), so punctuation and the dots of i and j
    stay. Returns a 0/255 page. The defaults suit 300 dpi."""
    return _native.despeckle(image, max_area, keep_radius)


def find_seals(image: Page, *, dpi: float | None = None) -> list[Box]:
    """Boxes of red seals and stamps (8-90 mm, roughly round or square) on a BGR page; none on
    grey pages. ``dpi`` sets the size limits (default: from the page size, taken as A4)."""
    return _native.find_seals(image, dpi)


def phash(image: Page) -> int:
    """64-bit perceptual hash (DCT of the 32 x 32 area-averaged luma, low 8 x 8 frequencies
    against their median)."""
    return _native.phash(image)


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two perceptual hashes."""
    return (a ^ b).bit_count()


def assess_page(image: Page, *, dpi: float | None = None) -> PageAssessment:
    """Blank-page decision and quality metrics of a page that needs no deskewing or cropping
    (what :func:`clean_page` reports, without its geometry; skew fields are 0)."""
    blank, values = _native.assess_page(image, dpi)
    return PageAssessment(blank=blank, metrics=_metrics(values))


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
) -> Box:
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
    """Red channel of a BGR page (what the skew and border analysis reads: red seals fade in
    it); grey pages are copied."""
    return _native.red_channel(image)
