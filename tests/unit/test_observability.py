"""Log output format and secret scrubbing, captured from an in-memory stream."""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from syncd import observability
from syncd.observability import configure_logging, get_logger, register_secret, scrub, short_secret

SECRET = "Tr0ub4dor&3@x/y"


@pytest.fixture(autouse=True)
def clean_logging() -> Iterator[None]:
    observability.reset_logging()
    observability.clear_secrets()
    yield
    observability.reset_logging()
    observability.clear_secrets()


@pytest.fixture
def out() -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level="info", fmt="json", stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_have_event_level_timestamp_and_fields(out: io.StringIO) -> None:
    log = get_logger(source="shop")
    log.info("batch_committed", rows=10, tables=["orders"], lag_seconds=0.5)
    log.warning("source_reconnecting", attempt=2)
    log.debug("not_shown_at_info")

    first, second = lines(out)
    assert first["event"] == "batch_committed"
    assert first["level"] == "info"
    assert first["source"] == "shop"
    assert first["rows"] == 10
    assert first["tables"] == ["orders"]
    assert first["lag_seconds"] == 0.5
    stamp = datetime.fromisoformat(first["timestamp"])
    assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60
    assert first["timestamp"].endswith("Z")
    assert second["level"] == "warning"


def test_debug_level_shows_debug(out: io.StringIO) -> None:
    configure_logging(level="debug", fmt="json", stream=out)
    get_logger().debug("row_mapped", table="orders")
    assert lines(out)[-1]["event"] == "row_mapped"


def test_loggers_made_before_reconfiguration_follow_it() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(fmt="json", stream=first)
    log = get_logger()
    log.info("one")
    configure_logging(fmt="json", stream=second)
    log.info("two")
    assert [e["event"] for e in lines(first)] == ["one"]
    assert [e["event"] for e in lines(second)] == ["two"]


def test_exception_is_rendered_as_text(out: io.StringIO) -> None:
    log = get_logger()
    try:
        raise ValueError("bad row")
    except ValueError:
        log.exception("apply_failed", source="shop")
    (event,) = lines(out)
    assert event["level"] == "error"
    assert "Traceback" in event["exception"]
    assert "ValueError: bad row" in event["exception"]
    assert "exc_info" not in event


def test_registered_secret_never_appears(out: io.StringIO) -> None:
    register_secret(SECRET)
    log = get_logger(dsn_password=SECRET)
    log.info(f"event_with_{SECRET}", field=SECRET, text=f"pw is {SECRET}!")
    log.info("nested", data={"a": [SECRET, {"b": f"x{SECRET}x"}]}, pair=(1, SECRET))
    log.info("as_object", error=RuntimeError(f"login with {SECRET} failed"))
    try:
        raise ConnectionError(f"could not connect with password {SECRET!r}")
    except ConnectionError:
        log.exception("connect_failed")
    text = out.getvalue()
    assert SECRET not in text
    assert "Tr0ub4dor" not in text
    assert text.count("***") >= 7
    events = lines(out)
    assert events[2]["error"] == "RuntimeError: login with *** failed"
    assert "ConnectionError" in events[3]["exception"]


def test_encoded_forms_of_a_secret_are_scrubbed() -> None:
    register_secret(SECRET)
    assert scrub("postgresql://u:Tr0ub4dor%263%40x%2Fy@db/x") == "postgresql://u:***@db/x"
    assert scrub("user=u pw=Tr0ub4dor%263%40x%2Fy") == "user=u pw=***"
    assert scrub(json.dumps({"k": 'q"uote' + SECRET})) == '{"k": "q\\"uote***"}'
    register_secret('it\'s "quoted"\\')
    assert scrub(repr('it\'s "quoted"\\')) == "'***'"


def test_short_and_empty_secrets() -> None:
    register_secret("")
    register_secret(None)
    assert scrub("nothing to hide") == "nothing to hide"
    register_secret("ab")
    assert scrub("cab") == "cab"
    assert scrub("password is ab.") == "password is ***."
    assert scrub("user:ab@db") == "user:***@db"


def test_a_one_letter_password_leaves_logs_readable() -> None:
    """A short secret is hidden where it stands alone, never inside words, so logs stay
    readable and the redactions do not spell out what the password is."""
    register_secret("x")
    assert scrub("copy_text exported 5 rows") == "copy_text exported 5 rows"
    assert scrub("connect as syncd with 'x' failed") == "connect as syncd with '***' failed"
    assert short_secret("x") and short_secret("1234567") and not short_secret("12345678")
    assert not short_secret("") and not short_secret(None)


def test_a_long_secret_is_hidden_even_inside_other_text() -> None:
    register_secret("Tr0ub4dorSecret")
    assert scrub("xTr0ub4dorSecretx") == "x***x"


def test_longest_secret_wins() -> None:
    register_secret("abc")
    register_secret("abcdef")
    assert scrub("x abcdef x") == "x *** x"
    register_secret("abcdefghij")
    register_secret("abcdefghijkl")
    assert scrub("xabcdefghijklx") == "x***x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://syncd:hunter2@db:5432/shop", "postgresql://syncd:***@db:5432/shop"),
        ("mysql+pymysql://root:p@ss@10.0.0.5/x ok", "mysql+pymysql://root:***@10.0.0.5/x ok"),
        ("postgres://:only@db/x", "postgres://:***@db/x"),
        ("host=db user=u password=hunter2 dbname=x", "host=db user=u password=*** dbname=x"),
        ("password='two words' dbname=x", "password=*** dbname=x"),
        ("PGPASSWORD=hunter2", "PGPASSWORD=***"),
        ("SHOP_DB_PASSWORD = hunter2, next", "SHOP_DB_PASSWORD = ***, next"),
        ("?user=u&password=hunter2&ssl=1", "?user=u&password=***&ssl=1"),
        ("{'host': 'db', 'password': 'hunter2'}", "{'host': 'db', 'password': ***}"),
        ('{"passwd": "hun\\"ter2", "port": 1}', '{"passwd": ***, "port": 1}'),
        # unchanged: no password in these
        ("postgresql://syncd@db/shop", "postgresql://syncd@db/shop"),
        ("http://db:8080/path", "http://db:8080/path"),
        ("password_env=SHOP_DB_PASSWORD", "password_env=SHOP_DB_PASSWORD"),
        ("password_file=/etc/syncd/pw", "password_file=/etc/syncd/pw"),
        ("Access denied for user 'u'@'h' (using password: YES)",
         "Access denied for user 'u'@'h' (using password: YES)"),
    ],
)
def test_passwords_in_dsns_and_key_values(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_dsn_in_exception_is_scrubbed(out: io.StringIO) -> None:
    log = get_logger()
    try:
        raise RuntimeError("connection to postgresql://syncd:hunter2@db/shop failed")
    except RuntimeError:
        log.exception("sink_unavailable")
    assert "hunter2" not in out.getvalue()
    assert "postgresql://syncd:***@db/shop" in lines(out)[0]["exception"]


def test_stdlib_logging_is_routed_at_warning_and_scrubbed(out: io.StringIO) -> None:
    register_secret(SECRET)
    lib = logging.getLogger("pymysqlreplication.binlogstream")
    lib.info("chatty %s", "details")
    lib.warning("retrying with %s", SECRET)
    try:
        raise OSError(f"auth {SECRET}")
    except OSError:
        lib.exception("boom")
    assert SECRET not in out.getvalue()
    warning, error = lines(out)
    assert warning == {
        "event": "retrying with ***", "level": "warning",
        "logger": "pymysqlreplication.binlogstream", "timestamp": warning["timestamp"],
    }
    assert error["level"] == "error"
    assert "OSError: auth ***" in error["exception"]


def test_python_warnings_are_logged(out: io.StringIO) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        logging.captureWarnings(True)  # catch_warnings restored showwarning; re-route
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
    assert any("old API" in e["event"] for e in lines(out))


def test_console_format_is_readable_and_scrubbed() -> None:
    stream = io.StringIO()
    configure_logging(fmt="console", stream=stream)
    register_secret(SECRET)
    get_logger(source="shop").info("batch_committed", rows=3, pw=SECRET)
    text = stream.getvalue()
    assert "batch_committed" in text
    assert "source=shop" in text
    assert "rows=3" in text
    assert SECRET not in text
    assert "\x1b[" not in text  # no colours when the stream is not a terminal
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_auto_format_is_json_when_not_a_tty() -> None:
    stream = io.StringIO()
    configure_logging(fmt="auto", stream=stream)
    get_logger().info("started")
    assert lines(stream)[0]["event"] == "started"


def test_auto_format_is_console_on_a_tty() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    configure_logging(fmt="auto", stream=stream)
    get_logger().info("started")
    assert "started" in stream.getvalue()
    with pytest.raises(json.JSONDecodeError):
        json.loads(stream.getvalue().splitlines()[0])


def test_get_logger_configures_scrubbing_if_nobody_did(
    capsys: pytest.CaptureFixture[str],
) -> None:
    register_secret(SECRET)
    get_logger().warning("unconfigured", pw=SECRET)
    err = capsys.readouterr().err
    assert "unconfigured" in err
    assert SECRET not in err


@pytest.mark.parametrize(("level", "fmt"), [("loud", "json"), ("info", "xml")])
def test_bad_level_or_format(level: str, fmt: str) -> None:
    with pytest.raises(ValueError, match="expected one of"):
        configure_logging(level=level, fmt=fmt, stream=io.StringIO())


def test_one_line_is_the_first_line_scrubbed_and_bounded() -> None:
    register_secret(SECRET)
    text = f"\n  source shop: cannot connect with {SECRET}\nTraceback (most recent call last):\n  File ..."
    assert observability.one_line(text) == "source shop: cannot connect with ***"
    assert observability.one_line("x" * 300, 20) == "x" * 19 + "…"
    assert observability.one_line("") == ""
