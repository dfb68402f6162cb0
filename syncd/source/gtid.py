"""GTID bookkeeping for checkpoints: MySQL GTID sets (`uuid:1-5:7`) and MariaDB positions (`0-1-42`).

Resume is by binlog file/offset; the GTID state is stored beside it, so that every resume can
check that the binlog there continues it, and find the same point on another server of the same
topology (syncd/source/continuity.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_MARIADB_GTID = re.compile(r"^(\d+)-(\d+)-(\d+)$")
_MYSQL_GTID = re.compile(r"^([0-9a-fA-F-]{36}):(\d+)$")
_MYSQL_SET_PART = re.compile(r"^[0-9a-fA-F-]{36}(:\d+(-\d+)?)+$")


@dataclass
class GtidState:
    """What has been committed, as a GTID set (MySQL) or per-domain positions (MariaDB)."""

    mariadb: dict[int, tuple[int, int]] = field(default_factory=dict)
    """domain -> (server_id, seq_no) of the last committed transaction."""
    mysql: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    """uuid -> sorted, merged, inclusive intervals of transaction numbers."""

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
        mysql = _MYSQL_GTID.match(gtid)
        if not mysql:
            raise ValueError(f"not a GTID: {gtid!r}")
        self._add_interval(mysql.group(1).lower(), int(mysql.group(2)), int(mysql.group(2)))

    def covers(self, gtid: str) -> bool:
        """Whether the transaction `gtid` is at or before what was committed: MariaDB, its domain
        has reached its sequence number; MySQL, the set holds it."""
        maria = _MARIADB_GTID.match(gtid)
        if maria:
            domain, _, seq = (int(part) for part in maria.groups())
            last = self.mariadb.get(domain)
            return last is not None and seq <= last[1]
        mysql = _MYSQL_GTID.match(gtid)
        if not mysql:
            raise ValueError(f"not a GTID: {gtid!r}")
        number = int(mysql.group(2))
        return any(lo <= number <= hi for lo, hi in self.mysql.get(mysql.group(1).lower(), []))

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

    def _add_interval(self, uuid: str, start: int, end: int) -> None:
        intervals = sorted([*self.mysql.get(uuid, []), (start, end)])
        merged: list[tuple[int, int]] = []
        for lo, hi in intervals:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        self.mysql[uuid] = merged

    def __str__(self) -> str:
        if len(self.mariadb) == 1 and not self.mysql:  # the common case, once per transaction
            ((domain, (server, seq)),) = self.mariadb.items()
            return f"{domain}-{server}-{seq}"
        maria = ",".join(f"{d}-{s}-{n}" for d, (s, n) in sorted(self.mariadb.items()))
        mysql = ",".join(
            uuid + "".join(f":{lo}" if lo == hi else f":{lo}-{hi}" for lo, hi in intervals)
            for uuid, intervals in sorted(self.mysql.items())
        )
        return maria or mysql

    @classmethod
    def parse(cls, text: str | None) -> GtidState:
        """Parse `0-1-5,1-2-9` (MariaDB) or `uuid:1-5:7,uuid2:1-3` (MySQL); empty -> empty."""
        state = cls()
        for part in filter(None, (p.strip() for p in (text or "").split(","))):
            if _MARIADB_GTID.match(part):
                state.add(part)
                continue
            match = _MYSQL_SET_PART.match(part)
            if not match:
                raise ValueError(f"not a GTID set: {part!r} in {text!r}")
            uuid, *ranges = part.split(":")
            for item in ranges:
                lo, _, hi = item.partition("-")
                if int(hi or lo) < int(lo):
                    raise ValueError(f"not a GTID set: interval {item!r} in {text!r} ends before it starts")
                state._add_interval(uuid.lower(), int(lo), int(hi or lo))
        return state
