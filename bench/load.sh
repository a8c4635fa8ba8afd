#!/usr/bin/env bash
# Loopback load harness: poolgate against two baseline servers built in the same run.
#
# Usage: bench/load.sh [seconds] [connections]      (defaults 10 and 32)
#
# Builds the release binary and examples/baseline.rs, installs wrk from Debian packages when it
# is missing, mints dev tokens, then drives with wrk (bench/tokens.lua) and prints one table:
#   baseline constant  examples/baseline constant: POST /v1/check answered with a fixed body
#   baseline verify    examples/baseline verify: RS256 check of the bearer token, fixed body
#   (a) repeated       POST /v1/check, 1,000 users' tokens cycling        vs. baseline constant
#   (b) unique         POST /v1/check, every request a token the server   vs. baseline verify
#                      has never seen, of one of the same 1,000 users
#   (c) batch          POST /v1/check/batch, 10 items, 1,000 users        vs. baseline constant
#   (d) permissions    POST /v1/permissions, 10 resources, 1,000 users    vs. baseline constant
# for poolgate on SQLite, and on PostgreSQL when `pg_isready -h 127.0.0.1` answers (in a fresh
# database poolgate_bench_<random>, created and dropped with psql as user postgres). Each
# backend gets a fresh poolgate (embedded dev setup, in a temporary folder, on a free port,
# decision log off, log filter warn); (b) runs first, so its tokens are new to the server. The
# baselines run again for each backend, right before the scenarios compared with them.
# Every question asked is allowed, so every answer should be 200. The verify baseline may send a
# token twice once it has used them all; it caches nothing, so that changes nothing.
# Then the memory run: a fresh poolgate on SQLite gets 1,000,000 requests over the 200,000
# unique tokens (each sent 5 times; 1,000 users), and its VmRSS and VmHWM are printed.
#
# Environment: CARGO_TARGET_DIR (default $HOME/.cache/poolgate-target); WRK_THREADS (default 1);
# UNIQUE_TOKENS (default 200000; (b) needs about rps x seconds of them, the table flags a
# shortfall); RSS_REQUESTS (default 1000000, 0 skips the memory run).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
seconds="${1:-10}"
connections="${2:-32}"
threads="${WRK_THREADS:-1}"
unique_tokens="${UNIQUE_TOKENS:-200000}"
rss_requests="${RSS_REQUESTS:-1000000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/poolgate-target}"

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# --- Clean-up of everything started here ---------------------------------------------------
work=$(mktemp -d)
pids=()
pg_db=""
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n "$pg_db" ]]; then
    psql -h 127.0.0.1 -U postgres -qAt -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Build and tools -------------------------------------------------------------------------
log "building poolgate and examples/baseline (release)"
cargo build --release --locked -q --bin poolgate --example baseline
# Copies, taken at once: another checkout building in a shared CARGO_TARGET_DIR replaces the files
# there (and cargo may even take its newer binary for a fresh build of this one).
mkdir -p "$work/bin"
cp "$CARGO_TARGET_DIR/release/poolgate" "$CARGO_TARGET_DIR/release/examples/baseline" "$work/bin/"
bin="$work/bin/poolgate"
baseline_bin="$work/bin/baseline"
if ! "$bin" dev token --help | grep -q -- --count; then
  log "$CARGO_TARGET_DIR/release/poolgate lacks \`dev token --count\`: built from another checkout?" \
    "touch src/cli.rs and run again"
  exit 1
fi
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq wrk >/dev/null
fi

# --- Helpers -----------------------------------------------------------------------------------
free_port() {
  local port
  for port in $(shuf -i 20000-60000 -n 100); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  echo "no free port found" >&2
  return 1
}

# wait_http URL PID: until URL answers 2xx; fails when PID exits or after 30 s.
wait_http() {
  local url=$1 pid=$2
  for _ in $(seq 1 300); do
    curl -sf -o /dev/null "$url" && return 0
    kill -0 "$pid" 2>/dev/null || { log "process $pid exited; see its log in $work"; return 1; }
    sleep 0.1
  done
  log "no answer from $url"
  return 1
}

# stop PID: SIGTERM and wait.
stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# stop_poolgate NAME: stop $pid, then show what it logged (warnings and errors only).
stop_poolgate() {
  stop "$pid"
  if [[ -s "$work/$1/server.log" ]]; then
    log "  poolgate ($1) logged $(wc -l <"$work/$1/server.log") line(s); the first ones:"
    head -5 "$work/$1/server.log" | cut -c1-300 >&2
  fi
}

# start_poolgate NAME [VAR=VALUE...]: a fresh poolgate in $work/NAME; sets $pid and $port.
start_poolgate() {
  local name=$1
  shift
  local dir="$work/$name"
  mkdir -p "$dir"
  cp -r "$repo/policies" "$dir/"
  cp -r "$work/keys/.poolgate" "$dir/"
  port=$(free_port)
  (
    cd "$dir"
    exec env POOLGATE__SERVER__BIND="127.0.0.1:$port" POOLGATE__LOG__FILTER=warn \
      POOLGATE__DECISION_LOG__ENABLED=false "$@" "$bin" serve >server.log 2>&1
  ) &
  pid=$!
  pids+=("$pid")
  wait_http "http://127.0.0.1:$port/healthz" "$pid"
  wait_http "http://127.0.0.1:$port/readyz" "$pid"
}

# start_baseline MODE: sets $pid and $port.
start_baseline() {
  port=$(free_port)
  "$baseline_bin" "$1" --bind "127.0.0.1:$port" --jwks "$work/keys/.poolgate/dev-keys/merchant.jwks.json" \
    >"$work/baseline-$1.log" 2>&1 &
  pid=$!
  pids+=("$pid")
}

# probe URL TOKEN BODY PATTERN COUNT: one request must answer 200 with PATTERN COUNT times.
probe() {
  local url=$1 token=$2 body=$3 pattern=$4 count=$5 answer status
  for _ in $(seq 1 100); do
    status=$(curl -s -o "$work/probe.json" -w '%{http_code}' -X POST "$url" \
      -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$body" || true)
    [[ $status != 000 ]] && break
    sleep 0.1
  done
  answer=$(cat "$work/probe.json" 2>/dev/null || true)
  if [[ $status != 200 || $(grep -o "$pattern" <<<"$answer" | wc -l) -ne $count ]]; then
    log "probe of $url failed: HTTP $status: $answer"
    return 1
  fi
}

# drive NAME URL TOKENS BODY [SECONDS]: one wrk run; its result line is kept in results/NAME.
drive() {
  local name=$1 url=$2 tokens=$3 body=$4 duration=${5:-$seconds}
  BODY=$body wrk -t"$threads" -c"$connections" -d"${duration}s" --timeout 5s -s "$repo/bench/tokens.lua" \
    "$url" -- "$tokens" "$threads" >"$work/wrk.out" 2>&1 || { cat "$work/wrk.out" >&2; return 1; }
  grep '^result ' "$work/wrk.out" | tail -1 >"$work/results/$name"
  [[ -s "$work/results/$name" ]] || { cat "$work/wrk.out" >&2; return 1; }
  log "  $name: $(cut -d' ' -f2- "$work/results/$name") (load average $(cut -d' ' -f1 /proc/loadavg))"
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Tokens ------------------------------------------------------------------------------------
mkdir -p "$work/keys" "$work/results"
cp -r policies "$work/keys/"
mint() {
  (cd "$work/keys" && POOLGATE__LOG__FILTER=error "$bin" dev token --pool merchant --group merchant \
    --claim custom:org_id=o1 --ttl 3h "$@")
}
probe_token=$(mint --sub probe)
log "minting 1,000 repeated tokens and $unique_tokens unique tokens (two processes)"
mint --sub rep --count 1000 >"$work/repeated.txt"
half=$((unique_tokens / 2))
mint --sub rep --users 1000 --count "$half" >"$work/unique-a.txt" &
minter=$!
pids+=("$minter")
mint --sub rep --users 1000 --count $((unique_tokens - half)) >"$work/unique-b.txt"
wait "$minter"
cat "$work/unique-a.txt" "$work/unique-b.txt" >"$work/unique.txt"
rm "$work/unique-a.txt" "$work/unique-b.txt"
first_repeated=$(head -1 "$work/repeated.txt")

check_body='{"action":"read","resource":{"type":"Stock","id":"sku-1","attributes":{"org_id":"o1"}}}'
items=""
resources=""
for i in $(seq 1 10); do
  items+="${items:+,}{\"action\":\"read\",\"resource\":{\"type\":\"Stock\",\"id\":\"sku-$i\",\"attributes\":{\"org_id\":\"o1\"}}}"
  resources+="${resources:+,}{\"type\":\"Stock\",\"id\":\"sku-$i\",\"attributes\":{\"org_id\":\"o1\"}}"
done
batch_body="{\"items\":[$items]}"
permissions_body="{\"resources\":[$resources]}"

# --- Baselines: both servers stay up (idle between runs) ------------------------------------
start_baseline constant
constant_url="http://127.0.0.1:$port/v1/check"
start_baseline verify
verify_url="http://127.0.0.1:$port/v1/check"
probe "$constant_url" "$first_repeated" "$check_body" '"allow"' 1
probe "$verify_url" "$probe_token" "$check_body" '"allow"' 1

# --- poolgate, per backend -------------------------------------------------------------------
# Each baseline runs right before the scenarios compared with it, so that both see the same
# machine: on a shared 2-core machine, throughput drifts within minutes.
scenarios() {
  local backend=$1 base="http://127.0.0.1:$port"
  log "  baseline verify"
  drive "verify-$backend" "$verify_url" "$work/unique.txt" "$check_body"
  log "  (b) unique tokens"
  probe "$base/v1/check" "$probe_token" "$check_body" '"decision":"allow"' 1
  drive "b-$backend" "$base/v1/check" "$work/unique.txt" "$check_body"
  log "  baseline constant"
  drive warmup "$constant_url" "$work/repeated.txt" "$check_body" 1
  drive "constant-$backend" "$constant_url" "$work/repeated.txt" "$check_body"
  log "  (a) repeated tokens"
  probe "$base/v1/check" "$first_repeated" "$check_body" '"decision":"allow"' 1
  drive warmup "$base/v1/check" "$work/repeated.txt" "$check_body" 1
  drive "a-$backend" "$base/v1/check" "$work/repeated.txt" "$check_body"
  log "  (c) batch of 10"
  probe "$base/v1/check/batch" "$first_repeated" "$batch_body" '"decision":"allow"' 10
  drive "c-$backend" "$base/v1/check/batch" "$work/repeated.txt" "$batch_body"
  log "  (d) permissions over 10 resources"
  probe "$base/v1/permissions" "$first_repeated" "$permissions_body" '"allowed_actions":\["read"\]' 10
  drive "d-$backend" "$base/v1/permissions" "$work/repeated.txt" "$permissions_body"
}

backends=(sqlite)
log "poolgate on SQLite"
start_poolgate sqlite
scenarios sqlite
stop_poolgate sqlite

if pg_isready -q -h 127.0.0.1; then
  pg_db="poolgate_bench_$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
  psql -h 127.0.0.1 -U postgres -qAt -c "CREATE DATABASE $pg_db" >/dev/null
  log "poolgate on PostgreSQL (database $pg_db)"
  start_poolgate postgres POOLGATE__DATABASE__URL="postgres://postgres@127.0.0.1:5432/$pg_db"
  scenarios postgres
  stop_poolgate postgres
  backends+=(postgres)
else
  log "PostgreSQL: pg_isready -h 127.0.0.1 does not answer; skipped"
fi

# --- The table ---------------------------------------------------------------------------------
# row LABEL BACKEND RESULT BASELINE TARGET: one line of the table; RESULT and BASELINE name files in
# $work/results, TARGET is a, b or -.
row() {
  local label=$1 backend=$2 name=$3 base=$4 target=$5
  awk -v label="$label" -v backend="$backend" -v base="${base:--}" -v target="$target" \
    -v line="$(cat "$work/results/$name")" -v bline="$([[ -z $base ]] || cat "$work/results/$base")" '
    function parse(text, into,   n, parts, i, kv) {
      n = split(text, parts, " ")
      for (i = 1; i <= n; i++) if (split(parts[i], kv, "=") == 2) into[kv[1]] = kv[2]
    }
    function ms(us) { return us >= 1000 ? sprintf("%.2f ms", us / 1000) : sprintf("%d us", us) }
    function ratio(a, b) { return (bline != "" && b > 0) ? sprintf("%.2fx", a / b) : "-" }
    BEGIN {
      parse(line, r); parse(bline, b)
      sub(/-[a-z]+$/, "", base)
      verdict = "-"
      if (target == "a") verdict = (b["rps"] > 0 && r["rps"] / b["rps"] >= 0.75 && r["p99_us"] <= 5000) ? "met" : "missed"
      if (target == "b") verdict = (b["rps"] > 0 && r["rps"] / b["rps"] >= 0.90) ? "met" : "missed"
      if (r["non2xx"] + r["errors"] > 0) verdict = verdict ", NON-2XX/ERRORS"
      if (target == "b" && r["passes"] > 1) verdict = verdict ", tokens reused (" r["passes"] " passes)"
      printf "%-20s %-9s %9.0f %7s %10s %7s %10s %7s %8d %7d  %-9s %s\n", label, backend, r["rps"], ratio(r["rps"], b["rps"]),
        ms(r["p50_us"]), ratio(r["p50_us"], b["p50_us"]), ms(r["p99_us"]), ratio(r["p99_us"], b["p99_us"]),
        r["non2xx"], r["errors"], base, verdict
    }'
}

table() {
  printf '\nwrk -t%s -c%s -d%ss on %s cores; ratios are to the baseline named on the row, run just before it\n' \
    "$threads" "$connections" "$seconds" "$(nproc)"
  printf 'load average at the start %s, at the end %s (other processes compete for the cores when above 2)\n' \
    "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'targets: (a) >= 0.75x the constant baseline rps with p99 <= 5 ms; (b) >= 0.90x the verify baseline rps;\n'
  printf '         no non-2xx answer or error in any run\n'
  printf '%-20s %-9s %9s %7s %10s %7s %10s %7s %8s %7s  %-9s %s\n' scenario backend rps x-base p50 x-base \
    p99 x-base non-2xx errors baseline target
  local backend
  for backend in "${backends[@]}"; do
    row "baseline constant" "$backend" "constant-$backend" "" -
    row "baseline verify" "$backend" "verify-$backend" "" -
    row "(a) repeated 1k" "$backend" "a-$backend" "constant-$backend" a
    row "(b) unique" "$backend" "b-$backend" "verify-$backend" b
    row "(c) batch 10" "$backend" "c-$backend" "constant-$backend" -
    row "(d) permissions 10" "$backend" "d-$backend" "constant-$backend" -
  done
}
table >"$work/table.txt"
cat "$work/table.txt"

# --- Memory --------------------------------------------------------------------------------------
if [[ $rss_requests -gt 0 ]]; then
  log "memory run: fresh poolgate on SQLite, $rss_requests requests over $unique_tokens unique tokens"
  start_poolgate rss
  probe "http://127.0.0.1:$port/v1/check" "$probe_token" "$check_body" '"decision":"allow"' 1
  rss_before=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  BODY=$check_body wrk -t"$threads" -c"$connections" -d3600s --timeout 5s -s "$repo/bench/tokens.lua" \
    "http://127.0.0.1:$port/v1/check" -- "$work/unique.txt" "$threads" "$rss_requests" "$work/rss-done" \
    >"$work/wrk.out" 2>&1 &
  wrk_pid=$!
  pids+=("$wrk_pid")
  SECONDS=0
  next_sample=30
  until [[ $(find "$work" -maxdepth 1 -name 'rss-done.*' | wc -l) -ge $threads ]]; do
    kill -0 "$wrk_pid" 2>/dev/null || { cat "$work/wrk.out" >&2; exit 1; }
    if [[ $SECONDS -ge $next_sample ]]; then
      log "  after ${SECONDS}s: VmRSS $(awk '/^VmRSS/ {printf "%.1f MiB", $2 / 1024}' "/proc/$pid/status")"
      next_sample=$((next_sample + 30))
    fi
    sleep 0.2
  done
  kill -INT "$wrk_pid"
  wait "$wrk_pid" || true
  grep '^result ' "$work/wrk.out" | tail -1 >"$work/results/rss"
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
  printf '\nmemory run (SQLite): %s\n' "$(cut -d' ' -f2- "$work/results/rss")"
  awk -v rss="$rss" -v before="$rss_before" -v hwm="$hwm" 'BEGIN {
    printf "poolgate VmRSS %.1f MiB (%.1f MiB before the run), VmHWM %.1f MiB; target VmRSS < 150 MiB: %s\n",
      rss / 1024, before / 1024, hwm / 1024, rss < 150 * 1024 ? "met" : "missed" }'
  stop_poolgate rss
fi
