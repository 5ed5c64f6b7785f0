/**
 * ICE servers minted by an app backend itself, for API-key style use without asking the Worker: the
 * same credential math (TurnKeyring) and the same answer (`iceServersForRelays`) as the Worker's
 * `GET /v1/ice-servers`, from the relays' shared secret and TURN URLs. Web Crypto only, so it runs in
 * Node, Workers, Deno and Bun. Keep the secret on the server: the result is what a browser gets.
 */
import { DEFAULT_TURN_TTL_SECONDS, MAX_CREDENTIAL_TTL_SECONDS, TurnCredentialError, TurnKeyring, nowSeconds } from "./credentials.js";
import { iceServersForRelays, isStunUrl, isTurnUrl, stunUrlsFromTurnUrls, type IceServersResponse } from "./ice-servers.js";

export interface MintIceServersOptions {
  /**
   * The relays' shared secret (their `--static-auth-secret`, the Worker's TURN_SECRETS): one string,
   * a comma-separated list, or a list. The first signs; more only matter to a verifier.
   */
  secrets: string | readonly string[];
  /**
   * Whom the credential is for: a plain user id (1-128 of `A-Z a-z 0-9 _ . @ + = -`), or a room
   * member's `roomMemberUser(room, peerId)` so relays count and end allocations per room. Default: a
   * random UUID.
   */
  user?: string;
  /** The relay's `turn:`/`turns:` URLs, e.g. `turn:relay.example.com:3478?transport=udp`. At least one. */
  turnUrls: readonly string[];
  /** `stun:` URLs to hand out. Default: each `turn:` URL's host and port as `stun:` (every TURN listener answers STUN). */
  stunUrls?: readonly string[];
  /** Lifetime in seconds, 1 to MAX_CREDENTIAL_TTL_SECONDS (48 h; relays refuse longer). Default DEFAULT_TURN_TTL_SECONDS (24 h). */
  ttlSeconds?: number;
  /** "Now" in Unix seconds, for tests and clocks you control. */
  now?: number;
}

/**
 * Mints one TURN credential and wraps it as the Worker's `/v1/ice-servers` answers: pass
 * `iceServers` to `new RTCPeerConnection({ iceServers })`, or the whole object to a client that
 * takes a `/v1/ice-servers` body. Throws a TurnCredentialError that says what to change when an
 * option is unusable.
 */
export async function mintIceServers(options: MintIceServersOptions): Promise<IceServersResponse> {
  const keyring = typeof options.secrets === "string" ? TurnKeyring.fromList(options.secrets) : new TurnKeyring(options.secrets);
  if (options.turnUrls.length === 0) throw new TurnCredentialError("mintIceServers needs at least one TURN URL (turnUrls), e.g. turn:relay.example.com:3478?transport=udp");
  const badTurn = options.turnUrls.find((url) => !isTurnUrl(url));
  if (badTurn !== undefined) throw new TurnCredentialError(`turnUrls has ${JSON.stringify(badTurn)}; each must start with turn: or turns:`);
  const stunUrls = options.stunUrls ?? stunUrlsFromTurnUrls(options.turnUrls);
  const badStun = stunUrls.find((url) => !isStunUrl(url));
  if (badStun !== undefined) throw new TurnCredentialError(`stunUrls has ${JSON.stringify(badStun)}; each must start with stun: or stuns:`);
  const ttlSeconds = options.ttlSeconds ?? DEFAULT_TURN_TTL_SECONDS;
  if (ttlSeconds > MAX_CREDENTIAL_TTL_SECONDS) {
    throw new TurnCredentialError(`ttlSeconds ${ttlSeconds} is longer than relays accept (${MAX_CREDENTIAL_TTL_SECONDS} s, 48 h): ask for ${MAX_CREDENTIAL_TTL_SECONDS} or less`);
  }
  // mint checks the user id and that the lifetime is a positive whole number.
  const credential = await keyring.mint(options.user ?? crypto.randomUUID(), ttlSeconds, options.now ?? nowSeconds());
  return iceServersForRelays(credential, [options.turnUrls], stunUrls);
}
