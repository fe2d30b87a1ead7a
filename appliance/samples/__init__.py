"""Synthetic scans of county service-hall paperwork, with ground truth.

Used by the test suite (OCR character error rate, pipeline exercise), by ``hall demo`` (drop
sample scans into the inbox) and by the benchmarks. Everything is deterministic for a seed.

    from appliance.samples import generate_documents
    docs = generate_documents(Path("/tmp/samples"), 20, seed=1)   # files + truth.json

Fonts come from Debian's ``fonts-wqy-zenhei`` (required) and ``fonts-arphic-uming`` (optional).
"""

from __future__ import annotations

from .degrade import degrade, map_point
from .fonts import MissingFontError, find_cjk_font, find_serif_font
from .forms import (
    FORM_TITLES,
    FormContent,
    a4_size,
    make_form_content,
    render_blank_page,
    render_form_page,
    render_id_copy_page,
    render_table_page,
)
from .generate import (
    TRUTH_FILENAME,
    DocumentPlan,
    RenderedDocument,
    generate_documents,
    plan_documents,
    render_document,
    write_stream,
)
from .identity import Person, id_check_digit, is_valid_id_number, random_person, valid_id_number
from .seal import stamp_seal
from .truth import SampleDocument, SamplePage, TextLine, load_truth
from .writers import FORMATS, save_pages

__all__ = [
    "FORMATS",
    "FORM_TITLES",
    "TRUTH_FILENAME",
    "DocumentPlan",
    "FormContent",
    "MissingFontError",
    "Person",
    "RenderedDocument",
    "SampleDocument",
    "SamplePage",
    "TextLine",
    "a4_size",
    "degrade",
    "find_cjk_font",
    "find_serif_font",
    "generate_documents",
    "id_check_digit",
    "is_valid_id_number",
    "load_truth",
    "make_form_content",
    "map_point",
    "plan_documents",
    "random_person",
    "render_blank_page",
    "render_document",
    "render_form_page",
    "render_id_copy_page",
    "render_table_page",
    "save_pages",
    "stamp_seal",
    "valid_id_number",
    "write_stream",
]
