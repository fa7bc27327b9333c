#!/usr/bin/env bash
# Create the venv with Python >= 3.11, installing Debian's venv support when it is missing.
set -euo pipefail
PYTHON=$1
VENV=$2
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  for candidate in python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null; then PYTHON=$candidate; break; fi
  done
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "[python] hookpost needs Python >= 3.11; found $("$PYTHON" --version 2>&1)" >&2
  exit 1
}
[ -x "$VENV/bin/python" ] && exit 0
if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[python] installing Debian's python3-venv"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
  else
    echo "[python] '$PYTHON -m venv' failed: install your distribution's python3-venv" >&2
    exit 1
  fi
fi
