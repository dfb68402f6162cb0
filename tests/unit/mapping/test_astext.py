"""The text a value is stored as in a text column (syncd/mapping/astext.py): readable back to
the same value, PostgreSQL's spelling (checked against the server in
tests/integration/test_text_targets.py)."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from syncd.mapping.astext import as_text
from syncd.model import JsonArray, Undecodable


@given(st.datetimes())
def test_a_timestamp_reads_back_and_has_no_trailing_zeros(value: datetime) -> None:
    text = as_text(value)
    assert datetime.fromisoformat(text) == value
    assert not ("." in text and text.endswith("0"))


@given(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 1, 1)),
       st.integers(-14 * 60, 14 * 60))
def test_an_instant_is_written_in_utc(value: datetime, minutes: int) -> None:
    aware = value.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    text = as_text(aware)
    assert text.endswith("+00")
    assert datetime.fromisoformat(text + ":00") == aware


@given(st.timedeltas(min_value=-timedelta(hours=838, minutes=59, seconds=59),
                     max_value=timedelta(hours=838, minutes=59, seconds=59)))
def test_a_duration_is_written_as_mysql_prints_a_time(value: timedelta) -> None:
    text = as_text(value)
    sign = -1 if text.startswith("-") else 1
    hours, minutes, seconds = text.lstrip("-").split(":")
    total = timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds))
    assert abs(sign * total - value) < timedelta(microseconds=1)
    assert len(minutes) == 2 and len(hours) >= 2


@given(st.floats())
def test_a_float_reads_back(value: float) -> None:
    text = as_text(value)
    if math.isnan(value):
        assert text == "NaN"
    else:
        assert float(text) == value
        assert not text.endswith(".0")


@given(st.decimals(allow_nan=False, places=None))
def test_a_decimal_keeps_its_scale(value: Decimal) -> None:
    text = as_text(value)
    assert Decimal(text) == value
    assert "E" not in text.upper()


def test_the_other_kinds() -> None:
    assert as_text(True) == "true" and as_text(False) == "false"
    assert as_text(12) == "12"
    assert as_text(Decimal("100.50")) == "100.50"
    assert as_text(Decimal("Infinity")) == "Infinity" and as_text(float("-inf")) == "-Infinity"
    assert as_text(date(2024, 5, 1)) == "2024-05-01"
    assert as_text(time(12, 30, 45, 500000)) == "12:30:45.5"
    assert as_text(b"AB\0") == "\\x414200"
    assert as_text(datetime(2024, 5, 1, 4, 30, tzinfo=UTC)) == "2024-05-01 04:30:00+00"
    assert as_text({"a": [1, "é"]}) == '{"a": [1, "é"]}'


def test_text_null_and_markers_are_left_alone() -> None:
    marker = Undecodable("name", "gbk", "A2", "cannot be converted")
    assert as_text("abc") == "abc" and as_text(None) is None and as_text(marker) is marker


_JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.text() | st.decimals(allow_nan=False,
                                                                                   allow_infinity=False)
_JSON = st.recursive(_JSON_LEAVES, lambda inner: st.lists(inner, max_size=4).map(JsonArray)
                     | st.dictionaries(st.text(), inner, max_size=4), max_leaves=12)


@given(st.dictionaries(st.text(), _JSON, max_size=4) | st.lists(_JSON, max_size=4).map(JsonArray))
def test_a_json_object_or_array_is_json_text_with_its_exact_numbers(value: dict | JsonArray) -> None:
    """`json_get` gives exact decimals inside objects and arrays; json.dumps refused them."""
    text = as_text(value)
    assert json.loads(text, parse_float=Decimal) == value


def test_json_text_is_written_like_a_mysql_json_column() -> None:
    value = {"b": JsonArray([1, Decimal("2.50"), {"c": "x\t"}]), "名": None}
    assert as_text(value) == '{"b": [1, 2.50, {"c": "x\\t"}], "名": null}'
