"""`syncd reconcile` of unified rows, pure parts: which spaces a run covers, refused rows."""

from __future__ import annotations

import textwrap
from datetime import UTC

import pytest

from syncd.config import Secret, SourceConfig
from syncd.mapping.load import SourcePlan
from syncd.mapping.plan import compile_mapping
from syncd.mapping.spec import load_mappings
from syncd.mapping.transforms import TransformContext
from syncd.model import TargetTable
from syncd.reconcile.engine import select_mappings
from syncd.reconcile.unified import spaces_in_scope

IDENTITIES = """\
identities:
  - name: person
    unified:
      table: persons
      columns:
        display_name: latest
  - name: device
"""

MAPPINGS = """\
mappings:
  - name: shop_members
    source: shop
    table: users
    target: members
    key: [id]
    columns:
      id: id
      display_name: name
    identity: {name: person, match: {phone: phone}}
  - name: shop_orders
    source: shop
    table: orders
    target: orders
    key: [id]
    columns:
      id: id
      member_id: {lookup: {identity: person, key: phone, by: phone}}
  - name: app_members
    source: app
    table: app_users
    target: app_members
    key: [id]
    columns:
      id: id
      display_name: nickname
    identity: {name: person, match: {phone: phone}}
  - name: app_devices
    source: app
    table: devices
    target: devices
    key: [id]
    columns:
      id: id
    identity: {name: device, match: {serial: serial}}
"""


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SourcePlan]:
    folder = tmp_path_factory.mktemp("mappings")
    (folder / "identity.yaml").write_text(textwrap.dedent(IDENTITIES))
    (folder / "m.yaml").write_text(textwrap.dedent(MAPPINGS))
    ctx = TransformContext(secret=lambda kind, name: "", source_timezone=UTC)
    plans = {name: SourcePlan(SourceConfig(name, "127.0.0.1", 3306, "u", Secret(), name, 1, UTC))
             for name in ("shop", "app")}
    for spec in load_mappings([folder], set(plans)):
        plans[spec.source].mappings.append(compile_mapping(spec, ctx, "public"))
    return plans


class TestScope:
    def test_the_spaces_of_the_selected_identity_blocks_with_every_contributing_source(
            self, plans: dict[str, SourcePlan]) -> None:
        [scope] = spaces_in_scope(plans, select_mappings(plans))
        assert scope.space.name == "person"  # 'device' has no unified table: nothing to compare
        assert scope.unified.table == TargetTable("public", "persons") and scope.unified.key == "person_id"
        assert scope.sources == ("app", "shop")
        [only_shop] = spaces_in_scope(plans, select_mappings(plans, source="shop"))
        assert only_shop.sources == ("app", "shop")  # the unified rows hold the app's contributions too

    def test_a_space_fed_by_the_sources_of_one_run_is_in_scope_once(
            self, plans: dict[str, SourcePlan]) -> None:
        selected = select_mappings(plans, sources=["shop", "app"])
        assert {plan.source.name for plan, _ in selected} == {"shop", "app"}
        assert [s.space.name for s in spaces_in_scope(plans, selected)] == ["person"]
        assert {plan.source.name for plan, _ in select_mappings(plans, sources=["app"])} == {"app"}

    def test_lookups_alone_bring_no_space(self, plans: dict[str, SourcePlan]) -> None:
        assert spaces_in_scope(plans, select_mappings(plans, mapping="shop_orders")) == []
        assert spaces_in_scope(plans, select_mappings(plans, mapping="app_devices")) == []
