"""A quick measure of the copy and the reconcile through a realistic shop mapping.

`make bench` measures the daemon against its peers; this measures the two bulk paths a DBA
meets first on a table as shops keep them (Chinese status text, amounts as "100元" text,
phones, TEXT, DECIMAL, TIMESTAMP(6)) through the mapping they write for it (a value map,
mask_phone, parse_amount, a constant channel, soft delete), so that a change to either path can
be judged in a minute:

    .venv/bin/python -m devtools.shopbench [--rows 1000000] [--dir /tmp/syncd-shopbench] [--json]

It starts its own MariaDB and PostgreSQL under `--dir` (kept between runs with their data, so
the source table is built once), runs `syncd snapshot` into an empty target, then
`syncd reconcile` in sync (twice: the second pass may skip what the first remembered) and with
0.1% of the rows drifted (with, then without what earlier passes remembered), and prints rows/s
of each.
`--json` gives the table a JSON `extra` column, mapped as is, through `json_get` and through a
salted `hash` of the phone: columns without an exact SQL form, which a pass compares in Python
(docs/reconcile.md). Its source table is kept under a `--dir` of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from devtools.sandbox import MariaDBServer, PostgresServer

STATUSES = ("待支付", "已支付", "已发货", "已完成", "已取消")

SOURCE_SQL = """CREATE TABLE IF NOT EXISTS orders (
    id BIGINT PRIMARY KEY,
    order_no VARCHAR(32) NOT NULL,
    phone VARCHAR(20) NULL,
    status VARCHAR(8) NOT NULL,
    amount_text VARCHAR(32) NULL,
    freight DECIMAL(10,2) NOT NULL,
    note TEXT NULL,
    created_at TIMESTAMP(6) NULL{extra}
) CHARACTER SET utf8mb4"""

JSON_COLUMN = ",\n    extra JSON NULL"
JSON_VALUE = """,
       IF(seq % 7 = 0, NULL, JSON_OBJECT('coupon', CONCAT('C', seq % 1000), 'gift', seq % 2 = 0,
                                         'tags', JSON_ARRAY('团购', seq % 13)))"""
SALT_ENV = "SHOPBENCH_SALT"
JSON_MAPPING = f"""      extra: extra
      coupon: {{from: extra, transform: {{json_get: "$.coupon"}}}}
      phone_id: {{from: phone, transform: {{hash: {{salt_env: {SALT_ENV}, length: 32}}}}}}
"""
JSON_TARGET = ", extra jsonb, coupon text, phone_id text"

FILL_SQL = f"""INSERT INTO orders
SELECT seq, CONCAT('SO', LPAD(seq, 12, '0')),
       IF(seq % 50 = 0, NULL, CONCAT('13', LPAD(seq * 7919 % 1000000000, 9, '0'))),
       ELT(1 + seq % 5, {", ".join(f"'{s}'" for s in STATUSES)}),
       CASE seq % 4 WHEN 0 THEN CONCAT(seq % 100000, '元') WHEN 1 THEN CONCAT('¥', seq % 1000, '.50')
                    WHEN 2 THEN CONCAT(FORMAT(seq % 10000000, 2), '元') ELSE CONCAT(seq % 997, '.05') END,
       (seq % 3000) / 100,
       IF(seq % 3 = 0, NULL, CONCAT('备注 ', seq, ' 请尽快发货')),
       TIMESTAMP('2024-01-01 00:00:00') + INTERVAL seq * 997 MICROSECOND + INTERVAL seq SECOND{{extra}}
FROM seq_1_to_{{rows}}"""

TARGET_SQL = """CREATE TABLE orders (
    channel text NOT NULL, source_order_id bigint NOT NULL, order_no text, buyer_phone text,
    status smallint, amount numeric(12,2), freight numeric(10,2), note text, created_at timestamptz,
    deleted_at timestamptz{extra}, PRIMARY KEY (channel, source_order_id))"""

MAPPING = """mappings:
  - name: shop_orders
    source: shop
    table: orders
    target: orders
    key: [channel, source_order_id]
    delete: soft
    soft_delete_column: deleted_at
    columns:
      channel: {value: shop}
      source_order_id: id
      order_no: order_no
      buyer_phone: {from: phone, transform: mask_phone}
      status: {from: status, transform: strip, map: {待支付: 0, 已支付: 1, 已发货: 2, 已完成: 3, 已取消: 4}}
      amount: {from: amount_text, transform: {parse_amount: {scale: 2}}}
      freight: freight
      note: note
      created_at: created_at
"""

DRIFT = """UPDATE orders SET status = 9 WHERE source_order_id % 2000 = 7;
DELETE FROM orders WHERE source_order_id % 4000 = 11;
INSERT INTO orders (channel, source_order_id, order_no)
    SELECT 'shop', source_order_id + 100000000, 'extra' FROM orders WHERE source_order_id % 4000 = 13;
UPDATE orders SET note = note || ' ' WHERE source_order_id % 4000 = 17 AND note IS NOT NULL"""
JSON_DRIFT = "UPDATE orders SET coupon = 'X' WHERE source_order_id % 4000 = 19"


def _servers(base: Path) -> tuple[MariaDBServer, PostgresServer]:
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    mariadb = MariaDBServer(base / "mariadb", settings={"innodb_buffer_pool_size": "1G"})
    postgres = PostgresServer(base / "postgres", settings={"shared_buffers": "512MB"})
    mariadb.start()
    postgres.start()
    return mariadb, postgres


def _source(mariadb: MariaDBServer, rows: int, with_json: bool) -> None:
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS shopbench CHARACTER SET utf8mb4")
        cur.execute("USE shopbench")
        cur.execute(SOURCE_SQL.format(extra=JSON_COLUMN if with_json else ""))
        cur.execute("SELECT COUNT(*) FROM orders")
        if cur.fetchone()[0] != rows:
            cur.execute("TRUNCATE orders")
            cur.execute("SET SESSION time_zone = '+00:00'")
            cur.execute(FILL_SQL.format(rows=rows, extra=JSON_VALUE if with_json else ""))
        cur.execute("CREATE USER IF NOT EXISTS bench@'%' IDENTIFIED BY 'bench'")
        cur.execute("GRANT ALL ON *.* TO bench@'%'")


def _config(base: Path, mariadb: MariaDBServer, postgres: PostgresServer, with_json: bool) -> Path:
    (base / "mappings").mkdir(exist_ok=True)
    (base / "mappings" / "shop.yaml").write_text(MAPPING + (JSON_MAPPING if with_json else ""))
    path = base / "config.yaml"
    path.write_text(f"""target:
  dsn: postgresql://{postgres.superuser}@127.0.0.1:{postgres.port}/shopbench
  schema: public
  state_schema: syncd
sources:
  shop:
    host: 127.0.0.1
    port: {mariadb.port}
    user: bench
    password_env: BENCH_PASSWORD
    database: shopbench
    server_id: 4242
    timezone: "+08:00"
mappings: [mappings/]
log: {{level: info, format: json}}
""")
    return path


def _target(postgres: PostgresServer, with_json: bool) -> None:
    with postgres.connect() as conn:
        conn.execute("DROP DATABASE IF EXISTS shopbench WITH (FORCE)")
        conn.execute("CREATE DATABASE shopbench")
    with postgres.connect("shopbench") as conn:
        conn.execute(TARGET_SQL.format(extra=JSON_TARGET if with_json else ""))


def _syncd(config: Path, postgres: PostgresServer, *args: str) -> tuple[float, str]:
    env = {**os.environ, "BENCH_PASSWORD": "bench", "PGPASSWORD": postgres.superuser_password,
           SALT_ENV: "shopbench-pepper"}
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "syncd", *args, "--config", str(config)],
                          capture_output=True, text=True, env=env, check=False)
    seconds = time.monotonic() - began
    if done.returncode not in (0, 1):
        raise SystemExit(f"syncd {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/syncd-shopbench"))
    parser.add_argument("--json", action="store_true",
                        help="a JSON column, mapped as is, through json_get and a hash column")
    args = parser.parse_args()
    mariadb, postgres = _servers(args.dir)
    try:
        _source(mariadb, args.rows, args.json)
        _target(postgres, args.json)
        config = _config(args.dir, mariadb, postgres, args.json)
        seconds, _ = _syncd(config, postgres, "snapshot")
        print(f"snapshot: {args.rows / seconds:,.0f} rows/s ({seconds:.1f} s)")
        for label in ("in sync", "in sync, again"):
            seconds, out = _syncd(config, postgres, "reconcile", "--json")
            _report(label, json.loads(out), seconds)
        with postgres.connect("shopbench") as conn:
            conn.execute(DRIFT)
            if args.json:
                conn.execute(JSON_DRIFT)
        seconds, out = _syncd(config, postgres, "reconcile", "--json")
        _report("0.1% drift", json.loads(out), seconds)
        with postgres.connect("shopbench") as conn:
            conn.execute("DROP TABLE IF EXISTS syncd.reconcile_chunks")  # a first pass meets drift
        seconds, out = _syncd(config, postgres, "reconcile", "--json")
        _report("0.1% drift, nothing remembered", json.loads(out), seconds)
    finally:
        mariadb.stop()
        postgres.stop()


def _report(label: str, report: dict, seconds: float) -> None:
    [found] = report["mappings"]
    counts = {k: found[k]["count"] for k in ("missing", "extra", "differ")}
    print(f"reconcile {label}: {found['rows_compared'] / seconds:,.0f} rows/s ({seconds:.1f} s), "
          f"status {found['status']}, {counts}, pushed down {found['chunks_pushed_down']}/{found['chunks']}")


if __name__ == "__main__":
    main()
