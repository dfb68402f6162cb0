"""The pure identity model (syncd.identity.core): who is who, whatever the order of events."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.identity import core
from syncd.identity.core import LinkStore, claim, lookup, partition, release


@dataclass(frozen=True)
class Claim:
    record: str
    keys: frozenset[core.Key]


@dataclass(frozen=True)
class Lookup:
    key: core.Key


@dataclass(frozen=True)
class Release:
    record: str


Event = Claim | Lookup | Release

RECORDS = st.sampled_from([f"r{i}" for i in range(6)])
KEYS = st.tuples(st.sampled_from(["phone", "unionid", "app_user"]), st.sampled_from("abcde"))
CLAIMS = st.builds(Claim, RECORDS, st.frozensets(KEYS, max_size=3))
LOOKUPS = st.builds(Lookup, KEYS)
RELEASES = st.builds(Release, RECORDS)
LINK_EVENTS = st.lists(st.one_of(CLAIMS, LOOKUPS), max_size=25)
ALL_EVENTS = st.lists(st.one_of(CLAIMS, CLAIMS, LOOKUPS, RELEASES), max_size=30)


def apply(store: LinkStore, events: list[Event]) -> LinkStore:
    for event in events:
        if isinstance(event, Claim):
            claim(store, event.record, event.keys)
        elif isinstance(event, Lookup):
            lookup(store, event.key)
        else:
            release(store, event.record)
    return store


def run(events: list[Event]) -> LinkStore:
    return apply(LinkStore.counting(), events)


def components(events: list[Event]) -> set[frozenset]:
    """The reference answer: connected components of every (record, key) pair ever seen."""
    parent: dict = {}

    def find(node):
        parent.setdefault(node, node)
        while parent[node] != node:
            node = parent[node]
        return node

    for event in events:
        if isinstance(event, Claim):
            node = (core.RECORD_KIND, event.record)
            find(node)
            for key in event.keys:
                parent[find(key)] = find(node)
        elif isinstance(event, Lookup):
            find(event.key)
    groups: dict = {}
    for node in parent:
        groups.setdefault(find(node), set()).add(node)
    return {frozenset(group) for group in groups.values()}


def who(store: LinkStore) -> tuple:
    """Who is who, and under which person ids."""
    links = {key: store.key_person(key) for key in store.links}
    return partition(store), links, {name: store.record_person(name) for name in store.records}


def state(store: LinkStore) -> tuple:
    """Everything observable: who is who, under which ids, and which records are alive."""
    links = {key: store.key_person(key) for key in store.links}
    records = {name: (store.record_person(name), s.keys, s.alive) for name, s in store.records.items()}
    return partition(store), links, records


class TestPartition:
    @given(ALL_EVENTS)
    def test_persons_are_the_components_of_every_link_ever_seen(self, events: list[Event]) -> None:
        """Releases never split a person; claims and lookups build exactly the components."""
        assert partition(run(events)) == components(events)

    @given(st.data(), LINK_EVENTS)
    def test_any_order_of_the_same_link_events_gives_the_same_partition(self, data: st.DataObject,
                                                                         events: list[Event]) -> None:
        shuffled = data.draw(st.permutations(events))
        assert partition(run(events)) == partition(run(shuffled))

    @given(st.data(), ALL_EVENTS)
    def test_order_including_deletes_changes_no_partition(self, data: st.DataObject,
                                                          events: list[Event]) -> None:
        """Deletes keep links: even moving them around cannot change who is who."""
        shuffled = data.draw(st.permutations(events))
        assert partition(run(events)) == partition(run(shuffled))

    @given(ALL_EVENTS, st.data())
    def test_two_pipelines_interleaving_agree(self, events: list[Event], data: st.DataObject) -> None:
        """Two sources' streams, each in its own order, interleaved anyhow: the same persons."""
        split = data.draw(st.integers(0, len(events)))
        shop, app = events[:split], events[split:]
        merged: list[Event] = []
        while shop or app:
            take_shop = bool(shop) and (not app or data.draw(st.booleans()))
            merged.append((shop if take_shop else app).pop(0))
        assert partition(run(merged)) == partition(run(events))


class TestReplay:
    @given(ALL_EVENTS)
    def test_replaying_the_whole_stream_changes_nothing(self, events: list[Event]) -> None:
        store = run(events)
        before = state(store)
        created, merges = len(store.created), len(store.merges)
        apply(store, events)
        assert state(store) == before
        assert (len(store.created), len(store.merges)) == (created, merges)

    @given(LINK_EVENTS, st.data())
    def test_reapplying_any_applied_link_event_changes_nothing(self, events: list[Event],
                                                               data: st.DataObject) -> None:
        if not events:
            return
        store = run(events)
        before = who(store)
        created = len(store.created)
        again = data.draw(st.sampled_from(events))
        apply(store, [again])  # (a record's current keys become the replayed ones: its next event
        assert who(store) == before  # restores them, as it restores the target row)
        assert len(store.created) == created

    @given(ALL_EVENTS)
    def test_each_event_applied_twice_in_a_row_is_the_same_as_once(self, events: list[Event]) -> None:
        doubled = [event for e in events for event in (e, e)]
        assert state(run(doubled)) == state(run(events))


class TestInvariants:
    @given(ALL_EVENTS)
    @settings(max_examples=200)
    def test_links_and_records_point_at_live_persons(self, events: list[Event]) -> None:
        store = run(events)
        created = set(store.created)
        for key in store.links:
            person = store.key_person(key)
            assert person in created and store.is_live(person)
        for name in store.records:
            person = store.record_person(name)
            assert person in created and store.is_live(person)
        for merged in store.merged_into:
            assert store.is_live(store.person(merged))
            assert store.person(merged) < merged  # the survivor is the oldest (smallest) id

    @given(ALL_EVENTS)
    def test_each_component_is_named_by_its_oldest_person(self, events: list[Event]) -> None:
        store = run(events)
        for person in store.created:
            if store.is_live(person):
                absorbed = [p for p in store.created if store.person(p) == person]
                assert person == min(absorbed)

    @given(ALL_EVENTS)
    def test_alive_means_the_last_event_of_the_record_was_a_claim(self, events: list[Event]) -> None:
        store = run(events)
        last: dict[str, bool] = {}
        for event in events:
            if isinstance(event, Claim):
                last[event.record] = True
            elif isinstance(event, Release) and event.record in last:
                last[event.record] = False
        assert {name: s.alive for name, s in store.records.items()} == last


class TestScenario:
    """The seeds' story, step by step (docs/identity.md, the worked example)."""

    def test_binding_a_phone_merges_and_deleting_leaves_the_shop_person(self) -> None:
        store = LinkStore.counting()
        shop = claim(store, "shop_members/1", {("phone", "P"), ("shop_user", "1")})
        app = claim(store, "app_members/5", {("unionid", "U"), ("app_user", "5")})
        assert (shop.person, app.person) == (1, 2)
        assert shop.created and app.created
        # an app order placed before binding points at the app person
        assert lookup(store, ("app_user", "5")).person == 2
        # a shop order of a user syncd has not seen yet gets a person of its own
        assert lookup(store, ("shop_user", "9")) == core.Resolution(3, created=True)

        bound = claim(store, "app_members/5", {("unionid", "U"), ("app_user", "5"), ("phone", "P")})
        assert bound.person == 1
        assert bound.merge is not None
        assert (bound.merge.survivor, bound.merge.merged, bound.merge.kinds) == (1, (2,), ("phone",))
        assert lookup(store, ("app_user", "5")).person == 1  # the app order follows

        assert release(store, "app_members/5") == 1
        assert store.record_person("shop_members/1") == 1
        assert store.key_person(("unionid", "U")) == 1  # links stay: the app orders still resolve
        assert store.records["app_members/5"].alive is False

    def test_a_record_without_keys_keeps_its_own_person(self) -> None:
        store = LinkStore.counting()
        first = claim(store, "shop_members/7", set())
        again = claim(store, "shop_members/7", set())
        assert first.created and not again.created and again.person == first.person

    def test_one_claim_can_merge_three_persons(self) -> None:
        store = LinkStore.counting()
        for index, key in enumerate((("phone", "a"), ("unionid", "b"), ("app_user", "c"))):
            claim(store, f"r{index}", {key})
        result = claim(store, "r9", {("phone", "a"), ("unionid", "b"), ("app_user", "c")})
        assert result.merge is not None
        assert (result.merge.survivor, result.merge.merged) == (1, (2, 3))
        assert result.merge.kinds == ("app_user", "phone", "unionid")
        assert len(partition(store)) == 1

    def test_merge_reports_only_the_keys_that_brought_other_persons(self) -> None:
        store = LinkStore.counting()
        claim(store, "shop", {("phone", "p")})
        claim(store, "app", {("unionid", "u")})
        result = claim(store, "app", {("unionid", "u"), ("phone", "p")})
        assert result.merge is not None and result.merge.kinds == ("phone",)

    def test_reach_names_the_persons_a_claim_would_join_and_changes_nothing(self) -> None:
        store = LinkStore.counting()
        claim(store, "shop", {("phone", "p")})
        claim(store, "app", {("unionid", "u")})
        links, records = dict(store.links), dict(store.records)
        assert core.reach(store, "app", {("unionid", "u"), ("phone", "p"), ("app_user", "5")}) == {
            1: {"phone"}, 2: {core.RECORD_KIND, "unionid"}}
        assert core.reach(store, "new", {("app_user", "5")}) == {}
        assert (store.links, store.records) == (links, records)
