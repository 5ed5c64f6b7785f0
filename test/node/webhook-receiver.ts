/**
 * The webhook receiver for the `worker-webhooks` project: a real HTTP server on loopback (vitest
 * globalSetup, Node side) that the Worker in workerd POSTs to. It records every request (method,
 * path, headers, raw body) and answers 200, or 500 while a failure rule for that request holds.
 *
 * The tests (in workerd) drive it through its control paths:
 * - `GET /control/requests?match=<text>[&match=<text>…]`: the recorded hook requests whose body contains every <text>.
 * - `POST /control/fail?match=<text>[&match=…]&count=<n>`: the next <n> hook requests whose body contains every <text> get 500.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { RecordedRequest } from "../recorded-webhook.js";

/** The receiver's port: inside the webhook suites' band (27500-27599); vitest.config.ts WEBHOOK_RECEIVER_PORT must match. */
export const RECEIVER_PORT = 27_500;
/** Bodies larger than this are cut off (a webhook is a few hundred bytes). */
const MAX_BODY_BYTES = 256 * 1024;


function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    request.on("error", reject);
  });
}

export function startReceiver(port: number): Promise<Server> {
  const recorded: RecordedRequest[] = [];
  const failRules: { match: string[]; left: number }[] = [];
  const matches = (body: string, match: string[]) => match.every((text) => body.includes(text));
  const server = createServer((request, response) => {
    void (async () => {
      const url = new URL(request.url ?? "/", "http://127.0.0.1");
      const body = await readBody(request);
      if (url.pathname === "/control/requests") {
        const match = url.searchParams.getAll("match");
        response.writeHead(200, { "Content-Type": "application/json" });
        response.end(JSON.stringify(recorded.filter((r) => matches(r.body, match))));
        return;
      }
      if (url.pathname === "/control/fail" && request.method === "POST") {
        failRules.push({ match: url.searchParams.getAll("match"), left: Number(url.searchParams.get("count") ?? "1") });
        response.writeHead(204).end();
        return;
      }
      const rule = failRules.find((r) => r.left > 0 && matches(body, r.match));
      const status = rule === undefined ? 200 : 500;
      if (rule !== undefined) rule.left -= 1;
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(request.headers)) headers[name] = Array.isArray(value) ? value.join(", ") : (value ?? "");
      recorded.push({ method: request.method ?? "", path: url.pathname, headers, body, receivedAt: Date.now(), status });
      response.writeHead(status, { "Content-Type": "text/plain" }).end(status === 200 ? "ok" : "failing on purpose");
    })().catch(() => {
      if (!response.headersSent) response.writeHead(500);
      response.end();
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

/** vitest globalSetup: the receiver runs for the whole project and is stopped at its end. */
export default async function setup(): Promise<() => Promise<void>> {
  const server = await startReceiver(RECEIVER_PORT);
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
}
