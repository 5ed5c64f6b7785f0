/**
 * The local stack as a newcomer runs it: `npm start` (wrangler dev --local) on a free port, then
 * `node scripts/signal-demo.mjs` against it. Proves the README's quick start works end to end.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IceServersResponse } from "../../shared/turn/ice-servers.js";
import { requireCoturn, uclientTotals } from "./coturn.js";
import { LOCAL_WORKER_HOOK_TIMEOUT_MS, run, startLocalWorker, type LocalWorker } from "./processes.js";

const DEMO_TIMEOUT_MS = 15_000;

describe("local stack: npm start + scripts/signal-demo.mjs", () => {
  let worker: LocalWorker;

  beforeAll(async () => {
    worker = await startLocalWorker();
  }, LOCAL_WORKER_HOOK_TIMEOUT_MS);

  afterAll(() => worker?.stop(), LOCAL_WORKER_HOOK_TIMEOUT_MS);

  it("answers a plain GET on a room with 426 upgrade-required", () => {
    expect(worker.firstResponse.status, worker.output()).toBe(426);
    const body: unknown = JSON.parse(worker.firstResponse.body);
    expect(body).toMatchObject({ error: { code: "upgrade-required", message: expect.any(String) } });
  });

  it("serves every page through the asset router with its security headers (run_worker_first)", async () => {
    for (const path of ["/", "/ice-test", "/r/local-room"]) {
      const response = await fetch(`http://127.0.0.1:${worker.port}${path}`);
      expect(response.status, path).toBe(200);
      expect(response.headers.get("Content-Type"), path).toMatch(/^text\/html/);
      expect(response.headers.get("Content-Security-Policy"), path).toContain("frame-ancestors 'none'");
      expect(response.headers.get("Content-Security-Policy"), path).toContain(`connect-src 'self' ws://127.0.0.1:${worker.port}`);
      expect(response.headers.get("X-Content-Type-Options"), path).toBe("nosniff");
      expect(response.headers.get("Referrer-Policy"), path).toBe("no-referrer");
      await response.body?.cancel();
    }
    // The pages' files under other names only redirect, so no copy of a page goes out without the headers.
    for (const [path, target] of [["/index.html", "/"], ["/ice-test.html", "/ice-test"]] as const) {
      const response = await fetch(`http://127.0.0.1:${worker.port}${path}`, { redirect: "manual" });
      expect(response.status, path).toBeGreaterThanOrEqual(301);
      expect(response.status, path).toBeLessThanOrEqual(308);
      expect(response.headers.get("Location"), path).toBe(target);
      await response.body?.cancel();
    }
  });

  it("relays a signal between two peers in the demo script", async () => {
    const room = `local-stack-${process.pid}-${Date.now()}`;
    const demo = await run(
      process.execPath,
      ["scripts/signal-demo.mjs", `ws://127.0.0.1:${worker.port}`, room],
      DEMO_TIMEOUT_MS,
    );
    const report = `signal-demo exit ${demo.code} (signal ${demo.signal})\nstdout:\n${demo.stdout}\nstderr:\n${demo.stderr}\nwrangler:\n${worker.output()}`;

    expect(demo.code, report).toBe(0);
    const peerA = /^A welcome: peerId=(\S+)$/m.exec(demo.stdout)?.[1];
    expect(peerA, report).toBeDefined();
    expect(demo.stdout, report).toContain(`B received signal from ${peerA}:`);
    expect(demo.stdout, report).toContain('"kind":"offer"');
  });

  it("hands out ICE servers whose TURN credential the local relay accepts", async () => {
    requireCoturn();
    const response = await fetch(`http://127.0.0.1:${worker.port}/v1/ice-servers`);
    expect(response.status, worker.output()).toBe(200);
    const body = (await response.json()) as IceServersResponse;
    const turn = body.iceServers.find((server) => server.username !== undefined)!;
    expect(turn.urls).toEqual([
      `turn:127.0.0.1:${worker.relayPort}?transport=udp`,
      `turn:127.0.0.1:${worker.relayPort}?transport=tcp`,
    ]);
    const args = ["-y", "-c", "-n", "5", "-u", turn.username!, "-w", turn.credential!, "-p", String(worker.relayPort), "127.0.0.1"];
    const result = await run("turnutils_uclient", args, 30_000);
    const report = `turnutils_uclient ${args.join(" ")}\nexit ${result.code}\n${result.stdout}\n${result.stderr}\n${worker.output()}`;
    expect(result.code, report).toBe(0);
    const totals = uclientTotals(result.stdout + result.stderr);
    expect(totals!.received, report).toBe(totals!.sent);
    expect(totals!.sent, report).toBeGreaterThan(0);
  }, 40_000);
});
