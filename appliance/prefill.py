"""Recognising identity numbers, telephone numbers and dates in Chinese text, and OCR-assisted
pre-fill of a record's archive metadata.

:func:`suggest_metadata` reads the OCR lines of a record (all pages, reading order) and proposes
values for 证件号码, 联系电话, 日期, 申请人, 题名, 文种 and 办理事项. They are suggestions only: nothing
is applied until a person confirms it. Nothing here logs; reasons name labels and rules, never
the values found (they are personal data).

The recognisers (:func:`id_check_digit`, :func:`normalise_phone`, :func:`find_dates`, ...) live
here because both the suggestions and :mod:`appliance.archival` validation use them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "EARLIEST_DATE",
    "Suggestion",
    "find_dates",
    "has_valid_check_digit",
    "id_birth_date",
    "id_check_digit",
    "id_number_problem",
    "is_valid_id_number",
    "normalise_id_number",
    "normalise_phone",
    "parse_date",
    "suggest_metadata",
]

EARLIEST_DATE = dt.date(1949, 10, 1)  # the earliest 日期 a record of this box may carry


# --- 公民身份号码 (GB 11643-1999) ---------------------------------------------------------------
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
# Province-level prefixes of GB/T 2260 (plus 81/82/83 of the residence permits for HK/Macao/Taiwan).
_PROVINCES = frozenset(
    {"11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
     "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71",
     "81", "82", "83"}
)  # fmt: skip
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ID_SHAPE = re.compile(r"[0-9]{17}[0-9X]")


def id_check_digit(first17: str) -> str:
    """The 18th character of a 公民身份号码: ISO 7064 MOD 11-2 over the first 17 digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("expected the first 17 digits of an ID number (17 ASCII digits)")
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def has_valid_check_digit(number: str) -> bool:
    """Shape (17 digits + digit or ``X``) and check digit only."""
    return bool(_ID_SHAPE.fullmatch(number)) and id_check_digit(number[:17]) == number[17]


def id_birth_date(number: str) -> dt.date | None:
    """The birth date embedded in characters 7-14, or None when it is no calendar date."""
    try:
        return dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None


def id_number_problem(number: str, today: dt.date) -> str | None:
    """Why a canonical ID number is invalid: ``format``, ``region``, ``birth_date`` or
    ``check_digit``; None when it is valid."""
    if not _ID_SHAPE.fullmatch(number):
        return "format"
    if number[:2] not in _PROVINCES:
        return "region"
    birth = id_birth_date(number)
    if birth is None or birth.year < 1900 or birth > today:
        return "birth_date"
    if id_check_digit(number[:17]) != number[17]:
        return "check_digit"
    return None


def is_valid_id_number(number: str, *, today: dt.date | None = None) -> bool:
    """A canonical 18-character ID number (uppercase ``X``, no separators) with a plausible region
    code, a real birth date between 1900 and ``today`` and a correct check digit."""
    return id_number_problem(number, today or dt.date.today()) is None


def normalise_id_number(value: str) -> str:
    """Full-width to ASCII, spaces and hyphens removed, ``x`` upper-cased (idempotent)."""
    text = re.sub(r"[\s\-]+", "", unicodedata.normalize("NFKC", value))
    return unicodedata.normalize("NFKC", text.translate(_ASCII_UPPER))


# --- telephone numbers --------------------------------------------------------------------------
_MOBILE = re.compile(r"1[3-9][0-9]{9}")


def normalise_phone(value: str) -> str | None:
    """Canonical form of a mainland number: a mobile as 11 digits, a landline as ``area-local``
    (``0371-12345678``; area codes 010 and 02x have 3 digits, all others 4 unless written with a
    separator). Spaces, hyphens, brackets and a +86 prefix are tolerated. None if not a number."""
    text = unicodedata.normalize("NFKC", value).strip()
    text = re.sub(r"^(?:\+|00)86[\s\-]*", "", text)
    parts = [p for p in re.split(r"[\s\-()]+", text) if p]
    if not parts or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    digits = "".join(parts)
    if _MOBILE.fullmatch(digits):
        return digits
    if not digits.startswith("0"):
        return None
    if len(parts) >= 2 and re.fullmatch(r"0[0-9]{2,3}", parts[0]):
        area = parts[0]
    else:
        area = digits[:3] if digits.startswith(("010", "02")) else digits[:4]
    local = digits[len(area) :]
    return f"{area}-{local}" if 7 <= len(local) <= 8 else None


# --- dates --------------------------------------------------------------------------------------
_CN_DIGITS = {"〇": 0, "○": 0, "零": 0, "O": 0, "Ο": 0, "一": 1, "二": 2, "三": 3, "四": 4,
              "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}  # fmt: skip
_CN_D = "〇○零OΟ一二三四五六七八九"
_DATE_PATTERNS = (
    re.compile(r"(?<![0-9])([0-9]{4})\s*年\s*([0-9]{1,2})\s*月\s*([0-9]{1,2})\s*[日号]"),
    re.compile(r"(?<![0-9])([0-9]{4})([\-./])([0-9]{1,2})\2([0-9]{1,2})(?![0-9])"),
    re.compile(
        rf"([{_CN_D}]{{4}})年(十[一二]?|[一二三四五六七八九])月"
        r"(三十一?|[二]?十[一二三四五六七八九]?|[一二三四五六七八九])[日号]"
    ),
)


def _cn_number(text: str) -> int:
    if "十" not in text:
        return _CN_DIGITS[text]
    tens, _, ones = text.partition("十")
    return (_CN_DIGITS[tens] if tens else 1) * 10 + (_CN_DIGITS[ones] if ones else 0)


def find_dates(text: str) -> list[tuple[int, int, dt.date]]:
    """Calendar dates written ``2026年3月5日``, ``2026-03-05``, ``2026.3.5``, ``2026/03/05`` or
    ``二〇二六年三月五日`` in ``text`` (digits must be ASCII: NFKC-normalise OCR text first), as
    ``(start, end, date)`` in text order. Impossible dates (2月30日) are skipped; a bare
    ``20260305`` is not a date (nor, so, the birth date inside an ID number)."""
    found: list[tuple[int, int, dt.date]] = []
    for k, pattern in enumerate(_DATE_PATTERNS):
        for m in pattern.finditer(text):
            if k == 2:
                year = int("".join(str(_CN_DIGITS[c]) for c in m[1]))
                month, day = _cn_number(m[2]), _cn_number(m[3])
            elif k == 1:
                year, month, day = int(m[1]), int(m[3]), int(m[4])
            else:
                year, month, day = int(m[1]), int(m[2]), int(m[3])
            try:
                found.append((m.start(), m.end(), dt.date(year, month, day)))
            except ValueError:
                continue
    return sorted(found, key=lambda f: f[0])


def parse_date(value: str | dt.date) -> dt.date | None:
    """A date given as ``datetime.date`` or as text holding exactly one date in a format
    :func:`find_dates` knows; None otherwise."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = unicodedata.normalize("NFKC", value).strip()
    found = find_dates(text)
    if len(found) == 1 and found[0][0] == 0 and found[0][1] == len(text):
        return found[0][2]
    return None


# --- suggestions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Suggestion:
    """A proposed value, how sure the heuristic is (0-1), the index of the line it came from and
    why it was chosen (labels and rules only, never the value)."""

    value: str
    confidence: float
    line: int
    reason: str


@dataclass(frozen=True)
class _Found:
    value: str
    line: int
    label: str | None


_CJK = "\u3400-\u4dbf\u4e00-\u9fff"
_NUMBER_RUN = re.compile(r"(?<![A-Za-z0-9])[0-9]+(?:[ \-][0-9]+)*(?:[ \-]?[Xx])?(?![A-Za-z0-9])")
_ID_LABELS = ("公民身份号码", "身份证号码", "身份证号", "身份证", "证件号码", "证件号", "身份号码")
_PHONE_LABELS = ("联系电话", "电话", "手机", "联系方式", "移动电话", "固定电话")
_DATE_LABELS = ("申请日期", "填表日期", "填报日期", "办理日期", "受理日期", "申请时间", "日期")
_DATE_DENY = ("出生", "有效期", "签发", "截止", "生日")
_NAME_LABELS = ("申请人姓名", "申请人", "姓名", "办理人")
_MATTER_LABELS = ("办理事项", "申请事项", "登记事项", "变更事项", "业务事项")
_NEXT_FIELD = re.compile("性别|民族|出生|身份证|公民|证件|联系|电话|手机|住址|地址|年龄|:")
_NOT_VALUE = ("签名", "签字", "承诺", "关系", "日期", "号码", "电话", "地址", "住址", "事项", "性别",
              "民族", "盖章", "意见", "信息", "情况", "姓名", "申请", "备注")  # fmt: skip
_FIELD_LABELS = frozenset(
    {*_ID_LABELS, *_PHONE_LABELS, *_DATE_LABELS, *_NAME_LABELS, *_MATTER_LABELS, "性别", "民族", "出生日期",
     "出生", "住址", "地址", "备注", "与申请人关系"}
)  # fmt: skip
_NAME = re.compile(rf"[{_CJK}]{{2,4}}|[{_CJK}]{{1,12}}(?:·[{_CJK}]{{1,12}}){{1,3}}")
_TITLE_WORDS = ("申请表", "申请书", "登记表", "审批表", "申报表", "情况表", "证明", "通知", "决定书",
                "承诺书", "告知书", "复印件")  # fmt: skip
_DOC_TYPES = (("身份证复印件", "身份证明"), ("身份证明", "身份证明"), ("证明", "证明"), ("通知", "通知"),
              ("申请表", "申请表"), ("申请书", "申请表"), ("审批表", "申请表"), ("申报表", "申请表"),
              ("登记表", "登记表"))  # fmt: skip
_MATTER_SUFFIXES = ("申请审批表", "申请表", "申请书", "登记表", "审批表", "申报表")


def _clean(line: str) -> str:
    """Full-width to ASCII (digits, colon, X, the ideographic space), ``(0371)`` area codes to
    ``0371-``, middle-dot variants between Chinese characters to ``·``."""
    text = unicodedata.normalize("NFKC", line)
    text = re.sub(r"\((0[0-9]{2,3})\)\s*(?=[0-9])", r"\1-", text)  # (0371)65123456
    return re.sub(rf"(?<=[{_CJK}])[•・.](?=[{_CJK}])", "·", text).strip()


def _close_gaps(text: str) -> str:
    """Spaces between Chinese characters removed (letter-spaced titles and labels: 姓　　名)."""
    return re.sub(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])", "", text).strip()


def _label_before(lines: Sequence[str], idx: int, start: int, labels: Sequence[str]) -> str | None:
    """The label naming a value at ``lines[idx][start:]``: in the text just before it on the same
    line, or (when nothing precedes it) the whole previous line, as table cells read."""
    before = lines[idx][:start]
    if before.strip(" :"):
        tail = _close_gaps(before)[-12:]
        return next((lab for lab in labels if lab in tail), None)
    prev = _close_gaps(lines[idx - 1]) if idx else ""
    if len(prev) > 12:
        return None
    return next((lab for lab in labels if lab in prev), None)


def _phone_from(chunks: Sequence[str]) -> str | None:
    digits = "".join(chunks)
    if "X" in digits.upper() or not 10 <= len(digits) <= 12:
        return None
    return normalise_phone("-".join(chunks))


def _numbers(lines: Sequence[str], today: dt.date) -> tuple[list[_Found], list[_Found]]:
    """Valid ID numbers and phone numbers, with the label next to each."""
    ids: list[_Found] = []
    phones: list[_Found] = []
    for idx, line in enumerate(lines):
        for run in _NUMBER_RUN.finditer(line):
            pieces = list(re.finditer(r"[0-9Xx]+", line[: run.end()]))
            pieces = [p for p in pieces if p.start() >= run.start()]
            chunks = [p.group() for p in pieces]
            taken: set[int] = set()
            for i in range(len(chunks)):
                for j in range(i, len(chunks)):
                    number = "".join(chunks[i : j + 1]).upper()
                    if len(number) == 18 and id_number_problem(number, today) is None:
                        label = _label_before(lines, idx, pieces[i].start(), _ID_LABELS)
                        ids.append(_Found(number, idx, label))
                        taken.update(range(i, j + 1))
            # a phone is one chunk, or the whole run when it is split up (138 1234 5678)
            spans = [(k, k) for k in range(len(chunks))] + ([(0, len(chunks) - 1)] if len(chunks) > 1 else [])
            for i, j in spans:
                phone = None if taken & set(range(i, j + 1)) else _phone_from(chunks[i : j + 1])
                if phone:
                    label = _label_before(lines, idx, pieces[i].start(), _PHONE_LABELS)
                    phones.append(_Found(phone, idx, label))
    return ids, phones


def _pick(found: Sequence[_Found], what: str, sure: float, likely: float) -> Suggestion | None:
    """The first labelled candidate; else the most frequent one (earliest on a tie)."""
    if not found:
        return None
    labelled = [f for f in found if f.label]
    if labelled:
        best = labelled[0]
        return Suggestion(best.value, sure, best.line, f"{what} next to the label {best.label}")
    counts = Counter(f.value for f in found)
    best = max(found, key=lambda f: (counts[f.value], -f.line))
    confidence = likely if len(counts) == 1 else round(likely * counts[best.value] / len(found), 2)
    return Suggestion(
        best.value, confidence, best.line, f"{what} without a label; {len(counts)} distinct value(s) found"
    )


def _dates(lines: Sequence[str], today: dt.date, birth: dt.date | None) -> list[_Found]:
    found: list[_Found] = []
    for idx, line in enumerate(lines):
        for start, _end, when in find_dates(line):
            if when > today or when < EARLIEST_DATE or when == birth:
                continue
            if _label_before(lines, idx, start, _DATE_DENY):
                continue  # birth date, ID card validity, ...
            found.append(_Found(when.isoformat(), idx, _label_before(lines, idx, start, _DATE_LABELS)))
    return found


def _label_value(lines: Sequence[str], labels: Sequence[str]) -> list[tuple[str, int, str, bool]]:
    """``(text, line, label, same_line)`` for lines that start with one of ``labels`` (letter-spaced
    or not): the text after ``:``/space on the same line, or the whole next line when the label
    stands alone. A label glued to its value (OCR lost the colon) counts only on a line without
    any colon, so 申请人签名： is no 申请人."""
    pattern = re.compile("|".join(r"\s*".join(map(re.escape, lab)) for lab in labels))
    out: list[tuple[str, int, str, bool]] = []
    for idx, line in enumerate(lines):
        m = pattern.match(line)
        if m is None:
            continue
        label, rest = re.sub(r"\s+", "", m.group()), line[m.end() :]
        value = re.sub(r"^[\s:]+", "", rest)
        if not value:
            if idx + 1 < len(lines) and lines[idx + 1]:
                out.append((lines[idx + 1], idx + 1, label, False))
        elif len(value) < len(rest) or ":" not in line:
            out.append((value, idx, label, True))
    return out


def _name_in(text: str) -> str | None:
    """A plausible name at the start of ``text``: its first word up to the next field label, or a
    name OCR spaced out (张 伟)."""
    words = text.split()
    if not words:
        return None
    first = _NEXT_FIELD.split(words[0])[0]
    if _NAME.fullmatch(first) and not any(w in first for w in _NOT_VALUE):
        return first
    spaced = "".join(itertools.takewhile(lambda w: len(w) == 1 and re.match(f"[{_CJK}]", w), words))
    if _NAME.fullmatch(spaced) and not any(w in spaced for w in _NOT_VALUE):
        return spaced
    return None


def _applicant(lines: Sequence[str]) -> Suggestion | None:
    best: Suggestion | None = None
    for text, idx, label, same_line in _label_value(lines, _NAME_LABELS):
        name = _name_in(text)
        if name is None:
            continue
        confidence = (0.9 if label.startswith("申请人") else 0.85) - (0 if same_line else 0.05)
        if best is None or confidence > best.confidence:
            where = "after" if same_line else "on the line after"
            best = Suggestion(name, confidence, idx, f"a plausible name {where} the label {label}")
    return best


def _title(lines: Sequence[str]) -> Suggestion | None:
    for idx, raw in enumerate(lines[:8]):
        line = _close_gaps(raw)
        if not 2 <= len(line) <= 40 or re.search("[:，。；]", line) or line[0].isdigit():
            continue
        if any(w in line for w in _TITLE_WORDS):
            confidence = 0.9 if idx == 0 else 0.7
            return Suggestion(line, confidence, idx, "a form title word (申请表/登记表/证明...) near the top")
    return None


def _matter(lines: Sequence[str], title: Suggestion | None) -> Suggestion | None:
    for text, idx, label, same_line in _label_value(lines, _MATTER_LABELS):
        value = _close_gaps(re.split(r"\s{2,}", text)[0])
        if 2 <= len(value) <= 40 and ":" not in value and value not in _FIELD_LABELS:
            return Suggestion(value, 0.85 if same_line else 0.8, idx, f"the value of the label {label}")
    if title is not None:
        for suffix in _MATTER_SUFFIXES:
            if title.value.endswith(suffix) and len(title.value) > len(suffix) + 1:
                value = title.value.removesuffix(suffix)
                return Suggestion(value, 0.6, title.line, f"the title without {suffix}")
    return None


def suggest_metadata(lines: Sequence[str], *, today: dt.date) -> dict[str, Suggestion]:
    """Suggested values by :class:`~appliance.archival.RecordMetadata` field name (``id_number``,
    ``phone``, ``date``, ``applicant``, ``title``, ``doc_type``, ``matter``); a field is absent when
    nothing plausible was found. ``lines`` are the record's OCR lines in reading order; ``line``
    in a suggestion indexes them. ``today`` bounds dates and ID birth dates."""
    text = [_clean(line) for line in lines]
    out: dict[str, Suggestion] = {}
    ids, phones = _numbers(text, today)
    found = {
        "id_number": _pick(ids, "ID number with a valid check digit", 0.95, 0.8),
        "phone": _pick(phones, "phone number", 0.9, 0.7),
    }
    birth = id_birth_date(found["id_number"].value) if found["id_number"] else None
    found["date"] = _pick(_dates(text, today, birth), "date", 0.9, 0.6)
    found["applicant"] = _applicant(text)
    title = found["title"] = _title(text)
    if title is not None:
        doc_type = next((t for word, t in _DOC_TYPES if word in title.value), "其他")
        found["doc_type"] = Suggestion(
            doc_type, 0.8 if doc_type != "其他" else 0.4, title.line, "from the title"
        )
    found["matter"] = _matter(text, title)
    for name, suggestion in found.items():
        if suggestion is not None:
            out[name] = suggestion
    return out
