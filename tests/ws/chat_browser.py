#!/usr/bin/env python3
"""snow-chat in a real browser: headless Chromium (Debian's `chromium`),
driven over the DevTools protocol with Python's `websockets`.

Three isolated browser contexts (separate cookies, storage, connections)
open the chat page on 127.0.0.1 (port 0). Checked: each sees the others'
presence and messages; names and texts are shown as text, never as HTML;
a late joiner gets the room's history; an oversized message and a flood are
refused with a visible error; a page cut off from the network reconnects
and shows exactly the messages it missed (no gap, no duplicate), and after
a server restart says that the history no longer reaches back; leaving is
seen by the others. Also the page over https and the chat over wss with
--tls-cert/--tls-key (a certificate made here with the openssl CLI).

usage: chat_browser.py path/to/snow-chat [--screenshot out.png]
"""
import asyncio
import base64
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import urllib.request

import websockets

CHAT = sys.argv[1]
SHOT = sys.argv[sys.argv.index("--screenshot") + 1] if "--screenshot" in sys.argv else None
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FAILURES = []
WAIT = 20.0  # seconds a condition may take before the test reports it failed


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def start_chat(port=0, *extra):
    proc = subprocess.Popen([CHAT, "--host", "127.0.0.1", "--port", str(port), *extra],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.match(r"listening on (\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit("snow-chat did not start: %r" % line)
    url = proc.stdout.readline().strip()
    return proc, int(m.group(1)), url


def stop_chat(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return None


class Cdp:
    """One DevTools connection; sessions address attached pages."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.waiting = {}
        self.events = []  # (sessionId, method, params) of every event
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            if "method" in msg:
                self.events.append((msg.get("sessionId"), msg["method"], msg.get("params", {})))
                continue
            fut = self.waiting.pop(msg.get("id"), None)
            if fut and not fut.done():
                fut.set_result(msg)

    async def call(self, method, session=None, **params):
        self.next_id += 1
        req = {"id": self.next_id, "method": method, "params": params}
        if session:
            req["sessionId"] = session
        fut = asyncio.get_event_loop().create_future()
        self.waiting[self.next_id] = fut
        await self.ws.send(json.dumps(req))
        msg = await asyncio.wait_for(fut, 30)
        if "error" in msg:
            raise RuntimeError("%s: %s" % (method, msg["error"]))
        return msg["result"]


class Page:
    def __init__(self, cdp, session):
        self.cdp = cdp
        self.s = session

    async def js(self, expr):
        r = await self.cdp.call("Runtime.evaluate", self.s, expression=expr, returnByValue=True,
                                awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError("page script failed: %s" % r["exceptionDetails"])
        return r["result"].get("value")

    async def until(self, expr, what):
        """Polls expr until it is truthy; records the outcome."""
        deadline = asyncio.get_event_loop().time() + WAIT
        while True:
            v = await self.js(expr)
            if v:
                check(True, what)
                return v
            if asyncio.get_event_loop().time() > deadline:
                check(False, what)
                return v
            await asyncio.sleep(0.05)

    async def join(self, name, room):
        await self.js("$('name').value = %s; $('room').value = %s; $('join').click(); true"
                      % (json.dumps(name), json.dumps(room)))

    async def say(self, text):
        await self.js("$('text').value = %s; $('send').requestSubmit(); true" % json.dumps(text))

    async def here(self):
        return await self.js("[...document.querySelectorAll('#here li')].map(li => li.textContent)")

    async def texts(self):
        return await self.js("[...document.querySelectorAll('#log li.msg .text')].map(s => s.textContent)")

    async def seqs(self):
        return await self.js("[...document.querySelectorAll('#log li[data-seq]')].map(li => Number(li.dataset.seq))")


async def open_page(cdp, url):
    ctx = (await cdp.call("Target.createBrowserContext"))["browserContextId"]
    target = (await cdp.call("Target.createTarget", url="about:blank", browserContextId=ctx))["targetId"]
    session = (await cdp.call("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
    await cdp.call("Page.enable", session)
    await cdp.call("Network.enable", session)
    await cdp.call("Emulation.setDeviceMetricsOverride", session, width=1000, height=700, deviceScaleFactor=1,
                   mobile=False)
    await cdp.call("Page.navigate", session, url=url)
    page = Page(cdp, session)
    await page.until("document.readyState === 'complete' && !!document.getElementById('join')",
                     "page loads in a fresh browser context")
    return page


def contiguous(seqs):
    return all(b == a + 1 for a, b in zip(seqs, seqs[1:]))


async def check_deflate(cdp, page):
    """The browser negotiated permessage-deflate (no context takeover),
    as the 101's headers (Network domain) and the page's WebSocket say."""
    answers = []
    for session, method, params in cdp.events:
        if session == page.s and method == "Network.webSocketHandshakeResponseReceived":
            headers = params.get("response", {}).get("headers", {})
            answers += [v for k, v in headers.items() if k.lower() == "sec-websocket-extensions"]
    check(bool(answers), "the 101 the browser got has a Sec-WebSocket-Extensions header: %r" % (answers,))
    check(all("permessage-deflate" in v and "server_no_context_takeover" in v and
              "client_no_context_takeover" in v for v in answers),
          "the browser negotiated permessage-deflate without context takeover: %r" % (answers,))
    ext = await page.js("ws.extensions")
    check(ext.startswith("permessage-deflate"), "the page's WebSocket reports the extension: %r" % (ext,))


async def scenario(devtools, port, url):
    async with websockets.connect(devtools, max_size=None, ping_interval=None) as ws:
        cdp = Cdp(ws)
        a = await open_page(cdp, url)
        b = await open_page(cdp, url)

        await a.join("alice", "lobby")
        await a.until("document.querySelector('#status').textContent.includes('connected as alice')",
                      "alice connects")
        await a.until("[...document.querySelectorAll('#here li')].some(li => li.textContent === 'alice')",
                      "alice sees herself present")
        await check_deflate(cdp, a)
        await b.join("bob <i>x</i>", "lobby")
        await a.until("[...document.querySelectorAll('#here li')].some(li => li.textContent === 'bob <i>x</i>')",
                      "alice sees bob's presence")
        await a.until("[...document.querySelectorAll('#log li.presence')].some(li => li.textContent.includes('bob <i>x</i> joined'))",
                      "alice's log says bob joined")
        here_b = await b.until("document.querySelectorAll('#here li').length === 2 && [...document.querySelectorAll('#here li')].map(li => li.textContent).sort()",
                               "bob sees both present")
        check(here_b == ["alice", "bob <i>x</i>"], "bob's list of who is here is exact: %r" % (here_b,))

        await a.say("hello <b>bob</b> & all")
        await b.until("[...document.querySelectorAll('#log li.msg .text')].some(s => s.textContent === 'hello <b>bob</b> & all')",
                      "bob receives alice's message")
        check(await b.js("document.querySelector('#log b, #log i, #here i') === null"),
              "names and messages are shown as text (no HTML injection)")
        await b.say("hi alice")
        await a.until("[...document.querySelectorAll('#log li.msg')].some(li => li.querySelector('.who').textContent === 'bob <i>x</i>' && li.querySelector('.text').textContent === 'hi alice')",
                      "alice receives bob's message")

        await a.say("x" * 1500)
        await a.until("$('error').className === 'on' && $('error').textContent.includes('limit is 1000')",
                      "an oversized message is refused with a visible error")
        check("x" * 1500 not in (await b.texts()), "the oversized message reached nobody")
        await b.js("for (let i = 0; i < 25; i++) ws.send('flood ' + i); true")
        await b.until("$('error').className === 'on' && $('error').textContent.includes('Slow down')",
                      "a flood is refused with a visible error")
        await b.until("document.querySelector('#status').textContent.includes('connected as')",
                      "the flooding page is still connected (refused, not crashed)")
        await asyncio.sleep(2.2)  # let the rate limit refill

        # A late joiner gets the room's last messages first.
        c = await open_page(cdp, url)
        await c.join("carol", "lobby")
        await c.until("[...document.querySelectorAll('#log li.msg .text')].some(s => s.textContent === 'hello <b>bob</b> & all')",
                      "a late joiner sees the room's history")
        await c.until("[...document.querySelectorAll('#log li.msg .text')].some(s => s.textContent === 'hi alice')",
                      "the history includes bob's message")
        c_seqs = await c.seqs()
        check(contiguous(c_seqs), "the late joiner's history has no gap: %r" % (c_seqs,))

        # Network drop: bob's page goes offline, misses three messages,
        # comes back and shows exactly those.
        await cdp.call("Network.emulateNetworkConditions", b.s, offline=True, latency=0, downloadThroughput=-1,
                       uploadThroughput=-1)
        await b.js("ws && ws.close(); true")
        await b.until("document.querySelector('#status').textContent.includes('reconnecting')",
                      "bob's page notices the drop")
        for i in range(3):
            await a.say("while you were away %d" % i)
        await a.until("[...document.querySelectorAll('#log li.msg .text')].filter(s => s.textContent.startsWith('while you were away')).length === 3",
                      "alice sees her three messages")
        await cdp.call("Network.emulateNetworkConditions", b.s, offline=False, latency=0, downloadThroughput=-1,
                       uploadThroughput=-1)
        await b.until("[...document.querySelectorAll('#log li.msg .text')].filter(s => s.textContent.startsWith('while you were away')).length === 3",
                      "bob's page reconnects and shows the three missed messages")
        b_texts = await b.texts()
        check([t for t in b_texts if t.startswith("while you were away")] ==
              ["while you were away 0", "while you were away 1", "while you were away 2"],
              "the missed messages appear once each, in order")
        check(b_texts.count("hello <b>bob</b> & all") == 1, "nothing seen before the drop is shown twice")
        b_seqs = await b.seqs()
        check(contiguous(b_seqs), "bob's log has no gap across the reconnect: %r" % (b_seqs,))
        check(not await b.js("!!document.querySelector('#log li.notice')"),
              "a recovered reconnect does not claim lost history")

        # Leaving is seen by the others.
        await c.js("$('leave').click(); true")
        await a.until("[...document.querySelectorAll('#log li.presence')].some(li => li.textContent.includes('carol left'))",
                      "alice sees carol leave")
        await b.until("!(%s).includes('carol')" % "[...document.querySelectorAll('#here li')].map(li => li.textContent)",
                      "bob's list drops carol")
        cdp.reader.cancel()
        return a, b


async def restart_scenario(devtools, url, restart):
    """Server restart: the page reconnects to the new process and says its
    history no longer reaches back (a new epoch), then chats on."""
    async with websockets.connect(devtools, max_size=None, ping_interval=None) as ws:
        cdp = Cdp(ws)
        a = await open_page(cdp, url)
        await a.join("dora", "restart")
        await a.until("document.querySelector('#status').textContent.includes('connected as dora')", "dora connects")
        await a.say("before the restart")
        await a.until("[...document.querySelectorAll('#log li.msg .text')].some(s => s.textContent === 'before the restart')",
                      "dora sees her message")
        await asyncio.get_event_loop().run_in_executor(None, restart)
        await a.until("!!document.querySelector('#log li.notice')",
                      "after a server restart the page says the history no longer reaches back")
        await a.until("document.querySelector('#status').textContent.includes('connected as dora')",
                      "dora is reconnected to the new server")
        await a.say("after the restart")
        await a.until("[...document.querySelectorAll('#log li.msg .text')].some(s => s.textContent === 'after the restart')",
                      "messages flow after the restart")
        cdp.reader.cancel()


async def screenshot(devtools, url, path):
    """A short conversation in a fresh room, photographed for the README."""
    async with websockets.connect(devtools, max_size=None, ping_interval=None) as ws:
        cdp = Cdp(ws)
        pages = []
        for name in ("Ada", "Grace", "Linus"):
            p = await open_page(cdp, url)
            await p.join(name, "general")
            await p.until("document.querySelector('#status').textContent.includes('connected as %s')" % name,
                          "%s connects for the screenshot" % name)
            pages.append(p)
        lines = [(0, "Morning! Is the build green?"), (1, "Green on gcc and under ASan+UBSan."),
                 (2, "Nice. I'll try the chat from my phone."), (0, "Room history survives a reconnect, too."),
                 (1, "Tags like <b>this</b> show up as text.")]
        for who, text in lines:
            await pages[who].say(text)
            await pages[0].until("[...document.querySelectorAll('#log li.msg .text')].some(s => s.textContent === %s)"
                                 % json.dumps(text), "the screenshot conversation arrives")
        await pages[1].until("[...document.querySelectorAll('#log li.msg')].length === %d" % len(lines),
                             "the photographed page shows the whole conversation")
        await pages[1].js("$('text').value = 'Ship it!'; true")
        png = (await cdp.call("Page.captureScreenshot", pages[1].s, format="png"))["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(png))
        print("screenshot written to %s" % path, flush=True)
        cdp.reader.cancel()


async def tls_check(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    async with websockets.connect("wss://127.0.0.1:%d/ws?name=tls&room=secure&epoch=0&seq=0" % port,
                                  ssl=ctx, ping_interval=None) as ws:
        joined = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        check(joined.get("t") == "joined", "wss: the join is answered")
        await ws.send("over TLS")
        seen = []
        while "over TLS" not in seen:
            m = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            seen.append(m.get("text"))
        check(True, "wss: a message goes round the room")


def tls(tmp):
    """snow-chat --tls-cert/--tls-key: the page over https, the chat over wss."""
    key, crt = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "1", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True)
    proc, port, url_line = start_chat(0, "--tls-cert", crt, "--tls-key", key)
    try:
        check(url_line.startswith("open https://127.0.0.1:%d/" % port), "with TLS the URL is https: %r" % url_line)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with urllib.request.urlopen("https://127.0.0.1:%d/" % port, context=ctx, timeout=WAIT) as r:
            body = r.read().decode()
        check("<title>snow-chat</title>" in body, "https: the page is served")
        asyncio.run(tls_check(port))
    finally:
        check(stop_chat(proc) == 0, "snow-chat with TLS exits 0 on SIGTERM")


def main():
    tmp = tempfile.mkdtemp(prefix="snow-chat-test-")
    try:
        tls(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    proc, port, url_line = start_chat()
    check(url_line.startswith("open http://127.0.0.1:%d/" % port), "snow-chat prints the URL to open: %r" % url_line)
    url = "http://127.0.0.1:%d/" % port
    profile = tempfile.mkdtemp(prefix="snow-chat-chromium-")
    chrome = subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                               "--disable-dev-shm-usage", "--no-first-run", "--remote-debugging-port=0",
                               "--remote-debugging-address=127.0.0.1", "--user-data-dir=" + profile,
                               "about:blank"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    devtools = None
    for line in chrome.stderr:
        m = re.search(r"DevTools listening on (ws://\S+)", line)
        if m:
            devtools = m.group(1)
            break
    if not devtools:
        chrome.kill()
        stop_chat(proc)
        raise SystemExit("chromium did not start")
    state = {"proc": proc}

    def restart():
        check(stop_chat(state["proc"]) == 0, "snow-chat exits 0 on SIGTERM")
        # The same port, as a restarted service would have.
        for _ in range(100):
            try:
                state["proc"], _, _ = start_chat(port)
                return
            except SystemExit:
                import time
                time.sleep(0.1)

    try:
        asyncio.run(scenario(devtools, port, url))
        if SHOT:
            asyncio.run(screenshot(devtools, url, SHOT))
        asyncio.run(restart_scenario(devtools, url, restart))
    finally:
        chrome.terminate()
        try:
            chrome.wait(timeout=10)
        except subprocess.TimeoutExpired:
            chrome.kill()
        shutil.rmtree(profile, ignore_errors=True)
        check(stop_chat(state["proc"]) == 0, "snow-chat exits 0 on SIGTERM at the end")
    if FAILURES:
        print("%d check(s) failed" % len(FAILURES))
        sys.exit(1)
    print("all browser checks passed")


if __name__ == "__main__":
    main()
