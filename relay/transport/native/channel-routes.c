/*
 * The channel routes' data structure (see channel-routes.h): a chained hash table for the client's
 * side, each relay socket's short list for the peer's side. A relay socket holds few channels (a
 * call has one or two), so its list is walked; the listeners hold every client's, so those are hashed.
 */
#include "channel-routes.h"
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int route_address_from(const struct sockaddr_storage *address, route_address *out) {
  memset(out, 0, sizeof *out);
  if (address->ss_family == AF_INET) {
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)address;
    out->family = AF_INET;
    out->port = ntohs(v4->sin_port);
    memcpy(out->ip, &v4->sin_addr, 4);
    return 1;
  }
  if (address->ss_family == AF_INET6) {
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)address;
    out->family = AF_INET6;
    out->port = ntohs(v6->sin6_port);
    memcpy(out->ip, &v6->sin6_addr, 16);
    return 1;
  }
  return 0;
}

socklen_t route_address_to_sockaddr(const route_address *address, struct sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  if (address->family == AF_INET) {
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    v4->sin_family = AF_INET;
    v4->sin_port = htons(address->port);
    memcpy(&v4->sin_addr, address->ip, 4);
    return sizeof *v4;
  }
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
  v6->sin6_family = AF_INET6;
  v6->sin6_port = htons(address->port);
  memcpy(&v6->sin6_addr, address->ip, 16);
  return sizeof *v6;
}

int same_route_address(const route_address *a, const route_address *b) {
  return a->family == b->family && a->port == b->port && memcmp(a->ip, b->ip, a->family == AF_INET ? 4 : 16) == 0;
}

/* FNV-1a over the key: the listener's pointer, the client's address, the channel. */
static uint32_t client_key_hash(const struct udp_socket *listener, const route_address *client, uint16_t channel) {
  uint32_t hash = 2166136261u;
  uintptr_t pointer = (uintptr_t)listener;
  for (unsigned i = 0; i < sizeof pointer; i++) hash = (hash ^ (unsigned char)(pointer >> (8 * i))) * 16777619u;
  unsigned length = client->family == AF_INET ? 4 : 16;
  for (unsigned i = 0; i < length; i++) hash = (hash ^ client->ip[i]) * 16777619u;
  hash = (hash ^ (client->port & 0xff)) * 16777619u;
  hash = (hash ^ (client->port >> 8)) * 16777619u;
  hash = (hash ^ (channel & 0xff)) * 16777619u;
  hash = (hash ^ (channel >> 8)) * 16777619u;
  return hash;
}

channel_route *find_client_route(const route_table *table, const struct udp_socket *listener, const route_address *client, uint16_t channel) {
  if (table->count == 0) return NULL;
  uint32_t hash = client_key_hash(listener, client, channel);
  for (channel_route *route = table->buckets[hash & (table->bucket_count - 1)]; route != NULL; route = route->next_in_bucket) {
    if (route->hash == hash && route->listener == listener && route->channel == channel && same_route_address(&route->client, client)) return route;
  }
  return NULL;
}

channel_route *find_peer_route(channel_route *first, const route_address *peer) {
  for (channel_route *route = first; route != NULL; route = route->next_of_relay) {
    if (same_route_address(&route->peer, peer)) return route;
  }
  return NULL;
}

channel_route *find_stream_route(const stream_routes *routes, uint16_t channel) {
  for (channel_route *route = routes->first; route != NULL; route = route->next_of_stream) {
    if (route->channel == channel) return route;
  }
  return NULL;
}

channel_route *find_relay_channel(channel_route *first, uint16_t channel) {
  for (channel_route *route = first; route != NULL; route = route->next_of_relay) {
    if (route->channel == channel) return route;
  }
  return NULL;
}

/* Doubles the buckets (from 1,024) when the table is as full as it has buckets; 0 or ENOMEM. */
static int grow(route_table *table) {
  uint32_t count = table->bucket_count == 0 ? 1024 : table->bucket_count * 2;
  channel_route **buckets = calloc(count, sizeof *buckets);
  if (buckets == NULL) return ENOMEM;
  for (uint32_t i = 0; i < table->bucket_count; i++) {
    channel_route *route = table->buckets[i];
    while (route != NULL) {
      channel_route *next = route->next_in_bucket;
      route->next_in_bucket = buckets[route->hash & (count - 1)];
      buckets[route->hash & (count - 1)] = route;
      route = next;
    }
  }
  free(table->buckets);
  table->buckets = buckets;
  table->bucket_count = count;
  return 0;
}

int add_route(route_table *table, channel_route *route) {
  if (table->count >= ROUTES_MAX) return ENOMEM;
  if (table->count >= table->bucket_count && grow(table) != 0) return ENOMEM;
  route->hash = client_key_hash(route->listener, &route->client, route->channel);
  channel_route **bucket = &table->buckets[route->hash & (table->bucket_count - 1)];
  route->next_in_bucket = *bucket;
  *bucket = route;
  table->count++;
  return 0;
}

void remove_route(route_table *table, channel_route *route) {
  channel_route **link = &table->buckets[route->hash & (table->bucket_count - 1)];
  while (*link != NULL && *link != route) link = &(*link)->next_in_bucket;
  if (*link == NULL) return;
  *link = route->next_in_bucket;
  route->next_in_bucket = NULL;
  table->count--;
}

void free_route_table(route_table *table) {
  free(table->buckets);
  table->buckets = NULL;
  table->bucket_count = table->count = 0;
}
