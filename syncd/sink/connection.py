"""Every connection syncd opens to the target, and the one place psycopg's errors become syncd's.

A connection is made from `target.dsn` (with its TLS parameters, syncd/sink/tls.py) in
autocommit mode. Code outside syncd/sink/ never sees a psycopg exception: the sink's public
functions run their statements inside `translated`, which turns a lost or refused connection
into SinkUnavailable (retried by the daemon) and anything else the server refuses into
SinkError naming what was being done.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import psycopg
from psycopg.adapt import AdaptersMap, Dumper
from psycopg.conninfo import conninfo_to_dict

from syncd.config import TargetConfig
from syncd.errors import SinkError, SinkUnavailable, TargetAuthError
from syncd.mapping.astext import json_text
from syncd.model import JsonArray
from syncd.sink.tls import tls_error

F = TypeVar("F", bound=Callable[..., Any])


def _not_a_second_report(record: logging.LogRecord) -> bool:
    """psycopg logs the end of a pipeline or COPY that failed inside `executemany` or a COPY
    ("error ignored terminating <psycopg.Pipeline [INERROR]>: pipeline aborted") beside the error
    it raises; syncd reports that error itself (a dead letter, a retry), so the line is noise."""
    return not str(record.msg).startswith("error ignored terminating")


logging.getLogger("psycopg").addFilter(_not_a_second_report)

LOST: tuple[type[Exception], ...] = (psycopg.OperationalError,)
"""psycopg's errors of a lost or refused connection, for code that retries what an untranslated
call let through (the daemon's source runner): every one is retriable."""

Connection = psycopg.Connection
"""What the sink's functions take, for the layers above that must not import the driver."""


SESSION = "-c DateStyle=ISO,MDY -c IntervalStyle=postgres -c extra_float_digits=1"
"""The output formats syncd reads and compares (psycopg parses dates and intervals only in these
styles; reconcile's digests compare PostgreSQL's text of values), whatever the database or role
sets: a target database with `DateStyle = 'SQL, DMY'` works as any other."""


class DurationText(Dumper):
    """A timedelta (a MySQL TIME) as one count of microseconds: PostgreSQL keeps it in the
    interval's time part, `-01:00:00` and `838:59:59` as the source holds them, not split into
    days like psycopg's own text (`-1 days +23:00:00`)."""

    oid = psycopg.postgres.types["interval"].oid

    def dump(self, obj: timedelta) -> bytes:
        return b"%d microseconds" % (obj // _MICROSECOND)


class JsonText(Dumper):
    """A JSON object or array (`json_get`: a dict, a `JsonArray`) as its JSON text
    (syncd/mapping/astext.py), typed as unknown like text: PostgreSQL reads it as the column's
    type (`jsonb`, `json`), as it reads a JSON source column's text. psycopg has no dumper for a
    dict, and makes a list a PostgreSQL array."""

    def dump(self, obj: dict | JsonArray) -> bytes:
        return json_text(obj).encode()


_MICROSECOND = timedelta(microseconds=1)
ADAPTERS = AdaptersMap(psycopg.adapters)
"""How syncd's connections (and its COPY text, syncd/sink/postgres.py) write Python values."""
ADAPTERS.register_dumper(timedelta, DurationText)
ADAPTERS.register_dumper(dict, JsonText)
ADAPTERS.register_dumper(JsonArray, JsonText)


def connect(target: TargetConfig, application_name: str = "syncd", **options: Any) -> psycopg.Connection:
    """Every connection syncd opens to the target: `target.dsn` (with its TLS parameters), plus
    `options` (more libpq parameters, e.g. the lock's keepalives), in syncd's `SESSION` formats
    (after the DSN's own `options`)."""
    own = conninfo_to_dict(target.dsn).get("options")
    try:
        return psycopg.connect(target.dsn, password=target.password.read(), autocommit=True,
                               application_name=application_name, connect_timeout=10,
                               options=f"{own} {SESSION}" if own else SESSION, context=ADAPTERS,
                               **options)
    except psycopg.OperationalError as exc:
        raise (tls_error(target, exc) or _login_refused(exc) or
               SinkUnavailable(f"cannot connect to the target: {first_line(exc)}")) from exc


_LOGIN_REFUSED = re.compile(r"password authentication failed|no pg_hba\.conf entry|"
                            r"(role|database) \".*\" does not exist")
"""libpq's texts of a login the server refused (a connection failure carries no SQLSTATE)."""


def _login_refused(exc: psycopg.OperationalError) -> TargetAuthError | None:
    text = first_line(exc)
    if not _LOGIN_REFUSED.search(text):
        return None
    return TargetAuthError(f"cannot connect to the target: {text}; fix target.dsn, its password "
                           "(target.password_env) or the server's pg_hba.conf")


def first_line(exc: BaseException) -> str:
    """The first line of a driver error's text (libpq adds context lines), or its class name."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def translating(doing: str) -> Callable[[F], F]:
    """`translated(doing)` around every call of the decorated function."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with translated(doing):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


@contextmanager
def translated(doing: str) -> Iterator[None]:
    """Inside: psycopg's errors leave as SinkUnavailable (the connection is gone: retry) or
    SinkError (the server refused the statement), prefixed by `doing` ("reading dead letters")."""
    try:
        yield
    except psycopg.OperationalError as exc:
        raise SinkUnavailable(f"{doing}: {first_line(exc)}") from exc
    except psycopg.Error as exc:
        raise SinkError(f"{doing}: {first_line(exc)}") from exc
