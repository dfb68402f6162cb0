"""The SQL form of a mapped column: the target value, computed by the source server.

Mapping rows one by one in Python bounds a copy and a reconcile pass (reading every value
through PyMySQL, running the transforms). Most of what a mapping does has an exact equivalent
in SQL, so the source server can compute the target value itself: the COPY text of a snapshot
(syncd/reconcile/copytext.py) and the text both servers hash in a reconcile pass
(syncd/reconcile/pushdown.py). Both are built here, from one compilation of the column, so
they cannot disagree.

A column compiles to a `ColumnSql`: per row, the target value's text, or SQL NULL when the SQL
form cannot vouch that it equals what Python computes for that row (a status outside the map,
an amount written some other way, text the server cannot convert, a zero date, a wall time a
clock change skips...). Such a row goes through the mapping in Python, which makes a value or a
dead letter of it. A column whose transform has no exact SQL form at all (`hash`, whose salt
must not travel to the source; `json_get`; dates parsed by format...) compiles to None for that
path: it is computed in Python, the other columns still in SQL.

Exactness rules:
- a value enters as the SQL expression of exactly the Python value the row reader gives
  (syncd/source/values.py): ZEROFILL digits dropped, zero dates flagged, TIMESTAMP as UTC,
  text converted to utf8mb4 (a charset the server may fail to convert only where converting
  back gives the same bytes);
- a transform is compiled only for the inputs where its SQL equals the Python function on every
  value, guarded by a condition (`ok`) elsewhere: text compared byte by byte, never through a
  collation; numbers as DECIMAL, never DOUBLE; pattern tests anchored with `\\z`;
- COPY text is text PostgreSQL reads into the same stored value as the text psycopg writes for
  the Python value; the hashed text is what PostgreSQL prints of the stored value (`col::text`).

MySQL expressions are PyMySQL format strings, as every name in them (`sqlnames.my_name`): a `%`
is doubled. tests/integration/test_columnsql.py proves each form against the Python transform on a real
server (hypothesis), edge inputs included. The module is long because it is the catalogue of
SQL forms, one small function per transform beside the rules every form keeps, as
syncd/mapping/transforms.py is the catalogue of the Python ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, tzinfo
from typing import Any

from syncd.mapping import transforms
from syncd.mapping.plan import lookup_table, value_lookup
from syncd.mapping.spec import NO_VALUE, ColumnSpec, Condition, TransformStep
from syncd.model import ColumnType, SourceColumn
from syncd.reconcile.zonesql import Offset, instant_offset, local_offset
from syncd.sqlnames import my_name, pg_ident

INT, DEC, TEXT, NAIVE, AWARE, DATE, TIME, BYTES, FLOAT = (
    "int", "decimal", "text", "naive", "aware", "date", "time", "bytes", "float")
"""What Python value an SQL expression stands for: int, Decimal, str, naive or aware datetime,
date, timedelta, bytes, float."""

_INTEGERS = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint"}
_TEXTS = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json"}
_BYTES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_PRINTED = {"uuid", "inet4", "inet6"}
_TARGET_INTEGERS = {"smallint", "integer", "bigint"}
_TARGET_TEXTS = {"text", "character varying", "character"}
_TIMESTAMP, _TIMESTAMPTZ = "timestamp without time zone", "timestamp with time zone"
_MAX_DIGITS = 65
"""MySQL's DECIMAL precision."""
_MAX_SCALE = 30
_NUMBER_CHARS = 30
"""Numbers in text longer than this are left to Python (they could exceed DECIMAL(65,30))."""

_NULL_TEXT = "_utf8mb4 X'5C4E'"
_NULL_PART = "'-'"
_ESCAPES = (("5C", "5C5C"), ("09", "5C74"), ("0A", "5C6E"), ("0D", "5C72"))
"""COPY text escapes: backslash first, so that the escapes added afterwards are not escaped again."""
_EDGE_SPACE = (*(chr(c) for c in range(0x3001) if chr(c).isspace()), "\u200b", "\ufeff")
"""What `strip` removes at both ends (transforms._EDGE_SPACE: `\\s`, U+200B, U+FEFF)."""


@dataclass(frozen=True)
class Value:
    """An SQL expression standing for the Python value of one column in every row where `ok` holds."""

    expr: str
    kind: str
    ok: tuple[str, ...] = ()
    scale: int | None = None
    """DEC: digits after the point of the Python Decimal (None: they vary by row, see `text`)."""
    digits: int = _MAX_DIGITS
    """DEC: at most this many digits before the point."""
    text: str | None = None
    """DEC with varying scale: text with exactly the Python Decimal's digits."""
    canonical: bool = False
    """DEC: `CAST(expr AS CHAR)` is `str()` of the Python Decimal."""
    zero: str | None = None
    """A condition: the value is a zero date, which the row reader reads as NULL (and warns of)."""
    offset: Offset | None = None
    """AWARE: the offset of the Python value's zone; `expr` is its wall time there."""
    printed: bool = False
    """TEXT: the server's own text of a MariaDB UUID (as PostgreSQL prints a uuid)."""
    plain: bool = False
    """TEXT: never holds a character COPY escapes or the row text delimits with (`\\ \t \n \r | ~`)."""

    def also(self, *conditions: str) -> tuple[str, ...]:
        return (*self.ok, *conditions)


@dataclass(frozen=True)
class ColumnSql:
    """One target column as the source server computes it; a None part is computed in Python."""

    target: str
    copy: str | None
    """MySQL: the column's COPY text field (escaped, `\\N` for NULL); NULL when not vouched for."""
    source_part: str | None
    """MySQL: the column's self-delimiting part of the hashed row text; NULL when not vouched for."""
    target_part: str | None
    """PostgreSQL: the same part, from the stored column."""


@dataclass(frozen=True)
class _Text:
    """A rendered value: MySQL text, whether it needs COPY escaping, and its conditions."""

    expr: str
    ok: tuple[str, ...]
    escape: bool = False


# --------------------------------------------------------------------------- literals


def literal(text: str) -> str:
    """A utf8mb4 string literal whatever the session's sql_mode (no escapes involved)."""
    return f"_utf8mb4 X'{text.encode('utf-8').hex().upper()}'" if text else "_utf8mb4 ''"


def _binary(text: str) -> str:
    return f"X'{text.encode('utf-8').hex().upper()}'" if text else "X''"


def _all(conditions: tuple[str, ...]) -> str:
    return " AND ".join(f"({c})" for c in dict.fromkeys(conditions)) or "TRUE"


def _unless_null(expr: str, condition: str) -> str:
    return f"{expr} IS NULL OR {condition}"


def _matches(expr: str, pattern: str) -> str:
    """A regular expression test of text, case-sensitive, anchored by the pattern itself."""
    return f"{expr} REGEXP {literal(pattern)}"


# --------------------------------------------------------------------------- source values


def source_value(column: SourceColumn) -> Value | None:
    """The Python value the row reader gives for this column, as SQL; None for a type left to Python."""
    kind, quoted = column.data_type.lower(), my_name(column.name)
    zerofill = "zerofill" in column.column_type.lower()
    if kind in _INTEGERS or kind == "bit":
        return Value(f"({quoted} + 0)", INT)
    if kind == "year":
        return Value(f"({quoted} + 0)", INT, zero=f"{quoted} IS NOT NULL AND {quoted} = 0")
    if kind in ("decimal", "numeric"):
        scale = column.scale or 0
        digits = (column.precision or _MAX_DIGITS) - scale
        return Value(f"({quoted} + 0)" if zerofill else quoted, DEC, scale=scale, digits=digits,
                     canonical=scale <= 6)
    if kind in ("float", "double", "real"):
        return Value(quoted, FLOAT)
    if kind in _TEXTS:
        return _text_column(column, quoted)
    if kind in _PRINTED:
        return Value(f"CAST({quoted} AS CHAR)", TEXT, printed=kind == "uuid")
    if kind in _BYTES:
        return Value(quoted, BYTES)
    if kind in ("date", "datetime", "timestamp"):
        zero = f"{quoted} IS NOT NULL AND (YEAR({quoted}) = 0 OR ({quoted} + INTERVAL 0 DAY) IS NULL)"
        if kind == "timestamp":
            return Value(quoted, AWARE, zero=zero, offset=Offset("0", "'+00:00'"))
        return Value(quoted, DATE if kind == "date" else NAIVE, zero=zero)
    if kind == "time":
        return Value(quoted, TIME)
    return None


def _text_column(column: SourceColumn, quoted: str) -> Value:
    text = f"CONVERT({quoted} USING utf8mb4)"
    if not column.raw or not column.charset:
        return Value(text, TEXT)
    # The server writes `?` for bytes it cannot convert; converting back then differs.
    back = f"CAST(CONVERT({text} USING {column.charset}) AS BINARY) = CAST({quoted} AS BINARY)"
    return Value(text, TEXT, ok=(_unless_null(quoted, back),))


def constant_value(value: Any) -> Value | None:
    """A mapping's constant (`{value: ...}`) as SQL."""
    if value is None:
        return Value("NULL", TEXT)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Value(str(value), INT)
    if isinstance(value, str):
        return Value(literal(value), TEXT)
    if isinstance(value, datetime):
        return None if value.tzinfo is not None else Value(f"TIMESTAMP'{value}'", NAIVE)
    if isinstance(value, date):
        return Value(f"DATE'{value.isoformat()}'", DATE)
    return None


# --------------------------------------------------------------------------- transforms


Step = Callable[[Value, dict[str, Any], tzinfo], Value | None]


def _strip(value: Value, _args: dict[str, Any], _zone: tzinfo) -> Value | None:
    """`strip`: ASCII spaces trimmed in SQL; any other space at an end is left to Python."""
    if value.kind != TEXT:
        return None
    trimmed = f"TRIM(BOTH ' ' FROM {value.expr})"
    return Value(trimmed, TEXT, value.also(_unless_null(trimmed, _plain_ends(trimmed))))


def _plain_ends(expr: str) -> str:
    """The text is empty, or neither its first nor its last character is one `strip` removes
    (compared as UTF-8 bytes with each such character: text ending in `。` or `☕` stays in SQL)."""
    spaces = ", ".join(f"X'{c.encode('utf-8').hex().upper()}'" for c in _EDGE_SPACE)
    first, last = (f"CAST(CONVERT({end}({expr}, 1) USING utf8mb4) AS BINARY)" for end in ("LEFT", "RIGHT"))
    return f"{expr} = '' OR ({first} NOT IN ({spaces}) AND {last} NOT IN ({spaces}))"


def _null_if_empty(value: Value, _args: dict[str, Any], _zone: tzinfo) -> Value | None:
    if value.kind != TEXT:
        return value  # only text can be blank
    trimmed = f"TRIM(BOTH ' ' FROM {value.expr})"
    return Value(f"IF({trimmed} = '', NULL, {value.expr})", TEXT,
                 value.also(_unless_null(value.expr, _plain_ends(trimmed))))


def _as_text(value: Value) -> Value | None:
    """int -> its digits (what mask and mask_phone do first); text as it is."""
    if value.kind == INT:
        return Value(f"CAST({value.expr} AS CHAR)", TEXT, value.ok)
    return value if value.kind == TEXT else None


_MOBILE = (r"^[ -]*(\+[ -]*8[ -]*6[ -]*|0[ -]*0[ -]*8[ -]*6[ -]*|8[ -]*6[ -]*)?"
           r"1[ -]*[3-9]([ -]*[0-9]){9}[ -]*\z")
"""A China mobile as mask_phone reads it (spaces and dashes removed: `_PHONE_NOISE`), other
whitespace and full-width digits left to Python."""
_DIGITS = r"^[0-9]*\z"


def _mask_phone(value: Value, _args: dict[str, Any], _zone: tzinfo) -> Value | None:
    """China mobiles -> 138****5678; other all-digit text keeps its first and last 2 digits."""
    text = _as_text(value)
    if text is None:
        return None
    t, length = text.expr, f"CHAR_LENGTH({text.expr})"
    bare = f"REPLACE(REPLACE({t}, ' ', ''), '-', '')"
    mobile = _matches(t, _MOBILE)
    masked = (f"CASE WHEN {mobile} THEN CONCAT(LEFT(RIGHT({bare}, 11), 3), '****', RIGHT({bare}, 4)) "
              f"WHEN {length} < 5 THEN REPEAT('*', {length}) "
              f"ELSE CONCAT(LEFT({t}, 2), REPEAT('*', {length} - 4), RIGHT({t}, 2)) END")
    ok = _unless_null(t, f"{_matches(t, _DIGITS)} OR {mobile}")
    return Value(masked, TEXT, text.also(ok), plain=True)


def _mask(value: Value, args: dict[str, Any], _zone: tzinfo) -> Value | None:
    text = _as_text(value)
    if text is None:
        return None
    first, last, char = args["keep_first"], args["keep_last"], literal(args["char"])
    t, length = text.expr, f"CHAR_LENGTH({text.expr})"
    hidden = f"{length} - {first + last}"
    masked = (f"IF({hidden} <= 0, REPEAT({char}, {length}), "
              f"CONCAT(LEFT({t}, {first}), REPEAT({char}, {hidden}), "
              f"IF({last} = 0, '', RIGHT({t}, {last}))))")
    return Value(masked, TEXT, text.ok)


def _decimal(expr: str, scale: int, ok: tuple[str, ...], digits: int = _MAX_DIGITS - _MAX_SCALE) -> Value:
    return Value(f"CAST({expr} AS DECIMAL({_MAX_DIGITS},{scale}))", DEC, ok, scale=scale,
                 digits=min(digits, _MAX_DIGITS - scale))


_PLAIN_INTEGER = r"^-?[0-9]+\z"
_PLAIN_DECIMAL = r"^-?[0-9]+([.][0-9]+)?\z"
_AMOUNT = r"^ *-? *(¥)? *([0-9]{1,3}(,[0-9]{3})+([.][0-9]+)?|[0-9]+([.][0-9]+)?|[.][0-9]+) *(元|圆)? *\z"
"""The money texts `parse_amount` reads that SQL reads too: ASCII spaces between the parts only (as
in `100 元`, not within the number), no RMB/CNY, one sign in front."""


def _number_text(value: Value, pattern: str) -> tuple[str, tuple[str, ...]]:
    """Text of the given (ASCII, short) number pattern, with the unit, separators and spaces removed."""
    t = value.expr
    ok = _unless_null(t, f"CHAR_LENGTH({t}) <= {_NUMBER_CHARS} AND {_matches(t, pattern)}")
    bare = t
    for unit in ("¥", "元", "圆", ",", " "):
        bare = f"REPLACE({bare}, {literal(unit)}, '')"
    return bare, value.also(ok)


def _exact_decimal(value: Value, pattern: str) -> Value | None:
    """What transforms._exact / _amount make of int, Decimal or text matching `pattern`."""
    if value.kind == INT:
        return _decimal(value.expr, 0, value.ok, digits=_MAX_DIGITS)
    if value.kind == DEC:
        return value
    if value.kind != TEXT:
        return None
    text, ok = _number_text(value, pattern)
    return replace(_decimal(text, _MAX_SCALE, ok, digits=_NUMBER_CHARS), scale=None, text=text)


def _quantized(value: Value, scale: int | None) -> Value:
    """`_quantize`: rounded half away from zero to `scale` places (MySQL rounds DECIMAL so too)."""
    if scale is None:
        return value
    ok = _fits(value, scale)
    exact = value.text if value.text is not None else value.expr  # a number read from text: cast once
    return _decimal(exact, scale, value.also(*ok), digits=min(value.digits, _MAX_DIGITS - scale))


def _fits(value: Value, scale: int) -> tuple[str, ...]:
    """Guard against DECIMAL(65, scale) clamping a value with more integer digits than it holds."""
    room = _MAX_DIGITS - scale
    if value.digits <= room:
        return ()
    return (_unless_null(value.expr, f"ABS({value.expr}) < 1{'0' * room}"),)


def _parse_amount(value: Value, args: dict[str, Any], _zone: tzinfo) -> Value | None:
    number = _exact_decimal(value, _AMOUNT)
    return None if number is None else _quantized(number, args["scale"])


def _to_decimal(value: Value, args: dict[str, Any], _zone: tzinfo) -> Value | None:
    number = _exact_decimal(value, _PLAIN_DECIMAL)
    return None if number is None else _quantized(number, args["scale"])


def _whole(value: Value) -> Value | None:
    """An integer from int, whole Decimal or plain integer text (else left to Python)."""
    if value.kind == INT:
        return value
    if value.kind == DEC:
        whole = _unless_null(value.expr, f"{value.expr} = TRUNCATE({value.expr}, 0)")
        return Value(f"CAST({value.expr} AS DECIMAL({_MAX_DIGITS},0))", INT, value.also(whole))
    if value.kind == TEXT:
        t = value.expr
        ok = _unless_null(t, f"CHAR_LENGTH({t}) <= {_NUMBER_CHARS} AND {_matches(t, _PLAIN_INTEGER)}")
        return Value(f"CAST({t} AS DECIMAL({_MAX_DIGITS},0))", INT, value.also(ok))
    return None


def _to_int(value: Value, _args: dict[str, Any], _zone: tzinfo) -> Value | None:
    return _whole(value)


def _fen_to_yuan(value: Value, _args: dict[str, Any], _zone: tzinfo) -> Value | None:
    fen = _whole(value)
    if fen is None:
        return None
    return _decimal(f"CAST({fen.expr} AS DECIMAL({_MAX_DIGITS},0)) * 0.01", 2, fen.ok)


def _yuan_to_fen(value: Value, _args: dict[str, Any], _zone: tzinfo) -> Value | None:
    yuan = _exact_decimal(value, _AMOUNT)
    if yuan is None:
        return None
    fen = f"({yuan.expr} * 100)"
    whole = _unless_null(fen, f"{fen} = TRUNCATE({fen}, 0)")
    return Value(f"CAST({fen} AS DECIMAL({_MAX_DIGITS},0))", INT, yuan.also(whole, *_fits(yuan, 2)))


def _timezone(value: Value, args: dict[str, Any], zone: tzinfo) -> Value | None:
    """Naive date-times read in `from` (default: the source's zone), everything converted to `to`."""
    if value.kind == NAIVE:
        value = localized(value, args["from"] or zone)
    if value.kind != AWARE or value.offset is None:
        return None
    utc = _utc(value)
    target = instant_offset(args["to"], utc.expr)
    wall = f"({utc.expr} + INTERVAL {target.seconds} SECOND)"
    ok = _unless_null(value.expr, f"{wall} IS NOT NULL AND {target.text} IS NOT NULL")
    return Value(wall, AWARE, utc.also(ok), offset=target)


def localized(value: Value, zone: tzinfo) -> Value:
    """A naive date-time read in `zone`, as the mapping reads it (plan._localizer)."""
    offset = local_offset(zone, value.expr)
    ok = _unless_null(value.expr, f"{offset.text} IS NOT NULL")
    return Value(value.expr, AWARE, value.also(ok), zero=value.zero, offset=offset)


def _utc(value: Value) -> Value:
    """An aware value as its UTC wall time (out of DATETIME's range: left to Python)."""
    assert value.offset is not None
    if value.offset.seconds == "0":
        return value
    utc = f"({value.expr} - INTERVAL {value.offset.seconds} SECOND)"
    return Value(utc, NAIVE, value.also(_unless_null(value.expr, f"{utc} IS NOT NULL")), zero=value.zero)


_STEPS: dict[str, Step] = {
    "strip": _strip, "null_if_empty": _null_if_empty, "mask_phone": _mask_phone, "mask": _mask,
    "parse_amount": _parse_amount, "to_decimal": _to_decimal, "to_int": _to_int,
    "fen_to_yuan": _fen_to_yuan, "yuan_to_fen": _yuan_to_fen, "timezone": _timezone,
}
"""The transforms with an SQL form; any other (hash, json_get, parse_date, ...) is Python's."""


def _transformed(value: Value, step: TransformStep, zone: tzinfo) -> Value | None:
    build = _STEPS.get(step.name)
    if build is None:
        return None
    result = build(value, transforms.checked_args(step.name, step.args), zone)
    # a zero date is None to the transforms, which give None for it
    return replace(result, zero=value.zero) if result is not None and value.zero else result


# --------------------------------------------------------------------------- value maps


def _mapped(value: Value, spec: ColumnSpec) -> Value | None:
    """`map:` as a CASE over the keys the input can equal, each result asked of the Python
    lookup itself; inputs matching no key follow `on_unmapped` (a dead letter: left to Python)."""
    lookup = value_lookup(spec)
    candidates = _candidates(value.kind, lookup_table(spec))
    if candidates is None:
        return None
    results = {candidate: lookup(candidate) for candidate in candidates}
    kinds = {_result_kind(r) for r in results.values() if r is not None}
    if len(kinds) > 1 or None in kinds:
        return None
    kind = kinds.pop() if kinds else value.kind
    probe = f"CAST({value.expr} AS BINARY)" if value.kind == TEXT else value.expr
    spelled = {c: (_binary(c) if value.kind == TEXT else str(c)) for c in candidates}
    whens = " ".join(f"WHEN {spelled[c]} THEN {_result(r)}" for c, r in results.items())
    otherwise, ok = _unmapped(value, spec, kind, probe, list(spelled.values()))
    if otherwise is None:
        return None
    expr = f"CASE {probe} {whens} ELSE {otherwise} END" if whens else otherwise
    table = lookup_table(spec)
    if None in table:  # a NULL (or a zero date, which is None) has a value in this map
        if _result_kind(table[None]) not in (None, kind):
            return None
        expr = f"IF({value.expr} IS NULL, {_result(table[None])}, {expr})"
        ok = (*ok, f"NOT ({value.zero})") if value.zero else ok
    outputs = [*results.values(), table.get(None), spec.default if spec.on_unmapped == "default" else None]
    outputs = [o for o in outputs if o is not NO_VALUE]
    plain = all(_plain(r) for r in outputs) and (spec.on_unmapped != "keep" or value.plain)
    return Value(expr, kind, (*value.ok, *ok), zero=value.zero, plain=plain)


def _candidates(kind: str, table: dict[Any, Any]) -> list[Any] | None:
    """The inputs of this kind that some key of the table matches (by value or by text)."""
    if kind == TEXT:
        return [k for k in table if isinstance(k, str)]
    if kind != INT:
        return None
    found: dict[int, None] = {}
    for key in table:
        if isinstance(key, bool | int) or (isinstance(key, float) and key.is_integer()) or _integer_text(key):
            found[int(key)] = None
    return list(found)


def _integer_text(key: Any) -> bool:
    """Text that is the `str()` of an integer (`'30'`, not `'030'` or `'+3'`)."""
    return isinstance(key, str) and re.fullmatch(r"-?[0-9]+", key) is not None and str(int(key)) == key


def _result_kind(result: Any) -> str | None:
    if result is None:
        return None
    if isinstance(result, bool):
        return "bool"
    if isinstance(result, int):
        return INT
    return TEXT if isinstance(result, str) else "other"


def _plain(result: Any) -> bool:
    return not isinstance(result, str) or not any(c in result for c in "\\\t\n\r|~")


def _result(result: Any) -> str:
    if result is None:
        return "NULL"
    return str(result) if isinstance(result, int) else literal(result)


def _unmapped(value: Value, spec: ColumnSpec, kind: str, probe: str,
              keys: list[str]) -> tuple[str | None, tuple[str, ...]]:
    """The ELSE of the map and the condition under which it is exact."""
    if spec.on_unmapped == "null":
        return "NULL", ()
    if spec.on_unmapped == "keep":
        return (value.expr, ()) if value.kind == kind else (None, ())
    if spec.on_unmapped == "default" and spec.default is not NO_VALUE:
        return ((_result(spec.default), ()) if _result_kind(spec.default) in (None, kind) else (None, ()))
    known = f"{probe} IN ({', '.join(keys)})" if keys else "FALSE"
    return "NULL", (_unless_null(value.expr, known),)


# --------------------------------------------------------------------------- the column


def compile_column(spec: ColumnSpec, sources: dict[str, SourceColumn], target: ColumnType | None,
                   zone: tzinfo) -> ColumnSql:
    """The SQL form of one mapping column into `target` (None parts: computed in Python)."""
    value = _computed(spec, sources, target, zone)
    if value is None or target is None:
        return ColumnSql(spec.target, None, None, None)
    copy = _copy_text(value, target)
    hashed = _hash_text(value, target)
    return ColumnSql(spec.target, _copy_field(value, copy) if copy else None,
                     _source_part(value, hashed[0]) if hashed else None,
                     _target_part(hashed[1], hashed[0].escape) if hashed else None)


def _computed(spec: ColumnSpec, sources: dict[str, SourceColumn], target: ColumnType | None,
              zone: tzinfo) -> Value | None:
    if spec.is_constant:
        return constant_value(spec.constant)
    if len(spec.sources) != 1 or spec.sources[0] not in sources:
        return None  # coalesce, concat; a missing column (the mapping dead-letters its rows)
    value = source_value(sources[spec.sources[0]])
    for step in spec.transforms:
        if value is None:
            return None
        value = _transformed(value, step, zone)
    if value is not None and spec.value_map is not None:
        value = _mapped(value, spec)
    if value is not None and value.kind == NAIVE and target is not None and target.data_type == _TIMESTAMPTZ:
        value = localized(value, zone)
    return value


def _copy_field(value: Value, text: _Text) -> str:
    """`IF(ok, text or \\N, NULL)`: the field, or NULL for the whole line when not vouched for."""
    field = text.expr
    if text.escape:
        for plain, escaped in _ESCAPES:
            field = f"REPLACE({field}, _utf8mb4 X'{plain}', _utf8mb4 X'{escaped}')"
    field = f"IFNULL({field}, {_NULL_TEXT})"
    conditions = text.ok + ((f"NOT ({value.zero})",) if value.zero else ())
    return f"IF({_all(conditions)}, {field}, NULL)" if conditions else field


def _source_part(value: Value, text: _Text) -> str:
    """`IF(ok, part, NULL)`; a zero date is NULL, as the row reader reads it. Text that may hold
    any character is `byte length:text`, other text `text|`; NULL is `-` (`~|`)."""
    expr = f"IF({value.zero}, NULL, {text.expr})" if value.zero else text.expr
    if text.escape:
        part = f"IFNULL(CONCAT(LENGTH({expr}), ':', {expr}), {_NULL_PART})"
    else:
        part = f"CONCAT(IFNULL({expr}, '~'), '|')"
    return f"IF({_all(text.ok)}, {part}, NULL)" if text.ok else part


def _target_part(text: str, escape: bool) -> str:
    if escape:
        return f"coalesce(octet_length({text}) || ':' || {text}, '-')"
    return f"coalesce({text}, '~') || '|'"


def _copy_text(value: Value, target: ColumnType) -> _Text | None:
    """Text PostgreSQL reads into the value the Python path stores in `target`."""
    kind, data_type = value.kind, target.data_type
    if kind == TEXT:
        return _Text(value.expr, value.ok, escape=not value.plain)
    if kind == INT and (data_type in _TARGET_INTEGERS | _TARGET_TEXTS
                        or data_type in ("numeric", "double precision", "real")):
        return _Text(f"CAST({value.expr} AS CHAR)", value.ok)
    if kind == DEC:
        return _decimal_copy(value, target)
    if kind == FLOAT and data_type == "double precision":
        return _Text(f"CAST({value.expr} AS CHAR)", value.ok)
    if kind in (DATE, NAIVE) and data_type in ("date", _TIMESTAMP, _TIMESTAMPTZ):
        return _Text(f"CAST({value.expr} AS CHAR)", value.ok)
    if kind == AWARE and data_type in (_TIMESTAMP, _TIMESTAMPTZ):
        assert value.offset is not None
        return _Text(f"CONCAT(CAST({value.expr} AS CHAR), {value.offset.text})", value.ok)
    if kind == TIME and data_type == "interval":
        return _Text(f"CONCAT({_micros(value.expr)}, ' microseconds')", value.ok)
    if kind == BYTES and data_type == "bytea":
        return _Text(f"CONCAT(_utf8mb4 X'5C5C78', LOWER(HEX({value.expr})))", value.ok)
    return None


def _decimal_copy(value: Value, target: ColumnType) -> _Text | None:
    if target.data_type == "numeric" and target.numeric_scale is not None:
        ok = value.also(*_fits(value, target.numeric_scale))
        return _Text(f"CAST(CAST({value.expr} AS DECIMAL({_MAX_DIGITS},{target.numeric_scale})) AS CHAR)", ok)
    if target.data_type in ("numeric", "double precision", "real"):
        return _Text(value.text if value.scale is None and value.text else f"CAST({value.expr} AS CHAR)",
                     value.ok)
    if target.data_type in _TARGET_TEXTS and value.canonical:
        return _Text(f"CAST({value.expr} AS CHAR)", value.ok)
    return None  # into an integer column: a Decimal rounds as a parameter but fails as text


def _micros(expr: str) -> str:
    """A TIME as one count of microseconds, as the sink writes a timedelta (DurationText)."""
    return (f"(TRUNCATE(TIME_TO_SEC({expr}), 0) * 1000000 "
            f"+ IF({expr} < TIME'00:00:00', -1, 1) * MICROSECOND({expr}))")


_STAMP = "DATE_FORMAT({}, '%%Y-%%m-%%d %%H:%%i:%%s.%%f')"
"""A datetime with all six fractional digits, as `_PG_STAMP` prints a timestamp."""
_PG_STAMP = "to_char({}, 'YYYY-MM-DD HH24:MI:SS.US')"


def _hash_text(value: Value, target: ColumnType) -> tuple[_Text, str] | None:
    """(MySQL text, PostgreSQL text) of the value PostgreSQL stores, as PostgreSQL prints it."""
    kind, data_type, column = value.kind, target.data_type, pg_ident(target.name)
    printed = f"{column}::text"
    if kind == INT and data_type in _TARGET_INTEGERS | _TARGET_TEXTS:
        return _Text(f"CAST({value.expr} AS CHAR)", value.ok), printed
    if kind in (INT, DEC) and data_type == "numeric":
        return _numeric_hash(value, target, printed)
    if kind == DEC and data_type in _TARGET_TEXTS and value.canonical:
        return _Text(f"CAST({value.expr} AS CHAR)", value.ok), printed
    if kind == TEXT and (data_type in ("text", "character varying", "json")
                         or (value.printed and data_type == "uuid")):
        return _Text(value.expr, value.ok, escape=not value.plain), printed
    if kind == TEXT and data_type == "character":
        return _Text(f"TRIM(TRAILING ' ' FROM {value.expr})", value.ok, escape=True), printed
    if kind == DATE and data_type == "date":
        return _Text(f"CAST({value.expr} AS CHAR)", value.ok), printed
    if kind in (NAIVE, AWARE) and data_type == _TIMESTAMP:
        return _Text(_STAMP.format(value.expr), value.ok), _PG_STAMP.format(column)
    if kind == AWARE and data_type == _TIMESTAMPTZ:
        utc = _utc(value)
        return _Text(_STAMP.format(utc.expr), utc.ok), _PG_STAMP.format(f"{column} AT TIME ZONE 'UTC'")
    if kind == BYTES and data_type == "bytea":
        return _Text(f"LOWER(HEX({value.expr}))", value.ok), f"encode({column}, 'hex')"
    if kind == TIME and data_type == "interval":  # psycopg reads a month as 30 days, as epoch counts it
        micros = f"trunc(extract(epoch FROM {column}) * 1000000)::text"
        return _Text(f"CAST({_micros(value.expr)} AS CHAR)", value.ok), micros
    return None


def _numeric_hash(value: Value, target: ColumnType, printed: str) -> tuple[_Text, str] | None:
    scale = target.numeric_scale
    if scale is None:
        if value.kind == DEC and value.scale is None:
            return None  # PostgreSQL keeps each row's own scale: not known in SQL
        return _Text(f"CAST({value.expr} AS CHAR)", value.ok), printed
    if scale > _MAX_SCALE:
        return None
    ok = value.also(*_fits(value, scale))
    return _Text(f"CAST(CAST({value.expr} AS DECIMAL({_MAX_DIGITS},{scale})) AS CHAR)", ok), printed


# --------------------------------------------------------------------------- where: filters


def scope_sql(conditions: tuple[Condition, ...], sources: dict[str, SourceColumn]) -> str | None:
    """MySQL: 1 when a row is in the `where:` scope (filters.build_filter), 0 when it is not, NULL
    where SQL cannot tell (the row goes through Python); None when the mapping has no filter."""
    if not conditions:
        return None
    known: list[str] = []
    tests: list[str] = []
    for condition in conditions:
        value = source_value(sources[condition.column]) if condition.column in sources else None
        test = _condition(value, condition.op, condition.value) if value is not None else None
        if test is None:
            return "NULL"
        known += [*value.ok, *((f"NOT ({value.zero})",) if value.zero else ())]
        tests.append(test)
    inside = f"IF({_all(tuple(tests))}, 1, 0)"
    return f"IF({_all(tuple(known))}, {inside}, NULL)" if known else inside


def _condition(value: Value, op: str, wanted: Any) -> str | None:
    """A two-valued test equal to filters._test on every row where the value is exact."""
    if op == "is_null":
        return f"{value.expr} IS {'' if wanted else 'NOT '}NULL"
    if op in ("eq", "ne", "in", "not_in"):
        options = [_equals(value, w) for w in (wanted if op in ("in", "not_in") else [wanted])]
        if any(o is None for o in options):
            return None
        test = " OR ".join(f"({o})" for o in options) or "FALSE"
        return f"NOT ({test})" if op in ("ne", "not_in") else test
    return _ordered(value, op, wanted)


def _equals(value: Value, wanted: Any) -> str | None:
    """filters.values_equal: equal values, or equal text (`0` matches '0'), never NULL."""
    if wanted is None:
        return f"{value.expr} IS NULL"
    present = f"{value.expr} IS NOT NULL"
    if value.kind == INT and isinstance(wanted, int) and not isinstance(wanted, bool):
        return f"{present} AND {value.expr} = {wanted}"
    if value.kind in (INT, TEXT) and isinstance(wanted, str | int) and not isinstance(wanted, bool):
        text = value.expr if value.kind == TEXT else f"CAST({value.expr} AS CHAR)"
        return f"{present} AND CAST({text} AS BINARY) = {_binary(str(wanted))}"
    return None


_ORDERED = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _ordered(value: Value, op: str, wanted: Any) -> str | None:
    """lt/le/gt/ge of int, text (UTF-8 bytes order as code points do), dates and naive date-times."""
    sign = _ORDERED[op]
    present = f"{value.expr} IS NOT NULL"
    if value.kind == INT and isinstance(wanted, int) and not isinstance(wanted, bool):
        return f"{present} AND {value.expr} {sign} {wanted}"
    if value.kind == TEXT and isinstance(wanted, str):
        return f"{present} AND CAST({value.expr} AS BINARY) {sign} {_binary(wanted)}"
    if value.kind == NAIVE and isinstance(wanted, datetime) and wanted.tzinfo is None:
        return f"{present} AND {value.expr} {sign} TIMESTAMP'{wanted}'"
    if value.kind == DATE and isinstance(wanted, date) and not isinstance(wanted, datetime):
        return f"{present} AND {value.expr} {sign} DATE'{wanted.isoformat()}'"
    return None
