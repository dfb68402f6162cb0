"""Every connection to a source: PyMySQL's, made to honour the source's TLS settings.

Each connection syncd opens to a source is a `SourceConnection` built from
`SourceConfig.connection_kwargs()`: start-up and retention checks, snapshots, reconcile reads
and repairs (`checks.connect`, `retention`), and the binlog stream with the binlog library's
control connection (its `pymysql_wrapper`, syncd/source/binlog.py). So `ssl_mode` holds for
every one of them (the modes: syncd/tls.py):

- require, verify-ca, verify-full: a server that offers no TLS is refused before syncd
  authenticates (before 1.2, PyMySQL went on in plain text), then the certificate is checked as
  the mode says, by a context built from the source's files at each connection (a renewed CA
  file is read by the next connection).
- disable: plain text, even when the server offers TLS.
- prefer: PyMySQL's default, TLS if the server offers it and nothing verified. PyMySQL builds a
  new `ssl.SSLContext` for it on every connection, loading the system's CA bundle each time
  (about 18 ms of CPU here) for a context that verifies nothing: one built once serves all.

A connection refused for TLS raises `TlsFailure` (still a PyMySQL OperationalError), which
`connect_error` turns into a SourceTlsError naming the source, the server, the cause and the
setting to fix.

Logins that cannot work as configured become a SourceAuthError naming the fix (`auth_error`),
never a traceback nor an endless retry. MySQL 8.4's default plugin, caching_sha2_password
(reference manual 8.4, "Caching SHA-2 Pluggable Authentication"), logs in from a cache of
hashes; after a server restart or FLUSH PRIVILEGES the cache is empty and the client must send
the password itself: inside TLS as it is, over plain TCP encrypted with the server's RSA key,
for which PyMySQL needs the `cryptography` package (an install requirement of syncd, through
PyMySQL[rsa]); without it PyMySQL raises a RuntimeError, turned into `AuthFailure` here. An
account on mysql_native_password (off by default in 8.4, gone in 9.0) is refused with 1524, and
a server with require_secure_transport=ON refuses plain TCP with 3159.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import pymysql
from pymysql.constants import CLIENT, CR, FIELD_TYPE

from syncd.config import SourceConfig
from syncd.errors import SourceAuthError, SourceError, SourceTlsError, SourceUnavailable
from syncd.tls import SourceTls, client_context

_NAME_MISMATCH = frozenset({62, 64})  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
_CUT_OFF = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
"""A handshake cut short: the server or the network went away, which may pass (retried)."""


LOST: tuple[type[Exception], ...] = (pymysql.err.OperationalError,)
"""PyMySQL's errors of a lost or refused connection, for code that retries what an untranslated
call let through (the daemon's source runner). TlsFailure is one too, but syncd translates it
where it connects (a SourceTlsError, not retried)."""


class TlsFailure(pymysql.err.OperationalError):
    """A connection refused for TLS: `kind` is verify, name, no_tls, handshake or files."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(CR.CR_SSL_CONNECTION_ERROR, reason)
        self.kind = kind
        self.reason = reason


class AuthFailure(pymysql.err.OperationalError):
    """A login PyMySQL could not complete on its side: `kind` is rsa (full caching_sha2_password
    authentication over plain TCP without the `cryptography` package)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(CR.CR_AUTH_PLUGIN_ERR, reason)
        self.kind = kind
        self.reason = reason


_PLUGIN_NOT_LOADED = 1524  # ER_PLUGIN_IS_NOT_LOADED: the account's plugin is off or gone
_INSECURE_TRANSPORT = 3159  # ER_SECURE_TRANSPORT_REQUIRED: require_secure_transport=ON


class SourceConnection(pymysql.connections.Connection):
    _preferred: ssl.SSLContext | None = None
    _lock = threading.Lock()

    def __init__(self, *args: Any, tls: SourceTls | None = None, **kwargs: Any) -> None:
        self._tls_settings = tls or SourceTls()
        if self._tls_settings.mode == "disable":
            kwargs["ssl_disabled"] = True
        elif self._tls_settings.required:
            kwargs["ssl"] = _context(self._tls_settings)
        super().__init__(*args, **kwargs)

    def connect(self, sock: Any = None) -> None:
        try:
            super().connect(sock)
        except TlsFailure:
            raise
        except RuntimeError as exc:  # PyMySQL's way of saying it cannot do RSA
            if "cryptography" not in str(exc):
                raise
            raise AuthFailure("rsa", str(exc)) from exc
        except pymysql.err.OperationalError as exc:
            cause = _ssl_cause(exc)
            if cause is None:
                raise
            raise _failure(cause) from cause

    def _request_authentication(self) -> None:
        if self._tls_settings.required and not self.server_capabilities & CLIENT.SSL:
            raise TlsFailure("no_tls", "the server does not offer TLS")
        super()._request_authentication()

    def _create_ssl_ctx(self, sslp: Any) -> ssl.SSLContext:
        if sslp:
            return super()._create_ssl_ctx(sslp)
        with SourceConnection._lock:
            if SourceConnection._preferred is None:
                SourceConnection._preferred = super()._create_ssl_ctx(sslp)
            return SourceConnection._preferred


def _context(tls: SourceTls) -> ssl.SSLContext:
    try:
        return client_context(tls)
    except OSError as exc:  # ssl.SSLError included
        raise TlsFailure("files", f"cannot load the TLS files: {exc}") from exc


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error under a PyMySQL error of the connection's start, if any (None also for a
    handshake cut short, a lost connection like any other)."""
    seen: BaseException | None = exc
    for _ in range(4):
        seen = getattr(seen, "original_exception", None) or seen.__cause__ or seen.__context__
        if seen is None or isinstance(seen, _CUT_OFF):
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
    return None


def _failure(cause: ssl.SSLError) -> TlsFailure:
    if isinstance(cause, ssl.SSLCertVerificationError):
        kind = "name" if cause.verify_code in _NAME_MISMATCH else "verify"
        return TlsFailure(kind, f"certificate verify failed: {cause.verify_message}")
    return TlsFailure("handshake", f"TLS handshake failed: {getattr(cause, 'reason', None) or cause}")


@contextmanager
def translated(source: str, doing: str) -> Iterator[None]:
    """Inside: PyMySQL's errors leave as SourceUnavailable (the connection is gone: retry) or
    SourceError (the server refused the statement), naming the source and `doing`."""
    try:
        yield
    except pymysql.err.OperationalError as exc:
        raise SourceUnavailable(source, f"{doing} failed: {exc.args[-1]}") from exc
    except pymysql.err.MySQLError as exc:
        raise SourceError(source, f"{doing} failed: {exc.args[-1] if exc.args else exc}") from exc


def connect_error(source: SourceConfig, exc: pymysql.err.OperationalError) -> SourceError:
    """What a failed connection to `source` means: a TLS failure, a login that cannot work as
    configured, else the server unreachable."""
    if isinstance(exc, TlsFailure):
        return tls_error(source, exc)
    return auth_error(source, exc) or SourceUnavailable(
        source.name, f"cannot connect to {source.host}:{source.port}: {exc.args[-1]}")


def auth_error(source: SourceConfig, exc: pymysql.err.OperationalError) -> SourceAuthError | None:
    """The SourceAuthError a refused login means, naming the fix; None for other errors."""
    what, code = f"sources.{source.name}", exc.args[0] if exc.args else 0
    where = f"login to {source.host}:{source.port} as {source.user!r} failed"
    if isinstance(exc, AuthFailure):
        return SourceAuthError(source.name, (
            f"{where}: the server asks for full caching_sha2_password authentication (its login cache "
            "is empty after a restart or FLUSH PRIVILEGES), which over plain TCP needs RSA and so the "
            "Python package cryptography, which is not installed; reinstall syncd with its "
            "requirements (pip install 'PyMySQL[rsa]'), or encrypt the connection: set "
            f"{what}.ssl_mode: require (or verify-ca / verify-full with ssl_ca)"))
    if code == _PLUGIN_NOT_LOADED:
        return SourceAuthError(source.name, (
            f"{where} ({exc.args[-1]}): the account uses an authentication plugin the server does not "
            "load (MySQL 8.4 disables mysql_native_password by default, 9.0 removed it); move the "
            f"account to caching_sha2_password: ALTER USER '{source.user}'@'<host>' IDENTIFIED WITH "
            "caching_sha2_password BY '<password>'"))
    if code == _INSECURE_TRANSPORT:
        return SourceAuthError(source.name, (
            f"{where} ({exc.args[-1]}): the server accepts only encrypted connections and "
            f"{what}.ssl_mode is {source.tls.mode}; set ssl_mode: require (or verify-ca / verify-full "
            "with ssl_ca)"))
    return None


def tls_error(source: SourceConfig, failure: TlsFailure) -> SourceTlsError:
    return SourceTlsError(source.name, f"TLS to {source.host}:{source.port} failed "
                          f"({failure.reason.rstrip('.')}): {_fix(source, failure.kind)}")


def _fix(source: SourceConfig, kind: str) -> str:
    what, tls = f"sources.{source.name}", source.tls
    if kind == "verify":
        return (f"{what}.ssl_ca ({tls.ca}) is not the CA that signed the server's certificate, or that "
                "certificate is not valid today; point ssl_ca at the CA that signed the server's ssl_cert")
    if kind == "name":
        name, key = (tls.server_name, "ssl_server_name") if tls.server_name else (source.host, "host")
        return (f"the server's certificate is not made out to {name!r} ({what}.{key}); connect by a "
                f"name the certificate carries, or set {what}.ssl_server_name to it")
    if kind == "no_tls":
        return (f"{what}.ssl_mode is {tls.mode}, so syncd will not talk to it in plain text; turn TLS "
                "on in the server (ssl_cert and ssl_key under [mysqld]) or set ssl_mode: prefer")
    if kind == "files":
        return f"{what}.ssl_ca, ssl_cert and ssl_key must be readable PEM files"
    return (f"check {what}.ssl_cert and ssl_key (a server may ask for a client certificate) and the "
            "TLS versions the server allows (tls_version)")


def _datetime(text: str) -> datetime | str:
    """PyMySQL's DATETIME/TIMESTAMP converter, in C: the same values, invalid text (zero dates)
    returned as it came, about four times faster (snapshots and reconciles read millions)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return text


def _date(text: str) -> date | str:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return text


_CONVERSIONS = {**pymysql.converters.conversions, FIELD_TYPE.DATETIME: _datetime,
                FIELD_TYPE.TIMESTAMP: _datetime, FIELD_TYPE.DATE: _date}


def connect(source: SourceConfig, database: str | None = None) -> pymysql.connections.Connection:
    """A connection for queries (checks, snapshots, reconcile reads, the binlog reader's own
    queries), its temporal values converted in C."""
    try:
        return SourceConnection(database=database, autocommit=True, conv=_CONVERSIONS,
                                **source.connection_kwargs())
    except pymysql.err.OperationalError as exc:
        raise connect_error(source, exc) from exc
