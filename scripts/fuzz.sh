#!/usr/bin/env bash
# Fuzzes every decoder (fuzz/fuzz_targets/): builds all targets once, then runs each for
# FUZZ_SECONDS (default 20) from its committed seed corpus. Fails on any crash, panic, timeout
# or oversized allocation, naming the input that caused it (fuzz/artifacts/<target>/). Prints
# each target's runs and runs per second.
#
# cargo fuzz needs nightly flags (-Z sanitizer=address); the CI machine has stable Rust only, so
# RUSTC_BOOTSTRAP=1 lets stable accept them (stable ships the AddressSanitizer runtime).
# FUZZ_SANITIZER=none builds without AddressSanitizer (quicker to build and run; the crates'
# own code forbids `unsafe`, so ASan guards only dependencies).
# Usage: scripts/fuzz.sh [TARGET...]   (default: every target)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${FUZZ_SECONDS:-20}
sanitizer=${FUZZ_SANITIZER:-address}
export RUSTC_BOOTSTRAP=1
export CARGO_INCREMENTAL=0

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi

if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

start=$(date +%s)
cargo fuzz build -O -s "$sanitizer"
echo "fuzz: built the targets in $(($(date +%s) - start)) s"

# New inputs go to a scratch copy, so that a run does not touch the committed corpus.
scratch=target/fuzz-corpus
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  log="target/fuzz-$t.log"
  # -timeout: one input running this long is a hang. -malloc_limit_mb: one allocation this
  # large is a finding (a length field believed before it was checked). -rss_limit_mb likewise
  # for the whole process.
  if ! cargo fuzz run -O -s "$sanitizer" "$t" "$scratch/$t" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -malloc_limit_mb=256 -rss_limit_mb=1024 \
    -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: target $t FAILED; the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  echo "fuzz: $t: ${runs:-?} runs in ${seconds} s ($(( ${runs:-0} / seconds )) per second), no crash"
done
echo "fuzz: ${#targets[@]} targets passed in $(($(date +%s) - start)) s in all"
