"""Rows found by their keys (syncd.source.snapshot.keys_condition)."""

from __future__ import annotations

from syncd.source.snapshot import READ_AS_NULL, keys_condition


def test_plain_keys_are_one_in_list() -> None:
    assert keys_condition(("a", "b"), [(1, "x"), (2, "y")]) == (
        "(`a`, `b`) IN ((%s, %s), (%s, %s))", [1, "x", 2, "y"])


def test_a_key_value_read_as_null_matches_the_dates_read_as_null() -> None:
    """Key columns are NOT NULL: None is a zero or invalid date; `= NULL` would find nothing."""
    where, params = keys_condition(("dev", "at"), [(1, "x"), (9, None)])
    assert where == ("(`dev`, `at`) IN ((%s, %s)) OR (`dev` = %s AND " + READ_AS_NULL.format(c="`at`") + ")")
    assert params == [1, "x", 9]


def test_no_keys_match_nothing() -> None:
    assert keys_condition(("a",), []) == ("FALSE", [])
