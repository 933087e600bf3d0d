#!/usr/bin/env python3
"""Checks the ABI surface of libsnowrt.so against compiler-abi/snow_rt.h.

1. Every dynamic symbol the shared object defines starts with "snow_".
2. Every function the header declares with SNOW_API is defined and exported.
3. The static archive defines every declared function too.
"""
import re
import subprocess
import sys


def nm(args):
    out = subprocess.run(["nm"] + args, check=True, capture_output=True, text=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in "TtDdBbRrWwVvi":
            syms.add((parts[1], parts[2]))
    return syms


def declared(header):
    text = open(header).read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    names = set()
    for decl in re.findall(r"SNOW_API\b([^;{]*?)\(", text):
        m = re.search(r"(snow_\w+)\s*$", decl.strip())
        if m:
            names.add(m.group(1))
    return names


def main():
    so, archive, header = sys.argv[1:4]
    failures = []
    exported = {name for kind, name in nm(["-D", "--defined-only", so])}
    stray = sorted(n for n in exported if not n.startswith("snow_") and n not in ("_init", "_fini"))
    if stray:
        failures.append("exported symbols without the snow_ prefix: " + ", ".join(stray[:20]))
    want = declared(header)
    if len(want) < 10:
        failures.append("found only %d SNOW_API declarations in %s" % (len(want), header))
    missing = sorted(want - exported)
    if missing:
        failures.append("declared in snow_rt.h but not exported: " + ", ".join(missing))
    in_archive = {name for kind, name in nm(["--defined-only", archive]) if kind == "T"}
    missing_a = sorted(want - in_archive)
    if missing_a:
        failures.append("declared in snow_rt.h but not in the static archive: " + ", ".join(missing_a))
    undeclared = sorted(n for n in exported if n.startswith("snow_") and n not in want)
    if undeclared:
        failures.append("exported but not declared in snow_rt.h: " + ", ".join(undeclared))
    for f in failures:
        print("FAIL:", f)
    print("%d declared, %d exported" % (len(want), len(exported)))
    print("%d passed, %d failed" % (3 - min(3, len(failures)), min(3, len(failures))))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
