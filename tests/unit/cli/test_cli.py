"""The command line as a whole: every command registered, the version line, shell completion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def test_a_bug_ends_in_one_line_naming_the_details_file_and_exit_70(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    """No traceback reaches the operator, even for an exception no command expected."""
    def broken(path: Path) -> None:
        raise KeyError("mappings")

    monkeypatch.setattr(sys.modules["syncd.cli.run"], "load_config", broken)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    result = CliRunner().invoke(main, ["validate", "--config", str(tmp_path / "config.yaml")])
    assert result.exit_code == 70
    [line] = result.output.splitlines()
    assert line.startswith("syncd: internal error (a bug in syncd): KeyError: 'mappings'; "
                           "the details are in ")
    assert "Traceback" not in result.output
    [details] = tmp_path.glob("syncd-crash-*.txt")
    assert "Traceback" in details.read_text(encoding="utf-8")


def test_under_systemd_the_details_file_is_in_the_state_directory(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    """$STATE_DIRECTORY (systemd's StateDirectory=) outlives a restart; the unit's /tmp does not."""
    def broken(path: Path) -> None:
        raise KeyError("mappings")

    monkeypatch.setattr(sys.modules["syncd.cli.run"], "load_config", broken)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    result = CliRunner().invoke(main, ["validate", "--config", str(tmp_path / "config.yaml")])
    assert result.exit_code == 70
    [details] = (tmp_path / "state").glob("syncd-crash-*.txt")
    assert str(details) in result.output


def test_output_closed_by_its_reader_exits_141_quietly(tmp_path: Path) -> None:
    """`syncd ... | head -1`: the reader went away; no bug report, no traceback, no crash file."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write of the command fails with EPIPE
    try:
        done = subprocess.run([sys.executable, "-m", "syncd", "validate", "--help"], stdout=write_end,
                              stderr=subprocess.PIPE, env={**os.environ, "TMPDIR": str(tmp_path)},
                              timeout=60, check=False)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, b"")
    assert not list(tmp_path.glob("syncd-crash-*.txt"))


OVERLAP_CONFIG = """target: {dsn: "postgresql://syncd@127.0.0.1:1/unified"}
sources:
  shop: {host: 127.0.0.1, user: syncd, database: shop, server_id: 9}
  app: {host: 127.0.0.1, user: syncd, database: app, server_id: 10}
mappings: [mappings/]
"""

OVERLAP_MAPPING = """mappings:
  - name: {name}
    source: {source}
    table: orders
    target: orders
    key: [channel, id]
    columns:
      channel: {{value: shop}}
      id: id
"""


def test_validate_names_both_mappings_whose_slices_overlap(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(OVERLAP_CONFIG, encoding="utf-8")
    (tmp_path / "mappings").mkdir()
    shop = tmp_path / "mappings" / "a_shop.yaml"
    app = tmp_path / "mappings" / "b_app.yaml"
    shop.write_text(OVERLAP_MAPPING.format(name="shop_orders", source="shop"), encoding="utf-8")
    app.write_text(OVERLAP_MAPPING.format(name="app_orders", source="app"), encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", "--config", str(tmp_path / "config.yaml")])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(line.startswith(f"{shop}:2:5: mapping 'shop_orders' and mapping 'app_orders' write the same")
               and line.endswith(f"('app_orders' is at {app}:2)") for line in lines), lines
    assert any(line.startswith(f"{app}:2:5: mapping 'app_orders' and mapping 'shop_orders' write the same")
               and line.endswith(f"('shop_orders' is at {shop}:2)") for line in lines), lines


def test_a_person_id_that_is_no_number_is_a_usage_error(tmp_path: Path) -> None:
    config = str(tmp_path / "config.yaml")
    result = CliRunner().invoke(main, ["identity", "show", "abc", "--person", "--config", config])
    assert result.exit_code == 2
    assert "Invalid value for KEY: a person id is a whole number, got 'abc'" in result.output


@pytest.mark.parametrize("value", ["", None])
def test_an_empty_or_unset_syncd_config_means_the_default_path(value: str | None) -> None:
    result = CliRunner().invoke(main, ["validate"], env={"SYNCD_CONFIG": value})
    assert result.exit_code == 1  # validate: problems found (the file is not there)
    assert "/etc/syncd/config.yaml" in result.output, result.output


def test_validate_without_live_notes_a_secret_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "m.yaml").write_text(
        "mappings:\n  - {name: t, source: s, table: t, target: t, key: [id], columns: {id: id}}\n")
    (tmp_path / "config.yaml").write_text(
        "target: {dsn: 'postgresql://syncd@127.0.0.1:1/x', password_env: SYNCD_TEST_UNSET_PW}\n"
        "sources:\n  s: {host: 127.0.0.1, user: u, database: d, server_id: 5}\nmappings: [mappings/]\n")
    result = CliRunner().invoke(main, ["validate", "--config", str(tmp_path / "config.yaml")],
                                env={"SYNCD_TEST_UNSET_PW": None})
    assert result.exit_code == 0, result.output
    assert "note: " in result.output and "SYNCD_TEST_UNSET_PW is not set" in result.output
    assert result.output.rstrip().endswith("ok: 1 mappings in 1 files")
