/*
 * Batched UDP I/O for the relay's data path (Linux): recvmmsg into one shared receive area, one
 * JavaScript call per datagram inside one callback scope per wake of the loop, and sendto/sendmsg
 * straight from the caller's buffer. Every socket sits in one epoll set of the module's own, which
 * libuv polls as one descriptor (see module_state).
 *
 * Why: Node's dgram spends more CPU per datagram than the relay's own TURN logic does: a 64 KiB
 * receive buffer malloc'ed and freed, the sender address printf-formatted into a fresh rinfo
 * object, a full MakeCallback (async hooks, tick queue, microtasks) per datagram, and a JS send
 * path with a request object per send. Here a readiness event reads up to BATCH datagrams per
 * system call and hands each to JavaScript as (socket handle, offset, length, address, port) into
 * the shared receive area, which JavaScript reads in place and must not keep past the call.
 *
 * Sends made while a batch is being delivered are not sent at once: they are copied aside and, at
 * the loop's check phase (after every readiness event of this turn), each socket's go out in one
 * sendmmsg. The kernel's work per datagram stays, but the system call around it is paid once per
 * socket per turn instead of once per datagram: on this VM sendto costs about 3.8 us a datagram
 * against 2.2 us in a sendmmsg of 32. The listener, which answers every client, gains most: the
 * datagrams that all the relay sockets receive in one turn leave through it in a few calls. The
 * data of TCP clients is held the same way while stream-io.c handles a batch of their reads
 * (hold_udp_sends). A send outside both (a timer) goes at once, unless sends on the same socket
 * already wait (order is kept per socket); closing a socket sends what waits for it first.
 *
 * Within a socket's deferred sends, a run of three or more datagrams to one destination, all of one
 * size (the last may be shorter), leaves as one segmented send (UDP_SEGMENT, Linux 4.18): the kernel
 * walks its output path once for the run and cuts it into the datagrams below that, so the receiver still
 * gets each one apart. Runs are common: a client's packets come in bursts, and each is relayed to
 * the same peer, its echo to the same client (in the bench's uclient loads, 98 % of the deferred
 * sends were in runs, four long on average). A segmented send the kernel refuses (no support, a
 * path MTU below the segment size) is sent again datagram by datagram, and a socket whose kernel
 * or route cannot segment at all stops trying.
 *
 * Sends that meet a full socket buffer (EAGAIN) are copied to a bounded queue and flushed when the
 * socket is writable again, as libuv does for dgram; past the bound they are dropped and counted.
 * Two bounds hold: each socket's queue (its buffer size), and all sockets' queues together
 * (DEFAULT_TOTAL_QUEUE_BYTES, settable with setSendQueueLimit), so 10,000 allocations with 1 MB
 * buffers cannot queue 10 GB between them. A send the kernel takes at once costs neither.
 *
 * The JavaScript side is relay/transport/native-udp.ts; the build is scripts/build-native-udp.mjs.
 */
#define _GNU_SOURCE
#include "native-common.h"
#include "channel-routes.h"
#include <fcntl.h>
#include <malloc.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <stdlib.h>
#include <unistd.h>

/* Datagrams read per recvmmsg call, and calls per readiness event before yielding to the loop. */
#define BATCH 64
#define ROUNDS_PER_EVENT 4
/* Ready sockets taken per epoll_wait, all delivered in one callback scope. */
#define SOCKETS_PER_WAKE 64
/* One receive slot holds the largest UDP payload. */
#define SLOT_BYTES 65536
/* Sends held for the check phase: at most this many, in at most this many bytes (then flushed early). */
#define DEFERRED_SENDS 1024
#define DEFERRED_BYTES (256 * 1024)
/* Segmented sends: at most this many datagrams in one (the kernel's UDP_MAX_SEGMENTS before 6.x
 * raised it), of at most this many bytes each (below an Ethernet path's 1472-byte UDP payload, so a
 * route of MTU 1500 never refuses them) and this many in all (under a UDP datagram's 65,507). */
#define SEGMENTS_MAX 64
#define SEGMENT_BYTES_MAX 1452
#define SEGMENTED_BYTES_MAX 65000
/* Shorter runs go datagram by datagram: a run of two measured no cheaper segmented (three: 10 % less
 * CPU, four 11 %, eight 21 %, in a probe sending runs from a delivery to two and four receivers). */
#define SEGMENTS_MIN 3
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
/* What every socket's send queue may hold together, unless JavaScript sets another figure. */
#define DEFAULT_TOTAL_QUEUE_BYTES ((size_t)64 << 20)

typedef struct queued_send {
  struct queued_send *next;
  struct sockaddr_storage to;
  socklen_t to_length;
  size_t length;
  unsigned char data[];
} queued_send;

typedef struct module_state module_state;
typedef struct udp_socket udp_socket;

/* One send held for the check phase: its bytes lie in the module's deferred area. */
typedef struct deferred_send {
  struct sockaddr_storage to;
  socklen_t to_length;
  int next; /* the same socket's next deferred send, -1 after its last */
  size_t offset;
  size_t length;
} deferred_send;

struct udp_socket {
  module_state *state;
  napi_env env;
  int fd;
  int family;
  int closing;
  int polled_events; /* UV_READABLE | UV_WRITABLE it is registered for in the module's epoll set; 0: not in it */
  /* Adopted: another process may hold the same open file description, so close() alone would not
   * take it out of the epoll set, which must be told. */
  int shares_description;
  uint32_t handle; /* what JavaScript holds: see socket_slot */
  napi_ref on_closed;
  /* The text of the last sender's IP and its raw bytes: a relay socket hears from one peer or a
   * few, so the same string goes to JavaScript datagram after datagram (no allocation, and Map
   * lookups keyed by it reuse its cached hash). */
  napi_ref sender_text;
  int sender_family;
  unsigned char sender_ip[16];
  queued_send *queue_head;
  queued_send *queue_tail;
  size_t queued_bytes;
  size_t queue_limit;
  double send_queued;  /* datagrams that met a full socket buffer and waited in the queue */
  double send_dropped; /* datagrams that met a full queue as well */
  struct udp_socket *prev_open;
  struct udp_socket *next_open;
  struct udp_socket *next_closed; /* closed, its JavaScript side still to finish (on_close_idle) */
  /* Its sends deferred to the check phase (indices into the module's deferred_sends; -1: none), and
   * the next socket with deferred sends. */
  int deferred_head;
  int deferred_tail;
  struct udp_socket *next_deferring;
  int unsegmented; /* its kernel or route refused a segmented send for good: one datagram per message */
  /* Channel routes (channel-routes.h): as a relay socket, its own; as a listener, how many serve its clients. */
  channel_route *routes;
  int client_routes;
  /* What its routes relayed before they were dropped (by JavaScript, or by their client's connection
   * closing) and JavaScript has not collected: collectRouted's four counts, allocated at the first such drop. */
  double *unclaimed_routed;
};

/*
 * JavaScript holds a socket as a number, its handle: the index of its slot below and the slot's
 * generation, so a handle kept past close finds nothing, never a later socket in the same slot.
 * JavaScript keeps the receiver of each handle itself and the handler is called with the handle.
 * A napi external per socket and a reference to its receiver were ~240 bytes of every idle
 * allocation (issue 16: 10,000 idle allocations under 100 MB); a slot is 16. A handle stays under
 * 2^30, which V8 keeps as a small integer, unboxed.
 */
#define HANDLE_INDEX_BITS 20
#define HANDLE_INDEX_MASK ((1u << HANDLE_INDEX_BITS) - 1)
#define HANDLE_GENERATIONS (1u << 10)
#define NO_SLOT UINT32_MAX

typedef struct socket_slot {
  udp_socket *socket; /* NULL: free */
  uint32_t generation;
  uint32_t next_free; /* the next free slot while this one is free; NO_SLOT after the last */
} socket_slot;

/*
 * Per socket, only what differs: the handler (setDatagramHandler) and the async context are the
 * module's, shared by every socket. A reference and an async context per socket were ~200 bytes
 * of each idle allocation's memory (issue 16: 10,000 idle allocations under 100 MB).
 */
struct module_state {
  napi_env env;
  napi_ref resource;     /* the async resource every delivery's callback scope runs under */
  napi_ref receive_area; /* the Buffer JavaScript reads datagrams from */
  napi_ref on_datagram;  /* (handle, offset, length, address, port), called with `this` undefined */
  napi_async_context async_context;
  unsigned char *receive_bytes;
  struct mmsghdr messages[BATCH];
  struct iovec vectors[BATCH];
  struct sockaddr_storage senders[BATCH];
  udp_socket *open; /* every open socket, closed at environment teardown */
  int open_count;
  socket_slot *slots; /* by handle index; grown by doubling, never shrunk */
  uint32_t slot_capacity;
  uint32_t free_slot; /* the first free slot, NO_SLOT when every one is taken */
  /*
   * Every open socket is in one epoll set of the module's own, which libuv polls as one descriptor:
   * opening and closing a socket is one epoll_ctl (or none) where a libuv poll handle per socket took
   * five (a check ADD and DEL, a redundant FIONBIO, and two DELs at stop and close), and the sockets
   * ready together are delivered in one callback scope. `set_poll` is referenced while a socket is
   * open, so open sockets keep the process alive as they did.
   */
  int epoll_fd;
  uv_poll_t *set_poll; /* allocated apart: its close callback may outlive this struct at teardown */
  int set_poll_referenced;
  struct epoll_event ready[SOCKETS_PER_WAKE];
  /* Closed sockets whose onClosed and references are finished on the next loop turn (an idle
   * handle, which keeps that turn from blocking): a socket closed during a delivery must stay
   * valid until the delivery is over. */
  udp_socket *closed;
  uv_idle_t *close_idle;
  size_t total_queued_bytes; /* in every socket's queue together */
  size_t total_queue_limit;  /* the bound on total_queued_bytes */
  double total_send_queued;  /* running totals over every socket, closed ones included */
  double total_send_dropped;
  /* Sends made during delivery, held until the check phase (see the top of this file). */
  int delivering; /* deliveries (deliver_ready) and stream batches (hold_udp_sends) on the stack */
  uv_check_t *flush_check; /* allocated apart: its close callback may outlive this struct at teardown */
  udp_socket *deferring; /* sockets with deferred sends, each once */
  int deferred_count;
  size_t deferred_used;
  deferred_send deferred_sends[DEFERRED_SENDS];
  unsigned char deferred_bytes[DEFERRED_BYTES];
  struct mmsghdr out_messages[BATCH];
  int out_segments[BATCH]; /* the datagrams in each out message */
  struct iovec out_vectors[DEFERRED_SENDS];
  /* Each out message's UDP_SEGMENT control message, when it carries more than one datagram. */
  union {
    char bytes[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } out_controls[BATCH];
  double total_segmented; /* datagrams that left in segmented sends */
  /* Bound channels relayed in C (channel-routes.h), and what they relayed over the process's life. */
  route_table routes;
  uv_loop_t *loop; /* whose clock (uv_now) route expiries are on */
  uint32_t stream_route_count; /* TCP clients' routes, which are not in the table */
  struct stream_state *streams; /* the TCP side's (stream-io.c), whose routed frames a delivery gathers */
  double total_routed_to_peers;
  double total_routed_to_clients;
};

/* Whether `sender` has the IP address (ports aside) of the socket's remembered sender. */
static int is_remembered_sender(const udp_socket *socket, const struct sockaddr_storage *sender) {
  if (socket->sender_text == NULL || socket->sender_family != sender->ss_family) return 0;
  int length;
  const unsigned char *ip = ip_bytes(sender, &length);
  return memcmp(ip, socket->sender_ip, (size_t)length) == 0;
}

/* ---- the socket handle ------------------------------------------------------------------------ */

/* Gives `socket` a slot, and so its handle; ENOMEM when none can be had (out of memory, or 2^20 sockets). */
static int assign_slot(module_state *state, udp_socket *socket) {
  if (state->free_slot == NO_SLOT) {
    uint32_t capacity = state->slot_capacity == 0 ? 1024 : state->slot_capacity * 2;
    if (capacity > HANDLE_INDEX_MASK + 1) return ENOMEM;
    socket_slot *grown = realloc(state->slots, capacity * sizeof *grown);
    if (grown == NULL) return ENOMEM;
    for (uint32_t i = state->slot_capacity; i < capacity; i++) {
      grown[i] = (socket_slot){.socket = NULL, .generation = 0, .next_free = i + 1 < capacity ? i + 1 : NO_SLOT};
    }
    state->free_slot = state->slot_capacity;
    state->slots = grown;
    state->slot_capacity = capacity;
  }
  uint32_t index = state->free_slot;
  socket_slot *slot = &state->slots[index];
  state->free_slot = slot->next_free;
  slot->socket = socket;
  socket->handle = (slot->generation << HANDLE_INDEX_BITS) | index;
  return 0;
}

/* Frees the slot of a socket that is finished with, for a later socket under the next generation. */
static void release_slot(module_state *state, udp_socket *socket) {
  uint32_t index = socket->handle & HANDLE_INDEX_MASK;
  socket_slot *slot = &state->slots[index];
  slot->socket = NULL;
  slot->generation = (slot->generation + 1) % HANDLE_GENERATIONS;
  slot->next_free = state->free_slot;
  state->free_slot = index;
}

/* The open socket behind `handle`; otherwise NULL, after throwing unless `quiet` (send never throws). */
static udp_socket *open_socket_of(napi_env env, napi_value handle, int quiet) {
  module_state *state;
  napi_get_instance_data(env, (void **)&state);
  uint32_t value = 0;
  /* napi_get_value_uint32 refuses anything but a number (napi_number_expected). */
  if (napi_get_value_uint32(env, handle, &value) != napi_ok || (value & HANDLE_INDEX_MASK) >= state->slot_capacity) {
    if (!quiet) throw_type(env, "expected a socket handle from open()");
    return NULL;
  }
  udp_socket *socket = state->slots[value & HANDLE_INDEX_MASK].socket;
  if (socket == NULL || socket->handle != value || socket->closing) {
    /* A handle from before its socket was closed (its slot is free, or holds a later socket). */
    if (!quiet) throw_errno(env, EBADF, "the socket is closed");
    return NULL;
  }
  return socket;
}

static udp_socket *socket_of(napi_env env, napi_value handle) {
  return open_socket_of(env, handle, 0);
}

/* Frees what waits in the queue (dropped unsent) and takes it off the total. */
static void free_queue(udp_socket *socket) {
  queued_send *item = socket->queue_head;
  while (item != NULL) {
    queued_send *next = item->next;
    free(item);
    item = next;
  }
  socket->queue_head = socket->queue_tail = NULL;
  /* Only when something waited: the finalizer calls this after close too, when the state may be gone. */
  if (socket->queued_bytes > 0) socket->state->total_queued_bytes -= socket->queued_bytes;
  socket->queued_bytes = 0;
}

static void count_dropped(udp_socket *socket) {
  socket->send_dropped++;
  socket->state->total_send_dropped++;
}

static void unlink_open(udp_socket *socket) {
  module_state *state = socket->state;
  if (socket->prev_open != NULL) socket->prev_open->next_open = socket->next_open;
  else if (state->open == socket) state->open = socket->next_open;
  if (socket->next_open != NULL) socket->next_open->prev_open = socket->prev_open;
  socket->prev_open = socket->next_open = NULL;
}

/* Frees a socket that never served or is left at teardown, and its slot. */
static void free_socket(udp_socket *socket) {
  release_slot(socket->state, socket);
  free_queue(socket);
  free(socket->unclaimed_routed);
  free(socket);
}

static int set_polling(udp_socket *socket, int events);

/* ---- channel routes --------------------------------------------------------------------------- */

static int send_datagram(udp_socket *socket, const struct iovec *parts, int part_count, const struct sockaddr_storage *to, socklen_t to_length);

/* Keeps what a route relayed since the last collection on its relay socket, for the next one. */
static void keep_unclaimed_counts(channel_route *route) {
  if (route->packets_to_peer == 0 && route->packets_to_client == 0) return;
  udp_socket *relay = route->relay;
  if (relay->unclaimed_routed == NULL && (relay->unclaimed_routed = calloc(4, sizeof(double))) == NULL) return;
  relay->unclaimed_routed[0] += route->packets_to_peer;
  relay->unclaimed_routed[1] += route->bytes_to_peer;
  relay->unclaimed_routed[2] += route->packets_to_client;
  relay->unclaimed_routed[3] += route->bytes_to_client;
}

/* Takes a route out of the table (a UDP client's) or its connection's list (a TCP client's) and out
 * of its relay socket's, and frees it; what it counted since the last collection stays on the relay socket. */
static void drop_route(module_state *state, channel_route *route) {
  keep_unclaimed_counts(route);
  if (route->listener != NULL) {
    remove_route(&state->routes, route);
    route->listener->client_routes--;
  } else {
    channel_route **link = &route->stream->first;
    while (*link != NULL && *link != route) link = &(*link)->next_of_stream;
    if (*link != NULL) *link = route->next_of_stream;
    state->stream_route_count--;
  }
  channel_route **link = &route->relay->routes;
  while (*link != NULL && *link != route) link = &(*link)->next_of_relay;
  if (*link != NULL) *link = route->next_of_relay;
  free(route);
}

void drop_stream_routes(stream_routes *routes) {
  while (routes->first != NULL) drop_route(routes->first->relay->state, routes->first);
}

/* Drops every route through `socket`, as a relay socket or as a listener (it is closing). */
static void drop_routes_of(module_state *state, udp_socket *socket) {
  while (socket->routes != NULL) drop_route(state, socket->routes);
  for (uint32_t i = 0; i < state->routes.bucket_count && socket->client_routes > 0; i++) {
    channel_route *route = state->routes.buckets[i];
    while (route != NULL) {
      channel_route *next = route->next_in_bucket;
      if (route->listener == socket) drop_route(state, route);
      route = next;
    }
  }
}

/* Sends a routed ChannelData's data to the route's peer from its relay socket, and counts it. */
static void route_to_peer(module_state *state, channel_route *route, const unsigned char *data, size_t length) {
  struct sockaddr_storage to;
  socklen_t to_length = route_address_to_sockaddr(&route->peer, &to);
  struct iovec part = {.iov_base = (void *)data, .iov_len = length};
  send_datagram(route->relay, &part, 1, &to, to_length);
  route->packets_to_peer++;
  route->bytes_to_peer += (double)length;
  state->total_routed_to_peers++;
}

/* A TCP client's frame (stream-io.c reads it; it holds sends for the batch like a delivery). */
int relay_stream_channel_data(channel_route *route, const unsigned char *data, size_t length) {
  module_state *state = route->relay->state;
  if (uv_now(state->loop) >= route->expires_at) return 0;
  route_to_peer(state, route, data, length);
  return 1;
}

/*
 * Relays a datagram in C when it matches a live channel route (channel-routes.h); 1 when it did, 0
 * when it is JavaScript's. On a listener, a ChannelData from a routed client goes to its peer from
 * the relay socket; on a relay socket, a datagram from a routed peer goes to its client as
 * ChannelData. This runs during delivery, so the sends are deferred like JavaScript's and leave in
 * the same sendmmsg. A ChannelData whose length field runs past the datagram is JavaScript's to drop.
 */
static int relay_routed(module_state *state, udp_socket *socket, const struct sockaddr_storage *sender, unsigned char *bytes, size_t length) {
  route_address from;
  if (!route_address_from(sender, &from)) return 0;
  if (socket->client_routes > 0) {
    /* ChannelData starts with 0b01: channels 0x4000-0x7FFF (channel-data.ts). */
    if (length < 4 || (bytes[0] & 0xC0) != 0x40) return 0;
    uint16_t channel = (uint16_t)(bytes[0] << 8 | bytes[1]);
    size_t data_length = (size_t)(bytes[2] << 8 | bytes[3]);
    if (4 + data_length > length) return 0;
    channel_route *route = find_client_route(&state->routes, socket, &from, channel);
    if (route == NULL || uv_now(state->loop) >= route->expires_at) return 0;
    route_to_peer(state, route, bytes + 4, data_length);
    return 1;
  }
  if (socket->routes == NULL || length > 0xffff) return 0;
  channel_route *route = find_peer_route(socket->routes, &from);
  if (route == NULL || uv_now(state->loop) >= route->expires_at) return 0;
  if (route->listener == NULL) {
    /* A TCP client's (stream-io.c counts it on the route): the call may reach JavaScript, so the route is not touched after it. */
    if (!relay_to_stream_client(route, bytes, length)) return 0;
    state->total_routed_to_clients++;
    return 1;
  }
  unsigned char header[4];
  write_channel_data_header(header, route->channel, length);
  struct iovec parts[2] = {{.iov_base = header, .iov_len = 4}, {.iov_base = bytes, .iov_len = length}};
  struct sockaddr_storage to;
  socklen_t to_length = route_address_to_sockaddr(&route->client, &to);
  send_datagram(route->listener, parts, 2, &to, to_length);
  route->packets_to_client++;
  route->bytes_to_client += (double)length;
  state->total_routed_to_clients++;
  return 1;
}

/* ---- receiving -------------------------------------------------------------------------------- */

/*
 * Reads what `socket` holds (up to ROUNDS_PER_EVENT recvmmsg calls) and hands each datagram to
 * `callback`. Runs inside the wake's callback scope (deliver_ready); returns 1 when the handler
 * let an exception escape.
 */
static int deliver_datagrams(udp_socket *socket, napi_value callback, napi_value undefined) {
  napi_env env = socket->env;
  module_state *state = socket->state;
  napi_value handle;
  napi_create_uint32(env, socket->handle, &handle);

  /* Most batches come from few senders: the address text is made once per change of sender, and
   * the socket remembers the last one from batch to batch. */
  napi_value last_address = NULL;
  if (socket->sender_text != NULL) napi_get_reference_value(env, socket->sender_text, &last_address);
  int reference_stale = 0; /* the socket's reference still holds an earlier sender's text */
  int failed = 0;

  for (int round = 0; round < ROUNDS_PER_EVENT && !socket->closing && !failed; round++) {
    for (int i = 0; i < BATCH; i++) {
      state->messages[i].msg_hdr.msg_namelen = sizeof state->senders[i];
      state->messages[i].msg_hdr.msg_flags = 0;
    }
    int count = recvmmsg(socket->fd, state->messages, BATCH, MSG_DONTWAIT, NULL);
    if (count < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      continue; /* a pending ICMP error (ECONNREFUSED) is consumed by the failed read; read on */
    }
    for (int i = 0; i < count && !socket->closing; i++) {
      struct msghdr *header = &state->messages[i].msg_hdr;
      if (header->msg_flags & MSG_TRUNC) continue; /* larger than any TURN message */
      struct sockaddr_storage *sender = &state->senders[i];
      if (sender->ss_family != AF_INET && sender->ss_family != AF_INET6) continue;
      if ((socket->routes != NULL || socket->client_routes > 0) &&
          relay_routed(state, socket, sender, state->receive_bytes + (size_t)i * SLOT_BYTES, state->messages[i].msg_len)) {
        continue;
      }
      int port = port_of(sender);
      if (!is_remembered_sender(socket, sender)) {
        char text[ADDRESS_TEXT];
        int ip_length;
        const unsigned char *ip = ip_bytes(sender, &ip_length);
        if (inet_ntop(sender->ss_family, ip, text, sizeof text) == NULL) continue;
        napi_create_string_latin1(env, text, NAPI_AUTO_LENGTH, &last_address);
        /* Remembered at once for the next datagrams of this batch; the reference follows at its end. */
        socket->sender_family = sender->ss_family;
        memcpy(socket->sender_ip, ip, (size_t)ip_length);
        if (socket->sender_text == NULL) napi_create_reference(env, last_address, 1, &socket->sender_text);
        else reference_stale = 1;
      }
      napi_value argv[5];
      argv[0] = handle;
      napi_create_uint32(env, (uint32_t)(i * SLOT_BYTES), &argv[1]);
      napi_create_uint32(env, (uint32_t)state->messages[i].msg_len, &argv[2]);
      argv[3] = last_address;
      napi_create_uint32(env, (uint32_t)port, &argv[4]);
      if (napi_call_function(env, undefined, callback, 5, argv, NULL) == napi_pending_exception) {
        /* The handler is meant to catch its own errors; one that escapes is uncaught, as in dgram. */
        napi_value exception;
        napi_get_and_clear_last_exception(env, &exception);
        napi_fatal_exception(env, exception);
        failed = 1;
        break;
      }
    }
    if (count < BATCH) break;
  }
  /* The reference takes the batch's last sender text (one change per batch at most). */
  if (reference_stale && !socket->closing && socket->sender_text != NULL) {
    napi_delete_reference(env, socket->sender_text);
    napi_create_reference(env, last_address, 1, &socket->sender_text);
  }
  return failed;
}

/* ---- sending ---------------------------------------------------------------------------------- */

/* 0 when sent or queued; otherwise the errno of a datagram the kernel refused (it is dropped). */
static int send_or_queue(udp_socket *socket, const struct iovec *parts, int part_count, const struct sockaddr_storage *to, socklen_t to_length) {
  size_t total = 0;
  for (int i = 0; i < part_count; i++) total += parts[i].iov_len;
  if (socket->queue_head == NULL) {
    struct msghdr message = {0};
    message.msg_name = (void *)to;
    message.msg_namelen = to_length;
    message.msg_iov = (struct iovec *)parts;
    message.msg_iovlen = (size_t)part_count;
    for (;;) {
      if (sendmsg(socket->fd, &message, MSG_DONTWAIT) >= 0) return 0;
      if (errno != EINTR) break;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) return errno;
  }
  /* The socket buffer is full (or earlier datagrams wait): keep order, queue a copy, within both bounds. */
  module_state *state = socket->state;
  if (socket->queued_bytes + total > socket->queue_limit || state->total_queued_bytes + total > state->total_queue_limit) {
    count_dropped(socket);
    return ENOBUFS;
  }
  queued_send *item = malloc(sizeof *item + total);
  socket->send_queued++;
  state->total_send_queued++;
  if (item == NULL) {
    count_dropped(socket);
    return ENOMEM;
  }
  item->next = NULL;
  memcpy(&item->to, to, to_length);
  item->to_length = to_length;
  item->length = total;
  size_t at = 0;
  for (int i = 0; i < part_count; i++) {
    memcpy(item->data + at, parts[i].iov_base, parts[i].iov_len);
    at += parts[i].iov_len;
  }
  if (socket->queue_tail != NULL) socket->queue_tail->next = item;
  else socket->queue_head = item;
  socket->queue_tail = item;
  socket->queued_bytes += total;
  state->total_queued_bytes += total;
  set_polling(socket, UV_READABLE | UV_WRITABLE);
  return 0;
}

static void flush_queue(udp_socket *socket) {
  while (socket->queue_head != NULL) {
    queued_send *item = socket->queue_head;
    ssize_t sent = sendto(socket->fd, item->data, item->length, MSG_DONTWAIT, (struct sockaddr *)&item->to, item->to_length);
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) return;
    /* Sent, or refused for good (dropped, as dgram drops it): either way it leaves the queue. */
    socket->queue_head = item->next;
    if (socket->queue_head == NULL) socket->queue_tail = NULL;
    socket->queued_bytes -= item->length;
    socket->state->total_queued_bytes -= item->length;
    free(item);
  }
  set_polling(socket, UV_READABLE);
}

/* ---- sends deferred to the check phase ------------------------------------------------------- */

/* Whether deferred sends `a` and `b` go to the same address. */
static int same_destination(const deferred_send *a, const deferred_send *b) {
  return a->to_length == b->to_length && memcmp(&a->to, &b->to, a->to_length) == 0;
}

/*
 * How many deferred sends from `index` on form a run: to the destination of the first, each the size
 * of the first (the last may be shorter), within the segment bounds. Runs shorter than SEGMENTS_MIN
 * count as 1: each of their datagrams goes alone.
 */
static int run_length(module_state *state, int index) {
  const deferred_send *first = &state->deferred_sends[index];
  size_t segment = first->length;
  /* An empty datagram never joins a run: a segmented send cannot carry one. */
  if (segment == 0 || segment > SEGMENT_BYTES_MAX) return 1;
  size_t total = segment;
  int segments = 1;
  for (int at = first->next; at >= 0 && segments < SEGMENTS_MAX; at = state->deferred_sends[at].next) {
    const deferred_send *item = &state->deferred_sends[at];
    if (item->length == 0 || item->length > segment || total + item->length > SEGMENTED_BYTES_MAX || !same_destination(first, item)) break;
    total += item->length;
    segments++;
    if (item->length < segment) break; /* a shorter datagram ends a run */
  }
  return segments >= SEGMENTS_MIN ? segments : 1;
}

/*
 * Fills out message `count` with the run of deferred sends that starts at `index` (run_length), or
 * with that one datagram alone when `alone`. Uses out vectors from `*vectors` on; returns the send
 * after the message's last (-1 at the end).
 */
static int fill_out_message(module_state *state, int count, int index, int alone, int *vectors) {
  const deferred_send *first = &state->deferred_sends[index];
  struct msghdr *header = &state->out_messages[count].msg_hdr;
  memset(header, 0, sizeof *header);
  header->msg_name = (void *)&first->to;
  header->msg_namelen = first->to_length;
  header->msg_iov = &state->out_vectors[*vectors];
  int segments = alone ? 1 : run_length(state, index);
  int at = index;
  for (int i = 0; i < segments; i++) {
    const deferred_send *item = &state->deferred_sends[at];
    state->out_vectors[*vectors].iov_base = state->deferred_bytes + item->offset;
    state->out_vectors[*vectors].iov_len = item->length;
    (*vectors)++;
    at = item->next;
  }
  header->msg_iovlen = (size_t)segments;
  state->out_segments[count] = segments;
  if (segments > 1) {
    header->msg_control = state->out_controls[count].bytes;
    header->msg_controllen = sizeof state->out_controls[count].bytes;
    struct cmsghdr *control = CMSG_FIRSTHDR(header);
    control->cmsg_level = IPPROTO_UDP;
    control->cmsg_type = UDP_SEGMENT;
    control->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t size = (uint16_t)first->length;
    memcpy(CMSG_DATA(control), &size, sizeof size);
  }
  return at;
}

/* Whether a segmented send that failed with `error` should be tried again datagram by datagram. */
static int segmenting_refused(int error) {
  return error == EINVAL || error == EIO || error == EMSGSIZE || error == ENOPROTOOPT || error == EOPNOTSUPP;
}

/*
 * Sends `socket`'s deferred sends, from `first` along their `next` links, in sendmmsg calls of up to
 * BATCH messages, each a run of datagrams to one destination (see the top of this file). What the
 * kernel does not take at once (a full buffer) goes to the socket's queue through send_or_queue, in
 * order; a datagram it refuses for good is dropped, as a direct send's would be.
 */
static void send_deferred(udp_socket *socket, int first) {
  module_state *state = socket->state;
  int index = first;
  int unsegmented = 0; /* datagrams from `index` on to send one per message (a refused run) */
  while (index >= 0) {
    int count = 0, vectors = 0;
    for (int at = index; at >= 0 && count < BATCH; count++) {
      int alone = socket->unsegmented || unsegmented > count;
      at = fill_out_message(state, count, at, alone, &vectors);
    }
    int sent = socket->queue_head != NULL ? 0 : sendmmsg(socket->fd, state->out_messages, (unsigned)count, MSG_DONTWAIT);
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && state->out_segments[0] > 1 && segmenting_refused(errno)) {
      /* Too large for the route (EMSGSIZE): this run goes one by one. Anything else: the kernel or
       * the route cannot segment, so this socket stops trying. */
      if (errno == EMSGSIZE) unsegmented = state->out_segments[0];
      else socket->unsegmented = 1;
      continue;
    }
    int dropped = 0;
    if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) sent = dropped = 1; /* the first is refused for good: dropped */
    if (sent < 0) sent = 0;
    for (int message = 0; message < sent; message++) {
      int segments = state->out_segments[message];
      if (segments > 1 && !dropped) state->total_segmented += segments;
      unsegmented = unsegmented > segments ? unsegmented - segments : 0;
      for (int skip = 0; skip < segments; skip++) index = state->deferred_sends[index].next;
    }
    if (sent == 0) {
      /* The buffer is full or datagrams wait already: the rest join the queue, in order. */
      for (; index >= 0; index = state->deferred_sends[index].next) {
        deferred_send *item = &state->deferred_sends[index];
        struct iovec part = {state->deferred_bytes + item->offset, item->length};
        send_or_queue(socket, &part, 1, &item->to, item->to_length);
      }
    }
  }
  socket->deferred_head = socket->deferred_tail = -1;
}

/* Sends every deferred send, socket by socket, and empties the deferred area. */
static void flush_deferred(module_state *state) {
  udp_socket *socket = state->deferring;
  state->deferring = NULL;
  while (socket != NULL) {
    udp_socket *next = socket->next_deferring;
    socket->next_deferring = NULL;
    send_deferred(socket, socket->deferred_head);
    socket = next;
  }
  state->deferred_count = 0;
  state->deferred_used = 0;
}

static void on_flush_check(uv_check_t *check) {
  module_state *state = check->data;
  uv_check_stop(check);
  if (state != NULL) flush_deferred(state);
}

/* Sends `socket`'s deferred sends now and takes it off the list (it is closing). */
static void flush_socket_deferred(udp_socket *socket) {
  if (socket->deferred_head < 0) return;
  module_state *state = socket->state;
  for (udp_socket **link = &state->deferring; *link != NULL; link = &(*link)->next_deferring) {
    if (*link == socket) {
      *link = socket->next_deferring;
      break;
    }
  }
  socket->next_deferring = NULL;
  send_deferred(socket, socket->deferred_head);
}

/* Copies a send aside for the check phase; flushes everything first when the area is full. */
static void defer_send(udp_socket *socket, const struct iovec *parts, int part_count, const struct sockaddr_storage *to, socklen_t to_length, size_t total) {
  module_state *state = socket->state;
  if (state->deferred_count == DEFERRED_SENDS || state->deferred_used + total > DEFERRED_BYTES) flush_deferred(state);
  int index = state->deferred_count++;
  deferred_send *item = &state->deferred_sends[index];
  memcpy(&item->to, to, to_length);
  item->to_length = to_length;
  item->next = -1;
  item->offset = state->deferred_used;
  item->length = total;
  for (int i = 0; i < part_count; i++) {
    memcpy(state->deferred_bytes + state->deferred_used, parts[i].iov_base, parts[i].iov_len);
    state->deferred_used += parts[i].iov_len;
  }
  if (socket->deferred_head < 0) {
    socket->deferred_head = index;
    socket->next_deferring = state->deferring;
    state->deferring = socket;
  } else {
    state->deferred_sends[socket->deferred_tail].next = index;
  }
  socket->deferred_tail = index;
  if (state->flush_check != NULL && !uv_is_active((uv_handle_t *)state->flush_check)) uv_check_start(state->flush_check, on_flush_check);
}

/* A send from JavaScript: deferred during delivery (or behind sends deferred already), else at once. */
static int send_datagram(udp_socket *socket, const struct iovec *parts, int part_count, const struct sockaddr_storage *to, socklen_t to_length) {
  size_t total = 0;
  for (int i = 0; i < part_count; i++) total += parts[i].iov_len;
  if ((socket->state->delivering > 0 || socket->deferred_head >= 0) && total <= DEFERRED_BYTES && socket->state->flush_check != NULL) {
    defer_send(socket, parts, part_count, to, to_length, total);
    return 0;
  }
  return send_or_queue(socket, parts, part_count, to, to_length);
}

void hold_udp_sends(napi_env env, int hold) {
  module_state *state = NULL;
  if (napi_get_instance_data(env, (void **)&state) != napi_ok || state == NULL) return;
  state->delivering += hold ? 1 : -1;
}

/* Delivers the `count` ready sockets of one wake in one callback scope. */
static void deliver_ready(module_state *state, int count) {
  napi_env env = state->env;
  napi_handle_scope handles;
  napi_open_handle_scope(env, &handles);
  napi_value callback = NULL, resource = NULL, undefined = NULL;
  napi_get_reference_value(env, state->on_datagram, &callback);
  napi_get_reference_value(env, state->resource, &resource);
  napi_get_undefined(env, &undefined);
  napi_callback_scope scope;
  napi_open_callback_scope(env, resource, state->async_context, &scope);
  /* Until the scope closes (its microtasks included), sends wait for the check phase. */
  state->delivering++;
  for (int i = 0; i < count; i++) {
    udp_socket *socket = state->ready[i].data.ptr;
    uint32_t events = state->ready[i].events;
    if (socket->closing) continue; /* closed by a handler earlier in this wake: it stays valid until on_close_idle */
    if (events & (EPOLLOUT | EPOLLERR)) flush_queue(socket);
    if ((events & (EPOLLIN | EPOLLERR)) && !socket->closing && deliver_datagrams(socket, callback, undefined)) break;
    /* After an escaped exception (on its way to 'uncaughtException'), what is left waits for the next wake. */
  }
  /* Closing the scope runs the microtasks and the tick queue (once per wake, not once per socket);
   * what they send is deferred as well. */
  napi_close_callback_scope(env, scope);
  state->delivering--;
  /* What routes gathered for TCP clients goes out now, one write per connection, behind what JavaScript wrote. */
  flush_stream_gathers(state->streams);
  napi_close_handle_scope(env, handles);
}

static void on_set_ready(uv_poll_t *poll, int status, int events) {
  (void)events;
  module_state *state = poll->data;
  if (state == NULL || status < 0 || state->on_datagram == NULL) return;
  int count;
  do count = epoll_wait(state->epoll_fd, state->ready, SOCKETS_PER_WAKE, 0);
  while (count < 0 && errno == EINTR);
  if (count > 0) deliver_ready(state, count);
}

/* The set's poll keeps the event loop alive while any socket is open, and only then. */
static void update_loop_reference(module_state *state) {
  keep_loop_alive_while_open(state->set_poll, &state->set_poll_referenced, state->open_count);
}

/* Registers `socket` in the module's epoll set for `events` (UV_READABLE, UV_WRITABLE); 0 or an errno. */
static int set_polling(udp_socket *socket, int events) {
  if (socket->closing || socket->polled_events == events) return 0;
  struct epoll_event event = {
      .events = ((events & UV_READABLE) ? EPOLLIN : 0) | ((events & UV_WRITABLE) ? EPOLLOUT : 0),
      .data = {.ptr = socket},
  };
  if (epoll_ctl(socket->state->epoll_fd, socket->polled_events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, socket->fd, &event) != 0) return errno;
  socket->polled_events = events;
  return 0;
}

/* ---- closing ---------------------------------------------------------------------------------- */

/* A closed socket's JavaScript side: onClosed is called, the references go, and so does the socket. */
static void finish_close(udp_socket *socket) {
  napi_env env = socket->env;
  /* First: the handle names nothing from here on, and onClosed may open a socket in its slot. */
  release_slot(socket->state, socket);
  napi_handle_scope handles;
  napi_open_handle_scope(env, &handles);
  if (socket->on_closed != NULL) {
    /* napi_make_callback wants an object as `this`: the global one. */
    napi_value global, callback;
    napi_get_global(env, &global);
    napi_get_reference_value(env, socket->on_closed, &callback);
    napi_make_callback(env, socket->state->async_context, global, callback, 0, NULL, NULL);
    napi_delete_reference(env, socket->on_closed);
    socket->on_closed = NULL;
  }
  napi_close_handle_scope(env, handles);
  if (socket->sender_text != NULL) {
    napi_delete_reference(env, socket->sender_text);
    socket->sender_text = NULL;
  }
  free_queue(socket);
  free(socket->unclaimed_routed);
  free(socket);
}

static void on_close_idle(uv_idle_t *idle) {
  module_state *state = idle->data;
  uv_idle_stop(idle);
  if (state == NULL) return;
  udp_socket *socket = state->closed;
  state->closed = NULL;
  while (socket != NULL) {
    udp_socket *next = socket->next_closed;
    socket->next_closed = NULL;
    finish_close(socket);
    socket = next;
  }
}

/* Closes the socket now (its port is free when this returns); its JavaScript side finishes on the next turn. */
static void begin_close(udp_socket *socket, int teardown) {
  module_state *state = socket->state;
  /* What JavaScript sent before closing still goes out (the queue behind a full buffer does not). */
  flush_socket_deferred(socket);
  drop_routes_of(state, socket);
  socket->closing = 1;
  unlink_open(socket);
  free_queue(socket);
  if (socket->polled_events != 0 && socket->shares_description) epoll_ctl(state->epoll_fd, EPOLL_CTL_DEL, socket->fd, NULL);
  socket->polled_events = 0;
  close(socket->fd); /* which also takes an unshared descriptor out of the epoll set */
  socket->fd = -1;
  state->open_count--;
  update_loop_reference(state);
  if (teardown) return; /* the environment is going away: no JavaScript to call */
  socket->next_closed = state->closed;
  state->closed = socket;
  if (state->close_idle != NULL) uv_idle_start(state->close_idle, on_close_idle);
  else finish_close(socket); /* no idle handle could be set up: finish now */
}

static void free_closed_handle(uv_handle_t *handle) {
  free(handle);
}

static void close_all_at_teardown(void *data) {
  module_state *state = data;
  while (state->open != NULL) begin_close(state->open, 1);
  state->closed = NULL;
  if (state->flush_check != NULL) {
    state->flush_check->data = NULL;
    uv_close((uv_handle_t *)state->flush_check, free_closed_handle);
    state->flush_check = NULL;
  }
  if (state->close_idle != NULL) {
    state->close_idle->data = NULL;
    uv_close((uv_handle_t *)state->close_idle, free_closed_handle);
    state->close_idle = NULL;
  }
  if (state->set_poll != NULL) {
    uv_poll_stop(state->set_poll);
    state->set_poll->data = NULL;
    uv_close((uv_handle_t *)state->set_poll, free_closed_handle);
    state->set_poll = NULL;
  }
  if (state->epoll_fd >= 0) close(state->epoll_fd);
  state->epoll_fd = -1;
}

/* ---- JavaScript entry points ------------------------------------------------------------------ */

/*
 * A new UDP socket bound to `address`:`port`, non-blocking, or -1 after throwing. With `reuse_port`
 * it joins the address's SO_REUSEPORT group (every member must ask for it): the kernel then gives
 * each source (its address and port) to one member, the same one datagram after datagram.
 */
static int bind_socket(napi_env env, int family, napi_value address, int port, int buffer_bytes, bool reuse_port) {
  struct sockaddr_storage local;
  socklen_t local_length;
  if (read_address_argument(env, address, family, port, &local, &local_length) != 0) {
    throw_errno(env, EINVAL, "not an IP address to bind to");
    return -1;
  }
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, errno, "socket");
    return -1;
  }
  int on = 1;
  const char *failed = NULL;
  if (family == 6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0) failed = "IPV6_V6ONLY";
  else if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) failed = "SO_REUSEPORT";
  if (failed == NULL && buffer_bytes > 0) {
    /* Best effort, like dgram's recvBufferSize: Linux caps it at net.core.rmem_max / wmem_max. */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof buffer_bytes);
  }
  if (failed == NULL && bind(fd, (struct sockaddr *)&local, local_length) != 0) failed = "bind";
  if (failed != NULL) {
    int error = errno;
    close(fd);
    throw_errno(env, error, failed);
    return -1;
  }
  return fd;
}

/* Starts receiving on a bound socket `fd` (which it then owns): the handle, or NULL after throwing. */
static napi_value start_socket(napi_env env, module_state *state, int fd, int family, int buffer_bytes, int shares_description) {
  udp_socket *socket = calloc(1, sizeof *socket);
  if (socket == NULL || assign_slot(state, socket) != 0) {
    free(socket);
    close(fd);
    return throw_errno(env, ENOMEM, "could not set up the socket");
  }
  socket->state = state;
  socket->env = env;
  socket->fd = fd;
  socket->shares_description = shares_description;
  socket->family = family;
  socket->queue_limit = buffer_bytes > 0 ? (size_t)buffer_bytes : 1 << 20;
  socket->deferred_head = socket->deferred_tail = -1;
  int error = state->epoll_fd < 0 ? EBADF : set_polling(socket, UV_READABLE);
  if (error != 0) {
    close(fd);
    free_socket(socket);
    return throw_errno(env, error, "could not watch the socket");
  }

  napi_value handle;
  napi_create_uint32(env, socket->handle, &handle);

  socket->next_open = state->open;
  if (state->open != NULL) state->open->prev_open = socket;
  state->open = socket;
  state->open_count++;
  update_loop_reference(state);
  return handle;
}

/*
 * open(family: 4 | 6, address: string, port: number, bufferBytes: number[, reusePort: boolean])
 *      -> handle
 * Each datagram goes to the handler setDatagramHandler set, with this socket's handle (a number,
 * valid until the socket is closed). `reusePort`: see bind_socket.
 */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  module_state *state;
  napi_get_instance_data(env, (void **)&state);
  int32_t family = 0, port = -1, buffer_bytes = 0;
  if (argc < 4 || napi_get_value_int32(env, argv[0], &family) != napi_ok || (family != 4 && family != 6) ||
      napi_get_value_int32(env, argv[2], &port) != napi_ok || napi_get_value_int32(env, argv[3], &buffer_bytes) != napi_ok) {
    return throw_type(env, "open(family 4|6, address, port, bufferBytes[, reusePort])");
  }
  if (state->on_datagram == NULL) return throw_type(env, "setDatagramHandler(handler) must come before open()");
  bool reuse_port = false;
  if (argc >= 5) napi_get_value_bool(env, argv[4], &reuse_port);
  int fd = bind_socket(env, family, argv[1], port, buffer_bytes, reuse_port);
  return fd < 0 ? NULL : start_socket(env, state, fd, family, buffer_bytes, 0);
}

/*
 * bindShared(family: 4 | 6, address: string, port: number, bufferBytes: number) -> [fd, port]
 * A socket in the address's SO_REUSEPORT group that this process holds without reading it: for
 * another process to adopt (an inherited file descriptor), so the group keeps its members when
 * that process is replaced. closeShared(fd) closes it.
 */
static napi_value js_bind_shared(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t family = 0, port = -1, buffer_bytes = 0;
  if (argc < 4 || napi_get_value_int32(env, argv[0], &family) != napi_ok || (family != 4 && family != 6) ||
      napi_get_value_int32(env, argv[2], &port) != napi_ok || napi_get_value_int32(env, argv[3], &buffer_bytes) != napi_ok) {
    return throw_type(env, "bindShared(family 4|6, address, port, bufferBytes)");
  }
  int fd = bind_socket(env, family, argv[1], port, buffer_bytes, true);
  if (fd < 0) return NULL;
  struct sockaddr_storage local;
  socklen_t length = sizeof local;
  getsockname(fd, (struct sockaddr *)&local, &length);
  napi_value fd_value, port_value;
  napi_create_int32(env, fd, &fd_value);
  napi_create_uint32(env, (uint32_t)port_of(&local), &port_value);
  return make_pair(env, fd_value, port_value);
}

/* closeShared(fd): closes a socket bindShared made (never one a handle owns). */
static napi_value js_close_shared(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return throw_type(env, "closeShared(fd)");
  if (close(fd) != 0) return throw_errno(env, errno, "close");
  return NULL;
}

/*
 * adopt(fd: number, bufferBytes: number) -> handle
 * Receives on a bound UDP socket this process was given (e.g. bindShared's, inherited), as open()
 * does on its own; the handle owns the descriptor from then on. Refuses anything but a bound UDP
 * socket of IPv4 or IPv6 (EBADF, ENOTSOCK, EPROTOTYPE, EAFNOSUPPORT).
 */
static napi_value js_adopt(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  module_state *state;
  napi_get_instance_data(env, (void **)&state);
  int32_t fd = -1, buffer_bytes = 0;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || napi_get_value_int32(env, argv[1], &buffer_bytes) != napi_ok) {
    return throw_type(env, "adopt(fd, bufferBytes)");
  }
  if (state->on_datagram == NULL) return throw_type(env, "setDatagramHandler(handler) must come before adopt()");
  int type = 0, domain = 0;
  socklen_t length = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0) return throw_errno(env, errno, "not a socket to adopt");
  if (type != SOCK_DGRAM) return throw_errno(env, EPROTOTYPE, "not a UDP socket to adopt");
  length = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) != 0 || (domain != AF_INET && domain != AF_INET6)) {
    return throw_errno(env, EAFNOSUPPORT, "not an IPv4 or IPv6 socket to adopt");
  }
  struct sockaddr_storage local;
  socklen_t local_length = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &local_length) != 0 || port_of(&local) == 0) return throw_errno(env, EINVAL, "the socket to adopt is not bound");
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return throw_errno(env, errno, "could not make the socket non-blocking");
  return start_socket(env, state, fd, domain == AF_INET ? 4 : 6, buffer_bytes, 1);
}

/* setDatagramHandler(handler(handle, offset, length, address, port)): the one handler of every socket; set once, before open(). */
static napi_value js_set_datagram_handler(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_valuetype type = napi_undefined;
  if (argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_function) return throw_type(env, "setDatagramHandler(handler function)");
  module_state *state;
  napi_get_instance_data(env, (void **)&state);
  if (state->on_datagram != NULL) napi_delete_reference(env, state->on_datagram);
  napi_create_reference(env, argv[0], 1, &state->on_datagram);
  return NULL;
}

/* receiveArea() -> Buffer: where every datagram handed to onDatagram lies (offset, length). */
/*
 * trimMemory() -> boolean: gives the C heap's free pages back to the system (glibc's malloc_trim),
 * true when any were. glibc keeps what a burst freed for reuse, and only the heap's top ever goes
 * back on its own; the relay calls this once a burst of allocations has settled (freed-memory.ts).
 */
static napi_value js_trim_memory(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_get_boolean(env, malloc_trim(0) != 0, &result);
  return result;
}

static napi_value js_receive_area(napi_env env, napi_callback_info info) {
  (void)info;
  module_state *state;
  napi_get_instance_data(env, (void **)&state);
  napi_value area;
  napi_get_reference_value(env, state->receive_area, &area);
  return area;
}

/* localAddress(handle) -> [address, port] */
static napi_value js_local_address(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  udp_socket *socket = argc == 1 ? socket_of(env, argv[0]) : (throw_type(env, "localAddress(handle)"), NULL);
  if (socket == NULL) return NULL;
  struct sockaddr_storage local;
  socklen_t length = sizeof local;
  if (getsockname(socket->fd, (struct sockaddr *)&local, &length) != 0) return throw_errno(env, errno, "getsockname");
  char text[ADDRESS_TEXT];
  int ip_length;
  inet_ntop(local.ss_family, ip_bytes(&local, &ip_length), text, sizeof text);
  napi_value address, port_value;
  napi_create_string_latin1(env, text, NAPI_AUTO_LENGTH, &address);
  napi_create_uint32(env, (uint32_t)port_of(&local), &port_value);
  return make_pair(env, address, port_value);
}

/*
 * send(handle, buffer, offset, length, port, address [, channel]) -> 0 or an errno (dropped).
 * With `channel`, a 4-byte ChannelData header (channel, length) goes in front, without a copy.
 * Never throws: no datagram the relay is asked to send may end the process, so a closed socket
 * (EBADF), an argument that is not what it should be (EINVAL), a slice past the buffer (ERANGE) or
 * a destination no datagram can reach (port 0 or above 65535, a bad address: EINVAL) is an errno.
 */
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 6) return errno_value(env, EINVAL);
  udp_socket *socket = open_socket_of(env, argv[0], 1);
  if (socket == NULL) return errno_value(env, EBADF);
  void *bytes = NULL;
  size_t byte_length = 0;
  uint32_t offset = 0, length = 0;
  int32_t port = -1;
  if (napi_get_buffer_info(env, argv[1], &bytes, &byte_length) != napi_ok || napi_get_value_uint32(env, argv[2], &offset) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &length) != napi_ok || napi_get_value_int32(env, argv[4], &port) != napi_ok) {
    return errno_value(env, EINVAL);
  }
  if ((size_t)offset + length > byte_length) return errno_value(env, ERANGE);
  if (port <= 0) return errno_value(env, EINVAL); /* port 0 is no destination; parse_address refuses the rest */
  struct sockaddr_storage to;
  socklen_t to_length;
  int error = read_address_argument(env, argv[5], socket->family, port, &to, &to_length);
  if (error == 0) {
    unsigned char header[4];
    struct iovec parts[2];
    int part_count = 0;
    if (argc >= 7) {
      uint32_t channel = 0;
      napi_get_value_uint32(env, argv[6], &channel);
      write_channel_data_header(header, channel, length);
      parts[part_count].iov_base = header;
      parts[part_count++].iov_len = 4;
    }
    parts[part_count].iov_base = (unsigned char *)bytes + offset;
    parts[part_count++].iov_len = length;
    error = send_datagram(socket, parts, part_count, &to, to_length);
  }
  return errno_value(env, error);
}

/* sendCounts(handle) -> [queued, dropped]: sends that met a full socket buffer; those also over the queue's bound. */
static napi_value js_send_counts(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  udp_socket *socket = argc == 1 ? socket_of(env, argv[0]) : (throw_type(env, "sendCounts(handle)"), NULL);
  if (socket == NULL) return NULL;
  napi_value queued, dropped;
  napi_create_double(env, socket->send_queued, &queued);
  napi_create_double(env, socket->send_dropped, &dropped);
  return make_pair(env, queued, dropped);
}

/* sendTotals() -> [queued, dropped, queuedBytes, segmented]: over every socket, closed ones included; the bytes waiting now. */
static napi_value js_send_totals(napi_env env, napi_callback_info info) {
  (void)info;
  module_state *state;
  napi_get_instance_data(env, (void **)&state);
  napi_value totals, value;
  napi_create_array_with_length(env, 4, &totals);
  napi_create_double(env, state->total_send_queued, &value);
  napi_set_element(env, totals, 0, value);
  napi_create_double(env, state->total_send_dropped, &value);
  napi_set_element(env, totals, 1, value);
  napi_create_double(env, (double)state->total_queued_bytes, &value);
  napi_set_element(env, totals, 2, value);
  napi_create_double(env, state->total_segmented, &value);
  napi_set_element(env, totals, 3, value);
  return totals;
}

/*
 * Routes `channel` of `relay` for `lifetime_ms` from now: to the peer, and from the client, a UDP
 * client's (`listener` and `client`) or a TCP client's (`stream`, listener NULL). The relay socket's
 * route of that channel stays when its client and peer are the same (a new lifetime) and goes
 * otherwise; a route of another channel to the same peer goes (a peer has one channel). 0, or ENOMEM.
 */
static int set_route(module_state *state, udp_socket *relay, udp_socket *listener, const route_address *client, stream_routes *stream, uint16_t channel,
                     const route_address *peer, double lifetime_ms) {
  channel_route *route = find_relay_channel(relay->routes, channel);
  if (route != NULL && (route->listener != listener || route->stream != stream || (listener != NULL && !same_route_address(&route->client, client)) ||
                        !same_route_address(&route->peer, peer))) {
    drop_route(state, route);
    route = NULL;
  }
  channel_route *other = find_peer_route(relay->routes, peer);
  if (other != NULL && other != route) drop_route(state, other);
  if (route == NULL) {
    route = calloc(1, sizeof *route);
    if (route == NULL) return ENOMEM;
    route->listener = listener;
    route->stream = stream;
    route->relay = relay;
    route->peer = *peer;
    route->channel = channel;
    if (listener != NULL) {
      route->client = *client;
      if (add_route(&state->routes, route) != 0) {
        free(route);
        return ENOMEM;
      }
      listener->client_routes++;
    } else {
      if (state->routes.count + state->stream_route_count >= ROUTES_MAX) {
        free(route);
        return ENOMEM;
      }
      route->next_of_stream = stream->first;
      stream->first = route;
      state->stream_route_count++;
    }
    route->next_of_relay = relay->routes;
    relay->routes = route;
  }
  route->expires_at = uv_now(state->loop) + (uint64_t)lifetime_ms;
  return 0;
}

/* Reads a route's channel, peer and lifetime (argv[0..3]) for the relay socket; 0, or -1 when one is out of range. */
static int read_route_arguments(napi_env env, const napi_value argv[4], const udp_socket *relay, uint16_t *channel, route_address *peer, double *lifetime_ms) {
  uint32_t number = 0;
  int32_t peer_port = 0;
  if (napi_get_value_uint32(env, argv[0], &number) != napi_ok || napi_get_value_int32(env, argv[2], &peer_port) != napi_ok ||
      napi_get_value_double(env, argv[3], lifetime_ms) != napi_ok) {
    return -1;
  }
  if (peer_port <= 0 || number < 0x4000 || number > 0x7fff || !(*lifetime_ms > 0) || *lifetime_ms > 86400000.0) return -1;
  struct sockaddr_storage peer_address;
  socklen_t unused;
  if (read_address_argument(env, argv[1], relay->family, peer_port, &peer_address, &unused) != 0 || !route_address_from(&peer_address, peer)) return -1;
  *channel = (uint16_t)number;
  return 0;
}

/*
 * routeChannel(relay, listener, clientAddress, clientPort, channel, peerAddress, peerPort, lifetimeMs)
 *   -> boolean
 * Relays `channel` between a UDP client (on the listener socket) and the peer (from the relay
 * socket) in C for `lifetimeMs` from now (channel-routes.h): a new route, or a new lifetime (set_route).
 * False when it cannot be set (a closed socket, an address not of its socket's family, port 0, a
 * number outside 0x4000-0x7FFF, the table full): JavaScript relays then.
 */
static napi_value js_route_channel(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  module_state *state;
  napi_get_instance_data(env, (void **)&state);
  napi_value result;
  napi_get_boolean(env, false, &result);
  if (argc < 8 || state->loop == NULL) return result;
  udp_socket *relay = open_socket_of(env, argv[0], 1);
  udp_socket *listener = open_socket_of(env, argv[1], 1);
  int32_t client_port = 0;
  uint16_t channel;
  double lifetime_ms;
  route_address client, peer;
  struct sockaddr_storage client_address;
  socklen_t unused;
  if (relay == NULL || listener == NULL || relay == listener || napi_get_value_int32(env, argv[3], &client_port) != napi_ok || client_port <= 0 ||
      read_address_argument(env, argv[2], listener->family, client_port, &client_address, &unused) != 0 || !route_address_from(&client_address, &client) ||
      read_route_arguments(env, &argv[4], relay, &channel, &peer, &lifetime_ms) != 0) {
    return result;
  }
  napi_get_boolean(env, set_route(state, relay, listener, &client, NULL, channel, &peer, lifetime_ms) == 0, &result);
  return result;
}

/*
 * routeStreamChannel(relay, stream, channel, peerAddress, peerPort, lifetimeMs) -> boolean
 * The same for a TCP client on the addon's connection `stream` (stream-io.c): a ChannelData frame
 * the client sends goes to the peer in C, and the peer's datagrams to the client once JavaScript has
 * set the connection's backlog bound (setStreamRouteBacklog). False when it cannot be set (a closed
 * socket or connection, as above).
 */
static napi_value js_route_stream_channel(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  module_state *state;
  napi_get_instance_data(env, (void **)&state);
  napi_value result;
  napi_get_boolean(env, false, &result);
  if (argc < 6 || state->loop == NULL) return result;
  udp_socket *relay = open_socket_of(env, argv[0], 1);
  stream_routes *stream = stream_routes_of(env, argv[1]);
  uint16_t channel;
  double lifetime_ms;
  route_address peer;
  if (relay == NULL || stream == NULL || read_route_arguments(env, &argv[2], relay, &channel, &peer, &lifetime_ms) != 0) return result;
  napi_get_boolean(env, set_route(state, relay, NULL, NULL, stream, channel, &peer, lifetime_ms) == 0, &result);
  return result;
}

/* unrouteChannel(relay, channel): the relay socket's route of `channel` goes, if it has one. */
static napi_value js_unroute_channel(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  module_state *state;
  napi_get_instance_data(env, (void **)&state);
  uint32_t channel = 0;
  udp_socket *relay = argc == 2 ? open_socket_of(env, argv[0], 1) : NULL;
  if (relay == NULL || napi_get_value_uint32(env, argv[1], &channel) != napi_ok) return NULL;
  channel_route *route = find_relay_channel(relay->routes, (uint16_t)channel);
  if (route != NULL) drop_route(state, route);
  return NULL;
}

/*
 * collectRouted(relay, counts: Float64Array(4)) -> boolean
 * Adds what the relay socket's routes relayed since the last call to counts (packets and bytes to
 * peers, packets and bytes to the client), those dropped since included, and starts again from
 * zero; false when it has nothing to add (counts untouched).
 */
static napi_value js_collect_routed(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_value result;
  napi_get_boolean(env, false, &result);
  udp_socket *relay = argc == 2 ? open_socket_of(env, argv[0], 1) : NULL;
  if (relay == NULL || (relay->routes == NULL && relay->unclaimed_routed == NULL)) return result;
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_float64_array || length < 4) {
    return throw_type(env, "collectRouted(handle, Float64Array of 4)");
  }
  double *counts = data;
  if (relay->unclaimed_routed != NULL) {
    for (int i = 0; i < 4; i++) counts[i] += relay->unclaimed_routed[i];
    free(relay->unclaimed_routed);
    relay->unclaimed_routed = NULL;
  }
  for (channel_route *route = relay->routes; route != NULL; route = route->next_of_relay) {
    counts[0] += route->packets_to_peer;
    counts[1] += route->bytes_to_peer;
    counts[2] += route->packets_to_client;
    counts[3] += route->bytes_to_client;
    route->packets_to_peer = route->bytes_to_peer = route->packets_to_client = route->bytes_to_client = 0;
  }
  napi_get_boolean(env, true, &result);
  return result;
}

/* routeTotals() -> [routes, routedToPeers, routedToClients]: the routes now, and the datagrams they relayed over the process's life. */
static napi_value js_route_totals(napi_env env, napi_callback_info info) {
  (void)info;
  module_state *state;
  napi_get_instance_data(env, (void **)&state);
  napi_value totals, value;
  napi_create_array_with_length(env, 3, &totals);
  napi_create_uint32(env, state->routes.count + state->stream_route_count, &value);
  napi_set_element(env, totals, 0, value);
  napi_create_double(env, state->total_routed_to_peers, &value);
  napi_set_element(env, totals, 1, value);
  napi_create_double(env, state->total_routed_to_clients, &value);
  napi_set_element(env, totals, 2, value);
  return totals;
}

/* setSendQueueLimit(totalBytes): the bound on every socket's queue together; what waits already stays. */
static napi_value js_set_send_queue_limit(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  double bytes = -1;
  if (argc < 1 || napi_get_value_double(env, argv[0], &bytes) != napi_ok || !(bytes >= 0) || bytes > 9007199254740991.0) {
    return throw_type(env, "setSendQueueLimit(totalBytes: a whole number >= 0)");
  }
  module_state *state;
  napi_get_instance_data(env, (void **)&state);
  state->total_queue_limit = (size_t)bytes;
  return NULL;
}

/* close(handle, onClosed?): stops receiving now; onClosed runs once the port is free. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) return throw_type(env, "close(handle[, onClosed])");
  udp_socket *socket = socket_of(env, argv[0]);
  if (socket == NULL) return NULL;
  napi_valuetype type = napi_undefined;
  if (argc >= 2) napi_typeof(env, argv[1], &type);
  if (type == napi_function) napi_create_reference(env, argv[1], 1, &socket->on_closed);
  begin_close(socket, 0);
  return NULL;
}

static void free_state(napi_env env, void *data, void *hint) {
  (void)hint;
  module_state *state = data;
  /* Sockets left at teardown (closed by close_all_at_teardown, or closed and never finished). */
  for (uint32_t i = 0; i < state->slot_capacity; i++) {
    if (state->slots[i].socket != NULL) free_socket(state->slots[i].socket);
  }
  free(state->slots);
  free_route_table(&state->routes);
  napi_delete_reference(env, state->receive_area);
  napi_delete_reference(env, state->resource);
  if (state->on_datagram != NULL) napi_delete_reference(env, state->on_datagram);
  /* The shared async context is not destroyed: that would emit an async-hooks event while the environment is going away. */
  free(state);
}

NAPI_MODULE_INIT() {
  module_state *state = calloc(1, sizeof *state);
  if (state == NULL) return NULL;
  napi_value area;
  if (napi_create_buffer(env, (size_t)BATCH * SLOT_BYTES, (void **)&state->receive_bytes, &area) != napi_ok) {
    free(state);
    return NULL;
  }
  napi_create_reference(env, area, 1, &state->receive_area);
  napi_value resource, resource_name;
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "relaykit.UdpBatchSocket", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, resource, resource_name, &state->async_context);
  napi_create_reference(env, resource, 1, &state->resource);
  state->env = env;
  state->free_slot = NO_SLOT;
  state->total_queue_limit = DEFAULT_TOTAL_QUEUE_BYTES;
  /* The check phase's flush of deferred sends; unreferenced, so it never keeps the process alive.
   * Without it (it could not be set up) every send goes at once. */
  uv_loop_t *loop = NULL;
  state->flush_check = malloc(sizeof *state->flush_check);
  if (state->flush_check != NULL && (napi_get_uv_event_loop(env, &loop) != napi_ok || uv_check_init(loop, state->flush_check) != 0)) {
    free(state->flush_check);
    state->flush_check = NULL;
  }
  state->loop = loop;
  if (state->flush_check != NULL) {
    state->flush_check->data = state;
    uv_unref((uv_handle_t *)state->flush_check);
  }
  /* The epoll set of every socket. Without it open() and adopt() throw, and the relay runs on dgram. */
  state->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  state->set_poll = malloc(sizeof *state->set_poll);
  if (state->epoll_fd < 0 || state->set_poll == NULL || loop == NULL || uv_poll_init(loop, state->set_poll, state->epoll_fd) != 0) {
    free(state->set_poll);
    state->set_poll = NULL;
    if (state->epoll_fd >= 0) close(state->epoll_fd);
    state->epoll_fd = -1;
  } else {
    state->set_poll->data = state;
    uv_unref((uv_handle_t *)state->set_poll);
    uv_poll_start(state->set_poll, UV_READABLE, on_set_ready);
  }
  state->close_idle = malloc(sizeof *state->close_idle);
  if (state->close_idle != NULL && (loop == NULL || uv_idle_init(loop, state->close_idle) != 0)) {
    free(state->close_idle);
    state->close_idle = NULL;
  }
  if (state->close_idle != NULL) state->close_idle->data = state;
  for (int i = 0; i < BATCH; i++) {
    state->vectors[i].iov_base = state->receive_bytes + (size_t)i * SLOT_BYTES;
    state->vectors[i].iov_len = SLOT_BYTES;
    state->messages[i].msg_hdr.msg_iov = &state->vectors[i];
    state->messages[i].msg_hdr.msg_iovlen = 1;
    state->messages[i].msg_hdr.msg_name = &state->senders[i];
  }
  napi_set_instance_data(env, state, free_state, NULL);
  napi_add_env_cleanup_hook(env, close_all_at_teardown, state);

  napi_property_descriptor functions[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"bindShared", NULL, js_bind_shared, NULL, NULL, NULL, napi_default, NULL},
      {"closeShared", NULL, js_close_shared, NULL, NULL, NULL, napi_default, NULL},
      {"adopt", NULL, js_adopt, NULL, NULL, NULL, napi_default, NULL},
      {"setDatagramHandler", NULL, js_set_datagram_handler, NULL, NULL, NULL, napi_default, NULL},
      {"receiveArea", NULL, js_receive_area, NULL, NULL, NULL, napi_default, NULL},
      {"trimMemory", NULL, js_trim_memory, NULL, NULL, NULL, napi_default, NULL},
      {"localAddress", NULL, js_local_address, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_default, NULL},
      {"sendCounts", NULL, js_send_counts, NULL, NULL, NULL, napi_default, NULL},
      {"sendTotals", NULL, js_send_totals, NULL, NULL, NULL, napi_default, NULL},
      {"setSendQueueLimit", NULL, js_set_send_queue_limit, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"routeChannel", NULL, js_route_channel, NULL, NULL, NULL, napi_default, NULL},
      {"routeStreamChannel", NULL, js_route_stream_channel, NULL, NULL, NULL, napi_default, NULL},
      {"unrouteChannel", NULL, js_unroute_channel, NULL, NULL, NULL, napi_default, NULL},
      {"collectRouted", NULL, js_collect_routed, NULL, NULL, NULL, napi_default, NULL},
      {"routeTotals", NULL, js_route_totals, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
  /* Without them the relay's TCP runs on Node's net, as on a machine without the addon. */
  state->streams = register_stream_io(env, exports);
  return exports;
}
