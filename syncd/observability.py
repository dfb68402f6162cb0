"""Logging: structlog for syncd's own events, stdlib logging of libraries routed through it.

Events are snake_case names with fields::

    log = get_logger(source="shop")
    log.info("batch_committed", rows=10, lag_seconds=0.4)

Output is JSON lines (keys ``event``, ``level``, ``timestamp`` in ISO 8601 UTC, then the
fields; a traceback as ``exception`` text) or, on a terminal, a readable console format.
Under systemd stderr goes to the journal, where JSON lines keep every field.

Secrets are never written: values given to `register_secret` are replaced by ``***``
anywhere in an event (fields, nested containers, exception text, library messages), and
so are passwords in URLs (``postgresql://user:pw@host`` -> ``postgresql://user:***@host``)
and in ``password=...`` / ``'password': '...'`` text. A secret of `SAFE_SECRET_LENGTH`
characters or more is replaced wherever it occurs; a shorter one only where it stands as a
whole token (not inside a word), so that a password such as ``x`` does not turn every "x" of
every line into ``***`` — which would make logs unreadable and show what the password is.
`short_secret` tells which secrets are too short to hide safely (syncd warns at start).
"""

from __future__ import annotations

import gc
import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

REDACTED = "***"

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
FORMATS = ("auto", "json", "console")

# -- scrubbing -----------------------------------------------------------------------

_secrets_lock = threading.Lock()
_secrets: set[str] = set()
_secrets_re: re.Pattern[str] | None = None

# scheme://user:password@  -- greedy up to the last '@' of the token, so an unencoded '@'
# in the password cannot leak its tail; over-redacting a token is the lesser evil.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/?#@]*:)[^\s]*@")

# A key naming a password or secret, but not the *_env / *_file / *_path settings that only
# say where a secret is kept (their values are not secret and help debugging).
_KEY = r"\w*(?:password|passwd|pwd|secret)(?!\w*_(?:env|file|path)\b)\w*"
_VALUE = r"""(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s,;&'")}\]]+)"""
# password=value (libpq conninfo, query strings, env-style text)
_KV_EQUALS = re.compile(rf"(?i)\b({_KEY}\s*=\s*){_VALUE}")
# 'password': 'value' / "password": "value" (dict reprs, JSON)
_KV_QUOTED = re.compile(rf"""(?i)(['"]{_KEY}['"]\s*:\s*){_VALUE}""")


def _variants(secret: str) -> Iterable[str]:
    """The forms a secret takes in text: raw, URL-encoded, escaped inside repr()/JSON."""
    yield secret
    yield quote(secret, safe="")
    yield quote_plus(secret, safe="")
    yield repr(secret)[1:-1]
    yield json.dumps(secret)[1:-1]
    yield json.dumps(secret, ensure_ascii=False)[1:-1]


SAFE_SECRET_LENGTH = 8
"""Secrets at least this long are hidden wherever they occur; shorter ones as whole tokens only."""


def short_secret(value: str | None) -> bool:
    """Whether a secret is too short to hide safely in logs (only where it stands alone)."""
    return bool(value) and len(value) < SAFE_SECRET_LENGTH


def _pattern(variant: str) -> str:
    """A variant of a secret as a regex: anywhere when long, else not inside a word."""
    escaped = re.escape(variant)
    if len(variant) >= SAFE_SECRET_LENGTH:
        return escaped
    head = r"(?<!\w)" if re.match(r"\w", variant[0]) else ""
    tail = r"(?!\w)" if re.match(r"\w", variant[-1]) else ""
    return head + escaped + tail


def register_secret(value: str | None) -> None:
    """Never log ``value``: it is replaced by ``***`` in every later log event.

    Empty values are ignored. A value shorter than `SAFE_SECRET_LENGTH` is replaced only where
    it stands as a whole token, so a password like ``x`` hides ``x`` but not ``copy_text``.
    """
    global _secrets_re  # noqa: PLW0603 (one process-wide registry, rebuilt on change)
    if not value:
        return
    with _secrets_lock:
        before = len(_secrets)
        _secrets.update(v for v in _variants(value) if v)
        if len(_secrets) == before:
            return
        alternatives = sorted(_secrets, key=len, reverse=True)  # longest first
        _secrets_re = re.compile("|".join(_pattern(s) for s in alternatives))


def clear_secrets() -> None:
    """Forget every registered secret (for tests)."""
    global _secrets_re  # noqa: PLW0603
    with _secrets_lock:
        _secrets.clear()
        _secrets_re = None


def scrub(text: str) -> str:
    """``text`` with registered secrets and recognisable passwords replaced by ``***``."""
    pattern = _secrets_re
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _URL_PASSWORD.sub(rf"\1{REDACTED}@", text)
    text = _KV_EQUALS.sub(rf"\1{REDACTED}", text)
    return _KV_QUOTED.sub(rf"\1{REDACTED}", text)


ONE_LINE_LIMIT = 300
"""The most characters a one-line reason (/healthz, STATUS=) shows."""


def one_line(text: str, limit: int = ONE_LINE_LIMIT) -> str:
    """`text` for a one-line report: its first non-empty line, scrubbed, at most `limit`
    characters (cut with "…"). A multi-line error (a traceback, every problem of a reload) shows
    its first line only; the journal has the rest."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = scrub(lines[0]) if lines else ""
    return first if len(first) <= limit else first[:limit - 1].rstrip() + "…"


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {_scrub_value(k): _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub_value(v) for v in value]
    if isinstance(value, BaseException):
        return scrub(f"{type(value).__name__}: {value}")
    # Anything else is rendered as text here, so nothing reaches a renderer unscrubbed.
    return scrub(str(value))


def _scrub_event(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: redact secrets in every key and value of the event."""
    return {_scrub_value(k): _scrub_value(v) for k, v in event_dict.items()}


# -- configuration -------------------------------------------------------------------

_handler: logging.Handler | None = None
_configured = False


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def configure_logging(
    level: str = "info", fmt: str = "auto", stream: TextIO | None = None
) -> None:
    """Set up logging for the process; safe to call again (e.g. on reload).

    level: debug | info | warning | error | critical, for syncd's own events. Libraries'
        stdlib logging passes at WARNING or above (or ``level`` if that is higher).
    fmt: json | console | auto (console on a terminal, JSON lines otherwise).
    stream: where to write; default sys.stderr at call time.
    """
    global _handler, _configured  # noqa: PLW0603 (logging is process-wide state)
    level_no = LEVELS.get(level.lower())
    if level_no is None:
        raise ValueError(f"log level {level!r}: expected one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out = sys.stderr if stream is None else stream
    console = fmt == "console" or (fmt == "auto" and _is_tty(out))

    renderer: Processor
    if console:
        renderer = structlog.dev.ConsoleRenderer(colors=_is_tty(out))
    else:
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            _scrub_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        # Not cached: loggers created before a reconfiguration must follow it.
        cache_logger_on_first_use=False,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            timestamper,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _scrub_event,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(max(logging.WARNING, level_no))
    logging.captureWarnings(True)
    _handler = handler
    _configured = True


def get_logger(**bound: Any) -> FilteringBoundLogger:
    """A structlog logger with ``bound`` fields on every event.

    If logging was not configured yet, it is configured with the defaults first, so
    secret scrubbing is never bypassed.
    """
    if not _configured:
        configure_logging()
    return structlog.get_logger(**bound)


def reset_logging() -> None:
    """Undo `configure_logging` (for tests): structlog defaults, no syncd handler."""
    global _handler, _configured  # noqa: PLW0603
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler = None
    logging.getLogger().setLevel(logging.WARNING)
    logging.captureWarnings(False)
    structlog.reset_defaults()
    _configured = False


def tune_gc(young_every: int = 500_000) -> None:
    """Collect cyclic garbage less often: syncd allocates millions of short-lived rows and
    operations that form no cycles, and CPython's default (a collection every 700 allocations,
    each older-generation pass walking every live object) cost a third of a snapshot's time
    here. A young collection walks what is alive (a batch, the read-ahead) whatever the
    threshold: one every 500,000 allocations instead of 50,000 made a drain 8% faster (bench,
    three pairs of runs). `young_every`: allocations between two young collections (CPython's
    default: 700). What is alive now (modules, compiled mappings) is frozen out of the
    collections."""
    gc.freeze()
    gc.set_threshold(young_every, 20, 100)
