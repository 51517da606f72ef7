#!/usr/bin/env bash
# Provisions one machine of a mrjob cluster. Vagrant runs it on every VM (see the Vagrantfile);
# on other Debian machines it works the same by hand, as root:
#
#   deploy/provision.sh namenode ID    a dfs namenode, Raft id ID (1 for the first address)
#   deploy/provision.sh host NAME      a dfs datanode and a MapReduce worker
#   deploy/provision.sh jobtracker     the MapReduce jobtracker
#
# The cluster, the same on every machine, comes from the environment:
#   MRJOB_NAMENODES   IP,IP,IP            namenode i is the i-th address
#   MRJOB_HOSTS       NAME=IP[@RACK],...  the hosts (datanode + worker each)
#   MRJOB_JOBTRACKER  IP
#   MRJOB_STATE_DIR   state directory on every machine (default /var/lib/mrjob)
#   MRJOB_SRC         source tree to build from (default /vagrant)
#   MRJOB_BIN_DIR     prebuilt dfs and mrjob binaries to install instead of building
#   MRJOB_CLUSTER_KEY the cluster key, 64 hex digits, the same on every machine (the
#                     Vagrantfile makes one); written to /etc/mrjob/cluster.key, mode 0600.
#                     Unset: /etc/mrjob/cluster.key must already be there (copied by hand).
#
# Steps: binaries (MRJOB_BIN_DIR, else MRJOB_SRC/target/release when they run on this machine,
# else a release build here), install.sh, /etc/mrjob/cluster.toml from `dfs config hosts` (the
# generator family the cluster tests use too, so the VMs and the tests agree on the layout),
# /etc/mrjob/node.env, then enable and (re)start the role's systemd units. Running it again
# (`vagrant provision`) applies a new build or a new cluster description.
set -euo pipefail

die() {
  echo "provision.sh: $*" >&2
  exit 1
}
usage() {
  die "usage: provision.sh namenode ID | host NAME | jobtracker (see the top of this file)"
}

role=${1:-}
case $role in
  namenode) [[ $# -eq 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage ;;
  host) [[ $# -eq 2 && -n $2 ]] || usage ;;
  jobtracker) [[ $# -eq 1 ]] || usage ;;
  *) usage ;;
esac
[[ $(id -u) -eq 0 ]] || die "run as root: it installs packages, binaries and systemd units"
: "${MRJOB_NAMENODES:?provision.sh: set MRJOB_NAMENODES=IP,IP,IP}"
: "${MRJOB_HOSTS:?provision.sh: set MRJOB_HOSTS=NAME=IP[@RACK],...}"
: "${MRJOB_JOBTRACKER:?provision.sh: set MRJOB_JOBTRACKER=IP}"

# Check the role against the cluster before installing anything, so a typo in the Vagrantfile
# fails here rather than as a unit in a restart loop.
case $role in
  namenode)
    IFS=, read -r -a nn_ips <<<"$MRJOB_NAMENODES"
    (($2 <= ${#nn_ips[@]})) || die "namenode $2 is not in MRJOB_NAMENODES=$MRJOB_NAMENODES"
    ;;
  host)
    [[ ,${MRJOB_HOSTS// /}, == *",$2="* ]] || die "host $2 is not in MRJOB_HOSTS=$MRJOB_HOSTS"
    ;;
esac

src=${MRJOB_SRC:-/vagrant}
here=$(cd "$(dirname "$0")" && pwd)
# Vagrant's `path:` provisioner runs a copy of this file from /tmp; install.sh and the units
# are then found in the source tree.
[[ -f $here/install.sh ]] || here=$src/deploy
export MRJOB_STATE_DIR=${MRJOB_STATE_DIR:-/var/lib/mrjob}
conf=/etc/mrjob/cluster.toml
node_env=/etc/mrjob/node.env
# The toolchain and the build stay on the VM's own disk, outside /vagrant, which Vagrant's
# rsync overwrites from the host on every sync; re-provisioning then rebuilds only what changed.
export RUSTUP_HOME=/opt/rust/rustup CARGO_HOME=/opt/rust/cargo
build_dir=/var/cache/mrjob/target

# True when $1 holds dfs and mrjob binaries that run on this machine. A binary built on a
# system with a newer glibc than this one fails here with a version error, and is rebuilt.
runnable() {
  [[ -x $1/dfs && -x $1/mrjob ]] &&
    "$1/dfs" --version >/dev/null 2>&1 &&
    "$1/mrjob" --version >/dev/null 2>&1
}

# A C toolchain for linking and for crates with C parts, and curl for rustup.
ensure_build_deps() {
  local missing=()
  command -v cc >/dev/null || missing+=(build-essential)
  command -v curl >/dev/null || missing+=(curl ca-certificates)
  ((${#missing[@]} == 0)) && return
  echo "provision.sh: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# Debian's own cargo is older than the workspace's rust-version, so the toolchain comes from
# rustup (stable, minimal profile).
ensure_rust() {
  [[ -x $CARGO_HOME/bin/cargo ]] && return
  echo "provision.sh: installing a Rust toolchain in $CARGO_HOME"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
    sh -s -- -y --no-modify-path --profile minimal --default-toolchain stable
}

build() {
  [[ -f $src/Cargo.toml ]] || die "no source tree in $src (set MRJOB_SRC or MRJOB_BIN_DIR)"
  ensure_build_deps
  ensure_rust
  echo "provision.sh: building dfs and mrjob from $src (the first build takes several minutes)"
  (cd "$src" && CARGO_TARGET_DIR=$build_dir "$CARGO_HOME/bin/cargo" build --release --locked \
    --bin dfs --bin mrjob)
}

if [[ -n ${MRJOB_BIN_DIR:-} ]]; then
  runnable "$MRJOB_BIN_DIR" || die "MRJOB_BIN_DIR=$MRJOB_BIN_DIR has no dfs and mrjob that run here"
  bin_dir=$MRJOB_BIN_DIR
elif runnable "$src/target/release"; then
  bin_dir=$src/target/release
else
  build
  bin_dir=$build_dir/release
fi
echo "provision.sh: installing from $bin_dir"
bash "$here/install.sh" "$bin_dir"

# The cluster key first: `dfs config hosts` keeps a key file that exists, and one generated
# here would differ from every other machine's.
key=/etc/mrjob/cluster.key
if [[ -n ${MRJOB_CLUSTER_KEY:-} ]]; then
  [[ $MRJOB_CLUSTER_KEY =~ ^[0-9a-f]{64}$ ]] || die "MRJOB_CLUSTER_KEY must be 64 hex digits"
  (
    umask 077
    printf '# Secret: whoever holds this key acts as a member of the cluster. Keep it mode 0600.\nkey = "%s"\n' \
      "$MRJOB_CLUSTER_KEY" >"$key.tmp"
  )
  mv "$key.tmp" "$key"
fi
[[ -f $key ]] || die "no cluster key: set MRJOB_CLUSTER_KEY (the same on every machine) or copy $key here"

# The one generator: the same flags on every machine give the same file everywhere.
/usr/local/bin/dfs config hosts --namenodes "$MRJOB_NAMENODES" --hosts "$MRJOB_HOSTS" \
  --jobtracker "$MRJOB_JOBTRACKER" --state-dir "$MRJOB_STATE_DIR" --out "$conf"
chmod 0644 "$conf"

# Which daemons of cluster.toml this machine runs; the units read it. Written to a temporary
# file and renamed, so a unit starting meanwhile never reads half of it.
namenode_id='' host_name=''
case $role in
  namenode) namenode_id=$2 ;;
  host) host_name=$2 ;;
esac
cat >"$node_env.tmp" <<ENV
# Written by deploy/provision.sh: this machine's role in $conf.
MRJOB_ROLE=$role
NAMENODE_ID=$namenode_id
HOST_NAME=$host_name
ENV
chmod 0644 "$node_env.tmp"
mv -f "$node_env.tmp" "$node_env"

# Logins (and `vagrant ssh -c`, which runs a login shell) find the cluster without --conf.
echo "export MRJOB_CONF=$conf" >/etc/profile.d/mrjob.sh

case $role in
  namenode) units=(dfs-namenode.service) ;;
  host) units=(dfs-datanode.service mrjob-worker.service) ;;
  jobtracker) units=(mrjob-jobtracker.service) ;;
esac
# A machine whose role changed stops the daemons of its old role.
for unit in dfs-namenode.service dfs-datanode.service mrjob-worker.service \
  mrjob-jobtracker.service; do
  [[ " ${units[*]} " == *" $unit "* ]] || systemctl disable --now "$unit" >/dev/null 2>&1 || true
done
systemctl enable "${units[@]}"
# Restart rather than start, so a new binary or config takes effect on re-provisioning.
systemctl restart "${units[@]}"
for unit in "${units[@]}"; do
  echo "provision.sh: $unit is $(systemctl is-active "$unit" || true) (logs: journalctl -u $unit)"
done
