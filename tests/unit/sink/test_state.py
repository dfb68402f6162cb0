"""Unit tests for syncd.sink.state.row_image_json: row images as JSON text PostgreSQL's jsonb accepts."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from syncd.sink.state import row_image_json


def strings(value: Any) -> list[str]:
    """Every string in a decoded JSON value, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *strings(v)]]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def decoded(row: dict[str, Any]) -> Any:
    """The row image as PostgreSQL would store it, after checking jsonb could accept the text."""
    text = row_image_json(row)
    assert "\x00" not in text
    value = json.loads(text)
    assert not any("\x00" in s for s in strings(value)), "the text holds a \\u0000 escape jsonb refuses"
    return value


class TestRowImageJson:
    def test_plain_values_are_json_values(self) -> None:
        """ints, text, booleans, NULL and floats are written as themselves."""
        row = {"id": 5, "name": "x", "flag": True, "gone": None, "ratio": 0.5}
        assert decoded(row) == row

    def test_decimal_keeps_every_digit(self) -> None:
        """A DECIMAL becomes its exact text, trailing zeros included."""
        assert decoded({"amount": Decimal("1299.50"), "big": Decimal("12345678901234567890.000001")}) == {
            "amount": "1299.50", "big": "12345678901234567890.000001"}

    def test_dates_and_times_are_iso_text(self) -> None:
        """datetime, date and time become ISO 8601 text, fractions and offsets kept."""
        row = {"at": datetime(2024, 5, 1, 10, 0, 5, 123456), "aware": datetime(2024, 5, 1, tzinfo=UTC),
               "day": date(2024, 2, 29), "clock": time(23, 59, 59, 500000)}
        assert decoded(row) == {"at": "2024-05-01T10:00:05.123456", "aware": "2024-05-01T00:00:00+00:00",
                                "day": "2024-02-29", "clock": "23:59:59.500000"}

    def test_timedelta_is_seconds(self) -> None:
        """A TIME read as a duration becomes its number of seconds, negative ones too."""
        assert decoded({"d": timedelta(hours=-1, seconds=-30), "e": timedelta(seconds=1.5)}) == {
            "d": -3630.0, "e": 1.5}

    def test_bytes_are_hex(self) -> None:
        """Binary values become PostgreSQL-style \\x hex text."""
        assert decoded({"b": b"\x00\xff\x10", "ba": bytearray(b"AB"), "empty": b""}) == {
            "b": "\\x00ff10", "ba": "\\x4142", "empty": "\\x"}

    def test_sets_are_sorted_lists(self) -> None:
        """A SET column's value becomes a sorted list."""
        assert decoded({"tags": {"b", "c", "a"}, "frozen": frozenset({"z", "y"})}) == {
            "tags": ["a", "b", "c"], "frozen": ["y", "z"]}

    def test_other_objects_become_text(self) -> None:
        """Anything else is written as its text."""
        class Odd:
            def __str__(self) -> str:
                return "odd"

        assert decoded({"o": Odd()}) == {"o": "odd"}

    def test_nul_characters_are_made_visible(self) -> None:
        """A NUL becomes the six characters \\u0000, in values and keys, so jsonb accepts the text."""
        assert decoded({"s": "n\x00ul\x00", "k\x00": 1}) == {"s": "n\\u0000ul\\u0000", "k\\u0000": 1}

    def test_nul_inside_nested_json_values(self) -> None:
        """NULs inside a JSON column's nested lists and objects are handled too."""
        assert decoded({"j": {"a": ["x\x00"]}}) == {"j": {"a": ["x\\u0000"]}}

    def test_cjk_and_emoji_are_kept_as_characters(self) -> None:
        """Chinese text and emoji are written as themselves, not as \\u escapes."""
        row = {"name": "张三", "note": "已支付 🎉", "astral": "𠀀"}
        text = row_image_json(row)
        assert "张三" in text and "🎉" in text and "𠀀" in text
        assert "\\u" not in text
        assert json.loads(text) == row

    def test_control_characters_other_than_nul_survive(self) -> None:
        """Tabs, newlines and other control characters round-trip exactly."""
        row = {"s": "a\tb\nc\x01d\x1f"}
        assert decoded(row) == row

    def test_text_that_spells_a_nul_escape(self) -> None:
        """Text that literally holds a backslash and 'u0000' is kept as that text."""
        row = {"path": "C:\\u0000\\dir"}
        assert decoded(row) == row

    @given(st.dictionaries(st.text(max_size=5), st.text().filter(lambda s: "\\" not in s), max_size=4))
    def test_any_text_is_accepted_and_round_trips_without_nul(self, row: dict[str, str]) -> None:
        """Any text gives JSON jsonb accepts; text without NUL comes back unchanged."""
        value = decoded(row)
        assert value == {k.replace("\x00", "\\u0000"): v.replace("\x00", "\\u0000") for k, v in row.items()}
