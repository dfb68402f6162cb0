"""TLS settings of the sources and the target: one vocabulary, the checks of their files, and
the client context a source connection encrypts with.

Both ends speak PostgreSQL's `sslmode` words, so config.yaml has one vocabulary: a source's
`ssl_mode` and the `sslmode=` of `target.dsn` mean the same (disable, prefer: TLS when the
server offers it and nothing verified, require: TLS or no connection, verify-ca: and the
certificate signed by the CA, verify-full: and made out to the server's name). The target's
settings are libpq's own, read from the DSN; the sources' are syncd's (PyMySQL's options say
neither "required" nor "verified" in one word, and before PyMySQL 1.2 a connection given a CA
went on in plain text with a server that offers no TLS). The files are checked when the config
is read, so a wrong path is a `file:line:col` problem, not a failure at the first connection.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

MODES = ("disable", "prefer", "require", "verify-ca", "verify-full")
"""A source's `ssl_mode`, weakest first."""
TARGET_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
"""libpq's `sslmode` (`allow`: plain text first, TLS if the server insists)."""
REQUIRED = frozenset({"require", "verify-ca", "verify-full"})
VERIFYING = frozenset({"verify-ca", "verify-full"})
_MYSQL_WORDS = {"disabled": "disable", "preferred": "prefer", "required": "require",
                "verify_ca": "verify-ca", "verify_identity": "verify-full"}


@dataclass(frozen=True)
class SourceTls:
    """How syncd encrypts its connections to one source (`sources.<name>.ssl_*`)."""

    mode: str = "prefer"
    ca: str | None = None
    """The CA certificate(s) that signed the server's certificate (PEM)."""
    cert: str | None = None
    """A client certificate (PEM), for servers whose user is `REQUIRE X509`."""
    key: str | None = None
    """Its private key, unencrypted (PEM); None: in the `cert` file."""
    server_name: str | None = None
    """The name the server's certificate must carry (verify-full); None: the source's host."""

    @property
    def required(self) -> bool:
        return self.mode in REQUIRED

    @property
    def verifies(self) -> bool:
        return self.mode in VERIFYING


class _NamedContext(ssl.SSLContext):
    """A client context that checks the certificate for `server_name`, whatever host was dialled."""

    server_name: str | None = None

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        if self.server_name:
            kwargs["server_hostname"] = self.server_name
        return super().wrap_socket(sock, *args, **kwargs)


def client_context(tls: SourceTls) -> ssl.SSLContext:
    """The context of a connection that must be encrypted (`tls.required`); raises OSError or
    ssl.SSLError when a file cannot be loaded."""
    context = _NamedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.server_name = tls.server_name
    context.check_hostname = tls.mode == "verify-full"
    context.verify_mode = ssl.CERT_REQUIRED if tls.verifies else ssl.CERT_NONE
    if tls.ca:
        context.load_verify_locations(cafile=tls.ca)
    if tls.cert:
        context.load_cert_chain(tls.cert, tls.key, password="")  # never a prompt on a terminal
    return context


def mode_problem(mode: str, modes: tuple[str, ...] = MODES) -> str | None:
    """Why `mode` is not a mode (None: it is one)."""
    if mode in modes:
        return None
    hint = _MYSQL_WORDS.get(mode.lower())
    said = f"; MySQL's {mode} is {hint}" if hint else ""
    return f"{mode!r} is not a TLS mode: use {', '.join(modes)} (PostgreSQL's sslmode words{said})"


def ca_problem(path: str) -> str | None:
    """Why the CA file at `path` cannot serve to verify a server (None: it can)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:  # an OSError too: first
        return f"{path} holds no PEM certificate ({exc.reason or exc})"
    except OSError as exc:
        return _file_problem(path, exc)
    return None


def file_problem(path: str) -> str | None:
    """Why the file at `path` cannot be read (None: it can)."""
    try:
        Path(path).read_bytes()
    except OSError as exc:
        return _file_problem(path, exc)
    return None


def cert_problem(cert: str, key: str | None) -> str | None:
    """Why the client certificate and key, both readable, cannot be loaded (None: they can)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_cert_chain(cert, key, password="")
    except ssl.SSLError as exc:  # an OSError too: first
        if exc.reason == "KEY_VALUES_MISMATCH":
            return f"the key {key or cert} does not belong to the certificate {cert}"
        return (f"{cert}{f' and {key}' if key else ''} cannot be loaded as a PEM certificate and its "
                f"unencrypted private key ({exc.reason or exc})")
    except OSError as exc:
        return _file_problem(cert, exc)
    return None


def _file_problem(path: str, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{path} does not exist"
    return f"cannot read {path}: {exc.strerror or exc}"


_KEYWORD_VALUE = re.compile(r"\s*([A-Za-z_]\w*)\s*=\s*"  # a keyword, then a value quoted or not:
                            r"(?:'((?:[^'\\]|\\.)*)'|((?:[^\s'\\]|\\.)(?:[^\s\\]|\\.)*|))\s*")


def dsn_parameters(dsn: str) -> dict[str, str]:
    """The parameters of a libpq connection string, a URI or key=value pairs (libpq's syntax,
    "Connection Strings" in the PostgreSQL manual). Read here rather than by psycopg: the
    PostgreSQL driver stays in syncd/sink/, and the decoder processes, which import this module
    through syncd.config, do without it. ValueError when it is neither form."""
    if re.match(r"postgres(ql)?://", dsn):
        url = urlsplit(dsn)
        pairs = (pair.partition("=") for pair in url.query.split("&") if pair)
        parameters = {unquote(key): unquote(value) for key, _, value in pairs}  # "+" stays "+", as in libpq
        host = urlsplit("//" + url.netloc.rpartition("@")[2].split(",")[0]).hostname  # the first one
        if host and "host" not in parameters:
            parameters["host"] = unquote(host)
        return parameters
    parameters, position = {}, 0
    while position < len(dsn.rstrip()):
        match = _KEYWORD_VALUE.match(dsn, position)
        if match is None:
            raise ValueError(f"cannot read {dsn[position:]!r} as key=value")
        quoted, plain = match.group(2), match.group(3)
        parameters[match.group(1)] = re.sub(r"\\(.)", r"\1", quoted if quoted is not None else plain)
        position = match.end()
    return parameters


def target_problems(settings: dict[str, str]) -> list[str]:
    """What is wrong with the TLS parameters of `target.dsn` (libpq's own, checked here so that
    `syncd validate` names them before a connection fails)."""
    mode = settings.get("sslmode", "prefer")
    problems = [f"sslmode {problem}"] if (problem := mode_problem(mode, TARGET_MODES)) else []
    root = settings.get("sslrootcert")
    if mode in VERIFYING and not root:
        problems.append(f"sslmode={mode} needs sslrootcert=<the CA file that signed the server's "
                        "certificate> in the DSN")
    for key in ("sslrootcert", "sslcert", "sslkey"):
        path = settings.get(key)
        if path and path != "system" and not Path(path).is_absolute():
            problems.append(f"{key}={path}: give an absolute path (libpq reads it relative to the "
                            "working directory)")
    if problems:
        return problems
    if root and root != "system" and (problem := ca_problem(root)):
        problems.append(f"sslrootcert: {problem}")
    files = [(k, settings[k]) for k in ("sslcert", "sslkey") if settings.get(k)]
    unreadable = [f"{k}: {problem}" for k, path in files if (problem := file_problem(path))]
    if unreadable or not settings.get("sslcert"):
        return problems + unreadable
    if problem := cert_problem(settings["sslcert"], settings.get("sslkey")):
        problems.append(f"sslcert: {problem}")
    return problems
