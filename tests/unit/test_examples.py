"""The examples shipped with syncd stay valid: config.example.yaml and mappings/."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from syncd.cli import main
from syncd.config import load_config
from syncd.mapping.load import compile_all, load_specs

REPO = Path(__file__).resolve().parents[2]


class TestExamples:
    def test_example_config_and_mappings_load(self) -> None:
        """config.example.yaml parses and every mapping in mappings/ compiles."""
        config = load_config(REPO / "config.example.yaml")
        assert set(config.sources) == {"shop", "app"}
        specs = load_specs(config)
        assert {s.name for s in specs} >= {"shop_orders", "shop_members", "app_orders", "app_members"}
        plans = compile_all(config, specs, None)
        assert sum(len(p.mappings) for p in plans.values()) == len(specs)

    def test_issue_example_mapping_is_shipped_verbatim(self) -> None:
        """mappings/shop.yaml carries the shop_orders mapping exactly as documented."""
        text = (REPO / "mappings" / "shop.yaml").read_text(encoding="utf-8")
        assert "map: {待支付: 0, 已支付: 1, 已发货: 2, 已完成: 3, 已取消: 4}" in text
        assert "amount: {from: amount_text, transform: parse_amount}" in text

    def test_validate_counts_every_file_it_read(self) -> None:
        """mappings/identity.yaml holds identities only: it is one of the files validated."""
        result = CliRunner().invoke(main, ["validate", "--config", str(REPO / "config.example.yaml")])
        assert result.exit_code == 0, result.output
        assert result.output.rstrip().endswith("ok: 4 mappings in 3 files")
