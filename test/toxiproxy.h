/*
 * A small client of Toxiproxy's HTTP API for the network fault tests. It
 * talks HTTP/1.1 over a loopback TCP socket to the Toxiproxy server that
 * MKV_TEST_TOXIPROXY names (127.0.0.1:PORT), one request per connection.
 * Every function fails the running test when Toxiproxy does not accept the
 * request.
 */
#ifndef MKV_TEST_TOXIPROXY_H
#define MKV_TEST_TOXIPROXY_H

#include <stdbool.h>
#include <stdint.h>

/*
 * A proxy that listens on a free port of 127.0.0.1 and forwards to the
 * server of MKV_TEST_URI.
 */
typedef struct {
  char name[128];
  int port; /* the port that Toxiproxy chose for the listener */
} test_proxy_t;

/*
 * Checks that MKV_TEST_TOXIPROXY is set to 127.0.0.1:PORT and that the
 * Toxiproxy API there replies. Returns 0, or prints the cause and returns 1.
 */
int toxiproxy_check_environment(void);

/*
 * Creates a proxy named `name` on 127.0.0.1:0 whose upstream is the first
 * host of MKV_TEST_URI, and reads back the port it listens on.
 */
void toxiproxy_create(test_proxy_t *proxy, const char *name);

/* Deletes the proxy, which closes its connections. Returns false, with a
 * message, when Toxiproxy rejects the request. */
bool toxiproxy_delete(const test_proxy_t *proxy);

/*
 * Enables or disables the proxy. A disabled proxy closes its connections
 * and its listener, so that new connections are refused.
 */
void toxiproxy_set_enabled(const test_proxy_t *proxy, bool enabled);

/*
 * Adds a toxic named `name` of `type` ("timeout", "latency", "limit_data",
 * "reset_peer"...) on `stream` ("upstream" is client to server,
 * "downstream" server to client). `attribute` is the toxic's one integer
 * setting, such as "timeout" in milliseconds or "bytes". The toxic applies
 * to open connections and new ones.
 */
void toxiproxy_add_toxic(const test_proxy_t *proxy, const char *name,
                         const char *type, const char *stream,
                         const char *attribute, int64_t value);

/*
 * Removes a toxic. Removing a "timeout" toxic closes the connections that
 * it stalled, and removing a "latency" toxic sends on the data it delayed,
 * as Toxiproxy 2.5.0 does. Returns false, with a message, when Toxiproxy
 * rejects the request. Unlike the functions above it does not fail the
 * test, so any thread may call it.
 */
bool toxiproxy_remove_toxic(const test_proxy_t *proxy, const char *name);

/*
 * Returns MKV_TEST_URI with its hosts replaced by the proxy's address and
 * `options` (such as "socketTimeoutMS=1000&directConnection=true") added to
 * its query. Release it with bson_free().
 */
char *toxiproxy_uri(const test_proxy_t *proxy, const char *options);

#endif /* MKV_TEST_TOXIPROXY_H */
