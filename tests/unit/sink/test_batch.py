"""Unit tests for syncd.sink.postgres: reduce_ops (checked against an in-memory table) and SQL text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from syncd.model import (
    DeadLetter,
    Delete,
    IdentityClaim,
    IdentitySpace,
    RowOp,
    SoftDelete,
    TargetTable,
    Upsert,
)
from syncd.sink.batch import PlannedOp, reduce_ops
from syncd.sink.postgres import Statements
from tests.doubles import Tables
from tests.doubles import apply_ops as apply

HARD = TargetTable("public", "orders")
SOFT = TargetTable("public", "members")
KEY = ("channel", "id")
T0 = datetime(2024, 5, 1, tzinfo=UTC)


def origin(n: int = 0) -> DeadLetter:
    return DeadLetter("shop", "orders", "m", f"id={n}", "f:1", {}, "", event_pos=n)


def planned(*ops: RowOp) -> list[PlannedOp]:
    return [PlannedOp(op, origin(n)) for n, op in enumerate(ops)]


def upsert(key: int, v: int, table: TargetTable = HARD) -> Upsert:
    values: dict[str, Any] = {"channel": "shop", "id": key, "v": v}
    if table == SOFT:
        values["deleted_at"] = None
    return Upsert(table, KEY, values)


def delete(key: int, table: TargetTable = HARD) -> Delete:
    return Delete(table, KEY, ("shop", key))


def soft(key: int, seconds: int = 0, table: TargetTable = SOFT) -> SoftDelete:
    return SoftDelete(table, KEY, ("shop", key), "deleted_at", T0 + timedelta(seconds=seconds))


def ops_of(reduced: list[PlannedOp]) -> list[RowOp]:
    return [p.op for p in reduced]


class TestReduceOps:
    def test_last_write_wins_per_key(self) -> None:
        """Several upserts of one key reduce to the last one, with its origin."""
        reduced = reduce_ops(planned(upsert(1, 1), upsert(1, 2), upsert(1, 3)))
        assert ops_of(reduced) == [upsert(1, 3)]
        assert reduced[0].origin == origin(2)

    def test_delete_then_upsert_is_the_upsert(self) -> None:
        """A row deleted and inserted again is just upserted."""
        assert ops_of(reduce_ops(planned(delete(1), upsert(1, 5)))) == [upsert(1, 5)]

    def test_upsert_then_delete_is_the_delete(self) -> None:
        """A row upserted and then deleted is just deleted."""
        assert ops_of(reduce_ops(planned(upsert(1, 5), delete(1)))) == [delete(1)]

    def test_upsert_then_soft_delete_is_one_marked_upsert(self) -> None:
        """An upsert followed by a soft delete becomes one upsert with the soft column set."""
        reduced = reduce_ops(planned(upsert(1, 5, SOFT), soft(1, 9)))
        assert ops_of(reduced) == [
            Upsert(SOFT, KEY, {"channel": "shop", "id": 1, "v": 5, "deleted_at": T0 + timedelta(seconds=9)})]
        assert reduced[0].origin == origin(1)

    def test_soft_delete_then_upsert_is_the_upsert(self) -> None:
        """A soft-deleted row that comes back is just upserted (its soft column NULL)."""
        assert ops_of(reduce_ops(planned(soft(1), upsert(1, 5, SOFT)))) == [upsert(1, 5, SOFT)]

    def test_different_keys_and_tables_are_kept(self) -> None:
        """Operations on different keys, or the same key in different tables, are all kept."""
        ops = [upsert(1, 1), upsert(2, 2), delete(3), upsert(1, 1, SOFT), soft(2)]
        assert ops_of(reduce_ops(planned(*ops))) == ops

    def test_order_follows_each_keys_last_operation(self) -> None:
        """A key touched again moves after keys whose last operation came earlier."""
        reduced = reduce_ops(planned(upsert(1, 1), upsert(2, 2), upsert(1, 3)))
        assert ops_of(reduced) == [upsert(2, 2), upsert(1, 3)]

    def test_a_later_upsert_still_claims_the_keys_of_the_earlier_versions(self) -> None:
        """A phone changed twice within a batch: the kept upsert claims each earlier key set first."""
        def claimed(phone: str) -> Upsert:
            claim = IdentityClaim(IdentitySpace("person"), "m", "shop", SOFT, '{"id":1}', (("phone", phone),),
                                  None, {}, T0, "f:1")
            return Upsert(SOFT, KEY, {"channel": "shop", "id": 1, "v": 0, "deleted_at": None}, identity=claim)

        [kept] = ops_of(reduce_ops(planned(claimed("a"), claimed("b"), claimed("b"), claimed("c"))))
        assert isinstance(kept, Upsert) and kept.identity is not None
        assert kept.identity.keys == (("phone", "c"),)
        assert kept.identity.earlier == ((("phone", "a"),), (("phone", "b"),), (("phone", "b"),))
        [same] = ops_of(reduce_ops(planned(claimed("a"), claimed("a"))))
        assert isinstance(same, Upsert) and same.identity is not None and same.identity.earlier == ()

    def test_empty(self) -> None:
        """Nothing reduces to nothing."""
        assert reduce_ops([]) == []

    def test_delete_then_soft_delete_leaves_the_row_deleted(self) -> None:
        """A hard delete followed by a soft delete of the same key leaves no row."""
        before: Tables = {(SOFT, ("shop", 1)): {"channel": "shop", "id": 1, "v": 0, "deleted_at": None}}
        ops = [delete(1, SOFT), soft(1)]
        assert apply(before, ops) == {}
        assert apply(before, ops_of(reduce_ops(planned(*ops)))) == {}


KEYS = st.integers(min_value=1, max_value=3)
INITIAL_ROW = st.fixed_dictionaries({"v": st.integers(0, 9), "deleted_at": st.none()})


def initial_states(tables: list[TargetTable]) -> st.SearchStrategy[Tables]:
    """Target rows that exist before the batch: some keys of each table, or none."""
    return st.dictionaries(
        st.tuples(st.sampled_from(tables), KEYS).map(lambda tk: (tk[0], ("shop", tk[1]))),
        INITIAL_ROW,
    ).map(lambda rows: {k: {"channel": "shop", "id": k[1][1], **(
        {"v": r["v"]} if k[0] == HARD else r)} for k, r in rows.items()})


# What one mapping can produce: a hard-delete table gets upserts and deletes, a soft-delete table
# upserts and soft deletes (never both removal kinds on one table).
MAPPING_OPS = st.one_of(
    st.builds(upsert, KEYS, st.integers(0, 9), st.just(HARD)),
    st.builds(delete, KEYS, st.just(HARD)),
    st.builds(upsert, KEYS, st.integers(0, 9), st.just(SOFT)),
    st.builds(soft, KEYS, st.integers(0, 99), st.just(SOFT)),
)
ANY_OPS = st.one_of(MAPPING_OPS, st.builds(delete, KEYS, st.just(SOFT)))


class TestReduceOpsProperties:
    @given(initial_states([HARD, SOFT]), st.lists(MAPPING_OPS, max_size=20))
    def test_reduced_batch_has_the_same_effect(self, before: Tables, ops: list[RowOp]) -> None:
        """For what mappings produce, applying the reduced list equals applying every op in order."""
        reduced = ops_of(reduce_ops(planned(*ops)))
        assert apply(before, reduced) == apply(before, ops)

    @given(st.lists(ANY_OPS, max_size=20))
    def test_one_operation_per_row(self, ops: list[RowOp]) -> None:
        """The reduced list holds at most one operation per (table, key)."""
        keys = [(op.table, tuple(op.values[k] for k in op.key)) if isinstance(op, Upsert)
                else (op.table, op.key_values) for op in ops_of(reduce_ops(planned(*ops)))]
        assert len(keys) == len(set(keys))

    @given(initial_states([SOFT]), st.lists(ANY_OPS, max_size=20))
    @example({(SOFT, ("shop", 1)): {"channel": "shop", "id": 1, "v": 0, "deleted_at": None}},
             [delete(1, SOFT), soft(1)])
    @settings(phases=(Phase.explicit, Phase.generate))
    def test_reduced_batch_has_the_same_effect_for_any_mix(self, before: Tables, ops: list[RowOp]) -> None:
        """Even mixing hard and soft deletes on one table, reduction keeps the end result."""
        reduced = ops_of(reduce_ops(planned(*ops)))
        assert apply(before, reduced) == apply(before, ops)


class TestStatements:
    def test_upsert_updates_non_key_columns(self) -> None:
        """An upsert inserts every column and, on key conflict, sets the non-key ones from EXCLUDED
        (the table aliased, so that EXCLUDED means the proposed row even in a table named so)."""
        text = Statements().upsert(upsert(1, 5, SOFT)).as_string(None)
        assert text == (
            'INSERT INTO "public"."members" AS "syncd_target" ("channel", "id", "v", "deleted_at") '
            'VALUES (%s, %s, %s, %s) ON CONFLICT ("channel", "id") DO UPDATE SET "v" = "excluded"."v", '
            '"deleted_at" = "excluded"."deleted_at"'
        )

    def test_upsert_of_only_key_columns_does_nothing_on_conflict(self) -> None:
        """With only key columns there is nothing to update: ON CONFLICT DO NOTHING."""
        op = Upsert(HARD, KEY, {"channel": "shop", "id": 1})
        assert Statements().upsert(op).as_string(None) == (
            'INSERT INTO "public"."orders" AS "syncd_target" ("channel", "id") VALUES (%s, %s) '
            'ON CONFLICT ("channel", "id") DO NOTHING'
        )

    def test_delete(self) -> None:
        """A delete matches every key column."""
        assert Statements().delete(delete(1)).as_string(None) == (
            'DELETE FROM "public"."orders" WHERE "channel" = %s AND "id" = %s')

    def test_soft_delete(self) -> None:
        """A soft delete sets the soft column of the row with the key."""
        assert Statements().soft_delete(soft(1)).as_string(None) == (
            'UPDATE "public"."members" SET "deleted_at" = %s WHERE "channel" = %s AND "id" = %s')

    def test_identifiers_are_quoted(self) -> None:
        """Odd schema, table and column names (quotes, CJK, a `%` spelled as a Unicode escape so
        that psycopg never reads it as a placeholder) are quoted identifiers."""
        op = Upsert(TargetTable("Sales", 'order "x"'), ("id",), {"id": 1, "名称": "a", "rate%": 2})
        assert Statements().upsert(op).as_string(None) == (
            'INSERT INTO "Sales"."order ""x""" AS "syncd_target" ("id", "名称", U&"rate\\0025") '
            'VALUES (%s, %s, %s) ON CONFLICT ("id") DO UPDATE SET "名称" = "excluded"."名称", '
            'U&"rate\\0025" = "excluded".U&"rate\\0025"'
        )

    def test_statements_are_cached_per_shape(self) -> None:
        """The same table and column shape reuses one statement object; another shape does not."""
        statements = Statements()
        first = statements.upsert(upsert(1, 1))
        assert statements.upsert(upsert(2, 7)) is first
        assert statements.upsert(Upsert(HARD, KEY, {"id": 1, "channel": "shop", "v": 1})) is not first
        assert statements.delete(delete(1)) is statements.delete(delete(2))

    def test_for_op_parameters_follow_the_placeholders(self) -> None:
        """for_op gives values in column order, key values for deletes, and the time first for soft."""
        statements = Statements()
        _, params = statements.for_op(upsert(1, 5, SOFT))
        assert params == ("shop", 1, 5, None)
        assert statements.for_op(delete(3))[1] == ("shop", 3)
        assert statements.for_op(soft(4, 1))[1] == (T0 + timedelta(seconds=1), "shop", 4)
