"""Every error syncd raises on purpose.

    SyncdError                  base; carries context as attributes, renders it in str()
    ├── ConfigError             config or mapping file is wrong; lists every problem (file:line:col)
    ├── TransformArgsError      a transform or identity salt in a mapping cannot be built
    │   └── IdentityArgsError   ... an identity space's salt (where: its declaration)
    ├── SourceError
    │   ├── SourceUnavailable   connection lost or refused (retriable)
    │   │   ├── DecoderCrashed  the decoder process died (retried from the checkpoint)
    │   │   └── ServerIdInUse   another binlog reader with syncd's server_id ended the stream
    │   ├── SourceSettingsError a server variable syncd needs is wrong (names variable and fix)
    │   │   ├── SourceTlsError  TLS to the source failed: certificate, host name, no TLS offered
    │   │   ├── SourceAuthError the login cannot work as configured (plugin, RSA, secure transport)
    │   │   └── MissingGrant    the source user lacks a privilege (names it and the GRANT to run)
    │   ├── PositionLost        the binlog the checkpoint needs was purged (re-snapshot)
    │   │   └── ContinuityLost  the binlog at the checkpoint is not the one it came from (re-snapshot)
    │   ├── StreamError         the stream holds something syncd refuses to guess about
    │   ├── NoPrimaryKey        a table has no primary key and the mapping names no source_key
    │   └── UnusableSourceKey   a mapping's source_key is not a unique NOT NULL key
    ├── TransformError          one value could not be converted (becomes a dead letter)
    │   ├── MissingSourceColumn a mapped column is absent from the row (dropped or renamed)
    │   └── UndecodableText     text bytes the source server itself cannot convert (charsets.py)
    ├── SinkError
    │   ├── SinkUnavailable     PostgreSQL connection lost (retriable)
    │   ├── RowsRejected        PostgreSQL refused rows of a bulk write (they are retried one by one)
    │   └── TargetTlsError      TLS to the target failed: certificate, host name, no TLS offered
    ├── ReconcileError          unknown mapping or source, or a mapping that cannot be reconciled
    │   └── Stopped             a pass was stopped before the end of its table
    ├── SnapshotError           a copy cannot run (e.g. a table without a usable key)
    ├── RepairError             a repair failed, or the daemon did not apply it in time
    ├── DeadLetterError         a dead letter cannot be read back (its key) or retried
    └── PreviewError            preview cannot run: a --where the source refuses

Driver exceptions (pymysql, psycopg) are translated once, where the driver is called. The command
line turns every class into one line and an exit code: ConfigError, TransformArgsError,
SourceTlsError, SourceAuthError and TargetTlsError 78, the others 2 (syncd/cli/options.py).
"""

from __future__ import annotations

from dataclasses import dataclass


class SyncdError(Exception):
    """Base class; subclasses add context fields that str() renders."""

    retriable: bool = False


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file, pointed at precisely."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class ConfigError(SyncdError):
    """The config or a mapping file is wrong; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class TransformArgsError(SyncdError, ValueError):
    """A transform name or argument in a mapping is wrong; the message says what is accepted.

    `place` is where the mapping file names it and `context` what it is part of (`column
    'amount'`), once the compiler knows them (`at`)."""

    place: Problem | None = None
    context: str = ""

    def at(self, place: Problem, context: str) -> TransformArgsError:
        self.place, self.context = place, context
        return self

    def problem(self, prefix: str) -> Problem | None:
        """This error as a problem at its place (None while the place is unknown)."""
        if self.place is None:
            return None
        context = f"{self.context}: " if self.context else ""
        return Problem(self.place.file, self.place.line, self.place.column, f"{prefix}{context}{self}")


class IdentityArgsError(TransformArgsError):
    """An identity space cannot be compiled (its salt cannot be read); its place is its declaration."""

    def __init__(self, message: str, place: Problem) -> None:
        super().__init__(message)
        self.place = place


class SourceError(SyncdError):
    def __init__(self, source: str, message: str) -> None:
        self.source = source
        self.message = message
        super().__init__(f"source {source}: {message}")

    def __reduce__(self) -> tuple:
        # Pickled across the decoder process (syncd.source.decoder_process) with its own arguments.
        return type(self), (self.source, self.message)


class SourceUnavailable(SourceError):
    retriable = True


class SourceSettingsError(SourceError):
    """A server setting is wrong; message says which variable and how to fix it."""


class SourceTlsError(SourceSettingsError):
    """The source's TLS settings and its server do not agree (a CA that did not sign the
    server's certificate, a name the certificate does not carry, a server without TLS where
    TLS is required). Not retried: waiting does not change a certificate; the message names
    the setting to fix (syncd/source/connection.py)."""


class SourceAuthError(SourceSettingsError):
    """The source refuses syncd's login for a reason waiting does not cure: full
    caching_sha2_password authentication over plain TCP without the RSA support it needs, an
    account on a plugin the server no longer loads, plain TCP where the server requires TLS. The
    message names the fix (syncd/source/connection.py)."""


class ServerIdInUse(SourceUnavailable):
    """A binlog dump with syncd's `server_id` ended syncd's stream: another replica or reader
    with the same id (the message names the setting to change), or a connection of syncd's own
    that the server had not yet seen go. Retried like a lost connection: in the first case the
    log shows the two readers taking turns, with the reason."""


class MissingGrant(SourceSettingsError):
    """The server refused something for want of a privilege (e.g. the binlog stream without
    REPLICATION SLAVE). Not retried: waiting grants nothing; the message names the privilege and
    the GRANT to run (`syncd validate --live` names the exact user@host)."""


class PositionLost(SourceError):
    """The checkpoint's binlog is gone from the server; only a new snapshot helps."""


class ContinuityLost(PositionLost):
    """The server's binlog at the checkpoint is not the history the checkpoint came from (binlogs
    reset, a restore, another server); resuming there would skip or repeat changes silently."""


class DecoderCrashed(SourceUnavailable):
    """The decoder process died or failed unexpectedly (its traceback is in the message); the
    runner retries from the checkpoint, as after a lost connection."""


class NoPrimaryKey(SourceError):
    """A table without a primary key (and no `source_key`) cannot be copied or matched row by row."""


class UnusableSourceKey(SourceError):
    """A mapping's `source_key` is not (or no longer) a unique NOT NULL key of its table."""


class StreamError(SourceError):
    """The binlog holds something syncd will not guess about (MINIMAL image, compressed event...)."""

    def __init__(self, source: str, message: str, position: str) -> None:
        self.position = position
        self.detail = message
        super().__init__(source, f"{message} (at {position})")

    def __reduce__(self) -> tuple:
        return type(self), (self.source, self.detail, self.position)


class TransformError(SyncdError):
    """A value could not be mapped; the row change becomes a dead letter with this reason."""

    def __init__(self, reason: str, column: str | None = None) -> None:
        self.reason = reason
        self.column = column
        super().__init__(f"column {column}: {reason}" if column else reason)


class MissingSourceColumn(TransformError):
    """A mapped source column is absent from the row image (dropped or renamed at the source)."""


class UndecodableText(TransformError):
    """Bytes of a text value that the source server itself cannot convert to Unicode (its
    CONVERT gives `?`): syncd never guesses a character, the change becomes a dead letter.

    `hex_bytes`: the bytes that cannot be converted, at byte `offset` of the value; `value_hex`:
    the whole value (its first 64 bytes), when known."""

    def __init__(self, charset: str, hex_bytes: str, offset: int = 0, column: str | None = None,
                 value_hex: str | None = None) -> None:
        self.charset = charset
        self.hex_bytes = hex_bytes
        self.offset = offset
        self.value_hex = value_hex
        value = f"{charset} value X'{value_hex.upper()}': " if value_hex is not None else ""
        super().__init__(f"{value}{charset} bytes X'{hex_bytes.upper()}' at byte {offset} cannot be "
                         "converted to text (the source server cannot convert them either): fix the "
                         "value at the source, or declare the column binary and map it into bytea; "
                         "then `syncd dlq retry`", column)

    def __reduce__(self) -> tuple:
        return type(self), (self.charset, self.hex_bytes, self.offset, self.column, self.value_hex)


class SinkError(SyncdError):
    pass


class RowsRejected(SinkError):
    """PostgreSQL refused rows of a bulk write (a constraint, a value it cannot store); `reason`
    says why. The rows go through the mapping one by one instead, so each refusal is its own."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class SinkUnavailable(SinkError):
    retriable = True


class TargetAuthError(SinkUnavailable):
    """The target refuses syncd's login: a wrong password, no pg_hba.conf entry, an unknown role
    or database. Retried while running (the fix may come from the DBA's side), but a command or a
    start that meets it exits 78 like any configuration error (systemd then does not restart
    syncd in a loop)."""


class TargetTlsError(SinkError):
    """TLS to the target failed for a reason waiting does not cure (see SourceTlsError); the
    message names the parameter of `target.dsn` to fix (syncd/sink/postgres.py)."""


class ReconcileError(SyncdError):
    """Bad arguments (unknown mapping or source) or a mapping that cannot be reconciled."""


class Stopped(ReconcileError):
    """The stop event was set during a pass."""


class SnapshotError(SyncdError):
    """A copy cannot run: a table without a usable key, a source that cannot be read."""


class RepairError(SyncdError):
    """A repair failed, or the running daemon did not apply it in time (it stays queued)."""


class DeadLetterError(SyncdError):
    """A dead letter cannot be retried: its row key cannot be read back from its image."""


class PreviewError(SyncdError):
    """Preview cannot run: the source refused the --where condition."""

