#!/usr/bin/env python3
"""snow-echo end to end over raw sockets (no client library needed):

    tests/ws/echo_smoke.py PATH/TO/snow-echo [--tls]

"listening on PORT" on stdout, GET /health, GET /stats (JSON with the open
connection count), an echo on /echo with leftover bytes, /broadcast to the
other clients only, and SIGTERM: every open connection gets close 1001 and
the program exits 0. With --tls the same runs over TLS (wss) with a
self-signed certificate made by the openssl command for the run, and the
idle connection is also woken after it hibernated."""
import base64
import json
import os
import re
import signal
import socket
import struct
import subprocess
import ssl
import sys
import tempfile
import time

TLS = None  # client context when testing over TLS


def dial(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    return TLS.wrap_socket(s, server_hostname="127.0.0.1") if TLS else s


def frame(op, payload, fin=True):
    key = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | op])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class Conn:
    def __init__(self, port, path, extra=b""):
        self.s = dial(port)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode() + extra)
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def more(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError
        self.buf += d

    def read(self):
        while True:
            if len(self.buf) >= 2:
                n, o = self.buf[1] & 127, 2
                if n == 126 and len(self.buf) >= 4:
                    n, o = struct.unpack(">H", self.buf[2:4])[0], 4
                elif n == 127 and len(self.buf) >= 10:
                    n, o = struct.unpack(">Q", self.buf[2:10])[0], 10
                if n < 126 or o > 2:
                    if len(self.buf) >= o + n:
                        op, data = self.buf[0] & 15, self.buf[o:o + n]
                        self.buf = self.buf[o + n:]
                        return op, data
            self.more()


def http_get(port, path):
    s = dial(port)
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path).encode())
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    head, body = data.split(b"\r\n\r\n", 1)
    return int(head.split()[1]), body


def main():
    global TLS
    exe = sys.argv[1]
    args = [exe, "--host", "127.0.0.1", "--port", "0"]
    tmp = tempfile.TemporaryDirectory()
    if "--tls" in sys.argv[2:]:
        cert, key = os.path.join(tmp.name, "cert.pem"), os.path.join(tmp.name, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        TLS = ssl.create_default_context(cafile=cert)
        args += ["--tls-cert", cert, "--tls-key", key]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        port = int(re.match(r"listening on (\d+)$", p.stdout.readline().strip()).group(1))
        assert http_get(port, "/health") == (200, b"ok")
        echo = Conn(port, "/echo", frame(1, b"leftover"))
        assert echo.read() == (1, b"leftover")
        echo.s.sendall(frame(2, b"\x00\xff" * 40000))
        got = b""
        while len(got) < 80000:
            op, data = echo.read()
            assert op in (0, 2)
            got += data
        assert got == b"\x00\xff" * 40000
        a, b, c = (Conn(port, "/broadcast") for _ in range(3))
        status, body = http_get(port, "/stats")
        stats = json.loads(body)
        assert status == 200 and stats["connections"] == 4, stats
        a.s.sendall(frame(1, b"to the others"))
        assert b.read() == (1, b"to the others")
        assert c.read() == (1, b"to the others")
        a.s.sendall(frame(9, b"still there?"))
        assert a.read() == (10, b"still there?")  # a got no copy of its own message
        time.sleep(0.1)  # idle: every connection hibernates
        echo.s.sendall(frame(1, b"awake again"))
        assert echo.read() == (1, b"awake again")
        p.send_signal(signal.SIGTERM)
        for conn in (echo, a, b, c):
            op, data = conn.read()
            assert op == 8 and struct.unpack(">H", data[:2])[0] == 1001, (op, data)
            conn.s.sendall(frame(8, data[:2]))
        rc = p.wait(timeout=10)
        assert rc == 0, rc
        print("snow-echo smoke: ok")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
