"""A source transaction too large for one part: one time for all its rows, counted whole."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable
from pathlib import Path

from devtools.sandbox import MariaDBServer, PostgresServer, free_port
from tests.helpers import eventually
from tests.integration.scenario import Scenario, Source

ROWS = 1500  # each statement more than a part (syncd/source/binlog.py PART_ROWS)


def applied_total(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        page = response.read().decode()
    found = re.search(r'^syncd_changes_applied_total\{source="shop",table="items"\} (\S+)$', page,
                      re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_every_part_carries_the_commit_time_and_every_change_is_counted(
        tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb: MariaDBServer,
        source_db: Callable[[MariaDBServer], str]) -> None:
    shop = Source("shop", mariadb, source_db(mariadb))
    shop.execute("CREATE TABLE items (id INT PRIMARY KEY, qty INT)")
    scenario = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=(
        "CREATE TABLE items (id integer PRIMARY KEY, qty integer, synced_at timestamptz, "
        "deleted_at timestamptz)"))
    port = free_port()
    try:
        scenario.write_config("""
            mappings:
              - {name: items, source: shop, table: items, target: items, key: [id], delete: soft,
                 soft_delete_column: deleted_at, commit_time_column: synced_at,
                 columns: {id: id, qty: qty}}
            """, f"metrics: {{listen: '127.0.0.1:{port}'}}\n")
        process = scenario.start()
        eventually(lambda: '"streaming"' in scenario.cli("status", "--json").stdout, 60)
        # One transaction whose statements run seconds apart: its parts are applied before its
        # commit is read, and still carry one time.
        shop.execute(*(("INSERT INTO items VALUES (%s, 1)", (n,)) for n in range(1, ROWS + 1)),
                     "DO SLEEP(2.2)",
                     *(("INSERT INTO items VALUES (%s, 2)", (n,)) for n in range(ROWS + 1, 2 * ROWS + 1)))
        eventually(lambda: scenario.target("SELECT count(*) FROM items") == [(2 * ROWS,)], 60)
        assert scenario.target("SELECT count(DISTINCT synced_at) FROM items") == [(1,)]
        eventually(lambda: applied_total(port) == 2 * ROWS, 10)
        shop.execute(("DELETE FROM items WHERE id <= %s", (2 * ROWS - 10,)), "DO SLEEP(1.1)",
                     ("DELETE FROM items WHERE id > %s", (2 * ROWS - 10,)))
        live = "SELECT count(*) FROM items WHERE deleted_at IS NULL"
        eventually(lambda: scenario.target(live) == [(0,)], 60)
        assert scenario.target("SELECT count(DISTINCT deleted_at) FROM items") == [(1,)]
        assert scenario.stop(process) == 0
    finally:
        scenario.close()
