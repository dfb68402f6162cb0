"""config.yaml -> typed Config. Every problem is reported at once, as file:line:col."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from datetime import UTC, timedelta, timezone, tzinfo
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from syncd import tls
from syncd.errors import Problem
from syncd.tls import SourceTls
from syncd.yamlfile import Checker, Where, YamlList, YamlMap, load_file

DEFAULT_CONFIG = "/etc/syncd/config.yaml"
DEFAULT_CHUNK_ROWS = 10_000
"""Source rows per chunk of a reconcile pass or a snapshot (one consistent read each): the one
default of `syncd reconcile`, `syncd snapshot` and `reconcile.chunk_rows`."""
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Secret:
    """Where a password comes from; the value itself is read only when needed."""

    env: str | None = None
    file: str | None = None
    where: Where | None = field(default=None, compare=False)
    """Where config.yaml names it (password_env / password_file)."""
    owner: str = field(default="", compare=False)
    """Whose password it is: `target`, `sources.shop`."""

    def read(self) -> str | None:
        if self.env:
            return os.environ.get(self.env)
        if self.file:
            return Path(self.file).read_text(encoding="utf-8").rstrip("\r\n")
        return None

    def describe(self) -> str:
        return f"env {self.env}" if self.env else f"file {self.file}" if self.file else "none"

    def problem(self) -> Problem | None:
        """Why this secret cannot be read, naming the variable or file and the fix (None: fine)."""
        where = self.where or Where("config", 1, 1)
        if self.env and self.env not in os.environ:
            return where.problem(f"{self.owner}.password_env: the environment variable {self.env} is not "
                                 "set (under systemd, put it in the EnvironmentFile, /etc/syncd/syncd.env)")
        if self.file:
            try:
                self.read()
            except OSError as exc:
                return where.problem(f"{self.owner}.password_file: cannot read {self.file}: {exc.strerror}")
            except UnicodeDecodeError:
                return where.problem(f"{self.owner}.password_file: {self.file} is not UTF-8 text")
        return None

    def warning(self) -> str | None:
        """Something unsafe about this secret that does not stop syncd (None: nothing)."""
        if self.file:
            mode = Path(self.file).stat().st_mode
            if mode & stat.S_IROTH:
                return (f"{self.owner}.password_file {self.file} is readable by every user of this host "
                        f"(mode {stat.S_IMODE(mode):04o}): chmod 0600, or 0640 with the syncd group")
        return None


@dataclass(frozen=True)
class TargetConfig:
    dsn: str
    password: Secret
    schema: str = "public"
    state_schema: str = "syncd"
    where: Where | None = field(default=None, compare=False)
    """Where config.yaml holds `target` (live checks point there)."""


@dataclass(frozen=True)
class SourceConfig:
    name: str
    host: str
    port: int
    user: str
    password: Secret
    database: str
    server_id: int
    timezone: tzinfo
    tls: SourceTls = field(default_factory=SourceTls)
    connect_timeout_s: int = 10
    heartbeat_s: int = 5
    where: Where | None = field(default=None, compare=False)
    """Where config.yaml holds `sources.<name>` (live checks point there)."""

    def connection_kwargs(self) -> dict:
        """`SourceConnection` arguments (PyMySQL's, and `tls`: only that class connects to a
        source); built fresh each time (the binlog library mutates them)."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password.read() or "",
            "charset": "utf8mb4",
            "connect_timeout": self.connect_timeout_s,
            # Without these a read from a hung server blocks forever (connect_timeout alone doesn't).
            "read_timeout": 120,
            "write_timeout": 120,
            "tls": self.tls,
        }


@dataclass(frozen=True)
class BatchConfig:
    max_rows: int = 5000
    max_delay_s: float = 0.2
    max_bytes: int = 16 << 20
    """A batch also closes once its events came in this many bytes (`batch.max_mb`): rows of
    large TEXT and BLOB values reach it before `max_rows`."""


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True)
class AlertsConfig:
    """When syncd warns or calls a source hung (all in seconds)."""

    retention_headroom_s: float = 86400.0
    """Warn (`retention_headroom_low`) when the checkpoint's binlog may be purged sooner."""
    stall_s: float = 60.0
    """A running source with no event, heartbeat or commit for this long counts as hung:
    /healthz turns 503 and the systemd watchdog stops."""
    check_interval_s: float = 60.0
    """How often the binlog the checkpoint needs is checked (present? retention headroom?)."""


@dataclass(frozen=True)
class DdlConfig:
    truncate: str = "propagate"
    """What a source TRUNCATE of a mapped table does: propagate (remove the mapping's slice) or pause."""


@dataclass(frozen=True)
class ReconcileConfig:
    """Periodic reconciliation inside `syncd run` (off unless `interval` is set)."""

    interval_s: float | None = None
    repair: bool = False
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    pause_s: float = 0.0


@dataclass(frozen=True)
class Config:
    path: Path
    target: TargetConfig
    sources: dict[str, SourceConfig]
    mapping_paths: list[Path]
    batch: BatchConfig = field(default_factory=BatchConfig)
    log: LogConfig = field(default_factory=LogConfig)
    metrics_listen: str | None = None
    shutdown_timeout_s: float = 30.0
    retry_max_s: float = 30.0
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    ddl: DdlConfig = field(default_factory=DdlConfig)
    reconcile: ReconcileConfig = field(default_factory=ReconcileConfig)


_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Zulu", "Etc/Zulu", "Universal", "Etc/Universal",
                        "GMT", "Etc/GMT", "Etc/GMT0", "Etc/GMT+0", "Etc/GMT-0", "Etc/Greenwich", "Greenwich"})


def fixed_offset(zone: tzinfo) -> timedelta | None:
    """The zone's one UTC offset, or None for a zone whose offset changes (daylight saving)."""
    if getattr(zone, "key", None) in _UTC_NAMES:
        return timedelta(0)
    if isinstance(zone, timezone):
        return zone.utcoffset(None)
    return None


def parse_timezone(text: str) -> tzinfo:
    """'+08:00', '-05:30', 'UTC' or an IANA name such as 'Asia/Shanghai'."""
    match = re.fullmatch(r"([+-])(\d{2}):([0-5]\d)", text)
    if match and int(match.group(2)) < 24:
        sign = 1 if match.group(1) == "+" else -1
        offset = timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
        return timezone(sign * offset)
    if text.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {text!r} (use '+08:00' or a name like 'Asia/Shanghai')") from exc


def load_config(path: Path) -> Config:
    data = load_file(path)
    check = Checker()
    config = _parse(data, path, check)
    check.raise_if_any()
    assert config is not None
    return config


def _parse(data: object, path: Path, check: Checker) -> Config | None:
    top = check.mapping(data, Where(str(path), 1, 1), "the config file")
    if top is None:
        return None
    keys = {"target", "sources", "mappings", "batch", "log", "metrics", "shutdown_timeout",
            "retry_max_seconds", "alerts", "ddl", "reconcile"}
    check.only_keys(top, keys, "the config file")
    check.require(top, ["target", "sources", "mappings"], "the config file")
    # A missing section is reported once, by require, not again as "must be a mapping".
    target = _target(top["target"], top.at_value("target"), check) if "target" in top else None
    sources = (_sources(top["sources"], top.at_value("sources"), path.parent, check)
               if "sources" in top else {})
    mapping_paths = _mapping_paths(top.get("mappings"), top, path.parent, check)
    metrics = _section(top, "metrics", {"listen"}, check)
    return Config(
        path=path,
        target=target or TargetConfig(dsn="", password=Secret()),
        sources=sources,
        mapping_paths=mapping_paths,
        batch=_batch(top, check),
        log=_log(top, check),
        metrics_listen=_listen(metrics, check) if metrics else None,
        shutdown_timeout_s=check.number(top, "shutdown_timeout", "config", 30.0, low=1, high=3600),
        retry_max_s=check.number(top, "retry_max_seconds", "config", 30.0, low=1, high=3600),
        alerts=_alerts(top, check),
        ddl=_ddl(top, check),
        reconcile=_reconcile(top, check),
    )


DEFAULT_LISTEN_HOST = "127.0.0.1"
"""Host used when a listen address gives only a port (``:9187``): loopback, not all
interfaces, so metrics are never exposed to the network by accident."""


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` -> (host, port).

    Accepted: ``127.0.0.1:9187``, ``0.0.0.0:9187``, ``localhost:9187``, ``[::1]:9187``,
    ``:9187`` and ``9187``. A missing host means 127.0.0.1 (loopback only, the safe
    default); write ``0.0.0.0:9187`` or ``[::]:9187`` to listen on every interface.
    Raises ValueError with a message naming the problem.
    """
    text = value.strip()
    if not text:
        raise ValueError("listen address is empty; expected host:port, e.g. 127.0.0.1:9187")
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep or not host:
            raise ValueError(f"listen address {value!r}: expected [ipv6]:port, e.g. [::1]:9187")
    elif text.count(":") > 1:
        raise ValueError(f"listen address {value!r}: put an IPv6 address in brackets, e.g. [::1]:9187")
    elif ":" in text:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = "", text
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"listen address {value!r}: expected host:port with a port between 1 and 65535, "
                         "e.g. 127.0.0.1:9187")
    return host or DEFAULT_LISTEN_HOST, int(port_text)


def _listen(node: YamlMap, check: Checker) -> str | None:
    text = check.text(node, "listen", "metrics")
    if text is None:
        return None
    try:
        parse_listen(text)
    except ValueError as exc:
        check.add(node.at_value("listen"), f"metrics.listen: {exc}")
        return None
    return text


def _section(top: YamlMap, key: str, allowed: set[str], check: Checker) -> YamlMap | None:
    if key not in top:
        return None
    node = check.mapping(top[key], top.at_value(key), key)
    if node is not None:
        check.only_keys(node, allowed, key)
    return node


def _secret(node: YamlMap, what: str, check: Checker) -> Secret:
    if "password" in node:
        check.add(node.at_key("password"),
                  f"{what}: passwords never go in the config file; use password_env or password_file")
    env = check.text(node, "password_env", what)
    file = check.text(node, "password_file", what)
    if env and file:
        check.add(node.at_key("password_file"), f"{what}: give password_env or password_file, not both")
    key = "password_env" if env else "password_file"
    return Secret(env=env, file=file, where=node.at_value(key), owner=what)


def secrets_of(config: Config) -> list[Secret]:
    return [config.target.password, *(s.password for s in config.sources.values())]


def _target(data: object, where: Where, check: Checker) -> TargetConfig | None:
    node = check.mapping(data, where, "target")
    if node is None:
        return None
    # `password` is allowed past only_keys because _secret reports it with a better message.
    check.only_keys(node, {"dsn", "password", "password_env", "password_file", "schema", "state_schema"},
                    "target")
    check.require(node, ["dsn"], "target")
    dsn = check.text(node, "dsn", "target") or ""
    if dsn and _dsn_has_password(dsn):
        check.add(node.at_value("dsn"), "target.dsn must not contain a password; "
                  "use PGPASSWORD, password_env or password_file")
    if dsn:
        _target_tls(dsn, node.at_value("dsn"), check)
    schema = check.text(node, "schema", "target", "public") or "public"
    state_schema = check.text(node, "state_schema", "target", "syncd") or "syncd"
    for key, value in (("schema", schema), ("state_schema", state_schema)):
        if not _IDENT.match(value):
            check.add(node.at_value(key), f"target.{key} {value!r} is not a plain identifier")
    return TargetConfig(dsn=dsn, password=_secret(node, "target", check), schema=schema,
                        state_schema=state_schema, where=node.where)


def _target_tls(dsn: str, where: Where, check: Checker) -> None:
    """The DSN as libpq reads it, and its TLS parameters (sslmode, sslrootcert, sslcert, sslkey)."""
    try:
        settings = tls.dsn_parameters(dsn)
    except ValueError as exc:
        check.add(where, f"target.dsn cannot be read as a libpq connection string: {exc}")
        return
    for problem in tls.target_problems(settings):
        check.add(where, f"target.dsn: {problem}")


def _dsn_has_password(dsn: str) -> bool:
    """A password in a URL's user info or query, or a `password=` keyword of a key=value DSN."""
    if re.match(r"postgres(ql)?://", dsn):
        url = urlsplit(dsn)
        return bool(url.password) or "password" in parse_qs(url.query)
    return re.search(r"(^|\s)password\s*=", dsn) is not None


_TLS_KEYS = {"ssl_mode", "ssl_ca", "ssl_cert", "ssl_key", "ssl_server_name"}
_SOURCE_KEYS = {"host", "port", "user", "password_env", "password_file", "database", "server_id",
                "timezone", "connect_timeout", "heartbeat"} | _TLS_KEYS


def _sources(data: object, where: Where, base: Path, check: Checker) -> dict[str, SourceConfig]:
    node = check.mapping(data, where, "sources")
    if node is None:
        return {}
    sources = {}
    server_ids: dict[int, str] = {}
    for name, value in node.items():
        source = _source(str(name), value, node.at_value(name), base, check)
        if source is None:
            continue
        if source.server_id and source.server_id in server_ids:  # 0: missing or invalid, reported
            check.add(node.at_key(name), f"sources.{name}.server_id {source.server_id} is also used "
                      f"by source {server_ids[source.server_id]}; each reader needs its own")
        server_ids[source.server_id] = source.name
        sources[source.name] = source
    if not node:
        check.add(where, "sources: at least one source is needed")
    return sources


def _source(name: str, data: object, where: Where, base: Path, check: Checker) -> SourceConfig | None:
    what = f"sources.{name}"
    node = check.mapping(data, where, what)
    if node is None:
        return None
    check.only_keys(node, _SOURCE_KEYS | {"password"}, what)  # `password`: reported by _secret
    check.require(node, ["host", "user", "database", "server_id"], what)
    server_id = check.integer(node, "server_id", what, 0) or 0
    if "server_id" in node and not 1 <= server_id < 2**32:
        check.add(node.at_value("server_id"), f"{what}.server_id must be between 1 and 4294967295")
    tz_text = check.text(node, "timezone", what, "UTC") or "UTC"
    try:
        tz = parse_timezone(tz_text)
    except ValueError as exc:
        check.add(node.at_value("timezone"), f"{what}.timezone: {exc}")
        tz = UTC
    return SourceConfig(
        name=name,
        host=check.text(node, "host", what) or "",
        port=check.integer(node, "port", what, 3306, low=1, high=65535) or 3306,
        user=check.text(node, "user", what) or "",
        password=_secret(node, what, check),
        database=check.text(node, "database", what) or "",
        server_id=server_id,
        timezone=tz,
        tls=_source_tls(node, what, base, check),
        connect_timeout_s=check.integer(node, "connect_timeout", what, 10, low=1, high=300) or 10,
        # The stream's read timeout is 120 s: a heartbeat at most every 59 s keeps it alive.
        heartbeat_s=check.integer(node, "heartbeat", what, 5, low=1, high=59) or 5,
        where=node.where,
    )


def _source_tls(node: YamlMap, what: str, base: Path, check: Checker) -> SourceTls:
    """A source's `ssl_*` keys; a contradiction among them is a problem, never a guess."""
    ca, cert, key = (_tls_file(node, k, what, base, check) for k in ("ssl_ca", "ssl_cert", "ssl_key"))
    mode = check.text(node, "ssl_mode", what) or ("verify-full" if ca else "prefer")
    if problem := tls.mode_problem(mode):
        check.add(node.at_value("ssl_mode"), f"{what}.ssl_mode {problem}")
        return SourceTls()
    settings = SourceTls(mode, ca, cert, key, check.text(node, "ssl_server_name", what))
    contradictions = _tls_contradictions(settings)
    for at, message in contradictions:
        check.add(node.at_value(at) if at in node else node.where, f"{what}.{message}")
    if not contradictions:
        _tls_file_problems(settings, node, what, check)
    return settings


def _tls_file(node: YamlMap, key: str, what: str, base: Path, check: Checker) -> str | None:
    """A TLS file's path, relative ones taken from the config file's directory."""
    text = check.text(node, key, what)
    return str(Path(text) if Path(text).is_absolute() else base / text) if text else None


def _tls_contradictions(settings: SourceTls) -> list[tuple[str, str]]:
    """(key to point at, message) for each pair of TLS settings that cannot both hold."""
    mode = settings.mode
    found = []
    if settings.verifies and not settings.ca:
        found.append(("ssl_mode", f"ssl_mode {mode} needs ssl_ca: the CA certificate (PEM) that "
                      "signed the server's certificate"))
    if settings.ca and not settings.verifies:
        found.append(("ssl_ca", f"ssl_ca is used only by ssl_mode verify-ca or verify-full: with "
                      f"{mode} the server's certificate would not be checked"))
    for key, value in (("ssl_cert", settings.cert), ("ssl_key", settings.key)):
        if value and not settings.required:
            found.append((key, f"{key}: a client certificate needs ssl_mode require, verify-ca or "
                          f"verify-full (ssl_mode is {mode})"))
    if settings.key and not settings.cert:
        found.append(("ssl_key", "ssl_key needs ssl_cert (the certificate the key belongs to)"))
    if settings.server_name and mode != "verify-full":
        found.append(("ssl_server_name", f"ssl_server_name is checked only by ssl_mode verify-full "
                      f"(ssl_mode is {mode})"))
    return found


def _tls_file_problems(settings: SourceTls, node: YamlMap, what: str, check: Checker) -> None:
    if settings.ca and (problem := tls.ca_problem(settings.ca)):
        check.add(node.at_value("ssl_ca"), f"{what}.ssl_ca: {problem}")
    files = [(k, path) for k, path in (("ssl_cert", settings.cert), ("ssl_key", settings.key)) if path]
    unreadable = [(k, problem) for k, path in files if (problem := tls.file_problem(path))]
    for key, problem in unreadable:
        check.add(node.at_value(key), f"{what}.{key}: {problem}")
    if settings.cert and not unreadable and (problem := tls.cert_problem(settings.cert, settings.key)):
        check.add(node.at_value("ssl_cert"), f"{what}.ssl_cert: {problem}")


def _mapping_paths(data: object, top: YamlMap, base: Path, check: Checker) -> list[Path]:
    if data is None:
        return []
    if not isinstance(data, YamlList):
        check.add(top.at_value("mappings"), "mappings must be a list of files or directories")
        return []
    paths = []
    for index, item in enumerate(data):
        if not isinstance(item, str):
            check.add(data.at(index), "mappings entries must be paths (text)")
            continue
        path = Path(item) if Path(item).is_absolute() else base / item
        if not path.exists():
            check.add(data.at(index), f"mapping path {item!r} does not exist (looked at {path})")
        paths.append(path)
    return paths


def _batch(top: YamlMap, check: Checker) -> BatchConfig:
    node = _section(top, "batch", {"max_rows", "max_delay_ms", "max_mb"}, check)
    if node is None:
        return BatchConfig()
    max_rows = check.integer(node, "max_rows", "batch", 5000, low=1, high=1_000_000) or 5000
    delay_ms = check.integer(node, "max_delay_ms", "batch", 200, low=0, high=60_000)
    max_mb = check.integer(node, "max_mb", "batch", 16, low=1, high=4096) or 16
    return BatchConfig(max_rows=max_rows, max_delay_s=(delay_ms if delay_ms is not None else 200) / 1000,
                       max_bytes=max_mb << 20)


def _log(top: YamlMap, check: Checker) -> LogConfig:
    node = _section(top, "log", {"level", "format"}, check)
    if node is None:
        return LogConfig()
    level = check.text(node, "level", "log", "info") or "info"
    fmt = check.text(node, "format", "log", "auto") or "auto"
    if level.lower() not in {"debug", "info", "warning", "error"}:
        check.add(node.at_value("level"), "log.level must be debug, info, warning or error")
    if fmt not in {"auto", "json", "console"}:
        check.add(node.at_value("format"), "log.format must be auto, json or console")
    return LogConfig(level=level.lower(), format=fmt)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def _duration(node: YamlMap, key: str, what: str, default: float, check: Checker) -> float:
    """Seconds from a number (seconds) or text such as ``24h``, ``90m``, ``1h30m``, ``45s``, ``2d``."""
    value = node.get(key, default)
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        parts = _DURATION.findall(text)
        if parts and _DURATION.sub("", text).strip() == "":
            seconds = sum(float(amount) * _UNIT_SECONDS[unit] for amount, unit in parts)
    if seconds is None or seconds <= 0:
        check.add(node.at_value(key), f"{what}.{key} must be a positive duration such as 24h, 30m, "
                  f"90s or a number of seconds, got {value!r}")
        return default
    return seconds


def _alerts(top: YamlMap, check: Checker) -> AlertsConfig:
    node = _section(top, "alerts", {"retention_headroom", "stall", "check_interval"}, check)
    if node is None:
        return AlertsConfig()
    defaults = AlertsConfig()
    return AlertsConfig(
        retention_headroom_s=_duration(node, "retention_headroom", "alerts",
                                       defaults.retention_headroom_s, check),
        stall_s=_duration(node, "stall", "alerts", defaults.stall_s, check),
        check_interval_s=_duration(node, "check_interval", "alerts", defaults.check_interval_s, check),
    )


def _ddl(top: YamlMap, check: Checker) -> DdlConfig:
    node = _section(top, "ddl", {"truncate"}, check)
    if node is None:
        return DdlConfig()
    truncate = check.text(node, "truncate", "ddl", "propagate") or "propagate"
    if truncate not in {"propagate", "pause"}:
        check.add(node.at_value("truncate"), f"ddl.truncate must be propagate or pause, got {truncate!r}")
    return DdlConfig(truncate=truncate)


def _reconcile(top: YamlMap, check: Checker) -> ReconcileConfig:
    node = _section(top, "reconcile", {"interval", "repair", "chunk_rows", "pause_ms"}, check)
    if node is None:
        return ReconcileConfig()
    interval = _duration(node, "interval", "reconcile", 0.0, check) if "interval" in node else None
    return ReconcileConfig(
        interval_s=interval or None,
        repair=check.boolean(node, "repair", "reconcile", False),
        chunk_rows=check.integer(node, "chunk_rows", "reconcile", DEFAULT_CHUNK_ROWS, low=1,
                                 high=1_000_000) or DEFAULT_CHUNK_ROWS,
        pause_s=(check.integer(node, "pause_ms", "reconcile", 0, low=0, high=60_000) or 0) / 1000,
    )
