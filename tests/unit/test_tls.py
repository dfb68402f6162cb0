"""TLS settings without servers: the config checks (file:line:col), the contexts built from the
settings, and how connection failures are read (source: PyMySQL's errors; target: libpq's
messages). The same paths against real servers: tests/integration/test_tls.py."""

from __future__ import annotations

import pickle
import socket
import ssl
from datetime import UTC
from pathlib import Path
from urllib.parse import quote

import psycopg
import pymysql
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import conninfo

from devtools.certs import ThrowawayCA
from syncd.config import Secret, SourceConfig, TargetConfig, load_config
from syncd.errors import ConfigError, SourceTlsError, SourceUnavailable, TargetTlsError
from syncd.sink.tls import tls_error as target_tls_error
from syncd.source.connection import SourceConnection, TlsFailure, connect_error
from syncd.tls import (
    SourceTls,
    ca_problem,
    cert_problem,
    client_context,
    dsn_parameters,
    mode_problem,
    target_problems,
)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return ThrowawayCA(tmp_path_factory.mktemp("ca"))


def config_text(source_tls: str = "", dsn: str = "postgresql://syncd@127.0.0.1/unified") -> str:
    return (f"target:\n  dsn: {dsn}\n"
            "sources:\n  shop:\n    host: db1\n    user: u\n    database: d\n    server_id: 1\n"
            f"{source_tls}mappings: []\n")


def load(tmp_path: Path, text: str) -> list[str]:
    """The problems of a config (as `file:line:col: message`), [] when it loads."""
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        return [str(p).removeprefix(f"{path}:") for p in exc.problems]
    return []


class TestSourceSettings:
    def test_a_ca_alone_means_verify_full_and_relative_paths_are_beside_the_config(
            self, tmp_path: Path, ca: ThrowawayCA) -> None:
        (tmp_path / "ca.pem").write_bytes(ca.ca_path.read_bytes())
        path = tmp_path / "config.yaml"
        path.write_text(config_text("    ssl_ca: ca.pem\n"), encoding="utf-8")
        assert load_config(path).sources["shop"].tls == SourceTls("verify-full", ca=str(tmp_path / "ca.pem"))

    def test_nothing_said_means_prefer(self, tmp_path: Path) -> None:
        path = tmp_path / "config.yaml"
        path.write_text(config_text(), encoding="utf-8")
        tls = load_config(path).sources["shop"].tls
        assert tls == SourceTls("prefer") and not tls.required

    def test_every_setting(self, tmp_path: Path, ca: ThrowawayCA) -> None:
        client = ca.issue("client", (), client=True)
        path = tmp_path / "config.yaml"
        path.write_text(config_text(f"    ssl_mode: verify-full\n    ssl_ca: {ca.ca_path}\n"
                                    f"    ssl_cert: {client.cert}\n    ssl_key: {client.key}\n"
                                    "    ssl_server_name: db1.example.com\n"), encoding="utf-8")
        tls = load_config(path).sources["shop"].tls
        assert tls == SourceTls("verify-full", str(ca.ca_path), str(client.cert), str(client.key),
                                "db1.example.com")

    @pytest.mark.parametrize(("lines", "expected"), [
        ("    ssl_mode: VERIFY_IDENTITY\n",
         "9:15: sources.shop.ssl_mode 'VERIFY_IDENTITY' is not a TLS mode: use disable, prefer, require, "
         "verify-ca, verify-full (PostgreSQL's sslmode words; MySQL's VERIFY_IDENTITY is verify-full)"),
        ("    ssl_mode: verify-ca\n",
         "9:15: sources.shop.ssl_mode verify-ca needs ssl_ca: the CA certificate (PEM) that signed the "
         "server's certificate"),
        ("    ssl_ca: /nowhere/ca.pem\n", "9:13: sources.shop.ssl_ca: /nowhere/ca.pem does not exist"),
        ("    ssl_mode: require\n    ssl_ca: {ca}\n",
         "10:13: sources.shop.ssl_ca is used only by ssl_mode verify-ca or verify-full: with require the "
         "server's certificate would not be checked"),
        ("    ssl_cert: {cert}\n",
         "9:15: sources.shop.ssl_cert: a client certificate needs ssl_mode require, verify-ca or "
         "verify-full (ssl_mode is prefer)"),
        ("    ssl_mode: require\n    ssl_key: {key}\n",
         "10:14: sources.shop.ssl_key needs ssl_cert (the certificate the key belongs to)"),
        ("    ssl_mode: verify-ca\n    ssl_ca: {ca}\n    ssl_server_name: db1\n",
         "11:22: sources.shop.ssl_server_name is checked only by ssl_mode verify-full "
         "(ssl_mode is verify-ca)"),
        ("    ssl_mode: require\n    ssl_cert: {cert}\n    ssl_key: /nowhere/key.pem\n",
         "11:14: sources.shop.ssl_key: /nowhere/key.pem does not exist"),
        ("    ssl_mode: require\n    ssl_cert: {cert}\n    ssl_key: {other_key}\n",
         "10:15: sources.shop.ssl_cert: the key {other_key} does not belong to the certificate {cert}"),
        ("    ssl_ca: {cert}\n    ssl_mode: disable\n",
         "9:13: sources.shop.ssl_ca is used only by ssl_mode verify-ca or verify-full: with disable the "
         "server's certificate would not be checked"),
    ])
    def test_problems_name_the_key_and_the_fix(self, tmp_path: Path, ca: ThrowawayCA, lines: str,
                                               expected: str) -> None:
        client, other = ca.issue("client", (), client=True), ca.issue("other", (), client=True)
        names = {"ca": ca.ca_path, "cert": client.cert, "key": client.key, "other_key": other.key}
        assert load(tmp_path, config_text(lines.format(**names))) == [expected.format(**names)]

    def test_a_ca_file_without_a_certificate(self, tmp_path: Path) -> None:
        (tmp_path / "ca.pem").write_text("not a certificate\n")
        problems = load(tmp_path, config_text("    ssl_ca: ca.pem\n"))
        assert problems == [f"9:13: sources.shop.ssl_ca: {tmp_path / 'ca.pem'} holds no PEM certificate "
                            "(NO_CERTIFICATE_OR_CRL_FOUND)"]


class TestTargetSettings:
    def test_libpq_parameters_are_checked(self, tmp_path: Path, ca: ThrowawayCA) -> None:
        assert load(tmp_path, config_text(dsn=f"host=pg sslmode=verify-full sslrootcert={ca.ca_path}")) == []
        assert load(tmp_path, config_text(dsn="host=pg sslmode=verify-full")) == [
            "2:8: target.dsn: sslmode=verify-full needs sslrootcert=<the CA file that signed the server's "
            "certificate> in the DSN"]
        assert load(tmp_path, config_text(dsn="postgresql://pg/db?sslmode=verified")) == [
            "2:8: target.dsn: sslmode 'verified' is not a TLS mode: use disable, allow, prefer, require, "
            "verify-ca, verify-full (PostgreSQL's sslmode words)"]
        assert load(tmp_path, config_text(dsn="host=pg sslmode=verify-ca sslrootcert=/nowhere.pem")) == [
            "2:8: target.dsn: sslrootcert: /nowhere.pem does not exist"]

    def test_relative_paths_and_unreadable_dsns(self) -> None:
        assert target_problems({"sslmode": "require", "sslcert": "client.crt"}) == [
            "sslcert=client.crt: give an absolute path (libpq reads it relative to the working directory)"]
        assert target_problems({"sslmode": "verify-full", "sslrootcert": "system"}) == []

    def test_a_dsn_libpq_cannot_read(self, tmp_path: Path) -> None:
        problems = load(tmp_path, config_text(dsn="host=pg sslmode"))
        assert len(problems) == 1 and problems[0].startswith(
            "2:8: target.dsn cannot be read as a libpq connection string: ")


_KEYWORDS = ("host", "dbname", "user", "sslmode", "sslrootcert", "sslcert", "sslkey", "application_name",
             "options")
_VALUES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


class TestDsnParameters:
    """syncd reads the DSN itself (no PostgreSQL driver outside syncd/sink/): as libpq does."""

    @given(st.dictionaries(st.sampled_from(_KEYWORDS), _VALUES, max_size=5))
    def test_key_value_strings(self, parameters: dict[str, str]) -> None:
        dsn = conninfo.make_conninfo("", **parameters)
        assert dsn_parameters(dsn) == conninfo.conninfo_to_dict(dsn)

    @given(st.dictionaries(st.sampled_from(_KEYWORDS[3:]), _VALUES, max_size=4))
    def test_uris(self, parameters: dict[str, str]) -> None:
        # libpq refuses "=" in a value, and "&" separates the parameters
        query = "&".join(f"{key}={value}" for key, value in parameters.items() if not set("&=") & set(value))
        dsn = f"postgresql://syncd@pg1.example.com:5432/unified?{quote(query, safe='=&')}"
        libpq = conninfo.conninfo_to_dict(dsn)
        assert dsn_parameters(dsn) == {"host": "pg1.example.com", **{k: libpq[k] for k in libpq
                                                                     if k not in ("user", "port", "dbname")}}


class TestFiles:
    def test_ca_and_client_certificate(self, tmp_path: Path, ca: ThrowawayCA) -> None:
        client = ca.issue("client", (), client=True)
        assert ca_problem(str(ca.ca_path)) is None
        assert cert_problem(str(client.cert), str(client.key)) is None
        combined = tmp_path / "combined.pem"
        combined.write_bytes(client.cert.read_bytes() + client.key.read_bytes())
        assert cert_problem(str(combined), None) is None
        assert "cannot be loaded as a PEM certificate" in (cert_problem(str(client.key), None) or "")

    def test_mode_problem(self) -> None:
        assert mode_problem("verify-full") is None
        assert "MySQL's required is require" in (mode_problem("required") or "")


class TestContexts:
    def test_verify_full_checks_chain_and_name(self, ca: ThrowawayCA) -> None:
        context = client_context(SourceTls("verify-full", ca=str(ca.ca_path)))
        assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)

    def test_verify_ca_checks_the_chain_only(self, ca: ThrowawayCA) -> None:
        context = client_context(SourceTls("verify-ca", ca=str(ca.ca_path)))
        assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, False)

    def test_require_encrypts_without_checking(self) -> None:
        context = client_context(SourceTls("require"))
        assert (context.verify_mode, context.check_hostname) == (ssl.CERT_NONE, False)

    def test_the_server_name_replaces_the_host_dialled(self, ca: ThrowawayCA) -> None:
        context = client_context(SourceTls("verify-full", ca=str(ca.ca_path), server_name="db1.example.com"))
        with socket.socket() as sock, context.wrap_socket(sock, server_hostname="10.0.0.5") as wrapped:
            assert wrapped.server_hostname == "db1.example.com"


SHOP = SourceConfig("shop", "10.0.0.5", 3306, "u", Secret(), "d", 1, UTC,
                    tls=SourceTls("verify-full", ca="/etc/syncd/ca.pem"))


def operational_error_over(cause: BaseException) -> pymysql.err.OperationalError:
    """A PyMySQL connection error as `Connection.connect` raises it over an OSError."""
    exc = pymysql.err.OperationalError(2003, f"Can't connect to MySQL server on '10.0.0.5' ({cause})")
    exc.original_exception = cause
    return exc


def verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    error.verify_code, error.verify_message = code, message
    return error


class TestSourceFailures:
    def test_a_server_without_tls_is_refused_before_authentication(self) -> None:
        connection = SourceConnection.__new__(SourceConnection)
        connection._tls_settings = SourceTls("require")
        connection.server_capabilities = 0
        with pytest.raises(TlsFailure) as caught:
            connection._request_authentication()  # never reaches PyMySQL's, which sends the password
        assert caught.value.kind == "no_tls"

    @pytest.mark.parametrize(("cause", "kind"), [
        (verify_error(20, "unable to get local issuer certificate"), "verify"),
        (verify_error(62, "Hostname mismatch, certificate is not valid for '10.0.0.5'."), "name"),
        (verify_error(64, "IP address mismatch, certificate is not valid for '10.0.0.5'."), "name"),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), "handshake"),
    ])
    def test_tls_errors_under_pymysql_errors_are_read(self, cause: ssl.SSLError, kind: str) -> None:
        class Failing(SourceConnection):
            def __init__(self) -> None:
                self._tls_settings = SHOP.tls

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pymysql.connections.Connection, "connect",
                          lambda *_: (_ for _ in ()).throw(operational_error_over(cause)))
            with pytest.raises(TlsFailure) as caught:
                Failing().connect()
        assert caught.value.kind == kind

    def test_a_handshake_cut_short_stays_a_lost_connection(self) -> None:
        class Failing(SourceConnection):
            def __init__(self) -> None:
                self._tls_settings = SHOP.tls

        cut = operational_error_over(ssl.SSLEOFError(8, "EOF occurred in violation of protocol"))
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pymysql.connections.Connection, "connect", lambda *_: (_ for _ in ()).throw(cut))
            with pytest.raises(pymysql.err.OperationalError) as caught:
                Failing().connect()
        assert not isinstance(caught.value, TlsFailure)
        assert isinstance(connect_error(SHOP, caught.value), SourceUnavailable)

    def test_messages_name_the_source_the_server_the_cause_and_the_setting(self) -> None:
        failure = TlsFailure("verify", "certificate verify failed: self-signed certificate")
        verify = connect_error(SHOP, failure)
        assert isinstance(verify, SourceTlsError) and not verify.retriable
        assert str(verify) == (
            "source shop: TLS to 10.0.0.5:3306 failed (certificate verify failed: self-signed certificate): "
            "sources.shop.ssl_ca (/etc/syncd/ca.pem) is not the CA that signed the server's certificate, or "
            "that certificate is not valid today; point ssl_ca at the CA that signed the server's ssl_cert")
        name = str(connect_error(SHOP, TlsFailure("name", "certificate verify failed: Hostname mismatch.")))
        assert "is not made out to '10.0.0.5' (sources.shop.host)" in name
        assert "set sources.shop.ssl_server_name to it" in name
        plain = str(connect_error(SHOP, TlsFailure("no_tls", "the server does not offer TLS")))
        assert "(the server does not offer TLS): sources.shop.ssl_mode is verify-full" in plain

    def test_the_error_crosses_the_decoder_process_pipe(self) -> None:
        error = connect_error(SHOP, TlsFailure("no_tls", "the server does not offer TLS"))
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is SourceTlsError and str(copy) == str(error)

    def test_a_missing_file_at_connection_time(self, tmp_path: Path) -> None:
        with pytest.raises(TlsFailure) as caught:
            SourceConnection(host="127.0.0.1", tls=SourceTls("verify-ca", ca=str(tmp_path / "gone.pem")),
                             defer_connect=True)
        assert caught.value.kind == "files"


TARGET = TargetConfig(dsn="host=pg.example.com sslmode=verify-full sslrootcert=/etc/syncd/pg-ca.pem",
                      password=Secret())
PREFIX = 'connection failed: connection to server at "10.0.0.6", port 5432 failed: '


class TestTargetFailures:
    @pytest.mark.parametrize(("libpq", "fix"), [
        ("SSL error: certificate verify failed",
         "sslrootcert=/etc/syncd/pg-ca.pem in target.dsn is not the CA that signed the server's certificate"),
        ('server certificate for "db.example.com" does not match host name "pg.example.com"',
         "the server's certificate is not made out to 'pg.example.com' (host= in target.dsn)"),
        ("server does not support SSL, but SSL was required",
         "target.dsn says sslmode=verify-full, so syncd will not talk to it in plain text"),
        ("FATAL:  connection requires a valid client certificate",
         "the server wants a client certificate it trusts: sslcert and sslkey in target.dsn"),
    ])
    def test_libpq_tls_failures(self, libpq: str, fix: str) -> None:
        error = target_tls_error(TARGET, psycopg.OperationalError(PREFIX + libpq))
        assert isinstance(error, TargetTlsError) and not error.retriable
        assert str(error).startswith('TLS to the target failed (connection to server at "10.0.0.6", '
                                     f"port 5432 failed: {libpq}): {fix}")

    @pytest.mark.parametrize("libpq", [
        "SSL SYSCALL error: EOF detected", "SSL error: unexpected eof while reading",
        "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?",
        'FATAL:  password authentication failed for user "syncd"',
    ])
    def test_other_failures_are_not_tls(self, libpq: str) -> None:
        assert target_tls_error(TARGET, psycopg.OperationalError(PREFIX + libpq)) is None

    def test_a_pg_hba_conf_refusal_is_not_known_to_be_tls(self) -> None:
        """Without TLS it says `no encryption`, whether or not a hostssl line would let syncd in."""
        refused = f'{PREFIX}FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "syncd", database "u", '
        for how in ("no encryption", "SSL encryption"):
            assert target_tls_error(TARGET, psycopg.OperationalError(refused + how)) is None


def test_the_tls_lines_of_the_example_config_load(tmp_path: Path, ca: ThrowawayCA) -> None:
    """config.example.yaml's commented TLS settings, uncommented, are a valid config."""
    client = ca.issue("client", (), client=True)
    files = {"/etc/syncd/tls/shop-ca.pem": ca.ca_path, "/etc/syncd/tls/pg-ca.pem": ca.ca_path,
             "/etc/syncd/tls/syncd.crt": client.cert, "/etc/syncd/tls/syncd.key": client.key}
    example = (Path(__file__).parents[2] / "config.example.yaml").read_text(encoding="utf-8")
    lines = [line.replace("# ", "", 1) if line.startswith(("    # ssl_", "  # dsn: ")) else line
             for line in example.splitlines() if not line.startswith("  dsn: ")]  # the TLS one instead
    text = "\n".join(lines)
    for shown, made in files.items():
        text = text.replace(shown, str(made))
    (tmp_path / "mappings").mkdir()
    assert load(tmp_path, text) == []
    path = tmp_path / "config.yaml"
    tls = load_config(path).sources["shop"].tls
    assert tls == SourceTls("verify-full", str(ca.ca_path), str(client.cert), str(client.key),
                            "db1.example.com")
    assert "sslmode=verify-full" in load_config(path).target.dsn
