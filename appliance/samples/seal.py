"""Red official seals (公章): ring, five-pointed star, unit name around the upper arc.

The seal is blended onto the page in multiply mode, like stamp ink: black print under it stays
black (so the text it overlaps remains readable), white paper turns red.
"""

from __future__ import annotations

import math
import random

import cv2
import numpy as np
from PIL import Image, ImageChops, ImageDraw

from .fonts import load_font
from .truth import Box

__all__ = ["SEAL_DIAMETER_MM", "render_seal_mask", "stamp_seal"]

#: Diameter of a county-level organ's round seal (国务院 seal rules: 4.2 cm for most organs).
SEAL_DIAMETER_MM = 42.0


def _star(cx: float, cy: float, r_outer: float, rot: float = 0.0) -> list[tuple[float, float]]:
    r_inner = r_outer * 0.382
    pts = []
    for k in range(10):
        r = r_outer if k % 2 == 0 else r_inner
        a = rot + math.pi * k / 5 - math.pi / 2
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return pts


def render_seal_mask(unit_name: str, diameter_px: int, *, subtitle: str | None = None) -> Image.Image:
    """Ink coverage (mode "L", 255 = full ink) of an upright seal of ``diameter_px``."""
    d = diameter_px
    pad = max(4, d // 40)
    size = d + 2 * pad
    c = size / 2
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    ring = max(3, round(d * 0.032))
    draw.ellipse((pad, pad, pad + d - 1, pad + d - 1), outline=255, width=ring)
    draw.polygon(_star(c, c, d * 0.17), fill=255)

    # Unit name along the upper arc, each character upright relative to the rim.
    n = len(unit_name)
    font_px = max(8, round(d * (0.15 if n <= 10 else 0.13 if n <= 14 else 0.11)))
    font = load_font("sans", font_px)
    r_text = d / 2 - ring - font_px * 0.62
    span = math.radians(min(250.0, 24.0 * (n - 1) + 20.0)) if n > 1 else 0.0
    glyph_box = font_px * 2
    for i, ch in enumerate(unit_name):
        theta = -span / 2 + span * i / (n - 1) if n > 1 else 0.0  # 0 = top, clockwise positive
        glyph = Image.new("L", (glyph_box, glyph_box), 0)
        ImageDraw.Draw(glyph).text((glyph_box / 2, glyph_box / 2), ch, font=font, fill=255, anchor="mm")
        glyph = glyph.rotate(-math.degrees(theta), resample=Image.Resampling.BILINEAR)
        gx = c + r_text * math.sin(theta) - glyph_box / 2
        gy = c - r_text * math.cos(theta) - glyph_box / 2
        region = (round(gx), round(gy), round(gx) + glyph_box, round(gy) + glyph_box)
        mask.paste(ImageChops.lighter(mask.crop(region), glyph), region[:2])

    if subtitle:
        sub_font = load_font("sans", max(8, round(d * 0.09)))
        draw.text((c, c + d * 0.29), subtitle, font=sub_font, fill=255, anchor="mm")
    return mask


def stamp_seal(
    page: Image.Image,
    rng: random.Random,
    *,
    center: tuple[int, int],
    dpi: int,
    unit_name: str,
    subtitle: str | None = None,
    opacity: float | None = None,
) -> Box:
    """Stamp a red seal centred at ``center`` onto the RGB ``page`` in place; return its box.

    ``opacity`` (0..1, default random 0.8-0.95) is how much ink the stamp leaves where it presses
    hardest."""
    if page.mode != "RGB":
        raise ValueError(f"seals are stamped on RGB pages, got mode {page.mode}")
    d = round(SEAL_DIAMETER_MM / 25.4 * dpi * rng.uniform(0.97, 1.03))
    mask = render_seal_mask(unit_name, d, subtitle=subtitle)
    # Hand-stamped: never quite upright.
    mask = mask.rotate(rng.uniform(-18.0, 18.0), resample=Image.Resampling.BICUBIC)
    ink = np.asarray(mask, dtype=np.float32) / 255.0

    # Uneven inking: a smooth pressure field plus small voids where the ink did not take.
    nprng = np.random.default_rng(rng.getrandbits(64))
    h, w = ink.shape
    coarse = nprng.uniform(0.6, 1.0, size=(6, 6)).astype(np.float32)
    pressure = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    # one side of a stamp usually presses harder
    ramp = np.linspace(rng.uniform(0.75, 1.0), rng.uniform(0.75, 1.0), w, dtype=np.float32)
    voids = (nprng.random((h, w), dtype=np.float32) > 0.04).astype(np.float32)
    ink = cv2.GaussianBlur(ink * np.clip(pressure * ramp, 0.0, 1.0) * voids, (0, 0), max(0.6, d / 400))
    ink *= rng.uniform(0.8, 0.95) if opacity is None else opacity

    colour = np.array([rng.uniform(200, 232), rng.uniform(20, 55), rng.uniform(30, 65)], np.float32) / 255.0
    x0 = center[0] - w // 2
    y0 = center[1] - h // 2
    px0, py0 = max(0, x0), max(0, y0)
    px1, py1 = min(page.width, x0 + w), min(page.height, y0 + h)
    if px0 >= px1 or py0 >= py1:
        return (0, 0, 0, 0)
    region = np.asarray(page.crop((px0, py0, px1, py1)), dtype=np.float32)
    a = ink[py0 - y0 : py1 - y0, px0 - x0 : px1 - x0, None]
    blended = region * (1.0 - a + a * colour)  # multiply blend with opacity a
    page.paste(Image.fromarray(np.clip(blended + 0.5, 0, 255).astype(np.uint8), "RGB"), (px0, py0))

    ys, xs = np.nonzero(a[..., 0] > 0.05)
    if len(xs) == 0:
        return (0, 0, 0, 0)
    return (px0 + int(xs.min()), py0 + int(ys.min()), px0 + int(xs.max()) + 1, py0 + int(ys.max()) + 1)
