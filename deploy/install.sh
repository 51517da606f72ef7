#!/usr/bin/env bash
# Installs mrjob on this machine: the `dfs` and `mrjob` binaries in /usr/local/bin, the `mrjob`
# service user, the state and config directories, and the systemd units (not enabled: which
# daemons a machine runs is its role, chosen by provision.sh or by hand).
#
# Usage: deploy/install.sh [BIN_DIR]     (as root; BIN_DIR holds dfs and mrjob, default
#                                         target/release)
# Environment: MRJOB_STATE_DIR, the state directory (default /var/lib/mrjob). It must match the
# --state-dir given to `dfs config hosts`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin_dir=${1:-target/release}
state_dir=${MRJOB_STATE_DIR:-/var/lib/mrjob}
conf_dir=/etc/mrjob
unit_dir=/etc/systemd/system

die() {
  echo "install.sh: $*" >&2
  exit 1
}

[[ $(id -u) -eq 0 ]] || die "run as root: it writes /usr/local/bin, $conf_dir, $unit_dir and $state_dir"
for bin in dfs mrjob; do
  [[ -x $bin_dir/$bin ]] || die "$bin_dir/$bin not found: run 'cargo build --release' or pass the directory holding dfs and mrjob"
done
[[ $state_dir == /* ]] || die "MRJOB_STATE_DIR must be an absolute path, not $state_dir"

# The daemons run as a system user of their own, so a bug in them can write only to the state
# directory, not to the rest of the machine.
if ! id -u mrjob >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "$state_dir" --no-create-home \
    --shell /usr/sbin/nologin mrjob
fi

# install(1) writes a new file and renames it, so a daemon running the old binary keeps running
# until its unit is restarted.
install -m 0755 "$bin_dir/dfs" "$bin_dir/mrjob" /usr/local/bin/
install -d -m 0750 -o mrjob -g mrjob "$state_dir"
install -d -m 0755 "$conf_dir"
install -m 0644 "$here"/systemd/*.service "$unit_dir/"
systemctl daemon-reload

echo "install.sh: installed dfs and mrjob ($(/usr/local/bin/dfs --version)), units in $unit_dir, state in $state_dir"
