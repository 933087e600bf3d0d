// Node `ws` as a peer of snow-echo. Driven by run.py:
//   node node_client.js cases PORT LIMIT_PORT LIMIT TLS_PORT CA_FILE
//       runs every case, prints "ok NAME" or "FAIL NAME: why", then "done"
//   node node_client.js hold PORT
//       opens one connection, prints "open", then "close CODE" when the
//       server closes it, and exits
'use strict';
const path = require('path');
const fs = require('fs');
let WebSocket;
try {
  WebSocket = require(path.join(__dirname, 'node_modules', 'ws'));
} catch (e) {
  console.log('FAIL node ws: not installed in tests/wsinterop/node_modules (run scripts/setup-node.sh): ' + e.message);
  console.log('done');
  process.exit(1);
}

const CASE_MS = 30000;

function open(url, opts = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts.protocols || [], Object.assign({ perMessageDeflate: false, maxPayload: 0 }, opts));
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (req, res) => reject(new Error('HTTP ' + res.statusCode)));
    ws.once('error', reject);
  });
}

// An upgrade the server refuses: resolves with its status, headers and
// body; rejects if the connection opens.
function refusal(url, opts = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, [], Object.assign({ perMessageDeflate: false }, opts));
    ws.once('open', () => { ws.terminate(); reject(new Error('the upgrade was accepted')); });
    ws.once('unexpected-response', (req, res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => {
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts).toString() });
        req.destroy();
      });
    });
    ws.once('error', () => {});
  });
}

function nextMessage(ws) {
  return new Promise((resolve, reject) => {
    const onMsg = (data, isBinary) => { cleanup(); resolve({ data, isBinary }); };
    const onClose = (code) => { cleanup(); reject(new Error('closed with ' + code + ' instead of a message')); };
    const cleanup = () => { ws.off('message', onMsg); ws.off('close', onClose); };
    ws.on('message', onMsg);
    ws.on('close', onClose);
  });
}

function closed(ws) {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve({ code: ws._closeCode, reason: '' });
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

function payload(n, text) {
  if (text) return Buffer.alloc(n, '*');
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i & 0xff;
  return b;
}

function assert(cond, msg) { if (!cond) throw new Error(msg); }

function sameEcho(got, want, isText) {
  assert(got.isBinary === !isText, 'expected ' + (isText ? 'text' : 'binary') + ', got ' + (got.isBinary ? 'binary' : 'text'));
  assert(Buffer.compare(got.data, want) === 0, 'echo differs: ' + got.data.length + ' bytes back for ' + want.length);
}

// a masked client frame written straight to the socket (for bytes ws
// itself would never send)
function rawFrame(b0, body) {
  const key = Buffer.from([1, 2, 3, 4]);
  const m = Buffer.from(body.map((x, i) => x ^ key[i % 4]));
  return Buffer.concat([Buffer.from([b0, 0x80 | body.length]), key, m]);
}

async function main() {
  const [mode, port, limitPort, limit, tlsPort, caFile] = process.argv.slice(2);
  const url = 'ws://127.0.0.1:' + port;
  if (mode === 'hold') {
    const ws = await open(url + '/echo');
    console.log('open');
    const c = await closed(ws);
    console.log('close ' + c.code);
    return;
  }
  const cases = [];
  const add = (name, fn) => cases.push([name, fn]);

  for (const text of [true, false]) {
    for (const n of [0, 125, 126, 65535, 65536, 1 << 20, 16 << 20]) {
      add('echo ' + (text ? 'text' : 'binary') + ' ' + n + ' bytes', async () => {
        const ws = await open(url + '/echo');
        const p = payload(n, text);
        const m = nextMessage(ws);
        ws.send(p, { binary: !text });
        sameEcho(await m, p, text);
        ws.close(1000);
        assert((await closed(ws)).code === 1000, 'close not 1000');
      });
    }
  }
  add('fragmented text send (3 fragments)', async () => {
    const ws = await open(url + '/echo');
    const m = nextMessage(ws);
    ws.send('frag-1 ', { binary: false, fin: false });
    ws.send('frag-2 κόσμε ', { binary: false, fin: false });
    ws.send('frag-3', { binary: false, fin: true });
    sameEcho(await m, Buffer.from('frag-1 frag-2 κόσμε frag-3'), true);
    ws.close(1000);
    await closed(ws);
  });
  add('fragmented binary send (100 fragments of 1 KiB)', async () => {
    const ws = await open(url + '/echo');
    const p = payload(100 * 1024, false);
    const m = nextMessage(ws);
    for (let i = 0; i < 100; i++) ws.send(p.subarray(i * 1024, (i + 1) * 1024), { binary: true, fin: i === 99 });
    sameEcho(await m, p, false);
    ws.close(1000);
    await closed(ws);
  });
  add('ping with payload -> pong with the same payload', async () => {
    const ws = await open(url + '/echo');
    const got = new Promise((resolve) => ws.once('pong', resolve));
    ws.ping(Buffer.from('node ping'));
    assert((await got).toString() === 'node ping', 'pong payload differs');
    ws.close(1000);
    await closed(ws);
  });
  for (const [code, reason] of [[1000, ''], [1001, 'going away'], [3000, 'app'], [4999, 'κόσμε']]) {
    add('client close ' + code + ' is answered with ' + code, async () => {
      const ws = await open(url + '/echo');
      ws.close(code, reason);
      const c = await closed(ws);
      assert(c.code === code, 'server answered ' + c.code);
    });
  }
  add('client close without a code is answered with an empty close (ws reports 1005)', async () => {
    const ws = await open(url + '/echo');
    ws.close();
    const c = await closed(ws);
    assert(c.code === 1005, 'ws reported ' + c.code);
  });
  add('message over --max-message -> server closes 1009', async () => {
    const ws = await open('ws://127.0.0.1:' + limitPort + '/echo');
    ws.send(payload(+limit + 1, false));
    const c = await closed(ws);
    assert(c.code === 1009, 'close code ' + c.code);
  });
  add('text frame with invalid UTF-8 -> server closes 1007', async () => {
    const ws = await open(url + '/echo');
    ws.send(Buffer.from([0x6f, 0x6b, 0xed, 0xa0, 0x80]), { binary: false });
    const c = await closed(ws);
    assert(c.code === 1007, 'close code ' + c.code);
  });
  add('reserved opcode -> server closes 1002', async () => {
    const ws = await open(url + '/echo');
    ws._socket.write(rawFrame(0x83, [0x61]));
    const c = await closed(ws);
    assert(c.code === 1002, 'close code ' + c.code);
  });
  for (const [offer, want] of [[['snow.v1', 'snow.v2'], 'snow.v2'], [['snow.v1'], 'snow.v1']]) {
    add('/proto offered ' + offer.join(', ') + ' -> subprotocol ' + want, async () => {
      const ws = await open(url + '/proto', { protocols: offer });
      assert(ws.protocol === want, 'server chose ' + JSON.stringify(ws.protocol));
      const m = nextMessage(ws);
      ws.send('proto');
      sameEcho(await m, Buffer.from('proto'), true);
      ws.close(1000);
      await closed(ws);
    });
  }
  add('/proto offered other -> no subprotocol in the 101', async () => {
    // ws refuses a 101 without one of the offered subprotocols, after the
    // 'upgrade' event that shows the response.
    let header = 'no 101';
    let err = null;
    try {
      const ws = new WebSocket(url + '/proto', ['other'], { perMessageDeflate: false });
      ws.once('upgrade', (res) => { header = res.headers['sec-websocket-protocol']; });
      await new Promise((resolve, reject) => {
        ws.once('open', () => { ws.terminate(); reject(new Error('opened with ' + JSON.stringify(ws.protocol))); });
        ws.once('error', resolve);
      }).then((e) => { err = e; });
    } catch (e) {
      err = e;
    }
    assert(header === undefined, 'Sec-WebSocket-Protocol ' + JSON.stringify(header));
    assert(err && /no subprotocol/.test(err.message), 'ws said ' + (err && err.message));
  });
  for (const token of [null, 'Bearer wrong']) {
    add('/private ' + (token ? 'with a wrong token' : 'without a token') + ' -> 401 with WWW-Authenticate and body', async () => {
      const r = await refusal(url + '/private', token ? { headers: { Authorization: token } } : {});
      assert(r.status === 401, 'status ' + r.status);
      assert(r.headers['www-authenticate'] === 'Bearer realm="snow-echo"', 'WWW-Authenticate ' + JSON.stringify(r.headers['www-authenticate']));
      assert(r.body === 'unauthorized', 'body ' + JSON.stringify(r.body));
    });
  }
  add('/private with the bearer token is accepted and echoes', async () => {
    const ws = await open(url + '/private', { headers: { Authorization: 'Bearer snow-echo' } });
    const m = nextMessage(ws);
    ws.send('let me in');
    sameEcho(await m, Buffer.from('let me in'), true);
    ws.close(1000);
    assert((await closed(ws)).code === 1000, 'close not 1000');
  });
  add('cross-origin upgrade refused with 403 before the 101', async () => {
    let status = 'opened';
    try {
      const ws = await open(url + '/echo', { origin: 'http://evil.example' });
      ws.terminate();
    } catch (e) {
      status = e.message;
    }
    assert(status === 'HTTP 403', 'got ' + status);
  });
  add('same-origin upgrade accepted', async () => {
    const ws = await open(url + '/echo', { origin: 'http://127.0.0.1:' + port });
    ws.close(1000);
    await closed(ws);
  });
  add('/broadcast: a message reaches the other client, not the sender', async () => {
    const a = await open(url + '/broadcast');
    const b = await open(url + '/broadcast');
    await new Promise((r) => setTimeout(r, 100));
    const m = nextMessage(b);
    let echoed = false;
    a.on('message', () => { echoed = true; });
    a.send('to the others');
    sameEcho(await m, Buffer.from('to the others'), true);
    await new Promise((r) => setTimeout(r, 200));
    assert(!echoed, 'the sender got its own message');
    a.close(1000); b.close(1000);
    await closed(a); await closed(b);
  });
  const ca = fs.readFileSync(caFile);
  const wss = 'wss://localhost:' + tlsPort;
  for (const n of [0, 126, 65536, 1 << 20, 16 << 20]) {
    add('wss echo binary ' + n + ' bytes (certificate from the test CA)', async () => {
      const ws = await open(wss + '/echo', { ca });
      const p = payload(n, false);
      const m = nextMessage(ws);
      ws.send(p);
      sameEcho(await m, p, false);
      ws.close(1000);
      assert((await closed(ws)).code === 1000, 'close not 1000');
    });
  }
  add('wss ping/pong and fragmented text', async () => {
    const ws = await open(wss + '/echo', { ca });
    const got = new Promise((resolve) => ws.once('pong', resolve));
    ws.ping(Buffer.from('tls ping'));
    assert((await got).toString() === 'tls ping', 'pong payload differs');
    const m = nextMessage(ws);
    ws.send('a', { binary: false, fin: false });
    ws.send('b', { binary: false, fin: true });
    sameEcho(await m, Buffer.from('ab'), true);
    ws.close(4000);
    assert((await closed(ws)).code === 4000, 'close not 4000');
  });
  add('wss without the test CA fails certificate verification', async () => {
    let err = null;
    try {
      const ws = await open(wss + '/echo');
      ws.terminate();
    } catch (e) {
      err = e;
    }
    assert(err && /certificate|self.signed|issuer/i.test(err.message), 'connection was not refused: ' + (err && err.message));
  });

  for (const [name, fn] of cases) {
    let timer;
    try {
      await Promise.race([fn(), new Promise((_, rej) => { timer = setTimeout(() => rej(new Error('timed out after ' + CASE_MS + ' ms')), CASE_MS); })]);
      console.log('ok ' + name);
    } catch (e) {
      console.log('FAIL ' + name + ': ' + e.message);
    } finally {
      clearTimeout(timer);
    }
  }
  console.log('done');
}

main().then(() => process.exit(0), (e) => { console.log('FAIL node client: ' + e.stack); console.log('done'); process.exit(1); });
