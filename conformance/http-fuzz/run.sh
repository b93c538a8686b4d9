#!/usr/bin/env bash
# HTTP-level fuzzing of a live seatbridge: schemathesis against the admin/operator OpenAPI document
# (/api/v1/openapi.json, all checks, positive and negative data) and our own SCIM fuzzer
# (scim_fuzz.py: malformed and edge-case requests to every /scim/v2 endpoint).
#
# Fails (exit 1) on any 5xx (except the 501 RFC 7644 §3.11 prescribes for /Scim/v2/Me), any
# connection that fails or closes without an answer, a panic in the server log, a server that no
# longer answers /healthz, a changed canary resource, or a broken audit chain.
#
# Usage: conformance/http-fuzz/run.sh [--requests N] [--seed S] [--workers W]
#   --requests N   total requests of both parts (default 105000; CI-sized: --requests 5000)
#   --seed S       random seed of the SCIM fuzzer and schemathesis (default 1)
#   --workers W    concurrent SCIM fuzzer connections (default 4)
# Environment:
#   SEATBRIDGE_BIN   use this binary instead of `cargo build --bin seatbridge` (debug: it also
#                    catches integer overflow)
#   HTTP_FUZZ_KEEP=1 keep the work directory (database, server log, reports)
#   PYTHON           interpreter for the virtualenv (default python3)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$HERE/.venv"
REQ="$HERE/requirements.txt"
PYTHON="${PYTHON:-python3}"

TOTAL=105000
SEED=1
WORKERS=4
while [[ $# -gt 0 ]]; do
  case "$1" in
    --requests) TOTAL="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

log() { printf '==> %s\n' "$*"; }
T0=$(date +%s)

# shellcheck source=conformance/server.sh
source "$ROOT/conformance/server.sh"

# --- Python tools in conformance/http-fuzz/.venv ---------------------------------------------
ensure_venv "$VENV" "$REQ"
PY="$VENV/bin/python"

# --- seatbridge binary ---------------------------------------------------------------------
find_seatbridge "$PY"

# --- server on a fresh database --------------------------------------------------------------
make_work_dir http-fuzz HTTP_FUZZ_KEEP

cd "$WORK"
DB_URL="sqlite://$WORK/fuzz.db?mode=rwc"
cli() { "$BIN" --database-url "$DB_URL" "$@" 2>>"$WORK/cli.log"; }
# A tenant for the admin fuzzing to find and change. The SCIM tenants and the canary are created
# only after schemathesis is done: with the operator token it may legitimately change or revoke
# anything it can discover (GET /tenants, then tokens, licenses, plans, ...).
cli tenant create admin-sandbox --plan team --seats 10 >/dev/null
cli token create --tenant admin-sandbox --name sandbox >/dev/null
OPERATOR_TOKEN="op_$("$PY" -c 'import secrets; print(secrets.token_hex(24))')"
SERVICE_TOKEN="svc_$("$PY" -c 'import secrets; print(secrets.token_hex(24))')"
METRICS_TOKEN="met_$("$PY" -c 'import secrets; print(secrets.token_hex(24))')"

PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log "starting seatbridge on 127.0.0.1:$PORT (work dir $WORK)"
SEATBRIDGE_SCIM_RATE=0 SEATBRIDGE_ADMIN_RATE=0 SEATBRIDGE_OPERATOR_TOKEN="$OPERATOR_TOKEN" SEATBRIDGE_SERVICE_TOKEN="$SERVICE_TOKEN" \
  SEATBRIDGE_METRICS_TOKEN="$METRICS_TOKEN" SEATBRIDGE_KEY_DIR="$WORK/keys" RUST_BACKTRACE=1 \
  "$BIN" serve --database-url "$DB_URL" --listen "127.0.0.1:$PORT" --log-format json \
  >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
ORIGIN="http://127.0.0.1:$PORT"

alive() {
  "$PY" - "$ORIGIN" <<'EOF'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=10) as r:
        sys.exit(0 if r.status == 200 else 1)
except OSError:
    sys.exit(1)
EOF
}
for _ in $(seq 150); do
  alive && break
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 30 "$WORK/server.log" >&2; echo "seatbridge exited during start-up" >&2; exit 1; }
  sleep 0.2
done
alive || { echo "seatbridge did not answer /healthz" >&2; exit 1; }

status=0

# --- part 1: schemathesis against the admin/operator OpenAPI document -------------------------
# Each operation gets max-examples test cases per phase (examples, coverage, fuzzing, stateful);
# about a tenth of the total budget goes here, the rest to the SCIM fuzzer.
N_OPS="$("$PY" - "$ORIGIN" <<'EOF'
import json, sys, urllib.request
doc = json.load(urllib.request.urlopen(sys.argv[1] + "/api/v1/openapi.json"))
print(sum(1 for p in doc["paths"].values() for m in p if m in ("get", "put", "post", "patch", "delete")))
EOF
)"
ST_EXAMPLES=$(( TOTAL / 10 / (N_OPS * 2) ))
(( ST_EXAMPLES < 5 )) && ST_EXAMPLES=5
count_requests() { grep -c '"handled"' "$WORK/server.log" || true; }
before=$(count_requests)
ST_T0=$(date +%s)
log "schemathesis: $N_OPS operations, max $ST_EXAMPLES examples each, all checks, positive + negative"
if ! "$VENV/bin/schemathesis" run "$ORIGIN/api/v1/openapi.json" \
  --header "Authorization: Bearer $OPERATOR_TOKEN" \
  --checks all --mode all --max-examples "$ST_EXAMPLES" --seed "$SEED" --workers 2 \
  --request-timeout 30 --suppress-health-check all --no-shrink \
  --report junit,ndjson --report-dir "$WORK/schemathesis" >"$WORK/schemathesis.log" 2>&1; then
  st_rc=1
else
  st_rc=0
fi
ST_SECONDS=$(( $(date +%s) - ST_T0 ))
ST_REQUESTS=$(( $(count_requests) - before ))
tail -n 40 "$WORK/schemathesis.log"
# Server errors are counted on the server side (/metrics, in summary.py), for both parts. The
# other schemathesis checks (schema conformance, negative data accepted, ...) are reported for
# the record and do not fail the run; see README.md.

# --- part 2: the SCIM fuzzer ------------------------------------------------------------------
# Own plans, so that nothing the admin fuzzing did to the seeded plans matters here.
cli plan set httpfuzz-plan --seats-default 1000000 --features scim.users,scim.groups,scim.enterprise \
  --pools viewer=unlimited >/dev/null
cli plan set httpfuzz-canary-plan --seats-default 100 --features scim.users,scim.groups,scim.enterprise >/dev/null
cli tenant create httpfuzz --plan httpfuzz-plan --seats 1000000 >/dev/null
cli tenant create httpfuzz-canary --plan httpfuzz-canary-plan --seats 100 >/dev/null
FUZZ_TOKEN="$(cli token create --tenant httpfuzz --name fuzz | grep -E '^sbt_' | tail -n 1)"
CANARY_TOKEN="$(cli token create --tenant httpfuzz-canary --name canary | grep -E '^sbt_' | tail -n 1)"
[[ -n "$FUZZ_TOKEN" && -n "$CANARY_TOKEN" ]] || { echo "could not create tokens; see $WORK/cli.log" >&2; exit 1; }
# Canary users and groups in a second tenant whose token the fuzzer never sees; it aims requests
# at their ids with its own token. They must be byte-identical afterwards.
"$PY" "$HERE/canary.py" seed --base "$ORIGIN/scim/v2" --token "$CANARY_TOKEN" --out "$WORK/canary.json" || exit 1

SCIM_N=$(( TOTAL - ST_REQUESTS ))
(( SCIM_N < 1000 )) && SCIM_N=1000
log "scim fuzzer: $SCIM_N requests, $WORKERS connections, seed $SEED"
SCIM_T0=$(date +%s)
"$PY" "$HERE/scim_fuzz.py" --base "$ORIGIN/scim/v2" --token "$FUZZ_TOKEN" --requests "$SCIM_N" \
  --workers "$WORKERS" --seed "$SEED" --foreign-ids "$WORK/canary.json.ids" --json-out "$WORK/scim-fuzz.json" || status=1
SCIM_SECONDS=$(( $(date +%s) - SCIM_T0 ))

# --- afterwards -------------------------------------------------------------------------------
server_alive=1
if ! kill -0 "$SERVER_PID" 2>/dev/null || ! alive; then
  echo "seatbridge is not alive after fuzzing" >&2
  server_alive=0
  status=1
fi
if [[ $server_alive -eq 1 ]]; then
  "$PY" "$HERE/canary.py" verify --base "$ORIGIN/scim/v2" --token "$CANARY_TOKEN" --in "$WORK/canary.json" || status=1
  "$PY" - "$ORIGIN" "$METRICS_TOKEN" >"$WORK/metrics.txt" <<'EOF' || true
import sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/metrics", headers={"Authorization": f"Bearer {sys.argv[2]}"})
print(urllib.request.urlopen(req, timeout=30).read().decode())
EOF
fi
stop_server
if grep -q -i 'panicked' "$WORK/server.log"; then
  echo "the server log has a panic:" >&2
  grep -i -m 5 -A 5 'panicked' "$WORK/server.log" >&2
  status=1
fi
for t in $("$PY" -c 'import sqlite3, sys; print(" ".join(r[0] for r in sqlite3.connect(sys.argv[1]).execute("select slug from tenants")))' "$WORK/fuzz.db"); do
  if ! cli audit verify --tenant "$t" >"$WORK/audit-$t.json"; then
    echo "audit chain of tenant '$t' is broken: $(cat "$WORK/audit-$t.json")" >&2
    status=1
  fi
done
if ! "$PY" -c 'import sqlite3, sys; r = sqlite3.connect(sys.argv[1]).execute("pragma integrity_check").fetchone()[0]; print("sqlite integrity_check:", r); sys.exit(r != "ok")' "$WORK/fuzz.db"; then
  status=1
fi

"$PY" "$HERE/summary.py" --metrics "$WORK/metrics.txt" --scim "$WORK/scim-fuzz.json" \
  --schemathesis-requests "$ST_REQUESTS" --schemathesis-seconds "$ST_SECONDS" --scim-seconds "$SCIM_SECONDS" \
  --total-seconds $(( $(date +%s) - T0 )) || status=1
[[ $st_rc -ne 0 ]] && log "schemathesis reported non-server-error findings (not fatal); see $WORK/schemathesis.log (kept when HTTP_FUZZ_KEEP=1)"
if [[ $status -eq 0 ]]; then
  log "http-fuzz: PASSED"
else
  log "http-fuzz: FAILED"
fi
exit "$status"
