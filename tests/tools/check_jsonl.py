#!/usr/bin/env python3
"""Strict JSON lines: every line of each file given must parse with the standard parser with
NaN and Infinity refused (json.loads alone accepts them), and end with a newline. Prints the
first bad line of each file; exits 1 if there was one, 0 otherwise.
usage: check_jsonl.py FILE..."""
import json
import sys


def refuse(name):
    raise ValueError("%s is not JSON" % name)


bad = 0
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines[-1] != "":
        print("%s: the last line is cut off: %r" % (path, lines[-1][:200]))
        bad += 1
        continue
    for n, line in enumerate(lines[:-1], 1):
        try:
            json.loads(line, parse_constant=refuse)
        except ValueError as e:
            print("%s line %d: %s: %s" % (path, n, e, line[:200]))
            bad += 1
            break
sys.exit(1 if bad else 0)
