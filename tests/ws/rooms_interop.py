#!/usr/bin/env python3
"""Rooms with real clients: Python `websockets` and Node `ws` members of one
room (snow-echo's /broadcast, where every message goes to every other
member, same opcode), on 127.0.0.1 (port 0).

Checked: every member gets every other member's messages exactly once, in
each sender's order, with their opcode, and never its own; a member that
stops reading is skipped and then closed by the server (outbound limit,
write timeout) while the others keep receiving everything.

usage: rooms_interop.py path/to/snow-echo path/to/tests/ws/rooms_peers
"""
import asyncio
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request

import websockets

ECHO, PEERS = sys.argv[1], sys.argv[2]
FAILURES = []
PY_CLIENTS, NODE_CLIENTS, MSGS = 3, 3, 60
LIMIT = 65536  # --outbound-limit of the server under test
WAIT = 30


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def stats(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/stats" % port, timeout=10) as r:
        return json.loads(r.read())


def sent_by(name):
    return [("b:" if k % 10 == 0 else "") + "%s:%d" % (name, k) for k in range(MSGS)]


def split_by_sender(got):
    out = {}
    for m in got:
        text = m[2:] if m.startswith("b:") else m
        out.setdefault(text.rsplit(":", 1)[0], []).append(m)
    return out


async def py_member(url, name, expected, ready, go, results):
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        ready.set()
        await go.wait()
        for k in range(MSGS):
            text = "%s:%d" % (name, k)
            await ws.send(text.encode() if k % 10 == 0 else text)
        got = []
        while len(got) < expected:
            m = await asyncio.wait_for(ws.recv(), WAIT)
            got.append("b:" + m.decode() if isinstance(m, bytes) else m)
        results[name] = got


def slow_member(port):
    """A member that completes the handshake and then never reads."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /broadcast HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % (port, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    check(head.startswith(b"HTTP/1.1 101"), "the slow member's upgrade is accepted")
    return s


def drain(sock):
    """Reads sock until the server closes it: (bytes read, closed)."""
    sock.settimeout(60)
    total = 0
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return total, True
            total += len(chunk)
    except ConnectionResetError:
        return total, True
    except socket.timeout:
        return total, False


async def fanout(port):
    url = "ws://127.0.0.1:%d/broadcast" % port
    members = PY_CLIENTS + NODE_CLIENTS
    expected = (members - 1) * MSGS
    node = await asyncio.create_subprocess_exec(
        "node", os.path.join(PEERS, "peer.js"), url, "node", str(NODE_CLIENTS), str(MSGS), str(expected),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    line = json.loads(await asyncio.wait_for(node.stdout.readline(), WAIT))
    check(line.get("ready") == NODE_CLIENTS, "Node ws members connected")
    go = asyncio.Event()
    readies, results, tasks = [], {}, []
    for i in range(PY_CLIENTS):
        ev = asyncio.Event()
        readies.append(ev)
        tasks.append(asyncio.ensure_future(py_member(url, "py%d" % i, expected, ev, go, results)))
    for ev in readies:
        await asyncio.wait_for(ev.wait(), WAIT)
    # Everyone is a member before anyone sends.
    for _ in range(400):
        if stats(port)["room"]["members"] >= members:
            break
        await asyncio.sleep(0.05)
    check(stats(port)["room"]["members"] == members, "all %d clients are members of the room" % members)
    go.set()
    node.stdin.write(b"go\n")
    await node.stdin.drain()
    for _ in range(NODE_CLIENTS):
        line = json.loads(await asyncio.wait_for(node.stdout.readline(), WAIT))
        if "done" in line:
            results[line["done"]] = line["got"]
        else:
            check(False, "node member %s closed early (%s)" % (line.get("closed"), line.get("code")))
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
    await node.wait()
    names = ["py%d" % i for i in range(PY_CLIENTS)] + ["node%d" % i for i in range(NODE_CLIENTS)]
    for me in names:
        got = results.get(me, [])
        by = split_by_sender(got)
        check(me not in by, "%s never gets its own messages" % me)
        ok = all(by.get(other) == sent_by(other) for other in names if other != me)
        check(ok and len(got) == expected,
              "%s gets every other member's %d messages once, in order, with their opcode" % (me, MSGS))


async def slow_reader(port):
    url = "ws://127.0.0.1:%d/broadcast" % port
    slow = slow_member(port)
    big = "y" * 8192
    count = 200  # 1.6 MB through the room: far beyond the slow member's limit
    async with websockets.connect(url, max_size=None, ping_interval=None) as sender, \
            websockets.connect(url, max_size=None, ping_interval=None) as fast:
        for _ in range(400):
            if stats(port)["room"]["members"] >= 3:
                break
            await asyncio.sleep(0.05)
        # Paced like a conversation (each message is read before the next
        # is sent), so a member that reads never nears its limit.
        got = []
        for k in range(count):
            await sender.send("%d:%s" % (k, big))
            got.append(await asyncio.wait_for(fast.recv(), WAIT))
        check([int(m.split(":", 1)[0]) for m in got] == list(range(count)),
              "a reading member gets all %d messages in order while another member stops reading" % count)
        # The server gives up on the member that does not read: it is
        # skipped over its limit, then closed for the stalled write.
        # Read it on a thread: the event loop keeps serving the other
        # members (their pongs included) meanwhile.
        total, closed = await asyncio.get_event_loop().run_in_executor(None, drain, slow)
        check(closed, "the member that stopped reading is closed by the server")
        check(total < count * len(big), "it was skipped once over its outbound limit (%d of %d bytes reached it)"
              % (total, count * len(big)))
        s = stats(port)
        check(s["backpressure_refused"] >= 1 and s["room"]["skipped_backpressure"] >= 1,
              "the server counts the skipped deliveries (route %d, room %d)"
              % (s["backpressure_refused"], s["room"]["skipped_backpressure"]))
        reaped = s["closed_write_stall"] + s["closed_backpressure"] + s["closed_heartbeat"]
        check(reaped >= 1, "the server counts why it closed it (write stall %d, backpressure %d, heartbeat %d)"
              % (s["closed_write_stall"], s["closed_backpressure"], s["closed_heartbeat"]))
        # And the room keeps working for the others.
        await sender.send("after")
        check(await asyncio.wait_for(fast.recv(), WAIT) == "after", "the room keeps delivering afterwards")
    slow.close()


def main():
    proc = subprocess.Popen([ECHO, "--host", "127.0.0.1", "--port", "0", "--outbound-limit", str(LIMIT),
                             "--write-timeout", "2", "--ping-interval", "2", "--pong-timeout", "2"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.match(r"listening on (\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit("snow-echo did not start: %r" % line)
    port = int(m.group(1))
    try:
        asyncio.run(fanout(port))
        asyncio.run(slow_reader(port))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            check(proc.wait(timeout=10) == 0, "snow-echo exits 0 on SIGTERM")
        except subprocess.TimeoutExpired:
            proc.kill()
            check(False, "snow-echo exits on SIGTERM")
    if FAILURES:
        print("%d check(s) failed" % len(FAILURES))
        sys.exit(1)
    print("all rooms interop checks passed")


if __name__ == "__main__":
    main()
