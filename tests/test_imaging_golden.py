"""Golden tests of ``imaging.clean_page`` on generated scans whose truth is known (skew,
orientation, blank, seals) and on the real files of the shared corpus."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from appliance import imaging
from appliance.samples import (
    SamplePage,
    degrade,
    make_form_content,
    map_point,
    render_blank_page,
    render_form_page,
    render_id_copy_page,
    render_table_page,
)

OCR_CORPUS = Path("/work/shared/corpus/ocr")


@dataclass(frozen=True)
class Case:
    kind: str  # "form", "table", "id_copy", "blank", "blank_label", "blank_ghost"
    dpi: int
    mode: str  # "RGB", "L" or "1"
    skew: float
    upside_down: bool = False
    seal: bool = False


CASES = [
    Case("form", 200, "RGB", 2.7, seal=True),
    Case("form", 200, "RGB", -4.1, upside_down=True, seal=True),
    Case("form", 200, "L", 0.4),
    Case("form", 200, "L", -11.5, upside_down=True),
    Case("form", 200, "1", 6.2),
    Case("form", 300, "RGB", -1.3, seal=True),
    Case("form", 300, "L", 3.6, upside_down=True),
    Case("table", 200, "L", -2.2),
    Case("table", 200, "RGB", 1.1, upside_down=True, seal=True),
    Case("table", 200, "1", -0.6, upside_down=True),
    Case("id_copy", 200, "L", 4.8),
    Case("id_copy", 200, "RGB", -3.3, upside_down=True),
    Case("id_copy", 200, "1", 0.9),
    Case("blank", 200, "L", 1.8),
    Case("blank_label", 200, "L", -2.4),
    Case("blank_ghost", 200, "RGB", 0.7),
    Case("blank", 200, "1", -1.0),
]


@dataclass
class Scan:
    case: Case
    image: np.ndarray
    page: SamplePage
    affine: list[float]


def make_scan(index: int, case: Case) -> Scan:
    rng = random.Random(f"imaging-golden:{index}")
    content = make_form_content(rng)
    ghost = None
    if case.kind == "form":
        img, page = render_form_page(rng, dpi=case.dpi, content=content, seal=case.seal)
    elif case.kind == "table":
        img, page = render_table_page(rng, dpi=case.dpi, content=content, seal=case.seal)
    elif case.kind == "id_copy":
        img, page = render_id_copy_page(rng, dpi=case.dpi, person=content.person, matter=content.matter)
    else:
        label = "第2页" if case.kind == "blank_label" else None
        img, page = render_blank_page(rng, dpi=case.dpi, label=label)
        if case.kind == "blank_ghost":  # the back of a form: its print shows through
            ghost, _ = render_form_page(rng, dpi=case.dpi, content=content, seal=False)
    scanned, report = degrade(
        img,
        rng,
        skew_deg=case.skew,
        upside_down=case.upside_down,
        borders=True,
        mode=case.mode,
        bleed_through=ghost is not None,
        bleed_source=ghost,
        specks=60,
        keep_clear=[line.box for line in page.lines],
    )
    pixels = np.asarray(scanned.convert("L") if case.mode != "RGB" else scanned)
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    return Scan(case, np.ascontiguousarray(pixels), page, report["affine"])


@pytest.fixture(scope="module")
def scans() -> list[Scan]:
    return [make_scan(i, case) for i, case in enumerate(CASES)]


@pytest.fixture(scope="module")
def cleaned(scans: list[Scan]) -> list[imaging.CleanedPage]:
    return [imaging.clean_page(scan.image) for scan in scans]


def has_text(scan: Scan) -> bool:
    return not scan.case.kind.startswith("blank")


def test_skew_accuracy(scans: list[Scan], cleaned: list[imaging.CleanedPage]) -> None:
    errors = [
        abs(c.report.deskew_deg - s.case.skew) for s, c in zip(scans, cleaned, strict=True) if has_text(s)
    ]
    assert float(np.median(errors)) <= 0.1
    assert max(errors) <= 0.3, errors


def test_orientation_on_every_page_with_text(scans: list[Scan], cleaned: list[imaging.CleanedPage]) -> None:
    for scan, page in zip(scans, cleaned, strict=True):
        want = 180 if scan.case.upside_down else 0
        if has_text(scan):
            assert page.report.orientation_deg == want, scan.case
            assert ("upside_down" in page.report.flags) == scan.case.upside_down
        else:
            assert page.report.orientation_deg == 0, scan.case


def test_blank_pages_and_only_them(scans: list[Scan], cleaned: list[imaging.CleanedPage]) -> None:
    for scan, page in zip(scans, cleaned, strict=True):
        assert page.report.blank == (not has_text(scan)), scan.case
        assert ("blank" in page.report.flags) == page.report.blank


def canvas_size(width: int, height: int, angle_deg: float) -> tuple[int, int]:
    """The canvas of ``imaging.rotate`` (see ``Rotation::new`` in native/src/geometry.rs)."""
    a = math.radians(angle_deg)
    need_w = width * abs(math.cos(a)) + height * abs(math.sin(a))
    need_h = width * abs(math.sin(a)) + height * abs(math.cos(a))

    def grow(size: int, need: float) -> int:
        return max(1, size + 2 * math.ceil((need - size) / 2 - 1e-9))

    return grow(width, need_w), grow(height, need_h)


def to_cleaned(scan: Scan, report: imaging.CleanReport, x: float, y: float) -> tuple[float, float]:
    """An upright-page point of the truth, on the cleaned page."""
    sx, sy = map_point(scan.affine, x, y)
    h, w = scan.image.shape[:2]
    angle = report.orientation_deg + report.deskew_deg
    cw, ch = canvas_size(w, h, angle)
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    dx, dy = sx - (w - 1) / 2, sy - (h - 1) / 2
    cx = c * dx + s * dy + (cw - 1) / 2
    cy = -s * dx + c * dy + (ch - 1) / 2
    return cx - report.crop_box[0], cy - report.crop_box[1]


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area if area > 0 else 0.0


def test_seals_are_found_where_they_were_stamped(
    scans: list[Scan], cleaned: list[imaging.CleanedPage]
) -> None:
    for scan, page in zip(scans, cleaned, strict=True):
        truth = [b for b in scan.page.seal_boxes if b[2] > b[0]]
        assert len(page.report.seal_boxes) == len(truth), scan.case
        assert ("seal" in page.report.flags) == bool(truth)
        for found, box in zip(page.report.seal_boxes, truth, strict=True):
            corners = [to_cleaned(scan, page.report, x, y) for x in box[::2] for y in box[1::2]]
            xs, ys = [p[0] for p in corners], [p[1] for p in corners]
            assert iou(tuple(map(float, found)), (min(xs), min(ys), max(xs), max(ys))) >= 0.6, scan.case


def test_seals_stay_visible_in_the_bilevel_copy(
    scans: list[Scan], cleaned: list[imaging.CleanedPage]
) -> None:
    sealed = [(s, c) for s, c in zip(scans, cleaned, strict=True) if c.report.seal_boxes]
    assert sealed
    for _, page in sealed:
        x0, y0, x1, y1 = page.report.seal_boxes[0]
        halftone = float((page.bilevel[y0:y1, x0:x1] == 0).mean())
        plain = imaging.clean_page(page.image, seal_halftone=False, orientation=False)
        without = float((plain.bilevel[y0:y1, x0:x1] == 0).mean())
        assert halftone > without + 0.03


def test_flags_of_ordinary_scans(scans: list[Scan], cleaned: list[imaging.CleanedPage]) -> None:
    for scan, page in zip(scans, cleaned, strict=True):
        flags = set(page.report.flags)
        assert not flags & {"blurry", "too_dark", "low_dpi", "sideways"}, (scan.case, flags)
        assert ("skewed" in flags) == (has_text(scan) and abs(scan.case.skew) > 3), scan.case
        m = page.report.metrics
        assert m.effective_dpi == pytest.approx(scan.case.dpi, rel=0.06)
        assert m.residual_skew_deg == pytest.approx(m.skew_deg - page.report.deskew_deg)
        if has_text(scan):
            assert 0.005 < m.ink_coverage < 0.2
            assert m.sharpness > 0.3 and m.blur_mm < 0.15
            assert m.contrast > 0.3
        assert (m.colour_share > 0.001) == (scan.case.mode == "RGB" and scan.case.seal), scan.case


def test_a_rescan_keeps_its_hash_and_other_pages_do_not(scans: list[Scan]) -> None:
    first = scans[0]
    again = make_scan(0, Case("form", 200, "RGB", -1.7, seal=True))  # same page, fed again
    h1 = imaging.clean_page(first.image).report.phash
    h2 = imaging.clean_page(again.image).report.phash
    assert imaging.hamming(h1, h2) <= 6
    others = [imaging.clean_page(s.image).report.phash for s in scans[1:] if has_text(s)]
    assert min(imaging.hamming(h1, h) for h in others) >= 10


# --- real files ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ocr_engine() -> Any:
    from appliance.ocr import load_engine
    from appliance.settings import OcrSettings

    return load_engine(OcrSettings())


@pytest.mark.skipif(not OCR_CORPUS.is_dir(), reason="shared OCR corpus not mounted")
@pytest.mark.parametrize("name", sorted(p.name for p in OCR_CORPUS.glob("*") if p.suffix in {".jpg", ".png"}))
def test_clean_page_keeps_all_text_of_the_ocr_corpus(name: str, tmp_path: Path, ocr_engine: Any) -> None:
    """Decoded as the pipeline decodes them, cleaned, then read: the truth is still there
    (the border crop must not cut into a small photo of a sign, for one)."""
    from appliance.decoding import decode_file
    from appliance.reading_order import sort_lines
    from appliance.settings import DecodeLimits

    truth = json.loads((OCR_CORPUS / "truth.json").read_text(encoding="utf-8"))[name]
    (page,) = decode_file(OCR_CORPUS / name, DecodeLimits(), tmp_path)
    cleaned = imaging.clean_page(page.load())
    x0, y0, x1, y1 = cleaned.report.crop_box
    assert (x1 - x0) * (y1 - y0) >= 0.9 * page.width * page.height
    lines = [line.text for line in sort_lines(ocr_engine.read(cleaned.ocr_input).lines)]
    text = "".join(lines)
    for expected in truth.get("lines", []):
        assert expected in text, lines
    if "first_line" in truth:
        assert lines and lines[0] == truth["first_line"], lines
    for expected in truth.get("must_contain", []):
        assert expected in text, lines


def test_the_bilevel_copy_reads_at_least_as_well_as_the_raw_scan(
    scans: list[Scan], cleaned: list[imaging.CleanedPage], ocr_engine: Any
) -> None:
    """OCR reads the cleaned grey page; the bilevel archive copy must not lose text either."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from ocr_metrics import cer

    from appliance.reading_order import sort_lines

    def read(image: np.ndarray) -> str:
        return "\n".join(line.text for line in sort_lines(ocr_engine.read(image).lines))

    chosen = [0, 3]  # a colour form with a seal, an upside-down grey form skewed by 11.5 degrees
    raw = []
    for i in chosen:
        page = scans[i].image
        page = page[..., 2] if page.ndim == 3 else page
        if scans[i].case.upside_down:  # turned by the truth, so the line order compares
            page = np.ascontiguousarray(page[::-1, ::-1])
        raw.append((read(page), scans[i].page.text))
    bilevel = [(read(cleaned[i].bilevel), scans[i].page.text) for i in chosen]
    assert cer(bilevel) <= cer(raw)
    assert cer(bilevel) <= 0.03
