"""Key values handed to another process read back as the very values they were."""

from __future__ import annotations

import json
from datetime import timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from syncd.model import exact_key_json, exact_key_value

# Keys carry fixed offsets of whole minutes (MySQL gives naive values, PostgreSQL numeric offsets). A
# named zone would read back as its offset, which Python never calls equal inside a DST gap or fold.
FIXED_OFFSETS = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
KEY_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(), st.binary(), st.floats(allow_nan=False),
    st.decimals(allow_nan=False, allow_infinity=False), st.datetimes(), st.dates(), st.times(),
    st.timedeltas(), st.datetimes(timezones=FIXED_OFFSETS),
)


@given(st.lists(KEY_VALUES, min_size=1, max_size=4))
def test_a_key_reads_back_as_itself_through_json(key: list[Any]) -> None:
    read = [exact_key_value(v) for v in json.loads(json.dumps([exact_key_json(v) for v in key]))]
    assert read == key
    assert [type(v) for v in read] == [type(v) for v in key]
    assert [str(v) for v in read] == [str(v) for v in key]  # a Decimal keeps its exponent


def test_bytes_are_tagged_and_text_that_looks_like_a_tag_stays_text() -> None:
    assert exact_key_json(b"A\xff") == {"bytes": "41ff"}
    assert exact_key_value("\\x41ff") == "\\x41ff"
