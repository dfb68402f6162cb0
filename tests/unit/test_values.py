"""The value normal form (syncd/source/values.py): binlog values made what a SELECT reads."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from syncd.source.values import BLOB, STRING, VARCHAR, binlog_converter


def binary_column(kind: int, length: int) -> SimpleNamespace:
    return SimpleNamespace(type=kind, character_set_name="binary", max_length=length, name="b")


@given(st.integers(min_value=1, max_value=255).flatmap(
    lambda n: st.tuples(st.just(n), st.binary(max_size=n))))
def test_binary_arrives_padded_to_its_length_as_mysql_holds_it(case: tuple[int, bytes]) -> None:
    """The binlog drops a BINARY value's trailing zero bytes; the library reads nothing as ''."""
    length, held = case
    logged = held.rstrip(b"\x00") or ""
    convert = binlog_converter(binary_column(STRING, length))
    assert convert is not None
    assert convert(logged) == held.ljust(length, b"\x00")


def test_an_empty_varbinary_or_blob_is_empty_bytes() -> None:
    for kind in (VARCHAR, BLOB):
        convert = binlog_converter(binary_column(kind, 10))
        assert convert is not None
        assert convert("") == b""
        assert convert(b"\x00") == b"\x00"
