"""The printed sheets of a recovery kit: one A4 PDF page per share, with the share as a QR code
and as typed text, and what the supervisor must know, in Chinese and English.

Each sheet is its own PDF file (``<hall>-kit-<id>-share-<x>-of-<n>.pdf``, mode 0600) so that each
can be printed and handed to a different person; the files are secrets until printed and must be
deleted afterwards (the command says so). Rendered with Pillow (Debian's WenQuanYi Zen Hei) and
segno (QR, error correction level M).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import segno
from PIL import Image, ImageDraw

from appliance.fsutil import atomic_write
from appliance.samples.fonts import load_font
from provisioning.recovery_kit import Kit, SheetShare

DPI = 150
PAGE = (1240, 1754)  # A4 at 150 dpi
QR_MODULE_PX = 6


def _qr_image(text: str) -> Image.Image:
    qr = segno.make(text, error="m", micro=False)
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=QR_MODULE_PX, border=4)
    buf.seek(0)
    return Image.open(buf).convert("L")


def _groups(text: str, size: int = 5, per_line: int = 8) -> list[str]:
    body = text.removeprefix("HK1-")
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    lines = [" ".join(chunks[i : i + per_line]) for i in range(0, len(chunks), per_line)]
    return ["HK1-", *lines]


def render_sheet(kit: Kit, share_text: str, hall_name: str) -> Image.Image:
    s = SheetShare.decode(share_text)
    page = Image.new("L", PAGE, 255)
    d = ImageDraw.Draw(page)
    big, mid, small = load_font("sans", 44), load_font("sans", 28), load_font("sans", 22)
    mono = load_font("sans", 26)
    y = 80
    d.text((80, y), "政务服务大厅设备 · 密钥恢复分片", font=big, fill=0)
    y += 64
    d.text((80, y), "Hall appliance recovery kit: key share", font=mid, fill=0)
    y += 60
    for line in (
        f"大厅 Hall: {hall_name} ({s.hall_id})",
        f"第 {s.x} 份，共 {s.n} 份；任意 {s.k} 份可恢复密钥",
        f"Share {s.x} of {s.n}; any {s.k} of them restore the keys",
        f"恢复包编号 Kit: {s.kit_label}    校验 Check: {kit.fingerprint}",
    ):
        d.text((80, y), line, font=small, fill=0)
        y += 36
    qr = _qr_image(share_text)
    page.paste(qr, ((PAGE[0] - qr.width) // 2, y + 20))
    y += qr.height + 50
    d.text((80, y), "手工输入（无扫码枪时） Type it in when no scanner is at hand:", font=small, fill=0)
    y += 40
    for line in _groups(share_text):
        d.text((100, y), line, font=mono, fill=0)
        y += 36
    y += 20
    for line in (
        "保管要求：本页交一名审核员单独封存于保险柜；不得复印、拍照或与其他分片放在一起。",
        "单独一页不泄露任何密钥；更换故障设备时，技术员需收集其中任意 " + str(s.k) + " 页。",
        "Keep this sheet sealed in the safe, apart from the other sheets; never copy or photograph it.",
        f"One sheet reveals nothing; replacing a dead box needs any {s.k} of the {s.n} sheets.",
    ):
        d.text((80, y), line, font=small, fill=0)
        y += 34
    return page


def write_sheets(kit: Kit, hall_name: str, out_dir: Path) -> list[Path]:
    """One PDF per share in ``out_dir`` (created 0700); returns the files."""
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(out_dir, 0o700)
    paths = []
    for text in kit.shares:
        s = SheetShare.decode(text)
        buf = io.BytesIO()
        render_sheet(kit, text, hall_name).save(buf, "PDF", resolution=DPI)
        path = out_dir / f"{kit.hall_id}-kit-{kit.kit_id}-share-{s.x}-of-{s.n}.pdf"
        atomic_write(path, buf.getvalue(), mode=0o600)
        paths.append(path)
    return paths
