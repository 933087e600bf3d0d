#!/usr/bin/env python3
"""Interop of snow-echo with real WebSocket clients over 127.0.0.1:
Python `websockets` (Debian python3-websockets, 10.x API) and Node `ws`
(tests/wsinterop/node_modules, installed by scripts/setup-node.sh).

    run.py SNOW_ECHO [-k SUBSTRING]

Covers text and binary echo from 0 bytes to 16 MiB, fragmented sends,
ping/pong, the close paths (client codes echoed; server 1002, 1007, 1009,
1001 on drain), subprotocol negotiation (/echo offers none, /proto prefers snow.v2 over
snow.v1), the Origin refusal before the 101, the 401 refusal in on_connect
on /private (and its acceptance with the bearer token),
the server's heartbeat against real clients, and wss with a CA and
certificate made here with openssl. A missing client library is a failed
case, never a skipped one. Prints one line per case and 'N passed, N
failed' last.
"""
import asyncio
import os
import signal
import ssl
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "wsconf"))
from runner import Results, take_option  # noqa: E402
from wsclient import Server, make_certs  # noqa: E402

try:
    import websockets
    import websockets.exceptions as wsx
    WS_IMPORT_ERROR = None
except ImportError as e:  # reported as a failed case
    websockets = None
    WS_IMPORT_ERROR = "%s (interpreter %s; Debian package python3-websockets)" % (e, sys.executable)

LIMIT = 4096
results = Results()  # main sets results.only from -k
report = results.report
stop_checked = results.stop_checked


# ---------------------------------------------------------------------------
# Python websockets

def connect(port, path="/echo", **kw):
    kw.setdefault("max_size", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("compression", None)
    kw.setdefault("open_timeout", 10)
    kw.setdefault("close_timeout", 10)
    scheme = "wss" if "ssl" in kw else "ws"
    host = "localhost" if "ssl" in kw else "127.0.0.1"
    return websockets.connect("%s://%s:%d%s" % (scheme, host, port, path), **kw)


def payload(n, text):
    if text:
        return "*" * n
    return (bytes(range(256)) * (n // 256 + 1))[:n]


def raw_frame(b0, body):
    key = b"\x01\x02\x03\x04"
    return struct.pack("!BB", b0, 0x80 | len(body)) + key + bytes(c ^ key[i % 4] for i, c in enumerate(body))


async def close_code_after(ws, timeout=10):
    """Waits for the server to end the connection; returns its close code."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except wsx.ConnectionClosed:
        return ws.close_code


def py_cases(port, limit_port, tls_port, ca):
    cases = []

    def add(name):
        def deco(fn):
            cases.append((name, fn))
            return fn
        return deco

    for text in (True, False):
        for n in (0, 125, 126, 65535, 65536, 1 << 20, 16 << 20):
            def mk(n=n, text=text):
                async def fn():
                    async with connect(port) as ws:
                        p = payload(n, text)
                        await ws.send(p)
                        got = await asyncio.wait_for(ws.recv(), 30)
                        assert type(got) is type(p), "got %s for %s" % (type(got).__name__, type(p).__name__)
                        assert got == p, "echo differs (%d for %d)" % (len(got), len(p))
                    assert ws.close_code == 1000, "close answered with %s" % ws.close_code
                return fn
            add("python: echo %s %d bytes" % ("text" if text else "binary", n))(mk())

    @add("python: fragmented text send (iterable of 4 fragments)")
    async def _():
        async with connect(port) as ws:
            parts = ["frag-1 ", "κόσμε ", "", "frag-4"]
            await ws.send(iter(parts))
            assert await asyncio.wait_for(ws.recv(), 10) == "".join(parts)

    @add("python: fragmented binary send (64 fragments of 1 KiB)")
    async def _():
        async with connect(port) as ws:
            p = payload(65536, False)
            await ws.send(p[i:i + 1024] for i in range(0, len(p), 1024))
            assert await asyncio.wait_for(ws.recv(), 10) == p

    @add("python: ping with payload -> pong, then echo still in order")
    async def _():
        async with connect(port) as ws:
            waiter = await ws.ping(b"py ping")
            await asyncio.wait_for(waiter, 10)
            await ws.send("after ping")
            assert await asyncio.wait_for(ws.recv(), 10) == "after ping"

    for code, reason in ((1000, ""), (1001, "going away"), (3000, "app"), (4999, "κόσμε")):
        def mk(code=code, reason=reason):
            async def fn():
                ws = await connect(port)
                await ws.close(code, reason)
                assert ws.close_code == code, "server answered %s" % ws.close_code
            return fn
        add("python: client close %d is answered with %d" % (code, code))(mk())

    @add("python: message over --max-message -> server closes 1009")
    async def _():
        async with connect(limit_port) as ws:
            await ws.send(payload(LIMIT + 1, False))
            code = await close_code_after(ws)
            assert code == 1009, "close code %s" % code

    @add("python: message of exactly --max-message is echoed")
    async def _():
        async with connect(limit_port) as ws:
            await ws.send(payload(LIMIT, True))
            assert await asyncio.wait_for(ws.recv(), 10) == payload(LIMIT, True)

    @add("python: text frame with invalid UTF-8 -> server closes 1007")
    async def _():
        async with connect(port) as ws:
            ws.transport.write(raw_frame(0x81, b"ok\xed\xa0\x80"))
            code = await close_code_after(ws)
            assert code == 1007, "close code %s" % code

    @add("python: unmasked frame -> server closes 1002")
    async def _():
        async with connect(port) as ws:
            ws.transport.write(b"\x81\x02hi")
            code = await close_code_after(ws)
            assert code == 1002, "close code %s" % code

    @add("python: offered subprotocols, none supported -> open with no subprotocol")
    async def _():
        async with connect(port, subprotocols=["snow.v1", "snow.v2"]) as ws:
            assert ws.subprotocol is None, "server chose %r" % ws.subprotocol

    for offer, want in ((["snow.v1", "snow.v2"], "snow.v2"), (["snow.v1"], "snow.v1"), (["other"], None)):
        def mk(offer=offer, want=want):
            async def fn():
                async with connect(port, "/proto", subprotocols=offer) as ws:
                    assert ws.subprotocol == want, "server chose %r" % ws.subprotocol
                    await ws.send("proto")
                    assert await asyncio.wait_for(ws.recv(), 10) == "proto"
            return fn
        add("python: /proto offered %s -> subprotocol %s" % (", ".join(offer), want or "none"))(mk())

    for headers in ({}, {"Authorization": "Bearer wrong"}):
        def mk(headers=headers):
            async def fn():
                try:
                    ws = await connect(port, "/private", extra_headers=headers)
                except wsx.InvalidStatusCode as e:
                    assert e.status_code == 401, "status %d" % e.status_code
                    got = e.headers.get("WWW-Authenticate")
                    assert got == 'Bearer realm="snow-echo"', "WWW-Authenticate %r" % got
                    return
                await ws.close()
                raise AssertionError("the upgrade was accepted")
            return fn
        add("python: /private %s -> 401 with WWW-Authenticate before the 101"
            % ("with a wrong token" if headers else "without a token"))(mk())

    @add("python: /private with the bearer token is accepted and echoes")
    async def _():
        async with connect(port, "/private", extra_headers={"Authorization": "Bearer snow-echo"}) as ws:
            await ws.send("let me in")
            assert await asyncio.wait_for(ws.recv(), 10) == "let me in"
        assert ws.close_code == 1000, "close code %s" % ws.close_code

    @add("python: cross-origin upgrade refused with 403 before the 101")
    async def _():
        try:
            ws = await connect(port, origin="http://evil.example")
        except wsx.InvalidStatusCode as e:
            assert e.status_code == 403, "status %d" % e.status_code
            return
        await ws.close()
        raise AssertionError("the upgrade was accepted")

    @add("python: same-origin upgrade accepted")
    async def _():
        async with connect(port, origin="http://127.0.0.1:%d" % port) as ws:
            await ws.send("same origin")
            assert await asyncio.wait_for(ws.recv(), 10) == "same origin"

    @add("python: /broadcast with three clients: everyone but the sender gets each message")
    async def _():
        conns = [await connect(port, "/broadcast") for _ in range(3)]
        await asyncio.sleep(0.1)
        for i, sender in enumerate(conns):
            msg = ("from %d" % i) if i != 1 else b"\x00binary from 1"
            await sender.send(msg)
            for j, other in enumerate(conns):
                if j != i:
                    got = await asyncio.wait_for(other.recv(), 10)
                    assert got == msg, "client %d got %r for %r" % (j, got, msg)
        for ws in conns:
            try:
                extra = await asyncio.wait_for(ws.recv(), 0.2)
                raise AssertionError("unexpected extra message %r" % (extra,))
            except asyncio.TimeoutError:
                pass
            await ws.close()

    if ca is not None:
        ctx = ssl.create_default_context(cafile=ca)
        for n in (0, 126, 65536, 1 << 20, 16 << 20):
            def mk(n=n):
                async def fn():
                    async with connect(tls_port, ssl=ctx) as ws:
                        p = payload(n, n % 2 == 0)
                        await ws.send(p)
                        got = await asyncio.wait_for(ws.recv(), 60)
                        assert got == p, "echo differs (%d bytes for %d)" % (len(got), len(p))
                    assert ws.close_code == 1000, "close code %s" % ws.close_code
                return fn
            add("python: wss echo %d bytes (certificate from the test CA)" % n)(mk())

        @add("python: wss 20 fresh connections, each echoing 1 MiB then 16 MiB, each closed 1000")
        async def _():
            for i in range(20):
                async with connect(tls_port, ssl=ctx) as ws:
                    for n in (1 << 20, 16 << 20):
                        p = payload(n, i % 2 == 0)
                        await ws.send(p)
                        try:
                            got = await asyncio.wait_for(ws.recv(), 30)
                        except asyncio.TimeoutError:
                            raise AssertionError("connection %d: no echo of %d bytes within 30 s" % (i + 1, n))
                        assert got == p, "connection %d: echo differs (%d bytes for %d)" % (i + 1, len(got), n)
                assert ws.close_code == 1000, "connection %d: close code %s" % (i + 1, ws.close_code)

        @add("python: wss fragmented send and ping")
        async def _():
            async with connect(tls_port, ssl=ctx) as ws:
                await ws.send(iter(["tls ", "fragments"]))
                assert await asyncio.wait_for(ws.recv(), 10) == "tls fragments"
                await asyncio.wait_for(await ws.ping(b"tls"), 10)

        @add("python: wss without the test CA fails certificate verification")
        async def _():
            try:
                ws = await connect(tls_port, ssl=ssl.create_default_context())
            except ssl.SSLCertVerificationError:
                return
            await ws.close()
            raise AssertionError("connected without trusting the CA")
    return cases


def run_py_cases(cases):
    async def one(fn):
        await asyncio.wait_for(fn(), 90)
    for name, fn in cases:
        if not results.wanted(name):
            continue
        try:
            asyncio.run(one(fn))
            report(name, None)
        except AssertionError as e:
            report(name, str(e) or "assertion failed")
        except Exception as e:  # noqa: BLE001 - any error is this case's failure
            report(name, "%s: %s" % (type(e).__name__, e))


def py_heartbeat(exe):
    """The server pings every 0.3 s (pong timeout 1 s); a real client
    answers by itself and stays connected across many intervals."""
    name = "python: server heartbeat (ping 0.3 s) is answered by the client; connection stays open 3 s"
    if not results.wanted(name):
        return
    srv = Server(exe, "--ping-interval", "0.3", "--pong-timeout", "1").start()
    try:
        async def fn():
            async with connect(srv.port) as ws:
                pongs = []
                auto_pong = ws.pong

                async def counting(data=b""):
                    pongs.append(data)
                    return await auto_pong(data)
                ws.pong = counting  # the client answers each server ping through pong()
                await asyncio.sleep(3)
                await ws.send("still here")
                assert await asyncio.wait_for(ws.recv(), 10) == "still here"
                # 3 s at one ping per 0.3 s: a bound loose enough for a loaded machine
                assert len(pongs) >= 3, "the client answered %d server pings in 3 s" % len(pongs)
            assert ws.close_code == 1000, "closed with %s" % ws.close_code
        asyncio.run(asyncio.wait_for(fn(), 30))
        report(name, None)
    except Exception as e:  # noqa: BLE001
        report(name, "%s: %s" % (type(e).__name__, e))
    finally:
        stop_checked(srv, "heartbeat server")


def drain(exe, node_ok):
    """SIGTERM: every connected client (Python and Node) sees close 1001 and
    the server exits 0."""
    name = "drain: SIGTERM closes Python and Node clients with 1001, server exits 0"
    if not node_ok:
        name = "drain: SIGTERM closes Python clients with 1001, server exits 0 (no Node clients: node ws failed)"
    if not results.wanted(name):
        return
    srv = Server(exe).start()
    holders = []
    try:
        if node_ok:
            for _ in range(3):
                p = subprocess.Popen(["node", os.path.join(HERE, "node_client.js"), "hold", str(srv.port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                holders.append(p)
                line = p.stdout.readline().strip()
                if line != "open":
                    raise AssertionError("node client: %r" % line)

        async def fn():
            conns = [await connect(srv.port) for _ in range(3)]
            srv.proc.send_signal(signal.SIGTERM)
            codes = [await close_code_after(ws) for ws in conns]
            assert codes == [1001] * 3, "python clients got %s" % codes
        asyncio.run(asyncio.wait_for(fn(), 30))
        for p in holders:
            out, _ = p.communicate(timeout=10)
            if out.strip() != "close 1001":
                raise AssertionError("node client got %r" % out.strip())
        status = srv.proc.wait(10)
        if status != 0:
            raise AssertionError("server exit status %s\n%s" % (status, srv.stderr_tail()))
        report(name, None)
    except Exception as e:  # noqa: BLE001
        report(name, "%s: %s" % (type(e).__name__, e))
    finally:
        for p in holders:
            if p.poll() is None:
                p.kill()
                p.wait()
        srv.kill()


def run_node(port, limit_port, tls_port, ca):
    try:
        out = subprocess.run(["node", os.path.join(HERE, "node_client.js"), "cases", str(port), str(limit_port),
                              str(LIMIT), str(tls_port), ca], capture_output=True, text=True, timeout=400)
    except FileNotFoundError:
        report("node: node is not installed (scripts/setup-node.sh needs node and npm)", "missing peer")
        return False
    except subprocess.TimeoutExpired:
        report("node: client run finished", "timed out after 400 s")
        return False
    lines = out.stdout.splitlines()
    ok = True
    for ln in lines:
        if ln.startswith("ok "):
            report("node: " + ln[3:], None)
        elif ln.startswith("FAIL "):
            name, _, why = ln[5:].partition(": ")
            report("node: " + name, why or "failed")
            ok = ok and not name.startswith("node ws")
    if "done" not in lines:
        report("node: client run finished", "exit %d without 'done'\n%s" % (out.returncode, out.stderr[-2000:]))
        ok = False
    return ok


def main():
    args = sys.argv[1:]
    results.only = take_option(args, "-k")
    if len(args) != 1:
        print("usage: run.py SNOW_ECHO [-k SUBSTRING]", file=sys.stderr)
        return 2
    exe = args[0]
    tmp = tempfile.mkdtemp(prefix="snow-wsinterop-")
    ca = cert = key = None
    try:
        ca, cert, key = make_certs(tmp)
        report("openssl: test CA and server certificate generated", None)
    except (OSError, subprocess.CalledProcessError) as e:
        report("openssl: test CA and server certificate generated", str(e))

    try:
        main_srv = Server(exe, "--max-message", str(16 << 20), "--outbound-limit", str(64 << 20)).start()
        limit_srv = Server(exe, "--max-message", str(LIMIT)).start()
    except (RuntimeError, OSError) as e:
        report("snow-echo starts", str(e))
        return results.summary()
    tls_srv = None
    if cert:
        try:
            tls_srv = Server(exe, "--max-message", str(16 << 20), "--outbound-limit", str(64 << 20),
                             tls=(cert, key)).start()
        except RuntimeError as e:
            report("wss: server starts with the generated certificate", str(e))

    if websockets is None:
        report("python: websockets importable", WS_IMPORT_ERROR)
    else:
        run_py_cases(py_cases(main_srv.port, limit_srv.port, tls_srv.port if tls_srv else 0,
                              ca if tls_srv else None))
    node_ok = run_node(main_srv.port, limit_srv.port, tls_srv.port if tls_srv else 0, ca or "")

    stop_checked(main_srv, "main server")
    stop_checked(limit_srv, "limit server")
    if tls_srv:
        stop_checked(tls_srv, "TLS server")
    if websockets is not None:
        py_heartbeat(exe)
        drain(exe, node_ok)

    return results.summary()

if __name__ == "__main__":
    sys.exit(main())
