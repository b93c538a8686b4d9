#!/usr/bin/env bash
# The load harness (issue #6): builds seatbridge and the bare actix-web ceiling in release mode,
# installs the peers (wrk, scim2-server, SCIMMY), then runs bench/run.py, which seeds, loads and
# reports. Results go to bench/results/latest.{md,json}; copy what you keep into RESULTS.md.
#
#   bash bench/run.sh                                  # everything: 1k/100k/1M users, SQLite + PostgreSQL, peers
#   bash bench/run.sh --sizes 1000 --backends sqlite   # a quick look
#   bash bench/run.sh --help                           # all options
#
# PostgreSQL: BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test); each size gets
# its own database sb_bench_<size>, dropped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
  echo "==> installing wrk" >&2
  if [[ $(id -u) -eq 0 ]]; then apt-get install -y wrk >&2; else sudo apt-get install -y wrk >&2; fi
fi
bash tests/support/scim2-server.sh --install-only
(cd bench/peers/scimmy && npm ci --no-audit --no-fund --silent)
cargo build --release --locked --bin seatbridge --example bare_actix
exec python3 bench/run.py "$@"
