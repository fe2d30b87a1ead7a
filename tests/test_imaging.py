"""Tests of the page clean-up kernels (appliance.imaging over appliance._native)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from appliance import imaging
from appliance.errors import EmptyImageError, ImageDtypeError, ImageKernelError, ImageShapeError

CORPUS = Path("/work/shared/corpus/skew")
INK = (25, 25, 25)
SEAL_RED = (40, 40, 220)
WORDS = ["hall", "record", "archive", "county", "service", "0123", "licence", "permit", "stamp", "QUICK"]


# --- synthetic pages --------------------------------------------------------------------------
def text_page(
    seed: int,
    width: int = 1240,
    height: int = 1754,
    *,
    colour: bool = False,
    margin: int = 110,
    extras: bool = False,
) -> np.ndarray:
    """A white page of text lines; with ``extras`` also a ruled table, a photo and a red seal."""
    rng = np.random.default_rng(seed)
    page = np.full((height, width, 3), 255, np.uint8)
    scale = 0.8 + 0.4 * rng.random()
    pitch = int(40 * scale) + 6
    y = margin + pitch
    while y < height - margin:
        if extras and y < height - 700 and rng.random() < 0.06:
            rows, top = 4, y - pitch // 2
            for r in range(rows + 1):
                cv2.line(page, (margin, top + r * 60), (width - margin, top + r * 60), INK, 3)
            for x in np.linspace(margin, width - margin, 4).astype(int):
                cv2.line(page, (int(x), top), (int(x), top + rows * 60), INK, 3)
            y += rows * 60 + pitch
            continue
        if extras and y < height - 600 and rng.random() < 0.05:
            photo = cv2.GaussianBlur(rng.integers(0, 256, (50, 80)).astype(np.float32), (0, 0), 3)
            photo = cv2.resize(cv2.normalize(photo, None, 10, 200, cv2.NORM_MINMAX), (500, 320))
            page[y : y + 320, margin : margin + 500] = photo.astype(np.uint8)[..., None]
            y += 320 + pitch
            continue
        x = margin + int(rng.integers(0, 40))
        while True:
            word = str(rng.choice(WORDS))
            (tw, _), _ = cv2.getTextSize(word + " ", cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
            if x + tw > width - margin:
                break
            cv2.putText(page, word, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, INK, 2, cv2.LINE_AA)
            x += tw
        y += pitch
    if extras:
        centre = (int(width * 0.68), int(height * 0.78))
        cv2.circle(page, centre, 150, SEAL_RED, 10)
        cv2.putText(
            page, "SEAL", (centre[0] - 100, centre[1] + 30), cv2.FONT_HERSHEY_SIMPLEX, 2.6, SEAL_RED, 9
        )
    return page if colour else cv2.cvtColor(page, cv2.COLOR_BGR2GRAY)


def skewed_scan(page: np.ndarray, deskew_deg: float, *, fill: int = 255, frame: int = 0) -> np.ndarray:
    """The scan of ``page`` lying turned so that rotating it by ``deskew_deg`` (CCW) straightens
    it: lines descend to the right for positive angles. ``fill`` is what the scanner sees off the
    page (255: page as large as the scan, 20: black bed); ``frame`` adds dark strips along the
    scan edges (lid shadow)."""
    h, w = page.shape[:2]
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), -deskew_deg, 1.0)
    value = (fill, fill, fill) if page.ndim == 3 else fill
    scan = cv2.warpAffine(page, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=value)
    if frame:
        scan[:frame] = 18
        scan[-frame:] = 18
        scan[:, :frame] = 18
        scan[:, -frame:] = 18
    return scan


def on_bed(page: np.ndarray, bed: int) -> np.ndarray:
    """``page`` centred on a black scanner bed ``bed`` pixels wide on each side."""
    h, w = page.shape[:2]
    scan = np.full((h + 2 * bed, w + 2 * bed, *page.shape[2:]), 15, np.uint8)
    scan[bed : bed + h, bed : bed + w] = page
    return scan


# --- skew -------------------------------------------------------------------------------------
@pytest.mark.parametrize("angle", [-13.2, -6.0, -1.3, -0.2, 0.0, 0.07, 0.45, 2.5, 8.8, 14.5])
def test_skew_of_synthetic_pages(angle: float) -> None:
    seed = int(abs(angle) * 100)
    scan = skewed_scan(text_page(seed), angle, frame=40)
    estimate = imaging.estimate_skew(scan)
    assert estimate.deskew_deg == pytest.approx(angle, abs=0.1)
    assert estimate.confidence > 0.6


@pytest.mark.parametrize("angle", [-4.4, -0.6, 1.7, 11.0])
def test_skew_ignores_tables_photos_seals_and_borders(angle: float) -> None:
    page = text_page(7, colour=True, extras=True)
    scan = skewed_scan(page, angle, fill=20, frame=30)
    estimate = imaging.estimate_skew(scan)
    assert estimate.deskew_deg == pytest.approx(angle, abs=0.1)
    grey = imaging.estimate_skew(cv2.cvtColor(scan, cv2.COLOR_BGR2GRAY))
    assert grey.deskew_deg == pytest.approx(angle, abs=0.1)


def test_skew_accuracy_over_many_pages() -> None:
    rng = np.random.default_rng(11)
    errors = []
    for seed in range(12):
        angle = float(rng.uniform(-15, 15) if seed % 2 else rng.uniform(-1, 1))
        scan = skewed_scan(text_page(100 + seed), angle, fill=20 if seed % 3 == 0 else 255)
        errors.append(abs(imaging.estimate_skew(scan).deskew_deg - angle))
    assert float(np.median(errors)) <= 0.05
    assert max(errors) <= 0.1


def test_skew_search_range_is_respected() -> None:
    scan = skewed_scan(text_page(3), 9.0)
    estimate = imaging.estimate_skew(scan, max_deg=5.0)
    assert abs(estimate.deskew_deg) <= 5.0
    assert imaging.estimate_skew(scan, max_deg=10.0).deskew_deg == pytest.approx(9.0, abs=0.1)


@pytest.mark.parametrize(
    "image",
    [
        np.full((600, 400), 255, np.uint8),
        np.zeros((600, 400), np.uint8),
        np.random.default_rng(1).integers(0, 256, (600, 400), dtype=np.uint8),
        np.full((1, 5000), 255, np.uint8),
    ],
    ids=["white", "black", "noise", "strip"],
)
def test_no_text_means_no_confidence(image: np.ndarray) -> None:
    estimate = imaging.estimate_skew(image)
    assert estimate.confidence < 0.3
    assert -15.0 <= estimate.deskew_deg <= 15.0
    cleaned = imaging.clean_page(image)
    assert cleaned.report.deskew_deg == 0.0


# --- the real scans in the shared corpus --------------------------------------------------------
def baseline_skew(grey: np.ndarray, near_deg: float) -> float:
    """Independent skew measurement: straight-line fits through the centres of letter-sized
    connected components, grouped into text lines, median over the lines."""
    n, _, stats, centres = cv2.connectedComponentsWithStats((grey < 128).astype(np.uint8))
    heights = stats[1:, 3]
    typical = float(np.median(heights[heights > 3]))
    keep = [
        i for i in range(1, n) if 0.5 * typical < stats[i, 3] < 1.6 * typical and stats[i, 2] < 3 * typical
    ]
    xs, ys = centres[keep, 0], centres[keep, 1]
    offsets = ys - xs * np.tan(np.radians(near_deg))
    order = np.argsort(offsets)
    lines: list[list[int]] = [[int(order[0])]]
    for a, b in itertools.pairwise(order):
        if offsets[b] - offsets[a] > 0.6 * typical:
            lines.append([])
        lines[-1].append(int(b))
    slopes = []
    for line in lines:
        x, y = xs[line], ys[line]
        if len(line) >= 15 and np.ptp(x) > 0.3 * grey.shape[1]:
            slopes.append(np.degrees(np.arctan(np.polyfit(x, y, 1)[0])))
    return float(np.median(slopes))


# Whole-degree labels: three files within 0.3 degrees. deskew-1 is labelled -1.0 but its text
# lines are at -1.39 degrees (see test_corpus_label_of_deskew_1_is_rounded), so the best
# honest bound against its label is 0.45.
CORPUS_BOUND = {"deskew__deskew-1.png": 0.45}


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared skew corpus not mounted")
@pytest.mark.parametrize("name", [f"deskew__deskew-{i}.png" for i in range(1, 5)])
def test_corpus_skew(name: str) -> None:
    expected = json.loads((CORPUS / "angles.json").read_text())[name]["deskew_ccw_deg"]
    image = cv2.imread(str(CORPUS / name), cv2.IMREAD_UNCHANGED)
    estimate = imaging.estimate_skew(image)
    assert abs(estimate.deskew_deg - expected) <= CORPUS_BOUND.get(name, 0.3)
    assert estimate.confidence > 0.5
    cleaned = imaging.clean_page(image)
    assert cleaned.report.deskew_deg == pytest.approx(estimate.deskew_deg, abs=1e-9)
    x0, y0, x1, y1 = cleaned.report.crop_box
    assert cleaned.image.shape[:2] == (y1 - y0, x1 - x0)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared skew corpus not mounted")
def test_corpus_label_of_deskew_1_is_rounded() -> None:
    grey = cv2.imread(str(CORPUS / "deskew__deskew-1.png"), cv2.IMREAD_GRAYSCALE)
    estimate = imaging.estimate_skew(grey).deskew_deg
    measured = baseline_skew(grey, estimate)
    assert measured == pytest.approx(-1.39, abs=0.05)
    assert estimate == pytest.approx(measured, abs=0.05)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared skew corpus not mounted")
def test_corpus_book_page_on_black_background_is_cropped() -> None:
    image = cv2.imread(str(CORPUS / "deskew__deskew-4.png"), cv2.IMREAD_COLOR)
    cleaned = imaging.clean_page(image)
    assert cleaned.report.border_share > 0.15
    assert cleaned.report.colour
    assert cleaned.ocr_input.shape == cleaned.image.shape[:2]
    # What is kept is mostly paper.
    assert float((cleaned.ocr_input > 128).mean()) > 0.85


# --- clean_page -------------------------------------------------------------------------------
def test_clean_page_straightens_and_crops_a_sheet_on_the_bed() -> None:
    bed, angle = 60, 3.4
    page = text_page(5, margin=8)
    scan = skewed_scan(on_bed(page, bed), angle, fill=15)
    cleaned = imaging.clean_page(scan)
    report = cleaned.report
    assert report.deskew_deg == pytest.approx(angle, abs=0.1)
    canvas = imaging.rotate(scan, report.deskew_deg)
    oy, ox = ((np.array(canvas.shape) - scan.shape) // 2).tolist()
    sheet = (ox + bed, oy + bed, ox + bed + page.shape[1], oy + bed + page.shape[0])
    x0, y0, x1, y1 = report.crop_box
    # Never into the paper (one pixel of interpolation blur allowed), at most a few pixels out.
    assert sheet[0] - 4 <= x0 <= sheet[0] + 1
    assert sheet[1] - 4 <= y0 <= sheet[1] + 1
    assert sheet[2] - 1 <= x1 <= sheet[2] + 4
    assert sheet[3] - 1 <= y1 <= sheet[3] + 4
    assert np.array_equal(cleaned.image, canvas[y0:y1, x0:x1])
    kept = page.size / scan.size
    assert report.border_share == pytest.approx(1 - kept, abs=0.01)
    assert report.input_size == (scan.shape[1], scan.shape[0])
    assert report.output_size == (x1 - x0, y1 - y0)
    assert cleaned.ocr_input is cleaned.image
    assert max(cleaned.thumbnail.shape) == 320


def test_clean_page_keeps_a_borderless_page_whole() -> None:
    page = text_page(9)
    cleaned = imaging.clean_page(page)
    assert cleaned.report.deskew_deg == 0.0
    assert cleaned.report.crop_box == (0, 0, page.shape[1], page.shape[0])
    assert cleaned.report.border_share == 0.0
    assert np.array_equal(cleaned.image, page)


def test_clean_page_colour_reads_luma_and_red_under_the_seal() -> None:
    page = text_page(4, colour=True, extras=True)
    scan = skewed_scan(page, -2.0, frame=35)
    cleaned = imaging.clean_page(scan, thumbnail_max_side=200)
    assert cleaned.report.colour
    assert cleaned.image.ndim == 3
    (seal,) = cleaned.report.seal_boxes
    x0, y0, x1, y1 = seal
    luma = imaging.to_grey(cleaned.image)
    outside = np.ones(luma.shape, bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(cleaned.ocr_input[outside], luma[outside])
    # Inside the seal, the red channel: the seal fades, black text under it stays.
    assert np.array_equal(cleaned.ocr_input[y0:y1, x0:x1], cleaned.image[y0:y1, x0:x1, 2])
    assert cleaned.thumbnail.ndim == 3
    assert max(cleaned.thumbnail.shape[:2]) == 200
    assert cleaned.report.deskew_deg == pytest.approx(-2.0, abs=0.1)
    x0, y0, _, _ = cleaned.report.crop_box
    assert x0 > 0 and y0 > 0
    assert 0.0 < cleaned.report.border_share < 0.2


def test_clean_page_crop_is_robust_to_text_near_the_edges() -> None:
    page = text_page(21, margin=4)
    cv2.rectangle(page, (2, 2), (page.shape[1] - 3, page.shape[0] - 3), INK, 2)
    scan = on_bed(page, 50)
    cleaned = imaging.clean_page(scan)
    x0, y0, x1, y1 = cleaned.report.crop_box
    assert (x0, y0) <= (50, 50) and x0 >= 46 and y0 >= 46
    assert x1 >= 50 + page.shape[1] and y1 >= 50 + page.shape[0]


def test_clean_report_to_dict_is_json() -> None:
    cleaned = imaging.clean_page(skewed_scan(text_page(2), 1.2, frame=20))
    data = cleaned.report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {
        "deskew_deg",
        "skew_confidence",
        "orientation_deg",
        "orientation_confidence",
        "crop_box",
        "border_share",
        "seal_boxes",
        "blank",
        "phash",
        "metrics",
        "flags",
        "input_size",
        "output_size",
        "colour",
    }
    assert set(data["metrics"]) == {f.name for f in dataclasses.fields(imaging.PageMetrics)}
    assert data["phash"] == f"{cleaned.report.phash:016x}"
    assert set(data["flags"]) <= set(imaging.FLAGS)


def test_clean_page_threads_and_concurrency_give_identical_results() -> None:
    scan = skewed_scan(text_page(6, colour=True), 5.0, frame=25)
    single = imaging.clean_page(scan)
    double = imaging.clean_page(scan, threads=2)
    assert np.array_equal(single.image, double.image)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: imaging.clean_page(scan), range(4)))
    for result in results:
        assert np.array_equal(result.image, single.image)
        assert result.report == single.report


def test_kernels_release_the_gil() -> None:
    """A Python thread keeps running while another thread is inside a kernel."""
    big = np.full((3000, 3000), 200, np.uint8)
    ticks = 0
    done = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1

    counter = threading.Thread(target=count)
    counter.start()
    try:
        before = ticks
        for _ in range(3):
            imaging.rotate(big, 10.0)
        during = ticks - before
    finally:
        done.set()
        counter.join()
    assert during > 1000


# --- rotation ---------------------------------------------------------------------------------
def smooth_image(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    noise = np.random.default_rng(seed).random(shape).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), 3)
    return cv2.normalize(blurred, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


@pytest.mark.parametrize("angle", [0.3, -2.3, 7.0, 15.0, -44.0, 100.0, -170.0])
def test_rotate_matches_opencv(angle: float) -> None:
    image = smooth_image(1, (301, 402))
    rotated = imaging.rotate(image, angle)
    h, w = image.shape
    big_h, big_w = rotated.shape
    assert (big_h - h) % 2 == 0 and (big_w - w) % 2 == 0
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    matrix[:, 2] += ((big_w - w) / 2, (big_h - h) / 2)
    reference = cv2.warpAffine(image, matrix, (big_w, big_h), flags=cv2.INTER_LINEAR, borderValue=255)
    diff = np.abs(rotated.astype(int) - reference)
    assert diff.max() <= 3
    assert diff.mean() < 0.1
    colour = np.dstack([image, 255 - image, image // 2])
    rotated_colour = imaging.rotate(colour, angle)
    assert np.array_equal(rotated_colour[..., 0], rotated)


def test_rotate_holds_the_whole_page_with_white_corners() -> None:
    page = np.zeros((100, 60), np.uint8)
    rotated = imaging.rotate(page, 30.0)
    need_w = 60 * np.cos(np.radians(30)) + 100 * np.sin(np.radians(30))
    assert rotated.shape[1] >= need_w
    assert rotated[0, 0] == 255 and rotated[-1, -1] == 255
    assert (rotated == 0).sum() >= 0.95 * page.size


def test_rotate_there_and_back_restores_the_interior() -> None:
    image = smooth_image(2, (200, 300, 3))
    back = imaging.rotate(imaging.rotate(image, 12.5), -12.5)
    oy, ox = (back.shape[0] - 200) // 2, (back.shape[1] - 300) // 2
    inner = back[oy + 30 : oy + 170, ox + 30 : ox + 270].astype(int)
    assert np.abs(inner - image[30:170, 30:270]).max() <= 4


def test_rotate_by_zero_and_full_turns_is_exact() -> None:
    image = smooth_image(3, (50, 70))
    assert np.array_equal(imaging.rotate(image, 0.0), image)
    assert np.array_equal(imaging.rotate(image, 360.0), image)
    assert np.array_equal(imaging.rotate(image, 180.0), np.rot90(image, 2))


@pytest.mark.parametrize("turns", range(-5, 6))
@pytest.mark.parametrize("shape", [(7, 11), (7, 11, 3), (1, 9)])
def test_rotate_quarter_matches_rot90(turns: int, shape: tuple[int, ...]) -> None:
    image = np.random.default_rng(turns + 10).integers(0, 256, shape, dtype=np.uint8)
    turned = imaging.rotate_quarter(image, turns)
    assert np.array_equal(turned, np.rot90(image, turns))
    assert turned.flags.c_contiguous


# --- border, thumbnail, grey --------------------------------------------------------------------
def test_find_content_box_on_a_plain_scan_and_a_rotation_canvas() -> None:
    page = text_page(8, 600, 800)
    scan = on_bed(page, 40)
    assert imaging.find_content_box(scan) == pytest.approx((40, 40, 640, 840), abs=2)
    canvas = imaging.rotate(scan, 6.0)
    h, w = scan.shape
    box = imaging.find_content_box(canvas, source_size=(w, h), angle_deg=6.0)
    x0, y0, x1, y1 = box
    assert 0 < x0 < x1 <= canvas.shape[1] and 0 < y0 < y1 <= canvas.shape[0]
    kept = canvas[y0:y1, x0:x1]
    assert float((kept > 128).mean()) > 0.7
    with pytest.raises(ValueError, match="source_size"):
        imaging.find_content_box(canvas, angle_deg=6.0)
    with pytest.raises(ImageShapeError):
        imaging.find_content_box(canvas, source_size=(w + 50, h), angle_deg=6.0)


def test_find_content_box_without_border_is_the_whole_image() -> None:
    assert imaging.find_content_box(np.full((30, 40), 250, np.uint8)) == (0, 0, 40, 30)
    assert imaging.find_content_box(np.zeros((30, 40), np.uint8)) == (0, 0, 40, 30)


@pytest.mark.parametrize("shape", [(3508, 2480), (480, 640, 3), (100, 7), (2000, 1)])
def test_thumbnail_matches_area_resize(shape: tuple[int, ...]) -> None:
    image = smooth_image(4, shape)
    thumb = imaging.thumbnail(image, 320)
    h, w = shape[:2]
    assert max(thumb.shape[:2]) == min(320, max(h, w))
    if max(h, w) > 320:
        reference = cv2.resize(image, (thumb.shape[1], thumb.shape[0]), interpolation=cv2.INTER_AREA)
        reference = reference.reshape(thumb.shape)
        assert np.abs(thumb.astype(int) - reference).max() <= 2
    else:
        assert np.array_equal(thumb, image)


def test_to_grey_and_red_channel() -> None:
    image = np.random.default_rng(5).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    grey = imaging.to_grey(image)
    assert np.abs(grey.astype(int) - cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)).max() <= 1
    assert np.array_equal(imaging.red_channel(image), image[..., 2])
    plain = image[..., 0]
    assert np.array_equal(imaging.to_grey(plain), plain)
    assert np.array_equal(imaging.red_channel(plain), plain)


@pytest.mark.parametrize(
    "view",
    [
        lambda a: a[::2, ::3],
        lambda a: a[::-1],
        lambda a: a.swapaxes(0, 1),
        np.asfortranarray,
        lambda a: a[5:40, 3:30],
    ],
    ids=["strided", "reversed", "transposed", "fortran", "window"],
)
def test_non_contiguous_views_equal_their_copies(view: object) -> None:
    assert callable(view)
    base = smooth_image(6, (60, 48))
    image = view(base)
    copy = np.ascontiguousarray(image)
    assert np.array_equal(imaging.rotate(image, 3.0), imaging.rotate(copy, 3.0))
    assert np.array_equal(imaging.thumbnail(image, 16), imaging.thumbnail(copy, 16))
    assert imaging.estimate_skew(image) == imaging.estimate_skew(copy)
    colour = view(np.dstack([base, base, 255 - base]))
    assert np.array_equal(imaging.red_channel(colour), np.ascontiguousarray(colour[..., 2]))


# --- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.int8, np.bool_])
def test_wrong_dtype(dtype: type) -> None:
    with pytest.raises(ImageDtypeError, match="uint8"):
        imaging.clean_page(np.zeros((10, 10), dtype))


@pytest.mark.parametrize("shape", [(10,), (10, 10, 4), (10, 10, 1), (10, 10, 2), (2, 10, 10, 3)])
def test_wrong_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(ImageShapeError):
        imaging.to_grey(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("shape", [(0, 10), (10, 0), (0, 0, 3)])
def test_empty_image(shape: tuple[int, ...]) -> None:
    with pytest.raises(EmptyImageError):
        imaging.thumbnail(np.zeros(shape, np.uint8))


def test_bad_arguments() -> None:
    page = np.full((20, 20), 255, np.uint8)
    with pytest.raises(TypeError):
        imaging.to_grey([[1, 2], [3, 4]])  # type: ignore[arg-type]
    for bad in (0.0, -3.0, 46.0, float("nan")):
        with pytest.raises(ValueError, match="max skew"):
            imaging.estimate_skew(page, max_deg=bad)
    with pytest.raises(ValueError, match="finite"):
        imaging.rotate(page, float("inf"))
    with pytest.raises(ValueError, match="threads"):
        imaging.clean_page(page, threads=0)
    with pytest.raises(ValueError, match="thumbnail"):
        imaging.thumbnail(page, 0)
    with pytest.raises(ImageShapeError, match="limit"):
        imaging.rotate(np.zeros((1, 200_000), np.uint8), 45.0)
    assert issubclass(ImageDtypeError, ImageKernelError)


# --- no input may crash the process --------------------------------------------------------------
def arrays() -> st.SearchStrategy[np.ndarray]:
    shapes = st.one_of(
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=40),
        st.tuples(st.integers(0, 40), st.integers(0, 40), st.sampled_from([1, 2, 3, 4])),
        st.sampled_from([(1, 1), (1, 3000), (3000, 1), (2, 1500, 3), (5,), (2, 2, 2, 3)]),
    )
    dtypes = st.sampled_from([np.uint8, np.uint8, np.uint8, np.float32, np.uint16, np.int64])
    fills = st.sampled_from(["random", "black", "white", "text"])

    @st.composite
    def build(draw: st.DrawFn) -> np.ndarray:
        shape, dtype, fill = draw(shapes), draw(dtypes), draw(fills)
        if fill == "random":
            return draw(hnp.arrays(dtype, shape))
        value = 0 if fill == "black" else 255
        image = np.full(shape, value, dtype)
        if fill == "text" and len(shape) >= 2:
            image[1::4, 1::3] = 0
        return image

    layouts = st.sampled_from(["as_is", "transposed", "strided", "reversed"])

    @st.composite
    def laid_out(draw: st.DrawFn) -> np.ndarray:
        image, layout = draw(build()), draw(layouts)
        if image.ndim >= 2 and layout == "transposed":
            return image.swapaxes(0, 1)
        if image.ndim >= 2 and layout == "strided":
            return image[::2, ::2]
        if layout == "reversed":
            return image[::-1]
        return image

    return laid_out()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(image=arrays(), angle=st.floats(-400, 400), turns=st.integers(-9, 9), side=st.integers(1, 64))
def test_no_input_panics(image: np.ndarray, angle: float, turns: int, side: int) -> None:
    calls = [
        lambda: imaging.clean_page(image, thumbnail_max_side=side),
        lambda: imaging.estimate_skew(image),
        lambda: imaging.rotate(image, angle),
        lambda: imaging.rotate_quarter(image, turns),
        lambda: imaging.find_content_box(image),
        lambda: imaging.thumbnail(image, side),
        lambda: imaging.to_grey(image),
        lambda: imaging.red_channel(image),
        lambda: imaging.binarise(image, window=max(7, side)),
        lambda: imaging.despeckle(image, max_area=side, keep_radius=side),
        lambda: imaging.estimate_orientation(image),
        lambda: imaging.find_seals(image),
        lambda: imaging.phash(image),
        lambda: imaging.assess_page(image),
    ]
    valid = (
        image.dtype == np.uint8
        and image.ndim in (2, 3)
        and (image.ndim == 2 or image.shape[2] == 3)
        and image.size > 0
    )
    for call in calls:
        if valid:
            result = call()
            assert result is not None
        else:
            with pytest.raises(ImageKernelError):
                call()
    if valid:
        cleaned = imaging.clean_page(image, thumbnail_max_side=side)
        x0, y0, x1, y1 = cleaned.report.crop_box
        assert 0 <= x0 < x1 and 0 <= y0 < y1
        assert cleaned.image.shape[:2] == (y1 - y0, x1 - x0)
        assert max(cleaned.thumbnail.shape[:2]) <= side
        assert 0.0 <= cleaned.report.border_share <= 1.0
        assert 0.0 <= cleaned.report.skew_confidence <= 1.0
        assert cleaned.bilevel.shape == cleaned.image.shape[:2]
        assert cleaned.report.orientation_deg in (0, 90, 180, 270)
        assert set(cleaned.report.flags) <= set(imaging.FLAGS)
