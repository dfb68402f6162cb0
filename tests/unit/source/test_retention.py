"""Binlog retention headroom: the pure computation (the I/O is covered by test_service.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from syncd.source.retention import (
    BinlogFile,
    Expiry,
    Headroom,
    binlog_number,
    expiry_from_variables,
    file_to_probe,
    format_duration,
    missing_file_message,
    retention_headroom,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
HOUR = 3600.0
DAY = 86400.0
FILES = [BinlogFile("mysql-bin.000007", 1000), BinlogFile("mysql-bin.000008", 2000),
         BinlogFile("mysql-bin.000009", 500)]


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


# -- server settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(("variables", "expected"), [
    ({}, Expiry(None, None)),                                                   # nothing: never
    ({"binlog_expire_logs_seconds": "0", "expire_logs_days": "0.000000"}, Expiry(None, None)),
    ({"binlog_expire_logs_seconds": "2592000"}, Expiry(2592000.0, None)),       # MySQL 8 default
    ({"expire_logs_days": "7"}, Expiry(7 * DAY, None)),                         # MariaDB 10.5
    ({"expire_logs_days": "0.500000"}, Expiry(DAY / 2, None)),                  # fractional, 10.6+
    # both set (MariaDB 10.6+ keeps them in step; MySQL 8.0 lets seconds win)
    ({"binlog_expire_logs_seconds": "3600", "expire_logs_days": "30"}, Expiry(HOUR, None)),
    ({"binlog_expire_logs_seconds": "0", "expire_logs_days": "2"}, Expiry(2 * DAY, None)),
    # MySQL 8.0.29+: automatic purging switched off altogether
    ({"binlog_expire_logs_seconds": "3600", "binlog_expire_logs_auto_purge": "OFF"}, Expiry(None, None)),
    ({"binlog_expire_logs_seconds": "3600", "binlog_expire_logs_auto_purge": "ON"}, Expiry(HOUR, None)),
    # MariaDB 11.4+: a size limit, alone or with an age
    ({"max_binlog_total_size": "1073741824"}, Expiry(None, 1073741824)),
    ({"binlog_space_limit": "5000", "expire_logs_days": "1"}, Expiry(DAY, 5000)),
    ({"binlog_expire_logs_seconds": "garbage"}, Expiry(None, None)),
])
def test_expiry_from_variables(variables: dict[str, str], expected: Expiry) -> None:
    assert expiry_from_variables(variables) == expected


# -- headroom by age ---------------------------------------------------------------------------


def test_unlimited_when_the_server_never_purges() -> None:
    headroom = retention_headroom(FILES, "mysql-bin.000007", Expiry(None, None), {}, NOW)
    assert headroom.kind == "unlimited" and headroom.seconds is None
    assert headroom.metric_value == math.inf
    assert not headroom.is_low(DAY)


def test_age_counts_from_when_the_next_file_started() -> None:
    """000007 was closed when 000008 began, 5 h ago; files live 1 day: 19 h left."""
    started = {"mysql-bin.000008": ago(5 * HOUR)}
    headroom = retention_headroom(FILES, "mysql-bin.000007", Expiry(DAY, None), started, NOW)
    assert headroom.kind == "limited" and headroom.limited_by == "age"
    assert headroom.seconds == pytest.approx(19 * HOUR)
    assert not headroom.at_least
    assert headroom.is_low(DAY) and not headroom.is_low(HOUR)
    assert headroom.metric_value == pytest.approx(19 * HOUR)
    assert headroom.detail == ("mysql-bin.000007 may be deleted in 19h "
                               "(files expire 1d after they are closed)")


def test_the_file_being_written_has_at_least_the_full_expiry() -> None:
    headroom = retention_headroom(FILES, "mysql-bin.000009", Expiry(DAY, None), {}, NOW)
    assert (headroom.kind, headroom.seconds, headroom.at_least) == ("limited", DAY, True)
    assert "still being written" in headroom.detail


def test_overdue_file_has_negative_headroom() -> None:
    started = {"mysql-bin.000008": ago(DAY + HOUR)}
    headroom = retention_headroom(FILES, "mysql-bin.000007", Expiry(DAY, None), started, NOW)
    assert headroom.seconds == pytest.approx(-HOUR)
    assert headroom.is_low(0)
    assert "overdue" in headroom.detail


def test_unknown_when_the_next_file_start_is_not_known() -> None:
    headroom = retention_headroom(FILES, "mysql-bin.000007", Expiry(DAY, None), {}, NOW)
    assert headroom.kind == "unknown" and headroom.seconds is None
    assert math.isnan(headroom.metric_value)
    assert not headroom.is_low(DAY)
    assert "mysql-bin.000008" in headroom.detail


# -- purged -----------------------------------------------------------------------------------


def test_purged_file_is_reported_with_the_oldest_kept() -> None:
    headroom = retention_headroom(FILES, "mysql-bin.000003", Expiry(DAY, None), {}, NOW)
    assert headroom.kind == "purged" and headroom.seconds == 0.0
    assert headroom.is_low(0) and headroom.metric_value == 0.0
    assert headroom.detail == ("binlog file mysql-bin.000003 is no longer on the server (oldest kept: "
                               "mysql-bin.000007); it was purged before syncd had read past it")


def test_purged_even_when_the_server_never_expires_files() -> None:
    """PURGE BINARY LOGS by hand, or RESET MASTER, removes files whatever the expiry."""
    assert retention_headroom(FILES, "mysql-bin.000001", Expiry(None, None), {}, NOW).kind == "purged"


def test_a_checkpoint_newer_than_the_newest_file_means_a_reset_or_another_server() -> None:
    message = missing_file_message(FILES, "mysql-bin.000042")
    assert "newer than the newest file on the server (mysql-bin.000009)" in message
    assert "RESET MASTER" in message
    assert "SHOW BINARY LOGS is empty" in missing_file_message([], "mysql-bin.000001")


# -- headroom by size (MariaDB max_binlog_total_size) -------------------------------------------


def test_size_limit_uses_the_write_rate() -> None:
    """3500 bytes kept from 000007 on, limit 4500: 1000 bytes left. 2500 bytes were written since
    000008 began 1 h ago: 1000 bytes take 24 min."""
    started = {"mysql-bin.000008": ago(HOUR)}
    headroom = retention_headroom(FILES, "mysql-bin.000007", Expiry(None, 4500), started, NOW)
    assert headroom.kind == "limited" and headroom.limited_by == "size"
    assert headroom.seconds == pytest.approx(HOUR * 1000 / 2500)
    assert "at most 4500 bytes" in headroom.detail


def test_the_rule_that_deletes_first_wins() -> None:
    started = {"mysql-bin.000008": ago(HOUR)}
    by_age = retention_headroom(FILES, "mysql-bin.000007", Expiry(2 * HOUR, 1_000_000), started, NOW)
    assert by_age.limited_by == "age" and by_age.seconds == pytest.approx(HOUR)
    by_size = retention_headroom(FILES, "mysql-bin.000007", Expiry(30 * DAY, 4500), started, NOW)
    assert by_size.limited_by == "size"


def test_size_limit_already_exceeded_means_no_headroom() -> None:
    started = {"mysql-bin.000008": ago(HOUR)}
    headroom = retention_headroom(FILES, "mysql-bin.000007", Expiry(None, 3000), started, NOW)
    assert headroom.seconds == 0.0 and headroom.is_low(1)


def test_size_limit_without_writes_never_fills() -> None:
    files = [BinlogFile("b.000001", 100), BinlogFile("b.000002", 0)]
    headroom = retention_headroom(files, "b.000001", Expiry(None, 1000), {"b.000002": ago(HOUR)}, NOW)
    assert headroom.kind == "unlimited"


def test_size_limit_without_any_start_time_is_unknown() -> None:
    headroom = retention_headroom(FILES, "mysql-bin.000007", Expiry(None, 10_000), {}, NOW)
    assert headroom.kind == "unknown"


# -- what to ask the server ---------------------------------------------------------------------


def test_file_to_probe() -> None:
    assert file_to_probe(FILES, "mysql-bin.000007", Expiry(DAY, None)) == "mysql-bin.000008"
    assert file_to_probe(FILES, "mysql-bin.000009", Expiry(DAY, None)) is None  # full expiry left
    assert file_to_probe(FILES, "mysql-bin.000009", Expiry(None, 10)) == "mysql-bin.000009"
    assert file_to_probe(FILES, "mysql-bin.000007", Expiry(None, None)) is None
    assert file_to_probe(FILES, "mysql-bin.000001", Expiry(DAY, None)) is None  # purged


def test_binlog_number() -> None:
    assert binlog_number("mysql-bin.000123") == 123
    assert binlog_number("host-relay.bin.000002") == 2
    assert binlog_number("weird") is None


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "unlimited"), (math.inf, "unlimited"), (math.nan, "unknown"), (0, "0s"), (42.9, "42s"),
    (60, "1m"), (90, "1m 30s"), (3600, "1h"), (3660, "1h 1m"), (86400, "1d"), (93784, "1d 2h"),
    (-3600, "-1h"),
])
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_headroom_is_low_only_when_limited_below_the_threshold() -> None:
    assert Headroom("f", "limited", 10.0).is_low(11)
    assert not Headroom("f", "limited", 10.0).is_low(10)
    assert not Headroom("f", "unknown").is_low(DAY)
    assert Headroom("f", "purged", 0.0).is_low(0)
