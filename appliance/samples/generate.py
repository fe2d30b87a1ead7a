"""Generate sets of synthetic scanned documents plus ``truth.json``."""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image

from .degrade import degrade
from .forms import (
    make_form_content,
    render_blank_page,
    render_form_page,
    render_id_copy_page,
    render_table_page,
)
from .truth import SampleDocument, SamplePage
from .writers import EXTENSIONS, FORMATS, atomic_write, compression_for, save_pages

__all__ = [
    "TRUTH_FILENAME",
    "DocumentPlan",
    "RenderedDocument",
    "generate_documents",
    "plan_documents",
    "render_document",
    "write_stream",
]

TRUTH_FILENAME = "truth.json"


@dataclass(frozen=True)
class DocumentPlan:
    """What one document of a set will contain (decided for the whole set up front)."""

    index: int
    format: str
    kinds: tuple[str, ...]  # "form", "table", "id_copy", "blank"
    bilevel: bool = False
    upside_down_page: int | None = None

    @property
    def filename(self) -> str:
        return f"scan-{self.index + 1:03d}{EXTENSIONS[self.format]}"


def plan_documents(
    count: int,
    *,
    seed: int = 0,
    formats: Sequence[str] = FORMATS,
    include_blank: bool = True,
    include_upside_down: bool = True,
) -> list[DocumentPlan]:
    """Decide formats and page make-up of a set of ``count`` documents.

    Formats are used in turn. JPEG/PNG documents are a single form page; TIFF/PDF hold 1-4
    pages (form, household table, ID-card copy, blank back side). Every second-of-three TIFF is a
    bilevel G4 set. With ``include_blank`` the set has at least one blank page (when it has a
    multi-page document); with ``include_upside_down`` exactly one non-blank page is upside down.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    fmts = [f.lower() for f in formats]
    fmts = ["jpeg" if f == "jpg" else "tiff" if f == "tif" else f for f in fmts]
    unknown = sorted(set(fmts) - set(FORMATS))
    if not fmts or unknown:
        raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {list(formats)}")
    rng = random.Random(f"hall-samples:plan:{seed}")
    doc_formats: list[str] = []
    doc_kinds: list[list[str]] = []
    doc_bilevel: list[bool] = []
    for i in range(count):
        fmt = fmts[i % len(fmts)]
        kinds = ["form"]
        bilevel = False
        if fmt in ("tiff", "pdf"):
            if fmt == "tiff":
                bilevel = doc_formats.count("tiff") % 3 == 1
            n = rng.choice((1, 2, 2, 3, 3, 4))
            extras = [k for k in ("table", "id_copy") if rng.random() < 0.6]
            kinds += extras[: n - 1]
            if include_blank and len(kinds) < n and rng.random() < 0.6:
                kinds.insert(1 if rng.random() < 0.5 else len(kinds), "blank")
        doc_formats.append(fmt)
        doc_kinds.append(kinds)
        doc_bilevel.append(bilevel)
    if include_blank and not any("blank" in kinds for kinds in doc_kinds):
        multi = [k for k, fmt in enumerate(doc_formats) if fmt in ("tiff", "pdf")]
        if multi:
            kinds = doc_kinds[multi[0]]
            if len(kinds) >= 4:
                kinds.pop()
            kinds.append("blank")
    flip: tuple[int, int] | None = None
    if include_upside_down:
        candidates = [
            (i, k) for i, kinds in enumerate(doc_kinds) for k, kind in enumerate(kinds) if kind != "blank"
        ]
        if candidates:
            flip = rng.choice(candidates)
    return [
        DocumentPlan(
            index=i,
            format=doc_formats[i],
            kinds=tuple(doc_kinds[i]),
            bilevel=doc_bilevel[i],
            upside_down_page=flip[1] if flip is not None and flip[0] == i else None,
        )
        for i in range(count)
    ]


@dataclass
class RenderedDocument:
    """A document's truth and its scanned page images, not yet written."""

    document: SampleDocument
    images: list[Image.Image]
    jpeg_quality: int
    stamp: dt.date
    bilevel: bool

    def save(self, out_dir: Path) -> Path:
        """Write the file (atomically) into ``out_dir``; return its path."""
        path = out_dir / self.document.filename
        save_pages(
            path,
            self.images,
            self.document.format,
            dpi=self.document.pages[0].dpi,
            jpeg_quality=self.jpeg_quality,
            bilevel=self.bilevel,
            stamp=self.stamp,
        )
        return path


def render_document(plan: DocumentPlan, *, seed: int = 0, dpi: int = 200) -> RenderedDocument:
    """Render and degrade the pages of one planned document (deterministic in seed + index)."""
    if dpi not in (200, 300):
        raise ValueError(f"dpi must be 200 or 300, got {dpi}")
    rng = random.Random(f"hall-samples:doc:{seed}:{plan.index}")
    content = make_form_content(rng)
    n = len(plan.kinds)
    footers = n > 1 and rng.random() < 0.4
    file_jpeg_q = rng.randint(60, 90)
    images: list[Image.Image] = []
    pages: list[SamplePage] = []
    for k, kind in enumerate(plan.kinds):
        footer = f"第{k + 1}页/共{n}页" if footers and kind != "blank" else None
        sealed = not plan.bilevel and (
            rng.random() < 0.85 if kind == "form" else rng.random() < 0.25 if kind == "table" else False
        )
        if kind == "form":
            clean, page = render_form_page(rng, dpi=dpi, content=content, seal=sealed, footer=footer)
        elif kind == "table":
            clean, page = render_table_page(rng, dpi=dpi, content=content, seal=sealed, footer=footer)
        elif kind == "id_copy":
            clean, page = render_id_copy_page(
                rng, dpi=dpi, person=content.person, matter=content.matter, footer=footer
            )
        elif kind == "blank":
            # truly blank: no label, nothing showing through (OCR must find nothing here)
            clean, page = render_blank_page(rng, dpi=dpi)
        else:
            raise ValueError(f"unknown page kind {kind!r}")

        if plan.bilevel:
            mode = "1"
        elif page.seal_boxes:
            mode = "RGB"
        else:
            mode = "RGB" if rng.random() < 0.3 else "L"
        options: dict[str, Any] = {"mode": mode, "upside_down": plan.upside_down_page == k}
        if plan.format in ("jpeg", "pdf") or plan.bilevel:
            options["jpeg_quality"] = 0  # the file itself is JPEG-coded (or bilevel)
        elif rng.random() < 0.3:
            options["jpeg_quality"] = 0  # a scanner that hands over raw pixels
        if kind == "blank":
            options["bleed_through"] = False
        options["keep_clear"] = [line.box for line in page.lines]
        scanned, report = degrade(clean, rng, **options)
        if plan.format in ("jpeg", "pdf") and not plan.bilevel:
            report["jpeg_quality"] = file_jpeg_q
        page.deskew_deg = float(report["deskew_deg"])
        page.upside_down = bool(report["upside_down"])
        page.mode = str(report["mode"])
        page.colour = page.mode == "RGB"
        page.degradations = report
        images.append(scanned)
        pages.append(page)
    doc = SampleDocument(
        filename=plan.filename,
        format=plan.format,
        pages=pages,
        fields=content.fields(),
        compression=compression_for(plan.format, bilevel=plan.bilevel),
    )
    return RenderedDocument(
        doc, images, jpeg_quality=file_jpeg_q, stamp=content.apply_date, bilevel=plan.bilevel
    )


def _write_truth(path: Path, docs: Sequence[SampleDocument], *, seed: int, dpi: int) -> None:
    payload = {
        "generator": "appliance.samples",
        "version": 1,
        "seed": seed,
        "dpi": dpi,
        "documents": [d.to_dict() for d in docs],
    }
    data = json.dumps(payload, ensure_ascii=False, indent=1).encode("utf-8")

    def write(fh: BinaryIO) -> None:
        fh.write(data)

    atomic_write(path, write)


def _iter_documents(
    out_dir: Path,
    count: int,
    *,
    seed: int,
    dpi: int,
    formats: Sequence[str],
    include_blank: bool,
    include_upside_down: bool,
    interval_s: float,
    truth_path: Path | None,
    truth_each: bool,
) -> Iterator[SampleDocument]:
    out_dir.mkdir(parents=True, exist_ok=True)
    plans = plan_documents(
        count,
        seed=seed,
        formats=formats,
        include_blank=include_blank,
        include_upside_down=include_upside_down,
    )
    done: list[SampleDocument] = []
    for k, plan in enumerate(plans):
        if k and interval_s > 0:
            time.sleep(interval_s)
        rendered = render_document(plan, seed=seed, dpi=dpi)
        rendered.save(out_dir)
        doc = rendered.document
        done.append(doc)
        if truth_path is not None and (truth_each or k == len(plans) - 1):
            _write_truth(truth_path, done, seed=seed, dpi=dpi)
        yield doc
    if not plans and truth_path is not None:
        _write_truth(truth_path, done, seed=seed, dpi=dpi)


def generate_documents(
    out_dir: Path,
    count: int,
    *,
    seed: int = 0,
    dpi: int = 200,
    formats: Sequence[str] = FORMATS,
    include_blank: bool = True,
    include_upside_down: bool = True,
    truth_path: Path | None = None,
) -> list[SampleDocument]:
    """Write ``count`` synthetic scans into ``out_dir`` and their truth to ``out_dir/truth.json``
    (or ``truth_path``). Deterministic for a given ``seed`` and ``dpi``."""
    return list(
        _iter_documents(
            out_dir,
            count,
            seed=seed,
            dpi=dpi,
            formats=formats,
            include_blank=include_blank,
            include_upside_down=include_upside_down,
            interval_s=0.0,
            truth_path=truth_path or out_dir / TRUTH_FILENAME,
            truth_each=False,
        )
    )


def write_stream(
    out_dir: Path,
    count: int,
    seed: int = 0,
    interval_s: float = 2.0,
    *,
    dpi: int = 200,
    formats: Sequence[str] = FORMATS,
    truth_path: Path | None = None,
) -> Iterator[SampleDocument]:
    """Drop documents into ``out_dir`` one at a time, ``interval_s`` apart (for ``hall demo``),
    yielding each after its file is in place. ``truth_path`` (default: none, so nothing but scans
    lands in a watched inbox) is rewritten after every document."""
    yield from _iter_documents(
        out_dir,
        count,
        seed=seed,
        dpi=dpi,
        formats=formats,
        include_blank=True,
        include_upside_down=True,
        interval_s=interval_s,
        truth_path=truth_path,
        truth_each=True,
    )
