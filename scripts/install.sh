#!/usr/bin/env bash
# Installs what `make test`, `make demo` and `make bench` need on Debian 12, as root:
# a C compiler and the Python headers (for the C row decoder), the MariaDB and PostgreSQL 15
# server binaries (the packaged services are never used: devtools.sandbox starts its own
# throwaway servers), Prometheus for its promtool (checks and unit-tests the alert rules in
# monitoring/; the packaged Prometheus service is never started or used), then the project's
# virtualenv and its compiled bytecode, and beside it the linters' own virtualenv (their
# dependencies, such as rich, would otherwise be imported by syncd's and change what `make bench`
# measures of a user's install).
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.installed"
LINT_VENV=.venv-lint
APT_UPDATED=0

apt_install() {
    if [ "$APT_UPDATED" = 0 ]; then
        apt-get update
        APT_UPDATED=1
    fi
    # A policy-rc.d that answers 101 keeps the packages' services from starting; one that
    # is already there (as in containers) is left alone.
    local policy=/usr/sbin/policy-rc.d
    if [ -e "$policy" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
    else
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" \
            || { rm -f "$policy"; return 1; }
        rm -f "$policy"
    fi
}

has_mariadbd() {
    command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]
}

has_python_headers() {
    python3 -c 'import os, sysconfig; raise SystemExit(not os.path.exists(
        os.path.join(sysconfig.get_paths()["include"], "Python.h")))'
}

system_packages() {
    local wanted=()
    has_mariadbd || wanted+=(mariadb-server)
    [ -x /usr/lib/postgresql/15/bin/initdb ] || wanted+=(postgresql-15)
    command -v promtool >/dev/null 2>&1 || wanted+=(prometheus)
    # The C row decoder (syncd/source/_rowimage.c) is built by pip; without a compiler syncd
    # still works, decoding in Python.
    command -v gcc >/dev/null 2>&1 || wanted+=(gcc)
    has_python_headers || wanted+=(python3-dev)
    if [ "${#wanted[@]}" -gt 0 ]; then
        echo "install.sh: installing ${wanted[*]}"
        apt_install "${wanted[@]}"
    fi
    if [[ " ${wanted[*]} " == *" prometheus "* ]]; then
        # Only promtool is wanted; the package enables its service, which must not start at
        # the next boot either.
        systemctl disable --quiet prometheus.service
    fi
}

virtualenv() {
    if [ ! -x "$VENV/bin/pip" ]; then
        rm -rf "$VENV"
        # Debian's own python3 makes venvs only with python3-venv installed.
        if ! python3 -m venv "$VENV"; then
            rm -rf "$VENV"
            apt_install python3-venv
            python3 -m venv "$VENV"
        fi
    fi
    if [ -e "$STAMP" ] && [ "$STAMP" -nt setup.cfg ] && [ "$STAMP" -nt pyproject.toml ] \
            && [ "$STAMP" -nt setup.py ] && [ "$STAMP" -nt syncd/source/_rowimage.c ] \
            && [ "$STAMP" -nt syncd/sink/_pgtext.c ]; then
        return 0
    fi
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e '.[test]'
    touch "$STAMP"
}

lint_virtualenv() {
    if [ -e "$LINT_VENV/.installed" ] && [ "$LINT_VENV/.installed" -nt setup.cfg ]; then
        return 0
    fi
    rm -rf "$LINT_VENV"
    python3 -m venv "$LINT_VENV"
    # The linters are listed once, as setup.cfg's `lint` extra; syncd itself is not installed here.
    mapfile -t tools < <(python3 -c 'import configparser as c; p = c.ConfigParser(); p.read("setup.cfg")
print(p["options.extras_require"]["lint"].strip())')
    "$LINT_VENV/bin/python" -m pip install --quiet "${tools[@]}"
    touch "$LINT_VENV/.installed"
}

# Bytecode compiled here, each time (only changed modules are): where Python may not write it
# (PYTHONDONTWRITEBYTECODE, a read-only install, a service's sandbox) every start of syncd would
# compile all its modules again, a fifth of a second of `syncd run`'s start-up here.
bytecode() {
    "$VENV/bin/python" -m compileall -q syncd >/dev/null
}

system_packages
virtualenv
lint_virtualenv
bytecode
