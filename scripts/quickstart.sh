#!/usr/bin/env bash
# Builds mrjob and dfs, generates a seeded 64 MiB text corpus (once), and counts its words with
# `mrjob wordcount` on all local cores. Prints the ten most frequent words.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "building release binaries (first time: a few minutes)..."
# Both binaries: the README's next section uses target/release/dfs as well as mrjob.
cargo build --release -q -p examples -p dfs
data=${DATA_DIR:-target/quickstart}
if [ ! -d "$data/input" ]; then
  echo "generating 64 MiB of seeded text in $data/input..."
  target/release/benchtool gen-text zipf 64MiB "$data/input" --seed 1
fi
rm -rf "$data/output"
target/release/mrjob wordcount "$data/input" "$data/output"
echo "Top words (output in $data/output):"
# Not `| head -10`: head exits early, sort then dies of SIGPIPE, and under pipefail the whole
# script would fail (exit 141). awk reads everything and prints the first ten lines.
sort -t$'\t' -k2,2nr "$data"/output/part-r-* | awk 'NR <= 10'
