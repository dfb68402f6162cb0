"""Rules between mappings and syncd-filled columns, checked statically."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.errors import ConfigError
from syncd.mapping.spec import load_mappings

SHOP = """
  - name: shop_orders
    source: shop
    table: orders
    target: orders
{schema}    key: [channel, id]
    columns:
      channel: {{value: {channel}}}
      id: id
"""
APP = SHOP.replace("shop_orders", "app_orders").replace("source: shop", "source: app")


def load(tmp_path: Path, text: str, default_schema: str | None = "public") -> list:
    (tmp_path / "m.yaml").write_text("mappings:" + text, encoding="utf-8")
    return load_mappings([tmp_path], {"shop", "app"}, default_schema)


class TestFanInAcrossSchemas:
    def test_an_explicit_default_schema_is_the_same_table(self, tmp_path: Path) -> None:
        """`target_schema: public` and no target_schema write one table: their slices are compared."""
        text = (SHOP.format(schema="    target_schema: public\n", channel="shop")
                + APP.format(schema="", channel="shop"))
        with pytest.raises(ConfigError, match="write the same slice"):
            load(tmp_path, text)

    def test_distinct_slices_pass(self, tmp_path: Path) -> None:
        """Different constant key values are disjoint slices."""
        text = SHOP.format(schema="", channel="shop") + APP.format(schema="", channel="app")
        assert len(load(tmp_path, text)) == 2

    def test_number_and_text_constants_are_the_same_slice(self, tmp_path: Path) -> None:
        """`{value: 1}` and `{value: "1"}` land as the same text: they collide."""
        text = SHOP.format(schema="", channel="1") + APP.format(schema="", channel='"1"')
        with pytest.raises(ConfigError, match="write the same slice"):
            load(tmp_path, text)


class TestColumnsSyncdFills:
    def test_soft_delete_column_listed_under_columns_is_rejected(self, tmp_path: Path) -> None:
        """A soft_delete_column also listed under columns would be silently overridden."""
        text = SHOP.format(schema="", channel="shop").replace(
            "    key: [channel, id]\n", "    key: [channel, id]\n    delete: soft\n"
            "    soft_delete_column: deleted_at\n") + "      deleted_at: removed_at\n"
        with pytest.raises(ConfigError, match="'deleted_at' is the soft_delete_column, which syncd fills"):
            load(tmp_path, text)
