#!/usr/bin/env python3
"""Memory of idle kept-alive HTTP connections.

    bench/http/idle_conns.py BUILD_DIR [N]

Starts snow-hello on 127.0.0.1 (port 0), opens N connections (default
5,000; at most 19,000 under the 20,000 open-file limit), sends one request
on each and reads the answer, waits half a second, and prints

    bench http_idle conns=N rss_per_conn_kib=X

where X is the growth of the server's resident memory (VmRSS) divided by N.
The server is stopped at the end."""
import os
import re
import resource
import socket
import subprocess
import sys
import time


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS for %d" % pid)


def main():
    build = sys.argv[1]
    n = min(int(sys.argv[2]) if len(sys.argv) > 2 else 5000, 19000)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    hello = os.path.join(build, "compiler-abi", "examples", "snow-hello")
    srv = subprocess.Popen([hello, "--host", "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r"listening on (\d+)", srv.stdout.readline()).group(1))
        time.sleep(0.2)
        base = rss_kib(srv.pid)
        socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            socks.append(s)
        for s in socks:
            got = b""
            while not got.endswith(b"Hello, World!"):
                chunk = s.recv(4096)
                if not chunk:
                    raise SystemExit("connection closed early")
                got += chunk
        time.sleep(0.5)
        grown = rss_kib(srv.pid) - base
        print("bench http_idle conns=%d rss_per_conn_kib=%.2f" % (n, grown / n))
        for s in socks:
            s.close()
    finally:
        srv.terminate()
        srv.wait(timeout=10)


if __name__ == "__main__":
    main()
