"""The built-in value transforms that mappings name in `transform:`.

Each transform is built once, when a mapping is compiled, by `build_transform(name, args, ctx)`
and returns a plain function of one value. Those functions are pure and deterministic: no I/O,
no clock, no logging, no randomness. Arguments are checked at build time (TransformArgsError,
a configuration mistake); a value that cannot be converted raises TransformError at run time
(the row change becomes a dead letter).

Shared policies (docs/mappings.md is the reference for DBAs):
- None in -> None out, except for the combining transforms (coalesce, concat), which receive
  the tuple of several source columns.
- Money and numbers are exact: results are int or decimal.Decimal, never float. Float inputs
  are refused ("float input is not exact"), except by to_decimal, which reads them via repr().
- Text is NFKC-normalised before it is read as a number, an amount, a flag, a phone or a date,
  so full-width digits and punctuation (`１，２９９．５０`) read like ASCII ones.
- Error reasons name the transform and show the offending value, truncated to 60 characters.

The module is long because it is the catalogue: one small builder per transform a DBA can name,
each beside its argument checks, so the reference in docs/mappings.md maps onto one file.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from syncd.errors import TransformArgsError, TransformError
from syncd.model import JsonArray

Transform = Callable[[Any], Any]


@dataclass(frozen=True)
class TransformContext:
    """What transforms may need from the configuration, handed over at build time."""

    secret: Callable[[str, str], str]
    """secret(kind, name) -> value; kind is "env" or "file". Used by `hash` for its salt."""
    source_timezone: tzinfo
    """How the source's naive DATETIME values are to be read (default `from` of `timezone`)."""


@dataclass(frozen=True)
class TransformDef:
    """What a transform is called, what it accepts and what it produces."""

    name: str
    summary: str
    params: tuple[str, ...]
    """Accepted argument names; the first is the one a scalar shorthand fills."""
    required: tuple[str, ...]
    output: str
    """"any", "text", "int", "decimal", "bool", "date", "datetime", "bytes" or "json"."""
    multi_input: bool
    """True when the transform takes the tuple of several source columns (`from: [a, b]`)."""
    private: bool = False
    """True when it hides its input (masks, hashes): a column read only through such transforms is
    never kept in clear outside the source (dead letters keep what the mapping publishes)."""


TRANSFORMS: dict[str, TransformDef] = {}

# --------------------------------------------------------------------------- registry

_REQUIRED = object()
_UNSET = None
"""Default of optional arguments that have no natural default value."""

Builder = Callable[[dict[str, Any], TransformContext], Transform]


@dataclass(frozen=True)
class _Param:
    name: str
    check: Callable[[Any], Any]
    """Validates a YAML argument value and returns it converted; raises ValueError."""
    default: Any = _REQUIRED


_PARAMS: dict[str, tuple[_Param, ...]] = {}
_BUILDERS: dict[str, Builder] = {}


def _transform(name: str, summary: str, output: str, *params: _Param,
               multi_input: bool = False, private: bool = False) -> Callable[[Builder], Builder]:
    """Register a builder: (checked arguments, context) -> the per-value function."""

    def register(build: Builder) -> Builder:
        TRANSFORMS[name] = TransformDef(
            name=name,
            summary=summary,
            params=tuple(p.name for p in params),
            required=tuple(p.name for p in params if p.default is _REQUIRED),
            output=output,
            multi_input=multi_input,
            private=private,
        )
        _PARAMS[name] = params
        _BUILDERS[name] = build
        return build

    return register


def _simple(name: str, summary: str, output: str, private: bool = False) -> Callable[[Transform], Transform]:
    """Register an argument-less transform from its per-value function (None passes through)."""

    def register(func: Transform) -> Transform:
        _transform(name, summary, output, private=private)(lambda _args, _ctx: _nullsafe(func))
        return func

    return register


def build_transform(name: str, args: dict[str, Any], ctx: TransformContext) -> Transform:
    """The function for transform `name` with YAML arguments `args`.

    `args` is {} for a bare name, {primary: scalar} for the `{name: scalar}` shorthand, or a dict
    of named arguments. A non-dict `args` is taken as the shorthand value. Raises
    TransformArgsError for an unknown name or a missing, unknown or invalid argument.
    """
    if not isinstance(name, str) or name not in TRANSFORMS:
        raise TransformArgsError(f"unknown transform {name!r}{_unknown_hint(name)}")
    params = _PARAMS[name]
    given = _as_arg_dict(name, params, args)
    return _BUILDERS[name](_checked_args(name, params, given), ctx)


def checked_args(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """The arguments `build_transform` hands the builder of `name`, defaults filled in (the SQL
    form of a transform reads them: syncd/reconcile/columnsql.py)."""
    params = _PARAMS[name]
    return _checked_args(name, params, _as_arg_dict(name, params, args))


def chain(funcs: Sequence[Transform]) -> Transform:
    """Compose transforms left to right: chain([f, g])(x) == g(f(x))."""
    steps = tuple(funcs)
    if len(steps) == 1:  # the common case: no call more per value
        return steps[0]

    def run(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value

    return run


def _unknown_hint(name: object) -> str:
    guess = _closest(str(name).lower().replace("-", "_"), TRANSFORMS)
    return guess or "; known transforms: " + ", ".join(sorted(TRANSFORMS))


def _closest(word: str, choices: Any) -> str:
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {found[0]!r}?" if found else ""


def _as_arg_dict(name: str, params: tuple[_Param, ...], args: Any) -> dict[Any, Any]:
    if args is None:
        return {}
    if isinstance(args, Mapping):
        return dict(args)
    if not params:
        raise TransformArgsError(f"transform {name!r} takes no arguments, got {args!r}")
    return {params[0].name: args}


def _checked_args(name: str, params: tuple[_Param, ...], given: dict[Any, Any]) -> dict[str, Any]:
    accepted = [p.name for p in params]
    for key, value in given.items():
        if not accepted:
            raise TransformArgsError(f"transform {name!r} takes no arguments, got {value!r}")
        if key not in accepted:
            raise TransformArgsError(_unknown_arg_message(name, key, accepted))
    values: dict[str, Any] = {}
    for param in params:
        if param.name not in given:
            if param.default is _REQUIRED:
                raise TransformArgsError(f"transform {name!r} needs argument {param.name!r}")
            values[param.name] = param.default
            continue
        try:
            values[param.name] = param.check(given[param.name])
        except ValueError as exc:
            problem = f"transform {name!r}, argument {param.name!r}: {exc}"
            raise TransformArgsError(problem) from None
    return values


def _unknown_arg_message(name: str, key: Any, accepted: list[str]) -> str:
    hint = _closest(str(key), accepted)
    return f"transform {name!r} has no argument {key!r}{hint} (accepted: {', '.join(accepted)})"


# --------------------------------------------------------------------------- argument checks


def _whole_between(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be a whole number from {low} to {high}, got {value!r}")
        return value

    return check


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _any_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be text, got {value!r}")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty name, got {value!r}")
    return value


def _one_char(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 1:
        raise ValueError(f"must be exactly one character, got {value!r}")
    return value


def _choice(*options: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {value!r}")
        return value

    return check


_OFFSET = re.compile(r"([+-])([0-9]{2}):?([0-9]{2})")


def _zone(value: Any) -> tzinfo:
    """A zone name ("Asia/Shanghai", "UTC") or a fixed offset ("+08:00", "-0530")."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a time zone name like 'Asia/Shanghai' or an offset like "
                         f"'+08:00' in quotes, got {value!r}")
    if value.upper() in ("UTC", "Z"):
        return UTC
    offset = _OFFSET.fullmatch(value)
    if offset:
        return _fixed_offset(value, *offset.groups())
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        hint = _closest(value, available_timezones())
        raise ValueError(f"unknown time zone {value!r}{hint}") from None


def _fixed_offset(text: str, sign: str, hours: str, minutes: str) -> tzinfo:
    if int(hours) > 23 or int(minutes) > 59:
        raise ValueError(f"offset {text!r} is out of range")
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    return timezone(-delta if sign == "-" else delta)


_SAMPLE_TIME = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)


def _date_format(value: Any) -> str:
    """A strftime/strptime format with at least one directive that can read its own output."""
    if not isinstance(value, str) or "%" not in value:
        raise ValueError(f"must be a format such as '%Y-%m-%d', got {value!r}")
    try:
        datetime.strptime(_SAMPLE_TIME.strftime(value), value)
    except ValueError as exc:
        raise ValueError(f"format {value!r} does not work: {exc}") from None
    return value


def _print_format(value: Any) -> str:
    if not isinstance(value, str) or "%" not in value:
        raise ValueError(f"must be a format such as '%Y-%m-%d', got {value!r}")
    return value


# --------------------------------------------------------------------------- value helpers

_SHOW_LIMIT = 60


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 3] + "..."


def _fail(who: str, problem: str, value: Any) -> TransformError:
    return TransformError(f"{who}: {problem}: {_show(value)}")


def _nullsafe(func: Transform) -> Transform:
    def apply(value: Any) -> Any:
        return None if value is None else func(value)

    return apply


def _text(who: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(who, f"expected text, got {type(value).__name__}", value)
    return value


def _normal(text: str) -> str:
    """NFKC (full-width -> ASCII), U+2212 minus -> '-', surrounding whitespace removed."""
    return unicodedata.normalize("NFKC", text).replace("\u2212", "-").strip()


_EDGE_SPACE = re.compile(r"^[\s\u200b\ufeff]+|[\s\u200b\ufeff]+$")


def _strip(text: str) -> str:
    return _EDGE_SPACE.sub("", text)


def _is_blank(value: Any) -> bool:
    return isinstance(value, str) and not _strip(value)


_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)")


def _exact(who: str, value: Any) -> Decimal:
    """int, finite Decimal or plain numeric text ("-12.50", full-width too) -> Decimal."""
    if isinstance(value, bool):
        raise _fail(who, "a boolean is not a number", value)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return _finite(who, value)
    if isinstance(value, float):
        raise _fail(who, "float input is not exact", value)
    text = _normal(_text(who, value))
    if not _PLAIN_NUMBER.fullmatch(text):
        raise _fail(who, "not a number", value)
    return Decimal(text)


def _finite(who: str, value: Decimal) -> Decimal:
    if not value.is_finite():
        raise _fail(who, "not a finite number", value)
    return value


def _whole(who: str, number: Decimal, original: Any, problem: str = "not a whole number") -> int:
    if number != number.to_integral_value():
        raise _fail(who, problem, original)
    return int(number)


_EXACT = Context(prec=400, rounding=ROUND_HALF_UP)


def _quantize(who: str, number: Decimal, scale: int | None, original: Any) -> Decimal:
    if scale is None:
        return number
    try:
        return number.quantize(Decimal((0, (1,), -scale)), context=_EXACT)
    except InvalidOperation:
        raise _fail(who, f"too many digits for scale {scale}", original) from None


# --------------------------------------------------------------------------- text

_simple("strip", "remove whitespace (also full-width space, zero-width space, BOM) at both ends",
        "text")(lambda value: _strip(_text("strip", value)))
_simple("lower", "lower-case text", "text")(lambda value: _text("lower", value).lower())
_simple("upper", "upper-case text", "text")(lambda value: _text("upper", value).upper())
_simple("null_if_empty", "empty or whitespace-only text -> NULL; everything else unchanged",
        "any")(lambda value: None if _is_blank(value) else value)


# --------------------------------------------------------------------------- money

_AMOUNT = re.compile(
    r"""(?P<sign1>[+-]?) \s* (?:¥|RMB|CNY)? \s* (?P<sign2>[+-]?) \s*
        (?P<number>[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)? | [0-9]+(?:\.[0-9]+)? | \.[0-9]+)
        \s* (?:元|圆|RMB|CNY)?""",
    re.VERBOSE | re.IGNORECASE,
)


def _amount(who: str, value: Any) -> Decimal:
    """Money text in 元 ("¥1,299.50", "100元", "RMB 12"), int or Decimal -> exact Decimal."""
    if not isinstance(value, str):
        return _exact(who, value)
    text = _normal(value)
    if not text:
        raise _fail(who, "empty amount", value)
    found = _AMOUNT.fullmatch(text)
    if not found or (found["sign1"] and found["sign2"]):
        raise _fail(who, "not an amount in 元", value)
    sign = found["sign1"] or found["sign2"]
    return Decimal(sign + found["number"].replace(",", ""))


@_transform("parse_amount", "money text in 元 ('¥1,299.50', '100元', '１００元') -> exact decimal",
            "decimal", _Param("scale", _whole_between(0, 30), _UNSET))
def _build_parse_amount(args: dict[str, Any], _ctx: TransformContext) -> Transform:
    scale = args["scale"]
    return _nullsafe(lambda value: _quantize("parse_amount", _amount("parse_amount", value),
                                             scale, value))


def _fen_to_yuan(value: Any) -> Decimal:
    fen = _whole("fen_to_yuan", _exact("fen_to_yuan", value), value, "not a whole number of 分")
    return Decimal(f"{fen}e-2")


def _yuan_to_fen(value: Any) -> int:
    sign, digits, exponent = _amount("yuan_to_fen", value).as_tuple()
    assert isinstance(exponent, int)
    fen = Decimal((sign, digits, exponent + 2))
    return _whole("yuan_to_fen", fen, value, "more than 2 decimal places (below 1 分)")


_simple("fen_to_yuan", "whole 分 (cents) -> yuan with 2 decimal places: 12345 -> 123.45",
        "decimal")(_fen_to_yuan)
_simple("yuan_to_fen", "amount in 元 -> whole 分 (cents), exact: '123.45' -> 12345",
        "int")(_yuan_to_fen)


# --------------------------------------------------------------------------- masking

_MOBILE = re.compile(r"(?:\+86|0086|86)?(1[3-9][0-9]{9})")
_PHONE_NOISE = re.compile(r"[\s-]")
_DIGITS = frozenset("0123456789")


def _mask_phone(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text = unicodedata.normalize("NFKC", _text("mask_phone", value))
    mobile = _MOBILE.fullmatch(_PHONE_NOISE.sub("", text))
    if mobile:
        number = mobile.group(1)
        return number[:3] + "****" + number[-4:]
    return _mask_other_number(text)


def _mask_other_number(text: str) -> str:
    """Keep the first 2 and last 2 digits in place; every other character becomes '*'."""
    places = [i for i, c in enumerate(text) if c in _DIGITS]
    if len(places) < 5:
        return "*" * len(text)
    keep = set(places[:2] + places[-2:])
    return "".join(c if i in keep else "*" for i, c in enumerate(text))


_simple("mask_phone", "China mobile -> 138****5678; other numbers keep 2 first and 2 last digits",
        "text", private=True)(_mask_phone)


@_transform("mask", "keep the first/last N characters, replace the rest with a mask character",
            "text", _Param("keep_first", _whole_between(0, 1000), 0),
            _Param("keep_last", _whole_between(0, 1000), 0), _Param("char", _one_char, "*"), private=True)
def _build_mask(args: dict[str, Any], _ctx: TransformContext) -> Transform:
    first, last, char = args["keep_first"], args["keep_last"], args["char"]

    def mask(value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        text = _text("mask", value)
        hidden = len(text) - first - last
        if hidden <= 0:
            return char * len(text)
        return text[:first] + char * hidden + text[len(text) - last:]

    return _nullsafe(mask)


@_transform("hash", "salted SHA-256 hex of the value (a stable pseudonym for joining)", "text",
            _Param("salt_env", _name, _UNSET), _Param("salt_file", _name, _UNSET),
            _Param("length", _whole_between(8, 64), 64), private=True)
def _build_hash(args: dict[str, Any], ctx: TransformContext) -> Transform:
    salted = hashlib.sha256(_salt(args, ctx).encode("utf-8"))
    length = args["length"]

    def digest(value: Any) -> str:
        state = salted.copy()
        state.update(_hash_input(value))
        return state.hexdigest()[:length]

    return _nullsafe(digest)


def _salt(args: dict[str, Any], ctx: TransformContext) -> str:
    env, file = args["salt_env"], args["salt_file"]
    if (env is None) == (file is None):
        raise TransformArgsError("transform 'hash' needs exactly one of salt_env (an environment "
                                 "variable name) or salt_file (a file path)")
    kind, ref = ("env", env) if env is not None else ("file", file)
    try:
        salt = ctx.secret(kind, ref)
    except (LookupError, OSError, TransformArgsError) as exc:
        raise TransformArgsError(f"transform 'hash': cannot read the salt from {kind} {ref!r}: "
                                 f"{exc}") from None
    if not isinstance(salt, str) or not salt:
        raise TransformArgsError(f"transform 'hash': the salt from {kind} {ref!r} is empty")
    return salt


def _hash_input(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise _fail("hash", f"cannot hash a {type(value).__name__}", value)
    try:
        return str(value).encode("utf-8")
    except UnicodeEncodeError:
        raise _fail("hash", "text is not valid Unicode", value) from None


# --------------------------------------------------------------------------- types

_WORDS = {
    "1": True, "0": False, "true": True, "false": False, "yes": True, "no": False,
    "y": True, "n": False, "t": True, "f": False, "是": True, "否": False,
}
_BIT = {b"\x01": True, b"\x00": False}


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal) and _is_zero_or_one(value):
        return bool(value)
    word = _WORDS.get(_normal(value).lower()) if isinstance(value, str) else None
    if word is not None:
        return word
    if isinstance(value, bytes) and value in _BIT:
        return _BIT[value]
    raise _fail("to_bool", "not a yes/no value", value)


def _is_zero_or_one(number: int | Decimal) -> bool:
    return (not isinstance(number, Decimal) or number.is_finite()) and number in (0, 1)


def _to_int(value: Any) -> int:
    return _whole("to_int", _exact("to_int", value), value)


_simple("to_bool", "1/0, true/false, yes/no, y/n, t/f, 是/否 -> boolean", "bool")(_to_bool)
_simple("to_int", "whole number (int, decimal or text, full-width too) -> integer", "int")(_to_int)


@_transform("to_decimal", "number (int, decimal, text; float via its shortest repr) -> decimal",
            "decimal", _Param("scale", _whole_between(0, 30), _UNSET))
def _build_to_decimal(args: dict[str, Any], _ctx: TransformContext) -> Transform:
    scale = args["scale"]
    return _nullsafe(lambda value: _quantize("to_decimal", _decimal(value), scale, value))


def _decimal(value: Any) -> Decimal:
    if isinstance(value, float):
        return _finite("to_decimal", Decimal(repr(value)))
    return _exact("to_decimal", value)


# --------------------------------------------------------------------------- dates and times


@_transform("timezone", "read naive date-times in zone `from`, return them aware in zone `to`",
            "datetime", _Param("from", _zone, _UNSET), _Param("to", _zone, UTC))
def _build_timezone(args: dict[str, Any], ctx: TransformContext) -> Transform:
    source: tzinfo = ctx.source_timezone if args["from"] is None else args["from"]
    target: tzinfo = args["to"]

    def convert(value: Any) -> datetime:
        if not isinstance(value, datetime):
            raise _fail("timezone", f"expected a date-time, got {type(value).__name__}", value)
        aware = value if value.utcoffset() is not None else _localize(value, source)
        try:
            return aware.astimezone(target)
        except (OverflowError, ValueError):
            raise _fail("timezone", "out of the representable range", value) from None

    return _nullsafe(convert)


def _localize(naive: datetime, zone: tzinfo) -> datetime:
    """Attach `zone`; refuse wall times skipped by a clock change (ambiguous: first one)."""
    aware = naive.replace(tzinfo=zone)
    try:
        back = aware.astimezone(UTC).astimezone(zone)
    except (OverflowError, ValueError):
        raise _fail("timezone", "out of the representable range", naive) from None
    if back.replace(tzinfo=None) != naive:
        raise _fail("timezone", f"time does not exist in {zone} (clock change)", naive)
    return aware


datetime.strptime("2000", "%Y")  # import _strptime now, not racily in a pipeline thread


@_transform("parse_date", "text -> date (or date-time with kind: datetime) using a strptime format",
            "date", _Param("format", _date_format),
            _Param("kind", _choice("date", "datetime"), "date"))
def _build_parse_date(args: dict[str, Any], _ctx: TransformContext) -> Transform:
    fmt, want_date = unicodedata.normalize("NFKC", args["format"]), args["kind"] == "date"

    def parse(value: Any) -> date | datetime:
        try:
            parsed = datetime.strptime(_normal(_text("parse_date", value)), fmt)
        except ValueError:
            raise _fail("parse_date", f"does not match format {fmt!r}", value) from None
        return parsed.date() if want_date else parsed

    return _nullsafe(parse)


@_transform("date_format", "date or date-time -> text using a strftime format", "text",
            _Param("format", _print_format))
def _build_date_format(args: dict[str, Any], _ctx: TransformContext) -> Transform:
    fmt = args["format"]

    def render(value: Any) -> str:
        if not isinstance(value, date):
            raise _fail("date_format", f"expected a date, got {type(value).__name__}", value)
        return value.strftime(fmt)

    return _nullsafe(render)


# --------------------------------------------------------------------------- several columns


def _columns(who: str, values: Any) -> tuple[Any, ...]:
    if not isinstance(values, tuple | list):
        raise _fail(who, "needs several source columns (from: [a, b])", values)
    return tuple(values)


@_transform("coalesce", "the first value that is not NULL (of several source columns)", "any",
            _Param("skip_empty", _flag, False), multi_input=True)
def _build_coalesce(args: dict[str, Any], _ctx: TransformContext) -> Transform:
    skip_empty = args["skip_empty"]

    def first(values: Any) -> Any:
        for value in _columns("coalesce", values):
            if value is not None and not (skip_empty and _is_blank(value)):
                return value
        return None

    return _nullsafe(first)


@_transform("concat", "join several source columns as text with a separator", "text",
            _Param("sep", _any_text, ""), _Param("skip_null", _flag, True),
            _Param("skip_empty", _flag, False), multi_input=True)
def _build_concat(args: dict[str, Any], _ctx: TransformContext) -> Transform:
    sep, skip_null, skip_empty = args["sep"], args["skip_null"], args["skip_empty"]

    def skipped(value: Any) -> bool:
        return (value is None and skip_null) or (skip_empty and _is_blank(value))

    def join(values: Any) -> str | None:
        parts = _columns("concat", values)
        kept = [_concat_text(v) for v in parts if not skipped(v)]
        if all(v is None for v in parts) or not kept:
            return None
        return sep.join(kept)

    return _nullsafe(join)


def _concat_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise _fail("concat", "bytes are not UTF-8 text", value) from None
    return str(value)


# --------------------------------------------------------------------------- JSON

_MISSING = object()
_PATH_STEP = re.compile(r"""\.([^.\[\]'"]+)|\[([0-9]+)\]|\['([^']*)'\]|\["([^"]*)"\]""")


def _json_path(value: Any) -> tuple[str | int, ...]:
    """'$.a.b[0].c', "$['odd.key']" or 'a.b.0.c' -> ('a', 'b', 0, 'c')."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a path like '$.a.b[0].c' or 'a.b.0.c', got {value!r}")
    text = value.strip()
    rest = text[1:] if text.startswith("$") else "." + text
    steps: list[str | int] = []
    at = 0
    while at < len(rest):
        step = _PATH_STEP.match(rest, at)
        if not step:
            raise ValueError(f"cannot read path {value!r} near {rest[at:]!r}; "
                             "write it like '$.a.b[0].c' or 'a.b.0.c'")
        name, index, single, double = step.groups()
        steps.append(int(index) if index is not None else next(
            s for s in (name, single, double) if s is not None))
        at = step.end()
    return tuple(steps)


def _no_constant(word: str) -> Any:
    raise ValueError(f"{word} is not valid JSON")


_JSON = json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constant)
"""What `json.loads(text, parse_float=Decimal, parse_constant=_no_constant)` builds per call."""


def _load_json(value: Any) -> Any:
    if isinstance(value, dict | list):
        return value
    if not isinstance(value, str | bytes | bytearray):
        raise _fail("json_get", f"expected JSON text, got {type(value).__name__}", value)
    try:
        if isinstance(value, str) and not value.startswith("\ufeff"):  # json.loads refuses a BOM
            return _JSON.decode(value)
        return json.loads(value, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise _fail("json_get", "invalid JSON", value) from None


def _step(node: Any, key: str | int) -> Any:
    if isinstance(node, dict):
        text = str(key)
        if text in node:
            return node[text]
        return node.get(text.encode("utf-8"), _MISSING)
    if isinstance(node, list) and re.fullmatch("[0-9]+", str(key)):
        index = int(key)
        return node[index] if index < len(node) else _MISSING
    return _MISSING


def _plain_json(node: Any) -> Any:
    """Binlog JSON quirks removed: bytes keys/strings -> str, floats -> Decimal; arrays are
    `JsonArray`s, so that the sink writes them as JSON (objects are dicts)."""
    if isinstance(node, dict):
        return {_plain_json(k): _plain_json(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return JsonArray(_plain_json(v) for v in node)
    if isinstance(node, bytes):
        try:
            return node.decode("utf-8")
        except UnicodeDecodeError:
            raise _fail("json_get", "JSON string is not UTF-8", node) from None
    if isinstance(node, float):
        return _finite("json_get", Decimal(repr(node)))
    return node


@_transform("json_get", "the value at a path ('$.a.b[0].c') in a JSON document; missing -> NULL",
            "json", _Param("path", _json_path))
def _build_json_get(args: dict[str, Any], _ctx: TransformContext) -> Transform:
    path = args["path"]

    def get(value: Any) -> Any:
        node = _load_json(value)
        for key in path:
            node = _step(node, key)
            if node is _MISSING:
                return None
        return _plain_json(node)

    return _nullsafe(get)
