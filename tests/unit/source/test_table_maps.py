"""Unit tests for syncd.source.table_maps: a table map without names against the schema history.

The table maps here are the library's own objects, built as it builds them from a MINIMAL or
NO_LOG event (tests/integration/test_schema_history.py reads real ones of every corpus type).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymysqlreplication.column import Column
from pymysqlreplication.constants import FIELD_TYPE
from pymysqlreplication.row_event import TableMapEvent
from pymysqlreplication.table import Table

from syncd.model import ColumnSchema, Position, TableSchema
from syncd.source.table_maps import column_schema, complete, doubt, enum_labels, mismatch

AT = Position("bin.000001", 500)


def library_column(kind: int, **metadata: Any) -> Column:
    return Column(type=kind, name=None, unsigned=False, is_primary=False, charset_id=None,
                  character_set_name=None, collation_name=None, enum_values=None, set_values=None,
                  visibility=False, **metadata)


def table_map(columns: list[Column], nullable: list[bool], *, unsigned: list[bool] | None = None,
              charsets: list[int] | None = None) -> Any:
    """A TableMapEvent as the library leaves it for an event without column names."""
    mask = bytearray((len(columns) + 7) // 8)
    for index, flag in enumerate(nullable):
        if flag:
            mask[index // 8] |= 1 << (index % 8)
    metadata = SimpleNamespace(unsigned_column_list=unsigned or [], charset_collation_list=charsets or [])
    return SimpleNamespace(schema="shop", table="people", columns=columns, null_bitmask=bytes(mask),
                           optional_metadata=metadata, dbms="mariadb",
                           _is_character_column=TableMapEvent._is_character_column,
                           table_obj=Table(7, "shop", "people", columns))


PEOPLE = TableSchema("people", Position("bin.000001", 100), (
    ColumnSchema("id", "int", "int(10) unsigned", False, precision=10, scale=0),
    ColumnSchema("name", "varchar", "varchar(20)", True, 40, charset="gbk", collation="gbk_chinese_ci"),
    ColumnSchema("price", "decimal", "decimal(12,2)", True, precision=12, scale=2),
    ColumnSchema("seen", "datetime", "datetime(3)", True, fraction=3),
    ColumnSchema("tag", "enum", "enum('a','b')", True, 4, charset="utf8mb4",
                 collation="utf8mb4_general_ci", labels=("a", "b")),
    ColumnSchema("flags", "set", "set('x','y','z')", True, 20, charset="latin1",
                 collation="latin1_swedish_ci", labels=("x", "y", "z")),
    ColumnSchema("blob", "blob", "blob", True, 65535),
    ColumnSchema("u", "uuid", "uuid", True),
    ColumnSchema("bits", "bit", "bit(12)", True, precision=12),
), ("id",))


def people_map(**changes: Any) -> Any:
    columns = [library_column(FIELD_TYPE.LONG), library_column(FIELD_TYPE.VARCHAR, max_length=40),
               library_column(FIELD_TYPE.NEWDECIMAL, precision=12, decimals=2),
               library_column(FIELD_TYPE.DATETIME2, fsp=3), library_column(FIELD_TYPE.ENUM, size=1),
               library_column(FIELD_TYPE.SET, size=1), library_column(FIELD_TYPE.BLOB, length_size=2),
               library_column(FIELD_TYPE.STRING, max_length=16),
               library_column(FIELD_TYPE.BIT, bits=12, bytes=2)]
    for index, (name, value) in changes.get("attributes", {}).items():
        setattr(columns[index], name, value)
    nullable = changes.get("nullable", [False] + [True] * 8)
    return table_map(columns, nullable, unsigned=changes.get("unsigned"), charsets=changes.get("charsets"))


class TestMismatch:
    def test_a_table_map_that_fits_its_entry(self) -> None:
        """Types, lengths, nullability; MINIMAL's signedness and charsets too (gbk 28, binary 63)."""
        assert mismatch(people_map(), PEOPLE) is None
        minimal = people_map(unsigned=[True] + [False] * 8, charsets=[28, 63, 63])
        assert mismatch(minimal, PEOPLE) is None

    @pytest.mark.parametrize(("changes", "says"), [
        ({"attributes": {1: ("max_length", 80)}},
         "column 2 (name varchar(20)): max_length 80, the schema says 40"),
        ({"attributes": {0: ("type", FIELD_TYPE.LONGLONG)}},
         "column 1 (id int(10) unsigned): the binlog has type"),
        ({"attributes": {2: ("decimals", 4)}}, "column 3 (price decimal(12,2)): decimals 4"),
        ({"attributes": {3: ("fsp", 6)}}, "column 4 (seen datetime(3)): fsp 6"),
        ({"attributes": {8: ("bits", 13)}}, "column 9 (bits bit(12)): bits 13"),
        ({"nullable": [True] * 9}, "column 1 (id int(10) unsigned): the binlog says NULL"),
        ({"unsigned": [False] * 9}, "column 1 (id int(10) unsigned): the binlog says signed"),
        ({"charsets": [33, 63, 63]},
         "column 2 (name varchar(20)): the binlog says charset utf8mb3, the schema gbk"),
    ])
    def test_any_difference_is_named(self, changes: dict[str, Any], says: str) -> None:
        found = mismatch(people_map(**changes), PEOPLE)
        assert found is not None and found.startswith(says), found

    def test_a_column_count_that_differs(self) -> None:
        event = people_map()
        event.columns.append(library_column(FIELD_TYPE.LONG))
        assert mismatch(event, PEOPLE) == (
            "the binlog's table map has 10 columns, the schema history 9 (id, name, price, seen, tag, "
            "flags, blob, u, bits)")

    def test_old_temporal_formats_and_unknown_types_fit(self) -> None:
        """An old-format DATETIME carries no fraction to compare; a type syncd does not know is
        left unchecked (the other columns still are)."""
        schema = TableSchema("t", AT, (ColumnSchema("d", "datetime", "datetime", fraction=0),
                                       ColumnSchema("v", "vector", "vector(3)")), ())
        event = table_map([library_column(FIELD_TYPE.DATETIME), library_column(FIELD_TYPE.STRING)],
                          [True, True])
        assert mismatch(event, schema) is None


class TestComplete:
    def test_what_full_metadata_would_have_given(self) -> None:
        event = people_map()
        complete(event, PEOPLE)
        columns = {c.name: c for c in event.columns}
        assert list(columns) == ["id", "name", "price", "seen", "tag", "flags", "blob", "u", "bits"]
        assert columns["id"].unsigned and columns["id"].is_primary and columns["id"].collation_name is None
        assert columns["name"].collation_name == "gbk_chinese_ci" and not columns["name"].unsigned
        assert columns["tag"].enum_values == ["", "a", "b"] and columns["flags"].set_values == ["x", "y", "z"]
        assert (columns["blob"].collation_name, columns["u"].character_set_name) == ("binary", "binary")
        assert event.table_obj.primary_key == "id"

    def test_a_key_of_several_columns_is_a_tuple(self) -> None:
        event = people_map()
        complete(event, TableSchema("people", AT, PEOPLE.columns, ("id", "name")))
        assert event.table_obj.primary_key == ("id", "name")


def test_doubts_name_the_table_the_position_and_why() -> None:
    event = people_map()
    assert "no schema history of the table that early" in (doubt(event, None, AT) or "")
    unknown = TableSchema("people", AT, None, (), "a later DDL at bin.000001:900")
    assert doubt(event, unknown, AT) == ("table shop.people at bin.000001:500: its row events carry no "
                                         "column names, and the schema history does not know its columns "
                                         "here: a later DDL at bin.000001:900")
    assert "did not exist here" in (doubt(event, TableSchema("people", AT, (), ()), AT) or "")
    assert "does not fit the schema history entry from bin.000001:100" in (
        doubt(people_map(nullable=[True] * 9), PEOPLE, AT) or "")
    assert doubt(event, PEOPLE, AT) is None


def spelled(labels: list[str]) -> str:
    """COLUMN_TYPE as the server spells an ENUM: quotes doubled, backslashes escaped."""
    quoted = ("'" + label.replace("\\", "\\\\").replace("'", "''") + "'" for label in labels)
    return "enum(" + ",".join(quoted) + ")"


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                        max_size=8), min_size=1, max_size=6))
def test_enum_labels_are_read_back_as_defined(labels: list[str]) -> None:
    assert enum_labels(spelled(labels)) == tuple(labels)


def test_a_column_is_read_from_its_information_schema_row() -> None:
    row = ("tag", "ENUM", "enum('it''s','a\\\\b','x,y')", "YES", 12, None, None, None, "utf8mb4",
           "utf8mb4_general_ci")
    assert column_schema(row) == ColumnSchema("tag", "enum", "enum('it''s','a\\\\b','x,y')", True, 12,
                                              charset="utf8mb4", collation="utf8mb4_general_ci",
                                              labels=("it's", "a\\b", "x,y"))
    assert column_schema(("n", "int", "int(10) unsigned", "NO", None, 10, 0, None, None, None)).unsigned
