"""A regular (non-editable) install of syncd, done exactly as docs/operations.md §2.3 tells a
sysadmin, then used for real: `--version`, `validate` and a short `syncd run` against throwaway
servers, all with the installed copy (never this checkout).

The sdist and the wheel are built from this checkout the way `make dist` builds them (the wheel
from the sdist, so a file missing from the sdist breaks the wheel too). The wheel is installed as
built (with the C parts); the sdist is installed with a C compiler that always fails, as on a
host without gcc, where the C parts are optional.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from tests.helpers import eventually
from tests.integration.scenario import SHOP_ORDERS_MAPPING, SHOP_ORDERS_SQL, Scenario, Source

REPO = Path(__file__).resolve().parents[2]
OPERATIONS = REPO / "docs" / "operations.md"
STEPS_MARKER = "<!-- install-steps -->"

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Artifacts:
    sdist: Path
    wheel: Path


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
                           capture_output=True, text=True, check=False, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (sdist,) = out.glob("syncd-*.tar.gz")
    (wheel,) = out.glob("syncd-*.whl")
    return Artifacts(sdist, wheel)


def test_the_sdist_holds_the_files_the_host_setup_copies(artifacts: Artifacts) -> None:
    """Steps 3 to 5 of §2.3 copy the example configuration, mappings, the unit and its
    environment file, and the monitoring files: a host without a checkout takes them from the sdist."""
    with tarfile.open(artifacts.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    wanted = {"config.example.yaml", "mappings/shop.yaml", "systemd/syncd.service",
              "systemd/syncd.env.example", "monitoring/prometheus/syncd-alerts.yml", "docs/operations.md"}
    assert wanted <= names, sorted(wanted - names)


def install_steps() -> list[str]:
    """The shell lines of the block that follows the install-steps marker in operations.md."""
    text = OPERATIONS.read_text()
    after = text.split(STEPS_MARKER, 1)[1]
    block = re.search(r"```sh\n(.*?)```", after, re.S)
    assert block is not None, f"{OPERATIONS}: no ```sh block after {STEPS_MARKER}"
    return block.group(1).splitlines()


def follow_docs(prefix: Path, artifact: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the documented steps with /opt/syncd under `prefix` and ARTIFACT set to `artifact`.

    The `apt-get` line is the only one left out: it installs Debian packages this machine has
    already (the suite never changes the machine's own packages while it runs)."""
    steps = [line for line in install_steps() if not line.startswith("apt-get ")]
    opt = str(prefix)
    lines = [f"ARTIFACT={artifact}" if line.startswith("ARTIFACT=") else line.replace("/opt/syncd", opt)
             for line in steps]
    script = "set -euo pipefail\n" + "\n".join(lines)
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, cwd=prefix.parent,
                          check=False, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def installed_files(syncd: Path) -> list[str]:
    """Every file pip installed for the syncd distribution, as its RECORD lists them."""
    python = syncd.parent / "python"
    listing = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print('\\n'.join(map(str, m.files('syncd'))))"],
        capture_output=True, text=True, check=True, cwd=syncd.parent)
    return listing.stdout.split()


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a shell that never saw this checkout or its virtualenv."""
    return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
            "LANG": "C.UTF-8", **extra}


@pytest.mark.parametrize("kind", ["wheel", "sdist without a C compiler"])
def test_documented_install_runs(kind: str, artifacts: Artifacts, tmp_path: Path, mariadb: MariaDBServer,
                                 postgres: PostgresServer, source_db, target_db: str) -> None:
    python_dir = str(Path(sys.base_prefix) / "bin")
    if kind == "wheel":
        env = clean_env(PATH=f"{python_dir}:{clean_env()['PATH']}")
        artifact = artifacts.wheel
    else:  # a compiler that always fails: the optional C parts are left out, the install goes on
        env = clean_env(PATH=f"{python_dir}:{clean_env()['PATH']}", CC="/bin/false", CXX="/bin/false")
        artifact = artifacts.sdist
    prefix = tmp_path / "opt" / "syncd"
    prefix.mkdir(parents=True)
    done = follow_docs(prefix, artifact, env)
    syncd = prefix / ".venv" / "bin" / "syncd"

    assert "syncd, version 0.1.0" in done.stdout
    expected = "row decoder in use" if kind == "wheel" else "row decoder not built"
    assert expected in done.stdout, done.stdout

    files = installed_files(syncd)
    for package in ("syncd/source/", "syncd/sink/", "syncd/mapping/", "syncd/reconcile/"):
        assert any(f.startswith(package) for f in files), f"{package} not installed"
    test_only = [f for f in files if re.search(r"(^|/)(tests?|devtools|sandbox)(/|\.py)", f)]
    assert not test_only, f"test-only modules installed: {test_only}"

    shop = Source("shop", mariadb, source_db(mariadb))
    shop.execute(SHOP_ORDERS_SQL, "INSERT INTO orders (order_no, phone, status, amount_text) "
                                  "VALUES ('A1', '13812345678', '已支付', '100元')")
    scenario = Scenario.create(tmp_path, postgres, target_db, {"shop": shop})
    scenario.program, scenario.cwd = (str(syncd),), tmp_path
    scenario.write_config(SHOP_ORDERS_MAPPING)

    validated = scenario.cli("validate")
    assert validated.returncode == 0, validated.stdout + validated.stderr

    process = scenario.start()
    try:
        eventually(lambda: scenario.target("SELECT order_no, buyer_phone, status, amount FROM orders")
                   == [("A1", "138****5678", 1, 100)], timeout=60)
        shop.execute("INSERT INTO orders (order_no, status, amount_text) VALUES ('A2', '待支付', '5元')")
        eventually(lambda: len(scenario.target("SELECT 1 FROM orders")) == 2, timeout=30)
        assert scenario.stop(process) == 0
    finally:
        scenario.close()
    assert "Traceback" not in scenario.log_text()
    imported = subprocess.run([str(syncd.parent / "python"), "-c", "import syncd; print(syncd.__file__)"],
                              capture_output=True, text=True, check=True, cwd=tmp_path, env=env)
    assert imported.stdout.startswith(str(prefix)), imported.stdout
