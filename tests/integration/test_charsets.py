"""Text in every charset decodes as the server converts it, on every path (syncd/source/charsets.py).

The oracle is the server: `CONVERT(x USING utf8mb4)`. A `?` there that the bytes do not hold
means the server cannot convert them: syncd must then raise (the module) or read an
`Undecodable` marker (the readers). First the module is swept against the server's conversion
of every single byte, every two-byte code of the multi-byte charsets, the three-byte codes of
ujis/eucjpms and the edges of the Unicode charsets. Then rows holding such bytes, written under
a non-strict sql_mode, are read from the binlog by every decoder (C, generated Python, the
library) and must equal the server's conversion value by value.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import pytest

from devtools.sandbox import MariaDBServer
from syncd.config import Secret, SourceConfig
from syncd.errors import UndecodableText
from syncd.model import Heartbeat, Position, Undecodable
from syncd.source import charsets, fastpath
from syncd.source.binlog import BinlogReader
from syncd.source.chunks import SourceReader
from syncd.source.snapshot import SourceSnapshot

SINGLE_BYTE = ["armscii8", "ascii", "cp1250", "cp1251", "cp1256", "cp1257", "cp850", "cp852", "cp866",
               "dec8", "geostd8", "greek", "hebrew", "hp8", "keybcs2", "koi8r", "koi8u", "latin1", "latin2",
               "latin5", "latin7", "macce", "macroman", "swe7", "tis620"]
MULTI_BYTE = ["big5", "cp932", "eucjpms", "euckr", "gb2312", "gbk", "sjis", "ujis", "ucs2", "utf16",
              "utf16le", "utf8mb3", "utf8mb4"]
QUESTION_MARK = {"ucs2": b"\x00?", "utf16": b"\x00?", "utf16le": b"?\x00", "utf32": b"\x00\x00\x00?"}


def questions(charset: str, data: bytes) -> int:
    """How many `?` characters the bytes themselves hold."""
    unit = QUESTION_MARK.get(charset, b"?")
    return sum(1 for at in range(0, len(data) - len(unit) + 1, len(unit)) if data[at:at + len(unit)] == unit)


def server_text(charset: str, data: bytes, converted: bytes) -> str | None:
    """The server's text of `data`; None when it cannot convert them (a `?` they do not hold,
    or a surrogate code point, which is no text)."""
    try:
        text = converted.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if text.count("?") > questions(charset, data) else text


def module_text(charset: str, data: bytes) -> str | None:
    try:
        return charsets.decode(charset, data)
    except UndecodableText:
        return None


def codes() -> dict[str, list[bytes]]:
    units = {"ucs2": 2, "utf16": 2, "utf16le": 2, "utf32": 4}
    two = [bytes([a, b]) for a in range(256) for b in range(256)]
    sweep: dict[str, list[bytes]] = {cs: [bytes([b]) for b in range(256)] for cs in SINGLE_BYTE}
    for cs in MULTI_BYTE:
        sweep[cs] = ([bytes([b]) for b in range(256)] if cs not in units else []) + two
    for cs in ("ujis", "eucjpms"):
        sweep[cs] += [bytes([0x8F, a, b]) for a in range(256) for b in range(256)]
    for cs in ("utf8mb3", "utf8mb4"):
        sweep[cs] += [bytes([a, b, c]) for a in range(0xE0, 0xF0) for b in range(256)
                      for c in (0x80, 0xBF, 0x41)]
        sweep[cs] += [bytes([a, b, c, d]) for a in range(0xF0, 0xF8) for b in range(256) for c in (0x80, 0xBF)
                      for d in (0x80, 0xBF, 0x41)]
    pairs = [bytes([a, b, c, d]) for a in range(0xD8, 0xE0) for b in (0, 0xFF) for c in range(0xD8, 0xE0)
             for d in (0, 0xFF)]
    sweep["ucs2"] += pairs
    sweep["utf16"] += pairs
    sweep["utf16le"] += [p[1::-1] + p[3:1:-1] for p in pairs]
    points = [*range(0, 0x3000, 7), *range(0xD7F0, 0xE010), *range(0xFFF0, 0x10010),
              *range(0x10FFF0, 0x110010), 0x1F600, 0x7FFFFFFF, 0xFFFFFFFF]
    sweep["utf32"] = [p.to_bytes(4, "big") for p in points]
    return sweep


@pytest.fixture(scope="module")
def sweep(mariadb: MariaDBServer) -> Iterator[dict[str, list[tuple[bytes, bytes]]]]:
    """Every code of `codes()` with the server's conversion of it, in one query per charset."""
    found: dict[str, list[tuple[bytes, bytes]]] = {}
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS charset_sweep")
        cur.execute("USE charset_sweep")
        for charset, values in codes().items():
            cur.execute("CREATE OR REPLACE TABLE codes (id INT PRIMARY KEY, b VARBINARY(8))")
            for start in range(0, len(values), 5000):
                part = enumerate(values[start:start + 5000])
                rows = ",".join(f"({start + i}, X'{v.hex()}')" for i, v in part)
                cur.execute(f"INSERT INTO codes VALUES {rows}")
            # CONVERT(binary USING cs) relabels the bytes unchecked: the conversion is the server's own
            cur.execute(f"SELECT b, CAST(CONVERT(CONVERT(b USING {charset}) USING utf8mb4) AS BINARY) "
                        "FROM codes ORDER BY id")
            found[charset] = [(bytes(b), bytes(c)) for b, c in cur.fetchall()]
        cur.execute("DROP DATABASE charset_sweep")
    yield found


@pytest.mark.parametrize("charset", SINGLE_BYTE + MULTI_BYTE + ["utf32"])
def test_the_module_converts_every_code_as_the_server(sweep: dict[str, list[tuple[bytes, bytes]]],
                                                      charset: str) -> None:
    wrong = [(data.hex(), server_text(charset, data, converted), module_text(charset, data))
             for data, converted in sweep[charset]
             if server_text(charset, data, converted) != module_text(charset, data)]
    assert len(sweep[charset]) >= 256
    assert wrong == []


# ---------------------------------------------------------------- the binlog readers

TABLES = {  # charset -> codes written to a column of that charset, one row each
    "latin1": [bytes([b]) for b in range(256)] + [b"caf\xe9 \x81\x8d\x8f\x90\x9d \x80"],
    "gbk": [bytes.fromhex(h) for h in ("a2e3", "a6d9", "a8bf", "fe50", "fefe", "c4e3bac3", "41a2e342", "8140",
                                       "a1a1", "d7f9")] + [bytes([a, b]) for a in range(0x81, 0xFF, 5)
                                                          for b in range(0x40, 0xFF, 7)],
    "big5": [bytes.fromhex(h) for h in ("a15a", "a1c3", "f9d6", "f9dc", "a440", "c87e")]
            + [bytes([a, b]) for a in range(0xA1, 0xFA, 3) for b in (0x40, 0x7E, 0xA1, 0xFE)],
    "gb2312": [bytes([a, b]) for a in range(0xA1, 0xF8, 2) for b in range(0xA1, 0xFF, 9)],
    "sjis": [b"\x81\x5f", b"\x82\xa0", b"\xb1", b"\x88\x9f"]
            + [bytes([a, 0x40 + b]) for a in range(0x81, 0xA0, 3) for b in range(0, 0xBC, 17)],
    "cp932": [b"\x80", b"\xa0", b"\xfd", b"\x87\x40", b"\xfa\x40", b"\x82\xa0"],
    "ujis": [b"\xa1\xc0", b"\xf5\xa1", b"\x8f\xf5\xa1", b"\xa4\xa2", b"\x8e\xb1"],
    "eucjpms": [b"\xad\xa1", b"\x8f\xf4\xa1", b"\x8f\xa2\xb7", b"\xa1\xc1", b"\xa4\xa2"],
    "euckr": [b"\x81\x41", b"\xb0\xa1", b"\xc8\xfe", b"\xa2\xe8"],
    "tis620": [bytes([b]) for b in range(0xA0, 0x100)],
    "koi8u": [bytes([b]) for b in range(0x80, 0x100)],
    "swe7": [bytes([b]) for b in range(0x20, 0x100, 3)],
    "ucs2": [b"\x00A", b"\x4e\x2d", b"\xd8\x00", b"\xd8\x3d\xde\x00", b"\xff\xfe"],
    "utf16": [b"\x00A", b"\x4e\x2d", b"\xd8\x3d\xde\x00", b"\xd8\x00\x00A", b"\xdc\x00"],
    "utf16le": [b"A\x00", b"\x2d\x4e", b"\x3d\xd8\x00\xde", b"\x00\xd8A\x00"],
    "utf32": [b"\x00\x00\x00A", b"\x00\x01\xf6\x00", b"\x00\x00\xd8\x00", b"\x00\x11\x00\x00"],
    "utf8mb3": ["中文".encode(), "😀".encode(), b"\xed\xa0\x80", b"\xc3\xa9"],
    "utf8mb4": ["中文😀".encode(), b"\xed\xa0\x80", b"\xc3\xa9", b"caf\xc3"],
}


@pytest.fixture(scope="module")
def written(mariadb: MariaDBServer) -> Iterator[tuple[str, Position, Position, dict[str, dict[int, Any]]]]:
    """Rows holding every code of TABLES (the server keeps what a non-strict sql_mode lets it
    keep), updated once; with what the server converts each stored value to."""
    database = "charset_rows"
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
        cur.execute(f"USE {database}")
        cur.execute("SET SESSION sql_mode = ''")
        for charset in TABLES:
            cur.execute(f"CREATE OR REPLACE TABLE t_{charset} (id INT PRIMARY KEY, "
                        f"v VARCHAR(16) CHARACTER SET {charset}, n INT) CHARACTER SET utf8mb4")
        start = _master_status(cur)
        for charset, values in TABLES.items():
            rows = ",".join(f"({i}, X'{v.hex()}', {i})" for i, v in enumerate(values))
            cur.execute(f"INSERT INTO t_{charset} VALUES {rows}")
            cur.execute(f"UPDATE t_{charset} SET n = n + 1")
        end = _master_status(cur)
        expected = {}
        for charset in TABLES:
            cur.execute("SELECT id, CAST(v AS BINARY), CAST(CONVERT(v USING utf8mb4) AS BINARY) "
                        f"FROM t_{charset}")
            expected[charset] = {i: (bytes(stored), server_text(charset, bytes(stored), bytes(converted)))
                                 for i, stored, converted in cur.fetchall()}
    yield database, start, end, expected
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {database}")


def _master_status(cur: Any) -> Position:
    cur.execute("SHOW MASTER STATUS")
    row = cur.fetchone()
    return Position(str(row[0]), int(row[1]))


def read_changes(mariadb: MariaDBServer, database: str, start: Position, end: Position,
                 monkeypatch: pytest.MonkeyPatch, decoder: str) -> list[Any]:
    monkeypatch.setenv(fastpath.DECODER_ENV, decoder)
    monkeypatch.setenv("CHARSET_TEST_PASSWORD", mariadb.root_password)
    source = SourceConfig("s", mariadb.host, mariadb.port, "root", Secret(env="CHARSET_TEST_PASSWORD"),
                          database, 7600 + os.getpid() % 1000, UTC)
    reader = BinlogReader(source, start, {f"t_{charset}" for charset in TABLES})
    changes: list[Any] = []
    try:
        for event in reader.events():
            if not isinstance(event, Heartbeat):
                changes += getattr(event, "changes", [])
                if getattr(event, "end", start) >= end:
                    break
    finally:
        reader.close()
    return changes


@pytest.mark.parametrize("decoder", ["fast", "python", "library"])
def test_every_decoder_reads_text_as_the_server_converts_it(
        mariadb: MariaDBServer, written: tuple[str, Position, Position, dict[str, dict[int, Any]]],
        decoder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    database, start, end, expected = written
    changes = read_changes(mariadb, database, start, end, monkeypatch, decoder)
    assert len(changes) == 2 * sum(len(values) for values in TABLES.values())
    undecodable = 0
    for change in changes:
        charset = change.table.removeprefix("t_")
        stored, text = expected[charset][change.after["id"]]
        for image in (change.before, change.after):
            if image is None:
                continue
            value = image["v"]
            if text is None:
                undecodable += 1
                assert isinstance(value, Undecodable), (charset, stored.hex(), value)
                assert (value.column, value.charset, value.hex) == ("v", charset, stored.hex())
                assert value.reason.startswith(f"column v: {charset} value X'{stored.hex().upper()}': ")
                assert change.undecodable == ("v",)
            else:
                assert value == text, (charset, stored.hex())
                assert change.undecodable == ()
    assert undecodable > 100  # latin1 has none; gbk, big5, cp932, swe7, ucs2, utf8mb3... do


def source_config(mariadb: MariaDBServer, database: str, monkeypatch: pytest.MonkeyPatch) -> SourceConfig:
    monkeypatch.setenv("CHARSET_TEST_PASSWORD", mariadb.root_password)
    return SourceConfig("s", mariadb.host, mariadb.port, "root", Secret(env="CHARSET_TEST_PASSWORD"),
                        database, 7700 + os.getpid() % 1000, UTC)


def test_select_reads_the_same_values_as_the_binlog(
        mariadb: MariaDBServer, written: tuple[str, Position, Position, dict[str, dict[int, Any]]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Copies, reconciles (SourceReader) and repairs (SourceSnapshot) read what the stream reads."""
    database, _, _, expected = written
    source = source_config(mariadb, database, monkeypatch)
    reader = SourceReader(source)
    snapshot = SourceSnapshot(source)
    snapshot.open()
    try:
        for charset, stored in expected.items():
            table = f"t_{charset}"
            rows, _ = reader.chunk(table, ["id"], ["id", "v", "n"], None, 100_000)
            chunk = {row["id"]: row["v"] for row in rows}
            keys = [(i,) for i in stored]
            repaired = {key[0]: row["v"] for key, row in snapshot.rows_by_key(table, ("id",), keys).items()}
            for values in (chunk, repaired):
                assert len(values) == len(stored)
                for i, (data, text) in stored.items():
                    value = values[i]
                    if text is None:
                        assert isinstance(value, Undecodable), (charset, data.hex())
                        assert value.hex == data.hex()
                    else:
                        assert value == text, (charset, data.hex())
            # latin1 is read as the server converts it; utf8mb4 too, until a surrogate (which the
            # server stores but converts to no UTF-8) has the table read raw; the others raw always
            assert (charset == "latin1") == (not reader.raw_columns(table))
    finally:
        reader.close()
        snapshot.close()
