"""Write page images as JPEG / PNG / multi-page TIFF / multi-page PDF, atomically.

A watcher may be watching the output folder, so every file is first written under a hidden
temporary name (``.<name>.<pid>.partial``) in the same folder and then renamed into place.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from PIL import Image

__all__ = ["EXTENSIONS", "FORMATS", "atomic_write", "compression_for", "save_pages"]

FORMATS: tuple[str, ...] = ("jpeg", "png", "tiff", "pdf")
EXTENSIONS: dict[str, str] = {"jpeg": ".jpg", "png": ".png", "tiff": ".tif", "pdf": ".pdf"}


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` with a binary file that becomes ``path`` only once fully written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with tmp.open("w+b") as fh:  # TIFF and PDF writers read back what they wrote
            write(fh)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def save_pages(
    path: Path,
    images: Sequence[Image.Image],
    fmt: str,
    *,
    dpi: int,
    jpeg_quality: int = 85,
    bilevel: bool = False,
    stamp: dt.date | None = None,
) -> str:
    """Save ``images`` as one file of format ``fmt``; return the compression used.

    JPEG and PNG hold one page. TIFF is LZW-compressed, or CCITT G4 when ``bilevel`` (all pages
    must then be mode "1"). PDF embeds each page as JPEG (DCT), or G4 for mode "1" pages;
    ``stamp`` fixes the PDF creation date so output is reproducible.
    """
    if not images:
        raise ValueError("no pages to save")
    first, rest = images[0], list(images[1:])
    if fmt in ("jpeg", "png") and rest:
        raise ValueError(f"{fmt} holds a single page, got {len(images)}")

    def write(fh: BinaryIO) -> None:
        if fmt == "jpeg":
            first.save(fh, "JPEG", quality=jpeg_quality, dpi=(dpi, dpi))
        elif fmt == "png":
            first.save(fh, "PNG", dpi=(dpi, dpi), compress_level=1)
        elif fmt == "tiff":
            first.save(
                fh,
                "TIFF",
                save_all=True,
                append_images=rest,
                dpi=(dpi, dpi),
                compression="group4" if bilevel else "tiff_lzw",
            )
        elif fmt == "pdf":
            when = time.struct_time((stamp or dt.date(2024, 1, 1)).timetuple())
            first.save(
                fh,
                "PDF",
                save_all=True,
                append_images=rest,
                resolution=float(dpi),
                quality=jpeg_quality,
                title=path.stem,
                creationDate=when,
                modDate=when,
                producer="hall-appliance sample generator",
            )
        else:
            raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")

    if fmt == "tiff" and bilevel and any(im.mode != "1" for im in images):
        raise ValueError("a G4 TIFF needs bilevel (mode '1') pages")
    atomic_write(path, write)
    return compression_for(fmt, bilevel=bilevel)


def compression_for(fmt: str, *, bilevel: bool = False) -> str:
    """How :func:`save_pages` stores the pixels of format ``fmt``."""
    table = {
        "jpeg": "jpeg",
        "png": "png",
        "tiff": "group4" if bilevel else "tiff_lzw",
        "pdf": "pdf_ccitt" if bilevel else "pdf_dct",
    }
    if fmt not in table:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return table[fmt]
