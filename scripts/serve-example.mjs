#!/usr/bin/env node
// Runs one of examples/ against a local Worker (`npm start`), with nothing built or published:
//
//   node scripts/serve-example.mjs file-transfer   # http://127.0.0.1:8790/
//   node scripts/serve-example.mjs broadcast       # http://127.0.0.1:8791/
//   node scripts/serve-example.mjs token-backend   # http://127.0.0.1:8792/  (JOIN_SECRET must match the Worker's)
//
// It bundles the example's page.ts with esbuild, resolving `@relaykit/client` and `@relaykit/server`
// to this repository's package sources (packages/*/src/index.ts), the way an app's bundler resolves
// them from node_modules.
// - file-transfer, broadcast: it serves index.html and page.js on 127.0.0.1:<port> and forwards
//   /v1/* (HTTP and WebSocket) to the Worker, so the page and the Worker share one origin. A page on
//   another origin than the Worker's may open room sockets, but its fetches of /v1/ice-servers (the
//   client refreshes TURN credentials before they expire, and after a failed call) need the Worker's
//   ALLOWED_ORIGINS to list it: CORS, even under AUTH_MODE=open.
// - token-backend: the example is a server of its own (server.ts); it is bundled too and run in this
//   process, serving the page from a temporary directory.
//
// Options: --port N (default per example, above), --worker URL (default http://127.0.0.1:8787).
import { build } from "esbuild";
import { copyFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, request } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const DEFAULT_PORTS = { "file-transfer": 8790, broadcast: 8791, "token-backend": 8792 };
const alias = {
  "@relaykit/client": join(root, "packages/client/src/index.ts"),
  "@relaykit/server": join(root, "packages/server/src/index.ts"),
};

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { port: { type: "string" }, worker: { type: "string", default: "http://127.0.0.1:8787" } },
});
const name = positionals[0];
if (positionals.length !== 1 || !Object.hasOwn(DEFAULT_PORTS, name)) {
  console.error(`usage: node scripts/serve-example.mjs <${Object.keys(DEFAULT_PORTS).join("|")}> [--port N] [--worker URL]`);
  process.exit(2);
}
const port = Number(values.port ?? DEFAULT_PORTS[name]);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`serve-example: --port must be a port number, not ${JSON.stringify(values.port)}`);
  process.exit(2);
}
let worker;
try {
  worker = new URL(values.worker);
  if (worker.protocol !== "http:") throw new Error("not http:");
} catch {
  console.error(`serve-example: --worker must be the Worker's http:// origin, e.g. http://127.0.0.1:8787, not ${JSON.stringify(values.worker)}`);
  process.exit(2);
}
const exampleDir = join(root, "examples", name);

async function bundle(entry, outfile, platform) {
  await build({ entryPoints: [entry], outfile, bundle: true, format: "esm", platform, target: platform === "node" ? "node20" : "es2022", sourcemap: true, alias, logLevel: "warning" });
}

const outDir = await mkdtemp(join(tmpdir(), `relaykit-example-${name}-`));
const cleanUp = () => rm(outDir, { recursive: true, force: true }).finally(() => process.exit(0));
process.once("SIGINT", cleanUp);
process.once("SIGTERM", cleanUp);
await bundle(join(exampleDir, "page.ts"), join(outDir, "page.js"), "browser");
await copyFile(join(exampleDir, "index.html"), join(outDir, "index.html"));

if (name === "token-backend") {
  await bundle(join(exampleDir, "server.ts"), join(outDir, "server.mjs"), "node");
  process.env.PORT = String(port);
  process.env.WORKER_URL = worker.origin;
  process.env.STATIC_DIR = outDir;
  await import(pathToFileURL(join(outDir, "server.mjs")).href);
} else {
  const files = { "/": ["index.html", "text/html; charset=utf-8"], "/page.js": ["page.js", "text/javascript"], "/page.js.map": ["page.js.map", "application/json"] };
  const local = "http://serve-example.invalid";
  // The request's target as a URL, or undefined unless it is origin-form ("/path?query"): an absolute
  // or scheme-relative target ("http://host/…", "//host/…") names another host, and this proxy
  // forwards to the Worker alone.
  const targetOf = (req) => {
    try {
      const url = new URL(req.url ?? "/", local);
      return url.origin === local ? url : undefined;
    } catch {
      return undefined;
    }
  };
  const server = createServer(async (req, res) => {
    const url = targetOf(req);
    if (url === undefined) return res.writeHead(400, { "content-type": "text/plain" }).end("bad request target");
    if (url.pathname.startsWith("/v1/")) {
      // Forward to the Worker as it is (the Host header names the Worker, as if asked directly).
      const upstream = request(new URL(url.pathname + url.search, worker.origin), { method: req.method, headers: { ...req.headers, host: worker.host } }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        // The Worker gone mid-answer: end the client's connection too, rather than leave it waiting for the rest.
        answer.once("close", () => answer.complete || res.destroy());
      });
      upstream.once("error", (error) => {
        if (res.headersSent) res.destroy();
        else res.writeHead(502).end(`the Worker at ${worker.origin} did not answer (${error.message}): is \`npm start\` running?`);
      });
      // The client gone midway (its body or the answer cut short): close the Worker's request too.
      res.once("close", () => res.writableFinished || upstream.destroy());
      req.pipe(upstream);
      return;
    }
    const file = files[url.pathname];
    if (file === undefined) return res.writeHead(404, { "content-type": "text/plain" }).end("not found");
    if (req.method !== "GET" && req.method !== "HEAD") return res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("method not allowed");
    res.writeHead(200, { "content-type": file[1], "cache-control": "no-store" }).end(await readFile(join(outDir, file[0])));
  });
  // Room sockets (under /v1/ only): replay the upgrade request to the Worker, then pipe both ways.
  server.on("upgrade", (req, socket, head) => {
    const url = targetOf(req);
    if (!url?.pathname.startsWith("/v1/")) {
      socket.on("error", () => socket.destroy());
      socket.end("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
      return;
    }
    const upstream = connect(Number(worker.port || 80), worker.hostname, () => {
      const headers = Object.entries({ ...req.headers, host: worker.host }).flatMap(([key, value]) => (Array.isArray(value) ? value : [value]).map((item) => `${key}: ${item}`));
      upstream.write(`${req.method} ${url.pathname}${url.search} HTTP/1.1\r\n${headers.join("\r\n")}\r\n\r\n`);
      upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    const close = () => {
      upstream.destroy();
      socket.destroy();
    };
    upstream.once("error", close);
    socket.once("error", close);
    upstream.once("close", close);
    socket.once("close", close);
  });
  server.listen(port, "127.0.0.1", () => {
    console.log(`examples/${name}: http://127.0.0.1:${server.address().port}/  (the Worker: ${worker.origin}; Ctrl-C stops)`);
  });
}
