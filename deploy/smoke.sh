#!/usr/bin/env bash
# End-to-end check of the compose deployment: builds and starts it, provisions through the proxy,
# checks that both instances serve and enforce one license, fails one instance over, and tears
# everything down (volumes included). Needs Docker with compose (v2 `docker compose` or v1
# `docker-compose`) and curl. Run from anywhere:
#
#   bash deploy/smoke.sh [path/to/.env]      # default: deploy/.env
#
# The .env is the one of env.example; the script uses a project name of its own
# (seatbridge-smoke) so it never touches a running deployment's containers or volumes.
set -euo pipefail
cd "$(dirname "$0")"
ENV_FILE=$(realpath "${1:-.env}")
[[ -f "$ENV_FILE" ]] || { echo "no $ENV_FILE: copy env.example to .env and fill it in" >&2; exit 2; }
if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); else COMPOSE=(docker-compose); fi
C=("${COMPOSE[@]}" -p seatbridge-smoke --env-file "$ENV_FILE")
PORT=$(grep -E '^PROXY_PORT=' "$ENV_FILE" | cut -d= -f2); PORT=${PORT:-8080}
BASE="http://127.0.0.1:$PORT"
USER_SCHEMA=urn:ietf:params:scim:schemas:core:2.0:User

cleanup() { "${C[@]}" down -v --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; "${C[@]}" ps >&2 || true; exit 1; }

echo "== build and start"
started=$(date +%s)
"${C[@]}" up -d --build >/dev/null
for _ in $(seq 60); do
  curl -fs "$BASE/readyz" >/dev/null 2>&1 && break
  sleep 1
done
curl -fs "$BASE/readyz" >/dev/null || fail "the proxy does not answer /readyz"
echo "ready through the proxy after $(( $(date +%s) - started )) s"

echo "== tenant with 2 seats, token from the other instance"
"${C[@]}" exec -T seatbridge-1 seatbridge tenant create smoke --plan team --seats 2 >/dev/null
TOKEN=$("${C[@]}" exec -T seatbridge-2 seatbridge token create --tenant smoke 2>/dev/null | tr -d '\r\n')
[[ -n "$TOKEN" ]] || fail "no token"

post_user() {
  curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/scim+json' \
    -d "{\"schemas\":[\"$USER_SCHEMA\"],\"userName\":\"$1@smoke.test\",\"active\":true}" "$BASE/scim/v2/Users"
}
total_users() {
  curl -fs -H "Authorization: Bearer $TOKEN" "$BASE/scim/v2/Users?count=0" \
    | sed -E 's/.*"totalResults":([0-9]+).*/\1/'
}

echo "== seat limit holds across instances (requests alternate between them)"
codes="$(post_user alice) $(post_user bob) $(post_user carol)"
[[ "$codes" == "201 201 403" ]] || fail "expected 201 201 403, got $codes"
echo "POST alice, bob, carol: $codes"

echo "== a license change on one instance is seen by both at once"
"${C[@]}" exec -T seatbridge-2 seatbridge license set smoke --plan team --seats 3 >/dev/null
code=$(post_user carol)
[[ "$code" == 201 ]] || fail "carol after raising seats: $code"
code=$(post_user dave)
[[ "$code" == 403 ]] || fail "dave over the new limit: $code"
for _ in 1 2 3 4; do
  n=$(total_users); [[ "$n" == 3 ]] || fail "an instance lists $n users, not 3"
done
echo "both instances list 3 users; the fourth is refused"

echo "== one instance stops (SIGTERM), the proxy keeps serving"
"${C[@]}" stop seatbridge-1 >/dev/null
for _ in 1 2 3 4; do
  n=$(total_users); [[ "$n" == 3 ]] || fail "with one instance down: $n users"
done
"${C[@]}" start seatbridge-1 >/dev/null
echo "4 of 4 requests answered with seatbridge-1 down"

echo "== image"
docker image inspect seatbridge:local --format 'seatbridge:local {{.Size}} bytes, user {{.Config.User}}'
echo "PASS"
