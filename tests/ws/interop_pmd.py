#!/usr/bin/env python3
"""permessage-deflate against Python's websockets client (compression on by
default there) and snow-echo --deflate on 127.0.0.1 (port 0): the
negotiated header for each offer the client can make, compressed echo of
text and binary at many sizes, fragmented compressed messages, and the
route's own no-context-takeover and window options. With Node and the
`ws` package (tests/wsinterop/node_modules, from scripts/setup-node.sh), the same echo runs
through Node's ws with perMessageDeflate too.

usage: interop_pmd.py path/to/snow-echo
"""
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

ECHO = sys.argv[1]
FAILURES = []
TIMEOUT = 60
HERE = os.path.dirname(os.path.abspath(__file__))


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


class Server:
    def __init__(self, *extra):
        self.proc = subprocess.Popen([ECHO, "--host", "127.0.0.1", "--port", "0", "--ping-interval", "0", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError("snow-echo did not start: %r %s" % (line, self.proc.stderr.read()))
        self.port = int(line.split()[2])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def payload(n, seed):
    rows = []
    size = 0
    i = seed
    while size < n:
        row = json.dumps({"id": i, "user": "user%d" % (i % 17), "text": "hello world " * (i % 5), "tags": ["a", "b"]})
        rows.append(row)
        size += len(row) + 1
        i += 1
    return ("[" + ",".join(rows) + "]")[:n]


SIZES = [0, 1, 63, 64, 125, 126, 1000, 65535, 65536, 100000, 1 << 20]


async def echo_round(uri, factory, want_in_header, label):
    kw = {"max_size": 4 << 20, "ping_interval": None}
    if factory is not None:
        kw["extensions"] = [factory]
        kw["compression"] = None
    async with websockets.connect(uri, **kw) as ws:
        ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
        for w in want_in_header:
            check(w in ext, "%s: answer %r contains %r" % (label, ext, w))
        ok = True
        for round_ in range(2):
            for n in SIZES:
                text = payload(n, n + round_)
                await ws.send(text)
                ok &= await ws.recv() == text
                data = text.encode() + bytes(range(256))
                await ws.send(data)
                ok &= await ws.recv() == data
        # A fragmented compressed message (an iterable of fragments).
        parts = [payload(3000, k) for k in range(5)]
        await ws.send(iter(parts))
        ok &= await ws.recv() == "".join(parts)
        check(ok, "%s: compressed echo of %d sizes, text and binary, and fragments" % (label, len(SIZES)))


def offers():
    yield "default offer", None, ["permessage-deflate"]
    yield "server_no_context_takeover", ClientPerMessageDeflateFactory(server_no_context_takeover=True), \
        ["server_no_context_takeover"]
    yield "client_no_context_takeover", ClientPerMessageDeflateFactory(client_no_context_takeover=True), \
        ["client_no_context_takeover"]
    yield "server_max_window_bits=10", ClientPerMessageDeflateFactory(server_max_window_bits=10), \
        ["server_max_window_bits=10"]
    yield "client_max_window_bits=9", ClientPerMessageDeflateFactory(client_max_window_bits=9), \
        ["client_max_window_bits=9"]
    yield "both windows 12, both no takeover", ClientPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True, server_max_window_bits=12,
        client_max_window_bits=12), ["server_no_context_takeover", "client_no_context_takeover",
                                     "server_max_window_bits=12", "client_max_window_bits=12"]


async def python_client():
    srv = Server("--deflate")
    try:
        uri = "ws://127.0.0.1:%d/echo" % srv.port
        for label, factory, want in offers():
            await echo_round(uri, factory, want, "websockets " + label)
    finally:
        check(srv.stop() == 0, "snow-echo --deflate exits 0 on SIGTERM")
    srv = Server("--deflate-no-context-takeover", "--deflate-window-bits", "10", "--deflate-threshold", "0")
    try:
        uri = "ws://127.0.0.1:%d/echo" % srv.port
        await echo_round(uri, None, ["server_no_context_takeover", "client_no_context_takeover",
                                     "client_max_window_bits=10"], "websockets vs route options")
    finally:
        srv.stop()
    srv = Server()
    try:
        async with websockets.connect("ws://127.0.0.1:%d/echo" % srv.port, ping_interval=None) as ws:
            check("Sec-WebSocket-Extensions" not in ws.response_headers,
                  "without --deflate no extension is agreed")
            await ws.send("plain")
            check(await ws.recv() == "plain", "and messages go plain")
    finally:
        srv.stop()


NODE_CLIENT = r"""
const WebSocket = require('ws');
const [uri, opts] = [process.argv[1], JSON.parse(process.argv[2])];
const ws = new WebSocket(uri, {perMessageDeflate: opts});
const sizes = [0, 1, 63, 64, 1000, 65536, 300000];
let i = 0, expect = null;
function next() {
  if (i === 2 * sizes.length) { console.log('EXT ' + ws.extensions); ws.close(1000); return; }
  const n = sizes[i >> 1];
  const s = JSON.stringify({n, text: 'hello '.repeat(n / 6 + 1)}).slice(0, n);
  expect = (i & 1) ? Buffer.from(s) : s;
  ws.send(expect, {binary: (i & 1) === 1, compress: true});
  i++;
}
ws.on('upgrade', (res) => console.log('HDR ' + res.headers['sec-websocket-extensions']));
ws.on('open', next);
ws.on('message', (data, isBinary) => {
  const got = isBinary ? data : data.toString();
  if (isBinary ? !Buffer.from(expect).equals(got) : got !== expect) { console.log('MISMATCH ' + i); process.exit(1); }
  next();
});
ws.on('close', (code) => { console.log('CLOSE ' + code); process.exit(code === 1000 ? 0 : 1); });
ws.on('error', (e) => { console.log('ERROR ' + e); process.exit(1); });
"""


def node_client():
    node = shutil.which("node")
    # The interop suite's copy of Node ws (scripts/setup-node.sh, which
    # scripts/setup.sh runs). Missing, it is a failure, never a skip.
    modules = os.path.join(HERE, "..", "wsinterop", "node_modules")
    if not node or not os.path.isdir(os.path.join(modules, "ws")):
        check(False, "Node ws is not installed in tests/wsinterop/node_modules (run scripts/setup-node.sh)")
        return
    srv = Server("--deflate")
    try:
        uri = "ws://127.0.0.1:%d/echo" % srv.port
        for label, opts, want in [
                ("default", {}, "permessage-deflate"),
                ("no context takeover", {"serverNoContextTakeover": True, "clientNoContextTakeover": True},
                 "server_no_context_takeover"),
                ("windows 10", {"serverMaxWindowBits": 10, "clientMaxWindowBits": 10}, "server_max_window_bits")]:
            r = subprocess.run([node, "-e", NODE_CLIENT, uri, json.dumps(opts)], capture_output=True, text=True,
                               timeout=TIMEOUT, env=dict(os.environ, NODE_PATH=modules))
            out = r.stdout
            check(r.returncode == 0 and "CLOSE 1000" in out and "EXT permessage-deflate" in out,
                  "node ws %s: compressed echo (%s)" % (label, out.strip().replace("\n", " | ")))
            hdr = [l for l in out.splitlines() if l.startswith("HDR ")]
            check(bool(hdr) and want in hdr[0], "node ws %s: agreed %s" % (label, want))
    finally:
        srv.stop()


asyncio.run(python_client())
node_client()
if FAILURES:
    print("%d failed" % len(FAILURES))
    sys.exit(1)
