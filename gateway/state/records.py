"""Call records kept durably: one row per call, queried, summarised, purged.

The default store is a SQLite file (the standard library's ``sqlite3``: nothing to
install or run), driven from one worker thread so that the event loop never waits on
the disk. It sits behind :class:`RecordStore`, the interface a shared store (Redis, a
database server) would implement for several nodes.

What a record holds is chosen for the steering committee's questions (who called which
partner from where, how long they waited, how many gave up) and nothing more: no caller
context, so a typed allocataire number never outlives its call.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


# init=False with the __init__ written out: one is built for every call, and mypyc
# compiles this one but not the one @dataclass generates (3.3 us, frozen, 27 fields; a
# whole row 5.2 -> 0.9 us). The arguments are the fields in order, with their defaults
# (tests/model/test_written_out_inits.py checks it).
@dataclass(frozen=True, slots=True, init=False)
class RecordRow:
    """One ended call as stored. Times are wall-clock seconds since the epoch."""

    id: str
    kiosk: str
    site: str
    service: str
    partner: str
    station: str | None
    kiosk_protocol: str  # "sip", "h323"
    station_protocol: str | None
    started: float
    queued: bool
    waited: float  # seconds in the partner's queue
    answered: float | None
    ended: float
    duration: float  # seconds connected (0 when never answered)
    outcome: str  # completed, busy, unavailable, not_found, forbidden, failed, abandoned
    cause: int  # the Q.850 cause the call ended with
    refusal: str | None  # why the gateway refused it itself (closed, queue full, ...)
    packets_to_station: int  # RTP packets relayed from the kiosk, all streams
    packets_to_kiosk: int
    # Media quality (RFC 3550 A.3, A.8, 6.4.1), None where not measured (no media, an
    # engine that does not report it, a file written before these columns): packets
    # lost on the way to the media engine in % of those expected, all streams; the
    # interarrival jitter, the worst stream's mean, in ms; the round trip between the
    # engine and each side, in ms.
    loss_pct_to_station: float | None = None
    loss_pct_to_kiosk: float | None = None
    jitter_ms_to_station: float | None = None
    jitter_ms_to_kiosk: float | None = None
    rtt_ms_kiosk: float | None = None
    rtt_ms_station: float | None = None
    # Audio converted between the sides ("G722/PCMA": the kiosk's codec, then the
    # station's), and video refused (no common codec: never converted); None before.
    transcoded: str | None = None
    audio_only: bool | None = None

    def __init__(
        self,
        id: str,
        kiosk: str,
        site: str,
        service: str,
        partner: str,
        station: str | None,
        kiosk_protocol: str,
        station_protocol: str | None,
        started: float,
        queued: bool,
        waited: float,
        answered: float | None,
        ended: float,
        duration: float,
        outcome: str,
        cause: int,
        refusal: str | None,
        packets_to_station: int,
        packets_to_kiosk: int,
        loss_pct_to_station: float | None = None,
        loss_pct_to_kiosk: float | None = None,
        jitter_ms_to_station: float | None = None,
        jitter_ms_to_kiosk: float | None = None,
        rtt_ms_kiosk: float | None = None,
        rtt_ms_station: float | None = None,
        transcoded: str | None = None,
        audio_only: bool | None = None,
    ) -> None:
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "kiosk", kiosk)
        object.__setattr__(self, "site", site)
        object.__setattr__(self, "service", service)
        object.__setattr__(self, "partner", partner)
        object.__setattr__(self, "station", station)
        object.__setattr__(self, "kiosk_protocol", kiosk_protocol)
        object.__setattr__(self, "station_protocol", station_protocol)
        object.__setattr__(self, "started", started)
        object.__setattr__(self, "queued", queued)
        object.__setattr__(self, "waited", waited)
        object.__setattr__(self, "answered", answered)
        object.__setattr__(self, "ended", ended)
        object.__setattr__(self, "duration", duration)
        object.__setattr__(self, "outcome", outcome)
        object.__setattr__(self, "cause", cause)
        object.__setattr__(self, "refusal", refusal)
        object.__setattr__(self, "packets_to_station", packets_to_station)
        object.__setattr__(self, "packets_to_kiosk", packets_to_kiosk)
        object.__setattr__(self, "loss_pct_to_station", loss_pct_to_station)
        object.__setattr__(self, "loss_pct_to_kiosk", loss_pct_to_kiosk)
        object.__setattr__(self, "jitter_ms_to_station", jitter_ms_to_station)
        object.__setattr__(self, "jitter_ms_to_kiosk", jitter_ms_to_kiosk)
        object.__setattr__(self, "rtt_ms_kiosk", rtt_ms_kiosk)
        object.__setattr__(self, "rtt_ms_station", rtt_ms_station)
        object.__setattr__(self, "transcoded", transcoded)
        object.__setattr__(self, "audio_only", audio_only)


COLUMNS = tuple(f.name for f in fields(RecordRow))


def _values(row: RecordRow) -> tuple[object, ...]:
    """A row's values in column order (flat fields: no deep copy as ``astuple`` makes)."""
    return tuple(getattr(row, name) for name in COLUMNS)


# Filters the API offers, each on one column with equality.
FILTERABLE = ("kiosk", "site", "service", "partner", "station", "outcome")


@dataclass(frozen=True, slots=True)
class RecordQuery:
    """Which records: equality on ``FILTERABLE`` columns, and a window on ``started``."""

    equal: tuple[tuple[str, str], ...] = ()
    since: float | None = None  # started at or after
    until: float | None = None  # started before

    def where(self) -> tuple[str, list[Any]]:
        """The SQL condition and its parameters."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in self.equal:
            if column not in FILTERABLE:
                raise ValueError(f"cannot filter records on {column!r}")
            clauses.append(f"{column} = ?")
            params.append(value)
        if self.since is not None:
            clauses.append("started >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("started < ?")
            params.append(self.until)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """Calls of one partner from one site over one day or month (local time)."""

    period: str  # YYYY-MM-DD or YYYY-MM
    partner: str
    site: str
    calls: int
    completed: int
    abandoned: int
    refused: int  # every other outcome: busy, unavailable, closed, failed, ...
    queued: int
    mean_wait: float  # seconds, over the queued calls
    max_wait: float
    mean_duration: float  # seconds, over the completed calls


class RecordStore(Protocol):
    """Where call records go, whatever keeps them."""

    async def open(self) -> None:
        """Be ready for records (connect, create what is missing)."""

    async def add(self, rows: Sequence[RecordRow]) -> None:
        """Keep records, in one transaction (a record kept under the same id is replaced)."""

    async def query(self, query: RecordQuery, *, limit: int, offset: int) -> list[RecordRow]:
        """Matching records, the most recent call first."""

    async def count(self, query: RecordQuery) -> int:
        """How many records match."""

    async def summary(self, query: RecordQuery, *, period: str) -> list[SummaryRow]:
        """Counts per ``period`` ("day" or "month"), partner and site."""

    async def purge(self, before: float) -> int:
        """Drop the records of calls that started before ``before``; how many went."""

    async def close(self) -> None:
        """Finish pending writes and release the store."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS call_records (
    id TEXT PRIMARY KEY,
    kiosk TEXT NOT NULL,
    site TEXT NOT NULL,
    service TEXT NOT NULL,
    partner TEXT NOT NULL,
    station TEXT,
    kiosk_protocol TEXT NOT NULL,
    station_protocol TEXT,
    started REAL NOT NULL,
    queued INTEGER NOT NULL,
    waited REAL NOT NULL,
    answered REAL,
    ended REAL NOT NULL,
    duration REAL NOT NULL,
    outcome TEXT NOT NULL,
    cause INTEGER NOT NULL,
    refusal TEXT,
    packets_to_station INTEGER NOT NULL,
    packets_to_kiosk INTEGER NOT NULL,
    loss_pct_to_station REAL,
    loss_pct_to_kiosk REAL,
    jitter_ms_to_station REAL,
    jitter_ms_to_kiosk REAL,
    rtt_ms_kiosk REAL,
    rtt_ms_station REAL,
    transcoded TEXT,
    audio_only INTEGER
);
CREATE INDEX IF NOT EXISTS call_records_started ON call_records (started);
CREATE INDEX IF NOT EXISTS call_records_partner ON call_records (partner, started);
CREATE INDEX IF NOT EXISTS call_records_site ON call_records (site, started);
"""

# Columns added after the first release, each nullable: a file written before them gets
# them (ALTER TABLE ... ADD COLUMN, NULL in its old rows) when opened, and stays readable.
_ADDED_COLUMNS = (
    ("loss_pct_to_station", "REAL"),
    ("loss_pct_to_kiosk", "REAL"),
    ("jitter_ms_to_station", "REAL"),
    ("jitter_ms_to_kiosk", "REAL"),
    ("rtt_ms_kiosk", "REAL"),
    ("rtt_ms_station", "REAL"),
    ("transcoded", "TEXT"),
    ("audio_only", "INTEGER"),
)

_PERIODS = {"day": "%Y-%m-%d", "month": "%Y-%m"}


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns an older file lacks (SQLite's ADD COLUMN keeps every row)."""
    present = {row[1] for row in db.execute("PRAGMA table_info(call_records)")}
    with db:
        for name, kind in _ADDED_COLUMNS:
            if name not in present:
                db.execute(f"ALTER TABLE call_records ADD COLUMN {name} {kind}")


class SqliteRecordStore:
    """Records in a SQLite file (``":memory:"`` keeps them for the process only).

    One connection, used from one worker thread only (``sqlite3`` objects must stay in
    their thread); the file is in WAL mode so that a reader never blocks the writer.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="call-records")
        self._db: sqlite3.Connection | None = None  # opened by the first use, in the worker
        self._closed = False

    async def _run(self, work: Any, *args: Any) -> Any:
        if self._closed:
            raise RuntimeError("the call-record store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, work, *args)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            _migrate(db)
            self._db = db
        return self._db

    async def open(self) -> None:
        """Open (and create) the file now, so that a bad path shows at start-up."""
        await self._run(self._conn)

    # -- RecordStore -----------------------------------------------------------------

    async def add(self, rows: Sequence[RecordRow]) -> None:
        """Insert (or replace) records and commit them together."""
        if rows:
            await self._run(self._add, list(rows))

    def _add(self, rows: list[RecordRow]) -> None:
        db = self._conn()
        marks = ", ".join("?" for _ in COLUMNS)
        with db:
            db.executemany(
                f"INSERT OR REPLACE INTO call_records ({', '.join(COLUMNS)}) VALUES ({marks})",
                [_values(row) for row in rows],
            )

    async def query(self, query: RecordQuery, *, limit: int, offset: int) -> list[RecordRow]:
        """Matching records, newest first, ``limit`` of them after ``offset``."""
        rows: list[RecordRow] = await self._run(self._query, query, limit, offset)
        return rows

    def _query(self, query: RecordQuery, limit: int, offset: int) -> list[RecordRow]:
        where, params = query.where()
        cursor = self._conn().execute(
            f"SELECT {', '.join(COLUMNS)} FROM call_records{where}"
            " ORDER BY started DESC, id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_row(values) for values in cursor.fetchall()]

    async def count(self, query: RecordQuery) -> int:
        """How many records match ``query``."""
        total: int = await self._run(self._count, query)
        return total

    def _count(self, query: RecordQuery) -> int:
        where, params = query.where()
        cursor = self._conn().execute(f"SELECT COUNT(*) FROM call_records{where}", params)
        return int(cursor.fetchone()[0])

    async def summary(self, query: RecordQuery, *, period: str) -> list[SummaryRow]:
        """Counts per day or month (in the machine's local time), partner and site."""
        if period not in _PERIODS:
            raise ValueError(f"period must be day or month, not {period!r}")
        rows: list[SummaryRow] = await self._run(self._summary, query, _PERIODS[period])
        return rows

    def _summary(self, query: RecordQuery, pattern: str) -> list[SummaryRow]:
        where, params = query.where()
        cursor = self._conn().execute(
            f"""
            SELECT strftime('{pattern}', started, 'unixepoch', 'localtime') AS period,
                   partner, site, COUNT(*),
                   SUM(outcome = 'completed'), SUM(outcome = 'abandoned'),
                   SUM(outcome NOT IN ('completed', 'abandoned')), SUM(queued),
                   COALESCE(AVG(CASE WHEN queued THEN waited END), 0),
                   COALESCE(MAX(CASE WHEN queued THEN waited END), 0),
                   COALESCE(AVG(CASE WHEN outcome = 'completed' THEN duration END), 0)
            FROM call_records{where}
            GROUP BY period, partner, site
            ORDER BY period, partner, site
            """,
            params,
        )
        return [
            SummaryRow(
                period=str(p),
                partner=str(partner),
                site=str(site),
                calls=int(calls),
                completed=int(completed),
                abandoned=int(abandoned),
                refused=int(refused),
                queued=int(queued),
                mean_wait=round(float(mean_wait), 1),
                max_wait=round(float(max_wait), 1),
                mean_duration=round(float(mean_duration), 1),
            )
            for (
                p,
                partner,
                site,
                calls,
                completed,
                abandoned,
                refused,
                queued,
                mean_wait,
                max_wait,
                mean_duration,
            ) in cursor.fetchall()
        ]

    async def purge(self, before: float) -> int:
        """Delete the records of calls started before ``before`` (the retention)."""
        gone: int = await self._run(self._purge, before)
        return gone

    def _purge(self, before: float) -> int:
        db = self._conn()
        gone = db.execute("DELETE FROM call_records WHERE started < ?", (before,)).rowcount
        db.commit()
        return int(gone)

    async def close(self) -> None:
        """Close the file once the writes already asked for are done."""
        if self._closed:
            return
        await self._run(self._close)
        self._closed = True
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _row(values: Sequence[Any]) -> RecordRow:
    data = dict(zip(COLUMNS, values, strict=True))
    data["queued"] = bool(data["queued"])
    if data["audio_only"] is not None:
        data["audio_only"] = bool(data["audio_only"])
    return RecordRow(**data)


__all__ = [
    "COLUMNS",
    "FILTERABLE",
    "RecordQuery",
    "RecordRow",
    "RecordStore",
    "SqliteRecordStore",
    "SummaryRow",
]
