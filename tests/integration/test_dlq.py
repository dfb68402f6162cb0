"""`syncd dlq` on real servers: dead letter -> fix the mapping -> SIGHUP -> retry -> target equals
source; still-failing retries, retries without a daemon, and discarding."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from devtools.sandbox import PostgresServer
from tests.helpers import eventually
from tests.integration.scenario import (
    SHOP_ORDERS_MAPPING,
    TARGET_ORDERS_SQL,
    Scenario,
    Source,
)

FIXED_MAPPING = SHOP_ORDERS_MAPPING.replace("已取消: 4}", "已取消: 4, 已退款: 5}")


@pytest.fixture
def scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, shop: Source) -> Iterator[Scenario]:
    s = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=TARGET_ORDERS_SQL)
    s.write_config(SHOP_ORDERS_MAPPING)
    yield s
    s.close()


def insert(order_id: int, status: str, amount: str = "100元") -> tuple[str, tuple]:
    return ("INSERT INTO orders (id, order_no, phone, status, amount_text, created_at) "
            "VALUES (%s, %s, '13812345678', %s, %s, '2024-05-01 12:00:00')",
            (order_id, f"S{order_id}", status, amount))


def target_rows(scenario: Scenario) -> dict[int, tuple]:
    """source_order_id -> (status, amount, soft-deleted?) of the shop's target rows."""
    found = scenario.target("SELECT source_order_id, status, amount, deleted_at IS NOT NULL FROM orders "
                            "WHERE channel = 'shop'")
    return {r[0]: tuple(r[1:]) for r in found}


def expected_rows(shop: Source) -> dict[int, tuple]:
    """What the fixed mapping makes of the current source rows (amounts are whole 元 here)."""
    codes = {"待支付": 0, "已支付": 1, "已发货": 2, "已完成": 3, "已取消": 4, "已退款": 5}
    return {r[0]: (codes[r[1]], Decimal(r[2].removesuffix("元")).quantize(Decimal("0.01")), False)
            for r in shop.rows("SELECT id, status, amount_text FROM orders")}


def letters(scenario: Scenario) -> list[tuple]:
    return scenario.target("SELECT id, row_key, status, resolved_at IS NOT NULL, reason, "
                           "row_image->>'amount_text' FROM syncd.dead_letters ORDER BY id")


def pending(scenario: Scenario) -> int:
    return scenario.target("SELECT count(*) FROM syncd.dead_letters WHERE status = 'pending'")[0][0]


def start_streaming(scenario: Scenario):
    process = scenario.start()
    eventually(lambda: '"streaming"' in scenario.cli("status", "--json").stdout, 90)
    return process


class TestRetryAfterFixingTheMapping:
    def test_fix_mapping_sighup_retry_makes_target_equal_source(self, scenario: Scenario,
                                                                shop: Source) -> None:
        """An unknown status is dead-lettered; after the map learns it and the daemon reloads,
        `dlq retry --all` writes each row as the source holds it NOW, never the old image."""
        process = start_streaming(scenario)
        shop.execute(insert(1, "已退款", "100元"))
        shop.execute("UPDATE orders SET amount_text = '200元' WHERE id = 1")    # 2nd dead letter, newer
        shop.execute(insert(2, "已支付"))
        shop.execute(insert(3, "已退款"))
        shop.execute("DELETE FROM orders WHERE id = 3")                        # gone since
        shop.execute(insert(4, "已退款", "40元"))
        shop.execute("UPDATE orders SET status = '已支付' WHERE id = 4")         # stream fixed it since
        eventually(lambda: len(letters(scenario)) == 4, 30)
        eventually(lambda: 4 in target_rows(scenario), 30)
        assert target_rows(scenario) == {2: (1, Decimal("100.00"), False), 4: (1, Decimal("40.00"), False)}

        listed = scenario.cli("dlq", "list")
        assert listed.returncode == 0, listed.stderr
        header, *lines, footer = listed.stdout.splitlines()
        assert header.split() == ["id", "created_at", "source", "mapping", "row_key", "position", "reason"]
        assert len(lines) == 4 and footer == "4 pending dead letters"
        assert all(" shop " in line and " shop_orders " in line and " mysql-bin." in line for line in lines)
        assert "column status: value '已退款' is not in the map" in lines[0]
        as_json = json.loads(scenario.cli("dlq", "list", "--json").stdout)
        assert [x["row_key"] for x in as_json] == ["id=1", "id=1", "id=3", "id=4"]
        assert as_json[1]["row_image"]["amount_text"] == "200元" and as_json[0]["status"] == "pending"

        (scenario.tmp / "mappings" / "mappings.yaml").write_text(FIXED_MAPPING)
        process.send_signal(signal.SIGHUP)
        eventually(lambda: '"reloaded"' in scenario.log_text(), 30)

        retried = scenario.cli("dlq", "retry", "--all")
        assert retried.returncode == 0, retried.stdout + retried.stderr
        assert "shop_orders: 4 dead letters (3 source rows: " in retried.stdout
        assert "retried 4 dead letters; 0 still failing" in retried.stdout
        assert target_rows(scenario) == expected_rows(shop) == {
            1: (5, Decimal("200.00"), False),     # the current row, not the first image (100元)
            2: (1, Decimal("100.00"), False),
            4: (1, Decimal("40.00"), False),      # not set back to 已退款 by the old image
        }
        assert [row[2:4] for row in letters(scenario)] == [("retried", True)] * 4
        status = json.loads(scenario.cli("status", "--json").stdout)
        assert status["sources"][0]["dead_letters_pending"] == 0
        assert scenario.cli("dlq", "list").stdout.strip() == "no pending dead letters"
        assert len(json.loads(scenario.cli("dlq", "list", "--status", "retried", "--json").stdout)) == 4

        shop.execute(insert(5, "已退款"))                                     # the new set streams on
        eventually(lambda: target_rows(scenario).get(5) == (5, Decimal("100.00"), False), 30)
        assert scenario.stop(process) == 0


class TestRetryWithoutDaemon:
    def test_still_failing_then_fixed_at_the_source_then_discard(self, scenario: Scenario,
                                                                 shop: Source) -> None:
        """With no daemon running, retry repairs directly; rows that still fail stay pending
        with their new reason (exit 1); once the source row is fixed, retry succeeds."""
        process = start_streaming(scenario)
        shop.execute(insert(1, "已退款"))
        shop.execute(insert(2, "拒收"))
        eventually(lambda: len(letters(scenario)) == 2, 30)
        assert scenario.stop(process) == 0
        first_id, second_id = (row[0] for row in letters(scenario))

        shop.execute("UPDATE orders SET amount_text = '12万' WHERE id = 1")   # still cannot map
        result = scenario.cli("dlq", "retry", "--mapping", "shop_orders")
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"still failing #{first_id}: column status: value '已退款' is not in the map" in result.stdout
        assert f"still failing #{second_id}: column status: value '拒收' is not in the map" in result.stdout
        assert "retried 0 dead letters; 2 still failing (kept pending)" in result.stdout
        assert {row[0]: row[2] for row in letters(scenario)}[first_id] == "pending"
        # the retry refreshed each key's dead letter (its row image now) and added none
        assert [(row[0], row[5]) for row in letters(scenario)] == [(first_id, "12万"), (second_id, "100元")]
        assert target_rows(scenario) == {}

        shop.execute("UPDATE orders SET status = '已完成', amount_text = '7元' WHERE id = 1")
        result = scenario.cli("dlq", "retry", "--id", str(first_id))
        assert result.returncode == 0, result.stdout + result.stderr
        assert target_rows(scenario) == {1: (3, Decimal("7.00"), False)}
        assert {row[0]: row[2] for row in letters(scenario)}[first_id] == "retried"

        again = scenario.cli("dlq", "retry", "--id", str(first_id))
        assert again.returncode == 0
        assert again.stdout.strip() == f"dead letter {first_id} is retried, not pending: nothing to do"

        discarded = scenario.cli("dlq", "discard", "--id", str(second_id))
        assert discarded.returncode == 0 and discarded.stdout.strip() == "discarded 1 dead letter"
        assert {row[0]: row[2:4] for row in letters(scenario)}[second_id] == ("discarded", True)
        assert target_rows(scenario) == {1: (3, Decimal("7.00"), False)}      # discard writes no row
        everything = json.loads(scenario.cli("dlq", "list", "--status", "all", "--json").stdout)
        assert {x["id"]: x["status"] for x in everything}[second_id] == "discarded"

    def test_a_row_deleted_at_the_source_is_removed_by_retry(self, scenario: Scenario,
                                                             shop: Source) -> None:
        """A dead-lettered row whose source row is gone leaves no target row behind (soft delete)."""
        process = start_streaming(scenario)
        shop.execute(insert(1, "已支付"))
        eventually(lambda: 1 in target_rows(scenario), 30)
        shop.execute("UPDATE orders SET status = '已退款' WHERE id = 1")
        eventually(lambda: len(letters(scenario)) == 1, 30)
        assert scenario.stop(process) == 0
        shop.execute("DELETE FROM orders WHERE id = 1")         # not streamed: the daemon is stopped
        assert target_rows(scenario) == {1: (1, Decimal("100.00"), False)}
        result = scenario.cli("dlq", "retry", "--all")
        assert result.returncode == 0, result.stdout + result.stderr
        assert target_rows(scenario) == {1: (1, Decimal("100.00"), True)}   # soft-deleted
        assert pending(scenario) == 0


class TestSelectorsAndErrors:
    def test_errors_and_empty_selections(self, scenario: Scenario, shop: Source) -> None:
        process = start_streaming(scenario)
        shop.execute(insert(1, "已退款"))
        eventually(lambda: pending(scenario) == 1, 30)
        assert scenario.stop(process) == 0

        usage = scenario.cli("dlq", "retry")
        assert usage.returncode == 2 and "exactly one of --id N, --mapping NAME or --all" in usage.stderr
        missing = scenario.cli("dlq", "discard", "--id", "999999")
        assert missing.returncode == 2 and "there is no dead letter 999999" in missing.stderr
        none = scenario.cli("dlq", "retry", "--mapping", "app_orders")
        assert none.returncode == 0
        assert none.stdout.strip() == "no pending dead letters of mapping 'app_orders': nothing to retry"
        listed = scenario.cli("dlq", "list", "--mapping", "shop_orders", "--status", "discarded")
        assert (listed.returncode, listed.stdout.strip()) == (
            0, "no discarded dead letters for mapping 'shop_orders'")
        unknown = scenario.cli("dlq", "list", "--mapping", "shop_ordrs")
        assert unknown.returncode == 2 and "no mapping named 'shop_ordrs'; mappings: " in unknown.stderr

        # A mapping set with problems is not used for retrying.
        (scenario.tmp / "mappings" / "mappings.yaml").write_text(
            SHOP_ORDERS_MAPPING.replace("order_no: order_no", "order_number: order_no"))
        broken = scenario.cli("dlq", "retry", "--all")
        assert broken.returncode == 78
        assert "has no column 'order_number'" in broken.stderr
        assert pending(scenario) == 1

        discarded = scenario.cli("dlq", "discard", "--all")
        assert discarded.returncode == 0 and discarded.stdout.strip() == "discarded 1 dead letter"
        assert pending(scenario) == 0
        assert scenario.cli("dlq", "discard", "--all").stdout.strip() == (
            "no pending dead letters: nothing to discard")

    def test_every_dlq_command_before_the_state_schema_exists(self, scenario: Scenario) -> None:
        """A fresh install: one line saying what creates the table, exit 2, nothing created."""
        for command in (("list",), ("retry", "--all"), ("discard", "--all")):
            result = scenario.cli("dlq", *command)
            assert result.returncode == 2, command
            assert result.stderr.strip() == (
                "syncd: the state schema 'syncd' has no dead letters table yet: the first `syncd run` or "
                "`syncd snapshot` creates it (or `target.state_schema` in config.yaml names another schema)")
        assert scenario.target("SELECT to_regclass('syncd.dead_letters')") == [(None,)]



class TestSnapshotAgainAfterDiscarding:
    def test_rows_failing_again_at_the_same_position_are_pending_again(self, scenario: Scenario,
                                                                        shop: Source) -> None:
        """Discarded dead letters of a snapshot do not hide the next snapshot's failures at the same
        binlog position: each row failing now is pending again, with the new reason, and the
        snapshot's count is what `syncd status` shows."""
        shop.execute(*(insert(i, "已退款", "12万" if i % 2 else "100元") for i in range(1, 11)))
        first = scenario.cli("snapshot", "--mapping", "shop_orders")
        assert first.returncode == 0 and "dead letters 10" in first.stdout, first.stdout + first.stderr
        discarded = scenario.cli("dlq", "discard", "--mapping", "shop_orders")
        assert discarded.stdout.strip() == "discarded 10 dead letters" and pending(scenario) == 0

        (scenario.tmp / "mappings" / "mappings.yaml").write_text(FIXED_MAPPING)   # 已退款 known now
        again = scenario.cli("snapshot", "--mapping", "shop_orders")
        assert again.returncode == 0 and "dead letters 5" in again.stdout, again.stdout + again.stderr
        stored = letters(scenario)
        assert len(stored) == 10    # the same letters, by their identity (snapshot@ the same position)
        discarded = sorted(row[1] for row in stored if row[2] == "discarded")
        assert discarded == [f"id={i}" for i in (10, 2, 4, 6, 8)]
        assert sorted(row[1] for row in stored if row[2] == "pending") == [f"id={i}" for i in (1, 3, 5, 7, 9)]
        assert all("parse_amount" in row[4] and not row[3] for row in stored if row[2] == "pending")
        assert json.loads(scenario.cli("status", "--json").stdout)["sources"][0]["dead_letters_pending"] == 5
        assert sorted(target_rows(scenario)) == [2, 4, 6, 8, 10]



def test_a_value_its_column_type_cannot_hold_names_the_column_on_copy_and_stream(scenario: Scenario,
                                                                                 shop: Source) -> None:
    """PostgreSQL names no column for `numeric field overflow` (nor `smallint out of range`); the
    dead letter's reason does, for a row of the initial copy and one of the stream alike."""
    shop.execute(insert(1, "已支付", "99999999999元"), insert(2, "已支付"))
    process = start_streaming(scenario)
    shop.execute(insert(3, "已支付", "99999999999元"))
    eventually(lambda: len(letters(scenario)) == 2, 30)
    assert scenario.stop(process) == 0
    assert [(row[1], row[4].split("; ")[:2]) for row in letters(scenario)] == [
        (f"id={i}", ["PostgreSQL rejected the row: numeric field overflow", "column amount"]) for i in (1, 3)]
    assert sorted(target_rows(scenario)) == [2]


CHECKED = "ALTER TABLE orders ADD CONSTRAINT amount_below_1000 CHECK (amount < 1000)"


def refused_rows(scenario: Scenario, shop: Source) -> dict[int, int]:
    """Two rows PostgreSQL refuses: one breaks a CHECK constraint, one holds NUL in text.
    Returns source id -> its pending dead letter's id."""
    scenario.target(CHECKED)
    shop.execute(insert(1, "已支付", "5000元"),
                 ("INSERT INTO orders (id, order_no, status, amount_text) VALUES (2, %s, '已支付', '9元')",
                  ("A\x00B",)))
    eventually(lambda: pending(scenario) == 2, 30)
    by_key = {row[1]: row[0] for row in letters(scenario)}
    return {1: by_key["id=1"], 2: by_key["id=2"]}


def reasons(scenario: Scenario) -> dict[str, str]:
    return {row[1]: row[4] for row in letters(scenario) if row[2] == "pending"}


def assert_still_refused(scenario: Scenario, ids: dict[int, int]) -> None:
    """`dlq retry` and `reconcile --repair` both leave the refused rows pending and exit 1."""
    retried = scenario.cli("dlq", "retry", "--all")
    assert retried.returncode == 1, retried.stdout + retried.stderr
    assert "0 applied" in retried.stdout and "2 dead-lettered again" in retried.stdout, retried.stdout
    assert f"still failing #{ids[1]}: PostgreSQL rejected the row" in retried.stdout
    assert "amount_below_1000" in retried.stdout
    assert f"still failing #{ids[2]}:" in retried.stdout and "NUL" in retried.stdout
    assert "retried 0 dead letters; 2 still failing (kept pending)" in retried.stdout
    assert pending(scenario) == 2 and target_rows(scenario) == {}
    assert "amount_below_1000" in reasons(scenario)["id=1"] and "NUL" in reasons(scenario)["id=2"]

    repaired = scenario.cli("reconcile", "--repair", "--json", "--mapping", "shop_orders")
    assert repaired.returncode == 1, repaired.stdout + repaired.stderr
    report = json.loads(repaired.stdout)["mappings"][0]
    assert report["status"] == "drift" and report["repaired"] == 0
    assert sorted(x["row_key"] for x in report["dead_lettered"]["rows"]) == ["id=1", "id=2"]
    text = scenario.cli("reconcile", "--repair", "--mapping", "shop_orders")
    assert text.returncode == 1
    assert "shop_orders: dead-lettered again id=1: PostgreSQL rejected the row" in text.stdout
    assert pending(scenario) == 2 and target_rows(scenario) == {}
    runs = scenario.target("SELECT repaired, status FROM syncd.reconcile_runs ORDER BY id")
    assert runs[-1] == (0, "drift")


def assert_applied_once_fixed(scenario: Scenario, shop: Source, ids: dict[int, int]) -> None:
    scenario.target("ALTER TABLE orders DROP CONSTRAINT amount_below_1000")
    shop.execute("UPDATE orders SET order_no = 'AB' WHERE id = 2")
    eventually(lambda: 2 in target_rows(scenario) or pending(scenario) == 2, 30)
    retried = scenario.cli("dlq", "retry", "--all")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert pending(scenario) == 0
    assert target_rows(scenario) == {1: (1, Decimal("5000.00"), False), 2: (1, Decimal("9.00"), False)}
    assert {row[0]: row[2] for row in letters(scenario)} == {ids[1]: "retried", ids[2]: "retried"}


class TestRowsPostgresRefuses:
    def test_retry_and_repair_through_the_stream_keep_refused_rows_pending(self, scenario: Scenario,
                                                                           shop: Source) -> None:
        """With a daemon streaming, a repair goes through its stream: rows PostgreSQL refuses
        again are reported per key as dead-lettered, never as applied or repaired."""
        process = start_streaming(scenario)
        ids = refused_rows(scenario, shop)
        assert_still_refused(scenario, ids)
        assert '"dead_lettered": 2' in scenario.log_text() or '"dead_letters": 2' in scenario.log_text()
        assert "error ignored terminating" not in scenario.log_text()  # psycopg's echo of the refusal
        assert_applied_once_fixed(scenario, shop, ids)
        assert scenario.stop(process) == 0

    def test_retry_and_repair_without_a_daemon_keep_refused_rows_pending(self, scenario: Scenario,
                                                                         shop: Source) -> None:
        process = start_streaming(scenario)
        ids = refused_rows(scenario, shop)
        assert scenario.stop(process) == 0
        assert_still_refused(scenario, ids)
        scenario.target("ALTER TABLE orders DROP CONSTRAINT amount_below_1000")
        shop.execute("UPDATE orders SET order_no = 'AB' WHERE id = 2")
        retried = scenario.cli("dlq", "retry", "--all")
        assert retried.returncode == 0, retried.stdout + retried.stderr
        assert pending(scenario) == 0
        assert target_rows(scenario) == {1: (1, Decimal("5000.00"), False), 2: (1, Decimal("9.00"), False)}


SECRET_SQL = """
CREATE TABLE members (
    id BIGINT PRIMARY KEY,
    phone VARCHAR(20),
    email VARCHAR(64),
    password_hash VARCHAR(64),
    level VARCHAR(8)
) CHARACTER SET utf8mb4
"""

SECRET_TARGET_SQL = """
CREATE TABLE members (
    source_member_id bigint PRIMARY KEY,
    phone text,
    email_hash text,
    level smallint
)
"""

SECRET_MAPPING = """
mappings:
  - name: shop_members
    source: shop
    table: members
    target: members
    key: [source_member_id]
    columns:
      source_member_id: id
      phone: {from: phone, transform: mask_phone}
      email_hash: {from: email, transform: {hash: {salt_env: MEMBER_SALT}}}
      level: {from: level, map: {普通: 0, 银卡: 1, 金卡: 2}}
"""


class TestWhatADeadLetterKeeps:
    def test_no_clear_masked_value_and_no_unmapped_column(self, tmp_path: Path, postgres: PostgresServer,
                                                          target_db: str, shop: Source) -> None:
        """A dead letter keeps the source key, the position, the reason and the columns the mapping
        reads as it publishes them: the phone masked, the email hashed, the password hash (not
        mapped) not at all; `dlq list --json` prints nothing more."""
        shop.execute(SECRET_SQL)
        scenario = Scenario.create(tmp_path, postgres, target_db, {"shop": shop},
                                   target_sql=SECRET_TARGET_SQL)
        scenario.write_config(SECRET_MAPPING)
        scenario.extra_env["MEMBER_SALT"] = "pepper"
        try:
            process = scenario.start()
            eventually(lambda: '"streaming"' in scenario.cli("status", "--json").stdout, 90)
            shop.execute("INSERT INTO members VALUES (7, '13812345678', 'li@example.cn', "
                         "'$2b$12$secretsecretsecret', '钻石')")
            eventually(lambda: pending(scenario) == 1, 30)
            assert scenario.stop(process) == 0
            stored = scenario.target("SELECT row_image::text, row_key, reason FROM syncd.dead_letters")[0]
            listed = scenario.cli("dlq", "list", "--json").stdout
            for text in (stored[0], listed, scenario.log_text()):
                assert "13812345678" not in text and "li@example.cn" not in text
                assert "secretsecret" not in text and "password_hash" not in text
            image = json.loads(listed)[0]["row_image"]
            assert image["id"] == 7 and image["phone"] == "138****5678" and image["level"] == "钻石"
            assert len(image["email"]) == 64 and set(image["email"]) <= set("0123456789abcdef")
            assert set(image) == {"id", "phone", "email", "level"}
            assert stored[1] == "id=7" and "'钻石' is not in the map" in stored[2]
        finally:
            scenario.close()
