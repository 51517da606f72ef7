"""Naive single-threaded Python word count: one Counter, the input read line by line.
Usage: py_wordcount.py IN OUTFILE"""
import collections
import sys

from common import input_files, tokens, write_counts


def main():
    counts = collections.Counter()
    for path in input_files(sys.argv[1]):
        with open(path, "rb") as f:
            for line in f:  # binary mode: lines end at \n only, a delimiter anyway
                counts.update(tokens(line))
    write_counts(counts, sys.argv[2])


if __name__ == "__main__":
    main()
