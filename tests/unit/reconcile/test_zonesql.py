"""zonesql's scan of a zone's clock changes: the same changes as asking the zone step by step."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from syncd.reconcile import zonesql


def _step_by_step(zone: ZoneInfo) -> list[datetime]:
    """The scan written as a plain loop: each step's offset against the previous one."""
    found = []
    at, end = datetime(zonesql.FIRST_YEAR, 1, 1), datetime(zonesql.LAST_YEAR, 1, 1)
    before = at.replace(tzinfo=UTC).astimezone(zone).utcoffset()
    while at < end:
        step = at + zonesql._STEP
        now = step.replace(tzinfo=UTC).astimezone(zone).utcoffset()
        if now != before:
            found.append(zonesql._bisect(zone, at, step, before))
            before = now
        at = step
    return found


@pytest.mark.parametrize("name", ["Asia/Shanghai", "America/New_York", "Australia/Lord_Howe", "UTC"])
def test_changes_are_those_of_a_step_by_step_scan(name: str) -> None:
    zone = ZoneInfo(name)
    assert zonesql._changes(zone) == _step_by_step(zone)


def test_a_change_is_the_first_second_of_the_new_offset() -> None:
    changes = zonesql._changes(ZoneInfo("America/New_York"))
    assert datetime(2024, 3, 10, 7) in changes  # 02:00 EST -> 03:00 EDT
    assert datetime(2024, 11, 3, 6) in changes  # 02:00 EDT -> 01:00 EST
