/**
 * `scripts/serve-example.mjs` under hostile or broken requests. It is a development proxy: it serves an
 * example's page on 127.0.0.1 and forwards /v1/* to the local Worker. Here it runs as the README runs it
 * (`node scripts/serve-example.mjs file-transfer --port 0 --worker URL`), without a browser, in front of a
 * small recording server on loopback that stands in for the Worker, so the test sees exactly what reaches
 * the Worker (and that nothing reaches any other host). Every bad request must get a 4xx or a clean
 * close, and the proxy must go on serving the next good request.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnNode, stopAllProcesses, STOP_TIMEOUT_MS, waitUntil, type RelayProcess } from "../relay/ops/ops-helpers.js";

/** Bundling the page with esbuild takes about a second; this is the bound. */
const START_TIMEOUT_MS = 20_000;
/** Any one exchange with the proxy, from connect to close. */
const EXCHANGE_TIMEOUT_MS = 5_000;
/** How long the stand-in Worker keeps a slow answer going (it stops earlier when the proxy closes it). */
const SLOW_CHUNKS = 100;
const SLOW_INTERVAL_MS = 100;

interface Seen {
  method: string;
  url: string;
  host: string | undefined;
  /** Set once the request is over: whether its body arrived whole, and whether the socket closed first. */
  ended?: "complete" | "closed early";
}

/** An HTTP server on 127.0.0.1 that records every request it gets. */
async function recordingServer(handle: (req: IncomingMessage, res: import("node:http").ServerResponse, seen: Seen) => void): Promise<{ server: Server; port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const entry: Seen = { method: req.method ?? "", url: req.url ?? "", host: req.headers.host };
    seen.push(entry);
    req.on("end", () => (entry.ended ??= "complete"));
    req.on("close", () => (entry.ended ??= req.complete ? "complete" : "closed early"));
    handle(req, res, entry);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port, seen };
}

/** The stand-in Worker: /v1/echo answers, /v1/slow streams until closed, /v1/upload reads a body, /v1/die drops mid-answer. */
function workerRoutes(req: IncomingMessage, res: import("node:http").ServerResponse): void {
  const path = (req.url ?? "").split("?")[0];
  if (path === "/v1/slow") {
    res.writeHead(200, { "content-type": "text/plain" });
    let sent = 0;
    const timer = setInterval(() => {
      if (++sent >= SLOW_CHUNKS || res.destroyed) {
        clearInterval(timer);
        res.end();
      } else res.write(`chunk ${sent}\n`);
    }, SLOW_INTERVAL_MS);
    res.on("close", () => clearInterval(timer));
    return;
  }
  if (path === "/v1/die") {
    res.writeHead(200, { "content-type": "text/plain", "content-length": "1000" });
    res.write("part of the answer");
    setTimeout(() => res.socket?.destroy(), 50);
    return;
  }
  // /v1/upload and everything else: read the whole body, then say what came.
  let bytes = 0;
  req.on("data", (chunk: Buffer) => (bytes += chunk.length));
  req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ method: req.method, url: req.url, bytes })));
}

interface Exchange {
  /** The status line's code; undefined when the proxy closed without answering. */
  status: number | undefined;
  text: string;
  /** The proxy closed the connection (rather than the test giving up waiting). */
  closed: boolean;
}

/**
 * Writes `request` as raw bytes (so nothing normalises it on the way) and reads until the proxy closes
 * or `timeoutMs` passes. `abortAfterMs` destroys the socket that long after writing: a client gone midway.
 */
function exchange(port: number, request: string | Buffer, options: { timeoutMs?: number; abortAfterMs?: number; untilText?: string } = {}): Promise<Exchange> {
  const timeoutMs = options.timeoutMs ?? EXCHANGE_TIMEOUT_MS;
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let text = "";
    let closed = false;
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      const status = /^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1];
      resolve({ status: status === undefined ? undefined : Number(status), text, closed });
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1");
      if (options.untilText !== undefined && text.includes(options.untilText)) finish();
    });
    socket.on("error", () => {}); // a reset is a close here; `closed` says so
    socket.on("close", () => {
      closed = true;
      finish();
    });
    socket.write(request, () => {
      if (options.abortAfterMs !== undefined) setTimeout(finish, options.abortAfterMs);
    });
  });
}

const get = (path: string, headers = "") => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}Connection: close\r\n\r\n`;

let proxy: RelayProcess;
let proxyPort: number;
let worker: Awaited<ReturnType<typeof recordingServer>>;
/** Another server on loopback that no request through the proxy may ever reach. */
let elsewhere: Awaited<ReturnType<typeof recordingServer>>;

beforeAll(async () => {
  worker = await recordingServer((req, res) => workerRoutes(req, res));
  elsewhere = await recordingServer((_req, res) => res.writeHead(200).end("elsewhere"));
  proxy = spawnNode(["scripts/serve-example.mjs", "file-transfer", "--port", "0", "--worker", `http://127.0.0.1:${worker.port}`], { ...process.env });
  const printed = () => /http:\/\/127\.0\.0\.1:(\d+)\//.exec(proxy.stdout())?.[1];
  const started = await waitUntil(() => printed() !== undefined || proxy.exit() !== undefined, START_TIMEOUT_MS, 100);
  if (!started || printed() === undefined) throw new Error(`serve-example did not print its URL within ${START_TIMEOUT_MS} ms\n${proxy.report()}`);
  proxyPort = Number(printed());
}, START_TIMEOUT_MS + 5_000);

afterAll(async () => {
  await stopAllProcesses();
  for (const server of [worker?.server, elsewhere?.server]) {
    server?.closeAllConnections();
    server?.close();
  }
}, STOP_TIMEOUT_MS + 5_000);

/** The next good requests still work: the page, and a request forwarded to the Worker. */
async function expectStillServing(after: string): Promise<void> {
  const page = await exchange(proxyPort, get("/"));
  expect(page.status, `GET / after ${after}\n${page.text}\n${proxy.report()}`).toBe(200);
  expect(page.text).toContain("<html");
  const before = worker.seen.length;
  const forwarded = await exchange(proxyPort, get("/v1/echo?after=1"));
  expect(forwarded.status, `GET /v1/echo after ${after}\n${forwarded.text}\n${proxy.report()}`).toBe(200);
  expect(worker.seen.slice(before).map((seen) => seen.url)).toEqual(["/v1/echo?after=1"]);
  expect(proxy.exit(), proxy.report()).toBeUndefined();
}

function expectRefused(answer: Exchange, what: string): void {
  expect(answer.status, `${what}\n${answer.text}`).toBeGreaterThanOrEqual(400);
  expect(answer.status, `${what}\n${answer.text}`).toBeLessThan(500);
}

describe("serve-example.mjs on loopback, in front of a recording Worker", () => {
  it("serves the page and forwards /v1/* with the Worker's Host", async () => {
    const page = await exchange(proxyPort, get("/page.js"));
    expect(page.status, page.text).toBe(200);
    expect(page.text).toMatch(/content-type: text\/javascript/i);
    const before = worker.seen.length;
    const answer = await exchange(proxyPort, get("/v1/echo"));
    expect(answer.status, answer.text).toBe(200);
    expect(worker.seen.slice(before)).toMatchObject([{ method: "GET", url: "/v1/echo", host: `127.0.0.1:${worker.port}` }]);
  });

  it("answers path traversal, plain or encoded, with 404 and never a file outside its own", async () => {
    const paths = [
      "/../../etc/passwd",
      "/%2e%2e/%2e%2e/etc/passwd",
      "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
      "/..%2f..%2f..%2fetc%2fpasswd",
      "/page.js/../../../../etc/passwd",
      "/v1/../../etc/passwd",
      "/v1/%2e%2e/%2e%2e/etc/passwd",
      "/..\\..\\etc\\passwd",
    ];
    const before = worker.seen.length;
    for (const path of paths) {
      const answer = await exchange(proxyPort, get(path));
      expectRefused(answer, `GET ${path}`);
      expect(answer.text, `GET ${path}`).not.toMatch(/root:/);
    }
    // What climbs out of /v1/ is not forwarded either: it names no /v1/ path any more.
    expect(worker.seen.slice(before).map((seen) => seen.url)).toEqual([]);
    await expectStillServing("path traversal");
  });

  it("answers unknown paths with 404, including the names of Object.prototype's members", async () => {
    for (const path of ["/nope", "/index.html", "/page.ts", "/__proto__", "/constructor", "/hasOwnProperty", "/v1"]) {
      const answer = await exchange(proxyPort, get(path));
      expect(answer.status, `GET ${path}\n${answer.text}`).toBe(404);
    }
    await expectStillServing("unknown paths");
  });

  it("forwards only to the Worker: an absolute or scheme-relative request target naming another host is refused", async () => {
    const other = `127.0.0.1:${elsewhere.port}`;
    // The last cannot be parsed as a URL at all: refused too, and the proxy does not fall over.
    for (const target of [`http://${other}/v1/echo`, `//${other}/v1/echo`, `/\\${other}/v1/echo`, "http://[::1/v1/echo"]) {
      const answer = await exchange(proxyPort, get(target));
      expect(answer.text, `GET ${target}`).not.toContain("elsewhere");
      expectRefused(answer, `GET ${target}`);
    }
    expect(elsewhere.seen, "a request reached another host through the proxy").toEqual([]);
    // The WebSocket path too: an upgrade outside /v1/ is not the Worker's business.
    const upgrade = await exchange(proxyPort, `GET /etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
    expect(worker.seen.map((seen) => seen.url)).not.toContain("/etc/passwd");
    expect(upgrade.status === undefined ? upgrade.closed : upgrade.status >= 400 && upgrade.status < 500, `upgrade outside /v1/\n${upgrade.text}`).toBe(true);
    await expectStillServing("foreign request targets");
  });

  it("refuses methods it does not serve on its own files with 405 and an Allow header", async () => {
    for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
      const answer = await exchange(proxyPort, `${method} / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      expect(answer.status, `${method} /\n${answer.text}`).toBe(405);
      expect(answer.text).toMatch(/^allow: GET, HEAD\r$/im);
    }
    // HEAD is served: the headers of GET, no body.
    const head = await exchange(proxyPort, `HEAD /page.js HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    expect(head.status, head.text).toBe(200);
    expect(head.text.split("\r\n\r\n")[1]).toBe("");
    await expectStillServing("other methods");
  });

  it("refuses a huge header, a malformed header and a request line that is not HTTP", async () => {
    const huge = await exchange(proxyPort, get("/", `X-Huge: ${"a".repeat(64 * 1024)}\r\n`));
    expect(huge.status, huge.text).toBe(431);
    const manyHeaders = await exchange(proxyPort, get("/", Array.from({ length: 3_000 }, (_, index) => `X-H${index}: ${index}\r\n`).join("")));
    expectRefused(manyHeaders, "3,000 headers");
    const hugeUrl = await exchange(proxyPort, get(`/v1/echo?${"q".repeat(64 * 1024)}`));
    expectRefused(hugeUrl, "a 64 KiB request target");
    const noColon = await exchange(proxyPort, get("/", "This is not a header\r\n"));
    expect(noColon.status, noColon.text).toBe(400);
    const badName = await exchange(proxyPort, get("/", "Bad Name: x\r\n"));
    expect(badName.status, badName.text).toBe(400);
    const controlInValue = await exchange(proxyPort, get("/", "X-Bad: a\u0000b\r\n"));
    expect(controlInValue.status, controlInValue.text).toBe(400);
    const notHttp = await exchange(proxyPort, "\u0016\u0003\u0001\u0000\u00a5\u0001\u0000\u0000\u00a1\u0003\u0003 hello?\r\n\r\n");
    expect(notHttp.status === undefined ? notHttp.closed : notHttp.status === 400, `a TLS hello\n${notHttp.text}`).toBe(true);
    const garbage = await exchange(proxyPort, "GARBAGE\r\n\r\n");
    expect(garbage.status, garbage.text).toBe(400);
    await expectStillServing("broken headers");
  });

  it("copes with clients gone midway: in the headers, in a forwarded body, in a forwarded answer", async () => {
    // Gone in the middle of the headers.
    const halfHeaders = await exchange(proxyPort, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ", { abortAfterMs: 100 });
    expect(halfHeaders.status).toBeUndefined();

    // Gone in the middle of a body the proxy forwards: the Worker's request is closed too, not left waiting.
    let before = worker.seen.length;
    await exchange(proxyPort, `POST /v1/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n${"x".repeat(1000)}`, { abortAfterMs: 200 });
    expect(await waitUntil(() => worker.seen.length > before, 2_000), "the upload never reached the Worker").toBe(true);
    const upload = worker.seen[before]!;
    expect(await waitUntil(() => upload.ended !== undefined, 3_000), `the Worker's upload request was left open after the client went\n${JSON.stringify(upload)}`).toBe(true);
    expect(upload.ended).toBe("closed early");

    // Gone while the Worker streams its answer: the Worker's side is closed too.
    before = worker.seen.length;
    const partial = await exchange(proxyPort, get("/v1/slow"), { untilText: "chunk 2\n" });
    expect(partial.status, partial.text).toBe(200);
    expect(await waitUntil(() => worker.seen.length > before, 2_000)).toBe(true);
    const slow = worker.seen[before]!;
    expect(await waitUntil(() => slow.ended !== undefined, 3_000), "the Worker's slow answer went on after the client left").toBe(true);

    await expectStillServing("clients gone midway");
  });

  it("survives a Worker that drops the connection mid-answer", async () => {
    const dropped = await exchange(proxyPort, get("/v1/die"));
    // The answer had begun (200 and part of the body): the client's connection ends short of it, closed.
    expect(dropped.closed, dropped.text).toBe(true);
    expect(dropped.text).toContain("part of the answer");
    await expectStillServing("a Worker gone mid-answer");
  });
});
