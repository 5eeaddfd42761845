#!/usr/bin/env bash
# Creates (idempotently) the virtualenv for the Python test peers in tests/agents and
# prints its python's path on the last line of stdout (all other output goes to stderr).
#
#   VENV_PY="$(tests/agents/setup-venv.sh | tail -n1)"
#
# Location: ${GENESIS_TEST_VENV:-<repo>/target/test-venv}. pip is skipped when the marker
# file in the venv records the hash of requirements.txt (plus the venv's Python version),
# so a warm run takes well under a second.
set -euo pipefail

die() { echo "setup-venv.sh: error: $*" >&2; exit 1; }
note() { echo "setup-venv.sh: $*" >&2; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${GENESIS_TEST_VENV:-$repo/target/test-venv}"
req="$here/requirements.txt"
marker="$venv/.genesis-requirements.sha256"

[ -f "$req" ] || die "missing $req"

want_hash() {
  { cat "$req"; "$venv/bin/python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1
}

# Fast path: already installed from these exact requirements.
if [ -x "$venv/bin/python" ] && [ -f "$marker" ] && [ "$(cat "$marker")" = "$(want_hash 2>/dev/null)" ]; then
  echo "$venv/bin/python"
  exit 0
fi

command -v python3 >/dev/null 2>&1 \
  || die "python3 not found on PATH (install Python >= 3.10, e.g. apt-get install python3 python3-venv)"
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "python3 is $(python3 --version 2>&1); a2a-sdk needs Python >= 3.10"
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 \
  || die "python3 has no venv/ensurepip module, so it cannot make a virtualenv with pip (apt-get install python3-venv)"

mkdir -p "$(dirname "$venv")"

# Serialise concurrent callers (parallel test binaries) when flock(1) is available.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$venv.lock"
  flock 9
fi

# A venv whose interpreter no longer runs (e.g. the base Python moved) is rebuilt.
if [ -e "$venv" ] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  if [ -f "$venv/pyvenv.cfg" ]; then
    note "venv at $venv is broken; recreating it"
    rm -rf "$venv"
  else
    die "$venv exists but is not a virtualenv; remove it or set GENESIS_TEST_VENV"
  fi
fi

# Another caller may have finished the install while we waited for the lock.
if [ -x "$venv/bin/python" ] && [ -f "$marker" ] && [ "$(cat "$marker")" = "$(want_hash)" ]; then
  echo "$venv/bin/python"
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  note "creating virtualenv at $venv"
  python3 -m venv "$venv" >&2 || die "python3 -m venv $venv failed"
fi
"$venv/bin/python" -m pip --version >/dev/null 2>&1 \
  || die "pip is missing in $venv (python3 -m venv made no pip; apt-get install python3-venv python3-pip)"

note "installing $(basename "$req") into $venv"
rm -f "$marker"
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
  "$venv/bin/python" -m pip install --quiet --requirement "$req" >&2 \
  || die "pip install -r $req failed (is the package index reachable?)"
"$venv/bin/python" -c 'import a2a.server.routes, uvicorn' >&2 \
  || die "installed packages do not import"

want_hash >"$marker"
echo "$venv/bin/python"
