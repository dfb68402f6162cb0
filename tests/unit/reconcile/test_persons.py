"""Reconcile of person-id columns, pure parts: layouts, expected values from stored links, fingerprints."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from syncd.identity import core
from syncd.identity.keys import record_name
from syncd.identity.preview import Wanted
from syncd.mapping.plan import ChangeContext, Mapping, compile_mapping, map_change
from syncd.mapping.spec import load_mappings
from syncd.mapping.transforms import TransformContext
from syncd.model import ColumnType, Op, RowChange, Upsert
from syncd.reconcile.compare import compare_chunk, expected_canon
from syncd.reconcile.expected import Expected, chunk_mapper, map_chunk
from syncd.reconcile.layout import Layout, build_layout
from syncd.reconcile.persons import NEW_PERSON, PersonColumns, person_columns
from syncd.reconcile.verified import fingerprint

MAPPINGS = """\
identities:
  - name: person
mappings:
  - name: shop_members
    source: shop
    table: users
    target: members
    key: [channel, source_user_id]
    columns:
      channel: {value: shop}
      source_user_id: id
      display_name: name
    identity:
      name: person
      column: person_id
      match:
        phone: phone
        shop_user: id
  - name: shop_orders
    source: shop
    table: orders
    target: orders
    key: [channel, source_order_id]
    columns:
      channel: {value: shop}
      source_order_id: id
      note: note
      member_id: {lookup: {identity: person, key: shop_user, by: user_id}}
"""

MEMBER_TYPES = {n: ColumnType(n, t) for n, t in [("channel", "text"), ("source_user_id", "bigint"),
                                                  ("display_name", "text"), ("person_id", "bigint")]}
ORDER_TYPES = {n: ColumnType(n, t) for n, t in [("channel", "text"), ("source_order_id", "bigint"),
                                                 ("note", "text"), ("member_id", "bigint")]}
USER_SOURCE = {"id": "int", "name": "varchar", "phone": "varchar"}
ORDER_SOURCE = {"id": "bigint", "user_id": "int", "note": "varchar"}
PLUS8 = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def mappings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Mapping]:
    folder = tmp_path_factory.mktemp("mappings")
    (folder / "m.yaml").write_text(textwrap.dedent(MAPPINGS))
    ctx = TransformContext(secret=lambda kind, name: "", source_timezone=PLUS8)
    return {s.name: compile_mapping(s, ctx, "public") for s in load_mappings([folder], {"shop"})}


class Reads:
    """A stand-in for the identity state: one store, and every read it was asked for."""

    def __init__(self, store: core.LinkStore) -> None:
        self.store = store
        self.asked: list[Wanted] = []

    def __call__(self, wanted: Wanted) -> dict[str, core.LinkStore]:
        self.asked.append(wanted)
        return {"person": self.store}


def upsert(mapping: Mapping, row: dict[str, object]) -> Upsert:
    change = RowChange(mapping.spec.table, Op.INSERT, None, row, key_columns=("id",))
    [op] = map_change(mapping, change, ChangeContext("shop", "mysql-bin.000001:4", datetime.now(UTC))).ops
    assert isinstance(op, Upsert)
    return op


def expected(layout: Layout, rows: list[dict[str, object]], persons: PersonColumns) -> Expected:
    """The chunk of these source rows through the mapping, person columns read through `persons`."""
    names = list(layout.source_columns)
    tuples = [tuple(r.get(n) for n in names) for r in rows]
    types = MEMBER_TYPES | ORDER_TYPES
    canons = [expected_canon(types[n]) for n in (*layout.target_key, *layout.compared)]
    return map_chunk(layout, names, tuples, canons, chunk_mapper(layout), persons=persons)


class TestLayout:
    def test_person_columns_are_compared_after_the_mapped_ones(self, mappings: dict[str, Mapping]) -> None:
        members = build_layout(mappings["shop_members"], ("id",), USER_SOURCE, MEMBER_TYPES)
        assert person_columns(mappings["shop_members"]) == ("person_id",)
        assert (members.compared, members.mapped, members.persons) == (
            ("display_name", "person_id"), ("display_name",), ("person_id",))
        orders = build_layout(mappings["shop_orders"], ("id",), ORDER_SOURCE, ORDER_TYPES)
        assert (orders.compared, orders.mapped) == (("note", "member_id"), ("note",))
        keys_only = replace(orders, compared=(), persons=())
        assert keys_only.mapped == ()

    def test_chunks_verified_without_person_columns_are_not_used(self, mappings: dict[str, Mapping]) -> None:
        layout = build_layout(mappings["shop_orders"], ("id",), ORDER_SOURCE, ORDER_TYPES)
        without = replace(layout, compared=layout.mapped, persons=())

        def print_(chosen: Layout) -> str:
            return fingerprint(chosen, source_timezone=PLUS8, session_zone=UTC, target_types=ORDER_TYPES,
                               source_types=ORDER_SOURCE, versions=["10.11", "16"])

        assert print_(layout) != print_(without)


class TestExpectedPersons:
    def test_a_record_has_the_person_of_its_stored_contribution(self, mappings: dict[str, Mapping]) -> None:
        mapping = mappings["shop_members"]
        layout = build_layout(mapping, ("id",), USER_SOURCE, MEMBER_TYPES)
        rows = [{"id": 1, "name": "张伟", "phone": "13812345678"}, {"id": 2, "name": "李娜", "phone": None},
                {"id": 3, "name": "王芳", "phone": None}]
        claims = [upsert(mapping, r).identity for r in rows]
        names = [record_name(c.mapping, c.record) for c in claims if c is not None]
        store = core.LinkStore.counting(10)
        store.records = {names[0]: core.RecordState(4, frozenset()),
                         names[1]: core.RecordState(2, frozenset(), alive=False)}  # deleted, seen again
        reads = Reads(store)
        out = expected(layout, rows, PersonColumns(mapping, reads))
        assert out.rows == {("shop", 1): ("张伟", 4), ("shop", 2): ("李娜", 2),
                            ("shop", 3): ("王芳", NEW_PERSON)}
        assert reads.asked == [{"person": (set(), set(names))}]  # one read for the chunk
        # a record syncd has no contribution of differs from whatever the target holds
        actual = {("shop", 1): ("张伟", 4), ("shop", 2): ("李娜", 2), ("shop", 3): ("王芳", 3)}
        assert compare_chunk(out.rows, actual, layout.compared).differ == [(("shop", 3), ("person_id",))]

    def test_a_lookup_has_the_person_of_its_key_and_null_without_a_key(self,
                                                                       mappings: dict[str, Mapping]) -> None:
        mapping = mappings["shop_orders"]
        layout = build_layout(mapping, ("id",), ORDER_SOURCE, ORDER_TYPES)
        rows = [{"id": 100, "user_id": 1, "note": "a"}, {"id": 101, "user_id": None, "note": "b"},
                {"id": 102, "user_id": 9, "note": "c"}]
        [linked, _, unlinked] = [upsert(mapping, r).lookups[0] for r in rows]
        store = core.LinkStore.counting(10)
        store.links = {(linked.kind, linked.key_hash): 5}
        reads = Reads(store)
        out = expected(layout, rows, PersonColumns(mapping, reads))
        assert out.rows == {("shop", 100): ("a", 5), ("shop", 101): ("b", None),
                            ("shop", 102): ("c", NEW_PERSON)}
        keys = {(linked.kind, linked.key_hash), (unlinked.kind, unlinked.key_hash)}
        assert reads.asked == [{"person": (keys, set())}]
        actual = {("shop", 100): ("a", 6), ("shop", 101): ("b", 5), ("shop", 102): ("c", None)}
        diff = compare_chunk(out.rows, actual, layout.compared)
        assert [k for k, columns in diff.differ if columns == ("member_id",)] == [
            ("shop", 100), ("shop", 101), ("shop", 102)]

    def test_rows_without_keys_read_nothing(self, mappings: dict[str, Mapping]) -> None:
        mapping = mappings["shop_orders"]
        layout = build_layout(mapping, ("id",), ORDER_SOURCE, ORDER_TYPES)
        reads = Reads(core.LinkStore.counting())
        out = expected(layout, [{"id": 1, "user_id": None, "note": "x"}], PersonColumns(mapping, reads))
        assert out.rows == {("shop", 1): ("x", None)}
        assert reads.asked == []

    def test_a_key_the_sink_cannot_hash_makes_the_row_unmappable(self, mappings: dict[str, Mapping]) -> None:
        mapping = mappings["shop_orders"]
        layout = build_layout(mapping, ("id",), ORDER_SOURCE, ORDER_TYPES)
        bad = {"id": 7, "user_id": 1.5, "note": "x"}
        change = RowChange(mapping.spec.table, Op.INSERT, None, bad, key_columns=("id",))
        [letter] = map_change(mapping, change, ChangeContext("shop", "p", datetime.now(UTC))).dead_letters
        out = expected(layout, [bad, {"id": 8, "user_id": None, "note": "y"}],
                       PersonColumns(mapping, Reads(core.LinkStore.counting())))
        assert out.rows == {("shop", 8): ("y", None)}
        assert out.unmappable == [((7,), letter.reason)]
        assert out.ignore == {("shop", 7)}

    def test_a_match_key_the_sink_cannot_hash_makes_the_row_unmappable(self,
                                                                       mappings: dict[str, Mapping]) -> None:
        mapping = mappings["shop_members"]
        layout = build_layout(mapping, ("id",), USER_SOURCE, MEMBER_TYPES)
        bad = {"id": 7, "name": "x", "phone": 1.5}
        change = RowChange(mapping.spec.table, Op.INSERT, None, bad, key_columns=("id",))
        [letter] = map_change(mapping, change, ChangeContext("shop", "p", datetime.now(UTC))).dead_letters
        store = core.LinkStore.counting()
        out = expected(layout, [bad], PersonColumns(mapping, Reads(store)))
        assert out.rows == {}
        assert out.unmappable == [((7,), letter.reason)]
        assert out.ignore == {("shop", 7)}

    def test_new_person_is_equal_to_no_stored_value(self) -> None:
        canon = expected_canon(ColumnType("person_id", "bigint"))
        assert canon(NEW_PERSON) is NEW_PERSON
        assert all(value != NEW_PERSON for value in (None, 0, 1, "NEW_PERSON"))
        assert repr(NEW_PERSON) == "NEW_PERSON"
