"""syncd's own tables in `state_schema`: checkpoints, dead letters, runs, snapshot progress, identity
links (`syncd.identity`), the schema history of sources without full row metadata (its rows are
read and written by syncd/sink/schema_history.py).

The tables are created, and added to an existing state schema, by the statements of `_DDL`,
every one idempotent (`IF NOT EXISTS`): running them is the migration. They run only when the
schema's comment does not name the digest of `_DDL` (written once they ran): an `ALTER TABLE ...
IF NOT EXISTS` still locks its table, and every command runs this, so each `syncd reconcile` or
`syncd snapshot` took the checkpoints' lock against the running daemon (deadlocks included).

The module is long because it is the one owner of every state table's SQL: the DDL and each
table's reads and writes stay together, so a column added is added in one file."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql

from syncd.mapping.plan import LetterColumns
from syncd.model import (
    REPAIR_AT,
    SNAPSHOT_AT,
    BinlogFileId,
    Checkpoint,
    CopyProgress,
    DeadLetter,
    KeyOutcome,
    Lineage,
    Outcome,
    Pause,
    Position,
    RepairRequest,
    exact_key_json,
    exact_key_value,
    json_value,
)
from syncd.sink.connection import translating

SCHEMA_VERSION = 1

_DDL = r"""
CREATE TABLE IF NOT EXISTS {schema}.schema_version (
    version integer NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.checkpoints (
    source          text PRIMARY KEY,
    binlog_file     text NOT NULL,
    binlog_pos      bigint NOT NULL,
    gtid            text,
    last_event_time timestamptz,
    snapshot_done   boolean NOT NULL DEFAULT true,
    lag_seconds     double precision,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {schema}.dead_letters (
    id              bigserial PRIMARY KEY,
    source          text NOT NULL,
    source_table    text NOT NULL,
    mapping         text NOT NULL,
    row_key         text NOT NULL,
    binlog_position text NOT NULL,
    event_pos       bigint NOT NULL DEFAULT 0,
    row_index       integer NOT NULL DEFAULT 0,
    row_image       jsonb NOT NULL,
    reason          text NOT NULL,
    status          text NOT NULL DEFAULT 'pending',
    created_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    UNIQUE (source, mapping, binlog_position, event_pos, row_index, row_key)
);
CREATE INDEX IF NOT EXISTS dead_letters_pending ON {schema}.dead_letters (source, status);
CREATE TABLE IF NOT EXISTS {schema}.runs (
    id          bigserial PRIMARY KEY,
    host        text NOT NULL,
    pid         integer NOT NULL,
    version     text NOT NULL,
    sources     text[] NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at  timestamptz,
    exit_reason text
);
CREATE TABLE IF NOT EXISTS {schema}.source_owners (
    source       text PRIMARY KEY,
    host         text NOT NULL,
    pid          integer NOT NULL,
    since        timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {schema}.snapshot_progress (
    source      text NOT NULL,
    source_table text NOT NULL,
    position    text NOT NULL,
    last_key    jsonb,
    key_columns jsonb,
    rows_copied bigint NOT NULL DEFAULT 0,
    done        boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, source_table)
);
CREATE TABLE IF NOT EXISTS {schema}.reconcile_runs (
    id             bigserial PRIMARY KEY,
    mapping        text NOT NULL,
    source         text NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    status         text NOT NULL DEFAULT 'running',
    repair         boolean NOT NULL DEFAULT false,
    rows_compared  bigint NOT NULL DEFAULT 0,
    missing        bigint NOT NULL DEFAULT 0,
    extra          bigint NOT NULL DEFAULT 0,
    differ         bigint NOT NULL DEFAULT 0,
    repaired       bigint NOT NULL DEFAULT 0,
    explained_by_dead_letters bigint NOT NULL DEFAULT 0,
    repaired_keys_sample jsonb,
    error          text
);
CREATE TABLE IF NOT EXISTS {schema}.repair_requests (
    id           bigserial PRIMARY KEY,
    source       text NOT NULL,
    mapping      text NOT NULL,
    keys         jsonb NOT NULL,
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    status       text NOT NULL DEFAULT 'pending',
    applied      integer NOT NULL DEFAULT 0,
    skipped      integer NOT NULL DEFAULT 0,
    error        text,
    dead_letter_reasons jsonb,
    done_at      timestamptz
);
CREATE TABLE IF NOT EXISTS {schema}.paused_mappings (
    mapping     text PRIMARY KEY,
    source      text NOT NULL,
    binlog_file text NOT NULL,
    binlog_pos  bigint NOT NULL,
    statement   text NOT NULL,
    reason      text NOT NULL,
    paused_at   timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE {schema}.repair_requests ADD COLUMN IF NOT EXISTS dead_letter_reasons jsonb;
ALTER TABLE {schema}.repair_requests ADD COLUMN IF NOT EXISTS outcomes jsonb;
ALTER TABLE {schema}.dead_letters ADD COLUMN IF NOT EXISTS row_image_kept boolean NOT NULL DEFAULT false;
ALTER TABLE {schema}.dead_letters ALTER COLUMN row_image_kept SET DEFAULT true;
ALTER TABLE {schema}.dead_letters ADD COLUMN IF NOT EXISTS refused_space text;
ALTER TABLE {schema}.dead_letters ADD COLUMN IF NOT EXISTS refused_person bigint;
UPDATE {schema}.dead_letters SET
    refused_person = substring(reason from '^unified row of person ([0-9]+) \(identity ')::bigint,
    refused_space = substring(reason from '^unified row of person [0-9]+ \(identity (.+?)\): ')
    WHERE refused_space IS NULL AND reason LIKE 'unified row of person %';
UPDATE {schema}.dead_letters
    SET row_key = regexp_replace(row_key, '(^|,)([^=,'']+)=None(?=,|$)', '\1\2=NULL', 'g')
    WHERE row_key ~ '(^|,)[^=,'']+=None(,|$)';
ALTER TABLE {schema}.checkpoints ADD COLUMN IF NOT EXISTS binlog_file_created timestamptz;
ALTER TABLE {schema}.checkpoints ADD COLUMN IF NOT EXISTS binlog_file_server_id bigint;
ALTER TABLE {schema}.checkpoints ADD COLUMN IF NOT EXISTS source_server text;
ALTER TABLE {schema}.checkpoints ADD COLUMN IF NOT EXISTS applied_gtid text;
ALTER TABLE {schema}.checkpoints ADD COLUMN IF NOT EXISTS applied_digest text;
ALTER TABLE {schema}.checkpoints ADD COLUMN IF NOT EXISTS continuity text;
ALTER TABLE {schema}.checkpoints ADD COLUMN IF NOT EXISTS continuity_at timestamptz;
ALTER TABLE {schema}.snapshot_progress ADD COLUMN IF NOT EXISTS key_columns jsonb;
CREATE INDEX IF NOT EXISTS repair_requests_pending ON {schema}.repair_requests (source, status, id);
CREATE TABLE IF NOT EXISTS {schema}.identity_persons (
    space       text NOT NULL,
    person_id   bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    merged_into bigint,
    merged_at   timestamptz,
    PRIMARY KEY (space, person_id)
);
CREATE TABLE IF NOT EXISTS {schema}.identity_links (
    space       text NOT NULL,
    kind        text NOT NULL,
    key_hash    text NOT NULL,
    person_id   bigint NOT NULL,
    mapping     text NOT NULL,
    source_key  text NOT NULL,
    linked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (space, kind, key_hash)
);
CREATE INDEX IF NOT EXISTS identity_links_person ON {schema}.identity_links (space, person_id);
CREATE TABLE IF NOT EXISTS {schema}.identity_contributions (
    space        text NOT NULL,
    mapping      text NOT NULL,
    source_key   text NOT NULL,
    person_id    bigint NOT NULL,
    source       text NOT NULL,
    target_table text NOT NULL,
    keys         text[] NOT NULL,
    "values"     jsonb,
    commit_time  timestamptz NOT NULL,
    first_seen   timestamptz NOT NULL,
    deleted_at   timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (space, mapping, source_key)
);
CREATE INDEX IF NOT EXISTS identity_contributions_person
    ON {schema}.identity_contributions (space, person_id);
CREATE TABLE IF NOT EXISTS {schema}.identity_merges (
    id          bigserial PRIMARY KEY,
    space       text NOT NULL,
    survivor    bigint NOT NULL,
    merged      bigint[] NOT NULL,
    mapping     text NOT NULL,
    source      text NOT NULL,
    source_key  text NOT NULL,
    key_kinds   text[] NOT NULL,
    position    text NOT NULL,
    commit_time timestamptz,
    merged_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS identity_merges_survivor ON {schema}.identity_merges (space, survivor);
CREATE TABLE IF NOT EXISTS {schema}.schema_history (
    source       text NOT NULL,
    source_table text NOT NULL,
    binlog_file  text NOT NULL,
    binlog_pos   bigint NOT NULL,
    columns      jsonb,
    primary_key  text[] NOT NULL DEFAULT '{{}}',
    note         text NOT NULL DEFAULT '',
    row_metadata text,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, source_table, binlog_file, binlog_pos)
);
"""


@translating("creating the state schema")
def create_state_schema(conn: psycopg.Connection, schema: str) -> None:
    """Create the state tables if missing (idempotent), in one transaction; nothing when the
    schema already is what `_DDL` makes (a catalog read, no lock)."""
    if _marked(conn, schema):
        return
    with conn.transaction():
        # Two processes starting at once on a fresh target would race on the catalog.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"syncd:state:{schema}",))
        # CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists;
        # a least-privilege role owns just the schema, so only create it when it is missing.
        if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        statements = sql.SQL(_DDL).format(schema=sql.Identifier(schema))
        conn.execute(statements)
        version = sql.SQL("SELECT version FROM {}.schema_version").format(sql.Identifier(schema))
        if conn.execute(version).fetchone() is None:
            conn.execute(sql.SQL("INSERT INTO {}.schema_version VALUES (%s)").format(
                sql.Identifier(schema)), (SCHEMA_VERSION,))
        _mark(conn, schema)


_DDL_MARK = f"syncd state schema, DDL {hashlib.sha256(_DDL.encode()).hexdigest()[:16]}"
"""The schema's comment once `_DDL` ran on it (a changed `_DDL` runs again)."""


def _marked(conn: psycopg.Connection, schema: str) -> bool:
    row = conn.execute("SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s",
                       (schema,)).fetchone()
    return row is not None and row[0] == _DDL_MARK


def _mark(conn: psycopg.Connection, schema: str) -> None:
    """Only the schema's owner may comment on it; another role runs `_DDL` every time, as before."""
    try:
        with conn.transaction():
            conn.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(sql.Identifier(schema),
                                                                    sql.Literal(_DDL_MARK)))
    except psycopg.errors.InsufficientPrivilege:
        pass


_CHECKPOINT_COLUMNS = ("binlog_file, binlog_pos, gtid, last_event_time, snapshot_done, updated_at, "
                       "lag_seconds, binlog_file_created, binlog_file_server_id, source_server, "
                       "applied_gtid, applied_digest, continuity, continuity_at")


@translating("reading the checkpoint")
def read_checkpoint(conn: psycopg.Connection, schema: str, source: str) -> Checkpoint | None:
    query = sql.SQL(f"SELECT {_CHECKPOINT_COLUMNS} FROM {{}}.checkpoints WHERE source = %s"
                    ).format(sql.Identifier(schema))
    row = conn.execute(query, (source,)).fetchone()
    if row is None:
        return None
    (file, pos, gtid, last_event_time, snapshot_done, updated_at, lag, created, server_id, server,
     applied_gtid, applied_digest, continuity, continuity_at) = row
    file_id = BinlogFileId(int(created.timestamp()), server_id) if created and server_id is not None else None
    return Checkpoint(source, Position(file, pos, gtid, file_id), last_event_time, snapshot_done,
                      updated_at, lag, Lineage(server, applied_gtid, applied_digest), continuity,
                      continuity_at)


def write_checkpoint(cur: psycopg.Cursor, schema: str, checkpoint: Checkpoint) -> None:
    """Upsert the checkpoint row; runs inside the caller's transaction."""
    statement = sql.SQL(
        "INSERT INTO {}.checkpoints AS c (source, binlog_file, binlog_pos, gtid, last_event_time, "
        "snapshot_done, lag_seconds, updated_at, binlog_file_created, binlog_file_server_id, "
        "source_server, applied_gtid, applied_digest, continuity, continuity_at) VALUES (%s, %s, %s, "
        "%s, %s, %s, EXTRACT(EPOCH FROM clock_timestamp() - %s::timestamptz), now(), "
        "to_timestamp(%s), %s, %s, %s, %s, %s, CASE WHEN %s::text IS NULL THEN NULL ELSE now() END) "
        "ON CONFLICT (source) DO UPDATE SET binlog_file = EXCLUDED.binlog_file, "
        "binlog_pos = EXCLUDED.binlog_pos, gtid = EXCLUDED.gtid, "
        "last_event_time = COALESCE(EXCLUDED.last_event_time, c.last_event_time), "
        "snapshot_done = EXCLUDED.snapshot_done, "
        "lag_seconds = COALESCE(EXCLUDED.lag_seconds, c.lag_seconds), updated_at = now(), "
        "binlog_file_created = EXCLUDED.binlog_file_created, "
        "binlog_file_server_id = EXCLUDED.binlog_file_server_id, "
        "source_server = EXCLUDED.source_server, applied_gtid = EXCLUDED.applied_gtid, "
        "applied_digest = EXCLUDED.applied_digest, "
        "continuity = COALESCE(EXCLUDED.continuity, c.continuity), "
        "continuity_at = COALESCE(EXCLUDED.continuity_at, c.continuity_at)"
    ).format(sql.Identifier(schema))
    position = checkpoint.position
    file_id = position.file_id
    lineage = checkpoint.lineage or _NO_LINEAGE
    cur.execute(statement, (checkpoint.source, position.file, position.pos, position.gtid,
                            checkpoint.last_event_time, checkpoint.snapshot_done,
                            checkpoint.last_event_time,
                            file_id.created if file_id else None, file_id.server_id if file_id else None,
                            lineage.server, lineage.applied_gtid, lineage.applied_digest,
                            checkpoint.continuity, checkpoint.continuity))


_NO_LINEAGE = Lineage()


@translating("recording binlog continuity")
def record_continuity(conn: psycopg.Connection, schema: str, source: str, *, was: Position,
                      now: Position, lineage: Lineage, note: str) -> bool:
    """At a resume: record what it proved (and, when the history continues in another place,
    move the checkpoint there). Only if the checkpoint is still at `was`; the checkpoint's
    `updated_at` stays (it dates the last applied change). False when it had moved."""
    statement = sql.SQL(
        "UPDATE {}.checkpoints SET binlog_file = %s, binlog_pos = %s, gtid = %s, "
        "binlog_file_created = to_timestamp(%s), binlog_file_server_id = %s, source_server = %s, "
        "applied_gtid = %s, applied_digest = %s, continuity = %s, continuity_at = now() "
        "WHERE source = %s AND binlog_file = %s AND binlog_pos = %s").format(sql.Identifier(schema))
    file_id = now.file_id
    with conn.transaction():
        done = conn.execute(statement, (
            now.file, now.pos, now.gtid, file_id.created if file_id else None,
            file_id.server_id if file_id else None, lineage.server, lineage.applied_gtid,
            lineage.applied_digest, note, source, was.file, was.pos)).rowcount
    return done > 0


REREAD_POSITIONS = (REPAIR_AT, SNAPSHOT_AT)
"""Dead letters of rows read again (repairs, retries, snapshots) rather than of binlog changes."""
_REREAD = " OR ".join(f"binlog_position LIKE '{p}%%'" for p in REREAD_POSITIONS)
"""SQL: the letter is one of a row read again."""


def insert_dead_letters(cur: psycopg.Cursor, schema: str, letters: list[DeadLetter]) -> None:
    """Record dead letters, each one pending; replaying the same change again adds nothing.

    A row read again (a retry, a repair, a snapshot) that still cannot be applied refreshes the
    pending dead letter its key already has (reason, row image) instead of adding a second one;
    a change the stream cannot apply takes over the pending letter a copy or a repair left for its row.
    A letter whose identity (source, mapping, position, event, row, key) was discarded or retried
    before, e.g. a snapshot read again at the same binlog position, is pending again with the new
    reason and time: the change failed now and its row is not in the target.
    """
    if not letters:
        return
    letters = [d for d in letters
               if not (d.position.startswith(REREAD_POSITIONS) and _refresh(cur, schema, d))]
    letters = _supersede_copied(cur, schema, letters)
    if not letters:
        return
    statement = sql.SQL(
        "INSERT INTO {}.dead_letters (source, source_table, mapping, row_key, binlog_position, "
        "event_pos, row_index, row_image, reason, refused_space, refused_person) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (source, mapping, binlog_position, event_pos, row_index, row_key) DO UPDATE SET "
        "status = 'pending', created_at = now(), resolved_at = NULL, source_table = excluded.source_table, "
        "row_image = excluded.row_image, row_image_kept = true, reason = excluded.reason, "
        "refused_space = excluded.refused_space, refused_person = excluded.refused_person "
        "WHERE {}.dead_letters.status <> 'pending'"
    ).format(sql.Identifier(schema), sql.Identifier(schema))
    cur.executemany(statement, [
        (d.source, d.source_table, d.mapping, d.row_key, d.position, d.event_pos, d.row_index,
         row_image_json(d.row_image), d.reason, *(d.refused_person or (None, None)))
        for d in letters
    ])


def _supersede_copied(cur: psycopg.Cursor, schema: str, letters: list[DeadLetter]) -> list[DeadLetter]:
    """A change the stream cannot apply takes over its row's pending dead letter from a copy or a
    repair.

    A copy reads each chunk at or after its binlog position, and streaming replays from that
    position: a row written meanwhile is read by the copy and replayed by the stream, and both
    fail alike (as a row a repair read while no daemon ran, replayed when one starts). The
    stream's letter (the change, at its position) replaces the read one, so a row gets one
    letter, as if it had been streamed. Returns the letters still to insert."""
    streamed = [d for d in letters if not d.position.startswith(REREAD_POSITIONS)]
    if not streamed:
        return letters
    query = sql.SQL(
        "SELECT DISTINCT source, mapping, row_key FROM {}.dead_letters WHERE status = 'pending' "
        f"AND ({_REREAD}) AND (source, mapping, row_key) IN "
        "(SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))").format(sql.Identifier(schema))
    params = ([d.source for d in streamed], [d.mapping for d in streamed], [d.row_key for d in streamed])
    copied = {tuple(row) for row in cur.execute(query, params).fetchall()}
    if not copied:
        return letters
    rest = []
    for letter in letters:
        key = (letter.source, letter.mapping, letter.row_key)
        if (key in copied and not letter.position.startswith(REREAD_POSITIONS)
                and _take_over(cur, schema, letter)):
            copied.discard(key)  # the row's next failures are letters of their own
            continue
        rest.append(letter)
    return rest


def _take_over(cur: psycopg.Cursor, schema: str, letter: DeadLetter) -> bool:
    """Turn the row's pending copy or repair letter into this one; False when there is none (or
    this change already has its letter: a replay)."""
    statement = sql.SQL(
        "UPDATE {0}.dead_letters SET binlog_position = %s, event_pos = %s, row_index = %s, reason = %s, "
        "row_image = %s, row_image_kept = true "
        "WHERE id = (SELECT id FROM {0}.dead_letters WHERE source = %s AND mapping = %s "
        f"AND row_key = %s AND status = 'pending' AND ({_REREAD}) ORDER BY id LIMIT 1) "
        "AND NOT EXISTS (SELECT 1 FROM {0}.dead_letters WHERE source = %s AND mapping = %s "
        "AND binlog_position = %s AND event_pos = %s AND row_index = %s AND row_key = %s)"
    ).format(sql.Identifier(schema))
    cur.execute(statement, (
        letter.position, letter.event_pos, letter.row_index, letter.reason, row_image_json(letter.row_image),
        letter.source, letter.mapping, letter.row_key,
        letter.source, letter.mapping, letter.position, letter.event_pos, letter.row_index, letter.row_key))
    return cur.rowcount > 0


def _refresh(cur: psycopg.Cursor, schema: str, letter: DeadLetter) -> bool:
    """Update the key's pending dead letters with this newer failure (and its time); False when it
    has none."""
    statement = sql.SQL(
        "UPDATE {}.dead_letters SET reason = %s, row_image = %s, row_image_kept = true, created_at = now(), "
        "refused_space = %s, refused_person = %s WHERE source = %s AND mapping = %s "
        "AND row_key = %s AND status = 'pending'").format(sql.Identifier(schema))
    refused = letter.refused_person or (None, None)
    cur.execute(statement, (letter.reason, row_image_json(letter.row_image), *refused, letter.source,
                            letter.mapping, letter.row_key))
    return cur.rowcount > 0


def letters_to_trim(conn: psycopg.Connection, schema: str) -> list[tuple[int, str, str, dict[str, Any]]]:
    """(id, mapping, row key, row image) of dead letters written before they kept only what their
    mapping reads (`row_image_kept` false: they may hold unmapped or masked columns in clear)."""
    query = sql.SQL("SELECT id, mapping, row_key, row_image FROM {}.dead_letters "
                    "WHERE NOT row_image_kept ORDER BY id").format(sql.Identifier(schema))
    return [tuple(row) for row in conn.execute(query).fetchall()]


@translating("trimming dead letters")
def trim_letters(conn: psycopg.Connection, schema: str, kept: Mapping[str, LetterColumns]) -> int:
    """Keep of older dead letters only what their mapping reads, as it publishes it (the same as
    new letters keep); a letter whose mapping is gone keeps nothing. Returns how many changed."""
    trimmed = [(letter_id, _trimmed(kept.get(mapping), row_key, image))
               for letter_id, mapping, row_key, image in letters_to_trim(conn, schema)]
    if trimmed:
        statement = sql.SQL("UPDATE {}.dead_letters SET row_image = %s, row_image_kept = true WHERE id = %s"
                            ).format(sql.Identifier(schema))
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(statement, [(row_image_json(image), letter_id) for letter_id, image in trimmed])
    return len(trimmed)


def _trimmed(kept: LetterColumns | None, row_key: str, image: dict[str, Any]) -> dict[str, Any]:
    if kept is None:
        return {}
    key_columns = tuple(c for c in image if row_key.startswith(f"{c}=") or f",{c}=" in row_key)
    return kept.image(image, key_columns)


@translating("reading dead letters")
def pending_dead_letters(conn: psycopg.Connection, schema: str) -> dict[str, int]:
    query = sql.SQL("SELECT source, count(*) FROM {}.dead_letters WHERE status = 'pending' "
                    "GROUP BY source").format(sql.Identifier(schema))
    return {source: count for source, count in conn.execute(query).fetchall()}


def row_image_json(row: dict[str, Any]) -> str:
    """A row image as JSON text PostgreSQL's jsonb accepts: it refuses the NUL character, so a
    NUL inside text is kept as the visible six characters `\\u0000`."""
    return json.dumps(_visible_nul(row), default=json_value, ensure_ascii=False)


def _visible_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\\u0000")
    if isinstance(value, dict):
        return {_visible_nul(k): _visible_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_visible_nul(v) for v in value]
    return value





@translating("queueing a repair")
def request_repair(conn: psycopg.Connection, schema: str, source: str, mapping: str, *,
                   keys: list[list[Any]], requested_by: str) -> int:
    """Queue a repair for the running pipeline of `source`; returns the request id."""
    statement = sql.SQL("INSERT INTO {}.repair_requests (source, mapping, keys, requested_by) "
                        "VALUES (%s, %s, %s, %s) RETURNING id").format(sql.Identifier(schema))
    exact = [[exact_key_json(v) for v in key] for key in keys]
    row = conn.execute(statement, (source, mapping, json.dumps(exact), requested_by)).fetchone()
    assert row is not None
    return int(row[0])


@translating("reading a repair request")
def read_repair(conn: psycopg.Connection, schema: str, request_id: int) -> RepairRequest | None:
    query = sql.SQL("SELECT id, source, mapping, keys, requested_by, status, applied, skipped, error, "
                    "dead_letter_reasons, outcomes FROM {}.repair_requests WHERE id = %s"
                    ).format(sql.Identifier(schema))
    row = conn.execute(query, (request_id,)).fetchone()
    return _request(row) if row else None


@translating("reading repair requests")
def next_repair(conn: psycopg.Connection, schema: str, source: str) -> RepairRequest | None:
    query = sql.SQL("SELECT id, source, mapping, keys, requested_by, status, applied, skipped, error "
                    "FROM {}.repair_requests WHERE source = %s AND status = 'pending' "
                    "ORDER BY id LIMIT 1").format(sql.Identifier(schema))
    row = conn.execute(query, (source,)).fetchone()
    return _request(row) if row else None


def _request(row: tuple[Any, ...]) -> RepairRequest:
    """A request as stored, its keys read back as the values they were (`exact_key_value`)."""
    keys = [[exact_key_value(v) for v in key] for key in row[3]]
    return RepairRequest(*row[:3], keys, *row[4:])


def finish_repair(cur: psycopg.Cursor, schema: str, request_id: int, outcomes: tuple[KeyOutcome, ...],
                  error: str | None = None) -> None:
    """Mark a request done (or failed) with each key's outcome; runs inside the transaction that
    applied it. `applied` counts keys whose target row now matches the source (source row gone
    included), `skipped` those left to the stream's newer change."""
    statement = sql.SQL("UPDATE {}.repair_requests SET status = %s, applied = %s, skipped = %s, "
                        "error = %s, dead_letter_reasons = %s, outcomes = %s, done_at = now() WHERE id = %s"
                        ).format(sql.Identifier(schema))
    applied = sum(o.outcome in (Outcome.APPLIED, Outcome.SOURCE_GONE) for o in outcomes)
    skipped = sum(o.outcome is Outcome.NEWER_IN_STREAM for o in outcomes)
    reasons = [o.reason for o in outcomes if o.outcome is Outcome.DEAD_LETTERED]
    listed = [{"key": list(o.key), "row_key": o.row_key, "outcome": o.outcome.value, "reason": o.reason}
              for o in outcomes]
    cur.execute(statement, ("failed" if error else "done", applied, skipped, error,
                            json.dumps(reasons, ensure_ascii=False),
                            json.dumps(listed, default=json_value, ensure_ascii=False), request_id))


@translating("reading paused mappings")
def read_pauses(conn: psycopg.Connection, schema: str, source: str | None = None) -> list[Pause]:
    """The paused mappings of `source` (of every source when None), oldest first."""
    query = sql.SQL("SELECT mapping, source, binlog_file, binlog_pos, statement, reason, paused_at "
                    "FROM {}.paused_mappings WHERE %s::text IS NULL OR source = %s "
                    "ORDER BY paused_at, mapping").format(sql.Identifier(schema))
    return [Pause(m, s, Position(f, p), st, r, at)
            for m, s, f, p, st, r, at in conn.execute(query, (source, source))]


@translating("recording paused mappings")
def add_pauses(conn: psycopg.Connection, schema: str, pauses: list[Pause]) -> list[str]:
    """Record pauses in one transaction; a mapping paused already keeps its earlier pause.
    Returns the mappings paused now."""
    added = []
    with conn.transaction(), conn.cursor() as cur:
        for pause in pauses:
            write_pause(cur, schema, pause)
            if cur.rowcount:
                added.append(pause.mapping)
    return added


def write_pause(cur: psycopg.Cursor, schema: str, pause: Pause) -> None:
    statement = sql.SQL(
        "INSERT INTO {}.paused_mappings (mapping, source, binlog_file, binlog_pos, statement, reason) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (mapping) DO NOTHING").format(sql.Identifier(schema))
    cur.execute(statement, (pause.mapping, pause.source, pause.position.file, pause.position.pos,
                            pause.statement, pause.reason))


def clear_pause(cur: psycopg.Cursor, schema: str, mapping: str) -> None:
    statement = sql.SQL("DELETE FROM {}.paused_mappings WHERE mapping = %s").format(sql.Identifier(schema))
    cur.execute(statement, (mapping,))


@translating("reading snapshot progress")
def read_progress(conn: psycopg.Connection, schema: str, source: str) -> dict[str, CopyProgress]:
    query = sql.SQL("SELECT source_table, position, last_key, rows_copied, done, key_columns "
                    "FROM {}.snapshot_progress "
                    "WHERE source = %s").format(sql.Identifier(schema))
    return {row[0]: _progress(row) for row in conn.execute(query, (source,)).fetchall()}


def _progress(row: tuple[Any, ...]) -> CopyProgress:
    """A table's progress as stored, its last key read back as the values it was."""
    last_key = [exact_key_value(v) for v in row[2]] if row[2] is not None else None
    return CopyProgress(row[0], row[1], last_key, *row[3:])


def save_progress(cur: psycopg.Cursor, schema: str, source: str, progress: CopyProgress) -> None:
    statement = sql.SQL(
        "INSERT INTO {}.snapshot_progress (source, source_table, position, last_key, key_columns, "
        "rows_copied, done, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, now()) "
        "ON CONFLICT (source, source_table) DO UPDATE SET position = EXCLUDED.position, "
        "last_key = EXCLUDED.last_key, key_columns = EXCLUDED.key_columns, "
        "rows_copied = EXCLUDED.rows_copied, done = EXCLUDED.done, updated_at = now()"
    ).format(sql.Identifier(schema))
    last_key = None
    if progress.last_key is not None:
        last_key = json.dumps([exact_key_json(v) for v in progress.last_key])
    key_columns = json.dumps(progress.key_columns) if progress.key_columns is not None else None
    cur.execute(statement, (source, progress.table, progress.position, last_key, key_columns,
                            progress.rows_copied, progress.done))


def clear_progress(cur: psycopg.Cursor, schema: str, source: str, tables: list[str] | None = None) -> None:
    statement = sql.SQL("DELETE FROM {}.snapshot_progress WHERE source = %s").format(sql.Identifier(schema))
    if tables is None:
        cur.execute(statement, (source,))
    else:
        cur.execute(statement + sql.SQL(" AND source_table = ANY(%s)"), (source, tables))
