"""`syncd preview` reads source rows exactly as the initial copy reads them, on real servers:
text bytes the server cannot convert are shown as the dead letter the copy makes of the row
(never as the `?` a SELECT in utf8mb4 gives), and a zero date is warned about only in the
columns the mapping reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.sandbox import PostgresServer
from tests.integration.scenario import Scenario, Source

SOURCE_SQL = ("CREATE TABLE legacy (id INT PRIMARY KEY, gb VARCHAR(40) CHARACTER SET gbk, "
              "made DATE, unread DATE, n INT)")
TARGET_SQL = """
CREATE TABLE legacy (id integer PRIMARY KEY, gb text, made date, n integer);
CREATE TABLE legacy_counts (id integer PRIMARY KEY, n integer);
"""
MAPPINGS = """\
mappings:
  - name: legacy
    source: shop
    table: legacy
    target: legacy
    key: [id]
    columns: {id: id, gb: gb, made: made, n: n}
  - name: legacy_counts
    source: shop
    table: legacy
    target: legacy_counts
    key: [id]
    columns: {id: id, n: n}
"""


@pytest.fixture
def scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, shop: Source) -> Iterator[Scenario]:
    shop.execute(SOURCE_SQL)
    shop.execute("SET SESSION sql_mode = ''",
                 "INSERT INTO legacy VALUES (1, X'c4e3bac3', '2024-05-01', '2024-05-01', 1)",
                 "INSERT INTO legacy VALUES (2, X'41A2E342', '2024-05-02', '2024-05-02', 2)",
                 "INSERT INTO legacy VALUES (3, 'ok', '0000-00-00', '0000-00-00', 3)",
                 "INSERT INTO legacy VALUES (4, 'ok', '2024-05-04', '0000-00-00', 4)")
    s = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=TARGET_SQL)
    s.write_config(MAPPINGS)
    yield s
    s.close()


def previewed(scenario: Scenario, mapping: str) -> dict[str, dict]:
    result = scenario.cli("preview", "--mapping", mapping, "--json")
    assert result.returncode == 0, result.stderr
    return {record["key"]: record for record in json.loads(result.stdout)}


def test_undecodable_text_previews_as_the_dead_letter_the_copy_makes(scenario: Scenario) -> None:
    records = previewed(scenario, "legacy")
    assert records["id=1"]["status"] == "mapped" and records["id=1"]["target"]["gb"] == "你好"
    bad = records["id=2"]
    assert bad["status"] == "dead_letter" and bad["target"] is None
    assert bad["reason"].startswith("column gb: gbk value X'41A2E342': gbk bytes X'A2' at byte 1 "
                                    "cannot be converted to text"), bad["reason"]
    assert "?" not in json.dumps(bad["source"])
    copied = scenario.cli("snapshot")
    assert copied.returncode == 0, copied.stdout + copied.stderr
    assert scenario.target("SELECT mapping, row_key, reason FROM syncd.dead_letters") == [
        ("legacy", "id=2", bad["reason"])]
    human = scenario.cli("preview", "--mapping", "legacy").stdout
    assert "[2] id=2: dead letter" in human and "  dead letter: column gb: gbk value X'41A2E342'" in human
    counts = previewed(scenario, "legacy_counts")  # a mapping that does not read gb maps the row
    assert counts["id=2"]["status"] == "mapped" and counts["id=2"]["target"] == {"id": 2, "n": 2}


def test_zero_dates_are_warned_about_only_in_columns_the_mapping_reads(scenario: Scenario) -> None:
    records = previewed(scenario, "legacy")
    assert records["id=3"]["warnings"] == ["made: a zero date, read as NULL"]
    assert records["id=4"]["warnings"] == []
    counts = previewed(scenario, "legacy_counts")
    assert all(record["warnings"] == [] for record in counts.values())
