// Peer server for bench/ws: Bun.serve (uWebSockets inside).
//   bun bun-server.js --host H --port P [--tls-cert F --tls-key F]
// /echo (and any other path) echoes every message; /broadcast publishes
// every message to the other clients on /broadcast (ws.publish skips the
// sender); GET /stats answers {"connections": N}.
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const certFile = opt("--tls-cert"), keyFile = opt("--tls-key");
let connections = 0;

const server = Bun.serve({
  hostname: opt("--host", "127.0.0.1"),
  port: Number(opt("--port", "0")),
  tls: certFile ? { cert: Bun.file(certFile), key: Bun.file(keyFile) } : undefined,
  fetch(req, server) {
    const path = new URL(req.url).pathname;
    if (path === "/stats" && req.headers.get("upgrade") === null)
      return Response.json({ connections });
    if (server.upgrade(req, { data: { path } })) return;
    return new Response("not a WebSocket request\n", { status: 400 });
  },
  websocket: {
    perMessageDeflate: false,
    maxPayloadLength: 64 * 1024 * 1024,
    idleTimeout: 0,
    open(ws) {
      connections++;
      if (ws.data.path === "/broadcast") ws.subscribe("broadcast");
    },
    message(ws, msg) {
      if (ws.data.path === "/broadcast") ws.publish("broadcast", msg);
      else ws.send(msg);
    },
    close() {
      connections--;
    },
  },
});
process.on("SIGTERM", () => {
  server.stop(true);
  process.exit(0);
});
console.log(`listening on ${server.port}`);
