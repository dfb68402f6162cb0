"""syncd against MySQL 8.4: start-up checks, snapshot, stream, restart and reconnect, end to end.

No MySQL server runs on the test machines, so the source is the MySQL 8.4 test double
(tests/mysql_double) in front of a real MariaDB database: the double speaks the protocol, answers
what is MySQL's own (variables, binlog status, the binlog itself: events written by the test, as
MySQL 8.4 writes them) and forwards plain data SQL (the rows a snapshot copies) to MariaDB. The
target is a real PostgreSQL, written by a real `syncd` process.

Where the double and the documentation could disagree, the double follows mysql-server's sources:
the statements 8.4 removed fail with 1064 (MySQL 8.4.0 release notes, "SQL statements removed");
SHOW BINARY LOG STATUS and SHOW STATUS without binlog_snapshot_* (MySQL has no consistent-snapshot
position, unlike MariaDB: reference manual 8.4 "SHOW BINARY LOG STATUS Statement");
caching_sha2_password's fast and full authentication (sql/auth/sha2_password.cc); compressed
transactions as one TRANSACTION_PAYLOAD_EVENT whose inner events have no checksum and log_pos 0
(libs/mysql/binlog/event/codecs/binary.cpp, reference manual 8.4 "Binary Log Transaction
Compression"); tagged GTIDs (control_events.h, Gtid_event::define_fields); a restart ends the
binlog file with a STOP event and opens the next one; a cut dump connection is a lost connection.
"""

from __future__ import annotations

import datetime
import secrets
import textwrap
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from syncd.source.gtid import GtidState
from tests.helpers import eventually
from tests.integration.scenario import SHOP_ORDERS_MAPPING, SHOP_ORDERS_SQL, Scenario, Source
from tests.mysql_double import Col, Delete, Insert, MySQLDouble, Table, Update
from tests.mysql_double.statements import REMOVED_IN_84

STATUSES = ["待支付", "已支付", "已发货", "已完成", "已取消"]
TAG = "nightly_batch"


def _order(order_id: int, status: str = "待支付", amount: str = "100元") -> dict[str, Any]:
    return {"id": order_id, "order_no": f"S{order_id:06d}", "phone": "13812345678", "status": status,
            "amount_text": amount, "note": f"备注 {order_id}",
            "created_at": datetime.datetime(2024, 5, 1, 12, 30, 45, 123000)}


class Mirror:
    """The source as the test writes it: rows in MariaDB (what a snapshot copies) or events in the
    double's binlog (what the stream reads), and what the target must then hold."""

    def __init__(self, double: MySQLDouble, source: Source) -> None:
        self.double, self.source = double, source
        self.table = Table(source.database, "orders", (
            Col("id", "bigint", primary=True, nullable=False),
            Col("order_no", "varchar", length=32, nullable=False), Col("phone", "varchar", length=20),
            Col("status", "varchar", length=8, nullable=False), Col("amount_text", "varchar", length=32),
            Col("note", "text"), Col("created_at", "datetime", fsp=3)))
        self.rows: dict[int, dict[str, Any]] = {}
        self.deleted: set[int] = set()

    def copy_rows(self, *rows: dict[str, Any]) -> None:
        """Rows that are in the source tables before the snapshot (not in the binlog)."""
        for row in rows:
            insert = "INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s, %s)"
            self.source.execute((insert, tuple(row.values())))
            self.rows[row["id"]] = row

    def transaction(self, changes: list, **options: Any) -> str | None:
        for change in changes:
            for row in change.rows:
                if isinstance(change, Insert):
                    self.rows[row["id"]] = row
                elif isinstance(change, Update):
                    self.rows[row[1]["id"]] = row[1]
                else:
                    self.deleted.add(row["id"])
        return self.double.transaction(changes, schema=self.source.database, **options).gtid

    def expected(self) -> dict[int, tuple]:
        code = {s: i for i, s in enumerate(STATUSES)}
        return {i: (code[r["status"]], Decimal(r["amount_text"].replace("元", "")), "138****5678",
                    i in self.deleted) for i, r in self.rows.items()}


def _target(scenario: Scenario) -> dict[int, tuple]:
    rows = scenario.target("SELECT source_order_id, status, amount, buyer_phone, deleted_at IS NOT NULL "
                           "FROM orders WHERE channel = 'shop'")
    return {r[0]: r[1:] for r in rows}


def _checkpoint(scenario: Scenario) -> tuple[str, int, str | None]:
    (row,) = scenario.target("SELECT binlog_file, binlog_pos, gtid FROM syncd.checkpoints "
                             "WHERE source = 'shop'")
    return row


def _config(scenario: Scenario, double: MySQLDouble, source: Source, tls: str) -> Path:
    """config.yaml for the double: `verify-full` (TLS, checked against the double's CA) or
    `disable` (plain TCP: caching_sha2_password's full authentication then goes by RSA)."""
    ca = f"\n    ssl_ca: {double.ca_path}" if tls == "verify-full" else ""
    (scenario.tmp / "mappings").mkdir(exist_ok=True)
    (scenario.tmp / "mappings" / "mappings.yaml").write_text(textwrap.dedent(SHOP_ORDERS_MAPPING))
    scenario.config_path.write_text(f"""target:
  dsn: postgresql://{scenario.postgres.superuser}@127.0.0.1:{scenario.postgres.port}/{scenario.target_db}
  schema: public
  state_schema: syncd
sources:
  shop:
    host: {double.host}
    port: {double.port}
    user: {double.user}
    password_env: SHOP_DB_PASSWORD
    database: {source.database}
    server_id: {source.server_id}
    timezone: "+08:00"
    heartbeat: 1
    ssl_mode: {tls}{ca}
mappings: [mappings/]
batch: {{max_rows: 500, max_delay_ms: 100}}
log: {{level: debug, format: json}}
shutdown_timeout: 20
retry_max_seconds: 1
""")
    return scenario.config_path


@pytest.fixture
def setup(tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb: MariaDBServer,
          source_db: Callable[[MariaDBServer], str]) -> Iterator[tuple[Scenario, MySQLDouble, Mirror]]:
    database = source_db(mariadb)
    user, password = f"syncd_{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    source = Source("shop", mariadb, database, user=user, password=password)
    source.execute(SHOP_ORDERS_SQL)
    backend = {"host": mariadb.host, "port": mariadb.port, "user": "root", "password": mariadb.root_password,
               "charset": "utf8mb4"}
    with MySQLDouble(version="8.4.3", user=user, password=password, backend=backend) as double:
        scenario = Scenario.create(tmp_path, postgres, target_db, {"shop": source})
        _config(scenario, double, source, "verify-full")
        try:
            yield scenario, double, Mirror(double, source)
        finally:
            scenario.close()


def test_validate_snapshot_stream_restart_and_reconnect(setup: tuple[Scenario, MySQLDouble, Mirror]) -> None:
    """The whole life of a MySQL 8.4 source, its binlog read by the decoder process on the fast
    path (the C row decoder included). That compressed transactions and tagged GTIDs read the same
    on the Python and library paths: tests/unit/source/test_mysql_events.py."""
    scenario, double, mirror = setup
    mirror.copy_rows(_order(1), _order(2, "已支付", "88元"), _order(3))

    validated = scenario.cli("validate", "--live")
    assert validated.returncode == 0, validated.stdout + validated.stderr

    copied = scenario.cli("snapshot", "--source", "shop")
    assert copied.returncode == 0, copied.stdout + copied.stderr
    assert _target(scenario) == mirror.expected()
    file, pos, _ = _checkpoint(scenario)
    assert (file, pos) == double.binlog.position()  # SHOW BINARY LOG STATUS, read as the copy began

    # Streamed: a plain transaction, a compressed one larger than a part (1000 changes) with an
    # update and a delete of copied rows, and one with a tagged GTID.
    mirror.transaction([Insert(mirror.table, [_order(4, "已支付", "12元")])])
    big = [_order(i, STATUSES[i % 5], f"{i}元") for i in range(100, 1600)]
    mirror.transaction([Insert(mirror.table, big),
                        Update(mirror.table, [(_order(1), _order(1, "已完成", "100元"))]),
                        Delete(mirror.table, [_order(2, "已支付", "88元")])], compressed=True)
    tagged = mirror.transaction([Insert(mirror.table, [_order(5)])], gtid=f"{double.server_uuid}:{TAG}:1")
    process = scenario.start()
    eventually(lambda: _target(scenario) == mirror.expected(), 60)
    assert _checkpoint(scenario)[:2] == double.binlog.position()
    assert GtidState.parse(_checkpoint(scenario)[2]).covers(tagged or "")

    # Restart the server (a STOP event ends binlog.000001, binlog.000002 opens, the login cache is
    # emptied) and syncd, now over plain TCP: the login is a full one, by RSA.
    assert scenario.stop(process) == 0
    double.restart()
    _config(scenario, double, mirror.source, "disable")
    double.set_global("binlog_transaction_compression", "ON")  # every transaction compressed now
    mirror.transaction([Update(mirror.table, [(_order(4, "已支付", "12元"), _order(4, "已发货", "12元"))])])
    mirror.transaction([Insert(mirror.table, [_order(6)])], gtid=f"{double.server_uuid}:{TAG}:2")
    process = scenario.start()
    eventually(lambda: _target(scenario) == mirror.expected(), 60)
    assert double.auth.cache  # the full authentication happened, and succeeded

    # A dump connection cut in the middle: syncd reconnects from its checkpoint.
    eventually(lambda: double.cut_dump_connections() > 0, 30)
    mirror.transaction([Insert(mirror.table, [_order(7, "已取消", "1元")]),
                        Delete(mirror.table, [_order(3)])])
    eventually(lambda: _target(scenario) == mirror.expected(), 60)
    eventually(lambda: _checkpoint(scenario)[:2] == double.binlog.position(), 30)
    assert scenario.stop(process) == 0
    gtids = GtidState.parse(_checkpoint(scenario)[2])
    assert gtids.covers(f"{double.server_uuid}:{TAG}:2") and gtids.covers(f"{double.server_uuid}:4")

    # Nothing syncd (or the binlog library under it) sent was a statement MySQL 8.4 removed.
    sent = [sql for _, sql in double.queries]
    assert sent and not [sql for sql in sent if any(p.match(sql.strip()) for p in REMOVED_IN_84)]
    assert "SHOW BINARY LOG STATUS" in sent
    assert any(sql.startswith("SET @source_binlog_checksum") for sql in sent)
    log = scenario.log_text()
    assert "Traceback" not in log and "source_failed" not in log


def test_a_second_reader_with_syncds_server_id_is_reported_as_such(
        setup: tuple[Scenario, MySQLDouble, Mirror]) -> None:
    """MySQL ends the older of two dumps with the same server_id with error 1236 (rpl_source.cc,
    kill_zombie_dump_threads); syncd says so, instead of calling the binlog purged, and retries
    (the error may come from a connection of its own that the server has not yet seen go)."""
    scenario, double, mirror = setup
    mirror.copy_rows(_order(1))
    assert scenario.cli("snapshot", "--source", "shop").returncode == 0
    process = scenario.start()
    eventually(lambda: any(s.dumping for s in list(double._sessions)), 30)
    intruder = double.connect(tls=True)
    try:
        with intruder.cursor() as cur:
            cur.execute("SET @source_binlog_checksum = 'CRC32'")
        name, pos = double.binlog.position()
        server_id = mirror.source.server_id
        intruder._execute_command(0x12, pos.to_bytes(4, "little") + b"\x00\x00"
                                  + server_id.to_bytes(4, "little") + name.encode())
        eventually(lambda: "sources.shop.server_id" in scenario.log_text(), 30)
    finally:
        intruder.close()
    assert "purged" not in scenario.log_text() and "source_failed" not in scenario.log_text()
    mirror.transaction([Insert(mirror.table, [_order(2)])])  # and syncd streams on
    eventually(lambda: _target(scenario) == mirror.expected(), 30)
    assert scenario.stop(process) == 0
