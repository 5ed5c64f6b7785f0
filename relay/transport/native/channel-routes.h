/*
 * Channel routes: the bound channels of the relay's UDP clients, kept where the addon can relay
 * their data without entering JavaScript (issue 16).
 *
 * A route is one channel of one allocation: the client (its address and the listener socket it
 * talks to), the channel number, the peer, and the allocation's relay socket. Datagrams that match
 * a live route are relayed by udp-batch.c in C: a ChannelData from the client becomes a datagram
 * from the relay socket to the peer, and a datagram from the peer to the relay socket becomes a
 * ChannelData to the client. Everything else (no route, an expired one, STUN) goes to JavaScript as
 * before, which also decides every route: relay/allocation/allocation.ts sets one when a channel
 * and its peer's permission are live, with the earlier of their two expiries, and only for an
 * allocation whose every datagram needs no other check (no bandwidth limit).
 *
 * A TCP client's channels are routed too (stream-io.c): a ChannelData frame that one read of its
 * connection carries whole goes to the peer from the relay socket, and a datagram from the peer is
 * written to the connection as padded ChannelData, within the backlog bound JavaScript set for it
 * (relay/transport/stream.ts; each drop past it is reported to JavaScript, which keeps the rest of
 * those rules).
 *
 * This file is the data structure alone: a hash table from (listener, client, channel) for a UDP
 * client's side, each TCP connection's own short list for a TCP client's, and each relay socket's
 * own short list for the peer's side. The sockets are udp-batch.c's and stream-io.c's; here they
 * are opaque pointers.
 */
#ifndef RELAYKIT_CHANNEL_ROUTES_H
#define RELAYKIT_CHANNEL_ROUTES_H
#include <stdint.h>
#include <sys/socket.h>

struct udp_socket;
struct stream_routes;

/* An IPv4 or IPv6 transport address in the form routes compare: family, port (host order), IP bytes. */
typedef struct route_address {
  uint16_t family; /* AF_INET or AF_INET6 */
  uint16_t port;
  unsigned char ip[16]; /* IPv4 in the first 4, the rest zero */
} route_address;

typedef struct channel_route {
  struct channel_route *next_in_bucket;
  struct channel_route *next_of_relay;  /* the relay socket's next route */
  struct channel_route *next_of_stream; /* a TCP client's: its connection's next route */
  struct udp_socket *listener;          /* a UDP client's: where its ChannelData arrives and its relayed data leaves */
  struct stream_routes *stream;         /* a TCP client's (listener NULL): its connection's routes */
  struct udp_socket *relay;             /* the allocation's relay socket */
  route_address client;
  route_address peer;
  uint16_t channel;
  uint32_t hash;
  uint64_t expires_at; /* the event loop's clock (uv_now, ms): relayed only before it */
  /* What the route relayed since JavaScript last collected it (routeCounts). */
  double packets_to_peer;
  double bytes_to_peer;
  double packets_to_client;
  double bytes_to_client;
} channel_route;

typedef struct route_table {
  channel_route **buckets;
  uint32_t bucket_count; /* a power of two, or 0 before the first route */
  uint32_t count;
} route_table;

/* A TCP connection's routes (stream-io.c keeps one in each connection): a connection carries one
 * allocation, whose few channels are walked. */
typedef struct stream_routes {
  channel_route *first;
} stream_routes;

/* At most this many routes in one process: past it a channel is relayed by JavaScript, as before. */
#define ROUTES_MAX (1u << 18)

/* `address` (a received sender, or one parsed from text) in route form; 0 when it is neither IPv4 nor IPv6. */
int route_address_from(const struct sockaddr_storage *address, route_address *out);
/* The socket address of `address`, for sending; its length. */
socklen_t route_address_to_sockaddr(const route_address *address, struct sockaddr_storage *out);
int same_route_address(const route_address *a, const route_address *b);

/* The route of `channel` from `client` on `listener`; NULL when none. */
channel_route *find_client_route(const route_table *table, const struct udp_socket *listener, const route_address *client, uint16_t channel);
/* The route among a relay socket's (`first` and its next_of_relay) whose peer is `peer`; NULL when none. */
channel_route *find_peer_route(channel_route *first, const route_address *peer);
/* The route of `channel` among a TCP connection's; NULL when none. */
channel_route *find_stream_route(const stream_routes *routes, uint16_t channel);
/* The route of `channel` among a relay socket's; NULL when none. */
channel_route *find_relay_channel(channel_route *first, uint16_t channel);

/* Adds a route whose key fields (listener, client, channel) are set; 0, or ENOMEM (table full or no memory). */
int add_route(route_table *table, channel_route *route);
/* Takes `route` out of the table (not out of its relay socket's list: the caller does that). */
void remove_route(route_table *table, channel_route *route);
/* Frees the table's buckets (the routes are freed by their relay sockets). */
void free_route_table(route_table *table);

#endif
