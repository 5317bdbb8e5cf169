#!/usr/bin/env bash
# Regression check of the inbound-call hot path, by instruction counts (no timing).
#
# Runs the `hotpath` example of telephony-service (dev profile, the one `cargo test` builds)
# under `valgrind --tool=callgrind` twice, with SMALL and LARGE signed voice webhooks, and
# divides the difference of instructions by the difference of webhooks: the instructions of one
# webhook through the router, without the start-up and seeding both runs share. Compares that
# with the committed baseline:
#   - more than FAIL_ABOVE × baseline (default 1.3): fails;
#   - less than WARN_BELOW × baseline (default 0.7): passes, and suggests updating the baseline.
#
# Usage:
#   scripts/hotpath-check.sh            # check (CI)
#   scripts/hotpath-check.sh --update   # measure and write the baseline
# Environment: SMALL (default 20), LARGE (default 120), FAIL_ABOVE, WARN_BELOW, BASELINE.
set -euo pipefail

cd "$(dirname "$0")/.."
BASELINE=${BASELINE:-crates/telephony-service/benches/hotpath-baseline.json}
SMALL=${SMALL:-20}
LARGE=${LARGE:-120}
FAIL_ABOVE=${FAIL_ABOVE:-1.3}
WARN_BELOW=${WARN_BELOW:-0.7}
update=false
case "${1:-}" in
  --update) update=true ;;
  "") ;;
  *) echo "usage: $0 [--update]" >&2; exit 2 ;;
esac

if ! command -v valgrind >/dev/null 2>&1; then
  echo "hotpath-check: installing valgrind" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq valgrind >&2
fi

# Built as the workspace's tests build it (the same features across the workspace), so after
# `cargo test --workspace` (CI's test step) nothing is compiled again; `-p telephony-service`
# alone would resolve other features and rebuild the dependencies.
cargo build --workspace --examples >&2
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
program="$target_dir/debug/examples/hotpath"

# Instructions of one whole run ("Collected" is the total of every thread).
instructions() {
  local log
  log=$(mktemp)
  if ! valgrind --tool=callgrind --callgrind-out-file=/dev/null "$program" "$1" 2>"$log"; then
    cat "$log" >&2
    rm -f "$log"
    echo "hotpath-check: the hot path failed under valgrind" >&2
    exit 1
  fi
  sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p' "$log"
  rm -f "$log"
}

small=$(instructions "$SMALL")
large=$(instructions "$LARGE")
if [ -z "$small" ] || [ -z "$large" ]; then
  echo "hotpath-check: could not read callgrind's instruction count" >&2
  exit 1
fi
per_webhook=$(( (large - small) / (LARGE - SMALL) ))
echo "hotpath-check: $per_webhook instructions per signed voice webhook ($SMALL run: $small, $LARGE run: $large)"

if $update; then
  mkdir -p "$(dirname "$BASELINE")"
  cat >"$BASELINE" <<EOF
{
  "what": "instructions per signed Twilio voice webhook through the router (callgrind, dev profile), from scripts/hotpath-check.sh --update",
  "instructions_per_webhook": $per_webhook,
  "small": $SMALL,
  "large": $LARGE,
  "rustc": "$(rustc --version)",
  "date": "$(date -u +%Y-%m-%d)"
}
EOF
  echo "hotpath-check: wrote $BASELINE"
  exit 0
fi

if [ ! -f "$BASELINE" ]; then
  echo "hotpath-check: no baseline at $BASELINE; create it with: scripts/hotpath-check.sh --update" >&2
  exit 1
fi
baseline=$(sed -n 's/.*"instructions_per_webhook": *\([0-9]*\).*/\1/p' "$BASELINE")
if [ -z "$baseline" ] || [ "$baseline" -le 0 ]; then
  echo "hotpath-check: unreadable baseline in $BASELINE" >&2
  exit 1
fi
ratio=$(awk -v a="$per_webhook" -v b="$baseline" 'BEGIN { printf "%.3f", a / b }')
echo "hotpath-check: baseline $baseline, ratio $ratio (fails above $FAIL_ABOVE, suggests an update below $WARN_BELOW)"
if awk -v r="$ratio" -v f="$FAIL_ABOVE" 'BEGIN { exit !(r > f) }'; then
  echo "hotpath-check: FAIL: the hot path costs ${ratio}× its baseline. If this is intended, update the baseline: scripts/hotpath-check.sh --update" >&2
  exit 1
fi
if awk -v r="$ratio" -v w="$WARN_BELOW" 'BEGIN { exit !(r < w) }'; then
  echo "hotpath-check: WARNING: the hot path costs ${ratio}× its baseline: faster. Record it: scripts/hotpath-check.sh --update" >&2
fi
echo "hotpath-check: ok"
