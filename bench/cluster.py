#!/usr/bin/env python3
"""Cluster benchmark (issue: distributed MapReduce).

In one run, on a pseudo-distributed cluster of 3 hosts on this machine (`mrjob cluster start`:
3 namenodes, 3 datanode+worker hosts, a jobtracker, all separate processes):
  * wordcount on SIZE of Zipf text and terasort on SIZE of teragen records, both already in
    dfs with replication 3, against the same job in local mode on the same data as local files;
  * submit-to-first-task latency: from the start of the submission (in the submitting
    process) to the first task process running on a worker;
  * the data-local fraction of maps (the `Data-local map tasks` counter).
Outputs are checked identical (cluster vs local) before times count. A small warm-up job runs
first so the job binary is already staged in dfs and cached on every worker.
Usage: bench/cluster.py [--size 1GiB] [--runs 3] [--dir /tmp/mrcluster-bench]
"""
import argparse
import datetime
import hashlib
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
MRJOB = os.path.join(BIN, "mrjob")
DFS = os.path.join(BIN, "dfs")
BENCHTOOL = os.path.join(BIN, "benchtool")


def parse_size(text):
    units = {"": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30}
    t = text.strip().lower()
    num = "".join(c for c in t if c.isdigit())
    return int(num) * units[t[len(num):]]


def run(cmd, env=None):
    """Runs cmd; returns (wall seconds, stdout, stderr); exits on failure."""
    start = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, env=env)
    wall = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{p.stderr.decode(errors='replace')}")
    return wall, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def local_env():
    env = dict(os.environ)
    env.pop("MRJOB_CONF", None)
    return env


def digest_local(out):
    h = hashlib.sha256()
    for n in sorted(os.listdir(out)):
        if n.startswith("part-"):
            with open(os.path.join(out, n), "rb") as f:
                h.update(n.encode() + b"\0" + f.read())
    return h.hexdigest()


def digest_dfs(conf, out, scratch):
    shutil.rmtree(scratch, ignore_errors=True)
    run([DFS, "--conf", conf, "get", out, scratch])
    return digest_local(scratch)


def counter(text, name):
    m = re.search(rf"^\s*{re.escape(name)}=(\d+)", text, re.M)
    return int(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1GiB")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/mrcluster-bench")
    ap.add_argument("--hosts", type=int, default=3)
    args = ap.parse_args()
    size = parse_size(args.size)
    for b in (MRJOB, DFS, BENCHTOOL):
        if not os.path.exists(b):
            sys.exit(f"{b} missing: run `cargo build --release` first")
    work = args.dir
    cdir = os.path.join(work, "cluster")
    if os.path.exists(cdir):
        subprocess.run([MRJOB, "cluster", "stop", "--dir", cdir], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    conf = os.path.join(cdir, "cluster.toml")
    text_dir = os.path.join(work, "text")
    tera_dir = os.path.join(work, "tera")
    rows = size // 100

    print(f"generating {args.size} of Zipf text and {rows} teragen records", flush=True)
    run([BENCHTOOL, "gen-text", "zipf", str(size), text_dir, "--seed", "7"])
    run([MRJOB, "teragen", "--local", str(rows), tera_dir, "-q"], env=local_env())
    os.remove(os.path.join(tera_dir, "_SUCCESS"))

    print("starting the cluster", flush=True)
    run([MRJOB, "cluster", "start", "--dir", cdir, "--hosts", str(args.hosts)], env=local_env())
    results = {}
    try:
        put_text, _, _ = run([DFS, "--conf", conf, "put", text_dir, "/bench/text"])
        put_tera, _, _ = run([DFS, "--conf", conf, "put", tera_dir, "/bench/tera"])
        # Warm-up: stages the binary in dfs and caches it on every worker.
        small = os.path.join(work, "small.txt")
        with open(small, "w") as f:
            f.write("warm up the job binary cache\n" * 1000)
        run([DFS, "--conf", conf, "put", small, "/bench/small.txt"])
        run([MRJOB, "--conf", conf, "wordcount", "/bench/small.txt", "/bench/warm", "-q"])

        jobs = [
            ("wordcount", [], text_dir, "/bench/text"),
            ("terasort", [], tera_dir, "/bench/tera"),
        ]
        for name, extra, local_in, dfs_in in jobs:
            local_t, cluster_t, latencies, locality = [], [], [], []
            local_digest = None
            for i in range(args.runs):
                out = os.path.join(work, f"{name}-local-{i}")
                t, _, _ = run([MRJOB, name, "--local", local_in, out, "-q"] + extra, env=local_env())
                local_t.append(t)
                d = digest_local(out)
                if local_digest is None:
                    local_digest = d
                assert d == local_digest
                shutil.rmtree(out)

                dfs_out = f"/bench/{name}-out-{i}"
                t, _, err = run([MRJOB, "--conf", conf, name, dfs_in, dfs_out] + extra)
                cluster_t.append(t)
                # Measured by the submitter: from the start of its submission (binary hash and
                # staging check included) to the first task process running on a worker.
                m = re.search(r"First task started (\d+) ms after submission", err)
                latencies.append(int(m.group(1)) if m else None)
                maps = counter(err, "Launched map tasks")
                local_maps = counter(err, "Data-local map tasks")
                locality.append((local_maps, maps))
                d = digest_dfs(conf, dfs_out, os.path.join(work, "got"))
                if d != local_digest:
                    sys.exit(f"{name}: cluster output differs from local mode")
                run([DFS, "--conf", conf, "rm", "-r", dfs_out])
                print(f"  {name} run {i}: local {local_t[-1]:.2f} s, cluster {t:.2f} s, "
                      f"first task {latencies[-1]} ms, data-local {local_maps}/{maps}", flush=True)
            results[name] = (local_t, cluster_t, latencies, locality)
    finally:
        subprocess.run([MRJOB, "cluster", "stop", "--dir", cdir], capture_output=True)

    lines = [
        f"# Cluster benchmark ({datetime.date.today()})",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') >> 30} GiB RAM. "
        f"Pseudo-distributed cluster of {args.hosts} hosts on this machine (3 namenodes, "
        f"{args.hosts} datanode+worker processes, 1 jobtracker), replication 3, 64 MiB blocks.",
        f"Command: `bench/cluster.py --size {args.size} --runs {args.runs}`. Medians of {args.runs} runs; "
        "local mode and the cluster run alternate on the same data, outputs checked identical.",
        f"Loading the input into dfs (replication 3): text {put_text:.1f} s, teragen records {put_tera:.1f} s.",
        "",
        "Per-run ratios pair each cluster run with the local run just before it (the machine is noisy: "
        "both numbers are given, and the target is met only if both are under it).",
        "",
        "| job | local (s) | cluster (s) | ratio of medians | per-run ratios: median (min–max) | target | submit→first task (ms) | data-local maps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    targets = {"wordcount": 1.5, "terasort": 2.5}
    lines_runs = []
    for name, (lt, ct, lat, loc) in results.items():
        l, c = statistics.median(lt), statistics.median(ct)
        lat_ok = [x for x in lat if x is not None]
        lat_med = statistics.median(lat_ok) if lat_ok else None
        dl = sum(a or 0 for a, _ in loc)
        tot = sum(b or 0 for _, b in loc)
        ratios = [c_i / l_i for c_i, l_i in zip(ct, lt)]
        lines.append(
            f"| {name} {args.size} | {l:.2f} | {c:.2f} | {c / l:.2f}x | "
            f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}–{max(ratios):.2f}) | ≤ {targets[name]}x | "
            f"{lat_med} | {dl}/{tot} ({100 * dl / max(tot, 1):.0f}%) |"
        )
        lines_runs.append(f"- {name}: local {', '.join(f'{x:.2f}' for x in lt)} s; "
                          f"cluster {', '.join(f'{x:.2f}' for x in ct)} s; "
                          f"submit→first task {', '.join(str(x) for x in lat)} ms")
    lines += ["", "Every run, in order:", ""] + lines_runs
    report = "\n".join(lines) + "\n"
    print(report)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "cluster-latest.md"), "w") as f:
        f.write(report)


if __name__ == "__main__":
    main()
