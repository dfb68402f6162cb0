"""`syncd preview` of identity mappings, pure parts: resolution against loaded links, and output."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta, timezone

import pytest

from syncd.cli.preview import records_json_text, render_records
from syncd.identity import core
from syncd.identity.keys import record_name
from syncd.identity.preview import (
    EXISTING,
    MERGE,
    NEW,
    NO_KEY,
    RESOLVED,
    UNKNOWN,
    UNRESOLVED,
    StoredLinks,
    claim_text,
    render,
    resolve,
)
from syncd.mapping.plan import Mapping, compile_mapping
from syncd.mapping.preview import SourceRows, preview_rows, with_identity
from syncd.mapping.spec import load_mappings
from syncd.mapping.transforms import TransformContext
from syncd.model import Upsert

NOW = datetime(2024, 5, 1, 4, 0, 0, tzinfo=UTC)
PHONE = "13812345678"
UNIONID = "oUnion0000000000000000000005"

FILES = {
    "identity.yaml": """\
        identities:
          - name: person
            salt_env: SALT
            unified:
              table: persons
              columns:
                display_name: {prefer: [shop, app]}
                phone_masked: latest
        """,
    "m.yaml": """\
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
              phone_masked: {from: phone, transform: mask_phone}
            identity:
              name: person
              column: person_id
              match:
                phone: {from: phone, transform: strip}
                shop_user: id
          - name: app_members
            source: app
            table: app_users
            target: members
            key: [channel, source_user_id]
            columns:
              channel: {value: app}
              source_user_id: id
              display_name: nickname
              phone_masked: {from: phone, transform: mask_phone}
            identity:
              name: person
              column: person_id
              match:
                phone: {from: phone, transform: strip}
                unionid: unionid
                app_user: id
          - name: app_orders
            source: app
            table: app_orders
            target: orders
            key: [channel, source_order_id]
            columns:
              channel: {value: app}
              source_order_id: id
              member_id: {lookup: {identity: person, key: app_user, by: user_id}}
        """,
}


@pytest.fixture(scope="module")
def mappings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Mapping]:
    folder = tmp_path_factory.mktemp("mappings")
    for name, text in FILES.items():
        (folder / name).write_text(textwrap.dedent(text))
    ctx = TransformContext(secret=lambda kind, name: "pepper", source_timezone=timezone(timedelta(hours=8)))
    return {s.name: compile_mapping(s, ctx, "public") for s in load_mappings([folder], {"shop", "app"})}


def upsert(mapping: Mapping, row: dict[str, object]) -> Upsert:
    [record] = preview_rows(mapping, SourceRows(("id",), [row], []), mapping.spec.source, now=NOW)
    assert record.op is not None
    return record.op


def key(op: Upsert, kind: str) -> core.Key:
    assert op.identity is not None
    return next(k for k in op.identity.keys if k[0] == kind)


def stored(links: dict[core.Key, int], records: dict[str, core.RecordState] | None = None) -> StoredLinks:
    store = core.LinkStore.counting(10)
    store.links = dict(links)
    store.records = dict(records or {})
    return StoredLinks({"person": store})


def shop_user(mappings: dict[str, Mapping], phone: str | None = PHONE, user: int = 1) -> Upsert:
    return upsert(mappings["shop_members"], {"id": user, "name": "张伟", "phone": phone})


def app_user(mappings: dict[str, Mapping], phone: str | None = None) -> Upsert:
    row = {"id": 5, "nickname": "橘子汽水", "phone": phone, "unionid": UNIONID}
    return upsert(mappings["app_members"], row)


class TestResolution:
    def test_a_key_linked_to_a_person_is_that_person(self, mappings: dict[str, Mapping]) -> None:
        op = shop_user(mappings)
        found = resolve(stored({key(op, "phone"): 1}), op)
        assert found.record is not None
        assert (found.record.outcome, found.record.person, found.record.merged) == (EXISTING, 1, ())
        assert claim_text(found.record) == "existing person 1 (matched by phone)"

    def test_the_record_itself_and_its_keys_count(self, mappings: dict[str, Mapping]) -> None:
        op = shop_user(mappings)
        assert op.identity is not None
        name = record_name("shop_members", op.identity.record)
        links = {key(op, "phone"): 3, key(op, "shop_user"): 3}
        found = resolve(stored(links, {name: core.RecordState(3, frozenset(links))}), op)
        assert found.record is not None
        assert claim_text(found.record) == "existing person 3 (matched by this record, phone, shop_user)"

    def test_nothing_linked_is_a_new_person(self, mappings: dict[str, Mapping]) -> None:
        found = resolve(stored({}), shop_user(mappings))
        assert found.record is not None and found.record.outcome == NEW and found.record.person is None
        assert claim_text(found.record) == "new person"

    def test_binding_the_phone_of_another_person_merges_into_the_smaller_id(
            self, mappings: dict[str, Mapping]) -> None:
        before = app_user(mappings)
        assert before.identity is not None
        name = record_name("app_members", before.identity.record)
        app_keys = {key(before, "unionid"): 2, key(before, "app_user"): 2}
        links = {**app_keys, key(shop_user(mappings), "phone"): 1}
        found = resolve(stored(links, {name: core.RecordState(2, frozenset(app_keys))}),
                        app_user(mappings, phone=PHONE))
        assert found.record is not None
        assert (found.record.outcome, found.record.person, found.record.merged) == (MERGE, 1, (2,))
        assert claim_text(found.record) == ("would merge persons 1 and 2 (survivor 1): person 1 by phone; "
                                            "person 2 by this record, app_user, unionid")

    def test_rows_are_resolved_each_on_its_own(self, mappings: dict[str, Mapping]) -> None:
        """Two previewed rows sharing a new key are each a new person: neither is applied."""
        links = stored({})
        first = resolve(links, shop_user(mappings, user=1))
        second = resolve(links, shop_user(mappings, user=2))
        assert first.record is not None and second.record is not None
        assert first.record.outcome == second.record.outcome == NEW
        assert links.stores["person"].links == {}

    def test_lookups_resolve_to_a_person_or_are_unresolved(self, mappings: dict[str, Mapping]) -> None:
        orders = mappings["app_orders"]
        linked = key(app_user(mappings), "app_user")
        links = stored({linked: 2})
        [known] = resolve(links, upsert(orders, {"id": 200, "user_id": 5})).lookups
        assert (known.outcome, known.person, known.column) == (RESOLVED, 2, "member_id")
        [unknown] = resolve(links, upsert(orders, {"id": 201, "user_id": 9})).lookups
        assert (unknown.outcome, unknown.person) == (UNRESOLVED, None)
        [empty] = resolve(links, upsert(orders, {"id": 202, "user_id": None})).lookups
        assert (empty.outcome, empty.key) == (NO_KEY, None)

    def test_an_unreadable_target_leaves_outcomes_unknown(self, mappings: dict[str, Mapping]) -> None:
        links = StoredLinks({}, readable=False, note="target not reachable: connection refused")
        found = resolve(links, shop_user(mappings))
        assert found.record is not None and found.record.outcome == UNKNOWN
        assert found.note == "target not reachable: connection refused"
        assert "  identity: target not reachable: connection refused" in render(found)
        [lookup] = resolve(links, upsert(mappings["app_orders"], {"id": 1, "user_id": 5})).lookups
        assert lookup.outcome == UNKNOWN

    def test_no_identity_tables_yet_means_every_key_is_new(self, mappings: dict[str, Mapping]) -> None:
        links = StoredLinks({}, note="no links yet (the state schema 'syncd' has no identity tables)")
        found = resolve(links, shop_user(mappings))
        assert found.record is not None and found.record.outcome == NEW
        assert found.note is not None and found.note.startswith("no links yet")


class TestOutput:
    def test_keys_are_shown_as_hashes_never_as_values(self, mappings: dict[str, Mapping]) -> None:
        op = shop_user(mappings)
        lines = render(resolve(stored({key(op, "phone"): 1}), op))
        assert lines[0] == "  identity person -> person_id: existing person 1 (matched by phone)"
        assert lines[1] == (f"    match keys (stored as hashes): phone #{key(op, 'phone')[1][:12]}  "
                            f"shop_user #{key(op, 'shop_user')[1][:12]}")
        assert PHONE not in "\n".join(lines)

    def test_the_preview_shows_identity_after_the_target_row(self, mappings: dict[str, Mapping]) -> None:
        mapping = mappings["app_orders"]
        records = preview_rows(mapping, SourceRows(("id",), [{"id": 200, "user_id": 5}], []), "app", now=NOW)
        records = with_identity(records, stored({key(app_user(mappings), "app_user"): 2}))
        lines = render_records(mapping, "app", records)
        app_user_hash = key(app_user(mappings), "app_user")[1][:12]
        lookup_line = f"  lookup member_id (identity person, app_user #{app_user_hash}): person 2"
        assert lines.index("  target public.orders") < lines.index(lookup_line)
        assert lines[lines.index(lookup_line) + 1] == ""

    def test_json_has_an_identity_field_per_record(self, mappings: dict[str, Mapping]) -> None:
        mapping = mappings["app_members"]
        rows = [{"id": 5, "nickname": "x", "phone": PHONE, "unionid": UNIONID},
                {"id": 6, "nickname": "y", "phone": None, "unionid": None, "missing": 1}]
        del rows[1]["unionid"]  # cannot be mapped: a dead letter, no identity
        records = with_identity(preview_rows(mapping, SourceRows(("id",), rows, []), "app", now=NOW),
                                stored({key(shop_user(mappings), "phone"): 1}))
        text = records_json_text(records, identity=True)
        data = json.loads(text)
        assert data[1]["status"] == "dead_letter" and data[1]["identity"] is None
        identity = data[0]["identity"]
        assert identity["record"]["outcome"] == "existing" and identity["record"]["person"] == 1
        assert identity["record"]["matched"] == [{"person": 1, "by": ["phone"]}]
        assert {k["kind"] for k in identity["record"]["keys"]} == {"phone", "unionid", "app_user"}
        assert all(len(k["hash"]) == 64 for k in identity["record"]["keys"])
        assert identity["lookups"] == [] and identity["note"] is None
        assert PHONE not in json.dumps(identity) and UNIONID not in json.dumps(identity)
        assert "identity" not in json.loads(records_json_text(records))[0]  # other mappings: unchanged
