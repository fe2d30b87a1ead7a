"""Archive metadata rules: 公民身份号码 check digit, phones, dates, the 档号 of DA/T 22-2015 and
the validation a record must pass before it is confirmed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance import archival
from appliance.archival import (
    FIELD_LABELS,
    REQUIRED_FOR_CONFIRMATION,
    ArchivalCodeError,
    ArchivalCodeParts,
    Classification,
    RecordMetadata,
    Retention,
    archival_code_prefix,
    find_dates,
    format_archival_code,
    has_valid_check_digit,
    id_check_digit,
    is_valid_id_number,
    normalise_metadata,
    normalise_phone,
    parse_archival_code,
    parse_date,
    parse_retention,
    validate,
)
from appliance.samples import identity as sample_identity

TODAY = dt.date(2026, 6, 1)
KNOWN_VALID = "11010519491231002X"  # the textbook example of GB 11643-1999
PROVINCES = ["11", "13", "32", "44", "51", "65", "71", "81"]


def reference_check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 written from the standard, independently of the module: weights are
    2^(17-i) mod 11 and the check value is (12 - sum mod 11) mod 11, 10 written X."""
    total = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(first17))
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


def make_id(region: str, birth: dt.date, seq: int) -> str:
    first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
    return first17 + reference_check_digit(first17)


def valid_record(**changes: object) -> RecordMetadata:
    base = RecordMetadata(
        title="居民身份证申领登记表",
        creator="西平县行政审批局",
        date="2026-03-05",
        doc_type="申请表",
        classification="公开",
        retention="D30",
        pages=3,
        matter="首次申领",
        applicant="金艳颖",
        id_number=KNOWN_VALID,
        phone="13297736307",
        fonds="0042",
        source="西平县政务服务中心",
        archival_code="0042-WS·2026-D30-BGS-0007",
        remarks=None,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def codes(meta: RecordMetadata, *, for_confirmation: bool = True) -> set[tuple[str, str]]:
    return {(p.field, p.code) for p in validate(meta, for_confirmation=for_confirmation, today=TODAY)}


# --- ID numbers ---------------------------------------------------------------------------------
def test_known_example_is_valid() -> None:
    assert id_check_digit(KNOWN_VALID[:17]) == "X"
    assert is_valid_id_number(KNOWN_VALID, today=TODAY)
    assert has_valid_check_digit(KNOWN_VALID)


@pytest.mark.parametrize(
    "first17",
    ["11010519491231002", "44030419900101001", "32010219800229123", "51072219750615888", "65010120000101000"],
)
def test_check_digit_matches_the_standard_formula(first17: str) -> None:
    assert id_check_digit(first17) == reference_check_digit(first17)


def test_check_digit_agrees_with_the_sample_generator() -> None:
    rng = random.Random(7)
    for _ in range(200):
        number = sample_identity.valid_id_number(rng, sample_identity.random_birth_date(rng))
        assert is_valid_id_number(number, today=TODAY)


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_appended_check_digit_is_valid_and_every_single_substitution_is_caught(first17: str) -> None:
    number = first17 + id_check_digit(first17)
    assert number[17] == reference_check_digit(first17)
    assert has_valid_check_digit(number)
    for pos in range(18):
        for ch in "0123456789X" if pos == 17 else "0123456789":
            if ch != number[pos]:
                assert not has_valid_check_digit(number[:pos] + ch + number[pos + 1 :])


@given(
    st.sampled_from(PROVINCES),
    st.integers(0, 9999),
    st.dates(dt.date(1900, 1, 1), TODAY),
    st.integers(0, 999),
)
def test_plausible_numbers_are_valid_and_single_substitutions_are_not(
    province: str, county: int, birth: dt.date, seq: int
) -> None:
    number = make_id(f"{province}{county:04d}", birth, seq)
    assert is_valid_id_number(number, today=TODAY)
    pos = (county + seq) % 17
    changed = number[:pos] + str((int(number[pos]) + 1 + seq % 9) % 10) + number[pos + 1 :]
    assert not is_valid_id_number(changed, today=TODAY)


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("110105194912310021", "wrong check digit"),
        ("11010519491231002x", "lower-case x is not canonical"),
        ("1101051949123100", "too short"),
        ("11010519491231002X1", "too long"),
        ("１１０１０５１９４９１２３１００２X", "full-width digits are not canonical"),
        (make_id("910105", dt.date(1990, 1, 1), 1), "region must start with a province code"),
        (make_id("000105", dt.date(1990, 1, 1), 1), "region 00"),
        (make_id("110105", dt.date(1899, 12, 31), 1), "born before 1900"),
        (make_id("110105", TODAY + dt.timedelta(days=1), 1), "born in the future"),
        ("11010519490230" + "001", "17 characters only"),
    ],
)
def test_invalid_id_numbers(number: str, why: str) -> None:
    assert not is_valid_id_number(number, today=TODAY), why


def test_impossible_birth_date_is_invalid() -> None:
    first17 = "11010519490230001"  # 30 February
    assert not is_valid_id_number(first17 + id_check_digit(first17), today=TODAY)
    assert has_valid_check_digit(first17 + id_check_digit(first17))


@pytest.mark.parametrize(
    "bad", ["1101051949123100", "1101051949123100X", "１１０１０５１９４９１２３１００２", ""]
)
def test_check_digit_rejects_malformed_input(bad: str) -> None:
    with pytest.raises(ValueError, match="17"):
        id_check_digit(bad)


# --- phones and dates ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("13812345678", "13812345678"),
        ("138 1234 5678", "13812345678"),
        ("138-1234-5678", "13812345678"),
        ("+86 138 1234 5678", "13812345678"),
        ("１３８１２３４５６７８", "13812345678"),
        ("0371-65123456", "0371-65123456"),
        ("037165123456", "0371-65123456"),
        ("0371 6512345", "0371-6512345"),
        ("(0371)65123456", "0371-65123456"),
        ("01088888888", "010-88888888"),
        ("021-6123 4567", "021-61234567"),
    ],
)
def test_phone_normalisation(raw: str, canonical: str) -> None:
    assert normalise_phone(raw) == canonical


@pytest.mark.parametrize(
    "raw",
    ["12812345678", "1381234567", "138123456789", "0371-123456", "0371-123456789", "65123456", "abc", ""],
)
def test_phone_rejects(raw: str) -> None:
    assert normalise_phone(raw) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026年3月5日", dt.date(2026, 3, 5)),
        ("2026 年 03 月 05 日", dt.date(2026, 3, 5)),
        ("2026-03-05", dt.date(2026, 3, 5)),
        ("2026.3.5", dt.date(2026, 3, 5)),
        ("2026/03/05", dt.date(2026, 3, 5)),
        ("２０２６年３月５日", dt.date(2026, 3, 5)),
        ("二〇二六年三月五日", dt.date(2026, 3, 5)),
        ("二〇二五年十二月三十一日", dt.date(2025, 12, 31)),
        ("一九四九年十月一日", dt.date(1949, 10, 1)),
        ("二〇二六年二月二十日", dt.date(2026, 2, 20)),
        (dt.date(2026, 3, 5), dt.date(2026, 3, 5)),
        (dt.datetime(2026, 3, 5, 10, 30), dt.date(2026, 3, 5)),
    ],
)
def test_parse_date(text: str | dt.date, expected: dt.date) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    "text", ["2026-02-30", "2026-13-01", "20260305", "2026-03", "2026-3-5 至 2026-4-5", "明天"]
)
def test_parse_date_rejects(text: str) -> None:
    assert parse_date(text) is None


def test_find_dates_positions_and_mixed_separators() -> None:
    text = "有效期限2016.02.11-2036.02.11，2026-3/5 不是日期"
    assert [d for _, _, d in find_dates(text)] == [dt.date(2016, 2, 11), dt.date(2036, 2, 11)]
    start, end, _ = find_dates(text)[0]
    assert text[start:end] == "2016.02.11"


@pytest.mark.parametrize(
    ("raw", "code"),
    [("Y", "Y"), ("永久", "Y"), ("d30", "D30"), ("定期30年", "D30"), ("定期 十 年", "D10"), ("D10", "D10")],
)
def test_parse_retention(raw: str, code: str) -> None:
    assert parse_retention(raw) == code


@pytest.mark.parametrize("raw", ["D20", "长期", "短期", ""])
def test_parse_retention_rejects(raw: str) -> None:
    assert parse_retention(raw) is None


# --- 档号 -----------------------------------------------------------------------------------------
def test_documented_example() -> None:
    parts = ArchivalCodeParts("0042", "WS", 2026, "D30", "BGS", 7)
    assert format_archival_code(parts) == "0042-WS·2026-D30-BGS-0007"
    assert parse_archival_code("0042-WS·2026-D30-BGS-0007") == parts
    assert archival_code_prefix("0042", "WS", 2026, "D30", "BGS") == "0042-WS·2026-D30-BGS"
    assert parts.prefix == "0042-WS·2026-D30-BGS"


@pytest.mark.parametrize("dot", ["·", "•", "・", "･"])
def test_middle_dot_variants(dot: str) -> None:
    assert parse_archival_code(f"0042-WS{dot}2026-D30-BGS-0007").year == 2026


def test_item_numbers_past_9999_grow_to_five_digits() -> None:
    assert format_archival_code(ArchivalCodeParts("0042", "WS", 2026, "Y", "BGS", 10000)).endswith("-10000")
    assert parse_archival_code("0042-WS·2026-Y-BGS-10000").item == 10000
    assert parse_archival_code("0042-WS·2026-Y-BGS-99999").item == 99999
    with pytest.raises(ArchivalCodeError) as exc:
        ArchivalCodeParts("0042", "WS", 2026, "Y", "BGS", 100000)
    assert exc.value.part == "item"


def test_retention_enum_is_stored_as_its_code() -> None:
    parts = ArchivalCodeParts("0042", "WS", 2026, Retention.YEARS_10, "BGS", 1)
    assert type(parts.retention) is str
    assert format_archival_code(parts) == "0042-WS·2026-D10-BGS-0001"


parts_strategy = st.builds(
    ArchivalCodeParts,
    fonds=st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8),
    category=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=4),
    year=st.integers(1949, 2100),
    retention=st.sampled_from(["Y", "D30", "D10"]),
    department=st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8),
    item=st.integers(1, 99_999),
)


@given(parts_strategy)
def test_format_parse_round_trip(parts: ArchivalCodeParts) -> None:
    code = format_archival_code(parts)
    assert parse_archival_code(code) == parts
    assert format_archival_code(parse_archival_code(code)) == code
    assert code == f"{parts.prefix}-{parts.item:04d}"
    assert len(code.rsplit("-", 1)[1]) == max(4, len(str(parts.item)))


@pytest.mark.parametrize(
    ("code", "part", "fragment"),
    [
        ("", None, "empty"),
        ("0042-WS·2026-D30-BGS", None, "5 hyphen-separated parts"),
        ("0042-WS·2026-D30-BGS-0007-1", None, "found 6"),
        ("0042-WS2026-D30-BGS-0007", "category", "middle dot"),
        ("0042-WS·26-D30-BGS-0007", "year", "4 digits"),
        ("0042-WS·1948-D30-BGS-0007", "year", "1949 and 2100"),
        ("0042-WS·2101-D30-BGS-0007", "year", "1949 and 2100"),
        ("0042-ws·2026-D30-BGS-0007", "category", "uppercase letters"),
        ("0042-WSABC·2026-D30-BGS-0007", "category", "1-4"),
        ("0042-W1·2026-D30-BGS-0007", "category", "letters"),
        ("123456789-WS·2026-D30-BGS-0007", "fonds", "1-8"),
        ("00_4-WS·2026-D30-BGS-0007", "fonds", "fonds"),
        ("0042-WS·2026-D20-BGS-0007", "retention", "Y, D30 or D10"),
        ("0042-WS·2026-永久-BGS-0007", "retention", "Y, D30 or D10"),
        ("0042-WS·2026-D30-bgs-0007", "department", "department"),
        ("0042-WS·2026-D30-BGS-7", "item", "zero-padded"),
        ("0042-WS·2026-D30-BGS-00007", "item", "zero-padded"),
        ("0042-WS·2026-D30-BGS-0000", "item", "between 1 and"),
        ("0042-WS·2026-D30-BGS-00a7", "item", "zero-padded"),
    ],
)
def test_parse_rejections_name_the_part(code: str, part: str | None, fragment: str) -> None:
    with pytest.raises(ArchivalCodeError) as exc:
        parse_archival_code(code)
    assert isinstance(exc.value, ValueError)
    assert exc.value.part == part
    assert fragment in str(exc.value)
    assert exc.value.message_zh and exc.value.message_zh in str(exc.value)


@pytest.mark.parametrize(
    ("kwargs", "part"),
    [
        ({"fonds": ""}, "fonds"),
        ({"category": "WS1"}, "category"),
        ({"year": True}, "year"),
        ({"year": 1948}, "year"),
        ({"retention": "永久"}, "retention"),
        ({"department": "办公室"}, "department"),
        ({"item": 0}, "item"),
    ],
)
def test_invalid_parts_cannot_be_built(kwargs: dict[str, object], part: str) -> None:
    base: dict[str, object] = {
        "fonds": "0042", "category": "WS", "year": 2026, "retention": "D30", "department": "BGS", "item": 1,
    }  # fmt: skip
    with pytest.raises(ArchivalCodeError) as exc:
        ArchivalCodeParts(**{**base, **kwargs})  # type: ignore[arg-type]
    assert exc.value.part == part


# --- the metadata model ---------------------------------------------------------------------------
def test_field_labels_cover_every_field_and_round_trip() -> None:
    assert list(FIELD_LABELS) == [f.name for f in dataclasses.fields(RecordMetadata)]
    assert set(REQUIRED_FOR_CONFIRMATION) <= set(FIELD_LABELS)
    meta = valid_record(date=dt.date(2026, 3, 5))
    data = meta.to_dict()
    assert data["date"] == "2026-03-05"
    assert RecordMetadata.from_dict(data) == valid_record()
    chinese = {FIELD_LABELS[k]: v for k, v in data.items()}
    assert RecordMetadata.from_dict(chinese) == valid_record()
    with pytest.raises(ValueError, match="unknown metadata field"):
        RecordMetadata.from_dict({"密码": "x"})


def test_normalise_metadata() -> None:
    raw = RecordMetadata(
        title="  居民身份证申领登记表 ",
        date=dt.date(2026, 3, 5),
        retention="定期30年",
        id_number=" 110105 19491231 002x ",
        phone="138-1234-5678",
        fonds="ab12",
        archival_code="0042-ws•2026-d30-bgs-0007",
        remarks="   ",
    )
    meta = normalise_metadata(raw)
    assert meta.title == "居民身份证申领登记表"
    assert meta.date == "2026-03-05"
    assert meta.retention == "D30" and type(meta.retention) is str
    assert meta.id_number == KNOWN_VALID
    assert meta.phone == "13812345678"
    assert meta.fonds == "AB12"
    assert meta.archival_code == "0042-WS·2026-D30-BGS-0007"
    assert meta.remarks is None
    assert normalise_metadata(meta) == meta
    assert normalise_metadata(RecordMetadata(date="2026年3月5日")).date == "2026-03-05"
    assert normalise_metadata(RecordMetadata(phone="010 8888 8888")).phone == "010-88888888"
    # what cannot be normalised is kept for validate() to report
    assert normalise_metadata(RecordMetadata(phone="12345", date="明天")).phone == "12345"


# --- validation -----------------------------------------------------------------------------------
def test_complete_record_passes() -> None:
    assert validate(valid_record(), for_confirmation=True, today=TODAY) == []


def test_empty_draft_passes_but_cannot_be_confirmed() -> None:
    assert validate(RecordMetadata(), for_confirmation=False, today=TODAY) == []
    problems = validate(RecordMetadata(), for_confirmation=True, today=TODAY)
    assert {(p.field, p.code) for p in problems} == {(f, "required") for f in REQUIRED_FOR_CONFIRMATION}
    assert all(FIELD_LABELS[p.field] in p.message_zh for p in problems)


@pytest.mark.parametrize("name", REQUIRED_FOR_CONFIRMATION)
def test_each_required_field(name: str) -> None:
    meta = valid_record(**{name: None})
    assert codes(meta) == {(name, "required")}
    assert codes(meta, for_confirmation=False) == set()
    if name != "pages":  # blank text counts as missing
        assert codes(valid_record(**{name: "   "})) == {(name, "required")}


@pytest.mark.parametrize(
    ("field", "bad", "code", "good"),
    [
        ("id_number", "110105194912310021", "check_digit", "110105 19491231 002x"),
        (
            "id_number",
            make_id("910105", dt.date(1990, 1, 1), 5),
            "region",
            make_id("110105", dt.date(1990, 1, 1), 5),
        ),
        (
            "id_number",
            make_id("110105", dt.date(2027, 1, 1), 5),
            "birth_date",
            make_id("110105", dt.date(2026, 6, 1), 5),
        ),
        (
            "id_number",
            make_id("110105", dt.date(1899, 1, 1), 5),
            "birth_date",
            make_id("110105", dt.date(1900, 1, 1), 5),
        ),
        ("id_number", "1101051949123100", "format", KNOWN_VALID),
        ("phone", "12812345678", "invalid_format", "138 1234 5678"),
        ("phone", "0371-123456", "invalid_format", "0371-6512345"),
        ("date", "2026-02-30", "invalid_format", "2026-02-28"),
        ("date", "2026-06-02", "future", "2026-06-01"),
        ("date", "1949-09-30", "too_early", "1949-10-01"),
        ("date", "yesterday", "invalid_format", dt.date(2026, 3, 5)),
        ("title", "题" * 201, "too_long", "题" * 200),
        ("applicant", "张" * 51, "too_long", "张" * 50),
        ("matter", "办" * 101, "too_long", "办" * 100),
        ("creator", "局" * 101, "too_long", "局" * 100),
        ("remarks", "注" * 501, "too_long", "注" * 500),
        ("doc_type", "申" * 21, "too_long", "证明"),
        ("title", "居民身份证\x00申领登记表", "control_chars", "居民身份证申领登记表"),
        ("classification", "保密", "invalid_choice", "内部"),
        ("retention", "D20", "invalid_choice", "定期30年"),
        ("pages", 0, "range", 1),
        ("pages", True, "range", 9999),
        ("pages", "3", "range", 3),
        ("fonds", "00-42", "invalid_format", "００４２"),
        ("archival_code", "0042-WS·2026-D20-BGS-0007", "invalid_format", "0042-WS·2026-D30-BGS-0007"),
        ("archival_code", "0043-WS·2026-D30-BGS-0007", "fonds_mismatch", "0042-WS•2026-D30-BGS-0008"),
        ("archival_code", "0042-WS·2026-Y-BGS-0007", "retention_mismatch", "0042-WS·2025-D30-ZC-0001"),
    ],
)
def test_each_rule_fails_and_passes(field: str, bad: object, code: str, good: object) -> None:
    assert codes(valid_record(**{field: bad})) == {(field, code)}
    assert codes(valid_record(**{field: good})) == set()


def test_fonds_and_retention_without_a_code() -> None:
    assert codes(valid_record(archival_code=None, fonds="X001", retention="永久")) == set()
    assert normalise_metadata(valid_record(retention="永久")).retention == "Y"


@pytest.mark.parametrize("level", ["机密", "绝密"])
def test_classified_material_is_refused(level: str) -> None:
    problems = validate(valid_record(classification=level), for_confirmation=False, today=TODAY)
    assert [(p.field, p.code) for p in problems] == [("classification", "classified_refused")]
    assert "本设备" in problems[0].message_zh
    assert "cannot be stored on this device" in problems[0].message_en


@pytest.mark.parametrize("level", list(Classification))
def test_allowed_classifications(level: Classification) -> None:
    assert codes(valid_record(classification=level)) == set()
    assert codes(valid_record(classification=str(level.value))) == set()


def test_messages_never_contain_the_value() -> None:
    bad_id = "110105194912310021"
    for p in validate(
        valid_record(id_number=bad_id, phone="12812345678"), for_confirmation=True, today=TODAY
    ):
        assert bad_id not in p.message_zh + p.message_en
        assert "12812345678" not in p.message_zh + p.message_en
        assert p.message_zh and p.message_en


def test_several_problems_are_all_reported() -> None:
    meta = valid_record(id_number="110105194912310021", date="2030-01-01", classification="绝密", pages=0)
    assert codes(meta) == {
        ("id_number", "check_digit"),
        ("date", "future"),
        ("classification", "classified_refused"),
        ("pages", "range"),
    }


_any_value = st.one_of(st.none(), st.text(max_size=30), st.integers(-5, 20_000), st.booleans(), st.dates())


@settings(max_examples=200)
@given(st.fixed_dictionaries({f.name: _any_value for f in dataclasses.fields(RecordMetadata)}), st.booleans())
def test_validate_never_raises(values: dict[str, object], for_confirmation: bool) -> None:
    meta = RecordMetadata(**values)  # type: ignore[arg-type]
    problems = validate(meta, for_confirmation=for_confirmation, today=TODAY)
    assert all(p.field in FIELD_LABELS and p.message_zh and p.message_en for p in problems)
    normalised = normalise_metadata(meta)
    assert normalise_metadata(normalised) == normalised


def test_public_api_is_exported() -> None:
    for name in archival.__all__:
        assert hasattr(archival, name), name
