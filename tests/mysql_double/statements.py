"""COM_QUERY: which statements the double answers, which it forwards, which it refuses.

Answered by the double (server identity, variables, binlog, replication):
  SELECT of @@variables, @user_variables, VERSION(), DATABASE(), CONNECTION_ID();
  SHOW [GLOBAL|SESSION] VARIABLES [LIKE ... | WHERE Variable_name IN (...) / = / LIKE];
  SHOW [GLOBAL|SESSION] STATUS [LIKE ...] (MySQL has no binlog_snapshot_* status: none);
  SHOW BINARY LOG STATUS, SHOW BINARY LOGS, SHOW REPLICAS, SHOW BINLOG EVENTS;
  RESET BINARY LOGS AND GTIDS, PURGE BINARY LOGS TO/BEFORE, FLUSH BINARY LOGS/LOGS,
  FLUSH PRIVILEGES (empties the caching_sha2_password cache);
  SET of user variables (``SET @master_binlog_checksum = @@global.binlog_checksum``,
  ``@master_heartbeat_period``, ``@source_*``, ``@slave_uuid``/``@replica_uuid``, ...),
  SET GLOBAL, and session variables MariaDB does not know.
Forwarded to the backing MariaDB (when one is given), replies relayed unchanged: every
  other SELECT (tables, information_schema), SHOW CREATE/COLUMNS/INDEX/TABLES/DATABASES/
  WARNINGS, DESCRIBE, EXPLAIN, START TRANSACTION [WITH CONSISTENT SNAPSHOT] [READ ONLY],
  BEGIN, COMMIT, ROLLBACK, SET NAMES / TRANSACTION / time_zone / sql_mode / autocommit /
  character sets (also recorded by the double), USE.
Refused with error 1064 (42000) as MySQL 8.4 refuses them -- the statements 8.4 removed
  (release notes 8.4.0, "SQL statements removed"; reference manual 8.4, e.g. "SHOW MASTER
  STATUS Statement (no longer supported)"): SHOW MASTER STATUS, SHOW MASTER LOGS, SHOW SLAVE
  STATUS, SHOW SLAVE HOSTS, START SLAVE, STOP SLAVE, RESET SLAVE, CHANGE MASTER TO, RESET
  MASTER, PURGE MASTER LOGS. The message names the text from the first word the parser
  rejects: "... near 'MASTER STATUS' at line 1".
Forwarded statements are MariaDB's to answer, so the MySQL dialect is not checked, except
  for MariaDB-only functions syncd is known to call: CRC32C() (MariaDB 10.8+; MySQL 8.4 has
  none) fails with MySQL's 1305 "FUNCTION db.CRC32C does not exist".
Anything else (writes, DDL, a data statement without a backing database) fails loudly with
  error 1235 naming the statement: the double never returns an empty answer it made up.
"""

from __future__ import annotations

import datetime
import re
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from tests.mysql_double import binlog_events as ev
from tests.mysql_double import variables as sysvars
from tests.mysql_double import wire
from tests.mysql_double.binlog_events import EVENT_NAMES
from tests.mysql_double.gtid import GtidSet
from tests.mysql_double.wire import ColumnDef

if TYPE_CHECKING:
    from tests.mysql_double.binlog import BinlogFile
    from tests.mysql_double.server import Session

Handler = Callable[["Session", re.Match[str]], None]

_FLAGS = re.IGNORECASE | re.DOTALL

REMOVED_IN_84 = [re.compile(p, _FLAGS) for p in (
    r"^\s*SHOW\s+(MASTER\s+(?:STATUS|LOGS)\b.*)$",
    r"^\s*SHOW\s+(SLAVE\s+(?:STATUS|HOSTS)\b.*)$",
    r"^\s*(?:START|STOP|RESET)\s+(SLAVE\b.*)$",
    r"^\s*CHANGE\s+(MASTER\s+TO\b.*)$",
    r"^\s*RESET\s+(MASTER\b.*)$",
    r"^\s*PURGE\s+(MASTER\s+LOGS\b.*)$",
)]

FORWARDED = re.compile(
    r"^\s*(SELECT\b|WITH\b|\(|SHOW\s+(CREATE|COLUMNS|FULL|FIELDS|INDEX|INDEXES|KEYS|TABLES|"
    r"TABLE\s+STATUS|DATABASES|SCHEMAS|WARNINGS|ERRORS|COLLATION|CHARACTER\s+SET)\b|"
    r"DESCRIBE\b|DESC\b|EXPLAIN\b|START\s+TRANSACTION\b|BEGIN\b|COMMIT\b|ROLLBACK\b|USE\b)", _FLAGS)

FORWARDED_SESSION_VARIABLES = {
    "time_zone", "sql_mode", "autocommit", "transaction_isolation", "transaction_read_only",
    "character_set_client", "character_set_connection", "character_set_results",
    "collation_connection", "foreign_key_checks", "unique_checks", "net_read_timeout",
    "net_write_timeout", "wait_timeout", "interactive_timeout", "max_allowed_packet",
    "group_concat_max_len",
}


MARIADB_ONLY_FUNCTION = re.compile(r"\b(CRC32C)\s*\(", re.IGNORECASE)


def _no_such_function(database: str | None, name: str) -> tuple[int, str, str]:
    if database is None:
        return 1046, "3D000", "No database selected"
    return 1305, "42000", f"FUNCTION {database}.{name} does not exist"


def syntax_error(near: str) -> tuple[int, str, str]:
    return (1064, "42000", "You have an error in your SQL syntax; check the manual that corresponds "
            f"to your MySQL server version for the right syntax to use near '{near[:80]}' at line 1")


def not_supported(sql: str, why: str) -> tuple[int, str, str]:
    return 1235, "42000", f"This version of MySQL doesn't yet support '{sql[:200]}' ({why})"


def execute(session: Session, sql: str) -> None:
    """Answer, forward or refuse one COM_QUERY statement."""
    statement = sql.strip().rstrip(";").strip()
    for pattern in REMOVED_IN_84:
        match = pattern.match(statement)
        if match:
            session.error(*syntax_error(match.group(1)))
            return
    for pattern, handler in HANDLERS:
        match = pattern.match(statement)
        if match:
            handler(session, match)
            return
    if FORWARDED.match(statement):
        missing = MARIADB_ONLY_FUNCTION.search(statement)
        if missing:
            session.error(*_no_such_function(session.database, missing.group(1)))
            return
        _forward(session, statement)
        return
    session.error(*not_supported(statement, "the syncd MySQL test double neither answers nor forwards "
                                 "it; write data to the backing database and append binlog events "
                                 "with the builder"))


def _forward(session: Session, statement: str) -> None:
    if not session.forward(statement):
        session.error(*not_supported(statement, "the syncd MySQL test double has no backing database "
                                     "to forward it to"))


# -- SELECT of server values ----------------------------------------------------------------------

_ITEM = r"(?:@@(?:global\.|session\.|local\.)?\w+|@\w+|@'[^']*'|VERSION\(\)|DATABASE\(\)|CONNECTION_ID\(\))"
_SELECT_ITEMS = re.compile(rf"^\s*SELECT\s+({_ITEM}(?:\s+AS\s+\w+)?(?:\s*,\s*{_ITEM}(?:\s+AS\s+\w+)?)*)\s*$",
                           _FLAGS)
_ONE_ITEM = re.compile(rf"\s*({_ITEM})(?:\s+AS\s+(\w+))?\s*", _FLAGS)


def _select_items(session: Session, match: re.Match[str]) -> None:
    columns, values = [], []
    for item in _split_commas(match.group(1)):
        found = _ONE_ITEM.fullmatch(item)
        assert found is not None
        expression, alias = found.group(1), found.group(2)
        try:
            value = _item_value(session, expression)
        except sysvars.VariableError as exc:
            session.error(exc.code, exc.state, exc.message)
            return
        kind = wire.TYPE_LONGLONG if isinstance(value, int) else wire.TYPE_VAR_STRING
        columns.append(ColumnDef(alias or expression, kind))
        values.append(value)
    session.rows(columns, [values])


def _item_value(session: Session, expression: str) -> int | str | None:
    upper = expression.upper()
    if upper == "VERSION()":
        return session.double.global_value("version")
    if upper == "DATABASE()":
        return session.database
    if upper == "CONNECTION_ID()":
        return session.connection_id
    if expression.startswith("@@"):
        return session.select_variable(expression[2:])
    value = session.user_vars.get(expression[1:].strip("'").lower())
    return value if value is None or isinstance(value, int) else str(value)


# -- SHOW VARIABLES / STATUS ---------------------------------------------------------------------------

_SHOW_VARIABLES = re.compile(
    r"^\s*SHOW\s+(?:(GLOBAL|SESSION|LOCAL)\s+)?VARIABLES(?:\s+(LIKE|WHERE)\s+(.*))?$", _FLAGS)
_WHERE_NAME = re.compile(r"^\s*Variable_name\s*(=|LIKE|IN)\s*(.*)$", _FLAGS)
_QUOTED = re.compile(r"'((?:[^'\\]|\\.|'')*)'", re.DOTALL)


def _show_variables(session: Session, match: re.Match[str]) -> None:
    scope = (match.group(1) or "SESSION").upper()
    wanted = _name_filter(match.group(2), match.group(3))
    if wanted is None:
        session.error(*not_supported(match.group(0), "only LIKE and WHERE Variable_name = / IN / LIKE"))
        return
    rows = [(name, value) for name, value in session.all_variables(scope == "GLOBAL") if wanted(name)]
    session.rows([ColumnDef("Variable_name", length=256), ColumnDef("Value", length=4096)], rows)


def _name_filter(kind: str | None, condition: str | None) -> Callable[[str], bool] | None:
    if kind is None:
        return lambda _name: True
    if kind.upper() == "LIKE":
        patterns = [sysvars.like(_unquote(condition or ""))]
        return lambda name: patterns[0].match(name) is not None
    where = _WHERE_NAME.match(condition or "")
    if where is None:
        return None
    operator, rest = where.group(1).upper(), where.group(2)
    names = [_unquote(f"'{q}'") for q in _QUOTED.findall(rest)]
    if operator == "LIKE":
        pattern = sysvars.like(names[0] if names else "")
        return lambda name: pattern.match(name) is not None
    lowered = {n.lower() for n in names}
    return lambda name: name.lower() in lowered


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1].replace("''", "'").replace("\\\\", "\\")
    return text


_SHOW_STATUS = re.compile(r"^\s*SHOW\s+(?:(GLOBAL|SESSION|LOCAL)\s+)?STATUS(?:\s+LIKE\s+(.*))?$", _FLAGS)


def _show_status(session: Session, match: re.Match[str]) -> None:
    pattern = sysvars.like(_unquote(match.group(2))) if match.group(2) else None
    rows = [(k, v) for k, v in session.double.status_variables().items()
            if pattern is None or pattern.match(k)]
    session.rows([ColumnDef("Variable_name", length=256), ColumnDef("Value", length=4096)], rows)


# -- binary log statements -------------------------------------------------------------------------


def _show_binary_log_status(session: Session, _match: re.Match[str]) -> None:
    name, position = session.double.binlog.position()
    executed = session.double.binlog.executed.text()
    session.rows([ColumnDef("File"), ColumnDef("Position", wire.TYPE_LONGLONG, 20, wire.BINARY_COLLATION),
                  ColumnDef("Binlog_Do_DB"), ColumnDef("Binlog_Ignore_DB"), ColumnDef("Executed_Gtid_Set")],
                 [(name, position, "", "", executed)])


def _show_binary_logs(session: Session, _match: re.Match[str]) -> None:
    binlog = session.double.binlog
    with binlog.changed:
        rows = [(f.name, f.size, "No") for f in binlog.files]
    size = ColumnDef("File_size", wire.TYPE_LONGLONG, 20, wire.BINARY_COLLATION)
    session.rows([ColumnDef("Log_name"), size, ColumnDef("Encrypted")], rows)


def _show_replicas(session: Session, _match: re.Match[str]) -> None:
    rows = [(r.server_id, r.host, r.port, session.double.server_id, r.uuid)
            for r in session.double.replicas()]
    session.rows([ColumnDef("Server_Id", wire.TYPE_LONGLONG), ColumnDef("Host"),
                  ColumnDef("Port", wire.TYPE_LONGLONG), ColumnDef("Source_Id", wire.TYPE_LONGLONG),
                  ColumnDef("Replica_UUID")], rows)


_SHOW_BINLOG_EVENTS = re.compile(
    r"^\s*SHOW\s+BINLOG\s+EVENTS(?:\s+IN\s+'([^']*)')?(?:\s+FROM\s+(\d+))?"
    r"(?:\s+LIMIT\s+(?:(\d+)\s*,\s*)?(\d+))?\s*$", _FLAGS)


def _show_binlog_events(session: Session, match: re.Match[str]) -> None:
    binlog = session.double.binlog
    with binlog.changed:
        binlog_file = binlog.find(match.group(1)) if match.group(1) else binlog.files[0]
        if binlog_file is None:
            session.error(1220, "HY000", "Error when executing command SHOW BINLOG EVENTS: "
                          "Could not find target log")
            return
        start = int(match.group(2) or 4)
        rows = [_event_row(binlog_file, o) for o in binlog_file.offsets if o >= start]
    skip, limit = int(match.group(3) or 0), match.group(4)
    rows = rows[skip:skip + int(limit)] if limit else rows[skip:]
    session.rows([ColumnDef("Log_name"), ColumnDef("Pos", wire.TYPE_LONGLONG), ColumnDef("Event_type"),
                  ColumnDef("Server_id", wire.TYPE_LONGLONG), ColumnDef("End_log_pos", wire.TYPE_LONGLONG),
                  ColumnDef("Info")], rows)


def _event_row(binlog_file: BinlogFile, offset: int) -> tuple:
    data = binlog_file.data
    kind = data[offset + 4]
    server_id, size, end = struct.unpack_from("<III", data, offset + 5)
    body = bytes(data[offset + 19:offset + size - (4 if binlog_file.checksum else 0)])
    return (binlog_file.name, offset, EVENT_NAMES.get(kind, f"Unknown({kind})"), server_id, end,
            _event_info(binlog_file, offset, kind, body))


def _query_info(body: bytes) -> str:
    db_length, status_length = body[8], struct.unpack_from("<H", body, 11)[0]
    return body[13 + status_length + db_length + 1:].decode("utf-8", "replace")


def _table_map_info(body: bytes) -> str:
    schema_end = 8 + 1 + body[8]
    name = body[schema_end + 2:schema_end + 2 + body[schema_end + 1]].decode()
    return f"table_id: {int.from_bytes(body[:6], 'little')} ({body[9:schema_end].decode()}.{name})"


_INFO: dict[int, Callable[[bytes], str]] = {
    ev.QUERY_EVENT: _query_info,
    ev.XID_EVENT: lambda body: f"COMMIT /* xid={struct.unpack_from('<Q', body)[0]} */",
    ev.ROTATE_EVENT: lambda body: f"{body[8:].decode()};pos={struct.unpack_from('<Q', body)[0]}",
    ev.FORMAT_DESCRIPTION_EVENT:
        lambda body: f"Server ver: {body[2:52].rstrip(bytes(1)).decode()}, Binlog ver: 4",
    ev.PREVIOUS_GTIDS_LOG_EVENT: lambda body: GtidSet.decode(body).text(),
    ev.TABLE_MAP_EVENT: _table_map_info,
}


def _event_info(binlog_file: BinlogFile, offset: int, kind: int, body: bytes) -> str:
    """SHOW BINLOG EVENTS' Info column for the common events (empty for the others)."""
    if offset in binlog_file.transactions:
        gtid = binlog_file.transactions[offset]
        return f"SET @@SESSION.GTID_NEXT= '{gtid or 'ANONYMOUS'}'"
    info = _INFO.get(kind)
    return info(body) if info else ""


def _reset_binary_logs(session: Session, _match: re.Match[str]) -> None:
    session.double.binlog.reset()
    session.ok()


_PURGE = re.compile(r"^\s*PURGE\s+BINARY\s+LOGS\s+(TO|BEFORE)\s+'([^']*)'\s*$", _FLAGS)


def _purge(session: Session, match: re.Match[str]) -> None:
    binlog = session.double.binlog
    if match.group(1).upper() == "TO":
        try:
            binlog.purge_to(match.group(2))
        except KeyError:
            session.error(1373, "HY000", "Target log not found in binlog index")
            return
    else:
        binlog.purge_before(datetime.datetime.fromisoformat(match.group(2)).replace(tzinfo=datetime.UTC))
    session.ok()


def _flush(session: Session, match: re.Match[str]) -> None:
    what = match.group(1).upper().split()
    if "PRIVILEGES" in what:
        session.double.clear_auth_cache()
    if "LOGS" in what:
        session.double.binlog.rotate()
    session.ok()


# -- SET ---------------------------------------------------------------------------------------------

_SET = re.compile(r"^\s*SET\s+(.*)$", _FLAGS)
_SET_NAMES = re.compile(
    r"^\s*(NAMES|CHARACTER\s+SET|CHARSET)\s+'?(\w+)'?(?:\s+COLLATE\s+'?(\w+)'?)?\s*$", _FLAGS)
_SET_TRANSACTION = re.compile(r"^\s*(?:(?:GLOBAL|SESSION|LOCAL)\s+)?TRANSACTION\b", _FLAGS)
_ASSIGNMENT = re.compile(
    r"^\s*(?:(@@)(?:(global|session|local|persist)\.)?|(@)|(GLOBAL|SESSION|LOCAL|PERSIST)\s+)?"
    r"(`?[\w.]+`?|'[^']*')\s*(?::=|=)\s*(.*?)\s*$", _FLAGS)


def _set(session: Session, match: re.Match[str]) -> None:
    body = match.group(1)
    names = _SET_NAMES.match(body)
    if names:
        session.set_names(names.group(2), names.group(3))
        _forward_or_ok(session, match.group(0))
        return
    if _SET_TRANSACTION.match(body):
        _forward_or_ok(session, match.group(0))
        return
    try:
        forward = any([_assign(session, part) for part in _split_commas(body)])
    except sysvars.VariableError as exc:
        session.error(exc.code, exc.state, exc.message)
        return
    if forward:
        _forward_or_ok(session, match.group(0))
    else:
        session.ok()


def _assign(session: Session, text: str) -> bool:
    """Apply one assignment; True if MariaDB must see it too (a data-relevant session variable)."""
    found = _ASSIGNMENT.match(text)
    if found is None:
        raise sysvars.VariableError(*syntax_error(text.strip()))
    _sysvar, scope, user, keyword, name, expression = found.groups()
    name = name.strip("`'")
    value = _evaluate(session, expression)
    if user:
        session.user_vars[name.lower()] = value
        return False
    scope = (scope or keyword or "session").lower()
    if scope in ("global", "persist"):
        session.double.set_global(name, "" if value is None else str(value))
        return False
    session.set_session_variable(name, value)
    return name.lower() in FORWARDED_SESSION_VARIABLES


def _evaluate(session: Session, expression: str) -> int | str | None:
    text = expression.strip()
    if text.upper() == "NULL":
        return None
    if text.startswith("@@"):
        return session.select_variable(text[2:])
    if text.startswith("@"):
        return session.user_vars.get(text[1:].lower())  # type: ignore[return-value]
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return _unquote(text)


def _use(session: Session, match: re.Match[str]) -> None:
    _forward_or_ok(session, match.group(0))
    session.database = match.group(1)


def _forward_or_ok(session: Session, statement: str) -> None:
    if not session.forward(statement):
        session.ok()


def _split_commas(text: str) -> list[str]:
    parts, current, quote, depth = [], "", "", 0
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    return [*parts, current]


HANDLERS: list[tuple[re.Pattern[str], Handler]] = [
    (_SELECT_ITEMS, _select_items),
    (_SHOW_VARIABLES, _show_variables),
    (_SHOW_STATUS, _show_status),
    (re.compile(r"^\s*SHOW\s+BINARY\s+LOG\s+STATUS\s*$", _FLAGS), _show_binary_log_status),
    (re.compile(r"^\s*SHOW\s+BINARY\s+LOGS\s*$", _FLAGS), _show_binary_logs),
    (re.compile(r"^\s*SHOW\s+REPLICAS\s*$", _FLAGS), _show_replicas),
    (_SHOW_BINLOG_EVENTS, _show_binlog_events),
    (re.compile(r"^\s*RESET\s+BINARY\s+LOGS\s+AND\s+GTIDS\s*$", _FLAGS), _reset_binary_logs),
    (_PURGE, _purge),
    (re.compile(r"^\s*FLUSH\s+((?:BINARY\s+)?LOGS|PRIVILEGES)\s*$", _FLAGS), _flush),
    (_SET, _set),
    (re.compile(r"^\s*USE\s+`?([^`\s]+)`?\s*$", _FLAGS), _use),
]
