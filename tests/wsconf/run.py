#!/usr/bin/env python3
"""WebSocket conformance suite for snow-echo, after the Autobahn testsuite's
categories (RFC 6455): 0 handshake and HTTP, 1 framing, 2 ping/pong,
3 reserved bits, 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close, 9 limits and
large messages, 10 misc, 11 broadcast path, 12 and 13 permessage-deflate
(RFC 7692: compressed echo, each parameter combination, fragments, RSV1
misuse, bad data, a decompression bomb).

    run.py SNOW_ECHO [--tls] [-k SUBSTRING] [-v]

Each case has one strict expected outcome: the exact echo (opcode and
bytes), or the exact close code followed by the server closing TCP. Inputs
are fed whole, and also split into small writes ('split': single bytes
through the headers, then small pieces) and, for the cases marked so, cut in
two at every byte offset ('offsets'). Every read has a deadline, so every
case ends. Prints one line per case and 'N passed, N failed' last; exits 1
when any case failed.
"""
import os
import socket
import struct
import sys
import threading
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wsclient  # noqa: E402
from runner import Results, take_option  # noqa: E402
from cases import (CASES, CLOSE, LIMIT, LIMIT_ARGS, MAIN_ARGS, PONGS, SERVERS, SILENCE, M,  # noqa: E402
                   add, binary, pieces_for, run_declarative, text)
from wsclient import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,  # noqa: E402
                      Closed, Conn, Fail, Server, clean_close, describe, close_payload, expect_close,
                      expect_message, expect_silence, frame, http_get,
                      utf8_fail_index, xor_mask)

# With --tls the suite runs over wss (a CA and certificate made at run time)
# through the categories that exercise the stream layer: framing, ping/pong,
# fragmentation, close, large messages, broadcast. Category 0 speaks
# plain HTTP and stays on the plain run.
TLS_CATEGORIES = {"1", "2", "5", "7", "9", "10", "11"}


# ---------------------------------------------------------------------------
# building inputs

def frags(op, payload, sizes, rsv=0):
    """A message as fragments of the given sizes (the last takes the rest)."""
    out, i = b"", 0
    parts = []
    for s in sizes:
        parts.append(payload[i:i + s])
        i += s
    if i < len(payload) or not parts:
        parts.append(payload[i:])
    for k, p in enumerate(parts):
        out += frame(op if k == 0 else OP_CONT, p, fin=(k == len(parts) - 1))
    return out


def code_frame(code, reason=b""):
    return frame(OP_CLOSE, close_payload(code, reason))


# ---------------------------------------------------------------------------
# 0  handshake and HTTP

def raw_request(port, req, timeout=5.0):
    from wsclient import _read_head
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req)
        return _read_head(s, time.monotonic() + timeout)


def upgrade_req(path="/", version="13", key="dGhlIHNhbXBsZSBub25jZQ==", method="GET", extra=""):
    h = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" % (method, path)
    if key is not None:
        h += "Sec-WebSocket-Key: %s\r\n" % key
    if version is not None:
        h += "Sec-WebSocket-Version: %s\r\n" % version
    return (h + extra + "\r\n").encode()


def c_health(port, mode):
    status, hdrs, body = http_get(port, "/health")
    if (status, body) != (200, b"ok"):
        raise Fail("GET /health: expected 200 'ok', got %d %r" % (status, body[:80]))


def c_stats(port, mode):
    import json
    status, hdrs, body = http_get(port, "/stats")
    if status != 200:
        raise Fail("GET /stats: expected 200, got %d" % status)
    ctype = hdrs.get("content-type", [""])[0]
    if not ctype.startswith("application/json"):
        raise Fail("GET /stats: Content-Type %r, expected application/json" % ctype)
    try:
        doc = json.loads(body)
    except ValueError:
        raise Fail("GET /stats: body is not JSON: %r" % body[:120])
    if not isinstance(doc.get("connections"), int):
        raise Fail("GET /stats: no integer 'connections' in %r" % body[:200])


def stats_connections(port):
    import json
    status, _, body = http_get(port, "/stats")
    return json.loads(body)["connections"]


def wait_connections(port, want, timeout=6.0):
    deadline = time.monotonic() + timeout
    while True:
        n = stats_connections(port)
        if n == want or time.monotonic() > deadline:
            return n
        time.sleep(0.02)


def c_stats_count(port, mode):
    # every earlier case has ended its connections: the count is back to 0
    base = wait_connections(port, 0)
    if base != 0:
        raise Fail("/stats connections %d before the case, expected 0" % base)
    conns = [Conn(port, "/echo") for _ in range(3)]
    n = wait_connections(port, base + 3)
    if n != base + 3:
        raise Fail("/stats connections %d with 3 open, expected %d" % (n, base + 3))
    for c in conns:
        clean_close(c)
        c.close()
    n = wait_connections(port, base)
    if n != base:
        raise Fail("/stats connections %d after 3 closed, expected %d" % (n, base))


def status_case(req, want_status, want_header=None):
    def fn(port, mode):
        status, hdrs, _ = raw_request(port, req)
        if status != want_status:
            raise Fail("expected HTTP %d, got %d" % (want_status, status))
        if want_header:
            k, v = want_header
            got = hdrs.get(k.lower(), [None])[0]
            if got != v:
                raise Fail("expected header %s: %s, got %r" % (k, v, got))
    return fn


def c_keepalive(port, mode):
    from wsclient import _read_head
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for i in range(2):
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, hdrs, rest = _read_head(s, time.monotonic() + 5)
            n = int(hdrs.get("content-length", ["0"])[0])
            while len(rest) < n:
                rest += s.recv(4096)
            if (status, rest) != (200, b"ok"):
                raise Fail("keep-alive request %d: got %d %r" % (i + 1, status, rest))


def c_leftover(nframes):
    def fn(port, mode):
        msgs = [("leftover %d" % i).encode() for i in range(nframes)]
        c = Conn(port, "/echo", connect=False)
        c.open(first=b"".join(frame(OP_TEXT, m) for m in msgs))
        with c:
            for m in msgs:
                expect_message(c, OP_TEXT, m)
            clean_close(c)
    return fn


def c_paths(port, mode):
    for path in ("/", "/echo", "/a/b/c", "/echo?x=1"):
        with Conn(port, path) as c:
            c.send(OP_TEXT, path.encode())
            expect_message(c, OP_TEXT, path.encode())
            clean_close(c)


add("0.1", "GET /health -> 200 ok", c_health, modes=("whole",))
add("0.2", "GET /stats -> 200 application/json with integer connections", c_stats, modes=("whole",))
add("0.3", "/stats connections counts open WebSocket connections", c_stats_count, modes=("whole",))
add("0.4", "upgrade with version 8 -> 426 + Sec-WebSocket-Version: 13",
    status_case(upgrade_req(version="8"), 426, ("Sec-WebSocket-Version", "13")), modes=("whole",))
add("0.5", "upgrade without Sec-WebSocket-Key -> 400", status_case(upgrade_req(key=None), 400), modes=("whole",))
add("0.6", "upgrade with a key that is not 16 bytes -> 400", status_case(upgrade_req(key="AAAA"), 400), modes=("whole",))
add("0.7", "POST with upgrade headers -> 405", status_case(upgrade_req(method="POST"), 405), modes=("whole",))
add("0.8", "plain GET on a WebSocket path -> 426",
    status_case(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 426), modes=("whole",))
add("0.9", "upgrade without Sec-WebSocket-Version -> 426 + Sec-WebSocket-Version: 13",
    status_case(upgrade_req(version=None), 426, ("Sec-WebSocket-Version", "13")), modes=("whole",))
add("0.10", "HTTP keep-alive: two requests on one connection", c_keepalive, modes=("whole",))
add("0.11", "a frame in the same write as the upgrade request is echoed", c_leftover(1), modes=("whole",))
add("0.12", "three frames in the same write as the upgrade request are echoed", c_leftover(3), modes=("whole",))
add("0.13", "every path other than /health, /stats, /broadcast echoes", c_paths, modes=("whole",))


def c_origin(same):
    def fn(port, mode):
        origin = ("http://127.0.0.1:%d" % port) if same else "http://evil.example"
        status, hdrs, _ = raw_request(port, upgrade_req(key="dGhlIHNhbXBsZSBub25jZQ==",
                                                        extra="Origin: %s\r\n" % origin).replace(
            b"Host: 127.0.0.1\r\n", b"Host: 127.0.0.1:%d\r\n" % port))
        want = 101 if same else 403
        if status != want:
            raise Fail("Origin %s: expected HTTP %d, got %d" % (origin, want, status))
        if same and hdrs.get("sec-websocket-accept", [""])[0] != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=":
            raise Fail("Sec-WebSocket-Accept %r for the RFC 6455 sample key" % hdrs.get("sec-websocket-accept"))
    return fn


def c_no_subprotocol(port, mode):
    c = Conn(port, "/echo", connect=False)
    c.open(headers=["Sec-WebSocket-Protocol: chat, superchat"])
    with c:
        got = c.response_headers.get("sec-websocket-protocol")
        if got:
            raise Fail("server selected %r although it supports no subprotocol" % got)
        clean_close(c)


def c_counters(port, mode):
    """The /stats counters move by exactly what one connection of each kind does."""
    import json

    def stats():
        return json.loads(http_get(port, "/stats")[2])
    if wait_connections(port, 0) != 0:
        raise Fail("/stats connections not 0 before the case")
    before = stats()
    for key in ("opened", "closed", "closed_by_code", "msgs_in", "msgs_out"):
        if key not in before:
            raise Fail("/stats has no %r: %s" % (key, sorted(before)))
    with Conn(port, "/echo") as c:
        c.send(OP_TEXT, b"counted")
        expect_message(c, OP_TEXT, b"counted")
        clean_close(c)
    with Conn(port, "/echo") as c:
        c.send(OP_CONT, b"stray")
        expect_close(c, 1002)
    with Conn(port, "/echo") as c:
        c.send(OP_TEXT, b"\xff")
        expect_close(c, 1007)
    want = {"opened": 3, "closed": 3, "msgs_in": 1, "msgs_out": 1}
    wait_connections(port, 0)
    deadline = time.monotonic() + 3
    while True:
        after = stats()
        got = {k: after[k] - before[k] for k in want}
        codes = {k: after["closed_by_code"].get(k, 0) - before["closed_by_code"].get(k, 0)
                 for k in ("1000", "1002", "1007")}
        if (got == want and codes == {"1000": 1, "1002": 1, "1007": 1}) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if got != want or codes != {"1000": 1, "1002": 1, "1007": 1}:
        raise Fail("counter deltas %s, closed_by_code deltas %s; expected %s and one each of 1000, 1002, 1007"
                   % (got, codes, want))


add("0.17", "/stats counters: opened, closed, closed_by_code, msgs_in/out move by exactly one connection's work",
    c_counters, modes=("whole",))
add("0.14", "cross-origin upgrade -> 403 before the 101", c_origin(False), modes=("whole",))
add("0.15", "same-origin upgrade -> 101 with the RFC 6455 sample accept value", c_origin(True), modes=("whole",))
add("0.16", "offered subprotocols the server does not support -> 101 without Sec-WebSocket-Protocol",
    c_no_subprotocol, modes=("whole",))

# ---------------------------------------------------------------------------
# 1  framing

LENGTHS = [0, 125, 126, 127, 128, 65535, 65536]
for k, n in enumerate(LENGTHS):
    add("1.1.%d" % (k + 1), "text message of %d bytes" % n, inp=frame(OP_TEXT, text(n)),
        expect=[M(OP_TEXT, text(n))], offsets=(n in (125, 126, 127)))
    add("1.2.%d" % (k + 1), "binary message of %d bytes" % n, inp=frame(OP_BINARY, binary(n)),
        expect=[M(OP_BINARY, binary(n))], offsets=(n in (125, 126)))
add("1.1.8", "text message of 1 MiB", inp=frame(OP_TEXT, text(1 << 20)), expect=[M(OP_TEXT, text(1 << 20))])
add("1.2.8", "binary message of 1 MiB", inp=frame(OP_BINARY, binary(1 << 20)),
    expect=[M(OP_BINARY, binary(1 << 20))])
add("1.1.9", "text of 65535 with a 64-bit length field (not minimal, RFC 6455 5.2 MUST) -> 1002",
    inp=(lambda: struct.pack("!BBQ", 0x81, 0xFF, 65535) + b"\1\2\3\4" + xor_mask(text(65535), b"\1\2\3\4")),
    expect=[CLOSE(1002)], modes=("whole",))
add("1.1.10", "text of 100 with a 16-bit length field (not minimal) -> 1002",
    inp=(lambda: struct.pack("!BBH", 0x81, 0xFE, 100) + b"\1\2\3\4" + xor_mask(text(100), b"\1\2\3\4")),
    expect=[CLOSE(1002)])
add("1.3.1", "text then binary then text in one write",
    inp=frame(OP_TEXT, b"one") + frame(OP_BINARY, b"\x00\x01") + frame(OP_TEXT, b"three"),
    expect=[M(OP_TEXT, b"one"), M(OP_BINARY, b"\x00\x01"), M(OP_TEXT, b"three")], offsets=True)
add("1.3.2", "mask key of zeros", inp=frame(OP_TEXT, b"zero key", key=b"\0\0\0\0"),
    expect=[M(OP_TEXT, b"zero key")])

# ---------------------------------------------------------------------------
# 2  ping/pong

add("2.1", "ping without payload -> empty pong", inp=frame(OP_PING), expect=[M(OP_PONG, b"")], offsets=True)
add("2.2", "ping with text payload -> same pong", inp=frame(OP_PING, b"Hello, world!"),
    expect=[M(OP_PONG, b"Hello, world!")], offsets=True)
add("2.3", "ping with binary payload -> same pong", inp=frame(OP_PING, bytes([0, 255, 254, 253, 252, 251, 0, 255])),
    expect=[M(OP_PONG, bytes([0, 255, 254, 253, 252, 251, 0, 255]))])
add("2.4", "ping with 125-byte payload -> same pong", inp=frame(OP_PING, binary(125)),
    expect=[M(OP_PONG, binary(125))], offsets=True)
add("2.5", "ping with 126-byte payload -> 1002", inp=frame(OP_PING, binary(126)), expect=[CLOSE(1002)])
add("2.6", "ping with 125-byte payload, one byte per write -> same pong",
    inp=frame(OP_PING, binary(125)), expect=[M(OP_PONG, binary(125))], modes=("split",))
add("2.7", "unsolicited empty pong -> nothing", inp=frame(OP_PONG), expect=[SILENCE])
add("2.8", "unsolicited pong with payload -> nothing", inp=frame(OP_PONG, b"unsolicited"), expect=[SILENCE])
add("2.9", "unsolicited pong, then ping -> one pong for the ping",
    inp=frame(OP_PONG, b"unsolicited") + frame(OP_PING, b"solicited"),
    expect=[M(OP_PONG, b"solicited"), SILENCE])
add("2.10", "10 pings in one write -> pongs in order, the last one answered",
    inp=b"".join(frame(OP_PING, b"ping %d" % i) for i in range(10)),
    expect=[PONGS([b"ping %d" % i for i in range(10)])])
add("2.11", "fragmented ping (FIN=0) -> 1002", inp=frame(OP_PING, b"frag", fin=False), expect=[CLOSE(1002)])
add("2.12", "ping with a 16-bit length field of 5 (a control frame over 125 in form) -> 1002",
    inp=(lambda: struct.pack("!BBH", 0x89, 0xFE, 5) + b"\0\0\0\0" + b"hello"), expect=[CLOSE(1002)],
    modes=("whole",))

# ---------------------------------------------------------------------------
# 3  reserved bits (no extension negotiated)

for k, (rsv, name) in enumerate([(4, "RSV1"), (2, "RSV2"), (1, "RSV3"), (6, "RSV1+RSV2"),
                                 (3, "RSV2+RSV3"), (5, "RSV1+RSV3"), (7, "RSV1+RSV2+RSV3")]):
    add("3.%d" % (k + 1), "text with %s after a valid text -> echo, then 1002" % name,
        inp=frame(OP_TEXT, b"valid") + frame(OP_TEXT, b"bad", rsv=rsv) + frame(OP_PING, b"after"),
        expect=[M(OP_TEXT, b"valid"), CLOSE(1002)])
add("3.8", "binary with RSV1 -> 1002", inp=frame(OP_BINARY, b"\x00\xff", rsv=4), expect=[CLOSE(1002)], offsets=True)
add("3.9", "ping with RSV2 -> 1002", inp=frame(OP_PING, b"p", rsv=2), expect=[CLOSE(1002)])
add("3.10", "close with RSV3 -> 1002", inp=frame(OP_CLOSE, close_payload(1000), rsv=1), expect=[CLOSE(1002)])
add("3.11", "continuation with RSV1 -> 1002",
    inp=frame(OP_TEXT, b"a", fin=False) + frame(OP_CONT, b"b", rsv=4), expect=[CLOSE(1002)])

# ---------------------------------------------------------------------------
# 4  opcodes

k = 0
for op in (3, 4, 5, 6, 7):
    k += 1
    add("4.1.%d" % k, "reserved data opcode %d -> 1002" % op, inp=frame(op), expect=[CLOSE(1002)], offsets=(op == 3))
    k += 1
    add("4.1.%d" % k, "valid text, then reserved data opcode %d with payload -> echo, then 1002" % op,
        inp=frame(OP_TEXT, b"before") + frame(op, b"reserved") + frame(OP_PING),
        expect=[M(OP_TEXT, b"before"), CLOSE(1002)])
k = 0
for op in (11, 12, 13, 14, 15):
    k += 1
    add("4.2.%d" % k, "reserved control opcode %d -> 1002" % op, inp=frame(op), expect=[CLOSE(1002)])
    k += 1
    add("4.2.%d" % k, "valid text, then reserved control opcode %d with payload -> echo, then 1002" % op,
        inp=frame(OP_TEXT, b"before") + frame(op, b"reserved") + frame(OP_PING),
        expect=[M(OP_TEXT, b"before"), CLOSE(1002)])

# ---------------------------------------------------------------------------
# 5  fragmentation

add("5.1", "ping in two fragments -> 1002", inp=frame(OP_PING, b"frag", fin=False) + frame(OP_CONT, b"ment"),
    expect=[CLOSE(1002)])
add("5.2", "pong in two fragments -> 1002", inp=frame(OP_PONG, b"frag", fin=False) + frame(OP_CONT, b"ment"),
    expect=[CLOSE(1002)])
add("5.3", "text in two fragments", inp=frags(OP_TEXT, b"fragment1fragment2", [9]),
    expect=[M(OP_TEXT, b"fragment1fragment2")], offsets=True)
add("5.4", "binary in two fragments", inp=frags(OP_BINARY, binary(300), [100]),
    expect=[M(OP_BINARY, binary(300))])
add("5.5", "text in 1-byte fragments", inp=frags(OP_TEXT, b"fragmented text", [1] * 14),
    expect=[M(OP_TEXT, b"fragmented text")])
add("5.6", "text in two fragments with a ping between -> pong, then echo",
    inp=frame(OP_TEXT, b"fragment1", fin=False) + frame(OP_PING, b"between") + frame(OP_CONT, b"fragment2"),
    expect=[M(OP_PONG, b"between"), M(OP_TEXT, b"fragment1fragment2")], offsets=True)
add("5.7", "text in 5 fragments with a ping between each -> pongs (the last answered), then echo",
    inp=(frame(OP_TEXT, b"f1", fin=False) + frame(OP_PING, b"p1") + frame(OP_CONT, b"f2", fin=False) +
         frame(OP_PING, b"p2") + frame(OP_CONT, b"f3", fin=False) + frame(OP_PING, b"p3") +
         frame(OP_CONT, b"f4", fin=False) + frame(OP_PING, b"p4") + frame(OP_CONT, b"f5")),
    expect=[PONGS([b"p1", b"p2", b"p3", b"p4"]), M(OP_TEXT, b"f1f2f3f4f5")])
add("5.8", "binary fragmented with an unsolicited pong between -> echo only",
    inp=frame(OP_BINARY, b"\x01", fin=False) + frame(OP_PONG, b"x") + frame(OP_CONT, b"\x02"),
    expect=[M(OP_BINARY, b"\x01\x02"), SILENCE])
add("5.9", "continuation (FIN=1) with no message started -> 1002", inp=frame(OP_CONT, b"cont"),
    expect=[CLOSE(1002)], offsets=True)
add("5.10", "continuation (FIN=0) with no message started -> 1002",
    inp=frame(OP_CONT, b"cont", fin=False), expect=[CLOSE(1002)])
add("5.11", "continuation after a finished message -> echo, then 1002",
    inp=frame(OP_TEXT, b"done") + frame(OP_CONT, b"stray"), expect=[M(OP_TEXT, b"done"), CLOSE(1002)])
add("5.12", "new text (FIN=1) inside a fragmented text -> 1002",
    inp=frame(OP_TEXT, b"start", fin=False) + frame(OP_TEXT, b"new"), expect=[CLOSE(1002)], offsets=True)
add("5.13", "new binary (FIN=0) inside a fragmented text -> 1002",
    inp=frame(OP_TEXT, b"start", fin=False) + frame(OP_BINARY, b"new", fin=False), expect=[CLOSE(1002)])
add("5.14", "new text inside a fragmented binary after a continuation -> 1002",
    inp=frame(OP_BINARY, b"a", fin=False) + frame(OP_CONT, b"b", fin=False) + frame(OP_TEXT, b"c"),
    expect=[CLOSE(1002)])
add("5.15", "fragmented text, then fragmented text again (two messages)",
    inp=frags(OP_TEXT, b"first message", [5]) + frags(OP_TEXT, b"second message", [6, 2]),
    expect=[M(OP_TEXT, b"first message"), M(OP_TEXT, b"second message")])
add("5.16", "empty fragments: text(FIN=0,'') cont(FIN=0,'') cont(FIN=1,'') -> empty text",
    inp=frame(OP_TEXT, b"", fin=False) + frame(OP_CONT, b"", fin=False) + frame(OP_CONT, b""),
    expect=[M(OP_TEXT, b"")], offsets=True)
add("5.17", "1000 fragments of 1 byte", inp=frags(OP_BINARY, binary(1000), [1] * 999),
    expect=[M(OP_BINARY, binary(1000))], modes=("whole",))
add("5.18", "64 KiB text in 4 KiB fragments", inp=frags(OP_TEXT, text(65536), [4096] * 15),
    expect=[M(OP_TEXT, text(65536))])
add("5.19", "close between fragments -> close 1000 (no echo of the unfinished message)",
    inp=frame(OP_TEXT, b"unfinished", fin=False) + code_frame(1000), expect=[CLOSE(1000)])

# ---------------------------------------------------------------------------
# 6  UTF-8

KOSME = "κόσμε".encode()
VALID = [
    ("Greek kosme", KOSME),
    ("Latin-1 mix", "Hello-µ@ßöäüàá-UTF-8!!".encode()),
    ("U+0000", b"\x00"), ("U+007F", b"\x7f"), ("U+0080", b"\xc2\x80"), ("U+07FF", b"\xdf\xbf"),
    ("U+0800", b"\xe0\xa0\x80"), ("U+D7FF", b"\xed\x9f\xbf"), ("U+E000", b"\xee\x80\x80"),
    ("U+FFFD", b"\xef\xbf\xbd"), ("U+FFFE (noncharacter)", b"\xef\xbf\xbe"),
    ("U+FFFF", b"\xef\xbf\xbf"), ("U+FDD0", b"\xef\xb7\x90"), ("U+10000", b"\xf0\x90\x80\x80"),
    ("U+10FFFF", b"\xf4\x8f\xbf\xbf"), ("U+FEFF BOM", b"\xef\xbb\xbf"),
    ("mixed 1-4 byte", "a\u00e9\u20ac\U0001F600z".encode()),
]
INVALID = [
    ("lone continuation 0x80", b"\x80"), ("lone continuation 0xBF", b"\xbf"),
    ("two continuations", b"\x80\xbf"), ("kosme + 0x80", KOSME + b"\x80"),
    ("0xC0 0xAF overlong '/'", b"\xc0\xaf"), ("0xC1 0xBF overlong", b"\xc1\xbf"),
    ("0xE0 0x80 0xAF overlong", b"\xe0\x80\xaf"), ("0xE0 0x9F 0xBF overlong", b"\xe0\x9f\xbf"),
    ("0xF0 0x80 0x80 0xAF overlong", b"\xf0\x80\x80\xaf"), ("0xF0 0x8F 0xBF 0xBF overlong", b"\xf0\x8f\xbf\xbf"),
    ("surrogate U+D800", b"\xed\xa0\x80"), ("surrogate U+DFFF", b"\xed\xbf\xbf"),
    ("surrogate pair", b"\xed\xa0\x80\xed\xb0\x80"), ("kosme + surrogate + more", KOSME + b"\xed\xa0\x80edited"),
    ("U+110000", b"\xf4\x90\x80\x80"), ("0xF5 start", b"\xf5\x80\x80\x80"),
    ("5-byte form", b"\xf8\x88\x80\x80\x80"), ("6-byte form", b"\xfc\x84\x80\x80\x80\x80"),
    ("0xFE", b"\xfe"), ("0xFF", b"\xff"), ("0xFE 0xFE 0xFF 0xFF", b"\xfe\xfe\xff\xff"),
    ("start byte then ASCII", b"\xc2A"), ("3-byte start then ASCII", b"\xe2\x82A"),
    ("truncated 2-byte at end", b"ab\xc2"), ("truncated 3-byte at end", b"ab\xe2\x82"),
    ("truncated 4-byte at end", b"ab\xf0\x9f\x98"),
]
for k, (name, v) in enumerate(VALID):
    add("6.1.%d" % (k + 1), "valid %s: whole" % name, inp=frame(OP_TEXT, v), expect=[M(OP_TEXT, v)],
        offsets=(len(v) >= 3))
    add("6.2.%d" % (k + 1), "valid %s: one fragment per byte" % name,
        inp=frags(OP_TEXT, v, [1] * (len(v) - 1)), expect=[M(OP_TEXT, v)])
for k, (name, v) in enumerate(INVALID):
    assert utf8_fail_index(v) is not None, name
    add("6.3.%d" % (k + 1), "invalid %s: whole -> 1007" % name, inp=frame(OP_TEXT, v), expect=[CLOSE(1007)],
        offsets=(len(v) >= 3))
    add("6.4.%d" % (k + 1), "invalid %s: one fragment per byte -> 1007" % name,
        inp=frags(OP_TEXT, v, [1] * (len(v) - 1)), expect=[CLOSE(1007)])


def failfast_case(v, fragmented, declared=100):
    """Fail-fast: the frame (or message) is left unfinished after the first
    byte that cannot continue valid UTF-8; the 1007 must come anyway.
    declared is how many bytes the frame announces beyond those sent."""
    def fn(port, mode):
        prefix = b"ok " + v
        cut = 3 + utf8_fail_index(v) + 1
        body = prefix[:cut]
        with Conn(port) as c:
            if fragmented:
                # the bad byte opens the second fragment, which declares more
                # than is ever sent; the message is never finished
                data = (frame(OP_TEXT, body[:cut - 1], fin=False) +
                        frame(OP_CONT, body[cut - 1:], fin=False, length=declared))
            else:
                data = frame(OP_TEXT, body, length=len(body) + declared)
            c.write(data, *pieces_for(mode, data))
            expect_close(c, 1007, timeout=2.0)
    return fn


for k, (name, v) in enumerate(INVALID):
    i = utf8_fail_index(v)
    if i == len(v):
        continue  # detectable only at the end of the message (cases 6.3/6.4)
    add("6.5.%d" % (k + 1), "fail-fast %s: unfinished frame -> 1007 at the bad byte" % name,
        failfast_case(v, False))
    add("6.6.%d" % (k + 1), "fail-fast %s: bad byte opens an unfinished continuation -> 1007" % name,
        failfast_case(v, True))
    if k % 4 == 0:
        add("6.8.%d" % (k + 1), "fail-fast %s: unfinished frame declaring 1 MiB -> 1007 at the bad byte" % name,
            failfast_case(v, False, 1 << 20))

add("6.7.1", "character split across fragments (2|2 of a 4-byte) is valid",
    inp=frags(OP_TEXT, b"\xf0\x9f\x98\x80", [2]), expect=[M(OP_TEXT, b"\xf0\x9f\x98\x80")], offsets=True)
add("6.7.2", "message ending inside a character across fragments -> 1007",
    inp=frame(OP_TEXT, b"ab\xce", fin=False) + frame(OP_CONT, b""), expect=[CLOSE(1007)], offsets=True)
add("6.7.3", "invalid continuation in the second fragment -> 1007",
    inp=frame(OP_TEXT, b"ab\xce", fin=False) + frame(OP_CONT, b"A"), expect=[CLOSE(1007)])
add("6.7.4", "valid text in 3 fragments with a ping inside a split character",
    inp=frame(OP_TEXT, b"x\xe2", fin=False) + frame(OP_PING, b"p") + frame(OP_CONT, b"\x82", fin=False) +
    frame(OP_CONT, b"\xacy"), expect=[M(OP_PONG, b"p"), M(OP_TEXT, "x\u20acy".encode())])
add("6.7.5", "binary messages are not UTF-8 checked", inp=frame(OP_BINARY, b"\xff\xfe\xed\xa0\x80"),
    expect=[M(OP_BINARY, b"\xff\xfe\xed\xa0\x80")])
add("6.7.6", "1 MiB of 4-byte characters in 1000-byte fragments (characters split)",
    inp=frags(OP_TEXT, b"\xf0\x9f\x98\x80" * (1 << 18), [1000] * 1048),
    expect=[M(OP_TEXT, b"\xf0\x9f\x98\x80" * (1 << 18))], modes=("whole",))

# ---------------------------------------------------------------------------
# 7  close

add("7.1.1", "close 1000 -> close 1000, server closes TCP", inp=code_frame(1000), expect=[CLOSE(1000)],
    offsets=True)
add("7.1.2", "two closes -> one close back", inp=code_frame(1000) + code_frame(1000), expect=[CLOSE(1000)])
add("7.1.3", "ping after close is ignored", inp=code_frame(1000) + frame(OP_PING, b"late"), expect=[CLOSE(1000)])
add("7.1.4", "text after close is ignored", inp=code_frame(1000) + frame(OP_TEXT, b"late"), expect=[CLOSE(1000)])
add("7.1.5", "garbage after close is ignored", inp=code_frame(1000) + b"\xff\xff\xff\xff garbage",
    expect=[CLOSE(1000)], modes=("whole",))


def c_data_then_close(port, mode):
    """A message and a Close in one write. RFC 6455 5.5.1 lets the server
    answer the Close at once or after the reply it already queued (Autobahn
    7.1.6 is informational), so both are right; a cut or altered echo, or no
    close 1000, is not."""
    with Conn(port) as c:
        data = frame(OP_TEXT, text(65536)) + code_frame(1000)
        c.write(data, *pieces_for(mode, data))
        try:
            op, got = c.recv_message()
        except (TimeoutError, Closed) as e:
            raise Fail("expected the echo or close 1000, got %s" % type(e).__name__)
        if op == OP_TEXT:
            if got != text(65536):
                raise Fail("echo differs: %d bytes for 65536" % len(got))
            expect_close(c, 1000, reply=False)
        elif op == OP_CLOSE:
            if got[:2] != struct.pack("!H", 1000):
                raise Fail("expected close 1000, got %s" % describe(op, got))
            if c.wait_eof() is not True:
                raise Fail("the server did not close TCP after its close 1000")
        else:
            raise Fail("expected the echo or close 1000, got %s" % describe(op, got))


add("7.1.6", "64 KiB text then close in one write -> (echo and) close 1000", c_data_then_close)
add("7.3.1", "close without payload -> close without code (or 1000)", inp=frame(OP_CLOSE),
    expect=[CLOSE((None, 1000))], offsets=True)
add("7.3.2", "close with a 1-byte payload -> 1002", inp=frame(OP_CLOSE, b"\x03"), expect=[CLOSE(1002)], offsets=True)
add("7.3.3", "close 1000 with an empty reason", inp=code_frame(1000, b""), expect=[CLOSE(1000)])
add("7.3.4", "close 1000 with a reason", inp=code_frame(1000, b"Hello World!"), expect=[CLOSE(1000)])
add("7.3.5", "close 1000 with a 123-byte reason (payload 125)", inp=code_frame(1000, b"*" * 123),
    expect=[CLOSE(1000)])
add("7.3.6", "close 1000 with a 124-byte reason (payload 126) -> 1002", inp=code_frame(1000, b"*" * 124),
    expect=[CLOSE(1002)])
add("7.5.1", "close reason with invalid UTF-8 -> 1007", inp=code_frame(1000, KOSME + b"\xed\xa0\x80edited"),
    expect=[CLOSE(1007)])
add("7.5.2", "close reason with a truncated character -> 1007", inp=code_frame(1000, b"bye\xe2\x82"),
    expect=[CLOSE(1007)])
add("7.5.3", "close reason with valid multi-byte UTF-8", inp=code_frame(1000, KOSME), expect=[CLOSE(1000)])
for k, code in enumerate([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                          3000, 3999, 4000, 4999]):
    add("7.7.%d" % (k + 1), "valid close code %d is echoed" % code, inp=code_frame(code, b"reason"),
        expect=[CLOSE(code)])
for k, code in enumerate([0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]):
    add("7.9.%d" % (k + 1), "invalid close code %d -> 1002" % code, inp=code_frame(code), expect=[CLOSE(1002)])


def c_close_unanswered(port, mode):
    """The server's own close (here for a protocol error) is finished even
    when the client never answers it: the server ends TCP by itself."""
    with Conn(port) as c:
        c.send(OP_CONT, b"stray")
        expect_close(c, 1002, reply=False, eof_timeout=8.0)


def c_close_tcp_after(port, mode):
    """After the closing handshake the server, not the client, ends TCP; the
    client keeps its socket open and sees EOF."""
    with Conn(port) as c:
        c.send(OP_CLOSE, close_payload(1000))
        expect_close(c, 1000, reply=False, eof_timeout=3.0)


add("7.13.1", "server-initiated close not answered: server ends TCP anyway (close timeout)",
    c_close_unanswered, modes=("whole",))
add("7.13.2", "after the closing handshake the server ends TCP", c_close_tcp_after, modes=("whole",))

# ---------------------------------------------------------------------------
# 9  limits and large messages

def big_echo(op, n, frag=None, chunk=None):
    """Echo of an n-byte message (written by a thread while the answer is read)."""
    def fn(port, mode):
        payload = text(n) if op == OP_TEXT else binary(n)
        data = frame(op, payload) if frag is None else frags(op, payload, [frag] * (n // frag))
        with Conn(port, timeout=60) as c:
            errs = []

            def writer():
                try:
                    c.write(data, None if chunk is None else [data[i:i + chunk] for i in range(0, len(data), chunk)])
                except Exception as e:  # noqa: BLE001 - reported below
                    errs.append(e)
            # an SSL socket may not be read and written from two threads:
            # over TLS the message is written first (the server answers only
            # once it has all of it)
            t = threading.Thread(target=writer, daemon=True)
            if wsclient.DEFAULT_TLS is None:
                t.start()
            else:
                writer()
            expect_message(c, op, payload, timeout=60)
            if t.is_alive():
                t.join(10)
            if errs:
                raise Fail("write failed: %s" % errs[0])
            clean_close(c)
    return fn


k = 0
for n in (1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24):
    k += 1
    add("9.1.%d" % k, "text message of %d bytes" % n, big_echo(OP_TEXT, n), modes=("whole",))
    add("9.2.%d" % k, "binary message of %d bytes" % n, big_echo(OP_BINARY, n), modes=("whole",))
add("9.3.1", "16 MiB text in 64 KiB fragments", big_echo(OP_TEXT, 1 << 24, frag=1 << 16), modes=("whole",))
add("9.4.1", "16 MiB binary in 1 MiB fragments, written in 997-byte pieces",
    big_echo(OP_BINARY, 1 << 24, frag=1 << 20, chunk=997), modes=("whole",))
add("9.4.2", "4 MiB binary in 256-byte fragments", big_echo(OP_BINARY, 1 << 22, frag=256), modes=("whole",))


def pipelined(count, size, op):
    def fn(port, mode):
        msgs = [(("%08d" % i).encode() * (size // 8 + 1))[:size] for i in range(count)]
        data = b"".join(frame(op, m) for m in msgs)
        with Conn(port, timeout=30) as c:
            errs = []
            t = threading.Thread(target=lambda: (c.write(data) if not errs else None), daemon=True)
            if wsclient.DEFAULT_TLS is None:
                t.start()
            else:
                c.write(data)  # within the outbound limit, so the server keeps reading
            for i, m in enumerate(msgs):
                try:
                    expect_message(c, op, m, timeout=30)
                except Fail as e:
                    raise Fail("message %d of %d: %s" % (i + 1, count, e))
            if t.is_alive():
                t.join(10)
            clean_close(c)
    return fn


add("9.5.1", "1000 text messages of 16 bytes in one write, echoed in order", pipelined(1000, 16, OP_TEXT),
    modes=("whole",))
add("9.5.2", "100 binary messages of 64 KiB in one write, echoed in order", pipelined(100, 65536, OP_BINARY),
    modes=("whole",))

add("9.6.1", "text of exactly --max-message (%d) is echoed" % LIMIT, inp=frame(OP_TEXT, text(LIMIT)),
    expect=[M(OP_TEXT, text(LIMIT))], server="limit")
add("9.6.2", "binary of exactly --max-message in 10 fragments is echoed",
    inp=frags(OP_BINARY, binary(LIMIT), [100] * 9), expect=[M(OP_BINARY, binary(LIMIT))], server="limit")
add("9.6.3", "text of --max-message + 1 -> 1009", inp=frame(OP_TEXT, text(LIMIT + 1)), expect=[CLOSE(1009)],
    server="limit")
add("9.6.4", "binary of --max-message + 1 -> 1009", inp=frame(OP_BINARY, binary(LIMIT + 1)),
    expect=[CLOSE(1009)], server="limit")
add("9.6.5", "fragments adding up to --max-message + 1 -> 1009",
    inp=frags(OP_BINARY, binary(LIMIT + 1), [600]), expect=[CLOSE(1009)], server="limit")
add("9.6.6", "many small fragments passing --max-message -> 1009 (message never finished)",
    inp=frame(OP_TEXT, b"x" * 100, fin=False) + b"".join(frame(OP_CONT, b"x" * 100, fin=False) for _ in range(10)),
    expect=[CLOSE(1009)], server="limit")
add("9.6.7", "a frame declaring 4 GiB, header only -> 1009",
    inp=frame(OP_BINARY, b"", length=1 << 32)[:14], expect=[CLOSE(1009)], server="limit", offsets=True)
add("9.6.8", "a frame declaring 2^63-1 bytes, header only -> 1009",
    inp=frame(OP_BINARY, b"", length=(1 << 63) - 1)[:14], expect=[CLOSE(1009)])
add("9.6.9", "a 64-bit length with the top bit set -> 1002",
    inp=frame(OP_BINARY, b"", length=1 << 63)[:14], expect=[CLOSE(1002)], offsets=True)
add("9.6.10", "16 MiB + 1 byte text against the 16 MiB limit -> 1009, declared length only",
    inp=frame(OP_TEXT, b"", length=(16 << 20) + 1)[:14], expect=[CLOSE(1009)])
add("9.6.11", "control frames do not count towards the message limit",
    inp=frame(OP_TEXT, text(600), fin=False) + frame(OP_PING, binary(125)) + frame(OP_CONT, text(400)),
    expect=[M(OP_PONG, binary(125)), M(OP_TEXT, text(1000))], server="limit")

# ---------------------------------------------------------------------------
# 10  misc

add("10.1", "unmasked text frame -> 1002", inp=frame(OP_TEXT, b"unmasked", mask=False), expect=[CLOSE(1002)],
    offsets=True)
add("10.2", "unmasked ping -> 1002", inp=frame(OP_PING, b"unmasked", mask=False), expect=[CLOSE(1002)])
add("10.3", "unmasked close -> 1002", inp=frame(OP_CLOSE, close_payload(1000), mask=False), expect=[CLOSE(1002)])
add("10.4", "masked text, then an unmasked continuation -> 1002",
    inp=frame(OP_TEXT, b"masked", fin=False) + frame(OP_CONT, b"bare", mask=False), expect=[CLOSE(1002)])
add("10.5", "unmasked empty binary -> 1002", inp=frame(OP_BINARY, b"", mask=False), expect=[CLOSE(1002)])

# ---------------------------------------------------------------------------
# 11  /broadcast


def c_broadcast(port, mode):
    a, b, c = (Conn(port, "/broadcast") for _ in range(3))
    try:
        # every member must be registered before the first message
        time.sleep(0.1)
        for sender, others, op, payload in ((a, (b, c), OP_TEXT, b"from a"),
                                            (b, (a, c), OP_BINARY, b"\x00from b\xff"),
                                            (c, (a, b), OP_TEXT, KOSME)):
            sender.send(op, payload)
            for o in others:
                expect_message(o, op, payload)
        for x in (a, b, c):
            expect_silence(x, 0.2)
        for x in (a, b, c):
            clean_close(x)
    finally:
        for x in (a, b, c):
            x.close()


def c_broadcast_alone(port, mode):
    with Conn(port, "/broadcast") as a:
        a.send(OP_TEXT, b"nobody else")
        expect_silence(a, 0.3)
        clean_close(a)


add("11.1", "/broadcast: each message reaches every other client with its opcode, not the sender",
    c_broadcast, modes=("whole",))
add("11.2", "/broadcast: a lone client gets nothing back", c_broadcast_alone, modes=("whole",))


# 12, 13  permessage-deflate: deflate_cases.py adds them, after every case above.
from deflate_cases import DEFLATE_ARGS  # noqa: E402


# ---------------------------------------------------------------------------
# runner

def main():
    args = sys.argv[1:]
    verbose = "-v" in args
    args = [a for a in args if a != "-v"]
    filt = take_option(args, "-k")
    tls = None
    cats = None
    if "--tls" in args:
        args.remove("--tls")
        import ssl
        import tempfile
        ca, cert, key = wsclient.make_certs(tempfile.mkdtemp(prefix="snow-wsconf-"))
        wsclient.DEFAULT_TLS = ssl.create_default_context(cafile=ca)
        tls = (cert, key)
        cats = TLS_CATEGORIES
    if len(args) != 1:
        print("usage: run.py SNOW_ECHO [--tls] [-k SUBSTRING] [-v]", file=sys.stderr)
        return 2
    exe = args[0]
    servers = SERVERS
    server_args = {"main": MAIN_ARGS, "limit": LIMIT_ARGS, "deflate": DEFLATE_ARGS}

    def server(name):
        s = servers.get(name)
        if s is None or not s.alive():
            s = Server(exe, *server_args[name], tls=tls).start()
            servers[name] = s
        return s

    results = Results()
    for case in CASES:
        if cats is not None and case.cid.split(".")[0] not in cats:
            continue
        for mode in case.modes:
            name = "%s [%s] %s" % (case.cid, mode, case.desc)
            if filt and filt not in name:
                continue
            try:
                srv = server(case.server)
            except (RuntimeError, OSError) as e:
                results.report(name, "server did not start: %s" % e)
                continue
            t0 = time.monotonic()
            err = None
            try:
                if case.fn is not None:
                    case.fn(srv.port, mode)
                else:
                    run_declarative(case, srv.port, mode)
            except Fail as e:
                err = str(e)
            except (Closed, OSError, TimeoutError) as e:
                err = "%s: %s" % (type(e).__name__, e)
            except Exception:  # noqa: BLE001 - a broken case is a failed case
                err = traceback.format_exc()
            if not srv.alive():
                err = (err + "; " if err else "") + "server exited (status %s):\n%s" % (
                    srv.proc.returncode, srv.stderr_tail())
            dt = time.monotonic() - t0
            results.report(name, err, "%.2fs" % dt if verbose and err is None else "")

    # the servers must stop cleanly: exit 0 on SIGTERM
    if not filt:
        for name, s in servers.items():
            results.stop_checked(s, "stop server '%s'" % name)
    else:
        for s in servers.values():
            s.stop()
    return results.summary()


if __name__ == "__main__":
    sys.exit(main())
