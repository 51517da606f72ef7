"""Shared helpers: the one tokenizer definition every Python row uses, and input listing."""
import os

# The five delimiter bytes (space, tab, \n, \r, form feed). Everything else, including \v and
# any non-UTF-8 byte, is part of a token. Python rows map the other four to space with
# bytes.translate and split on b" " (bytes.split() with no argument would also split on \v).
DELIMS = b" \t\n\r\x0c"
TO_SPACE = bytes.maketrans(b"\t\n\r\x0c", b"    ")
IS_DELIM = [b in DELIMS for b in range(256)]


def tokens(data):
    return [w for w in data.translate(TO_SPACE).split(b" ") if w]


def input_files(path):
    """Files under path, as mrjob lists them: recursive, names starting with _ or . skipped."""
    if os.path.isfile(path):
        return [path]
    out = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        out += [os.path.join(root, f) for f in sorted(files) if not f.startswith(("_", "."))]
    return out


def write_counts(counts, out):
    with open(out, "wb") as f:
        f.writelines(w + b"\t" + str(c).encode() + b"\n" for w, c in counts.items())
