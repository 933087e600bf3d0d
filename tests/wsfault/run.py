#!/usr/bin/env python3
"""Fault tests for snow-echo over 127.0.0.1 (bounded in time):

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

    run.py SNOW_ECHO [-k SUBSTRING]

Prints one line per case (with the figures it measured) and 'N passed, N
failed' last.
"""
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
from wsclient import (OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT, Closed, Conn, Fail, Server,  # noqa: E402
                      clean_close, close_payload, describe, expect_close, expect_message, frame,
                      is_sanitized)

results = []


def report(name, err, info=""):
    results.append((name, err))
    if err is None:
        print("ok   %s%s" % (name, (" (%s)" % info) if info else ""))
    else:
        print("FAIL %s: %s%s" % (name, err, (" (%s)" % info) if info else ""))
    sys.stdout.flush()


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
    with open("/proc/%d/status" % srv.pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return -1


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


def case_slow_reader(exe):
    limit, wtimeout = 256 * 1024, 2.0
    name = "slow-reader: a client that never reads is cut off; another keeps echoing"
    asan = is_sanitized(exe)
    srv = Server(exe, "--outbound-limit", str(limit), "--write-timeout", str(wtimeout),
                 env=asan_small_quarantine() if asan else None).start()
    # The flood is up to 256 MiB; a server that kept what it cannot deliver
    # would grow by that much. What it may hold is one outbound queue (the
    # limit plus one message) and its read buffers: 32 MiB is far above
    # that and far below the flood (plus the quarantine under ASan).
    rss_bound = (32 + (16 if asan else 0)) * 1024
    try:
        slow = Conn(srv.port, "/echo", connect=False)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(5)
        s.connect(("127.0.0.1", srv.port))
        slow.sock = s
        # handshake by hand on the small-buffer socket
        import base64
        import os as _os
        key = base64.b64encode(_os.urandom(16)).decode()
        s.sendall(slow.request_bytes(key))
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise Fail("slow client handshake: %r" % head[:40])
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
        # what the slow client had been sent: whole echoes, in order, then a close 1008 or the end of TCP
        s.settimeout(2)
        seqs, ended = [], None
        try:
            while True:
                fin, op, data = slow.recv_frame(timeout=2)
                if op == OP_BINARY:
                    seqs.append(struct.unpack("!Q", data[:8])[0])
                elif op == OP_CLOSE:
                    ended = describe(op, data)
                    if data[:2] != struct.pack("!H", 1008):
                        raise Fail("slow client: expected close 1008 (or a TCP close), got %s" % ended)
                    break
        except Closed as e:
            ended = "TCP %s" % e.how
        except TimeoutError:
            raise Fail("slow client: connection neither closed nor sending after the cut")
        if rss_max - rss0 > rss_bound:
            raise Fail("server RSS grew by %d KiB during the flood (bound %d KiB)" % (rss_max - rss0, rss_bound))
        if seqs != sorted(seqs) or len(set(seqs)) != len(seqs):
            raise Fail("slow client's echoes out of order or duplicated")
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


def asan_small_quarantine():
    """ASan keeps freed memory in a quarantine (256 MiB by default); a 16 MiB
    one keeps RSS meaningful, and is added to the memory tolerances."""
    return {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
            ":quarantine_size_mb=16:thread_local_quarantine_size_kb=64"}


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
    srv = Server(exe, env=asan_small_quarantine() if asan else None).start()
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


def stop_checked(srv, what):
    status = srv.stop()
    report("%s exits 0 on SIGTERM" % what, None if status == 0 else "status %s\n%s" % (status, srv.stderr_tail()))


def main():
    args = sys.argv[1:]
    filt = None
    if "-k" in args:
        i = args.index("-k")
        filt = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1:
        print("usage: run.py SNOW_ECHO [-k SUBSTRING]", file=sys.stderr)
        return 2
    exe = args[0]
    t0 = time.monotonic()
    cases = [("half-open", lambda: case_half_open(exe)),
             ("slow-reader", lambda: case_slow_reader(exe)),
             ("churn", lambda: case_churn(exe)),
             ("panic", lambda: case_panic(exe)),
             ("drain-answer", lambda: case_drain(exe, True)),
             ("drain-silent", lambda: case_drain(exe, False))]
    for key, fn in cases:
        if filt and filt not in key:
            continue
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - a broken case is a failed case
            import traceback
            report(key, "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc()))
    failed = [n for n, e in results if e is not None]
    print("# %.1f s" % (time.monotonic() - t0))
    if failed:
        print("failed cases:")
        for n in failed:
            print("  " + n)
    print("%d passed, %d failed" % (len(results) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
