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
import os
import select
import signal
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "wsconf"))
from runner import take_option  # noqa: E402
from faults import (connections, cutoff_server, guarded, read_until_cut, report, results, rss_bound_kib,  # noqa: E402
                    small_buffer_conn, stop_checked, threads, wait_for)
from abuse import (case_fragment_flood, case_huge_sizes, case_ping_flood, case_room_reader,  # noqa: E402
                   case_slowloris_frames)
from wsclient import (OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT, Closed, Conn, Fail, Server,  # noqa: E402
                      clean_close, close_payload, describe, expect_close, expect_message, frame, is_sanitized,
                      quarantine_env)

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
    srv = cutoff_server(exe, limit, wtimeout)
    # The flood is up to 256 MiB; a server that kept what it cannot deliver
    # would grow by that much. What it may hold is one outbound queue (the
    # limit plus one message) and its read buffers: 32 MiB is far above
    # that and far below the flood (plus the quarantine under ASan).
    rss_bound = rss_bound_kib(exe, 32)
    with guarded(name, srv, "slow-reader server"):
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
    with guarded(name, srv, "churn server"):
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


def case_panic(exe):
    name = "panic: a handler panic closes its connection with 1011; /echo still served, counts back to baseline"
    srv = Server(exe).start()
    with guarded(name, srv, "panic server"):
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


def case_drain(exe, answer):
    n = 100
    name = "drain: SIGTERM with %d open connections (%s): each gets close 1001, exit 0 within 5 s" % (
        n, "clients answer the close" if answer else "clients never answer")
    srv = Server(exe).start()
    conns = []
    with guarded(name, srv, conns=conns, kill=True):
        conns.extend(Conn(srv.port, "/echo") for _ in range(n))
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
