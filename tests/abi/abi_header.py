"""Reads snow_rt.h into manifest-shaped records: only the subset of C the
header uses, and anything else is an error rather than something skipped."""
import os
import re

from abi_format import C_SCALARS, NOT_CONSTANTS, ManifestError, split_top

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
    # The <stdint.h> limits the header may use, at their LP64 values.
    limits = {"SIZE_MAX": 2**64 - 1, "UINT64_MAX": 2**64 - 1, "INT64_MAX": 2**63 - 1,
              "UINT32_MAX": 2**32 - 1, "INT32_MAX": 2**31 - 1, "UINT16_MAX": 2**16 - 1, "UINT8_MAX": 255}
    e = re.sub(r"\b[A-Za-z_]\w*\b", lambda m: str(known.get(m.group(0), limits.get(m.group(0), m.group(0)))), e)
    if not re.fullmatch(r"[\s0-9a-fA-FxX()+\-*/|&<>~^]*", e):
        raise ManifestError("cannot evaluate %r" % expr)
    try:
        return int(eval(e.replace("/", "//"), {"__builtins__": {}}))
    except Exception:
        raise ManifestError("cannot evaluate %r" % expr)


class TypeParser:
    """Turns C declarations into (name, vocabulary type)."""

    def __init__(self, aliases, structs):
        self.aliases = aliases    # typedef name -> vocabulary type (SnowPid -> u64, SnowActorFn -> fnptr<...>)
        self.structs = structs    # struct/opaque typedef names

    def tokens(self, s):
        return re.findall(r"[A-Za-z_]\w*|[0-9]+|\.\.\.|[*(),\[\]]", s)

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
            if not inner or inner[0] != "*" or len(inner) > 2 or (len(inner) == 2 and inner[1] == "*"):
                raise ManifestError("unsupported declarator in %r (only a plain function pointer)" % s)
            if len(inner) > 1:
                name = inner[1]
            params = self.param_list(" ".join(rest[j + 1:]))
            t = "fnptr<%s(%s)>" % (t, ",".join(p for _, p in params))
        elif rest and rest[0] == "[":
            # One dimension with an integer literal: arr<T,N>.
            if len(rest) != 3 or rest[2] != "]" or not re.fullmatch(r"[1-9][0-9]*", rest[1]):
                raise ManifestError("only one-dimensional arrays of literal size are in the vocabulary: %r" % s)
            t = "arr<%s,%s>" % (t, rest[1])
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
        if name == "SNOW_API":
            continue
        try:
            v = eval_c_int(re.sub(r"\bSNOW_TAG_RESERVED\(([^)]*)\)", r"(SNOW_TAG_RESERVED_MASK | (\1))", body), known)
        except ManifestError:
            raise ManifestError("#define %s %s: only integer constants are in the vocabulary" % (name, body))
        known[name] = v
        if name in NOT_CONSTANTS:
            continue
        mask = known.get("SNOW_TAG_RESERVED_MASK")
        if name.startswith("SNOW_TAG_") and name != "SNOW_TAG_RESERVED_MASK" and mask and v & mask == mask:
            h.add(("tag", name), {"kind": "tag", "name": name, "value": v})
            continue
        t = "usize" if "SIZE_MAX" in body else "u64" if "UINT64_C" in body or v > 0x7FFFFFFF else "i32"
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
            decls = []
            for f in [x for x in m.group(2).split(";") if x.strip()]:
                # "uint64_t a, b, c": plain names sharing one type.
                mm = re.fullmatch(r"\s*((?:const\s+)?[A-Za-z_][\w\s]*?)\s+([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)+)\s*", f)
                if mm:
                    decls += ["%s %s" % (mm.group(1), n.strip()) for n in mm.group(2).split(",")]
                else:
                    decls.append(f)
            for f in decls:
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
