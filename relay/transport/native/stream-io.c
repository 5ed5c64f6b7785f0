/*
 * TCP for the relay's TURN clients (Linux): accept, read and write on non-blocking sockets, with the
 * bytes read handed to JavaScript in place and written straight from its buffers. TLS stays on
 * Node's tls (it needs OpenSSL's record layer); this is plain TCP only.
 *
 * Why: over TCP, what the relay spends beyond coturn is Node's stream machinery, not TURN: per read
 * a fresh 64 KiB allocation shrunk to size, a Buffer, a MakeCallback and a 'data' event through the
 * Readable state machine; per write a write request object, a Writable state machine pass and a
 * callback on the next tick. A `perf` profile of turnutils_uclient's TCP load had the kernel's
 * work per message below coturn's and all of the difference in that machinery (docs/benchmarks.md).
 *
 * How: every listener and connection is in one epoll set of the addon's own, which libuv polls as
 * one descriptor. When it is ready, one epoll_wait takes up to EVENTS_PER_BATCH ready sockets, and
 * they are all handled inside one callback scope: accepts, reads (into one receive area shared by
 * every connection, handed to JavaScript as a length) and queued writes. So the scope's exit work
 * (microtasks, the tick queue, where stream-batch.ts writes what the batch gathered) is paid once
 * per batch, not once per socket, as recvmmsg batches datagrams in udp-batch.c. A write is one
 * send() from the caller's buffer; only what the kernel does not take at once is copied, to the
 * connection's queue, which goes out when the socket is writable again. JavaScript bounds that
 * queue (stream.ts), as it bounds a Node socket's writableLength.
 *
 * Every close is JavaScript's call (closeStream): a read of 0 (the peer's FIN) or a read error is
 * reported to the end handler, and reading stops, so a half-closed socket does not wake the loop.
 * A descriptor is closed at once; the handle's reference to its JavaScript object is dropped after
 * the batch, so later events of the same batch never meet a freed handle.
 *
 * A client's bound channels can be relayed here without JavaScript (channel routes, channel-routes.h):
 * the connection's frames are followed read by read, and each whole ChannelData frame on a routed
 * channel goes to its peer from the relay socket (relay_routed_frames); a routed peer's datagram is
 * written to the connection as ChannelData within the backlog bound JavaScript set (relay_to_stream_client).
 *
 * The JavaScript side is relay/transport/native-stream.ts; udp-batch.c registers these functions
 * (register_stream_io) in the same addon.
 */
#define _GNU_SOURCE
#include "native-common.h"
#include "channel-routes.h"
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

/* What one read takes at most: a whole turnutils burst, or a few 64 KiB frames' worth. */
#define READ_AREA_BYTES 65536
/* Reads of one connection per batch before going on to the next (a flood must not starve the others). */
#define READS_PER_EVENT 4
/* Ready sockets taken per epoll_wait, all handled in one callback scope. */
#define EVENTS_PER_BATCH 64
/* What a route gathers for one connection during a UDP delivery before writing it (as stream-batch.ts's
 * STREAM_BATCH_BYTES): a larger frame is written on its own. */
#define GATHER_BYTES (16 * 1024)
/* Gather buffers kept for reuse, shared by every connection (a connection holds one only while it has frames). */
#define SPARE_GATHERS 64
/* Connections accepted per readiness of a listener. */
#define ACCEPTS_PER_EVENT 64
/* Out of descriptors (EMFILE): a listener stops accepting this long, rather than spin on a
 * connection it cannot take. The kernel keeps the waiting ones in the listen backlog meanwhile. */
#define ACCEPT_PAUSE_MS 100

typedef struct out_chunk {
  struct out_chunk *next;
  size_t length;
  size_t sent;
  unsigned char data[];
} out_chunk;

typedef struct stream_state stream_state;
typedef struct stream_handle stream_handle;

/*
 * Where a connection's frames start, followed read by read as relay/transport/stream-framer.ts cuts
 * them (RFC 8656 §12.5), so that a ChannelData frame on a routed channel can be told apart and
 * relayed here without JavaScript.
 */
typedef struct frame_cursor {
  size_t rest;              /* bytes of a frame begun in an earlier read still to come */
  unsigned char prefix[4];  /* the first bytes of a frame whose 4-byte length prefix is split across reads */
  unsigned char prefix_filled;
  unsigned char rest_carries_data; /* the frame in progress is ChannelData or a STUN indication (a Send) */
  unsigned char lost;       /* bytes that are not TURN came: JavaScript closes the connection; nothing more is routed */
} frame_cursor;

/* A listener or a connection. */
struct stream_handle {
  stream_state *state;
  napi_env env;
  int fd;
  int listening;
  int reading; /* a connection stops reading at its end of stream or a read error */
  int closing;
  int paused;  /* a listener out of descriptors, waiting for the pause timer */
  uint32_t watched; /* the epoll events it is registered for; 0: not in the set */
  /* The receiver the handlers are called on, strong while open: it holds the handle, so neither is
   * collected while the socket can still be read. NULL for a connection JavaScript has not started. */
  napi_ref self;
  out_chunk *out_head;
  out_chunk *out_tail;
  size_t queued_bytes;
  double written_bytes; /* handed to writeStream or written by a route, queued ones included (Node's bytesWritten) */
  /* Its client's channels routed in C (channel-routes.h; set by udp-batch.c), and its framing. */
  stream_routes routes;
  frame_cursor cursor;
  /* The most its queue may hold when a route writes the peer's data to it (JavaScript's backlog
   * bound, setStreamRouteBacklog); past it the data is dropped and onRouteDrop called. 0: the peer's
   * side is not routed, and JavaScript writes it. */
  size_t route_backlog_bytes;
  /* The peer's frames routes wrote during this UDP delivery, written out at its end (flush_stream_gathers). */
  unsigned char *gather;
  size_t gathered;
  stream_handle *next_gathering;
  stream_handle *prev_open;
  stream_handle *next_open;
  stream_handle *next_released; /* closed during a batch: its reference is dropped after it */
};

struct stream_state {
  napi_env env;
  napi_ref receive_area;
  unsigned char *receive_bytes;
  napi_ref on_connection; /* (handle, remoteAddress, remotePort, localAddress, localPort), `this`: the listener's receiver */
  napi_ref on_data;       /* (length): the bytes lie at the start of the receive area; `this`: the connection's receiver */
  napi_ref on_end;        /* (errno): 0 for the peer's end of stream; `this`: the connection's receiver */
  napi_ref on_route_drop; /* (): a route dropped a peer's data for lack of backlog room; `this`: the connection's receiver */
  napi_ref resource;      /* the callback scope's resource object */
  napi_async_context async_context;
  int epoll_fd;
  uv_poll_t *poll;         /* libuv's poll of epoll_fd; allocated apart: its close callback may outlive the state */
  uv_timer_t *pause_timer; /* restarts listeners paused for lack of descriptors; allocated apart too */
  int loop_referenced;     /* whether the poll keeps the loop alive: while any handle is open, as Node's sockets do */
  size_t open_count;
  stream_handle *open; /* every open handle, closed at environment teardown */
  int delivering;      /* a batch is being handled */
  stream_handle *released;
  stream_handle *gathering; /* connections with frames gathered by routes, written after the UDP delivery */
  unsigned char *spare_gathers[SPARE_GATHERS];
  int spare_gather_count;
  struct epoll_event events[EVENTS_PER_BATCH];
};

/* ---- the epoll set ---------------------------------------------------------------------------- */

/* Registers `handle` for `events` (0: takes it out of the set). */
static void watch(stream_handle *handle, uint32_t events) {
  if (handle->closing || handle->watched == events) return;
  stream_state *state = handle->state;
  struct epoll_event event = {.events = events, .data = {.ptr = handle}};
  if (events == 0) epoll_ctl(state->epoll_fd, EPOLL_CTL_DEL, handle->fd, &event);
  else epoll_ctl(state->epoll_fd, handle->watched == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, handle->fd, &event);
  handle->watched = events;
}

/* What a connection waits for: its reads while it reads, the kernel's room while its queue holds bytes. */
static uint32_t connection_events(const stream_handle *connection) {
  return (connection->reading ? EPOLLIN : 0) | (connection->out_head != NULL ? EPOLLOUT : 0);
}

/* The poll keeps the event loop alive while any listener or connection is open, and only then. */
static void update_loop_reference(stream_state *state) {
  keep_loop_alive_while_open(state->poll, &state->loop_referenced, state->open_count);
}

/* ---- handles ---------------------------------------------------------------------------------- */

static void free_closed_handle(uv_handle_t *handle) {
  free(handle);
}

/* The open handle behind `value`, or NULL (after throwing unless `quiet`). */
static stream_handle *open_handle_of(napi_env env, napi_value value, int quiet) {
  void *data = NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok || data == NULL) {
    if (!quiet) throw_type(env, "expected a stream handle from listenStream() or the connection handler");
    return NULL;
  }
  stream_handle *handle = data;
  if (handle->closing) {
    if (!quiet) throw_errno(env, EBADF, "the stream is closed");
    return NULL;
  }
  return handle;
}

static void free_out_queue(stream_handle *handle) {
  out_chunk *chunk = handle->out_head;
  while (chunk != NULL) {
    out_chunk *next = chunk->next;
    free(chunk);
    chunk = next;
  }
  handle->out_head = handle->out_tail = NULL;
  handle->queued_bytes = 0;
}

/* The external's finalizer: runs once JavaScript no longer holds the handle, which is only after close. */
static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  stream_handle *handle = data;
  free_out_queue(handle);
  free(handle->gather);
  free(handle);
}

static void link_open(stream_handle *handle) {
  stream_state *state = handle->state;
  handle->next_open = state->open;
  if (state->open != NULL) state->open->prev_open = handle;
  state->open = handle;
  state->open_count++;
  update_loop_reference(state);
}

static void unlink_open(stream_handle *handle) {
  stream_state *state = handle->state;
  if (handle->prev_open != NULL) handle->prev_open->next_open = handle->next_open;
  else if (state->open == handle) state->open = handle->next_open;
  if (handle->next_open != NULL) handle->next_open->prev_open = handle->prev_open;
  handle->prev_open = handle->next_open = NULL;
  state->open_count--;
  update_loop_reference(state);
}

/* A handle for `fd` (which it then owns), linked among the open ones, and its external; NULL after closing `fd`. */
static stream_handle *new_handle(napi_env env, stream_state *state, int fd, int listening, napi_value *external) {
  stream_handle *handle = calloc(1, sizeof *handle);
  if (handle == NULL) {
    close(fd);
    return NULL;
  }
  handle->state = state;
  handle->env = env;
  handle->fd = fd;
  handle->listening = listening;
  handle->reading = !listening;
  if (napi_create_external(env, handle, finalize_handle, NULL, external) != napi_ok) {
    close(fd);
    free(handle);
    return NULL;
  }
  link_open(handle);
  return handle;
}

/* ---- gathering the peer's frames ------------------------------------------------------------- */

/* Gives the connection's gather buffer back (what it holds is dropped) and takes it off the list. */
static void drop_gather(stream_handle *connection) {
  stream_state *state = connection->state;
  if (connection->gather == NULL) return;
  for (stream_handle **link = &state->gathering; *link != NULL; link = &(*link)->next_gathering) {
    if (*link == connection) {
      *link = connection->next_gathering;
      break;
    }
  }
  connection->next_gathering = NULL;
  if (state->spare_gather_count < SPARE_GATHERS) state->spare_gathers[state->spare_gather_count++] = connection->gather;
  else free(connection->gather);
  connection->gather = NULL;
  connection->gathered = 0;
}

/* ---- closing ---------------------------------------------------------------------------------- */

static void release(stream_handle *handle) {
  /* Last: once this reference goes, the handle may be collected and the struct freed. */
  napi_ref self = handle->self;
  handle->self = NULL;
  if (self != NULL) napi_delete_reference(handle->env, self);
}

/*
 * Closes the descriptor now and drops what the queue holds, as Node's destroy() does. The reference
 * to the receiver goes now, or after the batch being handled (its later events may name this handle).
 */
static void begin_close(stream_handle *handle, int teardown) {
  drop_stream_routes(&handle->routes);
  drop_gather(handle);
  watch(handle, 0);
  handle->closing = 1;
  unlink_open(handle);
  free_out_queue(handle);
  close(handle->fd);
  handle->fd = -1;
  if (teardown || handle->self == NULL) return; /* at teardown no JavaScript may be called, references included */
  stream_state *state = handle->state;
  if (state->delivering > 0) {
    handle->next_released = state->released;
    state->released = handle;
  } else {
    release(handle);
  }
}

static void release_closed_in_batch(stream_state *state) {
  while (state->released != NULL) {
    stream_handle *handle = state->released;
    state->released = handle->next_released;
    handle->next_released = NULL;
    release(handle);
  }
}

static void close_all_at_teardown(void *data) {
  stream_state *state = data;
  while (state->open != NULL) begin_close(state->open, 1);
  if (state->poll != NULL) {
    uv_poll_stop(state->poll);
    state->poll->data = NULL;
    uv_close((uv_handle_t *)state->poll, free_closed_handle);
    state->poll = NULL;
  }
  if (state->pause_timer != NULL) {
    uv_close((uv_handle_t *)state->pause_timer, free_closed_handle);
    state->pause_timer = NULL;
  }
  close(state->epoll_fd);
  state->epoll_fd = -1;
}

/* ---- calling JavaScript ----------------------------------------------------------------------- */

/* Calls `callback` with `self` as `this`; an exception that escapes the handler is uncaught, as in net. */
static int call_handler(napi_env env, napi_value self, napi_value callback, size_t argc, napi_value *argv) {
  if (napi_call_function(env, self, callback, argc, argv, NULL) != napi_pending_exception) return 0;
  napi_value exception;
  napi_get_and_clear_last_exception(env, &exception);
  napi_fatal_exception(env, exception);
  return -1;
}

static napi_value address_text(napi_env env, const struct sockaddr_storage *address) {
  char text[ADDRESS_TEXT] = "";
  int length;
  inet_ntop(address->ss_family, ip_bytes(address, &length), text, sizeof text);
  napi_value value;
  napi_create_string_latin1(env, text, NAPI_AUTO_LENGTH, &value);
  return value;
}

/* The handlers, fetched once per batch. */
typedef struct handlers {
  napi_value on_connection;
  napi_value on_data;
  napi_value on_end;
} handlers;

/* ---- accepting -------------------------------------------------------------------------------- */

static void on_pause_over(uv_timer_t *timer) {
  stream_state *state = timer->data;
  for (stream_handle *handle = state->open; handle != NULL; handle = handle->next_open) {
    if (!handle->paused) continue;
    handle->paused = 0;
    watch(handle, EPOLLIN);
  }
}

static void pause_accepting(stream_handle *listener) {
  stream_state *state = listener->state;
  if (state->pause_timer == NULL) return; /* no timer: keep accepting, as libuv's own listeners would */
  listener->paused = 1;
  watch(listener, 0);
  if (!uv_is_active((uv_handle_t *)state->pause_timer)) uv_timer_start(state->pause_timer, on_pause_over, ACCEPT_PAUSE_MS, 0);
}

/* Accepts what waits; 0, or -1 when a handler threw (the batch stops). */
static int accept_connections(stream_handle *listener, const handlers *js) {
  napi_env env = listener->env;
  napi_value self;
  napi_get_reference_value(env, listener->self, &self);
  for (int i = 0; i < ACCEPTS_PER_EVENT && !listener->closing; i++) {
    struct sockaddr_storage remote;
    socklen_t remote_length = sizeof remote;
    int fd = accept4(listener->fd, (struct sockaddr *)&remote, &remote_length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) pause_accepting(listener);
      break;
    }
    struct sockaddr_storage local;
    socklen_t local_length = sizeof local;
    if ((remote.ss_family != AF_INET && remote.ss_family != AF_INET6) || getsockname(fd, (struct sockaddr *)&local, &local_length) != 0) {
      close(fd);
      continue;
    }
    /* TURN frames are small and each is due now: no Nagle delay, as the relay's net sockets had. */
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    napi_handle_scope per_connection;
    napi_open_handle_scope(env, &per_connection);
    napi_value argv[5];
    stream_handle *connection = new_handle(env, listener->state, fd, 0, &argv[0]);
    int failed = 0;
    if (connection != NULL) {
      argv[1] = address_text(env, &remote);
      napi_create_uint32(env, (uint32_t)port_of(&remote), &argv[2]);
      argv[3] = address_text(env, &local);
      napi_create_uint32(env, (uint32_t)port_of(&local), &argv[4]);
      failed = call_handler(env, self, js->on_connection, 5, argv);
      /* A connection the handler neither started nor closed is closed: nothing would ever read it. */
      if (!connection->closing && connection->self == NULL) begin_close(connection, 0);
    }
    napi_close_handle_scope(env, per_connection);
    if (failed) return -1;
  }
  return 0;
}

/* ---- reading ---------------------------------------------------------------------------------- */

/* Stream bytes of the frame whose 4-byte prefix is at `p`: ChannelData padded to 4 bytes, STUN its
 * 20-byte header and body; 0 when the first byte starts neither (stream-framer.ts's rule). */
static size_t frame_length(const unsigned char *p) {
  size_t length = (size_t)(p[2] << 8 | p[3]);
  if ((p[0] & 0xC0) == 0x40) return 4 + ((length + 3) & ~(size_t)3);
  if (p[0] <= 0x03) return 20 + length;
  return 0;
}

/* Whether the frame whose prefix is at `p` carries data to a peer: ChannelData, or a STUN indication (class bits 01). */
static int carries_data(const unsigned char *p) {
  return (p[0] & 0xC0) == 0x40 || (p[0] <= 0x03 && (p[0] & 0x01) == 0 && (p[1] & 0x10) != 0);
}

/* Moves `length` bytes from `in` down to `out` (where JavaScript's bytes of the read end so far). */
static void keep_for_javascript(unsigned char *bytes, size_t out, size_t in, size_t length) {
  if (out != in) memmove(bytes + out, bytes + in, length);
}

/*
 * Relays each whole ChannelData frame of one read (`bytes`, `length`) whose channel has a live route
 * and cuts it out; the other bytes move down over the gaps, in order, for JavaScript, whose framer so
 * sees the stream without those frames. Returns how many bytes are JavaScript's. A frame split across
 * reads is JavaScript's, as is everything on a connection without routes (its frames are still followed).
 *
 * Data keeps its order: JavaScript relays its frames after this returns, so once a frame that
 * carries data (ChannelData, or a Send indication) is left to it, nothing later in the read is
 * routed. STUN requests do not stop routing: no data rides on them.
 */
static size_t relay_routed_frames(stream_handle *connection, unsigned char *bytes, size_t length) {
  frame_cursor *cursor = &connection->cursor;
  size_t in = 0, out = 0;
  int data_left_to_javascript = 0;
  while (in < length && !cursor->lost) {
    size_t left = length - in;
    if (cursor->rest > 0) {
      if (cursor->rest_carries_data) data_left_to_javascript = 1;
      size_t take = cursor->rest < left ? cursor->rest : left;
      keep_for_javascript(bytes, out, in, take);
      in += take;
      out += take;
      cursor->rest -= take;
      continue;
    }
    if (cursor->prefix_filled > 0 || left < 4) {
      /* A length prefix split across reads: gathered here as well, to learn where the frame ends. */
      size_t take = 4 - (size_t)cursor->prefix_filled < left ? 4 - (size_t)cursor->prefix_filled : left;
      memcpy(cursor->prefix + cursor->prefix_filled, bytes + in, take);
      keep_for_javascript(bytes, out, in, take);
      in += take;
      out += take;
      cursor->prefix_filled = (unsigned char)(cursor->prefix_filled + take);
      if (cursor->prefix_filled < 4) break;
      cursor->prefix_filled = 0;
      size_t frame = frame_length(cursor->prefix);
      if (frame == 0) cursor->lost = 1;
      else cursor->rest = frame - 4;
      cursor->rest_carries_data = (unsigned char)carries_data(cursor->prefix);
      if (cursor->rest_carries_data) data_left_to_javascript = 1;
      continue;
    }
    const unsigned char *frame = bytes + in;
    size_t frame_bytes = frame_length(frame);
    if (frame_bytes == 0) {
      cursor->lost = 1;
      break;
    }
    if (frame_bytes <= left && (frame[0] & 0xC0) == 0x40 && connection->routes.first != NULL && !data_left_to_javascript) {
      channel_route *route = find_stream_route(&connection->routes, (uint16_t)(frame[0] << 8 | frame[1]));
      if (route != NULL && relay_stream_channel_data(route, frame + 4, (size_t)(frame[2] << 8 | frame[3]))) {
        in += frame_bytes;
        continue;
      }
    }
    cursor->rest = frame_bytes; /* JavaScript's: passed on by the first branch, in this read and the next */
    cursor->rest_carries_data = (unsigned char)carries_data(frame);
  }
  if (in < length) {
    keep_for_javascript(bytes, out, in, length - in);
    out += length - in;
  }
  return out;
}

/* Reads what waits; 0, or -1 when a handler threw (the batch stops). */
static int read_connection(stream_handle *connection, const handlers *js) {
  napi_env env = connection->env;
  unsigned char *area = connection->state->receive_bytes;
  napi_value self;
  napi_get_reference_value(env, connection->self, &self);
  for (int round = 0; round < READS_PER_EVENT && connection->reading && !connection->closing; round++) {
    ssize_t count = read(connection->fd, area, READ_AREA_BYTES);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    napi_value argument;
    if (count > 0) {
      size_t for_javascript = relay_routed_frames(connection, area, (size_t)count);
      if (for_javascript > 0) {
        napi_create_uint32(env, (uint32_t)for_javascript, &argument);
        if (call_handler(env, self, js->on_data, 1, &argument) != 0) return -1;
      }
      if (count < READ_AREA_BYTES) break; /* drained, most likely; the next batch says if not */
      continue;
    }
    /* The peer's end of stream (0) or a read error: reading stops, and JavaScript decides. */
    int error = count == 0 ? 0 : errno;
    connection->reading = 0;
    watch(connection, connection_events(connection));
    napi_create_int32(env, error, &argument);
    return call_handler(env, self, js->on_end, 1, &argument);
  }
  return 0;
}

/* ---- writing ---------------------------------------------------------------------------------- */

/* Sends what `bytes` holds past `*sent`; 0 when done or the kernel is full (EAGAIN), else the errno. */
static int send_some(int fd, const unsigned char *bytes, size_t length, size_t *sent) {
  while (*sent < length) {
    ssize_t count = send(fd, bytes + *sent, length - *sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (count >= 0) {
      *sent += (size_t)count;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return errno;
  }
  return 0;
}

/* Sends the queue's chunks in order while the kernel takes them; 0, or the errno of a broken connection. */
static int flush_out_queue(stream_handle *connection) {
  while (connection->out_head != NULL) {
    out_chunk *chunk = connection->out_head;
    size_t before = chunk->sent;
    int error = send_some(connection->fd, chunk->data, chunk->length, &chunk->sent);
    connection->queued_bytes -= chunk->sent - before;
    if (error != 0) return error;
    if (chunk->sent < chunk->length) return 0;
    connection->out_head = chunk->next;
    if (connection->out_head == NULL) connection->out_tail = NULL;
    free(chunk);
  }
  watch(connection, connection_events(connection));
  return 0;
}

/*
 * Copies what `parts` hold past their first `skip` bytes to the end of the connection's queue, which
 * goes out when the socket is writable; 0 or ENOMEM.
 */
static int queue_copy(stream_handle *connection, const struct iovec *parts, int part_count, size_t skip) {
  size_t length = 0;
  for (int i = 0; i < part_count; i++) length += parts[i].iov_len;
  length -= skip;
  out_chunk *chunk = malloc(sizeof *chunk + length);
  if (chunk == NULL) return ENOMEM;
  chunk->next = NULL;
  chunk->length = length;
  chunk->sent = 0;
  size_t filled = 0;
  for (int i = 0; i < part_count; i++) {
    size_t part = parts[i].iov_len;
    if (skip >= part) {
      skip -= part;
      continue;
    }
    memcpy(chunk->data + filled, (const unsigned char *)parts[i].iov_base + skip, part - skip);
    filled += part - skip;
    skip = 0;
  }
  if (connection->out_tail != NULL) connection->out_tail->next = chunk;
  else connection->out_head = chunk;
  connection->out_tail = chunk;
  connection->queued_bytes += length;
  watch(connection, connection_events(connection));
  return 0;
}

/*
 * Writes `parts` (`total` bytes) now, behind what the queue holds, and queues what the kernel does not
 * take; 0, or the errno of a broken connection (EPIPE, ECONNRESET) or of a queue out of memory (ENOMEM).
 */
static int write_parts(stream_handle *connection, struct iovec *parts, int part_count, size_t total) {
  size_t sent = 0;
  if (connection->out_head == NULL) {
    /* One send: what a stream socket's send leaves over, the kernel has no room for now. */
    struct msghdr message = {.msg_iov = parts, .msg_iovlen = (size_t)part_count};
    ssize_t count;
    do count = sendmsg(connection->fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (count < 0 && errno == EINTR);
    if (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return errno;
    if (count > 0) sent = (size_t)count;
  }
  if (sent < total && queue_copy(connection, parts, part_count, sent) != 0) return ENOMEM;
  return 0;
}

/* ---- the peer's data from a route ------------------------------------------------------------- */

static stream_handle *connection_of_routes(stream_routes *routes) {
  return (stream_handle *)((char *)routes - offsetof(stream_handle, routes));
}

/* Tells JavaScript a route dropped the peer's data (its backlog rules: the drop count, the drain deadline). */
static void report_route_drop(stream_handle *connection) {
  stream_state *state = connection->state;
  if (state->on_route_drop == NULL || connection->self == NULL) return;
  napi_env env = connection->env;
  napi_value self, callback;
  napi_get_reference_value(env, connection->self, &self);
  napi_get_reference_value(env, state->on_route_drop, &callback);
  call_handler(env, self, callback, 0, NULL);
}

/* Reports a failed write of a route's frames: out of memory for the queue is a drop; a broken
 * connection loses them, and its read reports the error to JavaScript. */
static void report_route_write_error(stream_handle *connection, int error) {
  if (error == ENOMEM) report_route_drop(connection);
}

/* Writes what the connection has gathered (counted in written_bytes when gathered). */
static void write_gathered(stream_handle *connection) {
  if (connection->gathered == 0 || connection->closing) return;
  struct iovec whole = {.iov_base = connection->gather, .iov_len = connection->gathered};
  connection->gathered = 0;
  report_route_write_error(connection, write_parts(connection, &whole, 1, whole.iov_len));
}

/* Gives the connection a gather buffer and puts it on the list, unless it has them; 0 without memory. */
static int take_gather(stream_handle *connection) {
  if (connection->gather != NULL) return 1;
  stream_state *state = connection->state;
  connection->gather = state->spare_gather_count > 0 ? state->spare_gathers[--state->spare_gather_count] : malloc(GATHER_BYTES);
  if (connection->gather == NULL) return 0;
  connection->next_gathering = state->gathering;
  state->gathering = connection;
  return 1;
}

/*
 * A peer's datagram for a TCP client, from its route during a UDP delivery: one ChannelData frame,
 * padded to 4 bytes (RFC 8656 §12.5), sent at once behind what the queue holds, or queued. Past the
 * backlog bound it is dropped and JavaScript told, as stream.ts drops what does not fit; that bound
 * counts the queue, not frames JavaScript gathers for the same connection this turn (at most
 * stream-batch.ts's 16 KiB more).
 */
int relay_to_stream_client(channel_route *route, const unsigned char *data, size_t length) {
  stream_handle *connection = connection_of_routes(route->stream);
  if (connection->closing || connection->route_backlog_bytes == 0) return 0;
  /* Counted whether it goes or is dropped, as the allocation counts what its stream link may drop. */
  route->packets_to_client++;
  route->bytes_to_client += (double)length;
  uint16_t channel = route->channel;
  size_t padded = (length + 3) & ~(size_t)3;
  size_t frame_bytes = 4 + padded;
  if (connection->queued_bytes + connection->gathered + frame_bytes > connection->route_backlog_bytes) {
    report_route_drop(connection);
    return 1;
  }
  unsigned char header[4];
  write_channel_data_header(header, channel, length);
  if (connection->gathered + frame_bytes > GATHER_BYTES) write_gathered(connection);
  if (frame_bytes <= GATHER_BYTES && take_gather(connection)) {
    /* Gathered, and written with the connection's other frames of this delivery at its end. */
    unsigned char *at = connection->gather + connection->gathered;
    memcpy(at, header, 4);
    memcpy(at + 4, data, length);
    memset(at + 4 + length, 0, padded - length);
    connection->gathered += frame_bytes;
    connection->written_bytes += (double)frame_bytes;
    return 1;
  }
  static const unsigned char padding[3] = {0, 0, 0};
  struct iovec parts[3] = {{.iov_base = header, .iov_len = 4}, {.iov_base = (void *)data, .iov_len = length}, {.iov_base = (void *)padding, .iov_len = padded - length}};
  report_route_write_error(connection, write_parts(connection, parts, padded > length ? 3 : 2, frame_bytes));
  return 1;
}

void flush_stream_gathers(stream_state *state) {
  if (state == NULL) return;
  while (state->gathering != NULL) {
    stream_handle *connection = state->gathering;
    write_gathered(connection);
    drop_gather(connection);
  }
}

/* ---- the batch -------------------------------------------------------------------------------- */

static void handle_batch(stream_state *state, int count) {
  napi_env env = state->env;
  napi_handle_scope handles;
  napi_open_handle_scope(env, &handles);
  handlers js;
  napi_value resource;
  napi_get_reference_value(env, state->on_connection, &js.on_connection);
  napi_get_reference_value(env, state->on_data, &js.on_data);
  napi_get_reference_value(env, state->on_end, &js.on_end);
  napi_get_reference_value(env, state->resource, &resource);
  napi_callback_scope scope;
  napi_open_callback_scope(env, resource, state->async_context, &scope);
  state->delivering++;
  /* What the reads relay to peers over UDP leaves in one sendmmsg per relay socket, after the batch. */
  hold_udp_sends(env, 1);
  for (int i = 0; i < count; i++) {
    stream_handle *handle = state->events[i].data.ptr;
    uint32_t events = state->events[i].events;
    if (handle->closing) continue;
    int failed = 0;
    if (handle->listening) {
      failed = accept_connections(handle, &js);
    } else {
      if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && handle->out_head != NULL && flush_out_queue(handle) != 0) {
        /* The connection is broken: what waits can never go; the read reports the error to JavaScript. */
        free_out_queue(handle);
        watch(handle, connection_events(handle));
      }
      if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && handle->reading && !handle->closing) failed = read_connection(handle, &js);
    }
    if (failed) break; /* the exception is on its way to 'uncaughtException'; what is left waits for the next batch */
  }
  state->delivering--;
  /* Closing the scope runs the microtasks and the tick queue: what JavaScript deferred to them, once per batch. */
  napi_close_callback_scope(env, scope);
  hold_udp_sends(env, 0);
  release_closed_in_batch(state);
  napi_close_handle_scope(env, handles);
}

static void on_epoll_ready(uv_poll_t *poll, int status, int events) {
  (void)events;
  stream_state *state = poll->data;
  if (state == NULL || status < 0) return;
  int count;
  do count = epoll_wait(state->epoll_fd, state->events, EVENTS_PER_BATCH, 0);
  while (count < 0 && errno == EINTR);
  if (count > 0 && state->on_data != NULL) handle_batch(state, count);
}

/* ---- JavaScript entry points ------------------------------------------------------------------ */

static stream_state *state_of(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  void *data = NULL;
  napi_get_cb_info(env, info, argc, argv, NULL, &data);
  return data;
}

/*
 * setStreamHandlers(onConnection, onData, onEnd, onRouteDrop): the handlers of every listener and
 * connection; set once, before listen(). See stream_state for their arguments.
 */
static napi_value js_set_stream_handlers(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  stream_state *state = state_of(env, info, &argc, argv);
  for (size_t i = 0; i < 4; i++) {
    napi_valuetype type = napi_undefined;
    if (argc < 4 || napi_typeof(env, argv[i], &type) != napi_ok || type != napi_function) {
      return throw_type(env, "setStreamHandlers(onConnection, onData, onEnd, onRouteDrop: functions)");
    }
  }
  napi_ref *slots[4] = {&state->on_connection, &state->on_data, &state->on_end, &state->on_route_drop};
  for (size_t i = 0; i < 4; i++) {
    if (*slots[i] != NULL) napi_delete_reference(env, *slots[i]);
    napi_create_reference(env, argv[i], 1, slots[i]);
  }
  return NULL;
}

/* streamReceiveArea() -> Buffer: where the bytes of every read handed to onData lie (from offset 0). */
static napi_value js_stream_receive_area(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  stream_state *state = state_of(env, info, &argc, NULL);
  napi_value area;
  napi_get_reference_value(env, state->receive_area, &area);
  return area;
}

/*
 * listenStream(family: 4 | 6, address: string, port: number, backlog: number, receiver: object
 *              [, reusePort: boolean]) -> handle
 * A TCP listener; each connection it accepts goes to onConnection with `receiver` as `this`.
 * Throws the bind or listen error with its `code` (EADDRINUSE, ...).
 */
static napi_value js_listen_stream(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  stream_state *state = state_of(env, info, &argc, argv);
  int32_t family = 0, port = -1, backlog = 0;
  if (argc < 5 || napi_get_value_int32(env, argv[0], &family) != napi_ok || (family != 4 && family != 6) ||
      napi_get_value_int32(env, argv[2], &port) != napi_ok || napi_get_value_int32(env, argv[3], &backlog) != napi_ok || backlog < 1 ||
      !is_object(env, argv[4])) {
    return throw_type(env, "listenStream(family 4|6, address, port, backlog >= 1, receiver object[, reusePort])");
  }
  if (state->on_connection == NULL) return throw_type(env, "setStreamHandlers() must come before listenStream()");
  bool reuse_port = false;
  if (argc >= 6) napi_get_value_bool(env, argv[5], &reuse_port);
  struct sockaddr_storage local;
  socklen_t local_length;
  if (read_address_argument(env, argv[1], family, port, &local, &local_length) != 0) return throw_errno(env, EINVAL, "not an IP address and port to listen on");
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  int on = 1;
  const char *failed = NULL;
  /* SO_REUSEADDR as Node's listeners set it: a restart binds while old connections sit in TIME_WAIT. */
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) failed = "SO_REUSEADDR";
  else if (family == 6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0) failed = "IPV6_V6ONLY";
  else if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) failed = "SO_REUSEPORT";
  else if (bind(fd, (struct sockaddr *)&local, local_length) != 0) failed = "bind";
  else if (listen(fd, backlog) != 0) failed = "listen";
  if (failed != NULL) {
    int error = errno;
    close(fd);
    return throw_errno(env, error, failed);
  }
  napi_value external;
  stream_handle *listener = new_handle(env, state, fd, 1, &external);
  if (listener == NULL) return throw_errno(env, ENOMEM, "could not set up the listener");
  napi_create_reference(env, argv[4], 1, &listener->self);
  watch(listener, EPOLLIN);
  return external;
}

/*
 * startStream(handle, receiver: object): starts reading a connection onConnection was given; its
 * reads and its end go to onData and onEnd with `receiver` as `this`. The receiver must hold the
 * handle: the strong reference to it is what keeps the handle alive while the connection is open.
 */
static napi_value js_start_stream(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  state_of(env, info, &argc, argv);
  if (argc < 2 || !is_object(env, argv[1])) return throw_type(env, "startStream(handle, receiver object)");
  stream_handle *connection = open_handle_of(env, argv[0], 0);
  if (connection == NULL) return NULL;
  if (connection->listening || connection->self != NULL) return throw_type(env, "startStream: not a new connection's handle");
  napi_create_reference(env, argv[1], 1, &connection->self);
  watch(connection, EPOLLIN);
  return NULL;
}

/*
 * writeStream(handle, buffer, offset, length) -> the bytes queued after it (>= 0), or -errno.
 * What the kernel takes now is sent from `buffer` itself; the rest is copied to the connection's
 * queue, behind what waits there already. Never throws: a closed handle is -EBADF, a slice past
 * the buffer -ERANGE, a broken connection its errno (EPIPE, ECONNRESET).
 */
static napi_value js_write_stream(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  state_of(env, info, &argc, argv);
  if (argc < 4) return errno_value(env, -EINVAL);
  stream_handle *connection = open_handle_of(env, argv[0], 1);
  if (connection == NULL || connection->listening) return errno_value(env, -EBADF);
  void *bytes = NULL;
  size_t byte_length = 0;
  uint32_t offset = 0, length = 0;
  if (napi_get_buffer_info(env, argv[1], &bytes, &byte_length) != napi_ok || napi_get_value_uint32(env, argv[2], &offset) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &length) != napi_ok) {
    return errno_value(env, -EINVAL);
  }
  if ((size_t)offset + length > byte_length) return errno_value(env, -ERANGE);
  struct iovec whole = {.iov_base = (unsigned char *)bytes + offset, .iov_len = length};
  int error = write_parts(connection, &whole, 1, length);
  if (error != 0) return errno_value(env, -error);
  connection->written_bytes += length;
  napi_value queued;
  napi_create_double(env, (double)connection->queued_bytes, &queued);
  return queued;
}

stream_routes *stream_routes_of(napi_env env, napi_value handle) {
  stream_handle *connection = open_handle_of(env, handle, 1);
  return connection == NULL || connection->listening ? NULL : &connection->routes;
}

/*
 * setStreamRouteBacklog(handle, bytes): lets routes write a peer's data to this connection while
 * its queue holds at most `bytes` with the frame (JavaScript's backlog bound); 0 stops it.
 */
static napi_value js_set_stream_route_backlog(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  state_of(env, info, &argc, argv);
  double bytes = -1;
  if (argc < 2 || napi_get_value_double(env, argv[1], &bytes) != napi_ok || !(bytes >= 0) || bytes > 1073741824.0) {
    return throw_type(env, "setStreamRouteBacklog(handle, bytes: 0 to 2^30)");
  }
  stream_handle *connection = open_handle_of(env, argv[0], 1);
  if (connection != NULL && !connection->listening) connection->route_backlog_bytes = (size_t)bytes;
  return NULL;
}

/* streamWritten(handle) -> bytes written so far, queued ones included, by JavaScript and by routes. */
static napi_value js_stream_written(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  state_of(env, info, &argc, argv);
  void *data = NULL;
  napi_value written;
  /* Closed handles answer too: the count is read once more when the connection goes. */
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok || data == NULL) return throw_type(env, "streamWritten(handle)");
  napi_create_double(env, ((stream_handle *)data)->written_bytes, &written);
  return written;
}

/* streamQueued(handle) -> bytes waiting in the connection's queue (0 once closed). */
static napi_value js_stream_queued(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  state_of(env, info, &argc, argv);
  stream_handle *connection = argc == 1 ? open_handle_of(env, argv[0], 1) : NULL;
  napi_value queued;
  napi_create_double(env, connection == NULL ? 0 : (double)connection->queued_bytes, &queued);
  return queued;
}

/* streamLocalAddress(handle) -> [address, port]: a listener's bound address. */
static napi_value js_stream_local_address(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  state_of(env, info, &argc, argv);
  stream_handle *handle = argc == 1 ? open_handle_of(env, argv[0], 0) : (throw_type(env, "streamLocalAddress(handle)"), NULL);
  if (handle == NULL) return NULL;
  struct sockaddr_storage local;
  socklen_t length = sizeof local;
  if (getsockname(handle->fd, (struct sockaddr *)&local, &length) != 0) return throw_errno(env, errno, "getsockname");
  napi_value port;
  napi_create_uint32(env, (uint32_t)port_of(&local), &port);
  return make_pair(env, address_text(env, &local), port);
}

/* closeStream(handle): closes a listener (its port is free when it returns) or a connection; what its queue holds is dropped. Closing twice is a no-op. */
static napi_value js_close_stream(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  state_of(env, info, &argc, argv);
  if (argc < 1) return throw_type(env, "closeStream(handle)");
  stream_handle *handle = open_handle_of(env, argv[0], 1);
  if (handle != NULL) begin_close(handle, 0);
  return NULL;
}

stream_state *register_stream_io(napi_env env, napi_value exports) {
  stream_state *state = calloc(1, sizeof *state);
  uv_loop_t *loop = NULL;
  if (state == NULL || napi_get_uv_event_loop(env, &loop) != napi_ok) {
    free(state);
    return NULL;
  }
  state->env = env;
  state->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  state->poll = malloc(sizeof *state->poll);
  state->pause_timer = malloc(sizeof *state->pause_timer);
  napi_value area;
  if (state->epoll_fd < 0 || state->poll == NULL || state->pause_timer == NULL || uv_poll_init(loop, state->poll, state->epoll_fd) != 0 ||
      uv_timer_init(loop, state->pause_timer) != 0 || napi_create_buffer(env, READ_AREA_BYTES, (void **)&state->receive_bytes, &area) != napi_ok) {
    /* Nothing was started yet; what was made is leaked rather than risk closing half-made libuv handles. */
    return NULL;
  }
  state->poll->data = state;
  state->pause_timer->data = state;
  /* Unreferenced until a handle opens: an addon with no listener must not keep the process alive. */
  uv_unref((uv_handle_t *)state->poll);
  uv_unref((uv_handle_t *)state->pause_timer);
  uv_poll_start(state->poll, UV_READABLE, on_epoll_ready);
  napi_create_reference(env, area, 1, &state->receive_area);
  napi_value resource, resource_name;
  napi_create_object(env, &resource);
  napi_create_reference(env, resource, 1, &state->resource);
  napi_create_string_utf8(env, "relaykit.TcpStream", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, resource, resource_name, &state->async_context);
  /* The state lives as long as the environment: teardown closes every handle, and the process ends. */
  napi_add_env_cleanup_hook(env, close_all_at_teardown, state);
  napi_property_descriptor functions[] = {
      {"setStreamHandlers", NULL, js_set_stream_handlers, NULL, NULL, NULL, napi_default, state},
      {"streamReceiveArea", NULL, js_stream_receive_area, NULL, NULL, NULL, napi_default, state},
      {"listenStream", NULL, js_listen_stream, NULL, NULL, NULL, napi_default, state},
      {"startStream", NULL, js_start_stream, NULL, NULL, NULL, napi_default, state},
      {"writeStream", NULL, js_write_stream, NULL, NULL, NULL, napi_default, state},
      {"streamQueued", NULL, js_stream_queued, NULL, NULL, NULL, napi_default, state},
      {"setStreamRouteBacklog", NULL, js_set_stream_route_backlog, NULL, NULL, NULL, napi_default, state},
      {"streamWritten", NULL, js_stream_written, NULL, NULL, NULL, napi_default, state},
      {"streamLocalAddress", NULL, js_stream_local_address, NULL, NULL, NULL, napi_default, state},
      {"closeStream", NULL, js_close_stream, NULL, NULL, NULL, napi_default, state},
  };
  return napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions) == napi_ok ? state : NULL;
}
