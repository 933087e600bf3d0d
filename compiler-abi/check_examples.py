#!/usr/bin/env python3
"""Fails unless every C file in the examples folder includes only snow_rt.h,
headers of the C library / POSIX, and the example's own files (a page
embedded as a generated header).

    check_examples.py EXAMPLES_DIR RUNTIME_DIR STAMP
    check_examples.py --list EXAMPLES_DIR   (the files it checks, one a line)

A quoted include naming a header that the runtime itself has, or a path
with a folder in it, is refused, and so is an angle include naming a
runtime header (<rt.h>, <actor/...>), which would only resolve if the
runtime's own folders were on the path.
"""
import os
import re
import sys


def runtime_headers(root):
    names = set()
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".h"):
                rel = os.path.relpath(os.path.join(dirpath, f), root)
                names.add(rel)
                names.add(f)
    return names


def sources(examples):
    return [f for f in sorted(os.listdir(examples)) if f.endswith((".c", ".h"))]


def main():
    if sys.argv[1] == "--list":
        for f in sources(sys.argv[2]):
            print(os.path.join(sys.argv[2], f))
        return 0
    examples, runtime, stamp = sys.argv[1:4]
    internal = runtime_headers(runtime)
    problems = []
    checked = 0
    for f in sources(examples):
        checked += 1
        path = os.path.join(examples, f)
        for n, line in enumerate(open(path), 1):
            m = re.match(r'\s*#\s*include\s*([<"])([^>"]+)[>"]', line)
            if not m:
                continue
            kind, name = m.groups()
            if kind == '"' and name != "snow_rt.h" and (name in internal or "/" in name):
                problems.append('%s:%d: includes "%s"; examples may include only "snow_rt.h" and their own files'
                                % (path, n, name))
            elif kind == "<" and name in internal:
                problems.append("%s:%d: includes <%s>, a runtime-internal header" % (path, n, name))
    if checked == 0:
        problems.append("no example sources found in " + examples)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    with open(stamp, "w") as out:
        out.write("%d example files include only snow_rt.h of the runtime\n" % checked)
    return 0


if __name__ == "__main__":
    sys.exit(main())
