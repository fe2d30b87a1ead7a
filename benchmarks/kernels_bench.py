"""Kernel benchmark: the native clean-up (``appliance.imaging``) against a reference
OpenCV-Python chain, against ``unpaper`` and against one copy of the page, on one core.

Pages: 300 dpi A4 (2480 x 3508) forms, tables and ID copies from ``appliance.samples``, grey and
colour, on a dark scanner bed with known skew, some upside down, some blank. Reported:

* time per kernel, ours against the chain's equivalent step, and of the whole chain:
  ``clean_page`` vs the OpenCV chain vs ``unpaper`` vs ``memcpy`` (median over the pages of the
  best of ``--repeat`` runs), with the ratios;
* accuracy of each on the same pages: skew error, upside-down pages turned, blank pages found;
* OCR character error rate of the raw page (as scanned), our cleaned grey page and our bilevel
  page, on ``--ocr-pages`` pages (the slow part; ``--ocr-pages 0`` skips it).

Usage: .venv/bin/python benchmarks/kernels_bench.py [--pages 12] [--repeat 3] [--ocr-pages 4]
       [--no-unpaper] [--seed 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from appliance import imaging
from appliance.samples import (
    degrade,
    make_form_content,
    render_blank_page,
    render_form_page,
    render_id_copy_page,
    render_table_page,
)

DPI = 300
WINDOW, K = 49, 0.2  # Sauvola, both chains
SPECK = 50  # largest speck removed, pixels (both chains)
BLANK_INK = 0.0005  # both chains


# --- pages --------------------------------------------------------------------------------------
@dataclass
class Page:
    name: str
    image: np.ndarray
    kind: str
    skew: float
    upside_down: bool
    blank: bool
    text: str


# (kind, colour, skew, upside down): cycled, with a new seed per page.
PLAN = [
    ("form", False, 2.3, False),
    ("form", True, -2.7, False),
    ("table", False, -4.1, True),
    ("form", True, 3.4, True),
    ("id_copy", False, 0.6, False),
    ("blank", False, 1.5, False),
    ("form", True, 1.2, False),
    ("form", False, -1.8, False),
    ("table", True, -0.4, False),
    ("id_copy", True, 4.6, True),
    ("form", False, -3.3, True),
    ("blank", True, -0.9, False),
]


def make_page(index: int, seed: int) -> Page:
    kind, colour, skew, upside_down = PLAN[index % len(PLAN)]
    rng = random.Random(f"kernels-bench:{seed}:{index}")
    skew = round(skew + rng.uniform(-0.25, 0.25), 3)  # off the grid of any search
    content = make_form_content(rng)
    if kind == "form":
        img, truth = render_form_page(rng, dpi=DPI, content=content, seal=colour)
    elif kind == "table":
        img, truth = render_table_page(rng, dpi=DPI, content=content, seal=colour)
    elif kind == "id_copy":
        img, truth = render_id_copy_page(rng, dpi=DPI, person=content.person, matter=content.matter)
    else:
        img, truth = render_blank_page(rng, dpi=DPI, label="第2页" if colour else None)
    scanned, _ = degrade(
        img,
        rng,
        skew_deg=skew,
        upside_down=upside_down,
        borders=True,
        mode="RGB" if colour else "L",
        bleed_through=False if kind == "blank" else None,
        keep_clear=[line.box for line in truth.lines],
    )
    pixels = np.asarray(scanned)
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    name = f"{index:02d}-{kind}-{'colour' if colour else 'grey'}{'-upside-down' if upside_down else ''}"
    return Page(name, np.ascontiguousarray(pixels), kind, skew, upside_down, kind == "blank", truth.text)


# --- the reference OpenCV chain ------------------------------------------------------------------
def ocr_channel(page: np.ndarray) -> np.ndarray:
    return page if page.ndim == 2 else np.ascontiguousarray(page[..., 2])


def analysis_mask(page: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """INTER_AREA to a quarter, dark threshold at 60% of the paper level, border = dark
    components touching the edge. Returns (ink, border) masks of the small page."""
    grey = ocr_channel(page)
    h, w = grey.shape
    small = cv2.resize(grey, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    paper = float(np.percentile(small, 95))
    dark = (small < 0.6 * paper).astype(np.uint8)
    _, labels = cv2.connectedComponents(dark, connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    border = np.isin(labels, edge[edge > 0])
    return (dark.astype(bool) & ~border), border


def profile_score(mask: np.ndarray, angle: float) -> float:
    h, w = mask.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    turned = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST)
    profile = turned.sum(axis=1, dtype=np.int64)
    return float((np.diff(profile) ** 2).sum())


def chain_skew(ink: np.ndarray, max_deg: float = 15.0) -> float:
    """Projection-profile search: whole degrees, then tenths, then fiftieths."""
    mask = ink.astype(np.uint8)
    best = 0.0
    for step, span in ((1.0, max_deg), (0.1, 1.0), (0.02, 0.1)):
        angles = np.arange(best - span, best + span + step / 2, step)
        best = float(max(angles, key=lambda a: profile_score(mask, a)))
    return best


def expanded_rotation(w: int, h: int, angle: float) -> tuple[np.ndarray, int, int]:
    a = math.radians(angle)
    cw = round(w * abs(math.cos(a)) + h * abs(math.sin(a)))
    ch = round(w * abs(math.sin(a)) + h * abs(math.cos(a)))
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    m[:, 2] += ((cw - w) / 2, (ch - h) / 2)
    return m, cw, ch


def chain_rotate(page: np.ndarray, angle: float) -> np.ndarray:
    h, w = page.shape[:2]
    m, cw, ch = expanded_rotation(w, h, angle)
    white = (255, 255, 255) if page.ndim == 3 else 255
    return cv2.warpAffine(page, m, (cw, ch), flags=cv2.INTER_LINEAR, borderValue=white)


def chain_crop(border: np.ndarray, page_shape: tuple[int, ...], angle: float) -> tuple[int, int, int, int]:
    """The border mask rotated like the page; rows and columns that are mostly border (or
    outside the page) are trimmed from each side."""
    h, w = page_shape[:2]
    m, cw, ch = expanded_rotation(w // 4, h // 4, angle)
    off = cv2.warpAffine(border.astype(np.uint8), m, (cw, ch), flags=cv2.INTER_NEAREST, borderValue=1)
    paper = off == 0
    rows = np.nonzero(paper.mean(axis=1) >= 0.25)[0]
    cols = np.nonzero(paper.mean(axis=0) >= 0.25)[0]
    big = expanded_rotation(w, h, angle)
    if len(rows) == 0 or len(cols) == 0:
        return 0, 0, big[1], big[2]
    sx, sy = big[1] / cw, big[2] / ch
    return (int(cols[0] * sx), int(rows[0] * sy), int((cols[-1] + 1) * sx), int((rows[-1] + 1) * sy))


def chain_sauvola(grey: np.ndarray) -> np.ndarray:
    f = grey.astype(np.float32)
    mean = cv2.boxFilter(f, cv2.CV_32F, (WINDOW, WINDOW), borderType=cv2.BORDER_REPLICATE)
    square = cv2.sqrBoxFilter(f, cv2.CV_32F, (WINDOW, WINDOW), borderType=cv2.BORDER_REPLICATE)
    sd = cv2.sqrt(cv2.max(square - mean * mean, 0.0))
    threshold = mean * (1.0 + K * (sd / 128.0 - 1.0))
    return np.where(f <= threshold, 0, 255).astype(np.uint8)


def chain_despeckle(bilevel: np.ndarray) -> np.ndarray:
    _, labels, stats, _ = cv2.connectedComponentsWithStats((bilevel == 0).astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] > SPECK
    keep[0] = False
    return np.where(keep[labels], 0, 255).astype(np.uint8)


def chain_clean(page: np.ndarray, steps: dict[str, float] | None = None) -> tuple[float, bool]:
    """The whole reference chain; returns (deskew angle, blank) and fills ``steps`` (ms)."""
    marks: list[tuple[str, float]] = [("", time.perf_counter())]

    def mark(name: str) -> None:
        marks.append((name, time.perf_counter()))

    ink, border = analysis_mask(page)
    mark("downscale + border mask")
    angle = chain_skew(ink)
    mark("skew")
    turned = chain_rotate(page, angle)
    mark("rotate")
    x0, y0, x1, y1 = chain_crop(border, page.shape, angle)
    kept = turned[y0:y1, x0:x1]
    mark("border crop")
    bilevel = chain_sauvola(ocr_channel(kept))
    mark("Sauvola")
    clean = chain_despeckle(bilevel)
    mark("despeckle")
    blank = float((clean == 0).mean()) < BLANK_INK
    mark("blank check")
    th, tw = kept.shape[:2]
    scale = 320 / max(th, tw)
    cv2.resize(kept, (max(1, round(tw * scale)), max(1, round(th * scale))), interpolation=cv2.INTER_AREA)
    mark("thumbnail")
    if steps is not None:
        for (_, t0), (name, t1) in itertools.pairwise(marks):
            steps[name] = (t1 - t0) * 1000
    return angle, blank


# --- unpaper ------------------------------------------------------------------------------------
def unpaper_run(path: Path, out: Path) -> tuple[float, float]:
    """(milliseconds, detected deskew angle in degrees) of unpaper with default settings."""
    t0 = time.perf_counter()
    done = subprocess.run(
        ["unpaper", "-v", "--overwrite", str(path), str(out)], capture_output=True, text=True, check=True
    )
    ms = (time.perf_counter() - t0) * 1000
    found = re.findall(r"^rotate \([^)]*\): (-?[\d.]+)", done.stdout + done.stderr, re.MULTILINE)
    return ms, math.degrees(float(found[-1])) if found else 0.0


# --- timing helpers ---------------------------------------------------------------------------
def best_ms(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    return min(times)


@dataclass
class Results:
    ours: dict[str, list[float]] = field(default_factory=dict)
    chain: dict[str, list[float]] = field(default_factory=dict)

    def add(self, table: dict[str, list[float]], key: str, ms: float) -> None:
        table.setdefault(key, []).append(ms)


KERNELS = [  # (our kernel, the chain's step)
    ("skew (estimate_skew)", "skew"),
    ("rotate", "rotate"),
    ("border crop (find_content_box)", "border crop"),
    ("Sauvola (binarise)", "Sauvola"),
    ("despeckle", "despeckle"),
    ("thumbnail", "thumbnail"),
]


def time_page(page: Page, repeat: int, res: Results) -> imaging.CleanedPage:
    img = page.image
    cleaned = imaging.clean_page(img)
    angle = cleaned.report.deskew_deg
    plane = ocr_channel(cleaned.image)
    add = res.add
    add(res.ours, "skew (estimate_skew)", best_ms(lambda: imaging.estimate_skew(img), repeat))
    add(res.ours, "rotate", best_ms(lambda: imaging.rotate(img, angle), repeat))
    canvas = imaging.rotate(img, angle)
    size = (img.shape[1], img.shape[0])
    add(
        res.ours,
        "border crop (find_content_box)",
        best_ms(lambda: imaging.find_content_box(canvas, source_size=size, angle_deg=angle), repeat),
    )
    add(res.ours, "Sauvola (binarise)", best_ms(lambda: imaging.binarise(plane, window=WINDOW, k=K), repeat))
    raw = imaging.binarise(plane, window=WINDOW, k=K)
    add(res.ours, "despeckle", best_ms(lambda: imaging.despeckle(raw, max_area=SPECK), repeat))
    add(res.ours, "thumbnail", best_ms(lambda: imaging.thumbnail(cleaned.image), repeat))
    orient = best_ms(lambda: imaging.estimate_orientation(cleaned.image), repeat)
    add(res.ours, "orientation (estimate_orientation)", orient)
    add(res.ours, "seals (find_seals)", best_ms(lambda: imaging.find_seals(img), repeat))
    add(res.ours, "phash", best_ms(lambda: imaging.phash(cleaned.bilevel), repeat))
    add(res.ours, "clean_page", best_ms(lambda: imaging.clean_page(img), repeat))
    steps_best: dict[str, float] = {}
    totals = []
    for _ in range(repeat):
        steps: dict[str, float] = {}
        t0 = time.perf_counter()
        chain_clean(img, steps)
        totals.append((time.perf_counter() - t0) * 1000)
        for k, v in steps.items():
            steps_best[k] = min(v, steps_best.get(k, math.inf))
    for k, v in steps_best.items():
        add(res.chain, k, v)
    add(res.chain, "clean_page", min(totals))
    copy = np.empty_like(img)
    add(res.ours, "memcpy", best_ms(lambda: np.copyto(copy, img), max(repeat, 10)))
    return cleaned


# --- OCR ----------------------------------------------------------------------------------------
def ocr_cer(pages: list[tuple[Page, imaging.CleanedPage]]) -> dict[str, float]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from ocr_metrics import cer

    from appliance.ocr import load_engine
    from appliance.reading_order import sort_lines
    from appliance.settings import OcrSettings

    engine = load_engine(OcrSettings())

    def read(image: np.ndarray) -> str:
        return "\n".join(line.text for line in sort_lines(engine.read(image).lines))

    pairs: dict[str, list[tuple[str, str]]] = {"raw page": [], "cleaned grey": [], "bilevel": []}
    for page, cleaned in pages:
        raw = ocr_channel(page.image)
        if page.upside_down:  # turned by the truth, so that the line order can be compared
            raw = np.ascontiguousarray(raw[::-1, ::-1])
        pairs["raw page"].append((read(raw), page.text))
        pairs["cleaned grey"].append((read(cleaned.ocr_input), page.text))
        pairs["bilevel"].append((read(cleaned.bilevel), page.text))
    return {k: cer(v) for k, v in pairs.items()}


# --- report ------------------------------------------------------------------------------------
def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def print_timing(kind: str, res: Results, repeat: int) -> dict[str, Any]:
    n = len(res.ours["clean_page"])
    print(f"\n== timing, {kind} pages ({n}), ms per page (median of per-page best of {repeat})")
    print(f"{'kernel':36s} {'ours':>8s} {'OpenCV chain':>13s} {'chain/ours':>11s}")
    rows: dict[str, Any] = {}
    for ours_name, chain_name in KERNELS:
        a, b = median(res.ours[ours_name]), median(res.chain[chain_name])
        print(f"{ours_name:36s} {a:8.2f} {b:13.2f} {b / a:10.1f}x")
        rows[ours_name] = {"ours": a, "chain": b}
    for step in ("downscale + border mask", "blank check"):
        print(f"{'(chain) ' + step:36s} {'-':>8s} {median(res.chain[step]):13.2f}")
    for name in ("orientation (estimate_orientation)", "seals (find_seals)", "phash"):
        print(f"{name:36s} {median(res.ours[name]):8.2f} {'-':>13s}")
        rows[name] = {"ours": median(res.ours[name])}
    ours, chain = median(res.ours["clean_page"]), median(res.chain["clean_page"])
    copy = median(res.ours["memcpy"])
    print(f"\n{'whole chain':36s} {'ms':>8s} {'vs clean_page':>14s}")
    print(f"{'clean_page (ours, all of it)':36s} {ours:8.1f} {'1.0x':>14s}")
    print(f"{'OpenCV chain':36s} {chain:8.1f} {chain / ours:13.1f}x")
    if "unpaper" in res.chain:
        up = median(res.chain["unpaper"])
        print(f"{'unpaper (default settings)':36s} {up:8.1f} {up / ours:13.1f}x")
        rows["unpaper"] = up
    copies = f"(clean_page = {ours / copy:.0f} copies)"
    print(f"{'memcpy of the page':36s} {copy:8.2f} {copy / ours:13.3f}x  {copies}")
    rows.update({"clean_page": ours, "chain": chain, "memcpy": copy})
    return rows


def print_accuracy(
    pages: list[Page],
    cleaned: list[imaging.CleanedPage],
    chain: list[tuple[float, bool]],
    unpaper: list[tuple[float, float]],
) -> dict[str, Any]:
    text = [i for i, p in enumerate(pages) if not p.blank]
    upside = [i for i in text if pages[i].upside_down]
    print(f"\n== accuracy on the same pages ({len(text)} with text, {len(pages) - len(text)} blank)")
    print(f"{'':20s} {'skew error median/max':>22s} {'upside-down turned':>19s} {'blank right':>12s}")
    kept = sum(cleaned[i].report.orientation_deg == 0 for i in text if i not in upside)
    rows = [
        (
            "ours (clean_page)",
            [cleaned[i].report.deskew_deg for i in text],
            f"{sum(cleaned[i].report.orientation_deg == 180 for i in upside)}/{len(upside)}"
            f" ({kept}/{len(text) - len(upside)} kept)",
            sum(c.report.blank == p.blank for c, p in zip(cleaned, pages, strict=True)),
        ),
        (
            "OpenCV chain",
            [chain[i][0] for i in text],
            f"0/{len(upside)} (none)",
            sum(c[1] == p.blank for c, p in zip(chain, pages, strict=True)),
        ),
    ]
    if unpaper:
        rows.append(("unpaper", [unpaper[i][1] for i in text], f"0/{len(upside)} (none)", -1))
    figures: dict[str, Any] = {}
    for name, angles, orient, blank_ok in rows:
        err = [abs(a - pages[i].skew) for a, i in zip(angles, text, strict=True)]
        blank = f"{blank_ok}/{len(pages)}" if blank_ok >= 0 else "n/a"
        print(f"{name:20s} {median(err):9.3f} / {max(err):6.3f} deg {orient:>19s} {blank:>12s}")
        figures[name] = {"skew_median": median(err), "skew_max": max(err), "blank_right": blank_ok}
    if unpaper:
        moved = sum(abs(unpaper[i][1]) > 0.05 for i in text)
        print(f"unpaper deskewed {moved} of {len(text)} pages with text (default settings)")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=12, help="pages (default 12: 10 with text, 2 blank)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best counts)")
    parser.add_argument("--ocr-pages", type=int, default=4, help="pages read for the CER (0: skip)")
    parser.add_argument("--no-unpaper", action="store_true", help="skip unpaper")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    os.sched_setaffinity(0, {0})  # one core for everything, unpaper included (it inherits it)
    cv2.setNumThreads(1)
    print(f"one core (cpu 0), cv2 {cv2.__version__} with 1 thread, clean_page threads=1", flush=True)
    t0 = time.perf_counter()
    pages = [make_page(i, args.seed) for i in range(args.pages)]
    h, w = pages[0].image.shape[:2]
    took = time.perf_counter() - t0
    print(f"{len(pages)} pages of {w}x{h} at {DPI} dpi generated in {took:.0f} s", flush=True)

    results = {"grey": Results(), "colour": Results()}
    cleaned: list[imaging.CleanedPage] = []
    chain: list[tuple[float, bool]] = []
    for page in pages:
        res = results["colour" if page.image.ndim == 3 else "grey"]
        cleaned.append(time_page(page, args.repeat, res))
        chain.append(chain_clean(page.image))

    unpaper: list[tuple[float, float]] = []
    if not args.no_unpaper and shutil.which("unpaper"):
        with tempfile.TemporaryDirectory() as tmp:
            for i, page in enumerate(pages):
                src = Path(tmp) / f"in{i}.{'ppm' if page.image.ndim == 3 else 'pgm'}"
                cv2.imwrite(str(src), page.image)
                unpaper.append(unpaper_run(src, src.with_name(f"out{i}{src.suffix}")))
                res = results["colour" if page.image.ndim == 3 else "grey"]
                res.add(res.chain, "unpaper", unpaper[-1][0])

    figures: dict[str, Any] = {"pages": len(pages), "timing_ms": {}}
    for kind, res in results.items():
        if res.ours:
            figures["timing_ms"][kind] = print_timing(kind, res, args.repeat)
    figures["accuracy"] = print_accuracy(pages, cleaned, chain, unpaper)

    if args.ocr_pages > 0:
        text = [i for i, p in enumerate(pages) if not p.blank]
        chosen = [(pages[i], cleaned[i]) for i in text[: args.ocr_pages]]
        t0 = time.perf_counter()
        rates = ocr_cer(chosen)
        print(f"\n== OCR character error rate on {len(chosen)} pages ({time.perf_counter() - t0:.0f} s)")
        for name, rate in rates.items():
            print(f"{name:20s} {rate:7.2%}")
        print("(raw page: as scanned, skewed, on its bed; upside-down pages turned by the truth)")
        figures["cer"] = rates
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
