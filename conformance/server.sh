# Shared by conformance/run.sh and conformance/http-fuzz/run.sh (sourced, not run): their Python
# virtualenv, finding the seatbridge binary, and a work directory whose server is stopped and which
# is removed on exit. Expects ROOT, PYTHON and a log function.

# Creates the virtualenv $1 (again, when its interpreter is gone) and installs the requirements
# file $2 whenever that file changed.
ensure_venv() {
  local venv="$1" req="$2" want stamp
  if [[ -d "$venv" ]] && ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$venv" # left over from an interpreter that is gone
  fi
  if [[ ! -x "$venv/bin/python" ]]; then
    log "creating $venv"
    "$PYTHON" -m venv "$venv"
  fi
  want="$("$venv/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$req")"
  stamp="$venv/.requirements.sha256"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    log "installing ${req#"$ROOT"/}"
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$req"
    echo "$want" >"$stamp"
  fi
}

# Sets BIN: $SEATBRIDGE_BIN, else a fresh `cargo build --bin seatbridge`. $1: a python to read
# cargo metadata with. Then unsets other SEATBRIDGE_* settings (meant for another seatbridge), but
# for SEATBRIDGE_BIN and the names given after $1.
find_seatbridge() {
  local python="$1"; shift
  if [[ -n "${SEATBRIDGE_BIN:-}" ]]; then
    BIN="$SEATBRIDGE_BIN"
  else
    log "cargo build --bin seatbridge"
    (cd "$ROOT" && cargo build --bin seatbridge)
    local target_dir
    target_dir="$(cd "$ROOT" && cargo metadata --no-deps --format-version 1 |
      "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    BIN="$target_dir/debug/seatbridge"
  fi
  [[ -x "$BIN" ]] || { echo "seatbridge binary not found at $BIN" >&2; exit 1; }
  local var keep k
  for var in $(compgen -e | grep '^SEATBRIDGE_' || true); do
    keep=0
    for k in SEATBRIDGE_BIN "$@"; do [[ "$var" == "$k" ]] && keep=1; done
    [[ $keep -eq 1 ]] || unset "$var"
  done
}

# Creates WORK (mktemp, named after $1) and traps that stop the server in SERVER_PID on exit and
# remove WORK, unless the run failed or the variable named $2 is set.
make_work_dir() {
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/seatbridge-$1.XXXXXX")"
  SERVER_PID=""
  WORK_NAME="$1"
  KEEP_VAR="$2"
  trap on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

stop_server() {
  [[ -n "$SERVER_PID" ]] || return 0
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

on_exit() {
  local rc=$?
  stop_server
  if [[ $rc -eq 0 && -z "${!KEEP_VAR:-}" ]]; then
    rm -rf "$WORK"
  else
    echo "$WORK_NAME: database, server log and results kept in $WORK" >&2
  fi
  exit "$rc"
}
