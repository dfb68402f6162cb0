"""systemd/syncd.service: required settings (always) and systemd-analyze (when installed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "syncd.service"
MAX_EXPOSURE = 2.5
ANALYZE = shutil.which("systemd-analyze")


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value given (systemd allows repeating a key)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert not line.endswith("\\"), f"line {number}: no continuation lines, please"
        assert current is not None, f"line {number}: setting outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"line {number}: not KEY=value: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


REQUIRED_SERVICE = {
    "Type": ["notify"],
    "NotifyAccess": ["main"],
    "ExecStart": ["/opt/syncd/.venv/bin/syncd run --config /etc/syncd/config.yaml"],
    "ExecReload": ["/bin/kill -HUP $MAINPID"],
    "WatchdogSec": ["30"],
    "Restart": ["on-failure"],
    "RestartSec": ["5"],
    "RestartPreventExitStatus": ["78"],
    "TimeoutStopSec": ["45"],
    "User": ["syncd"],
    "Group": ["syncd"],
    "EnvironmentFile": ["-/etc/syncd/syncd.env"],
    "ConfigurationDirectory": ["syncd"],
    "StateDirectory": ["syncd"],
    "UMask": ["0077"],
    # hardening
    "NoNewPrivileges": ["yes"],
    "ProtectSystem": ["strict"],
    "ProtectHome": ["yes"],
    "PrivateTmp": ["yes"],
    "PrivateDevices": ["yes"],
    "CapabilityBoundingSet": [""],
    "AmbientCapabilities": [""],
    "RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"],
    "SystemCallFilter": ["@system-service", "~@privileged @resources"],
    "SystemCallArchitectures": ["native"],
    "ProtectKernelTunables": ["yes"],
    "ProtectKernelModules": ["yes"],
    "ProtectKernelLogs": ["yes"],
    "ProtectControlGroups": ["yes"],
    "ProtectClock": ["yes"],
    "ProtectHostname": ["yes"],
    "ProtectProc": ["invisible"],
    "ProcSubset": ["pid"],
    "RestrictNamespaces": ["yes"],
    "RestrictRealtime": ["yes"],
    "RestrictSUIDSGID": ["yes"],
    "LockPersonality": ["yes"],
    "MemoryDenyWriteExecute": ["yes"],
    "PrivateUsers": ["yes"],
    "RemoveIPC": ["yes"],
    "DevicePolicy": ["closed"],
    "KeyringMode": ["private"],
}


def test_unit_has_the_required_settings(unit: dict[str, dict[str, list[str]]]) -> None:
    assert set(unit) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    wrong = {
        key: service.get(key)
        for key, expected in REQUIRED_SERVICE.items()
        if service.get(key) != expected
    }
    assert wrong == {}, f"settings missing or different from {REQUIRED_SERVICE}"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert "network-online.target" in unit["Unit"]["After"][0]


def test_unit_keeps_secrets_out_and_stops_after_syncd_would(
    unit: dict[str, dict[str, list[str]]],
) -> None:
    service = unit["Service"]
    for values in service.get("Environment", []):
        assert not re.search(r"(?i)password|secret", values), values
    # syncd's shutdown_timeout is 30 s; systemd must wait longer before SIGKILL
    assert int(service["TimeoutStopSec"][0]) > 30
    # the watchdog beat (half of WatchdogSec) must be well under the limit
    assert int(service["WatchdogSec"][0]) >= 10
    # nothing may reopen what the hardening closed (last assignment wins in systemd)
    for key in ("CapabilityBoundingSet", "AmbientCapabilities"):
        assert service[key][-1] == ""
    assert not any(key.startswith("IPAddress") for key in service), "DBs are usually remote"


def analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    env = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "LC_ALL": "C.UTF-8"}
    return subprocess.run(
        [ANALYZE, "--no-pager", *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart's program replaced by /bin/true (syncd is not installed
    here, and verify rightly complains about a missing executable); all else identical."""
    text = UNIT.read_text(encoding="utf-8")
    text, count = re.subn(r"(?m)^ExecStart=\S+", "ExecStart=/bin/true", text)
    assert count == 1
    copy = tmp_path / "syncd.service"
    copy.write_text(text, encoding="utf-8")
    return copy


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed on this machine")
def test_systemd_analyze_verify_is_clean(unit_copy: Path) -> None:
    result = analyze("verify", str(unit_copy), cwd=unit_copy.parent)
    # verify exits 0 even for unknown keys or unparsable values: any output is a failure
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
    assert result.stderr.strip() == ""


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed on this machine")
def test_systemd_analyze_security_exposure(unit_copy: Path) -> None:
    result = analyze("security", "--offline=true", str(unit_copy), cwd=unit_copy.parent)
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for syncd\.service: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout + result.stderr
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, result.stdout
