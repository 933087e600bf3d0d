#!/usr/bin/env python3
"""Builds the installed static archive from the runtime's internal one.

    public_archive.py LD OBJCOPY AR NM OUT.a IN.a

The runtime is compiled with -fvisibility=hidden, so every internal
cross-file symbol (msg_new, heap_alloc, rt_log, ...) is global but hidden.
Hidden only matters to the dynamic linker: in a static archive those names
would still collide with the program's own. So the objects are first joined
into one relocatable object (ld -r), which resolves every reference between
them, and then objcopy --localize-hidden turns the hidden globals into
locals. What stays global is exactly the default-visibility ABI (SNOW_API)
plus the undefined references to libc, pthread and BearSSL. The result is
checked here before the archive is written, so a build never produces an
archive that leaks a name.
"""
import os
import subprocess
import sys
import tempfile


def run(cmd):
    subprocess.run(cmd, check=True)


def main():
    ld, objcopy, ar, nm, out, archive = sys.argv[1:7]
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(out))) as tmp:
        joined = os.path.join(tmp, "snowrt.o")
        run([ld, "-r", "-o", joined, "--whole-archive", archive, "--no-whole-archive"])
        run([objcopy, "--localize-hidden", joined])
        listing = subprocess.run([nm, "-g", "--defined-only", joined], check=True,
                                 capture_output=True, text=True).stdout
        leaked = sorted(line.split()[-1] for line in listing.splitlines()
                        if line.strip() and not line.split()[-1].startswith("snow_"))
        if leaked:
            sys.exit("public_archive.py: globals without the snow_ prefix would leave %s: %s"
                     % (out, ", ".join(leaked[:20])))
        if os.path.exists(out):
            os.unlink(out)
        run([ar, "rcsD", out, joined])


if __name__ == "__main__":
    main()
