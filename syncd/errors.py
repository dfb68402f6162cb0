"""Every error syncd raises on purpose.

    SyncdError                  base; carries context as attributes, renders it in str()
    ├── ConfigError             config or mapping file is wrong; lists every problem (file:line:col)
    ├── SourceError
    │   ├── SourceUnavailable   connection lost or refused (retriable)
    │   ├── SourceSettingsError a server variable syncd needs is wrong (names variable and fix)
    │   │   └── SourceTlsError  TLS to the source failed: certificate, host name, no TLS offered
    │   ├── PositionLost        the binlog the checkpoint needs was purged (re-snapshot)
    │   └── StreamError         the stream holds something syncd refuses to guess about
    ├── TransformError          one value could not be converted (becomes a dead letter)
    │   └── UndecodableText     text bytes the source server itself cannot convert (charsets.py)
    ├── SinkError
    │   ├── SinkUnavailable     PostgreSQL connection lost (retriable)
    │   ├── TargetSchemaError   target table/column/key missing or unusable
    │   └── TargetTlsError      TLS to the target failed: certificate, host name, no TLS offered
    └── StateError              syncd's own state schema is missing or inconsistent

Driver exceptions (pymysql, psycopg) are translated once, where the driver is called.
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


class PositionLost(SourceError):
    """The checkpoint's binlog is gone from the server; only a new snapshot helps."""


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


class SinkUnavailable(SinkError):
    retriable = True


class TargetSchemaError(SinkError):
    pass


class TargetTlsError(SinkError):
    """TLS to the target failed for a reason waiting does not cure (see SourceTlsError); the
    message names the parameter of `target.dsn` to fix (syncd/sink/postgres.py)."""


class StateError(SyncdError):
    pass
