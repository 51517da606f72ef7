#!/usr/bin/env python3
"""What authentication costs (issue 14): `dfs put` throughput and `mrjob wordcount` latency of
two builds side by side, in one run, alternating, so that a noisy machine weighs on both alike.

Each round starts a pseudo-distributed cluster (`mrjob cluster start --hosts 3`: 3 namenodes,
3 datanode+worker hosts, a jobtracker, every process on this machine) with one build's binaries,
runs a warm-up wordcount (it stages the job binary and the workers cache it), then times
`dfs put -r 3` of SIZE seeded random bytes and a wordcount of a small seeded text (its wall
time, and the submitter's "first task started N ms after submission"), then stops the cluster;
then the same with the other build. Outputs of both builds' wordcounts are checked identical.

Usage: bench/auth_cost.py --old DIR --new DIR [--size 256MiB] [--rounds 3] [--text 16MiB]
  DIR holds a release build's `dfs` and `mrjob` (e.g. target/release of a worktree at the
  last commit before the handshake, and of this one).
"""
import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time


def parse_size(text):
    units = {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}
    t = text.strip().lower()
    for u, m in units.items():
        if t.endswith(u):
            return int(t[: -len(u)]) * m
    return int(t)


def sh(cmd, env=None):
    start = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, env=env)
    wall = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"auth_cost: {' '.join(cmd)} failed:\n{p.stderr.decode(errors='replace')[-2000:]}")
    return wall, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def seeded_bytes(path, size, seed):
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    rng = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 24)
            f.write(rng.randbytes(n))
            left -= n


def seeded_text(path, size, seed):
    if os.path.exists(path) and os.path.getsize(path) >= size:
        return
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(20000)]
    with open(path, "w") as f:
        written = 0
        while written < size:
            line = " ".join(rng.choice(words) for _ in range(12)) + "\n"
            f.write(line)
            written += len(line)


def one_round(name, bindir, work, src, text, round_no):
    """Starts a cluster of `bindir`'s build, measures, stops it; returns (put s, wc s, latency ms)."""
    dfs, mrjob = os.path.join(bindir, "dfs"), os.path.join(bindir, "mrjob")
    cdir = os.path.join(work, f"cluster-{name}")
    if os.path.exists(cdir):
        subprocess.run([mrjob, "cluster", "stop", "--dir", cdir], capture_output=True)
        shutil.rmtree(cdir)
    env = {k: v for k, v in os.environ.items() if k not in ("MRJOB_CONF", "MRJOB_USER_KEY")}
    sh([mrjob, "cluster", "start", "--dir", cdir, "--hosts", "3"], env=env)
    env["MRJOB_CONF"] = os.path.join(cdir, "cluster.toml")
    try:
        sh([dfs, "put", text, "/text"], env=env)
        sh([mrjob, "wordcount", "/text", "/warm"], env=env)
        put_s, _, _ = sh([dfs, "put", "-r", "3", src, "/big"], env=env)
        wc_s, _, err = sh([mrjob, "wordcount", "/text", "/wc"], env=env)
        m = re.search(r"First task started (\d+) ms after submission", err)
        latency = int(m.group(1)) if m else None
        _, out, _ = sh([dfs, "cat", "/wc/part-r-00000"], env=env)
    finally:
        subprocess.run([mrjob, "cluster", "stop", "--dir", cdir], capture_output=True, env=env)
        shutil.rmtree(cdir, ignore_errors=True)
    print(f"round {round_no} {name}: put {put_s:.2f} s, wordcount {wc_s:.2f} s, "
          f"first task {latency} ms", flush=True)
    return put_s, wc_s, latency, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", required=True, help="directory of the build without authentication")
    ap.add_argument("--new", required=True, help="directory of the build with authentication")
    ap.add_argument("--size", type=parse_size, default=256 << 20)
    ap.add_argument("--text", type=parse_size, default=16 << 20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/authcost")
    args = ap.parse_args()
    work = os.path.abspath(args.dir)
    os.makedirs(work, exist_ok=True)
    src, text = os.path.join(work, "big.bin"), os.path.join(work, "text.txt")
    seeded_bytes(src, args.size, 20261206)
    seeded_text(text, args.text, 7)
    rows = {"old": [], "new": []}
    outputs = set()
    for r in range(1, args.rounds + 1):
        # Alternate which build goes first, so neither always runs on a warmer machine.
        order = ["old", "new"] if r % 2 else ["new", "old"]
        for name in order:
            put_s, wc_s, lat, out = one_round(name, getattr(args, name), work, src, text, r)
            rows[name].append((put_s, wc_s, lat))
            outputs.add(out)
    if len(outputs) != 1:
        sys.exit("auth_cost: the builds' wordcount outputs differ")
    mb = args.size / 1e6
    print(f"\n{args.size >> 20} MiB put -r 3, wordcount of {args.text >> 20} MiB, "
          f"{args.rounds} rounds, medians (all runs):")
    print("| build | put MB/s | wordcount s | first task ms |")
    print("|---|---:|---:|---:|")
    for name in ("old", "new"):
        puts = [p for p, _, _ in rows[name]]
        wcs = [w for _, w, _ in rows[name]]
        lats = [lat for _, _, lat in rows[name] if lat is not None]
        lat_text = f"{statistics.median(lats):.0f} ({', '.join(map(str, lats))})" if lats else "-"
        print(f"| {name} | {mb / statistics.median(puts):.0f} "
              f"({', '.join(f'{mb / p:.0f}' for p in puts)}) | "
              f"{statistics.median(wcs):.2f} ({', '.join(f'{w:.2f}' for w in wcs)}) | {lat_text} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
