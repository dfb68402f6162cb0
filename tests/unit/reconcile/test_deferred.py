"""The deferred columns' pure parts: what a range reads of the source, and counts of digests."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

from syncd.mapping.plan import compile_mapping
from syncd.mapping.spec import load_mappings
from syncd.mapping.transforms import TransformContext
from syncd.model import ColumnType
from syncd.reconcile.deferred import found_rows, needed_sources, odd_buckets
from syncd.reconcile.layout import build_layout

MAPPING = """
mappings:
  - name: m
    source: shop
    table: orders
    target: orders
    key: [channel, source_id]
    where: {status: {ne: cancelled}}
    columns:
      channel: {value: shop}
      source_id: id
      order_no: order_no
      extra: extra
      coupon: {from: extra, transform: {json_get: "$.coupon"}}
      phone_id: {from: phone, transform: {hash: {salt_env: SALT}}}
"""
SOURCE_TYPES = {"id": "bigint", "order_no": "varchar", "extra": "json", "phone": "varchar",
                "status": "varchar", "note": "text"}
TARGET = {"channel": "text", "source_id": "bigint", "order_no": "text", "extra": "jsonb", "coupon": "text",
          "phone_id": "text"}


def layout(tmp_path: Path):
    path = tmp_path / "m.yaml"
    path.write_text(MAPPING)
    spec = load_mappings([path])[0]
    mapping = compile_mapping(spec, TransformContext(secret=lambda kind, name: "salt", source_timezone=UTC),
                              "public")
    types = {n: ColumnType(n, t) for n, t in TARGET.items()}
    return build_layout(mapping, ("id",), SOURCE_TYPES, types)


def test_a_range_reads_the_key_the_filter_and_the_deferred_columns_sources(tmp_path: Path) -> None:
    found = layout(tmp_path)
    assert set(needed_sources(found, ("coupon",))) == {"id", "status", "extra"}
    assert set(needed_sources(found, ("extra", "phone_id"))) == {"id", "status", "extra", "phone"}
    assert "order_no" not in needed_sources(found, ("coupon", "phone_id"))


def test_rows_of_a_digest_or_of_bucket_digests() -> None:
    assert found_rows((12, "d")) == 12
    assert found_rows({0: (3, "a"), 4: (5, "b")}) == 8
    assert found_rows({}) == 0


def test_odd_keys_name_their_buckets() -> None:
    assert odd_buckets([(5,), (25, 1), (-3,), (-45,)], 20) == {0, 1, -2}
