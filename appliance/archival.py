"""Archive metadata (DA/T 46 core elements), the 档号 reference code (DA/T 22-2015) and the checks
a clerk's input must pass before a record is confirmed.

Everything here is pure: no I/O, no logging (the values are personal data). User input never
raises: :func:`validate` returns :class:`FieldProblem` items with a Chinese and an English message
that name the field but never echo its value. Only the 档号 functions raise
(:class:`ArchivalCodeError`), because a malformed code is a programming or data error.

The recognisers for ID numbers, phones and dates live in :mod:`appliance.prefill` (the OCR
suggestions use them too) and are re-exported here.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum

from appliance.prefill import (
    EARLIEST_DATE,
    find_dates,
    has_valid_check_digit,
    id_birth_date,
    id_check_digit,
    id_number_problem,
    is_valid_id_number,
    normalise_id_number,
    normalise_phone,
    parse_date,
)

__all__ = [
    "EARLIEST_DATE",
    "FIELD_LABELS",
    "MAX_LENGTHS",
    "REFUSED_CLASSIFICATIONS",
    "REQUIRED_FOR_CONFIRMATION",
    "ArchivalCodeError",
    "ArchivalCodeParts",
    "Classification",
    "FieldProblem",
    "RecordMetadata",
    "Retention",
    "archival_code_prefix",
    "find_dates",
    "format_archival_code",
    "has_valid_check_digit",
    "id_birth_date",
    "id_check_digit",
    "id_number_problem",
    "is_valid_id_number",
    "normalise_id_number",
    "normalise_metadata",
    "normalise_phone",
    "parse_archival_code",
    "parse_date",
    "parse_retention",
    "validate",
]


class Classification(StrEnum):
    """密级 a service-hall box may hold. 机密 and 绝密 are refused outright."""

    PUBLIC = "公开"
    INTERNAL = "内部"
    SECRET = "秘密"  # noqa: S105 - a classification level, not a password


REFUSED_CLASSIFICATIONS = frozenset({"机密", "绝密"})


class Retention(StrEnum):
    """保管期限 codes of DA/T 22: 永久, 定期30年, 定期10年."""

    PERMANENT = "Y"
    YEARS_30 = "D30"
    YEARS_10 = "D10"


_RETENTION_ALIASES = {
    "Y": "Y", "永久": "Y",
    "D30": "D30", "定期30年": "D30", "定期三十年": "D30", "30年": "D30",
    "D10": "D10", "定期10年": "D10", "定期十年": "D10", "10年": "D10",
}  # fmt: skip


def parse_retention(value: str) -> Retention | None:
    """The code for ``Y``/``D30``/``D10`` or 永久/定期30年/定期10年 (any case, spaces ignored)."""
    key = re.sub(r"\s+", "", unicodedata.normalize("NFKC", value)).upper()
    code = _RETENTION_ALIASES.get(key)
    return Retention(code) if code else None


# --- DA/T 46 metadata ---------------------------------------------------------------------------
FIELD_LABELS: dict[str, str] = {
    "title": "题名",
    "creator": "责任者",
    "date": "日期",
    "doc_type": "文种",
    "classification": "密级",
    "retention": "保管期限",
    "pages": "页数",
    "matter": "办理事项",
    "applicant": "申请人",
    "id_number": "证件号码",
    "phone": "联系电话",
    "fonds": "全宗号",
    "source": "来源",
    "archival_code": "档号",
    "remarks": "备注",
}
REQUIRED_FOR_CONFIRMATION = (
    "title", "date", "retention", "classification", "matter", "applicant", "pages", "fonds",
)  # fmt: skip
MAX_LENGTHS = {
    "title": 200, "creator": 100, "doc_type": 20, "matter": 100, "applicant": 50,
    "source": 100, "remarks": 500,
}  # fmt: skip
MAX_PAGES = 9999


@dataclass(frozen=True)
class RecordMetadata:
    """DA/T 46 core elements of one record plus the service-hall fields. Every field may be empty
    while the record is a draft. ``date`` is stored as an ISO ``YYYY-MM-DD`` string (a
    ``datetime.date`` is accepted); ``retention`` as Y/D30/D10; see :func:`normalise_metadata`."""

    title: str | None = None
    creator: str | None = None
    date: str | dt.date | None = None
    doc_type: str | None = None
    classification: str | None = None
    retention: str | None = None
    pages: int | None = None
    matter: str | None = None
    applicant: str | None = None
    id_number: str | None = None
    phone: str | None = None
    fonds: str | None = None
    source: str | None = None
    archival_code: str | None = None
    remarks: str | None = None

    def to_dict(self) -> dict[str, str | int | None]:
        """JSON-ready mapping by English field name (dates as ISO strings)."""
        out: dict[str, str | int | None] = asdict(self)
        if isinstance(self.date, dt.date):
            out["date"] = self.date.isoformat()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> RecordMetadata:
        """Build from English field names or their Chinese labels (:data:`FIELD_LABELS`).
        Unknown keys are a programming error (``ValueError``); values are taken as they are."""
        by_label = {label: name for name, label in FIELD_LABELS.items()}
        kwargs: dict[str, object] = {}
        for key, value in data.items():
            name = key if key in FIELD_LABELS else by_label.get(key)
            if name is None:
                raise ValueError(f"unknown metadata field {key!r}")
            kwargs[name] = value
        return cls(**kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class FieldProblem:
    """One reason a field is not acceptable. ``code`` is stable (for the UI); the messages name
    the field but never contain its value."""

    field: str
    code: str
    message_zh: str
    message_en: str


# --- 档号 (DA/T 22-2015) -------------------------------------------------------------------------
_DOTS = "·•・･"
_FONDS = re.compile(r"[0-9A-Z]{1,8}")
_CATEGORY = re.compile(r"[A-Z]{1,4}")
_DEPARTMENT = re.compile(r"[0-9A-Z]{1,8}")
MAX_ITEM = 99_999


class ArchivalCodeError(ValueError):
    """A 档号 or one of its parts is malformed. ``part`` names the offending part (``fonds``,
    ``category``, ``year``, ``retention``, ``department``, ``item``) or is None for the shape."""

    def __init__(self, message_en: str, message_zh: str, *, part: str | None = None) -> None:
        super().__init__(f"{message_en} / {message_zh}")
        self.message_en = message_en
        self.message_zh = message_zh
        self.part = part


_PART_RULES: dict[str, tuple[re.Pattern[str] | range, str, str]] = {
    "fonds": (_FONDS, "fonds code must be 1-8 uppercase letters or digits", "全宗号应为1-8位大写字母或数字"),
    "category": (
        _CATEGORY, "category code must be 1-4 uppercase letters, e.g. WS", "门类代码应为1-4位大写字母，如 WS"
    ),
    "year": (range(1949, 2101), "year must be between 1949 and 2100", "年度应在1949至2100之间"),
    "retention": (
        re.compile("Y|D30|D10"), "retention must be Y, D30 or D10", "保管期限代码应为 Y、D30 或 D10"
    ),
    "department": (
        _DEPARTMENT,
        "department code must be 1-8 uppercase letters or digits",
        "机构（问题）代码应为1-8位大写字母或数字",
    ),
    "item": (
        range(1, MAX_ITEM + 1), f"item number must be between 1 and {MAX_ITEM}", f"件号应在1至{MAX_ITEM}之间"
    ),
}  # fmt: skip


def _check_part(part: str, value: object) -> None:
    rule, en, zh = _PART_RULES[part]
    if isinstance(rule, range):
        ok = isinstance(value, int) and not isinstance(value, bool) and value in rule
    else:
        ok = isinstance(value, str) and rule.fullmatch(value) is not None
    if not ok:
        raise ArchivalCodeError(en, zh, part=part)


def archival_code_prefix(fonds: str, category: str, year: int, retention: str, department: str) -> str:
    """Everything of a 档号 but the item number (the key its numbering sequence runs under),
    e.g. ``0042-WS·2026-D30-BGS``. Raises :class:`ArchivalCodeError` for invalid parts."""
    parts = {
        "fonds": fonds,
        "category": category,
        "year": year,
        "retention": retention,
        "department": department,
    }
    for part, value in parts.items():
        _check_part(part, value)
    return f"{fonds}-{category}·{year}-{retention}-{department}"


@dataclass(frozen=True)
class ArchivalCodeParts:
    """The parts of a 档号; invalid parts raise :class:`ArchivalCodeError` on construction."""

    fonds: str
    category: str
    year: int
    retention: str
    department: str
    item: int

    def __post_init__(self) -> None:
        _check_part("item", self.item)
        if isinstance(self.retention, Retention):
            object.__setattr__(self, "retention", self.retention.value)
        archival_code_prefix(self.fonds, self.category, self.year, self.retention, self.department)

    @property
    def prefix(self) -> str:
        return archival_code_prefix(self.fonds, self.category, self.year, self.retention, self.department)


def format_archival_code(parts: ArchivalCodeParts) -> str:
    """``全宗号-门类代码·年度-保管期限-机构代码-件号``, item zero-padded to 4 digits:
    ``0042-WS·2026-D30-BGS-0007``."""
    return f"{parts.prefix}-{parts.item:04d}"


def parse_archival_code(code: str) -> ArchivalCodeParts:
    """Inverse of :func:`format_archival_code`; ``•・･`` are accepted for the middle dot.
    Raises :class:`ArchivalCodeError` saying which part is wrong."""
    text = code.strip()
    for dot in _DOTS[1:]:
        text = text.replace(dot, "·")
    if not text:
        raise ArchivalCodeError("reference code is empty", "档号为空")
    segments = text.split("-")
    if len(segments) != 5:
        raise ArchivalCodeError(
            f"reference code must have 5 hyphen-separated parts "
            f"(fonds-category·year-retention-department-item), found {len(segments)}",
            f"档号应为“全宗号-门类代码·年度-保管期限-机构代码-件号”五段，实际为{len(segments)}段",
        )
    fonds, cat_year, retention, department, item = segments
    category, dot, year = cat_year.partition("·")
    if not dot:
        raise ArchivalCodeError(
            "category and year must be joined by a middle dot (WS·2026)",
            "门类代码与年度之间应以间隔号“·”连接（如 WS·2026）",
            part="category",
        )
    if not re.fullmatch(r"[0-9]{4}", year):
        raise ArchivalCodeError("year must be 4 digits", "年度应为4位数字", part="year")
    if not re.fullmatch(r"[0-9]{4,5}", item) or (len(item) == 5 and item.startswith("0")):
        raise ArchivalCodeError(
            "item number must be 4 digits, zero-padded (0007), or 5 digits from 10000",
            "件号应为4位数字（不足补零，如 0007），10000起为5位",
            part="item",
        )
    return ArchivalCodeParts(fonds, category, int(year), retention, department, int(item))


# --- normalisation and validation ---------------------------------------------------------------
_MESSAGES: dict[str, tuple[str, str]] = {  # code -> (中文, English); field-specific codes are "field.code"
    "required": ("确认归档前必须填写", "required before confirmation"),
    "type": ("类型不正确", "has the wrong type"),
    "control_chars": ("含有不可见控制字符", "contains control characters"),
    "classification.classified_refused": (
        "涉密（机密、绝密）材料不得在本设备存储，请按保密规定另行处理",
        "classified material (机密/绝密) cannot be stored on this device; "
        "hand it over under the secrecy rules",
    ),
    "classification.invalid_choice": ("应为公开、内部或秘密", "must be 公开, 内部 or 秘密"),
    "retention.invalid_choice": (
        "应为永久(Y)、定期30年(D30)或定期10年(D10)",
        "must be Y, D30 or D10 (永久/定期30年/定期10年)",
    ),
    "pages.range": (f"应为1至{MAX_PAGES}的整数", f"must be an integer from 1 to {MAX_PAGES}"),
    "date.invalid_format": ("应为有效日期（YYYY-MM-DD）", "must be a real date (YYYY-MM-DD)"),
    "date.future": ("不能晚于今天", "must not be after today"),
    "date.too_early": ("不能早于1949年10月1日", "must not be before 1949-10-01"),
    "id_number.format": ("应为18位公民身份号码（17位数字加校验码）", "must be 17 digits and a check digit"),
    "id_number.region": ("前6位行政区划代码无效", "the 6-digit region code is not valid"),
    "id_number.birth_date": ("所含出生日期无效", "the embedded birth date is not valid"),
    "id_number.check_digit": ("校验码错误，请核对", "the check digit does not match; re-check the number"),
    "phone.invalid_format": (
        "应为11位手机号或带区号的固定电话",
        "must be a mobile or a landline with area code",
    ),
    "fonds.invalid_format": ("应为1-8位大写字母或数字", "must be 1-8 uppercase letters or digits"),
    "archival_code.fonds_mismatch": ("全宗号与档号不一致", "the fonds differs from the one in the code"),
    "archival_code.retention_mismatch": (
        "保管期限与档号不一致",
        "the retention differs from the one in the code",
    ),
}


def _problem(name: str, code: str, zh: str | None = None, en: str | None = None) -> FieldProblem:
    if zh is None or en is None:
        zh, en = _MESSAGES.get(f"{name}.{code}") or _MESSAGES[code]
    return FieldProblem(name, code, f"{FIELD_LABELS[name]}：{zh}", f"{FIELD_LABELS[name]} ({name}): {en}")


_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def normalise_metadata(meta: RecordMetadata) -> RecordMetadata:
    """Canonical forms: text stripped (blank becomes None), ID number upper-case without
    separators, phone via :func:`normalise_phone`, date as ISO string, retention as its code,
    fonds and 档号 upper-case with ``·``. Values that cannot be normalised are kept (stripped) so
    :func:`validate` can report them."""
    changes: dict[str, object] = {}
    for f in fields(meta):
        value = getattr(meta, f.name)
        if isinstance(value, str):
            if f.name == "id_number":
                value = normalise_id_number(value)
            elif f.name == "phone":
                value = normalise_phone(value) or value
            elif f.name == "retention":
                value = parse_retention(value) or value
            elif f.name in ("fonds", "archival_code"):
                value = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).translate(_UPPER))
                for dot in _DOTS[1:]:
                    value = value.replace(dot, "·")
            elif f.name == "classification":
                value = unicodedata.normalize("NFKC", value)
            value = str(value).strip() or None
        if f.name == "date" and isinstance(value, str | dt.date):
            parsed = parse_date(value)
            value = parsed.isoformat() if parsed else value
        changes[f.name] = value
    return replace(meta, **changes)  # type: ignore[arg-type]


def _text_problems(meta: RecordMetadata) -> list[FieldProblem]:
    out: list[FieldProblem] = []
    for name, limit in MAX_LENGTHS.items():
        value = getattr(meta, name)
        if value is None:
            continue
        if not isinstance(value, str):
            out.append(_problem(name, "type"))
        elif len(value) > limit:
            out.append(_problem(name, "too_long", f"不得超过{limit}个字符", f"at most {limit} characters"))
        elif any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
            out.append(_problem(name, "control_chars"))
    return out


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(meta: RecordMetadata, *, for_confirmation: bool, today: dt.date) -> list[FieldProblem]:
    """Every problem with ``meta`` (empty list: acceptable); never raises. Checks the values
    :func:`normalise_metadata` would store, so ``138 1234 5678`` or a lower-case ``x`` pass: store
    the normalised record. ``for_confirmation`` also requires :data:`REQUIRED_FOR_CONFIRMATION`."""
    m = normalise_metadata(meta)
    out: list[FieldProblem] = []
    if for_confirmation:
        out += [_problem(name, "required") for name in REQUIRED_FOR_CONFIRMATION if getattr(m, name) is None]
    out += _text_problems(m)
    if m.classification is not None and m.classification not in set(Classification):
        refused = m.classification in REFUSED_CLASSIFICATIONS
        out.append(_problem("classification", "classified_refused" if refused else "invalid_choice"))
    if m.retention is not None and m.retention not in set(Retention):
        out.append(_problem("retention", "invalid_choice"))
    if m.pages is not None and not (_is_int(m.pages) and 1 <= m.pages <= MAX_PAGES):
        out.append(_problem("pages", "range"))
    if m.date is not None:
        when = parse_date(m.date) if isinstance(m.date, str | dt.date) else None
        if when is None:
            out.append(_problem("date", "invalid_format"))
        elif when > today:
            out.append(_problem("date", "future"))
        elif when < EARLIEST_DATE:
            out.append(_problem("date", "too_early"))
    if m.id_number is not None:
        reason = id_number_problem(m.id_number, today) if isinstance(m.id_number, str) else "format"
        if reason is not None:
            out.append(_problem("id_number", reason))
    if m.phone is not None and not (isinstance(m.phone, str) and normalise_phone(m.phone)):
        out.append(_problem("phone", "invalid_format"))
    if m.fonds is not None and not (isinstance(m.fonds, str) and _FONDS.fullmatch(m.fonds)):
        out.append(_problem("fonds", "invalid_format"))
    if m.archival_code is not None:
        try:
            parts = parse_archival_code(str(m.archival_code))
        except ArchivalCodeError as exc:
            out.append(_problem("archival_code", "invalid_format", exc.message_zh, exc.message_en))
        else:
            # compared only with valid fields: an invalid one is reported on its own
            if isinstance(m.fonds, str) and _FONDS.fullmatch(m.fonds) and parts.fonds != m.fonds:
                out.append(_problem("archival_code", "fonds_mismatch"))
            if (
                isinstance(m.retention, str)
                and m.retention in set(Retention)
                and parts.retention != m.retention
            ):
                out.append(_problem("archival_code", "retention_mismatch"))
    return out
