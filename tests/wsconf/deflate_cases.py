"""Conformance categories 12 and 13, permessage-deflate (RFC 7692), for
run.py: compressed echo, each parameter combination, fragments, RSV1
misuse, bad compressed data, a decompression bomb."""
import os
import zlib

import wsclient
from cases import MAIN_ARGS, SERVERS, add, binary, pieces_for
from wsclient import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Closed, Conn, Fail,
                      clean_close, close_payload, describe, expect_close, frame)

# ---------------------------------------------------------------------------
# 12, 13  permessage-deflate (RFC 7692), after Autobahn's sections 12 and 13:
# against a second snow-echo started with --deflate (threshold 0: every
# message it sends back is compressed), with raw DEFLATE from zlib.

DEFLATE_ARGS = MAIN_ARGS + ["--deflate", "--deflate-threshold", "0"]
TAIL = b"\x00\x00\xff\xff"
# the message limit of the deflate server, which applies to inflated bytes
DEFLATE_LIMIT = 16 << 20


def addz(*a, **kw):
    add(*a, server="deflate", **kw)


class Pmd:
    """A compressing client on one connection: offers `offer`, reads the
    agreed parameters from the answer, compresses and inflates as agreed."""

    def __init__(self, port, offer, path="/", timeout=5.0):
        self.c = Conn(port, path, timeout=timeout, headers=["Sec-WebSocket-Extensions: " + offer] if offer else ())
        answers = self.c.response_headers.get("sec-websocket-extensions", [])
        if len(answers) > 1:
            raise Fail("several Sec-WebSocket-Extensions answers: %r" % answers)
        self.answer = answers[0] if answers else None
        self.params = {}
        if self.answer is not None:
            parts = [p.strip() for p in self.answer.split(";")]
            if parts[0] != "permessage-deflate":
                raise Fail("answer %r is not permessage-deflate" % self.answer)
            for p in parts[1:]:
                k, _, v = p.partition("=")
                if k.strip() in self.params:
                    raise Fail("answer %r repeats %s" % (self.answer, k))
                self.params[k.strip()] = v.strip().strip('"') or None
            self.c.rsv_allowed = 0x40
        self.server_nct = "server_no_context_takeover" in self.params
        self.client_nct = "client_no_context_takeover" in self.params
        self.server_bits = int(self.params.get("server_max_window_bits") or 15)
        cb = self.params.get("client_max_window_bits")
        self.client_bits = int(cb) if cb else 15
        self.inf = None
        self.comp = None

    def deflate(self, data):
        if self.comp is None or self.client_nct:
            self.comp = zlib.compressobj(6, zlib.DEFLATED, -max(9, self.client_bits))
        out = self.comp.compress(data) + self.comp.flush(zlib.Z_SYNC_FLUSH)
        if not out:
            return b"\x00"  # nothing new since the last flush: an empty stored block
        assert out.endswith(TAIL)
        return out[:-4]

    def inflate(self, data):
        # Without server context takeover every message must inflate on its
        # own: a fresh stream per message proves the server reset its own.
        if self.inf is None or self.server_nct:
            self.inf = zlib.decompressobj(-max(9, self.server_bits))
        try:
            return self.inf.decompress(data + TAIL)
        except zlib.error as e:
            raise Fail("the server's compressed message does not inflate: %s" % e)

    def send(self, op, data, frag=None, mode="whole"):
        z = self.deflate(data)
        if not frag:
            wire = frame(op, z, rsv=4)
        else:
            wire, parts = b"", [z[i:i + frag] for i in range(0, len(z), frag)] or [b""]
            for k, p in enumerate(parts):
                wire += frame(op if k == 0 else OP_CONT, p, fin=k == len(parts) - 1, rsv=4 if k == 0 else 0)
                if k == 0 and len(parts) > 1:
                    wire += frame(OP_PING, b"between")
        pieces, pause = pieces_for(mode, wire) if mode != "whole" else (None, 0.0)
        self.c.write(wire, pieces, pause)

    def expect(self, op, data, compressed=True):
        try:
            got_op, got = self.c.recv_message()
        except TimeoutError:
            raise Fail("expected the echo of %d bytes, got nothing in time" % len(data))
        while got_op == OP_PONG:
            got_op, got = self.c.recv_message()
        if got_op != op:
            raise Fail("expected opcode %d, got %s" % (op, describe(got_op, got)))
        z = bool(self.c.msg_rsv & 0x40)
        if z != compressed:
            raise Fail("the echo of %d bytes came %s" % (len(data), "compressed" if z else "uncompressed"))
        if z:
            got = self.inflate(got)
        if got != data:
            raise Fail("echo of %d bytes came back as %d different bytes" % (len(data), len(got)))


def json_text(n, seed):
    words = [b'{"id":', b"17", b',"name":"', b"bob", b'","tags":[', b'"a",', b'"b"]}', b" ", b"\xc3\xa9"]
    out, x = bytearray(), seed * 2654435761 + 1
    while len(out) < n:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        out += words[(x >> 16) % len(words)]
    out = bytes(out[:n])
    while out and not wsclient.utf8_valid(out):  # a cut inside a 2-byte sequence
        out = out[:-1] + b" "
    return out


PMD_SIZES = [0, 1, 16, 64, 125, 126, 127, 1000, 4096, 65535, 65536, 65537, 300000, 1 << 20]


def c_pmd_sizes(op):
    def fn(port, mode):
        p = Pmd(port, "permessage-deflate")
        if p.answer is None:
            raise Fail("permessage-deflate was offered and not agreed")
        with p.c:
            for n in PMD_SIZES:
                data = json_text(n, n) if op == OP_TEXT else os.urandom(n // 2) + binary(n - n // 2)
                p.send(op, data, mode=mode if n < 4096 else "whole")
                p.expect(op, data)
            # an uncompressed message on the same connection is still fine
            p.c.send(op, b"plain one")
            p.expect(op, b"plain one")
            clean_close(p.c)
    return fn


addz("12.1", "compressed text echo at 14 sizes (0 .. 1 MiB), context takeover", c_pmd_sizes(OP_TEXT))
addz("12.2", "compressed binary echo at 14 sizes (0 .. 1 MiB), context takeover", c_pmd_sizes(OP_BINARY))


def c_pmd_offer(offer, want):
    """Negotiates offer; want: parameters the answer must have (name ->
    value or None), then compressed echo with what was agreed."""
    def fn(port, mode):
        p = Pmd(port, offer)
        with p.c:
            if p.answer is None:
                raise Fail("offer %r was not agreed" % offer)
            for k, v in want.items():
                if k not in p.params or p.params[k] != v:
                    raise Fail("answer %r to %r lacks %s%s" % (p.answer, offer, k, "" if v is None else "=" + v))
            if "client_max_window_bits" not in offer and "client_max_window_bits" in p.params:
                raise Fail("answer %r has client_max_window_bits, which was not offered" % p.answer)
            for rnd in range(2):
                for n in (0, 200, 5000, 70000):
                    data = json_text(n, 7 * n + rnd)
                    p.send(OP_TEXT, data, mode=mode if n < 5000 else "whole")
                    p.expect(OP_TEXT, data)
            clean_close(p.c)
    return fn


SNT, CNT = "server_no_context_takeover", "client_no_context_takeover"
addz("13.1", "offer server_no_context_takeover: agreed, each echo inflates on its own",
    c_pmd_offer("permessage-deflate; " + SNT, {SNT: None}))
addz("13.2", "offer client_no_context_takeover: agreed, client resets per message",
    c_pmd_offer("permessage-deflate; " + CNT, {CNT: None}))
addz("13.3", "offer both no_context_takeover parameters",
    c_pmd_offer("permessage-deflate; %s; %s" % (SNT, CNT), {SNT: None, CNT: None}))
addz("13.4", "offer client_max_window_bits without a value",
    c_pmd_offer("permessage-deflate; client_max_window_bits", {}))
for i, bits in enumerate(range(9, 16)):
    addz("13.%d" % (5 + i), "offer server_max_window_bits=%d; client_max_window_bits=%d" % (bits, bits),
        c_pmd_offer("permessage-deflate; server_max_window_bits=%d; client_max_window_bits=%d" % (bits, bits),
                    {"server_max_window_bits": str(bits)}), modes=("whole",))
addz("13.12", "offer server_max_window_bits=9 with both no_context_takeover",
    c_pmd_offer("permessage-deflate; server_max_window_bits=9; %s; %s" % (SNT, CNT),
                {"server_max_window_bits": "9", SNT: None, CNT: None}))
addz("13.13", "a bad first offer (window 16) falls through to the second",
    c_pmd_offer("permessage-deflate; server_max_window_bits=16, permessage-deflate; " + SNT, {SNT: None}),
    modes=("whole",))


def c_pmd_fragmented(op, frag):
    def fn(port, mode):
        p = Pmd(port, "permessage-deflate")
        with p.c:
            for n in (300, 5000, 100000):
                data = json_text(n, n) if op == OP_TEXT else binary(n)
                p.send(op, data, frag=frag, mode=mode if n <= 5000 else "whole")
                p.c.rsv_allowed = 0x40
                p.expect(op, data)
            clean_close(p.c)
    return fn


addz("12.3", "fragmented compressed text (fragments of 1 byte on), RSV1 on the first only, a ping between",
    c_pmd_fragmented(OP_TEXT, 1), modes=("whole",))
addz("12.4", "fragmented compressed binary (fragments of 7 bytes), a ping between",
    c_pmd_fragmented(OP_BINARY, 7))
addz("12.5", "fragmented compressed text (fragments of 1000 bytes)", c_pmd_fragmented(OP_TEXT, 1000))


def c_pmd_close(offer, build, code):
    """Sends what build(pmd) returns and expects close code."""
    def fn(port, mode):
        p = Pmd(port, offer)
        with p.c:
            if (offer is not None) != (p.answer is not None):
                raise Fail("offer %r got answer %r" % (offer, p.answer))
            wire = build(p)
            pieces, pause = pieces_for(mode, wire) if mode != "whole" else (None, 0.0)
            try:
                p.c.write(wire, pieces, pause)
            except Closed:
                pass
            expect_close(p.c, code)
    return fn


PD = "permessage-deflate"
addz("12.6", "RSV1 on a continuation frame -> 1002",
    c_pmd_close(PD, lambda p: frame(OP_TEXT, p.deflate(b"first half "), fin=False, rsv=4) +
                frame(OP_CONT, b"\x00", rsv=4), 1002))
addz("12.7", "RSV1 on a ping -> 1002", c_pmd_close(PD, lambda p: frame(OP_PING, b"x", rsv=4), 1002))
addz("12.8", "RSV1 on a close -> 1002", c_pmd_close(PD, lambda p: frame(OP_CLOSE, close_payload(1000), rsv=4), 1002))
addz("12.9", "RSV1 on a continuation of an uncompressed message -> 1002",
    c_pmd_close(PD, lambda p: frame(OP_BINARY, b"plain", fin=False) + frame(OP_CONT, b"\x00", rsv=4), 1002))
addz("12.10", "RSV1 without permessage-deflate agreed (no offer) -> 1002",
    c_pmd_close(None, lambda p: frame(OP_TEXT, zlib.compress(b"hello")[2:-4], rsv=4), 1002))
addz("12.11", "RSV2 with permessage-deflate agreed -> 1002",
    c_pmd_close(PD, lambda p: frame(OP_TEXT, p.deflate(b"hello"), rsv=2), 1002))
addz("12.12", "compressed text that inflates to invalid UTF-8 -> 1007",
    c_pmd_close(PD, lambda p: frame(OP_TEXT, p.deflate(b"ok \xce\xba\xe1 bad"), rsv=4), 1007))
addz("12.13", "RSV1 data that is not DEFLATE -> 1007",
    c_pmd_close(PD, lambda p: frame(OP_BINARY, b"\xff\xff\xff\xff garbage", rsv=4), 1007))


# The bound on a wait for the cases that inflate or deflate 16 MiB and more
# (a guard against a hang, not a timing: a sanitized build on a busy
# machine takes seconds).
HEAVY_S = 60.0


def bomb(p, n):
    z = p.deflate(b"\x00" * n)
    return z


def c_pmd_bomb(fragmented):
    """A decompression bomb: 64 KiB-ish compressed that inflates to 4x the
    message limit. 1009, and the server's RSS grows by less than the limit
    plus slack (inflate works in bounded chunks, never sized from input)."""
    def fn(port, mode):
        srv = SERVERS["deflate"]
        before = srv.rss_kib()
        p = Pmd(port, PD, timeout=HEAVY_S)
        with p.c:
            z = bomb(p, 4 * DEFLATE_LIMIT)
            if fragmented:
                half = len(z) // 2
                wire = frame(OP_BINARY, z[:half], fin=False, rsv=4) + frame(OP_CONT, z[half:])
            else:
                wire = frame(OP_BINARY, z, rsv=4)
            try:
                p.c.write(wire)
            except Closed:
                pass
            expect_close(p.c, 1009)
        grew = srv.rss_kib() - before
        slack = 16 << 20
        if wsclient.is_sanitized(srv.exe):
            # AddressSanitizer's quarantine keeps freed chunks (256 MiB by
            # default) resident, so RSS cannot bound live memory there; the
            # bound is asserted in the plain build.
            slack += 256 << 20
        if grew * 1024 > DEFLATE_LIMIT + slack:
            raise Fail("a %d-byte bomb grew the server by %d KiB" % (len(z), grew))
    return fn


addz("12.14", "a decompression bomb (64 MiB of zeros in ~64 KiB) -> 1009, memory bounded", c_pmd_bomb(False),
    modes=("whole",))
addz("12.15", "a fragmented decompression bomb -> 1009, memory bounded", c_pmd_bomb(True), modes=("whole",))
addz("12.16", "a compressed message of exactly the limit is echoed", lambda port, mode: c_pmd_exact(port),
    modes=("whole",))


def c_pmd_exact(port):
    p = Pmd(port, PD, timeout=HEAVY_S)
    with p.c:
        data = b"\x00" * DEFLATE_LIMIT
        p.send(OP_BINARY, data)
        p.expect(OP_BINARY, data)
        clean_close(p.c)
