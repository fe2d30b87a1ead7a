"""Display-safe file names. Names from scanners and shares are untrusted: they may hold newlines,
NUL, path separators, bidi controls or bytes that are not UTF-8. The raw bytes are kept (hex) in
the catalog; this is what staff see."""

from __future__ import annotations

import os
import unicodedata

_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
MAX_DISPLAY = 200


def display_name(raw: bytes | str) -> str:
    """Decode (UTF-8, then GB18030, the two encodings Chinese scanners use) and escape anything
    that could mislead a reader or a log: control characters, bidi overrides, separators."""
    if isinstance(raw, str):
        raw = os.fsencode(raw)
    for enc in ("utf-8", "gb18030"):
        try:
            text = raw.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    else:
        text = raw.decode("utf-8", errors="backslashreplace")
    out = []
    for ch in text:
        if ch in _BIDI or ch in "/\\" or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    name = "".join(out)
    if name in ("", ".", ".."):
        name = f"\\u002e{name[1:]}" if name else "(empty name)"
    if len(name) > MAX_DISPLAY:
        name = name[: MAX_DISPLAY - 1] + "…"
    return name
