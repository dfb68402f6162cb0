"""syncd.mapping.columnvalues: kept results and per-hour localising equal the per-value rule."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.config import parse_timezone
from syncd.errors import TransformError
from syncd.mapping import columnvalues


def reference_localize(value: datetime, zone: ZoneInfo) -> datetime | str:
    """The per-value rule: attach the zone, refuse a wall time the round trip through UTC moves."""
    aware = value.replace(tzinfo=zone)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != value:
        return "does not exist"
    return aware


NEAR_CLOCK_CHANGES = [datetime(2024, 3, 10, 2, 30), datetime(2024, 3, 10, 1, 59, 59, 999999),
                      datetime(2024, 3, 10, 3, 0), datetime(2024, 11, 3, 1, 30), datetime(1986, 5, 4, 2, 15),
                      datetime(2024, 10, 6, 2, 10)]
ZONES_WITH_CLOCK_CHANGES = [ZoneInfo(name) for name in ("America/New_York", "Asia/Shanghai",
                                                         "Australia/Lord_Howe", "Europe/Dublin")]


@given(zone=st.sampled_from(ZONES_WITH_CLOCK_CHANGES),
       values=st.lists(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1))
                       | st.sampled_from(NEAR_CLOCK_CHANGES),
                       min_size=1, max_size=20))
def test_localising_in_a_zone_with_clock_changes_follows_the_per_value_rule(
        zone: ZoneInfo, values: list[datetime]) -> None:
    """Hours remembered as free of clock changes give what the per-value check gives, fold included."""
    localize = columnvalues.localizer(zone)
    for value in values + values:
        expected = reference_localize(value, zone)
        if isinstance(expected, str):
            with pytest.raises(TransformError, match=expected):
                localize(value)
        else:
            got = localize(value)
            assert (got, got.fold, got.tzinfo) == (expected, expected.fold, expected.tzinfo)


class TestMemoizedColumns:
    """Transforms and value maps are kept per distinct input; errors and mutable results are not."""

    def test_repeated_inputs_give_the_first_result(self) -> None:
        calls: list[Any] = []
        change = columnvalues.memoized(lambda value: calls.append(value) or f"<{value}>")
        assert [change(v) for v in ("a", "b", "a", 7, 7, 7.5, 7.5)] == ["<a>", "<b>", "<a>", "<7>", "<7>",
                                                                         "<7.5>", "<7.5>"]
        assert calls == ["a", "b", 7, 7.5, 7.5]  # floats are not kept

    def test_true_is_not_one(self) -> None:
        change = columnvalues.memoized(repr)
        assert (change(1), change(True), change(1)) == ("1", "True", "1")

    def test_errors_and_mutable_results_are_computed_again(self) -> None:
        calls: list[Any] = []

        def change(value: Any) -> Any:
            calls.append(value)
            if value == "bad":
                raise TransformError("no")
            return {"value": value}

        run = columnvalues.memoized(change)
        for _ in range(2):
            with pytest.raises(TransformError):
                run("bad")
        assert run("ok") is not run("ok")
        assert calls == ["bad", "bad", "ok", "ok"]

    def test_a_column_of_seldom_repeated_values_stops_keeping(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Full, with fewer repeats than kept values: the kept values go, none are kept again."""
        monkeypatch.setattr(columnvalues, "MEMO_SIZE", 3)
        calls: list[Any] = []
        run = columnvalues.memoized(lambda value: calls.append(value) or value.upper())
        for value in ("a", "b", "c", "d", "d", "a"):
            assert run(value) == value.upper()
        assert calls == ["a", "b", "c", "d", "d", "a"]

    def test_a_full_column_of_repeated_values_goes_on_keeping(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(columnvalues, "MEMO_SIZE", 2)
        calls: list[Any] = []
        run = columnvalues.memoized(lambda value: calls.append(value) or value.upper())
        for value in ("a", "b", "a", "a", "b", "c", "a", "c"):
            assert run(value) == value.upper()
        assert calls == ["a", "b", "c", "c"]


EDGE_ZONES = [ZoneInfo("America/New_York"), ZoneInfo("Asia/Shanghai"), ZoneInfo("America/Phoenix"),
              *(parse_timezone(text) for text in ("-05:00", "+08:00", "+14:00", "-12:00", "UTC"))]


@given(zone=st.sampled_from(EDGE_ZONES),
       value=st.datetimes(min_value=datetime(9999, 12, 30), max_value=datetime.max)
       | st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 2)))
def test_a_wall_time_outside_years_1_to_9999_in_utc_is_refused(zone: tzinfo, value: datetime) -> None:
    """The forever date 9999-12-31 west of UTC (or year 1 east of it) is a TransformError (a dead
    letter), never an OverflowError, and every other value is read as the per-value rule reads it."""
    localize = columnvalues.localizer(zone)
    try:
        value.replace(tzinfo=zone).astimezone(UTC)
    except OverflowError:
        with pytest.raises(TransformError, match="outside years 1 to 9999"):
            localize(value)
        return
    assert localize(value) == value.replace(tzinfo=zone)
