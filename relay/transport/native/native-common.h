/*
 * What both halves of the relay's native I/O addon share: errors thrown the way Node's own carry
 * them, IP address parsing and formatting, and the small shapes the getters answer in. The addon is
 * one module (udp-batch.c registers it; stream-io.c adds the TCP functions), so these are static
 * inline, one copy per file that uses them.
 */
#ifndef RELAYKIT_NATIVE_COMMON_H
#define RELAYKIT_NATIVE_COMMON_H
#define NAPI_VERSION 8
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#define ADDRESS_TEXT 64

/* ---- the event loop --------------------------------------------------------------------------- */

/*
 * Makes `poll` (the libuv poll of one of the addon's epoll sets) keep the event loop alive while
 * `open_count` handles are open, and only then, as Node's own sockets do; `*referenced` remembers
 * which it does now, so the call costs nothing when nothing changed.
 */
static inline void keep_loop_alive_while_open(uv_poll_t *poll, int *referenced, int open_count) {
  int wanted = open_count > 0;
  if (poll == NULL || wanted == *referenced) return;
  if (wanted) uv_ref((uv_handle_t *)poll);
  else uv_unref((uv_handle_t *)poll);
  *referenced = wanted;
}

/* ---- errors ----------------------------------------------------------------------------------- */

/* Throws an Error whose `code` is the errno's name (EADDRINUSE, ...), as Node's own errors carry. */
static inline napi_value throw_errno(napi_env env, int error, const char *what) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(error));
  napi_value code, text, exception;
  napi_create_string_utf8(env, uv_err_name(-error), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, code, text, &exception);
  napi_set_named_property(env, exception, "code", code);
  napi_throw(env, exception);
  return NULL;
}

static inline napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

/* ---- addresses -------------------------------------------------------------------------------- */

static inline int parse_address(int family, const char *text, int port, struct sockaddr_storage *out, socklen_t *length) {
  memset(out, 0, sizeof *out);
  if (port < 0 || port > 65535) return EINVAL;
  if (family == 4) {
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, text, &v4->sin_addr) != 1) return EINVAL;
    *length = sizeof *v4;
  } else {
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, text, &v6->sin6_addr) != 1) return EINVAL;
    *length = sizeof *v6;
  }
  return 0;
}

static inline int read_address_argument(napi_env env, napi_value value, int family, int port, struct sockaddr_storage *out, socklen_t *length) {
  char text[ADDRESS_TEXT];
  size_t text_length = 0;
  if (napi_get_value_string_latin1(env, value, text, sizeof text, &text_length) != napi_ok) return EINVAL;
  return parse_address(family, text, port, out, length);
}

/* The raw IP bytes of an IPv4 or IPv6 sender and their length (4 or 16). */
static inline const unsigned char *ip_bytes(const struct sockaddr_storage *sender, int *length) {
  if (sender->ss_family == AF_INET) {
    *length = 4;
    return (const unsigned char *)&((const struct sockaddr_in *)sender)->sin_addr;
  }
  *length = 16;
  return (const unsigned char *)&((const struct sockaddr_in6 *)sender)->sin6_addr;
}

/* The port of an IPv4 or IPv6 address, in host order. */
static inline int port_of(const struct sockaddr_storage *address) {
  return address->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)address)->sin_port)
                                       : ntohs(((const struct sockaddr_in6 *)address)->sin6_port);
}

/* A two-element array, the shape the small getters answer in. */
static inline napi_value make_pair(napi_env env, napi_value first, napi_value second) {
  napi_value pair;
  napi_create_array_with_length(env, 2, &pair);
  napi_set_element(env, pair, 0, first);
  napi_set_element(env, pair, 1, second);
  return pair;
}

/* Whether `value` is an object (the receiver a socket's datagrams are delivered to). */
static inline int is_object(napi_env env, napi_value value) {
  napi_valuetype type;
  return napi_typeof(env, value, &type) == napi_ok && type == napi_object;
}

/* A ChannelData header (RFC 8656 §12.4): the channel number, then the data's length, both big-endian. */
static inline void write_channel_data_header(unsigned char header[4], uint32_t channel, size_t length) {
  header[0] = (unsigned char)(channel >> 8);
  header[1] = (unsigned char)channel;
  header[2] = (unsigned char)(length >> 8);
  header[3] = (unsigned char)length;
}

static inline napi_value errno_value(napi_env env, int error) {
  napi_value result;
  napi_create_int32(env, error, &result);
  return result;
}


/*
 * While held (hold != 0, until a matching call with 0), UDP sends wait for the loop's check phase
 * and leave in one sendmmsg per socket, as sends made during a UDP delivery do (udp-batch.c): the
 * TCP side holds them over each batch of reads, so its clients' relayed data is batched too.
 */
void hold_udp_sends(napi_env env, int hold);

/*
 * What the two halves call of each other for a TCP client's channel routes (channel-routes.h):
 * stream-io.c cuts routed frames out of a connection's reads; udp-batch.c owns the routes and the
 * relay sockets they send from.
 */
struct channel_route;
struct stream_routes;
/* The routes of the open connection behind `handle` (a stream handle); NULL for anything else. In stream-io.c. */
struct stream_routes *stream_routes_of(napi_env env, napi_value handle);
/* Sends one ChannelData's data (`length` bytes at `data`) from the route's relay socket to its peer
 * when the route is live; 1 when it did (and counted it), 0 when the frame is JavaScript's. In udp-batch.c. */
int relay_stream_channel_data(struct channel_route *route, const unsigned char *data, size_t length);
/* Counts a peer's datagram on a TCP client's route and writes it to the client as ChannelData, or
 * drops it when the client's backlog is full; 1 when it did, 0 when the connection takes none
 * (closing, or its peer's side not routed): JavaScript's then. It may call JavaScript (a drop), after
 * which the route may be gone. In stream-io.c. */
int relay_to_stream_client(struct channel_route *route, const unsigned char *data, size_t length);
/* Drops every route of a connection that is closing. In udp-batch.c. */
void drop_stream_routes(struct stream_routes *routes);

/* Adds the TCP stream functions (stream-io.c) to the addon's exports; their state, or NULL when they could not be set up. */
struct stream_state *register_stream_io(napi_env env, napi_value exports);
/* Writes what routes gathered for TCP clients during a UDP delivery (udp-batch.c calls it at the delivery's end). In stream-io.c. */
void flush_stream_gathers(struct stream_state *streams);

#endif
