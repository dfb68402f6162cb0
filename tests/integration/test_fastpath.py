"""The fast decoding path reads a real MariaDB binlog exactly as the library does.

One binlog with a wide table of every common type (extremes, NULLs, CJK and emoji, latin1 and
gbk, zero dates, negative TIME, empty BINARY/SET, JSON, BIT), updates, deletes, multi-row
events, a second table in the same transactions and ALTER TABLE (ADD and DROP COLUMN) between
writes, is read twice: by the library's BinLogStreamReader and by the fast reader. Every event
and every row dict must be equal, down to key order and value types. Both tables go through the
C decoder, which reads every type they hold (with SYNCD_DECODER=python, through the generated
Python). Then syncd's BinlogReader reads it with each decoder and must produce equal transactions.
"""

from __future__ import annotations

import math
import os
import struct
import threading
from collections.abc import Callable, Iterator
from datetime import UTC
from decimal import Decimal
from typing import Any

import pytest
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import MariadbGtidEvent, QueryEvent, XidEvent
from pymysqlreplication.row_event import RowsEvent, TableMapEvent, UpdateRowsEvent

from devtools.sandbox import MariaDBServer
from syncd.config import Secret, SourceConfig
from syncd.errors import PositionLost, SyncdError
from syncd.model import Heartbeat, Position
from syncd.source import decoder_process, fastpath
from syncd.source.binlog import BinlogReader
from syncd.source.decoder_process import DecoderProcess

WIDE = """
CREATE TABLE wide (
    id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    t_tiny TINYINT, t_utiny TINYINT UNSIGNED, t_small SMALLINT, t_usmall SMALLINT UNSIGNED,
    t_medium MEDIUMINT, t_umedium MEDIUMINT UNSIGNED, t_int INT, t_uint INT UNSIGNED,
    t_big BIGINT, t_ubig BIGINT UNSIGNED, t_bool TINYINT(1),
    t_dec DECIMAL(65,30), t_money DECIMAL(12,2), t_dec0 DECIMAL(10,0), t_frac DECIMAL(5,5),
    t_float FLOAT, t_double DOUBLE,
    t_date DATE, t_dt0 DATETIME, t_dt1 DATETIME(1), t_dt2 DATETIME(2), t_dt3 DATETIME(3),
    t_dt4 DATETIME(4), t_dt5 DATETIME(5), t_dt6 DATETIME(6),
    t_ts0 TIMESTAMP NULL DEFAULT NULL, t_ts1 TIMESTAMP(1) NULL DEFAULT NULL,
    t_ts3 TIMESTAMP(3) NULL DEFAULT NULL, t_ts6 TIMESTAMP(6) NULL DEFAULT NULL,
    t_time TIME, t_time1 TIME(1), t_time2 TIME(2), t_time6 TIME(6), t_year YEAR,
    t_char CHAR(10), t_char_wide CHAR(100), t_varchar VARCHAR(300), t_text TEXT, t_mtext MEDIUMTEXT,
    t_latin VARCHAR(40) CHARACTER SET latin1, t_gbk VARCHAR(40) CHARACTER SET gbk,
    t_binary BINARY(8), t_varbinary VARBINARY(40), t_blob BLOB,
    t_enum ENUM('待支付','已支付','x'), t_set SET('a','b','中文'), t_json JSON,
    t_bit1 BIT(1), t_bit BIT(10), t_bit64 BIT(64)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci
"""

COLUMNS = ("t_tiny, t_utiny, t_small, t_usmall, t_medium, t_umedium, t_int, t_uint, t_big, t_ubig, t_bool,"
           " t_dec, t_money, t_dec0, t_frac, t_float, t_double, t_date, t_dt0, t_dt1, t_dt2, t_dt3, t_dt4,"
           " t_dt5, t_dt6, t_ts0, t_ts1, t_ts3, t_ts6, t_time, t_time1, t_time2, t_time6, t_year, t_char,"
           " t_char_wide, t_varchar, t_text, t_mtext, t_latin, t_gbk, t_binary, t_varbinary, t_blob, t_enum,"
           " t_set, t_json, t_bit1, t_bit, t_bit64")

MAXIMA = ("127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807,"
          " 18446744073709551615, 1,"
          " '99999999999999999999999999999999999.999999999999999999999999999999', 9999999999.99,"
          " 9999999999, 0.99999, 3.4e38, 1.7976931348623157e308,"
          " '9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.9', '9999-12-31 23:59:59.99',"
          " '9999-12-31 23:59:59.999', '9999-12-31 23:59:59.9999', '9999-12-31 23:59:59.99999',"
          " '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07', '2038-01-19 03:14:07.9',"
          " '2038-01-19 03:14:07.999', '2038-01-19 03:14:07.999999',"
          " '838:59:59', '838:59:58.9', '838:59:58.99', '838:59:58.999999', 2155,"
          " '中文😀', REPEAT('长', 100), REPEAT('中文😀', 60), REPEAT('订单', 500), REPEAT('🚀', 4000),"
          " 'café ÿ', '中文汉字', x'0102', x'00ff00', x'deadbeef00', 'x', 'a,b,中文',"
          " '{\"a\": [1, \"中\", null], \"b\": {\"c\": 1.5}}', b'1', b'1010101010', 18446744073709551615")

MINIMA = ("-128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, 0,"
          " '-0.000000000000000000000000000001', -9999999999.99, -9999999999, -0.5, -1.17549e-38, -2.2e-308,"
          " '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.1', '1000-01-01 00:00:00.01',"
          " '1000-01-01 00:00:00.001', '1000-01-01 00:00:00.0001', '1000-01-01 00:00:00.00001',"
          " '1000-01-01 00:00:00.000001', '1970-01-01 00:00:01', '1970-01-01 00:00:01.1',"
          " '1970-01-01 00:00:01.001', '1970-01-01 00:00:01.000001',"
          " '-838:59:59', '-00:00:00.5', '-838:59:58.99', '-12:34:56.789012', 1901,"
          " '', '', '', '', '', '', '', '', '', '', '', '', '[]', b'0', b'0', 0")

ZEROS = ("0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,"
         " '0000-00-00', '0000-00-00 00:00:00', '2020-00-00 00:00:00.0', '0000-00-00 00:00:00.00',"
         " '2020-02-00 00:00:00.000', '0000-00-00 00:00:00.0000', '0000-00-00 00:00:00.00000',"
         " '0000-00-00 00:00:00.000000', '0000-00-00 00:00:00', '0000-00-00 00:00:00.0',"
         " '0000-00-00 00:00:00.000', '0000-00-00 00:00:00.000000',"
         " '00:00:00', '-00:00:00.1', '-00:00:00.01', '-00:00:00.000001', 0,"
         " 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', '', '', 'null', b'1', b'0000000001', 1")

NULLS = ", ".join(["NULL"] * 50)

NARROW = """
CREATE TABLE narrow (
    id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    n_tiny TINYINT, n_usmall SMALLINT UNSIGNED, n_medium MEDIUMINT, n_uint INT UNSIGNED, n_big BIGINT,
    n_ubig BIGINT UNSIGNED, n_dec DECIMAL(65,30), n_money DECIMAL(12,2), n_frac DECIMAL(5,5),
    n_float FLOAT, n_double DOUBLE, n_date DATE, n_dt0 DATETIME, n_dt3 DATETIME(3), n_dt6 DATETIME(6),
    n_year YEAR, n_char CHAR(10), n_varchar VARCHAR(300), n_text TEXT,
    n_latin VARCHAR(40) CHARACTER SET latin1, n_gbk VARCHAR(40) CHARACTER SET gbk, n_binary BINARY(4),
    n_varbinary VARBINARY(20), n_blob BLOB, n_enum ENUM('待支付','已支付','x')
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci
"""
"""The common column types without the wide table's extremes: the C decoder never hands an event back."""

NARROW_ROWS = (
    "127, 65535, 8388607, 4294967295, 9223372036854775807, 18446744073709551615,"
    " '99999999999999999999999999999999999.999999999999999999999999999999', 9999999999.99, 0.99999,"
    " 3.4e38, 1.7976931348623157e308, '9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.999',"
    " '9999-12-31 23:59:59.999999', 2155, '中文😀', REPEAT('中文😀', 60), REPEAT('订单', 500), 'café ÿ',"
    " '中文汉字', x'0102', x'00ff00', x'deadbeef00', '已支付'",
    "-128, 0, -8388608, 0, -9223372036854775808, 0, '-0.000000000000000000000000000001', -9999999999.99,"
    " -0.5, -1.17549e-38, -2.2e-308, '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.001',"
    " '1000-01-01 00:00:00.000001', 1901, '', '', '', '', '', '', '', '', ''",
    "0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '0000-00-00', '0000-00-00 00:00:00', '2020-02-00 00:00:00.000',"
    " '0000-00-00 00:00:00.000000', 0, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'x'",
    ", ".join(["NULL"] * 25),
)


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
    if isinstance(value, set):
        return ("set", sorted(value))
    return (type(value).__name__, value)


def describe(event: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"class": type(event).__name__.removeprefix("Fast"), "type": event.event_type,
                           "timestamp": event.timestamp, "log_pos": event.packet.log_pos}
    if isinstance(event, RowsEvent):
        out.update(table_id=event.table_id, schema=event.schema, table=event.table, key=event.primary_key,
                   columns=[c.data for c in event.columns], rows=plain(event.rows))
        if isinstance(event, UpdateRowsEvent):
            out["bitmap2"] = event.columns_present_bitmap2
    elif isinstance(event, TableMapEvent):
        out.update(table_id=event.table_id, table=event.table, columns=[c.data for c in event.columns])
    elif isinstance(event, XidEvent):
        out["xid"] = event.xid
    elif isinstance(event, MariadbGtidEvent):
        out["gtid"] = event.gtid
    elif isinstance(event, QueryEvent):
        out["query"] = event.query
    return out


def master_status(server: MariaDBServer) -> Position:
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
    return Position(str(row[0]), int(row[1]))


def write_everything(server: MariaDBServer, database: str) -> None:
    with server.connect(database) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")  # zero dates, '' for bad ENUM values
        cur.execute("SET SESSION time_zone = '+00:00'")
        cur.execute(WIDE)
        cur.execute("CREATE TABLE side (id BIGINT PRIMARY KEY, note VARCHAR(20), at DATETIME(6))"
                    " CHARACTER SET latin1")
        for values in (MAXIMA, MINIMA, ZEROS, NULLS):
            cur.execute(f"INSERT INTO wide ({COLUMNS}) VALUES ({values})")
        cur.execute(NARROW)
        cur.execute("INSERT INTO narrow VALUES " + ", ".join(f"(NULL, {row})" for row in NARROW_ROWS))
        cur.execute("UPDATE narrow SET n_money = -n_money, n_varchar = CONCAT(n_varchar, '改') WHERE id < 3")
        cur.execute("DELETE FROM narrow WHERE id = 2")
        conn.begin()
        cur.execute("UPDATE wide SET t_varchar = '改了', t_dt6 = '2024-02-29 12:00:00.000001' WHERE id <= 2")
        cur.execute("INSERT INTO side VALUES (1, 'crème', '2024-01-01 00:00:00.5')")
        cur.execute("DELETE FROM wide WHERE id = 3")
        conn.commit()
        cur.execute("ALTER TABLE wide ADD COLUMN added VARCHAR(20) NOT NULL DEFAULT '新' AFTER t_int")
        cur.execute(f"INSERT INTO wide ({COLUMNS}) VALUES ({MAXIMA})")
        cur.execute("UPDATE wide SET added = '新的值', t_money = -0.01")
        cur.execute("ALTER TABLE wide DROP COLUMN t_gbk, DROP COLUMN t_tiny")
        cur.execute("INSERT INTO wide (t_varchar, t_json) SELECT CONCAT('行', seq), '{}' FROM seq_1_to_300")
        cur.execute("UPDATE wide SET t_uint = id WHERE t_varchar LIKE '行%'")
        cur.execute("DELETE FROM wide WHERE id % 7 = 0")
        cur.execute("UPDATE side SET note = NULL")


def library_then_fast(server: MariaDBServer, database: str, start: Position,
                      make: Callable[..., BinLogStreamReader]) -> list[dict[str, Any]]:
    stream = make(
        connection_settings={"host": server.host, "port": server.port, "user": "root",
                             "password": server.root_password},
        server_id=7000 + os.getpid() % 1000, blocking=False, resume_stream=True, log_file=start.file,
        log_pos=start.pos, only_schemas=[database], filter_non_implemented_events=False, enable_logging=False,
    )
    try:
        events = [describe(event) for event in stream]  # rows read as each event arrives, as syncd does
    finally:
        stream.close()
    if isinstance(stream, fastpath.FastBinLogStreamReader):
        assert stream.fast_stats["library_rows"] == 0, stream.fast_stats
        assert stream.fast_stats["table_map_hits"] > 0, stream.fast_stats
        decoders = {cached[1].table: cached[1]._syncd_decoder for cached in stream._fast_tables.values()
                    if cached is not None}
        for decoder in decoders.values():
            assert (decoder.native is not None) == fastpath.native_enabled()
        assert decoders["narrow"].handed_back == 0
    return events


@pytest.fixture
def binlog(mariadb: MariaDBServer, source_db: Callable[[MariaDBServer], str]) -> Iterator[tuple[str, Position,
                                                                                                 Position]]:
    database = source_db(mariadb)
    start = master_status(mariadb)
    write_everything(mariadb, database)
    yield database, start, master_status(mariadb)


@pytest.mark.parametrize("decoder", ["fast", "python"])
def test_the_fast_path_reads_every_event_and_value_as_the_library(
        mariadb: MariaDBServer, binlog: tuple[str, Position, Position], decoder: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`fast` decodes the narrow table in C; `python` (SYNCD_DECODER=python) never does."""
    monkeypatch.setenv(fastpath.DECODER_ENV, decoder)
    database, start, _ = binlog
    library = library_then_fast(mariadb, database, start, BinLogStreamReader)
    fast = library_then_fast(mariadb, database, start, fastpath.FastBinLogStreamReader)
    rows = [e for e in library if "rows" in e]
    assert len(rows) >= 14 and sum(len(e["rows"]) for e in rows) > 600
    assert len(fast) == len(library)
    for mine, theirs in zip(fast, library, strict=True):
        assert mine == theirs


def source_config(mariadb: MariaDBServer, database: str, monkeypatch: pytest.MonkeyPatch) -> SourceConfig:
    monkeypatch.setenv("FASTPATH_TEST_PASSWORD", mariadb.root_password)
    return SourceConfig("s", mariadb.host, mariadb.port, "root", Secret(env="FASTPATH_TEST_PASSWORD"),
                        database, 7500 + os.getpid() % 1000, UTC)


def read_transactions(mariadb: MariaDBServer, database: str, start: Position, end: Position,
                      monkeypatch: pytest.MonkeyPatch, decoder: str,
                      reader_class: type[BinlogReader] | type[DecoderProcess] = BinlogReader) -> list[Any]:
    monkeypatch.setenv(fastpath.DECODER_ENV, decoder)
    reader = reader_class(source_config(mariadb, database, monkeypatch), start, {"wide", "side", "narrow"})
    out: list[Any] = []
    try:
        for event in reader.events():
            if isinstance(event, Heartbeat):
                continue
            out.append(event)
            if getattr(event, "end", start) >= end:
                break
        if isinstance(reader, BinlogReader):
            assert (type(reader._stream).__name__ == "FastBinLogStreamReader") == (decoder != "library")
    finally:
        reader.close()
    return out


def test_syncd_reads_the_same_transactions_with_either_decoder(
        mariadb: MariaDBServer, binlog: tuple[str, Position, Position],
        monkeypatch: pytest.MonkeyPatch) -> None:
    database, start, end = binlog
    library = read_transactions(mariadb, database, start, end, monkeypatch, "library")
    fast = read_transactions(mariadb, database, start, end, monkeypatch, "fast")
    python = read_transactions(mariadb, database, start, end, monkeypatch, "python")
    assert sum(len(getattr(e, "changes", ())) for e in library) > 600
    assert fast == library
    assert python == library
    assert [repr(e) for e in fast] == [repr(e) for e in library]


def test_the_decoder_process_hands_over_exactly_the_same_events(
        mariadb: MariaDBServer, binlog: tuple[str, Position, Position],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Same events, same values, same types (repr tells True from 1, and Decimal('1.0') from 1.00)."""
    database, start, end = binlog
    inline = read_transactions(mariadb, database, start, end, monkeypatch, "fast")
    handed = read_transactions(mariadb, database, start, end, monkeypatch, "fast", DecoderProcess)
    assert [repr(e) for e in handed] == [repr(e) for e in inline]


def test_a_decoder_process_started_ahead_is_handed_the_source(
        mariadb: MariaDBServer, binlog: tuple[str, Position, Position],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`syncd run` starts decoder processes before it reads the checkpoints; a stream takes one."""
    database, start, end = binlog
    inline = read_transactions(mariadb, database, start, end, monkeypatch, "fast")
    decoder_process.prestart(1)
    handed = read_transactions(mariadb, database, start, end, monkeypatch, "fast", DecoderProcess)
    assert not decoder_process._spares
    assert [repr(e) for e in handed] == [repr(e) for e in inline]


def test_an_error_in_the_decoder_process_is_raised_as_the_same_error(
        mariadb: MariaDBServer, binlog: tuple[str, Position, Position],
        monkeypatch: pytest.MonkeyPatch) -> None:
    database, _, _ = binlog
    gone = Position("mysql-bin.999999", 4)
    raised = []
    for reader_class in (BinlogReader, DecoderProcess):
        reader = reader_class(source_config(mariadb, database, monkeypatch), gone, {"wide"})
        with pytest.raises(SyncdError) as caught:
            next(iter(reader.events()))
        reader.close()
        raised.append((type(caught.value), str(caught.value)))
    assert raised[0] == raised[1] and raised[0][0] is PositionLost


def test_closing_the_decoder_process_ends_a_blocked_read(
        mariadb: MariaDBServer, binlog: tuple[str, Position, Position],
        monkeypatch: pytest.MonkeyPatch) -> None:
    database, _, end = binlog
    reader = DecoderProcess(source_config(mariadb, database, monkeypatch), end, {"wide"})
    events = reader.events()
    first = next(events)  # blocks until the idle stream's first heartbeat
    assert isinstance(first, Heartbeat)
    child = reader._child
    assert child is not None
    threading.Timer(0.5, reader.close).start()
    assert list(events) in ([], [Heartbeat("s", end)])  # the read waiting for more just ends
    assert child.wait(timeout=10) is not None
