"""Encrypted, verified connections against real servers that serve TLS with a CA the test makes.

The module starts its own MariaDB and PostgreSQL with TLS (the suite's shared servers stay as
they are). Both refuse every connection of syncd's users that is not encrypted and does not
present a client certificate signed by the CA: MariaDB with `require_secure_transport` and a
`REQUIRE X509` user, PostgreSQL with `hostssl` lines only and `clientcert=verify-full`. So a
`syncd run` that copies, streams, reconciles and repairs there proves that every connection it
opened carried the TLS settings; the sessions are also checked on the servers while it runs.
Then a wrong CA, a host name the certificate does not carry, and required TLS against the
suite's plain servers: each fails with one message naming the server, the cause and the setting.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import pytest
import yaml
from psycopg import sql

from devtools.certs import ThrowawayCA, TlsFiles
from devtools.sandbox import MariaDBServer, PostgresServer
from syncd.config import Secret, SourceConfig
from syncd.errors import SourceTlsError
from syncd.model import Position
from syncd.source import checks, retention
from syncd.source.binlog import BinlogReader
from syncd.tls import SourceTls
from tests.helpers import eventually
from tests.integration.scenario import SHOP_ORDERS_MAPPING, SHOP_ORDERS_SQL, Scenario, Source

SERVER_NAME = "db.syncd.test"
"""The name in the servers' certificate, beside 127.0.0.1 (not `localhost`)."""
TARGET_ROLE = "syncd_tls"
"""syncd's role on the TLS PostgreSQL; the CN of the client certificate (clientcert=verify-full)."""


@dataclass(frozen=True)
class Pki:
    server: TlsFiles
    client: TlsFiles
    other_ca: Path
    """A CA that signed nothing these servers show."""


@pytest.fixture(scope="module")
def pki(sandbox_root: Path) -> Pki:
    ca = ThrowawayCA(sandbox_root / "tls-ca")
    other = ThrowawayCA(sandbox_root / "tls-other-ca", "another CA")
    return Pki(ca.issue("tls-server", (SERVER_NAME, "127.0.0.1")), ca.issue(TARGET_ROLE, (), client=True),
               other.ca_path)


@pytest.fixture(scope="module")
def tls_mariadb(sandbox_root: Path, pki: Pki) -> Iterator[MariaDBServer]:
    settings = {"require_secure_transport": "ON", "performance_schema": "ON"}
    with MariaDBServer(sandbox_root / "mariadb-tls", server_id=7, settings=settings,
                       tls=pki.server) as server:
        yield server


@pytest.fixture(scope="module")
def tls_postgres(sandbox_root: Path, pki: Pki) -> Iterator[PostgresServer]:
    hba = [f"hostssl all {TARGET_ROLE} 127.0.0.1/32 scram-sha-256 clientcert=verify-full",
           "hostssl all all 127.0.0.1/32 scram-sha-256"]
    with PostgresServer(sandbox_root / "postgres-tls", tls=pki.server, hba=hba) as server:
        server.create_user(TARGET_ROLE, server.superuser_password)  # PGPASSWORD serves both
        with server.connect() as conn:
            conn.execute(sql.SQL("ALTER ROLE {} SUPERUSER").format(sql.Identifier(TARGET_ROLE)))
        yield server


@pytest.fixture
def tls_target_db(tls_postgres: PostgresServer) -> Iterator[str]:
    name = f"tgt_tls_{os.urandom(4).hex()}"
    tls_postgres.create_database(name)
    yield name
    with tls_postgres.connect() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def scenario(tmp_path: Path, tls_mariadb: MariaDBServer, tls_postgres: PostgresServer, tls_target_db: str,
             source_db: Callable[[MariaDBServer], str]) -> Iterator[Scenario]:
    shop = Source("shop", tls_mariadb, source_db(tls_mariadb))
    shop.execute(SHOP_ORDERS_SQL)
    s = Scenario.create(tmp_path, tls_postgres, tls_target_db, {"shop": shop})
    with tls_mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute("ALTER USER %s@'%%' REQUIRE X509", (shop.user,))
    s.write_config(SHOP_ORDERS_MAPPING)
    yield s
    s.close()


def verified_source(pki: Pki, ca: Path | None = None) -> dict[str, str]:
    return {"ssl_mode": "verify-full", "ssl_ca": str(ca or pki.server.ca), "ssl_cert": str(pki.client.cert),
            "ssl_key": str(pki.client.key)}


def verified_dsn(scenario: Scenario, pki: Pki, host: str = "127.0.0.1", ca: Path | None = None) -> str:
    """`host` is the name checked; hostaddr= dials the server whatever the name."""
    return (f"host={host} hostaddr=127.0.0.1 port={scenario.postgres.port} dbname={scenario.target_db} "
            f"user={TARGET_ROLE} sslmode=verify-full sslrootcert={ca or pki.server.ca} "
            f"sslcert={pki.client.cert} sslkey={pki.client.key}")


def configure(scenario: Scenario, source: dict[str, str] | None = None, dsn: str | None = None) -> None:
    """Rewrite config.yaml with these settings of source `shop` and this target DSN."""
    config = yaml.safe_load(scenario.config_path.read_text(encoding="utf-8"))
    config["sources"]["shop"].update(source or {})
    if dsn is not None:
        config["target"]["dsn"] = dsn
    scenario.config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")


def insert(order_id: int) -> tuple[str, tuple]:
    return ("INSERT INTO orders (id, order_no, phone, status, amount_text, created_at) "
            "VALUES (%s, %s, '13812345678', '已支付', '100元', '2024-05-01 12:00:00')",
            (order_id, f"S{order_id}"))


def order_numbers(scenario: Scenario) -> dict[int, str]:
    return dict(scenario.target("SELECT source_order_id, order_no FROM orders WHERE channel = 'shop'"))


def source_sessions(server: MariaDBServer, user: str) -> list[tuple[str, str]]:
    """(command, TLS cipher) of each session of `user`, as the server sees them."""
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT t.PROCESSLIST_COMMAND, COALESCE(s.VARIABLE_VALUE, '') "
                    "FROM performance_schema.threads t LEFT JOIN performance_schema.status_by_thread s "
                    "ON s.THREAD_ID = t.THREAD_ID AND s.VARIABLE_NAME = 'Ssl_cipher' "
                    "WHERE t.PROCESSLIST_USER = %s", (user,))
        return [(str(command), str(cipher)) for command, cipher in cur.fetchall()]


def target_sessions(scenario: Scenario) -> dict[str, tuple[bool, str | None]]:
    """application_name -> (encrypted, client certificate's DN) of syncd's sessions."""
    rows = scenario.target("SELECT a.application_name, s.ssl, s.client_dn FROM pg_stat_activity a "
                           "JOIN pg_stat_ssl s USING (pid) WHERE a.usename = %s", (TARGET_ROLE,))
    return {name: (encrypted, dn) for name, encrypted, dn in rows}


def problems(result: object) -> str:
    """What a command printed; never a traceback."""
    text = f"{result.stdout}{result.stderr}"  # type: ignore[attr-defined]
    assert "Traceback" not in text, text
    return text


class TestVerified:
    def test_copy_stream_reconcile_and_repair_over_verified_tls(self, scenario: Scenario, pki: Pki,
                                                               tls_mariadb: MariaDBServer) -> None:
        """Every connection of a `syncd run` and of the commands beside it is encrypted, presents
        the client certificate and verifies the servers: the servers accept no other."""
        shop = scenario.sources["shop"]
        shop.execute(insert(1), insert(2))
        configure(scenario, verified_source(pki), verified_dsn(scenario, pki))
        validate = scenario.cli("validate", "--live")
        assert validate.returncode == 0, problems(validate)

        process = scenario.start()
        eventually(lambda: order_numbers(scenario) == {1: "S1", 2: "S2"}, 90)  # the initial copy
        shop.execute(insert(3))
        eventually(lambda: order_numbers(scenario).get(3) == "S3", 30)  # the stream

        sessions = source_sessions(tls_mariadb, shop.user)
        assert "Binlog Dump" in [command for command, _ in sessions], sessions
        assert len(sessions) >= 2 and all(cipher for _, cipher in sessions), sessions  # + the control one
        seen = target_sessions(scenario)
        for name in ("syncd:lock:shop", "syncd:shop", "syncd:monitor"):
            assert seen.get(name) == (True, f"/CN={TARGET_ROLE}"), seen

        scenario.target("UPDATE orders SET order_no = 'drift' WHERE source_order_id = 2")
        repair = scenario.cli("reconcile", "--repair")  # reads the source; the daemon re-reads the row
        assert repair.returncode == 0, problems(repair)
        assert order_numbers(scenario) == {1: "S1", 2: "S2", 3: "S3"}
        assert scenario.stop(process) == 0

    def test_the_name_to_check_may_differ_from_the_host_dialled(self, scenario: Scenario, pki: Pki) -> None:
        """`localhost` is not in the certificate: ssl_server_name (source) and host= with
        hostaddr= (target) check the name it carries."""
        configure(scenario, {**verified_source(pki), "host": "localhost", "ssl_server_name": SERVER_NAME},
                  verified_dsn(scenario, pki, host=SERVER_NAME))
        validate = scenario.cli("validate", "--live")
        assert validate.returncode == 0, problems(validate)


class TestRefused:
    def test_a_wrong_ca(self, scenario: Scenario, pki: Pki) -> None:
        """Named by validate; `syncd run` exits 78 for the target's, and fails the source (not
        retried) for the source's; commands say the same."""
        port = scenario.sources["shop"].server.port
        configure(scenario, verified_source(pki, ca=pki.other_ca),
                  verified_dsn(scenario, pki, ca=pki.other_ca))
        output = problems(scenario.cli("validate", "--live"))
        assert f": source shop: TLS to 127.0.0.1:{port} failed (certificate verify failed: " in output
        assert (f"sources.shop.ssl_ca ({pki.other_ca}) is not the CA that signed the server's certificate"
                in output)
        assert (f': target: TLS to the target failed (connection to server at "127.0.0.1", port '
                f"{scenario.postgres.port} failed: SSL error: certificate verify failed): "
                f"sslrootcert={pki.other_ca} in target.dsn is not the CA that signed the server's "
                "certificate") in output

        run = scenario.start()
        assert run.wait(60) == 78  # a setting to fix: systemd does not restart it
        assert "syncd: TLS to the target failed (" in problems_in(scenario.log_text())
        status = scenario.cli("status")
        assert status.returncode == 78
        assert "syncd: TLS to the target failed (" in problems(status)

        configure(scenario, dsn=verified_dsn(scenario, pki))
        process = scenario.start("run2.log")
        eventually(lambda: '"source_failed"' in scenario.log_text("run2.log"), 60)
        log = problems_in(scenario.log_text("run2.log"))
        assert '"error_type": "SourceTlsError"' in log and '"source_retry"' not in log
        reconcile = scenario.cli("reconcile")  # each mapping reports the error
        assert reconcile.returncode == 2
        assert (f"shop_orders: error: source shop: TLS to 127.0.0.1:{port} failed (certificate verify"
                in problems(reconcile))
        assert scenario.stop(process) == 0

    def test_a_host_name_the_certificate_does_not_carry(self, scenario: Scenario, pki: Pki) -> None:
        port = scenario.sources["shop"].server.port
        configure(scenario, {**verified_source(pki), "host": "localhost"},
                  verified_dsn(scenario, pki, host="localhost"))
        output = problems(scenario.cli("validate", "--live"))
        assert (f"source shop: TLS to localhost:{port} failed (certificate verify failed: Hostname mismatch, "
                "certificate is not valid for 'localhost'): the server's certificate is not made out to "
                "'localhost' (sources.shop.host)") in output
        assert ('does not match host name "localhost"): the server\'s certificate is not made out to '
                "'localhost' (host= in target.dsn)") in output

    def test_required_tls_refuses_servers_without_it(
            self, tmp_path: Path, mariadb: MariaDBServer, postgres: PostgresServer, target_db: str,
            source_db: Callable[[MariaDBServer], str]) -> None:
        """The suite's shared servers serve no TLS."""
        shop = Source("shop", mariadb, source_db(mariadb))
        shop.execute(SHOP_ORDERS_SQL)
        scenario = Scenario.create(tmp_path, postgres, target_db, {"shop": shop})
        scenario.write_config(SHOP_ORDERS_MAPPING)
        configure(scenario, {"ssl_mode": "require"},
                  f"host=127.0.0.1 port={postgres.port} dbname={target_db} user=postgres sslmode=require")
        output = problems(scenario.cli("validate", "--live"))
        assert (f"source shop: TLS to 127.0.0.1:{mariadb.port} failed (the server does not offer TLS): "
                "sources.shop.ssl_mode is require, so syncd will not talk to it in plain text") in output
        assert ("failed: server does not support SSL, but SSL was required): target.dsn says "
                "sslmode=require, so syncd will not talk to it in plain text") in output


def problems_in(log: str) -> str:
    assert "Traceback" not in log, log
    return log


def open_and_close(kind: str, source: SourceConfig) -> None:
    """Open one of the kinds of connections syncd makes to a source."""
    if kind == "checks":  # start-up checks, snapshots, reconcile reads, repairs, commands
        checks.connect(source, source.database).close()
    elif kind == "retention":
        retention.inspect(source, "mysql-bin.000001")
    else:  # the binlog stream, then the library's control connection
        reader = BinlogReader(source, Position("mysql-bin.000001", 4), {"t"})
        try:
            next(iter(reader.events()))
        finally:
            reader.close()


@pytest.mark.parametrize("kind", ["checks", "retention", "stream"])
class TestEveryKindOfConnection:
    @pytest.fixture(autouse=True)
    def password(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TLS_TEST_ROOT_PASSWORD", "")  # refused before authentication anyway

    def source(self, server: MariaDBServer, tls: SourceTls) -> SourceConfig:
        return SourceConfig("shop", "127.0.0.1", server.port, "root", Secret(env="TLS_TEST_ROOT_PASSWORD"),
                            "mysql", 4242, UTC, tls=tls)

    def test_refuses_a_server_without_tls(self, kind: str, mariadb: MariaDBServer) -> None:
        with pytest.raises(SourceTlsError, match="the server does not offer TLS"):
            open_and_close(kind, self.source(mariadb, SourceTls("require")))

    def test_refuses_a_certificate_of_another_ca(self, kind: str, tls_mariadb: MariaDBServer,
                                                  pki: Pki) -> None:
        wrong = r"failed \(certificate verify failed: .*sources\.shop\.ssl_ca"
        with pytest.raises(SourceTlsError, match=wrong):
            open_and_close(kind, self.source(tls_mariadb, SourceTls("verify-ca", ca=str(pki.other_ca))))
