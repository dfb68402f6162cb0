"""The pure resolution model: who is who, from links between records, match keys and persons.

One `LinkStore` holds one identity space. Three events change it:

- `claim(store, record, keys)`: a source record (a mapping's row, named by its target key) holds
  these match keys. Every person the record or any of the keys already belongs to is one and
  the same person from now on: none -> a new person; one -> that one; several -> they are
  MERGED into the survivor, the smallest (= oldest) person id, and every link of the others
  follows it.
- `lookup(store, key)`: another mapping's row refers to a person by one match key (an order's
  user id). A key nobody holds yet gets a new person, which a record holding the key joins later.
- `release(store, record)`: the record was deleted at its source. Its contribution to the
  unified row goes; its links stay (see below).

Links are never removed, so the persons are the connected components of every (record, key)
pair and every looked-up key ever seen. Hence:

- the partition does not depend on the order of the events (union is commutative), nor on
  releases, nor on how often an event is applied (union is idempotent): replaying a range of the
  stream, or two sources' pipelines racing, cannot change who is who;
- a person is never split: a merge is for good (un-merging would re-point rows other systems
  may already have used);
- person ids do depend on the order (a new id is the next number); the survivor of a merge is
  the smallest id among the merged persons, i.e. the oldest.

The PostgreSQL side (`syncd.sink.identity`) loads the part of the store that a batch needs,
runs these same functions, and writes back what the journal says changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, str]
"""(kind, hash) of a match key."""

RECORD_KIND = "record"
"""The 'kind' named in a merge when a record's own earlier person took part in it."""


@dataclass
class RecordState:
    person: int
    keys: frozenset[Key]
    alive: bool = True


@dataclass(frozen=True)
class Merge:
    """Persons `merged` became `survivor`, because of `record` holding keys of these kinds."""

    survivor: int
    merged: tuple[int, ...]
    record: str
    kinds: tuple[str, ...]
    cause: Any = None


@dataclass(frozen=True)
class Resolution:
    person: int
    created: bool = False
    merge: Merge | None = None


@dataclass
class LinkStore:
    """The links of one identity space, in memory, with a journal of what changed."""

    new_id: Callable[[], int]
    links: dict[Key, int] = field(default_factory=dict)
    records: dict[str, RecordState] = field(default_factory=dict)
    merged_into: dict[int, int] = field(default_factory=dict)
    # journal: what the events changed (the PostgreSQL session writes these back)
    created: list[int] = field(default_factory=list)
    merges: list[Merge] = field(default_factory=list)
    changed_links: dict[Key, None] = field(default_factory=dict)
    changed_records: dict[str, None] = field(default_factory=dict)

    @classmethod
    def counting(cls, start: int = 1) -> LinkStore:
        """A store that numbers new persons start, start+1, ... (tests, previews)."""
        counter = iter(range(start, 2**62))
        return cls(new_id=lambda: next(counter))

    def person(self, person: int) -> int:
        """The live person `person` is now (itself unless merged away)."""
        root = person
        while root in self.merged_into:
            root = self.merged_into[root]
        while person != root:  # path compression
            following = self.merged_into[person]
            self.merged_into[person] = root
            person = following
        return root

    def key_person(self, key: Key) -> int | None:
        found = self.links.get(key)
        return None if found is None else self.person(found)

    def record_person(self, record: str) -> int | None:
        state = self.records.get(record)
        return None if state is None else self.person(state.person)

    def new_person(self) -> int:
        person = self.new_id()
        self.created.append(person)
        return person

    def link(self, key: Key, person: int) -> None:
        if self.links.get(key) != person:
            self.links[key] = person
            self.changed_links[key] = None

    def merge(self, persons: set[int], record: str, kinds: Iterable[str], cause: Any) -> Merge:
        survivor = min(persons)
        merged = tuple(sorted(persons - {survivor}))
        for person in merged:
            self.merged_into[person] = survivor
        for key, person in list(self.links.items()):
            if person in self.merged_into:
                self.link(key, self.person(person))
        for name, state in self.records.items():
            if state.person in self.merged_into:
                state.person = self.person(state.person)
                self.changed_records[name] = None
        event = Merge(survivor, merged, record, tuple(sorted(set(kinds))), cause)
        self.merges.append(event)
        return event

    def is_live(self, person: int) -> bool:
        return person not in self.merged_into


def reach(store: LinkStore, record: str, keys: Iterable[Key]) -> dict[int, set[str]]:
    """The persons a claim of `record` with `keys` brings together, each with the kinds that reach
    it (RECORD_KIND: the record's own person). Nothing changes in the store."""
    reached: dict[int, set[str]] = {}
    own = store.record_person(record)
    if own is not None:
        reached.setdefault(own, set()).add(RECORD_KIND)
    for kind, value in sorted(set(keys)):
        person = store.key_person((kind, value))
        if person is not None:
            reached.setdefault(person, set()).add(kind)
    return reached


def claim(store: LinkStore, record: str, keys: Iterable[Key], cause: Any = None,
          alive: bool = True) -> Resolution:
    """`record` holds `keys`: join, create or merge persons. `alive=False`: seen, then deleted."""
    keys = frozenset(keys)
    own = store.record_person(record)
    reached = reach(store, record, keys)
    merge = None
    created = False
    if not reached:
        person = store.new_person()
        created = True
    elif len(reached) == 1:
        person = next(iter(reached))
    else:
        if own is not None:  # the keys that brought in persons other than the record's own
            kinds = {k for p, ks in reached.items() if p != own for k in ks}
        else:
            kinds = {k for ks in reached.values() for k in ks}
        merge = store.merge(set(reached), record, kinds, cause)
        person = merge.survivor
    for key in sorted(keys):
        store.link(key, person)
    state = store.records.get(record)
    if state is None or state.person != person or state.keys != keys or state.alive != alive:
        store.records[record] = RecordState(person, keys, alive)
        store.changed_records[record] = None
    return Resolution(person, created, merge)


def lookup(store: LinkStore, key: Key) -> Resolution:
    """The person a match key belongs to; a key nobody holds yet gets a new person."""
    person = store.key_person(key)
    if person is not None:
        return Resolution(person)
    person = store.new_person()
    store.link(key, person)
    return Resolution(person, created=True)


def release(store: LinkStore, record: str) -> int | None:
    """The record was deleted: it no longer contributes. Returns its person (None if unknown)."""
    state = store.records.get(record)
    if state is None:
        return None
    state.person = store.person(state.person)
    if state.alive:
        state.alive = False
        store.changed_records[record] = None
    return state.person


def partition(store: LinkStore) -> set[frozenset[Any]]:
    """Who is who: the sets of records (`('record', name)`) and keys that share a person."""
    groups: dict[int, set[Any]] = {}
    for key in store.links:
        person = store.key_person(key)
        assert person is not None
        groups.setdefault(person, set()).add(key)
    for name in store.records:
        person = store.record_person(name)
        assert person is not None
        groups.setdefault(person, set()).add((RECORD_KIND, name))
    return {frozenset(items) for items in groups.values()}
