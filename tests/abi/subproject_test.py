#!/usr/bin/env python3
"""abi-subproject: snow-rt used as a meson subproject, the way
compiler-abi/README.md documents it.

    subproject_test.py SOURCE_DIR CC

A scratch parent project with subprojects/snow-rt (a link to this tree)
resolves dependency('snow-rt', fallback: 'snow-rt') to the dependency the
runtime registers with meson.override_dependency, builds snow-actors-demo
against it and runs it: once with the default (the public libsnowrt.a), once
with -Dsnow-rt:default_library=shared (libsnowrt.so.<major>).
"""
import os
import re
import sys
import tempfile

# The source tree stays as checked out: no __pycache__ next to the scripts.
sys.dont_write_bytecode = True
from abitest import check, finish, needed, run


PARENT = """project('snow-rt-user', 'c', default_options: ['c_std=c11'])
snow_rt = dependency('snow-rt', fallback: 'snow-rt')
executable('prog', 'actors.c', dependencies: snow_rt)
"""





def main():
    src, cc = sys.argv[1:3]
    env = dict(os.environ, CC=cc)
    with tempfile.TemporaryDirectory(prefix="snow-rt-parent-") as parent:
        os.makedirs(os.path.join(parent, "subprojects"))
        os.symlink(os.path.abspath(src), os.path.join(parent, "subprojects", "snow-rt"))
        with open(os.path.join(parent, "meson.build"), "w") as f:
            f.write(PARENT)
        with open(os.path.join(src, "compiler-abi", "examples", "actors.c")) as f, \
                open(os.path.join(parent, "actors.c"), "w") as out:
            out.write(f.read())
        for label, opts in (("static", []), ("shared", ["-Dsnow-rt:default_library=shared"])):
            b = os.path.join(parent, "build-" + label)
            r = run(["meson", "setup", b] + opts, cwd=parent, env=env)
            if not check(r.returncode == 0, "%s: meson setup of a project using dependency('snow-rt')" % label):
                print(r.stdout[-3000:], r.stderr[-3000:])
                continue
            r = run(["ninja", "-C", b, "-j2", "prog"], env=env)
            if not check(r.returncode == 0, "%s: the project's program builds" % label):
                print(r.stdout[-3000:], r.stderr[-3000:])
                continue
            prog = os.path.join(b, "prog")
            libs = needed(prog)
            if label == "static":
                check(not any(n.startswith("libsnowrt") for n in libs), "static: linked with libsnowrt.a")
            else:
                check(any(re.fullmatch(r"libsnowrt\.so\.\d+", n) for n in libs), "shared: needs libsnowrt.so.<major>")
            r = run([prog, "--ring", "20", "--laps", "2"], timeout=120)
            check(r.returncode == 0, "%s: the program runs" % label)
            if r.returncode:
                print(r.stdout[-3000:], r.stderr[-3000:])
    return finish()


if __name__ == "__main__":
    sys.exit(main())
