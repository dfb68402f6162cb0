"""Source reads in key chunks (syncd.source.chunks): where the next chunk starts."""

from __future__ import annotations

from datetime import date

from syncd.source.chunks import _converted
from syncd.source.values import date_from_select


def test_a_zero_date_reads_as_null_but_bounds_keep_the_servers_text() -> None:
    """`(dev, day) > (9, NULL)` would skip the rest of dev 9: the bound keeps '0000-00-00'."""
    fetched = _converted(["dev", "day"], [(1, date(2024, 1, 1)), (9, "0000-00-00")], [(1, date_from_select)])
    assert fetched.rows == [(1, date(2024, 1, 1)), (9, None)]
    assert fetched.zero_dates == {1: ("day",)}
    assert fetched.key_at(1, [0, 1]) == (9, "0000-00-00")
    assert fetched.key_at(0, [0, 1]) == (1, date(2024, 1, 1))
