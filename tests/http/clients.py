#!/usr/bin/env python3
"""Real clients against snow-hello on 127.0.0.1 (port 0): curl and Python's
http.client, plain and TLS (RSA and EC certificates generated here with the
openssl CLI, signed by a throw-away CA), keep-alive reuse, pipelining,
chunked uploads, and a clean exit on SIGINT / SIGTERM.

usage: clients.py path/to/snow-hello
"""
import hashlib
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HELLO = sys.argv[1]
FAILURES = []
TIMEOUT = 30


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, timeout=TIMEOUT, **kw)


class Server:
    def __init__(self, *extra):
        self.proc = subprocess.Popen([HELLO, "--host", "127.0.0.1", "--port", "0", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError("snow-hello did not start: %r %s" % (line, self.proc.stderr.read()))
        self.port = int(line.split()[2])

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def make_certs(d):
    def ossl(*args):
        r = run(["openssl", *args], cwd=d)
        if r.returncode != 0:
            raise RuntimeError("openssl %s: %s" % (" ".join(args), r.stderr.decode()))

    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    # RSA: CA and server.
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "2", "-subj", "/CN=snow test CA")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "rsa.key", "-out", "rsa.csr", "-subj", "/CN=127.0.0.1")
    ossl("x509", "-req", "-in", "rsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "rsa.pem", "-days", "2", "-extfile", "san.ext")
    # EC: its own EC CA, server key in SEC1 form ("EC PRIVATE KEY").
    ossl("ecparam", "-name", "prime256v1", "-genkey", "-out", "ecca.key")
    ossl("req", "-x509", "-new", "-key", "ecca.key", "-out", "ecca.pem", "-days", "2", "-subj", "/CN=snow EC CA")
    ossl("ecparam", "-name", "prime256v1", "-genkey", "-out", "ec.key")
    ossl("req", "-new", "-key", "ec.key", "-out", "ec.csr", "-subj", "/CN=127.0.0.1")
    ossl("x509", "-req", "-in", "ec.csr", "-CA", "ecca.pem", "-CAkey", "ecca.key", "-CAcreateserial",
         "-out", "ec.pem", "-days", "2", "-extfile", "san.ext")


def curl(*args):
    r = run(["curl", "-sS", "--max-time", "20", *args])
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def plain_tests(d):
    s = Server()
    base = "http://127.0.0.1:%d" % s.port
    rc, out, _ = curl("-i", base + "/")
    check(rc == 0 and out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\nHello, World!"),
          "curl GET / -> 200 Hello, World!")
    check(b"Content-Type: text/plain\r\n" in out and b"Content-Length: 13\r\n" in out and b"Server: snow-rt" in out,
          "curl GET / headers")
    rc, out, _ = curl(base + "/users/42")
    check(rc == 0 and out == b"user 42", "curl GET /users/42 echoes the param")
    rc, out, _ = curl(base + "/users/a%20b")
    check(out == b"user a b", "param is percent-decoded")
    rc, out, _ = curl("-o", "/dev/null", "-w", "%{http_code}", base + "/users/%zz")
    check(out == b"400", "bad percent escape -> 400")
    rc, out, _ = curl("-o", "/dev/null", "-w", "%{http_code}", base + "/nope")
    check(out == b"404", "unknown path -> 404")
    rc, out, _ = curl("-d", "posted body", "-H", "Content-Type: text/x-test", "-i", base + "/echo")
    check(out.endswith(b"\r\n\r\nposted body") and b"Content-Type: text/x-test" in out, "curl POST /echo")
    blob = os.urandom(3 * 1024 * 1024)
    path = os.path.join(d, "blob")
    with open(path, "wb") as f:
        f.write(blob)
    rc, out, _ = curl("--data-binary", "@" + path, base + "/echo")
    check(rc == 0 and hashlib.sha256(out).digest() == hashlib.sha256(blob).digest(), "curl POST 3 MiB echoed")
    rc, out, _ = curl("-H", "Transfer-Encoding: chunked", "--data-binary", "@" + path, base + "/echo")
    check(rc == 0 and out == blob, "curl chunked upload of 3 MiB echoed")
    rc, out, err = curl("-v", base + "/", base + "/users/7")
    check(out == b"Hello, World!user 7" and "Re-using existing connection" in err, "curl reuses the connection")
    rc, out, _ = curl("-I", base + "/")
    check(out.startswith(b"HTTP/1.1 200") and b"Content-Length: 13" in out, "curl HEAD")

    # http.client: one connection, several requests.
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=TIMEOUT)
    socks = set()
    ok = True
    for i in range(20):
        c.request("POST", "/echo", body=("msg %d" % i).encode(), headers={"Content-Type": "text/plain"})
        r = c.getresponse()
        body = r.read()
        socks.add(id(c.sock))
        ok = ok and r.status == 200 and body == ("msg %d" % i).encode()
    check(ok and len(socks) == 1, "http.client: 20 requests on one kept-alive connection")
    c.request("GET", "/users/x")
    r = c.getresponse()
    check(r.read() == b"user x" and r.getheader("Content-Type").startswith("text/plain"), "http.client GET")
    c.close()

    # Pipelining on a raw socket: several requests in one write.
    sk = socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT)
    sk.sendall(b"GET /users/1 HTTP/1.1\r\nHost: x\r\n\r\n"
               b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
               b"GET /users/3 HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        b = sk.recv(65536)
        if not b:
            break
        data += b
    sk.close()
    bodies = [part.split(b"\r\n\r\n", 1)[1][:13] for part in data.split(b"HTTP/1.1 200 OK")[1:]]
    check(data.count(b"HTTP/1.1 200 OK") == 4 and data.endswith(b"Hello, World!")
          and data.index(b"user 1") < data.index(b"abc") < data.index(b"user 3") < data.index(b"Hello"),
          "pipelined requests answered in order (%d bodies)" % len(bodies))

    code = s.stop(signal.SIGINT)
    check(code == 0, "SIGINT stops snow-hello with exit 0 (got %r)" % code)


def tls_tests(d, cert, key, ca, label):
    s = Server("--tls-cert", os.path.join(d, cert), "--tls-key", os.path.join(d, key))
    base = "https://127.0.0.1:%d" % s.port
    cafile = os.path.join(d, ca)
    rc, out, err = curl("-v", "--cacert", cafile, base + "/", base + "/users/9")
    check(rc == 0 and out == b"Hello, World!user 9", "%s: curl over TLS with the test CA" % label)
    check("TLSv1.2" in err and "ECDHE" in err and "Re-using existing connection" in err,
          "%s: TLS 1.2, ECDHE suite, connection reused" % label)
    rc, out, _ = curl("-o", "/dev/null", base + "/")
    check(rc != 0, "%s: curl without the CA refuses the certificate" % label)
    ctx = ssl.create_default_context(cafile=cafile)
    c = http.client.HTTPSConnection("127.0.0.1", s.port, context=ctx, timeout=TIMEOUT)
    blob = os.urandom(1024 * 1024)
    ok = True
    for i in range(3):
        c.request("POST", "/echo", body=blob)
        r = c.getresponse()
        ok = ok and r.status == 200 and r.read() == blob
    check(ok, "%s: http.client 3 x 1 MiB echoes over one TLS connection" % label)
    c.close()
    # Many handshakes at once: none blocks the others.
    procs = [subprocess.Popen(["curl", "-sS", "--max-time", "20", "--cacert", cafile, base + "/users/%d" % i],
                              stdout=subprocess.PIPE) for i in range(20)]
    outs = [p.communicate(timeout=TIMEOUT)[0] for p in procs]
    check(all(o == b"user %d" % i for i, o in enumerate(outs)), "%s: 20 concurrent TLS clients" % label)
    code = s.stop(signal.SIGTERM)
    check(code == 0, "%s: SIGTERM stops snow-hello with exit 0 (got %r)" % (label, code))


def main():
    with tempfile.TemporaryDirectory(prefix="snow-http-") as d:
        make_certs(d)
        plain_tests(d)
        tls_tests(d, "rsa.pem", "rsa.key", "ca.pem", "RSA")
        tls_tests(d, "ec.pem", "ec.key", "ecca.pem", "EC")
    print("%d failed" % len(FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
