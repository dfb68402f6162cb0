"""Identity blocks in mapping files: parsing, static checks (file:line:col), and what map_change emits."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from syncd.errors import ConfigError, TransformArgsError
from syncd.mapping.plan import ChangeContext, compile_mapping, map_change
from syncd.mapping.spec import MappingSpec, load_mappings
from syncd.mapping.transforms import TransformContext
from syncd.model import Delete, Op, RowChange, SoftDelete, TargetTable, Upsert
from syncd.sink.batch import PlannedOp, reduce_ops

PLUS8 = timezone(timedelta(hours=8))
SECRETS = {"SALT": "pepper"}
TCTX = TransformContext(secret=lambda kind, name: SECRETS[name], source_timezone=PLUS8)
COMMIT = datetime(2024, 5, 1, 10, 0, 5, tzinfo=UTC)
CTX = ChangeContext(source="app", position="mysql-bin.000003:4567", commit_time=COMMIT)

IDENTITIES = """\
identities:
  - name: person
    unified:
      table: persons
      columns:
        display_name: {prefer: [shop, app]}
        marketing_opt_out: any_true
        phone_masked: latest
"""

MAPPINGS = """\
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
      marketing_opt_out: {from: marketing_opt_out, transform: to_bool}
    identity:
      name: person
      column: person_id
      match:
        phone: phone
        unionid: unionid
        app_user: id
  - name: app_orders
    source: app
    table: app_orders
    target: orders
    key: [channel, source_order_id]
    delete: soft
    soft_delete_column: deleted_at
    columns:
      channel: {value: app}
      source_order_id: id
      member_id: {lookup: {identity: person, key: app_user, by: user_id}}
"""


def load(tmp_path: Path, mappings: str = MAPPINGS, identities: str = IDENTITIES) -> list[MappingSpec]:
    (tmp_path / "identity.yaml").write_text(textwrap.dedent(identities))
    (tmp_path / "m.yaml").write_text(textwrap.dedent(mappings))
    return load_mappings([tmp_path], {"shop", "app"})


def problems(tmp_path: Path, mappings: str = MAPPINGS, identities: str = IDENTITIES) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, mappings, identities)
    return [str(p) for p in caught.value.problems]


def compiled(tmp_path: Path, **kwargs: str):
    return {s.name: compile_mapping(s, TCTX, "public") for s in load(tmp_path, **kwargs)}


def insert(table: str, row: dict) -> RowChange:
    return RowChange(table, Op.INSERT, None, row, key_columns=("id",))


class TestParsing:
    def test_the_example_loads_with_spaces_and_references_attached(self, tmp_path: Path) -> None:
        specs = {s.name: s for s in load(tmp_path)}
        identity = specs["shop_members"].identity
        assert identity is not None and identity.column == "person_id"
        assert [k for k, _ in identity.match] == ["phone", "shop_user"]
        assert identity.space is not None and identity.space.unified is not None
        assert identity.space.references == ((None, "members", "person_id"), (None, "orders", "member_id"))
        (lookup,) = specs["app_orders"].lookups
        assert (lookup.target, lookup.identity, lookup.kind, lookup.by.sources) == (
            "member_id", "person", "app_user", ("user_id",))
        assert [c.target for c in specs["app_orders"].columns] == ["channel", "source_order_id"]

    def test_files_only_declaring_identities_are_fine(self, tmp_path: Path) -> None:
        assert len(load(tmp_path)) == 3

    def test_unknown_identity_and_kind_are_pointed_at(self, tmp_path: Path) -> None:
        text = MAPPINGS.replace("name: person\n      column: person_id\n      match:\n        phone: phone",
                                "name: persn\n      column: person_id\n      match:\n        phone: phone")
        found = problems(tmp_path, text)
        assert any(p.startswith(f"{tmp_path}/m.yaml:29:7: mapping 'app_members': unknown identity "
                                "'persn' (did you mean 'person'?)") for p in found), found
        found = problems(tmp_path, MAPPINGS.replace("key: app_user, by", "key: app_usr, by"))
        assert found == [f"{tmp_path}/m.yaml:45:18: mapping 'app_orders': column 'member_id': lookup: no "
                         "mapping of identity 'person' matches on 'app_usr' (did you mean 'app_user'?); "
                         "match keys: ['app_user', 'phone', 'shop_user', 'unionid']"]
        found = problems(tmp_path, MAPPINGS.replace("{identity: person, key", "{identity: people, key"))
        assert found == [f"{tmp_path}/m.yaml:45:18: mapping 'app_orders': column 'member_id': lookup: "
                         "unknown identity 'people'; declared: ['person']"]

    @pytest.mark.parametrize(("identities", "expected"), [
        (IDENTITIES.replace("any_true", "any_tru"),
         "identity.yaml:7:28: identity 'person': unified.columns.marketing_opt_out: unknown policy "
         "'any_tru' (did you mean 'any_true'?)"),
        (IDENTITIES.replace("[shop, app]", "[shop, ap]"),
         "identity.yaml:6:23: identity 'person': unified.columns.display_name: prefer: 'ap' is neither a "
         "mapping of this identity nor a source (did you mean 'app'?)"),
        (IDENTITIES.replace("phone_masked: latest", "phone_maskd: latest"),
         "identity.yaml:8:22: identity 'person': unified.columns.phone_maskd: no mapping of identity "
         "'person' maps column 'phone_maskd' (did you mean 'phone_masked'?), so it would always be NULL"),
        (IDENTITIES.replace("prefer: [shop, app]", "prefer: 3"),
         "identity.yaml:6:23: identity 'person': unified.columns.display_name: prefer needs a list"),
        (IDENTITIES + "    salt_env: A\n    salt_file: /b\n",
         "identity.yaml:10:5: identity 'person': give salt_env or salt_file, not both"),
        (IDENTITIES + "  - name: person\n",
         "identity.yaml:9:5: identity 'person' is also declared at"),
        (IDENTITIES + "  - name: nobody\n",
         "identity.yaml:9:5: identity 'nobody' is not used"),
        (IDENTITIES.replace("    unified:", "    unifed:"),
         "identity.yaml:3:5: unknown key 'unifed' in identity 'person' (did you mean 'unified'?)"),
    ])
    def test_identity_problems(self, tmp_path: Path, identities: str, expected: str) -> None:
        found = problems(tmp_path, identities=identities)
        assert any(expected in p for p in found), found

    @pytest.mark.parametrize(("old", "new", "expected"), [
        ("        shop_user: id", "        shop_user: {value: 1}",
         "m.yaml:17:20: mapping 'shop_members': identity.match.shop_user: a key must come from a source "
         "column"),
        ("      column: person_id\n      match:\n        phone: {from",
         "      column: display_name\n      match:\n        phone: {from",
         "m.yaml:14:15: mapping 'shop_members': identity.column 'display_name' is also listed under columns"),
        ("      column: person_id\n      match:\n        phone: {from",
         "      column: channel\n      match:\n        phone: {from",
         "m.yaml:14:15: mapping 'shop_members': identity.column 'channel' cannot be a key column"),
        ("key: [channel, source_order_id]\n    delete: soft",
         "key: [channel, member_id]\n    delete: soft",
         "mapping 'app_orders': key column 'member_id' cannot be a lookup"),
        ("member_id: {lookup: {identity: person, key: app_user, by: user_id}}",
         "member_id: {lookup: {identity: person, key: app_user}, from: x}",
         "m.yaml:45:62: mapping 'app_orders': column 'member_id': a lookup column takes no other keys"),
        ("        shop_user: id", "        shop-user: id",
         "m.yaml:17:9: mapping 'shop_members': identity: match: key kind 'shop-user' must be a name"),
        ("      column: person_id\n      match:\n        phone: {from",
         "      colum: person_id\n      match:\n        phone: {from",
         "m.yaml:14:7: unknown key 'colum' in mapping 'shop_members': identity (did you mean 'column'?)"),
    ])
    def test_mapping_problems(self, tmp_path: Path, old: str, new: str, expected: str) -> None:
        assert old in MAPPINGS
        found = problems(tmp_path, MAPPINGS.replace(old, new, 1))
        assert any(expected.replace("identity: match", "identity.match") in p for p in found), found

    def test_an_identity_without_declaration_says_how_to_declare(self, tmp_path: Path) -> None:
        found = problems(tmp_path, identities="identities: []\n")
        assert any("unknown identity 'person'; declare it under a top-level 'identities:' list" in p
                   for p in found), found


class TestMapChange:
    def test_insert_claims_hashed_keys_and_the_contribution(self, tmp_path: Path) -> None:
        mapping = compiled(tmp_path)["app_members"]
        row = {"id": 5, "nickname": "橘子汽水", "phone": None, "unionid": "oU1", "marketing_opt_out": 1}
        (op,) = map_change(mapping, insert("app_users", row), CTX).ops
        assert isinstance(op, Upsert)
        assert "person_id" not in op.values  # filled by the sink
        claim = op.identity
        assert claim is not None
        assert claim.record == '{"channel":"app","source_user_id":5}'
        assert [kind for kind, _ in claim.keys] == ["unionid", "app_user"]  # NULL phone: no key
        assert claim.values == {"display_name": "橘子汽水", "marketing_opt_out": True}
        assert (claim.mapping, claim.source, claim.column, claim.position, claim.commit_time) == (
            "app_members", "app", "person_id", CTX.position, COMMIT)
        assert "oU1" not in repr(op.identity)

    def test_both_sources_hash_a_phone_alike(self, tmp_path: Path) -> None:
        plans = compiled(tmp_path)
        shop = map_change(plans["shop_members"], insert("users", {"id": 1, "name": "张伟",
                                                                  "phone": " 13812345678 "}), CTX).ops[0]
        app = map_change(plans["app_members"], insert("app_users", {
            "id": 5, "nickname": "n", "phone": "13812345678", "unionid": None, "marketing_opt_out": 0}),
            CTX).ops[0]
        assert isinstance(shop, Upsert) and isinstance(app, Upsert)
        assert shop.identity is not None and app.identity is not None
        assert dict(shop.identity.keys)["phone"] == dict(app.identity.keys)["phone"]
        assert "13812345678" not in repr(shop) .replace("138****5678", "")

    def test_a_salt_changes_the_hashes(self, tmp_path: Path) -> None:
        row = {"id": 1, "name": "a", "phone": "13812345678"}
        plain = map_change(compiled(tmp_path)["shop_members"], insert("users", row), CTX).ops[0]
        salted_identities = IDENTITIES.replace("  - name: person\n", "  - name: person\n    salt_env: SALT\n")
        salted = map_change(compiled(tmp_path, identities=salted_identities)["shop_members"],
                            insert("users", row), CTX).ops[0]
        assert isinstance(plain, Upsert) and isinstance(salted, Upsert)
        assert plain.identity is not None and salted.identity is not None
        assert plain.identity.keys != salted.identity.keys

    def test_a_missing_salt_is_a_compile_error_at_the_identity(self, tmp_path: Path) -> None:
        identities = IDENTITIES.replace("  - name: person\n", "  - name: person\n    salt_env: NOPE\n")
        spec = next(s for s in load(tmp_path, identities=identities) if s.name == "shop_members")
        ctx = TransformContext(secret=lambda kind, name: (_ for _ in ()).throw(
            TransformArgsError(f"environment variable {name} is not set")), source_timezone=PLUS8)
        with pytest.raises(TransformArgsError) as caught:
            compile_mapping(spec, ctx, "public")
        assert "identity 'person': salt: environment variable NOPE is not set" in str(caught.value)
        assert caught.value.place is not None and caught.value.place.line == 2

    def test_lookups_hash_the_source_key_and_null_stays_null(self, tmp_path: Path) -> None:
        mapping = compiled(tmp_path)["app_orders"]
        member = compiled(tmp_path)["app_members"]
        (op,) = map_change(mapping, insert("app_orders", {"id": 9, "user_id": 5}), CTX).ops
        (user,) = map_change(member, insert("app_users", {"id": 5, "nickname": "n", "phone": None,
                                                          "unionid": None, "marketing_opt_out": 0}), CTX).ops
        assert isinstance(op, Upsert) and isinstance(user, Upsert) and user.identity is not None
        (lookup,) = op.lookups
        assert (lookup.column, lookup.kind, lookup.mapping) == ("member_id", "app_user", "app_orders")
        assert lookup.key_hash == dict(user.identity.keys)["app_user"]
        assert op.identity is None
        (orphan,) = map_change(mapping, insert("app_orders", {"id": 10, "user_id": None}), CTX).ops
        assert isinstance(orphan, Upsert) and orphan.lookups[0].key_hash is None
        assert mapping.source_columns >= {"user_id"}

    def test_deletes_release_the_record(self, tmp_path: Path) -> None:
        mapping = compiled(tmp_path)["shop_members"]
        row = {"id": 1, "name": "a", "phone": "1"}
        (op,) = map_change(mapping, RowChange("users", Op.DELETE, row, None), CTX).ops
        assert isinstance(op, Delete) and op.identity is not None
        assert (op.identity.mapping, op.identity.record, op.identity.at) == (
            "shop_members", '{"channel":"shop","source_user_id":1}', COMMIT)

    def test_a_key_change_releases_the_old_record_and_claims_the_new(self, tmp_path: Path) -> None:
        mapping = compiled(tmp_path)["shop_members"]
        before, after = {"id": 1, "name": "a", "phone": "1"}, {"id": 2, "name": "a", "phone": "1"}
        removed, written = map_change(mapping, RowChange("users", Op.UPDATE, before, after), CTX).ops
        assert isinstance(removed, Delete) and removed.identity is not None
        assert isinstance(written, Upsert) and written.identity is not None
        assert removed.identity.record != written.identity.record

    def test_mappings_without_identity_emit_what_they_always_did(self, tmp_path: Path) -> None:
        text = MAPPINGS.split("  - name: app_members", 1)[0].split("    identity:", 1)[0]
        mapping = compile_mapping(load(tmp_path, text, "mappings: []\n")[0], TCTX, "public")
        op = map_change(mapping, insert("users", {"id": 1, "name": "a", "phone": None}), CTX).ops[0]
        values = {"channel": "shop", "source_user_id": 1, "display_name": "a", "phone_masked": None}
        assert op == Upsert(TargetTable("public", "members"), ("channel", "source_user_id"), values)


class TestDeadLetters:
    def test_identity_match_keys_are_kept_only_hashed(self, tmp_path: Path) -> None:
        """A match key the mapping does not publish in clear (phone, unionid) is kept in a dead
        letter only as its hash, never in clear."""
        mapping = compiled(tmp_path)["app_members"]
        image = {"id": 5, "nickname": "小李", "marketing_opt_out": "maybe", "phone": "13800001111",
                 "unionid": "oU7x9", "token": "secret"}
        change = RowChange("app_users", Op.INSERT, None, image, key_columns=("id",))
        (letter,) = map_change(mapping, change, CTX).dead_letters
        kept = letter.row_image
        assert kept["id"] == 5 and kept["nickname"] == "小李" and kept["marketing_opt_out"] == "maybe"
        assert "13800001111" not in str(kept) and "oU7x9" not in str(kept) and "token" not in kept
        assert kept["phone"] and kept["unionid"]


class TestReduce:
    def test_an_upsert_then_a_soft_delete_links_but_does_not_contribute(self, tmp_path: Path) -> None:
        mapping = compiled(tmp_path)["app_orders"]
        members = compiled(tmp_path)["app_members"]
        row = {"id": 5, "nickname": "n", "phone": None, "unionid": "u", "marketing_opt_out": 0}
        upsert = map_change(members, insert("app_users", row), CTX).ops[0]
        assert isinstance(upsert, Upsert) and upsert.identity is not None
        soft = SoftDelete(upsert.table, upsert.key, ("app", 5), "deleted_at", COMMIT,
                          identity=None)
        origin = map_change(mapping, insert("app_orders", {"id": 1, "user_id": 1}), CTX)
        assert origin.ops
        (kept,) = reduce_ops([PlannedOp(upsert, None), PlannedOp(soft, None)])  # type: ignore[arg-type]
        assert isinstance(kept.op, Upsert) and kept.op.identity is not None
        assert kept.op.identity.alive is False
        assert kept.op.values["deleted_at"] == COMMIT


class TestValidateCommand:
    def test_validate_prints_identity_problems_with_their_place(self, tmp_path: Path) -> None:
        """`syncd validate` over the shipped example with a typo in the identity policies."""
        import shutil

        from click.testing import CliRunner

        from syncd.cli import main

        repo = Path(__file__).resolve().parents[3]
        shutil.copy(repo / "config.example.yaml", tmp_path / "config.yaml")
        shutil.copytree(repo / "mappings", tmp_path / "mappings")
        runner = CliRunner()
        ok = runner.invoke(main, ["validate", "--config", str(tmp_path / "config.yaml")])
        assert ok.exit_code == 0, ok.output
        identity = tmp_path / "mappings" / "identity.yaml"
        identity.write_text(identity.read_text().replace("any_true", "anytrue"))
        shop = tmp_path / "mappings" / "shop.yaml"
        shop.write_text(shop.read_text().replace("key: shop_user, by", "key: shop_usr, by"))
        bad = runner.invoke(main, ["validate", "--config", str(tmp_path / "config.yaml")])
        assert bad.exit_code == 1
        lines = bad.output.splitlines()
        assert any(line.startswith(f"{identity}:") and "unknown policy 'anytrue' (did you mean 'any_true'?)"
                   in line for line in lines), lines
        assert any(line.startswith(f"{shop}:") and "matches on 'shop_usr' (did you mean 'shop_user'?)"
                   in line for line in lines), lines
