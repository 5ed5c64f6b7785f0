/**
 * coturn's own client, `turnutils_uclient`, against our relay on loopback: it allocates, installs
 * permissions and channels, and echoes messages through the relay with credentials the Worker's
 * keyring minted.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TurnKeyring } from "../../shared/turn/credentials.js";
import { RelayServer } from "../../relay/server/relay-server.js";
import { parseRelayArgs, type RelayConfig } from "../../relay/config.js";
import { UCLIENT_TEST_TIMEOUT_MS, runUclient, uclientTotals } from "../node/coturn.js";

const SECRET = "relay-test-secret";

function config(extra: string[] = []): RelayConfig {
  const parsed = parseRelayArgs([
    "--listening-ip=127.0.0.1",
    "--listening-port=0",
    "--min-port=41000",
    "--max-port=41199",
    `--static-auth-secret=${SECRET}`,
    "--realm=relaykit.test",
    "--allow-loopback-peers",
    ...extra,
  ]);
  if (parsed.help) throw new Error("unexpected --help");
  return parsed.config;
}

describe("turnutils_uclient against the relay", () => {
  let relay: RelayServer;
  let port: number;
  const events: unknown[] = [];

  beforeAll(async () => {
    relay = new RelayServer(config(), (event) => events.push(event));
    port = (await relay.start())[0]!.port;
  });

  afterAll(async () => {
    await relay?.stop();
  });

  it("allocates and relays with minted credentials", async () => {
    const credential = await new TurnKeyring([SECRET]).mint("uclient", 600);
    const run = await runUclient(port, credential.username, credential.password);
    const report = `${run.args.join(" ")}\nexit ${run.code}\n${run.stdout}\n${run.stderr}\nevents: ${JSON.stringify(events)}`;
    expect(run.code, report).toBe(0);
    const totals = uclientTotals(run.stdout + run.stderr);
    expect(totals, report).toBeDefined();
    expect(totals!.received, report).toBe(totals!.sent);
    expect(totals!.sent, report).toBeGreaterThan(0);
  }, UCLIENT_TEST_TIMEOUT_MS);
});
