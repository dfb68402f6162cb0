"""The names syncd's generated SQL introduces for itself, and the rules that keep them apart from
the user's names.

syncd writes SQL around tables and columns that DBAs name, and needs a few names of its own:
table aliases, a CTE, derived tables, column aliases, temporary tables. Any of them may also be
the name of a user's column, and PostgreSQL resolves a bare name to a column of a FROM item
before a table alias ("simple names are matched to column names before table names",
PostgreSQL docs 8.16.5): `hash_record_extended(t, 0) FROM (...) t` hashes the *column* t when
there is one. So the SQL builders follow four rules:

1. every name syncd introduces is one of the constants below, all in the reserved namespace
   `syncd_`; a builder never invents another;
2. a syncd name is never written bare where a user column could be meant: columns are qualified
   by their alias wherever two relations are in scope, and a whole row is `alias.*`, which
   names the relation whatever the columns are called;
3. the table an `INSERT ... ON CONFLICT` writes is aliased `TARGET`, so that `EXCLUDED` means the
   proposed row even in a table named `excluded` (PostgreSQL: "table reference is ambiguous");
4. temporary tables are written schema-qualified (`pg_temp.`), so that a user table of the same
   name earlier on the search path is never meant;
5. every identifier is written by `pg_name` or `my_name`, which also keep a `%` in a name from
   being read as a parameter placeholder: the drivers read `%` in a statement with parameters
   (psycopg in any statement it is given parameters for, PyMySQL by Python's `%` formatting).

Under these rules a user name equal to a reserved one is harmless as well (the integration test
tests/integration/test_reserved_names.py maps columns named like each); the prefix keeps syncd's
own names recognisable, so that tests/unit/test_sqlnames.py can check that no builder introduces
any other.
"""

from __future__ import annotations

RESERVED_PREFIX = "syncd_"

TARGET = "syncd_target"
"""PostgreSQL: alias of the table a statement writes when a second relation is in scope."""
STAGED = "syncd_staged"
"""PostgreSQL: CTE of the rows a staged group takes out of its staging table."""
ROW = "syncd_row"
"""PostgreSQL: the subquery whose whole rows are hashed (`syncd_row.*`)."""
HASH = "syncd_hash"
"""Both servers: column alias of one row's hash."""
HASHED = "syncd_hashed"
"""Both servers: derived table of row hashes."""
STAGE_PREFIX = "syncd_stage_"
"""PostgreSQL: temporary staging tables, one per statement shape (prefix of a digest)."""


def pg_ident(*parts: str) -> str:
    """A PostgreSQL identifier (`name`, `schema.table`, `alias.column`) as quoted SQL text.

    A part holding `%` is written as a Unicode-escaped identifier (`U&"rate\\0025"`, PostgreSQL
    docs 4.1.1), so that no `%` reaches psycopg, which parses `%` in any statement executed with
    parameters and would refuse `"rate%"` as a bad placeholder. The sink wraps this text for
    psycopg's composition (syncd/sink/statements.py `pg_name`)."""
    return ".".join(_escaped(p) if "%" in p else '"' + p.replace('"', '""') + '"' for p in parts)


def _escaped(name: str) -> str:
    """`U&"..."` with the escape character `\\` doubled, `"` doubled and `%` as `\\0025`."""
    return 'U&"' + name.replace("\\", "\\\\").replace('"', '""').replace("%", "\\0025") + '"'


def my_name(name: str) -> str:
    """A MySQL identifier, quoted, for a statement executed with parameters (every statement
    syncd builds for a source is: PyMySQL then reads `%%` as `%`)."""
    return "`" + name.replace("`", "``").replace("%", "%%") + "`"


def reserved_names() -> tuple[str, ...]:
    """Every name (or name prefix) syncd introduces into SQL around user tables."""
    return (TARGET, STAGED, ROW, HASH, HASHED, STAGE_PREFIX)


def sums_text(row: tuple | None) -> str:
    """`count:sum1:sum2` with integer text, whatever numeric types the server returned."""
    assert row is not None
    return ":".join(str(int(v)) for v in row)
