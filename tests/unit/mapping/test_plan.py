"""Unit tests for syncd.mapping.plan: row changes in, target row operations or dead letters out."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.errors import MissingSourceColumn
from syncd.mapping.plan import (
    ChangeContext,
    Mapping,
    compile_mapping,
    map_change,
    map_key,
    map_row,
    row_key_text,
    source_key_text,
)
from syncd.mapping.spec import parse_document
from syncd.mapping.transforms import TransformContext
from syncd.model import DeadLetter, Delete, MappedChange, Op, RowChange, SoftDelete, TargetTable, Upsert
from syncd.yamlfile import Checker, Where, load_text

PLUS8 = timezone(timedelta(hours=8))
TCTX = TransformContext(secret=lambda kind, name: "salt", source_timezone=PLUS8)
COMMIT = datetime(2024, 5, 1, 10, 0, 5, tzinfo=UTC)
CTX = ChangeContext(source="shop", position="mysql-bin.000003:4567", commit_time=COMMIT)
ORDERS = TargetTable("public", "orders")
KEY = ("channel", "source_order_id")

ORDERS_MAPPING = """\
mappings:
  - name: shop_orders
    source: shop
    table: orders
    target: orders
    key: [channel, source_order_id]
    delete: {delete}
    where:
      is_test: 0
    columns:
      channel: {{value: shop}}
      source_order_id: id
      status:
        from: status
        map: {{待支付: 0, 已支付: 1, 已发货: 2, 已完成: 3, 已取消: 4}}
      amount: {{from: amount_text, transform: parse_amount}}
      created_at: created_at
"""


def compile_yaml(text: str, aware_columns: set[str] | None = None, tctx: TransformContext = TCTX) -> Mapping:
    check = Checker()
    (spec,) = parse_document(load_text(text, "m.yaml"), Where("m.yaml", 1, 1), check, None)
    assert check.problems == []
    return compile_mapping(spec, tctx, "public", aware_columns)


def orders(delete: str = "hard", extra: str = "", aware_columns: set[str] | None = None) -> Mapping:
    text = ORDERS_MAPPING.format(delete=delete).replace("    where:", extra + "    where:")
    return compile_yaml(text, aware_columns)


SOFT = "    soft_delete_column: deleted_at\n    commit_time_column: synced_at\n"


def row(order_id: Any = 5, status: Any = "已支付", is_test: Any = 0, **more: Any) -> dict[str, Any]:
    values = {"id": order_id, "status": status, "amount_text": "1,299.50元",
              "created_at": datetime(2024, 4, 30, 21, 15), "is_test": is_test, "phone": "13812345678"}
    values.update(more)
    return values


def mapped(order_id: Any = 5, status: int = 1) -> dict[str, Any]:
    return {"channel": "shop", "source_order_id": order_id, "status": status,
            "amount": Decimal("1299.50"), "created_at": datetime(2024, 4, 30, 21, 15, tzinfo=PLUS8)}


def insert(after: dict[str, Any], **kw: Any) -> RowChange:
    return RowChange("orders", Op.INSERT, None, after, key_columns=("id",), **kw)


def update(before: dict[str, Any], after: dict[str, Any]) -> RowChange:
    return RowChange("orders", Op.UPDATE, before, after, key_columns=("id",))


def delete(before: dict[str, Any]) -> RowChange:
    return RowChange("orders", Op.DELETE, before, None, key_columns=("id",))


class TestInsert:
    def test_in_scope_is_an_upsert_of_every_column(self) -> None:
        """An INSERT in scope becomes one Upsert with all mapped columns, converted."""
        result = map_change(orders(), insert(row()), CTX)
        assert result == MappedChange([Upsert(ORDERS, KEY, mapped())], [])

    def test_soft_and_commit_time_columns_are_filled(self) -> None:
        """With soft delete, the soft column is NULL; the commit-time column is the commit time."""
        result = map_change(orders("soft", SOFT), insert(row()), CTX)
        assert result.ops == [Upsert(ORDERS, KEY, {**mapped(), "synced_at": COMMIT, "deleted_at": None})]

    def test_out_of_scope_is_nothing(self) -> None:
        """An INSERT the filter rejects produces no operation and no dead letter."""
        assert map_change(orders(), insert(row(is_test=1)), CTX) == MappedChange([], [])

    def test_target_schema_override(self) -> None:
        """target_schema replaces the default schema in the operations' table."""
        mapping = orders(extra="    target_schema: sales\n")
        (op,) = map_change(mapping, insert(row()), CTX).ops
        assert op.table == TargetTable("sales", "orders")


class TestUpdate:
    def test_staying_in_scope_is_an_upsert(self) -> None:
        """An UPDATE that keeps the key and stays in scope is one Upsert of the new image."""
        result = map_change(orders(), update(row(), row(status="已发货")), CTX)
        assert result.ops == [Upsert(ORDERS, KEY, mapped(status=2))]

    @pytest.mark.parametrize("mode", ["hard", "soft"])
    def test_key_change_removes_the_old_row_first(self, mode: str) -> None:
        """An UPDATE of the source id removes the old target key, then upserts the new one."""
        mapping = orders(mode, SOFT if mode == "soft" else "")
        ops = map_change(mapping, update(row(5), row(6)), CTX).ops
        removal = (SoftDelete(ORDERS, KEY, ("shop", 5), "deleted_at", COMMIT) if mode == "soft"
                   else Delete(ORDERS, KEY, ("shop", 5)))
        assert ops[0] == removal
        assert len(ops) == 2 and isinstance(ops[1], Upsert)
        assert ops[1].values["source_order_id"] == 6

    def test_moving_out_of_the_filter_deletes(self) -> None:
        """With a hard delete, an UPDATE leaving the filter deletes the target row."""
        result = map_change(orders(), update(row(), row(is_test=1)), CTX)
        assert result.ops == [Delete(ORDERS, KEY, ("shop", 5))]

    def test_moving_out_of_the_filter_soft_deletes_at_commit_time(self) -> None:
        """With a soft delete, an UPDATE leaving the filter marks the row at the commit time."""
        result = map_change(orders("soft", SOFT), update(row(), row(is_test=1)), CTX)
        assert result.ops == [SoftDelete(ORDERS, KEY, ("shop", 5), "deleted_at", COMMIT)]

    def test_moving_into_the_filter_upserts(self) -> None:
        """An UPDATE entering the filter inserts the row."""
        result = map_change(orders(), update(row(is_test=1), row()), CTX)
        assert result.ops == [Upsert(ORDERS, KEY, mapped())]

    def test_staying_out_of_the_filter_is_nothing(self) -> None:
        """An UPDATE outside the filter before and after does nothing."""
        assert map_change(orders(), update(row(is_test=1), row(is_test=2)), CTX) == MappedChange([], [])

    def test_moving_out_with_a_key_change_removes_the_old_key(self) -> None:
        """Leaving the filter while changing id removes the row under its old key only."""
        result = map_change(orders(), update(row(5), row(6, is_test=1)), CTX)
        assert result.ops == [Delete(ORDERS, KEY, ("shop", 5))]


class TestDelete:
    def test_hard(self) -> None:
        """A DELETE in scope with a hard delete removes the row by key."""
        assert map_change(orders(), delete(row()), CTX).ops == [Delete(ORDERS, KEY, ("shop", 5))]

    def test_soft(self) -> None:
        """A DELETE in scope with a soft delete sets the soft column to the commit time."""
        ops = map_change(orders("soft", SOFT), delete(row()), CTX).ops
        assert ops == [SoftDelete(ORDERS, KEY, ("shop", 5), "deleted_at", COMMIT)]

    def test_out_of_scope_is_nothing(self) -> None:
        """A DELETE of a filtered-out row is a no-op."""
        assert map_change(orders(), delete(row(is_test=1)), CTX) == MappedChange([], [])

    def test_unmapped_value_does_not_block_a_delete(self) -> None:
        """Only key columns are computed for a delete, so an unmapped status does not matter."""
        ops = map_change(orders(), delete(row(status="退款中")), CTX).ops
        assert ops == [Delete(ORDERS, KEY, ("shop", 5))]


class TestDeadLetters:
    def test_unmapped_value(self) -> None:
        """A value the map lacks gives one dead letter naming column and value, and no operation."""
        change = RowChange("orders", Op.INSERT, None, row(status="退款中"), event_pos=9876, row_index=2,
                           key_columns=("id",))
        result = map_change(orders(), change, CTX)
        assert result.ops == []
        assert result.dead_letters == [DeadLetter(
            source="shop", source_table="orders", mapping="shop_orders", row_key="id=5",
            position="mysql-bin.000003:4567",
            row_image={k: v for k, v in row(status="退款中").items() if k != "phone"},  # phone: not mapped
            reason="column status: value '退款中' is not in the map", event_pos=9876, row_index=2,
        )]

    def test_transform_failure(self) -> None:
        """A value a transform cannot convert is a dead letter naming the column and transform."""
        (letter,) = map_change(orders(), insert(row(amount_text="12万")), CTX).dead_letters
        assert letter.reason.startswith("column amount: parse_amount: ")
        assert "'12万'" in letter.reason

    def test_missing_source_column(self) -> None:
        """A mapped column absent from the row image is a dead letter naming that column."""
        image = row()
        del image["amount_text"]
        (letter,) = map_change(orders(), insert(image), CTX).dead_letters
        assert letter.reason == "column amount_text: source column 'amount_text' is not in the row"
        assert letter.row_image == {k: v for k, v in image.items() if k != "phone"}

    def test_missing_source_column_is_its_own_error(self) -> None:
        """Reading a row without a mapped column raises MissingSourceColumn."""
        with pytest.raises(MissingSourceColumn) as caught:
            map_row(orders(), {"id": 1})
        assert caught.value.column == "status"

    def test_filter_type_error(self) -> None:
        """A filter that cannot compare becomes a dead letter, not a crash."""
        mapping = compile_yaml(ORDERS_MAPPING.format(delete="hard").replace("is_test: 0", "is_test: {gt: 0}"))
        (letter,) = map_change(mapping, insert(row(is_test="x")), CTX).dead_letters
        assert "cannot compare the row's text x with the bound 0" in letter.reason

    def test_missing_filter_column(self) -> None:
        """A row without the filter's column is a dead letter, not silently out of scope."""
        image = row()
        del image["is_test"]
        (letter,) = map_change(orders(), insert(image), CTX).dead_letters
        assert letter.reason == "column is_test: where: source column 'is_test' is not in the row"

    def test_delete_dead_letter_keeps_the_before_image(self) -> None:
        """A DELETE that cannot be mapped keeps the before image and its key."""
        image = row(order_id=7)
        del image["id"]
        change = RowChange("orders", Op.DELETE, image, None, key_columns=("id",))
        (letter,) = map_change(orders(), change, CTX).dead_letters
        assert letter.row_image == {k: v for k, v in image.items() if k != "phone"}
        assert letter.row_key == "id=NULL"

    def test_source_key_text(self) -> None:
        """The row key names each primary-key column, or the first column when none is known."""
        change = RowChange("t", Op.UPDATE, {"a": 1, "b": "x"}, {"a": 2, "b": "y"}, key_columns=("a", "b"))
        assert source_key_text(change) == "a=2,b='y'"
        assert source_key_text(RowChange("t", Op.DELETE, {"z": 3, "a": 1}, None)) == "z=3"

    def test_null_in_a_row_key_reads_null(self) -> None:
        """A source key over a nullable column names SQL NULL as the rest of the output does."""
        change = RowChange("t", Op.INSERT, None, {"dev_id": 10, "ev_time": None, "s": "None"})
        assert source_key_text(change, ("dev_id", "ev_time", "s")) == "dev_id=10,ev_time=NULL,s='None'"


class TestValueMaps:
    CODES = """\
mappings:
  - name: app_orders
    source: app
    table: orders
    target: orders
    key: id
    columns:
      id: id
      status: {{from: code, map: {{10: 0, 20: 1, null: 7}}{policy}}}
"""

    def status(self, value: Any, policy: str = "") -> Any:
        mapping = compile_yaml(self.CODES.format(policy=policy))
        result = map_change(mapping, insert({"id": 1, "code": value}), CTX)
        if result.dead_letters:
            return result.dead_letters[0].reason
        return result.ops[0].values["status"]  # type: ignore[union-attr]

    @pytest.mark.parametrize("value", [10, "10", Decimal("10"), Decimal("10.00")])
    def test_yaml_int_key_matches_numbers_and_text(self, value: Any) -> None:
        """Map key 10 matches the integer, the text and equal decimals."""
        assert self.status(value) == 0

    def test_null_key_maps_null(self) -> None:
        """A `null` map key turns NULL into its value."""
        assert self.status(None) == 7

    def test_null_without_null_key_stays_null(self) -> None:
        """Without a null key, NULL passes through the map."""
        mapping = compile_yaml(self.CODES.format(policy="").replace(", null: 7", ""))
        assert map_change(mapping, insert({"id": 1, "code": None}), CTX).ops[0].values["status"] is None  # type: ignore[union-attr]

    @pytest.mark.parametrize(("policy", "expected"), [
        ("", "column status: value 30 is not in the map"),
        (", on_unmapped: dead_letter", "column status: value 30 is not in the map"),
        (", on_unmapped: null", None),
        (", on_unmapped: keep", 30),
        (", default: 9", 9),
    ])
    def test_unmapped_policies(self, policy: str, expected: Any) -> None:
        """on_unmapped and default decide what an unlisted value becomes."""
        assert self.status(30, policy) == expected

    def test_default_can_be_null(self) -> None:
        """`default: null` is a NULL default, not a missing one."""
        assert self.status(30, ", default: null") is None

    def test_long_values_are_shortened_in_the_reason(self) -> None:
        """An unlisted long value is cut to 60 characters in the reason."""
        reason = self.status("x" * 200)
        assert reason == f"column status: value {('x' * 200)!r:.57}... is not in the map"


class TestTimesConstantsAndCombinations:
    WIDE = """\
mappings:
  - name: users
    source: shop
    table: users
    target: members
    key: [channel, id]
    columns:
      channel: {value: shop}
      id: id
      flag: {value: 1}
      nothing: {value: null}
      display: {from: [first, last], transform: {concat: {sep: " "}}}
      phone: {from: [mobile, landline], transform: coalesce}
      created_at: created_at
      paid_at: paid_at
      birthday: birthday
"""
    USER: ClassVar[dict[str, Any]] = {
        "id": 1, "first": "张", "last": "三", "mobile": None, "landline": "010-1234",
        "created_at": datetime(2024, 1, 1, 8, 0), "paid_at": datetime(2024, 1, 1, 0, 0, tzinfo=UTC),
        "birthday": date(1990, 1, 2),
    }

    def values(self, aware: set[str] | None = None, **changes: Any) -> dict[str, Any]:
        mapping = compile_yaml(self.WIDE, aware)
        (op,) = map_change(mapping, insert({**self.USER, **changes}), CTX).ops
        assert isinstance(op, Upsert)
        return op.values

    def test_constants(self) -> None:
        """Constant columns hold their YAML values on every row."""
        values = self.values()
        assert (values["channel"], values["flag"], values["nothing"]) == ("shop", 1, None)

    def test_concat_and_coalesce(self) -> None:
        """concat joins several columns; coalesce takes the first non-NULL."""
        values = self.values()
        assert (values["display"], values["phone"]) == ("张 三", "010-1234")
        values = self.values(mobile="13812345678", last=None)
        assert (values["display"], values["phone"]) == ("张", "13812345678")

    def test_missing_one_of_several_columns(self) -> None:
        """A multi-column source with a column missing is a MissingSourceColumn dead letter."""
        mapping = compile_yaml(self.WIDE)
        image = {k: v for k, v in self.USER.items() if k != "landline"}
        (letter,) = map_change(mapping, insert(image), CTX).dead_letters
        assert letter.reason == "column landline: source column 'landline' is not in the row"

    def test_naive_datetimes_become_aware_in_the_source_zone(self) -> None:
        """With aware_columns None, naive datetimes are read in the source's time zone."""
        values = self.values()
        assert values["created_at"] == datetime(2024, 1, 1, 8, 0, tzinfo=PLUS8)
        assert values["created_at"].utcoffset() == timedelta(hours=8)

    def test_only_aware_columns_are_localised(self) -> None:
        """Naive datetimes stay naive unless their target column is timestamptz."""
        values = self.values({"paid_at"})
        assert values["created_at"] == datetime(2024, 1, 1, 8, 0)
        assert values["created_at"].tzinfo is None
        values = self.values({"created_at"})
        assert values["created_at"].tzinfo is PLUS8

    def test_wall_time_skipped_by_dst_is_a_dead_letter(self) -> None:
        """A naive DATETIME that does not exist in the source zone is a dead letter, as with `timezone`."""
        new_york = TransformContext(secret=TCTX.secret, source_timezone=ZoneInfo("America/New_York"))
        mapping = compile_yaml(self.WIDE, None, new_york)
        result = map_change(mapping, insert({**self.USER, "created_at": datetime(2024, 3, 10, 2, 30)}), CTX)
        assert result.ops == []
        assert "does not exist" in result.dead_letters[0].reason

    def test_aware_values_and_dates_are_left_alone(self) -> None:
        """Already-aware datetimes keep their zone and dates stay dates."""
        values = self.values()
        assert values["paid_at"].tzinfo is UTC
        assert values["birthday"] == date(1990, 1, 2)


ROWS = st.fixed_dictionaries({
    "id": st.one_of(st.integers(min_value=1, max_value=10**12), st.text(min_size=1, max_size=8)),
    "status": st.sampled_from(["待支付", "已支付", "已发货", "已完成", "已取消"]),
    "amount_text": st.decimals(min_value=0, max_value=10**9, places=2).map(lambda d: f"{d}元"),
    "created_at": st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    "is_test": st.sampled_from([0, "0", 1, None]),
})
CHANGES = st.builds(
    lambda op, before, after: RowChange(
        "orders", op, None if op is Op.INSERT else before, None if op is Op.DELETE else after,
        key_columns=("id",)),
    st.sampled_from(list(Op)), ROWS, ROWS,
)


class TestProperties:
    @given(CHANGES, st.sampled_from(["hard", "soft"]))
    def test_map_change_is_deterministic(self, change: RowChange, mode: str) -> None:
        """Mapping the same change twice, even with a fresh compile, gives the same result."""
        first = map_change(orders(mode, SOFT if mode == "soft" else ""), change, CTX)
        second = map_change(orders(mode, SOFT if mode == "soft" else ""), change, CTX)
        assert first == second
        assert first.dead_letters == []

    @given(ROWS)
    def test_upsert_key_equals_map_key(self, image: dict[str, Any]) -> None:
        """For any row in scope, the Upsert's key values are map_key of that row."""
        mapping = orders("soft", SOFT)
        result = map_change(mapping, insert(image), CTX)
        if image["is_test"] in (0, "0"):
            (op,) = result.ops
            assert isinstance(op, Upsert)
            assert tuple(op.values[k] for k in op.key) == map_key(mapping, image) == ("shop", image["id"])
        else:
            assert result.ops == []

    @given(ROWS, ROWS)
    def test_update_removes_exactly_when_the_key_changes(self, before: dict[str, Any],
                                                         after: dict[str, Any]) -> None:
        """Within the filter, an UPDATE removes the old key iff the mapped key changed."""
        before, after = {**before, "is_test": 0}, {**after, "is_test": 0}
        mapping = orders()
        ops = map_change(mapping, update(before, after), CTX).ops
        changed = map_key(mapping, before) != map_key(mapping, after)
        assert [type(op) for op in ops] == ([Delete, Upsert] if changed else [Upsert])


GENERATED = """\
mappings:
  - name: gen
    source: shop
    table: t
    target: t
    key: [b_key, a_key]
    columns:
      a_key: id
      b_key: {value: shop}
      copied: note
      at: created_at
      status: {from: status, map: {x: 1}, on_unmapped: keep}
      amount: {from: amount_text, transform: parse_amount}
      code: {from: note, transform: [strip, upper]}
"""
IMAGES = st.fixed_dictionaries({}, optional={
    "id": st.integers(), "note": st.one_of(st.none(), st.text(max_size=3)),
    "created_at": st.one_of(st.none(), st.datetimes(), st.datetimes(timezones=st.just(UTC)),
                            st.text(max_size=2)),
    "status": st.sampled_from(["x", "y", None]), "amount_text": st.sampled_from(["1元", "abc", None])})


def outcome(compute: Any, image: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "value", compute(image)
    except MissingSourceColumn as exc:
        return "missing", str(exc)
    except Exception as exc:  # a TransformError: the same one either way
        return type(exc).__name__, str(exc)


@given(IMAGES)
def test_the_generated_row_and_key_functions_are_the_column_by_column_ones(image: dict[str, Any]) -> None:
    """Same values (and time zones), or the same error for the same column, whatever is missing."""
    texted = compile_mapping(parse_generated(), TCTX, "public", {"at"}, {"status", "amount", "code"})
    for m in (compile_yaml(GENERATED), compile_yaml(GENERATED, {"at"}), texted):  # every column aware, or one
        by_column = outcome(lambda r, m=m: {c.target: c.compute(r) for c in m.columns}, image)
        assert repr(outcome(m.build_row, image)) == repr(by_column)

        def key_by_column(r: dict[str, Any], m: Mapping = m) -> tuple[Any, ...]:
            values = {c.target: c.compute(r) for c in m.key_columns}
            return tuple(values[k] for k in m.key)

        assert repr(outcome(m.build_key, image)) == repr(outcome(key_by_column, image))


def parse_generated() -> Any:
    check = Checker()
    (spec,) = parse_document(load_text(GENERATED, "m.yaml"), Where("m.yaml", 1, 1), check, None)
    return spec


def test_transformed_columns_are_called_inline_on_the_value_read() -> None:
    """A column transformed or mapped from one source column is one function of the value read
    (the generated row function calls it inline); a constant, a plain copy or a column whose
    value is then localized (timestamptz) is not."""
    columns = {c.target: c for c in compile_yaml(GENERATED, {"at"}).columns}
    assert columns["amount"].converted is not None and columns["amount"].converted[0] == "amount_text"
    assert columns["status"].converted is not None and columns["code"].converted is not None
    assert columns["b_key"].converted is None and columns["copied"].converted is None
    texted_plan = compile_mapping(parse_generated(), TCTX, "public", {"at"}, {"amount"})
    texted = {c.target: c for c in texted_plan.columns}
    assert texted["amount"].converted is not None
    assert compile_yaml(GENERATED).columns[-1].converted is None  # every column aware: localized last
    assert texted["amount"].compute({"amount_text": "1元"}) == "1"
    image = {"id": 1, "note": " ab ", "created_at": None, "status": "x", "amount_text": "1元"}
    assert compile_yaml(GENERATED, {"at"}).build_row(image)["code"] == "AB"


PRIVATE_MAPPING = """\
mappings:
  - name: shop_members
    source: shop
    table: members
    target: members
    key: [member_id]
    where:
      is_test: 0
    columns:
      member_id: id
      phone: {from: phone, transform: mask_phone}
      email: {from: email, transform: {hash: {salt_env: SALT}}}
      card: {from: card_no, transform: {mask: {keep_last: 4}}}
      card_tail: {from: card_no, transform: {mask: {keep_first: 2}}}
      nickname: nickname
      level: {from: level, map: {普通: 0, 金卡: 1}}
"""

MEMBER = {"id": 9, "phone": "13812345678", "email": "li@example.cn", "card_no": "6222020012345678",
          "nickname": "小李", "level": "钻石", "mobile": "13900001111", "password_hash": "$2b$12$abc",
          "is_test": 0}


class TestWhatADeadLetterKeeps:
    def letter(self, image: dict[str, Any] = MEMBER) -> DeadLetter:
        mapping = compile_yaml(PRIVATE_MAPPING)
        change = RowChange("members", Op.INSERT, None, dict(image), key_columns=("id",))
        (letter,) = map_change(mapping, change, CTX).dead_letters
        return letter

    def test_columns_read_through_private_transforms_are_kept_as_published(self) -> None:
        image = self.letter().row_image
        assert image["phone"] == "138****5678"
        assert image["card_no"] == "************5678"   # the first private use publishes it
        assert len(image["email"]) == 64 and "li@example.cn" not in str(image)

    def test_unmapped_columns_are_dropped(self) -> None:
        image = self.letter().row_image
        assert "password_hash" not in image and "mobile" not in image

    def test_clear_columns_key_and_filter_stay_as_the_source_holds_them(self) -> None:
        image = self.letter().row_image
        assert (image["id"], image["nickname"], image["level"], image["is_test"]) == (9, "小李", "钻石", 0)
        assert set(image) == {"id", "phone", "email", "card_no", "nickname", "level", "is_test"}

    def test_a_private_value_that_cannot_be_published_is_withheld(self) -> None:
        image = self.letter({**MEMBER, "phone": 13.5}).row_image
        assert image["phone"] == "(withheld)"

    def test_a_column_published_in_clear_somewhere_is_kept_in_clear(self) -> None:
        text = PRIVATE_MAPPING.replace("      nickname: nickname", "      nickname: nickname\n"
                                       "      raw_phone: phone")
        mapping = compile_yaml(text)
        change = RowChange("members", Op.INSERT, None, dict(MEMBER), key_columns=("id",))
        (letter,) = map_change(mapping, change, CTX).dead_letters
        assert letter.row_image["phone"] == "13812345678"


class TestRowKeyText:
    @given(st.lists(st.one_of(st.integers(), st.text(max_size=8), st.decimals(allow_nan=False),
                              st.binary(max_size=4), st.none()), min_size=1, max_size=3))
    def test_the_key_a_dead_letter_names_is_the_key_reconcile_looks_up(self, values: list[Any]) -> None:
        """The stream names a dead-lettered row from its change; reconcile and repairs name it from
        the key values they read: one formatter, so both find the same letter."""
        names = tuple(f"k{i}" for i in range(len(values)))
        change = RowChange("t", Op.UPDATE, None, {**dict(zip(names, values, strict=True)), "other": 1},
                           key_columns=names)
        assert source_key_text(change) == row_key_text(names, values)
        assert source_key_text(change, names[:1]) == row_key_text(names[:1], values[:1])


def test_a_mapped_column_gives_the_same_values_twice() -> None:
    """A second row with the same text reads the kept results."""
    mapping = compile_yaml(ORDERS_MAPPING.format(delete="hard"))
    row = {"id": 1, "status": "已支付", "amount_text": "¥1,299.50", "created_at": datetime(2024, 1, 1),
           "is_test": 0}
    assert map_row(mapping, row) == map_row(mapping, dict(row)) == {
        "channel": "shop", "source_order_id": 1, "status": 1, "amount": Decimal("1299.50"),
        "created_at": datetime(2024, 1, 1, tzinfo=PLUS8)}
