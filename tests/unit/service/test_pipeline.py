"""The pipeline's invariants, on a list of binlog events and an in-memory sink (tests/doubles.py).

What the checkpoint promises rests on these: every commit holds whole source transactions and
the checkpoint just past the last of them; a change is applied or dead-lettered before the
checkpoint passes it; a failed commit leaves the checkpoint where it was and a restart from it
loses and repeats nothing; a large transaction shows all or nothing; a repair never puts an older
image over a newer one; a paused mapping replays from its pause. tests/contract/ holds the
in-memory sink to the PostgreSQL sink's behaviour.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.config import load_config
from syncd.errors import SinkUnavailable
from syncd.mapping.load import SourcePlan, compile_all, load_specs
from syncd.model import (
    Checkpoint,
    Heartbeat,
    Op,
    Outcome,
    Pause,
    Position,
    RowChange,
    SchemaChange,
    SourceTransaction,
    TargetTable,
    TransactionPart,
)
from syncd.service.pipeline import Pipeline, Progress
from syncd.sink.batch import Batch
from tests.doubles import STOP, ListSource, MemorySink

SOURCE = "shop"
ORDERS = TargetTable("public", "orders")
COLUMNS = {"id": "int", "status": "varchar", "amount_text": "varchar"}
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
START = Position("bin.000001", 100)

CONFIG = """
target: {dsn: "postgresql://syncd@127.0.0.1:1/unified"}
sources:
  shop: {host: 127.0.0.1, user: syncd, database: shop, server_id: 9}
mappings: [shop.yaml]
batch: {max_rows: %d, max_delay_ms: 200}
"""

MAPPING = """
mappings:
  - name: shop_orders
    source: shop
    table: orders
    target: orders
    key: [id]
    columns:
      id: id
      status: {from: status, map: {待支付: 0, 已支付: 1, 已发货: 2}}
      amount: {from: amount_text, transform: parse_amount}
"""


def make_plan(tmp: Path, max_rows: int = 5000, mapping: str = MAPPING) -> tuple[Any, SourcePlan]:
    (tmp / "config.yaml").write_text(CONFIG % max_rows, encoding="utf-8")
    (tmp / "shop.yaml").write_text(mapping, encoding="utf-8")
    config = load_config(tmp / "config.yaml")
    return config, compile_all(config, load_specs(config), None)[SOURCE]


def row(key: int, status: str = "待支付", amount: str = "100元") -> dict[str, Any]:
    return {"id": key, "status": status, "amount_text": amount}


def insert(key: int, **values: str) -> RowChange:
    return RowChange("orders", Op.INSERT, None, row(key, **values), key_columns=("id",))


def update(key: int, **values: str) -> RowChange:
    return RowChange("orders", Op.UPDATE, row(key), row(key, **values), key_columns=("id",))


def delete(key: int) -> RowChange:
    return RowChange("orders", Op.DELETE, row(key), None, key_columns=("id",))


def tx(pos: int, *changes: RowChange, follows_parts: bool = False) -> SourceTransaction:
    return SourceTransaction(SOURCE, list(changes), Position("bin.000001", pos), T0, follows_parts)


def target_row(key: int, status: int = 0, amount: int = 100) -> dict[str, Any]:
    return {"id": key, "status": status, "amount": amount}


class Harness:
    """A pipeline over a ListSource and a MemorySink, with the checkpoint at START."""

    def __init__(self, tmp: Path, events: list[object], *, max_rows: int = 5000,
                 sink: MemorySink | None = None, checkpoint: Checkpoint | None = None,
                 mapping: str = MAPPING) -> None:
        self.config, self.plan = make_plan(tmp, max_rows, mapping)
        self.sink = sink or MemorySink()
        if sink is None:
            self.sink.state.checkpoints[SOURCE] = checkpoint or Checkpoint(SOURCE, START, None, True)
        self.copies = 0
        self.source = ListSource(events, threading.Event(), columns={"orders": dict(COLUMNS)},
                                 keys={"orders": ("id",)})

    def copy(self, stop: threading.Event) -> bool:
        self.copies += 1
        self.sink.state.checkpoints[SOURCE] = Checkpoint(SOURCE, START, None, True)
        return True

    def run(self, events: list[object] | None = None) -> Pipeline:
        if events is not None:
            self.source.events = events
        self.source.stop.clear()
        pipeline = Pipeline(self.plan, self.config, self.source.stop, changes=self.source,
                            sink=self.sink, copy=self.copy)
        pipeline.run()
        return pipeline

    def rows(self) -> dict[int, dict[str, Any]]:
        return {key[0]: values for (table, key), values in self.sink.state.rows.items() if table == ORDERS}

    def checkpoint(self) -> Position:
        found = self.sink.read_checkpoint(SOURCE)
        assert found is not None
        return found.position


def position_of(text: str) -> Position:
    file, _, pos = text.rpartition(":")
    return Position(file, int(pos))


def positions_in(batch: Batch) -> set[str]:
    return {p.origin.position for p in batch.ops} | {d.position for d in batch.dead_letters}


# --------------------------------------------------------------------------- transactions and checkpoints


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 6), min_size=1, max_size=12), max_rows=st.integers(1, 9))
def test_every_commit_holds_whole_transactions_and_the_checkpoint_after_them(
        tmp_path: Path, sizes: list[int], max_rows: int) -> None:
    events = []
    key = 0
    for n, size in enumerate(sizes):
        changes = []
        for _ in range(size):
            key += 1
            changes.append(insert(key))
        events.append(tx(200 + 10 * n, *changes))
    harness = Harness(tmp_path, events, max_rows=max_rows)
    harness.run()
    seen: set[str] = set()
    last = START
    for batch in harness.sink.commits:
        assert batch.checkpoint is not None
        inside = positions_in(batch)
        assert not inside & seen, "a transaction is split across commits"
        seen |= inside
        assert batch.checkpoint.position == max(position_of(p) for p in inside)
        assert batch.checkpoint.position > last
        last = batch.checkpoint.position
        counts = {p: sum(1 for o in batch.ops if o.origin.position == p) for p in inside}
        assert counts == {str(e.end): len(e.changes) for e in events if str(e.end) in inside}
    assert harness.checkpoint() == events[-1].end
    assert harness.rows() == {k: target_row(k) for k in range(1, key + 1)}


def test_an_unmappable_change_is_dead_lettered_in_the_commit_that_passes_it(tmp_path: Path) -> None:
    events = [tx(200, insert(1), insert(2, status="退款中")), tx(300, insert(3, amount="一百"))]
    harness = Harness(tmp_path, events)
    harness.run()
    letters = harness.sink.state.dead_letters
    assert [(d.row_key, d.position) for d in letters] == [("id=2", "bin.000001:200"),
                                                          ("id=3", "bin.000001:300")]
    assert "退款中" in letters[0].reason
    assert harness.rows() == {1: target_row(1)}
    assert harness.checkpoint() == Position("bin.000001", 300)


def test_a_row_the_sink_refuses_is_dead_lettered_and_the_stream_goes_on(tmp_path: Path) -> None:
    sink = MemorySink(refuse=lambda op: "too big" if getattr(op, "values", {}).get("id") == 2 else None)
    sink.state.checkpoints[SOURCE] = Checkpoint(SOURCE, START, None, True)
    harness = Harness(tmp_path, [tx(200, insert(1), insert(2)), tx(300, insert(3))], sink=sink)
    harness.run()
    assert [(d.row_key, d.reason) for d in sink.state.dead_letters] == [("id=2", "too big")]
    assert set(harness.rows()) == {1, 3}
    assert harness.checkpoint() == Position("bin.000001", 300)


def test_a_failed_commit_keeps_the_checkpoint_and_a_restart_loses_nothing(tmp_path: Path) -> None:
    events = [tx(200, insert(1)), tx(300, insert(2), update(1, status="已支付")), tx(400, delete(2))]
    harness = Harness(tmp_path, [events[0], STOP, *events[1:]])
    harness.run()
    assert harness.checkpoint() == Position("bin.000001", 200)

    def fail(batch: Batch) -> None:
        raise SinkUnavailable("target write failed: connection lost")

    harness.sink.fail = fail
    with pytest.raises(SinkUnavailable):
        harness.run(events[1:])
    assert harness.checkpoint() == Position("bin.000001", 200)
    assert harness.rows() == {1: target_row(1)}

    harness.sink.fail = lambda batch: None
    harness.run(events)
    assert harness.source.started_at[-1] == Position("bin.000001", 200)
    assert harness.rows() == {1: target_row(1, status=1)}
    assert harness.checkpoint() == Position("bin.000001", 400)


def test_stopping_commits_the_whole_transactions_read_so_far(tmp_path: Path) -> None:
    harness = Harness(tmp_path, [tx(200, insert(1)), tx(300, insert(2)), STOP, tx(400, insert(3))])
    harness.run()
    assert harness.checkpoint() == Position("bin.000001", 300)
    assert set(harness.rows()) == {1, 2}


def test_no_checkpoint_runs_the_initial_copy_first(tmp_path: Path) -> None:
    harness = Harness(tmp_path, [tx(200, insert(1))], sink=MemorySink())
    harness.run()
    assert harness.copies == 1
    assert harness.source.started_at == [START]
    assert harness.checkpoint() == Position("bin.000001", 200)


def test_an_idle_source_moves_its_checkpoint_on_heartbeats(tmp_path: Path) -> None:
    harness = Harness(tmp_path, [Heartbeat(SOURCE, Position("bin.000002", 4))])
    harness.run()
    assert harness.checkpoint() == Position("bin.000002", 4)
    assert harness.rows() == {}


# --------------------------------------------------------------------------- large transactions


def large(pos: int) -> list[object]:
    return [TransactionPart(SOURCE, [insert(1), insert(2)], T0), TransactionPart(SOURCE, [insert(3)], T0),
            tx(pos, insert(4), follows_parts=True)]


def test_a_large_transaction_commits_whole_with_its_checkpoint(tmp_path: Path) -> None:
    harness = Harness(tmp_path, [tx(200, insert(9)), *large(300)])
    harness.run()
    assert set(harness.rows()) == {1, 2, 3, 4, 9}
    assert harness.checkpoint() == Position("bin.000001", 300)


def test_a_large_transaction_stopped_midway_shows_nothing_and_is_read_again(tmp_path: Path) -> None:
    parts = large(300)
    harness = Harness(tmp_path, [tx(200, insert(9)), parts[0], STOP, *parts[1:]])
    harness.run()
    assert set(harness.rows()) == {9}
    assert harness.checkpoint() == Position("bin.000001", 200)
    harness.run([tx(200, insert(9)), *parts])
    assert set(harness.rows()) == {1, 2, 3, 4, 9}
    assert harness.checkpoint() == Position("bin.000001", 300)


def test_a_large_transaction_is_written_with_one_time_and_counted_whole(tmp_path: Path) -> None:
    """Every part carries the transaction's time (the commit is read after them), and the
    counters see all its changes, not the last part's only."""
    mapping = MAPPING.replace("    key: [id]\n", "    key: [id]\n    commit_time_column: synced_at\n")
    harness = Harness(tmp_path, large(300), mapping=mapping)
    counted: list[dict[str, int]] = []
    pipeline = Pipeline(harness.plan, harness.config, harness.source.stop, changes=harness.source,
                        sink=harness.sink, copy=harness.copy,
                        on_batch=lambda _source, batch, _seconds, _rejected: counted.append(
                            dict(batch.changes_by_table)))
    pipeline.run()
    assert {values["synced_at"] for values in harness.rows().values()} == {T0}
    assert counted == [{"orders": 4}]
    assert pipeline.progress.applied == 4


def test_the_lag_grows_while_taken_changes_wait_for_their_commit(tmp_path: Path) -> None:
    """A commit blocked (a lock on a mapped table) shows as growing lag, not the last batch's."""
    progress = Progress(lag_seconds=0.3)
    assert progress.current_lag() == 0.3
    progress.pending_since = datetime.now(UTC) - timedelta(seconds=40)
    assert 40 <= (progress.current_lag() or 0) < 45
    pipeline = Harness(tmp_path, [tx(200, insert(1)), *large(300)]).run()
    assert pipeline.progress.pending_since is None  # cleared by each commit


# --------------------------------------------------------------------------- repairs in stream order


def test_a_repair_leaves_keys_the_stream_changed_after_its_read_to_the_stream(tmp_path: Path) -> None:
    read_at = Position("bin.000001", 250)
    events = [Heartbeat(SOURCE), tx(200, update(1, status="已发货")), tx(300, insert(3))]
    harness = Harness(tmp_path, events)
    harness.source.read_position = read_at
    harness.source.rows = {"orders": [row(1, status="已支付"), row(2, status="已支付")]}
    request = harness.sink.queue_repair(SOURCE, "shop_orders", [[1], [2]])
    harness.run()
    outcomes = {o.key: o.outcome for o in harness.sink.state.outcomes[request]}
    assert outcomes == {(1,): Outcome.NEWER_IN_STREAM, (2,): Outcome.APPLIED}
    assert harness.rows() == {1: target_row(1, status=2), 2: target_row(2, status=1), 3: target_row(3)}
    [committed] = [b for b in harness.sink.commits if b.repairs]
    assert committed.checkpoint is not None and committed.checkpoint.position > read_at


def test_a_repair_of_an_unknown_mapping_is_done_with_its_error(tmp_path: Path) -> None:
    harness = Harness(tmp_path, [Heartbeat(SOURCE)])
    request = harness.sink.queue_repair(SOURCE, "gone_mapping", [[1]])
    harness.run()
    assert "gone_mapping" in (harness.sink.state.requests[request].error or "")
    assert harness.sink.next_repair(SOURCE) is None


# --------------------------------------------------------------------------- schema changes


def test_a_paused_mapping_replays_from_its_pause_once_fixed(tmp_path: Path) -> None:
    drop = SchemaChange(SOURCE, "shop", "ALTER TABLE orders DROP COLUMN amount_text",
                        Position("bin.000001", 300), T0)
    events = [tx(200, insert(1)), drop, tx(400, insert(2)), tx(500, insert(3))]
    harness = Harness(tmp_path, events)
    harness.source.columns["orders"] = {"id": "int", "status": "varchar"}
    harness.run()
    [pause] = harness.sink.read_pauses(SOURCE)
    assert (pause.mapping, pause.position) == ("shop_orders", Position("bin.000001", 300))
    assert set(harness.rows()) == {1}
    assert harness.checkpoint() == Position("bin.000001", 500)

    harness.source.columns["orders"] = dict(COLUMNS)  # the DBA put the column back
    harness.run([*events, tx(600, insert(4))])
    assert harness.source.started_at[-1] == Position("bin.000001", 300)
    assert set(harness.rows()) == {1, 2, 3, 4}
    assert harness.sink.read_pauses(SOURCE) == []
    assert harness.checkpoint() == Position("bin.000001", 600)


def test_the_pause_of_a_mapping_the_plan_lacks_is_kept(tmp_path: Path) -> None:
    """A reload left a mapping out: its pause stays (it replays from there once back), and the
    mappings of the plan stream on."""
    harness = Harness(tmp_path, [tx(200, insert(1))])
    left_out = Pause("shop_refunds", SOURCE, START, "(none: a reload left the mapping out)", "left out")
    harness.sink.state.pauses[left_out.mapping] = left_out
    harness.run()
    assert harness.sink.read_pauses(SOURCE) == [left_out]
    assert set(harness.rows()) == {1}


def test_a_mapping_back_after_a_reload_replays_from_its_pause(tmp_path: Path) -> None:
    """Paused at the checkpoint a reload dropped it at (bin.000001:200), back in the plan: the
    changes it missed meanwhile are applied, and the pause is cleared."""
    events = [tx(200, insert(1)), tx(300, insert(2)), tx(400, insert(3))]
    at = Checkpoint(SOURCE, Position("bin.000001", 400), None, True)
    harness = Harness(tmp_path, events, checkpoint=at)
    harness.sink.state.pauses["shop_orders"] = Pause("shop_orders", SOURCE, Position("bin.000001", 200),
                                                     "(none: a reload left the mapping out)", "left out")
    harness.run([*events, tx(500, insert(4))])
    assert harness.source.started_at[-1] == Position("bin.000001", 200)
    assert set(harness.rows()) == {2, 3, 4}  # 1 was applied before the drop, at or before 200
    assert harness.sink.read_pauses(SOURCE) == []


def test_a_replay_on_an_idle_source_ends_at_the_next_heartbeat(tmp_path: Path) -> None:
    """No transaction after the fix: the heartbeat at the end of the binlog ends the replay."""
    end = Position("bin.000001", 400)
    events = [tx(200, insert(1)), tx(300, insert(2)), tx(400, insert(3)), Heartbeat(SOURCE, end)]
    harness = Harness(tmp_path, events, checkpoint=Checkpoint(SOURCE, end, None, True))
    harness.sink.state.pauses["shop_orders"] = Pause("shop_orders", SOURCE, Position("bin.000001", 200),
                                                     "ALTER TABLE orders ...", "fixed since")
    harness.run()
    assert set(harness.rows()) == {2, 3}
    assert harness.sink.read_pauses(SOURCE) == []
    assert harness.checkpoint() == end


def test_a_batch_closes_once_its_events_came_in_max_bytes(tmp_path: Path) -> None:
    """Rows of large values: the bytes bound closes a batch long before `max_rows`."""
    events = [tx(200 + n, insert(n + 1)) for n in range(4)]
    harness = Harness(tmp_path, events)
    harness.source.event_bytes = harness.config.batch.max_bytes // 2
    harness.run()
    assert [len(batch.ops) for batch in harness.sink.commits] == [2, 2]
    assert harness.checkpoint() == events[-1].end
