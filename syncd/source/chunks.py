"""Reading a source table in row-key chunks, each chunk one consistent read.

The row key is the mapping's `source_key` when it names one, else the table's primary key
(syncd.source.snapshot.row_key).

Every read is a single SELECT in autocommit mode, which InnoDB serves from its own consistent
snapshot without taking row locks. Text columns of charsets whose conversion by the server could
lose bytes (it writes `?` for what it cannot convert) are read as bytes and decoded by
syncd/source/charsets.py, as the binlog reader decodes them: a value the server cannot convert
is an `Undecodable` marker, and the row a dead letter, never a silent `?`. Tables of utf8mb4
and latin1 text are read as before. Values come out exactly as the initial load and the
binlog reader produce them (session time zone +00:00, TIMESTAMP aware UTC, zero dates None,
see syncd/source/values.py), so the mapping sees the same row images it sees when streaming.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from syncd.config import SourceConfig
from syncd.errors import SourceError, SourceUnavailable
from syncd.mapping.plan import Mapping
from syncd.model import Position, Row, SourceColumn
from syncd.source import charsets, dialect
from syncd.source.checks import connect, raw_text_columns, table_columns
from syncd.source.connection import translated
from syncd.source.snapshot import keys_condition, row_key
from syncd.source.values import ZERO_DATE, Convert, select_converter
from syncd.sqlnames import my_name

DIGEST_TEXT_BYTES = 1 << 30
"""The longest row text of one range GROUP_CONCAT may build (a longer one is cut: digests differ)."""

_TEXT, _ROWS = my_name("syncd_row_text"), my_name("syncd_rows")
_EVERY_ROW = "18446744073709551615"
"""A LIMIT that keeps every row (the largest MySQL takes)."""

ZeroDates = dict[int, tuple[str, ...]]
"""By row index: the columns whose zero date ('0000-00-00') the row read as NULL."""


class Fetched(NamedTuple):
    """Rows read by a SELECT, as tuples of values in their normal form."""

    names: list[str]
    rows: list[tuple]
    zero_dates: ZeroDates
    """Rows without zero dates are left out."""
    zero_texts: dict[tuple[int, int], Any] = {}  # noqa: RUF012 (never changed)
    """(row index, column index) -> what the server sent for each zero date read as NULL."""

    def key_at(self, index: int, positions: Sequence[int]) -> tuple[Any, ...]:
        """The values at `positions` of row `index` as the source server finds its row by: a zero
        date (NULL in `rows`) as the text the server sent, so that keyset bounds and key reads
        compare with it (`(a, b) > (9, NULL)` would skip the rest of a = 9)."""
        row = self.rows[index]
        return tuple(self.zero_texts.get((index, p), row[p]) for p in positions)


class Digested(NamedTuple):
    """A range's digest, or its bucket digests (`SourceReader.digest`), and the rows set aside."""

    found: Any
    """(count, MD5) of the range, or bucket -> (count, MD5)."""
    aside: list[tuple[int, ...]]
    """The keys of the rows whose text is NULL, which the digests leave out."""


class ChunkRows(NamedTuple):
    """A chunk's rows (`SourceReader.chunk_rows`), its zero dates, and where the next chunk starts."""

    rows: list[Row]
    zeros: ZeroDates
    last: tuple[Any, ...] | None
    """The last row's key as the server finds it (`Fetched.key_at`); None without rows."""


def after_condition(key: Sequence[str]) -> str:
    """`(a, b) > (%s, %s)` spelled so that MariaDB uses the key's index as a range."""
    parts = []
    for index, column in enumerate(key):
        equal = [f"{my_name(k)} = %s" for k in key[:index]]
        parts.append("(" + " AND ".join([*equal, f"{my_name(column)} > %s"]) + ")")
    return " OR ".join(parts)


def after_params(key: Sequence[str], after: Sequence[Any]) -> list[Any]:
    params: list[Any] = []
    for index in range(len(key)):
        params.extend(after[: index + 1])
    return params


def upto_condition(key: Sequence[str]) -> str:
    """`(a, b) <= (%s, %s)`, spelled as ranges like `after_condition`."""
    parts = []
    for index, column in enumerate(key):
        equal = [f"{my_name(k)} = %s" for k in key[:index]]
        last = f"{my_name(column)} {'<=' if index == len(key) - 1 else '<'} %s"
        parts.append("(" + " AND ".join([*equal, last]) + ")")
    return " OR ".join(parts)


def range_condition(key: Sequence[str], lower: Sequence[Any] | None,
                    upper: Sequence[Any] | None) -> tuple[str, list[Any]]:
    """WHERE text and parameters for keys in (lower, upper]; None: unbounded on that side. A
    bound may be shorter than the key: it bounds the key's first columns (`(a, b) > (x,)` is
    `a > x`, `(a, b) <= (y,)` is `a <= y`)."""
    parts, params = [], []
    if lower is not None:
        parts.append(f"({after_condition(key[:len(lower)])})")
        params.extend(after_params(key[:len(lower)], lower))
    if upper is not None:
        parts.append(f"({upto_condition(key[:len(upper)])})")
        params.extend(after_params(key[:len(upper)], upper))
    return (" WHERE " + " AND ".join(parts) if parts else ""), params


@dataclass(frozen=True)
class RangeChunk:
    """Rows of the key range (lower, upper], in key order, and the range's source checksum."""

    names: list[str]
    rows: list[tuple]
    lower: tuple[Any, ...] | None
    upper: tuple[Any, ...] | None
    checksum: str | None
    full: bool
    """The read returned `limit` rows: more may follow after `upper`."""


class SourceReader:
    """One connection to a source database, for chunked reads of its tables."""

    def __init__(self, source: SourceConfig) -> None:
        self.source = source
        self.conn = connect(source, source.database)
        self._raw: dict[str, dict[str, charsets.Charset]] = {}
        self._session()

    def _session(self) -> None:
        """TIMESTAMP read as UTC; room for a range's row texts in one GROUP_CONCAT (`digest`)."""
        self._execute("SET SESSION time_zone = '+00:00'")
        self._execute(f"SET SESSION group_concat_max_len = {DIGEST_TEXT_BYTES}")

    def close(self) -> None:
        self.conn.close()

    def _execute(self, query: str, params: Sequence[Any] | None = None) -> list[tuple]:
        """`query` is a PyMySQL format string when `params` is given (as it is for every query
        naming tables or columns: `sqlnames.my_name`), plain text otherwise."""
        with translated(self.source.name, "read"), self.conn.cursor() as cur:
            cur.execute(query, params)
            return list(cur.fetchall())

    def row_key(self, table: str, mapping: Mapping) -> tuple[str, ...]:
        """The columns `mapping` names the rows of `table` by: its source_key, else the primary
        key (NoPrimaryKey / UnusableSourceKey when neither can)."""
        return row_key(self.conn, self.source, table, mapping.spec.source_key, mapping.name)

    def columns(self, table: str) -> dict[str, str]:
        """Column name -> MySQL data type, in table order ({} when the table does not exist)."""
        return table_columns(self.conn, self.source.database, table) or {}

    def source_columns(self, table: str) -> dict[str, SourceColumn]:
        """The columns of `table` as their SQL forms need them (syncd/reconcile/columnsql.py)."""
        found = self._execute(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_SCALE, NUMERIC_PRECISION, "
            "CHARACTER_SET_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
            "ORDER BY ORDINAL_POSITION", (self.source.database, table))
        raw = self.raw_columns(table)
        return {str(name): SourceColumn(str(name), str(kind), str(full), _int(scale), _int(precision),
                                        str(charset) if charset else None, str(name) in raw)
                for name, kind, full, scale, precision, charset in found}

    def raw_columns(self, table: str) -> dict[str, charsets.Charset]:
        """The text columns of `table` read as bytes (see the module docstring), by name."""
        found = self._raw.get(table)
        if found is None:
            found = self._raw[table] = {name: charsets.lookup(charset) for name, charset in
                                        raw_text_columns(self.conn, self.source.database, table).items()}
        return found

    def _read(self, table: str, columns: Sequence[str],
              query: Callable[[str], tuple[str, list[Any]]]) -> Fetched:
        """`fetch` of `query(select list)`; a value PyMySQL cannot decode (a utf8mb4 column holding
        a surrogate, which the server converts to no UTF-8) has the table read raw from then on."""
        try:
            return self.fetched(*query(self.select_list(table, columns)), self.raw_columns(table))
        except UnicodeDecodeError:  # the rest of that result is still on the wire: start afresh
            self.conn.close()
            self.conn = connect(self.source, self.source.database)
            self._session()
            self._raw[table] = {name: charsets.lookup(charset) for name, charset in
                                raw_text_columns(self.conn, self.source.database, table, every=True).items()}
            return self.fetched(*query(self.select_list(table, columns)), self.raw_columns(table))

    def select_list(self, table: str, columns: Sequence[str]) -> str:
        raw = self.raw_columns(table)
        return ", ".join(charsets.select_raw(c) if c in raw else my_name(c) for c in columns)

    def estimated_rows(self, table: str) -> int:
        rows = self._execute("SELECT TABLE_ROWS FROM information_schema.TABLES "
                             "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                             (self.source.database, table))
        return int(rows[0][0] or 0) if rows else 0

    def chunk(self, table: str, key: Sequence[str], columns: Sequence[str],
              after: Sequence[Any] | None, limit: int) -> tuple[list[Row], ZeroDates]:
        """The next `limit` rows after key `after` (None: from the start), in key order, and the
        columns whose zero date each row read as NULL (by row index; rows without are left out)."""
        read = self.chunk_rows(table, key, columns, after, limit)
        return read.rows, read.zeros

    def chunk_rows(self, table: str, key: Sequence[str], columns: Sequence[str],
                   after: Sequence[Any] | None, limit: int) -> ChunkRows:
        """`chunk`, with the key the next chunk starts after (a zero date in it kept as such)."""
        fetched = self._read(table, columns, lambda select: _chunk_query(table, key, select, after, limit))
        positions = [fetched.names.index(k) for k in key]
        last = fetched.key_at(len(fetched.rows) - 1, positions) if fetched.rows else None
        return ChunkRows(_dicts(fetched.names, fetched.rows), fetched.zero_dates, last)

    def rows_between(self, table: str, key: Sequence[str], columns: Sequence[str],
                     after: Sequence[Any] | None, upto: Sequence[Any] | None) -> tuple[list[Row], ZeroDates]:
        """Every row with keys in (after, upto], in key order, as `chunk` reads them."""
        where, params = range_condition(key, after, upto)
        fetched = self._read(table, columns, lambda select: (
            f"SELECT {select} FROM {my_name(table)}{where} ORDER BY {_order(key)}", params))
        return _dicts(fetched.names, fetched.rows), fetched.zero_dates

    def copy_lines(self, table: str, key: Sequence[str], line: str, after: Sequence[Any] | None,
                   limit: int, *, reads: Sequence[str] = ()) -> Fetched:
        """`chunk` as COPY text lines (`line`: syncd.reconcile.copytext): rows of
        (line, key values..., values of `reads`), the latter in their normal form."""
        raw = self.raw_columns(table)
        columns = (*key, *reads)
        select = ", ".join([line, *(charsets.select_raw(c) if c in raw else my_name(c) for c in columns)])
        return self.fetched(*_chunk_query(table, key, select, after, limit), raw)

    def rows_by_keys_fetched(self, table: str, key: Sequence[str], columns: Sequence[str],
                             keys: Sequence[Sequence[Any]]) -> tuple[list[Row], ZeroDates]:
        """The current rows of these row keys as `chunk` reads them (zero dates reported)."""
        rows: list[Row] = []
        zeros: ZeroDates = {}
        for start in range(0, len(keys), 500):
            where, params = keys_condition(key, keys[start:start + 500])
            fetched = self._read(table, columns, lambda select, where=where, params=params: (
                f"SELECT {select} FROM {my_name(table)} WHERE {where}", params))
            zeros.update({len(rows) + i: c for i, c in fetched.zero_dates.items()})
            rows += _dicts(fetched.names, fetched.rows)
        return rows, zeros

    def chunk_range(self, table: str, key: Sequence[str], columns: Sequence[str], *,
                    after: Sequence[Any] | None, upto: Sequence[Any] | None, limit: int,
                    checksum: bool) -> RangeChunk:
        """Up to `limit` rows with keys in (after, upto], in key order.

        Returns (names, rows, upper, checksum, full): `upper` closes the range the rows cover
        (their last key when `limit` rows came back, else `upto`); with `checksum`, the source
        checksum of (after, upper] taken in the same consistent snapshot as the rows.
        """
        where, params = range_condition(key, after, upto)
        order = ", ".join(my_name(k) for k in key)
        if checksum:
            self._execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        try:
            fetched = self._read(table, columns, lambda select: (
                f"SELECT {select} FROM {my_name(table)}{where} ORDER BY {order} LIMIT %s", [*params, limit]))
            names, rows = fetched.names, fetched.rows
            full = len(rows) == limit
            upper = fetched.key_at(len(rows) - 1, [names.index(k) for k in key]) if full else _key(upto)
            total = self.checksum(table, key, columns, after, upper) if checksum else None
        finally:
            if checksum:
                self._execute("COMMIT")
        return RangeChunk(names, rows, _key(after), upper, total, full)

    @contextmanager
    def consistent(self) -> Iterator[None]:
        """The reads inside see one consistent snapshot (one InnoDB REPEATABLE READ transaction)."""
        self._execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        try:
            yield
        finally:
            self._execute("COMMIT")

    def rows_in_range(self, table: str, key: Sequence[str], columns: Sequence[str],
                      lower: Sequence[Any] | None,
                      upper: Sequence[Any] | None) -> tuple[list[str], list[tuple]]:
        """Every row with keys in (lower, upper] (None: unbounded), in key order."""
        where, params = range_condition(key, lower, upper)
        fetched = self._read(table, columns, lambda select: (
            f"SELECT {select} FROM {my_name(table)}{where} ORDER BY {_order(key)}", params))
        return fetched.names, fetched.rows

    def checksum(self, table: str, key: Sequence[str], columns: Sequence[str],
                 lower: Sequence[Any] | None, upper: Sequence[Any] | None) -> str:
        """`count:crc32 sum:crc32c sum` of the rows with keys in (lower, upper]."""
        where, params = range_condition(key, lower, upper)
        found = self._execute(f"SELECT {source_checksum_sql(columns)} FROM {my_name(table)}{where}", params)
        return ":".join(str(v) for v in found[0])

    def digest(self, table: str, key: Sequence[str], row_text: str, *, scope: str | None,
               lower: Sequence[Any] | None, upper: Sequence[Any] | None) -> Digested:
        """(count, MD5 of the row texts in key order) of the rows with keys in (lower, upper]
        that `scope` does not leave out (reconcile/pushdown.py), and the keys of the rows whose
        text is NULL (set aside: the SQL cannot vouch for them)."""
        found = self._digests(table, key, row_text, scope, bounds=(lower, upper), width=None)
        return Digested(found[0][1:3], found[0][3])

    def bucket_digests(self, table: str, key: Sequence[str], row_text: str, *, scope: str | None,
                       lower: Sequence[Any] | None, upper: Sequence[Any] | None, width: int) -> Digested:
        """`digest` per bucket of `width` values of the key's first column, an integer
        (`column DIV width`)."""
        found = self._digests(table, key, row_text, scope, bounds=(lower, upper), width=width)
        return Digested({int(b): (n, d) for b, n, d, _ in found}, [k for *_, keys in found for k in keys])

    def _digests(self, table: str, key: Sequence[str], row_text: str, scope: str | None, *,
                 bounds: tuple[Sequence[Any] | None, Sequence[Any] | None],
                 width: int | None) -> list[tuple[int, int, str | None, list[tuple[int, ...]]]]:
        """(bucket, count, MD5, keys set aside) per bucket; one bucket (0) when `width` is None.
        Each row's text is computed once (the derived table is materialized: a LIMIT keeps MariaDB
        and MySQL from merging it, which would compute the text once per use)."""
        where, params = _scoped(range_condition(key, *bounds), scope)
        names = _order(key)
        bucket = f"{my_name(key[0])} DIV {int(width)}" if width is not None else "0"
        rows = f"SELECT {names}, {row_text} AS {_TEXT} FROM {my_name(table)}{where} LIMIT {_EVERY_ROW}"
        text = f"{_ROWS}.{_TEXT}"
        found = self._execute(
            f"SELECT {bucket}, COUNT({text}), MD5(GROUP_CONCAT({text} ORDER BY {names} SEPARATOR '')), "
            f"GROUP_CONCAT(IF({text} IS NULL, CONCAT_WS(',', {names}), NULL) SEPARATOR ';') "
            f"FROM ({rows}) AS {_ROWS}{' GROUP BY 1' if width is not None else ''}", params)
        return [(int(b), int(n), d, _keys(aside)) for b, n, d, aside in found]

    def rows_in_ranges(self, table: str, key: Sequence[str], columns: Sequence[str],
                       ranges: Sequence[tuple[Sequence[Any], Sequence[Any]]]
                       ) -> tuple[list[str], list[tuple]]:
        """The rows whose keys lie in any of the (lower, upper] ranges, in key order."""
        parts, params = [], []
        for lower, upper in ranges:
            where, values = range_condition(key, lower, upper)
            parts.append(f"({where.removeprefix(' WHERE ')})")
            params += values
        fetched = self._read(table, columns, lambda select: (
            f"SELECT {select} FROM {my_name(table)} WHERE {' OR '.join(parts)} ORDER BY {_order(key)}",
            params))
        return fetched.names, fetched.rows

    def key_boundaries(self, table: str, key: Sequence[str], every: int) -> list[tuple[Any, ...]]:
        """Every `every`-th row key, in key order: the upper bounds of ranges of that many rows."""
        found: list[tuple[Any, ...]] = []
        names = ", ".join(my_name(k) for k in key)
        while True:
            after = found[-1] if found else None
            query, params = _chunk_query(table, key, names, after, 1)
            rows = self._execute(query.replace("LIMIT %s", "LIMIT 1 OFFSET %s"), [*params[:-1], every - 1])
            if not rows:
                return found
            found.append(tuple(rows[0]))

    def has_crc32c(self) -> bool:
        try:
            self._execute("SELECT CRC32C('')")
        except SourceUnavailable:
            raise
        except SourceError:  # MySQL has no CRC32C (1305)
            return False
        return True

    def version(self) -> str:
        return str(self._execute("SELECT VERSION()")[0][0])

    def rows_by_keys(self, table: str, key: Sequence[str], columns: Sequence[str],
                     keys: Sequence[Sequence[Any]]) -> tuple[list[str], list[tuple]]:
        """The current rows of these row keys (absent keys are simply not returned)."""
        names: list[str] = list(columns)
        rows: list[tuple] = []
        for start in range(0, len(keys), 500):
            where, params = keys_condition(key, keys[start:start + 500])
            fetched = self._read(table, columns, lambda select, where=where, params=params: (
                f"SELECT {select} FROM {my_name(table)} WHERE {where}", params))
            names = fetched.names
            rows.extend(fetched.rows)
        return names, rows

    def rows_at_position(self, table: str, key: Sequence[str], columns: Sequence[str],
                         keys: Sequence[Sequence[Any]]) -> tuple[list[str], list[tuple], Position | None]:
        """`rows_by_keys` from one consistent snapshot, with the binlog position it matches.

        MariaDB reports the snapshot's own position; elsewhere the position is read just after
        the rows (a little later than the snapshot, which only makes a re-check wait longer).
        """
        self._execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        try:
            found = self._execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
            status = {str(k).lower(): str(v) for k, v in found}
            names, rows = self.rows_by_keys(table, key, columns, keys)
            position = (Position(status["binlog_snapshot_file"], int(status["binlog_snapshot_position"]))
                        if status.get("binlog_snapshot_file") else self.position())
        finally:
            self._execute("COMMIT")
        return names, rows, position

    def select(self, query: str, params: Sequence[Any]) -> list[Row]:
        return _dicts(*self.fetch(query, params))

    def fetch(self, query: str, params: Sequence[Any],
              raw: dict[str, charsets.Charset] | None = None) -> tuple[list[str], list[tuple]]:
        """Rows as tuples, values normalised like the binlog's (syncd/source/values.py); the
        columns of `raw` (read as bytes) decoded as the binlog reader decodes them."""
        fetched = self.fetched(query, params, raw)
        return fetched.names, fetched.rows

    def fetched(self, query: str, params: Sequence[Any],
                raw: dict[str, charsets.Charset] | None = None) -> Fetched:
        """`fetch`, with the columns whose zero date each row read as NULL."""
        with translated(self.source.name, "read"), self.conn.cursor() as cur:
            cur.execute(query, params)
            names = [d[0] for d in cur.description]
            converters = [(i, f) for i, d in enumerate(cur.description)
                          if (f := select_converter(d[1])) is not None]
            raw = raw or {}
            converters += [(i, _text(raw[name], name)) for i, name in enumerate(names) if name in raw]
            rows = list(cur.fetchall())
        if converters and rows:
            return _converted(names, rows, converters)
        return Fetched(names, rows, {})

    def position(self) -> Position | None:
        """The source's current binlog position (where its binlog ends right now)."""
        rows = self._execute(dialect.of(self.conn).binlog_status)
        return Position(str(rows[0][0]), int(rows[0][1])) if rows else None


def _chunk_query(table: str, key: Sequence[str], select: str, after: Sequence[Any] | None,
                 limit: int) -> tuple[str, list[Any]]:
    """The next `limit` rows after key `after` (None: from the start), in key order."""
    query = f"SELECT {select} FROM {my_name(table)}"
    params: list[Any] = []
    if after is not None:
        query += f" WHERE {after_condition(key)}"
        params = after_params(key, after)
    return f"{query} ORDER BY {', '.join(my_name(k) for k in key)} LIMIT %s", [*params, limit]


def _order(key: Sequence[str]) -> str:
    return ", ".join(my_name(k) for k in key)


def _scoped(condition: tuple[str, list[Any]], scope: str | None) -> tuple[str, list[Any]]:
    """A WHERE clause that also leaves out the rows a `where:` filter excludes (`scope` is 0)."""
    where, params = condition
    if scope is None:
        return where, params
    kept = f"NOT (({scope}) <=> 0)"
    return (f"{where} AND {kept}" if where else f" WHERE {kept}"), params


def _keys(text: str | bytes | None) -> list[tuple[int, ...]]:
    """`1,2;3,4` (GROUP_CONCAT of integer keys) -> [(1, 2), (3, 4)]."""
    if not text:
        return []
    text = text.decode() if isinstance(text, bytes) else text
    return [tuple(int(v) for v in key.split(",")) for key in text.split(";")]


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _text(charset: charsets.Charset, column: str) -> Convert:
    return lambda data: charsets.text_or_marker(charset, column, data)


def _key(value: Sequence[Any] | None) -> tuple[Any, ...] | None:
    return tuple(value) if value is not None else None


def _dicts(names: list[str], rows: list[tuple]) -> list[Row]:
    return [dict(zip(names, row, strict=True)) for row in rows]


def _converted(names: list[str], rows: list[tuple], converters: list[tuple[int, Convert]]) -> Fetched:
    columns = list(zip(*rows, strict=True))
    zeros: dict[int, list[str]] = {}
    texts: dict[tuple[int, int], Any] = {}
    for index, convert in converters:
        converted = [None if v is None else convert(v) for v in columns[index]]
        nulled = [row for row, value in enumerate(converted) if value is ZERO_DATE]
        for row in nulled:
            zeros.setdefault(row, []).append(names[index])
            texts[row, index] = columns[index][row]
            converted[row] = None
        columns[index] = tuple(converted)
    return Fetched(names, list(zip(*columns, strict=True)), {row: tuple(c) for row, c in zeros.items()},
                   texts)


def source_checksum_sql(columns: Sequence[str]) -> str:
    """MariaDB: count and two 32-bit CRC sums of each row's text (NULLs told apart from '')."""
    quoted = [my_name(c) for c in columns]
    text = (f"CONCAT_WS(0x1f, {', '.join(quoted)}, "
            f"CONCAT({', '.join(f'ISNULL({q})' for q in quoted)}))")
    return f"COUNT(*), COALESCE(SUM(CRC32({text})), 0), COALESCE(SUM(CRC32C({text})), 0)"
