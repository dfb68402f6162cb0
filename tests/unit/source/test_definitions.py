"""Column definitions from information_schema, for what the binlog does not say (definitions.py)."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from syncd.errors import SourceUnavailable
from syncd.model import Position
from syncd.source.definitions import ColumnDefinition, LiveDefinitions

AT = Position("mysql-bin.000001", 4)


class Connection:
    """Answers the COLUMNS query with `rows`, or raises `error`; counts the queries."""

    def __init__(self, rows: list[tuple[Any, ...]], error: Exception | None = None) -> None:
        self.rows, self.error, self.queries, self.closed = rows, error, [], False

    def cursor(self) -> Connection:
        return self

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, query: str, params: tuple[str, str]) -> None:
        if self.error is not None:
            raise self.error
        self.queries.append(params)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    def close(self) -> None:
        self.closed = True


def test_a_table_is_read_once_until_a_ddl() -> None:
    conn = Connection([("price", "FLOAT", 2, None), ("n", "int", 0, None), ("u", "uuid", None, None),
                       ("at", "datetime", None, 6)])
    definitions = LiveDefinitions("shop", lambda: conn)
    found = definitions.table("db", "t", AT)
    assert found == {"price": ColumnDefinition("float", 2), "n": ColumnDefinition("int", 0),
                     "u": ColumnDefinition("uuid", None), "at": ColumnDefinition("datetime", None, 6)}
    definitions.table("db", "t", AT)
    assert conn.queries == [("db", "t")]
    definitions.forget()
    definitions.table("db", "t", AT)
    assert conn.queries == [("db", "t")] * 2


def test_a_failed_read_is_a_source_error_and_the_next_one_reconnects() -> None:
    broken = Connection([], pymysql.err.OperationalError(2013, "Lost connection"))
    healthy = Connection([("f", "float", None, None)])
    connections = iter([broken, healthy])
    definitions = LiveDefinitions("shop", lambda: next(connections))
    with pytest.raises(SourceUnavailable, match=r"information_schema.*Lost connection"):
        definitions.table("db", "t", AT)
    assert broken.closed
    assert definitions.table("db", "t", AT) == {"f": ColumnDefinition("float", None)}
