"""Unit tests for syncd.source.gtid: MariaDB per-domain positions and MySQL GTID sets."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.source.gtid import GtidState

UUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
UUID2 = "9b2a5c2e-0000-11ee-8000-000000000002"


def state_of(*gtids: str) -> GtidState:
    state = GtidState()
    for gtid in gtids:
        state.add(gtid)
    return state


class TestMariaDB:
    def test_one_domain(self) -> None:
        """A MariaDB GTID records (server, seq) for its domain."""
        state = state_of("0-1-42")
        assert state.mariadb == {0: (1, 42)}
        assert str(state) == "0-1-42"

    def test_later_transaction_replaces_earlier(self) -> None:
        """Within a domain only the last committed transaction is kept, even from another server."""
        assert str(state_of("0-1-5", "0-1-6", "0-2-7")) == "0-2-7"

    def test_several_domains_are_sorted(self) -> None:
        """Each domain keeps its own position; the text lists domains in order."""
        state = state_of("2-5-100", "0-1-9", "1-1-3", "0-1-10")
        assert state.mariadb == {0: (1, 10), 1: (1, 3), 2: (5, 100)}
        assert str(state) == "0-1-10,1-1-3,2-5-100"

    def test_round_trip(self) -> None:
        """parse(str(state)) is the same state."""
        state = state_of("0-1-10", "3-2-7")
        assert GtidState.parse(str(state)) == state

    def test_parse_tolerates_spaces(self) -> None:
        """Spaces and newlines around parts (as the server prints them) are ignored."""
        assert str(GtidState.parse(" 0-1-5,\n1-2-3 ")) == "0-1-5,1-2-3"


class TestMySQL:
    def test_single_and_adjacent_merge(self) -> None:
        """Adjacent transaction numbers merge into one interval."""
        state = state_of(f"{UUID}:1", f"{UUID}:2", f"{UUID}:3")
        assert state.mysql == {UUID: [(1, 3)]}
        assert str(state) == f"{UUID}:1-3"

    def test_gaps_are_kept(self) -> None:
        """Missing numbers leave separate intervals; a lone number prints without a range."""
        state = state_of(*(f"{UUID}:{n}" for n in (1, 2, 3, 4, 5, 7, 8, 9, 11)))
        assert str(state) == f"{UUID}:1-5:7-9:11"

    def test_filling_a_gap_joins_intervals(self) -> None:
        """The number between two intervals joins them."""
        state = GtidState.parse(f"{UUID}:1-5:7-9")
        state.add(f"{UUID}:6")
        assert str(state) == f"{UUID}:1-9"

    def test_overlap_and_repeat_merge(self) -> None:
        """Overlapping intervals and repeated numbers merge."""
        state = GtidState.parse(f"{UUID}:1-5:3-8")
        state.add(f"{UUID}:4")
        assert state.mysql == {UUID: [(1, 8)]}

    def test_several_uuids_sorted(self) -> None:
        """Each server uuid has its own intervals; the text lists uuids in order."""
        state = state_of(f"{UUID2}:1", f"{UUID}:1", f"{UUID}:2")
        assert str(state) == f"{UUID}:1-2,{UUID2}:1"

    def test_uppercase_uuid_is_normalised(self) -> None:
        """An uppercase uuid is the same server as its lowercase form."""
        state = state_of(f"{UUID.upper()}:1", f"{UUID}:2")
        assert state.mysql == {UUID: [(1, 2)]}
        assert GtidState.parse(f"{UUID.upper()}:3-4").mysql == {UUID: [(3, 4)]}

    def test_round_trip(self) -> None:
        """parse(str(state)) is the same state, and str of a parsed set is its canonical text."""
        text = f"{UUID}:1-5:7-9,{UUID2}:3"
        assert str(GtidState.parse(text)) == text
        assert GtidState.parse(str(GtidState.parse(text))) == GtidState.parse(text)

    def test_parse_merges_and_sorts(self) -> None:
        """Unsorted, overlapping text parses into the canonical set."""
        assert str(GtidState.parse(f"{UUID}:7-9:1-3:4-5")) == f"{UUID}:1-5:7-9"

    @given(st.sets(st.integers(min_value=1, max_value=60), min_size=1), st.randoms())
    def test_any_order_gives_the_same_set(self, numbers: set[int], rnd: random.Random) -> None:
        """Adding the same transaction numbers in any order gives the same text."""
        ordered = sorted(numbers)
        shuffled = list(ordered)
        rnd.shuffle(shuffled)
        forward = state_of(*(f"{UUID}:{n}" for n in ordered))
        mixed = state_of(*(f"{UUID}:{n}" for n in shuffled))
        assert str(forward) == str(mixed)
        assert GtidState.parse(str(mixed)) == forward

    @given(st.sets(st.integers(min_value=1, max_value=60), min_size=1))
    def test_intervals_cover_exactly_the_numbers(self, numbers: set[int]) -> None:
        """The merged intervals are disjoint, non-adjacent and cover exactly the added numbers."""
        intervals = state_of(*(f"{UUID}:{n}" for n in numbers)).mysql[UUID]
        covered = {n for lo, hi in intervals for n in range(lo, hi + 1)}
        assert covered == numbers
        assert all(a_hi + 1 < b_lo for (_, a_hi), (b_lo, _) in pairwise(intervals))


class TestEmptyAndInvalid:
    @pytest.mark.parametrize("text", [None, "", " , "])
    def test_empty(self, text: str | None) -> None:
        """Nothing parses into an empty state whose text is empty."""
        state = GtidState.parse(text)
        assert state == GtidState()
        assert str(state) == ""

    @pytest.mark.parametrize("gtid", ["", "0-1", "0-1-x", "a-b-c", f"{UUID}", f"{UUID}:x", "not-a-uuid:1",
                                      f"{UUID}:1-3", "1-2-3-4", "-1-2", "1--2", "0-1-+5", "0-1- 5"])
    def test_add_refuses_non_gtids(self, gtid: str) -> None:
        """add takes one GTID; anything else is a ValueError naming it."""
        with pytest.raises(ValueError, match="not a GTID"):
            GtidState().add(gtid)

    @pytest.mark.parametrize("text", ["garbage", "0-1", f"{UUID}", "abc:1", f"{UUID}:x", f"{UUID}:5-3",
                                      f"{UUID}:1-", f"0-1-2,{UUID}:1:"])
    def test_parse_refuses_garbage(self, text: str) -> None:
        """parse refuses text that is not a GTID state instead of silently returning less."""
        with pytest.raises(ValueError, match="not a GTID set"):
            GtidState.parse(text)


class TestWhatACheckpointCovers:
    """`covers` finds a resume point on another server; `repeats` is the stream's first check."""

    def test_mariadb_covers_by_domain_and_sequence_number(self) -> None:
        state = state_of("0-1-57", "2-1-3")
        assert state.covers("0-1-57") and state.covers("0-1-12") and state.covers("0-9-50")
        assert not state.covers("0-1-58") and not state.covers("1-1-1") and not state.covers("2-1-4")

    def test_mysql_covers_the_numbers_in_the_set(self) -> None:
        state = GtidState.parse(f"{UUID}:1-57:60")
        assert state.covers(f"{UUID}:57") and state.covers(f"{UUID}:60")
        assert not state.covers(f"{UUID}:58") and not state.covers(f"{UUID2}:1")

    def test_only_the_same_server_going_back_in_a_domain_repeats(self) -> None:
        """Another server may lag behind in a domain two masters share by mistake."""
        state = state_of("0-1-57")
        assert state.repeats("0-1-57") and state.repeats("0-1-1")
        assert not state.repeats("0-1-58") and not state.repeats("0-2-40") and not state.repeats("1-1-1")
        assert GtidState.parse(f"{UUID}:1-5").repeats(f"{UUID}:3")

    def test_not_a_gtid_is_refused(self) -> None:
        with pytest.raises(ValueError, match="not a GTID"):
            GtidState().covers("x")


class TestTaggedMySQL:
    """MySQL 8.3+ tagged GTIDs (`uuid:tag:n`): each tag of a uuid numbers its own transactions."""

    def test_tagged_and_untagged_numbers_are_apart(self) -> None:
        state = state_of(f"{UUID}:1", f"{UUID}:Batch_7:1", f"{UUID}:batch_7:2", f"{UUID}:2")
        assert state.mysql == {UUID: [(1, 2)], f"{UUID}:batch_7": [(1, 2)]}
        assert str(state) == f"{UUID}:1-2:batch_7:1-2"
        assert state.covers(f"{UUID}:BATCH_7:2") and not state.covers(f"{UUID}:batch_7:3")
        assert not state.covers(f"{UUID}:other:1")

    def test_the_servers_text_round_trips(self) -> None:
        """gtid_executed as MySQL prints it: untagged intervals first, then tags in order, several
        uuids, gaps and the line breaks between uuids."""
        text = f"{UUID}:1-5:7-9:a_tag:3:zz:1-100,\n{UUID2}:tag:4-6"
        state = GtidState.parse(text)
        assert str(state) == text.replace("\n", "")
        assert GtidState.parse(str(state)) == state
        assert state.covers(f"{UUID}:zz:100") and not state.covers(f"{UUID}:6")

    def test_a_tag_only_uuid(self) -> None:
        state = GtidState.parse(f"{UUID}:t:1-3")
        assert str(state) == f"{UUID}:t:1-3"
        state.add(f"{UUID}:5")
        assert str(state) == f"{UUID}:5:t:1-3"

    def test_filling_a_gap_joins_as_the_server_does(self) -> None:
        state = GtidState.parse(f"{UUID}:t:1-3:5-7")
        state.add(f"{UUID}:t:4")
        assert str(state) == f"{UUID}:t:1-7"

    @pytest.mark.parametrize("text", [f"{UUID}:t", f"{UUID}:1:t", f"{UUID}:9tag:1", f"{UUID}:t:0",
                                      f"{UUID}:{'x' * 33}:1", f"{UUID}:t:1:u", f"{UUID}:t-x:1",
                                      f"{UUID}:1-{2**63}"])
    def test_malformed_tagged_sets_are_refused(self, text: str) -> None:
        with pytest.raises(ValueError, match="not a GTID set"):
            GtidState.parse(text)

    @pytest.mark.parametrize("gtid", [f"{UUID}:t:0", f"{UUID}:t:", f"{UUID}:1t:4", f"{UUID}:a:b:1"])
    def test_malformed_tagged_gtids_are_refused(self, gtid: str) -> None:
        with pytest.raises(ValueError, match="not a GTID"):
            GtidState().add(gtid)

    @given(st.sets(st.tuples(st.sampled_from(["", "a", "b_2"]), st.integers(1, 60)), max_size=40))
    def test_any_tagged_set_round_trips(self, gtids: set[tuple[str, int]]) -> None:
        state = state_of(*(f"{UUID}:{tag}:{n}" if tag else f"{UUID}:{n}" for tag, n in gtids))
        assert GtidState.parse(str(state)) == state
        assert all(state.covers(f"{UUID}:{tag}:{n}" if tag else f"{UUID}:{n}") for tag, n in gtids)
