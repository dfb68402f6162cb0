"""Unified rows from contributions (syncd.identity.policies) and the stored forms (syncd.identity.keys)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.errors import TransformError
from syncd.identity.keys import KeyHasher, decode_values, encode_values, key_text, record_id
from syncd.identity.policies import Contribution, unify

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def contribution(mapping: str, source: str, record: str, values: dict, minutes: int = 0,
                 first: int | None = None) -> Contribution:
    seen = T0 + timedelta(minutes=first if first is not None else minutes)
    return Contribution(mapping, source, record, values, T0 + timedelta(minutes=minutes), seen)


SHOP = contribution("shop_members", "shop", '{"id":1}',
                    {"display_name": "张伟", "phone_masked": "138****5678", "created_at": T0}, minutes=1)
APP = contribution("app_members", "app", '{"id":5}',
                   {"display_name": "橘子汽水🍊", "phone_masked": None, "marketing_opt_out": True,
                    "created_at": T0 - timedelta(days=30)}, minutes=5, first=3)

POLICIES = (("display_name", "prefer", ("shop", "app")), ("phone_masked", "latest", ()),
            ("marketing_opt_out", "any_true", ()), ("created_at", "min", ()))


class TestPolicies:
    def test_the_demo_policies(self) -> None:
        row = unify([SHOP, APP], POLICIES)
        assert row == {"display_name": "张伟", "phone_masked": "138****5678", "marketing_opt_out": True,
                       "created_at": T0 - timedelta(days=30)}

    def test_deleting_the_app_record_leaves_the_shop_values(self) -> None:
        assert unify([SHOP], POLICIES) == {"display_name": "张伟", "phone_masked": "138****5678",
                                           "marketing_opt_out": None, "created_at": T0}

    def test_no_contribution_no_row(self) -> None:
        assert unify([], POLICIES) is None

    @pytest.mark.parametrize(("policy", "args", "expected"), [
        ("latest", (), "b"),                   # b changed last
        ("first_non_null", (), "a"),           # a was seen first
        ("prefer", ("app",), "c"),             # the app's, whichever mapping
        ("prefer", ("m_b", "app"), "b"),       # a mapping name ranks like a source name
        ("prefer", ("nobody",), "b"),          # nothing listed has one: the latest
        ("max", (), "c"),
        ("min", (), "a"),
    ])
    def test_each_policy(self, policy: str, args: tuple[str, ...], expected: str) -> None:
        rows = [contribution("m_a", "shop", "1", {"v": "a"}, minutes=1, first=0),
                contribution("m_b", "shop", "2", {"v": "b"}, minutes=9, first=5),
                contribution("m_c", "app", "3", {"v": "c"}, minutes=4, first=4),
                contribution("m_d", "app", "4", {"v": None}, minutes=20, first=-5)]
        assert unify(rows, (("v", policy, args),)) == {"v": expected}

    @pytest.mark.parametrize(("values", "any_true", "all_true"), [
        ([True, False], True, False),
        ([False, False], False, False),
        ([True, None], True, True),            # NULL is "unknown", not false
        ([None], None, None),
        ([True, True], True, True),
    ])
    def test_flags(self, values: list, any_true: bool | None, all_true: bool | None) -> None:
        rows = [contribution(f"m{i}", "s", str(i), {"f": v}) for i, v in enumerate(values)]
        assert unify(rows, (("f", "any_true", ()), ("f2", "all_true", ()))) == {"f": any_true, "f2": None}
        assert unify(rows, (("f", "all_true", ()),)) == {"f": all_true}

    def test_a_mapping_that_does_not_map_the_column_has_no_say(self) -> None:
        rows = [contribution("shop", "shop", "1", {"name": "a"}, minutes=1),
                contribution("app", "app", "2", {}, minutes=9)]
        assert unify(rows, (("name", "latest", ()),)) == {"name": "a"}

    def test_values_of_different_kinds_still_compare(self) -> None:
        rows = [contribution("a", "s", "1", {"v": 5}), contribution("b", "s", "2", {"v": "x"})]
        assert unify(rows, (("v", "max", ()),)) == {"v": "x"}

    @given(st.permutations(list(range(6))), st.sampled_from(["latest", "first_non_null", "max", "min"]))
    def test_the_order_of_contributions_does_not_matter(self, order: list[int], policy: str) -> None:
        rows = [contribution(f"m{i % 2}", "s", str(i), {"v": i * 7 % 5}, minutes=i % 3, first=-(i % 2))
                for i in range(6)]
        assert unify([rows[i] for i in order], (("v", policy, ()),)) == unify(rows, (("v", policy, ()),))


class TestKeys:
    def test_equal_keys_written_alike_hash_alike(self) -> None:
        hasher = KeyHasher("person")
        assert hasher("app_user", 5) == hasher("app_user", "5") == hasher("app_user", Decimal("5.00"))
        assert hasher("phone", "13812345678") != hasher("unionid", "13812345678")
        assert KeyHasher("other")("phone", "1") != hasher("phone", "1")

    def test_the_salt_changes_every_hash_and_the_value_never_shows(self) -> None:
        plain, salted = KeyHasher("person"), KeyHasher("person", b"pepper")
        assert plain("phone", "13812345678") != salted("phone", "13812345678")
        for hasher in (plain, salted):
            digest = hasher("phone", "13812345678")
            assert digest is not None and len(digest) == 64 and "13812345678" not in digest

    @pytest.mark.parametrize("value", [None, "", "   ", b""])
    def test_no_value_no_key(self, value: object) -> None:
        assert KeyHasher("p")("phone", value) is None

    def test_key_text(self) -> None:
        assert key_text(Decimal("1.50")) == "1.5"
        assert key_text(date(2024, 1, 2)) == "2024-01-02"
        with pytest.raises(TransformError):
            key_text(True)
        with pytest.raises(TransformError):
            key_text(1.5)

    def test_record_ids_are_canonical(self) -> None:
        assert record_id(("channel", "id"), ("app", 5)) == '{"channel":"app","id":5}'

    @given(st.dictionaries(st.text(max_size=5), st.one_of(
        st.none(), st.booleans(), st.integers(), st.text(alphabet=st.characters(blacklist_characters="\x00")),
        st.decimals(allow_nan=False, allow_infinity=False), st.dates(),
        st.datetimes(timezones=st.just(UTC)), st.times(), st.binary(max_size=8),
        st.timedeltas(), st.floats(allow_nan=False))))
    def test_contribution_values_round_trip(self, values: dict) -> None:
        import json

        assert decode_values(json.loads(encode_values(values))) == values

    def test_json_documents_round_trip_too(self) -> None:
        import json

        values = {"profile": {"city": "上海", "$decimal": 1}, "t": time(1, 2)}
        assert decode_values(json.loads(encode_values(values))) == values
