"""The pipeline on a source read with the schema history (tests/doubles.py source and sink).

Rows the reader could not name pause only their table's mappings, just before their
transaction; a DDL whose columns cannot be pinned pauses them at its end; a source without full
row metadata gets its tables pinned at the stream's start; a pause a snapshot moved past the
checkpoint waits for the stream to pass it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncd.config import load_config
from syncd.mapping.load import compile_all, load_specs
from syncd.model import (
    HISTORY_PAUSE,
    Checkpoint,
    ColumnSchema,
    Op,
    Pause,
    Position,
    RowChange,
    SchemaChange,
    SourceTransaction,
    TableSchema,
)
from syncd.service.pipeline import Pipeline
from tests.doubles import ListSource, MemorySink

SOURCE = "shop"
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
START = Position("bin.000001", 100)
CONFIG = """
target: {dsn: "postgresql://syncd@127.0.0.1:1/unified"}
sources:
  shop: {host: 127.0.0.1, user: syncd, database: shop, server_id: 9}
mappings: [shop.yaml]
"""
MAPPINGS = """
mappings:
  - {name: shop_orders, source: shop, table: orders, target: orders, key: [id], columns: {id: id, v: v}}
  - {name: shop_notes, source: shop, table: notes, target: notes, key: [id], columns: {id: id, v: v}}
"""
COLUMNS = {"id": "int", "v": "varchar"}


def at(pos: int) -> Position:
    return Position("bin.000001", pos)


def insert(table: str, key: int) -> RowChange:
    return RowChange(table, Op.INSERT, None, {"id": key, "v": f"{table}{key}"}, key_columns=("id",))


def tx(pos: int, *changes: RowChange, doubts: tuple[tuple[str, str], ...] = ()) -> SourceTransaction:
    return SourceTransaction(SOURCE, list(changes), at(pos), T0, doubts=doubts)


class History:
    """A pipeline over a ListSource and a MemorySink holding two mappings, orders and notes."""

    def __init__(self, tmp: Path, events: list[object], metadata: str = "MINIMAL") -> None:
        (tmp / "config.yaml").write_text(CONFIG, encoding="utf-8")
        (tmp / "shop.yaml").write_text(MAPPINGS, encoding="utf-8")
        self.config = load_config(tmp / "config.yaml")
        self.plan = compile_all(self.config, load_specs(self.config), None)[SOURCE]
        self.sink = MemorySink()
        self.sink.state.checkpoints[SOURCE] = Checkpoint(SOURCE, START, None, True)
        columns = tuple(ColumnSchema(name, kind, kind) for name, kind in COLUMNS.items())
        self.source = ListSource(events, threading.Event(),
                                 columns={"orders": dict(COLUMNS), "notes": dict(COLUMNS)},
                                 keys={"orders": ("id",), "notes": ("id",)}, metadata=metadata,
                                 schemas={"orders": columns, "notes": columns})

    def run(self, events: list[object] | None = None) -> Pipeline:
        if events is not None:
            self.source.events = events
        self.source.stop.clear()
        pipeline = Pipeline(self.plan, self.config, self.source.stop, changes=self.source, sink=self.sink,
                            copy=lambda stop: True)
        pipeline.run()
        return pipeline

    def keys(self, table: str) -> set[Any]:
        return {key[0] for (target, key) in self.sink.state.rows if target.name == table}

    def pauses(self) -> dict[str, Pause]:
        return {p.mapping: p for p in self.sink.read_pauses(SOURCE)}


def test_rows_that_cannot_be_named_pause_only_their_mappings_just_before_their_transaction(
        tmp_path: Path) -> None:
    events = [tx(200, insert("orders", 1)),
              tx(300, insert("notes", 1), doubts=(("orders", "its table map does not fit"),)),
              tx(400, insert("notes", 2), doubts=(("orders", "again"),)), tx(500, insert("orders", 3))]
    history = History(tmp_path, events)
    history.run()
    [pause] = history.pauses().values()
    assert (pause.mapping, pause.position) == ("shop_orders", at(200))
    assert pause.reason.startswith("its table map does not fit; ") and HISTORY_PAUSE in pause.reason
    assert "syncd snapshot --mapping shop_orders" in pause.reason
    assert history.keys("orders") == {1} and history.keys("notes") == {1, 2}
    assert history.sink.read_checkpoint(SOURCE).position == at(500)  # type: ignore[union-attr]


def test_a_ddl_whose_columns_cannot_be_pinned_pauses_the_mappings_of_its_table_at_its_end(
        tmp_path: Path) -> None:
    unknown = TableSchema("orders", at(300), None, (), "not known from bin.000001:300: a later DDL")
    ddl = SchemaChange(SOURCE, "shop", "ALTER TABLE orders ADD x INT", at(300), T0, schemas=(unknown,))
    history = History(tmp_path, [tx(200, insert("orders", 1)), ddl, tx(400, insert("notes", 1))])
    history.run()
    [pause] = history.pauses().values()
    assert (pause.mapping, pause.position, pause.statement) == ("shop_orders", at(300), ddl.statement)
    assert pause.reason.startswith("not known from bin.000001:300")
    assert unknown in history.sink.read_schema_history(SOURCE)


def test_a_ddl_is_judged_by_the_columns_pinned_after_it_not_by_the_live_ones(tmp_path: Path) -> None:
    """Catching up on a backlog: the live table has column v again, the one after the DDL did not."""
    pinned = TableSchema("orders", at(300), (ColumnSchema("id", "int", "int"),), ("id",), "pinned")
    ddl = SchemaChange(SOURCE, "shop", "ALTER TABLE orders DROP v", at(300), T0, schemas=(pinned,))
    history = History(tmp_path, [ddl, tx(400, insert("notes", 1))])
    history.run()
    assert "no longer has column(s) v" in history.pauses()["shop_orders"].reason


def test_a_source_without_full_row_metadata_has_its_tables_pinned_where_the_stream_starts(
        tmp_path: Path) -> None:
    history = History(tmp_path, [tx(200, insert("orders", 1))])
    history.run()
    [given] = history.source.histories
    assert given is not None and given.recording and given.metadata == "MINIMAL"
    assert {(e.table, e.position) for e in given.entries()} == {("orders", START), ("notes", START)}
    assert {e.table for e in history.sink.read_schema_history(SOURCE)} == {"orders", "notes"}
    history.run([tx(300, insert("orders", 2))])  # pinned once: the next start finds them
    assert len(history.sink.read_schema_history(SOURCE)) == 2


def test_a_source_with_full_row_metadata_keeps_no_schema_history(tmp_path: Path) -> None:
    history = History(tmp_path, [tx(200, insert("orders", 1))], metadata="FULL")
    history.run()
    [given] = history.source.histories
    assert given is not None and not given.recording and len(given) == 0
    assert history.sink.read_schema_history(SOURCE) == []


def test_a_pause_moved_past_the_checkpoint_waits_until_the_stream_passes_it(tmp_path: Path) -> None:
    """A snapshot copied the mapping at 350 while the checkpoint was at 100: it resumes there."""
    history = History(tmp_path, [tx(200, insert("orders", 1), insert("notes", 1)),
                                 tx(300, insert("orders", 2)), tx(400, insert("orders", 4))])
    history.sink.state.pauses["shop_orders"] = Pause("shop_orders", SOURCE, at(350), "(rows)", HISTORY_PAUSE)
    history.run()
    assert history.keys("orders") == {4} and history.keys("notes") == {1}
    assert history.pauses() == {}
