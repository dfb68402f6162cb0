"""Issue 8 on real servers: one person across the shop and the app, merges, policies, kill -9."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from tests.helpers import eventually
from tests.integration.scenario import Scenario, Source

SHOP_SQL = [
    "CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, phone VARCHAR(20)) "
    "CHARACTER SET utf8mb4",
    "CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id INT, note VARCHAR(64)) CHARACTER SET utf8mb4",
]
APP_SQL = [
    "CREATE TABLE app_users (id INT PRIMARY KEY, nickname VARCHAR(64) NOT NULL, phone VARCHAR(20), "
    "unionid VARCHAR(64), marketing_opt_out TINYINT NOT NULL DEFAULT 0) CHARACTER SET utf8mb4",
    "CREATE TABLE app_orders (id BIGINT PRIMARY KEY, user_id INT, remark VARCHAR(64)) CHARACTER SET utf8mb4",
]

TARGET_SQL = """
CREATE TABLE members (
    channel text NOT NULL,
    source_user_id bigint NOT NULL,
    display_name text,
    phone_masked text,
    unionid_set boolean,
    marketing_opt_out boolean,
    person_id bigint,
    PRIMARY KEY (channel, source_user_id)
);
CREATE TABLE orders (
    channel text NOT NULL,
    source_order_id bigint NOT NULL,
    note text,
    member_id bigint,
    PRIMARY KEY (channel, source_order_id)
);
CREATE TABLE persons (
    person_id bigint PRIMARY KEY,
    display_name text,
    phone_masked text,
    marketing_opt_out boolean
);
"""

MAPPINGS = """
identities:
  - name: person
    salt_env: IDENTITY_SALT
    unified:
      table: persons
      columns:
        display_name: {{prefer: [{prefer}]}}
        phone_masked: latest
        marketing_opt_out: any_true
mappings:
  - name: shop_members
    source: shop
    table: users
    target: members
    key: [channel, source_user_id]
    columns:
      channel: {{value: shop}}
      source_user_id: id
      display_name: name
      phone_masked: {{from: phone, transform: mask_phone}}
    identity:
      name: person
      column: person_id
      match:
        phone: {{from: phone, transform: strip}}
        shop_user: id
  - name: shop_orders
    source: shop
    table: orders
    target: orders
    key: [channel, source_order_id]
    columns:
      channel: {{value: shop}}
      source_order_id: id
      note: note
      member_id: {{lookup: {{identity: person, key: shop_user, by: user_id}}}}
  - name: app_members
    source: app
    table: app_users
    target: members
    key: [channel, source_user_id]
    columns:
      channel: {{value: app}}
      source_user_id: id
      display_name: nickname
      phone_masked: {{from: phone, transform: mask_phone}}
      marketing_opt_out: {{from: marketing_opt_out, transform: to_bool}}
    identity:
      name: person
      column: person_id
      match:
        phone: {{from: phone, transform: strip}}
        unionid: unionid
        app_user: id
  - name: app_orders
    source: app
    table: app_orders
    target: orders
    key: [channel, source_order_id]
    columns:
      channel: {{value: app}}
      source_order_id: id
      note: remark
      member_id: {{lookup: {{identity: person, key: app_user, by: user_id}}}}
"""

PHONE = "13812345678"
UNIONID = "oUnion0000000000000000000005"
SALT = {"IDENTITY_SALT": "a-secret-pepper"}


@pytest.fixture
def shop(mariadb: MariaDBServer, source_db: Callable[[MariaDBServer], str]) -> Source:
    source = Source("shop", mariadb, source_db(mariadb))
    source.execute(*SHOP_SQL)
    return source


@pytest.fixture
def app(mariadb2: MariaDBServer, source_db: Callable[[MariaDBServer], str]) -> Source:
    source = Source("app", mariadb2, source_db(mariadb2))
    source.execute(*APP_SQL)
    return source


@pytest.fixture
def scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, shop: Source,
             app: Source, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scenario]:
    for name, value in SALT.items():
        monkeypatch.setenv(name, value)  # for the CLI commands and `syncd run`
    s = Scenario.create(tmp_path, postgres, target_db, {"shop": shop, "app": app}, TARGET_SQL)
    s.write_config(MAPPINGS.format(prefer="shop, app"))
    yield s
    s.close()


def members(scenario: Scenario) -> dict[tuple[str, int], tuple]:
    rows = scenario.target("SELECT channel, source_user_id, person_id, display_name FROM members")
    return {(r[0], r[1]): r[2:] for r in rows}


def orders(scenario: Scenario) -> dict[tuple[str, int], int | None]:
    rows = scenario.target("SELECT channel, source_order_id, member_id FROM orders")
    return {(c, i): m for c, i, m in rows}


def persons(scenario: Scenario) -> dict[int, tuple]:
    rows = scenario.target("SELECT person_id, display_name, phone_masked, marketing_opt_out FROM persons")
    return {r[0]: r[1:] for r in rows}


def streaming(scenario: Scenario) -> bool:
    return scenario.cli("status", "--json").stdout.count('"streaming"') == 2


HALF_MERGED = """
WITH live AS (SELECT person_id FROM syncd.identity_persons WHERE space = 'person' AND merged_into IS NULL)
SELECT
  (SELECT count(*) FROM syncd.identity_links WHERE person_id NOT IN (SELECT person_id FROM live)),
  (SELECT count(*) FROM syncd.identity_contributions WHERE person_id NOT IN (SELECT person_id FROM live)),
  (SELECT count(*) FROM members WHERE person_id IS NULL OR person_id NOT IN (SELECT person_id FROM live)),
  (SELECT count(*) FROM orders WHERE member_id IS NOT NULL AND member_id NOT IN (SELECT person_id FROM live)),
  (SELECT count(*) FROM persons WHERE person_id NOT IN (SELECT person_id FROM live)),
  (SELECT count(*) FROM syncd.identity_persons p WHERE merged_into IS NOT NULL
     AND merged_into NOT IN (SELECT person_id FROM live))
"""
"""Counts of everything that would show a half-done merge; all zero in every committed state."""


class TestScenario:
    def test_shop_and_app_user_become_one_person(self, scenario: Scenario, shop: Source,
                                                 app: Source) -> None:
        """The seeds' story: two members, the app user binds the shop user's phone -> one person."""
        shop.execute(("INSERT INTO users VALUES (1, '张伟', %s)", (PHONE,)),
                     "INSERT INTO orders VALUES (100, 1, 'shop order')")
        app.execute(("INSERT INTO app_users VALUES (5, '橘子汽水', NULL, %s, 0)", (UNIONID,)),
                    "INSERT INTO app_orders VALUES (200, 5, 'app order')")
        process = scenario.start(env=SALT)
        eventually(lambda: len(members(scenario)) == 2 and len(orders(scenario)) == 2, 60)
        found = members(scenario)
        shop_person, app_person = found[("shop", 1)][0], found[("app", 5)][0]
        assert shop_person != app_person  # no shared key yet: two persons
        assert orders(scenario) == {("shop", 100): shop_person, ("app", 200): app_person}
        assert persons(scenario) == {shop_person: ("张伟", "138****5678", None),
                                     app_person: ("橘子汽水", None, False)}

        # the app user binds the shop user's phone: one person, everything re-pointed
        app.execute(("UPDATE app_users SET phone = %s WHERE id = 5", (PHONE,)))
        survivor = min(shop_person, app_person)
        eventually(lambda: {p for p, _ in members(scenario).values()} == {survivor}, 30)
        assert orders(scenario) == {("shop", 100): survivor, ("app", 200): survivor}
        assert persons(scenario) == {survivor: ("张伟", "138****5678", False)}
        merges = scenario.target("SELECT survivor, merged, mapping, source, source_key, key_kinds, "
                                 "position FROM syncd.identity_merges")
        assert len(merges) == 1
        assert merges[0][:6] == (survivor, [max(shop_person, app_person)], "app_members", "app",
                                 '{"channel":"app","source_user_id":5}', ["phone"])
        assert merges[0][6].startswith("mysql-bin.")

        # an opt-out in the app: the person is opted out
        app.execute("UPDATE app_users SET marketing_opt_out = 1 WHERE id = 5")
        eventually(lambda: persons(scenario) == {survivor: ("张伟", "138****5678", True)}, 30)

        # `syncd identity show` finds the person by phone or unionid, shows kinds, never values
        shown = scenario.cli("identity", "show", PHONE, "--kind", "phone", "--json")
        assert shown.returncode == 0, shown.stderr
        report = json.loads(shown.stdout)
        assert report["person"] == survivor
        assert {link["kind"] for link in report["links"]} == {"phone", "unionid", "app_user", "shop_user"}
        assert [m["kinds"] for m in report["merges"]] == [["phone"]]
        assert {r["mapping"] for r in report["records"]} == {"shop_members", "app_members"}
        assert PHONE not in shown.stdout and UNIONID not in shown.stdout
        text = scenario.cli("identity", "show", UNIONID)
        assert text.returncode == 0 and f"person {survivor} (identity person)" in text.stdout
        assert "found by unionid" in text.stdout.splitlines()[0]
        assert scenario.cli("identity", "show", "13900000000").returncode == 1

        # no plain key anywhere in syncd's state
        dump = scenario.target("SELECT string_agg(t::text, ' ') FROM (SELECT * FROM syncd.identity_links) t")
        dump += scenario.target("SELECT string_agg(t::text, ' ') FROM "
                                "(SELECT * FROM syncd.identity_contributions) t")
        assert PHONE not in str(dump) and UNIONID not in str(dump)

        # a policy change reaches existing persons with `syncd identity recompute`
        scenario.write_config(MAPPINGS.format(prefer="app, shop"))
        result = scenario.cli("identity", "recompute")
        assert result.returncode == 0, result.stderr
        assert "identity person: 1 unified rows written, 0 removed (public.persons)" in result.stdout
        assert persons(scenario) == {survivor: ("橘子汽水", "138****5678", True)}

        # the app account is deleted: its contribution goes, the shop-derived person stays
        app.execute("DELETE FROM app_users WHERE id = 5")
        eventually(lambda: ("app", 5) not in members(scenario), 30)
        eventually(lambda: persons(scenario) == {survivor: ("张伟", "138****5678", None)}, 30)
        assert members(scenario) == {("shop", 1): (survivor, "张伟")}
        assert orders(scenario) == {("shop", 100): survivor, ("app", 200): survivor}
        # its links stay: a late app order of the deleted account still finds the person
        app.execute("INSERT INTO app_orders VALUES (201, 5, 'late')")
        eventually(lambda: orders(scenario).get(("app", 201)) == survivor, 30)
        assert scenario.target(HALF_MERGED)[0] == (0, 0, 0, 0, 0, 0)
        assert scenario.stop(process) == 0

    def test_orders_before_their_user_and_a_new_user_joining_by_unionid(self, scenario: Scenario,
                                                                        app: Source) -> None:
        """A lookup of a user syncd has not seen makes a person that the user joins later."""
        process = scenario.start(env=SALT)
        eventually(lambda: streaming(scenario), 60)
        app.execute("INSERT INTO app_orders VALUES (1, 7, 'first')")
        eventually(lambda: orders(scenario).get(("app", 1)) is not None, 30)
        early = orders(scenario)[("app", 1)]
        assert persons(scenario) == {}  # a person without source records has no unified row
        app.execute(("INSERT INTO app_users VALUES (7, 'Leo', NULL, %s, 0)", (UNIONID,)))
        eventually(lambda: ("app", 7) in members(scenario), 30)
        assert members(scenario)[("app", 7)][0] == early
        # a second app account of the same WeChat user is the same person
        app.execute(("INSERT INTO app_users VALUES (8, 'Leo2', NULL, %s, 0)", (UNIONID,)))
        eventually(lambda: members(scenario).get(("app", 8), (None,))[0] == early, 30)
        assert scenario.target("SELECT count(*) FROM syncd.identity_merges")[0][0] == 0
        assert scenario.stop(process) == 0


    def test_a_key_held_only_by_an_earlier_version_in_a_backlog_still_links(
            self, scenario: Scenario, shop: Source, app: Source) -> None:
        """Caught up after a stop, a phone changed twice within one batch links as when streamed:
        the app user who binds the first phone is the same person."""
        process = scenario.start(env=SALT)
        eventually(lambda: streaming(scenario), 60)
        assert scenario.stop(process) == 0
        shop.execute(("INSERT INTO users VALUES (30, '甲', %s)", (PHONE,)),
                     "UPDATE users SET phone = '16000000399' WHERE id = 30")
        shop.execute("UPDATE users SET name = '甲乙' WHERE id = 30")
        app.execute(("INSERT INTO app_users VALUES (30, '甲app', %s, NULL, 0)", (PHONE,)))
        process = scenario.start(env=SALT)
        eventually(lambda: ("shop", 30) in members(scenario) and ("app", 30) in members(scenario), 60)
        found = members(scenario)
        assert found[("shop", 30)][0] == found[("app", 30)][0]
        assert scenario.stop(process) == 0


def preview_json(scenario: Scenario, mapping: str) -> list[dict]:
    result = scenario.cli("preview", "--mapping", mapping, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class TestPreview:
    def test_preview_shows_how_each_row_would_resolve_and_writes_nothing(self, scenario: Scenario,
                                                                         shop: Source, app: Source) -> None:
        """The seeds' story seen through `syncd preview`: new, existing, merge, lookups."""
        shop.execute(("INSERT INTO users VALUES (1, '张伟', %s)", (PHONE,)))
        app.execute(("INSERT INTO app_users VALUES (5, '橘子汽水', NULL, %s, 0)", (UNIONID,)),
                    "INSERT INTO app_orders VALUES (200, 5, 'app order')")
        # before syncd ever ran there is no state schema: no links yet, every record is new
        [before] = preview_json(scenario, "shop_members")
        assert before["identity"]["record"]["outcome"] == "new"
        assert before["identity"]["note"] == "no links yet (the state schema 'syncd' has no identity tables)"

        process = scenario.start(env=SALT)
        eventually(lambda: len(members(scenario)) == 2 and len(orders(scenario)) == 1, 60)
        assert scenario.stop(process) == 0
        found = members(scenario)
        shop_person, app_person = found[("shop", 1)][0], found[("app", 5)][0]
        survivor, merged = min(shop_person, app_person), max(shop_person, app_person)
        # with syncd stopped, the app user binds the phone, a new app user and an unknown user's order
        app.execute(("UPDATE app_users SET phone = %s WHERE id = 5", (PHONE,)),
                    "INSERT INTO app_users VALUES (6, 'Leo', NULL, 'oOther', 0)",
                    "INSERT INTO app_orders VALUES (201, 9, 'whose?')")
        [shop_row] = preview_json(scenario, "shop_members")
        assert shop_row["identity"]["record"]["text"] == (
            f"existing person {shop_person} (matched by this record, phone, shop_user)")
        app_rows = {r["key"]: r["identity"] for r in preview_json(scenario, "app_members")}
        merge = app_rows["id=5"]["record"]
        assert (merge["outcome"], merge["person"], merge["merged"]) == ("merge", survivor, [merged])
        assert merge["text"].startswith(f"would merge persons {survivor} and {merged} (survivor {survivor})")
        assert app_rows["id=6"]["record"]["text"] == "new person"
        lookups = {r["key"]: r["identity"]["lookups"][0] for r in preview_json(scenario, "app_orders")}
        assert (lookups["id=200"]["outcome"], lookups["id=200"]["person"]) == ("resolved", app_person)
        assert lookups["id=201"]["outcome"] == "unresolved"

        # the human form: outcomes, key kinds and hash prefixes, never the keys' values
        shown = scenario.cli("preview", "--mapping", "app_members")
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert any(line.startswith(f"  identity person -> person_id: would merge persons {survivor} and "
                                   f"{merged} (survivor {survivor})") for line in lines), shown.stdout
        identity_lines = [line for line in lines if line.startswith(("  identity", "    match keys"))]
        assert len(identity_lines) == 4
        assert PHONE not in "\n".join(identity_lines) and UNIONID not in "\n".join(identity_lines)
        assert PHONE not in json.dumps(app_rows) and UNIONID not in json.dumps(app_rows)
        # nothing was written: no merge, the persons as they were
        assert scenario.target("SELECT count(*) FROM syncd.identity_merges") == [(0,)]
        assert members(scenario) == found


class TestReconcileUnified:
    def test_unified_drift_is_reported_exactly_then_repaired(self, scenario: Scenario, shop: Source,
                                                             app: Source) -> None:
        shop.execute(("INSERT INTO users VALUES (1, '张伟', %s)", (PHONE,)),
                     "INSERT INTO users VALUES (2, '李娜', '13900000002')",
                     "INSERT INTO users VALUES (3, '王芳', '13900000003')")
        app.execute(("INSERT INTO app_users VALUES (5, '橘子汽水', %s, %s, 1)", (PHONE, UNIONID)))
        process = scenario.start(env=SALT)
        eventually(lambda: len(members(scenario)) == 4 and len(persons(scenario)) == 3, 60)
        good = persons(scenario)
        person = {name: p for p, (name, _, _) in good.items()}
        zhang, li, wang = person["张伟"], person["李娜"], person["王芳"]
        assert good[zhang] == ("张伟", "138****5678", True)

        # a policy column changed; 李娜's member row and unified row gone (the mapping pass brings the
        # member back, which rebuilds its person); 王芳's unified row gone; a row of no person
        scenario.target("UPDATE persons SET marketing_opt_out = false WHERE person_id = %s", (zhang,))
        scenario.target("DELETE FROM members WHERE channel = 'shop' AND source_user_id = 2")
        scenario.target("DELETE FROM persons WHERE person_id = ANY(%s)", ([li, wang],))
        scenario.target("INSERT INTO persons VALUES (999, 'ghost', NULL, NULL)")

        checked = scenario.cli("reconcile", "--json", "--chunk-rows", "1")  # one person per snapshot
        assert checked.returncode == 1, checked.stderr
        reports = {r["mapping"]: r for r in json.loads(checked.stdout)["mappings"]}
        assert list(reports)[-1] == "identity:person"  # after the mapping passes
        unified = reports["identity:person"]
        assert (unified["status"], unified["mode"], unified["source"], unified["target_table"],
                unified["key_columns"]) == ("drift", "unified", "app,shop", "public.persons", ["person_id"])
        assert (unified["rows_compared"], unified["chunks"]) == (4, 4)  # the last, open range finds 999
        assert unified["missing"] == {"count": 2, "keys": [[p] for p in sorted([li, wang])]}
        assert unified["extra"] == {"count": 1, "keys": [[999]]}
        assert unified["differ"] == {"count": 1, "rows": [{"key": [zhang], "columns": ["marketing_opt_out"]}]}
        assert reports["shop_members"]["missing"] == {"count": 1, "keys": [["shop", 2]]}
        others = {name: r["status"] for name, r in reports.items()
                  if name not in {"shop_members", "identity:person"}}
        assert set(others.values()) == {"in_sync"}
        text = scenario.cli("reconcile").stdout
        assert f"identity:person: differ (person_id): {zhang} (marketing_opt_out)" in text
        assert "identity:person: extra in public.persons (person_id): 999" in text

        repaired = scenario.cli("reconcile", "--repair", "--json")
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        reports = {r["mapping"]: r for r in json.loads(repaired.stdout)["mappings"]}
        assert reports["shop_members"]["status"] == "repaired"
        unified = reports["identity:person"]
        # 李娜's row was rebuilt by the sink with her member row, before the unified pass ran
        assert (unified["status"], unified["missing"]["keys"], unified["repaired"]) == (
            "repaired", [[wang]], 3)
        assert persons(scenario) == good

        again = scenario.cli("reconcile", "--json")
        assert again.returncode == 0, again.stdout
        assert json.loads(again.stdout)["mappings"][-1]["status"] == "in_sync"
        runs = scenario.target("SELECT status, missing, extra, differ, repaired FROM syncd.reconcile_runs "
                               "WHERE mapping = 'identity:person' ORDER BY id")
        assert runs == [("drift", 2, 1, 1, 0), ("drift", 2, 1, 1, 0), ("repaired", 1, 1, 1, 3),
                        ("in_sync", 0, 0, 0, 0)]
        assert scenario.stop(process) == 0

    def test_a_repair_of_an_unchanged_record_does_not_make_it_the_latest(self, scenario: Scenario,
                                                                          shop: Source, app: Source) -> None:
        """A repair reads a record again at the time of the repair; unchanged, it keeps its commit
        time, so a `latest` column of its person does not flip back to its older value."""
        process = scenario.start(env=SALT)
        eventually(lambda: streaming(scenario), 60)
        shop.execute(("INSERT INTO users VALUES (32, '丙', %s)", (PHONE,)))
        eventually(lambda: ("shop", 32) in members(scenario), 30)
        time.sleep(1.1)  # commit times have whole seconds
        app.execute(("INSERT INTO app_users VALUES (32, '丙app', %s, NULL, 0)", (PHONE,)))
        eventually(lambda: ("app", 32) in members(scenario), 30)
        time.sleep(1.1)
        app.execute("UPDATE app_users SET phone = '17000000999' WHERE id = 32")
        person = members(scenario)[("shop", 32)][0]
        eventually(lambda: persons(scenario).get(person, (None, None))[1] == "170****0999", 30)
        assert scenario.stop(process) == 0
        scenario.target("UPDATE members SET display_name = 'x' "
                        "WHERE channel = 'shop' AND source_user_id = 32")
        repaired = scenario.cli("reconcile", "--mapping", "shop_members", "--repair", "--json")
        assert repaired.returncode in (0, 1), repaired.stderr
        assert members(scenario)[("shop", 32)][1] == "丙"
        assert persons(scenario)[person][1] == "170****0999"


def reconcile_reports(scenario: Scenario, *args: str) -> tuple[int, dict[str, dict]]:
    result = scenario.cli("reconcile", "--json", *args)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.returncode, {r["mapping"]: r for r in json.loads(result.stdout)["mappings"]}


def set_person(scenario: Scenario, table: str, column: str, key: tuple[str, int], person: int | None) -> None:
    name = "source_user_id" if table == "members" else "source_order_id"
    scenario.target(f"UPDATE {table} SET {column} = %s WHERE channel = %s AND {name} = %s", (person, *key))


class TestReconcilePersonColumns:
    def test_wrong_person_ids_are_reported_then_repaired(self, scenario: Scenario, shop: Source,
                                                         app: Source) -> None:
        """members.person_id and orders.member_id are compared with the stored identity state."""
        shop.execute(("INSERT INTO users VALUES (1, '张伟', %s)", (PHONE,)),
                     "INSERT INTO users VALUES (2, '李娜', '13900000002')",
                     "INSERT INTO orders VALUES (100, 1, 'first')",
                     "INSERT INTO orders VALUES (101, 2, 'second')",
                     "INSERT INTO orders VALUES (102, NULL, 'guest')")
        app.execute(("INSERT INTO app_users VALUES (5, '橘子汽水', %s, %s, 0)", (PHONE, UNIONID)),
                    "INSERT INTO app_orders VALUES (200, 5, 'app order')")
        process = scenario.start(env=SALT)
        eventually(lambda: len(members(scenario)) == 3 and len(orders(scenario)) == 4, 60)
        good_members, good_orders = members(scenario), orders(scenario)
        zhang, li = good_members[("shop", 1)][0], good_members[("shop", 2)][0]
        assert good_members[("app", 5)][0] == zhang and good_orders[("shop", 102)] is None
        code, reports = reconcile_reports(scenario)
        assert code == 0 and {r["status"] for r in reports.values()} == {"in_sync"}

        # someone else's person; a guest order (no user: NULL) given a person
        set_person(scenario, "members", "person_id", ("shop", 1), li)
        set_person(scenario, "orders", "member_id", ("shop", 101), zhang)
        set_person(scenario, "orders", "member_id", ("shop", 102), zhang)
        code, reports = reconcile_reports(scenario)
        assert code == 1
        assert reports["shop_members"]["differ"] == {
            "count": 1, "rows": [{"key": ["shop", 1], "columns": ["person_id"]}]}
        assert reports["shop_orders"]["differ"] == {"count": 2, "rows": [
            {"key": ["shop", 101], "columns": ["member_id"]},
            {"key": ["shop", 102], "columns": ["member_id"]}]}
        assert {name: r["status"] for name, r in reports.items()} == {
            "shop_members": "drift", "shop_orders": "drift", "app_members": "in_sync",
            "app_orders": "in_sync", "identity:person": "in_sync"}
        text = scenario.cli("reconcile", "--mapping", "shop_orders").stdout
        assert ("shop_orders: differ (channel, source_order_id): shop,101 (member_id)  "
                "shop,102 (member_id)") in text

        code, reports = reconcile_reports(scenario, "--repair")
        assert code == 0
        assert {reports[m]["status"] for m in ("shop_members", "shop_orders")} == {"repaired"}
        assert members(scenario) == good_members and orders(scenario) == good_orders
        code, reports = reconcile_reports(scenario)
        assert code == 0 and {r["status"] for r in reports.values()} == {"in_sync"}

        # a range remembered as verified is compared again once a person column changes in it
        code, reports = reconcile_reports(scenario, "--mapping", "shop_orders")
        assert (code, reports["shop_orders"]["chunks_unchanged"]) == (0, 1)
        set_person(scenario, "orders", "member_id", ("shop", 100), li)
        code, reports = reconcile_reports(scenario, "--mapping", "shop_orders")
        assert (code, reports["shop_orders"]["chunks_unchanged"]) == (1, 0)
        assert reports["shop_orders"]["differ"]["rows"] == [{"key": ["shop", 100], "columns": ["member_id"]}]
        assert scenario.stop(process) == 0

    def test_a_stored_person_merged_away_counts_as_its_survivor(self, scenario: Scenario,
                                                                shop: Source) -> None:
        """Reconcile and the sink both follow identity_persons.merged_into (state edited by hand)."""
        shop.execute(("INSERT INTO users VALUES (1, '张伟', %s)", (PHONE,)),
                     "INSERT INTO orders VALUES (100, 1, 'first')")
        process = scenario.start(env=SALT)
        eventually(lambda: len(members(scenario)) == 1 and len(orders(scenario)) == 1, 60)
        person = members(scenario)[("shop", 1)][0]
        scenario.target("INSERT INTO syncd.identity_persons (space, person_id, merged_into, merged_at) "
                        "VALUES ('person', 999, %s, now())", (person,))
        for table in ("identity_links", "identity_contributions"):
            scenario.target(f"UPDATE syncd.{table} SET person_id = 999 WHERE person_id = %s", (person,))
        _, reports = reconcile_reports(scenario)
        assert {reports[m]["status"] for m in ("shop_members", "shop_orders")} == {"in_sync"}

        shop.execute("UPDATE users SET name = '张伟伟' WHERE id = 1",
                     "INSERT INTO orders VALUES (101, 1, 'more')")
        eventually(lambda: members(scenario)[("shop", 1)] == (person, "张伟伟")
                   and orders(scenario).get(("shop", 101)) == person, 30)
        assert scenario.target("SELECT count(*) FROM syncd.identity_merges") == [(0,)]
        assert scenario.stop(process) == 0


class TestEdges:
    def test_a_rejected_row_leaves_no_identity_behind(self, scenario: Scenario, app: Source) -> None:
        """PostgreSQL refuses one member row of a batch: it is dead-lettered with its links and
        contribution rolled back; the rest of the batch resolves and lands."""
        scenario.target("ALTER TABLE members ADD CONSTRAINT no_bad CHECK (display_name <> 'bad')")
        process = scenario.start(env=SALT)
        eventually(lambda: streaming(scenario), 60)
        app.execute(("INSERT INTO app_users VALUES (5, 'good', NULL, %s, 0)", (UNIONID,)),
                    ("INSERT INTO app_users VALUES (6, 'bad', %s, NULL, 0)", (PHONE,)))
        eventually(lambda: scenario.target("SELECT count(*) FROM syncd.dead_letters")[0][0] == 1, 30)
        assert set(members(scenario)) == {("app", 5)}
        records = scenario.target("SELECT source_key FROM syncd.identity_contributions")
        assert records == [('{"channel":"app","source_user_id":5}',)]
        assert {r[0] for r in scenario.target("SELECT kind FROM syncd.identity_links")} == {
            "unionid", "app_user"}  # nothing of user 6 (its phone, its id)
        assert len(persons(scenario)) == 1
        assert scenario.target(HALF_MERGED)[0] == (0, 0, 0, 0, 0, 0)
        assert scenario.stop(process) == 0

    def test_truncate_removes_the_contributions_of_the_slice(self, scenario: Scenario, shop: Source,
                                                             app: Source) -> None:
        shop.execute(("INSERT INTO users VALUES (1, '张伟', %s)", (PHONE,)))
        app.execute(("INSERT INTO app_users VALUES (5, '橘子汽水', %s, %s, 1)", (PHONE, UNIONID)))
        process = scenario.start(env=SALT)
        eventually(lambda: len({p for p, _ in members(scenario).values()}) == 1
                   and len(members(scenario)) == 2, 60)
        (person,) = {p for p, _ in members(scenario).values()}
        eventually(lambda: persons(scenario) == {person: ("张伟", "138****5678", True)}, 30)
        app.execute("TRUNCATE TABLE app_users")
        eventually(lambda: set(members(scenario)) == {("shop", 1)}, 30)
        eventually(lambda: persons(scenario) == {person: ("张伟", "138****5678", None)}, 30)
        live = scenario.target("SELECT count(*) FROM syncd.identity_contributions WHERE deleted_at IS NULL")
        assert live == [(1,)]
        assert scenario.stop(process) == 0


def expected_partition(shop: Source, app: Source) -> set[frozenset[tuple[str, int]]]:
    """Members that share a phone or a unionid, directly or through others (union-find)."""
    parent: dict = {}

    def find(node):
        parent.setdefault(node, node)
        while parent[node] != node:
            node = parent[node]
        return node

    def union(a, b):
        parent[find(a)] = find(b)

    for user_id, phone in shop.rows("SELECT id, phone FROM users"):
        find(("shop", user_id))
        if phone:
            union(("shop", user_id), ("phone", phone))
    for user_id, phone, unionid in app.rows("SELECT id, phone, unionid FROM app_users"):
        find(("app", user_id))
        if phone:
            union(("app", user_id), ("phone", phone))
        if unionid:
            union(("app", user_id), ("unionid", unionid))
    groups: dict = {}
    for node in parent:
        if node[0] in {"shop", "app"}:
            groups.setdefault(find(node), set()).add(node)
    return {frozenset(g) for g in groups.values()}


def actual_partition(scenario: Scenario) -> set[frozenset[tuple[str, int]]]:
    groups: dict = {}
    for (channel, user_id), (person, _) in members(scenario).items():
        groups.setdefault(person, set()).add((channel, user_id))
    return {frozenset(g) for g in groups.values()}


def merging_workload(shop: Source, app: Source, rng: random.Random, stop: threading.Event) -> None:
    """Users and orders on both sources; app users binding phones of shop users merge persons.

    Keys are only ever added (a phone goes from NULL to a number, never changes), so the right
    partition can be computed from the final source rows (`expected_partition`)."""
    phones = [f"139{n:08d}" for n in range(40)]
    unionids = [f"oU{n:026d}" for n in range(40)]
    shop_id = app_id = order_id = 0
    while not stop.is_set():
        roll = rng.random()
        if roll < 0.3:
            shop_id += 1
            order_id += 1
            shop.execute(("INSERT INTO users VALUES (%s, %s, %s)",
                          (shop_id, f"s{shop_id}", rng.choice([*phones, None]))),
                         ("INSERT INTO orders VALUES (%s, %s, NULL)", (order_id, shop_id)))
        elif roll < 0.6:
            app_id += 1
            order_id += 1
            app.execute(("INSERT INTO app_users VALUES (%s, %s, NULL, %s, %s)",
                         (app_id, f"a{app_id}", rng.choice([*unionids, None]), rng.randint(0, 1))),
                        ("INSERT INTO app_orders VALUES (%s, %s, NULL)", (order_id, app_id)))
        elif app_id:
            app.execute(("UPDATE app_users SET phone = %s WHERE id = %s AND phone IS NULL",
                         (rng.choice(phones), rng.randint(1, app_id))))


class Watcher(threading.Thread):
    """Checks HALF_MERGED over and over while syncd works (each check is one consistent snapshot)."""

    def __init__(self, scenario: Scenario, stop: threading.Event) -> None:
        super().__init__()
        self.scenario, self.stop = scenario, stop
        self.checks = 0
        self.bad: list[tuple] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                counts = self.scenario.target(HALF_MERGED)[0]
            except (psycopg.errors.InvalidSchemaName, psycopg.errors.UndefinedTable):
                continue  # before syncd created its state schema and tables
            self.checks += 1
            if any(counts):
                self.bad.append(counts)


class TestKill9:
    @pytest.mark.slow
    def test_kill_9_during_merges_leaves_no_half_merged_person(self, scenario: Scenario, shop: Source,
                                                              app: Source) -> None:
        """Both sources merge persons concurrently while syncd is killed again and again: no
        committed state ever shows a half-done merge, and the end result is the right partition."""
        rng = random.Random(8)
        stop = threading.Event()
        writer = threading.Thread(target=merging_workload, args=(shop, app, rng, stop))
        watcher = Watcher(scenario, stop)
        writer.start()
        watcher.start()
        try:
            for _ in range(5):
                process = scenario.start(env=SALT)
                threading.Event().wait(rng.uniform(2.0, 4.0))
                scenario.kill(process)
        finally:
            stop.set()
            writer.join()
            watcher.join()
        process = scenario.start(env=SALT)
        expected = expected_partition(shop, app)
        eventually(lambda: actual_partition(scenario) == expected, 90)
        assert watcher.bad == []
        assert watcher.checks > 20
        assert scenario.target(HALF_MERGED)[0] == (0, 0, 0, 0, 0, 0)
        assert scenario.target("SELECT count(*) FROM syncd.identity_merges")[0][0] >= 1  # merges happened
        # every order points at its user's person; every person with members has its unified row
        person_of = {key: person for key, (person, _) in members(scenario).items()}
        for (channel, order), member in orders(scenario).items():
            user = (shop if channel == "shop" else app).rows(
                f"SELECT user_id FROM {'orders' if channel == 'shop' else 'app_orders'} WHERE id = {order}")
            assert member == person_of[(channel, user[0][0])]
        assert set(persons(scenario)) == set(person_of.values())
        assert scenario.stop(process) == 0
