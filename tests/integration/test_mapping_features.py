"""Issue 3's mapping features on real servers: row filters, fan-in slices, fan-out atomicity,
reloading mappings, `syncd validate --live` and `syncd preview`."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from tests.helpers import eventually
from tests.integration.scenario import Scenario, Source

SHOP_ORDERS_SQL = """
CREATE TABLE orders (
    id BIGINT PRIMARY KEY,
    order_no VARCHAR(32) NOT NULL,
    status VARCHAR(8) NOT NULL,
    amount_text VARCHAR(32),
    is_test TINYINT NOT NULL DEFAULT 0,
    buyer VARCHAR(40)
) CHARACTER SET utf8mb4
"""

APP_ORDERS_SQL = """
CREATE TABLE app_orders (
    id BIGINT PRIMARY KEY,
    status_code TINYINT NOT NULL,
    total_fen INT NOT NULL
) CHARACTER SET utf8mb4
"""

TARGET_SQL = """
CREATE TABLE orders (
    channel text NOT NULL,
    source_order_id bigint NOT NULL,
    order_no text,
    status smallint,
    amount numeric(12,2),
    buyer text,
    deleted_at timestamptz,
    PRIMARY KEY (channel, source_order_id)
);
CREATE TABLE order_amounts (
    source_order_id bigint PRIMARY KEY,
    amount numeric(12,2)
);
"""

STATUS_MAP = "{待支付: 0, 已支付: 1, 已发货: 2, 已完成: 3, 已取消: 4}"


def shop_mapping(*, delete: str = "hard", where: str = "", channel: str = "shop",
                 extra_columns: str = "", table: str = "orders", key: str = "[channel, source_order_id]",
                 status_map: str = STATUS_MAP) -> str:
    soft = "\n    soft_delete_column: deleted_at" if delete == "soft" else ""
    where_block = f"\n    where: {where}" if where else ""
    return f"""
  - name: shop_orders
    source: shop
    table: {table}
    target: orders
    key: {key}
    delete: {delete}{soft}{where_block}
    columns:
      channel: {{value: {channel}}}
      source_order_id: id
      order_no: order_no
      status: {{from: status, map: {status_map}}}
      amount: {{from: amount_text, transform: parse_amount}}
      buyer: {{from: buyer, transform: {{mask: {{keep_first: 1}}}}}}{extra_columns}
"""


APP_MAPPING = """
  - name: app_orders
    source: app
    table: app_orders
    target: orders
    key: [channel, source_order_id]
    delete: soft
    soft_delete_column: deleted_at
    columns:
      channel: {value: app}
      source_order_id: id
      status: {from: status_code, map: {10: 0, 20: 1, 30: 2, 40: 3, 90: 4}}
      amount: {from: total_fen, transform: fen_to_yuan}
"""


def mappings(*entries: str) -> str:
    return "mappings:" + "".join(entries)


@pytest.fixture
def shop(mariadb: MariaDBServer, source_db: Callable[[MariaDBServer], str]) -> Source:
    """This module's own shop table (its SHOP_ORDERS_SQL has the filter and fan-in columns)."""
    source = Source("shop", mariadb, source_db(mariadb))
    source.execute(SHOP_ORDERS_SQL)
    return source


@pytest.fixture
def app(mariadb2: MariaDBServer, source_db: Callable[[MariaDBServer], str]) -> Source:
    source = Source("app", mariadb2, source_db(mariadb2))
    source.execute(APP_ORDERS_SQL)
    return source


@pytest.fixture
def scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, shop: Source) -> Iterator[Scenario]:
    s = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=TARGET_SQL)
    yield s
    s.close()


@pytest.fixture
def two_sources(tmp_path: Path, postgres: PostgresServer, target_db: str, shop: Source,
                app: Source) -> Iterator[Scenario]:
    s = Scenario.create(tmp_path, postgres, target_db, {"shop": shop, "app": app}, target_sql=TARGET_SQL)
    yield s
    s.close()


def order(order_id: int, status: str = "已支付", amount: str = "100元", *, is_test: int = 0,
          buyer: str | None = "张三丰") -> tuple[str, tuple]:
    return ("INSERT INTO orders (id, order_no, status, amount_text, is_test, buyer) "
            "VALUES (%s, %s, %s, %s, %s, %s)", (order_id, f"S{order_id}", status, amount, is_test, buyer))


def rows(scenario: Scenario, channel: str = "shop") -> dict[int, tuple]:
    """source_order_id -> (status, amount, soft-deleted?) of one channel's target rows."""
    found = scenario.target("SELECT source_order_id, status, amount, deleted_at IS NOT NULL FROM orders "
                            "WHERE channel = %s", (channel,))
    return {r[0]: tuple(r[1:]) for r in found}


def start_streaming(scenario: Scenario, sources: int = 1):
    process = scenario.start()
    eventually(lambda: scenario.cli("status", "--json").stdout.count('"streaming"') == sources, 90)
    return process


def barrier(scenario: Scenario, source: Source, marker_id: int) -> None:
    """Wait until everything written to `source` before now has been applied."""
    source.execute(order(marker_id))
    eventually(lambda: marker_id in rows(scenario), 30)
    source.execute(f"DELETE FROM orders WHERE id = {marker_id}")
    eventually(lambda: rows(scenario).get(marker_id, (None, None, True))[2], 30)   # gone or soft-deleted


def log_events(scenario: Scenario, name: str) -> list[dict]:
    found = []
    for line in scenario.log_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == name:
            found.append(event)
    return found


def position(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, column) of the n-th occurrence of `needle` in `text`."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


class TestRowFilters:
    @pytest.mark.parametrize("delete", ["hard", "soft"])
    def test_updates_move_rows_out_of_and_into_the_filter(self, scenario: Scenario, shop: Source,
                                                          delete: str) -> None:
        """is_test=1 removes the row (hard or soft), is_test=0 brings it back; filtered-out rows'
        updates and deletes never touch the target."""
        scenario.write_config(mappings(shop_mapping(delete=delete, where="{is_test: 0}")))
        shop.execute(order(1), order(2, is_test=1))
        process = start_streaming(scenario)
        eventually(lambda: 1 in rows(scenario), 30)
        assert rows(scenario) == {1: (1, Decimal("100.00"), False)}   # the snapshot skipped order 2

        shop.execute("UPDATE orders SET is_test = 1 WHERE id = 1")
        if delete == "hard":
            eventually(lambda: 1 not in rows(scenario), 30)
        else:
            eventually(lambda: rows(scenario).get(1) == (1, Decimal("100.00"), True), 30)

        shop.execute("UPDATE orders SET is_test = 0, status = '已发货' WHERE id = 1")
        eventually(lambda: rows(scenario).get(1) == (2, Decimal("100.00"), False), 30)

        # A target row under a filtered-out order's key: the filtered-out order must not touch it.
        scenario.target("INSERT INTO orders (channel, source_order_id, status) VALUES ('shop', 2, 9)")
        shop.execute("UPDATE orders SET status = '已完成' WHERE id = 2")
        shop.execute("DELETE FROM orders WHERE id = 2")
        shop.execute(order(3, is_test=1))
        barrier(scenario, shop, 900)
        assert rows(scenario)[2] == (9, None, False)
        assert 3 not in rows(scenario)

        # Moving in is an insert (over whatever the key held); a delete in the filter removes.
        shop.execute("UPDATE orders SET is_test = 0 WHERE id = 3")
        eventually(lambda: rows(scenario).get(3) == (1, Decimal("100.00"), False), 30)
        shop.execute("DELETE FROM orders WHERE id = 3")
        if delete == "hard":
            eventually(lambda: 3 not in rows(scenario), 30)
        else:
            eventually(lambda: rows(scenario).get(3) == (1, Decimal("100.00"), True), 30)
        assert scenario.target("SELECT count(*) FROM syncd.dead_letters")[0][0] == 0
        assert scenario.stop(process) == 0


class TestFanIn:
    def test_each_mapping_only_touches_its_own_slice(self, two_sources: Scenario, shop: Source,
                                                     app: Source) -> None:
        """Shop and app orders with the same ids share one table; deletes and updates (and a
        key change) in one source never reach the other's rows."""
        scenario = two_sources
        scenario.write_config(mappings(shop_mapping(), APP_MAPPING))
        shop.execute(*(order(i, amount=f"{i}元") for i in (1, 2, 3)))
        app.execute(*(("INSERT INTO app_orders VALUES (%s, 20, %s)", (i, i * 100)) for i in (1, 2, 3)))
        process = start_streaming(scenario, sources=2)
        app_rows = {i: (1, Decimal(f"{i}.00"), False) for i in (1, 2, 3)}
        eventually(lambda: rows(scenario, "shop") == app_rows and rows(scenario, "app") == app_rows, 30)

        shop.execute("UPDATE orders SET status = '已完成' WHERE id = 1", "DELETE FROM orders WHERE id = 2")
        app.execute("DELETE FROM app_orders WHERE id = 3", "UPDATE app_orders SET id = 30 WHERE id = 1")
        eventually(lambda: rows(scenario, "shop") == {1: (3, Decimal("1.00"), False),
                                                      3: (1, Decimal("3.00"), False)}, 30)
        eventually(lambda: rows(scenario, "app") == {
            1: (1, Decimal("1.00"), True),        # key changed: old key soft-deleted
            30: (1, Decimal("1.00"), False),
            2: (1, Decimal("2.00"), False),
            3: (1, Decimal("3.00"), True),        # soft delete, in the app's slice only
        }, 30)
        assert scenario.stop(process) == 0

    def test_validate_rejects_colliding_slices_at_their_place(self, two_sources: Scenario) -> None:
        text = mappings(shop_mapping(), APP_MAPPING.replace("{value: app}", "{value: shop}"))
        path = two_sources.write_config(text).parent / "mappings" / "mappings.yaml"
        result = two_sources.cli("validate")
        assert result.returncode == 1, result.stdout + result.stderr
        line, column = position(text, "name: app_orders")
        shop_line, shop_column = position(text, "name: shop_orders")
        assert (f"{path}:{line}:{column}: mapping 'app_orders' and mapping 'shop_orders' write the same "
                f"slice of 'orders': {{'channel': 'shop'}}; give each a distinct constant key value "
                f"('shop_orders' is at {path}:{shop_line})") in result.stdout
        assert (f"{path}:{shop_line}:{shop_column}: mapping 'shop_orders' and mapping 'app_orders' write "
                "the same slice of 'orders'") in result.stdout


class TestFanOut:
    def test_both_target_tables_change_in_one_transaction(self, scenario: Scenario, shop: Source) -> None:
        """orders -> orders and order_amounts: a reader never sees one updated without the other."""
        amounts = """
  - name: shop_order_amounts
    source: shop
    table: orders
    target: order_amounts
    key: source_order_id
    columns:
      source_order_id: id
      amount: {from: amount_text, transform: parse_amount}
"""
        scenario.write_config(mappings(shop_mapping(), amounts))
        shop.execute(*(order(i, amount="0元") for i in range(1, 21)))
        process = start_streaming(scenario)
        eventually(lambda: len(rows(scenario)) == 20, 30)
        query = ("SELECT (SELECT coalesce(array_agg(DISTINCT amount ORDER BY amount), '{}') FROM orders), "
                 "(SELECT coalesce(array_agg(DISTINCT amount ORDER BY amount), '{}') FROM order_amounts), "
                 "(SELECT count(*) FROM orders), (SELECT count(*) FROM order_amounts)")
        seen: list[tuple] = []
        done = threading.Event()

        def watch() -> None:
            with psycopg.connect(scenario.postgres.dsn(scenario.target_db), autocommit=True) as conn:
                while not done.is_set():
                    row = conn.execute(query).fetchone()
                    assert row is not None
                    seen.append((tuple(row[0]), tuple(row[1]), row[2], row[3]))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            for k in range(1, 31):
                shop.execute(f"UPDATE orders SET amount_text = '{k}元'",
                             order(100 + k, amount=f"{k}元"))
            eventually(lambda: rows(scenario).get(130, (None, None))[1] == Decimal("30.00"), 60)
        finally:
            done.set()
            watcher.join()
        assert len(seen) > 10 and len(set(seen)) > 2     # it watched the tables change
        torn = [s for s in seen if s[0] != s[1] or s[2] != s[3] or len(s[0]) != 1]
        assert not torn, torn[:5]
        assert seen[-1] == ((Decimal("30.00"),), (Decimal("30.00"),), 50, 50)
        assert scenario.stop(process) == 0


class TestReload:
    def test_an_invalid_mapping_set_is_rejected_and_the_old_one_keeps_streaming(
            self, scenario: Scenario, shop: Source) -> None:
        scenario.write_config(mappings(shop_mapping()))
        process = start_streaming(scenario)
        mapping_file = scenario.tmp / "mappings" / "mappings.yaml"
        bad = mappings(shop_mapping()).replace("{mask: {keep_first: 1}}", "pars_amount")
        mapping_file.write_text(bad)
        process.send_signal(signal.SIGHUP)
        rejected = eventually(lambda: log_events(scenario, "reload_rejected"), 30)
        line, column = position(bad, "pars_amount")
        assert f"mappings.yaml:{line}:{column}: " in rejected[0]["errors"]
        assert "unknown transform 'pars_amount'" in rejected[0]["errors"]
        assert not log_events(scenario, "reloaded")
        shop.execute(order(1))
        eventually(lambda: rows(scenario).get(1) == (1, Decimal("100.00"), False), 30)
        assert process.poll() is None
        assert scenario.stop(process) == 0

    def test_a_mapping_reading_a_missing_source_column_is_rejected(self, scenario: Scenario,
                                                                    shop: Source) -> None:
        """Live problems count too: the source table lacks a column the new set reads."""
        scenario.write_config(mappings(shop_mapping()))
        process = start_streaming(scenario)
        broken = mappings(shop_mapping(extra_columns="\n      order_no: no_such_column").replace(
            "      order_no: order_no\n", "", 1))
        (scenario.tmp / "mappings" / "mappings.yaml").write_text(broken)
        process.send_signal(signal.SIGHUP)
        eventually(lambda: log_events(scenario, "reload_rejected") or log_events(scenario, "reloaded"), 30)
        [rejected] = log_events(scenario, "reload_rejected")
        line, column = position(broken, "no_such_column")
        assert f"mappings.yaml:{line}:{column}: mapping 'shop_orders': column 'order_no' reads " \
               "'no_such_column'" in rejected["errors"]
        shop.execute(order(1))
        eventually(lambda: 1 in rows(scenario), 30)
        assert scenario.stop(process) == 0

    def test_a_valid_mapping_set_is_switched_to(self, scenario: Scenario, shop: Source) -> None:
        scenario.write_config(mappings(shop_mapping()))
        process = start_streaming(scenario)
        shop.execute(order(1, "已退款"))
        eventually(lambda: scenario.target("SELECT count(*) FROM syncd.dead_letters")[0][0] == 1, 30)
        mapping_file = scenario.tmp / "mappings" / "mappings.yaml"
        mapping_file.write_text(mappings(shop_mapping(status_map=STATUS_MAP.replace("}", ", 已退款: 5}"))))
        process.send_signal(signal.SIGHUP)
        eventually(lambda: log_events(scenario, "reloaded"), 30)
        shop.execute(order(2, "已退款"))
        eventually(lambda: rows(scenario).get(2) == (5, Decimal("100.00"), False), 30)
        assert 1 not in rows(scenario)     # the earlier dead letter waits for `syncd dlq retry`
        assert scenario.stop(process) == 0


LIVE_CASES = {
    # case: (mapping text, the text the problem points at, message)
    "missing source column": (
        mappings(shop_mapping(extra_columns="\n      order_no: remark_gone").replace(
            "      order_no: order_no\n", "", 1)),
        "remark_gone",
        "mapping 'shop_orders': column 'order_no' reads 'remark_gone', which {db}.orders on source shop "
        "does not have"),
    "missing source table": (
        mappings(shop_mapping(table="no_such_table")),
        "name: shop_orders",
        "mapping 'shop_orders': table {db}.no_such_table does not exist on source shop"),
    "missing target column": (
        mappings(shop_mapping(extra_columns="\n      ghost: order_no")),
        "order_no\n",
        "mapping 'shop_orders': target table public.orders has no column 'ghost'"),
    "key not unique in the target": (
        mappings(shop_mapping(key="[channel, order_no]")),
        "name: shop_orders",
        "mapping 'shop_orders': key ['channel', 'order_no'] is neither the primary key nor a unique "
        "index of public.orders"),
    "colliding fan-in slices": (
        mappings(shop_mapping(), shop_mapping().replace("shop_orders", "shop_orders_again").replace(
            "table: orders", "table: orders_archive")),
        "name: shop_orders_again",
        "mapping 'shop_orders_again' and mapping 'shop_orders' write the same slice of 'orders'"),
}


class TestValidateLive:
    @pytest.mark.parametrize("case", list(LIVE_CASES))
    def test_each_live_error_is_reported_at_its_place(self, scenario: Scenario, shop: Source,
                                                      case: str) -> None:
        text, needle, message = LIVE_CASES[case]
        if case == "missing target column":
            needle_at = position(text, "ghost: order_no")
            line, column = needle_at[0], needle_at[1] + len("ghost: ")
        else:
            line, column = position(text, needle)
        path = scenario.write_config(text).parent / "mappings" / "mappings.yaml"
        result = scenario.cli("validate", "--live")
        assert result.returncode == 1, result.stdout + result.stderr
        expected = f"{path}:{line}:{column}: {message.format(db=shop.database)}"
        assert expected in result.stdout.splitlines() or any(
            out.startswith(expected) for out in result.stdout.splitlines()), result.stdout

    def test_a_valid_set_passes_live(self, scenario: Scenario) -> None:
        scenario.write_config(mappings(shop_mapping(where="{is_test: 0}")))
        result = scenario.cli("validate", "--live")
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip() == "ok: 1 mappings in 1 files (checked live)"

    def test_a_source_without_its_password_is_not_tried(self, scenario: Scenario) -> None:
        """The unset password variable is the one problem: no second, confusing 'Access denied'."""
        scenario.write_config(mappings(shop_mapping()))
        env = {k: v for k, v in scenario.env().items() if k != "SHOP_DB_PASSWORD"}
        command = [*scenario.program, "validate", "--live", "--config", str(scenario.config_path)]
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False,
                                cwd=scenario.cwd)
        assert result.returncode == 1
        lines = result.stdout.splitlines()
        assert len(lines) == 1 and "SHOP_DB_PASSWORD" in lines[0] and "is not set" in lines[0], result.stdout

    def test_target_and_source_problems_are_reported_together(self, scenario: Scenario) -> None:
        text = mappings(shop_mapping(extra_columns="\n      ghost: remark_gone"))
        scenario.write_config(text)
        result = scenario.cli("validate", "--live")
        assert result.returncode == 1
        assert "has no column 'ghost'" in result.stdout
        assert "reads 'remark_gone'" in result.stdout


class TestPreview:
    @pytest.fixture
    def previewed(self, scenario: Scenario, shop: Source) -> Scenario:
        scenario.write_config(mappings(shop_mapping(where="{is_test: 0}")))
        shop.execute(order(1, "已支付", "1,299.50元", buyer="张三丰"),
                     order(2, "已退款", "88元", buyer="李四"),
                     order(3, "待支付", "5元", is_test=1, buyer=None),
                     ("INSERT INTO orders (id, order_no, status, amount_text, buyer) VALUES "
                      "(4, 'S4', '已发货', '12万', '王五')", None))
        return scenario

    def target_state(self, scenario: Scenario) -> list[tuple]:
        return scenario.target("SELECT table_schema, table_name FROM information_schema.tables "
                               "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
                               "ORDER BY 1, 2") + scenario.target("SELECT * FROM orders")

    def test_json_shows_each_row_with_its_target_row_or_reason(self, previewed: Scenario) -> None:
        before = self.target_state(previewed)
        result = previewed.cli("preview", "--mapping", "shop_orders", "--json")
        assert result.returncode == 0, result.stderr
        records = json.loads(result.stdout)
        assert [(r["key"], r["status"]) for r in records] == [
            ("id=1", "mapped"), ("id=2", "dead_letter"), ("id=3", "filtered"), ("id=4", "dead_letter")]
        mapped = records[0]
        assert mapped["source"] == {"id": 1, "order_no": "S1", "status": "已支付",
                                    "amount_text": "1,299.50元", "is_test": 0, "buyer": "张三丰"}
        assert mapped["target"] == {"channel": "shop", "source_order_id": 1, "order_no": "S1", "status": 1,
                                    "amount": "1299.50", "buyer": "张**"}
        assert mapped["reason"] is None
        assert records[1]["target"] is None
        assert records[1]["reason"] == "column status: value '已退款' is not in the map"
        assert records[2]["reason"] == "filtered out by where: is_test: 0 (is_test is 1)"
        assert records[3]["reason"] == "column amount: parse_amount: not an amount in 元: '12万'"
        assert self.target_state(previewed) == before     # nothing written, not even syncd's schema

    def test_human_output_lists_source_then_target_per_row(self, previewed: Scenario) -> None:
        result = previewed.cli("preview", "--mapping", "shop_orders", "--limit", "3")
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert out.startswith("mapping shop_orders: shop.orders -> public.orders\n")
        assert "[1] id=1: mapped" in out and "[2] id=2: dead letter" in out
        assert "[3] id=3: filtered out" in out and "[4]" not in out
        assert "    amount_text  '1,299.50元'" in out
        assert "    amount           1299.50" in out
        assert "  dead letter: column status: value '已退款' is not in the map" in out
        assert "  filtered out by where: is_test: 0 (is_test is 1)" in out
        assert "3 source rows: 1 mapped, 1 dead letter, 1 filtered out. Nothing was written." in out

    def test_where_chooses_rows_read_only(self, previewed: Scenario, shop: Source) -> None:
        result = previewed.cli("preview", "--mapping", "shop_orders", "--json", "--where",
                               "status LIKE '已%' AND buyer LIKE '李%'")
        assert result.returncode == 0, result.stderr
        assert [r["key"] for r in json.loads(result.stdout)] == ["id=2"]
        sneaky = previewed.cli("preview", "--mapping", "shop_orders", "--where", "1=1; DELETE FROM orders")
        assert sneaky.returncode == 2
        assert "refused the query" in sneaky.stderr
        assert shop.rows("SELECT count(*) FROM orders") == [(4,)]

    def test_unknown_mapping_and_problems(self, previewed: Scenario) -> None:
        result = previewed.cli("preview", "--mapping", "shop_order")
        assert result.returncode == 2
        assert "no mapping named 'shop_order' (did you mean 'shop_orders'?)" in result.stderr
        previewed.write_config(mappings(shop_mapping(extra_columns="\n      ghost: order_no")))
        result = previewed.cli("preview", "--mapping", "shop_orders")
        assert result.returncode == 78
        assert re.search(r"mappings\.yaml:\d+:\d+: mapping 'shop_orders': target table public.orders has "
                         r"no column 'ghost'", result.stderr)

    def test_no_rows(self, previewed: Scenario) -> None:
        result = previewed.cli("preview", "--mapping", "shop_orders", "--where", "id > 100")
        assert result.returncode == 0
        assert result.stdout.strip() == "no rows in shop.orders match: id > 100"
        result = previewed.cli("preview", "--mapping", "shop_orders", "--where", "id > 100", "--json")
        assert json.loads(result.stdout) == []

