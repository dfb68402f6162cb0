"""The fast decoding path against the library's own, on synthetic binlogs (no server).

Events are encoded here (TABLE_MAP with full optional metadata, rows, XID, MariaDB GTID,
ROTATE), served to both readers through a fake connection, and every event the two readers
return is compared: class, header fields, table attributes and row dicts (key order, none
sources and the exact types of values included).
"""

from __future__ import annotations

import datetime
import math
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymysql.protocol import MysqlPacket
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.constants import BINLOG
from pymysqlreplication.event import MariadbGtidEvent, XidEvent
from pymysqlreplication.row_event import RowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

import syncd.source.binlog  # noqa: F401  (installs syncd's TIME2 reader into the library, as in syncd)
from syncd.source import fastpath

UTF8MB4, LATIN1, GBK, BINARY = 45, 8, 28, 63
ENCODINGS = {UTF8MB4: "utf-8", LATIN1: "cp1252", GBK: "gbk"}
NUMERIC = {1, 2, 3, 4, 5, 8, 9, 13, 246}


# ---------------------------------------------------------------- encoding a binlog


def lenenc(n: int) -> bytes:
    if n < 251:
        return bytes([n])
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little")
    return b"\xfd" + n.to_bytes(3, "little")


def varstr(text: str | bytes) -> bytes:
    """The optional metadata's string: 7-bit length groups, low first, then the bytes."""
    raw = text.encode() if isinstance(text, str) else text
    n, out = len(raw), bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out) + raw


@dataclass
class Col:
    """One synthetic column: how the table map describes it, how a value is written."""

    name: str
    type: int
    meta: bytes = b""
    encode: Callable[[Any], bytes] = bytes
    values: st.SearchStrategy[Any] = field(default_factory=lambda: st.just(b""))
    charset: int | None = None  # collation id of a character column
    unsigned: bool = False
    nullable: bool = True
    labels: list[str] | None = None  # ENUM / SET members
    real_type: int | None = None  # ENUM/SET are logged as STRING with this real type


def _int(code: str, low: int, high: int) -> tuple[Callable[[Any], bytes], st.SearchStrategy[int]]:
    return (lambda v: struct.pack("<" + code, v)), st.integers(low, high)


def int_col(name: str, kind: str, unsigned: bool) -> Col:
    spec = {"tiny": (1, "b", 8), "short": (2, "h", 16), "long": (3, "i", 32), "longlong": (8, "q", 64)}
    if kind == "int24":
        bits, typ = 24, 9
        low, high = (0, (1 << 24) - 1) if unsigned else (-(1 << 23), (1 << 23) - 1)
        return Col(name, typ, encode=lambda v: v.to_bytes(3, "little", signed=not unsigned),
                   values=st.integers(low, high), unsigned=unsigned)
    typ, code, bits = spec[kind]
    low, high = (0, (1 << bits) - 1) if unsigned else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    encode, values = _int(code.upper() if unsigned else code, low, high)
    return Col(name, typ, encode=encode, values=values, unsigned=unsigned)


def float_col(name: str, double: bool) -> Col:
    code = "d" if double else "f"
    return Col(name, 5 if double else 4, meta=bytes([8 if double else 4]),
               encode=lambda raw: raw, values=st.binary(min_size=struct.calcsize(code),
                                                        max_size=struct.calcsize(code)))


def decimal_encode(precision: int, scale: int) -> Callable[[Decimal], bytes]:
    sizes = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)

    def encode(value: Decimal) -> bytes:
        negative = value < 0
        digits = format(value.copy_abs(), f".{scale}f")
        whole, _, frac = digits.partition(".")
        whole = whole.rjust(precision - scale, "0") if precision > scale else ""
        out = bytearray()
        lead = (precision - scale) % 9
        if lead:
            out += int(whole[:lead]).to_bytes(sizes[lead], "big")
        for i in range(lead, len(whole), 9):
            out += int(whole[i:i + 9]).to_bytes(4, "big")
        full = scale // 9 * 9
        for i in range(0, full, 9):
            out += int(frac[i:i + 9]).to_bytes(4, "big")
        if scale % 9:
            out += int(frac[full:]).to_bytes(sizes[scale % 9], "big")
        if negative:
            out = bytearray(b ^ 0xFF for b in out)
        out[0] ^= 0x80
        return bytes(out)

    return encode


def decimal_col(name: str, precision: int, scale: int) -> Col:
    with localcontext() as exact:
        exact.prec = 100
        bound = Decimal(10) ** (precision - scale) - Decimal(1).scaleb(-scale)
        low = -bound
    values = st.decimals(min_value=low, max_value=bound, places=scale, allow_nan=False,
                         allow_infinity=False)
    return Col(name, 246, meta=bytes([precision, scale]), encode=decimal_encode(precision, scale),
               values=values)


def fraction(micro: int, fsp: int) -> bytes:
    size = (fsp + 1) // 2
    stored = micro // 10 ** (6 - 2 * size)
    return stored.to_bytes(size, "big") if size else b""


def micros(fsp: int) -> st.SearchStrategy[int]:
    return st.integers(0, 10**fsp - 1).map(lambda m: m * 10 ** (6 - fsp))


def datetime2_col(name: str, fsp: int) -> Col:
    def encode(parts: tuple[int, ...]) -> bytes:
        y, mo, d, h, mi, s, us = parts
        packed = 1 << 39 | (y * 13 + mo) << 22 | d << 17 | h << 12 | mi << 6 | s
        return packed.to_bytes(5, "big") + fraction(us, fsp)

    values = st.tuples(st.integers(0, 9999), st.integers(0, 12), st.integers(0, 31), st.integers(0, 23),
                       st.integers(0, 59), st.integers(0, 59), micros(fsp))
    return Col(name, 18, meta=bytes([fsp]), encode=encode, values=values)


def timestamp2_col(name: str, fsp: int) -> Col:
    values = st.tuples(st.integers(0, 2**31 - 1), micros(fsp))
    return Col(name, 17, meta=bytes([fsp]), values=values,
               encode=lambda v: v[0].to_bytes(4, "big") + fraction(v[1], fsp))


def time2_col(name: str, fsp: int) -> Col:
    width = 3 + (fsp + 1) // 2
    return Col(name, 19, meta=bytes([fsp]), encode=lambda raw: raw,
               values=st.binary(min_size=width, max_size=width))


def date_col(name: str) -> Col:
    values = st.tuples(st.integers(0, 9999), st.integers(0, 12), st.integers(0, 28))
    return Col(name, 10, encode=lambda v: (v[0] << 9 | v[1] << 5 | v[2]).to_bytes(3, "little"),
               values=values)


def text_for(charset: int) -> st.SearchStrategy[bytes]:
    if charset == BINARY:
        return st.binary(max_size=40)
    alphabet = {UTF8MB4: "abcXYZ 0123,.订单已支付发货完成取消王李张😀🌸", LATIN1: "abcXYZ éüßñ€",
                GBK: "abc 订单已支付发货完成取消王李张"}[charset]
    return st.text(alphabet=alphabet, max_size=20).map(lambda t: t.encode(ENCODINGS[charset]))


def varchar_col(name: str, charset: int, max_length: int) -> Col:
    size = 2 if max_length > 255 else 1
    return Col(name, 15, meta=struct.pack("<H", max_length), charset=charset,
               encode=lambda raw: len(raw).to_bytes(size, "little") + raw, values=text_for(charset))


def char_col(name: str, charset: int, max_length: int) -> Col:
    size = 2 if max_length > 255 else 1
    meta = bytes([254 ^ ((max_length & 0x300) >> 4), max_length & 0xFF])
    return Col(name, 254, meta=meta, charset=charset,
               encode=lambda raw: len(raw).to_bytes(size, "little") + raw, values=text_for(charset))


def blob_col(name: str, charset: int, length_size: int) -> Col:
    return Col(name, 252, meta=bytes([length_size]), charset=charset,
               encode=lambda raw: len(raw).to_bytes(length_size, "little") + raw, values=text_for(charset))


def geometry_col(name: str) -> Col:
    return Col(name, 255, meta=bytes([4]), charset=BINARY,
               encode=lambda raw: len(raw).to_bytes(4, "little") + raw, values=st.binary(max_size=30))


def enum_col(name: str, labels: list[str], size: int = 1) -> Col:
    return Col(name, 254, meta=bytes([247, size]), real_type=247, labels=labels, charset=UTF8MB4,
               encode=lambda v: v.to_bytes(size, "little"), values=st.integers(0, len(labels)))


def set_col(name: str, labels: list[str]) -> Col:
    size = {1: 1, 2: 2, 3: 3, 4: 4}.get((len(labels) + 7) // 8, 8)
    return Col(name, 254, meta=bytes([248, size]), real_type=248, labels=labels, charset=UTF8MB4,
               encode=lambda v: v.to_bytes(size, "little"), values=st.integers(0, (1 << len(labels)) - 1))


def bit_col(name: str, bits: int) -> Col:
    size = (bits + 7) // 8
    return Col(name, 16, meta=bytes([bits % 8, bits // 8]), encode=lambda v: v.to_bytes(size, "big"),
               values=st.integers(0, (1 << bits) - 1))


def year_col(name: str) -> Col:
    return Col(name, 13, encode=lambda v: bytes([v]), values=st.integers(0, 255))


def logical_type(col: Col) -> int:
    return col.real_type or col.type


def table_map(table_id: int, schema: str, table: str, cols: list[Col], key: Iterable[int] = (0,),
              names: bool = True) -> bytes:
    body = table_id.to_bytes(6, "little") + b"\x01\x00"
    body += bytes([len(schema.encode())]) + schema.encode() + b"\x00"
    body += bytes([len(table.encode())]) + table.encode() + b"\x00"
    body += lenenc(len(cols)) + bytes(c.type for c in cols)
    meta = b"".join(c.meta for c in cols)
    body += lenenc(len(meta)) + meta
    nullable = sum(1 << i for i, c in enumerate(cols) if c.nullable)
    body += nullable.to_bytes((len(cols) + 7) // 8, "little")
    return body + optional_metadata(cols, key, names)


def optional_metadata(cols: list[Col], key: Iterable[int], names: bool) -> bytes:
    def tlv(kind: int, value: bytes) -> bytes:
        return bytes([kind]) + lenenc(len(value)) + value

    out = b""
    numeric = [c for c in cols if logical_type(c) in NUMERIC]
    if numeric:
        bits = "".join("1" if c.unsigned else "0" for c in numeric).ljust((len(numeric) + 7) // 8 * 8, "0")
        out += tlv(1, int(bits, 2).to_bytes(len(bits) // 8, "big"))
    characters = [c for c in cols if logical_type(c) in (15, 254, 252, 255)]
    if characters:
        value = lenenc(UTF8MB4)
        for position, col in enumerate(characters):
            if col.charset != UTF8MB4:
                value += lenenc(position) + lenenc(col.charset or BINARY)
        out += tlv(2, value)
    if names:
        out += tlv(4, b"".join(varstr(c.name) for c in cols))
    for kind, real in ((5, 248), (6, 247)):
        members = [c for c in cols if c.real_type == real]
        if members:
            out += tlv(kind, b"".join(lenenc(len(c.labels or []))
                                      + b"".join(varstr(x) for x in c.labels or []) for c in members))
    if any(c.real_type for c in cols):
        out += tlv(10, lenenc(UTF8MB4))
    out += tlv(8, b"".join(lenenc(i) for i in key))
    return out


def image(cols: list[Col], row: list[Any]) -> bytes:
    nulls = sum(1 << i for i, v in enumerate(row) if v is None)
    data = nulls.to_bytes((len(cols) + 7) // 8, "little")
    return data + b"".join(c.encode(v) for c, v in zip(cols, row, strict=True) if v is not None)


def rows_body(table_id: int, cols: list[Col], images: list[bytes], bitmaps: int = 1,
              present: int | None = None) -> bytes:
    width = (len(cols) + 7) // 8
    bitmap = ((1 << len(cols)) - 1 if present is None else present).to_bytes(width, "little")
    body = table_id.to_bytes(6, "little") + b"\x01\x00" + lenenc(len(cols)) + bitmap * bitmaps
    return body + b"".join(images)


class Binlog:
    """A sequence of binlog event packets as the server sends them (no checksums)."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.pos = 4
        self.clock = 1_700_000_000

    def event(self, event_type: int, body: bytes, timestamp: int | None = None) -> None:
        size = 19 + len(body)
        self.pos += size
        self.clock += 1
        header = struct.pack("<IBIIIH", self.clock if timestamp is None else timestamp, event_type, 7, size,
                             self.pos, 0)
        self.packets.append(b"\x00" + header + body)

    def transaction(self, table_id: int, schema: str, table: str, cols: list[Col], rows: list[list[Any]],
                    kind: str = "write", seq: int = 1, names: bool = True) -> None:
        self.event(BINLOG.MARIADB_GTID_EVENT, seq.to_bytes(8, "little") + b"\x00" * 4 + b"\x00")
        self.event(BINLOG.TABLE_MAP_EVENT, table_map(table_id, schema, table, cols, names=names))
        event_type = {"write": BINLOG.WRITE_ROWS_EVENT_V1, "update": BINLOG.UPDATE_ROWS_EVENT_V1,
                      "delete": BINLOG.DELETE_ROWS_EVENT_V1}[kind]
        self.event(event_type, rows_body(table_id, cols, [image(cols, r) for r in rows],
                                         bitmaps=2 if kind == "update" else 1))
        self.event(BINLOG.XID_EVENT, seq.to_bytes(8, "little"))


# ---------------------------------------------------------------- reading it both ways


class FakeStream:
    def __init__(self, packets: list[bytes]) -> None:
        self.packets = iter(packets)

    def _read_packet(self) -> MysqlPacket:
        return MysqlPacket(next(self.packets, b"\xfe\x00\x00\x02\x00"), "utf8")

    def close(self) -> None:
        pass


class FakeControl:
    charset = "utf8"

    def _get_dbms(self) -> str:
        return "mariadb"

    def close(self) -> None:
        pass


def read(reader_class: type[BinLogStreamReader], packets: list[bytes],
         **options: Any) -> list[dict[str, Any]]:
    """The events a reader returns, described as each arrives (rows read at once, as syncd does:
    the library resolves column names when rows are first read, against the latest table map)."""
    options.setdefault("filter_non_implemented_events", False)
    reader = reader_class(connection_settings={}, server_id=99, enable_logging=False, **options)
    reader._BinLogStreamReader__connected_stream = True
    reader._BinLogStreamReader__connected_ctl = True
    reader._BinLogStreamReader__optional_meta_data = True
    reader._stream_connection = FakeStream(packets)
    reader._ctl_connection = FakeControl()
    events = [describe(event) for event in reader]
    if isinstance(reader, fastpath.FastBinLogStreamReader):
        read.stats = reader.fast_stats  # type: ignore[attr-defined]
    return events


def plain(value: Any) -> Any:
    """Values compared exactly: floats by their bits, Decimals by their text, dicts in order."""
    if isinstance(value, float):
        return ("float", struct.pack("<d", value)) if math.isnan(value) else ("float", value)
    if isinstance(value, Decimal):
        return ("Decimal", str(value))
    if isinstance(value, dict):
        return [(k, plain(v)) for k, v in value.items()]
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return (type(value).__name__, value)


def describe(event: Any) -> dict[str, Any]:
    name = type(event).__name__.removeprefix("Fast")
    out: dict[str, Any] = {"class": name, "timestamp": event.timestamp, "type": event.event_type,
                           "log_pos": event.packet.log_pos, "size": event.event_size}
    if isinstance(event, RowsEvent):
        out.update(table_id=event.table_id, schema=event.schema, table=event.table,
                   key=event.primary_key, flags=event.flags, count=event.number_of_columns,
                   bitmap=event.columns_present_bitmap,
                   columns=[c.data for c in event.columns], rows=plain(event.rows))
        if isinstance(event, UpdateRowsEvent):
            out["bitmap2"] = event.columns_present_bitmap2
    elif isinstance(event, TableMapEvent):
        out.update(table_id=event.table_id, schema=event.schema, table=event.table,
                   columns=[c.data for c in event.columns], nulls=event.null_bitmask,
                   key=event.get_table().primary_key)
    elif isinstance(event, XidEvent):
        out["xid"] = event.xid
    elif isinstance(event, MariadbGtidEvent):
        out.update(gtid=event.gtid, flags=event.flags, domain=event.domain_id, seq=event.gtid_seq_no)
    return out


def both(packets: list[bytes], **options: Any) -> list[dict[str, Any]]:
    """Reads with both paths; asserts equal results; returns them."""
    library = read(BinLogStreamReader, packets, **options)
    fast = read(fastpath.FastBinLogStreamReader, packets, **options)
    assert len(fast) == len(library)
    for mine, theirs in zip(fast, library, strict=True):
        assert mine == theirs
    return fast


# ---------------------------------------------------------------- tests


def shop_columns() -> list[Col]:
    return [
        Col("id", 8, encode=lambda v: struct.pack("<q", v), values=st.integers(1, 10**12), nullable=False),
        varchar_col("order_no", UTF8MB4, 128),
        varchar_col("status", UTF8MB4, 32),
        decimal_col("amount", 12, 2),
        datetime2_col("created_at", 3),
        datetime2_col("updated_at", 6),
        blob_col("note", UTF8MB4, 2),
    ]


SHOP_ROW = [42, b"NO0001", "已支付".encode(), Decimal("1299.50"),
            (2024, 5, 1, 8, 30, 0, 123000), (2024, 5, 1, 8, 30, 1, 654321), "送货上门🚀".encode()]


def test_a_transaction_reads_the_same_and_table_maps_come_from_the_cache() -> None:
    log = Binlog()
    cols = shop_columns()
    for seq in range(1, 6):
        log.transaction(70, "shop", "orders", cols, [SHOP_ROW], seq=seq)
    log.transaction(70, "shop", "orders", cols, [SHOP_ROW, [*SHOP_ROW[:6], None]], kind="update", seq=6)
    log.transaction(70, "shop", "orders", cols, [SHOP_ROW], kind="delete", seq=7)
    events = both(log.packets)
    assert [e["class"] for e in events[:4]] == ["MariadbGtidEvent", "TableMapEvent", "WriteRowsEvent",
                                                "XidEvent"]
    updated = datetime.datetime(2024, 5, 1, 8, 30, 1, 654321)
    assert events[2]["rows"][0][0][1][5] == ("updated_at", ("datetime", updated))
    assert read.stats == {"table_map_hits": 6, "table_map_parsed": 1, "fast_rows": 7, "library_rows": 0}


def test_a_reused_table_id_with_another_definition_is_decoded_with_the_new_one() -> None:
    log = Binlog()
    first = shop_columns()
    second = [first[0], varchar_col("status", LATIN1, 20), datetime2_col("paid_at", 0)]
    log.transaction(70, "shop", "orders", first, [SHOP_ROW])
    log.transaction(70, "shop", "orders", second, [[7, "payé".encode("cp1252"), (2023, 1, 2, 3, 4, 5, 0)]])
    log.transaction(70, "shop", "orders", first, [SHOP_ROW])
    events = both(log.packets)
    assert events[6]["rows"][0][0][1] == [("id", ("int", 7)), ("status", ("str", "payé")),
                                          ("paid_at", ("datetime", datetime.datetime(2023, 1, 2, 3, 4, 5)))]
    assert read.stats["table_map_parsed"] == 2


def test_rotation_forgets_table_ids_and_filters_apply_as_in_the_library() -> None:
    log = Binlog()
    cols = shop_columns()
    log.transaction(70, "shop", "orders", cols, [SHOP_ROW])
    log.transaction(71, "other", "orders", cols, [SHOP_ROW])  # another schema: filtered out
    log.event(BINLOG.ROTATE_EVENT, struct.pack("<Q", 4) + b"mysql-bin.000002")
    # rows without their table map after a rotation: dropped by both
    log.event(BINLOG.WRITE_ROWS_EVENT_V1, rows_body(70, cols, [image(cols, SHOP_ROW)]))
    log.transaction(70, "shop", "orders", cols, [SHOP_ROW])
    events = both(log.packets, only_schemas=["shop"])
    assert [e.get("schema") for e in events if e["class"] == "WriteRowsEvent"] == ["shop", "shop"]
    only_writes = both(log.packets, only_schemas=["shop"], only_events=[WriteRowsEvent])
    assert [e["class"] for e in only_writes] == ["WriteRowsEvent", "WriteRowsEvent"]


def test_what_the_fast_path_leaves_to_the_library_still_reads_the_same() -> None:
    log = Binlog()
    cols = shop_columns()
    log.transaction(70, "shop", "orders", cols, [SHOP_ROW], names=False)  # no column names
    log.event(BINLOG.TABLE_MAP_EVENT, table_map(72, "shop", "orders", cols))
    present = (1 << len(cols)) - 1 - (1 << 6)  # binlog_row_image=MINIMAL-like: note not logged
    log.event(BINLOG.WRITE_ROWS_EVENT_V1,
              rows_body(72, cols, [image(cols[:6], SHOP_ROW[:6])], present=present))
    json_col = Col("doc", 245, meta=bytes([4]), encode=lambda raw: len(raw).to_bytes(4, "little") + raw)
    log.transaction(73, "shop", "docs", [cols[0], json_col], [[1, None]])  # MySQL binary JSON
    both(log.packets)
    assert read.stats["library_rows"] == 3


def test_fast_rows_events_say_their_images_are_full() -> None:
    log = Binlog()
    log.transaction(70, "shop", "orders", shop_columns(), [SHOP_ROW])
    reader = fastpath.FastBinLogStreamReader(connection_settings={}, server_id=99, enable_logging=False)
    reader._BinLogStreamReader__connected_stream = True
    reader._BinLogStreamReader__connected_ctl = True
    reader._BinLogStreamReader__optional_meta_data = True
    reader._stream_connection = FakeStream(log.packets)
    reader._ctl_connection = FakeControl()
    rows_events = [e for e in reader if isinstance(e, RowsEvent)]
    assert [getattr(e, "full_row_image", False) for e in rows_events] == [True]


def test_quoted_and_unicode_column_names_and_many_null_patterns() -> None:
    cols = [Col("id", 3, encode=lambda v: struct.pack("<i", v), values=st.integers(), nullable=False),
            varchar_col("it's \"odd\"\n名字", UTF8MB4, 40), year_col("{v0}"), decimal_col("p", 5, 5),
            date_col("d"), varchar_col("b", BINARY, 10)]
    log = Binlog()
    rows = [[i, None if i & 1 else "名".encode(), None if i & 2 else 99,
             None if i & 4 else Decimal("-0.12345"), None if i & 8 else (2020, 0, 1),
             b"" if i & 16 else b"\x00\x01"] for i in range(32)]
    log.transaction(70, "s", "t", cols, rows)
    old = fastpath.PATTERN_LIMIT
    fastpath.PATTERN_LIMIT = 3  # past three null patterns, one function tests the bitmap
    try:
        events = both(log.packets)
    finally:
        fastpath.PATTERN_LIMIT = old
    values = dict(events[2]["rows"][16][0][1])
    assert values["b"] == ("str", "")  # an empty binary value reads '' in the library, so here too
    assert dict(events[2]["rows"][0][1][1]) == {"d": ("str", "out of date range")}


def test_install_leaves_the_library_when_told(monkeypatch: pytest.MonkeyPatch) -> None:
    """SYNCD_DECODER=library: the library decodes (only what it cannot read is read by syncd)."""
    reader = BinLogStreamReader(connection_settings={}, server_id=1, enable_logging=False)
    monkeypatch.setenv(fastpath.DECODER_ENV, "library")
    assert type(fastpath.install(reader)) is fastpath.LibraryBinLogStreamReader
    monkeypatch.setenv(fastpath.DECODER_ENV, "fast")
    assert type(fastpath.install(reader)) is fastpath.FastBinLogStreamReader
    checked = BinLogStreamReader(connection_settings={}, server_id=1, enable_logging=False,
                                 verify_checksum=True)
    assert type(fastpath.install(checked)) is BinLogStreamReader


def test_generated_code_never_holds_names_as_code() -> None:
    from pymysqlreplication.column import Column

    column = Column(type=3, name="x'] + __import__('os').getcwd() + ['", unsigned=False)
    decoder = fastpath.RowDecoder([column])
    values, sources, end = decoder.image(b"\x00" + struct.pack("<i", -5), 0)
    assert values == {column.name: -5} and sources == {} and end == 5
    assert "__import__('os')" in decoder.sources[0]  # inside a string literal, as data


# -- every supported type, random definitions and values -----------------------------------------

COLUMN_KINDS: list[Callable[[str], Col]] = [
    lambda n: int_col(n, "tiny", False), lambda n: int_col(n, "tiny", True),
    lambda n: int_col(n, "short", False), lambda n: int_col(n, "short", True),
    lambda n: int_col(n, "int24", False), lambda n: int_col(n, "int24", True),
    lambda n: int_col(n, "long", False), lambda n: int_col(n, "long", True),
    lambda n: int_col(n, "longlong", False), lambda n: int_col(n, "longlong", True),
    lambda n: float_col(n, False), lambda n: float_col(n, True), year_col,
    lambda n: decimal_col(n, 12, 2), lambda n: decimal_col(n, 65, 30), lambda n: decimal_col(n, 10, 0),
    lambda n: decimal_col(n, 19, 9), lambda n: decimal_col(n, 4, 4),
    date_col, *(lambda n, f=f: datetime2_col(n, f) for f in range(7)),
    *(lambda n, f=f: timestamp2_col(n, f) for f in range(7)),
    *(lambda n, f=f: time2_col(n, f) for f in (0, 3, 6)),
    lambda n: varchar_col(n, UTF8MB4, 400), lambda n: varchar_col(n, LATIN1, 100),
    lambda n: varchar_col(n, GBK, 60), lambda n: varchar_col(n, BINARY, 255),
    lambda n: char_col(n, UTF8MB4, 40), lambda n: char_col(n, UTF8MB4, 400),
    lambda n: char_col(n, BINARY, 16),
    *(lambda n, s=s: blob_col(n, UTF8MB4, s) for s in (1, 2, 3, 4)), lambda n: blob_col(n, BINARY, 2),
    lambda n: blob_col(n, GBK, 2), geometry_col,
    lambda n: enum_col(n, ["待支付", "已支付", "b"]), lambda n: enum_col(n, ["x", "y"], size=2),
    lambda n: set_col(n, ["a", "b", "中"]), lambda n: set_col(n, [f"m{i}" for i in range(20)]),
    lambda n: set_col(n, [f"m{i}" for i in range(40)]),
    lambda n: bit_col(n, 1), lambda n: bit_col(n, 10), lambda n: bit_col(n, 64),
]


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[Col], list[list[Any]], str]:
    kinds = draw(st.lists(st.sampled_from(range(len(COLUMN_KINDS))), min_size=1, max_size=12))
    cols = [COLUMN_KINDS[k](f"c{i}") for i, k in enumerate(kinds)]
    for col in cols:
        col.nullable = draw(st.booleans())
    rows = draw(st.lists(st.tuples(*[st.none() | c.values if c.nullable else c.values for c in cols])
                         .map(list), min_size=1, max_size=6))
    return cols, rows, draw(st.sampled_from(["write", "update", "delete"]))


@pytest.mark.parametrize("decoder", ["fast", "python"])  # with and without the C decoder
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(table=tables())
def test_random_tables_and_rows_read_the_same(table: tuple[list[Col], list[list[Any]], str], decoder: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fastpath.DECODER_ENV, decoder)
    cols, rows, kind = table
    if kind == "update" and len(rows) % 2:
        rows = rows + rows[:1]  # before and after images
    log = Binlog()
    event_type = {"write": BINLOG.WRITE_ROWS_EVENT_V1, "update": BINLOG.UPDATE_ROWS_EVENT_V1,
                  "delete": BINLOG.DELETE_ROWS_EVENT_V2}[kind]
    log.event(BINLOG.TABLE_MAP_EVENT, table_map(5, "db", "t", cols))
    body = rows_body(5, cols, [image(cols, r) for r in rows], bitmaps=2 if kind == "update" else 1)
    if event_type == BINLOG.DELETE_ROWS_EVENT_V2:  # v2: extra data length after the flags
        body = body[:8] + b"\x02\x00" + body[8:]
    log.event(event_type, body)
    library = read(BinLogStreamReader, log.packets)
    fast = read(fastpath.FastBinLogStreamReader, log.packets)
    assert read.stats["fast_rows"] == 1
    assert fast == library
