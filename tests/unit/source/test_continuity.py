"""The continuity decision on every resume (syncd/source/continuity.py): what matches, what fails,
and with which message. Pure: the server's answers are given as `ServerView`s and event lists."""

from __future__ import annotations

import re
import struct
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.errors import ContinuityLost
from syncd.model import (
    BinlogFileId,
    Heartbeat,
    Lineage,
    Op,
    Position,
    RowChange,
    SchemaChange,
    SourceTransaction,
)
from syncd.source import continuity
from syncd.source.continuity import (
    PROVEN,
    PURGED,
    RECORD,
    SEARCH,
    Relocation,
    ResumeGuard,
    ServerView,
    find_resume_point,
    gtid_difference,
    judge,
    lost_message,
    start_list_covers,
    transaction_digest,
    why_not_searched,
)
from syncd.source.gtid import GtidState
from syncd.source.mysql_events import gtid_set as mysql_previous_gtids
from syncd.source.retention import mariadb_gtid_list

FILE = "mysql-bin.000007"
CREATED = BinlogFileId(1_764_000_000, 1)
SERVER = "MariaDB server_id 1, gtid_domain_id 0"
OTHER = "MariaDB server_id 2, gtid_domain_id 0"
WHEN = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
CHECKPOINT = Position(FILE, 4711, "0-1-57", CREATED)
FILES = ("mysql-bin.000005", "mysql-bin.000006", FILE)


def change(order_id: int, op: Op = Op.INSERT, status: str = "paid") -> RowChange:
    row = {"id": order_id, "status": status}
    return RowChange("orders", op, None if op is Op.INSERT else row, None if op is Op.DELETE else row,
                     key_columns=("id",))


def tx(gtid: str, *changes: RowChange, end: int = 100, when: datetime = WHEN) -> SourceTransaction:
    return SourceTransaction("shop", list(changes), Position(FILE, end, gtid), when, gtid=gtid)


APPLIED = tx("0-1-57", change(5))
LINEAGE = Lineage(SERVER, "0-1-57", transaction_digest(APPLIED.changes, WHEN))


def view(**fields: object) -> ServerView:
    base = {"server": SERVER, "files": FILES, "size": 9000, "file_id": CREATED, "boundary": True,
            "gtid_at": "0-1-57"}
    return ServerView(**{**base, **fields})  # type: ignore[arg-type]


# -- the same file --------------------------------------------------------------------------------


def test_the_same_file_at_a_boundary_with_the_same_gtid_position_is_proven() -> None:
    verdict = judge(CHECKPOINT, LINEAGE, view())
    assert verdict.kind == PROVEN
    assert verdict.detail == f"the same binlog file {FILE} (created 2025-11-24 16:00:00 UTC by server_id 1)"


def test_a_server_that_changed_its_identity_but_kept_the_file_is_proven_and_says_so() -> None:
    verdict = judge(CHECKPOINT, LINEAGE, view(server=OTHER))
    assert verdict.kind == PROVEN and verdict.detail.endswith(f"(the server now reports {OTHER})")


def test_a_file_of_the_same_name_created_at_another_time_is_another_file() -> None:
    """RESET MASTER, a restore, or another server: the file's first event says when it was made."""
    verdict = judge(CHECKPOINT, LINEAGE, view(file_id=BinlogFileId(CREATED.created + 60, 1)))
    assert verdict.kind == SEARCH
    assert verdict.detail == (
        f"binlog file {FILE} on the server was created 2025-11-24 16:01:00 UTC by server_id 1, but "
        f"the checkpoint's {FILE} was created 2025-11-24 16:00:00 UTC by server_id 1: the binlogs were "
        "reset (RESET MASTER) or restored, or this is another server (the server reports the same "
        f"identity, {SERVER}, which proves nothing)")


def test_a_file_created_in_the_same_second_by_another_server_id_is_another_file() -> None:
    verdict = judge(CHECKPOINT, LINEAGE, view(server=OTHER, file_id=BinlogFileId(CREATED.created, 2)))
    assert verdict.kind == SEARCH
    assert f"(the checkpoint came from {SERVER}, the server is {OTHER})" in verdict.detail


def test_an_offset_past_the_end_of_the_file_is_not_resumed() -> None:
    verdict = judge(CHECKPOINT, LINEAGE, view(size=4000, boundary=None, gtid_at=None))
    assert verdict.kind == SEARCH
    assert verdict.detail.startswith(f"offset 4711 is past the end of {FILE} on the server (4000 bytes)")


def test_an_offset_inside_an_event_is_not_resumed() -> None:
    verdict = judge(CHECKPOINT, LINEAGE, view(boundary=False, gtid_at=None))
    assert verdict.kind == SEARCH
    assert verdict.detail.startswith(f"offset 4711 is not the start of an event in {FILE}")


def test_another_gtid_position_at_the_same_place_is_another_history() -> None:
    """A file restored from an older copy, then written on: same file, other transactions."""
    verdict = judge(CHECKPOINT, LINEAGE, view(gtid_at="0-1-51"))
    assert verdict.kind == SEARCH
    assert verdict.detail == (f"the server's GTID position at {FILE}:4711 is 0-1-51, the checkpoint's "
                              "is 0-1-57 (domain 0: 0-1-57 applied, the server has 0-1-51): another "
                              "history with the same file name")


def test_domains_the_checkpoint_never_saw_do_not_matter() -> None:
    assert judge(CHECKPOINT, LINEAGE, view(gtid_at="0-1-57,3-9-1000")).kind == PROVEN


def test_a_checkpoint_without_records_is_recorded_when_what_can_be_checked_holds() -> None:
    older = Position(FILE, 4711, "0-1-57")
    verdict = judge(older, Lineage(), view())
    assert verdict.kind == RECORD
    assert verdict.detail.endswith("written by an older syncd): the continuity check starts here")
    assert judge(older, Lineage(), view(gtid_at="0-1-3")).kind == SEARCH  # what can be checked, is


def test_an_unknown_file_identity_on_the_server_does_not_fail_by_itself() -> None:
    assert judge(CHECKPOINT, LINEAGE, view(file_id=None)).kind == PROVEN


# -- the file is not on the server ----------------------------------------------------------


def test_a_file_older_than_the_oldest_on_the_same_server_was_purged() -> None:
    assert judge(Position("mysql-bin.000003", 4), LINEAGE, view(size=None)).kind == PURGED
    assert judge(Position("mysql-bin.000003", 4), Lineage(), view(size=None)).kind == PURGED


def test_a_missing_file_on_another_server_is_looked_for_there() -> None:
    verdict = judge(Position("mysql-bin.000003", 4), LINEAGE, view(server=OTHER, size=None))
    assert verdict.kind == SEARCH
    assert verdict.detail == (f"the server ({OTHER}) has no binlog file mysql-bin.000003: it is not "
                              f"the server the checkpoint came from ({SERVER})")


def test_a_file_newer_than_the_newest_means_reset_or_renumbered_binlogs() -> None:
    verdict = judge(Position("mysql-bin.000042", 4), LINEAGE, view(size=None))
    assert verdict.kind == SEARCH
    assert verdict.detail == (f"the server ({SERVER}) has no binlog file mysql-bin.000042 (its binlogs "
                              f"are mysql-bin.000005 to {FILE}): they were reset or renumbered, or "
                              "this is another server")


# -- GTID positions --------------------------------------------------------------------------


def test_gtid_difference_names_the_first_domain_that_differs() -> None:
    assert gtid_difference("0-1-57,2-1-3", "0-1-57,2-1-3") is None
    assert gtid_difference("0-1-57,2-1-3", "0-1-57") == "domain 2: 2-1-3 applied, the server has nothing"
    assert gtid_difference(None, "0-1-3") is None  # nothing recorded
    assert gtid_difference("0-1-57", None) is None  # MySQL: no position to ask for


@pytest.mark.parametrize(("gtids", "gtid", "covered"), [
    ("", "0-1-57", False),
    ("0-1-56", "0-1-57", False),
    ("0-1-57", "0-1-57", True),
    ("0-2-60,0-1-50", "0-1-57", True),  # another server went on in the domain
    ("1-1-99", "0-1-57", False),
    ("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-57", "3e11fa47-71ca-11e1-9e33-c80aa9429562:57", True),
    ("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-56", "3e11fa47-71ca-11e1-9e33-c80aa9429562:57", False),
])
def test_a_file_starts_after_a_transaction_when_its_gtid_list_covers_it(gtids: str, gtid: str,
                                                                        covered: bool) -> None:
    assert start_list_covers(gtids, gtid) is covered


# -- the last applied transaction on another server ----------------------------------------------


def test_digests_tell_transactions_by_rows_operations_and_commit_time() -> None:
    digest = transaction_digest([change(5)], WHEN)
    assert digest == transaction_digest([change(5, status="other values are not part of it")], WHEN)
    assert digest != transaction_digest([change(6)], WHEN)
    assert digest != transaction_digest([change(5, Op.DELETE)], WHEN)
    assert digest != transaction_digest([change(5)], WHEN + timedelta(seconds=1))
    assert digest != transaction_digest([change(5), change(5)], WHEN)
    assert len(digest) == 32


@given(st.lists(st.tuples(st.integers(), st.sampled_from(list(Op))), max_size=20))
def test_a_digest_depends_only_on_what_it_says(rows: list[tuple[int, Op]]) -> None:
    changes = [change(order_id, op) for order_id, op in rows]
    again = [change(order_id, op, status="x") for order_id, op in rows]
    assert transaction_digest(changes, WHEN) == transaction_digest(again, WHEN)


def test_the_history_continues_after_the_last_transaction_the_checkpoint_covers() -> None:
    events = [tx("0-1-55", change(3), end=100), Heartbeat("shop", None), tx("0-1-57", change(5), end=300),
              SchemaChange("shop", "db", "CREATE TABLE x (id int)", Position(FILE, 350), WHEN, "0-1-58"),
              tx("0-1-59", end=400), tx("0-1-60", change(6), end=500), tx("0-1-61", end=600)]
    found = find_resume_point(events, LINEAGE, GtidState.parse("0-1-59"))
    assert found == Relocation(Position(FILE, 400), Position(FILE, 300))
    assert found.position.gtid == "0-1-59"  # the checkpoint's state goes on with it


def test_the_same_gtid_with_other_rows_is_another_history() -> None:
    """Two servers with one server_id write the same GTIDs: the digest tells them apart."""
    events = [tx("0-1-57", change(99)), tx("0-1-58", change(100))]
    assert find_resume_point(events, LINEAGE, GtidState.parse("0-1-57")) == (
        "it holds a transaction with GTID 0-1-57, but not the one applied (other rows, or another "
        "commit time): the same GTID numbers in another history")
    later = [tx("0-1-57", change(5), when=WHEN + timedelta(seconds=3))]
    assert isinstance(find_resume_point(later, LINEAGE, GtidState.parse("0-1-57")), str)


def test_a_server_without_the_last_applied_transaction_cannot_continue_it() -> None:
    """A replica that lags behind the primary the checkpoint came from."""
    events = [tx("0-1-55", change(3)), tx("0-1-56", change(4))]
    assert find_resume_point(events, LINEAGE, GtidState.parse("0-1-57")) == (
        "its binlog does not hold the last applied transaction (GTID 0-1-57)")


def test_nothing_to_look_for_or_paused_mappings_prevent_the_search() -> None:
    assert why_not_searched(Lineage(SERVER), []).startswith("no applied transaction is recorded")
    assert why_not_searched(LINEAGE, ["shop_orders"]) == (
        "mapping(s) shop_orders are paused at positions of the old binlog, which a resume elsewhere "
        "could not replay")
    assert why_not_searched(LINEAGE, []) is None


def test_the_message_names_what_changed_why_not_elsewhere_and_the_remedy() -> None:
    message = lost_message("shop", CHECKPOINT, "what changed", "why not elsewhere")
    assert message == (
        f"binlog continuity lost at checkpoint {FILE}:4711: what changed; nor can it resume elsewhere: "
        "why not elsewhere. Resuming there could skip or repeat changes without a trace, so the source "
        "stops. Run `syncd snapshot --source shop` to copy its tables again; syncd resumes this source "
        "by itself once the snapshot has moved its checkpoint")
    assert message.startswith(continuity.LOST)


# -- the stream's own check -----------------------------------------------------------------


def test_the_stream_must_start_in_the_proven_file() -> None:
    guard = ResumeGuard("shop", CHECKPOINT)
    with pytest.raises(ContinuityLost, match=re.escape("the server streams a binlog file mysql-bin.000007 "
                       "created 2025-11-24 16:00:05 UTC by server_id 1, not the checkpoint's")):
        guard.file_started(FILE, BinlogFileId(CREATED.created + 5, 1))
    same = ResumeGuard("shop", CHECKPOINT)
    same.file_started(FILE, CREATED)
    same.file_started("mysql-bin.000008", BinlogFileId(CREATED.created + 99, 1))  # a later file


def test_the_first_gtid_must_not_be_one_already_applied() -> None:
    guard = ResumeGuard("shop", CHECKPOINT)
    with pytest.raises(ContinuityLost, match="the first transaction after it has GTID 0-1-3, which is "
                       "not after those applied"):
        guard.first_gtid("0-1-3", GtidState.parse("0-1-57"))
    guard.first_gtid("0-1-58", GtidState.parse("0-1-57"))
    guard.first_gtid("2-1-1", GtidState.parse("0-1-57"))  # a domain added later
    guard.first_gtid("0-2-40", GtidState.parse("0-1-57"))  # another server lagging in a shared domain


# -- the GTID lists at the start of a binlog file -----------------------------------------------


def test_a_mariadb_gtid_list_event_body_reads_as_text() -> None:
    body = struct.pack("<I", 2) + struct.pack("<IIQ", 0, 1, 57) + struct.pack("<IIQ", 2, 1, 3) + b"CRC!"
    assert mariadb_gtid_list(body) == "0-1-57,2-1-3"
    assert mariadb_gtid_list(struct.pack("<I", 0) + b"CRC!") == ""


def test_a_mysql_previous_gtids_event_body_reads_as_a_gtid_set() -> None:
    uuid = bytes.fromhex("3e11fa4771ca11e19e33c80aa9429562")
    body = (struct.pack("<Q", 1) + uuid + struct.pack("<Q", 2) + struct.pack("<QQ", 1, 58)
            + struct.pack("<QQ", 60, 61) + b"CRC!")
    assert mysql_previous_gtids(body) == "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-57:60"
