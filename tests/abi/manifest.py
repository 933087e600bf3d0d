#!/usr/bin/env python3
"""The snow-rt ABI manifest: reader, checker, drafter and C generator.

compiler-abi/README.md describes the format. Commands (paths default to the
tree this script lives in):

  manifest.py --check    compare snow_rt.h with abi.manifest (names, types,
                         noreturn, constants, struct fields) and abi.manifest
                         with the released manifests in compiler-abi/released/
                         (compatibility rules); exit 1 on any difference
  manifest.py --draft    print typed records for what snow_rt.h declares and
                         abi.manifest lacks (or lists in the old untyped form)
  manifest.py --update   rewrite abi.manifest in the header's order: matching
                         records kept as they are, the others drafted; prints
                         what to review (guessed attributes, new structs)
  manifest.py --gen-c OUT.c
                         write a C program that checks every record against
                         snow_rt.h at compile time (_Static_assert)
  manifest.py --release  copy abi.manifest to compiler-abi/released/abi-M.m.manifest
  manifest.py --functions
                         print the function names, one a line

Options: --header H, --manifest M, --released DIR.
"""
import argparse
import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_HEADER = os.path.join(ROOT, "compiler-abi", "snow_rt.h")
DEFAULT_MANIFEST = os.path.join(ROOT, "compiler-abi", "abi.manifest")
DEFAULT_RELEASED = os.path.join(ROOT, "compiler-abi", "released")

# The source tree stays as checked out: no __pycache__ next to the scripts.
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
from abi_format import PROMISES, REQUIREMENTS, ManifestError, format_record, layout, read_manifest  # noqa: E402
from abi_gen_c import gen_c  # noqa: E402
from abi_header import read_header  # noqa: E402


# ---------------------------------------------------------------------------
# --check: header against manifest
# ---------------------------------------------------------------------------

def same(kind, hrec, mrec):
    if kind == "fn":
        return (hrec["ret"] == mrec["ret"] and [t for _, t in hrec["params"]] == [t for _, t in mrec["params"]]
                and ("noreturn" in hrec["attrs"]) == ("noreturn" in mrec["attrs"]))
    if kind in ("tag", "error", "enum"):
        return hrec["value"] == mrec["value"]
    if kind == "const":
        return hrec["value"] == mrec["value"] and hrec["type"] == mrec["type"]
    if kind in ("alias", "field"):
        return hrec["type"] == mrec["type"]
    return True


def describe(rec):
    if "fields" in rec and rec["kind"] == "struct":
        return "struct %s { %s }" % (rec["name"], "; ".join("%s %s" % (t, n) for n, t in rec["fields"]))
    if rec["kind"] == "fn":
        return "fn %s %s %s%s" % (rec["name"], rec["ret"], " ".join(t for _, t in rec["params"]),
                                  " @noreturn" if "noreturn" in rec["attrs"] else "")
    return format_record(rec)


def check_header(h, m):
    problems = []
    for n, kind, name in m.legacy:
        problems.append("line %d: '%s %s' has no types (older manifest format); "
                        "tests/abi/manifest.py --update replaces it (--draft shows the record)" % (n, kind, name))
    legacy_names = {name for _, _, name in m.legacy}
    for key in h.order:
        hrec = h.items[key]
        if key not in m.records:
            if not (key[0] == "fn" and key[1] in legacy_names):
                problems.append("%s %s is in snow_rt.h but not in the manifest "
                                "(tests/abi/manifest.py --update adds it)" % key)
            continue
        if not same(key[0], hrec, m.records[key]):
            problems.append("%s %s differs: snow_rt.h has %s, the manifest %s"
                            % (key[0], key[1], describe(hrec), format_record(m.records[key])))
    for key, rec in m.records.items():
        if key not in h.items:
            problems.append("%s %s is in the manifest but not in snow_rt.h" % key)
    if h.version is None:
        problems.append("snow_rt.h defines no SNOW_RT_ABI_MAJOR / SNOW_RT_ABI_MINOR")
    elif h.version != m.version:
        problems.append("ABI version: snow_rt.h says %d.%d, the manifest's abi record %d.%d" % (h.version + m.version))
    return problems


# ---------------------------------------------------------------------------
# --check: manifest against released manifests
# ---------------------------------------------------------------------------

def compat(old, new):
    """Problems that make new incompatible with old (same major), plus
    whether anything was added."""
    problems, added = [], False
    for key, o in old.records.items():
        n = new.records.get(key)
        where = "%s %s" % key
        if n is None and key[0] == "opaque" and ("struct", key[1]) in new.records:
            added = True  # its layout is now public; pointers to it work as before
            continue
        if n is None:
            problems.append("%s was removed" % where)
            continue
        k = key[0]
        if k == "fn":
            if o["ret"] != n["ret"] or [t for _, t in o["params"]] != [t for _, t in n["params"]]:
                problems.append("%s changed type: %s -> %s" % (where, format_record(o), format_record(n)))
            oa, na = set(o["attrs"]), set(n["attrs"])
            for a in sorted(oa - na):
                if a in PROMISES:
                    problems.append("%s lost @%s (a promise may not be withdrawn)" % (where, a))
            for a in sorted(na - oa):
                if a in REQUIREMENTS:
                    problems.append("%s gained @%s (a new requirement breaks existing callers)" % (where, a))
                else:
                    added = True
        elif k == "struct":
            if o["align"] != n["align"] or o["readonly"] != n["readonly"]:
                problems.append("%s changed alignment or ownership" % where)
            elif o["size"] != n["size"]:
                if not o["readonly"]:
                    problems.append("%s changed size %d -> %d; programs allocate it, so that needs a major version"
                                    % (where, o["size"], n["size"]))
                elif n["size"] < o["size"]:
                    problems.append("%s shrank %d -> %d" % (where, o["size"], n["size"]))
                else:
                    added = True
        elif k == "field":
            if o["offset"] != n["offset"] or o["type"] != n["type"]:
                problems.append("%s changed: %s -> %s" % (where, format_record(o), format_record(n)))
        elif format_record(o) != format_record(n):
            problems.append("%s changed: %s -> %s" % (where, format_record(o), format_record(n)))
    for key, n in new.records.items():
        if key in old.records:
            continue
        added = True
        if key[0] == "field":
            s = old.records.get(("struct", n["struct"]))
            if s and not s["readonly"]:
                problems.append("field %s added to %s, which programs allocate (needs a major version)"
                                % (n["name"], n["struct"]))
            elif s and n["offset"] < s["size"]:
                problems.append("field %s added inside %s's old size (only appending is compatible)"
                                % (n["name"], n["struct"]))
    return problems, added


def released_manifests(d):
    out = []
    if not os.path.isdir(d):
        return out
    for f in sorted(os.listdir(d)):
        m = re.fullmatch(r"abi-(\d+)\.(\d+)\.manifest", f)
        if m:
            out.append(((int(m.group(1)), int(m.group(2))), os.path.join(d, f)))
    return sorted(out)


def check_released(cur, released_dir):
    problems = []
    rel = released_manifests(released_dir)
    for (major, minor), path in rel:
        old = read_manifest(path)
        name = os.path.basename(path)
        if old.version != (major, minor):
            problems.append("%s holds ABI %d.%d" % ((name,) + old.version))
            continue
        if cur.version[0] < major or (cur.version[0] == major and cur.version[1] < minor):
            problems.append("ABI %d.%d is older than the released %s" % (cur.version + (name,)))
            continue
        if cur.version[0] > major:
            continue  # a new major version may change anything
        p, added = compat(old, cur)
        problems += ["against %s: %s; keep it, or raise SNOW_RT_ABI_MAJOR" % (name, x) for x in p]
        if added and cur.version[1] == minor:
            problems.append("against %s: entries were added, so SNOW_RT_ABI_MINOR must be raised above %d"
                            % (name, minor))
    return problems, rel


# ---------------------------------------------------------------------------
# --draft
# ---------------------------------------------------------------------------

GUESSES = [
    ("actor", r"must be called from an actor|the calling actor|calling actor|parks the calling"),
    ("parks", r"\bparks?\b|\bwaits?\b|\byields?\b|\bhibernat"),
    ("signal_safe", r"signal handler|async-signal"),
]


def draft_fn(h, rec, existing=None):
    """A typed fn record for a header declaration: the manifest's own
    attributes when it had the function, else @noreturn from the header and
    the others guessed from the comment. Returns (record, note or None)."""
    if existing is not None:
        attrs = (set(existing["attrs"]) - {"noreturn"}) | set(rec["attrs"])
        return dict(rec, attrs=sorted(attrs)), None
    doc = h.docs.get(rec["name"], "")
    attrs = set(rec["attrs"])
    guessed = []
    for a, pat in GUESSES:
        if re.search(pat, doc, flags=re.I):
            attrs.add(a)
            guessed.append(a)
    if guessed:
        note = "%s: @%s guessed from its comment; check them" % (rec["name"], " @".join(guessed))
    else:
        note = "%s: no @actor/@parks/@signal_safe found in its comment; check" % rec["name"]
    return dict(rec, attrs=sorted(attrs)), note


def draft_struct(rec, struct_layout, existing=None):
    offsets, size, align = layout(rec["fields"], struct_layout)
    struct_layout[rec["name"]] = (size, align)
    readonly = bool(existing and existing.get("readonly"))
    srec = {"kind": "struct", "name": rec["name"], "size": size, "align": align, "readonly": readonly}
    frecs = [{"kind": "field", "struct": rec["name"], "name": fname, "offset": off, "type": ftype}
             for (fname, ftype), off in zip(rec["fields"], offsets)]
    note = None
    if existing is None:
        note = "%s: size and offsets computed for LP64 (the abi-layout build checks them); " \
               "add @readonly if programs only read it" % rec["name"]
    return srec, frecs, note


def update(h, m, manifest_path):
    """Rewrites the manifest from the header: records that still match are
    kept as they are (attributes, @readonly), the others are drafted.
    Returns the notes to review."""
    lines = open(manifest_path).read().splitlines()
    head = []
    for line in lines:
        if line.startswith("#") or not line.strip():
            head.append(line)
        else:
            break
    out = head + ["abi %d %d" % (h.version or m.version)]
    notes = []
    struct_layout = {s["name"]: (s["size"], s["align"]) for s in m.of("struct")}
    for key in h.order:
        rec = h.items[key]
        kind = key[0]
        if kind == "field":
            continue
        old = m.records.get(key)
        if kind == "struct":
            mfields = [(f["name"], f["type"]) for f in m.fields(key[1])] if old else None
            if old and mfields == rec["fields"]:
                out.append(format_record(old))
                out.extend(format_record(f) for f in m.fields(key[1]))
                continue
            srec, frecs, note = draft_struct(rec, struct_layout, old)
            out.append(format_record(srec))
            out.extend(format_record(f) for f in frecs)
            notes.append(note or "%s: fields changed; size and offsets recomputed" % rec["name"])
            continue
        if old and same(kind, rec, old):
            out.append(format_record(old))
            continue
        if kind == "fn":
            frec, note = draft_fn(h, rec, old)
            out.append(format_record(frec))
            if note:
                notes.append(note)
            elif old:
                notes.append("%s: type changed, attributes kept" % rec["name"])
            continue
        out.append(format_record(rec))
        if old:
            notes.append("%s %s: changed" % key)
    dropped = [("%s %s" % k) for k in m.records if k not in h.items]
    dropped += ["untyped 'function %s'" % name for _, _, name in m.legacy if ("fn", name) not in h.items]
    for d in dropped:
        notes.append("%s: no longer in snow_rt.h, dropped" % d)
    with open(manifest_path, "w") as f:
        f.write("\n".join(out) + "\n")
    return notes


def draft(h, m):
    out = []
    legacy_names = {name for _, _, name in m.legacy}
    struct_layout = {s["name"]: (s["size"], s["align"]) for s in m.of("struct")}
    for key in h.order:
        rec = h.items[key]
        kind = key[0]
        if kind == "field":
            continue  # printed with their struct
        old = m.records.get(key)
        if kind == "struct":
            if old and [(f["name"], f["type"]) for f in m.fields(key[1])] == rec["fields"]:
                continue
            srec, frecs, note = draft_struct(rec, struct_layout, old)
            if old:
                out.append("# replaces: %s and its %d field lines" % (format_record(old), len(m.fields(key[1]))))
            if note:
                out.append("# " + note)
            out.append(format_record(srec))
            out.extend(format_record(f) for f in frecs)
            continue
        if old and same(kind, rec, old):
            continue
        if old:
            out.append("# replaces: " + format_record(old))
        elif kind == "fn" and key[1] in legacy_names:
            out.append("# replaces the untyped line 'function %s'" % key[1])
        if kind == "fn":
            frec, note = draft_fn(h, rec, old)
            if note:
                out.append("# " + note)
            out.append(format_record(frec))
        else:
            out.append(format_record(rec))
    return out


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--check", action="store_true")
    g.add_argument("--draft", action="store_true")
    g.add_argument("--update", action="store_true")
    g.add_argument("--gen-c", metavar="OUT")
    g.add_argument("--release", action="store_true")
    g.add_argument("--functions", action="store_true")
    ap.add_argument("--header", default=DEFAULT_HEADER)
    ap.add_argument("--manifest", default=DEFAULT_MANIFEST)
    ap.add_argument("--released", default=DEFAULT_RELEASED)
    a = ap.parse_args()
    try:
        m = read_manifest(a.manifest)
        if a.functions:
            for f in m.of("fn"):
                print(f["name"])
            return 0
        if a.gen_c:
            if m.legacy:
                raise ManifestError("%s: %d untyped 'function' lines (older format); "
                                    "tests/abi/manifest.py --update replaces them (--draft shows the records)"
                                    % (a.manifest, len(m.legacy)))
            text = gen_c(m, os.path.basename(a.manifest))
            with open(a.gen_c, "w") as out:
                out.write(text)
            return 0
        if a.release:
            if m.legacy:
                raise ManifestError("untyped records left; cannot release")
            os.makedirs(a.released, exist_ok=True)
            dst = os.path.join(a.released, "abi-%d.%d.manifest" % m.version)
            if os.path.exists(dst):
                raise ManifestError("%s exists: a released manifest is never rewritten" % dst)
            shutil.copyfile(a.manifest, dst)
            print("released", dst)
            return 0
        h = read_header(a.header)
        if a.update:
            notes = update(h, m, a.manifest)
            for n in notes:
                print("review:", n)
            print("%s rewritten from %s (%d notes)" % (a.manifest, os.path.basename(a.header), len(notes)))
            return 0
        if a.draft:
            lines = draft(h, m)
            for line in lines:
                print(line)
            if not lines:
                print("# the manifest has every declaration of %s" % os.path.basename(a.header))
            return 0
        problems = check_header(h, m)
        rel_problems, rel = check_released(m, a.released)
        problems += rel_problems
        for p in problems:
            print("FAIL:", p)
        print("ABI %d.%d: %d records; compared with %d released manifest(s) (%s)"
              % (m.version + (len(m.records), len(rel), ", ".join(os.path.basename(p) for _, p in rel) or "none")))
        print("%d passed, %d failed" % (0 if problems else 1, 1 if problems else 0))
        return 1 if problems else 0
    except ManifestError as e:
        print("manifest.py:", e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
