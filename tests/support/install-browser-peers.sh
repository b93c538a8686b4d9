#!/usr/bin/env bash
# Installs what the admin-side tests need: the npm packages of the test OpenID Provider
# (oidc-provider) and of the browser driver (playwright-core), and Debian's Chromium.
# Idempotent: quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")"

for dir in oidc browser; do
  if [[ ! -d "$dir/node_modules" || "$dir/package-lock.json" -nt "$dir/node_modules" ]]; then
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
  fi
done

if ! command -v chromium >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "install Chromium (Debian: apt-get install chromium) for the browser test" >&2
    exit 1
  fi
fi
