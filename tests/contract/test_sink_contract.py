"""One suite, two sinks: tests/doubles.py `MemorySink` and the product's `PostgresSink` (on a real,
throwaway PostgreSQL) keep the promises of syncd/sink/base.py alike.

The pipeline's unit tests (tests/unit/service/test_pipeline.py) run on the memory sink; this
suite is what makes their proof hold for PostgreSQL: rows, dead letters, pauses, repairs and the
checkpoint stored together; refused rows dead-lettered with the target's reason; a long
transaction all or nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from psycopg import sql

from devtools.sandbox import PostgresServer
from syncd.config import Secret, TargetConfig
from syncd.model import (
    REPAIR_AT,
    Checkpoint,
    ColumnSchema,
    DeadLetter,
    Delete,
    KeyOutcome,
    Outcome,
    Pause,
    Position,
    RowOp,
    SoftDelete,
    TableSchema,
    TargetTable,
    Upsert,
)
from syncd.sink.base import Sink
from syncd.sink.batch import Batch, PlannedOp, RepairDone
from syncd.sink.connection import connect
from syncd.sink.dead_letters import resolve
from syncd.sink.postgres import PostgresSink
from syncd.sink.state import create_state_schema, read_repair, request_repair
from tests.doubles import MemorySink

SOURCE = "shop"
ORDERS = TargetTable("public", "orders")
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
CONSTRAINT = "orders_amount_check"


@dataclass
class Case:
    """A sink and how to look inside what it stores."""

    sink: Sink
    rows: Callable[[], dict[int, dict[str, Any]]]
    letters: Callable[[], list[tuple[str, str]]]
    queue_repair: Callable[[list[list[Any]]], int]
    outcomes: Callable[[int], list[KeyOutcome]]


def _memory_refusal(op: RowOp) -> str | None:
    amount = getattr(op, "values", {}).get("amount")
    if amount is not None and amount < 0:
        return (f'PostgreSQL rejected the row: new row for relation "orders" violates check constraint '
                f'"{CONSTRAINT}"; constraint {CONSTRAINT}')
    return None


def _memory() -> Iterator[Case]:
    sink = MemorySink(refuse=_memory_refusal)

    def rows() -> dict[int, dict[str, Any]]:
        return {key[0]: values for (table, key), values in sink.state.rows.items() if table == ORDERS}

    yield Case(sink, rows, lambda: [(d.row_key, d.reason) for d in sink.state.dead_letters],
               lambda keys: sink.queue_repair(SOURCE, "shop_orders", keys),
               lambda request: list(sink.state.outcomes.get(request, ())))


def _postgres(postgres: PostgresServer, database: str) -> Iterator[Case]:
    target = TargetConfig(dsn=postgres.dsn(database), password=Secret())
    conn = connect(target, "contract")
    create_state_schema(conn, "syncd")
    conn.execute(f"CREATE TABLE orders (id int PRIMARY KEY, status int, amount numeric "
                 f"CONSTRAINT {CONSTRAINT} CHECK (amount >= 0), deleted_at timestamptz)")
    sink = PostgresSink(target, "contract-sink")

    def rows() -> dict[int, dict[str, Any]]:
        found = conn.execute("SELECT id, status, amount, deleted_at FROM orders ORDER BY id").fetchall()
        return {r[0]: _present({"id": r[0], "status": r[1], "amount": r[2], "deleted_at": r[3]})
                for r in found}

    def letters() -> list[tuple[str, str]]:
        query = sql.SQL("SELECT row_key, reason FROM syncd.dead_letters ORDER BY id")
        return [(k, r) for k, r in conn.execute(query).fetchall()]

    def queue(keys: list[list[Any]]) -> int:
        return request_repair(conn, "syncd", SOURCE, "shop_orders", keys=keys, requested_by="test")

    def outcomes(request: int) -> list[KeyOutcome]:
        found = read_repair(conn, "syncd", request)
        return found.key_outcomes() if found is not None else []

    try:
        yield Case(sink, rows, letters, queue, outcomes)
    finally:
        sink.close()
        conn.close()


def _present(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the memory sink holds it: the columns that were written (deleted_at once set)."""
    return {k: v for k, v in row.items() if v is not None or k != "deleted_at"}


@pytest.fixture(params=["memory", "postgres"])
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    if request.param == "memory":
        yield from _memory()
    else:
        postgres = request.getfixturevalue("postgres")
        yield from _postgres(postgres, request.getfixturevalue("target_db"))


def origin(key: int, position: str = "bin.000001:200") -> DeadLetter:
    return DeadLetter(SOURCE, "orders", "shop_orders", f"id={key}", position, {"id": key}, "")


def upsert(key: int, amount: int = 100, status: int = 0) -> PlannedOp:
    return PlannedOp(Upsert(ORDERS, ("id",), {"id": key, "status": status, "amount": amount}), origin(key))


def checkpoint(pos: int) -> Checkpoint:
    return Checkpoint(SOURCE, Position("bin.000001", pos), T0, True)


def test_rows_and_checkpoint_are_stored_together(case: Case) -> None:
    assert case.sink.read_checkpoint(SOURCE) is None
    assert case.sink.commit(Batch(ops=[upsert(1), upsert(2)], checkpoint=checkpoint(200))) == []
    stored = case.sink.read_checkpoint(SOURCE)
    assert stored is not None
    assert (stored.position, stored.last_event_time, stored.snapshot_done) == (
        Position("bin.000001", 200), T0, True)
    assert case.rows() == {1: {"id": 1, "status": 0, "amount": 100}, 2: {"id": 2, "status": 0, "amount": 100}}


def test_the_last_operation_on_a_row_wins(case: Case) -> None:
    soft = SoftDelete(ORDERS, ("id",), (2,), "deleted_at", T0)
    ops = [upsert(1), upsert(2), upsert(1, status=1), PlannedOp(Delete(ORDERS, ("id",), (3,)), origin(3)),
           PlannedOp(soft, origin(2))]
    case.sink.commit(Batch(ops=ops, checkpoint=checkpoint(200)))
    assert case.rows() == {1: {"id": 1, "status": 1, "amount": 100},
                           2: {"id": 2, "status": 0, "amount": 100, "deleted_at": T0}}


def test_a_refused_row_is_dead_lettered_with_the_reason_and_the_rest_commits(case: Case) -> None:
    rejected = case.sink.commit(Batch(ops=[upsert(1), upsert(2, amount=-5), upsert(3)],
                                      dead_letters=[origin(4)], checkpoint=checkpoint(300)))
    assert [d.row_key for d in rejected] == ["id=2"]
    assert CONSTRAINT in rejected[0].reason
    assert set(case.rows()) == {1, 3}
    assert [k for k, _ in case.letters()] == ["id=4", "id=2"]
    assert CONSTRAINT in case.letters()[1][1]
    stored = case.sink.read_checkpoint(SOURCE)
    assert stored is not None and stored.position == Position("bin.000001", 300)


def test_a_long_transaction_shows_nothing_until_it_ends(case: Case) -> None:
    case.sink.commit(Batch(ops=[upsert(9)], checkpoint=checkpoint(200)))
    with pytest.raises(KeyboardInterrupt), case.sink.long_transaction() as part:
        part.apply([upsert(1), upsert(2)], [origin(5)])
        raise KeyboardInterrupt
    assert set(case.rows()) == {9}
    assert case.letters() == []
    stored = case.sink.read_checkpoint(SOURCE)
    assert stored is not None and stored.position == Position("bin.000001", 200)

    with case.sink.long_transaction() as part:
        part.apply([upsert(1), upsert(2, amount=-1)], [origin(5)])
        rejected = part.finish(Batch(ops=[upsert(3)], checkpoint=checkpoint(400)))
    assert [d.row_key for d in rejected] == ["id=2"]
    assert set(case.rows()) == {1, 3, 9}
    assert sorted(k for k, _ in case.letters()) == ["id=2", "id=5"]
    stored = case.sink.read_checkpoint(SOURCE)
    assert stored is not None and stored.position == Position("bin.000001", 400)


def test_pauses_are_stored_and_cleared_with_the_checkpoint(case: Case) -> None:
    pause = Pause("shop_orders", SOURCE, Position("bin.000001", 300), "ALTER TABLE orders DROP COLUMN x",
                  "column x is gone")
    case.sink.commit(Batch(pauses=[pause], checkpoint=checkpoint(300)))
    assert case.sink.read_pauses(SOURCE) == [pause]
    assert case.sink.read_pauses("app") == []
    case.sink.commit(Batch(resumed=["shop_orders"], checkpoint=checkpoint(400)))
    assert case.sink.read_pauses(SOURCE) == []


def test_a_repair_is_settled_key_by_key_as_it_was_stored(case: Case) -> None:
    request = case.queue_repair([[1], [2], [3]])
    queued = case.sink.next_repair(SOURCE)
    assert queued is not None and queued.id == request and queued.keys == [[1], [2], [3]]
    at = f"{REPAIR_AT}bin.000001:250"
    ops = [PlannedOp(Upsert(ORDERS, ("id",), {"id": k, "status": 1, "amount": a}), origin(k, at))
           for k, a in ((1, 10), (2, -1))]
    ops.append(PlannedOp(Delete(ORDERS, ("id",), (3,)), origin(3, at)))  # the source row is gone
    planned = tuple(KeyOutcome((k,), f"id={k}", Outcome.APPLIED) for k in (1, 2))
    gone = KeyOutcome((3,), "id=3", Outcome.SOURCE_GONE)
    case.sink.commit(Batch(ops=ops, repairs=[RepairDone(request, "shop_orders", (*planned, gone))],
                           checkpoint=checkpoint(300)))
    outcomes = {o.row_key: o.outcome for o in case.outcomes(request)}
    assert outcomes == {"id=1": Outcome.APPLIED, "id=2": Outcome.DEAD_LETTERED, "id=3": Outcome.SOURCE_GONE}
    assert case.rows() == {1: {"id": 1, "status": 1, "amount": Decimal(10)}}
    assert case.sink.next_repair(SOURCE) is None


def test_schema_history_entries_are_stored_with_the_batch_and_read_back_in_binlog_order(case: Case) -> None:
    """An entry is kept as it was stored (an unknown one as unknown); one already at its table and
    position stays, unless it did not know the columns and the new one does."""
    columns = (ColumnSchema("id", "int", "int(10) unsigned", False, precision=10, scale=0),
               ColumnSchema("name", "varchar", "varchar(20)", True, 40, charset="gbk",
                            collation="gbk_chinese_ci"),
               ColumnSchema("tag", "enum", "enum('a','it''s')", labels=("a", "it's")))
    later = TableSchema("orders", Position("bin.000002", 4), columns, ("id",), "pinned", "MINIMAL")
    unknown = TableSchema("orders", Position("bin.000001", 300), None, (), "a later DDL", "NO_LOG")
    gone = TableSchema("notes", Position("bin.000001", 300), (), (), "no such table", "")
    case.sink.commit(Batch(schemas=[(SOURCE, later), (SOURCE, unknown), (SOURCE, gone)],
                           checkpoint=checkpoint(300)))
    assert case.sink.read_schema_history(SOURCE) == [gone, unknown, later]
    assert case.sink.read_schema_history("app") == []
    known = TableSchema("orders", Position("bin.000001", 300), columns, ("id",), "pinned", "MINIMAL")
    again = TableSchema("orders", Position("bin.000002", 4), (), (), "other", "FULL")
    case.sink.commit(Batch(schemas=[(SOURCE, known), (SOURCE, again)], checkpoint=checkpoint(400)))
    assert case.sink.read_schema_history(SOURCE) == [gone, known, later]


def test_the_state_schema_is_created_and_migrated_again_without_harm(postgres: PostgresServer,
                                                                       target_db: str) -> None:
    """Creating the state tables again, also over a state schema from before the schema history
    (without its table), keeps what is stored and adds what is missing."""
    target = TargetConfig(dsn=postgres.dsn(target_db), password=Secret())
    conn = connect(target, "contract")
    try:
        create_state_schema(conn, "syncd")
        conn.execute("DROP TABLE syncd.schema_history")
        conn.execute("COMMENT ON SCHEMA syncd IS NULL")  # as an earlier release left it
        conn.execute("INSERT INTO syncd.paused_mappings VALUES ('m', 's', 'bin.000001', 4, 'x', 'y')")
        create_state_schema(conn, "syncd")
        create_state_schema(conn, "syncd")
        assert conn.execute("SELECT count(*) FROM syncd.schema_history").fetchone() == (0,)
        assert conn.execute("SELECT mapping FROM syncd.paused_mappings").fetchall() == [("m",)]
    finally:
        conn.close()


def test_an_up_to_date_state_schema_is_left_alone_without_a_lock(postgres: PostgresServer,
                                                                   target_db: str) -> None:
    """Every command creates the state schema first: once it is up to date, that takes no lock,
    so a command never waits for (or deadlocks with) the daemon's checkpoint writes."""
    target = TargetConfig(dsn=postgres.dsn(target_db), password=Secret())
    conn, daemon = connect(target, "contract"), connect(target, "contract-daemon")
    try:
        create_state_schema(conn, "syncd")
        with daemon.transaction():
            daemon.execute("LOCK TABLE syncd.checkpoints, syncd.identity_links IN ACCESS EXCLUSIVE MODE")
            conn.execute("SET lock_timeout = '2s'")
            create_state_schema(conn, "syncd")
    finally:
        conn.close()
        daemon.close()


def test_a_letter_discarded_or_retried_before_is_pending_again_when_the_change_fails_again(
        postgres: PostgresServer, target_db: str) -> None:
    """A snapshot (or repair) read again at the same binlog position, or a change replayed, that
    fails now records its dead letter as pending with the new reason and time, even when a letter
    of the same identity was discarded or retried: the row is not in the target."""
    cases = _postgres(postgres, target_db)
    case = next(cases)
    conn = connect(TargetConfig(dsn=postgres.dsn(target_db), password=Secret()), "contract-letters")

    def letter(key: int, position: str, reason: str) -> DeadLetter:
        return DeadLetter(SOURCE, "orders", "shop_orders", f"id={key}", position, {"id": key}, reason)

    def stored() -> list[tuple]:
        return conn.execute("SELECT id, row_key, status, reason, resolved_at IS NULL, created_at "
                            "FROM syncd.dead_letters ORDER BY id").fetchall()

    try:
        positions = ("snapshot@bin.000001:200", f"{REPAIR_AT}bin.000001:200", "bin.000001:200")
        case.sink.commit(Batch(dead_letters=[letter(k, p, "old") for k, p in enumerate(positions, 1)],
                               checkpoint=checkpoint(300)))
        before = stored()
        ids = [row[0] for row in before]
        assert resolve(conn, "syncd", ids[:2], "discarded") == 2
        assert resolve(conn, "syncd", ids[2:], "retried") == 1
        case.sink.commit(Batch(dead_letters=[letter(k, p, "new") for k, p in enumerate(positions, 1)],
                               checkpoint=checkpoint(400)))
        after = stored()
        assert [row[:5] for row in after] == [(i, f"id={k}", "pending", "new", True)
                                             for k, i in enumerate(ids, 1)]
        assert all(now[5] > then[5] for now, then in zip(after, before, strict=True))
        replayed = letter(3, positions[2], "replayed")
        case.sink.commit(Batch(dead_letters=[replayed], checkpoint=checkpoint(400)))
        assert [row[:5] for row in stored()] == [row[:5] for row in after]  # a pending one's replay: nothing
    finally:
        conn.close()
        cases.close()


@pytest.mark.parametrize("rows", [3, 100])  # executemany, and a staged group
def test_a_value_refused_for_its_column_type_names_the_column(postgres: PostgresServer, target_db: str,
                                                              rows: int) -> None:
    """`integer out of range` (a source column widened, the target's not) names no column in
    PostgreSQL's error; the reason names it, as NOT NULL and constraint reasons do."""
    cases = _postgres(postgres, target_db)
    case = next(cases)
    try:
        ops = [upsert(k, status=2**40 if k == 2 else 0) for k in range(1, rows + 1)]
        rejected = case.sink.commit(Batch(ops=ops, checkpoint=checkpoint(300)))
        assert [(d.row_key, d.reason) for d in rejected] == [
            ("id=2", "PostgreSQL rejected the row: integer out of range; column status")]
        assert len(case.rows()) == rows - 1
        case.sink.commit(Batch(ops=[upsert(2, status=1)], checkpoint=checkpoint(400)))
        assert case.rows()[2] == {"id": 2, "status": 1, "amount": 100}  # the probe left nothing behind
    finally:
        cases.close()


def test_row_keys_stored_with_python_none_read_null_after_migrating(postgres: PostgresServer,
                                                                     target_db: str) -> None:
    conn = connect(TargetConfig(dsn=postgres.dsn(target_db), password=Secret()), "contract")
    try:
        create_state_schema(conn, "syncd")
        for key in ("dev_id=10,ev_time=None", "ev_time=None,dev_id=10", "a=None", "n='None',m=None"):
            conn.execute("INSERT INTO syncd.dead_letters (source, source_table, mapping, row_key, "
                         "binlog_position, row_image, reason) VALUES ('s', 't', 'm', %s, 'p', '{}', 'r')",
                         (key,))
        conn.execute("COMMENT ON SCHEMA syncd IS NULL")  # written by an earlier release
        create_state_schema(conn, "syncd")
        assert [k for (k,) in conn.execute("SELECT row_key FROM syncd.dead_letters ORDER BY id")] == [
            "dev_id=10,ev_time=NULL", "ev_time=NULL,dev_id=10", "a=NULL", "n='None',m=NULL"]
    finally:
        conn.close()
