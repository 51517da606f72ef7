#!/usr/bin/env bash
# Builds mrjob, generates a seeded 64 MiB text corpus (once), and counts its words with
# `mrjob wordcount` on all local cores. Prints the ten most frequent words.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p examples
data=${DATA_DIR:-target/quickstart}
if [ ! -d "$data/input" ]; then
  target/release/benchtool gen-text zipf 64MiB "$data/input" --seed 1
fi
rm -rf "$data/output"
target/release/mrjob wordcount "$data/input" "$data/output"
echo "Top words (output in $data/output):"
cat "$data"/output/part-r-* | sort -t$'\t' -k2,2nr | head -10
