#!/usr/bin/env python3
"""Engine benchmark for the local runner (issues: local MapReduce engine, 16).

Measures, in one run and against baselines run in that same run:
  * mrjob wordcount (all cores, and --threads 1) against the tuned word count on one thread
    (`benchtool wordcount-tuned`, the reference), the tuned count on all cores (the practical
    limit of the machine) and the naive one-thread count (`benchtool wordcount`), on a
    natural-language-like corpus (Zipf over 30k words), a high-cardinality one, and real text
    (the Linux kernel source from a Debian package, built by bench/corpus_debian.sh);
  * mrjob terasort vs reading and sorting the records in memory in one thread;
  * peak RSS of mrjob wordcount on a 4x larger input (the high-cardinality corpus, 4 times);
  * end-to-end wall time of a 1 MiB wordcount job.
Every output is checked equal to the reference's before its time counts.
Usage: bench/engine.py [--size 1GiB] [--runs 3] [--dir /tmp/mrbench] [--corpora zipf,highcard,debian]
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
    """SHA-256 of the lines of paths sorted bytewise, each ended by \\n (the form of the tuned
    count's output, i.e. `LC_ALL=C sort`), and the number of lines."""
    lines = []
    for p in paths:
        with open(p, "rb") as f:
            lines.extend(f.read().splitlines())
    lines.sort()
    h = hashlib.sha256(b"\n".join(lines))
    if lines:
        h.update(b"\n")
    return h.hexdigest(), len(lines)


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


def wordcount_rows(tool, mrjob, corpus, runs, d, cores):
    """The wordcount rows on one corpus: (name, threads, wall s, peak RSS MiB), the reference
    first, and the number of distinct words. Every output is checked against the reference's:
    the tuned counts' files byte for byte, the others' lines sorted.

    The rows take turns, run by run, rather than running each row's runs back to back: on this
    machine the cost of fresh memory drifts over minutes, and once all three back-to-back runs
    of the reference took 19-23 s where the same command, alternated with the others, took
    10-13 s. Taking turns spreads every row over the same stretch of time."""
    ref_out = d("wc-tuned.txt")
    cases = [
        ("tuned, 1 thread (reference)", 1, [tool, "wordcount-tuned", corpus, ref_out, "--threads", "1"],
         ref_out, lambda out: concat_digest([out])),
        (f"tuned, {cores} threads", cores, [tool, "wordcount-tuned", corpus, d("wc-tunedN.txt"), "--threads", str(cores)],
         d("wc-tunedN.txt"), lambda out: concat_digest([out])),
        ("naive, 1 thread", 1, [tool, "wordcount", corpus, d("wc-naive.txt")], d("wc-naive.txt"),
         lambda out: sorted_digest([out])[0]),
        ("mrjob, --threads 1", 1, [mrjob, "wordcount", corpus, d("wc-mr"), "-q", "--threads", "1"], d("wc-mr"),
         lambda out: sorted_digest(parts(out))[0]),
        (f"mrjob, {cores} threads", cores, [mrjob, "wordcount", corpus, d("wc-mr"), "-q"], d("wc-mr"),
         lambda out: sorted_digest(parts(out))[0]),
    ]
    walls = {name: [] for name, *_ in cases}
    rss = {name: [] for name, *_ in cases}
    want, distinct = None, None
    for turn in range(runs):
        for name, _, cmd, out, digest in cases:
            rm(out)
            w, r = run(cmd)
            walls[name].append(w)
            rss[name].append(r)
            if turn > 0:
                continue
            got = digest(out)
            if want is None:
                want, distinct = got, sum(1 for _ in open(out, "rb"))
            elif got != want:
                sys.exit(f"wordcount output of {name} differs from the tuned count's on {corpus}")
    rows = [(name, threads, statistics.median(walls[name]), max(rss[name])) for name, threads, *_ in cases]
    return rows, distinct


def wordcount_section(label, nbytes, rows, distinct):
    """A markdown table of the rows and the issue 16 targets computed from them."""
    mb = nbytes / 1e6
    ref = rows[0][2]
    out = [f"### wordcount, {label} ({nbytes / (1 << 20):.0f} MiB, {distinct} distinct words)", "",
           "| row | threads | wall s | MB/s | peak RSS MiB | speedup vs tuned 1 thread |",
           "|---|---|---|---|---|---|"]
    for name, threads, w, r in rows:
        out.append(f"| {name} | {threads} | {w:.2f} | {mb / w:.0f} | {r:.0f} | {ref / w:.2f}x |")
    by = {name.split(",")[0] + ("1" if threads == 1 else "N"): w for name, threads, w, _ in rows}
    checks = [("mrjob on all cores vs the tuned single thread", by["tuned1"] / by["mrjobN"], 1.5),
              ("mrjob on all cores as a fraction of the tuned count on all cores (stretch)",
               by["tunedN"] / by["mrjobN"], 0.8),
              ("mrjob --threads 1 as a fraction of the tuned single thread", by["tuned1"] / by["mrjob1"], 0.85),
              ("naive single thread vs the tuned single thread (for scale)", by["tuned1"] / by["naive1"], None)]
    out.append("")
    for what, ratio, want in checks:
        verdict = "" if want is None else f" — target ≥ {want}: {'met' if ratio >= want else 'NOT met'}"
        out.append(f"- {what}: {ratio:.2f}x{verdict}")
    return out + [""]


def ensure_corpus(kind, size, args, tool, d):
    """The corpus directory for kind, generated or built once and reused; None (and a note) when
    the real corpus cannot be built here."""
    corpus = d(f"{kind}-{size}")
    if kind == "debian":
        script = os.path.join(ROOT, "bench", "corpus_debian.sh")
        r = subprocess.run([script, corpus, str(size)], capture_output=True, text=True)
        if r.returncode != 0:
            return None, f"real corpus not built: {r.stderr.strip()[-400:]}"
        with open(os.path.join(corpus, "_SOURCE")) as f:
            return corpus, "Linux kernel source text: " + "; ".join(f.read().splitlines()[:3])
    if not os.path.isdir(corpus):
        subprocess.run([tool, "gen-text", kind, str(size), corpus, "--seed", str(args.seed)], check=True)
    return corpus, None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1GiB")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/mrbench")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--corpora", default="zipf,highcard,debian",
                    help="wordcount corpora: zipf, highcard (generated), debian (bench/corpus_debian.sh)")
    ap.add_argument("--no-terasort", action="store_true", help="skip terasort, the 4x RSS and the 1 MiB runs")
    ap.add_argument("--out-name", default="engine-latest", help="results file name (without extension)")
    args = ap.parse_args()
    size = parse_size(args.size)
    os.makedirs(args.dir, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "examples"], cwd=ROOT, check=True)
    mrjob, tool = os.path.join(BIN, "mrjob"), os.path.join(BIN, "benchtool")
    d = lambda *p: os.path.join(args.dir, *p)
    sections, notes = [], []
    cores = os.cpu_count()

    for kind in [k for k in args.corpora.split(",") if k]:
        corpus, note = ensure_corpus(kind, size, args, tool, d)
        if note:
            notes.append(f"- {kind}: {note}")
        if corpus is None:
            continue
        nbytes = sum(os.path.getsize(os.path.join(corpus, n)) for n in os.listdir(corpus)
                     if not n.startswith(("_", ".")))
        print(f"wordcount on {kind} ({nbytes} bytes)", flush=True)
        rows, distinct = wordcount_rows(tool, mrjob, corpus, args.runs, d, cores)
        sections += wordcount_section(kind, nbytes, rows, distinct)

    rows = []
    if not args.no_terasort:
        rows, extra = terasort_and_more(args, size, tool, mrjob, d, cores)
        notes += extra

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    argv = " ".join(["bench/engine.py"] + sys.argv[1:])
    out = [f"# Engine benchmark ({stamp})", "",
           f"Machine: {cores} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') >> 30} GiB RAM, {platform.platform()}.",
           f"Command: `{argv}`; medians of {args.runs} runs (wordcount rows taking turns, run by run); "
           "mrjob uses its defaults (all cores, one reducer per core, output fsynced; the baselines fsync theirs too). "
           "The reference is the tuned single-threaded count (`benchtool wordcount-tuned --threads 1`); "
           "targets are issue 16's.", ""]
    out += sections
    if rows:
        out += ["### terasort", "",
                "| workload | baseline 1 thread (s) | mrjob (s) | speedup | mrjob MB/s | baseline peak RSS (MiB) | mrjob peak RSS (MiB) |",
                "|---|---|---|---|---|---|---|"]
        for name, tb, tm, mb, rb, rm_ in rows:
            out.append(f"| {name} | {tb:.2f} | {tm:.2f} | {tb / tm:.2f}x | {mb / tm:.0f} | {rb:.0f} | {rm_:.0f} |")
        out.append("")
    out += notes
    text = "\n".join(out) + "\n"
    print(text)
    name = os.path.join(ROOT, "bench", "results", f"{args.out_name}.md")
    with open(name, "w") as f:
        f.write(text)
    print(f"written to {name}")


def terasort_and_more(args, size, tool, mrjob, d, cores):
    """terasort against the in-memory sort, peak RSS on 4x the highcard corpus, a 1 MiB job."""
    rows, notes = [], []
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
    src = d(f"highcard-{size}")
    if not os.path.isdir(src):
        subprocess.run([tool, "gen-text", "highcard", str(size), src, "--seed", str(args.seed)], check=True)
    big = d("highcard-x4")
    if not os.path.isdir(big):
        os.makedirs(big)
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
    notes += [f"- Peak RSS of `mrjob wordcount` on {4 * size >> 20} MiB of high-cardinality text: {big_rss:.0f} MiB "
              f"(bound: sort buffer 100 MiB x {cores} threads + 300 MiB = {bound} MiB; wall {big_wall:.1f} s).",
              f"- 1 MiB wordcount end to end: {small_wall * 1000:.0f} ms (median of 5)."]
    return rows, notes


if __name__ == "__main__":
    main()
