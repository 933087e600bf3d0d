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

# ---------------------------------------------------------------------------
# The type vocabulary
# ---------------------------------------------------------------------------

# vocabulary word -> (C type, size, alignment) on the LP64 Linux targets the
# runtime supports. i32 is int32_t, which is the header's "int" there, and so on.
SCALARS = {
    "void": ("void", 0, 1),
    "bool": ("_Bool", 1, 1),
    "char": ("char", 1, 1),
    "i8": ("int8_t", 1, 1), "u8": ("uint8_t", 1, 1),
    "i16": ("int16_t", 2, 2), "u16": ("uint16_t", 2, 2),
    "i32": ("int32_t", 4, 4), "u32": ("uint32_t", 4, 4),
    "i64": ("int64_t", 8, 8), "u64": ("uint64_t", 8, 8),
    "usize": ("size_t", 8, 8),
    "f32": ("float", 4, 4), "f64": ("double", 8, 8),
}
POINTER_SIZE = 8

# C spellings the header may use -> vocabulary word. Anything else is
# refused so that a new spelling gets a deliberate decision.
C_SCALARS = {
    "void": "void", "_Bool": "bool", "bool": "bool", "char": "char",
    "signed char": "i8", "unsigned char": "u8",
    "short": "i16", "unsigned short": "u16",
    "int": "i32", "signed": "i32", "signed int": "i32",
    "unsigned": "u32", "unsigned int": "u32",
    "int8_t": "i8", "uint8_t": "u8", "int16_t": "i16", "uint16_t": "u16",
    "int32_t": "i32", "uint32_t": "u32", "int64_t": "i64", "uint64_t": "u64",
    "size_t": "usize", "float": "f32", "double": "f64",
}

ATTRIBUTES = {
    "noreturn": "never returns",
    "actor": "must be called from an actor",
    "parks": "may park the calling actor (it may resume on another worker thread)",
    "signal_safe": "async-signal-safe",
}
# Compatibility direction of each attribute: a promise may be added in a
# minor version but never dropped; a requirement may be dropped but never added.
PROMISES = {"noreturn", "signal_safe"}
REQUIREMENTS = {"actor", "parks"}

# Object-like macros that are not records of their own: the version is the
# abi record, SNOW_API is the visibility marker.
NOT_CONSTANTS = {"SNOW_API", "SNOW_RT_H", "SNOW_RT_ABI_MAJOR", "SNOW_RT_ABI_MINOR", "SNOW_RT_ABI_VERSION"}


class ManifestError(Exception):
    pass


def split_top(s, sep, opens, closes):
    """Splits s at each sep that is not inside a bracket pair."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch in opens:
            depth += 1
        elif ch in closes:
            depth -= 1
        if ch == sep and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def split_type_list(s):
    """Splits "a,b<c,d>,e" at top-level commas."""
    return [x for x in split_top(s, ",", "<(", ">)") if x]


def parse_type(t, names):
    """Validates a vocabulary type; names: struct/opaque names known."""
    if t in SCALARS:
        return t
    if t in ("ptr", "cptr"):
        return t
    m = re.fullmatch(r"(c?ptr)<(.+)>", t)
    if m:
        inner = m.group(2)
        if inner not in names:
            parse_type(inner, names)
        return t
    m = re.fullmatch(r"fnptr<(.+?)\((.*)\)>", t)
    if m:
        parse_type(m.group(1), names)
        for p in split_type_list(m.group(2)):
            if p == "void":
                raise ManifestError("fnptr parameter list: write fnptr<R()> for no parameters")
            parse_type(p, names)
        return t
    if t in names:
        return t
    raise ManifestError("unknown type %r" % t)


def c_decl(t, name=""):
    """C declaration of name with vocabulary type t ("" for an abstract type)."""
    sp = (" " + name) if name else ""
    if t in SCALARS:
        return SCALARS[t][0] + sp
    if t == "ptr":
        return "void *" + name
    if t == "cptr":
        return "const void *" + name
    m = re.fullmatch(r"(c?ptr)<(.+)>", t)
    if m:
        inner = m.group(2)
        q = "const " if m.group(1) == "cptr" else ""
        if inner.startswith("fnptr<"):
            return c_decl(inner, "*" + name)
        if inner.startswith(("ptr", "cptr")):
            return c_decl(inner, "*" + name) if not q else c_decl(inner, "const *" + name)
        return q + c_decl(inner) + " *" + name
    m = re.fullmatch(r"fnptr<(.+?)\((.*)\)>", t)
    if m:
        params = [c_decl(p) for p in split_type_list(m.group(2))] or ["void"]
        return c_decl(m.group(1), "(*%s)(%s)" % (name, ", ".join(params)))
    return t + sp  # a struct or opaque name (the header typedefs them)


# ---------------------------------------------------------------------------
# Reading a manifest
# ---------------------------------------------------------------------------

class Manifest:
    def __init__(self):
        self.version = None        # (major, minor)
        self.records = {}          # key -> record dict, in file order
        self.legacy = []           # (line number, kind, name) of untyped lines

    def of(self, kind):
        return [r for r in self.records.values() if r["kind"] == kind]

    def fields(self, struct):
        return sorted((r for r in self.of("field") if r["struct"] == struct), key=lambda r: r["offset"])


def int_value(s):
    try:
        return int(s, 0)
    except ValueError:
        raise ManifestError("not an integer: %r" % s)


def read_manifest(path):
    m = Manifest()
    lines = open(path).read().splitlines()
    parsed = []
    for n, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].split()
        if not line:
            continue
        parsed.append((n, line))
    names = set()
    for n, line in parsed:
        if line[0] in ("struct", "opaque") and len(line) > 1:
            names.add(line[1])
    for n, line in parsed:
        try:
            add_record(m, line, names, n)
        except ManifestError as e:
            raise ManifestError("%s:%d: %s" % (path, n, e))
    if m.version is None:
        raise ManifestError("%s: no 'abi MAJOR MINOR' record" % path)
    for s in m.of("struct"):
        if not m.fields(s["name"]):
            raise ManifestError("%s: struct %s has no field records" % (path, s["name"]))
    for f in m.of("field"):
        if ("struct", f["struct"]) not in m.records:
            raise ManifestError("%s: field %s.%s of an unlisted struct" % (path, f["struct"], f["name"]))
    return m


def add_record(m, line, names, n):
    kind = line[0]

    def put(key, rec):
        if key in m.records:
            raise ManifestError("duplicate record %s %s" % key)
        rec["kind"] = kind
        rec["line"] = n
        m.records[key] = rec

    def arity(k):
        if len(line) != k:
            raise ManifestError("%s record takes %d fields: %s" % (kind, k - 1, " ".join(line)))

    if kind == "abi":
        arity(3)
        if m.version:
            raise ManifestError("second abi record")
        m.version = (int_value(line[1]), int_value(line[2]))
    elif kind == "function":
        arity(2)
        m.legacy.append((n, kind, line[1]))
    elif kind in ("tag", "error", "enum"):
        arity(3)
        put((kind, line[1]), {"name": line[1], "value": int_value(line[2])})
    elif kind == "const":
        arity(4)
        put((kind, line[1]), {"name": line[1], "type": parse_type(line[2], names), "value": int_value(line[3])})
    elif kind == "alias":
        arity(3)
        put((kind, line[1]), {"name": line[1], "type": parse_type(line[2], names)})
    elif kind == "opaque":
        arity(2)
        put((kind, line[1]), {"name": line[1]})
    elif kind == "struct":
        if len(line) not in (4, 5) or (len(line) == 5 and line[4] != "@readonly"):
            raise ManifestError("struct NAME SIZE ALIGN [@readonly]: %s" % " ".join(line))
        put((kind, line[1]), {"name": line[1], "size": int_value(line[2]), "align": int_value(line[3]),
                              "readonly": len(line) == 5})
    elif kind == "field":
        arity(5)
        put((kind, line[1] + "." + line[2]), {"struct": line[1], "name": line[2], "offset": int_value(line[3]),
                                              "type": parse_type(line[4], names)})
    elif kind == "fn":
        if len(line) < 3:
            raise ManifestError("fn NAME RET [name:TYPE ...] [@attr ...]")
        params, attrs = [], []
        for tok in line[3:]:
            if tok.startswith("@"):
                if tok[1:] not in ATTRIBUTES:
                    raise ManifestError("unknown attribute %s (known: %s)" % (tok, ", ".join(sorted(ATTRIBUTES))))
                attrs.append(tok[1:])
            else:
                if attrs:
                    raise ManifestError("parameters come before attributes")
                pname, sep, ptype = tok.partition(":")
                if not sep or not re.fullmatch(r"[A-Za-z_]\w*", pname):
                    raise ManifestError("parameter %r is not name:TYPE" % tok)
                if ptype == "void":
                    raise ManifestError("a parameter cannot be void (no parameters: list none)")
                params.append((pname, parse_type(ptype, names)))
        put((kind, line[1]), {"name": line[1], "ret": parse_type(line[2], names), "params": params,
                              "attrs": sorted(set(attrs))})
    else:
        raise ManifestError("unknown record kind %r" % kind)


def format_record(r):
    k = r["kind"]
    if k == "tag":
        return "tag %s 0x%016X" % (r["name"], r["value"])
    if k in ("error", "enum"):
        return "%s %s %d" % (k, r["name"], r["value"])
    if k == "const":
        v = ("0x%X" % r["value"]) if r["value"] > 0xFFFF else str(r["value"])
        return "const %s %s %s" % (r["name"], r["type"], v)
    if k == "alias":
        return "alias %s %s" % (r["name"], r["type"])
    if k == "opaque":
        return "opaque %s" % r["name"]
    if k == "struct":
        return "struct %s %d %d%s" % (r["name"], r["size"], r["align"], " @readonly" if r.get("readonly") else "")
    if k == "field":
        return "field %s %s %d %s" % (r["struct"], r["name"], r["offset"], r["type"])
    if k == "fn":
        parts = ["fn", r["name"], r["ret"]] + ["%s:%s" % p for p in r["params"]] + ["@" + a for a in r["attrs"]]
        return " ".join(parts)
    raise ValueError(k)


# ---------------------------------------------------------------------------
# Reading snow_rt.h (only the subset of C the header uses)
# ---------------------------------------------------------------------------

class Header:
    def __init__(self):
        self.version = None
        self.items = {}      # key -> record dict like the manifest's (no sizes)
        self.order = []      # keys in header order
        self.docs = {}       # function name -> the comment above it

    def add(self, key, rec):
        if key not in self.items:
            self.order.append(key)
        self.items[key] = rec


def strip_comments(text):
    # Keep newlines so positions stay meaningful.
    text = re.sub(r"/\*.*?\*/", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def eval_c_int(expr, known):
    e = expr.strip()
    e = re.sub(r"UINT64_C\(([^)]*)\)|INT64_C\(([^)]*)\)", lambda m: m.group(1) or m.group(2), e)
    e = re.sub(r"\(\s*u?int\d+_t\s*\)", "", e)
    e = re.sub(r"\b(0[xX][0-9A-Fa-f]+|\d+)[uUlL]+\b", r"\1", e)
    e = re.sub(r"\b[A-Za-z_]\w*\b", lambda m: str(known[m.group(0)]) if m.group(0) in known else m.group(0), e)
    if not re.fullmatch(r"[\s0-9a-fA-FxX()+\-*/|&<>~^]*", e):
        raise ManifestError("cannot evaluate %r" % expr)
    return int(eval(e.replace("/", "//"), {"__builtins__": {}}))


class TypeParser:
    """Turns C declarations into (name, vocabulary type)."""

    def __init__(self, aliases, structs):
        self.aliases = aliases    # typedef name -> vocabulary type (SnowPid -> u64, SnowActorFn -> fnptr<...>)
        self.structs = structs    # struct/opaque typedef names

    def tokens(self, s):
        return re.findall(r"[A-Za-z_]\w*|\.\.\.|[*(),\[\]]", s)

    def base(self, words):
        words = [w for w in words if w not in ("const", "struct", "volatile", "restrict")]
        spelled = " ".join(words)
        if spelled in C_SCALARS:
            return C_SCALARS[spelled]
        if len(words) == 1 and words[0] in self.aliases:
            return self.aliases[words[0]]
        if len(words) == 1 and words[0] in self.structs:
            return words[0]
        raise ManifestError("C type %r has no word in the vocabulary" % spelled)

    def decl(self, s):
        """One declaration: returns (name or None, type)."""
        toks = self.tokens(s)
        i = 0
        spec = []
        while i < len(toks) and re.fullmatch(r"[A-Za-z_]\w*", toks[i]):
            spec.append(toks[i])
            i += 1
        # The last identifier of a plain declaration is its name, unless it
        # is part of the type ("unsigned int" without a name).
        name = None
        rest = toks[i:]
        if not (rest and rest[0] == "(") and len(spec) > 1 and not self.is_type_word(spec[-1]):
            name = spec.pop()
        const_base = "const" in spec
        t = self.base(spec)
        # Pointers, each with an optional const after its star. A const on
        # the outermost one (T *const p) does not change the type the ABI
        # sees; one on an inner pointer makes the next level point to const.
        stars = []
        while rest and rest[0] == "*":
            rest = rest[1:]
            q = False
            while rest and rest[0] == "const":
                q = True
                rest = rest[1:]
            stars.append(q)
        if stars and rest and re.fullmatch(r"[A-Za-z_]\w*", rest[0]):
            name = rest[0]
            rest = rest[1:]
        for k in range(len(stars)):
            if k == 0:
                t = self.ptr(t, const_base)
            else:
                t = ("cptr<%s>" if stars[k - 1] else "ptr<%s>") % t
        if rest and rest[0] == "(":
            # function pointer declarator: ( * name ) ( params )
            depth, j = 0, 0
            for j, tok in enumerate(rest):
                depth += tok == "("
                depth -= tok == ")"
                if depth == 0:
                    break
            inner = rest[1:j]
            if not inner or inner[0] != "*":
                raise ManifestError("unsupported declarator in %r" % s)
            if len(inner) > 1:
                name = inner[1]
            params = self.param_list(" ".join(rest[j + 1:]))
            t = "fnptr<%s(%s)>" % (t, ",".join(p for _, p in params))
        elif rest and rest[0] == "[":
            raise ManifestError("arrays are not in the vocabulary: %r" % s)
        elif rest:
            raise ManifestError("cannot read declaration %r" % s)
        return name, t

    def is_type_word(self, w):
        return (w in ("const", "volatile", "struct", "long") or any(w in k.split() for k in C_SCALARS)
                or w in self.aliases or w in self.structs)

    def ptr(self, t, const):
        if t == "void":
            return "cptr" if const else "ptr"
        return ("cptr<%s>" if const else "ptr<%s>") % t

    def param_list(self, s):
        s = s.strip()
        if not (s.startswith("(") and s.endswith(")")):
            raise ManifestError("parameter list %r" % s)
        s = s[1:-1].strip()
        if s in ("", "void"):
            return []
        out = []
        for p in split_c_commas(s):
            if p.strip() == "...":
                raise ManifestError("variadic functions are not in the vocabulary")
            out.append(self.decl(p))
        return out


def split_c_commas(s):
    return split_top(s, ",", "(", ")")


def read_header(path):
    raw = open(path).read()
    text = strip_comments(raw)
    h = Header()
    # --- macros
    known = {}
    joined = re.sub(r"\\\n", " ", text)
    for m in re.finditer(r"^\s*#\s*define\s+(\w+)(\([^)]*\))?[ \t]*(.*)$", joined, flags=re.M):
        name, fargs, body = m.group(1), m.group(2), m.group(3).strip()
        if name == "SNOW_ERROR_TABLE":
            for e in re.finditer(r"X\(\s*(\w+)\s*,\s*(-?\s*\d+)\s*,", body):
                h.add(("error", "SNOW_E" + e.group(1)), {"kind": "error", "name": "SNOW_E" + e.group(1),
                                                         "value": int(e.group(2).replace(" ", ""))})
            continue
        if fargs is not None:
            continue  # function-like macros are C conveniences (README lists them)
        if not body or not name.startswith("SNOW_"):
            continue
        tm = re.fullmatch(r"SNOW_TAG_RESERVED\((0x[0-9A-Fa-f]+|\d+)\)", body)
        if tm:
            v = known["SNOW_TAG_RESERVED_MASK"] | int(tm.group(1), 0)
            h.add(("tag", name), {"kind": "tag", "name": name, "value": v})
            known[name] = v
            continue
        if name == "SNOW_API":
            continue
        v = eval_c_int(body, known)
        known[name] = v
        if name in NOT_CONSTANTS:
            continue
        t = "u64" if "UINT64_C" in body or v > 0x7FFFFFFF else "i32"
        h.add(("const", name), {"kind": "const", "name": name, "type": t, "value": v})
    if "SNOW_RT_ABI_MAJOR" in known and "SNOW_RT_ABI_MINOR" in known:
        h.version = (known["SNOW_RT_ABI_MAJOR"], known["SNOW_RT_ABI_MINOR"])
    # --- drop preprocessor lines for the declaration pass
    body = re.sub(r"^\s*#[^\n]*$", "", joined, flags=re.M)
    body = re.sub(r'extern\s+"C"\s*\{|^\s*\}\s*$', "", body, flags=re.M)
    # --- typedefs, enums, structs, functions, in order. Every top-level
    # statement must be one of these: anything else is an error rather than
    # something the check silently skips.
    aliases, structs = {}, set()
    tp = TypeParser(aliases, structs)
    stmts = top_level_statements(body)
    bodies = set()
    for st in stmts:
        mm = re.match(r"(?:typedef\s+)?struct\s+(\w+)\s*\{", st)
        if mm:
            bodies.add(mm.group(1))
        mm = re.fullmatch(r"typedef\s+struct\s+(\w+)\s*(?:\{.*\})?\s*(\w+)", st, flags=re.S)
        if mm:
            structs.add(mm.group(2))
        mm = re.match(r"struct\s+(\w+)\s*\{", st)
        if mm:
            structs.add(mm.group(1))
    for st in stmts:
        m = re.fullmatch(r"(?:typedef\s+)?struct\s+(\w+)\s*\{(.*)\}\s*(\w*)", st, flags=re.S)
        if m:
            if m.group(3) and m.group(3) != m.group(1):
                raise ManifestError("struct %s is typedef'd as %s: give both the same name" % (m.group(1), m.group(3)))
            name = m.group(1)
            fields = []
            for f in [x for x in m.group(2).split(";") if x.strip()]:
                if ":" in f:
                    raise ManifestError("bit-fields are not in the vocabulary: %s" % f.strip())
                fname, ftype = tp.decl(f)
                fields.append((fname, ftype))
            h.add(("struct", name), {"kind": "struct", "name": name, "fields": fields})
            for fname, ftype in fields:
                h.add(("field", name + "." + fname), {"kind": "field", "struct": name, "name": fname, "type": ftype})
            continue
        m = re.fullmatch(r"typedef\s+struct\s+(\w+)\s+(\w+)", st)
        if m:
            if m.group(1) != m.group(2):
                raise ManifestError("struct %s is typedef'd as %s: give both the same name" % m.groups())
            if m.group(1) not in bodies:
                h.add(("opaque", m.group(2)), {"kind": "opaque", "name": m.group(2)})
            continue
        m = re.fullmatch(r"(typedef\s+)?enum\s*(\w*)\s*\{(.*)\}\s*(\w*)", st, flags=re.S)
        if m:
            if m.group(1) or m.group(4):
                raise ManifestError("a typedef'd enum type has no vocabulary word (its C type is "
                                    "implementation-defined): use an anonymous enum and int")
            if "SNOW_ERR_ENUM_" in m.group(3):
                continue
            nextv = 0
            for item in [x.strip() for x in m.group(3).split(",") if x.strip()]:
                ename, _, expr = item.partition("=")
                ename = ename.strip()
                v = eval_c_int(expr, known) if expr.strip() else nextv
                known[ename] = v
                nextv = v + 1
                h.add(("enum", ename), {"kind": "enum", "name": ename, "value": v})
            continue
        m = re.fullmatch(r"typedef\s+([^{]*)", st, flags=re.S)
        if m:
            name, t = tp.decl(m.group(1))
            aliases[name] = t
            h.add(("alias", name), {"kind": "alias", "name": name, "type": t})
            continue
        m = re.fullmatch(r"SNOW_API\s+(.*)", st, flags=re.S)
        if m:
            decl = m.group(1)
            noreturn = "noreturn" in decl
            decl = re.sub(r"__attribute__\s*\(\(.*?\)\)", "", decl)
            decl = re.sub(r"\b_Noreturn\b", "", decl).strip()
            fm = re.match(r"(.*?)\b(snow_\w+)\s*(\(.*\))\s*$", decl, flags=re.S)
            if not fm:
                raise ManifestError("cannot read declaration: SNOW_API %s" % decl)
            ret_c, fname, plist = fm.groups()
            _, ret = tp.decl(ret_c.strip())
            params = tp.param_list(plist)
            h.add(("fn", fname), {"kind": "fn", "name": fname, "ret": ret,
                                  "params": [(n or "arg%d" % i, t) for i, (n, t) in enumerate(params)],
                                  "attrs": ["noreturn"] if noreturn else []})
            h.docs[fname] = doc_comment(raw, fname)
            continue
        raise ManifestError("%s: a top-level declaration manifest.py cannot read (functions need SNOW_API): %s"
                            % (os.path.basename(path), " ".join(st.split())[:200]))
    return h


def top_level_statements(body):
    """Splits C text into statements at semicolons outside braces and parentheses."""
    parts = split_top(body, ";", "{(", "})")
    if parts[-1].strip():
        raise ManifestError("text after the last declaration: %s" % " ".join(parts[-1].split())[:200])
    return [p.strip() for p in parts[:-1] if p.strip()]


def doc_comment(raw, fname):
    """The comment block right above the declaration of fname (for --draft)."""
    m = re.search(r"SNOW_API[^;]*?\b%s\s*\(" % re.escape(fname), raw)
    if not m:
        return ""
    before = raw[:m.start()].rstrip()
    if not before.endswith("*/"):
        return ""
    start = before.rfind("/*")
    return re.sub(r"\s*\n\s*\*?\s*", " ", before[start + 2:-2]).strip()


# ---------------------------------------------------------------------------
# Layout (for drafts; the compiled check is the authority)
# ---------------------------------------------------------------------------

def size_align(t, structs):
    if t in SCALARS:
        return SCALARS[t][1], SCALARS[t][2]
    if t.startswith(("ptr", "cptr", "fnptr")):
        return POINTER_SIZE, POINTER_SIZE
    if t in structs:
        return structs[t]
    raise ManifestError("no layout for %s (an opaque type cannot be passed by value)" % t)


def layout(fields, structs):
    off, align, offsets = 0, 1, []
    for name, t in fields:
        s, a = size_align(t, structs)
        off = (off + a - 1) // a * a
        offsets.append(off)
        off += s
        align = max(align, a)
    return offsets, (off + align - 1) // align * align, align


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
                        "tests/abi/manifest.py --draft prints the typed record" % (n, kind, name))
    legacy_names = {name for _, _, name in m.legacy}
    for key in h.order:
        hrec = h.items[key]
        if key not in m.records:
            if not (key[0] == "fn" and key[1] in legacy_names):
                problems.append("%s %s is in snow_rt.h but not in the manifest (--draft prints it)" % key)
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
# --gen-c
# ---------------------------------------------------------------------------

def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def zero_arg(t):
    if t in SCALARS or t.startswith(("ptr", "cptr", "fnptr")):
        return "(%s)0" % c_decl(t)
    raise ManifestError("cannot pass %s by value in the noreturn check" % t)


def gen_c(m, manifest_name):
    o = []
    w = o.append
    w("/* Generated by tests/abi/manifest.py from %s: every record checked" % manifest_name)
    w(" * against snow_rt.h at compile time. Do not edit. */")
    w("#include <stddef.h>")
    w("#include <stdint.h>")
    w("#include <stdio.h>")
    w("#include <string.h>")
    w("")
    w('#include "snow_rt.h"')
    w("")
    w("/* Assigning a function to a pointer of another type must not compile,")
    w(" * nor a noreturn function that can return, nor a struct initializer")
    w(" * that misses a member. */")
    w('#pragma GCC diagnostic error "-Wincompatible-pointer-types"')
    w('#pragma GCC diagnostic error "-Wreturn-type"')
    w('#pragma GCC diagnostic error "-Wmissing-field-initializers"')
    w('#pragma GCC diagnostic error "-Wint-conversion"')
    w("")
    w("#define ABI_TYPE_IS(expr, T) _Generic((expr), T: 1, default: 0)")
    w("#define ABI_ALIGN_UP(n, a) (((n) + (a) - 1) / (a) * (a))")
    w("")
    w("_Static_assert(SNOW_RT_ABI_MAJOR == %d && SNOW_RT_ABI_MINOR == %d, \"abi %d %d: snow_rt.h has another version\");"
      % (m.version + m.version))
    w("")
    for r in m.of("tag"):
        w("_Static_assert(%s == UINT64_C(0x%016X), \"tag %s: value\");" % (r["name"], r["value"], r["name"]))
        w("_Static_assert(ABI_TYPE_IS(%s, uint64_t), \"tag %s: not a uint64_t\");" % (r["name"], r["name"]))
    for kind in ("error", "enum"):
        for r in m.of(kind):
            w("_Static_assert(%s == %d, \"%s %s: value\");" % (r["name"], r["value"], kind, r["name"]))
            w("_Static_assert(ABI_TYPE_IS(%s, int), \"%s %s: not an int constant\");" % (r["name"], kind, r["name"]))
    for r in m.of("const"):
        ct = c_decl(r["type"])
        w("_Static_assert(%s == (%s)%dULL, \"const %s: value\");" % (r["name"], ct, r["value"] & (2**64 - 1), r["name"]))
        w("_Static_assert(ABI_TYPE_IS(%s, %s), \"const %s: type\");" % (r["name"], ct, r["name"]))
    w("")
    for r in m.of("opaque"):
        w("typedef %s abi_opaque_%s; /* opaque %s: the name exists */" % (r["name"], r["name"], r["name"]))
    for r in m.of("alias"):
        w("typedef %s;" % c_decl(r["type"], "abi_alias_" + r["name"]))
        w("_Static_assert(ABI_TYPE_IS((%s *)0, abi_alias_%s *), \"alias %s: type\");" % (r["name"], r["name"], r["name"]))
    w("")
    structs = {s["name"] for s in m.of("struct")}
    for s in m.of("struct"):
        n = s["name"]
        w("_Static_assert(sizeof(%s) == %d, \"struct %s: size\");" % (n, s["size"], n))
        w("_Static_assert(_Alignof(%s) == %d, \"struct %s: alignment\");" % (n, s["align"], n))
        fields = m.fields(n)
        for f in fields:
            w("typedef %s;" % c_decl(f["type"], "abi_field_%s_%s" % (n, f["name"])))
        for i, f in enumerate(fields):
            fn = f["name"]
            w("_Static_assert(offsetof(%s, %s) == %d, \"field %s.%s: offset\");" % (n, fn, f["offset"], n, fn))
            w("_Static_assert(ABI_TYPE_IS(&((%s *)0)->%s, abi_field_%s_%s *), \"field %s.%s: type\");"
              % (n, fn, n, fn, n, fn))
            end = "offsetof(%s, %s) + sizeof(((%s *)0)->%s)" % (n, fn, n, fn)
            if i + 1 < len(fields):
                nx = fields[i + 1]["name"]
                w("_Static_assert(offsetof(%s, %s) == ABI_ALIGN_UP(%s, _Alignof(abi_field_%s_%s)), "
                  "\"struct %s: a field between %s and %s is missing from the manifest\");"
                  % (n, nx, end, n, nx, n, fn, nx))
            else:
                w("_Static_assert(sizeof(%s) == ABI_ALIGN_UP(%s, _Alignof(%s)), "
                  "\"struct %s: a field after %s is missing from the manifest\");" % (n, end, n, n, fn))
        # One initializer per listed field, in order: a member the manifest
        # lacks (even one that fits into padding) leaves one uninitialized.
        inits = ["{0}" if f["type"] in structs else "(abi_field_%s_%s)0" % (n, f["name"]) for f in fields]
        w("__attribute__((unused)) static const %s abi_all_fields_%s = {%s};" % (n, n, ", ".join(inits)))
    w("")
    for f in m.of("fn"):
        n = f["name"]
        params = [c_decl(t, p) for p, t in f["params"]] or ["void"]
        w("typedef %s;" % c_decl(f["ret"], "(*abi_fn_%s)(%s)" % (n, ", ".join(params))))
        w("__attribute__((unused)) static const abi_fn_%s abi_call_%s = %s;" % (n, n, n))
        w("_Static_assert(ABI_TYPE_IS(&%s, abi_fn_%s), \"fn %s: type\");" % (n, n, n))
        if "noreturn" in f["attrs"]:
            args = ", ".join(zero_arg(t) for _, t in f["params"])
            w("__attribute__((unused)) static int abi_noreturn_%s(void) { %s(%s); }" % (n, n, args))
    w("")
    w("int main(void)")
    w("{")
    w("    int failed = 0;")
    w("    if (snow_rt_abi_version() != SNOW_RT_ABI_VERSION) {")
    w('        printf("FAIL: snow_rt_abi_version() is 0x%x, snow_rt.h says 0x%x\\n",')
    w("               (unsigned)snow_rt_abi_version(), (unsigned)SNOW_RT_ABI_VERSION);")
    w("        failed++;")
    w("    }")
    w("    static const struct { int code; const char *name; } errors[] = {")
    for r in m.of("error"):
        w("        {%s, %s}," % (r["name"], c_string(r["name"])))
    w("    };")
    w("    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)")
    w('        if (!strcmp(snow_strerror(errors[i].code), "unknown error")) {')
    w('            printf("FAIL: snow_strerror(%s) has no message\\n", errors[i].name);')
    w("            failed++;")
    w("        }")
    counts = ", ".join("%d %s" % (len(m.of(k)), k) for k in
                       ("fn", "struct", "field", "tag", "error", "enum", "const", "alias", "opaque"))
    w('    printf("ABI %%d.%%d: %s records checked at compile time\\n", SNOW_RT_ABI_MAJOR, SNOW_RT_ABI_MINOR);'
      % counts)
    w('    printf("%d passed, %d failed\\n", failed ? 0 : 1, failed ? 1 : 0);')
    w("    return failed ? 1 : 0;")
    w("}")
    return "\n".join(o) + "\n"


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
                                    "tests/abi/manifest.py --draft prints typed records for them"
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
