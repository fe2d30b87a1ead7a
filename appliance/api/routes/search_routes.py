"""One search box: words on the page, name, ID number, phone or 档号."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BeforeValidator

from appliance.api.deps import CtxDep, Principal, errors, require
from appliance.search import SearchFilters, search_audited

router = APIRouter(tags=["search"])
Searcher = Annotated[Principal, require("search")]


def _iso_day(value: object) -> object:
    """Only ``YYYY-MM-DD``: pydantic alone also reads ``0`` or ``1700000000`` as Unix time."""
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("a date is written YYYY-MM-DD")
    return value


Day = Annotated[dt.date, BeforeValidator(_iso_day)]


def _day_start(value: dt.date | None, *, end: bool = False) -> float | None:
    if value is None:
        return None
    moment = dt.datetime.combine(value, dt.time.max if end else dt.time.min)
    try:
        return moment.timestamp()
    except (ValueError, OverflowError, OSError):  # e.g. 0001-01-01: outside what local time converts
        return (moment - dt.datetime(1970, 1, 1)).total_seconds()


@router.get("/search", responses=errors())
def search(
    ctx: CtxDep,
    who: Searcher,
    q: Annotated[str, Query(max_length=200)] = "",
    status: Literal["draft", "confirmed", "transferred"] | None = None,
    retention: Literal["Y", "D30", "D10"] | None = None,
    matter: Annotated[str | None, Query(max_length=100)] = None,
    date_from: Day | None = None,
    date_to: Day | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    filters = SearchFilters(
        status=status,
        retention=retention,
        matter=matter or None,
        created_from=_day_start(date_from),
        created_to=_day_start(date_to, end=True),
    )
    hits, search_id = search_audited(ctx.store, q, actor=who.actor, limit=limit, filters=filters)
    return {
        "search_id": search_id,
        "hits": [h.to_dict() for h in hits],
        "ms": round((time.perf_counter() - t0) * 1000, 1),
    }
