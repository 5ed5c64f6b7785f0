/**
 * Send indication (RFC 8656 §10.2): relay DATA to XOR-PEER-ADDRESS if a permission exists.
 * Indications get no answer; anything wrong is dropped silently, as the RFC asks. This is the
 * data path, so the datagram is read in place (turn/indications.ts), not through the full decoder.
 */
import type { Allocation } from "../../allocation/allocation.js";
import { readSendIndication, type SendIndication } from "../../turn/indications.js";

/** Reused for every Send indication: the data path builds no object per datagram. */
const scratch: SendIndication = { peerAddress: "", peerPort: 0, dataOffset: 0, dataLength: 0 };

export function handleSendIndication(allocation: Allocation, datagram: Buffer, now: number): boolean {
  if (!readSendIndication(datagram, scratch) || !allocation.hasPermission(scratch.peerAddress, now)) return false;
  allocation.toPeer(datagram, scratch.dataOffset, scratch.dataLength, scratch.peerAddress, scratch.peerPort);
  return true;
}
