"""Unit tests for syncd.mapping.filters: `where:` semantics, NULLs and lenient equality."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.errors import TransformError
from syncd.mapping.filters import build_filter, values_equal
from syncd.mapping.spec import Condition
from syncd.yamlfile import Where

HERE = Where("m.yaml", 1, 1)


def holds(op: str, wanted: Any, value: Any, column: str = "c") -> bool:
    """Whether a one-condition filter keeps a row whose column holds value."""
    test = build_filter([Condition(column, op, wanted, HERE)])
    assert test is not None
    return test({column: value})


class TestValuesEqual:
    @pytest.mark.parametrize("value", [0, "0", Decimal("0"), Decimal("0.00"), 0.0, False])
    def test_yaml_zero_matches_numbers_and_text(self, value: Any) -> None:
        """YAML `0` matches a source 0, '0', a decimal zero and a false flag."""
        assert values_equal(value, 0)

    @pytest.mark.parametrize(("value", "wanted"), [("0", 0), (0, "0"), ("已支付", "已支付"), (10, "10")])
    def test_text_form_matches(self, value: Any, wanted: Any) -> None:
        """Values with the same text are equal whichever side is text."""
        assert values_equal(value, wanted)

    @pytest.mark.parametrize(("value", "wanted"), [(None, 0), (0, None), ("", None), (None, "None")])
    def test_null_equals_only_null(self, value: Any, wanted: Any) -> None:
        """NULL is equal to nothing but NULL, not even to the text 'None'."""
        assert not values_equal(value, wanted)
        assert values_equal(None, None)

    @pytest.mark.parametrize(("value", "wanted"), [(1, 0), ("01", 1), ("1.0", 1), ("a", "A")])
    def test_different_values(self, value: Any, wanted: Any) -> None:
        """Different numbers and texts that only look alike are not equal."""
        assert not values_equal(value, wanted)

    @given(st.integers())
    def test_int_matches_its_text(self, number: int) -> None:
        """Any integer matches its decimal text in either direction."""
        assert values_equal(number, str(number))
        assert values_equal(str(number), number)


class TestEqNe:
    def test_eq(self) -> None:
        """eq holds for an equal value, lenient about '0' vs 0."""
        assert holds("eq", 0, "0")
        assert holds("eq", "shop", "shop")
        assert not holds("eq", 0, 1)

    def test_eq_with_null(self) -> None:
        """eq null holds only for NULL; eq 0 does not hold for NULL."""
        assert holds("eq", None, None)
        assert not holds("eq", None, 0)
        assert not holds("eq", 0, None)

    def test_ne_holds_for_null(self) -> None:
        """ne holds for a different value and for NULL (unlike SQL)."""
        assert holds("ne", 1, 0)
        assert holds("ne", 1, None)
        assert not holds("ne", 1, "1")

    def test_ne_null_is_is_not_null(self) -> None:
        """ne null holds for every non-NULL value."""
        assert holds("ne", None, 0)
        assert not holds("ne", None, None)

    @pytest.mark.parametrize(("op", "wanted"), [
        ("eq", None), ("ne", 1), ("in", [1]), ("not_in", [1]), ("is_null", True), ("gt", 0)])
    def test_missing_column_is_an_error_not_null(self, op: str, wanted: Any) -> None:
        """A filter column absent from the row image (dropped or renamed) raises, never reads as NULL."""
        test = build_filter([Condition("gone", op, wanted, HERE)])
        assert test is not None
        with pytest.raises(TransformError) as caught:
            test({"other": 1})
        assert caught.value.column == "gone"
        assert caught.value.reason == "where: source column 'gone' is not in the row"


class TestInNotIn:
    def test_in(self) -> None:
        """in holds when the value equals one of the list, leniently."""
        assert holds("in", ["已支付", "已发货"], "已发货")
        assert holds("in", [1, 2], "2")
        assert not holds("in", [1, 2], 3)

    def test_in_with_null(self) -> None:
        """NULL is in a list only if the list holds null."""
        assert not holds("in", [1, 2], None)
        assert holds("in", [1, None], None)

    def test_not_in(self) -> None:
        """not_in holds when the value equals none of the list."""
        assert holds("not_in", [1, 2], 3)
        assert not holds("not_in", [1, 2], "1")

    def test_not_in_with_null(self) -> None:
        """NULL is not_in a list unless the list holds null."""
        assert holds("not_in", [1, 2], None)
        assert not holds("not_in", [1, None], None)

    def test_empty_lists(self) -> None:
        """Nothing is in an empty list; everything is not_in it."""
        assert not holds("in", [], 1)
        assert holds("not_in", [], None)


class TestOrdered:
    @pytest.mark.parametrize(("op", "expected"), [("lt", [True, False, False]), ("le", [True, True, False]),
                                                  ("gt", [False, False, True]), ("ge", [False, True, True])])
    def test_comparisons(self, op: str, expected: list[bool]) -> None:
        """lt/le/gt/ge compare the row value with the bound (99, 100, 101 against 100)."""
        assert [holds(op, 100, v) for v in (99, 100, 101)] == expected

    def test_decimal_against_yaml_numbers(self) -> None:
        """A DECIMAL column compares with YAML ints and floats."""
        assert holds("ge", 100, Decimal("100.00"))
        assert holds("lt", 1.5, Decimal("1.25"))

    def test_dates(self) -> None:
        """A DATE column compares with a YAML date; a DATETIME with a YAML date-time."""
        assert holds("ge", date(2024, 1, 1), date(2024, 6, 1))
        assert not holds("lt", datetime(2024, 1, 1), datetime(2024, 1, 1, 0, 0, 1))

    @pytest.mark.parametrize("op", ["lt", "le", "gt", "ge"])
    def test_null_never_holds(self, op: str) -> None:
        """A NULL value never satisfies an ordered comparison."""
        assert not holds(op, 0, None)

    @pytest.mark.parametrize(("wanted", "value"), [
        (100, "99"), ("a", 1), (date(2024, 1, 1), datetime(2024, 1, 2)),
    ])
    def test_type_mismatch_raises_transform_error(self, wanted: Any, value: Any) -> None:
        """Comparing unlike types raises TransformError naming the column and both values."""
        with pytest.raises(TransformError) as caught:
            holds("lt", wanted, value, column="amount")
        assert caught.value.column == "amount"
        assert caught.value.reason.startswith("where.amount: cannot compare the row's ")
        assert f" {value} with the bound {wanted!r}: " in caught.value.reason

    def test_a_bound_written_as_text_is_read_as_the_rows_kind(self) -> None:
        """A quoted bound (YAML text) compares with a date-time, a date or a number as its value."""
        stamp = datetime(2024, 1, 1, 10, tzinfo=UTC)
        assert holds("lt", "2030-01-01 00:00:00+08:00", stamp)
        assert not holds("lt", "2024-01-01 17:59:59+08:00", stamp)
        assert holds("ge", "2024-01-01", date(2024, 1, 1))
        assert holds("gt", "99.5", Decimal("100")) and holds("lt", " 7 ", 3)

    def test_a_naive_bound_for_an_instant_says_what_to_write(self) -> None:
        """A TIMESTAMP (aware) value against a bound without an offset: the reason tells the fix."""
        with pytest.raises(TransformError) as caught:
            holds("lt", datetime(2030, 1, 1), datetime(2024, 1, 1, tzinfo=UTC), column="updated_at")
        assert caught.value.reason == (
            "where.updated_at: cannot compare the row's instant (TIMESTAMP) 2024-01-01 00:00:00+00:00 "
            "with the bound datetime.datetime(2030, 1, 1, 0, 0): a TIMESTAMP column holds instants, "
            "give the bound a UTC offset (2030-01-01 00:00:00+08:00)")


class TestIsNull:
    def test_is_null_true_and_false(self) -> None:
        """is_null: true keeps NULLs only; is_null: false keeps everything else, even ''."""
        assert holds("is_null", True, None)
        assert not holds("is_null", True, "")
        assert holds("is_null", False, "")
        assert holds("is_null", False, 0)
        assert not holds("is_null", False, None)


class TestBuildFilter:
    def test_no_conditions_means_no_filter(self) -> None:
        """Without conditions there is no filter (every row is in scope)."""
        assert build_filter([]) is None

    def test_all_conditions_must_hold(self) -> None:
        """Conditions combine with AND."""
        test = build_filter([Condition("is_test", "eq", 0, HERE), Condition("status", "in", [1, 2], HERE)])
        assert test is not None
        assert test({"is_test": "0", "status": 1})
        assert not test({"is_test": 1, "status": 1})
        assert not test({"is_test": 0, "status": 3})

    def test_a_failing_comparison_is_reached_only_when_needed(self) -> None:
        """A type error in a later condition surfaces when earlier ones hold."""
        test = build_filter([Condition("a", "eq", 1, HERE), Condition("b", "gt", 5, HERE)])
        assert test is not None
        assert not test({"a": 2, "b": "x"})
        with pytest.raises(TransformError):
            test({"a": 1, "b": "x"})
