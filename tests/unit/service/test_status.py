"""How a paused mapping is described in `syncd status`, /healthz and STATUS=."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from syncd.model import Checkpoint, Pause, Position
from syncd.service.status import pause_brief, pause_clause, paused_entry, source_row, source_state
from syncd.sink.lock import Owner, SourceHealth

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
PAUSE = Pause("shop_orders", "shop", Position("mysql-bin.000003", 1234), "ALTER TABLE orders RENAME COLUMN "
              "phone TO mobile", "source table orders no longer has column(s) phone; edit mapping "
              "'shop_orders' at m.yaml:3, then reload", NOW - timedelta(minutes=5))


def health(kind: str | None, seconds: float | None = None) -> SourceHealth:
    return SourceHealth("shop", "streaming", None, kind, seconds, "detail", NOW, "host", 1, NOW)


def checkpoint(file: str) -> Checkpoint:
    return Checkpoint("shop", Position(file, 4), None, True)


def test_a_pause_in_the_checkpoints_file_is_kept_as_long_as_the_checkpoint() -> None:
    entry = paused_entry(PAUSE, checkpoint("mysql-bin.000003"), health("limited", 7200), NOW)
    assert entry["binlog_kept"] == "2h" and entry["binlog_kept_exact"]
    assert entry["position"] == "mysql-bin.000003:1234" and entry["paused_seconds"] == 300
    assert entry["cause"] == "source table orders no longer has column(s) phone"


def test_a_pause_in_an_older_file_is_kept_at_most_as_long() -> None:
    entry = paused_entry(PAUSE, checkpoint("mysql-bin.000007"), health("limited", 7200), NOW)
    assert entry["binlog_kept"] == "at most 2h" and not entry["binlog_kept_exact"]


def test_unlimited_and_unknown_retention() -> None:
    unlimited = paused_entry(PAUSE, checkpoint("mysql-bin.000007"), health("unlimited"), NOW)
    assert unlimited["binlog_kept"] == "unlimited"
    assert paused_entry(PAUSE, None, None, NOW)["binlog_kept"] == "unknown (not checked yet)"


def test_one_line_forms_hold_the_cause_without_the_fix() -> None:
    entry = paused_entry(PAUSE, checkpoint("mysql-bin.000003"), health("unlimited"), NOW)
    clause = pause_clause(entry)
    assert clause == ("shop_orders paused at mysql-bin.000003:1234 (source table orders no longer has "
                      "column(s) phone), binlog kept unlimited")
    assert "; " not in clause  # it separates sources in STATUS=
    assert pause_brief(entry)["reason"] == "source table orders no longer has column(s) phone"


def test_a_first_initial_load_is_shown_as_such_and_its_owner_dying_as_stopped() -> None:
    """Before the first checkpoint: never ran, loading (a live owner), stopped (a dead one)."""
    never = source_state(None, None, owner_alive=False, owner_known=False)
    assert never == "no checkpoint (initial load not done)"
    assert source_state(None, None, owner_alive=True, owner_known=True) == "initial load in progress"
    assert source_state(None, None, owner_alive=False, owner_known=True) == "stopped"
    retrying = SourceHealth("shop", "retrying", "lost", None, None, None, None, "host", 1, NOW)
    assert source_state(None, retrying, owner_alive=True, owner_known=True) == "retrying"
    loading, done = Checkpoint("shop", Position("b.1", 4), None, False), checkpoint("b.1")
    assert source_state(loading, None, owner_alive=True, owner_known=True) == "initial load in progress"
    assert source_state(done, None, owner_alive=True, owner_known=True) == "streaming"
    assert source_state(done, None, owner_alive=False, owner_known=True) == "stopped"


def test_the_lag_is_shown_while_streaming_only() -> None:
    """A stopped or failed source's last lag says nothing of now: it is left out."""
    done = Checkpoint("shop", Position("b.1", 4), None, True, updated_at=NOW - timedelta(hours=1),
                      lag_seconds=0.4)
    live = Owner("shop", "host", 1, NOW - timedelta(days=1), NOW - timedelta(seconds=2))
    dead = Owner("shop", "host", 1, NOW - timedelta(days=1), NOW - timedelta(hours=1))
    assert source_row("shop", done, 0, owner=live, now=NOW)["lag_seconds"] == 0.4
    stopped = source_row("shop", done, 0, owner=dead, now=NOW)
    assert stopped["state"] == "stopped" and stopped["lag_seconds"] is None
    assert stopped["checkpoint_age_seconds"] == 3600.0


def test_a_command_holding_the_source_without_a_daemon_is_named() -> None:
    """`syncd snapshot` holds the source while no daemon runs: not "streaming"."""
    copying = SourceHealth("shop", "snapshot", None, None, None, None, None, "host", 1,
                           NOW - timedelta(hours=1))
    later = Checkpoint("shop", Position("b.1", 4), None, True, updated_at=NOW)
    owner = Owner("shop", "host", 7, NOW, NOW)
    row = source_row("shop", later, 0, health=copying, owner=owner, now=NOW)
    assert row["state"] == "syncd snapshot copying (no daemon streaming)" and row["lag_seconds"] is None
    dead = Owner("shop", "host", 7, NOW, NOW - timedelta(minutes=5))
    gone = source_row("shop", later, 0, health=copying, owner=dead, now=NOW)
    assert gone["state"] == "stopped"
