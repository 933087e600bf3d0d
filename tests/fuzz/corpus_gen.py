#!/usr/bin/env python3
"""Writes the seed corpora of fuzz-ws-handshake, fuzz-ws-close,
fuzz-ws-reasm and fuzz-ws-conn into corpus/<target>/. Deterministic; run from anywhere.

Each seed starts with the configuration byte(s) the target reads (see the
comment at the top of each target), then the bytes under test.
"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3


def req(lines, method="GET", target="/chat", version="HTTP/1.1"):
    head = "%s %s %s\r\n" % (method, target, version)
    return (head + "".join(l + "\r\n" for l in lines) + "\r\n").encode()


BASE = ["Host: server.example.com", "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Key: " + KEY, "Sec-WebSocket-Version: 13"]


def without(name, extra=()):
    return [l for l in BASE if not l.startswith(name + ":")] + list(extra)


# config byte: bits 0-1 origin policy (same, any, list, callback), bit 2
# require_origin, bit 3 secure, bits 4-5 server subprotocols, bit 7 the
# callback's answer.
HANDSHAKE = {
    "rfc_example": (0, req(BASE + ["Origin: http://server.example.com",
                                   "Sec-WebSocket-Protocol: chat, superchat"])),
    "protocol_pref": (0x20, req(BASE + ["Sec-WebSocket-Protocol: chat, v2.chat"])),
    "protocol_case": (0x30, req(BASE + ["Sec-WebSocket-Protocol: Chat", "Sec-WebSocket-Protocol: chat"])),
    "protocol_bad": (0x10, req(BASE + ["Sec-WebSocket-Protocol: ch@t"])),
    "post": (0, req(BASE, method="POST")),
    "http10": (0, req(BASE, version="HTTP/1.0")),
    "no_host": (0, req(without("Host"))),
    "two_hosts": (0, req(BASE + ["Host: other"])),
    "no_upgrade": (0, req(without("Upgrade"))),
    "upgrade_list": (0, req(without("Upgrade", ["Upgrade: h2c, WebSocket"]))),
    "connection_list": (0, req(without("Connection", ["Connection: keep-alive, upgrade"]))),
    "no_connection": (0, req(without("Connection", ["Connection: keep-alive"]))),
    "version_8": (0, req(without("Sec-WebSocket-Version", ["Sec-WebSocket-Version: 8"]))),
    "version_dup": (0, req(BASE + ["Sec-WebSocket-Version: 13"])),
    "key_short": (0, req(without("Sec-WebSocket-Key", ["Sec-WebSocket-Key: dGhlIHNhbXBsZQ=="]))),
    "key_noncanonical": (0, req(without("Sec-WebSocket-Key", ["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR=="]))),
    "key_dup": (0, req(BASE + ["Sec-WebSocket-Key: " + KEY])),
    "ext_deflate": (0, req(BASE + ["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, "
                                   "permessage-deflate; server_max_window_bits=\"10\""])),
    "ext_bad": (0, req(BASE + ["Sec-WebSocket-Extensions: permessage-deflate; =x"])),
    "ext_many": (0, req(BASE + ["Sec-WebSocket-Extensions: " + ", ".join("e%d; a=%d; b" % (i, i) for i in range(12))])),
    "origin_cross": (0, req(BASE + ["Origin: http://evil.example"])),
    "origin_port": (0x08, req(without("Host", ["Host: Server.Example.com:443", "Origin: https://server.example.com"]))),
    "origin_ipv6": (0, req(without("Host", ["Host: [::1]:8080", "Origin: http://[::1]:8080"]))),
    "origin_null": (0, req(BASE + ["Origin: null"])),
    "origin_required": (0x04, req(BASE)),
    "origin_any": (0x01, req(BASE + ["Origin: http://anything"])),
    "origin_list": (0x02, req(BASE + ["Origin: https://EXAMPLE.com"])),
    "origin_list_miss": (0x02, req(BASE + ["Origin: https://example.org"])),
    "origin_callback_yes": (0x83, req(BASE + ["Origin: http://cb"])),
    "origin_callback_no": (0x03, req(BASE)),
    "origin_dup": (0x01, req(BASE + ["Origin: http://a", "Origin: http://a"])),
}

# mode byte: bit 0 "we close first", bits 1-4 pick our code; then the
# peer's Close payload.
def close(code, reason=b""):
    return struct.pack(">H", code) + reason

CLOSE = {
    "empty": (0, b""),
    "one_byte": (0, b"\x03"),
    "normal": (0, close(1000, b"bye")),
    "going_away": (0, close(1001)),
    "app_code": (0, close(4321, "fin \u2713".encode())),
    "code_1004": (0, close(1004)),
    "code_1005": (0, close(1005)),
    "code_1006": (0, close(1006)),
    "code_1015": (0, close(1015)),
    "code_2999": (0, close(2999)),
    "code_5000": (0, close(5000)),
    "code_1014": (0, close(1014)),
    "reason_bad_utf8": (0, close(1000, b"\xc3\x28")),
    "reason_surrogate": (0, close(1000, b"\xed\xa0\x80")),
    "reason_123": (0, close(1000, b"r" * 123)),
    "we_close_long_reason": (0x03, close(1000, ("\u00e9" * 80).encode())),
    "we_close_bad_reason": (0x05, close(1000, b"ok\xff")),
    "we_close_empty": (0x01, b""),
    "we_close_4byte_cut": (0x07, close(1000, b"x" * 120 + "\U0001F600".encode())),
}

# flags (bit 0 binary, 1 pings, 2 limit, 3 chunked feed, 4 second message,
# bits 5-7 fragment count), limit byte, 4 seed bytes, then the payload.
def reasm(flags, payload, limit=0, seed=b"\x01\x02\x03\x04"):
    return bytes([flags, limit]) + seed + payload

REASM = {
    "text_one": reasm(0x00, b"Hello"),
    "text_fragments": reasm(0x20 | 0x08, "caf\u00e9 \u20ac \U0001F600 end".encode()),
    "text_pings": reasm(0x40 | 0x02 | 0x08, "\u0444\u0440\u0430\u0433\u043c\u0435\u043d\u0442".encode() * 4),
    "text_second": reasm(0x60 | 0x10, b"first message"),
    "text_bad_mid": reasm(0x40 | 0x08, b"valid start \xce\xba then \xc0\xaf bad"),
    "text_surrogate": reasm(0x20, b"ab\xed\xa0\x80cd"),
    "text_truncated": reasm(0x20, b"ends inside \xf0\x9f\x98"),
    "text_above_max": reasm(0x20, b"\xf4\x90\x80\x80"),
    "text_empty": reasm(0xE0, b""),
    "binary_frags": reasm(0xE1 | 0x08, bytes(range(256)) * 2),
    "binary_limit": reasm(0x25 | 0x08, b"z" * 200, limit=10),
    "text_limit_exact": reasm(0x24, b"y" * 82, limit=10),
    "binary_large": reasm(0x41, bytes(i % 251 for i in range(70000 - 6))),
}


def cframe(op, payload=b"", fin=True, rsv1=False, mask=b"\x37\xfa\x21\x3d"):
    """A client frame (masked unless mask is None)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | op
    m = 0x80 if mask is not None else 0
    if n < 126:
        head = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def deflated(data):
    c = zlib.compressobj(wbits=-15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]  # RFC 7692 7.2.1: without the trailing 00 00 ff ff


CLOSE_1000 = cframe(8, struct.pack("!H", 1000))

# ws-conn: byte 0 bits 0-1 opening (0 raw HTTP, 1 /echo, 2 /small,
# 3 /deflate), bit 2 EOF and read to the end (else an abrupt close);
# bytes 1, 2 the two chunk sizes (1 + b, 1 + 8 b); then the client bytes.
WHOLE = b"\xff\xff"
CONN = {
    "echo_text": b"\x05" + WHOLE + cframe(1, b"hello") + CLOSE_1000,
    "echo_split": b"\x05\x00\x00" + cframe(2, bytes(range(200))) + cframe(1, "κόσμε".encode()) + CLOSE_1000,
    "echo_fragments_ping": b"\x05\x02\x01" + cframe(1, b"frag", fin=False) + cframe(9, b"in between") +
    cframe(0, b"ment", fin=False) + cframe(10, b"unsolicited") + cframe(0, b"ed") + CLOSE_1000,
    "echo_large": b"\x05\x40\x10" + cframe(2, bytes(i % 253 for i in range(7000))) + CLOSE_1000,
    "echo_no_close": b"\x05" + WHOLE + cframe(1, b"then EOF"),
    "echo_abrupt_mid_frame": b"\x01" + WHOLE + cframe(2, b"x" * 100)[:40],
    "echo_unmasked": b"\x05" + WHOLE + cframe(1, b"no mask", mask=None),
    "echo_bad_utf8": b"\x05" + WHOLE + cframe(1, b"bad \xc0\xaf"),
    "echo_bad_utf8_fragments": b"\x05\x03\x00" + cframe(1, b"ok \xe2\x82", fin=False) + cframe(0, b"\x28"),
    "echo_reserved_opcode": b"\x05" + WHOLE + cframe(3, b"?"),
    "echo_rsv1_without_deflate": b"\x05" + WHOLE + cframe(1, b"x", rsv1=True),
    "echo_cont_first": b"\x05" + WHOLE + cframe(0, b"orphan"),
    "echo_long_ping": b"\x05" + WHOLE + cframe(9, b"p" * 126),
    "echo_close_bad_code": b"\x05" + WHOLE + cframe(8, struct.pack("!H", 1005)),
    "echo_close_one_byte": b"\x05" + WHOLE + cframe(8, b"\x03"),
    "echo_close_then_data": b"\x05" + WHOLE + CLOSE_1000 + cframe(1, b"after"),
    "echo_huge_length": b"\x05" + WHOLE + b"\x82\xff" + b"\x80" + b"\x00" * 7 + b"mask",
    "small_close": b"\x06" + WHOLE + cframe(1, b"c\x0f\xa0bye now") + CLOSE_1000,
    "small_close_invalid": b"\x06" + WHOLE + cframe(1, b"c\x03\xedno") + cframe(1, b"still open") + CLOSE_1000,
    "small_ping": b"\x06" + WHOLE + cframe(1, b"pping me") + cframe(10, b"ping me") + CLOSE_1000,
    "small_too_big": b"\x06" + WHOLE + cframe(2, b"z" * 300),
    "small_fragments_too_big": b"\x06\x10\x00" + b"".join(cframe(2 if i == 0 else 0, b"f" * 40, fin=False)
                                                          for i in range(8)),
    "small_backpressure": b"\x06\x20\x08" + b"".join(cframe(2, b"m" * 250) for _ in range(20)),
    "deflate_text": b"\x07" + WHOLE + cframe(1, deflated(b"compressed hello"), rsv1=True) + CLOSE_1000,
    "deflate_mixed": b"\x07\x05\x02" + cframe(1, b"plain") + cframe(2, deflated(bytes(500)), rsv1=True) +
    cframe(1, deflated(b"frag")[:3], fin=False, rsv1=True) + cframe(0, deflated(b"frag")[3:]) + CLOSE_1000,
    "deflate_garbage": b"\x07" + WHOLE + cframe(2, b"\xff\xfe\xfd not deflate", rsv1=True),
    "http_get_twice": b"\x04" + WHOLE + b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n" * 2,
    "http_post_body": b"\x04\x03\x01" + b"POST /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    "http_chunked": b"\x04" + WHOLE + b"GET /hello HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\n\r\n",
    "http_upgrade_bad_version": b"\x04" + WHOLE + req(without("Sec-WebSocket-Version", ["Sec-WebSocket-Version: 8"]),
                                                      target="/echo"),
    "http_upgrade_then_frames": b"\x04\x07\x03" + req(BASE, target="/small") + cframe(1, b"pp") +
    cframe(1, b"c\x03\xe8") + CLOSE_1000,
    "http_garbage": b"\x04" + WHOLE + b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
}


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        if isinstance(data, tuple):
            data = bytes([data[0]]) + data[1]
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def main():
    write("ws-handshake", HANDSHAKE)
    write("ws-close", CLOSE)
    write("ws-reasm", REASM)
    write("ws-conn", CONN)


if __name__ == "__main__":
    main()
