"""appliance.decoding in-process: sniffing, raster and PDF decoding of generated good and bad inputs."""

from __future__ import annotations

import io
import math
import os
import random
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import psutil
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from appliance.decoding import DecodedPage, decode_file, sniff_format
from appliance.errors import (
    CorruptFile,
    DecodeError,
    EncryptedDocument,
    LimitExceeded,
    UnsupportedFormat,
)
from appliance.settings import DecodeLimits


# --- helpers ---------------------------------------------------------------------------------
def encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def put(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.fixture
def out(tmp_path: Path) -> Path:
    d = tmp_path / "scratch"
    d.mkdir()
    return d


def decode(path: Path, out: Path, **limits: object) -> list[DecodedPage]:
    return decode_file(path, DecodeLimits(**limits), out)  # type: ignore[arg-type]


def loads(pages: list[DecodedPage]) -> list[np.ndarray]:
    return [p.load() for p in pages]


def sample(size: tuple[int, int] = (120, 80), mode: str = "RGB") -> Image.Image:
    """An asymmetric picture: every flip or rotation of it is distinguishable."""
    im = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(im)
    w, h = size
    d.rectangle((0, 0, w // 3, h // 4), fill=(200, 30, 30))
    d.rectangle((w // 2, h // 2, w - 1, h - 10), fill=(20, 40, 220))
    d.line((0, h - 1, w - 1, 0), fill=(0, 0, 0), width=3)
    return im.convert(mode)


def exif_block(entries: list[tuple[int, int, int, int]], declared: int | None = None) -> bytes:
    """A little-endian EXIF block with one IFD; ``declared`` overrides the entry count."""
    body = b"".join(struct.pack("<HHII", *e) for e in entries)
    n = len(entries) if declared is None else declared
    tail = struct.pack("<I", 0) if declared is None else b""
    return b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + struct.pack("<H", n) + body + tail


def raw_tiff(
    frames: list[tuple[int, int, bytes]],
    *,
    cut_last_ifd: int = 0,
    extra: tuple[tuple[int, int, int, int], ...] = (),
) -> bytes:
    """A minimal 8-bit grey uncompressed TIFF (several frames). Optionally the last ``cut_last_ifd``
    bytes of the last directory are missing, and ``extra`` (tag, type, count, value) entries are
    added to every directory."""
    out = bytearray(b"II*\x00\x00\x00\x00\x00")
    link = 4
    for w, h, data in frames:
        data_at = len(out)
        out += data
        if len(out) % 2:
            out += b"\x00"
        struct.pack_into("<I", out, link, len(out))
        tags = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1)]
        tags += [(273, 4, 1, data_at), (277, 3, 1, 1), (278, 4, 1, h), (279, 4, 1, w * h), *extra]
        ifd = struct.pack("<H", len(tags)) + b"".join(
            struct.pack("<HHI", t, typ, n) + (struct.pack("<HH", v, 0) if typ == 3 else struct.pack("<I", v))
            for t, typ, n, v in sorted(tags)
        )
        link = len(out) + len(ifd)
        out += ifd + b"\x00\x00\x00\x00"
    return bytes(out[: len(out) - cut_last_ifd])


def build_pdf(objects: list[bytes], trailer_extra: bytes = b"") -> bytes:
    """A PDF with a correct xref table; object 1 must be the catalog."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R " % (len(objects) + 1) + trailer_extra
    out += b">>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< " + extra + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def pdf_pages(
    pages: list[tuple[bytes, list[bytes]]],
    size: tuple[float, float] = (595, 842),
    sizes: list[tuple[float, float]] | None = None,
) -> bytes:
    """Pages given as (content stream, [image XObject streams named /Im0, /Im1, ...])."""
    objs: list[bytes] = [b"", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for n, (content, images) in enumerate(pages):
        width, height = sizes[n] if sizes else size
        page_no = len(objs) + 1
        kids.append(b"%d 0 R" % page_no)
        xobjs = b" ".join(b"/Im%d %d 0 R" % (i, page_no + 2 + i) for i in range(len(images)))
        objs.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %g %g] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R >> /XObject << %s >> >> >>"
            % (width, height, page_no + 1, xobjs)
        )
        objs.append(stream(content))
        objs.extend(images)
    objs[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objs[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    return build_pdf(objs)


def jpeg_xobject(jpeg: bytes, size: tuple[int, int], grey: bool = False) -> bytes:
    cs = b"/DeviceGray" if grey else b"/DeviceRGB"
    return stream(
        jpeg,
        b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace %s /BitsPerComponent 8 "
        b"/Filter /DCTDecode" % (size[0], size[1], cs),
    )


VECTOR_PAGE = b"0 0 0 rg 100 100 200 100 re f BT /F1 24 Tf 72 700 Td (Hello) Tj ET"


# --- sniffing --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "png"),
        (b"II*\x00\x08\x00\x00\x00", "tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "tiff"),
        (b"II+\x00\x08\x00\x00\x00", "tiff"),  # BigTIFF
        (b"%PDF-1.7\n", "pdf"),
        (b"\x00" * 500 + b"%PDF-1.4\n", "pdf"),  # junk before the header, as some writers do
    ],
)
def test_sniff_accepts_by_magic_bytes(head: bytes, fmt: str) -> None:
    assert sniff_format(head) == fmt


@pytest.mark.parametrize(
    ("head", "says"),
    [
        (b"GIF89a\x01\x00\x01\x00", "GIF"),
        (b"GIF87a\x01\x00\x01\x00", "GIF"),
        (b"BM6\x00\x00\x00\x00\x00\x00\x006\x00\x00\x00(\x00", "BMP"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "WebP"),
        (b"PK\x03\x04\x14\x00\x00\x00", "OFD"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00", "HEIC"),
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
        ("申请人：张三\n身份证号码".encode(), "text"),
        (b"\x00" * 1100 + b"%PDF-1.4\n", "not a recognised"),  # header too late
        (random.Random(1).randbytes(1024), "not a recognised"),
    ],
)
def test_sniff_refuses_other_formats_and_says_what_they_are(head: bytes, says: str) -> None:
    with pytest.raises(UnsupportedFormat) as e:
        sniff_format(head)
    assert says in str(e.value)
    assert "JPEG, PNG, TIFF or PDF" in str(e.value)
    assert e.value.code == "unsupported_format"


def test_empty_file_is_unsupported(tmp_path: Path, out: Path) -> None:
    with pytest.raises(UnsupportedFormat) as e:
        decode(put(tmp_path, "scan.jpg", b""), out)
    assert e.value.code == "unsupported_format"
    assert "empty file (0 bytes)" in str(e.value)


def test_name_is_never_consulted(tmp_path: Path, out: Path) -> None:
    im = sample()
    png_as_jpg = decode(put(tmp_path, "scan.jpg", encode(im, "PNG")), out)
    assert [p.source for p in png_as_jpg] == ["png"]
    assert np.array_equal(png_as_jpg[0].load(), np.asarray(im)[:, :, ::-1])  # lossless, BGR
    jpg_as_pdf = decode(put(tmp_path, "scan.pdf", encode(im, "JPEG")), out)
    assert [p.source for p in jpg_as_pdf] == ["jpeg"]
    with pytest.raises(UnsupportedFormat):
        decode(put(tmp_path, "random.pdf", random.Random(7).randbytes(4096)), out)


# --- opening the file ------------------------------------------------------------------------
def test_symlink_is_not_followed(tmp_path: Path, out: Path) -> None:
    target = put(tmp_path, "real.png", encode(sample(), "PNG"))
    link = tmp_path / "link.png"
    link.symlink_to(target)
    with pytest.raises(DecodeError) as e:
        decode(link, out)
    assert e.value.code == "not_regular_file"


def test_fifo_is_refused_without_blocking(tmp_path: Path, out: Path) -> None:
    fifo = tmp_path / "scan.jpg"
    os.mkfifo(fifo)
    with pytest.raises(DecodeError) as e:
        decode(fifo, out)
    assert e.value.code == "not_regular_file"


def test_file_size_limit(tmp_path: Path, out: Path) -> None:
    path = put(tmp_path, "big.png", encode(sample((300, 300)), "PNG"))
    with pytest.raises(LimitExceeded) as e:
        decode(path, out, max_file_bytes=1000)
    assert e.value.code == "file_too_large"


def test_pages_are_private_npy_files_and_the_input_is_closed(tmp_path: Path, out: Path) -> None:
    path = put(tmp_path, "scan.tif", encode(sample(), "TIFF", save_all=True, append_images=[sample()]))
    pages = decode(path, out)
    assert [p.index for p in pages] == [0, 1]
    for p in pages:
        assert p.path.parent == out and p.path.suffix == ".npy"
        assert stat.S_IMODE(p.path.stat().st_mode) == 0o600
        a = p.load()
        assert a.dtype == np.uint8 and a.flags.c_contiguous and a.shape == (p.height, p.width, 3)
    assert len({p.path for p in pages}) == 2
    assert str(path) not in {f.path for f in psutil.Process().open_files()}


# --- raster ----------------------------------------------------------------------------------
def test_modes_come_out_grey_or_bgr(tmp_path: Path, out: Path) -> None:
    red = Image.new("RGB", (8, 8), (255, 0, 0))
    [rgb] = loads(decode(put(tmp_path, "red.png", encode(red, "PNG")), out))
    assert rgb.shape == (8, 8, 3) and tuple(rgb[0, 0]) == (0, 0, 255)  # BGR, as OpenCV
    [grey] = loads(decode(put(tmp_path, "g.jpg", encode(Image.new("L", (8, 8), 90), "JPEG")), out))
    assert grey.shape == (8, 8) and abs(int(grey[0, 0]) - 90) <= 2
    bilevel = Image.new("1", (16, 8), 1)
    ImageDraw.Draw(bilevel).rectangle((0, 0, 7, 7), fill=0)
    [one] = loads(decode(put(tmp_path, "b.tif", encode(bilevel, "TIFF", compression="group4")), out))
    assert one.shape == (8, 16) and set(np.unique(one)) == {0, 255}
    grey_palette = Image.new("L", (8, 8), 30).convert("P")
    [pg] = loads(decode(put(tmp_path, "p.png", encode(grey_palette, "PNG")), out))
    assert pg.ndim == 2 and int(pg[0, 0]) == 30
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red ink
    [c] = loads(decode(put(tmp_path, "c.jpg", encode(cmyk, "JPEG")), out))
    assert c.shape == (8, 8, 3) and c[0, 0, 2] > 200 and c[0, 0, 0] < 60


@pytest.mark.parametrize(
    ("fmt", "mode"), [("PNG", "RGBA"), ("PNG", "LA"), ("PNG", "P"), ("TIFF", "RGBA"), ("TIFF", "LA")]
)
def test_transparency_is_composited_on_white(tmp_path: Path, out: Path, fmt: str, mode: str) -> None:
    ink = np.zeros((20, 60), np.uint8)
    ink[5:16, 10:31] = 1  # an opaque black "word"
    kw = {}
    if mode == "P":  # palette entry 0: transparent black, entry 1: opaque black
        im = Image.frombytes("P", (60, 20), ink.tobytes())
        im.putpalette([0, 0, 0, 0, 0, 0])
        kw = {"transparency": 0}
    else:  # black everywhere, alpha 0 around the word (naive conversion gives an all-black page)
        rgba = np.zeros((20, 60, 4), np.uint8)
        rgba[:, :, 3] = ink * 255
        im = Image.fromarray(rgba, "RGBA").convert(mode)
    [a] = loads(decode(put(tmp_path, f"t.{fmt.lower()}", encode(im, fmt, **kw)), out))
    flat = a if a.ndim == 2 else a.min(axis=2)
    assert flat[0, 0] == 255 and flat[2, 50] == 255  # background white
    assert flat[10, 20] == 0  # the word still black


def test_16_bit_is_scaled_by_its_actual_range(tmp_path: Path, out: Path) -> None:
    values = np.linspace(1000, 3000, 64 * 32).reshape(32, 64).astype(np.uint16)
    im = Image.fromarray(values)  # mode I;16
    assert im.mode == "I;16"
    [a] = loads(decode(put(tmp_path, "w.tif", encode(im, "TIFF")), out))
    assert a.shape == (32, 64) and a.dtype == np.uint8
    assert a.min() == 0 and a.max() == 255  # not truncated to the low 8 bits nor clipped to 255
    expected = np.round((values.astype(float) - 1000) * 255 / 2000)
    assert np.abs(a - expected).max() <= 1
    flat = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    [f] = loads(decode(put(tmp_path, "flat.png", encode(flat, "PNG")), out))
    assert (f == 255).all()


def test_dpi_is_read_and_placeholders_are_dropped(tmp_path: Path, out: Path) -> None:
    im = sample()
    assert decode(put(tmp_path, "a.jpg", encode(im, "JPEG", dpi=(300, 300))), out)[0].dpi == (300, 300)
    assert decode(put(tmp_path, "b.png", encode(im, "PNG", dpi=(200, 200))), out)[0].dpi == pytest.approx(
        (200, 200), abs=0.01
    )
    assert decode(put(tmp_path, "c.tif", encode(im, "TIFF", dpi=(600, 400))), out)[0].dpi == (600, 400)
    assert decode(put(tmp_path, "d.png", encode(im, "PNG")), out)[0].dpi is None
    assert decode(put(tmp_path, "e.tif", encode(im, "TIFF", dpi=(1, 1))), out)[0].dpi is None


# EXIF orientation -> how the stored pixels must be transformed, and the degrees CCW reported
ORIENTATIONS = {
    2: (lambda a: a[:, ::-1], 0),
    3: (lambda a: np.rot90(a, 2), 180),
    4: (lambda a: a[::-1], 180),
    5: (lambda a: np.rot90(a[:, ::-1], 1), 90),
    6: (lambda a: np.rot90(a, 3), 270),
    7: (lambda a: np.rot90(a[:, ::-1], 3), 270),
    8: (lambda a: np.rot90(a, 1), 90),
}


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_exif_orientation_is_applied_exactly_once(tmp_path: Path, out: Path, orientation: int) -> None:
    im = sample()
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = decode(put(tmp_path, "raw.jpg", encode(im, "JPEG", quality=95, dpi=(100, 200))), out)[0]
    page = decode(
        put(tmp_path, "o.jpg", encode(im, "JPEG", quality=95, dpi=(100, 200), exif=exif.tobytes())), out
    )[0]
    transform, degrees = ORIENTATIONS[orientation]
    assert np.array_equal(page.load(), transform(stored.load()))
    assert page.orientation_applied == degrees
    assert page.dpi == ((200, 100) if degrees in (90, 270) else (100, 200))
    assert stored.orientation_applied == 0


@pytest.mark.parametrize("compression", ["raw", "tiff_lzw", "group4"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_tiff_orientation_is_applied_exactly_once(
    tmp_path: Path, out: Path, compression: str, orientation: int
) -> None:
    im = sample(mode="1" if compression == "group4" else "L")
    plain = encode(im, "TIFF", compression=compression)
    turned = encode(im, "TIFF", compression=compression, tiffinfo={0x0112: orientation})
    stored = decode(put(tmp_path, "raw.tif", plain), out)[0].load()
    page = decode(put(tmp_path, "o.tif", turned), out)[0]
    transform, degrees = ORIENTATIONS[orientation]
    assert np.array_equal(page.load(), transform(stored))
    assert page.orientation_applied == degrees


def test_truncated_jpeg_png_tiff_are_corrupt(tmp_path: Path, out: Path) -> None:
    noisy = Image.fromarray(np.random.default_rng(3).integers(0, 255, (200, 300, 3), dtype=np.uint8))
    for fmt, kw in (("JPEG", {}), ("PNG", {}), ("TIFF", {})):
        data = encode(noisy, fmt, **kw)
        with pytest.raises(CorruptFile) as e:
            decode(put(tmp_path, f"cut.{fmt}", data[: len(data) * 2 // 3]), out)
        assert e.value.code == "truncated", fmt
    lzw = encode(noisy, "TIFF", compression="tiff_lzw")
    with pytest.raises(CorruptFile):
        decode(put(tmp_path, "cut-lzw.tif", lzw[: len(lzw) // 2]), out)
    assert list(out.iterdir()) == []


def test_exif_damage_policy(tmp_path: Path, out: Path) -> None:
    white = Image.new("RGB", (40, 20), "white")
    # a broken description tag beside an intact orientation: pixels and orientation are sound
    ok = exif_block([(0x0112, 3, 1, 6), (0x010E, 2, 200, 4000)])
    page = decode(put(tmp_path, "ok.jpg", encode(white, "JPEG", exif=ok)), out)[0]
    assert page.orientation_applied == 270 and (page.width, page.height) == (20, 40)
    # the orientation tag itself is broken, or the EXIF directory is cut short: orientation unknown
    for name, block in (
        ("orientation", exif_block([(0x0112, 3, 100, 4000)])),
        ("truncated-ifd", exif_block([(0x0112, 3, 1, 6)], declared=5)),
    ):
        with pytest.raises(CorruptFile) as e:
            decode(put(tmp_path, f"{name}.jpg", encode(white, "JPEG", exif=block)), out)
        assert e.value.code == "damaged_metadata", name


def test_damaged_tiff_directory_fails_instead_of_dropping_pages(tmp_path: Path, out: Path) -> None:
    frames = [(16, 8, bytes([200]) * 128), (16, 8, bytes([50]) * 128), (16, 8, bytes([90]) * 128)]
    good = decode(put(tmp_path, "good.tif", raw_tiff(frames)), out)
    assert [int(p.load()[0, 0]) for p in good] == [200, 50, 90]
    for p in good:
        p.path.unlink()
    # the last directory runs past the end of the file: only its link to a next directory is
    # missing (Pillow alone reports 3 good pages), or most of its entries are
    for cut in (4, 4 + 6 * 12):
        with pytest.raises(CorruptFile) as e:
            decode(put(tmp_path, "cut.tif", raw_tiff(frames, cut_last_ifd=cut)), out)
        assert e.value.code == "truncated", cut
    # a directory entry claims more data than the whole file holds
    bogus = raw_tiff(frames, extra=((270, 2, 1_000_000, 8),))
    with pytest.raises(CorruptFile) as e:
        decode(put(tmp_path, "bogus.tif", bogus), out)
    assert e.value.code == "damaged_metadata"
    assert list(out.iterdir()) == []


def test_multipage_tiff_and_page_cap(tmp_path: Path, out: Path) -> None:
    frames = [sample(mode=m) for m in ("1", "L", "RGB", "RGBA", "P")]
    path = put(tmp_path, "m.tif", encode(frames[0], "TIFF", save_all=True, append_images=frames[1:]))
    pages = decode(path, out)
    assert [p.channels for p in pages] == [1, 1, 3, 3, 3]
    assert [p.index for p in pages] == list(range(5))
    for p in pages:
        p.path.unlink()
    with pytest.raises(LimitExceeded) as e:
        decode(path, out, max_pages=4)
    assert e.value.code == "too_many_pages"
    assert list(out.iterdir()) == []


def test_pixel_limit_is_checked_before_allocation(
    tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = put(tmp_path, "s.tif", encode(sample((200, 100)), "TIFF"))
    with pytest.raises(LimitExceeded) as e:
        decode(path, out, max_pixels=19_999)
    assert e.value.code == "too_many_pixels" and "20,000 pixels" in str(e.value)

    def no_allocation(*args: object) -> None:
        raise AssertionError("pixels were allocated")

    monkeypatch.setattr(Image.core, "new", no_allocation)
    monkeypatch.setattr(Image.core, "fill", no_allocation)
    for w, h in ((12_000, 12_000), (40_000, 40_000)):  # 1.2x and 13x the default limit
        header_only = raw_tiff([(w, h, b"")])
        with pytest.raises(LimitExceeded) as e:
            decode(put(tmp_path, f"{w}.tif", header_only), out)
        assert e.value.code == "too_many_pixels"
        png = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        with pytest.raises(LimitExceeded):
            decode(put(tmp_path, f"{w}.png", png + png_chunk(b"IEND", b"")), out)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# --- PDF -------------------------------------------------------------------------------------
def test_pillow_made_pdf_pages_are_extracted_at_native_size(tmp_path: Path, out: Path) -> None:
    ims = [sample((300, 200)), sample((200, 300), mode="L"), sample((250, 250))]
    path = put(tmp_path, "m.pdf", encode(ims[0], "PDF", save_all=True, append_images=ims[1:], resolution=100))
    pages = decode(path, out)
    assert [(p.width, p.height, p.channels) for p in pages] == [(300, 200, 3), (200, 300, 1), (250, 250, 3)]
    assert all(p.source == "pdf/embedded-jpeg" and p.dpi == (100, 100) for p in pages)
    for im, a in zip(ims, loads(pages), strict=True):
        ref = np.asarray(im.convert("RGB"))[:, :, ::-1] if im.mode == "RGB" else np.asarray(im)
        assert np.abs(a.astype(int) - ref).mean() < 4  # JPEG tolerance


def test_scanned_pdf_keeps_the_embedded_jpeg_bit_exact(tmp_path: Path, out: Path) -> None:
    scans = [sample((850, 1100)), sample((1100, 850), mode="L")]
    jpegs = [encode(s, "JPEG", quality=80) for s in scans]
    ocr_layer = b" BT 3 Tr /F1 12 Tf 72 72 Td (invisible OCR text) Tj ET"
    pdf = pdf_pages(
        [
            (b"q 595 0 0 842 0 0 cm /Im0 Do Q" + ocr_layer, [jpeg_xobject(jpegs[0], (850, 1100))]),
            (b"q 842 0 0 595 0 0 cm /Im0 Do Q", [jpeg_xobject(jpegs[1], (1100, 850), grey=True)]),
        ],
        sizes=[(595, 842), (842, 595)],
    )
    pages = decode(put(tmp_path, "scan.pdf", pdf), out, pdf_dpi=300)
    assert [p.source for p in pages] == ["pdf/embedded-jpeg"] * 2
    assert [(p.width, p.height) for p in pages] == [(850, 1100), (1100, 850)]  # not 2480x3508
    for jpeg, page in zip(jpegs, pages, strict=True):
        direct = decode(put(tmp_path, "direct.jpg", jpeg), out)[0]
        assert np.array_equal(page.load(), direct.load())
    assert pages[0].dpi == pytest.approx((850 * 72 / 595, 1100 * 72 / 842), abs=0.01)


def test_scanned_pdf_page_rotation_is_applied(tmp_path: Path, out: Path) -> None:
    scan = sample((400, 300))
    jpeg = encode(scan, "JPEG", quality=90)
    pdf = pdf_pages([(b"q 400 0 0 300 0 0 cm /Im0 Do Q", [jpeg_xobject(jpeg, (400, 300))])], size=(400, 300))
    pdf = pdf.replace(b"/Type /Page /Parent", b"/Type /Page /Rotate 90 /Parent")
    [page] = decode(put(tmp_path, "rot.pdf", pdf), out)
    direct = decode(put(tmp_path, "direct.jpg", jpeg), out)[0].load()
    assert page.source == "pdf/embedded-jpeg" and page.orientation_applied == 270
    assert np.array_equal(page.load(), np.rot90(direct, 3))  # /Rotate 90 is clockwise


def test_pages_that_are_not_a_single_full_page_image_are_rendered(tmp_path: Path, out: Path) -> None:
    jpeg = encode(sample((200, 100)), "JPEG")
    small_image = (b"q 200 0 0 100 50 50 cm /Im0 Do Q", [jpeg_xobject(jpeg, (200, 100))])
    visible_text = b" BT /F1 12 Tf 72 72 Td (visible) Tj ET"
    image_and_text = (b"q 595 0 0 842 0 0 cm /Im0 Do Q" + visible_text, [jpeg_xobject(jpeg, (200, 100))])
    pages = decode(put(tmp_path, "mixed.pdf", pdf_pages([small_image, image_and_text])), out, pdf_dpi=72)
    assert [p.source for p in pages] == ["pdf/render@72dpi"] * 2
    assert [(p.width, p.height) for p in pages] == [(595, 842)] * 2


def test_vector_pdf_is_rendered_at_the_configured_dpi(tmp_path: Path, out: Path) -> None:
    path = put(tmp_path, "v.pdf", pdf_pages([(VECTOR_PAGE, [])]))
    [page] = decode(path, out, pdf_dpi=300)
    assert (page.width, page.height) == (math.ceil(595 * 300 / 72), math.ceil(842 * 300 / 72))
    assert page.source == "pdf/render@300dpi" and page.dpi == (300, 300) and page.channels == 1
    a = page.load()
    assert a[(842 - 150) * 300 // 72, 200 * 300 // 72] == 0  # inside the black rectangle
    assert a[50, 50] == 255
    [half] = decode(path, out, pdf_dpi=150)
    assert (half.width, half.height) == (math.ceil(595 * 150 / 72), math.ceil(842 * 150 / 72))


def test_pdf_render_dpi_is_lowered_to_fit_the_pixel_limit(tmp_path: Path, out: Path) -> None:
    [page] = decode(put(tmp_path, "v.pdf", pdf_pages([(VECTOR_PAGE, [])])), out, max_pixels=1_000_000)
    assert page.width * page.height <= 1_000_000
    assert page.dpi is not None and 100 < page.dpi[0] < 300
    assert page.source == f"pdf/render@{page.dpi[0]:g}dpi"
    assert page.width == math.ceil(595 * page.dpi[0] / 72)


def test_pdf_page_cap(tmp_path: Path, out: Path) -> None:
    path = put(tmp_path, "five.pdf", pdf_pages([(VECTOR_PAGE, [])] * 5))
    assert len(decode(path, out, pdf_dpi=72)) == 5
    with pytest.raises(LimitExceeded) as e:
        decode(path, out, max_pages=4)
    assert e.value.code == "too_many_pages"


def encrypted_pdf() -> bytes:
    rng = random.Random(5)
    encrypt = b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P -4 >>" % (
        rng.randbytes(32).hex().encode(),
        rng.randbytes(32).hex().encode(),
    )
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
        stream(b"0 0 0 rg 100 100 200 100 re f"),
        encrypt,
    ]
    return build_pdf(objs, b"/Encrypt 5 0 R /ID [<%s> <%s>] " % (b"00" * 16, b"00" * 16))


def test_password_protected_pdf(tmp_path: Path, out: Path) -> None:
    path = put(tmp_path, "secret.pdf", encrypted_pdf())
    with pytest.raises(pdfium.PdfiumError) as raw:  # pdfium itself asks for a password
        pdfium.PdfDocument(path)
    assert raw.value.err_code == pdfium_c.FPDF_ERR_PASSWORD
    with pytest.raises(EncryptedDocument) as e:
        decode(path, out)
    assert e.value.code == "encrypted_document" and "password" in str(e.value)


def test_broken_pdfs(tmp_path: Path, out: Path) -> None:
    good = pdf_pages([(VECTOR_PAGE, [])])
    for name, data in (
        ("half.pdf", good[: len(good) // 2]),
        ("header-only.pdf", b"%PDF-1.7\n"),
        ("garbled.pdf", b"%PDF-1.4\n" + random.Random(2).randbytes(3000)),
    ):
        with pytest.raises(CorruptFile):
            decode(put(tmp_path, name, data), out)


def test_failed_pdf_leaves_no_page_files(tmp_path: Path, out: Path) -> None:
    jpeg = encode(sample((300, 200)), "JPEG")
    good = (b"q 595 0 0 842 0 0 cm /Im0 Do Q", [jpeg_xobject(jpeg, (300, 200))])
    cut = jpeg[: len(jpeg) // 2]
    bad = (b"q 595 0 0 842 0 0 cm /Im0 Do Q", [jpeg_xobject(cut, (300, 200))])
    with pytest.raises(CorruptFile):
        decode(put(tmp_path, "two.pdf", pdf_pages([good, bad])), out)
    assert list(out.iterdir()) == []


# --- fuzzing: hostile bytes give a DecodeError, never anything else ---------------------------
SEEDS = {
    "jpeg": encode(sample((40, 30)), "JPEG"),
    "png": encode(sample((40, 30), mode="RGBA"), "PNG"),
    "tiff": encode(sample((40, 30), mode="1"), "TIFF", compression="group4"),
    "tiff-lzw": encode(sample((40, 30)), "TIFF", compression="tiff_lzw"),
    "pdf": encode(sample((40, 30)), "PDF"),
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.sampled_from(sorted(SEEDS)),
    edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.integers(min_value=8)),
)
def test_mutated_files_never_escape_the_error_family(
    tmp_path: Path, seed: str, edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(SEEDS[seed])
    for pos, value in edits:
        data[8 + pos % (len(data) - 8)] = value  # keep the magic bytes
    path = tmp_path / "fuzz.bin"
    path.write_bytes(bytes(data[:cut]))
    out = tmp_path / "fuzz-out"
    out.mkdir(exist_ok=True)
    try:
        pages = decode_file(path, DecodeLimits(max_pixels=4_000_000, max_pages=20, pdf_dpi=72), out)
    except DecodeError as e:
        assert e.code != "decoder_error", f"unexpected internal error: {e.__cause__!r}"
        assert len(str(e)) < 200
        assert list(out.iterdir()) == []
    else:
        for p in pages:
            assert p.load().shape[:2] == (p.height, p.width)
            p.path.unlink()
