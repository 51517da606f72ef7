"""Naive single-threaded Python terasort: all 100-byte records in a list, sorted by their
10-byte key, written to one file. Usage: py_sort.py IN OUTFILE"""
import sys

from common import input_files


def main():
    recs = []
    for path in input_files(sys.argv[1]):
        with open(path, "rb") as f:
            data = f.read()
        recs += [data[i:i + 100] for i in range(0, len(data), 100)]
    recs.sort(key=lambda r: r[:10])
    with open(sys.argv[2], "wb") as f:
        f.writelines(recs)


if __name__ == "__main__":
    main()
