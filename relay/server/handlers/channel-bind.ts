/**
 * ChannelBind (RFC 8656 §11): a channel number for one peer transport address, for ten minutes,
 * which also installs or refreshes the permission for the peer's IP. A channel stays with its peer
 * and a peer with its channel until the binding expires.
 */
import { AttributeType } from "../../stun/constants.js";
import { readChannelNumber } from "../../stun/attributes.js";
import { findAttribute } from "../../stun/message.js";
import { CHANNEL_LIFETIME_SECONDS, PERMISSION_LIFETIME_SECONDS } from "../../config.js";
import { isChannelNumber } from "../../turn/channel-data.js";
import type { RelayRequest, TurnContext } from "../context.js";
import { failure, success, type Answer } from "../responses.js";
import { checkPeerAddress, ownAllocation } from "./peer-address.js";

export function handleChannelBind(ctx: TurnContext, request: RelayRequest): Answer {
  const { message, auth, now } = request;
  const own = ownAllocation(ctx.table.byKey(request.link.key), auth.username);
  if (!own.ok) return own.answer;
  const allocation = own.allocation;

  const channelAttribute = findAttribute(message, AttributeType.ChannelNumber);
  if (channelAttribute === undefined) return failure(400, "Bad Request: CHANNEL-NUMBER is missing");
  const channel = readChannelNumber(message, channelAttribute);
  if (!channel.ok) return failure(400, `Bad Request: ${channel.reason}`);
  if (!isChannelNumber(channel.value)) return failure(400, `Bad Request: channel numbers are 0x4000-0x7FFF, got 0x${channel.value.toString(16)}`);
  const peerAttribute = findAttribute(message, AttributeType.XorPeerAddress);
  if (peerAttribute === undefined) return failure(400, "Bad Request: XOR-PEER-ADDRESS is missing");
  const checked = checkPeerAddress(message, peerAttribute, allocation, ctx.peers);
  if (!checked.ok) return checked.answer;
  const peer = checked.peer;
  if (peer.port === 0) return failure(400, "Bad Request: XOR-PEER-ADDRESS port 0 is no peer");
  if (ctx.isOwnListener(peer.address, peer.port)) return failure(403, "Forbidden: the relay does not relay to its own listeners");
  // A binding that has run out no longer holds its number or its peer, even before the sweep.
  allocation.sweep(now);

  const byNumber = allocation.channelsByNumber.get(channel.value);
  if (byNumber !== undefined && (byNumber.peer.address !== peer.address || byNumber.peer.port !== peer.port)) {
    return failure(400, "Bad Request: that channel is bound to another peer");
  }
  const byPeer = allocation.channelsByPeer.get(peer.address, peer.port);
  if (byPeer !== undefined && byPeer.number !== channel.value) {
    return failure(400, "Bad Request: that peer is bound to another channel");
  }
  if (byNumber === undefined && allocation.channelsByNumber.size >= ctx.config.maxChannelsPerAllocation) {
    return failure(508, `Insufficient Capacity: an allocation holds at most ${ctx.config.maxChannelsPerAllocation} channels`);
  }
  if (!allocation.permissions.has(peer.address) && allocation.permissions.size >= ctx.config.maxPermissionsPerAllocation) {
    return failure(508, `Insufficient Capacity: an allocation holds at most ${ctx.config.maxPermissionsPerAllocation} permissions`);
  }
  allocation.bindChannel(channel.value, peer, CHANNEL_LIFETIME_SECONDS * 1000, now);
  allocation.permit(peer.address, PERMISSION_LIFETIME_SECONDS * 1000, now);
  return success();
}
