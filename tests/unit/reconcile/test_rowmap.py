"""The column-wise chunk mapper gives exactly what map_row / map_key give, row by row."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

from syncd.errors import TransformError
from syncd.mapping.plan import compile_mapping, in_scope, map_key, map_row
from syncd.mapping.spec import load_mappings
from syncd.mapping.transforms import TransformContext
from syncd.reconcile.rowmap import ChunkMapper

MAPPING = """
mappings:
  - name: m
    source: shop
    table: orders
    target: orders
    key: [channel, source_order_id]
    where: {status: {ne: 已取消}}
    columns:
      channel: {value: shop}
      source_order_id: id
      order_no: order_no
      buyer_phone: {from: phone, transform: mask_phone}
      status: {from: status, map: {待支付: 0, 已支付: 1, 已发货: 2}}
      amount: {from: amount_text, transform: parse_amount}
      note: {from: [note, order_no], transform: coalesce}
      created_at: created_at
"""
NAMES = ["id", "order_no", "phone", "status", "amount_text", "note", "created_at"]
STATUSES = ["待支付", "已支付", "已发货", "已退款", "已取消"]


def mapping(tmp_path: Path, text_columns: tuple[str, ...] = ()):
    path = tmp_path / "m.yaml"
    path.write_text(MAPPING)
    spec = load_mappings([path])[0]
    ctx = TransformContext(secret=lambda kind, name: "salt", source_timezone=timezone(timedelta(hours=8)))
    return compile_mapping(spec, ctx, "public", {"created_at"} - set(text_columns), text_columns)


def rows(count: int, seed: int = 1) -> list[tuple]:
    rng = random.Random(seed)
    out = []
    for i in range(1, count + 1):
        amount = rng.choice(["1,299.50元", "100元", "¥8.8", "abc", None])
        out.append((i, f"S{i:06d}", rng.choice(["13812345678", "021-1234567", None]),
                    rng.choice(STATUSES), amount, rng.choice([None, "n"]),
                    rng.choice([datetime(2024, 5, 1, 12, 30, 45, 123000), None])))
    return out


def reference(m, data: list[tuple], outputs: list[str]) -> tuple[list, list, list]:
    keys, values, failed = [], [], []
    for row in data:
        image = dict(zip(NAMES, row, strict=True))
        try:
            if not in_scope(m, image):
                continue
            mapped = map_row(m, image)
        except TransformError as exc:
            failed.append(((row[0],), str(exc)))
            continue
        keys.append((row[0],))
        values.append(tuple(mapped[o] for o in outputs))
    return keys, values, failed


def test_same_as_map_row_over_several_chunks(tmp_path: Path) -> None:
    m = mapping(tmp_path)
    outputs = ["channel", "source_order_id", "status", "amount", "buyer_phone", "note", "created_at"]
    mapper = ChunkMapper(m, outputs)
    data = rows(3000)
    for start in range(0, len(data), 700):
        chunk = data[start:start + 700]
        got = mapper.map(NAMES, chunk, ["id"])
        keys, values, failed = reference(m, chunk, outputs)
        assert got.source_keys == keys
        assert got.values == values
        assert [(k, reason) for k, reason, _row in got.failed] == failed
    assert any(m for m in (mapper.columns[5].memo,) if m)  # status values are remembered


def test_copies_and_transforms_into_text_columns_are_text_as_map_row_makes_them(tmp_path: Path) -> None:
    """A copy into a text column is not passed through: its value is made text, as map_row does."""
    m = mapping(tmp_path, text_columns=("source_order_id", "created_at", "amount", "status"))
    outputs = ["channel", "source_order_id", "status", "amount", "created_at"]
    data = rows(500, seed=3)
    got = ChunkMapper(m, outputs).map(NAMES, data, ["id"])
    _keys, values, _failed = reference(m, data, outputs)
    assert got.values == values
    assert {type(v) for row in got.values for v in row[1:]} <= {str, type(None)}
    assert any(row[4] == "2024-05-01 12:30:45.123" for row in got.values)


def test_keys_only_is_map_key(tmp_path: Path) -> None:
    m = mapping(tmp_path)
    mapper = ChunkMapper(m, ["channel", "source_order_id"], keys_only=True)
    data = rows(200, seed=2)
    got = mapper.map(NAMES, data, ["id"])
    expected = [map_key(m, dict(zip(NAMES, r, strict=True))) for r in data
                if in_scope(m, dict(zip(NAMES, r, strict=True)))]
    assert got.values == expected
    assert not got.failed


def test_missing_source_column_fails_every_row(tmp_path: Path) -> None:
    m = mapping(tmp_path)
    mapper = ChunkMapper(m, ["channel", "source_order_id", "amount"])
    names = [n for n in NAMES if n != "amount_text"]
    data = [tuple(v for n, v in zip(NAMES, r, strict=True) if n != "amount_text") for r in rows(5)]
    got = mapper.map(names, data, ["id"])
    assert got.values == []
    assert got.failed and any("amount_text" in reason for _k, reason, _r in got.failed)



def test_only_outputs_computes_those_columns_from_their_sources_alone(tmp_path: Path) -> None:
    """Amounts that fail to parse are not read, and fail no row: only the outputs are computed."""
    m = mapping(tmp_path)
    outputs = ["channel", "source_order_id", "buyer_phone"]
    mapper = ChunkMapper(m, outputs, only_outputs=True)
    data = rows(400, seed=3)
    got = mapper.map(["id", "phone", "status"], [(r[0], r[2], r[3]) for r in data], ["id"])
    kept = [dict(zip(NAMES, r, strict=True)) for r in data]
    kept = [image for image in kept if in_scope(m, image)]
    plans = {c.target: c for c in m.columns}
    assert got.source_keys == [(image["id"],) for image in kept]
    assert got.values == [tuple(plans[o].compute(image) for o in outputs) for image in kept]
    assert not got.failed and len(mapper.columns) == len(outputs)
