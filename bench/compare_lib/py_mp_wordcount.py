"""Python multiprocessing word count: the input cut into byte ranges at token boundaries, one
worker process per core counting its ranges into a Counter, then the parent merges them.
Usage: py_mp_wordcount.py IN OUTFILE PROCESSES"""
import collections
import multiprocessing
import os
import sys

from common import IS_DELIM, input_files, tokens, write_counts

CHUNK = 64 << 20


def count_range(task):
    path, start, end = task
    counts = collections.Counter()
    with open(path, "rb") as f:
        skip_first = False
        if start > 0:
            f.seek(start - 1)
            skip_first = not IS_DELIM[f.read(1)[0]]  # the token there belongs to the range before
        data = f.read(end - start)
        # Extend to the end of the token that crosses `end` (it starts in this range).
        while data and not IS_DELIM[data[-1]]:
            more = f.read(4096)
            if not more:
                break
            cut = next((i for i, b in enumerate(more) if IS_DELIM[b]), None)
            if cut is not None:
                data += more[:cut]
                break
            data += more
    words = tokens(data)
    if skip_first and data and not IS_DELIM[data[0]]:
        words = words[1:]
    counts.update(words)
    return counts


def main():
    src, out, procs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    files = input_files(src)
    total = sum(os.path.getsize(p) for p in files)
    chunk = max(1 << 20, min(CHUNK, -(-total // (procs * 4))))
    tasks = [(p, s, min(s + chunk, os.path.getsize(p))) for p in files for s in range(0, os.path.getsize(p), chunk)]
    counts = collections.Counter()
    with multiprocessing.Pool(procs) as pool:
        for c in pool.imap_unordered(count_range, tasks):
            counts.update(c)  # the merge, in the parent
    write_counts(counts, out)


if __name__ == "__main__":
    main()
