"""Person-id columns: what the sink would write into them, from the stored identity state.

A mapping with an `identity:` block fills `identity.column` with its record's person, and each
`lookup:` column with the person its key belongs to; the sink resolves both as it writes the row
(syncd.sink.identity). Reconcile compares these columns like the mapped ones, expecting:

- identity column: the person of the record's stored contribution (`identity_contributions` by
  mapping and record id, deleted or not: the sink gives a record seen again the same person);
- lookup column: NULL when the row holds no key (the sink writes NULL), else the person linked
  to the key's hash (`identity_links`).

A row with a match key (`identity.match`) or lookup key the sink cannot hash is unmappable, as
the sink dead-letters it.

The state is read per chunk, for all its rows at once, with `load_stores` of `syncd preview`:
one READ ONLY snapshot, no advisory lock, persons merged away read as their survivor. A record
without a contribution, or a key without a link, is one the sink would give a person that does
not exist yet (`core.claim` / `core.lookup` make a new one): NEW_PERSON, equal to no stored
value, so the row differs and its repair, which goes through the sink, makes that person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from syncd.errors import TransformError
from syncd.identity import core
from syncd.identity.keys import record_id, record_name
from syncd.identity.preview import Wanted
from syncd.mapping.plan import LookupPlan, Mapping
from syncd.model import Row
from syncd.reconcile.rowmap import MappedRows

Read = Callable[[Wanted], dict[str, core.LinkStore]]
"""Reads the stored links and records wanted, one store per identity space."""


class _NewPerson:
    def __repr__(self) -> str:
        return "NEW_PERSON"


NEW_PERSON: Any = _NewPerson()
"""The value of a person column that the sink would fill with a new person (equal to nothing)."""


def person_columns(mapping: Mapping) -> tuple[str, ...]:
    """The target columns the sink fills with person ids: identity.column, then the lookup columns."""
    identity = mapping.identity
    own = (identity.column,) if identity is not None and identity.column is not None else ()
    return (*own, *(lookup.column for lookup in mapping.lookups))


@dataclass(frozen=True)
class RowPersons:
    """What one row's person columns depend on in the stored identity state."""

    record: str | None
    """The row's record (`record_name`), when the mapping fills an identity column."""
    lookups: tuple[core.Key | None, ...]
    """Per lookup column, the (kind, hash) of the row's key; None when it holds none."""


def lookup_key(lookup: LookupPlan, row: Row) -> core.Key | None:
    """The key a lookup column resolves, hashed as the mapping plan hashes it (TransformError
    when the value cannot be a key: the sink dead-letters such a row)."""
    hashed = lookup.key.hash(row)
    return None if hashed is None else (lookup.key.kind, hashed)


class PersonColumns:
    """The person-id columns of one mapping: the stored state they depend on, and their values."""

    def __init__(self, mapping: Mapping, read: Read) -> None:
        self.mapping = mapping
        self.read = read
        self.columns = person_columns(mapping)
        identity = mapping.identity
        self.space = identity.space.name if identity is not None and identity.column is not None else None
        """The identity space of the record's own person column; None when there is none."""
        self.match = identity.keys if identity is not None else ()
        """The record's match keys: one the sink cannot hash dead-letters the row."""

    def of_row(self, row: Row, key: tuple[Any, ...]) -> RowPersons:
        """`row`: the source row; `key`: its target key values, as mapped (not canonical).

        Raises TransformError where the sink would: a match key or lookup key it cannot hash."""
        for match in self.match:
            match.hash(row)
        record = (record_name(self.mapping.name, record_id(self.mapping.key, key))
                  if self.space is not None else None)
        return RowPersons(record, tuple(lookup_key(lookup, row) for lookup in self.mapping.lookups))

    def wanted(self, rows: Iterable[RowPersons]) -> Wanted:
        wanted: Wanted = {}
        for row in rows:
            if self.space is not None and row.record is not None:
                wanted.setdefault(self.space, (set(), set()))[1].add(row.record)
            for lookup, key in zip(self.mapping.lookups, row.lookups, strict=True):
                if key is not None:
                    wanted.setdefault(lookup.space.name, (set(), set()))[0].add(key)
        return wanted

    def values(self, stores: dict[str, core.LinkStore], row: RowPersons) -> tuple[Any, ...]:
        """The person columns' values, in `columns` order."""
        found: list[Any] = []
        if self.space is not None and row.record is not None:
            store = stores.get(self.space)
            found.append(_known(None if store is None else store.record_person(row.record)))
        for lookup, key in zip(self.mapping.lookups, row.lookups, strict=True):
            if key is None:
                found.append(None)  # what the sink writes for a row without a key
                continue
            store = stores.get(lookup.space.name)
            found.append(_known(None if store is None else store.key_person(key)))
        return tuple(found)

    def fill(self, mapped: MappedRows, names: Sequence[str]) -> MappedRows:
        """The mapped rows with their person columns appended (their values start with the target
        key); a row whose match or lookup key cannot be hashed moves to `failed`, as the sink
        refuses it."""
        out = MappedRows(failed=list(mapped.failed))
        width = len(self.mapping.key)
        kept: list[tuple[int, RowPersons]] = []
        for index, row in enumerate(mapped.rows):
            image = dict(zip(names, row, strict=True))
            try:
                kept.append((index, self.of_row(image, mapped.values[index][:width])))
            except TransformError as exc:
                out.failed.append((mapped.source_keys[index], str(exc), image))
        wanted = self.wanted(persons for _, persons in kept)
        stores = self.read(wanted) if wanted else {}
        for index, persons in kept:
            out.source_keys.append(mapped.source_keys[index])
            out.values.append((*mapped.values[index], *self.values(stores, persons)))
            out.rows.append(mapped.rows[index])
        return out


def _known(person: int | None) -> Any:
    return NEW_PERSON if person is None else person
