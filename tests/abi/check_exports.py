#!/usr/bin/env python3
"""Checks the ABI surface of libsnowrt.so against compiler-abi/snow_rt.h
and compiler-abi/abi.manifest.

1. Every dynamic symbol the shared object defines starts with "snow_".
2. Every function the header declares with SNOW_API is defined and exported,
   and nothing else with the prefix is.
3. The static archive defines every declared function too.
4. The manifest lists exactly the declared functions, and exactly the
   reserved tags the header defines, with their values.
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


def reserved_tags(header):
    text = open(header).read()
    return {name: 0xFFFFFFFF00000000 | int(v, 16)
            for name, v in re.findall(r"#define (SNOW_TAG_\w+) SNOW_TAG_RESERVED\((0x[0-9A-Fa-f]+)\)", text)}


def manifest(path):
    funcs, tags = set(), {}
    for line in open(path):
        line = line.split("#", 1)[0].split()
        if not line:
            continue
        if line[0] == "function" and len(line) == 2:
            funcs.add(line[1])
        elif line[0] == "tag" and len(line) == 3:
            tags[line[1]] = int(line[2], 16)
        else:
            raise SystemExit("bad manifest line: %r" % " ".join(line))
    return funcs, tags


def main():
    so, archive, header, manifest_path = sys.argv[1:5]
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
    m_funcs, m_tags = manifest(manifest_path)
    if m_funcs != want:
        failures.append("manifest and snow_rt.h differ: only in manifest %s; only in header %s"
                        % (sorted(m_funcs - want), sorted(want - m_funcs)))
    h_tags = reserved_tags(header)
    if m_tags != h_tags:
        failures.append("manifest tags differ from snow_rt.h: %s vs %s"
                        % (sorted(m_tags.items()), sorted(h_tags.items())))
    for f in failures:
        print("FAIL:", f)
    print("%d declared, %d exported, %d tags" % (len(want), len(exported), len(h_tags)))
    checks = 4
    print("%d passed, %d failed" % (checks - min(checks, len(failures)), min(checks, len(failures))))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
