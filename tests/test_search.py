"""Search over the encrypted store: by words on the page, name, ID number, phone and 档号; hits
confirmed by decryption with highlighted snippets; filters; index upkeep on edit and reindex;
the search itself audited with the query sealed."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from appliance import audit, record_metadata
from appliance.cli import main
from appliance.context import Context, open_context
from appliance.samples.records import SyntheticRecord, add_records
from appliance.search import SearchFilters, reindex, search
from appliance.settings import Settings


@pytest.fixture
def loaded(fresh_settings: Settings) -> Iterator[tuple[Context, list[SyntheticRecord]]]:
    ctx = open_context(fresh_settings)
    recs = add_records(ctx, 30, seed=7)
    yield ctx, recs
    ctx.close()


def _ids(hits: list) -> list[str]:  # type: ignore[type-arg]
    return [h.record_id for h in hits]


def _holders(recs: list[SyntheticRecord], needle: str) -> set[str]:
    return {r.record_id for r in recs if needle in "\n".join(r.lines)}


def test_finds_by_name_id_number_phone_and_address_phrase(
    loaded: tuple[Context, list[SyntheticRecord]],
) -> None:
    ctx, recs = loaded
    p = recs[3].content.person
    for query in (p.name, p.id_number, p.phone, p.address[4:10]):
        hits = search(ctx.store, query, actor="t")
        assert recs[3].record_id in _ids(hits), query
        assert set(_ids(hits)) == _holders(recs, query), f"exactly the records containing {query!r}"
        hit = next(h for h in hits if h.record_id == recs[3].record_id)
        (start, end), *_ = hit.highlights
        assert hit.snippet[start:end] == query, "the match is highlighted in the snippet"
        assert hit.page == 0 and hit.line is not None
        assert query in recs[3].lines[hit.line], "the hit points at the OCR line holding the match"


def test_phone_and_id_numbers_match_whatever_the_spacing(
    loaded: tuple[Context, list[SyntheticRecord]],
) -> None:
    ctx, recs = loaded
    p = recs[5].content.person
    spaced_phone = f"{p.phone[:3]} {p.phone[3:7]} {p.phone[7:]}"
    dashed_id = f"{p.id_number[:6]}-{p.id_number[6:14]}-{p.id_number[14:]}"
    for query in (spaced_phone, dashed_id, "１" + p.phone[1:]):  # full-width digit typed by a clerk
        assert recs[5].record_id in _ids(search(ctx.store, query, actor="t")), query


def test_substring_search_confirms_every_hit_and_rejects_near_misses(
    loaded: tuple[Context, list[SyntheticRecord]],
) -> None:
    ctx, recs = loaded
    name = recs[0].content.person.name
    reversed_name = name[::-1]
    assert set(_ids(search(ctx.store, reversed_name, actor="t"))) == _holders(recs, reversed_name)
    assert search(ctx.store, "绝不会出现的短语", actor="t") == []
    assert search(ctx.store, "   ", actor="t") == []


def test_single_character_queries_work(loaded: tuple[Context, list[SyntheticRecord]]) -> None:
    ctx, recs = loaded
    for char in (recs[0].content.person.name[-1], "迁"):
        holders = _holders(recs, char)
        assert 0 < len(holders) < len(recs), f"{char!r} must tell records apart, or the test means nothing"
        assert set(_ids(search(ctx.store, char, actor="t", limit=100))) == holders


def test_metadata_edit_updates_the_index_and_exact_fields(
    loaded: tuple[Context, list[SyntheticRecord]],
) -> None:
    ctx, recs = loaded
    rid = recs[2].record_id
    record_metadata.edit(
        ctx.store, ctx.settings, rid, {"title": "特殊题名甲乙丙", "remarks": "复印件不清"}, actor="t"
    )
    assert _ids(search(ctx.store, "题名甲乙", actor="t")) == [rid]
    record_metadata.edit(ctx.store, ctx.settings, rid, {"title": "另一个题名"}, actor="t")
    assert search(ctx.store, "题名甲乙", actor="t") == [], "the old title no longer matches"
    assert _ids(search(ctx.store, "另一个题名", actor="t")) == [rid]
    # an exact-field hit: the applicant set by a clerk, although the page spells it differently
    record_metadata.edit(ctx.store, ctx.settings, rid, {"applicant": "欧阳·娜"}, actor="t")
    hits = search(ctx.store, "欧阳·娜", actor="t")
    assert _ids(hits) == [rid] and "name" in hits[0].matched


def test_archival_code_finds_the_confirmed_record(loaded: tuple[Context, list[SyntheticRecord]]) -> None:
    ctx, recs = loaded
    r = recs[4]
    c = r.content
    record_metadata.edit(ctx.store, ctx.settings, r.record_id, {
        "title": c.title, "date": c.apply_date.isoformat(), "matter": c.matter, "applicant": c.person.name,
    }, actor="t")  # fmt: skip
    code = record_metadata.confirm(ctx.store, ctx.settings, r.record_id, actor="t")
    hits = search(ctx.store, code, actor="t")
    assert (
        _ids(hits)[0] == r.record_id and hits[0].archival_code == code and "archival_code" in hits[0].matched
    )
    assert _ids(search(ctx.store, code.replace("·", "・"), actor="t"))[0] == r.record_id, "dot variants fold"
    confirmed = search(ctx.store, c.person.name, actor="t", filters=SearchFilters(status="confirmed"))
    assert _ids(confirmed) == [r.record_id]
    assert search(ctx.store, c.person.name, actor="t", filters=SearchFilters(retention="D10")) == []


def test_reindex_rebuilds_the_same_results(loaded: tuple[Context, list[SyntheticRecord]]) -> None:
    ctx, recs = loaded
    queries = [recs[1].content.person.name, recs[8].content.person.address[2:8], "申请表", "迁"]
    before = {q: sorted(_ids(search(ctx.store, q, actor="t", limit=100))) for q in queries}
    ctx.conn.execute("INSERT INTO search_fts(search_fts) VALUES ('delete-all')")
    assert search(ctx.store, queries[0], actor="t") == [], "with the index gone nothing is found"
    assert reindex(ctx.store, actor="t") == len(recs)
    after = {q: sorted(_ids(search(ctx.store, q, actor="t", limit=100))) for q in queries}
    assert after == before


def test_every_search_is_audited_with_the_query_sealed(loaded: tuple[Context, list[SyntheticRecord]]) -> None:
    ctx, recs = loaded
    query = recs[6].content.person.id_number
    search(ctx.store, query, actor="user:clerk1")
    [entry] = audit.entries(ctx.conn, action="search", descending=True, limit=1)
    assert entry.actor == "user:clerk1" and entry.detail["hits"] == 1
    assert query not in json.dumps(entry.detail) and entry.sealed is not None
    assert query.encode() not in entry.sealed
    assert ctx.audit.unseal(ctx.conn, entry) == {"query": query}


def test_cli_search_json_contract(loaded: tuple[Context, list[SyntheticRecord]]) -> None:
    ctx, recs = loaded
    data = str(ctx.settings.data_dir)
    out = CliRunner().invoke(main, ["--data-dir", data, "search", "--json", recs[9].content.person.name])
    assert out.exit_code == 0, out.output
    hits = json.loads(out.stdout)
    assert recs[9].record_id in [h["record_id"] for h in hits]
    assert set(hits[0]) >= {"record_id", "archival_code", "title", "snippet", "highlights", "score"}
    out = CliRunner().invoke(main, ["--data-dir", data, "search", "--json", "无此内容之词组"])
    assert out.exit_code == 0 and json.loads(out.stdout) == []
