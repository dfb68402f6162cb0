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
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql
from pymysql.constants import CLIENT, CR

from syncd.config import SourceConfig
from syncd.errors import SourceError, SourceTlsError, SourceUnavailable
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
    """What a failed connection to `source` means: a TLS failure, else the server unreachable."""
    if isinstance(exc, TlsFailure):
        return tls_error(source, exc)
    return SourceUnavailable(source.name, f"cannot connect to {source.host}:{source.port}: {exc.args[-1]}")


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
