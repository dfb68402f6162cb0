"""Staged COPY formats datetimes in C (syncd/sink/_pgtext.c): PostgreSQL stores exactly what it
stores when psycopg formats them, in timestamp and timestamptz columns, whatever the session's
time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from devtools.sandbox import PostgresServer
from syncd.model import TargetTable, Upsert
from syncd.sink import postgres as sink

ZONES = [None, UTC, timezone(timedelta(hours=8)), timezone(-timedelta(hours=3, minutes=30, seconds=5)),
         ZoneInfo("America/New_York"), ZoneInfo("Asia/Shanghai")]


def values(count: int) -> list[tuple[int, datetime, datetime]]:
    start = datetime(2024, 11, 3, 0, 59, 59, 999999)  # around New York's autumn fold
    rows = []
    for i in range(count):
        at = start + timedelta(minutes=7 * i, microseconds=i)
        at = at.replace(fold=i % 2, tzinfo=ZONES[i % len(ZONES)])
        rows.append((i, at, at))
    return rows


def stored(postgres: PostgresServer, database: str, table: str, monkeypatch: pytest.MonkeyPatch,
           c_part: bool) -> list[tuple]:
    if not c_part:
        monkeypatch.setattr(sink, "timestamp_text", None)
    rows = values(3 * sink.STAGE_MIN_ROWS)
    op = Upsert(TargetTable("public", table), ("id",), {"id": 0, "plain": rows[0][1], "zoned": rows[0][2]})
    with postgres.connect(database) as conn:
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, plain timestamp, zoned timestamptz)")
        conn.execute("SET TIME ZONE 'Europe/Berlin'")
        with conn.transaction(), conn.cursor() as cur:
            sink.Staging().write(cur, op, list(rows))
        conn.execute("SET TIME ZONE 'UTC'")
        return conn.execute(f"SELECT id, plain::text, zoned::text FROM {table} ORDER BY id").fetchall()


def test_the_c_formatted_copy_stores_what_psycopg_formatted_stores(
        postgres: PostgresServer, target_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert sink.timestamp_text is not None
    fast = stored(postgres, target_db, "fast", monkeypatch, c_part=True)
    plain = stored(postgres, target_db, "plain", monkeypatch, c_part=False)
    assert len(fast) == 3 * sink.STAGE_MIN_ROWS
    assert fast == plain
