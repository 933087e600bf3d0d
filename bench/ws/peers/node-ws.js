// Peer server for bench/ws: Node's http + the `ws` package, with
// `bufferutil` for masking (ws loads it when it is installed).
//   node node-ws.js --host H --port P
// /echo (and any other path) echoes every message; /broadcast sends every
// message to the other clients on /broadcast; GET /stats answers
// {"connections": N}.
const http = require("http");
const { WebSocketServer } = require("ws");

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
require("bufferutil"); // fail here, not silently, when it is missing

let connections = 0;
const room = new Set();
const server = http.createServer((req, res) => {
  if (req.url === "/stats") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ connections }));
  } else {
    res.writeHead(400);
    res.end("not a WebSocket request\n");
  }
});
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
server.on("upgrade", (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => {
    connections++;
    const broadcast = req.url === "/broadcast";
    if (broadcast) room.add(ws);
    ws.on("message", (data, isBinary) => {
      if (!broadcast) {
        ws.send(data, { binary: isBinary });
        return;
      }
      for (const other of room) if (other !== ws) other.send(data, { binary: isBinary });
    });
    ws.on("close", () => {
      connections--;
      room.delete(ws);
    });
  });
});
process.on("SIGTERM", () => process.exit(0));
server.listen(Number(opt("--port", "0")), opt("--host", "127.0.0.1"), () => {
  console.log(`listening on ${server.address().port}`);
});
