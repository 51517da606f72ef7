#!/usr/bin/env python3
"""Engine benchmark for the local runner (issue: local MapReduce engine).

Measures, in one run and against baselines run in that same run:
  * mrjob wordcount vs a well-written single-threaded Rust word count (benchtool wordcount)
    on a natural-language-like corpus (Zipf over 30k words) and a high-cardinality one;
  * mrjob terasort vs reading and sorting the records in memory in one thread;
  * peak RSS of mrjob wordcount on a 4x larger input (the high-cardinality corpus, 4 times);
  * end-to-end wall time of a 1 MiB wordcount job.
Every output is checked equal to its baseline's before its time counts.
Usage: bench/engine.py [--size 1GiB] [--runs 3] [--dir /tmp/mrbench]
"""
import argparse
import datetime
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")


def parse_size(text):
    units = {"": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30}
    t = text.strip().lower()
    num = "".join(c for c in t if c.isdigit())
    return int(num) * units[t[len(num):]]


GNU_TIME = "/usr/bin/time"


def run(cmd):
    """Runs cmd; returns (wall seconds, peak RSS in MiB).

    Peak RSS comes from GNU time when installed: a forked child's ru_maxrss starts at this
    (large, digest-holding) Python process's RSS, so wait4 alone would overstate it.
    """
    rss_file = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"engine-rss-{os.getpid()}")
    timed_cmd = [GNU_TIME, "-f", "%M", "-o", rss_file] + cmd if os.path.exists(GNU_TIME) else cmd
    start = time.perf_counter()
    proc = subprocess.Popen(timed_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{err}")
    if timed_cmd is not cmd:
        with open(rss_file) as f:
            return wall, int(f.read().split()[-1]) / 1024
    return wall, usage.ru_maxrss / 1024


def rm(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def sorted_digest(paths):
    lines = []
    for p in paths:
        with open(p, "rb") as f:
            lines.extend(f.read().splitlines())
    lines.sort()
    return hashlib.sha256(b"\n".join(lines)).hexdigest(), len(lines)


def parts(out):
    return sorted(os.path.join(out, n) for n in os.listdir(out) if n.startswith("part-"))


def concat_digest(paths):
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def timed(runs, prepare, cmd):
    walls, rss = [], []
    for _ in range(runs):
        prepare()
        w, r = run(cmd)
        walls.append(w)
        rss.append(r)
    return statistics.median(walls), max(rss)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1GiB")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/mrbench")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    size = parse_size(args.size)
    os.makedirs(args.dir, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "examples"], cwd=ROOT, check=True)
    mrjob, tool = os.path.join(BIN, "mrjob"), os.path.join(BIN, "benchtool")
    d = lambda *p: os.path.join(args.dir, *p)
    rows, notes = [], []
    cores = os.cpu_count()

    for kind in ["zipf", "highcard"]:
        corpus = d(f"{kind}-{size}")
        if not os.path.isdir(corpus):
            subprocess.run([tool, "gen-text", kind, str(size), corpus, "--seed", str(args.seed)], check=True)
        base_out, mr_out = d("wc-base.txt"), d("wc-mr")
        tb, rb = timed(args.runs, lambda: rm(base_out), [tool, "wordcount", corpus, base_out])
        tm, rm_ = timed(args.runs, lambda: rm(mr_out), [mrjob, "wordcount", corpus, mr_out, "-q"])
        want, got = sorted_digest([base_out]), sorted_digest(parts(mr_out))
        if want != got:
            sys.exit(f"wordcount output differs from the baseline on {kind}")
        mb = size / (1 << 20)
        rows.append((f"wordcount {kind} ({got[1]} distinct words)", tb, tm, mb, rb, rm_))

    tera_in = d(f"teragen-{size}")
    records = size // 100
    if not os.path.isdir(tera_in):
        subprocess.run([mrjob, "teragen", str(records), tera_in, "-q", "--no-sync"], check=True)
    base_out, mr_out = d("sort-base.dat"), d("terasort")
    tb, rb = timed(args.runs, lambda: rm(base_out), [tool, "sort", tera_in, base_out])
    tm, rm_ = timed(args.runs, lambda: rm(mr_out), [mrjob, "terasort", tera_in, mr_out, "-q"])
    if concat_digest([base_out]) != concat_digest(parts(mr_out)):
        sys.exit("terasort output differs from the in-memory sort")
    rows.append((f"terasort ({records} records)", tb, tm, records * 100 / (1 << 20), rb, rm_))

    # Peak memory on 4x the input: the high-cardinality corpus linked in four times.
    big = d("highcard-x4")
    if not os.path.isdir(big):
        os.makedirs(big)
        src = d(f"highcard-{size}")
        for i in range(4):
            for n in sorted(os.listdir(src)):
                os.symlink(os.path.join(src, n), os.path.join(big, f"{i}-{n}"))
    rm(d("wc-big"))
    big_wall, big_rss = run([mrjob, "wordcount", big, d("wc-big"), "-q"])
    bound = 100 * cores + 300

    small = d("small-1MiB")
    if not os.path.isdir(small):
        subprocess.run([tool, "gen-text", "zipf", str(1 << 20), small, "--seed", str(args.seed)], check=True)
    small_wall, _ = timed(5, lambda: rm(d("wc-small")), [mrjob, "wordcount", small, d("wc-small"), "-q"])

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"# Engine benchmark ({stamp})", "",
           f"Machine: {cores} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') >> 30} GiB RAM, {platform.platform()}.",
           f"Command: `bench/engine.py --size {args.size} --runs {args.runs}`; medians of {args.runs} runs; "
           "mrjob uses its defaults (all cores, one reducer per core, output fsynced; the baselines fsync theirs too).", "",
           "| workload | baseline 1 thread (s) | mrjob (s) | speedup | mrjob MB/s | baseline peak RSS (MiB) | mrjob peak RSS (MiB) |",
           "|---|---|---|---|---|---|---|"]
    for name, tb, tm, mb, rb, rm_ in rows:
        out.append(f"| {name} | {tb:.2f} | {tm:.2f} | {tb / tm:.2f}x | {mb / tm:.0f} | {rb:.0f} | {rm_:.0f} |")
    out += ["",
            f"- Peak RSS of `mrjob wordcount` on {4 * size >> 20} MiB of high-cardinality text: {big_rss:.0f} MiB "
            f"(bound: sort buffer 100 MiB x {cores} threads + 300 MiB = {bound} MiB; wall {big_wall:.1f} s).",
            f"- 1 MiB wordcount end to end: {small_wall * 1000:.0f} ms (median of 5)."]
    text = "\n".join(out) + "\n"
    print(text)
    name = os.path.join(ROOT, "bench", "results", "engine-latest.md")
    with open(name, "w") as f:
        f.write(text)
    print(f"written to {name}")


if __name__ == "__main__":
    main()
