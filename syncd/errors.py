"""Every error syncd raises on purpose.

    SyncdError                  base; carries context as attributes, renders it in str()
    ├── ConfigError             config or mapping file is wrong; lists every problem (file:line:col)
    ├── SourceError
    │   ├── SourceUnavailable   connection lost or refused (retriable)
    │   ├── SourceSettingsError a server variable syncd needs is wrong (names variable and fix)
    │   ├── PositionLost        the binlog the checkpoint needs was purged (re-snapshot)
    │   │   └── ContinuityLost  the binlog at the checkpoint is not the one it came from (re-snapshot)
    │   └── StreamError         the stream holds something syncd refuses to guess about
    ├── TransformError          one value could not be converted (becomes a dead letter)
    ├── SinkError
    │   ├── SinkUnavailable     PostgreSQL connection lost (retriable)
    │   └── TargetSchemaError   target table/column/key missing or unusable
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


class PositionLost(SourceError):
    """The checkpoint's binlog is gone from the server; only a new snapshot helps."""


class ContinuityLost(PositionLost):
    """The server's binlog at the checkpoint is not the history the checkpoint came from (binlogs
    reset, a restore, another server); resuming there would skip or repeat changes silently."""


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


class SinkError(SyncdError):
    pass


class SinkUnavailable(SinkError):
    retriable = True


class TargetSchemaError(SinkError):
    pass


class StateError(SyncdError):
    pass
