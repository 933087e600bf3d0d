#!/usr/bin/env python3
"""Fault tests for snow-echo over 127.0.0.1 (bounded in time; the mixed soak
is soak.py):

  half-open     clients that stop reading and answering (no FIN) are reaped by
                the heartbeat within ping interval + pong timeout; a live client
                on the same server is not
  slow-reader   a client that never reads is cut off (outbound limit, write
                timeout) while another keeps echoing
  churn         10,000 connections opened and closed, half of them aborted
                with RST, leave /stats connections, open fds, threads and RSS
                at their baseline
  panic         a handler that panics (snow-echo's /panic on the text
                "panic") closes that connection with 1011; the server goes on
                serving /echo, other connections keep echoing, and the
                connection count and open fds return to their baseline
  drain         SIGTERM with 100 open connections: each gets close 1001 and the
                server exits 0 within 5 s, whether the clients answer the
                close or not; an upgrade during the drain gets 503
  slowloris-frames
                200 upgraded connections trickle a frame one byte every
                500 ms; meanwhile a normal client's upgrade + echo completes
                (its time is printed: the promise is 1 s, the wait 30 s so
                load cannot fail it), no worker thread is added, nothing is
                answered or closed early, and each frame, once completed,
                is echoed
  room-reader   a /broadcast member that never reads is refused at its
                outbound limit and cut at the write timeout, while 3 other
                members receive all 4,096 broadcasts (64 MiB) in order
  ping-flood    100,000 pings as fast as the socket takes them: pongs carry
                ping payloads in order up to the last ping, or a clear close;
                RSS bounded; another connection keeps echoing
  fragment-flood
                100,000 one-byte fragments: echoed whole under the default
                limit, 1009 with --max-message 50000; RSS bounded
  huge-sizes    2^63 and 2^63-1 declared frame lengths (1002, 1009), a
                declared and a really sent 100 MiB message (1009), an
                upgrade with 10,000 headers and one with a 1 MiB header line
                (431); peak RSS bounded; another connection keeps echoing

    run.py SNOW_ECHO [-k SUBSTRING]

Prints one line per case (with the figures it measured) and 'N passed, N
failed' last.
"""
import base64
import os
import select
import signal
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "wsconf"))
from runner import Results, take_option  # noqa: E402
from wsclient import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Closed, Conn, Fail,  # noqa: E402
                      Server, _read_head, clean_close, close_payload, describe, expect_close, expect_message, frame,
                      is_sanitized, quarantine_env)

results = Results()
report = results.report
stop_checked = results.stop_checked


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


# ---------------------------------------------------------------------------

def case_half_open(exe):
    ping, pong = 1.0, 1.0
    srv = Server(exe, "--ping-interval", str(ping), "--pong-timeout", str(pong)).start()
    try:
        base_fds = srv.fd_count()
        live = Conn(srv.port, "/echo")
        ghosts = [Conn(srv.port, "/echo") for _ in range(5)]
        # two of them vanish in the middle of a message: one inside a frame,
        # one between the fragments of a message
        ghosts[3].write(frame(OP_BINARY, b"", length=1000)[:8] + b"partial")
        ghosts[4].write(frame(OP_TEXT, b"first fragment", fin=False))
        if wait_for(lambda: connections(srv) == 6, 5) is not True:
            raise Fail("/stats connections %d with 6 open" % connections(srv))
        t0 = time.monotonic()
        # the live client reads (answering pings) while the ghosts do nothing
        bound = ping + pong + 1.5
        reaped_at = None
        while time.monotonic() - t0 < bound + 2 * (ping + pong):
            try:
                op, data = live.recv_message(timeout=0.05)
                raise Fail("live client got %s" % describe(op, data))
            except TimeoutError:
                pass
            if reaped_at is None and connections(srv) == 1:
                reaped_at = time.monotonic() - t0
        if reaped_at is None:
            raise Fail("half-open clients not reaped: /stats connections %d after %.1f s"
                       % (connections(srv), time.monotonic() - t0))
        if reaped_at > bound:
            raise Fail("half-open clients reaped after %.2f s, bound ping + pong (+1.5 s) = %.1f s"
                       % (reaped_at, bound))
        # the live one is still there, and still echoes
        if connections(srv) != 1:
            raise Fail("/stats connections %d, expected the live client only" % connections(srv))
        live.send(OP_TEXT, b"alive")
        expect_message(live, OP_TEXT, b"alive")
        # what a ghost would find if it came back: ping(s), then close 1001, then EOF
        for g in ghosts:
            pings = 0
            while True:
                try:
                    op, data = g.recv_message(timeout=2, answer_pings=False)
                except (TimeoutError, Closed) as e:
                    raise Fail("ghost connection: no close 1001 (%s)" % type(e).__name__)
                if op == OP_PING:
                    pings += 1
                    continue
                if op != OP_CLOSE or data[:2] != struct.pack("!H", 1001):
                    raise Fail("ghost connection: expected close 1001, got %s" % describe(op, data))
                break
            if pings < 1:
                raise Fail("ghost connection got a close without any ping before it")
            if g.wait_eof(2) is not True:
                raise Fail("ghost connection: TCP not closed by the server")
            g.close()
        fds = wait_for(lambda: srv.fd_count() <= base_fds + 1, 3) and srv.fd_count()
        if srv.fd_count() != base_fds + 1:
            raise Fail("server fds %d, expected %d (baseline + the live client)" % (srv.fd_count(), base_fds + 1))
        st = srv.stats()
        hb = st.get("closed_heartbeat")
        if hb is not None and hb != 5:
            raise Fail("/stats closed_heartbeat %s, expected 5" % hb)
        clean_close(live)
        report("half-open: 5 silent clients (2 in mid-message) reaped by the heartbeat, live client kept", None,
               "ping %.1f s + pong %.1f s; reaped after %.2f s; fds back to %d" % (ping, pong, reaped_at, fds))
    except Fail as e:
        report("half-open: 5 silent clients (2 in mid-message) reaped by the heartbeat, live client kept", str(e))
    finally:
        stop_checked(srv, "half-open server")


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


def case_slow_reader(exe):
    limit, wtimeout = 256 * 1024, 2.0
    name = "slow-reader: a client that never reads is cut off; another keeps echoing"
    asan = is_sanitized(exe)
    srv = Server(exe, "--outbound-limit", str(limit), "--write-timeout", str(wtimeout),
                 env=quarantine_env(exe)).start()
    # The flood is up to 256 MiB; a server that kept what it cannot deliver
    # would grow by that much. What it may hold is one outbound queue (the
    # limit plus one message) and its read buffers: 32 MiB is far above
    # that and far below the flood (plus the quarantine under ASan).
    rss_bound = (32 + (16 if asan else 0)) * 1024
    try:
        slow = small_buffer_conn(srv.port, "/echo", 5)
        s = slow.sock
        other = Conn(srv.port, "/echo")
        msg_size = 64 * 1024
        sent = {"bytes": 0, "msgs": 0, "err": None}
        stop = threading.Event()

        def flood():
            i = 0
            try:
                while not stop.is_set() and sent["bytes"] < (256 << 20):
                    body = struct.pack("!Q", i) + b"\xab" * (msg_size - 8)
                    s.sendall(frame(OP_BINARY, body))
                    sent["bytes"] += msg_size
                    sent["msgs"] += 1
                    i += 1
            except OSError as e:
                sent["err"] = e
        t = threading.Thread(target=flood, daemon=True)
        t.start()
        t0 = time.monotonic()
        lat = []
        cut_at = None
        rss0 = srv.rss_kib()
        rss_max = rss0
        i = 0
        while time.monotonic() - t0 < wtimeout + 10:
            payload = b"echo %d " % i + b"." * 1000
            a = time.monotonic()
            other.send(OP_TEXT, payload)
            expect_message(other, OP_TEXT, payload)
            lat.append(time.monotonic() - a)
            i += 1
            rss_max = max(rss_max, srv.rss_kib())
            if cut_at is None and connections(srv) == 1:
                cut_at = time.monotonic() - t0
            if cut_at is not None and i >= 200:
                break
            time.sleep(0.005)
        stop.set()
        t.join(10)
        if cut_at is None:
            raise Fail("the non-reading client was not cut off within %.0f s (it sent %d MiB; /stats %s)"
                       % (wtimeout + 10, sent["bytes"] >> 20, srv.stats()))
        st = srv.stats()
        counted = st.get("closed_write_stall", 0) + st.get("closed_backpressure", 0)
        if "closed_write_stall" in st and counted < 1:
            raise Fail("/stats counts no backpressure or write-stall close: %s" % st)
        seqs, ended = read_until_cut(slow, "slow client", 2)
        if rss_max - rss0 > rss_bound:
            raise Fail("server RSS grew by %d KiB during the flood (bound %d KiB)" % (rss_max - rss0, rss_bound))
        lat.sort()
        report(name, None,
               "outbound limit %d KiB, write timeout %.0f s: cut after %.2f s, %d MiB sent, %d echoes "
               "reached it, then %s; other client %d echoes, latency p50 %.1f ms max %.1f ms; "
               "server RSS %d -> max %d KiB (bound +%d KiB)"
               % (limit >> 10, wtimeout, cut_at, sent["bytes"] >> 20, len(seqs), ended, len(lat),
                  lat[len(lat) // 2] * 1e3, lat[-1] * 1e3, rss0, rss_max, rss_bound))
        clean_close(other)
    except (Fail, OSError) as e:
        report(name, "%s: %s" % (type(e).__name__, e))
    finally:
        stop_checked(srv, "slow-reader server")


def churn_round(port, n, conns_out=None):
    """Opens n connections (all at once), echoes on every other one, then
    closes half with the closing handshake and aborts half with RST."""
    cs = []
    for i in range(n):
        cs.append(Conn(port, "/echo"))
    for i, c in enumerate(cs):
        if i % 2 == 0:
            c.send(OP_TEXT, b"churn %d" % i)
    for i, c in enumerate(cs):
        if i % 2 == 0:
            expect_message(c, OP_TEXT, b"churn %d" % i)
    for i, c in enumerate(cs):
        if i % 4 < 2:
            c.send(OP_CLOSE, close_payload(1000))
        else:
            c.abort()
    for i, c in enumerate(cs):
        if i % 4 < 2:
            expect_close(c, 1000, reply=False)
            c.close()


def case_churn(exe, total=10000, batch=500):
    name = "churn: %d connections (half aborted with RST) leave connections, fds, threads, RSS at baseline" % total
    asan = is_sanitized(exe)
    srv = Server(exe, env=quarantine_env(exe)).start()
    try:
        # warm-up at the same concurrency: pools and allocator arenas reach
        # the size this load needs before the baseline is taken
        for _ in range(2):
            churn_round(srv.port, batch)
        if wait_for(lambda: connections(srv) == 0, 10) is not True:
            raise Fail("/stats connections %d after warm-up" % connections(srv))
        time.sleep(0.5)
        base = (srv.fd_count(), threads(srv), srv.rss_kib())
        t0 = time.monotonic()
        for _ in range(total // batch):
            churn_round(srv.port, batch)
        dt = time.monotonic() - t0
        n = wait_for(lambda: connections(srv) == 0, 10) and 0
        if connections(srv) != 0:
            raise Fail("/stats connections %d after the churn, expected 0" % connections(srv))
        wait_for(lambda: srv.fd_count() <= base[0], 10)
        time.sleep(0.5)
        after = (srv.fd_count(), threads(srv), srv.rss_kib())
        # Tolerance: after the warm-up every pool is at this load's peak, so
        # what may remain is allocator slack. 2 MiB over 10,000 connections
        # would still catch a leak of 210 bytes per connection.
        tol = 2048 + (16 * 1024 + after[1] * 64 if asan else 0)
        info = ("%d connections in %.1f s; fds %d -> %d, threads %d -> %d, RSS %d -> %d KiB (tolerance %d KiB)"
                % (total, dt, base[0], after[0], base[1], after[1], base[2], after[2], tol))
        if after[0] != base[0]:
            raise Fail("open fds %d, baseline %d; %s" % (after[0], base[0], info))
        if after[1] != base[1]:
            raise Fail("threads %d, baseline %d; %s" % (after[1], base[1], info))
        if after[2] > base[2] + tol:
            raise Fail("RSS grew by %d KiB; %s" % (after[2] - base[2], info))
        report(name, None, info)
        del n
    except (Fail, OSError, Closed) as e:
        report(name, "%s: %s" % (type(e).__name__, e))
    finally:
        stop_checked(srv, "churn server")


def case_panic(exe):
    name = "panic: a handler panic closes its connection with 1011; /echo still served, counts back to baseline"
    srv = Server(exe).start()
    try:
        base = (connections(srv), srv.fd_count())
        if base[0] != 0:
            raise Fail("/stats connections %d before any client" % base[0])
        bystander = Conn(srv.port, "/echo")
        for i in range(3):
            c = Conn(srv.port, "/panic")
            c.send(OP_TEXT, b"before the panic")
            expect_message(c, OP_TEXT, b"before the panic")
            c.send(OP_TEXT, b"panic")
            expect_close(c, 1011)
            c.close()
            # the others are untouched, new connections are served
            bystander.send(OP_TEXT, b"still here %d" % i)
            expect_message(bystander, OP_TEXT, b"still here %d" % i)
            fresh = Conn(srv.port, "/echo")
            fresh.send(OP_BINARY, b"\x00fresh")
            expect_message(fresh, OP_BINARY, b"\x00fresh")
            clean_close(fresh)
            fresh.close()
        clean_close(bystander)
        bystander.close()
        if wait_for(lambda: connections(srv) == base[0], 5) is not True:
            raise Fail("/stats connections %d after the clients left, baseline %d" % (connections(srv), base[0]))
        if wait_for(lambda: srv.fd_count() <= base[1], 5) is not True:
            raise Fail("open fds %d after the clients left, baseline %d" % (srv.fd_count(), base[1]))
        st = srv.stats()
        if st["closed_by_code"]["1011"] != 3:
            raise Fail("/stats closed_by_code 1011 is %s, expected 3" % st["closed_by_code"]["1011"])
        report(name, None, "3 panics; connections %d, fds %d" % (connections(srv), srv.fd_count()))
    except (Fail, OSError, Closed) as e:
        report(name, "%s: %s" % (type(e).__name__, e))
    finally:
        stop_checked(srv, "panic server")


def case_drain(exe, answer):
    n = 100
    name = "drain: SIGTERM with %d open connections (%s): each gets close 1001, exit 0 within 5 s" % (
        n, "clients answer the close" if answer else "clients never answer")
    srv = Server(exe).start()
    conns = []
    try:
        conns = [Conn(srv.port, "/echo") for _ in range(n)]
        if wait_for(lambda: connections(srv) == n, 5) is not True:
            raise Fail("/stats connections %d with %d open" % (connections(srv), n))
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        late = None
        if not answer:
            # an upgrade that arrives during the drain is answered 503
            time.sleep(0.2)
            try:
                c = Conn(srv.port, "/echo", timeout=3)
                c.close()
                late = "a new upgrade during the drain got 101"
            except Fail as e:
                if "status 503" not in str(e):
                    late = "a new upgrade during the drain: %s, expected 503" % e
            except (ConnectionRefusedError, Closed) as e:
                late = "a new upgrade during the drain: %s, expected 503" % (type(e).__name__)
        got = {}
        pending = {c.sock.fileno(): c for c in conns}
        deadline = time.monotonic() + 6
        while pending and time.monotonic() < deadline:
            r, _, _ = select.select(list(pending), [], [], 0.1)
            for fd in r:
                c = pending[fd]
                try:
                    op, data = c.recv_message(timeout=1)
                except (Closed, TimeoutError) as e:
                    got[fd] = "TCP %s" % type(e).__name__
                    del pending[fd]
                    continue
                got[fd] = describe(op, data)
                if answer and op == OP_CLOSE:
                    c.try_write(frame(OP_CLOSE, data[:2]))
                del pending[fd]
        try:
            status = srv.proc.wait(max(0.1, t0 + 5 - time.monotonic()))
            exit_s = time.monotonic() - t0
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
            status, exit_s = None, None
        bad = [v for v in got.values() if v != "close 1001"]
        if pending:
            raise Fail("%d connections got nothing" % len(pending))
        if bad:
            raise Fail("%d of %d connections got %s instead of close 1001" % (len(bad), n, sorted(set(bad))))
        if status is None:
            raise Fail("server still running 5 s after SIGTERM")
        if status != 0:
            raise Fail("exit status %s\n%s" % (status, srv.stderr_tail()))
        report(name, None, "exit 0 after %.2f s" % exit_s)
        if not answer:
            report("drain: an upgrade that arrives during the drain is answered 503", late)
    except (Fail, OSError) as e:
        report(name, "%s: %s" % (type(e).__name__, e))
    finally:
        for c in conns:
            c.close()
        srv.kill()


# ---------------------------------------------------------------------------
# abuse at scale: trickled frames, a non-reader in a room, floods, huge sizes

class EchoProbe:
    """A normal client on its own thread: echoes a 1 KiB text message every
    20 ms on one connection and records each round trip, so a case can show
    that abuse on other connections does not hold it up. Every echo must come
    back whole and in order (a lost or late one fails the case through
    .err); the times are measurements, reported, not limits."""

    def __init__(self, port, path="/echo"):
        self.c = Conn(port, path, timeout=30)
        self.lat, self.err = [], None
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        i = 0
        try:
            while not self.stop_ev.is_set():
                payload = b"probe %d " % i + b"p" * 1000
                a = time.monotonic()
                self.c.send(OP_TEXT, payload)
                expect_message(self.c, OP_TEXT, payload, timeout=30)
                self.lat.append(time.monotonic() - a)
                i += 1
                self.stop_ev.wait(0.02)
        except (Fail, Closed, OSError) as e:
            self.err = "%s: %s" % (type(e).__name__, e)

    def finish(self):
        self.stop_ev.set()
        self.t.join(40)
        if self.t.is_alive():
            raise Fail("the probe client's echo never came back")
        if self.err:
            raise Fail("the probe client on another connection: %s" % self.err)
        if not self.lat:
            raise Fail("the probe client completed no echo")
        clean_close(self.c)
        self.c.close()
        lat = sorted(self.lat)
        return "other connection: %d echoes, p50 %.1f ms, max %.1f ms" % (
            len(lat), lat[len(lat) // 2] * 1e3, lat[-1] * 1e3)


def case_slowloris_frames(exe, n=200, gap=0.5, rounds=4):
    name = "slowloris-frames: %d upgraded connections trickle a frame 1 byte / %.0f ms; " \
           "a normal upgrade + echo completes meanwhile" % (n, gap * 1e3)
    srv = Server(exe).start()
    slow = []
    try:
        base_threads = threads(srv)
        body = b"trickled %03d!"
        frames = []
        for i in range(n):
            c = Conn(srv.port, "/echo", timeout=30)
            slow.append(c)
            frames.append(frame(OP_TEXT, body % i))
        if wait_for(lambda: connections(srv) == n, 10) is not True:
            raise Fail("/stats connections %d with %d upgraded" % (connections(srv), n))
        # Each frame is 2 + 4 + 13 = 19 bytes: after `rounds` bytes every
        # connection is inside its frame header or mask key, so every
        # connection actor is parked mid-frame when the normal client comes.
        times = []
        for r in range(rounds):
            for i, c in enumerate(slow):
                c.write(frames[i][r:r + 1])
            time.sleep(gap)
            if r >= 1:
                # the normal client: upgrade + one echo, timed
                t0 = time.monotonic()
                c = Conn(srv.port, "/echo", timeout=30)
                c.send(OP_TEXT, b"normal client %d" % r)
                expect_message(c, OP_TEXT, b"normal client %d" % r, timeout=30)
                times.append(time.monotonic() - t0)
                clean_close(c)
                c.close()
        # Nothing was answered early, nobody was closed, no worker was added.
        for i, c in enumerate(slow):
            r, _, _ = select.select([c.sock], [], [], 0)
            if r or c.buf:
                raise Fail("trickling connection %d got output or was closed mid-frame" % i)
        if connections(srv) != n:
            raise Fail("/stats connections %d, expected the %d trickling ones" % (connections(srv), n))
        th = threads(srv)
        if th != base_threads:
            raise Fail("server threads %d, %d before the trickle" % (th, base_threads))
        # The rest of every frame at once: each gets its echo, so the state
        # kept across the trickle was right.
        for i, c in enumerate(slow):
            c.write(frames[i][rounds:])
        for i, c in enumerate(slow):
            expect_message(c, OP_TEXT, body % i, timeout=30)
        for c in slow:
            clean_close(c)
        report(name, None, "upgrade + echo took %s ms with %d connections mid-frame; worker threads %d -> %d"
               % (", ".join("%.1f" % (t * 1e3) for t in times), n, base_threads, th))
    except (Fail, OSError, Closed) as e:
        report(name, "%s: %s" % (type(e).__name__, e))
    finally:
        for c in slow:
            c.close()
        stop_checked(srv, "slowloris-frames server")


def case_room_reader(exe, readers=3, msg_size=16 * 1024, window=4):
    limit, wtimeout = 256 * 1024, 2.0
    name = "room-reader: a /broadcast member that never reads is cut off; the others get every message in order"
    asan = is_sanitized(exe)
    srv = Server(exe, "--outbound-limit", str(limit), "--write-timeout", str(wtimeout),
                 env=quarantine_env(exe)).start()
    # What the server may hold for the stuck member is its outbound queue
    # (the limit plus one message) and the kernel's buffers, for the others
    # a window of messages: 32 MiB is far above that and far below the
    # 64 MiB the sender pushes through the room.
    rss_bound = (32 + (16 if asan else 0)) * 1024
    conns = []
    try:
        stuck = small_buffer_conn(srv.port, "/broadcast", 10)
        conns.append(stuck)
        sender = Conn(srv.port, "/broadcast", timeout=30)
        conns.append(sender)
        rs = [Conn(srv.port, "/broadcast", timeout=30) for _ in range(readers)]
        conns += rs
        if wait_for(lambda: srv.stats()["room"]["members"] == readers + 2, 10) is not True:
            raise Fail("room members %d, expected %d" % (srv.stats()["room"]["members"], readers + 2))
        got = [[] for _ in rs]
        lat = []
        errs = []
        sent_at = {}
        cv = threading.Condition()

        def read(k):
            try:
                while True:
                    op, data = rs[k].recv_message(timeout=30)
                    if op != OP_BINARY:
                        raise Fail("reader %d got %s" % (k, describe(op, data)))
                    seq = struct.unpack("!Q", data[:8])[0]
                    if len(data) != msg_size or data[8:] != bytes([seq & 0xff]) * (msg_size - 8):
                        raise Fail("reader %d: message %d damaged" % (k, seq))
                    with cv:
                        if k == 0 and seq in sent_at:
                            lat.append(time.monotonic() - sent_at[seq])
                        got[k].append(seq)
                        cv.notify_all()
                    if seq == total - 1:
                        return
            except (Fail, Closed, TimeoutError, OSError) as e:
                with cv:
                    errs.append("reader %d: %s: %s" % (k, type(e).__name__, e))
                    cv.notify_all()
        # 4096 messages of 16 KiB: 64 MiB for the stuck member, 256 times
        # its limit; paced by the slowest reader (a window of 4 messages,
        # 64 KiB, well under the limit) so no reader is ever skipped.
        total = 4096
        ts = [threading.Thread(target=read, args=(k,), daemon=True) for k in range(readers)]
        for t in ts:
            t.start()
        rss0, rss_max = srv.rss_kib(), 0
        t0 = time.monotonic()
        cut_at = None
        for i in range(total):
            with cv:
                while not errs and min(len(g) for g in got) < i - window:
                    if not cv.wait(30):
                        errs.append("the readers stalled at %d of %d" % (min(len(g) for g in got), i))
                if errs:
                    break
                sent_at[i] = time.monotonic()
            sender.send(OP_BINARY, struct.pack("!Q", i) + bytes([i & 0xff]) * (msg_size - 8))
            if i % 64 == 0:
                rss_max = max(rss_max, srv.rss_kib())
                st = srv.stats()
                if cut_at is None and st["room"]["members"] == readers + 1:
                    cut_at = time.monotonic() - t0
        for t in ts:
            t.join(60)
        if errs:
            raise Fail("; ".join(errs))
        if cut_at is None:
            if wait_for(lambda: srv.stats()["room"]["members"] == readers + 1, wtimeout + 5) is not True:
                raise Fail("the stuck member was not cut off (room members %d)" % srv.stats()["room"]["members"])
            cut_at = time.monotonic() - t0
        for k, g in enumerate(got):
            if g != list(range(total)):
                missing = sorted(set(range(total)) - set(g))
                raise Fail("reader %d got %d of %d messages (in order: %s; first missing %s)"
                           % (k, len(g), total, g == sorted(g), missing[:5]))
        st = srv.stats()
        if st["closed_write_stall"] + st["closed_backpressure"] < 1:
            raise Fail("/stats counts no write-stall or backpressure close: %s" % st)
        seqs, ended = read_until_cut(stuck, "stuck member", 5)
        if rss_max - rss0 > rss_bound:
            raise Fail("server RSS grew by %d KiB (bound %d KiB)" % (rss_max - rss0, rss_bound))
        lat.sort()
        report(name, None,
               "outbound limit %d KiB, write timeout %.0f s: cut after %.2f s, after %d messages reached it, "
               "then %s; %d readers got all %d messages (%d MiB) in order, latency p50 %.1f ms max %.1f ms; "
               "skipped for backpressure %d; server RSS %d -> max %d KiB (bound +%d KiB)"
               % (limit >> 10, wtimeout, cut_at, len(seqs), ended, readers, total, total * msg_size >> 20,
                  lat[len(lat) // 2] * 1e3, lat[-1] * 1e3, st["room"]["skipped_backpressure"], rss0, rss_max,
                  rss_bound))
        for c in rs + [sender]:
            clean_close(c)
    except (Fail, OSError, Closed) as e:
        report(name, "%s: %s" % (type(e).__name__, e))
    finally:
        for c in conns:
            c.close()
        stop_checked(srv, "room-reader server")


def pump(sock, chunks, out):
    """Writes the chunks; stops quietly at the server's close."""
    try:
        for ch in chunks:
            sock.sendall(ch)
            out["sent"] += len(ch)
    except OSError as e:
        out["err"] = e


def case_ping_flood(exe, n=100000):
    name = "ping-flood: %d pings as fast as the socket takes them are answered in order or cut off " \
           "with a close; memory bounded; another connection keeps echoing" % n
    asan = is_sanitized(exe)
    srv = Server(exe, env=quarantine_env(exe)).start()
    # The pings are 1 MB of input; answering them needs a pong queue the
    # size of what the client has not read yet, which the outbound limit
    # (1 MiB) caps. 16 MiB is far above that (plus ASan's quarantine).
    rss_bound = (16 + (16 if asan else 0)) * 1024
    try:
        probe = EchoProbe(srv.port)
        c = Conn(srv.port, "/echo", timeout=30)
        rss0 = srv.rss_kib()
        pings = [frame(OP_PING, struct.pack("!I", i)) for i in range(n)]
        chunks = [b"".join(pings[i:i + 1000]) for i in range(0, n, 1000)]
        out = {"sent": 0, "err": None}
        t = threading.Thread(target=pump, args=(c.sock, chunks, out), daemon=True)
        t0 = time.monotonic()
        t.start()
        last, pongs, ended, rss_max = -1, 0, None, rss0
        while True:
            try:
                fin, op, data = c.recv_frame(timeout=30)
            except Closed as e:
                ended = "TCP %s without a Close" % e.how
                break
            except TimeoutError:
                raise Fail("no pong or close for 30 s after %d pongs (last %d)" % (pongs, last))
            if op == OP_PONG:
                if len(data) != 4:
                    raise Fail("pong payload of %d bytes, pings carry 4" % len(data))
                seq = struct.unpack("!I", data)[0]
                if seq <= last or seq >= n:
                    raise Fail("pong %d after pong %d: not the payload of a later ping" % (seq, last))
                last, pongs = seq, pongs + 1
                if pongs % 5000 == 0:
                    rss_max = max(rss_max, srv.rss_kib())
                if seq == n - 1:
                    break
            elif op == OP_CLOSE:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                if code not in (1008, 1009):
                    raise Fail("ping flood ended with %s, expected a pong for the last ping or 1008" % describe(op, data))
                ended = describe(op, data)
                break
            else:
                raise Fail("ping flood: got %s" % describe(op, data))
        dt = time.monotonic() - t0
        t.join(30)
        rss_max = max(rss_max, srv.rss_kib())
        if ended is not None and ended.startswith("TCP"):
            raise Fail("ping flood: %s after %d pongs" % (ended, pongs))
        if ended is None:
            # answered: the connection is still good
            c.send(OP_TEXT, b"after the flood")
            expect_message(c, OP_TEXT, b"after the flood", timeout=30)
            clean_close(c)
            outcome = "all answered: %d pongs (the last for ping %d) in %.2f s" % (pongs, last, dt)
        else:
            outcome = "%d pongs, then %s after %.2f s" % (pongs, ended, dt)
        c.close()
        other = probe.finish()
        if rss_max - rss0 > rss_bound:
            raise Fail("server RSS grew by %d KiB (bound %d KiB)" % (rss_max - rss0, rss_bound))
        report(name, None, "%s; %s; server RSS %d -> max %d KiB (bound +%d KiB)"
               % (outcome, other, rss0, rss_max, rss_bound))
    except (Fail, OSError, Closed) as e:
        report(name, "%s: %s" % (type(e).__name__, e))
    finally:
        stop_checked(srv, "ping-flood server")


def fragments(n):
    """One text message of n one-byte fragments (the bytes cycle a-z)."""
    out = [frame(OP_TEXT, b"a", fin=False)]
    for i in range(1, n - 1):
        out.append(frame(OP_CONT, bytes([97 + i % 26]), fin=False))
    out.append(frame(OP_CONT, bytes([97 + (n - 1) % 26])))
    return out


def case_fragment_flood(exe, n=100000):
    name = "fragment-flood: %d one-byte fragments are delivered whole under the limit, 1009 past it; " \
           "memory bounded" % n
    asan = is_sanitized(exe)
    try:
        infos = []
        want = bytes(97 + i % 26 for i in range(n))
        pieces = fragments(n)
        chunks = [b"".join(pieces[i:i + 2000]) for i in range(0, n, 2000)]
        for limit in (None, n // 2):
            args = ("--max-message", str(limit)) if limit else ()
            srv = Server(exe, *args, env=quarantine_env(exe)).start()
            try:
                probe = EchoProbe(srv.port)
                c = Conn(srv.port, "/echo", timeout=30)
                rss0 = srv.rss_kib()
                out = {"sent": 0, "err": None}
                t = threading.Thread(target=pump, args=(c.sock, chunks, out), daemon=True)
                t0 = time.monotonic()
                t.start()
                if limit is None:
                    expect_message(c, OP_TEXT, want, timeout=60)
                    what = "delivered whole (%d bytes) in %.2f s" % (n, time.monotonic() - t0)
                    t.join(30)
                    c.send(OP_TEXT, b"next")
                    expect_message(c, OP_TEXT, b"next")
                    clean_close(c)
                else:
                    expect_close(c, 1009, timeout=60)
                    what = "--max-message %d: close 1009 after %.2f s (%d KiB of the %d KiB sent)" % (
                        limit, time.monotonic() - t0, out["sent"] >> 10, sum(map(len, chunks)) >> 10)
                    t.join(30)
                c.close()
                rss1 = srv.rss_kib()
                other = probe.finish()
                # The message is 100 KB; the fragments' frames 700 KB. A
                # server that kept anything per fragment would grow by
                # megabytes; 8 MiB bounds the buffers with room to spare.
                bound = (8 + (16 if asan else 0)) * 1024
                if rss1 - rss0 > bound:
                    raise Fail("server RSS grew by %d KiB (bound %d KiB)" % (rss1 - rss0, bound))
                infos.append("%s, RSS %d -> %d KiB; %s" % (what, rss0, rss1, other))
            finally:
                stop_checked(srv, "fragment-flood server (limit %s)" % (limit or "default"))
        report(name, None, " | ".join(infos))
    except (Fail, OSError, Closed) as e:
        report(name, "%s: %s" % (type(e).__name__, e))


def case_huge_sizes(exe):
    name = "huge-sizes: 2^63 and 2^63-1 declared frame lengths, a 100 MiB message, 10,000 upgrade " \
           "headers, a 1 MiB header line: each its close code or status, RSS bounded"
    asan = is_sanitized(exe)
    srv = Server(exe, env=quarantine_env(exe)).start()
    try:
        probe = EchoProbe(srv.port)
        rss0 = srv.rss_kib()
        seen = []
        # declared lengths, decided from the header alone
        for declared, code in ((1 << 63, 1002), ((1 << 63) - 1, 1009), (100 << 20, 1009)):
            c = Conn(srv.port, "/echo", timeout=30)
            c.write(frame(OP_BINARY, b"x" * 1000, length=declared))
            expect_close(c, code, timeout=30)
            c.close()
            seen.append("declared %d -> %d" % (declared, code))
        # 100 MiB actually sent, as 1 MiB fragments: 1009 once the message
        # passes the 16 MiB default, the rest of the upload refused
        c = Conn(srv.port, "/echo", timeout=30)
        mib = os.urandom(1 << 20)
        chunks = [frame(OP_BINARY if i == 0 else OP_CONT, mib, fin=(i == 99)) for i in range(100)]
        out = {"sent": 0, "err": None}
        t = threading.Thread(target=pump, args=(c.sock, chunks, out), daemon=True)
        t.start()
        expect_close(c, 1009, timeout=60)
        t.join(60)
        c.close()
        seen.append("100 MiB in 1 MiB fragments -> 1009 after %d MiB sent" % (out["sent"] >> 20))
        # an upgrade request with 10,000 headers, and one with a 1 MiB header line
        for what, first, filler, total, status in (
                ("10,000 headers", b"".join(b"X-H%d: v\r\n" % i for i in range(10000)) + b"\r\n", b"", 0, 431),
                ("a 1 MiB header line", b"X-Long: ", b"v" * 4096, 1 << 20, 431)):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
            req = (b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
            body = [req + first] + [filler] * (total // max(1, len(filler)))
            o = {"sent": 0, "err": None}
            t = threading.Thread(target=pump, args=(s, body, o), daemon=True)
            t.start()
            try:
                st, _, _ = _read_head(s, time.monotonic() + 30)
            except Closed as e:
                raise Fail("%s: the server closed without a status (%s)" % (what, e.how))
            t.join(30)
            s.close()
            if st != status:
                raise Fail("%s: status %d, expected %d" % (what, st, status))
            seen.append("%s -> %d" % (what, st))
        rss1 = srv.rss_kib()
        peak = srv.proc_status("VmHWM")
        other = probe.finish()
        # The 100 MiB message may be held up to the 16 MiB limit before the
        # 1009; 16 MiB more is slack for the allocator. Under ASan a
        # growing buffer also sits in the 16 MiB quarantine once replaced,
        # and realloc always moves (old and new both live while copying):
        # 32 MiB more. Nothing else here may allocate more than a head.
        bound = (32 + (32 if asan else 0)) * 1024
        if peak - rss0 > bound:
            raise Fail("server peak RSS %d KiB, %d KiB over the baseline (bound %d KiB)" % (peak, peak - rss0, bound))
        if wait_for(lambda: connections(srv) == 0, 5) is not True:
            raise Fail("/stats connections %d after every client left" % connections(srv))
        report(name, None, "%s; RSS %d -> %d KiB, peak %d KiB (bound +%d KiB); %s"
               % ("; ".join(seen), rss0, rss1, peak, bound, other))
    except (Fail, OSError, Closed) as e:
        report(name, "%s: %s" % (type(e).__name__, e))
    finally:
        stop_checked(srv, "huge-sizes server")


def main():
    args = sys.argv[1:]
    filt = take_option(args, "-k")
    if len(args) != 1:
        print("usage: run.py SNOW_ECHO [-k SUBSTRING]", file=sys.stderr)
        return 2
    exe = args[0]
    cases = [("half-open", lambda: case_half_open(exe)),
             ("slow-reader", lambda: case_slow_reader(exe)),
             ("churn", lambda: case_churn(exe)),
             ("panic", lambda: case_panic(exe)),
             ("drain-answer", lambda: case_drain(exe, True)),
             ("drain-silent", lambda: case_drain(exe, False)),
             ("slowloris-frames", lambda: case_slowloris_frames(exe)),
             ("room-reader", lambda: case_room_reader(exe)),
             ("ping-flood", lambda: case_ping_flood(exe)),
             ("fragment-flood", lambda: case_fragment_flood(exe)),
             ("huge-sizes", lambda: case_huge_sizes(exe))]
    for key, fn in cases:
        if not filt or filt in key:
            results.run(key, fn)
    return results.summary()

if __name__ == "__main__":
    sys.exit(main())
