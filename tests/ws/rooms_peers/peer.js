// Node `ws` members of one room for rooms_interop.py.
//
//   node peer.js URL PREFIX CLIENTS MESSAGES EXPECTED
//
// Opens CLIENTS connections named PREFIX0, PREFIX1, ...; prints
// {"ready": n} once all are open; on the line "go" on stdin each sends
// MESSAGES messages "NAME:k" (every 10th one binary); once each client has
// received EXPECTED messages it prints {"done": NAME, "got": [...]} (texts,
// binary ones prefixed "b:") and closes. A client that is closed early
// prints {"closed": NAME, "code": c}.
'use strict';
const WebSocket = require('ws');
const readline = require('readline');

const [url, prefix, nClients, nMsgs, expected] = process.argv.slice(2);
const clients = [];
let open = 0, finished = 0;

function finish() {
  if (++finished === clients.length) process.exit(0);
}

for (let i = 0; i < Number(nClients); i++) {
  const name = prefix + i;
  const ws = new WebSocket(url);
  const got = [];
  let done = false;
  ws.on('open', () => {
    if (++open === Number(nClients)) console.log(JSON.stringify({ready: open}));
  });
  ws.on('message', (data, isBinary) => {
    got.push(isBinary ? 'b:' + data.toString() : data.toString());
    if (!done && got.length >= Number(expected)) {
      done = true;
      console.log(JSON.stringify({done: name, got}));
      ws.close(1000);
    }
  });
  ws.on('close', code => {
    if (!done) {
      done = true;
      console.log(JSON.stringify({closed: name, code, got}));
    }
    finish();
  });
  ws.on('error', () => {});
  clients.push({name, ws});
}

readline.createInterface({input: process.stdin}).on('line', line => {
  if (line.trim() !== 'go') return;
  for (const {name, ws} of clients)
    for (let k = 0; k < Number(nMsgs); k++) {
      const text = name + ':' + k;
      if (k % 10 === 0) ws.send(Buffer.from(text), {binary: true});
      else ws.send(text);
    }
});
