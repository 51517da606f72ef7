#!/usr/bin/env bash
# Builds a real text corpus that nobody here wrote, reproducibly, from a Debian package: by
# default the Linux kernel source (linux-source-6.1), whose text files (.c .h .S .rst .txt
# .dts .dtsi .yaml .sh .py .pl .json, Kconfig*, Makefile*) are concatenated in bytewise-sorted
# path order and cut at line ends into 64 MiB files (OUTDIR/text-NNNNN.txt) until SIZE bytes
# (default 1GiB; the last line may be cut). The same .deb always gives the same bytes.
#
# Usage: bench/corpus_debian.sh OUTDIR [SIZE]
# Environment:
#   PACKAGE    Debian package (default linux-source-6.1; `apt-cache search linux-source`)
#   VERSION    its version (default: apt's candidate, else the newest cached .deb); pin it,
#              or DEB, to rebuild an identical corpus later
#   DEB        an already-downloaded .deb to use (no apt, no network)
#   DEB_CACHE  where downloaded .debs are kept (default ~/.cache/mr-bench-debs)
#   BENCHTOOL  the benchtool binary used to count tokens (default target/release/benchtool,
#              built if missing)
# Needs: dpkg-deb, tar, xz, split, sha256sum; apt-get only to download (no root: `apt-get
# download` writes into DEB_CACHE, but it needs package lists, which `apt-get update` (root)
# fetches). About 1.5 GiB of scratch space beside OUTDIR while it runs, plus SIZE for the corpus.
# Prints the package, version, .deb SHA-256, the corpus's bytes and its distinct-token count;
# writes the same into OUTDIR/_SOURCE (names starting with _ are not input to any row).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { echo "corpus_debian: $*" >&2; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: bench/corpus_debian.sh OUTDIR [SIZE]  (SIZE like 64MiB, 1GiB; default 1GiB)"
OUTDIR="$1"
SIZE_TEXT="${2:-1GiB}"
PACKAGE="${PACKAGE:-linux-source-6.1}"
DEB_CACHE="${DEB_CACHE:-$HOME/.cache/mr-bench-debs}"
BENCHTOOL="${BENCHTOOL:-$ROOT/target/release/benchtool}"
EXTENSIONS=(c h S rst txt dts dtsi yaml sh py pl json)
NAMES=('Kconfig*' 'Makefile*')

size_bytes() {
    local t="${1,,}" n unit
    n="${t%%[!0-9]*}"; unit="${t#"$n"}"
    [ -n "$n" ] || die "bad SIZE: $1"
    case "$unit" in
        "" ) echo "$n" ;;
        k|kib) echo $((n << 10)) ;;
        m|mib) echo $((n << 20)) ;;
        g|gib) echo $((n << 30)) ;;
        *) die "bad SIZE unit: $1 (use KiB, MiB or GiB)" ;;
    esac
}
SIZE="$(size_bytes "$SIZE_TEXT")"

# The candidate version apt would download, or nothing.
apt_candidate() {
    command -v apt-cache >/dev/null || return 0
    apt-cache policy "$PACKAGE" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" { print $2 }'
}

# Finds or downloads the .deb; prints its path.
find_deb() {
    if [ -n "${DEB:-}" ]; then
        [ -f "$DEB" ] || die "DEB=$DEB does not exist"
        echo "$DEB"; return
    fi
    mkdir -p "$DEB_CACHE"
    local version="${VERSION:-$(apt_candidate)}" cached
    if [ -z "$version" ]; then
        # No network-side answer: the newest cached .deb of the package, if any.
        cached="$(ls "$DEB_CACHE/${PACKAGE}_"*.deb 2>/dev/null | sort -V | tail -n 1 || true)"
        [ -n "$cached" ] && { echo "$cached"; return; }
        die "no version of $PACKAGE known to apt and none cached in $DEB_CACHE.
  Either run (as root) 'apt-get update' so that 'apt-cache policy $PACKAGE' shows a candidate,
  or download the .deb yourself (any Debian mirror, or https://snapshot.debian.org/ for an old
  version) and pass DEB=/path/to/${PACKAGE}_VERSION_all.deb."
    fi
    cached="$(ls "$DEB_CACHE/${PACKAGE}_${version//:/%3a}_"*.deb 2>/dev/null | head -n 1 || true)"
    [ -n "$cached" ] && { echo "$cached"; return; }
    command -v apt-get >/dev/null || die "apt-get not found: download ${PACKAGE} ${version} and pass DEB=path"
    echo "downloading ${PACKAGE}=${version} into $DEB_CACHE" >&2
    (cd "$DEB_CACHE" && apt-get download -q "${PACKAGE}=${version}" >&2) || die "apt-get download ${PACKAGE}=${version} failed.
  If the version is gone from the archive, pin another (VERSION=, see 'apt-cache policy $PACKAGE'),
  run 'apt-get update' (root) for fresh lists, or fetch the .deb from https://snapshot.debian.org/
  and pass DEB=path."
    ls "$DEB_CACHE/${PACKAGE}_${version//:/%3a}_"*.deb | head -n 1
}

# Extracts the .deb, and every source tarball inside it, under $1.
extract() {
    local dest="$1" tarball
    dpkg-deb --fsys-tarfile "$DEB_PATH" | tar -x -C "$dest/deb"
    while IFS= read -r -d '' tarball; do
        echo "extracting $(basename "$tarball")" >&2
        tar -x -C "$dest/src" -f "$tarball"
        rm -f "$tarball"
    done < <(find "$dest/deb" -type f \( -name '*.tar.xz' -o -name '*.tar.gz' -o -name '*.tar.bz2' \) -print0)
}

# NUL-separated text file paths under the current directory, bytewise sorted.
text_files() {
    local expr=() e
    for e in "${EXTENSIONS[@]}"; do expr+=(-o -name "*.$e"); done
    for e in "${NAMES[@]}"; do expr+=(-o -name "$e"); done
    find . -type f \( "${expr[@]:1}" \) -print0 | LC_ALL=C sort -z
}

DEB_PATH="$(find_deb)"
NAME="$(dpkg-deb -f "$DEB_PATH" Package)"
VERS="$(dpkg-deb -f "$DEB_PATH" Version)"
SHA="$(sha256sum "$DEB_PATH" | cut -d' ' -f1)"
SOURCE_LINE="package $NAME $VERS, .deb sha256 $SHA, size $SIZE"
if [ -f "$OUTDIR/_SOURCE" ] && head -n 1 "$OUTDIR/_SOURCE" | grep -qxF "$SOURCE_LINE"; then
    echo "corpus already built in $OUTDIR:"
    cat "$OUTDIR/_SOURCE"
    exit 0
fi
echo "$NAME $VERS ($(basename "$DEB_PATH"), sha256 $SHA)"

mkdir -p "$(dirname "$OUTDIR")"
SCRATCH="$(mktemp -d "${OUTDIR%/}.scratch.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT
mkdir -p "$SCRATCH/deb" "$SCRATCH/src" "$SCRATCH/out"
extract "$SCRATCH"
AVAILABLE="$( (cd "$SCRATCH" && text_files | du -cb --files0-from=- | tail -n 1 | cut -f1) )"
[ "$AVAILABLE" -ge "$SIZE" ] || die "$NAME $VERS has only $AVAILABLE bytes of text files, less than SIZE=$SIZE"
# head ends the pipe early on purpose: cat's SIGPIPE is expected (and xargs says so), so no
# pipefail here; any other complaint from cat or xargs is an error.
set +o pipefail
(cd "$SCRATCH" && text_files | xargs -0 cat 2>"$SCRATCH/cat.err") | head -c "$SIZE" \
    | split -C 64M -d -a 5 --additional-suffix=.txt - "$SCRATCH/out/text-"
set -o pipefail
if grep -v 'terminated by signal 13' "$SCRATCH/cat.err" >&2; then
    die "reading the package's text files failed"
fi
WRITTEN="$(cat "$SCRATCH"/out/text-* | wc -c)"
[ "$WRITTEN" -eq "$SIZE" ] || die "wrote $WRITTEN bytes, not $SIZE"
rm -rf "$OUTDIR"
mv "$SCRATCH/out" "$OUTDIR"
FILES="$(cd "$SCRATCH" && text_files | tr -cd '\0' | wc -c)"

if [ ! -x "$BENCHTOOL" ]; then
    (cd "$ROOT" && cargo build --release -q -p examples --bin benchtool)
fi
STATS="$("$BENCHTOOL" wordcount-tuned "$OUTDIR" "$SCRATCH/counts.txt" --threads "$(nproc)" --stats 2>&1)"
{
    echo "$SOURCE_LINE"
    echo "text files in the package: $FILES ($AVAILABLE bytes): ${EXTENSIONS[*]/#/*.} ${NAMES[*]}"
    echo "corpus: $STATS, in $(ls "$OUTDIR" | grep -c '^text-') files"
    echo "built by: bench/corpus_debian.sh OUTDIR $SIZE_TEXT (PACKAGE=$NAME VERSION=$VERS)"
} > "$OUTDIR/_SOURCE"
cat "$OUTDIR/_SOURCE"
