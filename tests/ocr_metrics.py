"""Character error rate for OCR output against ground truth.

Normalisation folds what a reader does not count as an error: full-/half-width forms (NFKC),
Chinese vs Latin punctuation of the same meaning, case and all whitespace."""

from __future__ import annotations

import unicodedata

from rapidfuzz.distance import Levenshtein

_PUNCT = str.maketrans(
    {
        "。": ".",
        "，": ",",
        "、": ",",
        "；": ";",
        "：": ":",
        "？": "?",
        "！": "!",
        "（": "(",
        "）": ")",
        "【": "[",
        "】": "]",
        "“": '"',
        "”": '"',
        "‘": "'",
        "’": "'",
        "《": "<",
        "》": ">",
        "—": "-",
        "－": "-",
        "～": "~",
        "·": ".",
        "・": ".",
    }
)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_PUNCT).lower()
    return "".join(ch for ch in text if not ch.isspace())


def edits(hypothesis: str, reference: str) -> tuple[int, int]:
    """(edit distance, reference length) after normalisation."""
    h, r = normalise(hypothesis), normalise(reference)
    return Levenshtein.distance(h, r), len(r)


def cer(pairs: list[tuple[str, str]]) -> float:
    """Overall CER over (hypothesis, reference) pairs: total edits / total reference chars."""
    total_edits = total_chars = 0
    for hyp, ref in pairs:
        e, n = edits(hyp, ref)
        total_edits += e
        total_chars += n
    return total_edits / max(total_chars, 1)
