"""The SQLite call-record store: filters, paging, summary, retention, durability."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import astuple as dataclass_astuple
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from gateway.state.records import RecordQuery, RecordRow, SqliteRecordStore

# 2026-11-30 10:00 and 2026-12-01 10:00, local time: two days, two months.
NOV_30 = datetime(2026, 11, 30, 10, 0).timestamp()
DEC_01 = datetime(2026, 12, 1, 10, 0).timestamp()

BASE = RecordRow(
    id="c1",
    kiosk="lessay",
    site="Lessay",
    service="caf",
    partner="caf",
    station="caf-1",
    kiosk_protocol="sip",
    station_protocol="h323",
    started=NOV_30,
    queued=False,
    waited=0.0,
    answered=NOV_30 + 5,
    ended=NOV_30 + 305,
    duration=300.0,
    outcome="completed",
    cause=16,
    refusal=None,
    packets_to_station=15000,
    packets_to_kiosk=14990,
)


def rows() -> list[RecordRow]:
    return [
        BASE,
        replace(BASE, id="c2", started=NOV_30 + 60, queued=True, waited=40.0, duration=100.0),
        replace(
            BASE,
            id="c3",
            started=NOV_30 + 120,
            queued=True,
            waited=90.0,
            answered=None,
            duration=0.0,
            outcome="abandoned",
            station=None,
        ),
        replace(BASE, id="c4", started=DEC_01, site="Périers", kiosk="periers"),
        replace(
            BASE,
            id="c5",
            started=DEC_01 + 10,
            partner="cpam",
            service="cpam",
            outcome="busy",
            cause=17,
            answered=None,
            duration=0.0,
            refusal="no_station",
        ),
    ]


@pytest.fixture
async def store(tmp_path: Path) -> SqliteRecordStore:
    kept = SqliteRecordStore(tmp_path / "sub" / "records.sqlite")  # the folder is made
    await kept.add(rows()[:2])
    await kept.add(rows()[2:])
    await kept.add([])
    return kept


async def test_records_come_back_newest_first_with_filters_and_pages(
    store: SqliteRecordStore,
) -> None:
    everything = await store.query(RecordQuery(), limit=10, offset=0)
    assert [r.id for r in everything] == ["c5", "c4", "c3", "c2", "c1"]
    assert everything[-1] == BASE  # every field round-trips, booleans included
    caf = RecordQuery(equal=(("partner", "caf"),))
    assert await store.count(caf) == 4
    assert [r.id for r in await store.query(caf, limit=2, offset=1)] == ["c3", "c2"]
    december = RecordQuery(since=DEC_01)
    assert [r.id for r in await store.query(december, limit=10, offset=0)] == ["c5", "c4"]
    november = RecordQuery(until=DEC_01)
    assert await store.count(november) == 3
    accented = RecordQuery(equal=(("site", "Périers"),))
    assert [r.id for r in await store.query(accented, limit=10, offset=0)] == ["c4"]
    with pytest.raises(ValueError, match="cannot filter"):
        RecordQuery(equal=(("id; DROP TABLE call_records", "x"),)).where()
    await store.close()


async def test_the_summary_counts_per_period_partner_and_site(store: SqliteRecordStore) -> None:
    by_day = await store.summary(RecordQuery(), period="day")
    assert [(r.period, r.partner, r.site, r.calls) for r in by_day] == [
        ("2026-11-30", "caf", "Lessay", 3),
        ("2026-12-01", "caf", "Périers", 1),
        ("2026-12-01", "cpam", "Lessay", 1),
    ]
    first = by_day[0]
    assert (first.completed, first.abandoned, first.refused, first.queued) == (2, 1, 0, 2)
    assert (first.mean_wait, first.max_wait, first.mean_duration) == (65.0, 90.0, 200.0)
    assert by_day[2].refused == 1
    by_month = await store.summary(RecordQuery(equal=(("partner", "caf"),)), period="month")
    assert [(r.period, r.site, r.calls) for r in by_month] == [
        ("2026-11", "Lessay", 3),
        ("2026-12", "Périers", 1),
    ]
    with pytest.raises(ValueError, match="day or month"):
        await store.summary(RecordQuery(), period="week")
    await store.close()


async def test_records_survive_a_reopening_and_retention_purges_the_old(
    store: SqliteRecordStore, tmp_path: Path
) -> None:
    await store.add([replace(BASE, outcome="failed")])  # same id: replaced, not doubled
    await store.close()
    reopened = SqliteRecordStore(tmp_path / "sub" / "records.sqlite")
    assert await reopened.count(RecordQuery()) == 5
    assert (await reopened.query(RecordQuery(until=NOV_30 + 1), limit=1, offset=0))[
        0
    ].outcome == "failed"
    assert await reopened.purge(DEC_01) == 3
    assert [r.id for r in await reopened.query(RecordQuery(), limit=10, offset=0)] == ["c5", "c4"]
    assert await reopened.purge(time.time() - 86400 * 3650) == 0
    await reopened.close()
    with pytest.raises(RuntimeError, match="closed"):
        await reopened.add([BASE])


# The table as the first release wrote it, before the media quality columns.
_FIRST_SCHEMA = """
CREATE TABLE call_records (
    id TEXT PRIMARY KEY, kiosk TEXT NOT NULL, site TEXT NOT NULL, service TEXT NOT NULL,
    partner TEXT NOT NULL, station TEXT, kiosk_protocol TEXT NOT NULL,
    station_protocol TEXT, started REAL NOT NULL, queued INTEGER NOT NULL,
    waited REAL NOT NULL, answered REAL, ended REAL NOT NULL, duration REAL NOT NULL,
    outcome TEXT NOT NULL, cause INTEGER NOT NULL, refusal TEXT,
    packets_to_station INTEGER NOT NULL, packets_to_kiosk INTEGER NOT NULL
);
"""


async def test_a_file_from_before_the_quality_columns_is_migrated_and_readable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(_FIRST_SCHEMA)
    old = dataclass_astuple(BASE)[:19]  # the 19 first-release columns
    db.execute(f"INSERT INTO call_records VALUES ({', '.join('?' * len(old))})", old)
    db.commit()
    db.close()

    store = SqliteRecordStore(path)
    (kept,) = await store.query(RecordQuery(), limit=10, offset=0)
    assert kept == BASE  # the old row, its quality unknown (NULL)
    assert kept.loss_pct_to_station is None and kept.rtt_ms_station is None
    measured = replace(
        BASE,
        id="c9",
        started=NOV_30 + 1,
        loss_pct_to_station=0.25,
        loss_pct_to_kiosk=0.0,
        jitter_ms_to_station=1.5,
        jitter_ms_to_kiosk=4.75,
        rtt_ms_kiosk=12.5,
        rtt_ms_station=0.5,
    )
    await store.add([measured])
    assert (await store.query(RecordQuery(), limit=1, offset=0)) == [measured]
    await store.close()
    # opened again: nothing more to migrate, both rows still there
    again = SqliteRecordStore(path)
    assert await again.count(RecordQuery()) == 2
    await again.close()
