"""syncd/source/charsets.py: the server's conversion, by properties (the server itself is the
oracle in tests/integration/test_charsets.py); and where an undecodable value goes."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.errors import UndecodableText
from syncd.mapping.plan import map_change
from syncd.model import Op, RowChange, Undecodable, Upsert
from syncd.source import charsets
from syncd.source.decoder_process import decode_value, encode_value
from tests.unit.mapping.test_plan import CTX, ORDERS_MAPPING, compile_yaml

SINGLE_BYTE = [name for name in charsets._CHARSETS if charsets.lookup(name).table is not None]


def server_char(charset: str, code: bytes) -> str | None:
    try:
        return charsets.decode(charset, code)
    except UndecodableText:
        return None


@given(st.sampled_from(SINGLE_BYTE), st.binary(max_size=40))
def test_single_byte_text_is_its_bytes_one_by_one(charset: str, data: bytes) -> None:
    chars = [server_char(charset, bytes([b])) for b in data]
    if None in chars:
        with pytest.raises(UndecodableText) as raised:
            charsets.decode(charset, data)
        assert raised.value.offset == chars.index(None)
    else:
        assert charsets.decode(charset, data) == "".join(chars)  # type: ignore[arg-type]


@pytest.mark.parametrize(("charset", "codec", "alphabet"), [
    ("utf8mb4", "utf-8", st.characters(blacklist_categories=("Cs",))),
    ("utf8mb3", "utf-8", st.characters(max_codepoint=0xFFFF, blacklist_categories=("Cs",))),
    ("ucs2", "utf-16-be", st.characters(max_codepoint=0xFFFF, blacklist_categories=("Cs",))),
    ("utf16", "utf-16-be", st.characters(blacklist_categories=("Cs",))),
    ("utf16le", "utf-16-le", st.characters(blacklist_categories=("Cs",))),
    ("utf32", "utf-32-be", st.characters(blacklist_categories=("Cs",))),
])
@given(data=st.data())
def test_unicode_charsets_give_back_their_text(charset: str, codec: str, alphabet: st.SearchStrategy[str],
                                               data: st.DataObject) -> None:
    text = data.draw(st.text(alphabet, max_size=20))
    assert charsets.decode(charset, text.encode(codec)) == text


@pytest.mark.parametrize("charset", ["utf8mb3", "ucs2"])
def test_utf8mb3_and_ucs2_hold_no_character_past_u_ffff(charset: str) -> None:
    data = "a😀".encode("utf-8" if charset == "utf8mb3" else "utf-16-be")
    with pytest.raises(UndecodableText) as raised:
        charsets.decode(charset, data)
    assert raised.value.offset == (1 if charset == "utf8mb3" else 2)


# Codes with the server's text: Python's and the overridden ones side by side.
CODES = {
    "big5": [(b"\xa4\x40", "一"), (b"\xf9\xd6", "碁"), (b"\xa1\x5a", "\ufffd"), (b"A", "A")],
    "sjis": [(b"\x81\x5f", "\\"), (b"\x82\xa0", "あ"), (b"\xb1", "ｱ"), (b"\x81\x5c", "―")],
    "cp932": [(b"\x87\x40", "①"), (b"\x82\xa0", "あ"), (b"z", "z")],
    "ujis": [(b"\xa1\xc0", "\\"), (b"\xf5\xa1", "\ue000"), (b"\x8f\xf5\xa1", "\ue3ac"), (b"\xa4\xa2", "あ")],
    "eucjpms": [(b"\xad\xa1", "①"), (b"\x8f\xa2\xb7", "\uff5e"), (b"\x8f\xf4\xae", "\u70bb"), (b"~", "~")],
    "euckr": [(b"\x81\x41", "갂"), (b"\xb0\xa1", "가"), (b"k", "k")],
    "gbk": [(b"\xc4\xe3", "你"), (b"\x81\x40", "丂"), (b"g", "g")],
}


@given(st.sampled_from(sorted(CODES)).flatmap(
    lambda cs: st.tuples(st.just(cs), st.lists(st.sampled_from(CODES[cs]), max_size=12))))
def test_multi_byte_text_is_its_characters_in_order(case: tuple[str, list[tuple[bytes, str]]]) -> None:
    charset, codes = case
    assert charsets.decode(charset, b"".join(c for c, _ in codes)) == "".join(t for _, t in codes)


@pytest.mark.parametrize(("charset", "data", "bad", "offset"), [
    ("gbk", bytes.fromhex("41a2e342"), "a2", 1),
    ("cp932", b"ab\x80", "80", 2),
    ("ascii", b"caf\xe9", "e9", 3),
    ("utf8mb4", b"\xed\xa0\x80", "ed", 0),
    ("greek", b"\xa4", "a4", 0),
])
def test_bytes_the_server_cannot_convert_raise_naming_them(charset: str, data: bytes, bad: str,
                                                           offset: int) -> None:
    with pytest.raises(UndecodableText) as raised:
        charsets.decode(charset, data)
    assert (raised.value.charset, raised.value.hex_bytes, raised.value.offset) == (charset, bad, offset)
    assert pickle.loads(pickle.dumps(raised.value)).args == raised.value.args


def test_latin1_is_cp1252_with_the_five_holes_as_c1_controls() -> None:
    assert charsets.decode("latin1", bytes(range(0x80, 0xA0))) == (
        "€\x81‚ƒ„…†‡ˆ‰Š‹Œ\x8dŽ\x8f\x90‘’“”•–—˜™š›œ\x9džŸ")


def test_charset_names_and_collations() -> None:
    assert charsets.charset_of_collation("utf8mb4_unicode_ci") == "utf8mb4"
    assert charsets.charset_of_collation("utf8_general_ci") == "utf8mb3"
    assert charsets.charset_of_collation("utf16le_bin") == "utf16le"
    assert charsets.charset_of_collation("utf16_general_ci") == "utf16"
    assert charsets.charset_of_collation("latin1_swedish_ci") == "latin1"
    assert charsets.charset_of_collation("binary") == "binary"
    assert charsets.lookup("UTF8").name == "utf8mb3"
    assert charsets.lookup("binary").decode(b"\xff") == b"\xff"
    with pytest.raises(UndecodableText, match="a charset syncd does not know"):
        charsets.lookup("klingon8").decode(b"x")


def test_a_marker_names_column_charset_and_bytes_and_crosses_the_decoder_pipe() -> None:
    marker = charsets.text_or_marker(charsets.lookup("gbk"), "name", bytes.fromhex("41a2e342"))
    assert isinstance(marker, Undecodable)
    assert (marker.column, marker.charset, marker.hex) == ("name", "gbk", "41a2e342")
    assert marker.reason.startswith("column name: gbk value X'41A2E342': gbk bytes X'A2' at byte 1 ")
    assert decode_value(encode_value(marker)) == marker
    assert not isinstance(marker, str | bytes)


ROW = {"id": 7, "status": "已支付", "amount_text": "10元", "created_at": None, "is_test": 0}


def change(op: Op, before: dict | None, after: dict | None) -> RowChange:
    bad = tuple(sorted({k for image in (before, after) if image for k, v in image.items()
                        if isinstance(v, Undecodable)}))
    return RowChange("orders", op, before, after, undecodable=bad)


def bad(column: str) -> Undecodable:
    return charsets.text_or_marker(charsets.lookup("gbk"), column, b"\xa2\xe3")  # type: ignore[return-value]


def test_a_mapping_that_reads_an_undecodable_column_dead_letters_the_change() -> None:
    mapping = compile_yaml(ORDERS_MAPPING.format(delete="hard"))
    mapped = map_change(mapping, change(Op.INSERT, None, {**ROW, "status": bad("status")}), CTX)
    assert mapped.ops == []
    (letter,) = mapped.dead_letters
    assert letter.reason.startswith("column status: gbk value X'A2E3': ")


def test_a_mapping_that_does_not_read_it_or_only_its_old_image_applies_the_change() -> None:
    mapping = compile_yaml(ORDERS_MAPPING.format(delete="hard"))
    unread = map_change(mapping, change(Op.INSERT, None, {**ROW, "remark": bad("remark")}), CTX)
    assert unread.dead_letters == [] and isinstance(unread.ops[0], Upsert)
    fixed = map_change(mapping, change(Op.UPDATE, {**ROW, "status": bad("status")}, ROW), CTX)
    assert fixed.dead_letters == [] and isinstance(fixed.ops[0], Upsert)
    gone = map_change(mapping, change(Op.DELETE, {**ROW, "status": bad("status")}, None), CTX)
    assert gone.dead_letters == [] and len(gone.ops) == 1
    moved = map_change(mapping, change(Op.UPDATE, {**ROW, "is_test": bad("is_test")}, ROW), CTX)
    assert moved.ops == [] and "column is_test" in moved.dead_letters[0].reason
