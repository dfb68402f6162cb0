"""`python -m demo` (what `make demo` runs): syncd end to end on throwaway servers.

1. starts two MariaDB servers (the legacy `shop` and `app`) and one PostgreSQL server;
2. creates the legacy databases from demo/shop.sql and demo/app.sql, with sample rows;
3. creates the unified schema from demo/target.sql in database `unified`, owned by `syncd`;
4. starts `syncd run` with the mappings in mappings/ and waits for the initial load;
5. runs a live workload (inserts, status changes, deletes, transactions) on both sources;
6. waits for the target to catch up and prints row counts, mapped rows side by side with
   their source rows, the unified persons (one person per customer across both channels,
   mappings/identity.yaml), and `syncd status`.

Everything lives in a temporary directory that is removed at the end, also after an error or
Ctrl-C. Passwords are random, and only syncd's environment holds them.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
import pymysql
import yaml
from psycopg.rows import dict_row

from demo import data
from devtools.sandbox import MariaDBServer, PostgresServer, SandboxError

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / "demo"
MAPPINGS_DIR = REPO / "mappings"
PHASES = 6
INITIAL_LOAD_TIMEOUT = 60.0
CATCH_UP_TIMEOUT = 60.0
WORKLOAD_SECONDS = 10.0
WORKLOAD_PAUSE = 0.02
STOP_TIMEOUT = 30.0
POLL = 0.5
LOG_TAIL = 40
TARGET_DB = "unified"
STATE_SCHEMA = "syncd"
SYNCD_USER = "syncd"

SHOP_STATUS = {"待支付": 0, "已支付": 1, "已发货": 2, "已完成": 3, "已取消": 4}
APP_STATUS = {10: 0, 20: 1, 30: 2, 40: 3, 90: 4}

MySQL = pymysql.connections.Connection
Postgres = psycopg.Connection[Any]


class DemoFailed(Exception):
    """The demo cannot go on; the message says why."""


@dataclass
class Demo:
    """What the demo started, and where."""

    tmp: Path
    shop: MariaDBServer
    app: MariaDBServer
    pg: PostgresServer
    passwords: dict[str, str]
    """Environment variable -> password; given to syncd's process only."""

    @property
    def config_path(self) -> Path:
        return self.tmp / "config.yaml"

    @property
    def log_path(self) -> Path:
        return self.tmp / "syncd.log"

    def child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in {"NOTIFY_SOCKET", "SYNCD_CONFIG"}}
        env.update(self.passwords)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def syncd(self, command: str) -> list[str]:
        return [sys.executable, "-m", "syncd", command, "--config", str(self.config_path)]


# ---------------------------------------------------------------- printing


def phase(number: int, text: str) -> None:
    print(f"\n== [{number}/{PHASES}] {text}", flush=True)


def width(text: str) -> int:
    """Terminal cells: CJK characters and most emoji take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, cells: int) -> str:
    return text + " " * max(0, cells - width(text))


def shown(value: Any) -> str:
    """A value as the side-by-side listing prints it (text quoted, times with their zone)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat(sep=" ")
        return value.astimezone(data.LOCAL).isoformat(sep=" ")
    return str(value)


# ---------------------------------------------------------------- servers and schemas


def sql_statements(text: str) -> list[str]:
    """The statements of a SQL file: `--` comment lines dropped, split at `;` ending a line."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    parts = re.split(r";[ \t]*$", "\n".join(lines), flags=re.MULTILINE)
    return [part.strip() for part in parts if part.strip()]


def start_servers(stack: ExitStack, tmp: Path) -> Demo:
    demo = Demo(
        tmp=tmp,
        shop=MariaDBServer(tmp / "shop-mariadb", server_id=1),
        app=MariaDBServer(tmp / "app-mariadb", server_id=2),
        pg=PostgresServer(tmp / "postgres"),
        passwords={name: secrets.token_urlsafe(18)
                   for name in ("SHOP_DB_PASSWORD", "APP_DB_PASSWORD", "PGPASSWORD")},
    )
    for label, server in (("MariaDB shop", demo.shop), ("MariaDB app", demo.app),
                          ("PostgreSQL", demo.pg)):
        stack.callback(server.stop)
        server.start()
        print(f"  {pad(label, 14)} 127.0.0.1:{server.port}  ({server.base_dir})")
    return demo


def create_source(stack: ExitStack, server: MariaDBServer, database: str, password: str,
                  load: Callable[[MySQL], dict[str, int]]) -> MySQL:
    """Creates `database` from demo/<database>.sql with sample rows and the `syncd` user;
    returns a root connection to it."""
    server.create_user(SYNCD_USER, password)
    with server.connect() as admin, admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}` "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn = server.connect(database)
    stack.callback(conn.close)
    with conn.cursor() as cur:
        for statement in sql_statements((DEMO_DIR / f"{database}.sql").read_text("utf-8")):
            cur.execute(statement)
    counts = load(conn)
    print(f"  {database}: " + ", ".join(f"{table} {rows} rows" for table, rows in counts.items()))
    return conn


def create_target(stack: ExitStack, demo: Demo) -> Postgres:
    """Creates role and database `unified`, loads demo/target.sql as that role (the owner);
    returns a superuser connection to the database for reading."""
    password = demo.passwords["PGPASSWORD"]
    demo.pg.create_user(SYNCD_USER, password)
    demo.pg.create_database(TARGET_DB, owner=SYNCD_USER)
    dsn = demo.pg.dsn(TARGET_DB, user=SYNCD_USER, password=password)
    with psycopg.connect(dsn, autocommit=True) as owner:
        for statement in sql_statements((DEMO_DIR / "target.sql").read_text("utf-8")):
            owner.execute(statement)
    print(f"  database {TARGET_DB} (owner {SYNCD_USER}): tables public.orders, public.members, "
          "public.persons")
    conn = demo.pg.connect(TARGET_DB)
    stack.callback(conn.close)
    return conn


# ---------------------------------------------------------------- syncd


def source_config(server: MariaDBServer, database: str, password_env: str,
                  server_id: int) -> dict[str, Any]:
    return {
        "host": server.host,
        "port": server.port,
        "user": SYNCD_USER,
        "password_env": password_env,
        "database": database,
        "server_id": server_id,
        "timezone": "+08:00",
    }


def write_config(demo: Demo) -> None:
    config = {
        "target": {
            "dsn": demo.pg.dsn(TARGET_DB, user=SYNCD_USER),
            "password_env": "PGPASSWORD",
            "schema": "public",
            "state_schema": STATE_SCHEMA,
        },
        "sources": {
            "shop": source_config(demo.shop, "shop", "SHOP_DB_PASSWORD", 4101),
            "app": source_config(demo.app, "app", "APP_DB_PASSWORD", 4102),
        },
        "mappings": [str(MAPPINGS_DIR)],
        "log": {"level": "info", "format": "json"},
    }
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    demo.config_path.write_text("# Written by `python -m demo`; passwords are in syncd's "
                                "environment only.\n" + text, encoding="utf-8")


def start_syncd(stack: ExitStack, demo: Demo) -> subprocess.Popen[bytes]:
    log = stack.enter_context(demo.log_path.open("wb"))
    process = subprocess.Popen(
        demo.syncd("run"), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        env=demo.child_env(), cwd=REPO, start_new_session=True,
    )
    stack.callback(stop_syncd, process)
    print(f"  syncd run --config {demo.config_path}  (pid {process.pid}, log {demo.log_path})")
    return process


def stop_syncd(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then wait; SIGKILL only if syncd does not stop within STOP_TIMEOUT."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"  syncd did not stop within {STOP_TIMEOUT:.0f} s of SIGTERM; killing it")
            process.kill()
            process.wait()
    print(f"  syncd stopped (exit code {process.returncode})")


def print_status(demo: Demo) -> None:
    result = subprocess.run(
        demo.syncd("status"), env=demo.child_env(), cwd=REPO, capture_output=True, text=True,
        timeout=60, check=False,
    )
    for line in (result.stdout + result.stderr).rstrip().splitlines():
        print(f"  {line}")
    if result.returncode != 0:
        print(f"  (syncd status exited with code {result.returncode})")


def print_log_tail(path: Path, lines: int = LOG_TAIL) -> None:
    if not path.exists():
        return
    tail = path.read_text("utf-8", errors="replace").splitlines()[-lines:]
    print(f"\n-- last {len(tail)} lines of {path}:")
    for line in tail:
        print(line)


def print_dead_letters(target: Postgres) -> None:
    """Best effort: the first few dead letters, if syncd recorded any."""
    try:
        with target.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(f"SELECT * FROM {STATE_SCHEMA}.dead_letters LIMIT 5").fetchall()
    except psycopg.Error:
        return
    for row in rows:
        print(f"  dead letter: {row}")


# ---------------------------------------------------------------- comparing source and target


@dataclass(frozen=True)
class Check:
    """One target table and channel: what the source says it should hold, and what it holds.

    Orders compare (live rows, rows per status, money total); members compare (rows, rows with
    a phone, rows opted out of marketing).
    """

    table: str
    channel: str
    source: tuple[Any, ...]
    target: tuple[Any, ...]
    soft_deleted: int

    @property
    def agrees(self) -> bool:
        return self.source == self.target


def fetch(conn: MySQL, query: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(query)
        return list(cur.fetchall())


def amount_of(text: str) -> Decimal:
    """What parse_amount should make of the shop's money text: "¥1,299.50" -> 1299.50."""
    return Decimal(re.sub(r"[,¥元\s]", "", text))


def orders_summary(per_status: Iterable[tuple[int, int, Decimal]]) -> tuple[Any, ...]:
    counts: Counter[int] = Counter()
    total = Decimal(0)
    for status, rows, amount in per_status:
        counts[status] += rows
        total += amount
    return (sum(counts.values()), tuple(sorted(counts.items())), total)


def source_summaries(shop: MySQL, app: MySQL) -> dict[tuple[str, str], tuple[Any, ...]]:
    shop_orders = [(SHOP_STATUS.get(status, -1), 1, amount_of(text))
                   for status, text in fetch(shop, "SELECT status, amount_text FROM orders")]
    app_orders = [(APP_STATUS.get(code, -1), int(rows), Decimal(fen or 0) / 100)
                  for code, rows, fen in fetch(app, "SELECT status_code, COUNT(*), SUM(total_fen)"
                                                    " FROM app_orders GROUP BY status_code")]
    shop_users = fetch(shop, "SELECT COUNT(*), COUNT(phone), 0 FROM users")[0]
    app_users = fetch(app, "SELECT COUNT(*), COUNT(phone), "
                           "COALESCE(SUM(marketing_opt_out), 0) FROM app_users")[0]
    return {
        ("orders", "shop"): orders_summary(shop_orders),
        ("orders", "app"): orders_summary(app_orders),
        ("members", "shop"): tuple(int(v) for v in shop_users),
        ("members", "app"): tuple(int(v) for v in app_users),
    }


def target_summary(target: Postgres, table: str, channel: str) -> tuple[tuple[Any, ...], int]:
    """(the same summary as the source's, soft-deleted rows) for one table and channel."""
    if table == "orders":
        rows = target.execute(
            "SELECT status, count(*), coalesce(sum(amount), 0) FROM orders"
            " WHERE channel = %s AND deleted_at IS NULL GROUP BY status", (channel,)).fetchall()
        summary = orders_summary(rows)
    else:
        row = target.execute(
            "SELECT count(*), count(phone_masked), count(*) FILTER (WHERE marketing_opt_out)"
            " FROM members WHERE channel = %s AND deleted_at IS NULL", (channel,)).fetchone()
        summary = tuple(row or ())
    deleted = target.execute(
        f"SELECT count(*) FROM {table} WHERE channel = %s AND deleted_at IS NOT NULL",
        (channel,)).fetchone()
    return summary, int(deleted[0]) if deleted else 0


@dataclass(frozen=True)
class Connections:
    """Root connections to the two legacy databases, a superuser one to the target."""

    shop: MySQL
    app: MySQL
    target: Postgres

    def source(self, name: str) -> MySQL:
        return self.shop if name == "shop" else self.app


def compare(conns: Connections) -> list[Check]:
    checks = []
    for (table, channel), expected in source_summaries(conns.shop, conns.app).items():
        actual, soft_deleted = target_summary(conns.target, table, channel)
        checks.append(Check(table, channel, expected, actual, soft_deleted))
    return checks


def print_counts(checks: list[Check]) -> None:
    print(f"  {'target table':<13} {'channel':<8} {'source rows':>11} {'target rows':>11} "
          f"{'soft-deleted':>12}  in step")
    for check in checks:
        target_rows = check.target[0] if check.target else 0
        print(f"  {check.table:<13} {check.channel:<8} {check.source[0]:>11} {target_rows:>11} "
              f"{check.soft_deleted:>12}  {'yes' if check.agrees else 'NO'}")
    for check in checks:
        if not check.agrees:
            print(f"    {check.table}/{check.channel}: source {check.source}"
                  f"\n    {' ' * len(check.table + check.channel)}  target {check.target}")


def wait_in_step(conns: Connections, process: subprocess.Popen[bytes], timeout: float,
                 what: str) -> list[Check]:
    """Polls until every check agrees; fails if syncd exits or `timeout` passes."""
    started = time.monotonic()
    while True:
        checks = compare(conns)
        if all(check.agrees for check in checks):
            elapsed = time.monotonic() - started
            print(f"  the target is in step with the sources after {elapsed:.1f} s")
            return checks
        if process.poll() is not None:
            print_counts(checks)
            raise DemoFailed(f"syncd exited with code {process.returncode} before {what} "
                             "reached the target")
        if time.monotonic() - started > timeout:
            print_counts(checks)
            print_dead_letters(conns.target)
            raise DemoFailed(f"{what} did not reach the target within {timeout:.0f} s")
        time.sleep(POLL)


# ---------------------------------------------------------------- rows side by side


SHOP_ORDER_COLUMNS = (("order_no", "order_no"), ("phone", "buyer_phone"), ("status", "status"),
                      ("amount_text", "amount"), ("created_at", "created_at"),
                      (None, "deleted_at"))
APP_ORDER_COLUMNS = (("order_sn", "order_no"), ("status_code", "status"), ("total_fen", "amount"),
                     ("remark", "note"), ("created_at", "created_at"), (None, "deleted_at"),
                     (None, "synced_at"))
APP_MEMBER_COLUMNS = (("nickname", "display_name"), ("phone", "phone_masked"),
                      ("unionid", "unionid"), ("marketing_opt_out", "marketing_opt_out"),
                      ("created_at", "created_at"), (None, "synced_at"))


@dataclass(frozen=True)
class Showcase:
    """A source row and the target row its mapping made, printed column by column."""

    title: str
    source: str
    table: str
    row_id: int
    target: str
    columns: tuple[tuple[str | None, str], ...]

    @property
    def key_column(self) -> str:
        return "source_order_id" if self.target == "orders" else "source_user_id"


def showcases(stats: data.WorkloadStats) -> list[Showcase]:
    cases = [
        Showcase("shop order: status as text, money as text, phone in clear", "shop", "orders",
                 1, "orders", SHOP_ORDER_COLUMNS),
        Showcase("app order: status as a code, money in 分", "app", "app_orders", 1, "orders",
                 APP_ORDER_COLUMNS),
    ]
    deleted = set(stats.deleted.get("app.app_orders", []))
    moved = [i for i in stats.advanced.get("app.app_orders", []) if i not in deleted]
    if moved:
        cases.append(Showcase("app order whose status the live workload changed", "app",
                              "app_orders", moved[-1], "orders", APP_ORDER_COLUMNS))
    if stats.deleted.get("shop.orders"):
        cases.append(Showcase("shop order deleted by the live workload (delete: soft)", "shop",
                              "orders", stats.deleted["shop.orders"][-1], "orders",
                              SHOP_ORDER_COLUMNS))
    cases.append(Showcase("app member: no phone, opted out of marketing", "app", "app_users", 2,
                          "members", APP_MEMBER_COLUMNS))
    return cases


def source_row(conn: MySQL, case: Showcase) -> dict[str, Any] | None:
    names = ", ".join(source for source, _ in case.columns if source)
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(f"SELECT {names} FROM {case.table} WHERE id = %s", (case.row_id,))
        return cur.fetchone()


def target_row(target: Postgres, case: Showcase) -> dict[str, Any] | None:
    names = ", ".join(name for _, name in case.columns)
    with target.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {names} FROM {case.target} WHERE channel = %s AND {case.key_column} = %s",
            (case.source, case.row_id)).fetchone()


def cell(row: dict[str, Any] | None, name: str) -> str:
    return "-" if row is None else shown(row[name])


def print_showcase(case: Showcase, source: dict[str, Any] | None,
                   target: dict[str, Any] | None) -> None:
    left = f"{case.source}.{case.table} id={case.row_id}"
    if source is None:
        left += " (deleted at the source)"
    right = f"{case.target} ({case.source}, {case.row_id})"
    if target is None:
        right += " (no row in the target)"
    print(f"\n  {case.title}\n    {pad(left, 50)}    {right}")
    for source_name, target_name in case.columns:
        source_text = cell(source, source_name) if source_name else ""
        target_text = cell(target, target_name)
        arrow = "->" if source_name else "  "
        print(f"    {pad(source_name or '', 17)} {pad(source_text, 32)} {arrow} "
              f"{pad(target_name, 17)} {target_text}")


def print_showcases(conns: Connections, stats: data.WorkloadStats) -> None:
    for case in showcases(stats):
        print_showcase(case, source_row(conns.source(case.source), case),
                       target_row(conns.target, case))


# ---------------------------------------------------------------- unified persons (identity)


UNIFIED_CHECKS = {
    "members without a person": "SELECT count(*) FROM members WHERE person_id IS NULL",
    "orders without a member": "SELECT count(*) FROM orders WHERE member_id IS NULL",
    "members of a merged-away person": (
        f"SELECT count(*) FROM members m JOIN {STATE_SCHEMA}.identity_persons p ON p.space = 'person' "
        "AND p.person_id = m.person_id WHERE p.merged_into IS NOT NULL"),
    "orders of a merged-away person": (
        f"SELECT count(*) FROM orders o JOIN {STATE_SCHEMA}.identity_persons p ON p.space = 'person' "
        "AND p.person_id = o.member_id WHERE p.merged_into IS NOT NULL"),
    "persons with members but no unified row": (
        "SELECT count(DISTINCT m.person_id) FROM members m LEFT JOIN persons p USING (person_id) "
        "WHERE p.person_id IS NULL"),
}


def print_unified(conns: Connections) -> None:
    """Identity 'person': how many persons the members make, and the showcase customer."""
    target = conns.target

    def one(query: str, params: tuple[Any, ...] = ()) -> Any:
        row = target.execute(query, params).fetchone()
        return row[0] if row else None

    members = one("SELECT count(*) FROM members")
    persons = one("SELECT count(DISTINCT person_id) FROM members")
    both = one("SELECT count(*) FROM (SELECT person_id FROM members GROUP BY person_id "
               "HAVING count(DISTINCT channel) = 2) t")
    merges = one(f"SELECT count(*) FROM {STATE_SCHEMA}.identity_merges")
    opted_out = one("SELECT count(*) FROM persons WHERE marketing_opt_out")
    print("\n  unified persons (identity 'person' in mappings/identity.yaml: phone, unionid, user ids)")
    print(f"    {members} members are {persons} persons; {both} of them are customers of both the shop\n"
          f"    and the app ({merges} merges so far); {opted_out} persons opted out of marketing")
    broken = {name: count for name, query in UNIFIED_CHECKS.items() if (count := one(query))}
    for name, count in broken.items():
        print(f"    NOT OK: {count} {name}")
    if broken:
        raise DemoFailed("the unified persons are inconsistent: " + ", ".join(broken))
    print("    every member and every order points at a live person, and every person has its "
          "unified row")
    rows = target.execute("SELECT channel, source_user_id, display_name, phone_masked, person_id "
                          "FROM members WHERE (channel, source_user_id) IN (('shop', 1), ('app', 1)) "
                          "ORDER BY channel DESC").fetchall()
    print("\n  shop user 1 and app user 1 share the phone 138****5678: one person")
    for channel, user_id, name, phone_masked, person in rows:
        print(f"    members {pad(f'({channel}, {user_id})', 10)} {pad(shown(name), 16)} "
              f"{shown(phone_masked)}  -> person_id {person}")
    people = {row[4] for row in rows}
    if len(rows) != 2 or len(people) != 1:
        raise DemoFailed(f"shop user 1 and app user 1 should be one person, got {sorted(people)}")
    person = people.pop()
    with target.cursor(row_factory=dict_row) as cur:
        unified = cur.execute("SELECT * FROM persons WHERE person_id = %s", (person,)).fetchone() or {}
    print(f"    persons {person}:")
    for name, value in unified.items():
        if name != "person_id":
            print(f"      {pad(name, 18)} {shown(value)}")
    counts = target.execute("SELECT channel, count(*) FROM orders WHERE member_id = %s GROUP BY channel "
                            "ORDER BY channel DESC", (person,)).fetchall()
    print(f"    orders with member_id {person}: "
          + ", ".join(f"{count} from the {channel}" for channel, count in counts))


# ---------------------------------------------------------------- the demo


def run(stack: ExitStack, tmp: Path) -> None:
    phase(1, "starting two MariaDB servers (shop, app) and a PostgreSQL server")
    demo = start_servers(stack, tmp)

    phase(2, "creating the legacy databases shop and app, with sample rows")
    shop = create_source(stack, demo.shop, "shop", demo.passwords["SHOP_DB_PASSWORD"],
                         data.load_shop)
    app = create_source(stack, demo.app, "app", demo.passwords["APP_DB_PASSWORD"], data.load_app)

    phase(3, "creating the unified target schema (demo/target.sql)")
    conns = Connections(shop, app, create_target(stack, demo))

    phase(4, "starting syncd; waiting for the initial load")
    write_config(demo)
    process = start_syncd(stack, demo)
    print_counts(wait_in_step(conns, process, INITIAL_LOAD_TIMEOUT, "the initial load"))

    phase(5, f"live workload on both sources for {WORKLOAD_SECONDS:.0f} s")
    stats = data.live_workload(shop, app, seconds=WORKLOAD_SECONDS, pause=WORKLOAD_PAUSE)
    for line in stats.lines():
        print(f"  {line}")

    phase(6, "waiting for the target to catch up")
    print_counts(wait_in_step(conns, process, CATCH_UP_TIMEOUT, "the live changes"))
    print("\n  a few rows, source (left) and target (right); the sources' DATETIMEs are"
          " +08:00 local time,\n  target times are shown in +08:00 too")
    print_showcases(conns, stats)
    print_unified(conns)
    print("\n  syncd status:")
    print_status(demo)


def interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so everything started is stopped."""
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, interrupt)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True, errors="replace")
    started = time.monotonic()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="syncd-demo-", ignore_cleanup_errors=True)))
        tmp.chmod(0o755)  # PostgreSQL runs as OS user postgres when the demo runs as root
        try:
            run(stack, tmp)
        except DemoFailed as exc:
            print(f"\ndemo failed: {exc}")
            print_log_tail(tmp / "syncd.log")
            return 1
        except SandboxError as exc:
            print(f"\ndemo failed: a server did not start: {exc}")
            return 1
        except KeyboardInterrupt:
            print("\ninterrupted")
            return 130
        finally:
            print("\n== stopping syncd and the servers, removing the temporary directory")
    print(f"\ndemo finished in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
