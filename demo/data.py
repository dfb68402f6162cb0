"""Deterministic sample data for the legacy shop and app databases, and a live workload.

Everything is drawn from a seeded `random.Random`, so two loads with the same arguments
produce the same rows. The first `SHOWCASE` rows of each table are fixed examples that the
demo prints side by side with their mapped target rows; the live workload never touches them.
"""

from __future__ import annotations

import abc
import random
import string
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, ClassVar

import pymysql

SHOWCASE = 3
"""Users and orders with ids 1..SHOWCASE are fixed examples (see the *_SHOWCASE constants)."""

BATCH = 500
LOCAL = timezone(timedelta(hours=8))
"""The sources store local time (+08:00) in DATETIME columns."""
EPOCH = datetime(2023, 1, 1, 8, 0, 0)
SPAN_SECONDS = 600 * 24 * 3600

SHOP_STATUSES = ("待支付", "已支付", "已发货", "已完成", "已取消")
STATUS_WEIGHTS = (10, 15, 15, 50, 10)
"""How often each status occurs in the initial load (the same for both sources)."""
SHOP_NEXT = {"待支付": ("已支付", "已支付", "已取消"), "已支付": ("已发货",), "已发货": ("已完成",)}
APP_STATUSES = (10, 20, 30, 40, 90)
APP_NEXT = {10: (20, 20, 90), 20: (30,), 30: (40,)}

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖"
    "田董袁潘蒋蔡余杜叶程苏魏吕丁沈姚卢姜崔钟谭陆汪范金石廖贾夏韦方白邹"
    "孟熊秦邱江薛段雷侯龙史陶贺顾毛郝龚邵万钱严武戴孔汤"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉萍红玲"
    "芬燕彬鹏辉晨曦雨欣怡轩浩然梓涵诺思远佳琪"
)
NICKNAMES = (
    "小鱼", "阿星", "橘子汽水", "晴天", "吃货一枚", "Momo", "夜猫子", "风铃", "奶茶续命",
    "Leo", "🌸花花", "大鹏", "Coco酱", "向日葵🌻", "快乐星球", "不吃香菜", "momo🐱", "旅行者",
    "Amy", "老王",
)
NOTES = (
    "请尽快发货", "周末送货，谢谢", "送给妈妈的生日礼物🎁", "发票抬头：上海某某科技有限公司",
    "不要放快递柜", "包装好一点哦😊", "急用！🚀", "已联系客服改地址", "换成蓝色款",
    "门口保安室代收", "工作日白天不在家，晚上七点后送", "麻烦开发票📄", "第二次购买了，好评👍",
    "礼盒装，别放价格单",
)
MAIL_DOMAINS = ("qq.com", "163.com", "126.com", "gmail.com", "foxmail.com", "sina.com")
ID_CHARS = string.ascii_letters + string.digits + "-_"

# The fixed examples. Shop order 1 is the one from the docs: 13812345678 -> 138****5678,
# 已支付 -> 1, "1,299.50元" -> 1299.50; app order 1 is its twin: 20 -> 1, 129950 分 -> 1299.50.
SHOP_USERS_SHOWCASE = (
    ("张伟", "13812345678", "zhangwei@163.com", datetime(2023, 3, 8, 9, 30, 0)),
    ("李秀英", "13998765432", None, datetime(2023, 5, 20, 20, 5, 13)),
    ("欧阳晨曦", None, "oyxc@qq.com", datetime(2024, 1, 1, 0, 0, 1)),
)
SHOP_ORDERS_SHOWCASE = (
    ("S2024061800000001", 1, "13812345678", "已支付", "1,299.50元", 0, "送给妈妈的生日礼物🎁",
     datetime(2024, 6, 18, 10, 24, 36, 123000)),
    ("S2024061800000002", 2, "13998765432", "待支付", "88元", 0, None,
     datetime(2024, 6, 18, 23, 59, 59, 999000)),
    ("S2024061900000003", 3, None, "已完成", "¥2,350.00", 0, "急用！🚀",
     datetime(2024, 6, 19, 0, 0, 0, 1000)),
)
APP_USERS_SHOWCASE = (
    ("橘子汽水🍊", "13812345678", "oUnion0000000000000000000001", "oOpen00000000000000000000001", 0,
     datetime(2023, 4, 1, 12, 0, 0)),
    ("夜猫子", None, "oUnion0000000000000000000002", "oOpen00000000000000000000002", 1,
     datetime(2023, 7, 7, 7, 7, 7)),
    ("Leo", "15012345678", None, "oOpen00000000000000000000003", 0,
     datetime(2024, 2, 29, 23, 0, 0)),
)
APP_ORDERS_SHOWCASE = (
    ("A20240618102436000001", 1, 20, 129950, "周末送货，谢谢😊",
     datetime(2024, 6, 18, 10, 24, 36, 123456)),
    ("A20240618235959000002", 2, 10, 8800, None, datetime(2024, 6, 18, 23, 59, 59, 999999)),
    ("A20240619000000000003", 3, 40, 235000, "礼盒装", datetime(2024, 6, 19, 0, 0, 0, 1)),
)

SHOP_USER_SQL = "INSERT INTO users (name, phone, email, created_at) VALUES (%s, %s, %s, %s)"
SHOP_ORDER_SQL = (
    "INSERT INTO orders (order_no, user_id, phone, status, amount_text, is_test, note, created_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
APP_USER_SQL = (
    "INSERT INTO app_users (nickname, phone, unionid, openid, marketing_opt_out, created_at)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)
APP_ORDER_SQL = (
    "INSERT INTO app_orders (order_sn, user_id, status_code, total_fen, remark, created_at)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)

Conn = pymysql.connections.Connection


# ---------------------------------------------------------------- value generators


def phone(rng: random.Random) -> str:
    """A mainland mobile number: 1[3-9] and nine digits."""
    return "1" + rng.choice("3456789") + "".join(rng.choices(string.digits, k=9))


def person_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2, 2))))


def nickname(rng: random.Random) -> str:
    base = rng.choice(NICKNAMES)
    return base if rng.random() < 0.5 else f"{base}{rng.randint(1, 999)}"


def email(rng: random.Random) -> str | None:
    if rng.random() < 0.25:
        return None
    if rng.random() < 0.5:
        return f"{rng.randint(10000, 9999999999)}@qq.com"
    user = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 10)))
    return f"{user}{rng.randint(1, 99)}@{rng.choice(MAIL_DOMAINS)}"


def wechat_id(rng: random.Random, prefix: str) -> str:
    """A 28-character WeChat-style openid/unionid."""
    return prefix + "".join(rng.choices(ID_CHARS, k=28 - len(prefix)))


def past_moment(rng: random.Random, digits: int) -> datetime:
    """A local time in 2023-2024 with `digits` fractional second digits (0, 3 or 6)."""
    moment = EPOCH + timedelta(seconds=rng.randrange(SPAN_SECONDS))
    return moment.replace(microsecond=_fraction(rng, digits))


def now_local(rng: random.Random, digits: int) -> datetime:
    """The current +08:00 wall-clock time, naive, as the legacy systems store it."""
    moment = datetime.now(LOCAL).replace(tzinfo=None)
    return moment.replace(microsecond=_fraction(rng, digits))


def _fraction(rng: random.Random, digits: int) -> int:
    unit = 10 ** (6 - digits)
    return rng.randrange(0, 1_000_000, unit) if digits else 0


def price_fen(rng: random.Random) -> int:
    """An order total in 分: mostly tens to hundreds of 元, sometimes thousands."""
    big = rng.random() < 0.15
    fen = rng.randint(100_000, 2_000_000) if big else rng.randint(500, 99_999)
    return fen - fen % 100 if rng.random() < 0.4 else fen


def amount_text(rng: random.Random, fen: int) -> str:
    """Money the way the shop writes it: "88元", "1,299.50元", now and then "¥1,299.50"."""
    yuan = Decimal(fen) / 100
    if rng.random() < 0.05:
        return f"¥{yuan:,.2f}"
    if fen % 100 == 0:
        return f"{fen // 100:,}元" if rng.random() < 0.5 else f"{fen // 100}元"
    return f"{yuan:,.2f}元"


def note(rng: random.Random, null_share: float = 0.35) -> str | None:
    return None if rng.random() < null_share else rng.choice(NOTES)


# ---------------------------------------------------------------- initial load


def load_shop(conn: Conn, users: int = 1000, orders: int = 3000, seed: int = 1) -> dict[str, int]:
    """Fill the shop's `users` and `orders` (ids 1..n, the first SHOWCASE ones fixed)."""
    rng = random.Random(seed)
    user_rows = list(SHOP_USERS_SHOWCASE) + [_shop_user(rng) for _ in range(users - SHOWCASE)]
    phones = [row[1] for row in user_rows]
    order_rows = list(SHOP_ORDERS_SHOWCASE)
    order_rows += [_shop_order(rng, seq, phones) for seq in range(SHOWCASE + 1, orders + 1)]
    insert_batches(conn, SHOP_USER_SQL, user_rows)
    insert_batches(conn, SHOP_ORDER_SQL, order_rows)
    return {"users": len(user_rows), "orders": len(order_rows)}


def load_app(conn: Conn, users: int = 1000, orders: int = 3000, seed: int = 2) -> dict[str, int]:
    """Fill the app's `app_users` and `app_orders` (ids 1..n, the first SHOWCASE ones fixed)."""
    rng = random.Random(seed)
    shop_phones = [row[1] for row in _shop_users_for_overlap(users)]
    user_rows = list(APP_USERS_SHOWCASE)
    user_rows += [_app_user(rng, seq, shop_phones) for seq in range(SHOWCASE + 1, users + 1)]
    order_rows = list(APP_ORDERS_SHOWCASE)
    order_rows += [_app_order(rng, seq, len(user_rows)) for seq in range(SHOWCASE + 1, orders + 1)]
    insert_batches(conn, APP_USER_SQL, user_rows)
    insert_batches(conn, APP_ORDER_SQL, order_rows)
    return {"app_users": len(user_rows), "app_orders": len(order_rows)}


def insert_batches(conn: Conn, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """executemany in batches of BATCH rows (PyMySQL turns each into one multi-row INSERT)."""
    with conn.cursor() as cur:
        for start in range(0, len(rows), BATCH):
            cur.executemany(sql, rows[start:start + BATCH])
    conn.commit()


def _shop_users_for_overlap(users: int) -> list[tuple[Any, ...]]:
    """The shop's users as load_shop's default seed makes them, so that about one app user in
    five shares a phone number with a shop user (one person, two channels)."""
    rng = random.Random(1)
    return list(SHOP_USERS_SHOWCASE) + [_shop_user(rng) for _ in range(users - SHOWCASE)]


def _shop_user(rng: random.Random) -> tuple[Any, ...]:
    number = phone(rng) if rng.random() < 0.95 else None
    return (person_name(rng), number, email(rng), past_moment(rng, 0))


def _shop_order(rng: random.Random, seq: int, phones: Sequence[str | None]) -> tuple[Any, ...]:
    user_id = rng.randint(1, len(phones))
    buyer = phones[user_id - 1] if rng.random() < 0.9 else phone(rng)
    status = rng.choices(SHOP_STATUSES, STATUS_WEIGHTS)[0]
    created = past_moment(rng, 3)
    is_test = 1 if rng.random() < 0.02 else 0
    return (f"S{created:%Y%m%d}{seq:08d}", user_id, buyer, status,
            amount_text(rng, price_fen(rng)), is_test, note(rng), created)


def _app_user(rng: random.Random, seq: int, shop_phones: Sequence[str | None]) -> tuple[Any, ...]:
    roll = rng.random()
    if roll < 0.2:
        number = rng.choice(shop_phones)
    elif roll < 0.6:
        number = phone(rng)
    else:
        number = None
    unionid = wechat_id(rng, "oU") if rng.random() < 0.9 else None
    opt_out = 1 if rng.random() < 0.15 else 0
    return (nickname(rng), number, unionid, wechat_id(rng, f"oP{seq:06d}"), opt_out,
            past_moment(rng, 0))


def _app_order(rng: random.Random, seq: int, users: int) -> tuple[Any, ...]:
    created = past_moment(rng, 6)
    status = rng.choices(APP_STATUSES, STATUS_WEIGHTS)[0]
    return (f"A{created:%Y%m%d%H%M%S}{seq:06d}", rng.randint(1, users), status, price_fen(rng),
            note(rng, 0.5), created)


# ---------------------------------------------------------------- live workload


@dataclass
class WorkloadStats:
    """What live_workload did, for the demo's report and for tests."""

    ops: Counter[str] = field(default_factory=Counter)
    """'<source>.<table> <insert|update|delete>' -> number of rows."""
    transactions: list[str] = field(default_factory=list)
    """One line per multi-statement transaction."""
    advanced: dict[str, list[int]] = field(default_factory=dict)
    """'<source>.<table>' -> ids of orders whose status moved on."""
    deleted: dict[str, list[int]] = field(default_factory=dict)
    """'<source>.<table>' -> ids of deleted rows."""
    steps: int = 0

    def count(self, table: str, op: str, rows: int = 1) -> None:
        self.ops[f"{table} {op}"] += rows

    def remember(self, bucket: dict[str, list[int]], table: str, row_id: int) -> None:
        bucket.setdefault(table, []).append(row_id)

    def lines(self) -> Iterator[str]:
        for key in sorted(self.ops):
            yield f"{key:<28} {self.ops[key]:>6}"
        for text in self.transactions:
            yield f"transaction: {text}"


class _Source(abc.ABC):
    """One source database under load: knows its live ids and the allowed next statuses."""

    name = ""
    orders_table = ""
    users_table = ""
    status_column = ""
    paid: Any = None
    next_status: ClassVar[dict[Any, tuple[Any, ...]]] = {}
    weights: ClassVar[dict[str, int]] = {
        "new_order": 30, "advance": 35, "edit_order": 10, "new_user": 8, "edit_user": 7,
        "delete_order": 6, "delete_user": 4,
    }

    def __init__(self, conn: Conn, rng: random.Random, stats: WorkloadStats) -> None:
        self.conn = conn
        self.rng = rng
        self.stats = stats
        conn.autocommit(True)
        self.order_status: dict[int, Any] = dict(self._fetch(
            f"SELECT id, {self.status_column} FROM {self.orders_table}"))
        self.order_ids = list(self.order_status)
        self.user_ids = [row[0] for row in self._fetch(f"SELECT id FROM {self.users_table}")]
        self.seq = 0

    # -- statements

    def _fetch(self, sql: str) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    def _run(self, sql: str, args: Sequence[Any]) -> int:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return int(cur.lastrowid or 0)

    def _number(self, prefix: str, created: datetime) -> str:
        """A new order number: time of day to the millisecond and a counter, unique across runs."""
        self.seq += 1
        millis = created.microsecond // 1000
        return f"{prefix}{created:%Y%m%d%H%M%S}{millis:03d}{self.seq % 10000:04d}"

    def _table(self, table: str) -> str:
        return f"{self.name}.{table}"

    # -- picking rows the workload may touch (never the showcase rows)

    def _pick(self, ids: list[int]) -> int | None:
        for _ in range(20):
            row_id = self.rng.choice(ids) if ids else 0
            if row_id > SHOWCASE:
                return row_id
        return None

    def _pick_advanceable(self) -> int | None:
        for _ in range(50):
            row_id = self._pick(self.order_ids)
            if row_id is not None and self.order_status[row_id] in self.next_status:
                return row_id
        return None

    # -- actions shared by both sources

    def step(self) -> None:
        actions = list(self.weights)
        action = self.rng.choices(actions, [self.weights[a] for a in actions])[0]
        getattr(self, action)()

    def advance(self, row_id: int | None = None, status: Any = None) -> None:
        """Moves an order to `status`, or to a random next status (待支付 -> 已支付 ...)."""
        row_id = row_id if row_id is not None else self._pick_advanceable()
        if row_id is None:
            return
        if status is None:
            status = self.rng.choice(self.next_status[self.order_status[row_id]])
        self._run(f"UPDATE {self.orders_table} SET {self.status_column} = %s WHERE id = %s",
                  (status, row_id))
        self.order_status[row_id] = status
        self.stats.count(self._table(self.orders_table), "update")
        self.stats.remember(self.stats.advanced, self._table(self.orders_table), row_id)

    def delete_order(self, row_id: int | None = None) -> None:
        row_id = row_id if row_id is not None else self._pick(self.order_ids)
        if row_id is None:
            return
        self._run(f"DELETE FROM {self.orders_table} WHERE id = %s", (row_id,))
        self.order_ids.remove(row_id)
        del self.order_status[row_id]
        self.stats.count(self._table(self.orders_table), "delete")
        self.stats.remember(self.stats.deleted, self._table(self.orders_table), row_id)

    def delete_user(self) -> None:
        row_id = self._pick(self.user_ids)
        if row_id is None:
            return
        self._run(f"DELETE FROM {self.users_table} WHERE id = %s", (row_id,))
        self.user_ids.remove(row_id)
        self.stats.count(self._table(self.users_table), "delete")
        self.stats.remember(self.stats.deleted, self._table(self.users_table), row_id)

    def _added_order(self, row_id: int, status: Any) -> None:
        self.order_ids.append(row_id)
        self.order_status[row_id] = status
        self.stats.count(self._table(self.orders_table), "insert")

    def _added_user(self, row_id: int) -> None:
        self.user_ids.append(row_id)
        self.stats.count(self._table(self.users_table), "insert")

    def transaction(self) -> None:
        """One multi-statement transaction: a new user places two orders and pays for one,
        and an older order is deleted, all or nothing."""
        victim = self._pick(self.order_ids)
        self.conn.begin()
        try:
            user_id = self.new_user()
            first = self.new_order(user_id)
            second = self.new_order(user_id)
            self.advance(first, self.paid)
            if victim is not None:
                self.delete_order(victim)
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        self.stats.transactions.append(
            f"{self.name}: new user {user_id}, orders {first} and {second} (one paid), "
            f"order {victim} deleted")

    # -- per-source statements

    @abc.abstractmethod
    def new_user(self) -> int:
        """Insert a user; return its id."""

    @abc.abstractmethod
    def new_order(self, user_id: int | None = None) -> int:
        """Insert an order; return its id."""

    @abc.abstractmethod
    def edit_order(self) -> None:
        """Change an order the way this source does."""

    @abc.abstractmethod
    def edit_user(self) -> None:
        """Change a user the way this source does."""


class _Shop(_Source):
    name = "shop"
    orders_table = "orders"
    users_table = "users"
    status_column = "status"
    paid = "已支付"
    next_status = SHOP_NEXT

    def new_user(self) -> int:
        row = (person_name(self.rng), phone(self.rng), email(self.rng), now_local(self.rng, 0))
        row_id = self._run(SHOP_USER_SQL, row)
        self._added_user(row_id)
        return row_id

    def new_order(self, user_id: int | None = None) -> int:
        user_id = user_id or self.rng.choice(self.user_ids)
        created = now_local(self.rng, 3)
        row = (self._number("S", created), user_id, phone(self.rng), "待支付",
               amount_text(self.rng, price_fen(self.rng)), 0, note(self.rng), created)
        row_id = self._run(SHOP_ORDER_SQL, row)
        self._added_order(row_id, "待支付")
        return row_id

    def edit_order(self) -> None:
        row_id = self._pick(self.order_ids)
        if row_id is not None:
            self._run("UPDATE orders SET note = %s WHERE id = %s", (note(self.rng, 0.2), row_id))
            self.stats.count("shop.orders", "update")

    def edit_user(self) -> None:
        row_id = self._pick(self.user_ids)
        if row_id is not None:
            self._run("UPDATE users SET phone = %s WHERE id = %s", (phone(self.rng), row_id))
            self.stats.count("shop.users", "update")


class _App(_Source):
    name = "app"
    orders_table = "app_orders"
    users_table = "app_users"
    status_column = "status_code"
    paid = 20
    next_status = APP_NEXT

    def new_user(self) -> int:
        self.seq += 1
        number = phone(self.rng) if self.rng.random() < 0.6 else None
        row = (nickname(self.rng), number, wechat_id(self.rng, "oU"),
               wechat_id(self.rng, f"oL{self.seq:08d}"), 0, now_local(self.rng, 0))
        row_id = self._run(APP_USER_SQL, row)
        self._added_user(row_id)
        return row_id

    def new_order(self, user_id: int | None = None) -> int:
        user_id = user_id or self.rng.choice(self.user_ids)
        created = now_local(self.rng, 6)
        row = (self._number("A", created), user_id, 10, price_fen(self.rng),
               note(self.rng, 0.5), created)
        row_id = self._run(APP_ORDER_SQL, row)
        self._added_order(row_id, 10)
        return row_id

    def edit_order(self) -> None:
        row_id = self._pick(self.order_ids)
        if row_id is not None:
            self._run("UPDATE app_orders SET remark = %s WHERE id = %s",
                      (note(self.rng, 0.2), row_id))
            self.stats.count("app.app_orders", "update")

    def edit_user(self) -> None:
        """The member opts out of (or back into) marketing messages."""
        row_id = self._pick(self.user_ids)
        if row_id is not None:
            self._run("UPDATE app_users SET marketing_opt_out = 1 - marketing_opt_out "
                      "WHERE id = %s", (row_id,))
            self.stats.count("app.app_users", "update")


def live_workload(shop_conn: Conn, app_conn: Conn, *, seconds: float | None = None,
                  n: int | None = None, seed: int = 3, pause: float = 0.005) -> WorkloadStats:
    """Inserts, status transitions, edits and deletes on both sources, one statement per
    transaction, plus one multi-statement transaction per source (about a quarter of the way
    in). Runs `n` steps (one per source each), or for `seconds`, whichever ends first; with
    neither, 200 steps. Switches both connections to autocommit."""
    if seconds is None and n is None:
        n = 200
    rng = random.Random(seed)
    stats = WorkloadStats()
    sources: list[_Source] = [_Shop(shop_conn, rng, stats), _App(app_conn, rng, stats)]
    deadline = time.monotonic() + seconds if seconds is not None else None
    txn_at = 25 if n is None else max(1, n // 4)
    while (n is None or stats.steps < n) and (deadline is None or time.monotonic() < deadline):
        for source in sources:
            source.step()
        stats.steps += 1
        if stats.steps == txn_at:
            for source in sources:
                source.transaction()
        time.sleep(pause)
    if not stats.transactions:
        for source in sources:
            source.transaction()
    return stats
