#!/usr/bin/env bash
# Creates target/pyenv, a Python virtual environment with Yelp's mrjob from PyPI, for the tests
# and benchmarks that run Python jobs (examples/tests/mrjob_hadoop.rs, bench/python_wc.py).
#
# Idempotent and quick when the venv already has the pinned version; a failed install is an
# error (exit 1), never a silent skip, so a test that needs mrjob cannot pass without it.
#
#   scripts/python-env.sh            # prints the venv's python on stdout when done
#   PYTHON=python3.12 scripts/python-env.sh
#   MRJOB_VENV=/elsewhere scripts/python-env.sh
set -euo pipefail

# The mrjob release the Hadoop front door (mapreduce/src/hadoop/) was checked against.
# 0.7.4 (2020) is the latest on PyPI; it declares Python 2.7 and 3.4-3.7 and works through 3.12
# (mrjob/util.py imports `pipes`, which Python 3.13 removed).
MRJOB_VERSION=0.7.4

root="$(cd "$(dirname "$0")/.." && pwd)"
# (Not PYENV_DIR: the pyenv tool, which may provide python3 here, reads that name.)
venv="${MRJOB_VENV:-$root/target/pyenv}"
python="${PYTHON:-python3}"

have() {
    [ -x "$venv/bin/python" ] &&
        "$venv/bin/python" -c "import mrjob, sys; sys.exit(mrjob.__version__ != '$MRJOB_VERSION')" \
            2>/dev/null
}

if have; then
    echo "$venv/bin/python"
    exit 0
fi

if ! command -v "$python" >/dev/null; then
    echo "python-env: $python not found (set PYTHON=...)" >&2
    exit 1
fi
if ! "$python" -c 'import sys; sys.exit(not ((3, 5) <= sys.version_info[:2] < (3, 13)))'; then
    echo "python-env: mrjob $MRJOB_VERSION needs Python 3.5 to 3.12; $python is $("$python" -V 2>&1)" >&2
    exit 1
fi

echo "python-env: creating $venv with mrjob==$MRJOB_VERSION" >&2
rm -rf "$venv"
if ! "$python" -m venv "$venv" >&2; then
    echo "python-env: '$python -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 1
fi
if ! "$venv/bin/python" -m pip install --quiet "mrjob==$MRJOB_VERSION" >&2; then
    echo "python-env: pip could not install mrjob==$MRJOB_VERSION (network? index?)" >&2
    rm -rf "$venv"
    exit 1
fi
have || { echo "python-env: mrjob $MRJOB_VERSION did not import after install" >&2; exit 1; }
echo "$venv/bin/python"
