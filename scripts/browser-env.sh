#!/usr/bin/env bash
# Finds Debian's chromium for the browser tests of the web pages (examples/tests/web/), and
# installs it when it is missing and this is a Debian-like machine run as root. Prints the
# browser's path on stdout. A browser that cannot be had is an error (exit 1), never a silent
# skip, so the browser test cannot pass without one.
set -euo pipefail

if path=$(command -v chromium); then
    echo "$path"
    exit 0
fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "browser-env: installing Debian's chromium (about 120 MB)..." >&2
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >&2
    command -v chromium
    exit 0
fi
echo "browser-env: chromium is missing and cannot be installed here (not root, or no apt-get):" >&2
echo "  install it (Debian: apt-get install chromium), then run the tests again" >&2
exit 1
