#!/usr/bin/env python3
"""abi-compat: the compatibility rules of manifest.py --check, case by case.

    test_compat.py ABI.manifest

Each case edits a copy of the manifest, releases the original as 1.0 in a
scratch released/ folder and expects the check against it to pass or fail.
"""
import os
import re
import sys
import tempfile

# The source tree stays as checked out: no __pycache__ next to the scripts.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import manifest as abi  # noqa: E402


def edit(text, pattern, repl, count=1):
    new, n = re.subn(pattern, repl, text, count=count, flags=re.M)
    if n == 0:
        raise SystemExit("test_compat.py: pattern %r matches nothing in the manifest" % pattern)
    return new


def version(text, major, minor):
    return edit(text, r"^abi \d+ \d+$", "abi %d %d" % (major, minor))


def line_of(text, rec):
    """The manifest line of a parsed record (without a trailing comment)."""
    return re.search(r"^%s(?=\s*(#.*)?$)" % re.escape(abi.format_record(rec)), text, flags=re.M).group(0)


def cases(base, m):
    """Cases built from whatever the manifest holds, so they keep working as
    records are added."""
    fns = m.of("fn")
    plain = next(f for f in fns if f["params"] and not f["attrs"])
    parks = next(f for f in fns if "parks" in f["attrs"])
    safe = next(f for f in fns if "signal_safe" in f["attrs"])
    ro = next(s for s in m.of("struct") if s["readonly"])
    owned = next(s for s in m.of("struct") if not s["readonly"])
    tag, err, enum = m.of("tag")[0], m.of("error")[0], m.of("enum")[-1]
    field = m.fields(ro["name"])[-1]

    send = line_of(base, plain)
    yield_ = line_of(base, parks)
    shutdown = line_of(base, safe)
    pname, ptype = plain["params"][-1]
    other = "u8" if ptype != "u8" else "u16"
    new_fn = "fn snow_compat_probe i32 x:i32\n"

    def grown(s):
        line = line_of(base, s)
        bigger = line.replace("%s %d %d" % (s["name"], s["size"], s["align"]),
                              "%s %d %d" % (s["name"], s["size"] + 8, s["align"]))
        return base.replace(line, bigger) + "field %s compat_extra %d u64\n" % (s["name"], s["size"])

    return [
        ("the manifest as released", base, True),
        ("a function removed", base.replace(send + "\n", ""), False),
        ("a function removed, major raised", version(base.replace(send + "\n", ""), 2, 0), True),
        ("a parameter type changed", base.replace(send, send.replace(" %s:%s" % (pname, ptype),
                                                                     " %s:%s" % (pname, other))), False),
        ("a return type changed", base.replace(send, send.replace(" %s " % plain["ret"],
                                                                  " %s " % ("i64" if plain["ret"] != "i64" else "u64"),
                                                                  1)), False),
        ("a parameter renamed (not part of the ABI)",
         base.replace(send, send.replace(" %s:" % pname, " %s_renamed:" % pname)), True),
        ("a function added without raising the minor version", base + new_fn, False),
        ("a function added, minor raised", version(base + new_fn, 1, 1), True),
        ("@actor added to a function", base.replace(send, send + " @actor"), False),
        ("@parks dropped from a function", base.replace(yield_, yield_.replace(" @parks", "")), True),
        ("@signal_safe dropped", base.replace(shutdown, shutdown.replace(" @signal_safe", "")), False),
        ("@signal_safe added, minor raised", version(base.replace(send, send + " @signal_safe"), 1, 1), True),
        ("@signal_safe added without a minor bump", base.replace(send, send + " @signal_safe"), False),
        ("a tag value changed", base.replace(line_of(base, tag), abi.format_record(dict(tag, value=tag["value"] + 0x1000))),
         False),
        ("an error code changed", base.replace(line_of(base, err), abi.format_record(dict(err, value=err["value"] - 999))),
         False),
        ("an enum constant removed", base.replace(line_of(base, enum) + "\n", ""), False),
        ("a field offset changed",
         base.replace(line_of(base, field), abi.format_record(dict(field, offset=field["offset"] + 4))), False),
        ("a field appended to a @readonly struct, minor raised", version(grown(ro), 1, 1), True),
        ("a field appended to a @readonly struct without a minor bump", grown(ro), False),
        ("a field appended to a struct programs allocate", version(grown(owned), 1, 1), False),
        ("the same, major raised", version(grown(owned), 2, 0), True),
        ("@readonly taken from a struct", base.replace(line_of(base, ro), line_of(base, ro).replace(" @readonly", "")),
         False),
        ("a version older than the released one", version(base, 0, 9), False),
    ]


def main():
    base_text = version(open(sys.argv[1]).read(), 1, 0)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        rel = os.path.join(tmp, "released")
        os.makedirs(rel)
        with open(os.path.join(rel, "abi-1.0.manifest"), "w") as f:
            f.write(base_text)
        all_cases = cases(base_text, abi.read_manifest(os.path.join(rel, "abi-1.0.manifest")))
        for name, text, want_ok in all_cases:
            path = os.path.join(tmp, "abi.manifest")
            with open(path, "w") as f:
                f.write(text)
            problems, _ = abi.check_released(abi.read_manifest(path), rel)
            ok = not problems
            good = ok == want_ok
            failed += not good
            print("%s: %s -> %s%s" % ("ok" if good else "FAIL", name, "compatible" if ok else "refused",
                                      "" if ok else " (%s)" % problems[0]))
    print("%d passed, %d failed" % (len(all_cases) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
