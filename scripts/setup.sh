#!/usr/bin/env bash
# Creates or updates .venv and installs fluxa_django with its test and chdb extras
# (chDB: embedded ClickHouse for the example project and `make demo`, no server needed).
# Installs the Debian build dependency of mysqlclient when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

need=()
dpkg -s libmariadb-dev >/dev/null 2>&1 || need+=(libmariadb-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${need[*]}"
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,chdb]' --config-settings editable_mode=compat
echo "setup: .venv ready"
