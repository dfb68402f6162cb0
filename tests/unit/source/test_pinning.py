"""Unit tests for syncd.source.pinning's binlog listing: which DDLs lie between two positions.

The pins themselves (metadata lock, information_schema, a real binlog) are exercised against a
real MariaDB by tests/integration/test_schema_history.py.
"""

from __future__ import annotations

from typing import Any

from syncd.model import Position
from syncd.source.pinning import SCAN_PAGE, DdlScan, statement_of, touched

DB = "shop"


def test_a_query_event_is_split_into_its_default_schema_and_statement() -> None:
    assert statement_of("use `shop`; ALTER TABLE t ADD x INT") == ("shop", "ALTER TABLE t ADD x INT")
    assert statement_of("use `a``b`; DROP TABLE t") == ("a`b", "DROP TABLE t")
    assert statement_of("BEGIN") == ("", "BEGIN")


def test_the_tables_a_statement_touches_include_new_names() -> None:
    assert touched("RENAME TABLE t TO t_old, t_new TO t", DB, DB) == {"t", "t_old", "t_new"}
    assert touched("ALTER TABLE other.t ADD x INT", DB, DB) == frozenset()
    assert touched("ALTER TABLE shop.t ADD x INT", "other", DB) == {"t"}
    assert touched("INSERT INTO t VALUES (1)", DB, DB) == frozenset()


class FakeBinlog:
    """A connection answering SHOW BINLOG EVENTS / SHOW BINARY LOGS from a list of events."""

    def __init__(self, events: dict[str, list[tuple[int, str, str]]]) -> None:
        self.files = events
        """file -> (end position, event type, info), in order."""
        self.listed: list[tuple[str, int]] = []
        self._rows: list[tuple] = []

    def cursor(self) -> FakeBinlog:
        return self

    def __enter__(self) -> FakeBinlog:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, query: str, args: Any = None) -> None:
        if query.startswith("SHOW BINARY LOGS"):
            self._rows = [(name, 0) for name in self.files]
            return
        file, pos, limit = args
        self.listed.append((file, pos))
        events = [e for e in self.files.get(file, []) if e[0] > pos][:limit]
        self._rows = [(file, 0, kind, 1, end, info) for end, kind, info in events]

    def fetchall(self) -> list[tuple]:
        return self._rows


def binlog() -> FakeBinlog:
    return FakeBinlog({
        "bin.000001": [(100, "Gtid", "GTID 0-1-1"), (200, "Query", "use `shop`; ALTER TABLE t ADD x INT"),
                       (300, "Table_map", ""), (400, "Query", "use `shop`; CREATE TABLE u (id INT)"),
                       (450, "Rotate", "bin.000002;pos=4")],
        "bin.000002": [(150, "Query", "use `shop`; ALTER TABLE t DROP x"), (250, "Xid", "COMMIT"),
                       (350, "Query", "use `other`; ALTER TABLE t ADD y INT")],
    })


def test_ddls_between_two_positions_across_files() -> None:
    conn = binlog()
    found = DdlScan(DB).between(conn, Position("bin.000001", 100), Position("bin.000002", 350))  # type: ignore[arg-type]
    assert [(str(d.end), sorted(d.tables)) for d in found] == [
        ("bin.000001:200", ["t"]), ("bin.000001:400", ["u"]), ("bin.000002:150", ["t"])]


def test_a_ddl_at_the_start_or_past_the_end_is_not_between() -> None:
    found = DdlScan(DB).between(binlog(), Position("bin.000001", 200), Position("bin.000002", 100))  # type: ignore[arg-type]
    assert [str(d.end) for d in found] == ["bin.000001:400"]


def test_each_stretch_of_binlog_is_listed_once() -> None:
    conn = binlog()
    scan = DdlScan(DB)
    scan.between(conn, Position("bin.000001", 100), Position("bin.000001", 300))  # type: ignore[arg-type]
    listed = len(conn.listed)
    again = scan.between(conn, Position("bin.000001", 200), Position("bin.000001", 300))  # type: ignore[arg-type]
    assert again == [] and len(conn.listed) == listed
    later = scan.between(conn, Position("bin.000001", 200), Position("bin.000002", 200))  # type: ignore[arg-type]
    assert [str(d.end) for d in later] == ["bin.000001:400", "bin.000002:150"]
    assert conn.listed[listed] == ("bin.000001", 300)


def test_long_stretches_are_listed_a_page_at_a_time() -> None:
    events = [(10 + i, "Xid", "COMMIT") for i in range(SCAN_PAGE + 5)]
    events.append((20 + SCAN_PAGE, "Query", "use `shop`; DROP TABLE t"))
    conn = FakeBinlog({"bin.000001": events})
    found = DdlScan(DB).between(conn, Position("bin.000001", 4), Position("bin.000001", 20 + SCAN_PAGE))  # type: ignore[arg-type]
    assert [str(d.end) for d in found] == [f"bin.000001:{20 + SCAN_PAGE}"]
    assert len(conn.listed) == 2
