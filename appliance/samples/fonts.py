"""Locate the CJK fonts the sample generator draws with, and check glyph coverage.

The generator only uses fonts from Debian packages: ``fonts-wqy-zenhei`` (a 黑体-style sans,
used for titles and as the universal fallback: it covers GB 2312 completely) and, when present,
``fonts-arphic-uming`` (a 宋体/明体-style serif, the usual face for form body text).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

from PIL import ImageFont

__all__ = [
    "MissingFontError",
    "find_cjk_font",
    "find_serif_font",
    "font_covers",
    "load_font",
    "missing_glyphs",
]

#: (path, TTC face index) candidates, best first. Face 0 of uming.ttc is "AR PL UMing CN".
_SANS_CANDIDATES: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/wqy-zenhei/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy-zenhei/wqy-zenhei.ttc", 0),
)
_SERIF_CANDIDATES: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),
    ("/usr/share/fonts/truetype/arphic-uming/uming.ttc", 0),
)

_INSTALL_HINT = (
    "no CJK font found for the sample generator: install the Debian package 'fonts-wqy-zenhei' "
    "(apt-get install fonts-wqy-zenhei); 'fonts-arphic-uming' is optional and adds a serif face"
)


class MissingFontError(RuntimeError):
    """No usable CJK font is installed."""


def _fc_match(pattern: str) -> Path | None:
    exe = shutil.which("fc-match")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "-f", "%{file}", f"{pattern}:lang=zh-cn"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not out:
        return None
    path = Path(out)
    # fc-match always answers with *something*; only accept a font that really draws Chinese.
    if path.is_file() and _draws_chinese(str(path), 0):
        return path
    return None


@functools.cache
def _draws_chinese(path: str, index: int) -> bool:
    try:
        font = ImageFont.truetype(path, 32, index=index)
    except OSError:
        return False
    return font_covers(font, "国家政务服务登记申请表")


@functools.cache
def find_cjk_font() -> tuple[Path, int]:
    """Return ``(path, ttc_index)`` of a CJK sans font (WenQuanYi Zen Hei preferred).

    Checks the known Debian paths first, then asks fontconfig (``fc-match``). Raises
    :class:`MissingFontError` naming the Debian package to install when nothing is found.
    """
    for path, index in _SANS_CANDIDATES:
        if Path(path).is_file() and _draws_chinese(path, index):
            return Path(path), index
    for pattern in ("WenQuanYi Zen Hei", "Noto Sans CJK SC", "sans-serif"):
        found = _fc_match(pattern)
        if found is not None:
            return found, 0
    raise MissingFontError(_INSTALL_HINT)


@functools.cache
def find_serif_font() -> tuple[Path, int]:
    """Return a CJK serif (宋体-like) font, falling back to :func:`find_cjk_font`."""
    for path, index in _SERIF_CANDIDATES:
        if Path(path).is_file() and _draws_chinese(path, index):
            return Path(path), index
    return find_cjk_font()


@functools.cache
def load_font(style: str, size_px: int) -> ImageFont.FreeTypeFont:
    """A cached font object; ``style`` is ``"sans"`` or ``"serif"``, size in pixels (em size)."""
    if style == "sans":
        path, index = find_cjk_font()
    elif style == "serif":
        path, index = find_serif_font()
    else:
        raise ValueError(f"unknown font style {style!r} (expected 'sans' or 'serif')")
    return ImageFont.truetype(str(path), size_px, index=index)


# A code point no font maps: what it renders as is the font's .notdef glyph.
_NOTDEF_PROBE = "\U0010fffd"
_PROBE_PX = 32


@functools.cache
def _probe_font(path: str, index: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, _PROBE_PX, index=index)


@functools.cache
def _notdef_signature(path: str, index: int) -> tuple[tuple[int, int], bytes]:
    mask = _probe_font(path, index).getmask(_NOTDEF_PROBE)
    return mask.size, bytes(mask)


@functools.cache
def _covers_char(path: str, index: int, ch: str) -> bool:
    if ch.isspace():
        return True
    mask = _probe_font(path, index).getmask(ch)
    if mask.size[0] == 0 or mask.size[1] == 0 or not any(bytes(mask)):
        return False
    return (mask.size, bytes(mask)) != _notdef_signature(path, index)


def missing_glyphs(font: ImageFont.FreeTypeFont, text: str) -> set[str]:
    """Characters of ``text`` the font would draw as .notdef (or not at all)."""
    path = str(font.path)
    return {ch for ch in set(text) if not _covers_char(path, font.index, ch)}


def font_covers(font: ImageFont.FreeTypeFont, text: str) -> bool:
    """True when every non-space character of ``text`` has a real glyph in ``font``."""
    return not missing_glyphs(font, text)
