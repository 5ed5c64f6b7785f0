/**
 * A local fleet for the browser scripts, started the README's way (`npm start -- --relays N`): the
 * Worker's URL, the API key and each relay's pid as npm start prints them, an admin call with the
 * key, and a bounded wait until every relay is live and ready in GET /v1/fleet.
 */
import type { FleetView } from "../../../shared/fleet/view.js";
import { startLocalWorker, type LocalWorker } from "../../node/processes.js";
import { pollUntil } from "./harness.js";

const REGISTER_TIMEOUT_MS = 20_000;

export interface LocalFleet {
  local: LocalWorker;
  workerUrl: string;
  apiKey: string;
  /** `relay-1` → its pid. */
  pids: Record<string, number>;
  /** A request with `Authorization: Bearer <API key>`; a `body` goes as JSON. */
  admin(method: string, path: string, body?: unknown): Promise<Response>;
}

/** Starts npm start with `relays` relays (and `env` for it); the caller stops `local`. */
export async function startLocalFleet(relays: number, env: Record<string, string> = {}): Promise<LocalFleet> {
  const local = await startLocalWorker({ relays, env });
  const workerUrl = `http://127.0.0.1:${local.port}`;
  const pids = Object.fromEntries([...local.output().matchAll(/(relay-\d)\s+127\.0\.0\.1:\d+ \(UDP and TCP\), pid (\d+)/g)].map((match) => [match[1]!, Number(match[2])]));
  const apiKey = /\(API key: ([A-Za-z0-9_-]+)\)/.exec(local.output())?.[1];
  if (Object.keys(pids).length !== relays || apiKey === undefined) {
    await local.stop();
    throw new Error(`npm start did not print ${relays} relays' pids and the API key:\n${local.output()}`);
  }
  const admin = (method: string, path: string, body?: unknown) =>
    fetch(`${workerUrl}${path}`, {
      method,
      headers: { Authorization: `Bearer ${apiKey}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  return { local, workerUrl, apiKey, pids, admin };
}

/** Waits until all `count` relays are live and ready in the fleet's view. */
export async function waitForReadyRelays(fleet: LocalFleet, count: number): Promise<void> {
  let view: FleetView | undefined;
  await pollUntil(`${count} relays live and ready in GET /v1/fleet`, REGISTER_TIMEOUT_MS, 250, async () => {
    const response = await fleet.admin("GET", "/v1/fleet").catch(() => null);
    if (response === null || response.status !== 200) return undefined;
    view = (await response.json()) as FleetView;
    return view.relays.filter((relay) => relay.live && relay.state === "ready").length === count ? true : undefined;
  }, () => `${JSON.stringify(view)}\n${fleet.local.output()}`);
}
