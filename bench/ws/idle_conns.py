#!/usr/bin/env python3
"""Memory and CPU of idle WebSocket connections.

    bench/ws/idle_conns.py [--census] BUILD_DIR [N [DEFLATE]]

Starts snow-echo on 127.0.0.1 (port 0, heartbeat off so that nothing at all
happens while idle), opens N WebSocket connections (default 5,000; at most
19,900 under the 20,000 open-file limit), echoes one 16-byte message on
each, waits a second, and prints

    bench ws_idle conns=N rss_per_conn_bytes=X cpu_pct=Y

where X is the growth of the server's resident memory (VmRSS) over the
baseline taken before the first connection, divided by N, and Y is the
server's CPU time (user + system, /proc/PID/stat) over a 2-second idle
window, as a percentage of that window. The server is stopped at the end.

DEFLATE (default none) measures permessage-deflate: "nct" runs snow-echo
--deflate-no-context-takeover, "takeover" snow-echo --deflate; every client
offers permessage-deflate and its message is a 200-byte JSON text sent
compressed (so both directions compress and, with context takeover, each
connection gets its zlib streams). The line then says deflate=MODE.

--census runs the server under BUILD_DIR/bench/ws/libsnow-alloc-census.so
(alloc_census.c), takes a census of its live malloc blocks at the baseline
and at the measurement, and prints what one idle connection holds, by call
site (resolved with addr2line) and block size:

    census per_conn blocks=B usable_bytes=U
    census SITE SIZE USABLE PER_CONN
"""
import base64
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
import zlib


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS for %d" % pid)


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def read_until(s, end):
    got = b""
    while not got.endswith(end):
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("connection closed early")
        got += chunk
    return got


def masked_text(payload):
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + key + body


def masked_frame(b0, payload):
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    head = bytes([b0, 0x80 | n]) if n < 126 else bytes([b0, 0x80 | 126, n >> 8, n & 255])
    return head + key + body


def read_frame(s, buf):
    """Reads one whole server frame after the bytes in buf; returns the rest."""
    while True:
        if len(buf) >= 2:
            n, h = buf[1] & 127, 2
            if n == 126 and len(buf) >= 4:
                n, h = buf[2] << 8 | buf[3], 4
            if n < 126 or h == 4:
                if len(buf) >= h + n:
                    return buf[h + n:]
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("connection closed early")
        buf += chunk


def census(pid, path):
    """Asks the preloaded census for a dump; returns {(site, size, usable): count}."""
    before = os.path.getsize(path) if os.path.exists(path) else 0
    os.kill(pid, signal.SIGUSR2)
    text = ""
    for _ in range(400):
        time.sleep(0.05)
        if not os.path.exists(path):
            continue
        with open(path) as f:
            f.seek(before)
            text = f.read()
        if text.endswith("census end\n"):
            break
    else:
        raise SystemExit("no census from %d" % pid)
    got = {}
    for line in text.splitlines():
        w = line.split()
        if len(w) == 5:
            got[(w[1], int(w[2]), int(w[3]))] = int(w[4])
    return got


def census_report(exe, base, now, n):
    sites = sorted({k[0] for k in now if k[0] != "?"})
    names = {}
    if sites:
        out = subprocess.run(["addr2line", "-f", "-s", "-e", exe] + sites, capture_output=True, text=True).stdout
        lines = out.splitlines()
        for i, s in enumerate(sites):
            if 2 * i + 1 < len(lines):
                names[s] = "%s(%s)" % (lines[2 * i], lines[2 * i + 1])
    rows = []
    for k, c in now.items():
        d = c - base.get(k, 0)
        if d * 10 >= n:  # held by at least one connection in ten
            rows.append((k, d))
    blocks = sum(d for _, d in rows)
    usable = sum(k[2] * d for k, d in rows)
    print("census per_conn blocks=%.2f usable_bytes=%.0f" % (blocks / n, usable / n))
    for k, d in sorted(rows, key=lambda r: -r[0][2] * r[1]):
        print("census %s %d %d %.2f" % (names.get(k[0], k[0]), k[1], k[2], d / n))


def main():
    args = sys.argv[1:]
    with_census = "--census" in args
    args = [a for a in args if a != "--census"]
    build = args[0]
    n = min(int(args[1]) if len(args) > 1 else 5000, 19900)
    mode = args[2] if len(args) > 2 else "none"
    flags = {"none": [], "nct": ["--deflate-no-context-takeover"], "takeover": ["--deflate"]}[mode]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    echo = os.path.join(build, "compiler-abi", "examples", "snow-echo")
    env = dict(os.environ)
    census_path = None
    if with_census:
        census_path = "/tmp/alloc-census.idle.%d" % os.getpid()
        env["LD_PRELOAD"] = os.path.abspath(os.path.join(build, "bench", "ws", "libsnow-alloc-census.so"))
        env["ALLOC_CENSUS_OUT"] = census_path
    srv = subprocess.Popen([echo, "--host", "127.0.0.1", "--port", "0", "--ping-interval", "0", *flags],
                           stdout=subprocess.PIPE, text=True, env=env)
    try:
        port = int(re.search(r"listening on (\d+)", srv.stdout.readline()).group(1))
        time.sleep(0.2)
        base = rss_kib(srv.pid)
        base_census = census(srv.pid, census_path) if with_census else None
        socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=20)
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall(("GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Version: 13\r\n%s\r\n" %
                       (key, "Sec-WebSocket-Extensions: permessage-deflate\r\n" if mode != "none" else "")).encode())
            socks.append(s)
        msg = b"0123456789abcdef"
        doc = ('{"user":"alice","room":"lobby","text":"%s","tags":["a","b"],"seq":1}' % ("hello " * 22)).encode()
        rest = {}
        for s in socks:
            head = read_until(s, b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                raise SystemExit("upgrade refused: %r" % head[:40])
            rest[s] = head.split(b"\r\n\r\n", 1)[1]
            if mode == "none":
                s.sendall(masked_text(msg))
            else:
                if b"permessage-deflate" not in head:
                    raise SystemExit("permessage-deflate not agreed: %r" % head)
                z = zlib.compressobj(6, zlib.DEFLATED, -15)
                s.sendall(masked_frame(0xC1, (z.compress(doc) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]))
        for s in socks:
            if mode == "none":
                read_until(s, msg)
            else:
                read_frame(s, rest[s])
        time.sleep(1.0)
        grown = rss_kib(srv.pid) - base
        t0, c0 = time.time(), cpu_ticks(srv.pid)
        time.sleep(2.0)
        t1, c1 = time.time(), cpu_ticks(srv.pid)
        cpu = (c1 - c0) / os.sysconf("SC_CLK_TCK") / (t1 - t0) * 100
        print("bench ws_idle conns=%d rss_per_conn_bytes=%.0f cpu_pct=%.1f%s" %
              (n, grown * 1024 / n, cpu, "" if mode == "none" else " deflate=" + mode))
        if with_census:
            census_report(echo, base_census, census(srv.pid, census_path), n)
        for s in socks:
            s.close()
    finally:
        srv.terminate()
        srv.wait(timeout=10)
        if census_path and os.path.exists(census_path):
            os.unlink(census_path)


if __name__ == "__main__":
    main()
