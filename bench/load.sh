#!/usr/bin/env bash
# Loopback load on the embedded default setup (SQLite, dev pools): POST /v1/check with one
# repeated merchant token, driven by wrk (installed from Debian packages when missing).
# Usage: bench/load.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
connections="${2:-32}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/poolgate-target}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --locked -q
bin="$CARGO_TARGET_DIR/release/poolgate"

work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
cp -r policies "$work/"
cd "$work"
POOLGATE__LOG__FILTER=warn POOLGATE__DECISION_LOG__ENABLED=false "$bin" serve 2>server.log &
server=$!
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:8180/readyz >/dev/null && break; sleep 0.1; done

export TOKEN=$("$bin" dev token --pool merchant --sub alice --group merchant --claim custom:org_id=o1 --ttl 1h)
export BODY='{"action":"read","resource":{"type":"Stock","id":"sku-1","attributes":{"org_id":"o1"}}}'
curl -sf -X POST http://127.0.0.1:8180/v1/check -H "Authorization: Bearer $TOKEN" -d "$BODY" | grep -q '"allow"'

echo "POST /v1/check, repeated token, wrk -t1 -c$connections -d${seconds}s"
wrk -t1 -c"$connections" -d"${seconds}s" -s "$OLDPWD/bench/check.lua" http://127.0.0.1:8180/v1/check
