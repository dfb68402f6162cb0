"""What `syncd status` reports, read from the state schema only (so it works whether syncd runs
or not, from any host that reaches the target): per source its checkpoint, lag, binlog
headroom, dead letters, owner, state and paused mappings, and whether its columns are named by
the schema history (a server without binlog_row_metadata=FULL); per mapping its last reconcile
run. No printing here. A paused mapping is described here once for every report that shows it
(`syncd status`, /healthz, systemd's STATUS= line)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from syncd.config import Config
from syncd.model import Pause
from syncd.observability import one_line
from syncd.sink.lock import read_health, read_owners
from syncd.sink.runs import last_runs
from syncd.sink.schema_history import schema_history_sources
from syncd.sink.state import pending_dead_letters, read_checkpoint, read_pauses
from syncd.source.continuity import LOST
from syncd.source.retention import format_duration

OWNER_FRESH_S = 15.0
"""An owner is alive while its heartbeat is younger than this."""


def status_report(conn: Any, config: Config) -> dict[str, Any]:
    """Everything `syncd status` shows, as JSON-ready data."""
    schema = config.target.state_schema
    now = conn.execute("SELECT now()").fetchone()[0]
    pending = pending_dead_letters(conn, schema)
    health = read_health(conn, schema)
    owners = read_owners(conn, schema)
    reconciles = [run.as_dict() for run in last_runs(conn, schema)]
    pauses = read_pauses(conn, schema)
    rows = [source_row(name, read_checkpoint(conn, schema, name), pending.get(name, 0),
                       health=health.get(name), owner=owners.get(name), now=now,
                       pauses=[p for p in pauses if p.source == name])
            for name in config.sources]
    histories = schema_history_sources(conn, schema)
    for row in rows:
        row["last_reconcile"] = [r for r in reconciles if r["source"] == row["source"]]
        entries, metadata = histories.get(row["source"], (0, None))
        row["schema_history"] = {"entries": entries, "binlog_row_metadata": metadata} if entries else None
    return {"checked_at": now.isoformat(), "sources": rows, "reconcile": reconciles}


def source_row(name: str, checkpoint: Any, pending: int, *, health: Any = None, owner: Any = None,
               now: datetime | None = None, pauses: list[Pause] | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    row: dict[str, Any] = {
        "source": name, "state": None, "position": None, "gtid": None, "last_event_time": None,
        "lag_seconds": None, "checkpoint_age_seconds": None, "dead_letters_pending": pending,
    }
    if checkpoint is not None:
        age = (now - checkpoint.updated_at).total_seconds() if checkpoint.updated_at else None
        row.update({
            "position": str(checkpoint.position),
            "gtid": checkpoint.position.gtid,
            "last_event_time": checkpoint.last_event_time.isoformat() if checkpoint.last_event_time else None,
            "lag_seconds": checkpoint.lag_seconds,
            "checkpoint_age_seconds": round(age, 1) if age is not None else None,
        })
    alive = owner is not None and (now - owner.heartbeat_at).total_seconds() < OWNER_FRESH_S
    row["owner"] = None if owner is None else {
        "host": owner.host, "pid": owner.pid, "since": owner.since.isoformat(),
        "heartbeat_at": owner.heartbeat_at.isoformat(),
        "heartbeat_age_seconds": round((now - owner.heartbeat_at).total_seconds(), 1),
        "alive": alive,
    }
    # An error recorded before the checkpoint last moved is history (e.g. fixed by a snapshot).
    current = health is not None and (checkpoint is None or checkpoint.updated_at is None
                                      or health.updated_at >= checkpoint.updated_at
                                      or health.state in COMMANDS)
    row["error"] = health.error if current and health.error else None
    row["state"] = source_state(checkpoint, health if current else None, alive, owner is not None)
    if row["state"] != STREAMING:  # the lag at the last checkpoint says nothing of now
        row["lag_seconds"] = None
    row["history"] = binlog_history(checkpoint, row["error"])
    row.update(_headroom(health))
    row["paused"] = [paused_entry(p, checkpoint, health, now) for p in pauses or []]
    return row


def paused_entry(pause: Pause, checkpoint: Any, health: Any, now: datetime) -> dict[str, Any]:
    """One paused mapping: where it stopped, why, since when, and how long the binlog it replays
    from stays on the server (the source's recorded retention headroom: that of the checkpoint's
    file, exact when the pause is in that file, else an upper bound: an older file goes first)."""
    kept = _headroom(health)
    same_file = checkpoint is not None and checkpoint.position.file == pause.position.file
    limited = kept["retention_headroom_seconds"] is not None
    return {
        "mapping": pause.mapping, "position": str(pause.position), "statement": pause.statement,
        "reason": pause.reason, "cause": pause.cause,
        "paused_at": pause.paused_at.isoformat() if pause.paused_at else None,
        "paused_seconds": round((now - pause.paused_at).total_seconds()) if pause.paused_at else None,
        "binlog_kept": _kept_text(kept["retention_headroom"], limited and not same_file),
        "binlog_kept_seconds": kept["retention_headroom_seconds"],
        "binlog_kept_exact": same_file or not limited,
    }


def _kept_text(headroom: str | None, upper_bound: bool) -> str:
    if headroom is None:
        return "unknown (not checked yet)"
    return f"at most {headroom}" if upper_bound else headroom


def pause_brief(entry: dict[str, Any]) -> dict[str, Any]:
    """A paused mapping as /healthz shows it: its reason in one bounded line."""
    return {"mapping": entry["mapping"], "position": entry["position"], "reason": one_line(entry["cause"]),
            "paused_at": entry["paused_at"], "binlog_kept": entry["binlog_kept"]}


def pause_clause(entry: dict[str, Any]) -> str:
    """A paused mapping in one clause for one-line reports (no "; ", which separates sources)."""
    return (f"{entry['mapping']} paused at {entry['position']} ({one_line(entry['cause'], 120)}), "
            f"binlog kept {entry['binlog_kept']}")


def binlog_history(checkpoint: Any, error: str | None) -> dict[str, Any]:
    """Which binlog history the checkpoint belongs to, and what the last resume proved."""
    lineage = checkpoint.lineage if checkpoint is not None else None
    file_id = checkpoint.position.file_id if checkpoint is not None else None
    at = checkpoint.continuity_at if checkpoint is not None else None
    return {
        "server": lineage.server if lineage else None,
        "binlog_file": checkpoint.position.file if checkpoint is not None else None,
        "binlog_file_created": (datetime.fromtimestamp(file_id.created, UTC).isoformat()
                                if file_id else None),
        "binlog_file_server_id": file_id.server_id if file_id else None,
        "last_applied_gtid": lineage.applied_gtid if lineage else None,
        "continuity": checkpoint.continuity if checkpoint is not None else None,
        "continuity_checked_at": at.isoformat() if at else None,
        "continuity_lost": bool(error and LOST in error),
    }


def _headroom(health: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"retention_headroom_seconds": None, "retention_headroom": None,
                             "retention_detail": None, "retention_checked_at": None}
    if health is None or health.headroom_kind is None:
        return found
    kind = health.headroom_kind
    return {
        "retention_headroom_seconds": health.headroom_seconds,
        "retention_headroom": format_duration(health.headroom_seconds) if kind == "limited" else kind,
        "retention_detail": health.headroom_detail,
        "retention_checked_at": health.headroom_at.isoformat() if health.headroom_at else None,
    }


STREAMING = "streaming"
COMMANDS = {"snapshot": "syncd snapshot copying (no daemon streaming)",
            "repair": "syncd repair applying (no daemon streaming)"}
"""Health states recorded by a command holding the source while no daemon runs, and their word."""


def source_state(checkpoint: Any, health: Any, owner_alive: bool, owner_known: bool) -> str:
    """One word for a source: a first initial load holds the source before any checkpoint exists,
    so a live owner without one is loading, a dead one stopped, and no owner at all never ran."""
    if health is not None and health.state == "failed":
        return "failed"
    if checkpoint is None and not owner_known:
        return "no checkpoint (initial load not done)"
    if not owner_alive:
        return "stopped"
    if health is not None and health.state == "retrying":
        return "retrying"
    if health is not None and health.state in COMMANDS:
        return COMMANDS[health.state]
    return STREAMING if checkpoint is not None and checkpoint.snapshot_done else "initial load in progress"
