#!/usr/bin/env python3
"""abi-install: meson install into a temporary prefix, then build the
examples the way a user of the installed runtime would, with pkg-config.

    install_test.py BUILD_DIR SOURCE_DIR CC [SANITIZE]

1. `meson install --destdir TMP` puts snow_rt.h, libsnowrt.a, libsnowrt.so*
   (SONAME libsnowrt.so.<major>), the manifest and snow-rt.pc under the prefix.
2. snow-rt.pc's Libs.private names every library libsnowrt.so needs
   (bearssl, zlib when it is used, ...) and pthread.
3. snow-actors-demo built with `pkg-config --cflags --libs snow-rt` links
   libsnowrt.so.<major> and runs; built with -static and
   `pkg-config --static --cflags --libs snow-rt` it needs no shared library
   and runs; snow-hello (TLS, HTTP) links both ways too.

SANITIZE is meson's b_sanitize. A sanitized runtime cannot be part of a
fully static program (the sanitizer runtimes are shared objects), so there
the static build names the archive itself (-l:libsnowrt.a) in place of
-lsnowrt, with the rest of `pkg-config --static` unchanged.
"""
import filecmp
import os
import re
import shlex
import sys
import tempfile

# The source tree stays as checked out: no __pycache__ next to the scripts.
sys.dont_write_bytecode = True
from abitest import check, finish, needed, run






def main():
    build, src, cc = sys.argv[1:4]
    sanitize = sys.argv[4] if len(sys.argv) > 4 else "none"
    cc = shlex.split(cc)
    if sanitize != "none":
        cc += ["-fsanitize=" + sanitize]
    with tempfile.TemporaryDirectory(prefix="snow-rt-install-") as dest:
        r = run(["meson", "install", "-C", build, "--no-rebuild", "--quiet", "--destdir", dest])
        if not check(r.returncode == 0, "meson install --destdir"):
            print(r.stdout, r.stderr)
            return 1
        pcs = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs if f == "snow-rt.pc"]
        if not check(len(pcs) == 1, "one snow-rt.pc installed"):
            return 1
        pc = pcs[0]
        prefix = re.search(r"^prefix=(.*)$", open(pc).read(), flags=re.M).group(1)
        root = os.path.join(dest, prefix.lstrip("/"))
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pc), PKG_CONFIG_LIBDIR=os.path.dirname(pc))

        def pkgconfig(*args):
            r = run(["pkg-config", "--define-variable=prefix=" + root] + list(args) + ["snow-rt"], env=env)
            check(r.returncode == 0, "pkg-config %s snow-rt" % " ".join(args))
            return shlex.split(r.stdout)

        libdir = pkgconfig("--variable=libdir")[0]
        includedir = pkgconfig("--variable=includedir")[0]
        major = int(pkgconfig("--variable=abi_major")[0])
        manifest = pkgconfig("--variable=abi_manifest")[0]
        check(os.path.isfile(os.path.join(includedir, "snow_rt.h")), "snow_rt.h in includedir")
        check(os.path.isfile(os.path.join(libdir, "libsnowrt.a")), "libsnowrt.a in libdir")
        so = os.path.join(libdir, "libsnowrt.so.%d" % major)
        check(os.path.islink(os.path.join(libdir, "libsnowrt.so")) and os.path.exists(so),
              "libsnowrt.so -> libsnowrt.so.%d" % major)
        check(os.path.isfile(manifest) and filecmp.cmp(manifest, os.path.join(src, "compiler-abi", "abi.manifest"),
                                                       shallow=False),
              "abi.manifest installed where pkg-config's abi_manifest says")
        installed = {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs}
        print("installed:", " ".join(sorted(installed)))

        static_libs = pkgconfig("--static", "--libs")
        check("-pthread" in static_libs or "-lpthread" in static_libs, "Libs.private names pthread")
        for lib in needed(so):
            m = re.match(r"lib(.+?)\.so", lib)
            if not m or m.group(1) in ("c", "pthread", "dl", "rt"):
                continue  # the C library (and the dynamic loader) come with any link
            name = m.group(1)
            check("-l" + name in static_libs, "Libs.private names %s, which libsnowrt.so needs" % name)

        examples = os.path.join(src, "compiler-abi", "examples")
        with tempfile.TemporaryDirectory(prefix="snow-rt-user-") as work:
            for ex in ("actors", "hello"):
                c = os.path.join(examples, ex + ".c")
                dyn = os.path.join(work, ex + "-shared")
                r = run(cc + [c, "-o", dyn] + pkgconfig("--cflags", "--libs"))
                if check(r.returncode == 0, "%s.c builds with pkg-config --cflags --libs" % ex):
                    check("libsnowrt.so.%d" % major in needed(dyn), "%s-shared needs libsnowrt.so.%d" % (ex, major))
                else:
                    print(r.stderr)
                st = os.path.join(work, ex + "-static")
                flags = pkgconfig("--static", "--cflags", "--libs")
                if sanitize == "none":
                    cmd, how = cc + ["-static", c, "-o", st] + flags, "-static"
                else:
                    flags = ["-l:libsnowrt.a" if f == "-lsnowrt" else f for f in flags]
                    cmd, how = cc + [c, "-o", st] + flags, "-l:libsnowrt.a (sanitized build)"
                r = run(cmd)
                if check(r.returncode == 0, "%s.c builds with %s and pkg-config --static" % (ex, how)):
                    if sanitize == "none":
                        check(needed(st) == [], "%s-static needs no shared library" % ex)
                    else:
                        check(not any(n.startswith("libsnowrt") for n in needed(st)),
                              "%s-static does not need libsnowrt.so" % ex)
                else:
                    print(r.stderr)
            demo_args = ["--ring", "50", "--laps", "3"]
            dyn = os.path.join(work, "actors-shared")
            if os.path.exists(dyn):
                r = run([dyn] + demo_args, env=dict(os.environ, LD_LIBRARY_PATH=libdir), timeout=120)
                check(r.returncode == 0, "actors-shared runs against the installed libsnowrt.so")
                if r.returncode:
                    print(r.stdout, r.stderr)
            st = os.path.join(work, "actors-static")
            if os.path.exists(st):
                r = run([st] + demo_args, timeout=120)
                check(r.returncode == 0, "actors-static runs")
                if r.returncode:
                    print(r.stdout, r.stderr)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
