"""Snapshots of plain-copy mappings as COPY text from the source server (syncd/reconcile/copytext.py):
the target ends up exactly as when every row goes through the mapping, rejected rows included."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from tests.integration.scenario import Scenario, Source

SOURCE_SQL = """CREATE TABLE entries (
    id BIGINT PRIMARY KEY,
    code CHAR(8) NULL,
    memo VARCHAR(40) NULL,
    body TEXT NULL,
    kind ENUM('a', 'b', '甲') NULL,
    amount DECIMAL(14,4) NULL,
    small TINYINT NULL,
    big BIGINT UNSIGNED NULL,
    day DATE NULL,
    at DATETIME(6) NULL,
    at0 DATETIME NULL,
    legacy VARCHAR(20) CHARACTER SET latin1 NULL,
    mid MEDIUMINT UNSIGNED NULL,
    long_body LONGTEXT NULL
) CHARSET utf8mb4"""

TARGET_SQL = """CREATE TABLE entries (
    source_id bigint PRIMARY KEY, code text, memo varchar(12), body text, kind text,
    amount numeric(14,2), small smallint, big bigint, day date, at timestamptz, at0 timestamp,
    legacy character varying, mid integer, long_body text)"""

MAPPING = """
mappings:
  - name: entries
    source: shop
    table: entries
    target: entries
    key: [source_id]
    columns:
      source_id: id
      code: code
      memo: memo
      body: body
      kind: kind
      amount: amount
      small: small
      big: big
      day: day
      at: at
      at0: at0
      legacy: legacy
      mid: mid
      long_body: long_body
"""

TEXTS = ["", " ", "a\tb", "line\nnext", "cr\rlf\r\n", "back\\slash", "\\N", "\\.", "\\\\t", "trailing  ",
         "  leading", "中文备注", "emoji 😀 ok", "quote ' and \"", "%s %d %%", "NULL", "\x01\x7f", "x" * 12]


def _row(rng: random.Random, key: int) -> tuple:
    def maybe(value: object) -> object:
        return None if rng.random() < 0.15 else value

    start = datetime(2024, 2, 29, 23, 59, 59)
    return (key, maybe(rng.choice(TEXTS)[:8]), maybe(rng.choice(TEXTS)[:12]), maybe(rng.choice(TEXTS) * 3),
            maybe(rng.choice(["a", "b", "甲"])), maybe(Decimal(rng.randrange(-10**9, 10**9)) / 10000),
            maybe(rng.randrange(-128, 128)), maybe(rng.randrange(0, 2**62)),
            maybe((start + timedelta(days=rng.randrange(-10**5, 10**5))).date()),
            maybe(start + timedelta(microseconds=rng.randrange(-10**15, 10**15))),
            maybe(start.replace(microsecond=0) + timedelta(seconds=rng.randrange(-10**8, 10**8))),
            maybe(rng.choice(["café", "naïve\tß", "", "\\N", "£5"])), maybe(rng.randrange(0, 2**24)),
            maybe(rng.choice(TEXTS) * rng.randrange(1, 200)))


INSERT = f"INSERT INTO entries VALUES ({', '.join(['%s'] * 14)})"


@pytest.fixture
def scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb: MariaDBServer,
             source_db: Callable[[MariaDBServer], str]) -> Iterator[Scenario]:
    shop = Source("shop", mariadb, source_db(mariadb))
    shop.execute(SOURCE_SQL)
    s = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=TARGET_SQL)
    s.write_config(MAPPING)
    yield s
    s.close()


def _snapshot(scenario: Scenario, *extra: str) -> tuple[list[tuple], list[tuple], list[dict]]:
    """Snapshot into an empty target; returns (target rows, dead letters, log events), then empties it."""
    result = scenario.cli("snapshot", "--chunk-rows", "64", *extra)
    assert result.returncode == 0, result.stderr
    rows = scenario.target("SELECT * FROM entries ORDER BY source_id")
    letters = scenario.target("SELECT row_key, reason, row_image FROM syncd.dead_letters ORDER BY row_key")
    scenario.target("TRUNCATE entries; DELETE FROM syncd.dead_letters; DELETE FROM syncd.checkpoints")
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    return rows, letters, events


def _copy_text_used(events: list[dict]) -> bool:
    [table] = [e for e in events if e.get("event") == "snapshot_table"]
    return bool(table["copy_text"])


def test_copy_text_writes_what_the_mapping_writes(scenario: Scenario) -> None:
    rng = random.Random(7)
    scenario.sources["shop"].execute(*((INSERT, _row(rng, key)) for key in range(1, 401)))
    fast, fast_letters, fast_events = _snapshot(scenario)
    slow, slow_letters, slow_events = _snapshot(scenario, "--map-every-row")
    assert (_copy_text_used(fast_events), _copy_text_used(slow_events)) == (True, False)
    assert len(fast) == 400
    assert fast == slow
    assert fast_letters == slow_letters == []
    assert not [e for e in fast_events if e.get("event") == "copy_text_rejected"]


def test_a_rejected_chunk_goes_through_the_mapping(scenario: Scenario) -> None:
    """A memo too long for varchar(12), a BIGINT UNSIGNED beyond bigint: PostgreSQL rejects the
    chunk's COPY, the mapping copies it again (dead letters); a zero date's row is mapped in Python
    (-> NULL) without its chunk being rejected."""
    rng = random.Random(11)
    shop = scenario.sources["shop"]
    shop.execute(*((INSERT, _row(rng, key)) for key in range(1, 301)))
    shop.execute("SET SESSION sql_mode = ''", "UPDATE entries SET day = '0000-00-00' WHERE id = 70",
                 "UPDATE entries SET memo = 'thirteen char' WHERE id = 140",
                 "UPDATE entries SET big = 18446744073709551615 WHERE id = 141")
    fast, fast_letters, fast_events = _snapshot(scenario)
    slow, slow_letters, _ = _snapshot(scenario, "--map-every-row")
    assert fast == slow
    assert len(fast) == 298
    assert next(r for r in fast if r[0] == 70)[8] is None
    assert fast_letters == slow_letters
    assert [k for k, _, _ in fast_letters] == ["id=140", "id=141"]
    rejected = [e for e in fast_events if e.get("event") == "copy_text_rejected"]
    assert len(rejected) == 1  # chunk (128, 192]; the zero date's row alone is mapped in Python
