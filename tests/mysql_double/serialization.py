"""MySQL's serialization framework (mysql-server ``libs/mysql/serialization``), as far as
GTID_TAGGED_LOG_EVENT needs it.

Variable-length integers (``variable_length_integers.h``): 1 to 9 bytes, little-endian; the
number of trailing one bits of the first byte plus one is the byte count, the value follows
those bits (9 bytes: the full 64-bit value after a 0xFF byte). Signed integers are mapped
to unsigned first: x >= 0 -> x << 1, x < 0 -> ((-(x + 1)) << 1) | 1.

A message (``serializer_impl.hpp`` ``operator<<`` and ``serializer_default_impl.hpp``
``encode_serializable_metadata``): the serialization format version (0) written as a field
id, the message size (counted from that first byte), the id of the last non-ignorable field
(0: every field of the GTID event is defined with the default "ignore" policy,
``field_definition.h``), then per present field its id and its value. Integers are
variable-length, a fixed-size array is its elements one by one (so each UUID byte is a
variable-length integer), and a string is its variable-length length and its bytes
(``primitive_type_codec.h``).
"""

from __future__ import annotations

from collections.abc import Sequence

FORMAT_VERSION = 0

Field = tuple[int, bytes]
"""(field id, encoded value) of a field present in the message."""


def varlen_unsigned(value: int) -> bytes:
    if value < 0 or value >= 1 << 64:
        raise ValueError(f"{value} does not fit an unsigned 64-bit integer")
    size = ((value.bit_length() * 575) >> 12) + 1
    first = ((1 << (size - 1)) - 1) | ((value << size) & 0xFF)
    if size == 1:
        return bytes((first,))
    rest = value >> (8 - size + ((size + 7) >> 4))
    return bytes((first,)) + rest.to_bytes(8, "little")[:size - 1]


def varlen_signed(value: int) -> bytes:
    return varlen_unsigned(value << 1 if value >= 0 else ((-(value + 1)) << 1) | 1)


def read_varlen_unsigned(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    size = 1
    while size < 9 and first & (1 << (size - 1)):
        size += 1
    value = first >> size if size < 8 else 0
    if size > 1:
        rest = int.from_bytes(data[pos + 1:pos + size], "little")
        value |= rest << (8 - size + ((size + 7) >> 4))
    return value, pos + size


def read_varlen_signed(data: bytes, pos: int) -> tuple[int, int]:
    raw, pos = read_varlen_unsigned(data, pos)
    return (-(raw >> 1) - 1 if raw & 1 else raw >> 1), pos


def string_value(value: bytes) -> bytes:
    return varlen_unsigned(len(value)) + value


def array_value(items: Sequence[int]) -> bytes:
    return b"".join(varlen_unsigned(item) for item in items)


def message(fields: Sequence[Field]) -> bytes:
    """A top-level message holding ``fields`` (absent optional fields are simply left out).

    The size written is ``get_size_serializable``'s: the lengths of the version byte, of the
    variable-length *body* size and of the last non-ignorable field id, plus the body.
    """
    body = b"".join(varlen_unsigned(field_id) + value for field_id, value in fields)
    head = varlen_unsigned(FORMAT_VERSION)
    last_non_ignorable = varlen_unsigned(0)
    total = len(head) + len(varlen_unsigned(len(body))) + len(last_non_ignorable) + len(body)
    return head + varlen_unsigned(total) + last_non_ignorable + body
