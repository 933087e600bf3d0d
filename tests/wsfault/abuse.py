"""Fault cases for run.py, abuse at scale: trickled frames, a non-reader in
a room, ping and fragment floods, huge declared sizes."""
import os
import select
import socket
import struct
import threading
import time

from faults import (connections, cutoff_server, guarded, read_until_cut, report, rss_bound_kib, small_buffer_conn,
                    stop_checked, threads, wait_for)
from wsclient import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Closed, Conn, Fail, Server,
                      _read_head, clean_close, describe, expect_close, expect_message, frame, quarantine_env)

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
    with guarded(name, srv, "slowloris-frames server", conns=slow):
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


def case_room_reader(exe, readers=3, msg_size=16 * 1024, window=4):
    limit, wtimeout = 256 * 1024, 2.0
    name = "room-reader: a /broadcast member that never reads is cut off; the others get every message in order"
    srv = cutoff_server(exe, limit, wtimeout)
    # What the server may hold for the stuck member is its outbound queue
    # (the limit plus one message) and the kernel's buffers, for the others
    # a window of messages: 32 MiB is far above that and far below the
    # 64 MiB the sender pushes through the room.
    rss_bound = rss_bound_kib(exe, 32)
    conns = []
    with guarded(name, srv, "room-reader server", conns=conns):
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
    srv = Server(exe, env=quarantine_env(exe)).start()
    # The pings are 1 MB of input; answering them needs a pong queue the
    # size of what the client has not read yet, which the outbound limit
    # (1 MiB) caps. 16 MiB is far above that (plus ASan's quarantine).
    rss_bound = rss_bound_kib(exe, 16)
    with guarded(name, srv, "ping-flood server"):
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
    with guarded(name):
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
                bound = rss_bound_kib(exe, 8)
                if rss1 - rss0 > bound:
                    raise Fail("server RSS grew by %d KiB (bound %d KiB)" % (rss1 - rss0, bound))
                infos.append("%s, RSS %d -> %d KiB; %s" % (what, rss0, rss1, other))
            finally:
                stop_checked(srv, "fragment-flood server (limit %s)" % (limit or "default"))
        report(name, None, " | ".join(infos))


def case_huge_sizes(exe):
    name = "huge-sizes: 2^63 and 2^63-1 declared frame lengths, a 100 MiB message, 10,000 upgrade " \
           "headers, a 1 MiB header line: each its close code or status, RSS bounded"
    srv = Server(exe, env=quarantine_env(exe)).start()
    with guarded(name, srv, "huge-sizes server"):
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
        bound = rss_bound_kib(exe, 32, asan_mib=32)
        if peak - rss0 > bound:
            raise Fail("server peak RSS %d KiB, %d KiB over the baseline (bound %d KiB)" % (peak, peak - rss0, bound))
        if wait_for(lambda: connections(srv) == 0, 5) is not True:
            raise Fail("/stats connections %d after every client left" % connections(srv))
        report(name, None, "%s; RSS %d -> %d KiB, peak %d KiB (bound +%d KiB); %s"
               % ("; ".join(seen), rss0, rss1, peak, bound, other))
