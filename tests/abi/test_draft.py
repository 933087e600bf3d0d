#!/usr/bin/env python3
"""abi-draft: the path a new declaration takes into the manifest works.

    test_draft.py SNOW_RT.h ABI.manifest RELEASED_DIR CC

A copy of snow_rt.h gains what a new section would add (an error code, a
tag, an opaque handle, a struct with callbacks, functions, one listed in
the manifest the older untyped way) and a minor version bump. Then:
--check refuses the old manifest; --update rewrites it; --check accepts it,
also against the released manifests; --draft has nothing left to say; and
the program --gen-c makes from it compiles against the header copy.
"""
import os
import re
import shlex
import subprocess
import sys
import tempfile

# The source tree stays as checked out: no __pycache__ next to the scripts.
sys.dont_write_bytecode = True
from abitest import check, finish

HERE = os.path.dirname(os.path.abspath(__file__))
MANIFEST_PY = os.path.join(HERE, "manifest.py")

SECTION = """
/* ==== probe section (abi-draft) ==== */
#define SNOW_TAG_PROBE SNOW_TAG_RESERVED(0x7F)
typedef struct SnowProbe SnowProbe;
typedef struct SnowProbeOpts {
    int (*on_event)(SnowProbe *p, const void *data, size_t len, void *arg);
    void *arg;
    uint32_t max_events;
    const char *const *names;
} SnowProbeOpts;
/* Sends to the probe. Must be called from an actor; may park while its queue is full. */
SNOW_API int snow_probe_send(SnowProbe *p, const char *data, size_t len);
SNOW_API SnowProbe *snow_probe_open(const SnowProbeOpts *opts, int *err);
SNOW_API void snow_probe_abort(SnowProbe *p) __attribute__((noreturn));
"""




def tool(*args):
    return subprocess.run([sys.executable, MANIFEST_PY] + list(args), capture_output=True, text=True)


def main():
    header, manifest, released, cc = sys.argv[1:5]
    text = open(header).read()
    minor = int(re.search(r"#define SNOW_RT_ABI_MINOR (\d+)", text).group(1))
    text = re.sub(r"#define SNOW_RT_ABI_MINOR \d+", "#define SNOW_RT_ABI_MINOR %d" % (minor + 1), text)
    # a new error code at the end of the table
    text = re.sub(r"(SNOW_ERROR_TABLE\(X\)(?:[^\n]*\\\n)*[^\n]*X\([^\n]*\))\n",
                  lambda m: m.group(1) + " \\\n    X(PROBE_GONE, -5990, \"probe gone\")\n", text, count=1)
    end = text.rindex("#ifdef __cplusplus")
    text = text[:end] + SECTION + "\n" + text[end:]
    with tempfile.TemporaryDirectory() as tmp:
        h = os.path.join(tmp, "snow_rt.h")
        m = os.path.join(tmp, "abi.manifest")
        empty = os.path.join(tmp, "no-releases")
        os.makedirs(empty)
        with open(h, "w") as f:
            f.write(text)
        with open(m, "w") as f:
            f.write(open(manifest).read() + "function snow_probe_send\n")
        r = tool("--check", "--header", h, "--manifest", m, "--released", empty)
        check(r.returncode == 1 and "snow_probe_open" in r.stdout and "SNOW_EPROBE_GONE" in r.stdout
              and "function snow_probe_send" in r.stdout,
              "--check refuses the manifest without the new declarations", r.stdout + r.stderr)
        r = tool("--update", "--header", h, "--manifest", m)
        check(r.returncode == 0 and "snow_probe_send: @actor @parks guessed" in r.stdout
              and "SnowProbeOpts: size and offsets computed" in r.stdout,
              "--update drafts the records and says what to review", r.stdout + r.stderr)
        updated = open(m).read()
        for want in ["abi %d %d" % (int(re.search(r"#define SNOW_RT_ABI_MAJOR (\d+)", text).group(1)), minor + 1),
                     "error SNOW_EPROBE_GONE -5990",
                     "tag SNOW_TAG_PROBE 0xFFFFFFFF0000007F",
                     "opaque SnowProbe",
                     "struct SnowProbeOpts 32 8",
                     "field SnowProbeOpts on_event 0 fnptr<i32(ptr<SnowProbe>,cptr,usize,ptr)>",
                     "field SnowProbeOpts names 24 cptr<cptr<char>>",
                     "fn snow_probe_send i32 p:ptr<SnowProbe> data:cptr<char> len:usize @actor @parks",
                     "fn snow_probe_open ptr<SnowProbe> opts:cptr<SnowProbeOpts> err:ptr<i32>",
                     "fn snow_probe_abort void p:ptr<SnowProbe> @noreturn"]:
            check(re.search(r"^%s$" % re.escape(want), updated, flags=re.M) is not None, "record: " + want)
        check("function snow_probe_send" not in updated, "the untyped line is gone")
        r = tool("--check", "--header", h, "--manifest", m, "--released", released)
        check(r.returncode == 0, "--check accepts the updated manifest, also against the released ones",
              r.stdout + r.stderr)
        r = tool("--draft", "--header", h, "--manifest", m)
        check(r.returncode == 0 and r.stdout.startswith("# the manifest has every declaration"),
              "--draft has nothing left to add", r.stdout + r.stderr)
        c = os.path.join(tmp, "layout.c")
        r = tool("--gen-c", c, "--manifest", m)
        if check(r.returncode == 0, "--gen-c", r.stderr):
            r = subprocess.run(shlex.split(cc) + ["-std=c11", "-fsyntax-only", "-I", tmp, c],
                               capture_output=True, text=True)
            check(r.returncode == 0, "the generated program compiles against the header copy", r.stderr[-3000:])
    return finish()


if __name__ == "__main__":
    sys.exit(main())
