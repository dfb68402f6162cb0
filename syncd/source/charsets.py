"""Text bytes of a MySQL/MariaDB column -> str, exactly as the source server converts them.

A legacy database holds text in the charset of each column (latin1, gbk, big5, ucs2, ...). The
binlog carries those bytes as they are, and a SELECT gets them converted by the server. Both
must give the same value, and the server decides what that value is: the text of
`CONVERT(col USING utf8mb4)`. Python's codecs agree with the server almost everywhere; where
they differ this module says what the server does, in small tables measured by sweeping a
MariaDB 10.11 (every single byte; every two-byte code of the multi-byte charsets; the three-byte
codes of ujis/eucjpms; the surrogate and astral ranges of the Unicode charsets). That sweep is
kept as a test (tests/integration/test_charsets.py), so each table is proven against the server.

Bytes the server cannot convert (its CONVERT gives `?`) raise `UndecodableText`: nothing here
guesses a character. The server's own replacement character U+FFFD (tis620 and a few big5 codes
convert to it) is what the server gives, so it is what this module gives.

`lookup(name)` takes a charset name as information_schema spells it (`latin1`, `utf8mb3`, or
`utf8`); `charset_of_collation(name)` the charset of a collation name (`gbk_chinese_ci`), which
is what the binlog's TABLE_MAP gives per column.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from syncd.errors import UndecodableText
from syncd.model import Undecodable
from syncd.sqlnames import my_name

UNDEFINED = "\ufffe"
"""A byte that a single-byte table leaves undefined (codecs.charmap_decode refuses it)."""

_charmap_decode = codecs.charmap_decode
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Charset:
    """How the text of one MySQL charset becomes str.

    `decode(data)` returns the server's text, or raises UndecodableText. The other fields say
    how a faster decoder (the C row decoder) may do exactly the same: with `table` for a
    single-byte charset, or with the Python `codec` (refusing characters past U+FFFF when
    `bmp_only`); neither is set when only `decode` is exact.
    """

    name: str
    decode: Callable[[bytes], str]
    codec: str | None = None
    bmp_only: bool = False
    table: str | None = None
    binary: bool = False


def _undecodable(name: str, data: bytes, start: int, end: int) -> UndecodableText:
    return UndecodableText(name, data[start:max(end, start + 1)].hex(), start)


# ---------------------------------------------------------------- single-byte charsets


def _table(low: str, high: str, changes: dict[int, str | None] | None = None) -> str:
    chars = list(low + high)
    for byte, char in (changes or {}).items():
        chars[byte] = UNDEFINED if char is None else char
    assert len(chars) == 256
    return "".join(chars)


def _codec_half(codec: str, start: int) -> str:
    chars = []
    for byte in range(start, start + 128):
        try:
            chars.append(bytes([byte]).decode(codec))
        except UnicodeDecodeError:
            chars.append(UNDEFINED)
    return "".join(chars)


_ASCII = "".join(map(chr, range(128)))
_C1 = "".join(map(chr, range(0x80, 0xA1)))


def _from_codec(codec: str, changes: dict[int, str | None] | None = None) -> str:
    return _table(_codec_half(codec, 0), _codec_half(codec, 128), changes)


def _single_byte(name: str, table: str) -> Charset:
    def decode(data: bytes) -> str:
        try:
            return _charmap_decode(data, "strict", table)[0]
        except UnicodeDecodeError as exc:
            raise _undecodable(name, data, exc.start, exc.end) from None

    return Charset(name, decode, table=table)


# The server's tables, where Python's codec differs or is missing (measured; see the docstring).
_SINGLE_BYTE: dict[str, str] = {
    "ascii": _from_codec("ascii"),
    "latin1": _from_codec("cp1252", {0x81: "\x81", 0x8D: "\x8d", 0x8F: "\x8f", 0x90: "\x90", 0x9D: "\x9d"}),
    "latin2": _from_codec("iso8859_2"),
    "latin5": _from_codec("iso8859_9"),
    "latin7": _from_codec("iso8859_13"),
    "cp1250": _from_codec("cp1250"),
    "cp1251": _from_codec("cp1251"),
    "cp1256": _from_codec("cp1256", dict.fromkeys((0x8A, 0x8F, 0x98, 0x9A, 0x9F, 0xAA, 0xC0, 0xFF))),
    "cp1257": _from_codec("cp1257"),
    "cp850": _from_codec("cp850"),
    "cp852": _from_codec("cp852"),
    "cp866": _from_codec("cp866", {0xFC: "\u207f", 0xFD: "\xb2"}),
    "greek": _from_codec("iso8859_7", {0xA1: "\u02bd", 0xA2: "\u02bc", 0xA4: None, 0xA5: None, 0xAA: None}),
    "hebrew": _from_codec("iso8859_8", {0xAF: "\u203e"}),
    "hp8": _from_codec("hp_roman8"),
    "koi8r": _from_codec("koi8_r"),
    "koi8u": _from_codec("koi8_u", {0x95: "\u2022"}),
    "macce": _from_codec("mac_latin2"),
    "macroman": _from_codec("mac_roman"),
    "tis620": _from_codec("tis_620", dict.fromkeys((0xA0, 0xDB, 0xDC, 0xDD, 0xDE, 0xFC, 0xFD, 0xFE, 0xFF),
                                                   "\ufffd")),
    "armscii8": _table(_ASCII, _C1 + (
        "\u2741\xa7\u0589)(\xbb\xab\u2014.\u055d,-\u055f\u2026\u055c\u055b\u055e"
        + "".join(chr(0x531 + i) + chr(0x561 + i) for i in range(38)) + "\u2019'")),
    "dec8": _table(_ASCII, _C1 + (
        "\xa1\xa2\xa3\ufffe\xa5\ufffe\xa7\xa4\xa9\xaa\xab\ufffe\ufffe\ufffe\ufffe\xb0\xb1\xb2\xb3\ufffe\xb5\xb6"
        "\xb7\ufffe\xb9\xba\xbb\xbc\xbd\ufffe\xbf\xc0\xc1\xc2\xc3\xc4\xc5\xc6\xc7\xc8\xc9\xca\xcb\xcc\xcd"
        "\xce\xcf\ufffe\xd1\xd2\xd3\xd4\xd5\xd6\u0152\xd8\xd9\xda\xdb\xdc\u0178\ufffe\xdf\xe0\xe1\xe2\xe3"
        "\xe4\xe5\xe6\xe7\xe8\xe9\xea\xeb\xec\xed\xee\xef\ufffe\xf1\xf2\xf3\xf4\xf5\xf6\u0153\xf8\xf9\xfa"
        "\xfb\xfc\xff\ufffe\ufffe")),
    "geostd8": _table(_ASCII, (
        "\u20ac\ufffe\u201a\ufffe\u201e\u2026\u2020\u2021\ufffe\u2030\ufffe\u2039\ufffe\ufffe\ufffe\ufffe"
        "\ufffe\u2018\u2019\u201c\u201d\u2022\u2013\u2014\ufffe\ufffe\ufffe\u203a\ufffe\ufffe\ufffe\ufffe"
        + "".join(map(chr, range(0xA0, 0xC0)))
        + "\u10d0\u10d1\u10d2\u10d3\u10d4\u10d5\u10d6\u10f1\u10d7\u10d8\u10d9\u10da\u10db\u10dc\u10f2\u10dd"
        "\u10de\u10df\u10e0\u10e1\u10e2\u10f3\u10e3\u10e4\u10e5\u10e6\u10e7\u10e8\u10e9\u10ea\u10eb\u10ec"
        "\u10ed\u10ee\u10f4\u10ef\u10f0\u10f5" + UNDEFINED * 23 + "\u2116" + UNDEFINED * 2)),
    "keybcs2": _table(_ASCII, (
        "\u010c\xfc\xe9\u010f\xe4\u010e\u0164\u010d\u011b\u011a\u0139\xcd\u013e\u013a\xc4\xc1\xc9\u017e"
        "\u017d\xf4\xf6\xd3\u016f\xda\xfd\xd6\xdc\u0160\u013d\xdd\u0158\u0165\xe1\xed\xf3\xfa\u0148\u0147"
        "\u016e\xd4\u0161\u0159\u0155\u0154\xbc\xa1\xab\xbb\u2591\u2592\u2593\u2502\u2524\u2561\u2562"
        "\u2556\u2555\u2563\u2551\u2557\u255d\u255c\u255b\u2510\u2514\u2534\u252c\u251c\u2500\u253c\u255e"
        "\u255f\u255a\u2554\u2569\u2566\u2560\u2550\u256c\u2567\u2568\u2564\u2565\u2559\u2558\u2552\u2553"
        "\u256b\u256a\u2518\u250c\u2588\u2584\u258c\u2590\u2580\u03b1\xdf\u0393\u03c0\u03a3\u03c3\xb5"
        "\u03c4\u03a6\u0398\u03a9\u03b4\u221e\u03c6\u03b5\u2229\u2261\xb1\u2265\u2264\u2320\u2321\xf7"
        "\u2248\xb0\u2219\xb7\u221a\u207f\xb2\u25a0\xa0")),
    "swe7": _table(_ASCII, UNDEFINED * 128, {
        0x40: "\xc9", 0x5B: "\xc4", 0x5C: "\xd6", 0x5D: "\xc5", 0x5E: "\xdc", 0x60: "\xe9", 0x7B: "\xe4",
        0x7C: "\xf6", 0x7D: "\xe5", 0x7E: "\xfc", 0x7F: None}),
}


# ---------------------------------------------------------------- multi-byte charsets


def _exact(name: str, codec: str, bmp_only: bool = False) -> Charset:
    """A charset Python's codec decodes exactly as the server (but for characters past U+FFFF,
    which the server's utf8mb3 and ucs2 cannot hold)."""
    def decode(data: bytes) -> str:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError as exc:
            raise _undecodable(name, data, exc.start, exc.end) from None
        if bmp_only and not text.isascii() and (astral := _ASTRAL.search(text)) is not None:
            start = len(text[:astral.start()].encode(codec))
            raise _undecodable(name, data, start, start + len(astral.group().encode(codec)))
        return text

    return Charset(name, decode, codec=codec, bmp_only=bmp_only)


def _runs(runs: dict[str, str]) -> dict[bytes, str | None]:
    """Codes from runs: each key the hex of a first code, each character the next code's text
    (the last byte counting up)."""
    table: dict[bytes, str | None] = {}
    for start, text in runs.items():
        first = bytes.fromhex(start)
        for offset, char in enumerate(text):
            table[first[:-1] + bytes([first[-1] + offset])] = char
    return table


def _user_defined(prefix: bytes, first: int) -> dict[bytes, str | None]:
    """EUC-JP's user-defined rows 0xF5-0xFE: the server maps them onto the Private Use Area."""
    return {prefix + bytes([row, cell]): chr(first + (row - 0xF5) * 94 + cell - 0xA1)
            for row in range(0xF5, 0xFF) for cell in range(0xA1, 0xFF)}


def _overridden(name: str, codec: str, overrides: dict[bytes, str | None]) -> Charset:
    """Python's codec, but the server's text (None: undecodable) for the codes in `overrides`.

    A value Python decodes without producing a character that some overridden code gives in
    Python is decoded by Python; any other value character by character (`_by_character`).
    """
    suspects = set()
    for code in overrides:
        with contextlib.suppress(UnicodeDecodeError):
            suspects.update(code.decode(codec))
    pattern = re.compile("[" + "".join(map(re.escape, sorted(suspects))) + "]") if suspects else None
    longest = max(map(len, overrides))
    plain = not any(char.isascii() for char in suspects)  # an ASCII text then holds no suspect

    def decode(data: bytes) -> str:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            return _by_character(name, codec, overrides, longest, data)
        if pattern is None or (plain and text.isascii()) or pattern.search(text) is None:
            return text
        return _by_character(name, codec, overrides, longest, data)

    return Charset(name, decode)


def _by_character(name: str, codec: str, overrides: dict[bytes, str | None], longest: int,
                  data: bytes) -> str:
    parts = []
    at = 0
    while at < len(data):
        char, size = _character(codec, overrides, longest, data, at)
        if char is None:
            raise _undecodable(name, data, at, at + size)
        parts.append(char)
        at += size
    return "".join(parts)


def _character(codec: str, overrides: dict[bytes, str | None], longest: int, data: bytes,
               at: int) -> tuple[str | None, int]:
    """The character at `at` and its size in bytes; None: undecodable (size: how many bytes)."""
    for size in range(longest, 0, -1):
        code = data[at:at + size]
        if len(code) == size and code in overrides:
            return overrides[code], size
    for size in range(1, 5):
        try:
            char = data[at:at + size].decode(codec)
        except UnicodeDecodeError:
            continue
        if len(char) == 1:
            return char, size
    return None, 1


_EUCJPMS = {
    "a1c1": "\uff5e\u2225", "a1dd": "\uff0d", "a1f1": "\uffe0\uffe1", "a2cc": "\uffe2",
    "ada1": "\u2460\u2461\u2462\u2463\u2464\u2465\u2466\u2467\u2468\u2469\u246a\u246b\u246c\u246d\u246e"
            "\u246f\u2470\u2471\u2472\u2473\u2160\u2161\u2162\u2163\u2164\u2165\u2166\u2167\u2168\u2169",
    "adc0": "\u3349\u3314\u3322\u334d\u3318\u3327\u3303\u3336\u3351\u3357\u330d\u3326\u3323\u332b\u334a"
            "\u333b\u339c\u339d\u339e\u338e\u338f\u33c4\u33a1",
    "addf": "\u337b\u301d\u301f\u2116\u33cd\u2121\u32a4\u32a5\u32a6\u32a7\u32a8\u3231\u3232\u3239\u337e"
            "\u337d\u337c\u2252\u2261\u222b\u222e\u2211\u221a\u22a5\u2220\u221f\u22bf\u2235\u2229\u222a",
    "8fa2b7": "\uff5e", "8fa2c3": "\uffe4",
    "8ff3f3": "\u2170\u2171\u2172\u2173\u2174\u2175\u2176\u2177\u2178\u2179\u2160\u2161",
    "8ff4a1": "\u2162\u2163\u2164\u2165\u2166\u2167\u2168\u2169\uff07\uff02\u3231\u2116\u2121\u70bb\u4efc"
              "\u50f4\u51ec\u5307\u5324\ufa0e\u548a\u5759\ufa0f\ufa10\u589e\u5bec\u5cf5\u5d53\ufa11\u5fb7"
              "\u6085\u6120\u654e\u663b\u6665\ufa12\uf929\u6801\ufa13\ufa14\u6a6b\u6ae2\u6df8\u6df2\u7028"
              "\ufa15\ufa16\u7501\u7682\u769e\ufa17\u7930\ufa18\ufa19\ufa1a\ufa1b\u7ae7\ufa1c\ufa1d\u7da0"
              "\u7dd6\ufa1e\u8362\ufa1f\u85b0\ufa20\ufa21\u8807\ufa22\u8b7f\u8cf4\u8d76\ufa23\ufa24\ufa25"
              "\u90de\ufa26\u9115\ufa27\ufa28\u9592\uf9dc\ufa29\u973b\u974d\u9751\ufa2a\ufa2b\ufa2c\u999e"
              "\u9ad9\u9b72\ufa2d\u9ed1",
}
_EUC_JP_USER = {**_user_defined(b"", 0xE000), **_user_defined(b"\x8f", 0xE3AC)}


def _multi_byte() -> dict[str, Charset]:
    return {charset.name: charset for charset in (
        _exact("utf8mb4", "utf-8"),
        _exact("utf8mb3", "utf-8", bmp_only=True),
        _exact("ucs2", "utf-16-be", bmp_only=True),
        _exact("utf16", "utf-16-be"),
        _exact("utf16le", "utf-16-le"),
        _exact("utf32", "utf-32-be"),
        _exact("gbk", "gbk"),
        _exact("gb2312", "gb2312"),
        _exact("euckr", "cp949"),
        _exact("gb18030", "gb18030"),  # MySQL only: not measured (MariaDB has no gb18030)
        _overridden("big5", "big5", {**dict.fromkeys(map(bytes.fromhex, (
            "a15a", "a1c3", "a1c5", "a1fe", "a240", "a2cc", "a2ce")), "\ufffd"),
            **_runs({"f9d6": "\u7881\u92b9\u88cf\u58bb\u6052\u7ca7\u5afa"})}),
        _overridden("sjis", "shift_jis", {b"\x81\x5f": "\\"}),
        _overridden("cp932", "cp932", dict.fromkeys((b"\x80", b"\xa0", b"\xfd", b"\xfe", b"\xff"))),
        _overridden("ujis", "euc_jp", {b"\xa1\xc0": "\\", **_EUC_JP_USER}),
        _overridden("eucjpms", "euc_jp", {**_runs(_EUCJPMS), **_EUC_JP_USER}),
    )}


def _binary(data: bytes) -> bytes:
    return data


_CHARSETS: dict[str, Charset] = {
    **{name: _single_byte(name, table) for name, table in _SINGLE_BYTE.items()},
    **_multi_byte(),
    "binary": Charset("binary", _binary, binary=True),  # type: ignore[arg-type]
}
_ALIASES = {"utf8": "utf8mb3"}
_BY_LENGTH = sorted([*_CHARSETS, *_ALIASES], key=len, reverse=True)


def known(name: str) -> bool:
    return name.lower() in _CHARSETS or name.lower() in _ALIASES


def lookup(name: str) -> Charset:
    """The charset of this name (as information_schema spells it); an unknown one decodes
    nothing (every value raises UndecodableText naming it)."""
    name = name.lower()
    found = _CHARSETS.get(_ALIASES.get(name, name))
    return found if found is not None else _unknown(name)


def _unknown(name: str) -> Charset:
    def decode(data: bytes) -> str:
        raise UndecodableText(f"{name} (a charset syncd does not know)", data[:32].hex())

    return Charset(name, decode)


def charset_of_collation(collation: str) -> str:
    """The charset a collation belongs to (`latin1_swedish_ci` -> `latin1`; `binary`)."""
    collation = collation.lower()
    for name in _BY_LENGTH:
        if collation == name or collation.startswith(name + "_"):
            return _ALIASES.get(name, name)
    return collation.split("_", 1)[0]


def decode(charset: str, data: bytes) -> str:
    """The server's text of `data` in `charset` (raises UndecodableText)."""
    return lookup(charset).decode(data)


def text_or_marker(charset: Charset, column: str, data: bytes) -> str | bytes | Undecodable:
    """The server's text of a column value, or the `Undecodable` marker that stands for it."""
    try:
        return charset.decode(data)
    except UndecodableText as exc:
        return marker(column, charset.name, data, exc)


def marker(column: str, charset: str, data: bytes, error: UndecodableText) -> Undecodable:
    shown = data[:64].hex() + ("..." if len(data) > 64 else "")
    return Undecodable(column, charset, data.hex(), str(UndecodableText(
        error.charset, error.hex_bytes, error.offset, column, shown)))


SELECT_EXACT = frozenset(("utf8mb4", "latin1"))
"""Charsets whose every stored value a SELECT (in utf8mb4) converts exactly as `decode`: latin1
holds no byte the server cannot convert. (A utf8mb4 column holding a surrogate code point, which
a non-strict server stores, makes PyMySQL fail to decode the row: such a table is read raw.)"""


def converts_over_select(charset: str) -> bool:
    """Whether a SELECT's own conversion to utf8mb4 gives exactly this module's text, always."""
    return charset.lower() in SELECT_EXACT


def select_raw(column: str) -> str:
    """The SELECT expression of a text column read as its bytes, under its own name."""
    quoted = my_name(column)
    return f"CAST({quoted} AS BINARY) AS {quoted}"
