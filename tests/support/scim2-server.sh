#!/usr/bin/env bash
# Runs the third-party SCIM server `scim2-server` (PyPI) from a virtualenv in tests/support/.venv,
# creating it or reinstalling tests/support/requirements.txt first when needed. The arguments go
# to scim2-server, e.g. `--port 8080 --bearer-token secret`; it serves SCIM at
# http://127.0.0.1:PORT/v2 from memory until it is stopped.
#
#   bash tests/support/scim2-server.sh --install-only   # only create/refresh the virtualenv
#
# Environment: PYTHON  interpreter for the virtualenv (default python3).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
REQ="$HERE/requirements.txt"
PYTHON="${PYTHON:-python3}"

install() {
  if [[ -d "$VENV" ]] && ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$VENV" # left over from an interpreter that is gone
  fi
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "==> creating $VENV" >&2
    "$PYTHON" -m venv "$VENV"
  fi
  local want stamp="$VENV/.requirements.sha256"
  want="$("$VENV/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$REQ")"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "==> installing tests/support/requirements.txt" >&2
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r "$REQ" >&2
    echo "$want" >"$stamp"
  fi
}

# Tests may start several servers at once: one installs, the others wait for it.
mkdir -p "$VENV"
if command -v flock >/dev/null; then
  exec 9>"$HERE/.venv.lock"
  flock 9
  install
  flock -u 9
  exec 9>&-
else
  install
fi

if [[ "${1:-}" == --install-only ]]; then
  exit 0
fi
exec "$VENV/bin/scim2-server" "$@"
