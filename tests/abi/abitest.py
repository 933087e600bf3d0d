"""Shared by the abi test scripts: one ok/FAIL line per check, the
summary line, running commands, and what an ELF file needs."""
import re
import subprocess

failures = []


def check(ok, what, detail=""):
    print("%s: %s" % ("ok" if ok else "FAIL", what))
    if not ok:
        failures.append(what)
        if detail:
            print(detail)
    return ok


def finish():
    """Prints the summary line; the exit status for the script."""
    print("%d passed, %d failed" % (0 if failures else 1, 1 if failures else 0))
    return 1 if failures else 0


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def needed(path):
    """The DT_NEEDED entries of an ELF file."""
    out = run(["readelf", "-d", path]).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
