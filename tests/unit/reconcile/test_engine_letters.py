"""A row dead-lettered by the daemon while a reconcile pass runs is explained, not unexplained."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from syncd.reconcile import engine


def a_pass(letters: set[str], read_at: float) -> SimpleNamespace:
    return SimpleNamespace(dead_letters=letters, _letters_read=read_at, conn=None, schema="syncd",
                           plan=SimpleNamespace(source=SimpleNamespace(name="shop")),
                           mapping=SimpleNamespace(name="orders"))


def test_pending_letters_are_read_again_for_a_key_none_explains(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []

    def pending(_conn: object, _schema: str, source: str, mapping: str) -> set[str]:
        reads.append(f"{source}/{mapping}")
        return {"id=1", "id=2"}

    monkeypatch.setattr(engine, "pending_row_keys", pending)
    stale = a_pass({"id=1"}, time.monotonic() - 60)
    assert engine._Pass._dead_lettered(stale, "id=1")  # type: ignore[arg-type]
    assert reads == []
    assert engine._Pass._dead_lettered(stale, "id=2")  # type: ignore[arg-type]  # written since the pass began
    assert reads == ["shop/orders"]
    assert not engine._Pass._dead_lettered(stale, "id=3")  # type: ignore[arg-type]  # read a moment ago
    assert reads == ["shop/orders"]
