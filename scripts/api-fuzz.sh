#!/usr/bin/env bash
# Fuzzes the REST API of the real gateway binary with schemathesis (https://schemathesis.io):
# starts the carrier emulator and the gateway on a fresh SQLite database, creates an
# organization, connects the demo Twilio account (so lists and ids are real), then lets
# schemathesis generate requests from /openapi.json with the organization's Bearer key and
# checks that no response is a server error (`not_a_server_error`).
#
# Bounded: MAX_EXAMPLES per operation (default 20) and BUDGET_SECS for the whole run
# (default 300). Usage:
#   bash scripts/api-fuzz.sh                 # debug build
#   PROFILE=release bash scripts/api-fuzz.sh
# Environment: MAX_EXAMPLES, BUDGET_SECS, PROFILE (debug|release), SKIP_BUILD=1 (use the
# binaries already in the target folder, as CI does after `cargo test`), FUZZ_VENV (where
# schemathesis is installed with pip if missing; default target/api-fuzz-venv), SEED.
set -euo pipefail
cd "$(dirname "$0")/.."

max_examples="${MAX_EXAMPLES:-20}"
budget="${BUDGET_SECS:-300}"
profile="${PROFILE:-debug}"
venv="${FUZZ_VENV:-target/api-fuzz-venv}"
seed="${SEED:-1}"

if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "==> installing schemathesis into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis
fi
"$venv/bin/schemathesis" --version

bin="${CARGO_TARGET_DIR:-target}/$profile"
if [ "${SKIP_BUILD:-0}" = 1 ] && [ -x "$bin/telephony-gateway" ] && [ -x "$bin/carrier-emulator" ]; then
  echo "==> using the binaries already built in $bin"
elif [ "$profile" = release ]; then
  echo "==> building the gateway and the emulator ($profile)"
  cargo build --release -p telephony-gateway -p carrier-emulator
else
  echo "==> building the gateway and the emulator ($profile)"
  cargo build -p telephony-gateway -p carrier-emulator
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$bin/carrier-emulator" --seed crates/telephony-emulator/seeds/demo.json --listen 127.0.0.1:0 \
  >"$work/emulator.out" 2>"$work/emulator.err" &
pids+=("$!")
for _ in $(seq 1 100); do grep -q 'http://' "$work/emulator.out" 2>/dev/null && break; sleep 0.1; done
emulator="$(head -n 1 "$work/emulator.out" | awk '{print $NF}')"
emulator="${emulator%/}"
echo "emulator: $emulator"

port="$(free_port)"
gateway="http://127.0.0.1:$port"
export TELEPHONY_DATABASE_URL="sqlite://$work/gateway.db?mode=rwc"
export TELEPHONY_LISTEN="127.0.0.1:$port"
export TELEPHONY_PUBLIC_URL="$gateway"
export TELEPHONY_MASTER_KEY_FILE="$work/master.key"
export TELEPHONY_AGENT_TOKEN_KEY_FILE="$work/agent.key"
export TELEPHONY_TWILIO_API_BASE="$emulator/"
export TELEPHONY_TELNYX_API_BASE="$emulator/v2"
export RUST_LOG="${RUST_LOG:-warn}"

key="$("$bin/telephony-gateway" org create --name fuzz | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')"
"$bin/telephony-gateway" serve 2>"$work/gateway.log" &
pids+=("$!")
for _ in $(seq 1 300); do curl -fsS "$gateway/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$gateway/readyz" >/dev/null
echo "gateway: $gateway"

# Real data for the list endpoints and real ids in the examples.
curl -fsS -X POST "$gateway/v1/carriers" -H "authorization: Bearer $key" -H 'content-type: application/json' \
  -d '{"name":"demo","provider":"twilio","account_sid":"AC00000000000000000000000000000001","auth_token":"demo-twilio-auth-token-0001"}' >/dev/null
connection="$(curl -fsS -X POST "$gateway/v1/carriers" -H "authorization: Bearer $key" -H 'content-type: application/json' \
  -d '{"name":"demo 2","provider":"twilio","account_sid":"AC00000000000000000000000000000001","auth_token":"demo-twilio-auth-token-0001"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
curl -fsS -X POST "$gateway/v1/agents" -H "authorization: Bearer $key" -H 'content-type: application/json' \
  -d '{"name":"Ada","target":"wss://agents.example.com/media"}' >/dev/null
curl -fsS -X POST "$gateway/v1/numbers/import" -H "authorization: Bearer $key" -H 'content-type: application/json' \
  -d "{\"connection_id\":\"$connection\",\"e164\":\"+14155550101\"}" >/dev/null

echo "==> schemathesis: $max_examples examples per operation, budget ${budget}s"
start=$(date +%s)
set +e
timeout --signal=INT "$budget" "$venv/bin/schemathesis" run "$gateway/openapi.json" \
  --url "$gateway" \
  -H "Authorization: Bearer $key" \
  --checks not_a_server_error \
  --max-examples "$max_examples" \
  --seed "$seed" \
  --request-timeout 10 \
  --workers 1 \
  --report junit --report-junit-path "$work/junit.xml" \
  2>&1 | tee "$work/schemathesis.out"
status=${PIPESTATUS[0]}
set -e
elapsed=$(( $(date +%s) - start ))

operations=$(grep -o '<testcase ' "$work/junit.xml" 2>/dev/null | wc -l || true)
failures=$(grep -o '<failure' "$work/junit.xml" 2>/dev/null | wc -l || true)
echo
echo "==> figures: schemathesis exit $status after ${elapsed}s; $operations operations tested," \
  "$failures failing (junit); gateway warnings logged: $(grep -c WARN "$work/gateway.log" || true)"
if ! kill -0 "${pids[1]}" 2>/dev/null; then
  echo "the gateway died during the run:"; tail -n 50 "$work/gateway.log"; exit 1
fi
if [ "$status" -eq 124 ]; then
  echo "time budget of ${budget}s exhausted"; exit 1
fi
exit "$status"
