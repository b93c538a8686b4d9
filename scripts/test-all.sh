#!/usr/bin/env bash
# Runs the whole test suite:
#   1. unit tests and the integration suite (real server, real HTTP) on SQLite;
#   2. the integration suite again on PostgreSQL when TEST_POSTGRES_URL (or a postgres://
#      DATABASE_URL) names a server — each test creates its own database there;
#   3. the third-party SCIM conformance suites (conformance/run.sh installs them in a venv);
#   4. 5,000 requests of HTTP fuzzing against a live server (conformance/http-fuzz/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> test peers (scim2-server, the OpenID Provider, Chromium for the browser test)"
bash tests/support/scim2-server.sh --install-only
bash tests/support/install-browser-peers.sh

echo "==> unit + integration tests (SQLite)"
# Without the PostgreSQL variables: the test harness picks PostgreSQL whenever TEST_POSTGRES_URL
# is set, and .ci/run exports it, so this stage used to run on PostgreSQL twice and SQLite never.
env -u TEST_POSTGRES_URL -u DATABASE_URL cargo test --workspace --all-targets

pg="${TEST_POSTGRES_URL:-}"
if [[ -z "$pg" && "${DATABASE_URL:-}" == postgres* ]]; then
  pg="$DATABASE_URL"
fi
if [[ -n "$pg" ]]; then
  echo "==> integration tests (PostgreSQL)"
  TEST_POSTGRES_URL="$pg" cargo test --test api
else
  echo "==> PostgreSQL suite skipped: set TEST_POSTGRES_URL=postgres://USER@HOST:5432/DB to run it"
fi

echo "==> conformance suites"
# Reuse the binary the integration tests just built instead of building another feature set.
target="${CARGO_TARGET_DIR:-target}"
[[ "$target" == /* ]] || target="$PWD/$target"
bin="$target/debug/seatbridge"
if [[ -x "$bin" ]]; then
  SEATBRIDGE_BIN="$bin" bash conformance/run.sh
else
  bash conformance/run.sh
fi

echo "==> HTTP fuzzing, CI-sized (the full 105,000-request run: bash conformance/http-fuzz/run.sh)"
if [[ -x "$bin" ]]; then
  SEATBRIDGE_BIN="$bin" bash conformance/http-fuzz/run.sh --requests 5000
else
  bash conformance/http-fuzz/run.sh --requests 5000
fi
