#!/usr/bin/env bash
# The inbound webhook load benchmark, in one command (see docs/PERFORMANCE.md).
#
#   scripts/bench-webhooks.sh            # full run: 10 s phases, 1,000 then 1,000,000 numbers
#   QUICK=1 scripts/bench-webhooks.sh    # quick run: 3 s phases, 1,000 then 100,000 numbers
#
# For each database (a SQLite file; PostgreSQL in a fresh database on $PG_ADMIN_URL, skipped
# with a message when it cannot be reached), it:
#   1. seeds BASE_NUMBERS numbers over ORGS organizations × CONNECTIONS_PER_ORG Twilio
#      connections (bins/telephony-seed, bulk inserts) and writes voice-webhook templates, one
#      per seeded number; every load phase below (bins/webhook-load) first signs, untimed, a
#      pool of requests from them, each a new call (a CallSid unique to the run), enough for
#      the phase (OPEN_POOL, CLOSED_POOL), the reference's phases the same as the gateway's;
#   2. starts the gateway (release) and records its idle resident set;
#   3. walks a LISTING-number carrier account (the carrier emulator) page by page through
#      GET /v1/carriers/{id}/available-numbers and records the gateway's peak resident set;
#   4. drives RATE requests/s, open loop, at the gateway and at the bare hyper reference
#      (bins/twiml-reference): p50/p99/p999; resident set under load (sampled VmRSS, VmHWM);
#   5. drives both closed loop with CONNECTIONS workers for throughput, ROUNDS times each,
#      gateway and reference back to back (order alternating), and reports the median of the
#      rounds' ratios (the machine's speed drifts between runs a minute apart);
#   6. seeds SCALE numbers into a second database and starts a second gateway on it beside the
#      first, then drives the RATE run at both in ROUNDS pairs (order alternating), the second
#      gateway's calls going to as many numbers as the base run (BASE_NUMBERS, spread over all
#      SCALE): the median round's p50 ratio, only the size of the registry differs; then one
#      more pair, the second run with every call to a number not called before (no route
#      cached; OPEN_POOL templates, spread over all SCALE): p50_scale_all ratio.
# Each run also reports the CPU time (user and system) the server and the load generator spent
# per request over its measured phase (server_us, load_us; they share the machine's cores).
# Results: a summary table on stdout, target/bench/<database>.json and target/bench/machine.json.
# Each phase's summary has "repeated": requests sent again because the phase outgrew its pool
# (0 when every request was a new call); <database>.json gathers them under "repeated", and the
# stdout summary names any phase where it is not 0.
#
# Settings (environment): DURATION (s, default 10), WARMUP (s, 2), RATE (1000), CONNECTIONS
# (32), BASE_NUMBERS (1000), SCALE (1000000), ORGS (1000), CONNECTIONS_PER_ORG (2), LISTING
# (10000), DATABASES ("sqlite postgres"), PG_ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres),
# CLOSED_POOL (distinct requests per closed-loop run, default 130000 × (DURATION + WARMUP)),
# ROUNDS (closed-loop pairs of gateway and reference, and open-loop pairs of the base and the
# scale gateway, default 3 each; the median ratios are reported),
# RUST_LOG for the gateway (default: its own, info), SKIP_BUILD=1 to reuse the release binaries.
set -euo pipefail

cd "$(dirname "$0")/.."
if [ "${QUICK:-0}" = "1" ]; then
  DURATION=${DURATION:-3}; WARMUP=${WARMUP:-1}; SCALE=${SCALE:-100000}; LISTING=${LISTING:-2000}
fi
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
RATE=${RATE:-1000}
CONNECTIONS=${CONNECTIONS:-32}
BASE_NUMBERS=${BASE_NUMBERS:-1000}
SCALE=${SCALE:-1000000}
ORGS=${ORGS:-1000}
CONNECTIONS_PER_ORG=${CONNECTIONS_PER_ORG:-2}
LISTING=${LISTING:-10000}
ROUNDS=${ROUNDS:-3}
DATABASES=${DATABASES:-sqlite postgres}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
GATEWAY_ADDR=127.0.0.1:18080
SCALE_ADDR=127.0.0.1:18081
REFERENCE_ADDR=127.0.0.1:18090
EMULATOR_ADDR=127.0.0.1:18070
PUBLIC_URL="http://$GATEWAY_ADDR"
SCALE_URL="http://$SCALE_ADDR"

for tool in curl jq awk; do
  command -v "$tool" >/dev/null || { echo "bench: needs $tool" >&2; exit 1; }
done

say() { echo "bench: $*" >&2; }

# The binaries the benchmark runs; each is the package of the same name.
BINARIES=(telephony-gateway twiml-reference webhook-load telephony-seed carrier-emulator)
if [ "${SKIP_BUILD:-0}" = "1" ]; then
  say "SKIP_BUILD=1: using the release binaries already built"
else
  say "building the release binaries (once)"
  cargo build --release "${BINARIES[@]/#/--package=}" >&2
fi
target_dir=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
BIN="$target_dir/release"
for binary in "${BINARIES[@]}"; do
  [ -x "$BIN/$binary" ] || { say "missing $BIN/$binary: build it, or run without SKIP_BUILD=1"; exit 1; }
done
OUT="$target_dir/bench"
mkdir -p "$OUT"
WORK=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- machine -------------------------------------------------------------------------------
model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem_kb=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)
jq -n --arg model "$model" --argjson nproc "$(nproc)" --argjson mem_kb "$mem_kb" \
  --arg kernel "$(uname -r)" --arg rustc "$(rustc --version)" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
  --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  '{cpu: $model, nproc: $nproc, memory_gib: (($mem_kb / 1048576 * 10 | round) / 10), kernel: $kernel, rustc: $rustc, loadavg_at_start: $load, date: $date}' \
  >"$OUT/machine.json"
say "machine: $(jq -c . "$OUT/machine.json")"

# --- helpers -------------------------------------------------------------------------------
rss_kb() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }

# Samples VmRSS of $1 every 0.2 s into $2 (the largest value seen) until killed.
sample_rss() {
  local pid=$1 file=$2 max=0 now
  while kill -0 "$pid" 2>/dev/null; do
    now=$(rss_kb "$pid" VmRSS 2>/dev/null || echo 0)
    if [ -n "$now" ] && [ "$now" -gt "$max" ]; then max=$now; echo "$max" >"$file"; fi
    sleep 0.2
  done
}

wait_http() {
  for _ in $(seq 1 200); do
    if curl -fsS -o /dev/null "$1"; then return 0; fi
    sleep 0.1
  done
  say "$1 did not answer"; return 1
}

load() { # load LABEL TARGET TEMPLATES POOL [extra webhook-load flags...]
  local label=$1 target=$2 templates=$3 pool=$4 server_pid; shift 4
  # The server's CPU time over the measured phase is reported per request (cpu in the summary).
  case $target in
    "$PUBLIC_URL") server_pid=$gateway_pid ;;
    "$SCALE_URL") server_pid=$scale_pid ;;
    *) server_pid=$reference_pid ;;
  esac
  "$BIN/webhook-load" --target "$target" --templates "$templates" --pool "$pool" \
    --duration "$DURATION" --warmup "$WARMUP" --label "$label" --server-pid "$server_pid" "$@"
}

# Seeds the base database (or, with SEED_AS=scale, the scale one: its own manifest and URL).
seed() { # seed DB_URL NUMBERS TEMPLATES_OUT [CALLED_NUMBERS]
  local manifest=$WORK/manifest.json public=$PUBLIC_URL
  if [ "${SEED_AS:-}" = scale ]; then manifest=$WORK/manifest-scale.json public=$SCALE_URL; fi
  "$BIN/telephony-seed" --database-url "$1" --master-key-file "$WORK/master.key" \
    --public-url "$public" --manifest "$manifest" --orgs "$ORGS" \
    --connections-per-org "$CONNECTIONS_PER_ORG" --numbers "$2" --templates-out "$3" \
    ${4:+--called-numbers "$4"}
}

gateway_pid=""
scale_pid=""
started_pid=""
start_gateway() { # start_gateway DB_URL [ADDR]: the gateway's pid in started_pid
  local addr=${2:-$GATEWAY_ADDR}
  TELEPHONY_DATABASE_URL=$1 TELEPHONY_LISTEN=$addr TELEPHONY_PUBLIC_URL="http://$addr" \
    TELEPHONY_MASTER_KEY_FILE="$WORK/master.key" TELEPHONY_AGENT_TOKEN_KEY_FILE="$WORK/agent.key" \
    TELEPHONY_TWILIO_API_BASE="http://$EMULATOR_ADDR/" \
    "$BIN/telephony-gateway" serve >>"$WORK/gateway.log" 2>&1 &
  started_pid=$!
  pids+=("$started_pid")
  wait_http "http://$addr/readyz"
}
stop_gateway() { # stop_gateway PID
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Runs the caller's functions run_a ROUND and run_b ROUND (each prints a webhook-load summary)
# in ROUNDS pairs, back to back, the order alternating: this machine's speed drifts by up to
# 1.7x over seconds (a virtual machine on a shared host), so a ratio is only taken between
# neighbouring runs. Writes the rounds, lowest ratio first, to $WORK/PREFIX-rounds.json as
# {KEY_A: summary, KEY_B: summary, ratio, round}, RATIO being a jq expression of $a and $b and
# round the round's place in the order run (1 first).
paired_rounds() { # paired_rounds PREFIX KEY_A KEY_B RATIO LABEL
  local prefix=$1 key_a=$2 key_b=$3 ratio=$4 label=$5 round
  rm -f "$WORK/$prefix"-*.json
  for round in $(seq 1 "$ROUNDS"); do
    say "$label, round $round of $ROUNDS"
    if [ $((round % 2)) -eq 1 ]; then
      run_a "$round" >"$WORK/$prefix-a-$round.json"; run_b "$round" >"$WORK/$prefix-b-$round.json"
    else
      run_b "$round" >"$WORK/$prefix-b-$round.json"; run_a "$round" >"$WORK/$prefix-a-$round.json"
    fi
    jq -n --slurpfile a "$WORK/$prefix-a-$round.json" --slurpfile b "$WORK/$prefix-b-$round.json" \
      --arg ka "$key_a" --arg kb "$key_b" --argjson round "$round" \
      "{(\$ka): \$a[0], (\$kb): \$b[0], ratio: ($ratio), round: \$round}" >"$WORK/$prefix-round-$round.json"
  done
  jq -s 'sort_by(.ratio)' "$WORK/$prefix"-round-*.json >"$WORK/$prefix-rounds.json"
}

# Distinct requests (calls) webhook-load signs for each run: enough for the phase (warm-up and
# measured), so none is sent twice.
OPEN_POOL=$(( RATE * (DURATION + WARMUP) + RATE ))
CLOSED_POOL=${CLOSED_POOL:-$(( 130000 * (DURATION + WARMUP) ))}

# --- the shared reference server and carrier emulator ---------------------------------------
"$BIN/twiml-reference" "$REFERENCE_ADDR" 2>>"$WORK/reference.log" &
reference_pid=$!
pids+=("$reference_pid")
say "carrier emulator with a $LISTING-number Twilio account"
LISTING_SID=AC0000000000000000000000000000ee01
LISTING_TOKEN=bench-listing-account-auth-token
awk -v n="$LISTING" -v sid="$LISTING_SID" -v token="$LISTING_TOKEN" 'BEGIN {
  printf "{\"twilio\": {\"accounts\": [{\"sid\": \"%s\", \"auth_token\": \"%s\", \"numbers\": [", sid, token
  for (i = 0; i < n; i++) printf "%s{\"phone_number\": \"+1%d\"}", (i ? "," : ""), 3020000000 + i
  printf "]}]}}\n"
}' >"$WORK/listing-seed.json"
"$BIN/carrier-emulator" --seed "$WORK/listing-seed.json" --listen "$EMULATOR_ADDR" \
  >"$WORK/emulator.out" 2>>"$WORK/emulator.log" &
pids+=("$!")
sleep 0.5

# --- one database --------------------------------------------------------------------------
bench_database() { # bench_database NAME DB_URL SCALE_DB_URL (two empty databases)
  local name=$1 url=$2 scale_url=$3
  rm -f "$WORK/manifest.json" "$WORK/manifest-scale.json" "$WORK/master.key" "$WORK/agent.key"
  say "[$name] keys and seeding $BASE_NUMBERS numbers ($ORGS orgs × $CONNECTIONS_PER_ORG connections)"
  TELEPHONY_DATABASE_URL=$url TELEPHONY_PUBLIC_URL=$PUBLIC_URL TELEPHONY_MASTER_KEY_FILE="$WORK/master.key" \
    TELEPHONY_AGENT_TOKEN_KEY_FILE="$WORK/agent.key" "$BIN/telephony-gateway" keys init >/dev/null
  local t0 t1
  t0=$(date +%s.%N)
  seed "$url" "$BASE_NUMBERS" "$WORK/base.jsonl"
  t1=$(date +%s.%N)
  local seed_base_s
  seed_base_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  # The seed's writes reach the disk before anything is measured: the kernel's write-back of
  # them would otherwise compete with the gateway's commits.
  sync

  start_gateway "$url"
  gateway_pid=$started_pid
  sleep 1
  local idle_kb
  idle_kb=$(rss_kb "$gateway_pid" VmRSS)

  # The 10k-number account, page by page through the REST API.
  say "[$name] walking the $LISTING-number account through the REST API"
  local key conn cursor pages=0 listed=0 page
  key=$(TELEPHONY_DATABASE_URL=$url TELEPHONY_PUBLIC_URL=$PUBLIC_URL TELEPHONY_MASTER_KEY_FILE="$WORK/master.key" \
    TELEPHONY_AGENT_TOKEN_KEY_FILE="$WORK/agent.key" "$BIN/telephony-gateway" org create --name "listing" | jq -r .api_key)
  conn=$(curl -fsS -H "authorization: Bearer $key" -H 'content-type: application/json' \
    -d "{\"name\": \"big\", \"provider\": \"twilio\", \"account_sid\": \"$LISTING_SID\", \"auth_token\": \"$LISTING_TOKEN\"}" \
    "$PUBLIC_URL/v1/carriers" | jq -r .id)
  echo 0 >"$WORK/listing-rss"
  sample_rss "$gateway_pid" "$WORK/listing-rss" &
  local sampler=$!
  local l0 l1
  l0=$(date +%s.%N)
  cursor=""
  while :; do
    page=$(curl -fsS -G -H "authorization: Bearer $key" \
      ${cursor:+--data-urlencode "cursor=$cursor"} "$PUBLIC_URL/v1/carriers/$conn/available-numbers")
    pages=$((pages + 1))
    listed=$((listed + $(jq '.data | length' <<<"$page")))
    cursor=$(jq -r '.next_cursor // empty' <<<"$page")
    [ -n "$cursor" ] || break
  done
  l1=$(date +%s.%N)
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  local listing_peak_kb listing_hwm_kb listing_s
  listing_peak_kb=$(cat "$WORK/listing-rss")
  listing_hwm_kb=$(rss_kb "$gateway_pid" VmHWM)
  listing_s=$(awk -v a="$l0" -v b="$l1" 'BEGIN { printf "%.1f", b - a }')
  say "[$name] listed $listed numbers in $pages pages in ${listing_s}s"

  say "[$name] open loop at $RATE/s: gateway, then reference"
  echo 0 >"$WORK/load-rss"
  sample_rss "$gateway_pid" "$WORK/load-rss" &
  sampler=$!
  load "$name gateway open $BASE_NUMBERS" "$PUBLIC_URL" "$WORK/base.jsonl" "$OPEN_POOL" --rate "$RATE" >"$WORK/gw-open.json"
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  local load_peak_kb load_hwm_kb
  load_peak_kb=$(cat "$WORK/load-rss")
  load_hwm_kb=$(rss_kb "$gateway_pid" VmHWM)
  load "$name reference open" "http://$REFERENCE_ADDR" "$WORK/base.jsonl" "$OPEN_POOL" --rate "$RATE" >"$WORK/ref-open.json"

  # The closed loop in ROUNDS pairs, gateway and reference, the median round reported.
  run_a() { load "$name gateway closed $1" "$PUBLIC_URL" "$WORK/base.jsonl" "$CLOSED_POOL" --connections "$CONNECTIONS"; }
  run_b() { load "$name reference closed $1" "http://$REFERENCE_ADDR" "$WORK/base.jsonl" "$CLOSED_POOL" --connections "$CONNECTIONS"; }
  paired_rounds closed gateway reference '$a[0].throughput_rps / $b[0].throughput_rps' \
    "[$name] closed loop, $CONNECTIONS connections"
  jq '.[length / 2 | floor].gateway' "$WORK/closed-rounds.json" >"$WORK/gw-closed.json"
  jq '.[length / 2 | floor].reference' "$WORK/closed-rounds.json" >"$WORK/ref-closed.json"

  # Scale: a second gateway on a second database holding SCALE numbers, beside the first (which
  # keeps its BASE_NUMBERS numbers and the calls of the runs above), both in the same rounds.
  say "[$name] seeding $SCALE numbers into a second database"
  t0=$(date +%s.%N)
  SEED_AS=scale seed "$scale_url" "$SCALE" "$WORK/scale.jsonl" "$BASE_NUMBERS"
  t1=$(date +%s.%N)
  # One template per request of the run: every call to a different number, spread over all.
  SEED_AS=scale seed "$scale_url" "$SCALE" "$WORK/scale-all.jsonl" "$OPEN_POOL"
  local seed_scale_s
  seed_scale_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  sync
  start_gateway "$scale_url" "$SCALE_ADDR"
  scale_pid=$started_pid
  sleep 1
  local idle_scale_kb
  idle_scale_kb=$(rss_kb "$scale_pid" VmRSS)
  # The open loop in ROUNDS pairs, base and scale gateway, the median round reported.
  run_a() { load "$name gateway open $BASE_NUMBERS $1" "$PUBLIC_URL" "$WORK/base.jsonl" "$OPEN_POOL" --rate "$RATE"; }
  run_b() { load "$name gateway open $SCALE $1" "$SCALE_URL" "$WORK/scale.jsonl" "$OPEN_POOL" --rate "$RATE"; }
  paired_rounds scale base scale '$b[0].p50_ms / $a[0].p50_ms' \
    "[$name] open loop at $RATE/s, $BASE_NUMBERS and $SCALE numbers"
  jq '.[length / 2 | floor].scale' "$WORK/scale-rounds.json" >"$WORK/gw-open-scale.json"
  jq '.[length / 2 | floor].base' "$WORK/scale-rounds.json" >"$WORK/gw-open-beside-scale.json"
  say "[$name] open loop at $RATE/s, $BASE_NUMBERS numbers, then $SCALE with each call to a number not called before"
  load "$name gateway open $BASE_NUMBERS all" "$PUBLIC_URL" "$WORK/base.jsonl" "$OPEN_POOL" --rate "$RATE" >"$WORK/base-open-all.json"
  load "$name gateway open $SCALE all" "$SCALE_URL" "$WORK/scale-all.jsonl" "$OPEN_POOL" --rate "$RATE" >"$WORK/gw-open-scale-all.json"
  stop_gateway "$scale_pid"
  stop_gateway "$gateway_pid"

  jq -n \
    --arg database "$name" \
    --argjson settings "{\"duration_s\": $DURATION, \"warmup_s\": $WARMUP, \"rate\": $RATE, \"connections\": $CONNECTIONS, \"orgs\": $ORGS, \"connections_per_org\": $CONNECTIONS_PER_ORG, \"base_numbers\": $BASE_NUMBERS, \"scale_numbers\": $SCALE, \"listing_numbers\": $LISTING, \"closed_rounds\": $ROUNDS, \"open_pool\": $OPEN_POOL, \"closed_pool\": $CLOSED_POOL}" \
    --slurpfile gw_open "$WORK/gw-open.json" --slurpfile ref_open "$WORK/ref-open.json" \
    --slurpfile gw_closed "$WORK/gw-closed.json" --slurpfile ref_closed "$WORK/ref-closed.json" \
    --slurpfile closed_rounds "$WORK/closed-rounds.json" \
    --slurpfile gw_open_scale "$WORK/gw-open-scale.json" \
    --slurpfile scale_rounds "$WORK/scale-rounds.json" \
    --slurpfile gw_open_beside "$WORK/gw-open-beside-scale.json" \
    --slurpfile gw_open_scale_all "$WORK/gw-open-scale-all.json" \
    --slurpfile base_open_all "$WORK/base-open-all.json" \
    --argjson seed_base_s "$seed_base_s" --argjson seed_scale_s "$seed_scale_s" \
    --argjson idle_kb "$idle_kb" --argjson idle_scale_kb "$idle_scale_kb" \
    --argjson load_peak_kb "$load_peak_kb" --argjson load_hwm_kb "$load_hwm_kb" \
    --argjson listing_peak_kb "$listing_peak_kb" --argjson listing_hwm_kb "$listing_hwm_kb" \
    --argjson listing_pages "$pages" --argjson listing_numbers "$listed" --argjson listing_s "$listing_s" \
    '{database: $database, settings: $settings,
      gateway_open: $gw_open[0], reference_open: $ref_open[0],
      gateway_closed: $gw_closed[0], reference_closed: $ref_closed[0],
      gateway_open_beside_scale: $gw_open_beside[0],
      gateway_open_scale: $gw_open_scale[0],
      gateway_open_scale_all: $gw_open_scale_all[0],
      repeated: {gateway_open: $gw_open[0].repeated, reference_open: $ref_open[0].repeated,
                 gateway_closed: $gw_closed[0].repeated, reference_closed: $ref_closed[0].repeated,
                 gateway_open_scale: ([$scale_rounds[0][] | .scale.repeated, .base.repeated] | add),
                 gateway_open_scale_all: ($gw_open_scale_all[0].repeated + $base_open_all[0].repeated)},
      throughput_ratio: ($gw_closed[0].throughput_rps / $ref_closed[0].throughput_rps),
      throughput_ratio_rounds: [$closed_rounds[0][] | .ratio],
      closed_rounds: $closed_rounds[0],
      p50_ratio_scale: $scale_rounds[0][$scale_rounds[0] | length / 2 | floor].ratio,
      p50_ratio_scale_rounds: [$scale_rounds[0][] | .ratio],
      scale_rounds: $scale_rounds[0],
      p50_ratio_scale_all: ($gw_open_scale_all[0].p50_ms / $base_open_all[0].p50_ms),
      p99_open_runs: ([$gw_open[0].p99_ms, ($scale_rounds[0][] | .base.p99_ms), $base_open_all[0].p99_ms] | sort),
      base_open_beside_scale_all: $base_open_all[0],
      seeding_s: {base: $seed_base_s, scale: $seed_scale_s},
      rss_kib: {idle: $idle_kb, idle_at_scale: $idle_scale_kb, load_sampled_peak: $load_peak_kb,
                load_hwm: $load_hwm_kb, listing_sampled_peak: $listing_peak_kb, listing_hwm: $listing_hwm_kb},
      listing: {numbers: $listing_numbers, pages: $listing_pages, seconds: $listing_s}}' \
    >"$OUT/$name.json"
  say "[$name] wrote $OUT/$name.json"
}

ran=()
for db in $DATABASES; do
  case "$db" in
    sqlite)
      bench_database sqlite "sqlite://$WORK/bench.db?mode=rwc" "sqlite://$WORK/bench-scale.db?mode=rwc"
      ran+=(sqlite)
      ;;
    postgres)
      if ! command -v psql >/dev/null || ! psql "$PG_ADMIN_URL" -qAtc 'select 1' >/dev/null 2>&1; then
        say "[postgres] SKIPPED: no PostgreSQL at $PG_ADMIN_URL (set PG_ADMIN_URL)"
        continue
      fi
      dbname="tg_bench_$$"
      psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $dbname" -c "CREATE DATABASE ${dbname}_scale" >/dev/null
      pg_url="${PG_ADMIN_URL%/*}/$dbname"
      status=0
      bench_database postgres "$pg_url" "${pg_url}_scale" || status=$?
      psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $dbname WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS ${dbname}_scale WITH (FORCE)" >/dev/null || true
      [ "$status" -eq 0 ] || exit "$status"
      ran+=(postgres)
      ;;
    *) say "unknown database $db"; exit 2 ;;
  esac
done

# --- summary -------------------------------------------------------------------------------
echo
echo "machine: $(jq -r '"\(.cpu), \(.nproc) cores, \(.memory_gib) GiB, load \(.loadavg_at_start), \(.rustc)"' "$OUT/machine.json")"
printf '%-9s %-38s %10s %8s %8s %8s %8s %10s %10s\n' database run rps p50_ms p99_ms p999_ms errors server_us load_us
for db in "${ran[@]}"; do
  jq -r --arg db "$db" '
    [["gateway open \(.settings.rate)/s, \(.settings.base_numbers) nos", .gateway_open],
     ["reference open \(.settings.rate)/s", .reference_open],
     ["gateway closed \(.settings.connections) conns", .gateway_closed],
     ["reference closed \(.settings.connections) conns", .reference_closed],
     ["gateway open \(.settings.rate)/s, \(.settings.base_numbers) nos, beside", .gateway_open_beside_scale],
     ["gateway open \(.settings.rate)/s, \(.settings.scale_numbers) nos", .gateway_open_scale],
     ["  ... every call a new number", .gateway_open_scale_all]][]
    | [$db, .[0], (.[1].throughput_rps | floor), .[1].p50_ms, .[1].p99_ms, .[1].p999_ms, .[1].errors,
       (.[1].cpu.server_us_per_request // "-"), (.[1].cpu.load_us_per_request // "-")]
    | @tsv' "$OUT/$db.json" | awk -F'\t' '{ printf "%-9s %-38s %10s %8.3f %8.3f %8.3f %8s %10.1f %10.1f\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }'
done
echo
printf '%-9s %14s %14s %14s %10s %10s %12s %12s %12s\n' database throughput_x p50_scale_x p50_scale_all_x idle_MiB load_MiB listing_MiB seed_base_s seed_scale_s
for db in "${ran[@]}"; do
  jq -r --arg db "$db" '[$db, .throughput_ratio, .p50_ratio_scale, .p50_ratio_scale_all, .rss_kib.idle / 1024, ([.rss_kib.load_sampled_peak, .rss_kib.load_hwm] | max) / 1024,
      .rss_kib.listing_hwm / 1024, .seeding_s.base, .seeding_s.scale] | @tsv' "$OUT/$db.json" \
    | awk -F'\t' '{ printf "%-9s %14.3f %14.3f %14.3f %10.1f %10.1f %12.1f %12s %12s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }'
done
for db in "${ran[@]}"; do
  jq -r --arg db "$db" '"\($db) closed-loop ratio by round (lowest first; the median is reported): \([.throughput_ratio_rounds[] | . * 1000 | round / 1000] | map(tostring) | join(" "))",
    "\($db) scale p50 ratio by round (lowest first; the median is reported): \([.p50_ratio_scale_rounds[] | . * 1000 | round / 1000] | map(tostring) | join(" "))",
    "\($db) p99 ms at \(.settings.rate)/s in every run of the \(.settings.base_numbers)-number gateway (lowest first): \(.p99_open_runs | map(tostring) | join(" "))"' "$OUT/$db.json"
done
for db in "${ran[@]}"; do
  jq -r --arg db "$db" '.repeated | to_entries[] | select(.value != 0)
    | "\($db) \(.key): \(.value) requests sent again (the phase outgrew its pool; CLOSED_POOL sets the closed loop pool)"' \
    "$OUT/$db.json"
done
echo
echo "targets: throughput_x >= 0.5, p99 < 2 ms at 1,000/s, p50_scale_x <= 1.2; results in $OUT/"
