#!/usr/bin/env bash
# Loopback load harness: poolgate at its defaults, against two baseline servers and Cerbos, all
# started by the same run on the same machine, so that every figure can be read as a ratio.
#
#   bash bench/load.sh [seconds] [connections]      (defaults 10 and 32)
#
# What it runs. It builds the release binary and examples/baseline.rs, installs wrk from Debian's
# packages and Cerbos from npm (@cerbos/cerbos-linux-x64, into ~/.cache/poolgate-bench/cerbos)
# when they are missing, mints dev tokens with the embedded dev setup (`poolgate dev token`, in
# a folder of its own), then drives each server with wrk (bench/tokens.lua):
#
# - poolgate as an operator runs it by default: `poolgate --config poolgate.toml serve` with a
#   file holding only the pools ([pools.*] of config/dev.toml, each `dev_key = true` replaced by
#   `jwks_file` = the dev key set the tokens were minted with), the port from
#   POOLGATE__SERVER__BIND, the default database `sqlite://poolgate.db` in its working folder
#   (POOLGATE__DATABASE__URL for PostgreSQL) and every other setting at its built-in default:
#   JSON log at `info` on stderr, decision log on stdout. stdout and stderr go to two files, as a
#   log collector would read them; each run checks that the decision log has lines.
# - "obs-off": the same server with observability off (POOLGATE__DECISION_LOG__ENABLED=false
#   POOLGATE__LOG__FILTER=off), so that the cost of the decision log and the diagnostic log is a
#   number of every run.
# - baseline constant  examples/baseline constant: POST /v1/check answered with a fixed body
# - baseline verify    examples/baseline verify: RS256 check of the bearer token, fixed body
# - Cerbos             bench/cerbos/config.yaml (HTTP on loopback, disk storage of
#                      bench/cerbos/policies, audit off, JWT verification on with the merchant dev
#                      JWKS): POST /api/check/resources asking the same question as poolgate's
#                      merchant read, the token in auxData.jwt.token, the principal id its `sub`.
#                      Before it is measured, the harness checks that an allowed request answers
#                      EFFECT_ALLOW, and that a token of another org and a tampered token do not.
#
# The scenarios (every question asked is allowed, so every answer should be 200):
#   (a) repeated       POST /v1/check, 1,000 users' tokens cycling
#   (b) unique         POST /v1/check, every request a token the server has never seen, of one
#                      of the same 1,000 users ((b) runs first on a fresh server)
#   (c) batch          POST /v1/check/batch, 10 items, 1,000 users (defaults only)
#   (d) permissions    POST /v1/permissions, 10 resources, 1,000 users (defaults only)
#   Cerbos             the (a) tokens, one check of one resource each
# for poolgate on SQLite, and on PostgreSQL when `pg_isready -h 127.0.0.1` answers (in fresh
# databases poolgate_bench_<random>, created and dropped with psql as user postgres). Each
# backend gets a fresh defaults server and a fresh obs-off server. The baselines run again for
# each backend, right before the scenarios compared with them.
#
# Reading the table. One line per run: requests per second, its ratio to the baseline named on
# the line (x-base, run just before it), p50, p99, non-2xx answers and socket errors. Under a
# line, each target of the issue that the line answers, with the measured value and met/MISSED:
#   (a) defaults   >= 0.50x constant (stretch 0.75x), >= 1.50x verify, p99 <= 5 ms,
#                  and within 10% of obs-off (defaults/obs-off >= 0.90x)
#   (b) defaults   >= 0.60x verify (stretch 0.90x), within 10% of obs-off
#   Cerbos         (a) defaults >= 15x Cerbos (stretch 30x)
#   every run      no non-2xx answer and no socket error
# A "stretch" figure is a further goal: a line is met once its plain target is met.
# Then the decision log of each defaults server (lines written, records dropped), and the memory
# run: a fresh poolgate at the defaults on SQLite gets 1,000,000 requests over the 200,000 unique
# tokens (each sent 5 times; 1,000 users); target VmRSS <= 150 MiB afterwards, no non-2xx.
#
# Environment: CARGO_TARGET_DIR (default $HOME/.cache/poolgate-target); WRK_THREADS (default 1);
# UNIQUE_TOKENS (default 200000; (b) needs about rps x seconds of them, the table flags a
# shortfall); RSS_REQUESTS (default 1000000, 0 skips the memory run); CERBOS_VERSION (default
# 0.55.0; 0.55 at least). POOLGATE_* and RUST_LOG of the caller's environment are ignored: the
# servers run at the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
seconds="${1:-10}"
connections="${2:-32}"
threads="${WRK_THREADS:-1}"
unique_tokens="${UNIQUE_TOKENS:-200000}"
rss_requests="${RSS_REQUESTS:-1000000}"
cerbos_version="${CERBOS_VERSION:-0.55.0}"
cerbos_dir="$HOME/.cache/poolgate-bench/cerbos"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/poolgate-target}"
# Whatever the caller's shell holds, the servers run at the defaults (RUST_LOG wins over
# log.filter) and Cerbos sends nothing out.
unset RUST_LOG
while read -r name; do unset "$name"; done < <(compgen -e | grep '^POOLGATE' || true)
export CERBOS_NO_TELEMETRY=1

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# --- Clean-up of everything started here ---------------------------------------------------
work=$(mktemp -d)
pids=()
pg_dbs=()
cleanup() {
  local pid db
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  for db in "${pg_dbs[@]}"; do
    psql -h 127.0.0.1 -U postgres -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
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

# Cerbos: the binary inside the npm package @cerbos/cerbos-linux-x64 (a Go binary, no Node at
# run time); installed into $cerbos_dir unless the wanted version is there.
cerbos_bin="$cerbos_dir/node_modules/@cerbos/cerbos-linux-x64/cerbos-linux-x64"
cerbos_installed() { [[ -x $cerbos_bin ]] && [[ $("$cerbos_bin" --version 2>/dev/null | head -1) == "$cerbos_version" ]]; }
if ! cerbos_installed; then
  log "installing Cerbos $cerbos_version (npm @cerbos/cerbos-linux-x64) into $cerbos_dir"
  mkdir -p "$cerbos_dir"
  npm install --prefix "$cerbos_dir" --no-audit --no-fund --silent "@cerbos/cerbos-linux-x64@$cerbos_version" >&2
  cerbos_installed || { log "no Cerbos $cerbos_version at $cerbos_bin after npm install"; exit 1; }
fi
if [[ $(printf '%s\n' 0.55.0 "$cerbos_version" | sort -V | head -1) != 0.55.0 ]]; then
  log "CERBOS_VERSION=$cerbos_version: the comparison needs Cerbos 0.55 or later"
  exit 1
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

# start_poolgate NAME MODE [VAR=VALUE...]: a fresh poolgate in $work/NAME, MODE `defaults` or
# `obs-off`, run with the pools-only configuration file; sets $pid and $port. Its stdout (the
# decision log) goes to decisions.jsonl, its stderr (the diagnostic log) to server.log.
start_poolgate() {
  local name=$1 mode=$2
  shift 2
  local dir="$work/$name"
  mkdir -p "$dir"
  cp -r "$repo/policies" "$dir/"
  port=$(free_port)
  local settings=(POOLGATE__SERVER__BIND="127.0.0.1:$port")
  if [[ $mode == obs-off ]]; then
    settings+=(POOLGATE__DECISION_LOG__ENABLED=false POOLGATE__LOG__FILTER=off)
  fi
  (
    cd "$dir"
    exec env "${settings[@]}" "$@" "$bin" --config "$work/poolgate.toml" serve >decisions.jsonl 2>server.log
  ) &
  pid=$!
  pids+=("$pid")
  wait_http "http://127.0.0.1:$port/healthz" "$pid"
  wait_http "http://127.0.0.1:$port/readyz" "$pid"
}

# stop_poolgate NAME PID PORT: reads the decision-log drop counter, stops the server, then counts
# its logs into results/declog-NAME and shows any warning or error it logged. (The table checks
# that a defaults server wrote decision records and an obs-off server none.)
stop_poolgate() {
  local name=$1 server_pid=$2 server_port=$3 dir="$work/$1" dropped lines
  dropped=$(curl -s "http://127.0.0.1:$server_port/metrics" |
    awk '/^poolgate_decision_log_dropped_total/ {sum += $2; found = 1} END {print found ? sum : "-"}')
  stop "$server_pid"
  lines=$(wc -l <"$dir/decisions.jsonl")
  echo "lines=$lines dropped=$dropped stderr_lines=$(wc -l <"$dir/server.log")" >"$work/results/declog-$name"
  rm -f "$dir/decisions.jsonl" # can be gigabytes; counted
  log "  poolgate ($name): decision log $lines line(s), $dropped dropped;" \
    "diagnostic log $(wc -l <"$dir/server.log") line(s)"
  if grep -q '"level":"\(WARN\|ERROR\)"' "$dir/server.log"; then
    log "  poolgate ($name) logged warnings or errors; the first ones:"
    grep '"level":"\(WARN\|ERROR\)"' "$dir/server.log" | head -5 | cut -c1-300 >&2
  fi
}

# start_baseline MODE: sets $pid and $port.
start_baseline() {
  port=$(free_port)
  "$baseline_bin" "$1" --bind "127.0.0.1:$port" --jwks "$jwks_dir/merchant.jwks.json" \
    >"$work/baseline-$1.log" 2>&1 &
  pid=$!
  pids+=("$pid")
}

# ask URL BODY [TOKEN]: one POST; prints the HTTP status, a space, the answer's body.
ask() {
  local url=$1 body=$2 token=${3:-} status
  local auth=()
  [[ -z $token ]] || auth=(-H "Authorization: Bearer $token")
  for _ in $(seq 1 100); do
    status=$(curl -s -o "$work/ask.json" -w '%{http_code}' -X POST "$url" "${auth[@]}" \
      -H 'Content-Type: application/json' -d "$body" || true)
    [[ $status != 000 ]] && break
    sleep 0.1
  done
  printf '%s %s\n' "$status" "$(cat "$work/ask.json" 2>/dev/null || true)"
}

# probe URL TOKEN BODY PATTERN COUNT: one request must answer 200 with PATTERN COUNT times.
probe() {
  local url=$1 token=$2 body=$3 pattern=$4 count=$5 answer
  answer=$(ask "$url" "$body" "$token")
  if [[ ${answer%% *} != 200 || $(grep -o "$pattern" <<<"${answer#* }" | wc -l) -ne $count ]]; then
    log "probe of $url failed: HTTP $answer"
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

# JWT segments: base64url without padding.
b64url_decode() {
  local text
  text=$(tr '_-' '/+' <<<"$1")
  while ((${#text} % 4)); do text+="="; done
  base64 -d <<<"$text"
}
b64url_encode() { base64 -w0 | tr '/+' '_-' | tr -d '='; }
sub_of() { b64url_decode "$(cut -d. -f2 <<<"$1")" | grep -o '"sub":"[^"]*"' | cut -d'"' -f4; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Tokens ------------------------------------------------------------------------------------
mkdir -p "$work/keys" "$work/results"
cp -r policies "$work/keys/"
mint() {
  (cd "$work/keys" && POOLGATE__LOG__FILTER=error "$bin" dev token --pool merchant --group merchant \
    --ttl 3h "$@")
}
probe_token=$(mint --sub probe --claim custom:org_id=o1)
other_org_token=$(mint --sub other --claim custom:org_id=o2)
# The other org's token with its payload saying org o1, still carrying o2's signature.
IFS=. read -r jwt_head jwt_payload jwt_signature <<<"$other_org_token"
tampered_token="$jwt_head.$(b64url_decode "$jwt_payload" | sed 's/"custom:org_id":"o2"/"custom:org_id":"o1"/' |
  b64url_encode).$jwt_signature"
[[ $tampered_token != "$other_org_token" ]] || { log "could not tamper with a token"; exit 1; }
log "minting 1,000 repeated tokens and $unique_tokens unique tokens (two processes)"
mint --sub rep --claim custom:org_id=o1 --count 1000 >"$work/repeated.txt"
half=$((unique_tokens / 2))
mint --sub rep --claim custom:org_id=o1 --users 1000 --count "$half" >"$work/unique-a.txt" &
minter=$!
pids+=("$minter")
mint --sub rep --claim custom:org_id=o1 --users 1000 --count $((unique_tokens - half)) >"$work/unique-b.txt"
wait "$minter"
cat "$work/unique-a.txt" "$work/unique-b.txt" >"$work/unique.txt"
rm "$work/unique-a.txt" "$work/unique-b.txt"
first_repeated=$(head -1 "$work/repeated.txt")
jwks_dir="$work/keys/.poolgate/dev-keys"

# --- poolgate's configuration file: the pools, nothing else ---------------------------------
# config/dev.toml's [pools.*] sections as written (issuers, client ids, token uses, attributes),
# with `dev_key = true` replaced by the key set the tokens above were minted with; its other
# sections ([log]) and comments are left out.
awk -v keys="$jwks_dir" '
  /^\[/ {
    keep = ($0 ~ /^\[pools\.[A-Za-z0-9_-]+\]$/)
    if (keep) { pool = $0; gsub(/^\[pools\.|\]$/, "", pool); if (sections++) print "" }
  }
  !keep || /^[[:space:]]*(#|$)/ { next }
  /^dev_key[[:space:]]*=[[:space:]]*true[[:space:]]*$/ { printf "jwks_file = \"%s/%s.jwks.json\"\n", keys, pool; next }
  { print }' config/dev.toml >"$work/poolgate.toml"
if grep '^\[' "$work/poolgate.toml" | grep -qv '^\[pools\.' ||
  [[ $(grep -c '^\[pools\.' "$work/poolgate.toml") -ne $(grep -c '^jwks_file' "$work/poolgate.toml") ]] ||
  grep -q dev_key "$work/poolgate.toml"; then
  log "could not turn config/dev.toml into a pools-only file with jwks_file:"
  cat "$work/poolgate.toml" >&2
  exit 1
fi
log "poolgate's configuration file:"
sed 's/^/    /' "$work/poolgate.toml" >&2

check_body='{"action":"read","resource":{"type":"Stock","id":"sku-1","attributes":{"org_id":"o1"}}}'
items=""
resources=""
for i in $(seq 1 10); do
  items+="${items:+,}{\"action\":\"read\",\"resource\":{\"type\":\"Stock\",\"id\":\"sku-$i\",\"attributes\":{\"org_id\":\"o1\"}}}"
  resources+="${resources:+,}{\"type\":\"Stock\",\"id\":\"sku-$i\",\"attributes\":{\"org_id\":\"o1\"}}"
done
batch_body="{\"items\":[$items]}"
permissions_body="{\"resources\":[$resources]}"
# Cerbos: the same question, the token in auxData (bench/tokens.lua fills @TOKEN@ and @SUB@).
cerbos_body='{"requestId":"bench","principal":{"id":"@SUB@","roles":["user"]},"resources":[{"actions":["read"],"resource":{"kind":"stock","id":"sku-1","attr":{"org_id":"o1"}}}],"auxData":{"jwt":{"token":"@TOKEN@","keySetId":"merchant"}}}'
cerbos_body_for() { sed -e "s/@TOKEN@/$1/" -e "s/@SUB@/$(sub_of "$1")/" <<<"$cerbos_body"; }

# --- Baselines and Cerbos: all stay up (idle between runs) -----------------------------------
start_baseline constant
constant_url="http://127.0.0.1:$port/v1/check"
start_baseline verify
verify_url="http://127.0.0.1:$port/v1/check"
probe "$constant_url" "$first_repeated" "$check_body" '"allow"' 1
probe "$verify_url" "$probe_token" "$check_body" '"allow"' 1

cerbos_http=$(free_port)
cerbos_grpc=$(free_port)
while [[ $cerbos_grpc == "$cerbos_http" ]]; do cerbos_grpc=$(free_port); done
CERBOS_HTTP_ADDR="127.0.0.1:$cerbos_http" CERBOS_GRPC_ADDR="127.0.0.1:$cerbos_grpc" \
  CERBOS_POLICIES="$repo/bench/cerbos/policies" CERBOS_JWKS="$jwks_dir/merchant.jwks.json" \
  "$cerbos_bin" server --config="$repo/bench/cerbos/config.yaml" --log-level=warn >"$work/cerbos.log" 2>&1 &
cerbos_pid=$!
pids+=("$cerbos_pid")
wait_http "http://127.0.0.1:$cerbos_http/_cerbos/health" "$cerbos_pid"
cerbos_url="http://127.0.0.1:$cerbos_http/api/check/resources"
# Cerbos must ask the same question: the allowed token allowed, the other org's token denied, the
# tampered token (o2's signature over a payload saying o1) refused or denied.
log "Cerbos $cerbos_version: checking its answers"
answer=$(ask "$cerbos_url" "$(cerbos_body_for "$first_repeated")")
log "  allowed token: HTTP $answer"
[[ ${answer%% *} == 200 && $answer == *'"read":"EFFECT_ALLOW"'* ]] || { log "Cerbos does not allow"; exit 1; }
answer=$(ask "$cerbos_url" "$(cerbos_body_for "$other_org_token")")
log "  other org's token: HTTP $answer"
[[ ${answer%% *} == 200 && $answer == *'"read":"EFFECT_DENY"'* ]] || { log "Cerbos does not deny"; exit 1; }
answer=$(ask "$cerbos_url" "$(cerbos_body_for "$tampered_token")")
log "  tampered token: HTTP $answer"
[[ $answer != *EFFECT_ALLOW* ]] || { log "Cerbos allows a tampered token: is JWT verification on?"; exit 1; }

# --- poolgate, per backend -------------------------------------------------------------------
# Each baseline runs right before the scenarios compared with it, and defaults right before
# obs-off, so that both see the same machine: on a shared 2-core machine, throughput drifts
# within minutes.
scenarios() {
  local backend=$1 def="http://127.0.0.1:$def_port" off="http://127.0.0.1:$off_port"
  # poolgate answers the same question as Cerbos: the other org denied, the tampered token refused.
  probe "$def/v1/check" "$other_org_token" "$check_body" '"decision":"deny"' 1
  answer=$(ask "$def/v1/check" "$check_body" "$tampered_token")
  log "  poolgate: the other org's token denied; tampered token: HTTP ${answer:0:120}"
  [[ $answer == 401* ]] || { log "poolgate does not refuse the tampered token"; return 1; }
  log "  baseline verify"
  drive "verify-$backend" "$verify_url" "$work/unique.txt" "$check_body"
  log "  (b) unique tokens, defaults"
  probe "$def/v1/check" "$probe_token" "$check_body" '"decision":"allow"' 1
  drive "b-$backend" "$def/v1/check" "$work/unique.txt" "$check_body"
  log "  (b) unique tokens, observability off"
  probe "$off/v1/check" "$probe_token" "$check_body" '"decision":"allow"' 1
  drive "b-off-$backend" "$off/v1/check" "$work/unique.txt" "$check_body"
  log "  baseline constant"
  drive warmup "$constant_url" "$work/repeated.txt" "$check_body" 1
  drive "constant-$backend" "$constant_url" "$work/repeated.txt" "$check_body"
  log "  (a) repeated tokens, defaults"
  probe "$def/v1/check" "$first_repeated" "$check_body" '"decision":"allow"' 1
  drive warmup "$def/v1/check" "$work/repeated.txt" "$check_body" 1
  drive "a-$backend" "$def/v1/check" "$work/repeated.txt" "$check_body"
  log "  (a) repeated tokens, observability off"
  probe "$off/v1/check" "$first_repeated" "$check_body" '"decision":"allow"' 1
  drive warmup "$off/v1/check" "$work/repeated.txt" "$check_body" 1
  drive "a-off-$backend" "$off/v1/check" "$work/repeated.txt" "$check_body"
  log "  Cerbos, repeated tokens"
  drive warmup "$cerbos_url" "$work/repeated.txt" "$cerbos_body" 1
  drive "cerbos-$backend" "$cerbos_url" "$work/repeated.txt" "$cerbos_body"
  log "  (c) batch of 10, defaults"
  probe "$def/v1/check/batch" "$first_repeated" "$batch_body" '"decision":"allow"' 10
  drive "c-$backend" "$def/v1/check/batch" "$work/repeated.txt" "$batch_body"
  log "  (d) permissions over 10 resources, defaults"
  probe "$def/v1/permissions" "$first_repeated" "$permissions_body" '"allowed_actions":\["read"\]' 10
  drive "d-$backend" "$def/v1/permissions" "$work/repeated.txt" "$permissions_body"
}

# run_backend BACKEND DEFAULTS_SETTING OBS_OFF_SETTING: a defaults and an obs-off server (each
# given its VAR=VALUE setting, if not empty), the scenarios, then stop both.
run_backend() {
  local backend=$1 def_setting=$2 off_setting=$3
  start_poolgate "$backend-defaults" defaults ${def_setting:+"$def_setting"}
  def_pid=$pid def_port=$port
  start_poolgate "$backend-obs-off" obs-off ${off_setting:+"$off_setting"}
  off_pid=$pid off_port=$port
  scenarios "$backend"
  stop_poolgate "$backend-defaults" "$def_pid" "$def_port"
  stop_poolgate "$backend-obs-off" "$off_pid" "$off_port"
  backends+=("$backend")
}

backends=()
log "poolgate on SQLite"
run_backend sqlite "" ""

if pg_isready -q -h 127.0.0.1; then
  # One database per server, so each starts as fresh as the SQLite ones.
  pg_prefix="poolgate_bench_$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
  for db in "${pg_prefix}_one" "${pg_prefix}_two"; do
    psql -h 127.0.0.1 -U postgres -qAt -c "CREATE DATABASE $db" >/dev/null
    pg_dbs+=("$db")
  done
  log "poolgate on PostgreSQL (databases ${pg_prefix}_one and _two)"
  run_backend postgres POOLGATE__DATABASE__URL="postgres://postgres@127.0.0.1:5432/${pg_prefix}_one" \
    POOLGATE__DATABASE__URL="postgres://postgres@127.0.0.1:5432/${pg_prefix}_two"
else
  log "PostgreSQL: pg_isready -h 127.0.0.1 does not answer; skipped"
fi

# --- The table ---------------------------------------------------------------------------------
# field NAME KEY: KEY of results/NAME ("" when there is none).
field() { [[ -s "$work/results/$1" ]] && tr ' ' '\n' <"$work/results/$1" | sed -n "s/^$2=//p" || true; }
# ratio A B: A/B to two decimals, "-" when either is missing; ms MICROSECONDS; at_least A B.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 <= 0) print "-"; else printf "%.2f", a / b }'; }
ms() { awk -v us="$1" 'BEGIN { if (us == "") print "-"; else if (us >= 1000) printf "%.2f ms", us / 1000; else printf "%d us", us }'; }
mib() { awk -v kib="$1" 'BEGIN { printf "%.1f MiB", kib / 1024 }'; }
at_least() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "-" && a != "" && a + 0 >= b + 0) }'; }

met=0
missed=0
# target TEXT VALUE OK [STRETCH_TEXT STRETCH_OK]: one indented line under a row.
target() {
  local text=$1 value=$2 ok=$3 verdict
  if [[ $ok == yes ]]; then
    verdict=met
    met=$((met + 1))
  else
    verdict=MISSED
    missed=$((missed + 1))
  fi
  if [[ $# -ge 5 ]]; then
    verdict+=", stretch $4 $([[ $5 == yes ]] && echo met || echo missed)"
  fi
  printf '      %-48s %10s   %s\n' "$text" "$value" "$verdict"
}
yes_if() { if "$@"; then echo yes; else echo no; fi; }

# row LABEL BACKEND NAME BASE: one line of the table; NAME and BASE name files in results/.
row() {
  local label=$1 backend=$2 name=$3 base=$4 rps flags=""
  if [[ ! -s "$work/results/$name" ]]; then
    printf '%-30s %-9s %9s\n' "$label" "$backend" "(not run)"
    return
  fi
  rps=$(field "$name" rps)
  if (($(field "$name" non2xx) + $(field "$name" errors) > 0)); then
    flags="  NON-2XX/ERRORS"
    missed=$((missed + 1))
  fi
  if [[ $name == b-* && $(field "$name" passes) -gt 1 ]]; then
    flags+="  tokens reused ($(field "$name" passes) passes): raise UNIQUE_TOKENS"
  fi
  printf '%-30s %-9s %9.0f %7s %10s %10s %8d %7d  %-9s%s\n' "$label" "$backend" "$rps" \
    "$([[ -z $base ]] && echo - || echo "$(ratio "$rps" "$(field "$base" rps)")x")" \
    "$(ms "$(field "$name" p50_us)")" "$(ms "$(field "$name" p99_us)")" \
    "$(field "$name" non2xx)" "$(field "$name" errors)" "$([[ -z $base ]] && echo - || echo "${base%-*}")" "$flags"
}

table() {
  local backend a b x s
  printf '\npoolgate %s (%s), Cerbos %s; wrk -t%s -c%s -d%ss on %s cores\n' \
    "$("$bin" --version | awk '{print $2}')" "$(git -C "$repo" describe --always --dirty 2>/dev/null || echo '?')" \
    "$cerbos_version" "$threads" "$connections" "$seconds" "$(nproc)"
  printf 'load average at the start %s, at the end %s (other processes compete for the cores when above 2)\n' \
    "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'defaults: config file with the pools only (JSON log at info on stderr, decision log on stdout);\n'
  printf 'obs-off: the same with POOLGATE__DECISION_LOG__ENABLED=false POOLGATE__LOG__FILTER=off\n'
  printf 'x-base: rps over the rps of the baseline named on the line, run just before it\n\n'
  printf '%-30s %-9s %9s %7s %10s %10s %8s %7s  %s\n' scenario backend rps x-base p50 p99 non-2xx errors baseline
  for backend in "${backends[@]}"; do
    row "baseline constant" "$backend" "constant-$backend" ""
    row "baseline verify" "$backend" "verify-$backend" ""
    row "(a) repeated, defaults" "$backend" "a-$backend" "constant-$backend"
    a=$(field "a-$backend" rps)
    x=$(ratio "$a" "$(field "constant-$backend" rps)")
    target ">= 0.50x constant" "${x}x" "$(yes_if at_least "$x" 0.50)" 0.75x "$(yes_if at_least "$x" 0.75)"
    x=$(ratio "$a" "$(field "verify-$backend" rps)")
    target ">= 1.50x verify" "${x}x" "$(yes_if at_least "$x" 1.50)"
    s=$(field "a-$backend" p99_us)
    target "p99 <= 5 ms" "$(ms "$s")" "$(yes_if at_least 5000 "$s")"
    x=$(ratio "$a" "$(field "a-off-$backend" rps)")
    target "within 10% of obs-off (defaults/obs-off)" "${x}x" "$(yes_if at_least "$x" 0.90)"
    row "(a) repeated, obs-off" "$backend" "a-off-$backend" "constant-$backend"
    row "(b) unique, defaults" "$backend" "b-$backend" "verify-$backend"
    b=$(field "b-$backend" rps)
    x=$(ratio "$b" "$(field "verify-$backend" rps)")
    target ">= 0.60x verify" "${x}x" "$(yes_if at_least "$x" 0.60)" 0.90x "$(yes_if at_least "$x" 0.90)"
    x=$(ratio "$b" "$(field "b-off-$backend" rps)")
    target "within 10% of obs-off (defaults/obs-off)" "${x}x" "$(yes_if at_least "$x" 0.90)"
    row "(b) unique, obs-off" "$backend" "b-off-$backend" "verify-$backend"
    row "(c) batch 10, defaults" "$backend" "c-$backend" "constant-$backend"
    row "(d) permissions 10, defaults" "$backend" "d-$backend" "constant-$backend"
    row "Cerbos, repeated" "$backend" "cerbos-$backend" "constant-$backend"
    x=$(ratio "$a" "$(field "cerbos-$backend" rps)")
    target "(a) defaults >= 15x Cerbos" "${x}x" "$(yes_if at_least "$x" 15)" 30x "$(yes_if at_least "$x" 30)"
  done
  printf '\ndecision log (stdout, to a file) and diagnostic log (stderr) of each server:\n'
  for backend in "${backends[@]}"; do
    for s in defaults obs-off; do
      printf '  %-20s decision log %s lines, %s dropped (poolgate_decision_log_dropped_total); stderr %s lines\n' \
        "$backend-$s" "$(field "declog-$backend-$s" lines)" "$(field "declog-$backend-$s" dropped)" \
        "$(field "declog-$backend-$s" stderr_lines)"
    done
    x=$(field "declog-$backend-defaults" lines)
    target "defaults: decision log has lines" "$x" "$(yes_if at_least "$x" 1)"
    x=$(field "declog-$backend-obs-off" lines)
    target "obs-off: decision log empty" "$x" "$([[ $x == 0 ]] && echo yes || echo no)"
  done
}
table >"$work/table.txt"
cat "$work/table.txt"

# --- Memory --------------------------------------------------------------------------------------
if [[ $rss_requests -gt 0 ]]; then
  log "memory run: fresh poolgate at the defaults on SQLite, $rss_requests requests over $unique_tokens unique tokens"
  start_poolgate rss defaults
  rss_pid=$pid rss_port=$port
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
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$rss_pid/status")
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$rss_pid/status")
  stop_poolgate rss "$rss_pid" "$rss_port"
  bad=$(($(field rss non2xx) + $(field rss errors)))
  printf '\nmemory run (SQLite, defaults): %s\n' "$(cut -d' ' -f2- "$work/results/rss")"
  printf 'decision log %s lines, %s dropped; VmRSS %s (%s before the run), VmHWM %s\n' \
    "$(field declog-rss lines)" "$(field declog-rss dropped)" "$(mib "$rss")" "$(mib "$rss_before")" "$(mib "$hwm")"
  target "VmRSS <= 150 MiB after the run" "$(mib "$rss")" "$(yes_if at_least $((150 * 1024)) "$rss")"
  target "no non-2xx answer or error" "$bad" "$([[ $bad -eq 0 ]] && echo yes || echo no)"
  x=$(field declog-rss lines)
  target "defaults: decision log has lines" "$x" "$(yes_if at_least "$x" 1)"
fi
printf '\ntargets: %d met, %d missed (a non-2xx answer or error on any line counts as missed)\n' "$met" "$missed"
