#!/usr/bin/env python3
"""Checks what leaves libsnowrt.so and libsnowrt.a against snow_rt.h and
compiler-abi/abi.manifest.

    check_exports.py LIBSNOWRT.so LIBSNOWRT.a SNOW_RT.h ABI.manifest

1. Every dynamic symbol the shared object defines starts with "snow_", and
   the set is exactly the functions snow_rt.h declares with SNOW_API.
2. The static archive's global definitions are exactly that set too: no
   internal name (msg_new, rt_log, ...) can meet a program's own.
3. The manifest's fn records name exactly the declared functions.
4. The shared object's SONAME is libsnowrt.so.<SNOW_RT_ABI_MAJOR>.
"""
import os
import re
import subprocess
import sys

# The source tree stays as checked out: no __pycache__ next to the scripts.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import manifest as abi  # noqa: E402


def nm(args):
    out = subprocess.run(["nm"] + args, check=True, capture_output=True, text=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in "TDBRWVi":
            syms.add(parts[2])
    return syms


def soname(so):
    out = subprocess.run(["readelf", "-d", so], check=True, capture_output=True, text=True).stdout
    m = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", out)
    return m.group(1) if m else None


def main():
    so, archive, header_path, manifest_path = sys.argv[1:5]
    failures = []
    header = abi.read_header(header_path)
    want = {k[1] for k in header.order if k[0] == "fn"}
    if len(want) < 10:
        failures.append("found only %d SNOW_API declarations in %s" % (len(want), header_path))

    exported = nm(["-D", "--defined-only", so]) - {"_init", "_fini"}
    stray = sorted(n for n in exported if not n.startswith("snow_"))
    if stray:
        failures.append("libsnowrt.so exports symbols without the snow_ prefix: " + ", ".join(stray[:20]))
    if sorted(want - exported):
        failures.append("declared in snow_rt.h but not exported: " + ", ".join(sorted(want - exported)))
    undeclared = sorted(n for n in exported if n.startswith("snow_") and n not in want)
    if undeclared:
        failures.append("exported but not declared in snow_rt.h: " + ", ".join(undeclared))

    in_archive = nm(["--defined-only", "-g", archive])
    stray_a = sorted(n for n in in_archive if not n.startswith("snow_"))
    if stray_a:
        failures.append("libsnowrt.a defines %d globals without the snow_ prefix: %s"
                        % (len(stray_a), ", ".join(stray_a[:20])))
    if sorted(want - in_archive):
        failures.append("declared in snow_rt.h but not in libsnowrt.a: " + ", ".join(sorted(want - in_archive)))
    undeclared_a = sorted(n for n in in_archive if n.startswith("snow_") and n not in want)
    if undeclared_a:
        failures.append("libsnowrt.a defines undeclared snow_ globals: " + ", ".join(undeclared_a))

    try:
        m = abi.read_manifest(manifest_path)
        m_funcs = {f["name"] for f in m.of("fn")} | {name for _, kind, name in m.legacy}
        if m_funcs != want:
            failures.append("manifest and snow_rt.h differ: only in manifest %s; only in header %s"
                            % (sorted(m_funcs - want), sorted(want - m_funcs)))
    except abi.ManifestError as e:
        failures.append(str(e))

    name = soname(so)
    expect = "libsnowrt.so.%d" % header.version[0] if header.version else None
    if name != expect:
        failures.append("SONAME is %s, expected %s (SNOW_RT_ABI_MAJOR)" % (name, expect))

    for f in failures:
        print("FAIL:", f)
    print("%d declared, %d exported by the .so, %d globals in the .a, SONAME %s"
          % (len(want), len(exported), len(in_archive), name))
    checks = 4
    print("%d passed, %d failed" % (checks - min(checks, len(failures)), min(checks, len(failures))))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
