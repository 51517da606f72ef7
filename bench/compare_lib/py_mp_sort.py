"""Python multiprocessing terasort: sample keys for P-1 cut points; P workers each bucket a
share of the input by range into P temp files; P workers each sort one range; the parent
concatenates the sorted ranges (the merge). Usage: py_mp_sort.py IN OUTFILE PROCESSES TMPDIR"""
import bisect
import multiprocessing
import os
import shutil
import sys

from common import input_files

REC = 100


def bucket(task):
    idx, pieces, cuts, tmp = task
    outs = [open(os.path.join(tmp, f"b{p}-{idx}"), "wb") for p in range(len(cuts) + 1)]
    bufs = [[] for _ in outs]
    for path, start, end in pieces:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(end - start)
        for i in range(0, len(data), REC):
            r = data[i:i + REC]
            bufs[bisect.bisect_right(cuts, r[:10])].append(r)
    for o, b in zip(outs, bufs):
        o.writelines(b)
        o.close()
    return idx


def sort_range(task):
    p, n, tmp = task
    recs = []
    for idx in range(n):
        with open(os.path.join(tmp, f"b{p}-{idx}"), "rb") as f:
            data = f.read()
        recs += [data[i:i + REC] for i in range(0, len(data), REC)]
    recs.sort(key=lambda r: r[:10])
    out = os.path.join(tmp, f"sorted-{p}")
    with open(out, "wb") as f:
        f.writelines(recs)
    return out


def main():
    src, out, procs, tmp = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    os.makedirs(tmp, exist_ok=True)
    files = input_files(src)
    sizes = [os.path.getsize(p) for p in files]
    keys = []
    for path, size in zip(files, sizes):  # sample ~10,000 keys spread over the input
        step = max(1, size // REC // max(1, 10000 // len(files))) * REC
        with open(path, "rb") as f:
            for off in range(0, size, step):
                f.seek(off)
                keys.append(f.read(10))
    keys.sort()
    cuts = [keys[len(keys) * i // procs] for i in range(1, procs)]
    # Give each bucketing worker an equal share of records.
    total = sum(sizes) // REC
    share = -(-total // procs) * REC
    tasks, cur, left = [], [], share
    for path, size in zip(files, sizes):
        off = 0
        while off < size:
            take = min(left, size - off)
            cur.append((path, off, off + take))
            off += take
            left -= take
            if left == 0:
                tasks.append(cur)
                cur, left = [], share
    if cur:
        tasks.append(cur)
    with multiprocessing.Pool(procs) as pool:
        pool.map(bucket, [(i, t, cuts, tmp) for i, t in enumerate(tasks)])
        parts = pool.map(sort_range, [(p, len(tasks), tmp) for p in range(procs)])
    with open(out, "wb") as f:
        for p in parts:
            with open(p, "rb") as g:
                shutil.copyfileobj(g, f, 1 << 20)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
