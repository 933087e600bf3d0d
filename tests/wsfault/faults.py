"""What the fault cases share (run.py, abuse.py): the results they report
to, a case's failure report and clean-up, polling with a deadline, a
server's connection and thread counts, a client with a 4 KiB receive buffer
and what it was sent before a cut, a server that cuts off slow clients, and
RSS bounds that allow for ASan."""
import base64
import contextlib
import os
import socket
import struct
import time

from runner import Results
from wsclient import OP_BINARY, OP_CLOSE, Closed, Conn, Fail, Server, describe, is_sanitized, quarantine_env

results = Results()
report = results.report
stop_checked = results.stop_checked


@contextlib.contextmanager
def guarded(name, srv=None, what=None, conns=(), kill=False):
    """The body of case `name`: a Fail, OSError or Closed out of it is that
    case's failure. Whatever happened, the connections in conns (read at
    the end, so the body may add to it) are closed, then srv is killed
    (kill) or stopped with its exit status checked as case `what`."""
    try:
        yield
    except (Fail, OSError, Closed) as e:
        report(name, "%s: %s" % (type(e).__name__, e))
    finally:
        for c in conns:
            c.close()
        if srv is not None:
            if kill:
                srv.kill()
            else:
                stop_checked(srv, what)


def wait_for(pred, timeout, step=0.02):
    """Polls pred() until it is true or timeout passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def connections(srv):
    return srv.stats()["connections"]


def threads(srv):
    return srv.proc_status("Threads")


def small_buffer_conn(port, path, timeout):
    """A client whose socket takes 4 KiB at most (set before connecting, so
    the advertised window stays small); the handshake is read byte by byte
    so that nothing after the 101 is taken off the socket."""
    c = Conn(port, path, connect=False)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    c.sock = s
    s.sendall(c.request_bytes(base64.b64encode(os.urandom(16)).decode()))
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise Fail("%s handshake on a small-buffer socket: %r" % (path, head[:40]))
    return c


def read_until_cut(c, who, timeout):
    """What a client cut off at its outbound limit had been sent: binary
    messages numbered by their first 8 bytes, whole, in order and once each,
    then a close 1008 or the end of TCP. Returns (the numbers, how it ended)."""
    c.sock.settimeout(timeout)
    seqs, ended = [], None
    try:
        while True:
            fin, op, data = c.recv_frame(timeout=timeout)
            if op == OP_BINARY:
                seqs.append(struct.unpack("!Q", data[:8])[0])
            elif op == OP_CLOSE:
                ended = describe(op, data)
                if data[:2] != struct.pack("!H", 1008):
                    raise Fail("%s: expected close 1008 (or a TCP close), got %s" % (who, ended))
                break
    except Closed as e:
        ended = "TCP %s" % e.how
    except TimeoutError:
        raise Fail("%s: neither closed nor sending after the cut" % who)
    if seqs != sorted(seqs) or len(set(seqs)) != len(seqs):
        raise Fail("%s: messages out of order or duplicated" % who)
    return seqs, ended


def rss_bound_kib(exe, mib, asan_mib=16):
    """A bound on a server's RSS growth: mib, plus asan_mib for the
    quarantine when exe is a sanitized build."""
    return (mib + (asan_mib if is_sanitized(exe) else 0)) * 1024


def cutoff_server(exe, limit, wtimeout):
    """A started server that cuts off a client past `limit` outbound bytes
    or `wtimeout` seconds of a stalled write."""
    return Server(exe, "--outbound-limit", str(limit), "--write-timeout", str(wtimeout),
                  env=quarantine_env(exe)).start()
