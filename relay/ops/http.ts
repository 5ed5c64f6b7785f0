/**
 * The metrics and health listener (`--prometheus`), on its own HTTP port, apart from STUN/TURN:
 *
 *   GET /metrics   Prometheus text; with --prometheus-token-file only for `Authorization: Bearer <token>`
 *   GET /livez     200 while the process runs (nothing else is checked: a restart would not help)
 *   GET /readyz    200 when the listeners are bound, the relay is not draining and its secrets are
 *                  loaded; 503 with the reasons otherwise (a load balancer stops sending new clients)
 *
 * Health answers need no token, so a probe can ask without knowing a secret; they tell nothing
 * about the traffic.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Readiness } from "../server/relay-server.js";

export interface OpsListenerOptions {
  address: string;
  port: number;
  /** The bearer token /metrics asks for right now (SIGHUP may change it); null: none. */
  token(): string | null;
  metrics(): Promise<{ contentType: string; body: string }>;
  readiness(): Readiness;
}

export interface OpsListener {
  address: string;
  port: number;
  close(): Promise<void>;
}

/** Requests that take longer than this (a slow client) are cut: the listener must stay cheap. */
const REQUEST_TIMEOUT_MS = 10_000;

/** Whether an Authorization header carries the token; compared in constant time. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const given = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "")?.[1];
  if (given === undefined) return false;
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(given), digest(token));
}

function send(response: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  response.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...headers });
  response.end(body);
}

async function handle(options: OpsListenerOptions, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = (request.url ?? "/").split("?")[0];
  if (request.method !== "GET" && request.method !== "HEAD") return send(response, 405, "only GET and HEAD\n", { allow: "GET, HEAD" });
  switch (path) {
    case "/livez":
      return send(response, 200, "ok\n");
    case "/readyz": {
      const readiness = options.readiness();
      return readiness.ready ? send(response, 200, "ready\n") : send(response, 503, `not ready: ${readiness.problems.join("; ")}\n`);
    }
    case "/metrics": {
      const token = options.token();
      if (token !== null && !bearerMatches(request.headers.authorization, token)) {
        return send(response, 401, "/metrics needs Authorization: Bearer <the token in --prometheus-token-file>\n", { "www-authenticate": 'Bearer realm="relay metrics"' });
      }
      const { contentType, body } = await options.metrics();
      return send(response, 200, body, { "content-type": contentType });
    }
    default:
      return send(response, 404, "not found: try /metrics, /livez or /readyz\n");
  }
}

export async function startOpsListener(options: OpsListenerOptions): Promise<OpsListener> {
  const server = createServer((request, response) => {
    handle(options, request, response).catch((error: unknown) => {
      if (!response.headersSent) send(response, 500, `metrics failed: ${String(error)}\n`);
      else response.destroy();
    });
  });
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.headersTimeout = REQUEST_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port: options.port, host: options.address, ipv6Only: options.address.includes(":") }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", () => {});
  const bound = server.address() as AddressInfo;
  return {
    address: bound.address,
    port: bound.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
