#!/usr/bin/env python3
"""Writes the seed corpora of fuzz-ws-handshake, fuzz-ws-close and
fuzz-ws-reasm into corpus/<target>/. Deterministic; run from anywhere.

Each seed starts with the configuration byte(s) the target reads (see the
comment at the top of each target), then the bytes under test.
"""
import os
import struct

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


if __name__ == "__main__":
    main()
