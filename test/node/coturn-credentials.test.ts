/**
 * A real coturn accepts the credentials TurnKeyring.mint issues: the proof that our TURN REST
 * contract is the one coturn's `use-auth-secret` implements, not merely self-consistent.
 *
 * coturn 4.6.1 (Debian's `coturn` package; scripts/install-test-prerequisites.sh installs it) runs on
 * 127.0.0.1 with two static secrets, the current one and the one being rotated out. Its own test
 * client, `turnutils_uclient`, takes our username and password as they are (-u, -w), allocates two
 * relays and sends a packet through each: it exits 0 only when every allocation was authenticated.
 * The server's log says why a request was refused, so a refusal is pinned to authentication (401).
 */
import { type ExpectStatic, afterAll, beforeAll, describe, it } from "vitest";
import { TurnKeyring, checkTurnUsername, nowSeconds } from "../../shared/turn/credentials.js";
import { roomMemberUser } from "../../shared/turn/turn-user.js";
import {
  COTURN_HOOK_TIMEOUT_MS,
  UCLIENT_TEST_TIMEOUT_MS,
  type Coturn,
  type UclientRun,
  runUclient,
  startCoturn,
  uclientTotals,
} from "./coturn.js";

const CURRENT_SECRET = "coturn-test-secret-current";
const PREVIOUS_SECRET = "coturn-test-secret-previous";
const UNKNOWN_SECRET = "a-secret-coturn-was-never-given";
const REALM = "relaykit.test";
const TTL_SECONDS = 600;

const ALLOCATED = /incoming packet ALLOCATE processed, success/;
const UNAUTHORIZED = /error 401: Unauthorized/;

let coturn: Coturn | undefined;
let startError: unknown;

// A start failure (coturn not installed, say) is kept and thrown by every test, so each one fails
// with the reason instead of being reported as skipped after a failed hook.
beforeAll(async () => {
  try {
    coturn = await startCoturn({ secrets: [CURRENT_SECRET, PREVIOUS_SECRET], realm: REALM });
  } catch (error) {
    startError = error;
  }
}, COTURN_HOOK_TIMEOUT_MS);

afterAll(async () => {
  await coturn?.stop();
}, COTURN_HOOK_TIMEOUT_MS);

function server(): Coturn {
  if (coturn === undefined) throw startError ?? new Error("turnserver did not start");
  return coturn;
}

/** Everything needed to see why a run went as it did: the commands, uclient's output, coturn's word. */
function explain(run: UclientRun, log: string[]): string {
  return [
    `$ ${server().args.join(" ")}`,
    `$ ${run.args.join(" ")}`,
    `exit code ${run.code}, signal ${run.signal}; uclient output:\n${run.stdout}${run.stderr}`,
    log.length > 0
      ? `turnserver's log lines about this username:\n${log.join("\n")}`
      : `turnserver logged nothing about this username; its last 3000 characters:\n${server().output().slice(-3000)}`,
  ].join("\n");
}

/** Runs uclient with `credential` and reads the server's log lines about its username. */
async function attempt(credential: { username: string; password: string }, expectedInLog: RegExp) {
  const run = await runUclient(server().port, credential.username, credential.password);
  const log = await server().linesFor(credential.username, expectedInLog);
  return { run, log, why: explain(run, log) };
}

// The accepting runs take seconds each (uclient waits before sending), so they run side by side.
describe.concurrent("coturn with use-auth-secret accepts", () => {
  it(
    "a credential minted by TurnKeyring.mint: both relays are allocated and carry a packet each",
    async ({ expect }) => {
      const credential = await new TurnKeyring([CURRENT_SECRET, PREVIOUS_SECRET]).mint("coturn.alice", TTL_SECONDS);
      const { run, log, why } = await attempt(credential, ALLOCATED);
      expect(run.code, why).toBe(0);
      expect(uclientTotals(run.stdout), why).toEqual({ sent: 2, received: 2 });
      expect(log.filter((line) => ALLOCATED.test(line)).length, why).toBeGreaterThanOrEqual(2);
    },
    UCLIENT_TEST_TIMEOUT_MS,
  );

  it(
    "a room member's credential (<expiry>:<room>/<peer-id>), as the welcome frame carries it",
    async ({ expect }) => {
      const credential = await new TurnKeyring([CURRENT_SECRET]).mint(roomMemberUser("standup-42", "ann@example.com"), TTL_SECONDS);
      expect(credential.username).toMatch(/^\d+:standup-42\/ann@example\.com$/);
      const { run, log, why } = await attempt(credential, ALLOCATED);
      expect(run.code, why).toBe(0);
      expect(uclientTotals(run.stdout), why).toEqual({ sent: 2, received: 2 });
      expect(log.some((line) => ALLOCATED.test(line)), why).toBe(true);
    },
    UCLIENT_TEST_TIMEOUT_MS,
  );

  it(
    "a credential signed with the secret being rotated out, from an issuer not yet switched",
    async ({ expect }) => {
      const credential = await new TurnKeyring([PREVIOUS_SECRET]).mint("coturn.bob", TTL_SECONDS);
      const { run, log, why } = await attempt(credential, ALLOCATED);
      expect(run.code, why).toBe(0);
      expect(uclientTotals(run.stdout), why).toEqual({ sent: 2, received: 2 });
      expect(log.some((line) => ALLOCATED.test(line)), why).toBe(true);
    },
    UCLIENT_TEST_TIMEOUT_MS,
  );

  // coturn enforces no maximum lifetime: the issuer's ttl cap (TURN_MAX_TTL) is the only one.
  it(
    "a credential that expires further ahead than our own relay would accept",
    async ({ expect }) => {
      const credential = await new TurnKeyring([CURRENT_SECRET]).mint("coturn.carol", 30 * 24 * 3600);
      expect(checkTurnUsername(credential.username)).toMatchObject({ ok: false, reason: "too-far-ahead" });
      const { run, why } = await attempt(credential, ALLOCATED);
      expect(run.code, why).toBe(0);
    },
    UCLIENT_TEST_TIMEOUT_MS,
  );
});

describe.concurrent("coturn with use-auth-secret refuses, with 401 and no allocation,", () => {
  /** uclient gave up on its own (not killed by our timeout) because coturn answered 401 to its username. */
  async function expectRefused(credential: { username: string; password: string }, expect: ExpectStatic) {
    const { run, log, why } = await attempt(credential, UNAUTHORIZED);
    expect(run.signal, why).toBeNull();
    expect(run.code, why).not.toBe(0);
    expect(run.stdout, why).toContain("Cannot complete Allocation");
    expect(uclientTotals(run.stdout), why).toBeUndefined();
    expect(log.some((line) => UNAUTHORIZED.test(line)), why).toBe(true);
    expect(log.some((line) => ALLOCATED.test(line)), why).toBe(false);
  }

  it(
    "a credential signed with a secret it was not given",
    async ({ expect }) => {
      await expectRefused(await new TurnKeyring([UNKNOWN_SECRET]).mint("coturn.mallory", TTL_SECONDS), expect);
    },
    UCLIENT_TEST_TIMEOUT_MS,
  );

  it(
    "an expired credential",
    async ({ expect }) => {
      await expectRefused(await new TurnKeyring([CURRENT_SECRET]).mint("coturn.dave", 60, nowSeconds() - 660), expect);
    },
    UCLIENT_TEST_TIMEOUT_MS,
  );

  // Unlike our own check, coturn compares the expiry with its clock exactly: clients must fetch a
  // new credential before the old one expires, not rely on a grace period.
  it(
    "a credential 5 s past its expiry, which our own check still accepts within its clock skew",
    async ({ expect }) => {
      const credential = await new TurnKeyring([CURRENT_SECRET]).mint("coturn.erin", 60, nowSeconds() - 65);
      expect(checkTurnUsername(credential.username).ok).toBe(true);
      await expectRefused(credential, expect);
    },
    UCLIENT_TEST_TIMEOUT_MS,
  );

  it(
    "a credential whose password belongs to another username",
    async ({ expect }) => {
      const keyring = new TurnKeyring([CURRENT_SECRET]);
      const frank = await keyring.mint("coturn.frank", TTL_SECONDS);
      const grace = await keyring.mint("coturn.grace", TTL_SECONDS);
      await expectRefused({ username: grace.username, password: frank.password }, expect);
    },
    UCLIENT_TEST_TIMEOUT_MS,
  );
});
