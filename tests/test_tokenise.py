"""The search tokeniser: normalisation, index terms, query plans, confirmation and snippets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.tokenise import (
    Clause,
    IndexTerms,
    QueryPlan,
    Snippet,
    find_spans,
    index_terms,
    make_snippet,
    normalise,
    normalise_with_map,
    query_plan,
)

# Realistic scan text: mostly common Han characters, with ASCII, digits, punctuation, full-width
# forms and characters that NFKC expands or folds.
CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
OTHER = st.sampled_from(list("abcXYZ0123456789 -，。、：；（）\n·ＡＢＣ１２３－　〇㎡㍿ßİ"))
MIXED_TEXT = st.lists(st.one_of(CJK, CJK, CJK, OTHER), max_size=40).map("".join)
# A stretch of >= 2 CJK characters (after normalisation) to cut out of a text as a query.
CJK_CORE = st.lists(CJK | st.sampled_from("〇㍿"), min_size=2, max_size=8).map("".join)


# --- normalisation -------------------------------------------------------------------------


def test_normalise_folds_full_width_and_case() -> None:
    assert normalise("ＡＢＣ１２３，（Ｘ）　ok") == "abc123,(x) ok"
    assert normalise("HeLLo Straße") == "hello strasse"
    assert normalise("张三") == "张三"


def test_normalise_with_map_is_exact_through_expansions() -> None:
    norm, origin = normalise_with_map("a㎡Ｂß")
    assert norm == "am2bss"
    assert origin == [0, 1, 1, 2, 3, 3]
    norm, origin = normalise_with_map("x㍿")
    assert norm == "x株式会社"
    assert origin == [0, 1, 1, 1, 1]


def test_normalise_is_per_character() -> None:
    # Whole-string NFKC would compose e + U+0301 into é; per-character normalisation does not.
    assert normalise("e\u0301") == "e\u0301"
    assert normalise("e\u0301") == normalise_with_map("e\u0301")[0]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30) | MIXED_TEXT)
def test_normalise_matches_map_and_map_is_monotone(text: str) -> None:
    norm, origin = normalise_with_map(text)
    assert normalise(text) == norm
    assert len(origin) == len(norm)
    assert all(0 <= i < len(text) for i in origin)
    assert origin == sorted(origin)
    # Per-character: normalising a slice gives the slice of the normalisation.
    for cut in range(len(text) + 1):
        assert normalise(text[:cut]) + normalise(text[cut:]) == norm


# --- index terms ---------------------------------------------------------------------------


def test_index_terms_mixed_runs() -> None:
    terms = index_terms("张三丰abc123李，Ｄｅｆ")
    assert terms == IndexTerms(
        seq=["b:张三", "b:三丰", "w:abc", "d:123", "u:李", "w:def"],
        uni=["u:张", "u:三", "u:丰", "u:李"],
        whole=[],
    )


def test_cjk_ranges_include_zero_extensions_and_compatibility() -> None:
    assert index_terms("二〇二四").seq == ["b:二〇", "b:〇二", "b:二四"]
    assert index_terms("㐀\U00020000").seq == ["b:㐀\U00020000"]  # Ext. A, Ext. B
    assert index_terms("一龥\u9fff").seq == ["b:一龥", "b:龥\u9fff"]  # both ends of the unified block
    assert index_terms("\uf900").uni == ["u:豈"]  # compatibility ideograph folds to U+8C48
    assert index_terms("\ufa0e").uni == ["u:\ufa0e"]  # a unified ideograph in the compat block
    assert index_terms("ひら").seq == ["w:ひら"]  # kana are letters, not CJK


def test_id_number_terms() -> None:
    terms = index_terms("身份证 11010119900307777X。")
    assert terms.seq == ["b:身份", "b:份证", "d:11010119900307777", "w:x"]
    assert terms.whole == ["n:11010119900307777x"]
    assert index_terms("110101199003077776").whole == ["n:110101199003077776"]
    assert index_terms("110101 19900307 7776").whole == ["n:110101199003077776"]
    assert index_terms("11010119900307777xy").whole == []  # x must stand alone
    assert index_terms("1101011990030777x").whole == []  # 16 digits + x
    # The x belongs to the last group only: no "17 digits + x" here, but 18 digits are an ID.
    assert index_terms("11010119900307777 1x").whole == ["n:110101199003077771"]


@pytest.mark.parametrize(
    "text",
    ["13812345678", "138 1234 5678", "138-1234-5678", "１３８－１２３４－５６７８", "电话138 1234 5678号"],
)
def test_mobile_number_terms(text: str) -> None:
    assert index_terms(text).whole == ["n:13812345678"]


@pytest.mark.parametrize(
    "text", ["23812345678", "013812345678", "138  1234 5678", "138--1234-5678", "1381234567"]
)
def test_not_mobile_numbers(text: str) -> None:
    assert index_terms(text).whole == []


def test_whole_numbers_inside_longer_chains() -> None:
    assert index_terms("2024 138 1234 5678").whole == ["n:13812345678"]


# --- query plans ---------------------------------------------------------------------------


def test_query_plan_rules() -> None:
    assert query_plan("张三丰").clauses == (Clause("seq", ("b:张三", "b:三丰")),)
    assert query_plan("张").clauses == (Clause("uni", ("u:张",)),)
    assert query_plan("ab张三").clauses == (Clause("seq", ("w:ab",)), Clause("seq", ("b:张三",)))
    assert query_plan("Ｘ 12").clauses == (Clause("seq", ("w:x",)), Clause("seq", ("d:12",)))
    assert query_plan("张 张").clauses == (Clause("uni", ("u:张",)),)


@pytest.mark.parametrize("query", ["", "   ", "，。、！", "\n\t"])
def test_empty_query(query: str) -> None:
    plan = query_plan(query)
    assert plan.empty
    assert plan == QueryPlan(())
    assert find_spans(plan, "，。、！ 张三") == []


def test_query_plan_numbers_get_whole_alternatives() -> None:
    phone = Clause("whole", ("n:13812345678",))
    assert query_plan("138 1234 5678").clauses == (Clause("seq", ("d:138", "d:1234", "d:5678"), (phone,)),)
    assert query_plan("13812345678").clauses == (Clause("seq", ("d:13812345678",), (phone,)),)
    id_x = Clause("whole", ("n:11010119900307777x",))
    assert query_plan("11010119900307777X").clauses == (
        Clause("seq", ("d:11010119900307777", "w:x"), (id_x,)),
    )
    # The chain is not a number, but its last group is.
    assert query_plan("2024 13812345678").clauses == (
        Clause("seq", ("d:2024",)),
        Clause("seq", ("d:13812345678",), (phone,)),
    )
    assert query_plan("1234").clauses == (Clause("seq", ("d:1234",)),)


# --- confirmation --------------------------------------------------------------------------


def spans_text(text: str, spans: list[tuple[int, int]]) -> list[str]:
    return [text[s:e] for s, e in spans]


def test_find_spans_cjk_substrings() -> None:
    text = "申请人张三丰，住址北京市"
    assert spans_text(text, find_spans("三丰", text)) == ["三丰"]
    assert spans_text(text, find_spans("张三丰 北京", text)) == ["张三丰", "北京"]
    assert spans_text(text, find_spans("京", text)) == ["京"]
    assert find_spans("丰三", text) == []
    assert find_spans("张三 上海", text) == []  # every clause must match


def test_find_spans_rejects_phrase_across_separated_runs() -> None:
    # FTS5 sees b:张三 b:三丰 at consecutive positions here; confirmation must not.
    assert find_spans("张三丰", "张三，三丰") == []


def test_find_spans_maps_back_through_expansions() -> None:
    text = "ＡＢＣ面积50㎡，株式会社与㍿，Straße"
    assert spans_text(text, find_spans("abc", text)) == ["ＡＢＣ"]
    assert spans_text(text, find_spans("m2", text)) == ["㎡"]
    assert spans_text(text, find_spans("式会", text)) == ["式会", "㍿"]
    assert spans_text(text, find_spans("STRASSE", text)) == ["Straße"]


def test_find_spans_whole_runs_only() -> None:
    text = "出生19900307 code abcd"
    assert find_spans("1990", text) == []
    assert find_spans("abc", text) == []
    assert spans_text(text, find_spans("19900307 ABCD", text)) == ["19900307", "abcd"]


@pytest.mark.parametrize("query", ["13812345678", "138 1234 5678", "138-1234-5678", "１３８１２３４５６７８"])
@pytest.mark.parametrize("written", ["13812345678", "138 1234 5678", "138-1234-5678"])
def test_find_spans_phone_any_grouping(query: str, written: str) -> None:
    text = f"电话：{written}。"
    assert spans_text(text, find_spans(query, text)) == [written]


def test_find_spans_id_with_x() -> None:
    text = "证件号码 110101 19900307 777X 有效"
    for query in ["11010119900307777x", "110101-19900307-777X", "110101 19900307 777x"]:
        assert spans_text(text, find_spans(query, text)) == ["110101 19900307 777X"]
    assert find_spans("11010119900307777", text) == []


def test_find_spans_sorted_and_merged() -> None:
    assert find_spans("张三", "张三张三") == [(0, 4)]  # touching
    assert find_spans("张张", "张张张") == [(0, 3)]  # overlapping
    assert find_spans("李 张", "张三李四张") == [(0, 1), (2, 3), (4, 5)]
    plan = query_plan("李 张")
    assert find_spans(plan, "张三李四张") == find_spans("李 张", "张三李四张")


@settings(max_examples=200, deadline=None)
@given(
    MIXED_TEXT, CJK_CORE, MIXED_TEXT, st.sampled_from(["", " ", "，", "\n"]), st.sampled_from(["", "。", " "])
)
def test_any_cjk_substring_is_found(before: str, core: str, after: str, lead: str, trail: str) -> None:
    text = before + core + after
    spans = find_spans(lead + core + trail, text)
    assert spans
    for s, e in spans:
        assert normalise(core) in normalise(text[s:e])


# --- snippets ------------------------------------------------------------------------------


def test_snippet_short_text_is_whole() -> None:
    snippet = make_snippet("张三丰\n住址", [(0, 2)])
    assert snippet == Snippet("张三丰 住址", ((0, 2),))
    assert snippet.marked() == "【张三】丰 住址"
    assert snippet.marked("<b>", "</b>") == "<b>张三</b>丰 住址"


def test_snippet_window_and_ellipses() -> None:
    text = "甲" * 100 + "张三" + "乙" * 100
    snippet = make_snippet(text, [(100, 102)], width=20)
    assert snippet.text.startswith("…") and snippet.text.endswith("…")
    assert len(snippet.text) == 22
    assert snippet.text == "…" + "甲" * 9 + "张三" + "乙" * 9 + "…"  # centred on the span
    ((s, e),) = snippet.highlights
    assert snippet.text[s:e] == "张三"
    assert snippet.marked().count("【张三】") == 1


def test_snippet_at_edges_shifts_window() -> None:
    text = "张三" + "乙" * 100
    snippet = make_snippet(text, [(0, 2)], width=10)
    assert snippet.text == "张三" + "乙" * 8 + "…"
    assert snippet.highlights == ((0, 2),)
    text = "乙" * 100 + "张三"
    snippet = make_snippet(text, [(100, 102)], width=10)
    assert snippet.text == "…" + "乙" * 8 + "张三"
    assert snippet.highlights == ((9, 11),)


def test_snippet_fits_several_spans() -> None:
    text = "甲" * 50 + "张三" + "乙" * 10 + "李四" + "丙" * 100 + "王五"
    spans = find_spans("张三 李四 王五", text)
    assert len(spans) == 3
    snippet = make_snippet(text, spans, width=30)
    assert [snippet.text[s:e] for s, e in snippet.highlights] == ["张三", "李四"]
    assert "王五" not in snippet.text


def test_snippet_long_span_and_no_spans() -> None:
    text = "很" * 80
    assert make_snippet(text, [(10, 75)], width=20) == Snippet("…" + "很" * 20 + "…", ((1, 21),))
    assert make_snippet(text, [], width=5) == Snippet("很" * 5 + "…", ())
    assert make_snippet("短", [(0, 9)]) == Snippet("短", ((0, 1),))


def test_snippet_of_real_hit_through_expansion() -> None:
    text = "第一行\n面积：120㎡\r\n第三行"
    spans = find_spans("m2", text)
    snippet = make_snippet(text, spans)
    assert "\n" not in snippet.text and "\r" not in snippet.text
    assert snippet.marked() == "第一行 面积：120【㎡】  第三行"


SPANS = st.lists(st.tuples(st.integers(-3, 45), st.integers(0, 8)), max_size=4)


@settings(max_examples=200, deadline=None)
@given(st.lists(CJK | st.sampled_from("\nab1"), unique=True).map("".join), SPANS, st.integers(1, 30))
def test_snippet_invariants(text: str, raw_spans: list[tuple[int, int]], width: int) -> None:
    spans = [(s, s + length) for s, length in raw_spans]
    snippet = make_snippet(text, spans, width=width)
    offset = 1 if snippet.text.startswith("…") else 0
    body = snippet.text[offset:].removesuffix("…")
    assert len(body) == min(width, len(text))
    start = text.replace("\n", " ").find(body)  # characters are unique: one place only
    assert start >= 0
    assert snippet.text.endswith("…") == (start + len(body) < len(text))
    assert bool(offset) == (start > 0)
    for s, e in snippet.highlights:
        assert offset <= s < e <= offset + len(body)
        # Every highlighted character is inside one of the requested spans.
        assert all(any(a <= start + k - offset < b for a, b in spans) for k in range(s, e))
    starts = [max(0, s) for s, e in spans if min(len(text), e) > max(0, s)]
    if starts:  # the window shows the start of the first span
        assert start <= min(starts) < start + len(body)


def test_combining_marks_stay_in_their_word() -> None:
    assert index_terms("cafe\u0301 ok").seq == ["w:cafe\u0301", "w:ok"]
    assert index_terms("张\u0301").seq == ["u:张"]
