#!/usr/bin/env bash
# Builds mrjob and dfs, generates a seeded 64 MiB text corpus (once), and counts its words with
# `mrjob wordcount` on all local cores. Prints the ten most frequent words.
set -euo pipefail
cd "$(dirname "$0")/.."
# raft-rs's prost codec generates its message types with `protoc` at build time (Debian's
# protobuf-compiler). Installed here when this is a Debian-like machine and we are root;
# otherwise a clear message instead of a build error deep in a dependency.
if ! command -v protoc >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing protoc (Debian's protobuf-compiler), needed to build raft-rs..."
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q protobuf-compiler >/dev/null
  else
    echo "quickstart: protoc is needed to build (raft-rs's prost codec): install it first," >&2
    echo "  e.g. 'sudo apt-get install protobuf-compiler' or 'brew install protobuf'" >&2
    exit 1
  fi
fi
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
