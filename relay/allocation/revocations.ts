/**
 * The revocations a relay holds (shared/fleet/protocol.ts `Revocation`, pushed by the fleet): which
 * credentials it must no longer serve, each until its `until`. Looked up when a revocation arrives
 * (once per live allocation) and once per authenticated TURN request: never per relayed packet.
 *
 * A credential is covered when its target matches (the room of a room member's credential, that
 * room's peer, or the exact username) and it expires at or before the revocation's `until`: every
 * credential issued before the revocation is, none issued after it (a kicked peer that may rejoin
 * gets a fresh credential with a later expiry).
 */
import type { Revocation } from "../../shared/fleet/protocol.js";
import { parseTurnUser } from "../../shared/turn/turn-user.js";

/** What a revocation is checked against: an allocation's owner, or a request's credential. */
export interface RevocableCredential {
  /** The whole TURN username, `<expiry>:<user>`. */
  readonly username: string;
  /** Its user part: a plain user id or a room member's `<room>/<peer-id>`. */
  readonly userId: string;
  /** Its expiry, unix seconds. */
  readonly credentialExpiresAt: number;
}

interface RoomRevocations {
  /** The whole room's `until`, or 0 when only some peers are revoked. */
  whole: number;
  /** Each revoked peer's `until`. */
  peers: Map<string, number>;
}

export class RevocationList {
  private readonly byUsername = new Map<string, number>();
  private readonly byRoom = new Map<string, RoomRevocations>();
  private count = 0;
  /** The earliest `until` held (unix seconds), so pruning walks the list only when one is due. */
  private earliest = Infinity;

  /**
   * `capacity`: revocations held at once (FLEET_LIMITS.maxRevocations); `maxUntilAhead`: no `until`
   * is kept further than this many seconds ahead, since no credential the relay accepts lives longer.
   */
  constructor(
    readonly capacity: number,
    private readonly maxUntilAhead: number,
  ) {}

  get size(): number {
    return this.count;
  }

  /**
   * Holds a revocation until its `until` (the later one when its target is held already). Returns
   * "added", "extended", "past" (its until has passed: nothing to hold) or "full" (capacity reached
   * after pruning; not held).
   */
  add(revocation: Revocation, nowSeconds: number): "added" | "extended" | "past" | "full" {
    if (revocation.until < nowSeconds) return "past";
    const until = Math.min(revocation.until, nowSeconds + this.maxUntilAhead);
    const held = this.heldUntil(revocation);
    if (held !== undefined) {
      if (until > held) this.set(revocation, until);
      return "extended";
    }
    if (this.count >= this.capacity) {
      this.prune(nowSeconds);
      if (this.count >= this.capacity) return "full";
    }
    this.set(revocation, until);
    this.count++;
    this.earliest = Math.min(this.earliest, until);
    return "added";
  }

  /** Whether `credential` is revoked at `nowSeconds`. */
  covers(credential: RevocableCredential, nowSeconds: number): boolean {
    if (this.count === 0) return false;
    const covered = (until: number | undefined) => until !== undefined && until >= nowSeconds && credential.credentialExpiresAt <= until;
    if (covered(this.byUsername.get(credential.username))) return true;
    if (this.byRoom.size === 0) return false;
    const user = parseTurnUser(credential.userId);
    if (user?.kind !== "room-member") return false;
    const room = this.byRoom.get(user.room);
    if (room === undefined) return false;
    return (room.whole > 0 && covered(room.whole)) || covered(room.peers.get(user.peerId));
  }

  /** Forgets the revocations whose `until` lies before `nowSeconds`. Cheap when none is due. */
  prune(nowSeconds: number): void {
    if (this.earliest >= nowSeconds) return;
    let earliest = Infinity;
    for (const [username, until] of this.byUsername) {
      if (until < nowSeconds) this.byUsername.delete(username);
      else earliest = Math.min(earliest, until);
    }
    for (const [name, room] of this.byRoom) {
      if (room.whole > 0 && room.whole < nowSeconds) room.whole = 0;
      else if (room.whole > 0) earliest = Math.min(earliest, room.whole);
      for (const [peer, until] of room.peers) {
        if (until < nowSeconds) room.peers.delete(peer);
        else earliest = Math.min(earliest, until);
      }
      if (room.whole === 0 && room.peers.size === 0) this.byRoom.delete(name);
    }
    this.count = this.byUsername.size;
    for (const room of this.byRoom.values()) this.count += (room.whole > 0 ? 1 : 0) + room.peers.size;
    this.earliest = earliest;
  }

  private heldUntil(revocation: Revocation): number | undefined {
    if (revocation.username !== null) return this.byUsername.get(revocation.username);
    const room = this.byRoom.get(revocation.room!);
    if (room === undefined) return undefined;
    if (revocation.peerId === null) return room.whole > 0 ? room.whole : undefined;
    return room.peers.get(revocation.peerId);
  }

  private set(revocation: Revocation, until: number): void {
    if (revocation.username !== null) {
      this.byUsername.set(revocation.username, until);
      return;
    }
    let room = this.byRoom.get(revocation.room!);
    if (room === undefined) {
      room = { whole: 0, peers: new Map() };
      this.byRoom.set(revocation.room!, room);
    }
    if (revocation.peerId === null) room.whole = until;
    else room.peers.set(revocation.peerId, until);
  }
}
