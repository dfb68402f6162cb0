"""Unit tests for syncd.source.checks.settings_problems, with fabricated server variables."""

from __future__ import annotations

import pytest

from syncd.source.checks import ServerInfo, settings_problems

MARIADB_OK = {"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL",
              "binlog_row_metadata": "FULL", "log_bin_compress": "OFF", "binlog_alter_two_phase": "OFF"}
MYSQL_OK = {"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL",
            "binlog_row_metadata": "FULL", "binlog_row_value_options": ""}


def mariadb(**changes: str | None) -> ServerInfo:
    return ServerInfo("10.11.6-MariaDB-0+deb12u1-log", True, _vars(MARIADB_OK, changes))


def mysql(**changes: str | None) -> ServerInfo:
    return ServerInfo("8.0.36", False, _vars(MYSQL_OK, changes))


def _vars(base: dict[str, str], changes: dict[str, str | None]) -> dict[str, str]:
    merged = {**base, **changes}
    return {k: v for k, v in merged.items() if v is not None}


class TestSettingsProblems:
    def test_good_mariadb(self) -> None:
        """A correctly configured MariaDB has no problems."""
        assert settings_problems(mariadb()) == []

    def test_good_mysql(self) -> None:
        """A correctly configured MySQL has no problems."""
        assert settings_problems(mysql()) == []

    @pytest.mark.parametrize(("variable", "actual", "wanted"), [
        ("binlog_format", "MIXED", "ROW"),
        ("binlog_row_image", "MINIMAL", "FULL"),
        ("log_bin_compress", "ON", "OFF"),
        ("binlog_alter_two_phase", "ON", "OFF"),
    ])
    def test_each_wrong_mariadb_variable(self, variable: str, actual: str, wanted: str) -> None:
        """One wrong variable gives one message naming it, the wanted value and both fixes."""
        (message,) = settings_problems(mariadb(**{variable: actual}))
        assert message.startswith(f"{variable} is {actual}, syncd needs {wanted} (")
        assert f"SET GLOBAL {variable} = '{wanted}'" in message
        assert f"{variable} = {wanted} under [mysqld] in my.cnf" in message

    @pytest.mark.parametrize(("variable", "actual", "wanted"), [
        ("binlog_format", "STATEMENT", "ROW"),
        ("binlog_row_image", "NOBLOB", "FULL"),
        ("binlog_row_value_options", "PARTIAL_JSON", "''"),
    ])
    def test_each_wrong_mysql_variable(self, variable: str, actual: str, wanted: str) -> None:
        """MySQL's variables are named with their wanted value and fix."""
        (message,) = settings_problems(mysql(**{variable: actual}))
        assert message.startswith(f"{variable} is {actual}, syncd needs {wanted} (")
        assert f"SET GLOBAL {variable} = '{wanted.strip(chr(39))}'" in message
        assert "my.cnf" in message

    def test_compressed_transactions_are_read(self) -> None:
        """MySQL's binlog_transaction_compression=ON is fine: syncd reads TRANSACTION_PAYLOAD events."""
        assert settings_problems(mysql(binlog_transaction_compression="ON")) == []

    def test_partial_json_names_the_empty_value(self) -> None:
        """binlog_row_value_options must be empty, shown as ''."""
        (message,) = settings_problems(mysql(binlog_row_value_options="PARTIAL_JSON"))
        assert message.startswith("binlog_row_value_options is PARTIAL_JSON, syncd needs '' (")
        assert "partial JSON" in message
        assert "SET GLOBAL binlog_row_value_options = ''" in message

    def test_every_problem_at_once(self) -> None:
        """Several wrong variables give one message each, in a fixed order."""
        problems = settings_problems(mariadb(binlog_format="MIXED", binlog_row_image="MINIMAL",
                                             log_bin_compress="ON"))
        named = [p.split(" ")[0] for p in problems]
        assert named == ["binlog_format", "binlog_row_image", "log_bin_compress"]

    def test_one_and_zero_are_on_and_off(self) -> None:
        """'1' reads as ON and '0' as OFF, in either the actual or the wanted value."""
        assert settings_problems(mariadb(log_bin="1", log_bin_compress="0", binlog_alter_two_phase="0")) == []
        (message,) = settings_problems(mariadb(log_bin_compress="1"))
        assert message.startswith("log_bin_compress is 1, syncd needs OFF")

    def test_case_does_not_matter(self) -> None:
        """Lower-case values are accepted."""
        assert settings_problems(mysql(binlog_format="row", binlog_row_image="full", log_bin="on")) == []

    def test_mysql_only_variables_are_ignored_on_mariadb(self) -> None:
        """MariaDB is not checked for MySQL's variables, even when they are reported wrong."""
        info = mariadb(binlog_transaction_compression="ON", binlog_row_value_options="PARTIAL_JSON")
        assert settings_problems(info) == []

    def test_mariadb_only_variables_are_ignored_on_mysql(self) -> None:
        """MySQL is not checked for MariaDB's variables."""
        assert settings_problems(mysql(log_bin_compress="ON", binlog_alter_two_phase="ON")) == []

    def test_missing_server_specific_variables_are_skipped(self) -> None:
        """A server too old to have a compression variable has nothing to turn off."""
        assert settings_problems(mariadb(binlog_alter_two_phase=None, log_bin_compress=None)) == []
        assert settings_problems(mysql(binlog_row_value_options=None)) == []

    @pytest.mark.parametrize("level", ["MINIMAL", "NO_LOG", None])
    def test_row_metadata_below_full_is_read_with_the_schema_history(self, level: str | None) -> None:
        """binlog_row_metadata MINIMAL or NO_LOG, or a server without it (MariaDB 10.4, MySQL 5.7),
        is no problem: the source runs on the schema history, and says so."""
        for info in (mariadb(binlog_row_metadata=level), ServerInfo("5.7.44-log", False, _vars(
                MYSQL_OK, {"binlog_row_metadata": level, "binlog_row_value_options": None}))):
            assert settings_problems(info) == []
            assert info.row_metadata == (level or "")
            assert info.schema_history is not None and "schema history" in info.schema_history
        assert mariadb().schema_history is None

    def test_binlog_off(self) -> None:
        """A server without a binary log is told to turn it on."""
        (message,) = settings_problems(mysql(log_bin="OFF"))
        assert message.startswith("log_bin is OFF, syncd needs ON (the binary log must be on)")
        assert "my.cnf" in message

    def test_binlog_off_is_not_fixed_at_runtime(self) -> None:
        """The fix for log_bin does not suggest SET GLOBAL, which cannot change it."""
        (message,) = settings_problems(mysql(log_bin="OFF"))
        assert "SET GLOBAL log_bin" not in message
        assert "restart" in message
