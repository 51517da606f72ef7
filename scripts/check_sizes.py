#!/usr/bin/env python3
"""Reports production Rust files and functions that outgrew the house rules.

A file's production lines are its lines outside `#[cfg(test)]` modules; a function's length runs
from its `fn` line to its closing brace. Exit status 1 when a file exceeds --max-file-lines or a
function exceeds --max-fn-lines, so CI notices a room that needs splitting.
"""
import argparse
import pathlib
import re
import sys

FN_RE = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def strip_strings(line):
    # Braces inside string and char literals must not count; comments neither.
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])'", "''", line)
    return line.split("//", 1)[0]


def scan(path):
    lines = path.read_text().splitlines()
    prod = 0
    fns = []
    depth = 0
    test_depth = None
    pending_test = False
    stack = []  # (name, start line, depth at open)
    for i, raw in enumerate(lines, 1):
        line = strip_strings(raw)
        if test_depth is None and re.match(r"\s*#\[cfg\(test\)\]", raw):
            pending_test = True
        if test_depth is None:
            prod += 1
        m = FN_RE.match(line)
        opens = line.count("{")
        closes = line.count("}")
        if pending_test and re.match(r"\s*(pub\s+)?mod\s+\w+\s*\{", line):
            test_depth = depth
            pending_test = False
        elif pending_test and re.match(r"\s*(pub\s+)?mod\s+\w+\s*;", line):
            pending_test = False
        # A declaration without a body (a trait's required method) ends with `;`.
        if m and test_depth is None and not line.rstrip().endswith(";"):
            stack.append((m.group(6), i, depth))
        depth += opens - closes
        while stack and depth <= stack[-1][2] and (opens or closes):
            name, start, _ = stack.pop()
            fns.append((name, start, i - start + 1))
        if test_depth is not None and depth <= test_depth and closes:
            test_depth = None
    return prod, fns


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--max-file-lines", type=int, default=900)
    ap.add_argument("--max-fn-lines", type=int, default=80)
    ap.add_argument("roots", nargs="*", default=["dfs/src", "mapreduce/src", "examples/src", "cluster-tests/src"])
    args = ap.parse_args()
    bad = 0
    for root in args.roots:
        for path in sorted(pathlib.Path(root).rglob("*.rs")):
            if path.name == "tests.rs" or "tests" in path.parts[:-1]:
                continue
            prod, fns = scan(path)
            if prod > args.max_file_lines:
                print(f"{path}: {prod} production lines (limit {args.max_file_lines})")
                bad += 1
            for name, start, n in fns:
                if n > args.max_fn_lines:
                    print(f"{path}:{start}: fn {name} is {n} lines (limit {args.max_fn_lines})")
                    bad += 1
    if bad:
        print(f"{bad} over the limits", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
