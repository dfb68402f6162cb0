"""What every command shares: the one `--config` option, loading config.yaml, and the one mapping
from error classes to exit codes (docs/operations.md, "Exit codes").

    0   done: in sync, all good, nothing left
    1   done, and something is left for you: drift, problems found, dead letters still failing,
        a copy interrupted, nothing found
    2   could not do it: bad command-line usage, a server or the state schema unreachable
    70  an internal error (a bug in syncd): one line names it and the file holding the details
    141 the reader of the output went away (`syncd status | head -1`): nothing more is written
    78  config.yaml, a secret it names or a mapping file is wrong (file:line:col), or a TLS or
        login setting the server does not meet (a CA, a host name, TLS required, an
        authentication plugin): not a passing outage

A command never lets a Python traceback reach the terminal: `exits_on_errors` turns syncd's
errors into one line and their exit code, and `SafeGroup` turns anything else (a bug) into one
line naming a file that holds the traceback, for a bug report.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from syncd.config import DEFAULT_CONFIG, Config, load_config, secrets_of
from syncd.errors import (
    ConfigError,
    SourceAuthError,
    SourceTlsError,
    SyncdError,
    TargetAuthError,
    TargetTlsError,
)
from syncd.observability import SAFE_SECRET_LENGTH, get_logger, register_secret, scrub, short_secret

EXIT_OK = 0
EXIT_FOUND = 1
EXIT_ERROR = 2
EXIT_BUG = 70
EXIT_OUTPUT_CLOSED = 141
"""What a shell shows for a command stopped by SIGPIPE (128 + 13): the reader closed the pipe."""
EXIT_CONFIG = 78
_PASSED_THROUGH = (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort)


class SafeGroup(click.Group):
    """The `syncd` group: an exception no command expected ends in one line and exit 70."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _PASSED_THROUGH:
            raise
        except BrokenPipeError:
            output_closed()
        except Exception as exc:
            crashed(exc)


def output_closed() -> NoReturn:
    """The reader of the output went away: stop quietly, as a command killed by SIGPIPE would
    (the interpreter's last flush goes nowhere instead of failing again)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(EXIT_OUTPUT_CLOSED)


def crashed(exc: Exception) -> NoReturn:
    """Write the traceback to a file (scrubbed of secrets), print one line naming it, exit 70.

    The file goes into systemd's StateDirectory (`$STATE_DIRECTORY`, /var/lib/syncd) when there
    is one, where it outlives the restart: the unit's private /tmp goes with the unit."""
    details = "".join(traceback.format_exception(exc))
    kept = os.environ.get("STATE_DIRECTORY", "").split(":")[0] or None
    try:
        with tempfile.NamedTemporaryFile("w", prefix="syncd-crash-", suffix=".txt", delete=False,
                                         encoding="utf-8", dir=kept) as out:
            out.write(scrub(details))
        where = f"the details are in {out.name}"
    except OSError:
        where = "the details could not be written to a file"
    message = scrub(f"{type(exc).__name__}: {exc}".splitlines()[0])[:300]
    click.echo(f"syncd: internal error (a bug in syncd): {message}; {where} (please report them)",
               err=True)
    sys.exit(EXIT_BUG)


def config_option(func: Any) -> Any:
    """`--config PATH`, defaulting to $SYNCD_CONFIG, then /etc/syncd/config.yaml. The file is read
    by syncd itself, so that a missing or unreadable one is a configuration error (78)."""
    return click.option(
        "--config", "config_path", type=click.Path(path_type=Path, readable=False),
        default=lambda: os.environ.get("SYNCD_CONFIG") or DEFAULT_CONFIG,  # set but empty: unset
        show_default="$SYNCD_CONFIG or " + DEFAULT_CONFIG, help="Path of config.yaml.")(func)


def fail(exc: SyncdError) -> NoReturn:
    """Print an error the way every command does, and exit with its class's code."""
    if isinstance(exc, ConfigError):
        click.echo(str(exc), err=True)
        sys.exit(EXIT_CONFIG)
    click.echo(scrub(f"syncd: {exc}"), err=True)
    settings = SourceTlsError | SourceAuthError | TargetTlsError | TargetAuthError
    sys.exit(EXIT_CONFIG if isinstance(exc, settings) else EXIT_ERROR)


@contextmanager
def exits_on_errors() -> Iterator[None]:
    """Inside: a ConfigError exits 78 with its problems, a TLS failure 78 with its message, any
    other SyncdError exits 2."""
    try:
        yield
    except SyncdError as exc:
        fail(exc)


def load(config_path: Path, *, sources: bool = True) -> Config:
    """config.yaml, with every secret it names readable (exit 78 naming the variable or file
    otherwise; with `sources` False, the target's alone: a command that reads only the state
    schema runs on a host without the sources' passwords); the secrets are registered so that
    no log line ever shows them."""
    with exits_on_errors():
        config = load_config(config_path)
        needed = secrets_of(config) if sources else [config.target.password]
        problems = [p for secret in needed if (p := secret.problem()) is not None]
        if problems:
            raise ConfigError(problems)
    for secret in secrets_of(config):
        if secret.problem() is None:
            register_secret(secret.read())
    register_secret(os.environ.get("PGPASSWORD"))
    return config


def warn_about_secrets(config: Config) -> None:
    """Log, once at start, what is unsafe about the secrets but does not stop syncd."""
    log = get_logger()
    for secret in secrets_of(config):
        warning = secret.warning()
        if warning:
            log.warning("secret_file_readable", detail=warning)
        if short_secret(secret.read()):
            log.warning("secret_too_short", owner=secret.owner, secret=secret.describe(),
                        detail=f"shorter than {SAFE_SECRET_LENGTH} characters: logs hide it only where it "
                               "stands as a whole word; use a longer password")
