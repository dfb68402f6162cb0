"""The command line as a whole: every command registered, the version line, shell completion."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from syncd.cli import main

COMMANDS = {"run", "validate", "status", "preview", "dlq", "reconcile", "snapshot", "identity"}


def test_every_command_is_registered() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert set(result.output.split()) >= COMMANDS


def test_version_names_the_c_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_DECODER", "python")
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    first, second = result.output.splitlines()
    assert first.startswith("syncd, version ")
    assert second.startswith("C parts: row decoder ") and "COPY text of datetimes" in second
    assert "in use" not in second.split(";")[0]  # SYNCD_DECODER=python turns the row decoder off


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete -o nosort -F"), ("zsh", "#compdef syncd")])
def test_shell_completion_scripts(shell: str, marker: str) -> None:
    """The documented `_SYNCD_COMPLETE=<shell>_source syncd` prints a completion script."""
    result = CliRunner().invoke(main, [], prog_name="syncd", env={"_SYNCD_COMPLETE": f"{shell}_source"})
    assert result.exit_code == 0
    assert marker in result.output


def test_completion_offers_commands_and_options() -> None:
    env = {"_SYNCD_COMPLETE": "bash_complete", "COMP_WORDS": "syncd re", "COMP_CWORD": "1"}
    result = CliRunner().invoke(main, [], prog_name="syncd", env=env)
    assert "plain,reconcile" in result.output.splitlines()
