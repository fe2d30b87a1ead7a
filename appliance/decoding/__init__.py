"""Untrusted scan files (JPEG, PNG, TIFF, PDF) to page images, safely.

Public API::

    sniff_format(head) -> "jpeg" | "png" | "tiff" | "pdf"          (magic bytes only)
    decode_file(path, limits, out_dir) -> list[DecodedPage]          (in this process)
    decode_sandboxed(path, limits, scratch_dir) -> list[DecodedPage] (in a disposable child)

Pages are written one by one as ``.npy`` files (mode 0600) so a 300-page PDF never sits in memory
at once; the caller loads each with :meth:`DecodedPage.load`, processes it and deletes the file.
Every failure is a :class:`~appliance.errors.DecodeError` whose message is a quarantine reason
for counter staff.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import logging
import os
import secrets
import stat
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from appliance.errors import DecodeError, LimitExceeded
from appliance.settings import DecodeLimits

from .formats import HEAD_BYTES, DecodedPage, RawPage, page_file_name, sniff_format
from .pdf import iter_pdf_pages
from .raster import iter_raster_pages
from .sandbox import decode_sandboxed, shutdown_sandbox

__all__ = [
    "DecodedPage",
    "decode_file",
    "decode_sandboxed",
    "open_untrusted",
    "shutdown_sandbox",
    "sniff_format",
    "warm_up",
]

logger = logging.getLogger(__name__)

#: Errors of the machine rather than of the file: the caller should retry later, not quarantine.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES})


def decode_file(
    path: Path,
    limits: DecodeLimits,
    out_dir: Path,
    *,
    token: str | None = None,
    first_pages: int | None = None,
) -> list[DecodedPage]:
    """Decode ``path`` in this process, writing one ``.npy`` per page into ``out_dir``.

    Only for use inside the sandbox child (or tests): a hostile file can exhaust this process.
    Pages are named ``<token>.pNNNN.npy``; on failure, every page written so far is removed.
    Raises the :class:`DecodeError` family; ``OSError`` only for a failure of the scratch dir.
    """
    token = token or secrets.token_hex(8)
    pages: list[DecodedPage] = []
    try:
        with open_untrusted(path, limits) as fh:
            for index, raw in enumerate(_iter_pages(fh, limits)):
                if first_pages is not None and index >= first_pages:
                    break
                if index >= limits.max_pages:
                    raise LimitExceeded(f"more than {limits.max_pages} pages", code="too_many_pages")
                pages.append(_write_page(out_dir, token, index, raw))
    except BaseException as e:
        for page in pages:
            page.path.unlink(missing_ok=True)
        if isinstance(e, DecodeError | MemoryError | KeyboardInterrupt | SystemExit):
            raise
        if isinstance(e, OSError) and e.errno in ENVIRONMENT_ERRNOS:
            raise
        if isinstance(e, OSError) and e.errno == errno.EFBIG:
            raise LimitExceeded(
                "a decoded page is larger than the output limit", code="output_too_large"
            ) from e
        logger.exception("unexpected failure while decoding a file")
        raise DecodeError(
            "the file could not be decoded (internal decoder error)", code="decoder_error"
        ) from e
    return pages


def _iter_pages(fh: BinaryIO, limits: DecodeLimits) -> Iterator[RawPage]:
    head = fh.read(HEAD_BYTES)
    fh.seek(0)
    fmt = sniff_format(head)
    pages: Generator[RawPage, None, None] = (
        iter_pdf_pages(fh, limits) if fmt == "pdf" else iter_raster_pages(fh, fmt, limits)
    )
    with contextlib.closing(pages):
        yield from pages


def open_untrusted(path: Path, limits: DecodeLimits) -> BinaryIO:
    """Open a drop-folder file for reading without following a symlink swapped in for it, and
    refuse anything that is not a regular file or exceeds ``limits.max_file_bytes``."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise DecodeError("the file disappeared before it could be read", code="file_missing") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise DecodeError(
                "the file was replaced by a symbolic link; refused", code="not_regular_file"
            ) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DecodeError("not a regular file; refused", code="not_regular_file")
        check_file_size(st.st_size, limits)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_file_size(size: int, limits: DecodeLimits) -> None:
    if size > limits.max_file_bytes:
        raise LimitExceeded(
            f"the file is {size / 2**20:.1f} MB, more than the limit of "
            f"{limits.max_file_bytes / 2**20:.1f} MB; split it or scan at a lower resolution",
            code="file_too_large",
        )


def _write_page(out_dir: Path, token: str, index: int, raw: RawPage) -> DecodedPage:
    pixels = raw.pixels
    if pixels.dtype != np.uint8 or not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise DecodeError(f"decoder produced an unusable page ({pixels.dtype}, {pixels.shape})")
    pixels = np.ascontiguousarray(pixels)
    path = out_dir / page_file_name(token, index)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            np.lib.format.write_array(f, pixels, allow_pickle=False)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return DecodedPage(
        index=index,
        width=int(pixels.shape[1]),
        height=int(pixels.shape[0]),
        channels=1 if pixels.ndim == 2 else 3,
        dpi=raw.dpi,
        source=raw.source,
        orientation_applied=raw.orientation_applied,
        path=path,
    )


def warm_up() -> None:
    """Import and exercise every decoder once, so forked children start warm."""
    from PIL import Image

    limits = DecodeLimits()
    samples: list[tuple[str, bytes]] = []
    for fmt, mode, kwargs in (
        ("jpeg", "RGB", {}),
        ("png", "LA", {}),
        ("tiff", "1", {"compression": "group4"}),
        ("pdf", "RGB", {}),
    ):
        buf = io.BytesIO()
        Image.new(mode, (16, 16), 0).save(buf, format=fmt.upper(), **kwargs)
        samples.append((fmt, buf.getvalue()))
    for fmt, data in samples:
        try:
            pages = (
                iter_pdf_pages(io.BytesIO(data), limits)
                if fmt == "pdf"
                else iter_raster_pages(io.BytesIO(data), fmt, limits)
            )
            for _ in pages:
                pass
        except Exception:  # warming up is best effort
            logger.exception("decoder warm-up failed for %s", fmt)
