"""Continuity on every resume: the binlog syncd resumes from is the one its checkpoint came from.

A checkpoint is a binlog file name and an offset, and neither is unique: after `RESET MASTER`,
a restore, a failover to a server with renumbered binlogs or a config that now points at
another server, `mysql-bin.000001` at offset 4711 can exist again in a *different* binlog.
Resuming there skips (or repeats) changes without a trace whenever the offset happens to fall
on an event boundary. So a checkpoint also records which history it belongs to: the creation
time and server_id of its binlog file (`Position.file_id`, from the header of the file's first
event), the GTID state, the server's identity and the last applied transaction that changed a
mapped table (`Lineage`). Every resume (start, reconnect, failover, reload) proves it before
streaming (`judge`, with what syncd/source/history.py reads from the server):

* **The same file.** The checkpoint's file on the server has the recorded creation time and
  server_id, the offset is an event boundary inside it, and (MariaDB) the server's GTID
  position there (`BINLOG_GTID_POS`) is the checkpoint's GTID state: resume there.
* **The same history in other files** (a replica after a failover, renumbered binlogs, a
  restore): the last applied transaction is looked up on the server by its GTID and proven by a
  digest of its changes (table, operation, key) and its commit time, because GTID numbers alone
  prove nothing (two independent servers with the same server_id write the same ones). The
  source resumes right after the last transaction the checkpoint covers (`find_resume_point`).
* Otherwise the source fails with `ContinuityLost`, naming what changed and the remedy.

The stream checks once more as it starts (`ResumeGuard`, in the binlog reader): the file it is
sent is the file proven, and its first GTID is not one already applied. A reset between the
check and the stream is caught as well, at no cost per event.

Checkpoints written before these records existed have none: the first resume records what it
can (the server, the file's identity) and the check starts from there (`RECORD`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from syncd.errors import ContinuityLost
from syncd.model import BinlogFileId, Lineage, Position, RowChange, SchemaChange, SourceTransaction
from syncd.source.gtid import GtidState
from syncd.source.retention import binlog_number

PROVEN = "proven"
"""The checkpoint's file on the server is the file it came from: resume there."""
RECORD = "record"
"""Nothing recorded to compare with (an older checkpoint); what could be checked holds."""
SEARCH = "search"
"""Not the same file: look for the last applied transaction elsewhere in the server's binlog."""
PURGED = "purged"
"""The file is gone from the same server (purged): PositionLost, as retention.py reports it."""
RELOCATED = "relocated"
"""Found elsewhere in the server's binlog (after a SEARCH): the checkpoint moves there."""
LOST = "binlog continuity lost"
"""How every ContinuityLost message starts (`syncd status` looks for it)."""


def transaction_digest(changes: Sequence[RowChange], commit_time: datetime) -> str:
    """What proves a transaction found on another server is the one applied: its commit time
    and, per row change, table, operation and key (keys are in the target and the dead letters
    anyway). No other values: a masked column's clear value never leaves the source, not even
    hashed."""
    digest = hashlib.blake2b(str(int(commit_time.timestamp())).encode(), digest_size=16)
    for change in changes:
        digest.update(repr((change.table, change.op.value, _key(change, change.before),
                            _key(change, change.after))).encode())
    return digest.hexdigest()


def _key(change: RowChange, row: dict | None) -> tuple | None:
    if row is None:
        return None
    if not change.key_columns:
        return tuple(row)  # no key: the column names only
    return tuple(row[column] for column in change.key_columns)


def lineage_after(lineage: Lineage, applied: SourceTransaction) -> Lineage:
    """The lineage once `applied` (a transaction that changed a mapped table) is committed."""
    return replace(lineage, applied_gtid=applied.gtid,
                   applied_digest=transaction_digest(applied.changes, applied.commit_time))


# -- the decision ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerView:
    """What the server says now about the checkpoint's place in its binlog."""

    server: str
    """Its identity (see history.server_identity)."""
    files: tuple[str, ...]
    """SHOW BINARY LOGS, oldest first."""
    size: int | None
    """Size of the checkpoint's file; None: the server has no file of that name."""
    file_id: BinlogFileId | None = None
    """Which file that name is now (None: not known)."""
    boundary: bool | None = None
    """Whether the offset is the start of an event (or the end of the file); None: not known."""
    gtid_at: str | None = None
    """MariaDB: the server's GTID position at the offset (BINLOG_GTID_POS); None: not known."""


@dataclass(frozen=True)
class Verdict:
    kind: str
    """PROVEN, RECORD, SEARCH or PURGED."""
    detail: str
    """What was proven, or what changed."""


def judge(position: Position, lineage: Lineage, view: ServerView) -> Verdict:
    """Whether the checkpoint `position` can be resumed where it says, on this server."""
    if view.size is None:
        return _file_missing(position, lineage, view)
    changed = same_file_problem(position, view, lineage.server)
    if changed is not None:
        return Verdict(SEARCH, changed)
    if position.file_id is None:
        return Verdict(RECORD, f"no record of which binlog file {position.file} the checkpoint came "
                       "from (a checkpoint written by an older syncd): the continuity check starts here")
    moved = "" if lineage.server in (None, view.server) else f" (the server now reports {view.server})"
    return Verdict(PROVEN, f"the same binlog file {position.file} ({position.file_id}){moved}")


def _file_missing(position: Position, lineage: Lineage, view: ServerView) -> Verdict:
    wanted, oldest = binlog_number(position.file), binlog_number(view.files[0]) if view.files else None
    purged = wanted is not None and oldest is not None and wanted < oldest
    if purged and lineage.server in (None, view.server):
        return Verdict(PURGED, "")
    where = f"the server ({view.server}) has no binlog file {position.file}"
    if lineage.server not in (None, view.server):
        return Verdict(SEARCH, f"{where}: it is not the server the checkpoint came from ({lineage.server})")
    return Verdict(SEARCH, f"{where} (its binlogs are {_span(view.files)}): they were reset or "
                   "renumbered, or this is another server")


def same_file_problem(position: Position, view: ServerView, server: str | None = None) -> str | None:
    """Why the server's file of that name is not (or no longer) the checkpoint's, or None;
    `server` is the identity the checkpoint recorded."""
    assert view.size is not None
    name = position.file
    if position.file_id is not None and view.file_id is not None and position.file_id != view.file_id:
        return (f"binlog file {name} on the server was {view.file_id}, but the checkpoint's {name} "
                f"was {position.file_id}: the binlogs were reset (RESET MASTER) or restored, or "
                f"this is another server{_servers(server, view)}")
    if position.pos > view.size:
        return (f"offset {position.pos} is past the end of {name} on the server ({view.size} bytes): "
                "the file was restored from an older copy, or it is another server's")
    if view.boundary is False:
        return (f"offset {position.pos} is not the start of an event in {name} on the server: it is "
                "another file than the checkpoint's")
    differs = gtid_difference(position.gtid, view.gtid_at)
    if differs is not None:
        return (f"the server's GTID position at {position} is {view.gtid_at or 'empty'}, the checkpoint's "
                f"is {position.gtid} ({differs}): another history with the same file name")
    return None


def _servers(recorded: str | None, view: ServerView) -> str:
    if recorded in (None, view.server):
        return f" (the server reports the same identity, {view.server}, which proves nothing)"
    return f" (the checkpoint came from {recorded}, the server is {view.server})"


def _span(files: Sequence[str]) -> str:
    if not files:
        return "none"
    return files[0] if len(files) == 1 else f"{files[0]} to {files[-1]}"


def gtid_difference(recorded: str | None, found: str | None) -> str | None:
    """MariaDB: the first GTID domain in which the checkpoint's state and the server's position
    differ, described; None when they agree or either is unknown (MySQL has no such position)."""
    if not recorded or found is None:
        return None
    ours, theirs = GtidState.parse(recorded), GtidState.parse(found)
    for domain, last in sorted(ours.mariadb.items()):
        other = theirs.mariadb.get(domain)
        if other != last:
            there = f"{domain}-{other[0]}-{other[1]}" if other else "nothing"
            return f"domain {domain}: {domain}-{last[0]}-{last[1]} applied, the server has {there}"
    return None


# -- another place in the server's binlog ------------------------------------------------------


def start_list_covers(gtid_list: str | None, gtid: str) -> bool:
    """Whether a binlog file that starts with this GTID list (MariaDB GTID_LIST, MySQL
    PREVIOUS_GTIDS, as text) starts after transaction `gtid`, which is then in an older file."""
    if not gtid_list:
        return False
    domain, _, rest = gtid.partition("-")
    if "-" in rest and domain.isdecimal():  # MariaDB: the list holds one entry per domain and server
        seq = int(rest.rpartition("-")[2])
        entries = (part.strip().split("-") for part in gtid_list.split(",") if part.strip())
        return any(int(d) == int(domain) and int(n) >= seq for d, _server, n in entries)
    return GtidState.parse(gtid_list).covers(gtid)


@dataclass(frozen=True)
class Relocation:
    """Where the checkpoint's history continues on this server."""

    position: Position
    """Just after the last transaction the checkpoint covers: where to resume."""
    applied_end: Position
    """Where the last applied transaction ends on this server."""


def find_resume_point(events: Iterable[object], lineage: Lineage, applied: GtidState) -> Relocation | str:
    """Walk a server's binlog (events of `BinlogReader`, from a file that starts before the last
    applied transaction): find that transaction by its GTID, prove it by its digest, then go on
    to the end of the last transaction `applied` covers. Returns why not, when it cannot.

    With several GTID domains, transactions the checkpoint covers may come after the first one
    it does not (domains interleave differently on each server); those are read again, which
    the idempotent writes absorb.
    """
    wanted = lineage.applied_gtid
    found: Position | None = None
    last: Position | None = None
    for event in events:
        if not isinstance(event, SourceTransaction | SchemaChange) or event.gtid is None:
            continue
        if found is None:
            if event.gtid != wanted:
                continue
            if not _same_transaction(event, lineage):
                return (f"it holds a transaction with GTID {wanted}, but not the one applied (other "
                        "rows, or another commit time): the same GTID numbers in another history")
            found = last = event.end
        elif applied.covers(event.gtid):
            last = event.end
        else:
            break
    if found is None or last is None:
        return f"its binlog does not hold the last applied transaction (GTID {wanted})"
    return Relocation(replace(last, gtid=str(applied) or None), found)


def _same_transaction(event: SourceTransaction | SchemaChange, lineage: Lineage) -> bool:
    return (isinstance(event, SourceTransaction)
            and transaction_digest(event.changes, event.commit_time) == lineage.applied_digest)


def why_not_searched(lineage: Lineage, paused: Sequence[str]) -> str | None:
    """Why the checkpoint's history cannot be looked for elsewhere, or None when it can."""
    if not lineage.applied_gtid or not lineage.applied_digest:
        return ("no applied transaction is recorded to look for on the server (none changed a "
                "mapped table since the checkpoint was written by a snapshot or an older syncd)")
    if paused:
        return (f"mapping(s) {', '.join(sorted(paused))} are paused at positions of the old binlog, "
                "which a resume elsewhere could not replay")
    return None


def lost_message(source: str, position: Position, changed: str, not_elsewhere: str | None = None) -> str:
    """The ContinuityLost message: what changed, why no other place was proven, the remedy."""
    text = f"{LOST} at checkpoint {position}: {changed}"
    if not_elsewhere:
        text += f"; nor can it resume elsewhere: {not_elsewhere}"
    return (f"{text}. Resuming there could skip or repeat changes without a trace, so the source "
            f"stops. Run `syncd snapshot --source {source}` to copy its tables again; syncd resumes "
            "this source by itself once the snapshot has moved its checkpoint")


# -- the stream's own check ---------------------------------------------------------------------


@dataclass
class ResumeGuard:
    """What the binlog reader checks as its stream starts at a proven checkpoint: the first
    file it is sent is the file proven, and the first GTID is not one already applied."""

    source: str
    start: Position
    file_checked: bool = False

    def file_started(self, name: str, file_id: BinlogFileId) -> None:
        """The stream's first FORMAT_DESCRIPTION event: is it the proven file?"""
        if self.file_checked:
            return
        self.file_checked = True
        expected = self.start.file_id
        if name == self.start.file and expected is not None and file_id != expected:
            raise ContinuityLost(self.source, lost_message(
                self.source, self.start, f"the server streams a binlog file {name} {file_id}, not "
                f"the checkpoint's ({expected}): the binlogs were reset or the server changed "
                "just after the resume check"))

    def first_gtid(self, gtid: str, applied: GtidState) -> None:
        """The first transaction after the checkpoint must not be one already applied."""
        if applied.repeats(gtid):
            raise ContinuityLost(self.source, lost_message(
                self.source, self.start, f"the first transaction after it has GTID {gtid}, which "
                f"is not after those applied ({applied}): this binlog is another history (binlogs "
                "reset, restored, or another server)"))
