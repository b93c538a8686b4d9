#!/usr/bin/env bash
# Measures PATCH member add+remove on a 50,000-member group vs a 10-member group.
# Usage: bash bench/large_group.sh [path/to/seatbridge]   (needs curl, sqlite3, python3)
# Members are seeded straight into SQLite (seeding 50k users over HTTP is not what is measured).
set -euo pipefail
BIN=${1:-target/release/seatbridge}
work=$(mktemp -d); trap 'kill $(cat "$work/pid") 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 10000))
( cd "$work" && SEATBRIDGE_SCIM_RATE=0 exec "$OLDPWD/$BIN" serve --demo --listen 127.0.0.1:$port > out.txt 2> err.txt & echo $! > "$work/pid" )
for _ in $(seq 50); do grep -q 'Bearer token' "$work/out.txt" 2>/dev/null && break; sleep 0.2; done
TOKEN=$(grep 'Bearer token' "$work/out.txt" | awk '{print $3}')
H="Authorization: Bearer $TOKEN"; C='content-type: application/scim+json'; B=http://127.0.0.1:$port/scim/v2
mkgroup() { curl -s -H "$H" -H "$C" -d "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:Group\"],\"displayName\":\"$1\"}" $B/Groups | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])'; }
big=$(mkgroup big); small=$(mkgroup small)
db="$work/seatbridge.db"; tid=$(sqlite3 "$db" "select id from tenants where slug='demo'")
sqlite3 "$db" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 50010)
  INSERT INTO users (id, tenant_id, user_name, user_name_norm, active, doc, version, created_at, updated_at)
  SELECT printf('00000000-0000-7000-8000-%012d', i), '$tid', 'u'||i, 'u'||i, 1, json_object('userName','u'||i), 1,
         '2026-11-25T00:00:00+00:00', '2026-11-25T00:00:00+00:00' FROM n;
  INSERT INTO group_members (group_id, member_id, tenant_id, member_type, created_at)
  SELECT '$big', id, '$tid', 'User', '2026-11-25T00:00:00+00:00' FROM users WHERE CAST(substr(user_name_norm,2) AS INTEGER) <= 50000;
  INSERT INTO group_members (group_id, member_id, tenant_id, member_type, created_at)
  SELECT '$small', id, '$tid', 'User', '2026-11-25T00:00:00+00:00' FROM users WHERE CAST(substr(user_name_norm,2) AS INTEGER) <= 10;"
patch() { curl -s -o /dev/null -w '%{time_total}' -X PATCH -H "$H" -H "$C" -d "{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:PatchOp\"],\"Operations\":[$2]}" "$B/Groups/$1"; }
for g in big small; do
  id=${!g}; total=0
  for i in $(seq 1 50); do
    uid=$(printf '00000000-0000-7000-8000-%012d' $((50001 + i % 10)))
    a=$(patch "$id" "{\"op\":\"add\",\"path\":\"members\",\"value\":[{\"value\":\"$uid\"}]}")
    r=$(patch "$id" "{\"op\":\"remove\",\"path\":\"members[value eq \\\"$uid\\\"]\"}")
    total=$(python3 -c "print($total + $a + $r)")
  done
  echo "$g group: mean PATCH add+remove pair = $(python3 -c "print(round($total / 50 * 1000, 2))") ms (50 pairs)"
done
echo "GET big group, excludedAttributes=members: $(curl -s -o /dev/null -w '%{time_total}' -H "$H" "$B/Groups/$big?excludedAttributes=members")s"
echo "GET big group with all 50,000 members: $(curl -s -o /dev/null -w '%{time_total}' -H "$H" "$B/Groups/$big")s"
