#!/usr/bin/env python3
"""Streaming word-count mapper: `word<TAB>1` for every whitespace-separated word."""
import sys


def main():
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        for word in line.split():
            out.write(word + b"\t1\n")


if __name__ == "__main__":
    main()
