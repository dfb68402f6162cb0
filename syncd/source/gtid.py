"""GTID bookkeeping for checkpoints: MySQL GTID sets (`uuid:1-5:7`, tagged `uuid:1-5:tag:1-3`)
and MariaDB positions (`0-1-42`).

Resume is by binlog file/offset; the GTID state is stored beside it, so that every resume can
check that the binlog there continues it, and find the same point on another server of the same
topology (syncd/source/continuity.py).

MySQL 8.3 added tagged GTIDs (`uuid:tag:number`, reference manual 8.4 "GTID Format and
Storage"): a tag is 1 to 32 characters, a letter or `_` first, then letters, digits and `_`,
compared without case (the server stores it in lower case). A uuid with a tag is its own source
of transaction numbers, so a set keeps intervals per uuid and tag, and prints as the server does
(`Gtid_set::to_string`): per uuid in order, its untagged intervals, then each tag in order with
its own. Numbers run from 1 to 2^63 - 1; gaps are kept as the server keeps them (a set is any
collection of numbers), and a number that fills a gap joins the intervals on both sides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_MARIADB_GTID = re.compile(r"^(\d+)-(\d+)-(\d+)$")
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_TAG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
_MYSQL_GTID = re.compile(rf"^({_UUID})(?::([A-Za-z_][A-Za-z0-9_]{{0,31}}))?:(\d+)$")
_INTERVAL = re.compile(r"^(\d+)(?:-(\d+))?$")
_MAX_GNO = 2**63 - 1


_UUID_ONLY = re.compile(rf"^{_UUID}$")


def _tsid(uuid: str, tag: str | None) -> str:
    """The key of a uuid's (tagged) numbers: `uuid` or `uuid:tag`, in lower case."""
    return f"{uuid}:{tag}".lower() if tag else uuid.lower()


@dataclass
class GtidState:
    """What has been committed, as a GTID set (MySQL) or per-domain positions (MariaDB)."""

    mariadb: dict[int, tuple[int, int]] = field(default_factory=dict)
    """domain -> (server_id, seq_no) of the last committed transaction."""
    mysql: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    """uuid (or `uuid:tag`) -> sorted, merged, inclusive intervals of transaction numbers."""

    def add(self, gtid: str) -> None:
        domain, _, rest = gtid.partition("-")
        server, _, seq = rest.partition("-")
        if domain.isdecimal() and server.isdecimal() and seq.isdecimal():  # MariaDB: once per transaction
            self.mariadb[int(domain)] = (int(server), int(seq))
            return
        maria = _MARIADB_GTID.match(gtid)
        if maria:
            domain, server, seq = maria.groups()
            self.mariadb[int(domain)] = (int(server), int(seq))
            return
        tsid, number = _mysql_gtid(gtid)
        self._add_interval(tsid, number, number)

    def covers(self, gtid: str) -> bool:
        """Whether the transaction `gtid` is at or before what was committed: MariaDB, its domain
        has reached its sequence number; MySQL, the set holds it."""
        maria = _MARIADB_GTID.match(gtid)
        if maria:
            domain, _, seq = (int(part) for part in maria.groups())
            last = self.mariadb.get(domain)
            return last is not None and seq <= last[1]
        tsid, number = _mysql_gtid(gtid)
        return any(lo <= number <= hi for lo, hi in self.mysql.get(tsid, []))

    def repeats(self, gtid: str) -> bool:
        """Whether `gtid` cannot come after what was committed in one binlog history: MariaDB,
        the same server had already reached its sequence number in that domain (another server
        may lag behind in a domain shared by mistake); MySQL, the set holds it."""
        maria = _MARIADB_GTID.match(gtid)
        if maria:
            domain, server, seq = (int(part) for part in maria.groups())
            last = self.mariadb.get(domain)
            return last is not None and last[0] == server and seq <= last[1]
        return self.covers(gtid)

    def _add_interval(self, tsid: str, start: int, end: int) -> None:
        intervals = sorted([*self.mysql.get(tsid, []), (start, end)])
        merged: list[tuple[int, int]] = []
        for lo, hi in intervals:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        self.mysql[tsid] = merged

    def __str__(self) -> str:
        if len(self.mariadb) == 1 and not self.mysql:  # the common case, once per transaction
            ((domain, (server, seq)),) = self.mariadb.items()
            return f"{domain}-{server}-{seq}"
        maria = ",".join(f"{d}-{s}-{n}" for d, (s, n) in sorted(self.mariadb.items()))
        return maria or self._mysql_text()

    def _mysql_text(self) -> str:
        """MySQL's form: per uuid, its untagged intervals, then each tag with its intervals."""
        by_uuid: dict[str, list[str]] = {}
        for tsid in sorted(self.mysql, key=lambda t: (t.partition(":")[0], t.partition(":")[2])):
            uuid, _, tag = tsid.partition(":")
            intervals = [f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in self.mysql[tsid]]
            by_uuid.setdefault(uuid, []).extend([tag, *intervals] if tag else intervals)
        return ",".join(":".join([uuid, *parts]) for uuid, parts in by_uuid.items())

    @classmethod
    def parse(cls, text: str | None) -> GtidState:
        """Parse `0-1-5,1-2-9` (MariaDB) or `uuid:1-5:7:tag:1-3,uuid2:1-3` (MySQL); empty -> empty."""
        state = cls()
        for part in filter(None, (p.strip() for p in (text or "").split(","))):
            if _MARIADB_GTID.match(part):
                state.add(part)
                continue
            try:
                state._add_set_part(part)
            except ValueError as exc:
                raise ValueError(f"not a GTID set: {exc} in {text!r}") from None
        return state

    def _add_set_part(self, part: str) -> None:
        """One uuid's part of a MySQL set: `uuid`, then intervals, each tag followed by its own."""
        uuid, *items = part.split(":")
        if not _UUID_ONLY.match(uuid) or not items:
            raise ValueError(f"{part!r}")
        tag, pending = None, False  # pending: a tag not yet followed by an interval
        for item in items:
            interval = _INTERVAL.match(item)
            if interval is None:
                if pending or not _TAG.match(item):
                    raise ValueError(f"{item!r} in {part!r}")
                tag, pending = item, True
                continue
            lo, hi = int(interval.group(1)), int(interval.group(2) or interval.group(1))
            if not 1 <= lo <= hi <= _MAX_GNO:
                raise ValueError(f"interval {item!r} of {part!r} (numbers run from 1 up, start <= end)")
            self._add_interval(_tsid(uuid, tag), lo, hi)
            pending = False
        if pending:
            raise ValueError(f"{part!r} ends without an interval")

def _mysql_gtid(gtid: str) -> tuple[str, int]:
    """(uuid or `uuid:tag`, number) of one MySQL GTID (`uuid:7`, `uuid:tag:7`)."""
    found = _MYSQL_GTID.match(gtid)
    if not found or not 1 <= int(found.group(3)) <= _MAX_GNO:
        raise ValueError(f"not a GTID: {gtid!r}")
    uuid, tag, number = found.groups()
    return _tsid(uuid, tag), int(number)
