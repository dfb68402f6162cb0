"""The remembered reconcile chunks (`state_schema.reconcile_chunks`, syncd/reconcile/verified.py
says what they are for): read and replaced per mapping."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from syncd.sink.connection import translated

_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.reconcile_chunks (
    mapping     text NOT NULL,
    seq         integer NOT NULL,
    lo          jsonb,
    hi          jsonb,
    fingerprint text NOT NULL,
    verified    boolean NOT NULL,
    rows        bigint NOT NULL DEFAULT 0,
    source_sum  text,
    target_sum  text,
    checked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mapping, seq)
)
"""


ChunkRow = tuple[Any, ...]
"""(lo, hi, verified, rows, source_sum, target_sum, fingerprint) as read; (lo, hi, fingerprint,
verified, rows, source_sum, target_sum) as written; lo and hi key values or None (unbounded)."""


def ensure_table(conn: psycopg.Connection, schema: str) -> None:
    with translated("creating the reconcile_chunks table"):
        conn.execute(sql.SQL(_DDL).format(schema=sql.Identifier(schema)))


def load_chunks(conn: psycopg.Connection, schema: str, mapping: str) -> list[ChunkRow]:
    query = sql.SQL("SELECT lo, hi, verified, rows, source_sum, target_sum, fingerprint "
                    "FROM {}.reconcile_chunks WHERE mapping = %s ORDER BY seq").format(sql.Identifier(schema))
    with translated("reading remembered reconcile chunks"):
        return [tuple(r) for r in conn.execute(query, (mapping,)).fetchall()]


def save_chunks(conn: psycopg.Connection, schema: str, mapping: str, rows: Sequence[ChunkRow]) -> None:
    """Replace the mapping's chunks by these, in one transaction."""
    table = sql.Identifier(schema)
    with translated("saving reconcile chunks"), conn.transaction():
        conn.execute(sql.SQL("DELETE FROM {}.reconcile_chunks WHERE mapping = %s").format(table), (mapping,))
        with conn.cursor() as cur:
            cur.executemany(sql.SQL(
                "INSERT INTO {}.reconcile_chunks (mapping, seq, lo, hi, fingerprint, verified, rows, "
                "source_sum, target_sum) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)").format(table), [
                (mapping, seq, _json(lo), _json(hi), *rest) for seq, (lo, hi, *rest) in enumerate(rows)])


def _json(key: Sequence[Any] | None) -> str | None:
    return json.dumps(list(key)) if key is not None else None


def target_supports(conn: psycopg.Connection) -> bool:
    """hash_record_extended exists from PostgreSQL 14 on."""
    return conn.info.server_version >= 140000
