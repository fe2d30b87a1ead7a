"""The synthetic scan generator: valid identities, faithful truth, files that match it, the skew
sign convention, determinism."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFont

from appliance.samples import (
    FORM_TITLES,
    SampleDocument,
    SamplePage,
    a4_size,
    degrade,
    find_cjk_font,
    generate_documents,
    id_check_digit,
    is_valid_id_number,
    load_truth,
    make_form_content,
    map_point,
    plan_documents,
    render_form_page,
    render_id_copy_page,
    render_table_page,
    valid_id_number,
    write_stream,
)
from appliance.samples import fonts as fonts_mod
from appliance.samples.fonts import load_font, missing_glyphs
from appliance.samples.identity import REGIONS, credit_code_check_char
from appliance.samples.writers import atomic_write

SEED = 20240607
COUNT = 8  # two of each format; the second TIFF is the bilevel G4 set
CJK = re.compile(r"[\u4e00-\u9fff]")


# --- helpers ----------------------------------------------------------------------------------
def file_pages(path: Path, fmt: str, dpi: int) -> list[Image.Image]:
    """Decode every page of a generated file, checking it really is ``fmt``."""
    if fmt == "pdf":
        assert path.read_bytes()[:5] == b"%PDF-"
        pdf = pdfium.PdfDocument(str(path))
        try:
            out = []
            for i in range(len(pdf)):
                page = pdf[i]
                w_pt, h_pt = page.get_size()
                assert w_pt == pytest.approx(210 / 25.4 * 72, abs=1.0)  # A4 at the declared resolution
                assert h_pt == pytest.approx(297 / 25.4 * 72, abs=1.0)
                img = page.render(scale=dpi / 72).to_pil()
                # pdfium rounds the pixel size up; crop back to the page the generator wrote
                out.append(img.crop((0, 0, round(w_pt * dpi / 72), round(h_pt * dpi / 72))))
            return out
        finally:
            pdf.close()
    with Image.open(path) as im:
        assert im.format == {"jpeg": "JPEG", "png": "PNG", "tiff": "TIFF"}[fmt]
        out = []
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            im.load()
            out.append(im.copy())
        return out


def estimate_deskew(img: Image.Image) -> float:
    """Counter-clockwise rotation (degrees) that best levels the text, by projection profile:
    the rotation under which the row sums of ink are sharpest. Independent of the generator."""
    grey = np.asarray(img.convert("L"))
    h, w = grey.shape
    crop = grey[int(h * 0.12) : int(h * 0.88), int(w * 0.15) : int(w * 0.85)]
    small = cv2.resize(crop, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    ink = (small < 128).astype(np.float32)
    sh, sw = ink.shape
    centre = (sw / 2.0, sh / 2.0)

    def score(angle: float) -> float:
        m = cv2.getRotationMatrix2D(centre, angle, 1.0)  # positive = counter-clockwise
        rows = cv2.warpAffine(ink, m, (sw, sh)).sum(axis=1)
        return float(np.sum(np.diff(rows) ** 2))

    coarse = max(np.arange(-6.0, 6.01, 0.25), key=score)
    return float(max(np.arange(coarse - 0.25, coarse + 0.251, 0.05), key=score))


def row_sorted(lines: list[tuple[str, tuple[int, int, int, int]]]) -> list[str]:
    """Reading order as the appliance sorts OCR lines (appliance/reading_order.py): rows by
    vertical centre within half the median line height, then left to right by centre."""
    heights = sorted(max(b[3] - b[1], 1) for _, b in lines)
    tol = 0.5 * heights[len(heights) // 2]
    rows: list[list[tuple[str, tuple[int, int, int, int]]]] = []
    row_y: list[float] = []
    for text, b in sorted(lines, key=lambda it: (it[1][1] + it[1][3]) / 2):
        y = (b[1] + b[3]) / 2
        if rows and abs(y - row_y[-1]) <= tol:
            rows[-1].append((text, b))
            row_y[-1] = sum((x[1][1] + x[1][3]) / 2 for x in rows[-1]) / len(rows[-1])
        else:
            rows.append([(text, b)])
            row_y.append(y)
    return [t for row in rows for t, _ in sorted(row, key=lambda it: (it[1][0] + it[1][2]) / 2)]


def ink_fraction(img: Image.Image, box: tuple[float, float, float, float]) -> float:
    grey = np.asarray(img.convert("L"))
    x0, y0, x1, y1 = (round(v) for v in box)
    region = grey[max(0, y0) : y1, max(0, x0) : x1]
    return float((region < 110).mean()) if region.size else 0.0


@pytest.fixture(scope="module")
def sample_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[SampleDocument]]:
    out = tmp_path_factory.mktemp("samples")
    return out, generate_documents(out, COUNT, seed=SEED, dpi=200)


# --- identities -------------------------------------------------------------------------------
def test_check_digit_matches_published_examples() -> None:
    # GB 11643-1999 worked examples, and a 统一社会信用代码 from GB 32100-2015's annex
    assert id_check_digit("11010519491231002") == "X"
    assert id_check_digit("44052418800101001") == "4"
    assert is_valid_id_number("11010519491231002X")
    assert not is_valid_id_number("110105194912310021")
    assert not is_valid_id_number("110105194902300028")  # 30 February
    assert credit_code_check_char("91350100M000100Y4") == "3"
    with pytest.raises(ValueError, match="17 digits"):
        id_check_digit("1234")


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    birth=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2024, 12, 31)),
    sex=st.sampled_from(["男", "女"]),
)
def test_generated_id_numbers_are_valid(seed: int, birth: dt.date, sex: str) -> None:
    number = valid_id_number(random.Random(seed), birth, sex=sex)
    assert re.fullmatch(r"\d{17}[\dX]", number)
    assert number[6:14] == birth.strftime("%Y%m%d")
    assert number[:6] in {r.code for r in REGIONS}
    assert int(number[16]) % 2 == (1 if sex == "男" else 0)
    # ISO 7064 MOD 11-2, computed independently of the lookup table: sum(a_i * 2^(17-i)) = 1 mod 11
    values = [10 if c == "X" else int(c) for c in number]
    assert sum(v * pow(2, 17 - i, 11) for i, v in enumerate(values)) % 11 == 1
    assert is_valid_id_number(number)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32), pos=st.integers(0, 16), delta=st.integers(1, 9))
def test_any_single_digit_error_changes_the_check_digit(seed: int, pos: int, delta: int) -> None:
    number = valid_id_number(random.Random(seed), dt.date(1985, 6, 12))
    digits = list(number[:17])
    digits[pos] = str((int(digits[pos]) + delta) % 10)
    assert id_check_digit("".join(digits)) != number[17]


# --- fonts ------------------------------------------------------------------------------------
def test_cjk_font_is_found_and_missing_fonts_name_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    path, _index = find_cjk_font()
    assert path.is_file()
    find_cjk_font.cache_clear()
    try:
        monkeypatch.setattr(fonts_mod, "_SANS_CANDIDATES", (("/nonexistent/font.ttc", 0),))
        monkeypatch.setattr(fonts_mod.shutil, "which", lambda _name: None)
        with pytest.raises(fonts_mod.MissingFontError, match="fonts-wqy-zenhei"):
            find_cjk_font()
    finally:
        find_cjk_font.cache_clear()


def test_glyph_check_catches_characters_outside_the_font() -> None:
    font = load_font("sans", 32)
    assert missing_glyphs(font, "居民身份证申领登记表，。：0123X") == set()
    assert missing_glyphs(font, "证\U00020000") == {"\U00020000"}  # CJK extension B, not in GB 2312


# --- rendered pages ---------------------------------------------------------------------------
@pytest.mark.parametrize("title", FORM_TITLES)
def test_every_form_type_renders_with_consistent_truth(title: str) -> None:
    rng = random.Random(title)
    content = make_form_content(rng, title=title)
    img, page = render_form_page(rng, dpi=200, content=content, seal=True)
    assert img.size == a4_size(200) == (1654, 2339) == (page.width, page.height)
    texts = [ln.text for ln in page.lines]
    p = content.person
    for expected in (title, p.name, p.id_number, p.phone, p.address, content.matter, content.unit_name):
        assert expected in texts, expected
    assert content.declaration[:8] in page.text and "审核意见" in page.text
    assert is_valid_id_number(p.id_number) and p.id_number[6:14] == p.birth_date.strftime("%Y%m%d")
    assert re.fullmatch(r"1[3-9]\d{9}", p.phone)
    assert p.address.startswith(p.region.full_name)
    # every character has a real glyph in both faces the generator may use
    for style in ("sans", "serif"):
        assert missing_glyphs(load_font(style, 32), page.text) == set()
    # body text is at least ~11 pt at 200 dpi; boxes lie on the page and hold ink
    grey = img.convert("L")
    for ln in page.lines:
        x0, y0, x1, y1 = ln.box
        assert 0 <= x0 < x1 <= page.width and 0 <= y0 < y1 <= page.height
        if CJK.search(ln.text):
            assert y1 - y0 >= 30, ln
        assert ink_fraction(grey, ln.box) > 0.04, ln
    # the seal is red, and it is stamped over printed text (which stays in the truth)
    (seal,) = page.seal_boxes
    assert any(
        ln.box[0] < seal[2] and seal[0] < ln.box[2] and ln.box[1] < seal[3] and seal[1] < ln.box[3]
        for ln in page.lines
    )
    rgb = np.asarray(img)[seal[1] : seal[3], seal[0] : seal[2]].astype(int)
    red = (rgb[..., 0] > 150) & (rgb[..., 0] - rgb[..., 1] > 50) & (rgb[..., 0] - rgb[..., 2] > 40)
    assert red.mean() > 0.1
    assert page.kind == "form" and page.colour and page.mode == "RGB"


def test_lines_are_in_reading_order_for_every_page_kind() -> None:
    rng = random.Random(5)
    content = make_form_content(rng)
    pages = [
        render_form_page(rng, dpi=200, content=content, footer="第1页/共3页")[1],
        render_table_page(rng, dpi=200, content=content, seal=True)[1],
        render_id_copy_page(rng, dpi=200, person=content.person, matter=content.matter)[1],
    ]
    for page in pages:
        assert len(page.lines) >= 15
        pairs = [(ln.text, ln.box) for ln in page.lines]
        assert row_sorted(pairs) == [ln.text for ln in page.lines], page.kind
        assert page.text == "\n".join(ln.text for ln in page.lines)


def test_300_dpi_pages_are_a4_at_300_dpi() -> None:
    img, page = render_form_page(random.Random(1), dpi=300)
    assert img.size == (2480, 3508) and page.dpi == 300
    # text scales with the resolution: 1.5x the 200 dpi minimum of 30 px, give or take rounding
    assert min(ln.box[3] - ln.box[1] for ln in page.lines if CJK.search(ln.text)) >= 43


# --- degradation and the skew convention ------------------------------------------------------
@pytest.fixture(scope="module")
def clean_form() -> tuple[Image.Image, SamplePage]:
    return render_form_page(random.Random(11), dpi=200, seal=True)


@pytest.mark.parametrize("skew", [3.0, -2.0, 4.5])
def test_deskew_sign_convention(clean_form: tuple[Image.Image, SamplePage], skew: float) -> None:
    img, page = clean_form
    scanned, report = degrade(img, random.Random(1), skew_deg=skew, borders=False, mode="L")
    assert report["deskew_deg"] == pytest.approx(skew)
    measured = estimate_deskew(scanned)
    assert measured == pytest.approx(skew, abs=0.5)
    # positive means the lines descend to the right: follow a long truth line through the affine
    longest = max(page.lines, key=lambda ln: ln.box[2] - ln.box[0])
    x0, y0, x1, _ = longest.box
    _, left_y = map_point(report["affine"], x0, y0)
    _, right_y = map_point(report["affine"], x1, y0)
    assert (right_y - left_y > 0) == (skew > 0)
    # and turning the scan counter-clockwise by deskew_deg (PIL: positive = CCW) levels it
    straightened = scanned.rotate(report["deskew_deg"], resample=Image.Resampling.BILINEAR, fillcolor=255)
    assert estimate_deskew(straightened) == pytest.approx(0.0, abs=0.3)


def test_affine_maps_truth_boxes_onto_the_scanned_text(clean_form: tuple[Image.Image, SamplePage]) -> None:
    img, page = clean_form
    scanned, report = degrade(img, random.Random(2), skew_deg=0.0, borders=True, upside_down=True, mode="L")
    assert report["borders"] and report["upside_down"]
    hits = 0
    for ln in page.lines:
        affine = report["affine"]
        (ax, ay), (bx, by) = map_point(affine, *ln.box[:2]), map_point(affine, *ln.box[2:])
        box = (min(ax, bx) + 2, min(ay, by) + 2, max(ax, bx) - 2, max(ay, by) - 2)
        hits += ink_fraction(scanned, box) > 0.04
    assert hits >= 0.95 * len(page.lines)
    # the same boxes without the 180° turn land on empty paper far more often
    misses = sum(ink_fraction(scanned, ln.box) <= 0.04 for ln in page.lines)
    assert misses > 0.5 * len(page.lines)


def test_degrade_effects_are_reported_and_honoured(clean_form: tuple[Image.Image, SamplePage]) -> None:
    img, _ = clean_form
    bilevel, rep = degrade(img, random.Random(3), mode="1", borders=True)
    assert bilevel.mode == "1" and rep["mode"] == "1" and rep["jpeg_quality"] == 0
    assert -5.0 <= rep["skew_deg"] <= 5.0
    grey, rep = degrade(img, random.Random(3), mode="L", jpeg_quality=70, borders=True, skew_deg=0.0)
    assert grey.mode == "L" and rep["jpeg_quality"] == 70
    arr = np.asarray(grey)
    for edge, width in rep["borders"].items():  # the scanner bed shows dark along those edges
        band = {
            "left": arr[:, : width - 1],
            "right": arr[:, -width + 1 :],
            "top": arr[: width - 1],
            "bottom": arr[-width + 1 :],
        }[edge]
        assert band.mean() < 90, edge
    assert np.median(arr[300:-300, 300:-300]) > 200  # paper stays light
    colour, rep = degrade(
        img,
        random.Random(3),
        mode="RGB",
        skew_deg=0.0,
        borders=False,
        paper_tone=False,
        bleed_through=False,
        noise_sigma=0,
        specks=0,
        blur_sigma=0,
        jpeg_quality=0,
    )
    assert colour.mode == "RGB" and np.array_equal(np.asarray(colour), np.asarray(img))
    with pytest.raises(ValueError, match="mode"):
        degrade(img, random.Random(3), mode="CMYK")


# --- generated sets ---------------------------------------------------------------------------
def test_plan_has_one_upside_down_page_blanks_and_a_g4_set() -> None:
    plans = plan_documents(20, seed=4)
    assert [p.format for p in plans[:4]] == ["jpeg", "png", "tiff", "pdf"]
    assert sum(p.upside_down_page is not None for p in plans) == 1
    flipped = next(p for p in plans if p.upside_down_page is not None)
    assert flipped.kinds[flipped.upside_down_page or 0] != "blank"
    assert any("blank" in p.kinds for p in plans)
    assert any(p.bilevel and p.format == "tiff" for p in plans)
    assert all(1 <= len(p.kinds) <= 4 and p.kinds[0] == "form" for p in plans)
    assert all(len(p.kinds) == 1 for p in plans if p.format in ("jpeg", "png"))
    quiet = plan_documents(20, seed=4, include_blank=False, include_upside_down=False)
    assert not any("blank" in p.kinds or p.upside_down_page is not None for p in quiet)
    with pytest.raises(ValueError, match="formats"):
        plan_documents(3, formats=["gif"])


def test_truth_json_matches_the_files(sample_set: tuple[Path, list[SampleDocument]]) -> None:
    out, docs = sample_set
    assert len(docs) == COUNT
    raw = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    assert raw["seed"] == SEED and len(raw["documents"]) == COUNT
    assert [d.to_dict() for d in load_truth(out)] == [d.to_dict() for d in docs]
    assert sorted(p.name for p in out.iterdir()) == sorted([d.filename for d in docs] + ["truth.json"])
    assert {d.format for d in docs} == {"jpeg", "png", "tiff", "pdf"}
    assert {d.compression for d in docs} >= {"jpeg", "png", "tiff_lzw", "group4", "pdf_dct"}
    for doc in docs:
        path = out / doc.filename
        images = file_pages(path, doc.format, 200)
        assert len(images) == len(doc.pages) >= 1, doc.filename
        if doc.format == "tiff":
            with Image.open(path) as im:
                for i in range(im.n_frames):
                    im.seek(i)
                    assert im.info["compression"] == doc.compression
        for img, page in zip(images, doc.pages, strict=True):
            assert img.size == (page.width, page.height) == (1654, 2339)
            if doc.format != "pdf":  # pdfium renders every page as RGB
                assert img.mode == page.mode
            assert page.colour == (page.mode == "RGB")
            if page.seal_boxes:
                assert page.colour
            if page.blank:
                assert page.lines == [] and page.text == ""
            else:
                assert page.lines and page.text
        fields = doc.fields
        assert is_valid_id_number(fields["id_number"])
        assert fields["id_number"][6:14] == fields["birth_date"].replace("-", "")
        form_text = doc.pages[0].text
        for key in ("title", "name", "id_number", "phone", "address", "matter"):
            assert fields[key] in form_text, key
        assert fields["apply_date"][:4] in form_text


def test_set_level_specials(sample_set: tuple[Path, list[SampleDocument]]) -> None:
    _, docs = sample_set
    pages = [p for d in docs for p in d.pages]
    assert sum(p.upside_down for p in pages) == 1
    assert any(p.blank for p in pages)
    assert any(p.colour for p in pages) and any(not p.colour for p in pages)
    g4 = [d for d in docs if d.compression == "group4"]
    assert g4 and all(p.mode == "1" and not p.seal_boxes for d in g4 for p in d.pages)
    assert all(-5.0 <= p.deskew_deg <= 5.0 for p in pages)
    assert len({round(p.deskew_deg, 2) for p in pages}) > len(pages) // 2


def test_skew_of_written_pages_matches_truth(sample_set: tuple[Path, list[SampleDocument]]) -> None:
    out, docs = sample_set
    checked = 0
    for doc in docs:
        for img, page in zip(file_pages(out / doc.filename, doc.format, 200), doc.pages, strict=True):
            if page.blank or page.kind != "form":
                continue
            assert estimate_deskew(img) == pytest.approx(page.deskew_deg, abs=0.5), doc.filename
            checked += 1
    assert checked >= COUNT - 1


def test_upside_down_page_really_is_turned(sample_set: tuple[Path, list[SampleDocument]]) -> None:
    out, docs = sample_set
    doc = next(d for d in docs if any(p.upside_down for p in d.pages))
    k = next(i for i, p in enumerate(doc.pages) if p.upside_down)
    img = file_pages(out / doc.filename, doc.format, 200)[k].convert("L")
    page = doc.pages[k]
    title = page.lines[0]
    assert title.box[1] < page.height * 0.2  # the title is printed near the top ...
    cx, cy = (title.box[0] + title.box[2]) / 2, (title.box[1] + title.box[3]) / 2
    x, y = map_point(page.degradations["affine"], cx, cy)
    assert y > page.height * 0.8  # ... and sits near the bottom of the scan
    r = 25
    assert ink_fraction(img, (x - 8 * r, y - r, x + 8 * r, y + r)) > 0.05


def test_generation_is_deterministic(tmp_path: Path) -> None:
    first = generate_documents(tmp_path / "a", 3, seed=77, dpi=200, formats=("png", "tiff", "pdf"))
    again = generate_documents(tmp_path / "b", 3, seed=77, dpi=200, formats=("png", "tiff", "pdf"))
    assert [d.to_dict() for d in again] == [d.to_dict() for d in first]
    assert (tmp_path / "a" / "truth.json").read_bytes() == (tmp_path / "b" / "truth.json").read_bytes()
    for doc in first:
        assert (tmp_path / "a" / doc.filename).read_bytes() == (tmp_path / "b" / doc.filename).read_bytes()
    other = generate_documents(tmp_path / "c", 3, seed=78, dpi=200, formats=("png", "tiff", "pdf"))
    assert [d.fields for d in other] != [d.fields for d in first]
    assert (tmp_path / "c" / "scan-001.png").read_bytes() != (tmp_path / "a" / "scan-001.png").read_bytes()


def test_stream_drops_files_one_by_one_without_temporaries(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    truth = tmp_path / "truth.json"
    seen = []
    for doc in write_stream(inbox, 3, seed=9, interval_s=0.0, formats=("jpeg", "pdf"), truth_path=truth):
        names = sorted(p.name for p in inbox.iterdir())
        seen.append(doc.filename)
        assert names == sorted(seen), "exactly the finished files, nothing half-written or extra"
        assert [d.filename for d in load_truth(truth)] == seen
    assert seen == ["scan-001.jpg", "scan-002.pdf", "scan-003.jpg"]


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "scan.jpg"

    def boom(fh: object) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, boom)
    assert list(tmp_path.iterdir()) == []
    atomic_write(target, lambda fh: None)
    assert [p.name for p in tmp_path.iterdir()] == ["scan.jpg"]


def test_font_objects_are_truetype() -> None:
    assert isinstance(load_font("serif", 33), ImageFont.FreeTypeFont)
    with pytest.raises(ValueError, match="style"):
        load_font("cursive", 33)
