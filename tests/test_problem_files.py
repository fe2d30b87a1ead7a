"""The shared corpus of real awkward and hostile files (Pillow's test suite, RapidOCR's inputs): each
must have the outcome ``problem_files/notes.json`` asks of a robust ingester, decoded in this process
and in the sandbox alike."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from appliance.decoding import DecodedPage, decode_file, decode_sandboxed
from appliance.errors import CorruptFile, DecodeError, UnsupportedFormat
from appliance.settings import DecodeLimits

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
PROBLEMS = CORPUS / "problem_files"
OCR = CORPUS / "ocr"
LIMITS = DecodeLimits()


@dataclass(frozen=True)
class Pages:
    sizes: list[tuple[int, int]]  # (width, height) per page
    channels: int
    source: str
    dpi: tuple[float, float] | None
    orientation: int = 0


@dataclass(frozen=True)
class Fails:
    error: type[DecodeError]
    code: str
    says: str = ""


EXPECTED: dict[str, Pages | Fails] = {
    "pillow__pport_g4.tif": Pages([(2548, 3296)], 1, "tiff/group4", (200, 200)),
    "pillow__g4-multi.tiff": Pages([(3307, 4677)] * 3, 1, "tiff/group4", (400, 400)),
    "pillow__multipage.tiff": Pages([(10, 10), (10, 10), (20, 20)], 3, "tiff/raw", None),
    "pillow__g4_orientation_6.tif": Pages([(590, 88)], 1, "tiff/group4", (96, 96), orientation=270),
    "pillow__hopper_orientation_3.jpg": Pages([(128, 128)], 3, "jpeg", (72, 72), orientation=180),
    "pillow__hopper_orientation_6.jpg": Pages([(128, 128)], 3, "jpeg", (72, 72), orientation=270),
    "pillow__hopper_orientation_8.jpg": Pages([(128, 128)], 3, "jpeg", (72, 72), orientation=90),
    "pillow__pil_sample_cmyk.jpg": Pages([(100, 100)], 3, "jpeg", (72, 72)),
    "pillow__tiff_strip_cmyk_jpeg.tif": Pages([(100, 100)], 3, "tiff/jpeg", (72, 72)),
    "pillow__16bit.cropped.tif": Pages([(64, 64)], 1, "tiff/raw", None),  # "1 dpi" is a placeholder
    "pillow__old-style-jpeg-compression.tif": Pages([(4160, 870)], 3, "tiff/ojpeg", (300, 300)),
    "pillow__photoshop-200dpi.jpg": Pages([(200, 200)], 3, "jpeg", (200, 200)),
    "pillow__truncated_jpeg.jpg": Fails(CorruptFile, "truncated", "truncated"),
    "pillow__truncated_image.png": Fails(CorruptFile, "truncated", "truncated"),
    # refused by its magic bytes before Pillow ever reads the 4.36-gigapixel header
    "pillow__decompression_bomb.gif": Fails(UnsupportedFormat, "unsupported_format", "GIF"),
    # its first directory runs past the end of the 88-byte file
    "pillow__oom-225817ca0f8c663be7ab4b9e717b02c661e66834.tif": Fails(CorruptFile, "truncated"),
    "pillow__seek_too_large.tif": Fails(CorruptFile, "corrupt_file"),
    # a directory entry claims more data than the file holds: refused before libtiff decodes it
    "pillow__crash-0c7e0e8e11ce787078f00b5b0ca409a167f070e0.tif": Fails(CorruptFile, "damaged_metadata"),
    "rapidocr__black_font_color_transparent.png": Pages([(1890, 503)], 3, "png", (299.999, 299.999)),
    "rapidocr__img_exif_orientation.jpg": Pages([(752, 306)], 3, "jpeg", (72, 72), orientation=180),
    "rapidocr__ch_en_num.jpg": Pages([(323, 430)], 3, "jpeg", None),
    "rapidocr__text_cls.jpg": Pages([(136, 48)], 3, "jpeg", None),
    "rapidocr__text_rec.jpg": Pages([(362, 78)], 3, "jpeg", None),
}

Decoder = Callable[[Path], list[DecodedPage]]


@pytest.fixture(params=["in-process", "sandboxed"])
def decoder(request: pytest.FixtureRequest, tmp_path: Path) -> Decoder:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    run = decode_file if request.param == "in-process" else decode_sandboxed
    return lambda path: run(path, LIMITS, scratch)


def corpus_file(name: str) -> Path:
    return (OCR if name.startswith("rapidocr__") else PROBLEMS) / name


def arrays(decoder: Decoder, path: Path) -> list[np.ndarray]:
    return [p.load() for p in decoder(path)]


def with_orientation(data: bytes, value: int) -> bytes:
    """The same file with its EXIF/TIFF Orientation tag (IFD0) set to ``value``."""
    start = 0 if data[:2] in (b"II", b"MM") else data.index(b"Exif\x00\x00") + 6
    endian = "<" if data[start : start + 2] == b"II" else ">"
    (ifd,) = struct.unpack_from(endian + "I", data, start + 4)
    (count,) = struct.unpack_from(endian + "H", data, start + ifd)
    for i in range(count):
        entry = start + ifd + 2 + 12 * i
        if struct.unpack_from(endian + "H", data, entry)[0] == 0x0112:
            out = bytearray(data)
            struct.pack_into(endian + "H", out, entry + 8, value)
            return bytes(out)
    raise AssertionError("no orientation tag")


def test_every_corpus_file_has_an_expectation() -> None:
    notes = json.loads((PROBLEMS / "notes.json").read_text(encoding="utf-8"))
    on_disk = {p.name for p in PROBLEMS.iterdir() if p.name != "notes.json"}
    on_disk |= {p.name for p in OCR.iterdir() if p.suffix in (".png", ".jpg")}
    assert set(notes) <= on_disk
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_outcome(decoder: Decoder, name: str) -> None:
    expected = EXPECTED[name]
    started = time.monotonic()
    if isinstance(expected, Fails):
        with pytest.raises(expected.error) as e:
            decoder(corpus_file(name))
        assert time.monotonic() - started < 2.0  # fail fast (upstream: test_oom within 2 s)
        assert e.value.code == expected.code
        message = str(e.value)
        assert expected.says in message
        assert len(message) < 200 and "Traceback" not in message and name not in message
        return
    pages = decoder(corpus_file(name))
    assert [(p.width, p.height) for p in pages] == expected.sizes
    assert [p.index for p in pages] == list(range(len(expected.sizes)))
    for page in pages:
        assert page.channels == expected.channels
        assert page.source == expected.source
        assert page.dpi == (pytest.approx(expected.dpi, abs=0.01) if expected.dpi else None)
        assert page.orientation_applied == expected.orientation
        a = page.load()
        assert a.dtype == np.uint8 and a.flags.c_contiguous
        assert a.shape == ((page.height, page.width) if page.channels == 1 else (page.height, page.width, 3))


def test_g4_scans_stay_bilevel_and_no_page_is_lost(decoder: Decoder) -> None:
    [pport] = arrays(decoder, PROBLEMS / "pillow__pport_g4.tif")
    assert set(np.unique(pport)) == {0, 255}  # not re-binarised, not smoothed
    assert 0.01 < (pport == 0).mean() < 0.3
    multi = arrays(decoder, PROBLEMS / "pillow__g4-multi.tiff")
    for page in multi:  # near-blank pages that carry a small "PageN" label
        assert set(np.unique(page)) == {0, 255}
        assert 0 < (page == 0).mean() < 0.001
    assert not np.array_equal(multi[0], multi[1]) and not np.array_equal(multi[1], multi[2])


def test_palette_frames_keep_their_colours(decoder: Decoder) -> None:
    pages = arrays(decoder, PROBLEMS / "pillow__multipage.tiff")
    bgr = [(0, 128, 0), (0, 0, 255), (255, 0, 0)]  # green, red, blue
    for page, colour in zip(pages, bgr, strict=True):
        assert (page == np.array(colour, np.uint8)).all()


def test_tiff_orientation_6_is_applied_exactly_once(decoder: Decoder, tmp_path: Path) -> None:
    data = (PROBLEMS / "pillow__g4_orientation_6.tif").read_bytes()
    upright = tmp_path / "tag1.tif"
    upright.write_bytes(with_orientation(data, 1))
    [stored] = arrays(decoder, upright)
    assert stored.shape == (590, 88)  # ImageWidth 88, ImageLength 590
    [page] = arrays(decoder, PROBLEMS / "pillow__g4_orientation_6.tif")
    assert np.array_equal(page, np.rot90(stored, 3))  # 90° clockwise, once


@pytest.mark.parametrize(("orientation", "turn"), [(3, 2), (6, 3), (8, 1)])
def test_exif_orientations_are_applied_exactly_once(
    decoder: Decoder, tmp_path: Path, orientation: int, turn: int
) -> None:
    name = f"pillow__hopper_orientation_{orientation}.jpg"
    data = (PROBLEMS / name).read_bytes()
    untagged = tmp_path / "tag1.jpg"
    untagged.write_bytes(with_orientation(data, 1))
    [stored] = arrays(decoder, untagged)
    [page] = arrays(decoder, PROBLEMS / name)
    assert np.array_equal(page, np.rot90(stored, turn))


def test_exif_orientations_all_give_the_same_upright_picture(decoder: Decoder) -> None:
    pages = {o: arrays(decoder, PROBLEMS / f"pillow__hopper_orientation_{o}.jpg")[0] for o in (3, 6, 8)}

    def diff(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.astype(int) - b.astype(int)).mean())

    assert diff(pages[3], pages[6]) < 4 and diff(pages[3], pages[8]) < 4 and diff(pages[6], pages[8]) < 4
    assert diff(pages[3], np.rot90(pages[6])) > 20  # a wrong rotation would be far off


def test_cmyk_jpeg_and_cmyk_jpeg_in_tiff_agree(decoder: Decoder) -> None:
    [jpeg] = arrays(decoder, PROBLEMS / "pillow__pil_sample_cmyk.jpg")
    [tiff] = arrays(decoder, PROBLEMS / "pillow__tiff_strip_cmyk_jpeg.tif")
    assert np.abs(jpeg.astype(int) - tiff.astype(int)).mean() < 1.5
    # red lettering on black (Adobe inverted CMYK handled; not a negative image)
    assert jpeg.mean() < 60 and jpeg[:, :, 2].mean() > 2 * jpeg[:, :, 0].mean()


def test_16_bit_is_scaled_by_range(decoder: Decoder) -> None:
    [page] = arrays(decoder, PROBLEMS / "pillow__16bit.cropped.tif")
    with Image.open(PROBLEMS / "pillow__16bit.cropped.tif") as im:
        raw = np.asarray(im).astype(float)
    lo, hi = raw.min(), raw.max()
    assert (lo, hi) == (291, 694)  # truncation to 8 bits or clipping would ruin this range
    assert np.abs(page - np.round((raw - lo) * 255 / (hi - lo))).max() <= 1
    assert page.min() == 0 and page.max() == 255


def test_old_style_jpeg_tiff_really_decodes(decoder: Decoder) -> None:
    [page] = arrays(decoder, PROBLEMS / "pillow__old-style-jpeg-compression.tif")
    grey = page.mean(axis=2)
    assert grey.min() < 30 and grey.max() > 220  # a grey-scale target: the full tonal range


def test_transparent_png_is_black_text_on_white(decoder: Decoder) -> None:
    [page] = arrays(decoder, OCR / "rapidocr__black_font_color_transparent.png")
    with Image.open(OCR / "rapidocr__black_font_color_transparent.png") as im:
        alpha = np.asarray(im.getchannel("A"))
    assert (page[alpha == 0] == 255).all()  # transparent -> white paper
    assert page[alpha == 255].max() < 60  # the glyphs stay black
    assert (page[0, 0] == 255).all() and 0.02 < (page.max(axis=2) < 128).mean() < 0.3


def test_exif_orientation_photo_comes_out_upright(decoder: Decoder, tmp_path: Path) -> None:
    data = (OCR / "rapidocr__img_exif_orientation.jpg").read_bytes()
    untagged = tmp_path / "tag1.jpg"
    untagged.write_bytes(with_orientation(data, 1))
    [stored] = arrays(decoder, untagged)
    [page] = arrays(decoder, OCR / "rapidocr__img_exif_orientation.jpg")
    assert np.array_equal(page, np.rot90(stored, 2))
