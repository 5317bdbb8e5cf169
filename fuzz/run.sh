#!/bin/sh
# Runs every fuzz target for N seconds each (default 20). cargo-fuzz needs nightly features;
# RUSTC_BOOTSTRAP=1 lets the pinned stable toolchain provide them. Builds go to fuzz/target.
# Install once with: cargo install cargo-fuzz --locked
set -eu
seconds="${1:-20}"
cd "$(dirname "$0")"
for target in $(cargo fuzz list); do
    echo "== $target (${seconds}s)"
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$seconds"
done
