"""What syncd sends a source, by flavour and version (syncd/source/dialect.py), and how it logs in
to MySQL 8.4 (caching_sha2_password over TLS and over plain TCP with RSA, syncd/source/connection.py).

The logins run against the MySQL 8.4 test double (tests/mysql_double), which authenticates as
mysql-server's sql/auth/sha2_password.cc does; MariaDB's side is covered by every integration test.
"""

from __future__ import annotations

import ast
import datetime
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from syncd.cli.options import EXIT_CONFIG, fail
from syncd.config import Secret, SourceConfig
from syncd.errors import ServerIdInUse, SourceAuthError, SourceSettingsError, SourceUnavailable
from syncd.source import checks, dialect
from syncd.source.binlog import _translate
from syncd.tls import SourceTls
from tests.mysql_double import MySQLDouble
from tests.mysql_double.statements import REMOVED_IN_84

SYNCD = Path(__file__).resolve().parents[3] / "syncd"


@pytest.mark.parametrize(("announced", "mariadb", "version", "status"), [
    ("8.4.3", False, (8, 4, 3), "SHOW BINARY LOG STATUS"),
    ("9.1.0", False, (9, 1, 0), "SHOW BINARY LOG STATUS"),
    ("8.2.0", False, (8, 2, 0), "SHOW BINARY LOG STATUS"),
    ("8.0.36-0ubuntu0.22.04.1", False, (8, 0, 36), "SHOW MASTER STATUS"),
    ("5.5.5-10.11.6-MariaDB-0+deb12u1-log", True, (10, 11, 6), "SHOW BINLOG STATUS"),
    ("11.4.2-MariaDB", True, (11, 4, 2), "SHOW BINLOG STATUS"),
])
def test_the_binlog_status_statement_by_server(announced: str, mariadb: bool, version: tuple,
                                               status: str) -> None:
    found = dialect.Dialect.parse(announced)
    assert (found.mariadb, found.version, found.binlog_status) == (mariadb, version, status)


def test_the_dump_variables_by_server() -> None:
    assert dialect.Dialect.parse("8.4.3").dump_setup == (
        "SET @source_binlog_checksum = @@global.binlog_checksum",)
    assert dialect.Dialect.parse("8.0.22").dump_setup == (
        "SET @master_binlog_checksum = @@global.binlog_checksum",)
    assert dialect.Dialect.parse("10.11.6-MariaDB").dump_setup == (
        "SET @master_binlog_checksum = @@global.binlog_checksum", "SET @mariadb_slave_capability = 4")


def _strings(path: Path) -> Iterator[tuple[int, str]]:
    """Every string constant of a module that is not a docstring (SQL, messages)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def test_no_module_sends_a_statement_mysql_84_removed() -> None:
    """Static scan of every string syncd holds: a statement MySQL 8.4 no longer parses (the
    double's list, from the 8.4.0 release notes) appears only where dialect.py chooses it for
    MySQL 8.0 and 8.1, which do not know its replacement."""
    found = [(path.relative_to(SYNCD.parent), line, text) for path in sorted(SYNCD.rglob("*.py"))
             for line, text in _strings(path) if any(p.match(text.strip()) for p in REMOVED_IN_84)]
    only = [("syncd/source/dialect.py", "SHOW MASTER STATUS")]
    assert [(str(path), text) for path, _, text in found] == only
    assert dialect.Dialect.parse("8.1.0").binlog_status == "SHOW MASTER STATUS"


# -- logging in to MySQL 8.4 ------------------------------------------------------------------------


@pytest.fixture
def double() -> Iterator[MySQLDouble]:
    with MySQLDouble(version="8.4.3") as server:
        yield server


@pytest.mark.parametrize("version", ["8.4.3", "9.1.0"])
def test_the_start_up_checks_pass_on_mysql_84_and_9(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with MySQLDouble(version=version) as server:
        info = checks.check_source(_source(server, monkeypatch, "verify-full"))
        assert (info.version, info.is_mariadb) == (version, False)
        server.set_global("binlog_row_image", "MINIMAL")
        with pytest.raises(SourceSettingsError, match="binlog_row_image is MINIMAL"):
            checks.check_source(_source(server, monkeypatch, "disable"))
        sent = [sql for _, sql in server.queries]
        assert "SHOW BINARY LOG STATUS" in sent


def _source(double: MySQLDouble, monkeypatch: pytest.MonkeyPatch, mode: str = "prefer",
            user: str | None = None, password: str | None = None) -> SourceConfig:
    monkeypatch.setenv("DIALECT_TEST_PASSWORD", password or double.password)
    ca = str(double.ca_path) if mode.startswith("verify") else None
    return SourceConfig("shop", double.host, double.port, user or double.user,
                        Secret(env="DIALECT_TEST_PASSWORD"), "shop", 4242, datetime.UTC,
                        SourceTls(mode=mode, ca=ca))


def _login(source: SourceConfig) -> str:
    conn = checks.connect(source)
    try:
        return dialect.binlog_status(conn)[0]
    finally:
        conn.close()


@pytest.mark.parametrize("mode", ["verify-full", "require", "disable"])
def test_full_then_fast_authentication_in_every_tls_mode(double: MySQLDouble, mode: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The first login after a restart is a full one (over TLS: the password inside it; over
    plain TCP: RSA-encrypted with the server's key), the next ones fast, from the cache."""
    source = _source(double, monkeypatch, mode)
    double.clear_auth_cache()
    assert _login(source) == "binlog.000001"
    assert double.auth.cache
    assert _login(source) == "binlog.000001"
    assert any(sql == "SHOW BINARY LOG STATUS" for _, sql in double.queries)


def test_without_cryptography_plain_tcp_full_authentication_names_the_fix(
        double: MySQLDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pymysql._auth, "_have_cryptography", False)
    double.clear_auth_cache()
    with pytest.raises(SourceAuthError) as caught:
        _login(_source(double, monkeypatch, "disable"))
    message = str(caught.value)
    assert "cryptography" in message and "PyMySQL[rsa]" in message
    assert "sources.shop.ssl_mode: require" in message
    assert _login(_source(double, monkeypatch, "require")) == "binlog.000001"  # TLS needs no RSA


def test_a_native_password_account_and_secure_transport_name_the_fix(
        double: MySQLDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    double.add_account("legacy", "pw", plugin="mysql_native_password")
    with pytest.raises(SourceAuthError, match="IDENTIFIED WITH caching_sha2_password"):
        _login(_source(double, monkeypatch, user="legacy", password="pw"))
    double.set_global("require_secure_transport", "ON")
    with pytest.raises(SourceAuthError, match="ssl_mode is disable; set ssl_mode: require"):
        _login(_source(double, monkeypatch, "disable"))


def test_a_wrong_password_is_still_retried(double: MySQLDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused password may be a rotation in progress: retried like an outage (exit 2 at start)."""
    with pytest.raises(SourceUnavailable, match="Access denied"):
        _login(_source(double, monkeypatch, password="wrong"))


DUPLICATE = ("A replica with the same server_uuid/server_id as this replica has connected to the "
             "source; the first event 'binlog.000001' at 4")  # rpl_source.cc, as MySQL 8.4 words it


def test_login_errors_exit_78_and_a_duplicate_server_id_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    """A duplicate server_id is retried (it may be syncd's own connection the server has not yet
    seen go), with a message naming the setting, never as a purged binlog."""
    with pytest.raises(SystemExit) as exited:
        fail(SourceAuthError("shop", "x"))
    assert exited.value.code == EXIT_CONFIG
    duplicate = _translate("shop", pymysql.err.OperationalError(1236, DUPLICATE))
    assert isinstance(duplicate, ServerIdInUse) and duplicate.retriable
    assert "sources.shop.server_id" in str(duplicate) and "purged" not in str(duplicate)
    mariadb = pymysql.err.OperationalError(4052, "A slave with the same server_uuid/server_id")
    assert isinstance(_translate("shop", mariadb), ServerIdInUse)
    purged = _translate("shop", pymysql.err.OperationalError(
        1236, "Could not find first log file name in binary log index file"))
    assert not isinstance(purged, ServerIdInUse) and "purged" in str(purged)
