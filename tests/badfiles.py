"""Makes the bad-input set of the pipeline issue: each entry is (name, maker, expected reason
code or None when the file must be stored)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tests.conftest import CORPUS


def page_image(text: str = "hall 2026", size: tuple[int, int] = (800, 600)) -> Image.Image:
    img = Image.new("L", size, 255)
    d = ImageDraw.Draw(img)
    for i in range(8):
        d.text((40, 40 + 60 * i), f"{text} line {i}", fill=0)
    return img


def encoded(fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    page_image().save(buf, fmt, **kw)
    return buf.getvalue()


def encrypted_pdf() -> bytes:
    """A minimal PDF with a Standard-security /Encrypt dictionary whose user password is not
    empty: viewers (and pdfium) ask for a password."""
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
        b"<< /Filter /Standard /V 1 /R 2 /O <" + b"11" * 32 + b"> /U <" + b"22" * 32 + b"> /P -4 >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R /Encrypt 4 0 R "
        f"/ID [<{'ab' * 16}> <{'ab' * 16}>] >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


def _write(data: bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(data)

    return make


def _symlink(path: Path) -> None:
    target = path.parent.parent / "symlink-target.jpg"
    target.write_bytes(encoded("JPEG"))
    path.symlink_to(target)


def _fifo(path: Path) -> None:
    os.mkfifo(path)


BAD_INPUTS: list[tuple[str, Callable[[Path], None], str]] = [
    ("zero-byte.jpg", _write(b""), "unsupported_format"),
    ("truncated.jpg", _write(encoded("JPEG")[:3000]), "truncated"),
    ("truncated.png", _write(encoded("PNG")[:2000]), "truncated"),
    ("truncated.tif", _write(encoded("TIFF", compression="tiff_lzw")[:1500]), "truncated"),
    ("random-bytes.pdf", _write(np.random.default_rng(1).bytes(20_000)), "unsupported_format"),
    ("encrypted.pdf", _write(encrypted_pdf()), "encrypted_document"),
    ("link.jpg", _symlink, "not_regular_file"),
    ("pipe.jpg", _fifo, "not_regular_file"),
]


def decompression_bomb(path: Path) -> None:
    path.write_bytes((CORPUS / "problem_files" / "pillow__decompression_bomb.gif").read_bytes())


# files that must be STORED despite awkward names or extensions
GOOD_INPUTS: list[tuple[bytes | str, bytes]] = [
    ("png-named.jpg", encoded("PNG")),  # the format is judged by content
    (b"non-utf8-\xb2\xe2\xca\xd4.jpg", encoded("JPEG", quality=92)),  # GBK bytes in the name
    # traversal-looking names (names starting with "." are dotfiles: ignored until renamed)
    ("%2e%2e%2f%2e%2e%2fetc%2fpasswd.jpg", encoded("JPEG", quality=93)),
    ("a\\..\\..\\windows.jpg", encoded("JPEG", quality=94)),
    ("new\nline.png", encoded("PNG", compress_level=1)),
]
