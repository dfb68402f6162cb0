"""The `syncd` command line — the only place that knows click.

Each command parses its options, calls one function of the layers below, renders what comes
back (syncd/cli/render.py) and turns syncd's errors into one line and an exit code by their
class (syncd/cli/options.py). Commands import their machinery inside their functions, so that
`syncd --help` and shell completion stay fast.
"""

from __future__ import annotations

from importlib.metadata import version

import click

from syncd.cli.dlq import dlq
from syncd.cli.identity import identity
from syncd.cli.options import SafeGroup
from syncd.cli.preview import preview
from syncd.cli.reconcile import reconcile, snapshot
from syncd.cli.run import run, status, validate
from syncd.observability import tune_gc


def _native_parts() -> str:
    """Which optional C parts this installation runs (built by pip when a compiler was there)."""
    from syncd.sink import postgres
    from syncd.source import fastpath

    def state(built: bool, used: bool) -> str:
        return "in use" if used else ("built, turned off by SYNCD_DECODER" if built else "not built")

    row = state(fastpath._rowimage is not None, fastpath.native_enabled())
    text = state(postgres.timestamp_text is not None, postgres.timestamp_text is not None)
    return f"C parts: row decoder {row}; COPY text of datetimes {text}"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(f"syncd, version {version('syncd')}\n{_native_parts()}")
    ctx.exit()


@click.group(cls=SafeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and which C parts are in use, and exit.")
def main() -> None:
    """syncd: stream MySQL/MariaDB binlogs into PostgreSQL through declarative mappings."""
    tune_gc()


for _command in (run, validate, status, preview, dlq, reconcile, snapshot, identity):
    main.add_command(_command)
