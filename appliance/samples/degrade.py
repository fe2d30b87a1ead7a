"""Scanner effects: skew on a dark bed, dark borders, paper tone, bleed-through, blur, noise,
specks, greyscale/bilevel conversion, JPEG artefacts. Seeded, and it reports what it did.

Works on uint8 with OpenCV throughout (a 200 dpi A4 page takes well under 0.1 s)."""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

__all__ = ["degrade", "map_point"]

# cv2 returns loosely typed arrays; every array here is uint8 unless named otherwise
_U8 = npt.NDArray[Any]
_TILE = 509  # odd-sized noise tile: its repeats do not line up with anything on the page


def map_point(affine: list[float], x: float, y: float) -> tuple[float, float]:
    """Apply a 2x3 affine (row-major, as in ``degradations["affine"]``) to a point."""
    a, b, c, d, e, f = affine
    return a * x + b * y + c, d * x + e * y + f


@functools.cache
def _noise_tiles(seed: int) -> tuple[_U8, _U8]:
    """Unit-variance Gaussian noise split into saturating-add and saturating-subtract parts,
    scaled by 8 (divided back when applied)."""
    n = np.random.default_rng(seed).standard_normal((_TILE, _TILE)) * 8.0
    return (np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8))


def _full_noise(nprng: np.random.Generator, h: int, w: int, sigma: float) -> tuple[_U8, _U8]:
    pos, neg = _noise_tiles(int(nprng.integers(0, 4)))
    oy, ox = (int(v) for v in nprng.integers(0, _TILE, 2))
    reps = (h // _TILE + 2, w // _TILE + 2)
    scale = sigma / 8.0
    out = []
    for tile in (pos, neg):
        big = np.tile(np.roll(tile, (oy, ox), axis=(0, 1)), reps)[:h, :w]
        out.append(cv2.convertScaleAbs(big, alpha=scale))
    return out[0], out[1]


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def degrade(
    img: Image.Image,
    rng: random.Random,
    *,
    skew_deg: float | None = None,
    upside_down: bool = False,
    borders: bool | None = None,
    paper_tone: bool | None = None,
    bleed_through: bool | None = None,
    bleed_source: Image.Image | None = None,
    blur_sigma: float | None = None,
    noise_sigma: float | None = None,
    specks: int | None = None,
    mode: str | None = None,
    jpeg_quality: int | None = None,
    keep_clear: Sequence[tuple[int, int, int, int]] = (),
) -> tuple[Image.Image, dict[str, Any]]:
    """Make an upright clean page look scanned. Returns the image (same size) and what was done.

    Every option left at ``None`` is drawn from ``rng``; pass 0/False to switch an effect off.

    * ``skew_deg``: how far the sheet lies rotated CLOCKWISE on the glass (lines descend to the
      right for positive values), which is also the counter-clockwise ``deskew_deg`` that
      straightens it. Random: uniform in -5..+5.
    * ``upside_down``: the sheet was fed head first (turned 180°, on top of the skew).
    * ``borders``: the dark bed/lid shows along 1-3 edges (and the sheet is off-centre).
    * ``bleed_through``: the other side shows through faintly (``bleed_source``, mirrored;
      default: this page's own print, mirrored and shifted).
    * ``mode``: "RGB", "L" or "1" (bilevel, thresholded); default "RGB".
    * ``jpeg_quality``: 0 = none; otherwise save/reload at that quality (random: 60..90;
      never for mode "1").
    * ``keep_clear``: upright-page boxes (the text lines) where no dust speck may land, so a speck
      never passes for a full stop; sensor noise and single-pixel salt/pepper still do.

    The report's ``affine`` maps upright page pixels to pixels of the returned image.
    """
    target = mode or "RGB"
    if target not in ("RGB", "L", "1"):
        raise ValueError(f"mode must be 'RGB', 'L' or '1', got {target!r}")
    w, h = img.size
    scale = w / 1654.0  # effects are tuned at 200 dpi A4
    nprng = np.random.default_rng(rng.getrandbits(64))
    report: dict[str, Any] = {}
    arr: _U8 = np.array(img.convert("RGB" if target == "RGB" else "L"), dtype=np.uint8)
    channels = 3 if arr.ndim == 3 else 1

    def per_channel(m: _U8) -> _U8:
        return cv2.merge([m, m, m]) if channels == 3 else m

    # --- paper: tone with lamp fall-off, bleed-through from the other side -------------------
    use_tone = bool(_pick(paper_tone, rng.random() < 0.85))
    gain: npt.NDArray[Any] | None = None
    if use_tone:
        gain = cv2.resize(
            nprng.uniform(0.965, 1.0, size=(4, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
        )
    if _pick(bleed_through, rng.random() < 0.25):
        back = bleed_source if bleed_source is not None else img
        ghost: npt.NDArray[Any] = np.asarray(
            back.convert("L")
            .transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            .resize((w // 4, h // 4), Image.Resampling.BILINEAR),
            dtype=np.float32,
        )
        if bleed_source is None:  # our own print seen through: shift it so rows do not line up
            ghost = np.roll(ghost, rng.randint(h // 160, h // 48), axis=0)
        ghost = cv2.resize(cv2.GaussianBlur(ghost, (0, 0), 1.2), (w, h), interpolation=cv2.INTER_LINEAR)
        strength = rng.uniform(0.04, 0.09)
        through = 1.0 - strength * (1.0 - ghost / 255.0)
        gain = through if gain is None else gain * through
        report["bleed_through"] = round(strength, 3)
    if gain is not None:
        arr = cv2.multiply(
            arr, per_channel(np.clip(gain * 255.0 + 0.5, 0, 255).astype(np.uint8)), scale=1.0 / 255.0
        )
    if use_tone:
        r = rng.uniform(236, 252)  # white to slightly cream office paper
        g = r - rng.uniform(0.0, 4.0)
        b = g - rng.uniform(0.0, 9.0)
        tone = (r, g, b) if channels == 3 else (0.299 * r + 0.587 * g + 0.114 * b,)
        ramp = np.arange(256, dtype=np.float32)
        lut = np.stack([ramp * (t / 255.0) for t in tone], axis=-1).astype(np.uint8).reshape(1, 256, channels)
        arr = cv2.LUT(arr, lut)
        report["paper_tone"] = [round(t) for t in tone]

    # --- optics ------------------------------------------------------------------------------
    sigma = float(_pick(blur_sigma, rng.uniform(0.35, 0.9))) * scale
    if sigma > 0.05:
        arr = cv2.GaussianBlur(arr, (0, 0), sigma)
    report["blur_sigma"] = round(sigma, 3)

    # --- geometry: the sheet on the dark bed -------------------------------------------------
    skew = float(_pick(skew_deg, rng.uniform(-5.0, 5.0)))
    edges: dict[str, int] = {}
    if _pick(borders, rng.random() < 0.7):
        names = ["left", "right", "top", "bottom"]
        rng.shuffle(names)
        for name in names[: rng.choice((1, 1, 2, 2, 3))]:
            edges[name] = round(rng.uniform(8, 45) * scale)
    dx = (edges.get("left", 0) - edges.get("right", 0)) * 0.5
    dy = (edges.get("top", 0) - edges.get("bottom", 0)) * 0.5
    angle_cv = -skew + (180.0 if upside_down else 0.0)  # cv2: positive = counter-clockwise
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle_cv, 1.0)
    m[0, 2] += dx
    m[1, 2] += dy
    bed = round(rng.uniform(12, 55))
    if abs(skew) > 1e-9 or upside_down or dx or dy:
        arr = cv2.warpAffine(
            arr,
            m,
            (w, h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(bed, bed, bed),
        )
        # the sheet's edge casts a thin shadow on the bed
        corners = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], np.float64) @ m.T
        shadow = max(1, round(2 * scale))
        cv2.polylines(arr, [np.round(corners).astype(np.int32)], True, (bed + 25,) * 3, shadow, cv2.LINE_AA)
    for name, width in edges.items():  # bed / lid showing beyond the paper
        if name == "left":
            arr[:, :width] = bed
        elif name == "right":
            arr[:, w - width :] = bed
        elif name == "top":
            arr[:width, :] = bed
        else:
            arr[h - width :, :] = bed
    report["skew_deg"] = round(skew, 4)
    report["deskew_deg"] = round(skew, 4)
    report["upside_down"] = upside_down
    report["borders"] = edges
    report["bed_level"] = bed
    report["affine"] = [round(float(v), 6) for v in m.reshape(-1)]

    # --- sensor noise, dust specks -----------------------------------------------------------
    nsig = float(_pick(noise_sigma, rng.uniform(1.5, 5.0)))
    if nsig > 0:
        plus, minus = _full_noise(nprng, h, w, nsig)
        arr = cv2.subtract(cv2.add(arr, per_channel(plus)), per_channel(minus))
    report["noise_sigma"] = round(nsig, 3)
    n_specks = int(_pick(specks, rng.randint(10, 120)))
    if n_specks > 0:
        arr = np.ascontiguousarray(arr)
        inverse = cv2.invertAffineTransform(m)
        n_specks = _add_specks(arr, nprng, n_specks, scale, inverse, keep_clear)
    report["specks"] = n_specks

    # --- compression (the scanner's own JPEG stage), output mode --------------------------------
    q = int(_pick(jpeg_quality, rng.randint(60, 90)))
    if q > 0 and target != "1":
        bgr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR) if channels == 3 else arr
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, q])
        if not ok:  # pragma: no cover - libjpeg does not fail on a valid array
            raise RuntimeError("JPEG encoding failed")
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE)
        if decoded is None:  # pragma: no cover
            raise RuntimeError("JPEG decoding failed")
        arr = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB) if channels == 3 else decoded
        report["jpeg_quality"] = q
    else:
        report["jpeg_quality"] = 0
    result: Image.Image
    if target == "1":
        thresh = rng.uniform(135, 165)
        result = Image.fromarray(np.where(arr > thresh, 255, 0).astype(np.uint8), "L").convert(
            "1", dither=Image.Dither.NONE
        )
        report["threshold"] = round(thresh, 1)
    else:
        result = Image.fromarray(np.ascontiguousarray(arr), target)
    report["mode"] = target
    return result, report


def _add_specks(
    out: _U8,
    nprng: np.random.Generator,
    n: int,
    scale: float,
    inverse: npt.NDArray[Any],
    keep_clear: Sequence[tuple[int, int, int, int]],
) -> int:
    """Dust and toner specks (small dark blobs) plus a sprinkle of salt-and-pepper pixels.
    Returns the number of specks drawn."""
    h, w = out.shape[:2]
    xs = nprng.integers(0, w, n)
    ys = nprng.integers(0, h, n)
    radii = nprng.choice([1, 1, 1, 1, 2], n)
    levels = nprng.integers(20, 110, n)
    keep = np.ones(n, dtype=bool)
    if keep_clear:
        ux = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
        uy = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
        margin = 12.0 * scale
        for x0, y0, x1, y1 in keep_clear:
            keep &= ~((ux >= x0 - margin) & (ux <= x1 + margin) & (uy >= y0 - margin) & (uy <= y1 + margin))
    for x, y, r, v in zip(xs[keep], ys[keep], radii[keep], levels[keep], strict=True):
        rr = max(1, round(float(r) * scale))
        cv2.circle(out, (int(x), int(y)), rr, (int(v),) * 3, -1, lineType=cv2.LINE_AA)
    k = int(h * w * 2e-5)
    flat = out.reshape(h * w, -1)
    flat[nprng.integers(0, h * w, k)] = nprng.integers(0, 90, (k, 1)).astype(np.uint8)
    flat[nprng.integers(0, h * w, k // 2)] = 255
    return int(keep.sum())
