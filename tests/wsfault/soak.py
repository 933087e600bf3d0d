#!/usr/bin/env python3
"""Soak: a bounded mixed churn against snow-echo over 127.0.0.1, after which
everything the server holds returns to its baseline.

    soak.py SNOW_ECHO [--seconds N]     (30 in CI; 300 for the full soak)

For N seconds, at once:

  - two echo clients open /echo connections, echo 1-3 messages of up to
    8 KiB, and end them with the closing handshake, or with an RST (some in
    the middle of a frame);
  - a room client keeps 8-24 members on /broadcast: it joins new ones,
    broadcasts from random members, reads every member (answering pings),
    and makes members leave with a closing handshake or an RST;
  - half-open clients upgrade (on /echo or /broadcast, some mid-frame) and
    then neither read nor answer: the server's heartbeat (ping 1 s + pong
    1 s here) must end each, which the client sees as the end of TCP.

Checked during the run: every echo comes back whole; every broadcast a
member receives is intact and, per sender, in order without duplicates;
every half-open connection is ended by the server within ping + pong +
4 s. Checked after it, against a baseline taken after a warm-up of the
same mix (so the runtime's caches -- actor structs, stacks, buffers --
have already grown to this load's peak): /stats connections 0, /broadcast
room members 0, process table (/stats actors, snow_actor_count) and
threads equal to the baseline, open fds (/proc/PID/fd) equal, RSS within
the tolerance below. The half-open clients still hold their sockets
when connections reach 0, so it is the heartbeat that ended them.

RSS tolerance: 2 MiB (plus ASan's 16 MiB quarantine and 64 KiB a thread
in sanitizer builds). The warm-up leaves every bounded cache at its peak,
so what may remain is allocator slack; the run prints how many connections
it made, and 2 MiB over them is the smallest per-connection leak it
catches (56 bytes over the 37,726 connections of one 30 s run in the gcc
build on a loaded 2-core machine, 5 bytes over the 411,562 of a 300 s one;
those runs ended 524 and 400 KiB over the baseline).

Prints what it measured and 'N passed, N failed' last.
"""
import os
import random
import select
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "wsconf"))
from runner import Results, take_option  # noqa: E402
from wsclient import (OP_BINARY, OP_CLOSE, OP_TEXT, Closed, Conn, Fail, Server,  # noqa: E402
                      clean_close, describe, expect_message, frame, is_sanitized, quarantine_env)

PING, PONG = 1.0, 1.0
REAP_BOUND = PING + PONG + 4.0
# A half-open member of the room queues broadcasts up to this limit until
# the heartbeat ends it: a small one keeps those transient peaks (and the
# allocator slack they leave behind) small next to the RSS tolerance.
OUTBOUND = 64 * 1024


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.n = {}

    def add(self, key, k=1):
        with self.lock:
            self.n[key] = self.n.get(key, 0) + k


def echo_client(port, stop, counts, errors, rnd):
    while not stop.is_set():
        try:
            c = Conn(port, "/echo", timeout=20)
            counts.add("connections")
            for _ in range(rnd.randint(1, 3)):
                body = os.urandom(rnd.randint(0, 8192))
                c.send(OP_BINARY, body)
                expect_message(c, OP_BINARY, body, timeout=20)
                counts.add("echoes")
            how = rnd.random()
            if how < 0.5:
                clean_close(c)
                counts.add("clean closes")
            elif how < 0.75:
                c.abort()
                counts.add("RST drops")
            else:
                # an RST in the middle of a frame
                c.write(frame(OP_TEXT, b"x" * 300)[:rnd.randint(1, 200)])
                c.abort()
                counts.add("RST drops")
            c.close()
        except (Fail, Closed, OSError, TimeoutError) as e:
            errors.append("echo client: %s: %s" % (type(e).__name__, e))
            return


class Room:
    """The /broadcast members, all driven from one thread."""

    def __init__(self, port, counts, rnd):
        self.port, self.counts, self.rnd = port, counts, rnd
        self.members = []     # (Conn, id)
        self.next_id = 0
        self.seq = {}         # sender id -> next sequence number it sends
        self.seen = {}        # (receiver id, sender id) -> last sequence received

    def join(self):
        c = Conn(self.port, "/broadcast", timeout=20)
        mid = self.next_id
        self.next_id += 1
        self.members.append((c, mid))
        self.seq[mid] = 0
        self.counts.add("connections")
        self.counts.add("joins")

    def leave(self):
        c, mid = self.members.pop(self.rnd.randrange(len(self.members)))
        if self.rnd.random() < 0.5:
            # the closing handshake; broadcasts may still arrive before the Close
            c.send(OP_CLOSE, struct.pack("!H", 1000))
            while True:
                op, data = c.recv_message(timeout=20)
                if op == OP_CLOSE:
                    break
                self.check(mid, op, data)
            if c.wait_eof(10) is not True:
                raise Fail("room member %d: no end of TCP after the closing handshake" % mid)
            self.counts.add("clean closes")
        else:
            c.abort()
            self.counts.add("RST drops")
        c.close()

    def broadcast(self):
        c, mid = self.rnd.choice(self.members)
        n = self.seq[mid]
        self.seq[mid] = n + 1
        c.send(OP_TEXT, b"%d %d " % (mid, n) + b"b" * self.rnd.randint(0, 2000))
        self.counts.add("broadcasts")

    def check(self, mid, op, data):
        if op != OP_TEXT:
            raise Fail("room member %d got %s" % (mid, describe(op, data)))
        parts = data.split(b" ", 2)
        sender, n = int(parts[0]), int(parts[1])
        if sender == mid:
            raise Fail("room member %d got its own broadcast" % mid)
        if parts[2].strip(b"b"):
            raise Fail("room member %d: broadcast %d/%d damaged" % (mid, sender, n))
        last = self.seen.get((mid, sender), -1)
        if n <= last:
            raise Fail("room member %d: broadcast %d of %d after %d (out of order or twice)" % (mid, n, sender, last))
        self.seen[(mid, sender)] = n
        self.counts.add("deliveries")

    def read(self, timeout):
        socks = {c.sock: (c, mid) for c, mid in self.members}
        pending = [s for s, (c, _) in socks.items() if c.buf]
        r = pending or select.select(list(socks), [], [], timeout)[0]
        for s in r:
            c, mid = socks[s]
            while True:
                try:
                    op, data = c.recv_message(timeout=0.001)
                except TimeoutError:
                    break
                self.check(mid, op, data)
                if not c.buf:
                    break

    def step(self):
        r = self.rnd.random()
        if len(self.members) < 8 or (r < 0.1 and len(self.members) < 24):
            self.join()
        elif r < 0.2:
            self.leave()
        else:
            self.broadcast()
        self.read(0.005)

    def close_all(self):
        while self.members:
            self.leave()


class Ghosts:
    """Half-open clients: upgraded, then never read from or answered."""

    def __init__(self, port, counts, rnd):
        self.port, self.counts, self.rnd = port, counts, rnd
        self.open = []  # (Conn, since)
        self.reaped = []

    def add(self):
        path = self.rnd.choice(["/echo", "/broadcast"])
        c = Conn(self.port, path, timeout=20)
        if self.rnd.random() < 0.3:
            c.write(frame(OP_BINARY, b"g" * 100)[:self.rnd.randint(1, 50)])
        self.open.append((c, time.monotonic()))
        self.counts.add("connections")
        self.counts.add("half-open")

    def collect(self, final=False):
        """Closes the ones the server ended; fails on one it kept too long."""
        keep = []
        for c, since in self.open:
            age = time.monotonic() - since
            if age < PING + PONG and not final:
                keep.append((c, since))
                continue
            ended = ended_by_server(c)
            if ended:
                if not final:  # the age is only as exact as the polling
                    self.reaped.append(age)
                c.close()
            elif age > REAP_BOUND:
                raise Fail("a half-open client was still connected %.1f s after it went silent (bound %.1f s)"
                           % (age, REAP_BOUND))
            else:
                keep.append((c, since))
        self.open = keep


def ended_by_server(c):
    """True when the server ended TCP (whatever it sent before: pings, a Close)."""
    while True:
        r, _, _ = select.select([c.sock], [], [], 0)
        if not r:
            return False
        try:
            chunk = c.sock.recv(65536)
        except OSError:
            return True
        if not chunk:
            return True


def churn(srv, seconds, counts, errors, seed):
    rnd = random.Random(seed)
    stop = threading.Event()
    workers = [threading.Thread(target=echo_client, args=(srv.port, stop, counts, errors, random.Random(seed + k)),
                                daemon=True) for k in (1, 2)]
    for w in workers:
        w.start()
    room = Room(srv.port, counts, rnd)
    ghosts = Ghosts(srv.port, counts, rnd)
    end = time.monotonic() + seconds
    last_ghost = 0.0
    try:
        while time.monotonic() < end and not errors:
            room.step()
            if time.monotonic() - last_ghost > 0.25:
                ghosts.add()
                last_ghost = time.monotonic()
            ghosts.collect()
        room.close_all()
    finally:
        stop.set()
        for w in workers:
            w.join(60)
    return ghosts


def snapshot(srv):
    st = srv.stats()
    return {"connections": st["connections"], "members": st["room"]["members"], "actors": st["actors"],
            "threads": srv.proc_status("Threads"), "fds": srv.fd_count(), "rss": srv.rss_kib()}


def settle(srv, base, timeout=15):
    """Waits until the counts that must return exactly are back, or timeout."""
    deadline = time.monotonic() + timeout
    while True:
        s = snapshot(srv)
        if all(s[k] == base[k] for k in ("connections", "members", "actors", "threads", "fds")) \
                or time.monotonic() > deadline:
            return s
        time.sleep(0.1)


def main():
    args = sys.argv[1:]
    seconds = float(take_option(args, "--seconds", 30.0))
    if len(args) != 1:
        print("usage: soak.py SNOW_ECHO [--seconds N]", file=sys.stderr)
        return 2
    exe = args[0]
    asan = is_sanitized(exe)
    srv = Server(exe, "--ping-interval", str(PING), "--pong-timeout", str(PONG), "--outbound-limit", str(OUTBOUND),
                 env=quarantine_env(exe)).start()
    results = Results()
    try:
        empty = snapshot(srv)
        # warm-up: the same mix, so every cache reaches this load's size
        warm = Counts()
        errors = []
        g = churn(srv, min(8.0, max(3.0, seconds / 10)), warm, errors, 1)
        if errors:
            raise Fail("warm-up: " + errors[0])
        time.sleep(REAP_BOUND)
        g.collect(final=True)
        base = settle(srv, dict(empty, actors=empty["actors"], threads=empty["threads"]))
        if base["connections"] or base["members"]:
            raise Fail("after the warm-up: /stats connections %d, room members %d" % (base["connections"],
                                                                                       base["members"]))
        counts = Counts()
        t0 = time.monotonic()
        ghosts = churn(srv, seconds, counts, errors, 2)
        if errors:
            raise Fail(errors[0])
        mid = snapshot(srv)
        # the half-open ones still hold their sockets: only the heartbeat can end them
        s = settle(srv, dict(base, fds=mid["fds"]), timeout=REAP_BOUND + 2)
        if s["connections"] != 0:
            raise Fail("/stats connections %d with only half-open clients left, %.1f s after the churn"
                       % (s["connections"], REAP_BOUND + 2))
        ghosts.collect(final=True)
        if ghosts.open:
            raise Fail("%d half-open clients not ended by the server" % len(ghosts.open))
        time.sleep(0.5)
        after = settle(srv, base)
        spent = time.monotonic() - t0
        tol = 2048 + (16 * 1024 + after["threads"] * 64 if asan else 0)
        total = counts.n.get("connections", 0)
        info = ("%.0f s churn: %s; half-open reaped after %.1f-%.1f s; baseline -> after: connections %d -> %d, "
                "members %d -> %d, actors %d -> %d, threads %d -> %d, fds %d -> %d, RSS %d -> %d KiB "
                "(tolerance %d KiB: %.0f bytes over each of %d connections)"
                % (seconds, ", ".join("%s %d" % kv for kv in sorted(counts.n.items())),
                   min(ghosts.reaped or [0]), max(ghosts.reaped or [0]),
                   base["connections"], after["connections"], base["members"], after["members"],
                   base["actors"], after["actors"], base["threads"], after["threads"],
                   base["fds"], after["fds"], base["rss"], after["rss"], tol, tol * 1024.0 / max(1, total), total))
        for k in ("connections", "members", "actors", "threads", "fds"):
            if after[k] != base[k]:
                raise Fail("%s %d after the soak, baseline %d; %s" % (k, after[k], base[k], info))
        if after["rss"] > base["rss"] + tol:
            raise Fail("RSS grew by %d KiB; %s" % (after["rss"] - base["rss"], info))
        results.report("soak", None, "%s; %.1f s in all" % (info, spent))
    except (Fail, OSError, Closed) as e:
        results.report("soak", "%s: %s" % (type(e).__name__, e))
    results.stop_checked(srv, "soak server")
    return results.summary()


if __name__ == "__main__":
    sys.exit(main())
