"""Unit tests for syncd.config: the typed Config, every problem at once, time zones, secrets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from syncd.config import (
    BatchConfig,
    LogConfig,
    Secret,
    SourceConfig,
    load_config,
    parse_listen,
    parse_timezone,
)
from syncd.errors import ConfigError, Problem
from syncd.tls import SourceTls

ISSUE_EXAMPLE = """\
target:
  dsn: postgresql://syncd@127.0.0.1:5432/unified   # password from PGPASSWORD or password_file
  schema: public          # default schema of mapped target tables
  state_schema: syncd     # syncd's own tables: checkpoints, dead letters, runs
sources:
  shop:
    host: 127.0.0.1
    port: 3306
    user: syncd
    password_env: SHOP_DB_PASSWORD     # or password_file: /etc/syncd/shop.pw
    database: shop
    server_id: 4101                    # unique replica id
    timezone: "+08:00"                 # how DATETIME values are to be read
  app:
    host: 127.0.0.2
    user: syncd_app
    password_file: app.pw
    database: app
    server_id: 4102
mappings: [mappings/]                  # files or directories of mapping files
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "mappings").mkdir(exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[Problem]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


def positions(problems: list[Problem]) -> list[tuple[int, int]]:
    return [(p.line, p.column) for p in problems]


MINIMAL_SOURCE = """\
sources:
  shop: {host: h, user: u, database: d, server_id: 1}
mappings: [mappings/]
"""


class TestIssueExample:
    def test_parses_into_a_typed_config(self, tmp_path: Path) -> None:
        """The issue's config parses into typed target, sources and mapping paths."""
        path = write(tmp_path, ISSUE_EXAMPLE)
        config = load_config(path)
        assert config.path == path
        assert config.target.dsn == "postgresql://syncd@127.0.0.1:5432/unified"
        assert (config.target.schema, config.target.state_schema) == ("public", "syncd")
        assert config.target.password == Secret()
        assert list(config.sources) == ["shop", "app"]
        shop = config.sources["shop"]
        assert shop == SourceConfig(
            name="shop", host="127.0.0.1", port=3306, user="syncd",
            password=Secret(env="SHOP_DB_PASSWORD"), database="shop", server_id=4101,
            timezone=timezone(timedelta(hours=8)),
        )
        assert config.mapping_paths == [tmp_path / "mappings/"]

    def test_defaults_fill_what_is_not_given(self, tmp_path: Path) -> None:
        """Port, time zone, timeouts, batch and log settings have their documented defaults."""
        app = load_config(write(tmp_path, ISSUE_EXAMPLE)).sources["app"]
        assert (app.port, app.timezone, app.connect_timeout_s, app.heartbeat_s) == (3306, UTC, 10, 5)
        assert app.password == Secret(file="app.pw")
        config = load_config(write(tmp_path, ISSUE_EXAMPLE))
        assert config.batch == BatchConfig(5000, 0.2)
        assert config.log == LogConfig("info", "auto")
        assert (config.metrics_listen, config.shutdown_timeout_s, config.retry_max_s) == (None, 30.0, 30.0)

    def test_optional_sections(self, tmp_path: Path) -> None:
        """batch, log, metrics and the timeouts are read and converted."""
        text = ISSUE_EXAMPLE + (
            "batch: {max_rows: 100, max_delay_ms: 50, max_mb: 4}\nlog: {level: DEBUG, format: json}\n"
            "metrics: {listen: '127.0.0.1:9108'}\nshutdown_timeout: 5\nretry_max_seconds: 2.5\n"
        )
        config = load_config(write(tmp_path, text))
        assert config.batch == BatchConfig(100, 0.05, 4 << 20)
        assert config.log == LogConfig("debug", "json")
        assert config.metrics_listen == "127.0.0.1:9108"
        assert (config.shutdown_timeout_s, config.retry_max_s) == (5.0, 2.5)

    def test_absolute_mapping_path_is_kept(self, tmp_path: Path) -> None:
        """An absolute mapping path is not joined to the config's directory."""
        other = tmp_path / "elsewhere"
        other.mkdir()
        text = ISSUE_EXAMPLE.replace("mappings: [mappings/]", f"mappings: ['{other}']")
        assert load_config(write(tmp_path, text)).mapping_paths == [other]


class TestProblems:
    def test_every_problem_is_reported_at_once_with_positions(self, tmp_path: Path) -> None:
        """One load reports all the file's problems, each at its file:line:col."""
        text = """\
target:
  dsn: postgresql://syncd:hunter2@127.0.0.1/unified
  schmea: public
  password_env: PGPASS
  password_file: /etc/syncd/pg.pw
sources:
  shop:
    host: h
    user: u
    password: hunter2
    database: d
    server_id: 7
    timezone: Mars/Olympus
    prot: 3306
  app:
    host: h
    user: u
    database: d
    server_id: 7
mappings: [mappings/, missing/]
"""
        problems = problems_of(tmp_path, text)
        path = str(tmp_path / "config.yaml")
        assert all(p.file == path for p in problems)
        found = {(p.line, p.column): p.message for p in problems}
        assert len(found) == len(problems) == 8
        assert found[(3, 3)] == "unknown key 'schmea' in target (did you mean 'schema'?)"
        assert "must not contain a password" in found[(2, 8)]
        assert found[(5, 3)] == "target: give password_env or password_file, not both"
        assert "password_env or password_file" in found[(10, 5)]
        assert "passwords never go in the config file" in found[(10, 5)]
        assert "unknown time zone 'Mars/Olympus'" in found[(13, 15)]
        assert found[(14, 5)] == "unknown key 'prot' in sources.shop (did you mean 'port'?)"
        assert "server_id 7 is also used by source shop" in found[(15, 3)]
        assert "'missing/' does not exist" in found[(20, 23)]

    def test_password_key_is_reported_once_with_the_hint(self, tmp_path: Path) -> None:
        """A `password:` key gets one problem, the one that says what to use instead."""
        text = """\
target:
  dsn: postgresql://syncd@h/u
  password: x
""" + MINIMAL_SOURCE
        (problem,) = problems_of(tmp_path, text)
        assert (problem.line, problem.column) == (3, 3)
        assert problem.message == ("target: passwords never go in the config file; "
                                   "use password_env or password_file")

    @pytest.mark.parametrize("dsn", [
        "postgresql://syncd:secret@127.0.0.1:5432/unified",
        "postgres://syncd@127.0.0.1/unified?sslmode=require&password=secret",
        "host=127.0.0.1 user=syncd password=secret dbname=unified",
        "host=127.0.0.1 password = 'secret'",
    ])
    def test_password_in_the_dsn_is_refused(self, tmp_path: Path, dsn: str) -> None:
        """A password in any DSN form (URL user info, URL query, key=value) is refused at the DSN."""
        (problem,) = problems_of(tmp_path, f'target:\n  dsn: "{dsn}"\n' + MINIMAL_SOURCE)
        assert (problem.line, problem.column) == (2, 8)
        assert "target.dsn must not contain a password" in problem.message

    @pytest.mark.parametrize("dsn", [
        "postgresql://syncd@127.0.0.1:5432/unified",
        "host=127.0.0.1 user=syncd passfile=/etc/syncd/pgpass dbname=unified",
    ])
    def test_dsn_without_password_is_accepted(self, tmp_path: Path, dsn: str) -> None:
        """DSNs that only name where the password comes from pass."""
        config = load_config(write(tmp_path, f'target:\n  dsn: "{dsn}"\n' + MINIMAL_SOURCE))
        assert config.target.dsn == dsn

    def test_missing_server_ids_are_not_duplicates(self, tmp_path: Path) -> None:
        """Two sources without server_id are each missing it, not clashing with each other."""
        text = """\
target: {dsn: "postgresql://h/u"}
sources:
  shop: {host: h, user: u, database: d}
  app: {host: h, user: u, database: d}
mappings: [mappings/]
"""
        problems = problems_of(tmp_path, text)
        assert [p.message for p in problems] == [
            "sources.shop is missing required key 'server_id'",
            "sources.app is missing required key 'server_id'",
        ]
        assert positions(problems) == [(3, 9), (4, 8)]

    def test_missing_top_level_sections(self, tmp_path: Path) -> None:
        """An empty mapping file body lacks target, sources and mappings."""
        problems = problems_of(tmp_path, "log: {level: info}\n")
        assert [p.message for p in problems] == [
            f"the config file is missing required key '{k}'" for k in ("target", "sources", "mappings")
        ]

    def test_top_level_must_be_a_mapping(self, tmp_path: Path) -> None:
        """A list as the whole document is reported at 1:1."""
        (problem,) = problems_of(tmp_path, "- a\n- b\n")
        assert (problem.line, problem.column) == (1, 1)
        assert "must be a mapping" in problem.message

    def test_type_and_range_errors(self, tmp_path: Path) -> None:
        """Wrong types and out-of-range values are reported at their values."""
        text = """\
target: {dsn: "postgresql://h/u", schema: "my-schema"}
sources:
  shop: {host: h, user: u, database: d, server_id: 0, port: "3306"}
mappings: mappings/
log: {level: loud, format: xml}
"""
        found = {(p.line, p.column): p.message for p in problems_of(tmp_path, text)}
        assert found == {
            (1, 43): "target.schema 'my-schema' is not a plain identifier",
            (3, 52): "sources.shop.server_id must be between 1 and 4294967295",
            (3, 61): "sources.shop.port must be an integer, got str '3306'",
            (4, 11): "mappings must be a list of files or directories",
            (5, 14): "log.level must be debug, info, warning or error",
            (5, 28): "log.format must be auto, json or console",
        }

    def test_values_that_cannot_work_are_refused_with_their_range(self, tmp_path: Path) -> None:
        """Ports, sizes, delays and timeouts outside what can work are refused (zeros too, never
        replaced by a default), each at its value, all at once."""
        text = """\
target: {dsn: "postgresql://h/u"}
sources:
  shop: {host: h, user: u, database: d, server_id: 1, port: 99999, heartbeat: 0}
  app: {host: h, user: u, database: d, server_id: 2, port: 0, connect_timeout: -1}
mappings: [mappings/]
batch: {max_rows: -5, max_delay_ms: -1, max_mb: 0}
metrics: {listen: not-an-address}
shutdown_timeout: -3
retry_max_seconds: 0
reconcile: {chunk_rows: 0, pause_ms: -10}
"""
        found = {p.message for p in problems_of(tmp_path, text)}
        assert found == {
            "sources.shop.port must be between 1 and 65535, got 99999",
            "sources.shop.heartbeat must be between 1 and 59, got 0",
            "sources.app.port must be between 1 and 65535, got 0",
            "sources.app.connect_timeout must be between 1 and 300, got -1",
            "batch.max_rows must be between 1 and 1000000, got -5",
            "batch.max_delay_ms must be between 0 and 60000, got -1",
            "batch.max_mb must be between 1 and 4096, got 0",
            "metrics.listen: listen address 'not-an-address': expected host:port with a port between 1 "
            "and 65535, e.g. 127.0.0.1:9187",
            "config.shutdown_timeout must be between 1 and 3600, got -3",
            "config.retry_max_seconds must be between 1 and 3600, got 0",
            "reconcile.chunk_rows must be between 1 and 1000000, got 0",
            "reconcile.pause_ms must be between 0 and 60000, got -10",
        }

    def test_no_sources(self, tmp_path: Path) -> None:
        """An empty sources mapping is refused."""
        text = 'target: {dsn: "postgresql://h/u"}\nsources: {}\nmappings: [mappings/]\n'
        (problem,) = problems_of(tmp_path, text)
        assert (problem.line, problem.message) == (2, "sources: at least one source is needed")

    def test_yaml_syntax_error_is_a_config_error(self, tmp_path: Path) -> None:
        """A YAML syntax error comes out as a ConfigError with the file's position."""
        (problem,) = problems_of(tmp_path, "target: {dsn: x\nsources: []\n")
        assert problem.file == str(tmp_path / "config.yaml")
        assert problem.message.startswith("YAML: ")


class TestTimezone:
    @pytest.mark.parametrize(("text", "offset"), [
        ("+08:00", timedelta(hours=8)),
        ("-05:30", -timedelta(hours=5, minutes=30)),
        ("+00:00", timedelta(0)),
    ])
    def test_fixed_offsets(self, text: str, offset: timedelta) -> None:
        """'+HH:MM' and '-HH:MM' are fixed offsets."""
        assert parse_timezone(text) == timezone(offset)

    @pytest.mark.parametrize("text", ["UTC", "utc"])
    def test_utc(self, text: str) -> None:
        """'UTC' in any case is UTC."""
        assert parse_timezone(text) is UTC

    def test_iana_name(self) -> None:
        """An IANA name gives that zone, with its rules."""
        zone = parse_timezone("Asia/Shanghai")
        assert zone == ZoneInfo("Asia/Shanghai")
        assert datetime(2024, 1, 1, tzinfo=zone).utcoffset() == timedelta(hours=8)

    @pytest.mark.parametrize("text", ["Mars/Olympus", "", "Asia", "+8:00", "+08:75", "+24:00", "/etc/passwd"])
    def test_invalid_zones(self, text: str) -> None:
        """Unknown names and malformed or impossible offsets raise ValueError with a hint."""
        with pytest.raises(ValueError, match="unknown time zone"):
            parse_timezone(text)

    def test_unquoted_offset_is_a_number_and_refused(self, tmp_path: Path) -> None:
        """YAML reads unquoted +8:00 as the number 480; the config says it must be text."""
        text = 'target: {dsn: "postgresql://h/u"}\nsources:\n  s: {host: h, user: u, database: d, ' \
               'server_id: 1, timezone: +8:00}\nmappings: [mappings/]\n'
        (problem,) = problems_of(tmp_path, text)
        assert problem.message == "sources.s.timezone must be text, got int 480"


class TestSecret:
    def test_reads_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An env secret is read from the environment when asked, not before."""
        secret = Secret(env="SYNCD_TEST_PW")
        monkeypatch.delenv("SYNCD_TEST_PW", raising=False)
        assert secret.read() is None
        monkeypatch.setenv("SYNCD_TEST_PW", "s3cret")
        assert secret.read() == "s3cret"
        assert secret.describe() == "env SYNCD_TEST_PW"

    def test_reads_a_file_without_its_trailing_newline(self, tmp_path: Path) -> None:
        """A file secret loses its trailing newline (LF or CRLF) but keeps inner spaces."""
        path = tmp_path / "pw"
        path.write_bytes(b" pa ss\r\n")
        assert Secret(file=str(path)).read() == " pa ss"
        assert Secret(file=str(path)).describe() == f"file {path}"

    def test_no_secret(self) -> None:
        """No env and no file means no password."""
        assert Secret().read() is None
        assert Secret().describe() == "none"

    def test_connection_kwargs_take_the_password_from_the_secret(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """connection_kwargs reads the secret at call time; the config file never supplies it."""
        monkeypatch.setenv("SHOP_DB_PASSWORD", "from-env")
        (tmp_path / "app.pw").write_text("from-file\n", encoding="utf-8")
        config = load_config(write(tmp_path, ISSUE_EXAMPLE))
        shop = config.sources["shop"].connection_kwargs()
        assert shop == {"host": "127.0.0.1", "port": 3306, "user": "syncd", "password": "from-env",
                        "charset": "utf8mb4", "connect_timeout": 10, "read_timeout": 120,
                        "write_timeout": 120, "tls": SourceTls()}
        app = config.sources["app"]
        assert app.password == Secret(file="app.pw")
        monkeypatch.delenv("SHOP_DB_PASSWORD")
        assert config.sources["shop"].connection_kwargs()["password"] == ""

    def test_connection_kwargs_are_fresh_each_time(self) -> None:
        """Each call returns a new dict (the binlog library mutates what it is given)."""
        tls = SourceTls("verify-full", ca="/ca.pem")
        source = SourceConfig("s", "h", 1, "u", Secret(), "d", 1, UTC, tls=tls)
        first = source.connection_kwargs()
        first["charset"] = "utf8"
        assert source.connection_kwargs()["charset"] == "utf8mb4"
        assert source.connection_kwargs()["tls"] == tls


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:9187", ("127.0.0.1", 9187)),
        ("0.0.0.0:9187", ("0.0.0.0", 9187)),
        ("localhost:9187", ("localhost", 9187)),
        (":9187", ("127.0.0.1", 9187)),
        ("9187", ("127.0.0.1", 9187)),
        (" 10.0.0.5:80 ", ("10.0.0.5", 80)),
        ("[::1]:9187", ("::1", 9187)),
        ("[::]:65535", ("::", 65535)),
    ],
)
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("127.0.0.1", "port"),
        ("127.0.0.1:", "port"),
        ("127.0.0.1:http", "port"),
        ("127.0.0.1:70000", "port"),
        ("127.0.0.1:-1", "port"),
        ("127.0.0.1:0", "between 1 and 65535"),
        ("not-an-address", "port"),
        ("::1:9187", "brackets"),
        ("[::1]9187", r"\[ipv6\]:port"),
        ("[]:9187", r"\[ipv6\]:port"),
    ],
)
def test_parse_listen_rejects(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_listen(value)
