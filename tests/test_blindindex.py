"""The blind index: keyed tokens, FTS5 match expressions against a real FTS5 table, exact hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import pickle
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance import blindindex
from appliance.blindindex import BlindIndex, canonical
from appliance.tokenise import find_spans, index_terms, normalise, query_plan

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
BI = BlindIndex(KEY)
TOKEN = re.compile(r"[a-z2-7]{10}")

CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
OTHER = st.sampled_from(list("abcXYZ0123456789 -，。、：；（）\n·ＡＢＣ１２３－　〇㎡㍿ßİ"))
MIXED_TEXT = st.lists(st.one_of(CJK, CJK, CJK, OTHER), max_size=40).map("".join)
CJK_CORE = st.lists(CJK | st.sampled_from("〇㍿"), min_size=2, max_size=8).map("".join)

DOCS = {
    1: "申请人：张三丰，身份证号 11010119900307777X，联系电话 138-1234-5678。",
    2: "李四，手机13912345678，住址北京市海淀区，二〇二四年三月七日。",
    3: "张  三 代办；证件号码110101199003077776；电话 139 1234 5678",
    4: "北京市 ABC 档案 No.42",
}


def subkey(purpose: str, key: bytes = KEY) -> bytes:
    info = b"hall-appliance blind index v1 " + purpose.encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


def fts(index: BlindIndex, docs: dict[int, str]) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(seq, uni, whole, content='')")
    for rowid, text in docs.items():
        row = index.document(text)
        db.execute(
            "INSERT INTO t(rowid, seq, uni, whole) VALUES (?, ?, ?, ?)",
            (rowid, row["seq"], row["uni"], row["whole"]),
        )
    return db


def search(db: sqlite3.Connection, index: BlindIndex, query: str) -> list[int]:
    expression = index.match_expression(query)
    assert expression is not None
    return [
        rowid for (rowid,) in db.execute("SELECT rowid FROM t WHERE t MATCH ? ORDER BY rank", (expression,))
    ]


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    conn = fts(BI, DOCS)
    yield conn
    conn.close()


# --- keys and tokens -----------------------------------------------------------------------


@pytest.mark.parametrize("key", [b"", b"k" * 31, b"k" * 33, "k" * 32])
def test_key_must_be_32_bytes(key: object) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        BlindIndex(key)  # type: ignore[arg-type]


def test_token_is_truncated_hmac_of_text_subkey() -> None:
    digest = hmac.new(subkey("text"), "b:张三".encode(), hashlib.sha256).digest()
    expected = base64.b32encode(digest).decode().lower()[:10]  # 10 x 5 bits = the first 50 bits
    assert BI.token("b:张三") == expected
    assert TOKEN.fullmatch(expected)


def test_tokens_depend_on_term_and_key() -> None:
    assert BI.token("b:张三") == BlindIndex(KEY).token("b:张三")
    assert BI.token("b:张三") != BI.token("b:三张")
    assert BI.token("b:张三") != BlindIndex(OTHER_KEY).token("b:张三")
    assert BI.token("u:张") != BI.token("w:张")  # class prefixes keep classes apart


def test_token_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blindindex, "_CACHE_LIMIT", 5)
    index = BlindIndex(KEY)
    tokens = [index.token(f"w:t{i}") for i in range(12)]
    assert len(index._cache) <= 5
    assert tokens == [BI.token(f"w:t{i}") for i in range(12)]


def test_document_columns() -> None:
    text = DOCS[1]
    row = BI.document(text)
    terms = index_terms(text)
    assert set(row) == {"seq", "uni", "whole"}
    for column in ("seq", "uni", "whole"):
        assert row[column].split() == [BI.token(t) for t in getattr(terms, column)]
        assert all(TOKEN.fullmatch(tok) for tok in row[column].split())
    assert len(row["whole"].split()) == 2  # the ID and the phone
    assert "张" not in str(row) and "1381234" not in str(row)


def test_match_expression_syntax() -> None:
    assert BI.match_expression("") is None
    assert BI.match_expression(" ，。 ") is None
    t = BI.token
    assert BI.match_expression("张三丰") == f'(seq : "{t("b:张三")} {t("b:三丰")}")'
    assert BI.match_expression("张 abc") == f'(uni : "{t("u:张")}") AND (seq : "{t("w:abc")}")'
    assert BI.match_expression("138-1234-5678") == (
        f'((seq : "{t("d:138")} {t("d:1234")} {t("d:5678")}") OR (whole : "{t("n:13812345678")}"))'
    )


def test_repr_and_pickle_do_not_expose_keys() -> None:
    assert KEY.hex() not in repr(BI) and "keyed" in repr(BI)
    with pytest.raises(TypeError):
        pickle.dumps(BI)


# --- end to end over a real contentless FTS5 table -----------------------------------------


def test_fts_substrings(db: sqlite3.Connection) -> None:
    assert search(db, BI, "张三丰") == [1]
    assert search(db, BI, "三丰") == [1]
    assert sorted(search(db, BI, "北京市")) == [2, 4]
    assert sorted(search(db, BI, "北京")) == [2, 4]
    assert search(db, BI, "海淀区 李四") == [2]
    assert search(db, BI, "二〇二四") == [2]
    assert search(db, BI, "ａｂｃ") == [4]  # full-width and case folded


def test_fts_non_substrings_not_found(db: sqlite3.Connection) -> None:
    assert search(db, BI, "三张") == []
    assert search(db, BI, "丰三张") == []
    assert search(db, BI, "京北") == []
    assert search(db, BI, "李四 上海") == []
    assert search(db, BI, "ab") == []  # words match whole


def test_fts_one_character_queries(db: sqlite3.Connection) -> None:
    assert sorted(search(db, BI, "张")) == [1, 3]
    assert sorted(search(db, BI, "三")) == [1, 2, 3]
    assert search(db, BI, "李") == [2]
    assert search(db, BI, "鑫") == []


@pytest.mark.parametrize(
    ("query", "rows"),
    [
        ("11010119900307777X", [1]),
        ("11010119900307777x", [1]),
        ("110101 19900307 777X", [1]),
        ("110101-19900307-777x", [1]),
        ("110101199003077776", [3]),
        ("110101 1990 0307 7776", [3]),
        ("13812345678", [1]),
        ("138 1234 5678", [1]),
        ("１３８－１２３４－５６７８", [1]),
        ("13912345678", [2, 3]),
        ("139-1234-5678", [2, 3]),
        ("13912345679", []),
        ("1234", [1, 3]),  # a digit group, as written in docs 1 and 3
    ],
)
def test_fts_id_and_phone_with_and_without_separators(
    db: sqlite3.Connection, query: str, rows: list[int]
) -> None:
    assert sorted(search(db, BI, query)) == rows
    for rowid in rows:
        assert find_spans(query, DOCS[rowid])


def test_fts_false_positive_is_removed_by_confirmation() -> None:
    text = "张三，三丰"
    with closing(fts(BI, {1: text})) as conn:
        assert search(conn, BI, "张三丰") == [1]  # b:张三 b:三丰 are consecutive in seq
    assert find_spans("张三丰", text) == []


def test_fts_other_key_finds_nothing(db: sqlite3.Connection) -> None:
    other = BlindIndex(OTHER_KEY)
    assert search(db, other, "张三丰") == []
    assert other.document(DOCS[1])["seq"] != BI.document(DOCS[1])["seq"]
    with closing(fts(other, DOCS)) as conn:
        assert search(conn, other, "张三丰") == [1]


@settings(max_examples=150, deadline=None)
@given(MIXED_TEXT, CJK_CORE, MIXED_TEXT, st.sampled_from(["", " ", "（"]))
def test_property_any_cjk_substring_matches(before: str, core: str, after: str, pad: str) -> None:
    text = before + core + after
    query = pad + core + pad
    row = BI.document(text)
    expression = BI.match_expression(query)
    assert expression is not None
    plan = query_plan(query)
    for clause in plan.clauses:
        # Every phrase's tokens appear in its column, at consecutive positions in phrase order.
        tokens = [BI.token(term) for term in clause.terms]
        assert f'({clause.column} : "{" ".join(tokens)}")' in expression
        column = row[clause.column].split()
        assert any(column[i : i + len(tokens)] == tokens for i in range(len(column) - len(tokens) + 1))
    with closing(fts(BI, {7: text})) as conn:
        assert search(conn, BI, query) == [7]
    spans = find_spans(query, text)
    assert spans
    assert all(normalise(core) in normalise(text[s:e]) for s, e in spans)


@settings(max_examples=150, deadline=None)
@given(MIXED_TEXT, st.data())
def test_property_confirmed_hits_are_always_fts_hits(text: str, data: st.DataObject) -> None:
    # Confirmation never accepts what the index would miss: any slice of the text that
    # find_spans confirms is also found by FTS5.
    i = data.draw(st.integers(0, len(text)))
    j = data.draw(st.integers(i, len(text)))
    query = text[i:j]
    if BI.match_expression(query) is None or not find_spans(query, text):
        return
    with closing(fts(BI, {1: text})) as conn:
        assert search(conn, BI, query) == [1]


# --- exact-match hashes --------------------------------------------------------------------


def test_exact_is_full_hmac_of_canonical_form() -> None:
    value = BI.exact("phone", "+86 138-1234-5678")
    assert value == hmac.new(subkey("phone"), b"13812345678", hashlib.sha256).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", value)


@pytest.mark.parametrize(
    ("kind", "variants"),
    [
        (
            "id_number",
            ["110101199003077776", " 110101-19900307-7776 ", "１１０１０１ １９９００３０７ ７７７６"],
        ),
        ("id_number", ["11010119900307777X", "11010119900307777x", "110101 19900307 777x"]),
        (
            "phone",
            ["13812345678", "+86 138-1234-5678", "86 13812345678", "0086 13812345678", "(138) 1234 5678"],
        ),
        ("name", ["张三", "张 三", " 张三\n", "张\u3000三"]),
        (
            "name",
            [
                "阿卜杜拉·买买提",
                "阿卜杜拉•买买提",
                "阿卜杜拉・买买提",
                "阿卜杜拉･买买提",
                "阿卜杜拉 · 买买提",
            ],
        ),
        (
            "archival_code",
            ["WS·2024-BGS-0001", "ws•2024-bgs-0001", "WS・2024 - BGS - 0001", "ＷＳ･2024-BGS-0001"],
        ),
    ],
)
def test_exact_canonical_equivalences(kind: blindindex.ExactKind, variants: list[str]) -> None:
    assert len({BI.exact(kind, v) for v in variants}) == 1
    assert len({canonical(kind, v) for v in variants}) == 1


def test_exact_distinguishes() -> None:
    assert BI.exact("archival_code", "WS.2024") != BI.exact("archival_code", "WS·2024")  # '.' kept
    assert BI.exact("name", "张三") != BI.exact("name", "张三丰")
    assert BI.exact("phone", "13812345678") != BI.exact("id_number", "13812345678")  # per-kind keys
    assert BI.exact("phone", "13812345678") != BlindIndex(OTHER_KEY).exact("phone", "13812345678")
    assert BI.exact("phone", "8613812345678") != BI.exact("phone", "861381234567")  # 12 digits kept
    assert canonical("phone", "861381234567") == "861381234567"
    assert canonical("id_number", "11010119900307777x") == "11010119900307777X"


@pytest.mark.parametrize(
    ("kind", "value"), [("id_number", " - "), ("phone", "+ ( ) -"), ("name", " \t"), ("archival_code", "")]
)
def test_exact_empty_canonical_value_rejected(kind: blindindex.ExactKind, value: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        BI.exact(kind, value)


def test_exact_unknown_kind_rejected() -> None:
    with pytest.raises(ValueError, match="unknown"):
        BI.exact("email", "a@b")  # type: ignore[arg-type]


def test_fingerprint_is_fresh_keyed_sha256() -> None:
    first = BI.fingerprint()
    first.update(b"page bytes")
    second = BI.fingerprint()
    assert second.hexdigest() == hmac.new(subkey("fingerprint"), b"", hashlib.sha256).hexdigest()
    assert first.hexdigest() == hmac.new(subkey("fingerprint"), b"page bytes", hashlib.sha256).hexdigest()
    assert first.hexdigest() != hashlib.sha256(b"page bytes").hexdigest()
    assert BlindIndex(OTHER_KEY).fingerprint().hexdigest() != second.hexdigest()
