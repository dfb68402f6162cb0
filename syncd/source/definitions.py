"""Column definitions the binlog does not carry, read from the source's information_schema.

A TABLE_MAP event describes each column by its storage (type code, size, charset, and with
`binlog_row_metadata=FULL` its name and signedness). Some of what the server prints depends on
more than the storage: a FLOAT(M,D) prints with D decimals (`FLOAT(35,5)` 30.12346) while its
TABLE_MAP carries only the float's pack length (4). syncd/source/values.py says which columns
need their definition; the binlog reader asks `TableDefinitions` for the table's, and
`information_schema.COLUMNS` answers.

The answer is the table as it is *now*. It is read when the reader first needs a table and
again after each DDL statement the reader passes, so a reader following the stream reads every
row with the definition it was written under. A reader catching up on a
backlog across an ALTER that changed a definition reads the older rows with the newer one;
a schema history (definitions as of a binlog position) can answer instead through the same
`Definitions` interface, which is asked with the position of the rows being read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pymysql

from syncd.errors import SourceUnavailable
from syncd.model import Position


@dataclass(frozen=True)
class ColumnDefinition:
    """What information_schema.COLUMNS says about one column beyond its storage."""

    data_type: str
    """DATA_TYPE, lower case: 'float', 'double', 'uuid', ..."""
    scale: int | None = None
    """NUMERIC_SCALE: the D of FLOAT(M,D) / DOUBLE(M,D); None when the column declares none."""
    fraction: int | None = None
    """DATETIME_PRECISION: the fractional digits of a TIME, DATETIME or TIMESTAMP."""


class Definitions(Protocol):
    """Column definitions by table, for the binlog reader."""

    def table(self, schema: str, table: str, at: Position) -> dict[str, ColumnDefinition]:
        """The definitions of a table's columns when the binlog is at `at`, by column name ({} for
        a table that is gone)."""
        ...

    def forget(self) -> None:
        """A DDL statement ran (in any schema: `ALTER TABLE db.t` names its own): what was read
        may be out of date."""
        ...

    def close(self) -> None:
        ...


_QUERY = ("SELECT COLUMN_NAME, DATA_TYPE, NUMERIC_SCALE, DATETIME_PRECISION FROM information_schema.COLUMNS "
          "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s")


class LiveDefinitions:
    """Definitions read from the source's information_schema now, kept until `forget`."""

    def __init__(self, source: str, connect: Callable[[], Any]) -> None:
        self.source = source
        self._connect = connect
        self._conn: Any = None
        self._tables: dict[tuple[str, str], dict[str, ColumnDefinition]] = {}

    def table(self, schema: str, table: str, at: Position) -> dict[str, ColumnDefinition]:
        """The definitions now, whatever `at` is (see the module docstring)."""
        found = self._tables.get((schema, table))
        if found is None:
            found = self._tables[(schema, table)] = self._read(schema, table)
        return found

    def forget(self) -> None:
        self._tables.clear()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _read(self, schema: str, table: str) -> dict[str, ColumnDefinition]:
        if self._conn is None:
            self._conn = self._connect()
        try:
            with self._conn.cursor() as cur:
                cur.execute(_QUERY, (schema, table))
                rows = cur.fetchall()
        except pymysql.err.Error as exc:
            self.close()
            raise SourceUnavailable(self.source, f"reading the columns of {schema}.{table} from "
                                    f"information_schema failed: {exc.args[-1]}") from exc
        return {str(name): ColumnDefinition(str(kind).lower(), _number(scale), _number(fraction))
                for name, kind, scale, fraction in rows}


def _number(value: Any) -> int | None:
    return None if value is None else int(value)
