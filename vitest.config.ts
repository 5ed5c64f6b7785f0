/**
 * Every suite, one command (`npm test`):
 * - `worker`: the signaling Worker in real workerd (vitest-pool-workers), with the production defaults
 *   except a short resume grace period so presence tests need not wait 30 s.
 * - `worker-idle`: the same Worker with a short idle timeout, for the stale-connection sweep. It is a
 *   project of its own because a short timeout keeps waking the room, which the eviction test in
 *   `worker` must not have.
 * - `node`: Node-side tests (the local stack through `npm start`, the relay, shared code, the published
 *   packages packed and installed into a fresh app).
 * - `e2e`: real WebRTC stacks (werift, headless Chromium) through the Worker and the relay, each run
 *   inside a network namespace the test makes (so its ports are its own); after the other files, two
 *   at a time.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";
import { writeUnwatchedWranglerConfig } from "./test/node/wrangler-config.js";

// wrangler.toml serves dist/web as static assets, and the workerd pool refuses to start without it:
// build the pages first (well under a second), so `npx vitest` works on a fresh clone too.
execFileSync(process.execPath, ["scripts/build-web.mjs", "--quiet"], { stdio: "inherit" });

// The relay the suites start as a process is the bundle the image runs (scripts/build-relay.mjs), built
// afresh for this run and this Node: a start costs a quarter of the CPU of relay/main.ts through tsx
// (0.3 s against 1.3 s; 1.0 against 4.0 s with --relay-threads=2), and every relay-process and e2e
// test starts at least one.
// test/node/relay-command.ts reads RELAYKIT_TEST_RELAY; without it (a script run by hand) they run
// relay/main.ts through tsx. A directory of this run's own, so runs side by side (npm test and the
// LTS run) never rebuild each other's. Watch mode keeps the bundle of its start: restart it after
// changing the relay.
const testRunDir = mkdtempSync(join(tmpdir(), "relaykit-test-run-"));
process.once("exit", () => rmSync(testRunDir, { recursive: true, force: true }));
execFileSync(process.execPath, ["scripts/build-relay.mjs", testRunDir, `--target=node${process.versions.node.split(".")[0]}`], { stdio: "inherit" });
process.env["RELAYKIT_TEST_RELAY"] = join(testRunDir, "relay.mjs");
// Every `wrangler dev` the suites start runs wrangler.toml without its [build] watcher (the pages are
// built above), whose rebuild could reload the Worker just after it started: test/node/wrangler-config.ts.
process.env["RELAYKIT_TEST_WRANGLER_CONFIG"] = writeUnwatchedWranglerConfig(process.cwd(), testRunDir);

const wrangler = { configPath: "./wrangler.toml" };
/**
 * The suites set what they test themselves: a developer's own .dev.vars (which the pool reads)
 * must not turn on join tokens or a relay underneath them.
 */
const isolated = {
  JOIN_SECRET: "",
  AUTH_MODE: "",
  TURN_SECRETS: "",
  TURN_URLS: "",
  STUN_URLS: "",
  API_KEYS: "",
  ALLOWED_ORIGINS: "",
  FLEET_KEYS: "",
  FLEET_PICK: "",
  FLEET_MAX_RELAYS: "",
  FLEET_DEFAULT_LOCATION: "",
  FLEET_LOCATION_HEADER: "",
  WEBHOOK_URL: "",
  WEBHOOK_SECRET: "",
};
/** The fleet's test settings: a fleet key relays in tests sign with, and locations from a header. */
const TEST_FLEET_KEY = "test-fleet-key-0123456789abcdef-0123456789";
const fleetTest = { FLEET_KEYS: TEST_FLEET_KEY, FLEET_LOCATION_HEADER: "on" };
/** The webhook suites' receiver (in their port band, 27500-27599) and secrets (current, then an older one still accepted). */
const WEBHOOK_RECEIVER_PORT = 27_500;
const TEST_WEBHOOK_SECRET = "test-webhook-secret-0123456789abcdef-0123";
const TEST_WEBHOOK_OLD_SECRET = "test-webhook-old-secret-0123456789abcdef";

export default defineConfig({
  test: {
    // Three files at a time (the e2e group keeps two): vitest's default (one less than the cores) runs
    // one file at a time on a two-core CI machine, and most files mostly wait on sockets, timers and
    // child processes. In CI the files before the e2e group took 405 s with three against 493 s with
    // two (the machine's CPU was 45 % busy on average with two).
    maxWorkers: 3,
    projects: [
      {
        plugins: [
          cloudflareTest({
            wrangler,
            miniflare: { bindings: { ...isolated, ...fleetTest, RESUME_GRACE_SECONDS: "2", PEER_IDLE_TIMEOUT_SECONDS: "60" } },
          }),
        ],
        test: {
          name: "worker",
          include: ["test/worker/**/*.test.ts"],
          exclude: ["test/worker/idle/**", "test/worker/fleet*.test.ts", "test/worker/webhooks/**"],
          testTimeout: 30_000,
        },
      },
      {
        // The relay fleet is one Durable Object for the whole Worker, so its suites run in a runtime of
        // their own (no other file sees their relays) and one after another: as one file
        // (test/worker/fleet.test.ts imports them), because vitest runs the files of a project with
        // file parallelism off after every other suite of the run. The rooms there mint with the
        // fleet's TURN secret (drain notices), so open rooms are allowed on purpose.
        plugins: [
          cloudflareTest({
            wrangler,
            miniflare: {
              bindings: { ...isolated, ...fleetTest, FLEET_MAX_RELAYS: "6", TURN_SECRETS: "fleet-test-turn-secret", AUTH_MODE: "open", RESUME_GRACE_SECONDS: "2" },
            },
          }),
        ],
        test: { name: "worker-fleet", include: ["test/worker/fleet.test.ts"], testTimeout: 30_000 },
      },
      {
        // Webhooks: a real receiver on loopback (test/node/webhook-receiver.ts, started by globalSetup
        // on the Node side) that the rooms and the fleet POST to. One suite at a time, as one file
        // (test/worker/webhooks/webhooks.test.ts): the fleet object is one per runtime, and the
        // receiver's failure rules are shared.
        plugins: [
          cloudflareTest({
            wrangler,
            miniflare: {
              bindings: {
                ...isolated,
                ...fleetTest,
                RESUME_GRACE_SECONDS: "1",
                WEBHOOK_URL: `http://127.0.0.1:${WEBHOOK_RECEIVER_PORT}/hook`,
                WEBHOOK_SECRET: `${TEST_WEBHOOK_SECRET},${TEST_WEBHOOK_OLD_SECRET}`,
                WEBHOOK_TEST_RETRY_BASE_MS: "10",
                WEBHOOK_TEST_ROOM_FINISH_DELAY_MS: "1500",
              },
            },
          }),
        ],
        test: {
          name: "worker-webhooks",
          include: ["test/worker/webhooks/**/*.test.ts"],
          globalSetup: ["test/node/webhook-receiver.ts"],
          testTimeout: 30_000,
        },
      },
      {
        plugins: [
          cloudflareTest({
            wrangler,
            miniflare: { bindings: { ...isolated, RESUME_GRACE_SECONDS: "1", PEER_IDLE_TIMEOUT_SECONDS: "1.5" } },
          }),
        ],
        test: { name: "worker-idle", include: ["test/worker/idle/**/*.test.ts"], testTimeout: 30_000 },
      },
      {
        test: { name: "node", environment: "node", include: ["test/node/**/*.test.ts", "test/shared/**/*.test.ts", "test/relay/**/*.test.ts", "test/bench/**/*.test.ts", "test/packages/**/*.test.ts"], testTimeout: 60_000 },
      },
      {
        // The relay's UDP and TCP suites once more on Node's dgram and net, the fallbacks where the native
        // addon is not built (the node project runs them on the addon: test/relay/turn-client.ts,
        // TEST_UDP_IO and TEST_TCP_IO).
        test: {
          name: "node-dgram",
          environment: "node",
          include: ["test/relay/relay-data-path.test.ts", "test/relay/relay-udp-abuse.test.ts", "test/relay/relay-transports.test.ts", "test/relay/relay-allocate.test.ts", "test/relay/relay-uclient.test.ts", "test/relay/relay-lifecycle.test.ts", "test/relay/relay-stream-abuse.test.ts", "test/relay/relay-methods-over-streams.test.ts"],
          env: { RELAYKIT_TEST_UDP_IO: "dgram", RELAYKIT_TEST_TCP_IO: "net" },
          testTimeout: 60_000,
        },
      },
      {
        // After the rest (a group of their own: browsers beside the other suites starve two cores and
        // make timings flaky), two files at a time: each file builds its own stack inside a network
        // namespace of its own, so two never share a port.
        test: { name: "e2e", environment: "node", include: ["test/e2e/**/*.test.ts"], testTimeout: 180_000, hookTimeout: 120_000, maxWorkers: 2, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
