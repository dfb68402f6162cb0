"""GTID sets as MySQL 8.4 writes, prints and encodes them, tags (MySQL 8.3+) included.

Text: ``uuid:1-5:7,uuid2:1-3:tag_a:1-2`` (sql/rpl_gtid_set.cc, ``Gtid_set::to_string``;
tags are lower-cased, the untagged intervals of a UUID come before its tagged ones). MySQL
separates UUIDs with ",\\n" in @@gtid_executed and SHOW BINARY LOG STATUS.

Binary (``Gtid_set::encode`` / ``add_gtid_encoding`` in sql/rpl_gtid_set.cc), used by
PREVIOUS_GTIDS_LOG_EVENT and COM_BINLOG_DUMP_GTID: an 8-byte count of TSIDs, then per TSID the
16-byte UUID, an 8-byte count of intervals and per interval start and end+1 (8 bytes each,
little-endian). In the *tagged* format (used as soon as a set holds a tag) the count word is
``format << 56 | n << 8 | format`` with format 1, and each UUID is followed by its tag: a
length in the serialization library's variable-length integer format, then the tag's bytes.
"""

from __future__ import annotations

import re
import struct
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.mysql_double import serialization

Tsid = tuple[str, str]
"""(uuid, tag); the tag is "" for untagged GTIDs."""

_TAG = re.compile(r"^[a-z_][a-z0-9_]{0,31}$")
TAGGED_FORMAT = 1


@dataclass(frozen=True)
class Gtid:
    uuid: str
    gno: int
    tag: str = ""

    @classmethod
    def parse(cls, text: str) -> Gtid:
        parts = text.strip().split(":")
        if len(parts) == 2:
            return cls(_uuid(parts[0]), int(parts[1]))
        if len(parts) == 3:
            return cls(_uuid(parts[0]), int(parts[2]), _tag(parts[1]))
        raise ValueError(f"not a GTID: {text!r}")

    def __str__(self) -> str:
        return f"{self.uuid}:{self.tag}:{self.gno}" if self.tag else f"{self.uuid}:{self.gno}"


def _uuid(text: str) -> str:
    return str(uuidlib.UUID(text.strip()))


def _tag(text: str) -> str:
    tag = text.strip().lower()
    if not _TAG.match(tag):
        raise ValueError(f"not a GTID tag: {text!r}")
    return tag


@dataclass
class GtidSet:
    """Intervals [start, end) per TSID, kept sorted and merged."""

    intervals: dict[Tsid, list[list[int]]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> GtidSet:
        result = cls()
        for part in (text or "").replace("\n", "").split(","):
            if part.strip():
                result._add_text_part(part)
        return result

    def _add_text_part(self, part: str) -> None:
        fields = part.strip().split(":")
        uuid, tag = _uuid(fields[0]), ""
        for item in fields[1:]:
            if item and not item[0].isdigit():
                tag = _tag(item)
                continue
            first, _, last = item.partition("-")
            self.add_range((uuid, tag), int(first), int(last or first) + 1)

    def add_range(self, tsid: Tsid, start: int, end: int) -> None:
        merged = []
        for lo, hi in sorted([*self.intervals.get(tsid, []), [start, end]]):
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        self.intervals[tsid] = merged

    def add(self, gtid: Gtid) -> None:
        self.add_range((gtid.uuid, gtid.tag), gtid.gno, gtid.gno + 1)

    def update(self, other: GtidSet) -> None:
        for tsid, ranges in other.intervals.items():
            for start, end in ranges:
                self.add_range(tsid, start, end)

    def contains(self, gtid: Gtid) -> bool:
        return any(lo <= gtid.gno < hi for lo, hi in self.intervals.get((gtid.uuid, gtid.tag), []))

    def is_subset(self, other: GtidSet) -> bool:
        return not (self - other)

    def __sub__(self, other: GtidSet) -> GtidSet:
        result = GtidSet()
        for tsid, ranges in self.intervals.items():
            for start, end in ranges:
                for lo, hi in _minus(start, end, other.intervals.get(tsid, [])):
                    result.add_range(tsid, lo, hi)
        return result

    def __bool__(self) -> bool:
        return any(self.intervals.values())

    def copy(self) -> GtidSet:
        return GtidSet({k: [list(r) for r in v] for k, v in self.intervals.items()})

    def last_gno(self, tsid: Tsid) -> int:
        ranges = self.intervals.get(tsid)
        return ranges[-1][1] - 1 if ranges else 0

    def text(self, separator: str = ",\n") -> str:
        parts = []
        for uuid in sorted({u for u, _ in self.intervals}):
            items = [uuid]
            for tag in sorted(t for u, t in self.intervals if u == uuid):
                if tag:
                    items.append(tag)
                items += [_range_text(lo, hi) for lo, hi in self.intervals[(uuid, tag)]]
            parts.append(":".join(items))
        return separator.join(parts)

    def __str__(self) -> str:
        return self.text(",")

    def _sorted(self) -> Iterator[tuple[Tsid, list[list[int]]]]:
        for tsid in sorted(self.intervals, key=lambda t: (uuidlib.UUID(t[0]).bytes, t[1])):
            if self.intervals[tsid]:
                yield tsid, self.intervals[tsid]

    def encode(self) -> bytes:
        items = list(self._sorted())
        tagged = any(tag for (_, tag), _r in items)
        count = TAGGED_FORMAT << 56 | len(items) << 8 | TAGGED_FORMAT if tagged else len(items)
        out = bytearray(struct.pack("<Q", count))
        for (uuid, tag), ranges in items:
            out += uuidlib.UUID(uuid).bytes
            if tagged:
                out += serialization.varlen_unsigned(len(tag)) + tag.encode()
            out += struct.pack("<Q", len(ranges))
            for start, end in ranges:
                out += struct.pack("<qq", start, end)
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> GtidSet:
        (count,) = struct.unpack_from("<Q", data)
        tagged = count >> 56 == TAGGED_FORMAT
        n_tsids = (count & 0x00FFFFFFFFFFFF00) >> 8 if tagged else count
        result, pos = cls(), 8
        for _ in range(n_tsids):
            uuid, pos = str(uuidlib.UUID(bytes=bytes(data[pos:pos + 16]))), pos + 16
            tag = ""
            if tagged:
                length, pos = serialization.read_varlen_unsigned(data, pos)
                tag, pos = bytes(data[pos:pos + length]).decode(), pos + length
            (n_ranges,) = struct.unpack_from("<Q", data, pos)
            pos += 8
            for _ in range(n_ranges):
                start, end = struct.unpack_from("<qq", data, pos)
                result.add_range((uuid, tag), start, end)
                pos += 16
        return result


def _range_text(lo: int, hi: int) -> str:
    return str(lo) if hi - lo == 1 else f"{lo}-{hi - 1}"


def _minus(start: int, end: int, holes: list[list[int]]) -> Iterator[tuple[int, int]]:
    for lo, hi in holes:
        if hi <= start or lo >= end:
            continue
        if lo > start:
            yield start, lo
        start = max(start, hi)
    if start < end:
        yield start, end
