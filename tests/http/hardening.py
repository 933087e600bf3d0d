#!/usr/bin/env python3
"""The server's defences, black-box over 127.0.0.1 against probe-server, plain
and TLS (a certificate made here with the openssl CLI):

  - TLS renegotiation is refused (openssl s_client asks for it);
  - the server's cipher suite order wins over the client's: AES-GCM when the
    CPU has AES instructions, ChaCha20-Poly1305 when it has not, whichever
    the client lists first;
  - the write timeout is "no progress": a slow but steady reader gets the
    whole response, a stalled one is cut off;
  - built-in answers (404, 405) come from the head alone, without reading
    the announced body;
  - the overall request deadline ends a body that trickles in forever;
  - the buffering budget answers 503 instead of holding the body;
  - a bad request-line (HTTP/0.9, garbage) gets 400 at once;
  - an empty Host gets 400;
  - error answers to HEAD carry no body.

No assertion is on time: every case waits for an event (a status, the end of
the stream), and the timeouts involved are set far apart so that load on the
machine cannot change the outcome.

usage: hardening.py path/to/probe-server
"""
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time

PROBE = sys.argv[1]
FAILURES = []
TIMEOUT = 30


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


class Server:
    def __init__(self, tls, *opts):
        args = [PROBE]
        if tls:
            args += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        args += [str(o) for o in opts]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError("probe-server did not start: %r" % line)
        self.port = int(line.split()[2])
        self.tls = tls

    def connect(self, rcvbuf=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # Set before connecting, so the advertised window stays small.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(TIMEOUT)
        s.connect(("127.0.0.1", self.port))
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s)
        return s

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def recv_all(s, limit=None):
    """Reads until end of stream (or a reset); returns the bytes."""
    data = b""
    while limit is None or len(data) < limit:
        try:
            b = s.recv(65536)
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            break
        if not b:
            break
        data += b
    return data


def read_head(s, buf=b""):
    """Reads one response head; returns (status, head, rest)."""
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        if not b:
            return None, buf, b""
        buf += b
    head, rest = buf.split(b"\r\n\r\n", 1)
    return int(head.split(b" ")[1]), head, rest


def header(head, name):
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


def answer_without_waiting(c, req):
    """Sends req and reads the answer's head, giving up after 10 s, well
    before the server's own (60 s) timeouts would answer. (status, head)."""
    c.settimeout(10)
    c.sendall(req)
    try:
        status, head, _ = read_head(c)
    except socket.timeout:
        status, head = None, b""
    c.settimeout(TIMEOUT)
    return status, head


def renegotiation(tls):
    s = Server(tls)
    # "R" asks s_client for a renegotiation once the first handshake is done.
    feed = subprocess.Popen(["sh", "-c", "sleep 1; for i in 1 2 3 4 5; do echo R; sleep .2; done; sleep 1"],
                            stdout=subprocess.PIPE)
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % s.port, "-tls1_2", "-msg"],
                       stdin=feed.stdout, capture_output=True, timeout=TIMEOUT)
    feed.wait()
    out = (r.stdout + r.stderr).decode(errors="replace")
    hellos = sum(1 for line in out.splitlines() if line.rstrip().endswith("ServerHello"))
    check("RENEGOTIATING" in out, "TLS: s_client asked for a renegotiation")
    check(hellos == 1, "TLS: renegotiation refused, one ServerHello only (got %d)" % hellos)
    check("no_renegotiation" in out, "TLS: answered with a no_renegotiation alert")
    s.stop()


def cpu_has_aes():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return "aes" in line.split(":", 1)[1].split()
    return False


def suite_order(tls):
    s = Server(tls)
    want = "AES128-GCM" if cpu_has_aes() else "CHACHA20"
    for offer in ("ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256",
                  "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305"):
        c = socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(offer)
        c = ctx.wrap_socket(c)
        got = c.cipher()[0]
        c.close()
        check(want in got, "TLS: offered %s first, the server chose %s (want %s)" % (offer.split(":")[0], got, want))
    s.stop()


def slow_and_stalled_readers(tls, label):
    size = 8 << 20
    # 1 s without progress closes; the steady reader never pauses near that
    # long, while reading what does not fit in the kernel's socket buffers
    # (about 4 MiB here) takes several times longer.
    s = Server(tls, "--write-timeout-ms", 1000)
    c = s.connect(rcvbuf=32768)
    c.sendall(b"GET /big?n=%d HTTP/1.1\r\nHost: t\r\n\r\n" % size)
    status, head, rest = read_head(c)
    got = len(rest)
    t0 = time.monotonic()
    while got < size:
        b = c.recv(32768)
        if not b:
            break
        got += len(b)
        time.sleep(0.02)
    took = time.monotonic() - t0
    check(status == 200 and got == size,
          "%s: a slow but steady reader gets all %d bytes (got %d in %.1f s)" % (label, size, got, took))
    c.close()
    # Stalled: reads nothing for 3 s (three write timeouts), then drains.
    c = s.connect(rcvbuf=32768)
    c.sendall(b"GET /big?n=%d HTTP/1.1\r\nHost: t\r\n\r\n" % size)
    time.sleep(3)
    data = recv_all(c)
    check(0 < len(data) < size, "%s: a stalled reader is cut off (%d of %d bytes)" % (label, len(data), size))
    c.close()
    s.stop()


def no_body_for_builtin_answers(tls, label):
    # A body timeout far longer than the client waits: reading the body
    # first would leave the client without an answer.
    s = Server(tls, "--body-timeout-ms", 60000, "--request-timeout-ms", 120000)
    for req, want in ((b"POST /nope HTTP/1.1\r\nHost: t\r\nContent-Length: 8000000\r\n\r\n", 404),
                      (b"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 8000000\r\n\r\n", 405),
                      (b"POST /nope HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", 404)):
        c = s.connect()
        status, head = answer_without_waiting(c, req)
        check(status == want and header(head, b"connection") == b"close",
              "%s: %s answered %r from the head, body unread, then closed" % (label, req.split(b"\r\n")[0], status))
        c.close()
    s.stop()


def request_deadline(tls, label):
    # Each byte comes well within the body timeout, but the whole request
    # cannot finish within the request timeout.
    s = Server(tls, "--body-timeout-ms", 5000, "--request-timeout-ms", 1500)
    c = s.connect()
    c.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 400\r\n\r\n")
    status = None
    sent = 0
    c.settimeout(0.1)
    buf = b""
    while sent < 400:
        c.sendall(b"x")
        sent += 1
        try:
            b = c.recv(4096)
            if not b:
                break
            buf += b
            if b"\r\n\r\n" in buf:
                break
        except (socket.timeout, ssl.SSLWantReadError):
            pass
    c.settimeout(TIMEOUT)
    status, _, _ = read_head(c, buf)
    check(status == 408 and sent < 400, "%s: a trickled body ends at the request deadline with 408 (%d of 400 bytes sent)"
          % (label, sent))
    c.close()
    s.stop()


def budget(tls, label):
    s = Server(tls, "--max-buffered", 300000)
    c = s.connect()
    # 1 MiB announced, 400 kB sent: past the budget, and little enough that
    # the server's lingering close takes all of it (so no reset can destroy
    # the answer before it is read).
    c.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (1 << 20))
    c.sendall(os.urandom(400000))
    status, head, _ = read_head(c)
    check(status == 503, "%s: a body past the buffering budget gets 503 (got %r)" % (label, status))
    # The lingering close gives the connection's buffers back before it
    # shuts the sending side: once the end of the stream is here, the
    # budget is free again (without this wait the next request could come
    # first on a loaded machine).
    try:
        while c.recv(65536):
            pass
    except (ssl.SSLError, OSError):
        pass
    c.close()
    # The memory came back: a body within the budget is served.
    c = s.connect()
    small = os.urandom(100000)
    c.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(small) + small)
    status, head, rest = read_head(c)
    while len(rest) < len(small):
        b = c.recv(65536)
        if not b:
            break
        rest += b
    check(status == 200 and rest == small, "%s: after it, a body within the budget is echoed" % label)
    c.close()
    s.stop()


def early_verdicts(tls, label):
    # A header timeout far longer than the client waits: only an answer
    # given when the request-line arrives can be read.
    s = Server(tls, "--header-timeout-ms", 60000)
    for req in (b"GET /\r\n", b"garbage\r\n"):
        c = s.connect()
        status, _ = answer_without_waiting(c, req)
        check(status == 400, "%s: %r gets 400 as soon as its line ends (got %r)" % (label, req, status))
        c.close()
    c = s.connect()
    c.sendall(b"GET / HTTP/1.1\r\nHost:\r\n\r\n")
    status, _, _ = read_head(c)
    check(status == 400, "%s: an empty Host gets 400 (got %r)" % (label, status))
    c.close()
    for req, want in ((b"HEAD / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n", 400),
                      (b"HEAD /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999\r\n\r\n", 413)):
        c = s.connect()
        c.sendall(req)
        status, head, rest = read_head(c)
        rest += recv_all(c)
        check(status == want and rest == b"" and header(head, b"content-length") is not None,
              "%s: HEAD error %r carries no body (%d bytes after the head)" % (label, status, len(rest)))
        c.close()
    s.stop()


def main():
    with tempfile.TemporaryDirectory(prefix="snow-hardening-") as d:
        key, cert = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                            "-days", "2", "-subj", "/CN=127.0.0.1"], capture_output=True, timeout=TIMEOUT)
        if r.returncode != 0:
            print("openssl: %s" % r.stderr.decode())
            return 1
        renegotiation((cert, key))
        suite_order((cert, key))
        for tls, label in ((None, "plain"), ((cert, key), "TLS")):
            slow_and_stalled_readers(tls, label)
            no_body_for_builtin_answers(tls, label)
            request_deadline(tls, label)
            budget(tls, label)
            early_verdicts(tls, label)
    print("%d failed" % len(FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
