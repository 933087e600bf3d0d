"""The manifest format: the type vocabulary, reading and writing records,
and struct layout for drafts (compiler-abi/README.md describes the format)."""
import re

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
    m = re.fullmatch(r"arr<(.+),([1-9][0-9]*)>", t)
    if m:
        parse_type(m.group(1), names)
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
    m = re.fullmatch(r"arr<(.+),([1-9][0-9]*)>", t)
    if m:
        return c_decl(m.group(1), "%s[%s]" % (name, m.group(2)))
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
# Layout (for drafts; the compiled check is the authority)
# ---------------------------------------------------------------------------

def size_align(t, structs):
    if t in SCALARS:
        return SCALARS[t][1], SCALARS[t][2]
    m = re.fullmatch(r"arr<(.+),([1-9][0-9]*)>", t)
    if m:
        es, ea = size_align(m.group(1), structs)
        return es * int(m.group(2)), ea
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
