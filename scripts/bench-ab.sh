#!/usr/bin/env bash
# A quick side-by-side of two gateway builds on this machine (see docs/PERFORMANCE.md): seeds a
# fresh database, starts the gateway binary of GWBIN (default: this checkout's release build;
# its telephony-seed too, when GWBIN has one) and drives signed voice webhooks at it, each a
# new call (webhook-load signs a pool of requests with unique CallSids from the seed's
# templates before each phase): 1,000 req/s open loop for
# 6 s (p50/p99/p999), then 32 connections closed loop for 5 s (throughput). Prints one JSON line
# per phase; its "repeated" counts requests sent again because the phase outgrew the pool. The
# closed loop also reports the gateway's and the load generator's CPU per request, and a line
# with the machine's idle share and PostgreSQL's CPU (in cores) over 3 of its seconds (with
# REF=1, the reference's closed loop gets the same line).
#
#   cargo build --release -p telephony-gateway -p telephony-seed -p webhook-load -p twiml-reference
#   DB=sqlite scripts/bench-ab.sh                      # this build, SQLite
#   DB=postgres GWBIN=/tmp/old-target/release scripts/bench-ab.sh   # another build, PostgreSQL
# Settings: DB (sqlite | postgres, in a fresh database tg_ab on 127.0.0.1:5432), NUMBERS (1000),
# CALLED (how many of them the requests call; default all), GWBIN, CLOSED_POOL (distinct
# requests for the closed loop, default 130,000 per second of it), HISTORY, BEFORE_HISTORY_SQL,
# AFTER_SEED_SQL and REF (below). Run builds alternately, several times: this machine's speed
# drifts by up to 1.7x over seconds, so single runs are noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release
GW=${GWBIN:-$BIN}/telephony-gateway
# The seed of the same build when GWBIN holds one: it migrates the database to that build's
# schema.
SEED=$BIN/telephony-seed
[ -x "${GWBIN:-$BIN}/telephony-seed" ] && SEED=${GWBIN:-$BIN}/telephony-seed
W=$(mktemp -d)
gw=""
cleanup() { [ -n "$gw" ] && kill "$gw" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
if [ "${DB:-sqlite}" = postgres ]; then
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS tg_ab" -c "CREATE DATABASE tg_ab" >/dev/null
  URL=postgres://postgres@127.0.0.1:5432/tg_ab
else
  URL="sqlite://$W/gw.db?mode=rwc"
fi
PUBLIC_URL=http://127.0.0.1:18082
export TELEPHONY_DATABASE_URL=$URL TELEPHONY_PUBLIC_URL=$PUBLIC_URL TELEPHONY_LISTEN=127.0.0.1:18082 \
  TELEPHONY_MASTER_KEY_FILE="$W/master.key" TELEPHONY_AGENT_TOKEN_KEY_FILE="$W/agent.key"
"$GW" keys init >/dev/null 2>&1
"$SEED" --database-url "$URL" --master-key-file "$W/master.key" --public-url "$PUBLIC_URL" \
  --manifest "$W/manifest.json" --orgs 100 --connections-per-org 2 --numbers "${NUMBERS:-1000}" \
  --templates-out "$W/templates.jsonl" ${CALLED:+--called-numbers "$CALLED"} >/dev/null 2>&1
# Runs the SQL on standard input on the seeded database (psql, or SQLite through Python's
# pysqlite3, `pip install pysqlite3-binary`: the schema's call key uses `unhex`, which needs
# SQLite 3.41, newer than Debian 12's sqlite3 shell), stopping at the first error.
db_sql() {
  if [ "${DB:-sqlite}" = postgres ]; then
    psql -q -h 127.0.0.1 -U postgres -d tg_ab -v ON_ERROR_STOP=1 >/dev/null
  else
    python3 -c 'import sys, pysqlite3.dbapi2 as sqlite
db = sqlite.connect(sys.argv[1])
db.executescript(sys.stdin.read())
db.commit()' "$W/gw.db"
  fi
}
# BEFORE_HISTORY_SQL: SQL run on the seeded database before HISTORY's records are inserted: a
# schema change (an index) that the history's inserts should shape as a running gateway's do.
if [ -n "${BEFORE_HISTORY_SQL:-}" ]; then
  db_sql <<<"$BEFORE_HISTORY_SQL"
fi
# HISTORY=N: N call records (finished calls of a day before, random call ids) inserted before
# the run, as in a gateway that has answered N calls, then checkpointed.
if [ "${HISTORY:-0}" -gt 0 ]; then
  if [ "${DB:-sqlite}" = postgres ]; then
    db_sql <<SQL
INSERT INTO call_records (id, org_id, provider, carrier_call_id, number, direction, status,
                          started_at, updated_at, number_id, agent_id)
SELECT '00000000-0000-7000-8000-' || lpad(i::text, 12, '0'), n.org_id, 'twilio',
       'CA' || md5(random()::text), n.e164, 'inbound', 'completed', now() - interval '1 day',
       now() - interval '1 day', n.id, n.agent_id
FROM generate_series(1, $HISTORY) i, (SELECT id, org_id, e164, agent_id FROM numbers LIMIT 1) n;
CHECKPOINT;
SQL
  else
    db_sql <<SQL
INSERT INTO call_records (id, org_id, provider, carrier_call_id, number, direction, status,
                          started_at, updated_at, number_id, agent_id)
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $HISTORY),
     n AS (SELECT id, org_id, e164, agent_id FROM numbers LIMIT 1)
SELECT printf('00000000-0000-7000-8000-%012d', i), n.org_id, 'twilio',
       'CA' || lower(hex(randomblob(16))), n.e164, 'inbound', 'completed',
       strftime('%Y-%m-%d %H:%M:%f+00:00', 'now', '-1 day'),
       strftime('%Y-%m-%d %H:%M:%f+00:00', 'now', '-1 day'), n.id, n.agent_id
FROM c, n;
SQL
    # Since migration 12 the registry writes a new record's key itself: the history's keys
    # (canonical call ids and record ids), in key order, where no trigger wrote them.
    keyed_by_trigger=$(python3 -c 'import sys, pysqlite3.dbapi2 as sqlite
print(sqlite.connect(sys.argv[1]).execute(
    "SELECT count(*) FROM sqlite_master WHERE name = ?", ("tr_call_records_key",)).fetchone()[0])' "$W/gw.db")
    if db_sql <<<"SELECT 1 FROM call_keys LIMIT 0" 2>/dev/null && [ "$keyed_by_trigger" = 0 ]; then
      db_sql <<SQL
INSERT INTO call_keys (call_key, record)
SELECT unhex(substr(carrier_call_id, 3)), unhex(id, '-') FROM call_records
WHERE id LIKE '00000000-0000-7000-8000-%' ORDER BY 1;
SQL
    fi
    # The history's keys merged, as a gateway's writer merges them (every 131,072 calls),
    # where the call-id index is the two key tables of migration 11.
    if db_sql <<<"SELECT 1 FROM call_keys LIMIT 0" 2>/dev/null; then
      db_sql <<SQL
INSERT INTO call_keys (call_key, record) SELECT call_key, record FROM call_keys_recent ORDER BY call_key;
DELETE FROM call_keys_recent;
SQL
    fi
    db_sql <<<"PRAGMA wal_checkpoint(TRUNCATE);"
  fi
fi
# AFTER_SEED_SQL: SQL run on the seeded database before the gateway starts: to try a schema or
# setting change without a build, or to fill tables.
if [ -n "${AFTER_SEED_SQL:-}" ]; then
  db_sql <<<"$AFTER_SEED_SQL"
fi
# Distinct requests (calls) per phase: open loop 1,000/s × (1 + 6) s and slack, closed loop
# 130,000/s × (1 + 5) s.
OPEN_POOL=$((1000 * (1 + 6) + 2000))
CLOSED_POOL=${CLOSED_POOL:-$((130000 * (1 + 5)))}
sync
"$GW" serve >"$W/gw.log" 2>&1 &
gw=$!
for _ in $(seq 100); do curl -fs -o /dev/null "$PUBLIC_URL/readyz" && break; sleep 0.1; done
"$BIN/webhook-load" --target "$PUBLIC_URL" --templates "$W/templates.jsonl" --pool "$OPEN_POOL" --duration 6 \
  --warmup 1 --label open --rate 1000 \
  | jq -c '{phase: "open 1000/s", throughput_rps, p50_ms, p99_ms, p999_ms, errors, repeated}'
# During 3 of the closed loop's measured seconds (from 0.5 s after its 1 s warm-up, which starts
# once webhook-load has signed its pool): the machine's idle share (/proc/stat) and the CPU of
# PostgreSQL's processes (clock ticks, all of the server's processes; 0 on SQLite).
ticks_of_postgres() {
  local sum=0 pid stat
  for pid in $(pgrep -u postgres postgres 2>/dev/null); do
    read -r -a stat <"/proc/$pid/stat" 2>/dev/null || continue
    sum=$((sum + stat[13] + stat[14]))
  done
  echo "$sum"
}
# probe MARK PHASE: once the file MARK exists, waits 1.5 s, then prints PHASE's line of those
# 3 seconds (run in the background beside the closed loop, which creates MARK).
probe() {
  for _ in $(seq 600); do [ -e "$1" ] && break; sleep 0.05; done
  sleep 1.5
  read -r _ u n s i w q sq st _ </proc/stat
  p0=$(ticks_of_postgres)
  sleep 3
  read -r _ u2 n2 s2 i2 w2 q2 sq2 st2 _ </proc/stat
  p1=$(ticks_of_postgres)
  total=$(((u2 + n2 + s2 + i2 + w2 + q2 + sq2 + st2) - (u + n + s + i + w + q + sq + st)))
  jq -nc --arg phase "$2" --argjson idle "$(((i2 - i) * 1000 / total))" \
    --argjson iowait "$(((w2 - w) * 1000 / total))" \
    --argjson ticks "$((p1 - p0))" --argjson hz "$(getconf CLK_TCK)" \
    '{phase: $phase, idle_permille: $idle, iowait_permille: $iowait,
      postgres_cores: ($ticks / $hz / 3)}'
}
# Copies webhook-load's standard error to ours, and creates the file $1 once its pool is signed.
mark_signed() {
  while IFS= read -r line; do
    printf '%s\n' "$line" >&2
    case $line in *generated*) touch "$1" ;; esac
  done
}
probe "$W/signed" "closed 32, 3 s of it" &
probe_pid=$!
"$BIN/webhook-load" --target "$PUBLIC_URL" --templates "$W/templates.jsonl" --pool "$CLOSED_POOL" --duration 5 \
  --warmup 1 --label closed --connections 32 --server-pid "$gw" \
  2> >(mark_signed "$W/signed") \
  | jq -c '{phase: "closed 32", throughput_rps, p50_ms, p99_ms, errors, repeated,
            gateway_us: .cpu.server_us_per_request, load_us: .cpu.load_us_per_request}'
wait "$probe_pid" 2>/dev/null || true
# REF=1: the same open and closed loops against the bare hyper reference (bins/twiml-reference),
# for the ratio and the host's own latency on this boot of the machine.
if [ -n "${REF:-}" ]; then
  "$BIN/twiml-reference" 127.0.0.1:18083 2>/dev/null &
  ref=$!
  for _ in $(seq 100); do curl -s -o /dev/null -d x http://127.0.0.1:18083/ && break; sleep 0.1; done
  "$BIN/webhook-load" --target http://127.0.0.1:18083 --templates "$W/templates.jsonl" --pool "$OPEN_POOL" \
    --duration 6 --warmup 1 --label reference-open --rate 1000 2>/dev/null \
    | jq -c '{phase: "reference open 1000/s", throughput_rps, p50_ms, p99_ms, p999_ms, errors}'
  probe "$W/signed-ref" "reference closed 32, 3 s of it" &
  probe_pid=$!
  "$BIN/webhook-load" --target http://127.0.0.1:18083 --templates "$W/templates.jsonl" --pool "$CLOSED_POOL" \
    --duration 5 --warmup 1 --label reference --connections 32 --server-pid "$ref" \
    2> >(mark_signed "$W/signed-ref" 2>/dev/null) \
    | jq -c '{phase: "reference closed 32", throughput_rps, p50_ms, p99_ms, errors,
              server_us: .cpu.server_us_per_request, load_us: .cpu.load_us_per_request}'
  wait "$probe_pid" 2>/dev/null || true
  kill "$ref" 2>/dev/null || true
fi
