"""System variables with MySQL 8.4's names, scopes and values.

Defaults are MySQL 8.4's (reference manual 8.4, "Server System Variables" and "Binary
Logging Options and Variables") except where the double stands for a source configured the
way syncd's README asks: ``binlog_row_metadata=FULL`` (8.4's default is MINIMAL) and GTIDs on
(``gtid_mode=ON``, ``enforce_gtid_consistency=ON``; 8.4's defaults are OFF). Tests change
any of them with ``MySQLDouble.set_global``; ``gtid_executed`` and ``gtid_purged`` are read
from the binlog.

Variables MySQL removed do not exist: ``SELECT @@expire_logs_days`` fails with 1193 "Unknown
system variable" and SHOW VARIABLES does not list them. Removed by 8.4 (MySQL Server Version
Reference, "Option and Variable Changes for MySQL 8.2/8.3/8.4"): expire_logs_days (8.2.0),
log_bin_use_v1_row_events (8.3.0), binlog_transaction_dependency_tracking,
default_authentication_plugin, have_openssl, have_ssl and avoid_temporal_upgrade (8.4.0).
MariaDB-only variables (log_bin_compress, binlog_alter_two_phase, max_binlog_total_size,
binlog_space_limit, ...) are unknown too, as on a real MySQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GLOBAL, SESSION, BOTH = "global", "session", "both"


@dataclass(frozen=True)
class Spec:
    scope: str
    kind: str = "str"
    """"str", "int", or "bool" (SHOW prints ON/OFF, SELECT @@ gives 1/0)."""


SPECS: dict[str, Spec] = {
    "version": Spec(GLOBAL), "version_comment": Spec(GLOBAL), "version_compile_os": Spec(GLOBAL),
    "version_compile_machine": Spec(GLOBAL), "server_id": Spec(GLOBAL, "int"),
    "server_uuid": Spec(GLOBAL), "port": Spec(GLOBAL, "int"), "hostname": Spec(GLOBAL),
    "log_bin": Spec(GLOBAL, "bool"), "log_bin_basename": Spec(GLOBAL), "log_bin_index": Spec(GLOBAL),
    "log_replica_updates": Spec(GLOBAL, "bool"), "binlog_format": Spec(BOTH),
    "binlog_row_image": Spec(BOTH), "binlog_row_metadata": Spec(GLOBAL),
    "binlog_row_value_options": Spec(BOTH), "binlog_rows_query_log_events": Spec(BOTH, "bool"),
    "binlog_transaction_compression": Spec(BOTH, "bool"),
    "binlog_transaction_compression_level_zstd": Spec(BOTH, "int"),
    "binlog_checksum": Spec(GLOBAL), "binlog_expire_logs_seconds": Spec(GLOBAL, "int"),
    "binlog_expire_logs_auto_purge": Spec(GLOBAL, "bool"), "max_binlog_size": Spec(GLOBAL, "int"),
    "binlog_row_event_max_size": Spec(GLOBAL, "int"), "sync_binlog": Spec(GLOBAL, "int"),
    "gtid_mode": Spec(GLOBAL), "enforce_gtid_consistency": Spec(GLOBAL),
    "gtid_executed": Spec(GLOBAL), "gtid_purged": Spec(GLOBAL), "gtid_next": Spec(SESSION),
    "source_verify_checksum": Spec(GLOBAL, "bool"), "time_zone": Spec(BOTH),
    "system_time_zone": Spec(GLOBAL), "sql_mode": Spec(BOTH), "autocommit": Spec(BOTH, "bool"),
    "transaction_isolation": Spec(BOTH), "transaction_read_only": Spec(BOTH, "bool"),
    "character_set_client": Spec(BOTH), "character_set_connection": Spec(BOTH),
    "character_set_results": Spec(BOTH), "character_set_server": Spec(BOTH),
    "character_set_database": Spec(BOTH), "character_set_system": Spec(GLOBAL),
    "character_set_filesystem": Spec(BOTH), "collation_connection": Spec(BOTH),
    "collation_server": Spec(BOTH), "collation_database": Spec(BOTH),
    "default_collation_for_utf8mb4": Spec(BOTH), "lower_case_table_names": Spec(GLOBAL, "int"),
    "max_allowed_packet": Spec(BOTH, "int"), "net_write_timeout": Spec(BOTH, "int"),
    "net_read_timeout": Spec(BOTH, "int"), "wait_timeout": Spec(BOTH, "int"),
    "interactive_timeout": Spec(BOTH, "int"), "group_concat_max_len": Spec(BOTH, "int"),
    "require_secure_transport": Spec(GLOBAL, "bool"),
    "mysql_native_password": Spec(GLOBAL, "bool"), "authentication_policy": Spec(GLOBAL),
    "read_only": Spec(GLOBAL, "bool"), "super_read_only": Spec(GLOBAL, "bool"),
    "innodb_version": Spec(GLOBAL), "tls_version": Spec(GLOBAL), "ssl_ca": Spec(GLOBAL),
    "max_connections": Spec(GLOBAL, "int"), "explicit_defaults_for_timestamp": Spec(BOTH, "bool"),
    "foreign_key_checks": Spec(BOTH, "bool"), "unique_checks": Spec(BOTH, "bool"),
    "sql_log_bin": Spec(SESSION, "bool"), "session_track_gtids": Spec(BOTH),
}

REMOVED = frozenset({
    "expire_logs_days", "log_bin_use_v1_row_events", "binlog_transaction_dependency_tracking",
    "default_authentication_plugin", "have_openssl", "have_ssl", "avoid_temporal_upgrade",
})


def defaults(version: str, server_id: int, server_uuid: str, port: int) -> dict[str, str]:
    return {
        "version": version, "version_comment": "MySQL Community Server - GPL",
        "version_compile_os": "Linux", "version_compile_machine": "x86_64",
        "server_id": str(server_id), "server_uuid": server_uuid, "port": str(port),
        "hostname": "mysql-double", "log_bin": "ON", "log_bin_basename": "/var/lib/mysql/binlog",
        "log_bin_index": "/var/lib/mysql/binlog.index", "log_replica_updates": "ON",
        "binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL",
        "binlog_row_value_options": "", "binlog_rows_query_log_events": "OFF",
        "binlog_transaction_compression": "OFF", "binlog_transaction_compression_level_zstd": "3",
        "binlog_checksum": "CRC32", "binlog_expire_logs_seconds": "2592000",
        "binlog_expire_logs_auto_purge": "ON", "max_binlog_size": "1073741824",
        "binlog_row_event_max_size": "8192", "sync_binlog": "1", "gtid_mode": "ON",
        "enforce_gtid_consistency": "ON", "gtid_next": "AUTOMATIC", "source_verify_checksum": "OFF",
        "time_zone": "SYSTEM", "system_time_zone": "UTC",
        "sql_mode": "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
                    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION",
        "autocommit": "ON", "transaction_isolation": "REPEATABLE-READ", "transaction_read_only": "OFF",
        "character_set_client": "utf8mb4", "character_set_connection": "utf8mb4",
        "character_set_results": "utf8mb4", "character_set_server": "utf8mb4",
        "character_set_database": "utf8mb4", "character_set_system": "utf8mb3",
        "character_set_filesystem": "binary", "collation_connection": "utf8mb4_0900_ai_ci",
        "collation_server": "utf8mb4_0900_ai_ci", "collation_database": "utf8mb4_0900_ai_ci",
        "default_collation_for_utf8mb4": "utf8mb4_0900_ai_ci", "lower_case_table_names": "0",
        "max_allowed_packet": "67108864", "net_write_timeout": "60", "net_read_timeout": "30",
        "wait_timeout": "28800", "interactive_timeout": "28800", "require_secure_transport": "OFF",
        "mysql_native_password": "OFF", "authentication_policy": "*,,", "read_only": "OFF",
        "super_read_only": "OFF", "innodb_version": version, "tls_version": "TLSv1.2,TLSv1.3",
        "ssl_ca": "ca.pem", "max_connections": "151", "explicit_defaults_for_timestamp": "ON",
        "foreign_key_checks": "ON", "unique_checks": "ON", "sql_log_bin": "ON",
        "session_track_gtids": "OFF",
    }


class VariableError(Exception):
    def __init__(self, code: int, state: str, message: str) -> None:
        super().__init__(message)
        self.code, self.state, self.message = code, state, message


def spec(name: str) -> Spec:
    found = SPECS.get(name.lower())
    if found is None:
        raise VariableError(1193, "HY000", f"Unknown system variable '{name.lower()}'")
    return found


def normalise(name: str, value: str) -> str:
    """A value as SHOW VARIABLES prints it (booleans ON/OFF, names upper-cased)."""
    kind = spec(name).kind
    if kind == "bool":
        return "ON" if str(value).upper() in ("1", "ON", "TRUE") else "OFF"
    if name.lower() in ("binlog_format", "binlog_row_image", "binlog_row_metadata", "binlog_checksum",
                        "gtid_mode", "enforce_gtid_consistency"):
        return str(value).upper()
    return str(value)


def select_value(name: str, shown: str) -> int | str:
    """What ``SELECT @@name`` returns for a value SHOW VARIABLES prints as ``shown``."""
    kind = spec(name).kind
    if kind == "bool":
        return 1 if shown == "ON" else 0
    if kind == "int":
        return int(shown)
    return shown


def like(pattern: str) -> re.Pattern[str]:
    """SQL LIKE (case-insensitive, as SHOW VARIABLES compares names) as a regular expression."""
    out, escaped = "", False
    for char in pattern:
        if escaped:
            out += re.escape(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            out += ".*"
        elif char == "_":
            out += "."
        else:
            out += re.escape(char)
    return re.compile(f"^{out}$", re.IGNORECASE | re.DOTALL)
