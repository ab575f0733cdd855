"""The call-record routes of the admin API: list with filters and paging, CSV export,
and the per-partner, per-site summary by day or month."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from gateway.state.records import COLUMNS, RecordQuery, RecordRow

if TYPE_CHECKING:
    from gateway.app import Gateway

MAX_PAGE = 1000
MAX_OFFSET = 2**31 - 1  # SQLite takes 64-bit integers; no record store holds more rows
WHEN = "ISO 8601 date-time (or date) of a call's start; local time when it has no offset"
When = Annotated[datetime | None, Query(description=WHEN)]
TIME_COLUMNS = ("started", "answered", "ended")


def _instant(moment: datetime | None) -> float | None:
    """Epoch seconds of an ISO 8601 date-time (the machine's local time without offset)."""
    if moment is None:
        return None
    return moment.astimezone().timestamp() if moment.tzinfo is None else moment.timestamp()


def _local(seconds: float | None) -> str:
    """A record time as ISO 8601 in the machine's local time, to the second."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


def record_filters(
    kiosk: str | None = None,
    site: str | None = None,
    service: str | None = None,
    partner: str | None = None,
    station: str | None = None,
    outcome: str | None = None,
    since: When = None,
    until: When = None,
) -> RecordQuery:
    """The query parameters every record route takes, as a :class:`RecordQuery`."""
    given = {
        "kiosk": kiosk,
        "site": site,
        "service": service,
        "partner": partner,
        "station": station,
        "outcome": outcome,
    }
    return RecordQuery(
        equal=tuple((k, v) for k, v in given.items() if v is not None),
        since=_instant(since),
        until=_instant(until),
    )


Filters = Annotated[RecordQuery, Depends(record_filters)]


def records_router(gw: Gateway) -> APIRouter:
    """The ``/api/v1/records`` routes, reading ``gw.records``."""
    router = APIRouter()

    @router.get("/api/v1/records")
    async def records(
        query: Filters,
        limit: int = Query(100, ge=1, le=MAX_PAGE),
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
    ) -> dict[str, Any]:
        """Call records, newest first: ``total`` matching, and one page of them."""
        rows = await gw.records.query(query, limit=limit, offset=offset)
        return {
            "total": await gw.records.count(query),
            "limit": limit,
            "offset": offset,
            "records": [asdict(row) for row in rows],
        }

    @router.get("/api/v1/records.csv")
    async def records_csv(
        query: Filters, sep: str = Query("comma", pattern="^(comma|semicolon)$")
    ) -> Response:
        """Every matching record as CSV (RFC 4180, UTF-8 with a byte-order mark so that
        spreadsheets read accents right; ``sep=semicolon`` for French-locale Excel)."""
        out = io.StringIO()
        writer = csv.writer(
            out, delimiter=";" if sep == "semicolon" else ",", lineterminator="\r\n"
        )
        writer.writerow(COLUMNS)
        offset = 0
        while True:
            rows = await gw.records.query(query, limit=MAX_PAGE, offset=offset)
            for row in rows:
                writer.writerow(_csv_values(row))
            if len(rows) < MAX_PAGE:
                break
            offset += MAX_PAGE
        return Response(
            content="\ufeff" + out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="call-records.csv"'},
        )

    @router.get("/api/v1/records/summary")
    async def summary(
        period: str = Query("month", pattern="^(day|month)$"),
        site: str | None = None,
        partner: str | None = None,
        since: When = None,
        until: When = None,
    ) -> dict[str, Any]:
        """Per period, partner and site: calls, completed, abandoned, refused, queued,
        mean and longest wait, mean duration of completed calls (seconds)."""
        query = record_filters(site=site, partner=partner, since=since, until=until)
        rows = await gw.records.summary(query, period=period)
        return {"period": period, "rows": [asdict(row) for row in rows]}

    return router


def _csv_values(row: RecordRow) -> list[object]:
    values = asdict(row)
    for name in TIME_COLUMNS:
        values[name] = _local(values[name])
    values["queued"] = int(values["queued"])
    return [values[name] for name in COLUMNS]


__all__ = ["records_router"]
