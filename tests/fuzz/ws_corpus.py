#!/usr/bin/env python3
"""Writes the seed corpus for fuzz-ws-decoder into corpus/ws/.

Each file is one configuration byte (see ws_decoder.c) followed by the
bytes a client would send. Run from anywhere; the output is deterministic.
"""
import os
import struct

KEY = bytes([0x37, 0xFA, 0x21, 0x3D])
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "ws")


def frame(b0, payload=b"", masked=True, length_bytes=0, declared=None):
    n = len(payload) if declared is None else declared
    if length_bytes == 0:
        length_bytes = 1 if n < 126 else 2 if n <= 0xFFFF else 8
    mbit = 0x80 if masked else 0
    if length_bytes == 1:
        head = bytes([b0, mbit | n])
    elif length_bytes == 2:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    body = bytes(c ^ KEY[i % 4] for i, c in enumerate(payload))
    return head + KEY + body


FIN = 0x80
TEXT, BINARY, CONT, CLOSE, PING, PONG = 1, 2, 0, 8, 9, 10

SEEDS = {
    "hello": (0, frame(FIN | TEXT, b"Hello")),
    "unmasked": (0, frame(FIN | TEXT, b"Hello", masked=False)),
    "fragments_ping": (0, frame(TEXT, b"Hel") + frame(FIN | PING, b"p") + frame(FIN | CONT, b"lo")),
    "utf8_split": (0, frame(TEXT, "caf\u00e9 \u20ac".encode()[:5]) + frame(FIN | CONT, "caf\u00e9 \u20ac".encode()[5:])),
    "utf8_bad": (0, frame(FIN | TEXT, b"ab\xed\xa0\x80")),
    "utf8_truncated": (0, frame(FIN | TEXT, b"ab\xf0\x9f\x98")),
    "binary_256": (0, frame(FIN | BINARY, bytes(range(256)))),
    "len16_min": (0, frame(FIN | BINARY, b"x" * 126)),
    "len16_nonminimal": (0, frame(FIN | BINARY, b"x" * 5, length_bytes=2)),
    "len64_header": (0, frame(FIN | BINARY, b"", length_bytes=8, declared=1 << 32)),
    "len64_msb": (0, frame(FIN | BINARY, b"", length_bytes=8, declared=1 << 63)),
    "limit_small": (0x08, frame(BINARY, b"a" * 60) + frame(FIN | CONT, b"b" * 10)),
    "frame_limit": (0x10, frame(FIN | BINARY, b"c" * 101)),
    "rsv1_allowed": (0x20, frame(FIN | 0x40 | TEXT, b"compressed?")),
    "rsv2": (0, frame(FIN | 0x20 | TEXT, b"x")),
    "reserved_op": (0, frame(FIN | 0x3, b"x")),
    "ping_fragmented": (0, frame(PING, b"x")),
    "ping_126": (0, frame(FIN | PING, b"p" * 126)),
    "pong_empty": (0, frame(FIN | PONG)),
    "close_code": (0, frame(FIN | CLOSE, struct.pack(">H", 1000) + b"bye") + frame(FIN | TEXT, b"late")),
    "close_empty": (0, frame(FIN | CLOSE)),
    "close_one_byte": (0, frame(FIN | CLOSE, b"\x03")),
    "close_1005": (0, frame(FIN | CLOSE, struct.pack(">H", 1005))),
    "close_bad_reason": (0, frame(FIN | CLOSE, struct.pack(">H", 1000) + b"\xff")),
    "cont_no_start": (0, frame(FIN | CONT, b"x")),
    "new_in_fragmented": (0, frame(TEXT, b"a") + frame(FIN | BINARY, b"b")),
    "mixed_stream": (0x04, b"".join(frame(FIN | TEXT, ("message %d \u00e9" % i).encode()) for i in range(8))),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (config, data) in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(bytes([config]) + data)


if __name__ == "__main__":
    main()
