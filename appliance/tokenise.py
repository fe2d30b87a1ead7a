"""Search tokeniser: normalisation, index terms, query plans, hit confirmation and snippets.

Pure functions, no keys and no I/O; :mod:`appliance.blindindex` hashes the terms made here.

*Normalisation* is per character: ``casefold(NFKC(ch))`` for every character, concatenated. Doing
it per character (rather than NFKC of the whole string) makes the position map exact and makes
normalisation commute with slicing, so a query cut out of a text normalises to a slice of the
normalised text. (Cost: a base letter and a *separate* combining mark are not composed.)

*Character classes* after normalisation:

- CJK: Han ideographs, by the code point ranges in ``_CJK_RANGES``;
- word: any other ``str.isalpha()`` character, plus combining marks that follow one;
- digit: ``0-9``; everything else separates.

*Terms* (prefixed by class so classes never collide): ``b:`` CJK bigram, ``u:`` CJK character,
``w:`` letter run, ``d:`` digit run, ``n:`` whole number (11-digit mobile starting with 1, or an
18-character ID: 18 digits, or 17 digits + ``x``), which may be written as digit groups joined
by single ``-``/space characters. A query matches a *whole* word or digit run only: ``1990``
does not find ``19900307``; CJK text matches any substring.
"""

from __future__ import annotations

import functools
import itertools
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, NamedTuple

Column = Literal["seq", "uni", "whole"]
Run = tuple[str, int, int]  # (class "c" | "w" | "d", start, end) in the normalised text
Term = tuple[str, int, int]  # (term, start, end) in the normalised text

_CJK_RANGES = (
    (0x3005, 0x3005),  # 々 iteration mark
    (0x3007, 0x3007),  # 〇 ideographic zero, as in 二〇二四年
    (0x3400, 0x4DBF),  # Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xF900, 0xFAFF),  # compatibility: most fold to unified under NFKC; the rest are unified
    (0x20000, 0x3FFFF),  # planes 2 and 3: Extensions B-H (rare name characters)
)
# One of these between two digit groups keeps them one number ("138-1234-5678").
_GROUP_SEPARATORS = frozenset(" -\u2010\u2011\u2012\u2013")
_LINE_BREAKS = str.maketrans(dict.fromkeys("\r\n\t\v\f\x1c\x1d\x1e\x85\u2028\u2029", " "))


@functools.lru_cache(maxsize=65536)
def _fold(ch: str) -> str:
    return unicodedata.normalize("NFKC", ch).casefold()


@functools.lru_cache(maxsize=65536)
def _char_class(ch: str) -> str:
    """The class of one normalised character: c(jk), w(ord), d(igit), m(ark) or "" (separator)."""
    code = ord(ch)
    if any(lo <= code <= hi for lo, hi in _CJK_RANGES):
        return "c"
    if "0" <= ch <= "9":
        return "d"
    if ch.isalpha():
        return "w"
    return "m" if unicodedata.category(ch).startswith("M") else ""


def normalise(text: str) -> str:
    """Per-character NFKC + casefold (full-width ＡＢＣ１２３ → abc123)."""
    return "".join(map(_fold, text))


def normalise_with_map(text: str) -> tuple[str, list[int]]:
    """``normalise(text)`` and, for each of its characters, the index of the source character."""
    parts: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        folded = _fold(ch)
        parts.append(folded)
        origin.extend([i] * len(folded))
    return "".join(parts), origin


def _runs(norm: str) -> list[Run]:
    runs: list[Run] = []
    cur, start = "", 0
    for i, ch in enumerate(norm):
        cls = _char_class(ch)
        if cls == "m":
            cls = "w" if cur == "w" else ""
        if cls != cur:
            if cur:
                runs.append((cur, start, i))
            cur, start = cls, i
    if cur:
        runs.append((cur, start, len(norm)))
    return runs


def _seq_terms(norm: str, runs: list[Run]) -> list[Term]:
    out: list[Term] = []
    for cls, s, e in runs:
        if cls != "c":
            out.append((f"{cls}:{norm[s:e]}", s, e))
        elif e - s == 1:
            out.append(("u:" + norm[s], s, e))
        else:
            out.extend(("b:" + norm[i : i + 2], i, i + 2) for i in range(s, e - 1))
    return out


def _uni_terms(norm: str, runs: list[Run]) -> list[Term]:
    return [("u:" + norm[i], i, i + 1) for cls, s, e in runs if cls == "c" for i in range(s, e)]


class _Chain(NamedTuple):
    """Digit runs ``first..first+len(groups)-1`` joined by single group separators."""

    first: int  # index into the run list
    groups: tuple[tuple[int, int], ...]
    x_end: int | None  # end of a lone "x" word glued to the last group


def _chains(norm: str, runs: list[Run]) -> Iterator[_Chain]:
    i = 0
    while i < len(runs):
        if runs[i][0] != "d":
            i += 1
            continue
        groups = [runs[i][1:]]
        j = i + 1
        while j < len(runs) and runs[j][0] == "d" and norm[groups[-1][1] : runs[j][1]] in _GROUP_SEPARATORS:
            groups.append(runs[j][1:])
            j += 1
        yield _Chain(i, tuple(groups), _glued_x(norm, runs, j, groups[-1][1]))
        i = j


def _glued_x(norm: str, runs: list[Run], j: int, end: int) -> int | None:
    """End of run ``j`` if it is the word "x" starting right at ``end`` (an ID's check char)."""
    if j < len(runs) and runs[j][0] == "w" and runs[j][1] == end and norm[end : runs[j][2]] == "x":
        return runs[j][2]
    return None


def _whole_term(digits: str, with_x: bool) -> str | None:
    if with_x:
        return f"n:{digits}x" if len(digits) == 17 else None
    if len(digits) == 18 or (len(digits) == 11 and digits[0] == "1"):
        return "n:" + digits
    return None


def _whole_terms(norm: str, runs: list[Run]) -> list[Term]:
    """Every whole number made by consecutive groups of a chain (index side)."""
    out: list[Term] = []
    for chain in _chains(norm, runs):
        last = len(chain.groups) - 1
        for a in range(last + 1):
            digits = ""
            for b in range(a, last + 1):
                digits += norm[chain.groups[b][0] : chain.groups[b][1]]
                if len(digits) > 18:
                    break
                if term := _whole_term(digits, False):
                    out.append((term, chain.groups[a][0], chain.groups[b][1]))
                if b == last and chain.x_end is not None and (term := _whole_term(digits, True)):
                    out.append((term, chain.groups[a][0], chain.x_end))
    return out


@dataclass(frozen=True)
class IndexTerms:
    """Plain (unhashed) terms of one text for the three FTS columns, in text order."""

    seq: list[str]
    uni: list[str]
    whole: list[str]


_COLUMN_BUILDERS = {"seq": _seq_terms, "uni": _uni_terms, "whole": _whole_terms}


def index_terms(text: str) -> IndexTerms:
    norm = normalise(text)
    runs = _runs(norm)
    return IndexTerms(**{name: [t[0] for t in build(norm, runs)] for name, build in _COLUMN_BUILDERS.items()})


@dataclass(frozen=True)
class Clause:
    """A phrase (terms at consecutive positions) in one column; or any of ``alternatives``."""

    column: Column
    terms: tuple[str, ...]
    alternatives: tuple[Clause, ...] = ()


@dataclass(frozen=True)
class QueryPlan:
    """Clauses that must all match (AND)."""

    clauses: tuple[Clause, ...]

    @property
    def empty(self) -> bool:
        return not self.clauses


def _number_clause(norm: str, runs: list[Run], chain: _Chain) -> tuple[Clause, int] | None:
    """(seq phrase of the chain's runs OR its whole-number term, runs used), if it is a number."""
    digits = "".join(norm[s:e] for s, e in chain.groups)
    with_x = chain.x_end is not None and len(digits) == 17
    whole = _whole_term(digits, with_x)
    if whole is None:
        return None
    n = len(chain.groups) + with_x
    terms = tuple(f"{c}:{norm[s:e]}" for c, s, e in runs[chain.first : chain.first + n])
    return Clause("seq", terms, (Clause("whole", (whole,)),)), n


def query_plan(query: str) -> QueryPlan:
    """Tokenise a query like :func:`index_terms`; see the module docstring for the rules."""
    norm = normalise(query)
    runs = _runs(norm)
    chains = {chain.first: chain for chain in _chains(norm, runs)}
    clauses: list[Clause] = []
    i = 0
    while i < len(runs):
        cls, s, e = runs[i]
        if cls == "d":
            # The whole chain as one number, else this digit run (+ a glued x) on its own.
            candidates = [chains[i]] if i in chains else []
            candidates.append(_Chain(i, ((s, e),), _glued_x(norm, runs, i + 1, e)))
            made = next(filter(None, (_number_clause(norm, runs, c) for c in candidates)), None)
            if made is not None:
                clauses.append(made[0])
                i += made[1]
                continue
        if cls == "c" and e - s == 1:
            clauses.append(Clause("uni", ("u:" + norm[s],)))
        else:  # a word, a digit run, or the bigrams of a CJK run
            clauses.append(Clause("seq", tuple(t[0] for t in _seq_terms(norm, [runs[i]]))))
        i += 1
    return QueryPlan(tuple(dict.fromkeys(clauses)))


def _phrase_spans(clause: Clause, norm: str, columns: dict[str, list[Term]]) -> list[tuple[int, int]]:
    """Normalised spans of every match of the clause's phrase or of any of its alternatives."""
    terms, k = clause.terms, len(clause.terms)
    spans: list[tuple[int, int]] = []
    bigrams = k > 0 and all(len(t) == 4 and t.startswith("b:") for t in terms)
    if clause.column == "seq" and bigrams and all(a[3] == b[2] for a, b in itertools.pairwise(terms)):
        # A CJK phrase must be a real substring: no phrase across two separate CJK runs.
        needle = terms[0][2:] + "".join(t[3] for t in terms[1:])
        at = norm.find(needle)
        while at >= 0:
            spans.append((at, at + len(needle)))
            at = norm.find(needle, at + 1)
    elif k:
        listed = columns[clause.column]
        spans = [
            (min(t[1] for t in listed[i : i + k]), max(t[2] for t in listed[i : i + k]))
            for i in range(len(listed) - k + 1)
            if all(listed[i + j][0] == terms[j] for j in range(k))
        ]
    for alternative in clause.alternatives:
        spans.extend(_phrase_spans(alternative, norm, columns))
    return spans


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort; merge spans that overlap or touch."""
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def find_spans(plan_or_query: QueryPlan | str, text: str) -> list[tuple[int, int]]:
    """Confirm a hit: [start, end) spans of ``text`` matching the clauses; ``[]`` if any clause fails.

    Spans of every occurrence of every clause are returned, sorted and merged (overlapping or
    touching spans become one). An empty plan matches nothing.
    """
    plan = query_plan(plan_or_query) if isinstance(plan_or_query, str) else plan_or_query
    if plan.empty:
        return []
    norm, origin = normalise_with_map(text)
    runs = _runs(norm)
    columns = {name: build(norm, runs) for name, build in _COLUMN_BUILDERS.items()}
    found: list[tuple[int, int]] = []
    for clause in plan.clauses:
        spans = _phrase_spans(clause, norm, columns)
        if not spans:
            return []
        found.extend(spans)
    return _merge([(origin[s], origin[e - 1] + 1) for s, e in found])


@dataclass(frozen=True)
class Snippet:
    """A display excerpt; ``highlights`` are [start, end) offsets into ``text``."""

    text: str
    highlights: tuple[tuple[int, int], ...]

    def marked(self, open: str = "【", close: str = "】") -> str:
        out, pos = [], 0
        for s, e in self.highlights:
            out += [self.text[pos:s], open, self.text[s:e], close]
            pos = e
        out.append(self.text[pos:])
        return "".join(out)


def make_snippet(text: str, spans: list[tuple[int, int]], *, width: int = 60) -> Snippet:
    """About ``width`` characters of ``text`` around the first span, fitting as many spans as fit.

    A cut end gets ``…``; line breaks and tabs become spaces (one for one).
    """
    width = max(1, width)
    n = len(text)
    clean = _merge([(max(0, s), min(n, e)) for s, e in spans if min(n, e) > max(0, s)])
    start, end = clean[0] if clean else (0, 0)
    end = min(end, start + width)  # a span longer than the window is cut
    for _, e in clean[1:]:
        if e - start > width:
            break
        end = e
    # Share the room left over between both sides; give one side's unused share to the other.
    slack = width - (end - start)
    left = min(start, slack // 2)
    right = min(n - end, slack - left)
    left = min(start, slack - right)
    a, b = start - left, end + right
    prefix = "…" if a > 0 else ""
    body = text[a:b].translate(_LINE_BREAKS)
    suffix = "…" if b < n else ""
    shift = len(prefix) - a
    highlights = tuple((max(s, a) + shift, min(e, b) + shift) for s, e in clean if s < b and e > a)
    return Snippet(prefix + body + suffix, highlights)
