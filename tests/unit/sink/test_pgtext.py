"""The C COPY text of a datetime is exactly `str(value).encode()`, psycopg's own (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.sink import postgres

OFFSETS = st.timedeltas(min_value=-timedelta(hours=23, minutes=59, seconds=59, microseconds=999999),
                        max_value=timedelta(hours=23, minutes=59, seconds=59, microseconds=999999))
ZONES = st.one_of(st.none(), st.just(UTC), OFFSETS.map(timezone), st.timezones())


def test_the_c_part_is_built() -> None:
    """CI must not silently lose it (syncd would still work, on psycopg's slower dumper)."""
    assert postgres.timestamp_text is not None


@given(st.datetimes(timezones=ZONES, allow_imaginary=True), st.booleans())
def test_every_datetime_reads_as_str_gives_it(value: datetime, fold: bool) -> None:
    value = value.replace(fold=int(fold))
    assert postgres.timestamp_text(value) == str(value).encode()


class Odd(tzinfo):
    def __init__(self, offset: object) -> None:
        self.offset = offset

    def utcoffset(self, dt: datetime | None) -> object:
        if isinstance(self.offset, Exception):
            raise self.offset
        return self.offset


class Moment(datetime):
    def __str__(self) -> str:
        return "a moment"


@pytest.mark.parametrize("offset", [None, timedelta(hours=24), -timedelta(days=1), "+08:00",
                                   KeyError("no offset")])
def test_unusual_offsets_give_what_str_gives_or_its_error(offset: object) -> None:
    value = datetime(2024, 5, 1, 12, 30, tzinfo=Odd(offset))
    try:
        expected: object = str(value).encode()
    except Exception as exc:  # str() raises: so does the C part, the same error
        with pytest.raises(type(exc)) as raised:
            postgres.timestamp_text(value)
        assert str(raised.value) == str(exc)
    else:
        assert postgres.timestamp_text(value) == expected


def test_a_subclass_goes_through_its_own_str() -> None:
    assert postgres.timestamp_text(Moment(2024, 5, 1)) == b"a moment"
