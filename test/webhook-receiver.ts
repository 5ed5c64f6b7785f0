/**
 * A webhook receiver for tests: an HTTP server on 127.0.0.1 (any free port) that records every
 * request it gets, in arrival order, with the raw body (signatures are over the exact bytes), and
 * answers 204 (or 500 for the next `failNext` requests). `stop()` closes it and its connections.
 */
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedWebhook {
  /** Milliseconds since the epoch when the body was complete. */
  at: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** The status this receiver answered. */
  status: number;
}

export interface WebhookReceiver {
  /** `http://127.0.0.1:<port>` */
  url: string;
  received(): ReceivedWebhook[];
  /** Answer the next `count` requests 500. */
  failNext(count: number): void;
  stop(): Promise<void>;
}

/** Bodies larger than this are cut off and answered 413: a receiver must not grow without bound either. */
const MAX_BODY_BYTES = 1024 * 1024;

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const received: ReceivedWebhook[] = [];
  let failures = 0;
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    request.on("end", () => {
      const status = size > MAX_BODY_BYTES ? 413 : failures > 0 ? 500 : 204;
      if (status === 500) failures -= 1;
      received.push({ at: Date.now(), method: request.method ?? "", path: request.url ?? "", headers: request.headers, body: Buffer.concat(chunks).toString("utf8"), status });
      response.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received: () => [...received],
    failNext: (count) => {
      failures = count;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
