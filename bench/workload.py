"""The benchmark's sources, target, mappings and writers.

Each source database (`shop` on two MariaDB servers, sources "east" and "west") has three
tables as an order system writes them: customers, orders, order_items, with Chinese text,
money as DECIMAL and DATETIME(3)/(6) times. Every row carries ``written_at DATETIME(6)``,
set by the writing statement to ``NOW(6)`` in a UTC session: the source-side time of the
change, which the target keeps as ``source_written_at`` (the lag measurement uses it).

Writers run in child processes (one per source), each feeding SQL text to a `mariadb`
command-line client (see `Shop`):

* `write_backlog` writes OLTP transactions as applications do (each statement changes one
  row; a transaction holds 1-4 statements), then a few large multi-row transactions (a
  settlement UPDATE, a bulk INSERT ... SELECT, a purge DELETE, a level UPDATE).
* `write_paced` writes the same small transactions at a fixed rate of changes per second.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
from pymysql.converters import escape_string

DATABASE = "shop"
SOURCES = ("east", "west")
STATUSES = ("待支付", "已支付", "已发货", "已完成", "已取消")

SOURCE_SQL = """
CREATE TABLE customers (
    id          INT UNSIGNED  NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name        VARCHAR(64)   NOT NULL,
    phone       CHAR(11)      NULL,
    city        VARCHAR(32)   NOT NULL,
    level       TINYINT       NOT NULL DEFAULT 0,
    balance     DECIMAL(14,2) NOT NULL DEFAULT 0,
    birthday    DATE          NULL,
    created_at  DATETIME      NOT NULL,
    written_at  DATETIME(6)   NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE orders (
    id          BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_no    VARCHAR(32)   NOT NULL,
    customer_id INT UNSIGNED  NOT NULL,
    status      VARCHAR(8)    NOT NULL,
    amount      DECIMAL(12,2) NOT NULL,
    freight     DECIMAL(8,2)  NOT NULL DEFAULT 0,
    note        VARCHAR(200)  NULL,
    paid_at     DATETIME(3)   NULL,
    created_at  DATETIME(3)   NOT NULL,
    written_at  DATETIME(6)   NOT NULL,
    UNIQUE KEY uk_order_no (order_no),
    KEY idx_customer (customer_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE order_items (
    id          BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id    BIGINT        NOT NULL,
    sku         VARCHAR(24)   NOT NULL,
    title       VARCHAR(100)  NOT NULL,
    qty         SMALLINT      NOT NULL,
    price       DECIMAL(10,2) NOT NULL,
    written_at  DATETIME(6)   NOT NULL,
    KEY idx_order (order_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE ledger (
    id          BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    account     VARCHAR(16)   NOT NULL,
    memo        VARCHAR(64)   NOT NULL,
    amount      DECIMAL(14,2) NOT NULL,
    entry_type  TINYINT       NOT NULL,
    booked_at   DATETIME(6)   NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""

TARGET_SQL = [
    """CREATE TABLE customers (
    channel text NOT NULL, source_id bigint NOT NULL, name text, phone_masked text, city text,
    level smallint, balance numeric(14,2), birthday date, created_at timestamptz,
    source_written_at timestamptz, synced_at timestamptz, PRIMARY KEY (channel, source_id))""",
    """CREATE TABLE orders (
    channel text NOT NULL, source_id bigint NOT NULL, order_no text, customer_id bigint,
    status smallint, amount numeric(12,2), freight numeric(8,2), note text, paid_at timestamptz,
    created_at timestamptz, source_written_at timestamptz, deleted_at timestamptz,
    PRIMARY KEY (channel, source_id))""",
    """CREATE TABLE order_items (
    channel text NOT NULL, source_id bigint NOT NULL, order_id bigint, sku text, title text,
    qty integer, price numeric(10,2), source_written_at timestamptz, PRIMARY KEY (channel, source_id))""",
    """CREATE TABLE ledger (
    source_id bigint PRIMARY KEY, account text, memo text, amount numeric(14,2), entry_type smallint,
    booked_at timestamptz)""",
    "CREATE TABLE bench_lag (source_written_at timestamptz NOT NULL)",
    """CREATE FUNCTION bench_log_lag() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_lag VALUES (NEW.source_written_at);
    RETURN NULL;
END $$""",
]
"""The target tables (created by the syncd role, which owns the database), one statement each."""

LAG_TRIGGERS = [
    "CREATE TRIGGER bench_lag_{t} AFTER INSERT OR UPDATE ON {t} FOR EACH ROW"
    " WHEN (NEW.source_written_at IS NOT NULL{extra}) EXECUTE FUNCTION bench_log_lag()".format(
        t=table, extra=" AND NEW.deleted_at IS NULL" if table == "orders" else "")
    for table in ("customers", "orders", "order_items")
]
"""Every target row a change inserts or updates logs its source time; the log row's commit
timestamp (track_commit_timestamp) is when the change became visible. Soft deletes are left
out: they keep the row's older source time."""

DROP_LAG_TRIGGERS = [f"DROP TRIGGER IF EXISTS bench_lag_{t} ON {t}"
                     for t in ("customers", "orders", "order_items")]


def mappings_yaml(source: str) -> str:
    """The three mappings of one source (a value map, masking, soft and hard deletes)."""
    return f"""mappings:
  - name: {source}_customers
    source: {source}
    table: customers
    target: customers
    key: [channel, source_id]
    commit_time_column: synced_at
    columns:
      channel: {{value: {source}}}
      source_id: id
      name: name
      phone_masked: {{from: phone, transform: mask_phone}}
      city: city
      level: level
      balance: balance
      birthday: birthday
      created_at: created_at
      source_written_at: written_at
  - name: {source}_orders
    source: {source}
    table: orders
    target: orders
    key: [channel, source_id]
    delete: soft
    soft_delete_column: deleted_at
    columns:
      channel: {{value: {source}}}
      source_id: id
      order_no: order_no
      customer_id: customer_id
      status:
        from: status
        map: {{待支付: 0, 已支付: 1, 已发货: 2, 已完成: 3, 已取消: 4}}
      amount: amount
      freight: freight
      note: note
      paid_at: paid_at
      created_at: created_at
      source_written_at: written_at
  - name: {source}_order_items
    source: {source}
    table: order_items
    target: order_items
    key: [channel, source_id]
    columns:
      channel: {{value: {source}}}
      source_id: id
      order_id: order_id
      sku: sku
      title: title
      qty: qty
      price: price
      source_written_at: written_at
"""


LEDGER_MAPPING = """mappings:
  - name: east_ledger
    source: east
    table: ledger
    target: ledger
    key: [source_id]
    columns:
      source_id: id
      account: account
      memo: memo
      amount: amount
      entry_type: entry_type
      booked_at: booked_at
"""

# ---------------------------------------------------------------- sample values

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉萍红玲芬燕彬鹏辉晨曦雨欣怡轩浩然梓涵诺"
CITIES = ("上海", "北京", "深圳", "广州", "杭州", "成都", "武汉", "南京", "西安", "重庆", "苏州", "长沙")
PRODUCTS = ("无线蓝牙耳机", "保温杯 500ml", "纯棉T恤（白色）", "机械键盘·青轴", "有机绿茶礼盒",
            "儿童绘本套装", "不锈钢炒锅", "羊毛围巾", "手机壳🌸", "智能手环", "北欧风台灯", "咖啡豆 1kg",
            "瑜伽垫", "双肩背包")
NOTES = ("请尽快发货", "周末送货，谢谢", "送给妈妈的生日礼物🎁", "不要放快递柜", "包装好一点哦😊",
         "门口保安室代收", "工作日白天不在家，晚上七点后送", "麻烦开发票📄", None, None, None, None)
MEMOS = ("'工资入账'", "'房租'", "'水电燃气'", "'网购退款'", "'餐饮'", "'交通出行'", "'理财收益'",
         "'转账给朋友'")


@dataclass(frozen=True)
class Server:
    """Where a source server listens and its root password (picklable, for the writers)."""

    host: str
    port: int
    password: str


def connect(server: Server, database: str | None = DATABASE) -> Any:
    """A root connection in a UTC session (so NOW(6) is UTC wall time)."""
    conn = pymysql.connect(host=server.host, port=server.port, user="root", password=server.password,
                           database=database, charset="utf8mb4", autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SET SESSION time_zone = '+00:00'")
    return conn


def create_source(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        cur.execute(f"USE {DATABASE}")
        for statement in SOURCE_SQL.split(";"):
            cur.execute(statement)


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))


def _phone(rng: random.Random) -> str | None:
    return None if rng.random() < 0.2 else f"1{rng.choice('3578')}{rng.randrange(10**9):09d}"


def _money(rng: random.Random, low: int, high: int) -> str:
    return f"{rng.randint(low, high)}.{rng.randrange(100):02d}"


def seed(conn: Any, customers: int, orders: int, seed_value: int) -> None:
    """Initial rows (multi-row INSERTs), before syncd's initial load."""
    rng = random.Random(seed_value)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO customers (name, phone, city, level, balance, birthday, created_at, written_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, NOW() - INTERVAL %s MINUTE, NOW(6))",
            [(_name(rng), _phone(rng), rng.choice(CITIES), rng.randint(0, 5), _money(rng, 0, 5000),
              None if rng.random() < 0.3 else f"19{rng.randint(60, 99)}-{rng.randint(1, 12):02d}-"
              f"{rng.randint(1, 28):02d}", rng.randrange(10**6)) for _ in range(customers)])
        cur.executemany(
            "INSERT INTO orders (order_no, customer_id, status, amount, freight, note, created_at,"
            " written_at) VALUES (%s, %s, %s, %s, %s, %s, NOW(3) - INTERVAL %s MINUTE, NOW(6))",
            [(f"S{seed_value}{i:09d}", rng.randint(1, customers), rng.choice(STATUSES),
              _money(rng, 10, 9999), _money(rng, 0, 20), rng.choice(NOTES), rng.randrange(10**5))
             for i in range(orders)])
        cur.executemany(
            "INSERT INTO order_items (order_id, sku, title, qty, price, written_at)"
            " VALUES (%s, %s, %s, %s, %s, NOW(6))",
            [(rng.randint(1, orders), f"SKU-{rng.randrange(10**6):06d}", rng.choice(PRODUCTS),
              rng.randint(1, 5), _money(rng, 5, 999)) for _ in range(orders * 2)])


def make_ledger(conn: Any, rows: int, chunk: int = 100_000) -> None:
    """The snapshot table: `rows` rows written server-side (INSERT ... SELECT over seq_*)."""
    with conn.cursor() as cur:
        for first in range(1, rows + 1, chunk):
            last = min(rows, first + chunk - 1)
            cur.execute(
                "INSERT INTO ledger (account, memo, amount, entry_type, booked_at)"
                f" SELECT CONCAT('ACC', LPAD(seq % 50000, 8, '0')), ELT(1 + seq % 8, {', '.join(MEMOS)}),"
                " (seq % 1000003) / 100 - 5000, seq % 5,"
                " TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq * 37 MICROSECOND"
                f" FROM seq_{first}_to_{last}")


# ---------------------------------------------------------------- OLTP transactions


@dataclass
class Counts:
    transactions: int = 0
    changes: int = 0
    big_changes: int = 0
    seconds: float = 0.0
    behind_max_s: float = 0.0
    writer_cpu_s: float = 0.0
    client_errors: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


def _cpu_with_children() -> float:
    """CPU seconds of this process and of its waited-for children (the mariadb client)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _text(value: str | None) -> str:
    return "NULL" if value is None else "'" + escape_string(value) + "'"


class Shop:
    """One source's transactions as SQL text, with explicit ids so no reply is needed.

    The text goes to the `mariadb` command-line client, which runs it statement by statement
    (autocommit, or BEGIN ... COMMIT): the load generator's CPU stays small next to the server's,
    which matters when writer, databases and syncd share two cores. Expected changes are
    counted per statement (an update of a row deleted meanwhile changes nothing; the binlog,
    not this count, is what the figures use).
    """

    KINDS = (("new_order", 30), ("pay", 20), ("ship", 10), ("complete", 10), ("touch_customer", 15),
             ("new_customer", 5), ("change_qty", 5), ("delete_order", 5))

    def __init__(self, conn: Any, rng: random.Random) -> None:
        self.rng = rng
        self.kinds = [k for k, _ in self.KINDS]
        self.weights = [w for _, w in self.KINDS]
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM customers")
            self.customers = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT id, status FROM orders")
            self.by_status: dict[str, list[int]] = {s: [] for s in STATUSES}
            for order_id, status in cur.fetchall():
                self.by_status[status].append(order_id)
            cur.execute("SELECT id, order_id FROM order_items")
            self.items: dict[int, list[int]] = {}
            for item_id, order_id in cur.fetchall():
                self.items.setdefault(order_id, []).append(item_id)
            cur.execute("SELECT (SELECT MAX(id) FROM customers), (SELECT MAX(id) FROM orders),"
                        " (SELECT MAX(id) FROM order_items)")
            last = cur.fetchone()
        self.item_ids = [i for ids in self.items.values() for i in ids]
        self.next_customer, self.next_order, self.next_item = ((x or 0) + 1 for x in last)

    def one(self, counts: Counts) -> str:
        """One small transaction, chosen by the weights: its SQL text."""
        kind = self.rng.choices(self.kinds, self.weights)[0]
        text, changes = getattr(self, kind)()
        counts.transactions += 1
        counts.changes += changes
        counts.by_kind[kind] = counts.by_kind.get(kind, 0) + changes
        return text

    def _take(self, status: str) -> int | None:
        ids = self.by_status[status]
        if not ids:
            return None
        i = self.rng.randrange(len(ids))
        ids[i], ids[-1] = ids[-1], ids[i]
        return ids.pop()

    def new_order(self) -> tuple[str, int]:
        rng = self.rng
        order_id, self.next_order = self.next_order, self.next_order + 1
        statements = [
            "INSERT INTO orders (id, order_no, customer_id, status, amount, freight, note, created_at,"
            f" written_at) VALUES ({order_id}, 'N{order_id:012d}', {rng.choice(self.customers)}, '待支付',"
            f" {_money(rng, 10, 9999)}, {_money(rng, 0, 20)}, {_text(rng.choice(NOTES))}, NOW(3), NOW(6))"]
        items = []
        for _ in range(rng.randint(1, 3)):
            item_id, self.next_item = self.next_item, self.next_item + 1
            statements.append(
                "INSERT INTO order_items (id, order_id, sku, title, qty, price, written_at) VALUES"
                f" ({item_id}, {order_id}, 'SKU-{rng.randrange(10**6):06d}', {_text(rng.choice(PRODUCTS))},"
                f" {rng.randint(1, 5)}, {_money(rng, 5, 999)}, NOW(6))")
            items.append(item_id)
        self.by_status["待支付"].append(order_id)
        self.items[order_id] = items
        self.item_ids.extend(items)
        return "BEGIN;\n" + ";\n".join(statements) + ";\nCOMMIT;\n", len(statements)

    def _advance(self, before: str, after: str, paid: bool = False) -> tuple[str, int]:
        order_id = self._take(before)
        if order_id is None:
            return self.new_order()
        extra = ", paid_at = NOW(3)" if paid else ""
        self.by_status[after].append(order_id)
        return f"UPDATE orders SET status = '{after}'{extra}, written_at = NOW(6) WHERE id = {order_id};\n", 1

    def pay(self) -> tuple[str, int]:
        return self._advance("待支付", "已支付", paid=True)

    def ship(self) -> tuple[str, int]:
        return self._advance("已支付", "已发货")

    def complete(self) -> tuple[str, int]:
        return self._advance("已发货", "已完成")

    def touch_customer(self) -> tuple[str, int]:
        rng = self.rng
        return (f"UPDATE customers SET balance = balance + {_money(rng, 1, 200)},"
                f" level = {rng.randint(0, 5)}, written_at = NOW(6)"
                f" WHERE id = {rng.choice(self.customers)};\n", 1)

    def new_customer(self) -> tuple[str, int]:
        rng = self.rng
        customer_id, self.next_customer = self.next_customer, self.next_customer + 1
        self.customers.append(customer_id)
        return ("INSERT INTO customers (id, name, phone, city, level, balance, created_at, written_at)"
                f" VALUES ({customer_id}, {_text(_name(rng))}, {_text(_phone(rng))},"
                f" {_text(rng.choice(CITIES))}, 0, 0, NOW(), NOW(6));\n", 1)

    def change_qty(self) -> tuple[str, int]:
        if not self.item_ids:
            return self.new_order()
        return (f"UPDATE order_items SET qty = qty % 9 + 1, written_at = NOW(6)"
                f" WHERE id = {self.rng.choice(self.item_ids)};\n", 1)  # a deleted item: no change

    def delete_order(self) -> tuple[str, int]:
        order_id = self._take("已取消") or self._take("已完成")
        if order_id is None:
            return self.new_order()
        items = self.items.pop(order_id, [])  # their ids stay in item_ids: updating one changes nothing
        return (f"BEGIN;\nDELETE FROM order_items WHERE order_id = {order_id};\n"
                f"DELETE FROM orders WHERE id = {order_id};\nCOMMIT;\n", 1 + len(items))

    @staticmethod
    def big(kind: int, rows: int) -> str:
        """One multi-row transaction of about `rows` changes (a settlement UPDATE, a bulk INSERT ...
        SELECT, a purge DELETE, a level UPDATE): one statement each, so one binlog transaction."""
        if kind % 4 == 0:
            return ("UPDATE orders SET status = '已完成', written_at = NOW(6)"
                    f" WHERE status IN ('已发货', '已支付') ORDER BY id LIMIT {rows};\n")
        if kind % 4 == 1:
            return ("INSERT INTO order_items (order_id, sku, title, qty, price, written_at)"
                    " SELECT 1 + seq % 5000, CONCAT('BULK-', seq),"
                    " ELT(1 + seq % 3, '批量导入商品', '赠品', '换货'),"
                    f" 1 + seq % 4, (seq % 9999) / 10, NOW(6) FROM seq_1_to_{rows};\n")
        if kind % 4 == 2:
            return f"DELETE FROM order_items ORDER BY id LIMIT {rows};\n"
        return ("UPDATE customers SET level = (level + 1) % 6, written_at = NOW(6)"
                f" ORDER BY id LIMIT {rows};\n")


class Client:
    """The `mariadb` command-line client fed on stdin; statements run in order, errors go on."""

    def __init__(self, server: Server, options_file: Path, database: str = DATABASE) -> None:
        options_file.write_text(f"[client]\nuser=root\npassword={server.password}\nhost={server.host}\n"
                                f"port={server.port}\n", encoding="utf-8")
        options_file.chmod(0o600)
        program = shutil.which("mariadb", path=f"{os.environ.get('PATH', '')}:/usr/bin")
        if program is None:
            raise RuntimeError("the mariadb command-line client is missing (Debian: mariadb-client)")
        self.process = subprocess.Popen(
            [program, f"--defaults-extra-file={options_file}", "--batch", "--silent", "--force",
             f"--database={database}", "--default-character-set=utf8mb4"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.write("SET SESSION time_zone = '+00:00';\n")

    def write(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode("utf-8"))
        self.process.stdin.flush()

    def finish(self) -> int:
        """Waits until every statement ran; returns how many errors the client printed."""
        _, errors = self.process.communicate(timeout=3600)  # closes stdin: the client ends
        return errors.decode("utf-8", "replace").count("ERROR")


def write_backlog(server: Server, *, changes: int, big_share: float, big_count: int, seed_value: int,
                  work_dir: str) -> Counts:
    """Small transactions up to (1 - big_share) of `changes`, then `big_count` large ones,
    as fast as the server takes them."""
    conn = connect(server)
    shop = Shop(conn, random.Random(seed_value))
    conn.close()
    counts = Counts()
    started, cpu = time.monotonic(), _cpu_with_children()
    client = Client(server, Path(work_dir) / f"client-{server.port}.cnf")
    small_target = int(changes * (1 - big_share))
    chunk: list[str] = []
    while counts.changes < small_target:
        chunk.append(shop.one(counts))
        if len(chunk) >= 500:
            client.write("".join(chunk))
            chunk = []
    big_rows = max(1, (changes - counts.changes) // max(1, big_count))
    for kind in range(big_count):
        chunk.append(Shop.big(kind, big_rows))
        counts.transactions += 1
        counts.big_changes += big_rows
    counts.changes += counts.big_changes
    client.write("".join(chunk))
    counts.client_errors = client.finish()
    counts.seconds = time.monotonic() - started
    counts.writer_cpu_s = _cpu_with_children() - cpu
    return counts


def write_paced(server: Server, *, rate: float, seconds: float, seed_value: int, work_dir: str) -> Counts:
    """Small transactions at `rate` changes per second for `seconds`: every 5 ms, whatever is
    due is handed to the client (open loop: late work is caught up, never skipped;
    `behind_max_s` says how far behind its schedule the writer fell)."""
    conn = connect(server)
    shop = Shop(conn, random.Random(seed_value))
    conn.close()
    counts = Counts()
    client = Client(server, Path(work_dir) / f"client-{server.port}.cnf")
    started, cpu = time.monotonic(), _cpu_with_children()
    end = started + seconds
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = (now - started) * rate
        behind = (due - counts.changes) / rate
        counts.behind_max_s = max(counts.behind_max_s, behind if behind > 0.01 else 0.0)
        chunk = []
        while counts.changes < due:
            chunk.append(shop.one(counts))
        if chunk:
            client.write("".join(chunk))
        time.sleep(max(0.0, 0.005 - (time.monotonic() - now)))
    counts.client_errors = client.finish()
    counts.seconds = time.monotonic() - started
    counts.writer_cpu_s = _cpu_with_children() - cpu
    return counts
