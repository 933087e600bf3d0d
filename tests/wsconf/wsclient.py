"""Raw-socket WebSocket client and snow-echo launcher for the black-box suites.

Python 3 standard library only. The client writes exactly the bytes a test
asks for (any opcode, reserved bits, mask or no mask, any length field),
split into writes of any size, and reads the server's frames strictly: a
server frame must be unmasked, carry no reserved bits and use a minimal
length encoding, and a Close payload is checked against RFC 6455 7.4.

Shared by tests/wsconf, tests/wsinterop and tests/wsfault, as runner.py is.
"""
import base64
import hashlib
import json
import os
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA


class Fail(Exception):
    """A case's expectation did not hold; the message says observed vs expected."""


class Closed(Exception):
    """The server ended the TCP connection (EOF or reset)."""

    def __init__(self, how):
        super().__init__(how)
        self.how = how


# ---------------------------------------------------------------------------
# the server under test

class Server:
    """Runs snow-echo (or any program with its interface) on 127.0.0.1:0."""

    def __init__(self, exe, *args, tls=None, env=None, ready_timeout=30.0):
        self.exe = exe
        self.args = list(args)
        self.tls = tls  # (cert, key) or None
        self.env = env
        self.ready_timeout = ready_timeout
        self.proc = None
        self.port = None
        self.log = tempfile.NamedTemporaryFile(prefix="snow-echo-", suffix=".log", delete=False)

    def start(self):
        cmd = [self.exe, "--host", "127.0.0.1", "--port", "0"] + self.args
        if self.tls:
            cmd += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log,
                                     stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + self.ready_timeout
        line = b""
        fd = self.proc.stdout.fileno()
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                ch = os.read(fd, 1)
                if not ch:
                    break
                if ch == b"\n":
                    text = line.decode(errors="replace").strip()
                    if text.startswith("listening on "):
                        self.port = int(text.split()[-1])
                        return self
                    line = b""
                else:
                    line += ch
            elif self.proc.poll() is not None:
                break
        self.kill()
        raise RuntimeError("server did not print 'listening on PORT' (cmd: %s)\n%s"
                           % (" ".join(cmd), self.stderr_tail()))

    def stderr_tail(self, n=4000):
        try:
            with open(self.log.name, "rb") as f:
                data = f.read()
            return data[-n:].decode(errors="replace")
        except OSError:
            return ""

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signals the server and returns its exit status (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def proc_status(self, field):
        return proc_status(self.proc.pid, field)

    def rss_kib(self):
        return self.proc_status("VmRSS")

    def stats(self):
        status, _, body = http_get(self.port, "/stats")
        if status != 200:
            raise Fail("GET /stats: status %d" % status)
        return json.loads(body)


def proc_status(pid, field):
    """A number from /proc/PID/status: VmRSS, VmHWM (KiB), Threads."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError("no %s in /proc/%d/status" % (field, pid))


def is_sanitized(exe):
    """True when exe carries AddressSanitizer (its allocator keeps freed memory)."""
    with open(exe, "rb") as f:
        return b"__asan_init" in f.read()


def quarantine_env(exe):
    """The environment for a server whose memory a case measures. ASan keeps
    freed memory in a quarantine (256 MiB by default); a 16 MiB one keeps RSS
    meaningful, and the cases add it to their memory tolerances. None when
    exe is not sanitized."""
    if not is_sanitized(exe):
        return None
    return {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
            ":quarantine_size_mb=16:thread_local_quarantine_size_kb=64"}


# ---------------------------------------------------------------------------
# plain HTTP

def _read_head(sock, deadline):
    buf = b""
    while b"\r\n\r\n" not in buf:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise Fail("no complete HTTP response head in time (got %r)" % buf[:200])
        if not chunk:
            raise Closed("EOF in HTTP head after %r" % buf[:200])
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise Fail("bad status line %r" % lines[0])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    return int(parts[1]), headers, rest


def http_get(port, path, timeout=5.0, extra=b""):
    """One GET with Connection: close; returns (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra +
                  b"Connection: close\r\n\r\n")
        deadline = time.monotonic() + timeout
        status, headers, body = _read_head(s, deadline)
        chunked = "chunked" in headers.get("transfer-encoding", [""])[0].lower()
        n = int(headers.get("content-length", ["-1"])[0])
        while chunked or n < 0 or len(body) < n:
            if chunked and _chunked_done(body):
                return status, headers, _dechunk(body)
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                raise Fail("HTTP body not complete in time")
            if not chunk:
                if chunked:
                    raise Fail("EOF inside a chunked body")
                break
            body += chunk
        return status, headers, body


def _chunked_done(body):
    try:
        _dechunk(body)
        return True
    except ValueError:
        return False


def _dechunk(body):
    """Decodes a complete chunked body; ValueError while it is incomplete."""
    out, i = b"", 0
    while True:
        j = body.find(b"\r\n", i)
        if j < 0:
            raise ValueError("incomplete")
        size = int(body[i:j].split(b";")[0], 16)
        if size == 0:
            if body.find(b"\r\n\r\n", j) < 0:
                raise ValueError("incomplete")
            return out
        if len(body) < j + 2 + size + 2:
            raise ValueError("incomplete")
        out += body[j + 2:j + 2 + size]
        i = j + 2 + size + 2


# ---------------------------------------------------------------------------
# frames

def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, key=None, length=None):
    """Client frame bytes. rsv is the 3-bit RSV field (4 = RSV1, 2 = RSV2, 1 = RSV3).
    length overrides the length field (to declare more than is sent)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    if key is None:
        key = os.urandom(4)
    return head + key + xor_mask(payload, key)


def xor_mask(data, key):
    if not data:
        return b""
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    return struct.pack("!H", code) + reason


def valid_close_code(code):
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999


def utf8_valid(b):
    try:
        b.decode("utf-8", errors="strict")
        return True
    except UnicodeDecodeError:
        return False


def chunks_of(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


def split_small(data):
    """The 'split' write pattern: single bytes through the headers and the
    first payload bytes, then 7-byte pieces, then 4 KiB pieces for big input."""
    out = [data[i:i + 1] for i in range(min(len(data), 32))]
    i = 32
    while i < len(data) and i < 1024:
        out.append(data[i:i + 7])
        i += 7
    while i < len(data):
        out.append(data[i:i + 4096])
        i += 4096
    return out


# When set (a client ssl.SSLContext), every Conn opened without its own
# context speaks TLS: one switch runs a whole suite over wss.
DEFAULT_TLS = None


def make_certs(d):
    """A throwaway CA and a server certificate for localhost and 127.0.0.1
    (EC P-256), made with openssl in folder d: (ca.pem, server.pem, server.key)."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=snow-rt test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return (os.path.join(d, "ca.pem"), os.path.join(d, "server.pem"), os.path.join(d, "server.key"))


class Conn:
    """One WebSocket connection over a raw TCP (or TLS) socket."""

    def __init__(self, port, path="/", timeout=5.0, headers=(), tls_ctx=None, connect=True):
        self.port = port
        self.path = path
        self.timeout = timeout
        self.buf = b""
        self.sock = None
        self.response_headers = {}
        # RSV bits the server may set (0x40: RSV1 once permessage-deflate
        # is agreed), and those of the last frame and message received.
        self.rsv_allowed = 0
        self.frame_rsv = 0
        self.msg_rsv = 0
        if connect:
            self.open(headers, tls_ctx)

    # -- opening -----------------------------------------------------------
    def tcp(self, tls_ctx=None):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls_ctx is None:
            tls_ctx = DEFAULT_TLS
        if tls_ctx is not None:
            s = tls_ctx.wrap_socket(s, server_hostname="localhost")
        self.sock = s
        return s

    def request_bytes(self, key, headers=()):
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               % (self.path, self.port, key)).encode()
        for h in headers:
            req += h.encode() + b"\r\n"
        return req + b"\r\n"

    def open(self, headers=(), tls_ctx=None, first=b""):
        """Handshake; first is sent in the same write as the request."""
        self.tcp(tls_ctx)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(self.request_bytes(key, headers) + first)
        status, hdrs, rest = _read_head(self.sock, time.monotonic() + self.timeout)
        self.response_headers = hdrs
        if status != 101:
            raise Fail("handshake: status %d, expected 101" % status)
        want = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        got = hdrs.get("sec-websocket-accept", [""])[0]
        if got != want:
            raise Fail("handshake: Sec-WebSocket-Accept %r, expected %r" % (got, want))
        if hdrs.get("upgrade", [""])[0].lower() != "websocket":
            raise Fail("handshake: Upgrade header %r" % hdrs.get("upgrade"))
        if "upgrade" not in hdrs.get("connection", [""])[0].lower():
            raise Fail("handshake: Connection header %r" % hdrs.get("connection"))
        self.buf = rest
        return self

    # -- writing -----------------------------------------------------------
    def write(self, data, pieces=None, pause=0.0):
        """Writes data whole, or as the given list of pieces (pause seconds between)."""
        try:
            if pieces is None:
                self.sock.sendall(data)
                return
            for i, p in enumerate(pieces):
                self.sock.sendall(p)
                if pause and i + 1 < len(pieces):
                    time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Closed("write failed: %s" % e)

    def send(self, opcode, payload=b"", **kw):
        self.write(frame(opcode, payload, **kw))

    def try_write(self, data):
        """Writes and ignores a connection the server already ended."""
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    # -- reading -----------------------------------------------------------
    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError()
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            raise TimeoutError()
        except ConnectionResetError:
            raise Closed("reset")
        except ssl.SSLError as e:
            raise Closed("tls: %s" % e)
        if not chunk:
            raise Closed("EOF")
        self.buf += chunk

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)

    def recv_frame(self, timeout=None):
        """Next server frame as (fin, opcode, payload). Raises TimeoutError,
        Closed, or Fail when the frame breaks the server-side rules."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            raise Fail("server frame is masked")
        if b0 & 0x70 & ~self.rsv_allowed:
            raise Fail("server frame has reserved bits 0x%x" % (b0 & 0x70))
        if b0 & 0x70 and (b0 & 0x0F) >= 8:
            raise Fail("server control frame has reserved bits 0x%x" % (b0 & 0x70))
        self.frame_rsv = b0 & 0x70
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
            if n < 126:
                raise Fail("server frame: 16-bit length %d is not minimal" % n)
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
            if n < 65536 or n >> 63:
                raise Fail("server frame: 64-bit length %d is not minimal/valid" % n)
        opcode = b0 & 0x0F
        fin = bool(b0 & 0x80)
        if opcode >= 8 and (not fin or n > 125):
            raise Fail("server control frame opcode %d fin=%s len=%d" % (opcode, fin, n))
        if opcode not in (0, 1, 2, 8, 9, 10):
            raise Fail("server frame with reserved opcode %d" % opcode)
        self._need(off + n, deadline)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return fin, opcode, payload

    def recv_message(self, timeout=None, answer_pings=True):
        """Next data message or control frame, reassembling fragments:
        returns (opcode, payload). Pings are answered unless told not to
        (then they are returned like other control frames)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        parts, mop = [], None
        while True:
            fin, op, data = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if op >= 8:
                if op == OP_PING and answer_pings and op != OP_CLOSE:
                    self.try_write(frame(OP_PONG, data))
                    continue
                if mop is not None and op == OP_CLOSE:
                    raise Fail("server sent Close inside its own fragmented message")
                return op, data
            if mop is None:
                if op == OP_CONT:
                    raise Fail("server sent a continuation frame with no message started")
                mop = op
                self.msg_rsv = self.frame_rsv
            elif op != OP_CONT:
                raise Fail("server started a new message inside a fragmented one")
            elif self.frame_rsv:
                raise Fail("server set reserved bits 0x%x on a continuation frame" % self.frame_rsv)
            parts.append(data)
            if fin:
                msg = b"".join(parts)
                # A compressed message's text is checked once inflated.
                if mop == OP_TEXT and not self.msg_rsv and not utf8_valid(msg):
                    raise Fail("server sent invalid UTF-8 in a text message")
                return mop, msg

    def wait_eof(self, timeout=None):
        """True when the server ends TCP (EOF or reset) within timeout; data
        the server sends meanwhile (after its Close) is a failure."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        extra = self.buf
        self.buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False if not extra else extra
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, ssl.SSLError):
                chunk = b""
            if not chunk:
                if extra:
                    raise Fail("server sent %d bytes after its Close" % len(extra))
                return True
            extra += chunk

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def abort(self):
        """Ends the connection with a TCP RST (SO_LINGER 0)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# ---------------------------------------------------------------------------
# expectations

def describe(op, data):
    names = {0: "cont", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}
    name = names.get(op, "op%d" % op)
    if op == OP_CLOSE:
        if len(data) >= 2:
            return "close %d" % struct.unpack("!H", data[:2])[0]
        return "close (no code)" if not data else "close (1-byte payload)"
    if len(data) <= 24:
        return "%s %r" % (name, data)
    return "%s (%d bytes)" % (name, len(data))


def expect_message(c, op, payload, timeout=None):
    """The next message (pings answered) is exactly (op, payload)."""
    try:
        got_op, got = c.recv_message(timeout)
    except TimeoutError:
        raise Fail("expected %s, got nothing in time" % describe(op, payload))
    except Closed as e:
        raise Fail("expected %s, got TCP %s" % (describe(op, payload), e.how))
    if got_op != op or got != payload:
        if got_op == op and len(got) != len(payload):
            raise Fail("expected %s, got %s of %d bytes" % (describe(op, payload), describe(got_op, got), len(got)))
        if got_op == op:
            i = next(i for i in range(len(got)) if got[i] != payload[i])
            raise Fail("expected %s, got %s differing at byte %d" % (describe(op, payload), describe(got_op, got), i))
        raise Fail("expected %s, got %s" % (describe(op, payload), describe(got_op, got)))


def expect_silence(c, timeout=0.3):
    """Nothing arrives (the connection stays open and quiet) for timeout seconds."""
    try:
        op, data = c.recv_message(timeout, answer_pings=True)
    except TimeoutError:
        return
    except Closed as e:
        raise Fail("expected no frame, got TCP %s" % e.how)
    raise Fail("expected no frame, got %s" % describe(op, data))


def expect_close(c, codes, timeout=None, reply=True, eof_timeout=6.0):
    """The server's next message is a Close with one of codes (None = no
    status code); its reason is valid UTF-8; after our reply (or none) the
    server ends TCP. Data frames before the Close are a failure."""
    if isinstance(codes, int) or codes is None:
        codes = (codes,)
    want = " or ".join("close %s" % ("(no code)" if k is None else k) for k in codes)
    try:
        op, data = c.recv_message(timeout)
    except TimeoutError:
        raise Fail("expected %s, got nothing in time" % want)
    except Closed as e:
        raise Fail("expected %s, got TCP %s without a Close frame" % (want, e.how))
    if op != OP_CLOSE:
        raise Fail("expected %s, got %s" % (want, describe(op, data)))
    if len(data) == 1:
        raise Fail("expected %s, got a Close with a 1-byte payload" % want)
    code = struct.unpack("!H", data[:2])[0] if data else None
    if code is not None and not valid_close_code(code):
        raise Fail("server sent close code %d, which may never be sent" % code)
    if not utf8_valid(data[2:]):
        raise Fail("server's close reason is not UTF-8")
    if code not in codes:
        raise Fail("expected %s, got %s" % (want, describe(op, data)))
    if reply:
        c.try_write(frame(OP_CLOSE, data[:2]))
    r = c.wait_eof(eof_timeout)
    if r is not True:
        raise Fail("got close %s but the server did not close TCP within %.0f s" % (code, eof_timeout))
    return code, data[2:]


def clean_close(c, code=1000, reason=b""):
    """We start the closing handshake; the server answers with the same code and ends TCP."""
    c.write(frame(OP_CLOSE, close_payload(code, reason)))
    expect_close(c, code, reply=False)


def utf8_fail_index(b):
    """Index of the first byte that cannot continue valid UTF-8 (Unicode
    Table 3-7), len(b) when b stops inside a character, None when valid."""
    i, n = 0, len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            ranges = [(0x80, 0xBF)]
        elif c == 0xE0:
            ranges = [(0xA0, 0xBF), (0x80, 0xBF)]
        elif 0xE1 <= c <= 0xEC or c in (0xEE, 0xEF):
            ranges = [(0x80, 0xBF)] * 2
        elif c == 0xED:
            ranges = [(0x80, 0x9F), (0x80, 0xBF)]
        elif c == 0xF0:
            ranges = [(0x90, 0xBF), (0x80, 0xBF), (0x80, 0xBF)]
        elif 0xF1 <= c <= 0xF3:
            ranges = [(0x80, 0xBF)] * 3
        elif c == 0xF4:
            ranges = [(0x80, 0x8F), (0x80, 0xBF), (0x80, 0xBF)]
        else:
            return i
        for k, (lo, hi) in enumerate(ranges):
            j = i + 1 + k
            if j >= n:
                return n
            if not lo <= b[j] <= hi:
                return j
        i += 1 + len(ranges)
    return None
