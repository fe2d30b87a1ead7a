"""Tests of the clean-up kernels added around ``clean_page``: Sauvola binarisation, despeckle,
orientation, seals, perceptual hash, page assessment and punched holes; invariants by
hypothesis."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance import imaging
from appliance.errors import ImageDtypeError, ImageShapeError

INK = (20, 20, 20)
RED = (40, 35, 215)


def latin_page(seed: int = 0, width: int = 1654, height: int = 2339) -> np.ndarray:
    """A 200 dpi page of Latin sentences, full stops and commas included."""
    rng = np.random.default_rng(seed)
    page = np.full((height, width), 245, np.uint8)
    words = ["record", "the", "archive", "county", "hall", "permit", "issued", "licence"]
    y = 160
    while y < height - 160:
        x = 130
        while x < width - 300:
            word = str(rng.choice(words)) + str(rng.choice(["", "", "", ",", "."]))
            cv2.putText(page, word, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.9, INK[:1], 2, cv2.LINE_AA)
            x += cv2.getTextSize(word + " ", cv2.FONT_HERSHEY_SIMPLEX, 0.9, 2)[0][0]
        y += 48
    return page


# --- binarisation -------------------------------------------------------------------------------
def test_binarise_follows_uneven_lighting() -> None:
    page = latin_page(1, 800, 600)
    ramp = np.linspace(0.55, 1.0, page.shape[1])[None, :]
    dim = (page * ramp).astype(np.uint8)  # the left side lies in the lamp's shadow
    bilevel = imaging.binarise(dim)
    truth = page < 128
    assert set(np.unique(bilevel)) <= {0, 255}
    agree = float(((bilevel == 0) == truth).mean())
    assert agree > 0.99
    global_otsu = cv2.threshold(dim, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]
    assert float(((global_otsu == 0) == truth).mean()) < agree


def test_binarise_window_and_k() -> None:
    page = latin_page(2, 600, 400)
    thin = imaging.binarise(page, k=0.6)
    thick = imaging.binarise(page, k=0.1)
    assert (thin == 0).sum() < (thick == 0).sum()
    assert np.array_equal(imaging.binarise(page, threads=3), imaging.binarise(page))
    colour = cv2.merge([page, page, page])  # a colour scan of a grey page: its luma is the page
    assert np.array_equal(imaging.binarise(colour), imaging.binarise(page))
    for bad in ({"window": 5}, {"window": 5000}, {"k": 0.0}, {"k": 1.5}):
        with pytest.raises(ValueError):
            imaging.binarise(page, **bad)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(1, 90), st.integers(1, 90)),
    window=st.integers(7, 120),
    k=st.floats(0.01, 1.0),
)
def test_binarisation_is_idempotent_on_bilevel_pages(
    seed: int, shape: tuple[int, int], window: int, k: float
) -> None:
    page = np.where(np.random.default_rng(seed).random(shape) < 0.3, 0, 255).astype(np.uint8)
    once = imaging.binarise(page, window=window, k=k)
    assert np.array_equal(once, page)
    assert np.array_equal(imaging.binarise(once, window=window, k=k), once)


# --- despeckle ----------------------------------------------------------------------------------
def test_despeckle_spares_punctuation_and_dots() -> None:
    page = np.full((300, 600), 255, np.uint8)
    cv2.putText(page, "in it, ok.", (40, 120), cv2.FONT_HERSHEY_SIMPLEX, 1.6, 0, 3, cv2.LINE_8)
    page = np.where(page < 128, 0, 255).astype(np.uint8)
    text = page.copy()
    rng = np.random.default_rng(3)
    specks = [
        (int(x), int(y)) for x, y in zip(rng.integers(20, 580, 25), rng.integers(180, 290, 25), strict=True)
    ]
    for x, y in specks:
        cv2.circle(page, (x, y), 2, 0, -1)
    page[10, 10] = page[250, 300] = 0
    _, _, stats, _ = cv2.connectedComponentsWithStats((text == 0).astype(np.uint8), connectivity=8)
    dots = stats[1:, cv2.CC_STAT_AREA] <= 70
    assert dots.sum() >= 4, "the dots of the i's, the comma and the full stop are speck-sized"
    clean = imaging.despeckle(page, max_area=70, keep_radius=12)
    assert np.array_equal(clean, text), "all specks gone, every dot of i and full stop kept"


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), max_area=st.integers(0, 40), radius=st.integers(1, 30))
def test_despeckle_only_whitens(seed: int, max_area: int, radius: int) -> None:
    page = np.where(np.random.default_rng(seed).random((60, 80)) < 0.2, 0, 255).astype(np.uint8)
    clean = imaging.despeckle(page, max_area=max_area, keep_radius=radius)
    assert not ((clean == 0) & (page == 255)).any()
    _, _, stats, _ = cv2.connectedComponentsWithStats((page == 0).astype(np.uint8), connectivity=8)
    _, _, stats2, _ = cv2.connectedComponentsWithStats((clean == 0).astype(np.uint8), connectivity=8)
    big = sorted(map(tuple, stats[1:][stats[1:, 4] > max_area]))
    assert big == sorted(map(tuple, stats2[1:][stats2[1:, 4] > max_area]))


# --- orientation --------------------------------------------------------------------------------
@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_orientation_of_a_latin_page(turns: int) -> None:
    page = np.ascontiguousarray(np.rot90(latin_page(4), turns))
    estimate = imaging.estimate_orientation(page)
    assert estimate.orientation_deg == (-90 * turns) % 360
    assert estimate.confidence > 0.5
    cleaned = imaging.clean_page(page)
    assert cleaned.report.orientation_deg == (-90 * turns) % 360
    assert cleaned.image.shape == latin_page(4).shape
    assert float(np.abs(cleaned.image.astype(int) - latin_page(4)).mean()) < 2.0
    assert ("sideways" in cleaned.report.flags) == (turns % 2 == 1)


def test_pages_without_text_stay_as_they_are() -> None:
    for page in (np.full((500, 400), 250, np.uint8), cv2.GaussianBlur(latin_page(5, 400, 500), (0, 0), 12)):
        assert imaging.estimate_orientation(page) == imaging.OrientationEstimate(0, 0.0)


# --- seals, colour --------------------------------------------------------------------------------
def sealed_page(dpi: int = 200) -> np.ndarray:
    page = cv2.cvtColor(latin_page(6), cv2.COLOR_GRAY2BGR)
    r = round(21 / 25.4 * dpi)  # a 42 mm seal
    cv2.circle(page, (1100, 1800), r, RED, 10)
    cv2.putText(page, "SEAL", (1100 - r // 2, 1820), cv2.FONT_HERSHEY_SIMPLEX, 1.5, RED, 4)
    # Red letterhead (红头): a short title in big red type and a red rule; not seals.
    cv2.putText(page, "OFFICE", (180, 140), cv2.FONT_HERSHEY_SIMPLEX, 4.0, RED, 12)
    cv2.rectangle(page, (130, 180), (1500, 195), RED, -1)
    return page


def test_find_seals() -> None:
    page = sealed_page()
    (box,) = imaging.find_seals(page, dpi=200)
    r = round(21 / 25.4 * 200)
    assert box == pytest.approx((1100 - r, 1800 - r, 1100 + r, 1800 + r), abs=8)
    assert imaging.find_seals(cv2.cvtColor(page, cv2.COLOR_BGR2GRAY)) == []
    cleaned = imaging.clean_page(page)
    assert "seal" in cleaned.report.flags and len(cleaned.report.seal_boxes) == 1
    assert cleaned.report.metrics.colour_share > 0.001


# --- perceptual hash ---------------------------------------------------------------------------
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 1000), quality=st.integers(30, 95))
def test_phash_survives_jpeg_reencoding(seed: int, quality: int) -> None:
    page = latin_page(seed, 827, 1170)
    ok, data = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    again = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    assert imaging.hamming(imaging.phash(page), imaging.phash(again)) <= 4


def test_phash_of_the_report_is_the_bilevel_pages() -> None:
    cleaned = imaging.clean_page(sealed_page())
    assert cleaned.report.phash == imaging.phash(cleaned.bilevel)
    assert 0 <= cleaned.report.phash < 2**64
    assert imaging.hamming(0, 2**64 - 1) == 64


# --- page assessment, flags --------------------------------------------------------------------
def test_assess_blank_and_content() -> None:
    blank = np.full((2339, 1654), 240, np.uint8)
    rng = np.random.default_rng(7)
    for x, y in zip(rng.integers(0, 1654, 80), rng.integers(0, 2339, 80), strict=True):
        cv2.circle(blank, (int(x), int(y)), 1, 60, -1)  # dust
    cv2.putText(blank, "p. 2", (780, 2250), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 100, 1)  # a tiny label
    ghost = cv2.flip(latin_page(8), 1)
    blank = np.minimum(blank, (215 + ghost.astype(int) * 0.12).astype(np.uint8))  # bleed-through
    assessment = imaging.assess_page(blank, dpi=200)
    assert assessment.blank
    assert not imaging.assess_page(latin_page(8), dpi=200).blank
    assert imaging.clean_page(blank).report.blank
    # One short line is content: no page with content is called blank.
    note = np.full((2339, 1654), 240, np.uint8)
    cv2.putText(note, "Nothing follows on this page.", (200, 400), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 20, 2)
    assert not imaging.clean_page(note).report.blank
    assert not imaging.assess_page(note).blank


def test_flags_for_blur_darkness_and_resolution() -> None:
    page = latin_page(9)
    sharp = imaging.clean_page(page).report
    assert sharp.flags == () and sharp.metrics.effective_dpi == pytest.approx(200, rel=0.01)
    blurred = imaging.clean_page(cv2.GaussianBlur(page, (0, 0), 2.5)).report
    assert "blurry" in blurred.flags and blurred.metrics.blur_mm > 0.2
    assert blurred.metrics.sharpness < sharp.metrics.sharpness
    dark = imaging.clean_page((page * 0.5).astype(np.uint8)).report
    assert "too_dark" in dark.flags and dark.metrics.paper_level < 0.6
    small = imaging.clean_page(cv2.resize(page, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)).report
    assert "low_dpi" in small.flags
    assert "low_dpi" not in imaging.clean_page(page, dpi=300).report.flags


def test_skewed_flag_follows_the_scan() -> None:
    page = latin_page(10)
    h, w = page.shape
    turned = cv2.warpAffine(
        page, cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), -4.0, 1.0), (w, h), borderValue=245
    )
    report = imaging.clean_page(turned).report
    assert report.deskew_deg == pytest.approx(4.0, abs=0.1)
    assert "skewed" in report.flags
    assert report.metrics.residual_skew_deg == pytest.approx(0.0)


# --- punched holes ------------------------------------------------------------------------------
def test_punched_holes_are_painted_out() -> None:
    page = latin_page(11)
    scan = np.full((page.shape[0] + 80, page.shape[1] + 80), 18, np.uint8)  # black scanner bed
    scan[40:-40, 40:-40] = page
    r = round(3 / 25.4 * 200)  # 6 mm holes, 12 mm from the left edge of the paper
    centres = [(40 + 95, 700), (40 + 95, 1650)]
    for c in centres:
        cv2.circle(scan, c, r, 18, -1)
    cleaned = imaging.clean_page(scan)
    x0, y0 = cleaned.report.crop_box[:2]
    for cx, cy in centres:
        x, y = cx - x0, cy - y0
        assert cleaned.image[y, x] > 200 and cleaned.bilevel[y - r : y + r, x - r : x + r].min() == 255
    blank = np.full_like(scan, 240)
    blank[:, :30] = 18
    for c in centres:
        cv2.circle(blank, c, r, 18, -1)
    assert imaging.clean_page(blank).report.blank


# --- errors -------------------------------------------------------------------------------------
def test_new_kernels_check_their_input() -> None:
    for call in (imaging.binarise, imaging.despeckle, imaging.phash, imaging.estimate_orientation):
        with pytest.raises(ImageDtypeError):
            call(np.zeros((10, 10), np.float32))
        with pytest.raises(ImageShapeError):
            call(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(ValueError, match="keep radius"):
        imaging.despeckle(np.zeros((10, 10), np.uint8), keep_radius=0)
    with pytest.raises(ValueError, match="dpi"):
        imaging.clean_page(np.zeros((10, 10), np.uint8), dpi=0.0)
    with pytest.raises(ValueError, match="dpi"):
        imaging.find_seals(np.zeros((10, 10, 3), np.uint8), dpi=-1.0)
    with pytest.raises(ValueError, match="dpi"):
        imaging.assess_page(np.zeros((10, 10), np.uint8), dpi=float("nan"))
