"""Output digests for bench/compare, run in a child process so the parent stays small (a child's
ru_maxrss starts from its parent's RSS at fork time). Usage: digest.py lines|records FILE...
lines: SHA-256 of the sorted non-empty lines, and their count.
records: 1 if the 100-byte records are in key order else 0, and SHA-256 of the sorted records."""
import hashlib
import sys


def main():
    mode, paths = sys.argv[1], sys.argv[2:]
    data = b"".join(open(p, "rb").read() for p in paths)
    if mode == "lines":
        lines = [x for x in data.split(b"\n") if x]
        del data
        lines.sort()
        print(hashlib.sha256(b"\n".join(lines)).hexdigest(), len(lines))
    else:
        recs = [data[i:i + 100] for i in range(0, len(data), 100)]
        del data
        ordered = all(recs[i][:10] <= recs[i + 1][:10] for i in range(len(recs) - 1))
        recs.sort()
        print(int(ordered), hashlib.sha256(b"".join(recs)).hexdigest())


if __name__ == "__main__":
    main()
