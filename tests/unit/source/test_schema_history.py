"""Unit and property tests for syncd.source.schema_history: the entry in force at a binlog position."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from syncd.model import ColumnSchema, Position, TableSchema
from syncd.source.definitions import ColumnDefinition
from syncd.source.schema_history import SchemaHistory

FILES = ("bin.000001", "bin.000002", "bin.000010")
positions = st.builds(Position, st.sampled_from(FILES), st.integers(4, 400))
tables = st.sampled_from(("orders", "people", "notes"))


def entry(table: str, position: Position, known: bool = True, note: str = "") -> TableSchema:
    columns = (ColumnSchema("id", "int", "int(11)", False),) if known else None
    return TableSchema(table, position, columns, ("id",), note)


@given(st.lists(st.tuples(tables, positions, st.booleans()), max_size=30), tables, positions)
def test_the_entry_in_force_is_the_last_that_starts_before_the_position(
        recorded: list[tuple[str, Position, bool]], table: str, at: Position) -> None:
    """Entries start at transaction boundaries: an event at X reads the table's last entry
    starting before X (the first recorded at a position wins, unless it was unknown)."""
    history = SchemaHistory(entry(t, p, known, note=str(i)) for i, (t, p, known) in enumerate(recorded))
    earlier = [(p, i, known) for i, (t, p, known) in enumerate(recorded) if t == table and p < at]
    found = history.at(table, at)
    if not earlier:
        assert found is None
        return
    start = max(p for p, _, _ in earlier)
    candidates = [(i, known) for p, i, known in earlier if p == start]
    kept = next((i for i, known in candidates if known), candidates[0][0])
    first = candidates[0]
    expected = first[0] if first[1] else kept
    assert found is not None and found.position == start and found.note == str(expected)


@given(st.lists(st.tuples(tables, positions), max_size=20), positions)
def test_the_next_start_is_the_first_entry_start_at_or_after_a_position(
        recorded: list[tuple[str, Position]], at: Position) -> None:
    history = SchemaHistory(entry(t, p) for t, p in recorded)
    later = [p for _, p in recorded if p >= at]
    assert history.next_start(at) == (min(later) if later else None)


def test_an_entry_at_a_position_is_found_by_its_exact_start_only() -> None:
    history = SchemaHistory([entry("orders", Position("bin.000001", 100))])
    assert history.starting("orders", Position("bin.000001", 100)) is not None
    assert history.starting("orders", Position("bin.000001", 101)) is None
    assert history.starting("people", Position("bin.000001", 100)) is None
    assert history.at("orders", Position("bin.000001", 100)) is None  # it holds after, not at
    assert history.at("orders", Position("bin.000002", 4)) is not None  # and in later files


def test_definitions_are_those_of_the_entry_in_force() -> None:
    older = TableSchema("t", Position("bin.000001", 100),
                        (ColumnSchema("f", "float", "float(10,1)", scale=1),), ())
    newer = TableSchema("t", Position("bin.000001", 500),
                        (ColumnSchema("f", "float", "float(10,6)", scale=6),), ())
    history = SchemaHistory([newer, older, TableSchema("t", Position("bin.000001", 900), None, ())])
    assert history.definitions("t", Position("bin.000001", 200)) == {"f": ColumnDefinition("float", 1)}
    assert history.definitions("t", Position("bin.000001", 600)) == {"f": ColumnDefinition("float", 6)}
    assert history.definitions("t", Position("bin.000001", 950)) == {}
    assert history.definitions("t", Position("bin.000001", 50)) == {}
    assert len(history) == 3 and len(history.entries()) == 3
