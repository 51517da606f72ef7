#!/usr/bin/env python3
"""Streaming benchmark (issue 13): a Python word count through `mrjob streaming` in local mode
against the same two scripts in one shell pipe, `cat | mapper | sort | reducer`, in the same run.

Target: Streaming at least 1.7x faster than the pipe on 2 cores. Both outputs are checked equal
(as sorted lines) before a time counts. The text is `benchtool gen-text zipf` (natural-language-like).
Usage: bench/streaming.py [--size 256MiB] [--runs 3] [--dir /tmp/mrstream] [--no-build]
Writes bench/results/streaming-latest.md (or --out-name).
"""
import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")

MAPPER = """import sys
for line in sys.stdin:
    for word in line.split():
        print(word + "\\t1")
"""

REDUCER = """import sys
current, total = None, 0
for line in sys.stdin:
    key, value = line.rstrip("\\n").split("\\t", 1)
    if key != current:
        if current is not None:
            print(current + "\\t" + str(total))
        current, total = key, 0
    total += int(value)
if current is not None:
    print(current + "\\t" + str(total))
"""


def parse_size(text):
    units = {"": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}
    t = text.strip().lower()
    num = "".join(c for c in t if c.isdigit())
    return int(num) * units[t[len(num):]]


def timed(cmd, shell=False, env=None):
    start = time.perf_counter()
    proc = subprocess.run(cmd, shell=shell, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"command failed: {cmd}\n{proc.stderr.decode(errors='replace')}")
    return wall


def sorted_lines(paths):
    lines = []
    for p in paths:
        with open(p, "rb") as f:
            lines.extend(f.read().splitlines())
    lines.sort()
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="256MiB")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/mrstream")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out-name", default="streaming-latest")
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    size = parse_size(a.size)
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "examples"], cwd=ROOT, check=True)
    os.makedirs(a.dir, exist_ok=True)
    corpus = os.path.join(a.dir, f"zipf-{size}")
    if not os.path.isdir(corpus):
        subprocess.run([os.path.join(BIN, "benchtool"), "gen-text", "zipf", str(size), corpus,
                        "--seed", "42"], check=True)
    for name, text in (("mapper.py", MAPPER), ("reducer.py", REDUCER)):
        with open(os.path.join(a.dir, name), "w") as f:
            f.write(text)
    files = sorted(os.path.join(corpus, n) for n in os.listdir(corpus) if not n.startswith(("_", ".")))
    mapper, reducer = os.path.join(a.dir, "mapper.py"), os.path.join(a.dir, "reducer.py")
    pipe_out = os.path.join(a.dir, "pipe.out")
    # A newline after each file: the generated files do not end in one, and a plain `cat`
    # would glue the last word of one file to the first of the next.
    pipe_cmd = (f"for f in {' '.join(files)}; do cat \"$f\"; echo; done | python3 {mapper} | "
                f"LC_ALL=C sort | python3 {reducer} > {pipe_out}")
    stream_out = os.path.join(a.dir, "stream-out")
    stream_cmd = [os.path.join(BIN, "mrjob"), "streaming", "--local", "-q", "-input", corpus,
                  "-output", stream_out, "-mapper", f"python3 {mapper}",
                  "-reducer", f"python3 {reducer}"]
    env = dict(os.environ)
    env.pop("MRJOB_CONF", None)
    # Python's default (block-buffered stdout into a pipe) in both rows: with
    # PYTHONUNBUFFERED set (as in some sandboxes) every print is a write(2) of its own.
    unbuffered = env.pop("PYTHONUNBUFFERED", None)
    pipe_times, stream_times = [], []
    for r in range(a.runs):
        shutil.rmtree(stream_out, ignore_errors=True)
        stream_times.append(timed(stream_cmd, env=env))
        pipe_times.append(timed(pipe_cmd, shell=True, env=env))
        if r == 0:
            parts = [os.path.join(stream_out, n) for n in os.listdir(stream_out)
                     if n.startswith("part-")]
            if sorted_lines(parts) != sorted_lines([pipe_out]):
                sys.exit("streaming output differs from the pipe's")
        print(f"run {r + 1}: streaming {stream_times[-1]:.2f} s, pipe {pipe_times[-1]:.2f} s",
              flush=True)
    s, p = statistics.median(stream_times), statistics.median(pipe_times)
    ratio = p / s
    mb = size / (1 << 20)
    report = f"""# Streaming word count: `mrjob streaming` vs one pipe

{datetime.datetime.now().isoformat(timespec='seconds')}, {platform.node()}, {os.cpu_count()} cores, {a.runs} runs (median).
Input: {a.size} of Zipf text (`benchtool gen-text zipf`, seed 42). Same Python 3 scripts in both.
{a.note}{" (PYTHONUNBUFFERED was set in the caller's environment and removed for both rows.)" if unbuffered else ""}

| row | median s | MB/s |
|---|---|---|
| `(cat FILE; echo)... \\| mapper.py \\| LC_ALL=C sort \\| reducer.py` | {p:.2f} | {mb / p:.1f} |
| `mrjob streaming` local | {s:.2f} | {mb / s:.1f} |

Streaming is **{ratio:.2f}x** the pipe (target >= 1.7x). Outputs checked equal.

Commands: `{' '.join(stream_cmd)}`; `{pipe_cmd}`
All runs: streaming {', '.join(f'{t:.2f}' for t in stream_times)}; pipe {', '.join(f'{t:.2f}' for t in pipe_times)}.
"""
    out = os.path.join(ROOT, "bench", "results", f"{a.out_name}.md")
    with open(out, "w") as f:
        f.write(report)
    print(report)


if __name__ == "__main__":
    main()
