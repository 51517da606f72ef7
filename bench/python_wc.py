#!/usr/bin/env python3
"""Python jobs on mrjob (issue 13), each against its baseline in the same run:

  (a) Streaming word count with plain Python mapper and reducer scripts, `mrjob streaming
      --local` on all cores, against the same scripts in one pipe: `cat | mapper | LC_ALL=C
      sort | reducer`. Target: >= 1.7x faster. Measured by bench/streaming.py (run from here,
      its ratio repeated; it writes bench/results/streaming-latest.md too).
  (b) The same word count as a Yelp MRJob (bench/python/mr_wordcount.py) through `-r hadoop`
      (`--hadoop-bin 'mrjob --conf C hadoop'`) on a 3-host pseudo-distributed cluster on this
      machine, against mrjob's own `-r local` runner on the same input. Target: >= 4x faster.

Every output is checked equal (as sorted lines) to its baseline's before its time counts.
Both use `benchtool gen-text zipf` text (seed 42).
Prints the ratios and writes bench/results/NAME.md.

Usage: bench/python_wc.py [--size 256MiB] [--mrjob-size 64MiB] [--runs 1] [--dir /tmp/mrpython]
       [--no-cluster] [--no-streaming] [--no-build] [--out-name python-latest]
"""
import argparse
import datetime
import hashlib
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
SCRIPTS = os.path.join(ROOT, "bench", "python")


def parse_size(text):
    units = {"": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30}
    t = text.strip().lower()
    num = "".join(c for c in t if c.isdigit())
    return int(num) * units[t[len(num):]]


def timed(cmd, stdout=None, env=None):
    """Runs cmd (a list, or a string for bash); returns wall seconds. Exits on failure."""
    shell = isinstance(cmd, str)
    argv = ["bash", "-o", "pipefail", "-c", cmd] if shell else cmd
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=stdout or subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {cmd}\n{proc.stderr.decode(errors='replace')[-4000:]}")
    return wall


def best(runs, prepare, cmd, stdout_path=None, env=None):
    walls = []
    for _ in range(runs):
        prepare()
        if stdout_path:
            with open(stdout_path, "wb") as out:
                walls.append(timed(cmd, stdout=out, env=env))
        else:
            walls.append(timed(cmd, env=env))
    return statistics.median(walls)


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


def corpus(tool, work, size, seed):
    path = os.path.join(work, f"zipf-{size}")
    if not os.path.isdir(path):
        subprocess.run([tool, "gen-text", "zipf", str(size), path, "--seed", str(seed)], check=True)
    return path


def streaming_ratio(args, rows, commands):
    """Runs bench/streaming.py (the pipe and `mrjob streaming`) and returns its ratio."""
    cmd = [sys.executable, os.path.join(ROOT, "bench", "streaming.py"), "--no-build",
           "--size", args.size, "--runs", str(args.runs), "--dir", args.dir]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench/streaming.py failed:\n{proc.stdout}\n{proc.stderr}")
    out = proc.stdout
    commands.append(shlex.join(cmd))
    m = re.search(r"Streaming is \*\*([0-9.]+)x\*\*", out)
    if not m:
        sys.exit(f"bench/streaming.py printed no ratio:\n{out}")
    runs = re.findall(r"^run \d+: streaming ([0-9.]+) s, pipe ([0-9.]+) s$", out, re.M)
    if runs:
        stream = statistics.median(float(s) for s, _ in runs)
        pipe = statistics.median(float(p) for _, p in runs)
        rows.append(("pipe: cat | mapper | LC_ALL=C sort | reducer", pipe, None))
        rows.append(("mrjob streaming --local", stream, float(m.group(1))))
    return float(m.group(1))


def cluster_rows(args, mrjob, tool, work, rows, commands):
    # Python's default in both rows (block-buffered stdout into a pipe): with PYTHONUNBUFFERED
    # set (as in some sandboxes) every line mrjob writes is a write(2) of its own. The cluster's
    # tasks no longer inherit it anyway (task_env), but -r local would.
    os.environ.pop("PYTHONUNBUFFERED", None)
    python = subprocess.run([os.path.join(ROOT, "scripts", "python-env.sh")], check=True,
                            capture_output=True, text=True).stdout.strip()
    text = corpus(tool, work, parse_size(args.mrjob_size), args.seed)
    job = os.path.join(SCRIPTS, "mr_wordcount.py")
    local_out, hadoop_out = os.path.join(work, "mrjob-local.txt"), os.path.join(work, "mrjob-hadoop.txt")
    local = [python, job, "--no-conf", "-r", "local", text]
    t_local = best(args.runs, lambda: None, local, stdout_path=local_out)
    commands.append(shlex.join(local) + " > OUT")
    cdir = os.path.join(work, "cluster")
    rm(cdir)
    subprocess.run([mrjob, "cluster", "start", "--hosts", "3", "--dir", cdir, "--wait-secs", "120"],
                   check=True, stderr=subprocess.DEVNULL)
    try:
        conf = os.path.join(cdir, "cluster.toml")
        hadoop_bin = f"{mrjob} --conf {conf} hadoop"
        cmd = [python, job, "--no-conf", "-r", "hadoop", "--hadoop-bin", hadoop_bin,
               "--hadoop-streaming-jar", "/any/hadoop-streaming.jar", "--python-bin", python, text]
        t_hadoop = best(args.runs, lambda: None, cmd, stdout_path=hadoop_out)
        commands.append(shlex.join(cmd) + " > OUT")
    finally:
        subprocess.run([mrjob, "cluster", "stop", "--dir", cdir], stderr=subprocess.DEVNULL)
    want, got = sorted_digest([local_out]), sorted_digest([hadoop_out])
    if got != want:
        sys.exit(f"-r hadoop output differs from -r local's ({got[1]} vs {want[1]} lines)")
    rows.append((f"mrjob -r local ({args.mrjob_size})", t_local, None))
    rows.append((f"mrjob -r hadoop, 3-host pseudo-distributed ({args.mrjob_size})", t_hadoop,
                 t_local / t_hadoop))
    return t_local / t_hadoop


def report(args, rows_a, rows_b, ratio_a, ratio_b, commands):
    lines = [f"# Python jobs: Streaming and Yelp mrjob ({datetime.date.today()})", "",
             f"Machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}, "
             f"{platform.python_version()}. Shared and noisy: other builds ran at the same time.",
             f"Command: `bench/python_wc.py {' '.join(sys.argv[1:])}`; median of {args.runs} run(s).", ""]
    for title, rows in [(f"(a) Streaming word count, {args.size}", rows_a),
                        (f"(b) MRJob word count, {args.mrjob_size}", rows_b)]:
        if not rows:
            continue
        lines += [f"## {title}", "", "| row | seconds | speedup |", "|---|---|---|"]
        cell = lambda name: name.replace("|", "\\|")  # a pipe inside a table cell
        lines += [f"| {cell(n)} | {t:.1f} | {'' if r is None else f'{r:.2f}x'} |" for n, t, r in rows]
        lines.append("")
    lines += ["## Targets", ""]
    if ratio_a is not None:
        lines.append(f"- Streaming vs the pipe: {ratio_a:.2f}x (target >= 1.7x)")
    if ratio_b is not None:
        lines.append(f"- `-r hadoop` vs `-r local`: {ratio_b:.2f}x (target >= 4x)")
    lines += ["", "## Commands", ""] + [f"    {c}" for c in commands]
    path = os.path.join(ROOT, "bench", "results", f"{args.out_name}.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="256MiB", help="text for (a)")
    ap.add_argument("--mrjob-size", default="64MiB", help="text for (b): mrjob -r local is slow")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--dir", default="/tmp/mrpython", help="work directory (given to bench/streaming.py too)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-cluster", action="store_true", help="skip (b)")
    ap.add_argument("--no-streaming", action="store_true", help="skip (a)")
    ap.add_argument("--no-build", action="store_true", help="use target/release as it is")
    ap.add_argument("--out-name", default="python-latest")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "examples"], cwd=ROOT, check=True)
    mrjob, tool = os.path.join(BIN, "mrjob"), os.path.join(BIN, "benchtool")
    commands, rows_a, rows_b = [], [], []
    ratio_a = None
    if not args.no_streaming:
        ratio_a = streaming_ratio(args, rows_a, commands)
        print(f"(a) streaming vs pipe: {ratio_a:.2f}x (target >= 1.7x)", flush=True)
    ratio_b = None
    if not args.no_cluster:
        ratio_b = cluster_rows(args, mrjob, tool, args.dir, rows_b, commands)
        print(f"(b) -r hadoop vs -r local: {ratio_b:.2f}x (target >= 4x)", flush=True)
    print("results in", report(args, rows_a, rows_b, ratio_a, ratio_b, commands))


if __name__ == "__main__":
    main()
