"""What identity resolution would make of the rows `syncd preview` shows, writing nothing.

The links and records that the previewed rows name are read from the target's state tables
in one read-only transaction (syncd/sink/persons.py `read_links`; plain SELECTs, no advisory
lock, so a running syncd is never held up). Each row is then resolved on its own against them,
as if it were the next change applied, with the pipeline's own pure model (`core.reach`,
`core.claim`, `core.lookup`) on a small store holding just that row's links: "existing person 1
(matched by phone)", "new person", "would merge persons 1 and 2 (survivor 1)"; a lookup
resolves to a person or is unresolved. Match keys are shown as what syncd stores, hashes,
never as values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from syncd.identity import core
from syncd.identity.keys import record_name
from syncd.model import IdentityClaim, IdentityLookup, Upsert

EXISTING = "existing"
NEW = "new"
MERGE = "merge"
UNKNOWN = "unknown"
RESOLVED = "resolved"
UNRESOLVED = "unresolved"
NO_KEY = "no_key"

SHOWN_HASH = 12
"""Hex digits of a key's hash shown in the human output (JSON has the whole hash)."""


@dataclass(frozen=True)
class StoredLinks:
    """The stored links and records the previewed rows name, one store per identity space."""

    stores: dict[str, core.LinkStore]
    readable: bool = True
    """False: the target could not be read; outcomes are unknown."""
    note: str | None = None
    """Why outcomes are unknown, or that nothing is stored yet."""


@dataclass(frozen=True)
class ClaimOutcome:
    """How a record of a mapping with an `identity:` block would resolve."""

    space: str
    column: str | None
    keys: tuple[core.Key, ...]
    """(kind, hash) of the row's match keys, as stored."""
    outcome: str
    """EXISTING, NEW, MERGE or UNKNOWN."""
    person: int | None = None
    """The person (the survivor of a merge); None when new or unknown."""
    merged: tuple[int, ...] = ()
    """MERGE: the persons that would be merged into `person`."""
    matched: tuple[tuple[int, tuple[str, ...]], ...] = ()
    """Each person reached, with the key kinds that reach it (core.RECORD_KIND: this record)."""


@dataclass(frozen=True)
class LookupOutcome:
    """What a `lookup:` column would be filled with."""

    space: str
    column: str
    kind: str
    key: str | None
    """The key's hash; None when the row holds no key (the column is NULL)."""
    outcome: str
    """RESOLVED, UNRESOLVED (applying the row makes a new person), NO_KEY or UNKNOWN."""
    person: int | None = None


@dataclass(frozen=True)
class IdentityPreview:
    """A previewed row's identity: its record's resolution and its lookups."""

    record: ClaimOutcome | None
    lookups: tuple[LookupOutcome, ...]
    note: str | None = None


# --------------------------------------------------------------------------- reading the links


Wanted = dict[str, tuple[set[core.Key], set[str]]]
"""Per identity space: the keys and the records (`record_name`s) to read."""


def wanted_by(ops: Iterable[Upsert]) -> Wanted:
    """Per space: the keys and the records (`record_name`s) the operations name."""
    wanted: Wanted = {}
    for op in ops:
        if op.identity is not None:
            keys, records = wanted.setdefault(op.identity.space.name, (set(), set()))
            keys.update(op.identity.keys)
            records.add(record_name(op.identity.mapping, op.identity.record))
        for lookup in op.lookups:
            keys, _ = wanted.setdefault(lookup.space.name, (set(), set()))
            if lookup.key_hash is not None:
                keys.add((lookup.kind, lookup.key_hash))
    return wanted


# --------------------------------------------------------------------------- resolving one row


def resolve(stored: StoredLinks, op: Upsert) -> IdentityPreview:
    """How this row would resolve if it were applied next, against the stored links (pure)."""
    if not stored.readable:
        return _unknown(op, stored.note)
    stores = {space: _row_store(stored.stores.get(space), keys, records)
              for space, (keys, records) in wanted_by([op]).items()}
    record = _claim(stores[op.identity.space.name], op.identity) if op.identity is not None else None
    # Lookups after the claim, on the same stores, in the order the sink runs them.
    lookups = tuple(_lookup(stores[lookup.space.name], lookup) for lookup in op.lookups)
    return IdentityPreview(record, lookups, stored.note)


def _row_store(base: core.LinkStore | None, keys: set[core.Key], records: set[str]) -> core.LinkStore:
    """A store with only this row's links and records, so that rows never affect each other."""
    if base is None:
        return core.LinkStore.counting()
    store = core.LinkStore(new_id=base.new_id)
    store.links = {key: base.links[key] for key in keys if key in base.links}
    store.records = {name: dataclasses.replace(base.records[name])
                     for name in records if name in base.records}
    return store


def _claim(store: core.LinkStore, claim: IdentityClaim) -> ClaimOutcome:
    name = record_name(claim.mapping, claim.record)
    reached = core.reach(store, name, claim.keys)
    result = core.claim(store, name, claim.keys)
    matched = tuple((person, tuple(sorted(kinds))) for person, kinds in sorted(reached.items()))
    base = ClaimOutcome(claim.space.name, claim.column, tuple(sorted(claim.keys)), NEW, matched=matched)
    if result.merge is not None:
        return dataclasses.replace(base, outcome=MERGE, person=result.merge.survivor,
                                   merged=result.merge.merged)
    if result.created:
        return base
    return dataclasses.replace(base, outcome=EXISTING, person=result.person)


def _lookup(store: core.LinkStore, lookup: IdentityLookup) -> LookupOutcome:
    base = LookupOutcome(lookup.space.name, lookup.column, lookup.kind, lookup.key_hash, NO_KEY)
    if lookup.key_hash is None:
        return base
    result = core.lookup(store, (lookup.kind, lookup.key_hash))
    if result.created:
        return dataclasses.replace(base, outcome=UNRESOLVED)
    return dataclasses.replace(base, outcome=RESOLVED, person=result.person)


def _unknown(op: Upsert, note: str | None) -> IdentityPreview:
    claim = op.identity
    record = (ClaimOutcome(claim.space.name, claim.column, tuple(sorted(claim.keys)), UNKNOWN)
              if claim is not None else None)
    lookups = tuple(LookupOutcome(lookup.space.name, lookup.column, lookup.kind, lookup.key_hash,
                                  NO_KEY if lookup.key_hash is None else UNKNOWN)
                    for lookup in op.lookups)
    return IdentityPreview(record, lookups, note)


# --------------------------------------------------------------------------- output


def _kind_text(kind: str) -> str:
    return "this record" if kind == core.RECORD_KIND else kind


def _reached_by(kinds: Sequence[str]) -> str:
    ordered = sorted(kinds, key=lambda k: (k != core.RECORD_KIND, k))
    return ", ".join(_kind_text(k) for k in ordered)


def _persons(persons: Sequence[int]) -> str:
    texts = [str(p) for p in persons]
    return texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " and " + texts[-1]


def claim_text(outcome: ClaimOutcome) -> str:
    """`existing person 1 (matched by phone)`, `new person`, `would merge persons 1 and 2 (survivor 1)...`."""
    if outcome.outcome == EXISTING:
        return f"existing person {outcome.person} (matched by {_reached_by(outcome.matched[0][1])})"
    if outcome.outcome == MERGE:
        assert outcome.person is not None
        by = "; ".join(f"person {p} by {_reached_by(kinds)}" for p, kinds in outcome.matched)
        return (f"would merge persons {_persons(sorted([outcome.person, *outcome.merged]))} "
                f"(survivor {outcome.person}): {by}")
    if outcome.outcome == NEW:
        return "new person" + ("" if outcome.keys else " (the row has no match key)")
    return "cannot tell"


def lookup_text(outcome: LookupOutcome) -> str:
    if outcome.outcome == RESOLVED:
        return f"person {outcome.person}"
    if outcome.outcome == UNRESOLVED:
        return f"unresolved: no person has this {outcome.kind} yet (applying the row makes a new one)"
    if outcome.outcome == NO_KEY:
        return f"NULL (the row has no {outcome.kind})"
    return "cannot tell"


def short_key(key: tuple[str, str | None]) -> str:
    kind, hashed = key
    return f"{kind} #{hashed[:SHOWN_HASH]}" if hashed else kind


def render(preview: IdentityPreview, indent: str = "  ") -> list[str]:
    """The human lines of a row's identity (kinds and hash prefixes; never key values)."""
    lines = []
    record = preview.record
    if record is not None:
        into = f" -> {record.column}" if record.column else ""
        lines.append(f"{indent}identity {record.space}{into}: {claim_text(record)}")
        keys = "  ".join(short_key(k) for k in record.keys) or "none"
        lines.append(f"{indent}  match keys (stored as hashes): {keys}")
    for lookup in preview.lookups:
        lines.append(f"{indent}lookup {lookup.column} (identity {lookup.space}, "
                     f"{short_key((lookup.kind, lookup.key))}): {lookup_text(lookup)}")
    if preview.note:
        lines.append(f"{indent}identity: {preview.note}")
    return lines


def as_json(preview: IdentityPreview) -> dict[str, Any]:
    record = preview.record
    return {
        "record": None if record is None else {
            "identity": record.space, "column": record.column,
            "keys": [{"kind": kind, "hash": hashed} for kind, hashed in record.keys],
            "outcome": record.outcome, "person": record.person, "merged": list(record.merged),
            "matched": [{"person": person, "by": list(kinds)} for person, kinds in record.matched],
            "text": claim_text(record),
        },
        "lookups": [{"column": lookup.column, "identity": lookup.space, "kind": lookup.kind,
                     "hash": lookup.key, "outcome": lookup.outcome, "person": lookup.person,
                     "text": lookup_text(lookup)} for lookup in preview.lookups],
        "note": preview.note,
    }
