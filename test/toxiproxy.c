#include "toxiproxy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "helpers.h"

/* Seconds that one API request may wait to send or receive. */
#define REQUEST_TIMEOUT_S 10

/* The largest reply read; the API's replies are a few hundred bytes. */
#define MAX_RESPONSE_LEN 65536

/* A reply of the API: its HTTP status and its body, NUL-terminated. */
typedef struct {
  int status;
  char *body; /* owned, bson_free() */
} api_response_t;

/*
 * Parses MKV_TEST_TOXIPROXY, which must be an IPv4 address and a port.
 * Returns false, with the cause written to `reason`, when it is not.
 */
static bool parse_api_address(struct sockaddr_in *address, char *reason,
                              size_t reason_size) {
  const char *text = getenv("MKV_TEST_TOXIPROXY");
  char host[64];
  const char *colon;
  char *end;
  long port;

  if (text == NULL || text[0] == '\0') {
    snprintf(reason, reason_size, "MKV_TEST_TOXIPROXY is not set");
    return false;
  }
  colon = strrchr(text, ':');
  if (colon == NULL || (size_t)(colon - text) >= sizeof host) {
    snprintf(reason, reason_size, "MKV_TEST_TOXIPROXY \"%s\" is not IPV4:PORT",
             text);
    return false;
  }
  memcpy(host, text, (size_t)(colon - text));
  host[colon - text] = '\0';
  errno = 0;
  port = strtol(colon + 1, &end, 10);

  memset(address, 0, sizeof *address);
  address->sin_family = AF_INET;
  if (inet_pton(AF_INET, host, &address->sin_addr) != 1 || errno != 0 ||
      *end != '\0' || port < 1 || port > 65535) {
    snprintf(reason, reason_size, "MKV_TEST_TOXIPROXY \"%s\" is not IPV4:PORT",
             text);
    return false;
  }
  address->sin_port = htons((uint16_t)port);
  return true;
}

/* Opens a connection to the API with send and receive timeouts. */
static int connect_api(char *reason, size_t reason_size) {
  struct timeval timeout = {.tv_sec = REQUEST_TIMEOUT_S};
  struct sockaddr_in address;
  int fd;

  if (!parse_api_address(&address, reason, reason_size))
    return -1;
  fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    snprintf(reason, reason_size, "socket() failed: %s", strerror(errno));
    return -1;
  }
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout) != 0 ||
      connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
    snprintf(reason, reason_size, "connecting to Toxiproxy at %s failed: %s",
             getenv("MKV_TEST_TOXIPROXY"), strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

static bool send_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t sent = send(fd, data, len, MSG_NOSIGNAL);

    if (sent < 0 && errno == EINTR)
      continue;
    if (sent <= 0)
      return false;
    data += sent;
    len -= (size_t)sent;
  }
  return true;
}

/*
 * Reads until the server closes the connection, as the request's
 * "Connection: close" header requests. Returns the bytes read,
 * NUL-terminated, or NULL on an error.
 */
static char *receive_all(int fd, size_t *len_out) {
  char *data = bson_malloc(MAX_RESPONSE_LEN + 1);
  size_t len = 0;

  while (len < MAX_RESPONSE_LEN) {
    ssize_t got = recv(fd, data + len, MAX_RESPONSE_LEN - len, 0);

    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      bson_free(data);
      return NULL;
    }
    if (got == 0)
      break;
    len += (size_t)got;
  }
  data[len] = '\0';
  *len_out = len;
  return data;
}

/*
 * Splits an HTTP/1.1 reply into its status and body. Toxiproxy sends small
 * bodies with Content-Length, never chunked, so the body is the rest.
 */
static bool parse_response(const char *raw, api_response_t *response) {
  const char *body = strstr(raw, "\r\n\r\n");
  int status;

  if (body == NULL || sscanf(raw, "HTTP/1.1 %3d ", &status) != 1)
    return false;
  if (strstr(raw, "Transfer-Encoding: chunked") != NULL)
    return false;
  response->status = status;
  response->body = bson_strdup(body + 4);
  return true;
}

/*
 * Sends one request with an optional JSON body and reads the reply.
 * Returns false, with the reason in `reason`, when no HTTP reply came.
 */
static bool api_request(const char *method, const char *path, const char *json,
                        api_response_t *response, char *reason,
                        size_t reason_size) {
  size_t body_len = json != NULL ? strlen(json) : 0;
  char *request;
  char *raw;
  size_t raw_len = 0;
  bool ok = false;
  int fd = connect_api(reason, reason_size);

  if (fd < 0)
    return false;
  request = bson_strdup_printf("%s %s HTTP/1.1\r\n"
                               "Host: %s\r\n"
                               "User-Agent: libmkv-test\r\n"
                               "Content-Type: application/json\r\n"
                               "Content-Length: %zu\r\n"
                               "Connection: close\r\n\r\n%s",
                               method, path, getenv("MKV_TEST_TOXIPROXY"),
                               body_len, json != NULL ? json : "");
  if (!send_all(fd, request, strlen(request))) {
    snprintf(reason, reason_size, "%s %s: sending the request failed: %s",
             method, path, strerror(errno));
  } else if ((raw = receive_all(fd, &raw_len)) == NULL) {
    snprintf(reason, reason_size, "%s %s: reading the reply failed: %s", method,
             path, strerror(errno));
  } else {
    ok = parse_response(raw, response);
    if (!ok)
      snprintf(reason, reason_size,
               "%s %s: the reply is not HTTP/1.1 with a body: "
               "\"%.200s\"",
               method, path, raw);
    bson_free(raw);
  }
  bson_free(request);
  close(fd);
  return ok;
}

/* Sends a request and fails the test unless the reply has `expected`. */
static api_response_t api_call(const char *method, const char *path,
                               const bson_t *body, int expected) {
  api_response_t response = {0};
  char *json = body != NULL ? bson_as_relaxed_extended_json(body, NULL) : NULL;
  char reason[512];

  if (!api_request(method, path, json, &response, reason, sizeof reason))
    fail_msg("Toxiproxy API: %s", reason);
  if (response.status != expected)
    fail_msg("Toxiproxy API: %s %s returned HTTP %d, expected %d: %s", method,
             path, response.status, expected, response.body);
  bson_free(json);
  return response;
}

int toxiproxy_check_environment(void) {
  api_response_t response = {0};
  char reason[512];

  if (!api_request("GET", "/version", NULL, &response, reason, sizeof reason)) {
    fprintf(stderr,
            "%s. Set MKV_TEST_TOXIPROXY to 127.0.0.1:PORT of a running "
            "toxiproxy-server (scripts/dev test starts one).\n",
            reason);
    return 1;
  }
  bson_free(response.body);
  if (response.status != 200) {
    fprintf(stderr, "MKV_TEST_TOXIPROXY: GET /version returned HTTP %d\n",
            response.status);
    return 1;
  }
  return 0;
}

/* Returns "host:port" of the first host of MKV_TEST_URI. */
static char *upstream_address(void) {
  bson_error_t error = {0};
  mongoc_uri_t *uri = mongoc_uri_new_with_error(test_uri(), &error);
  const mongoc_host_list_t *host;
  char *address;

  if (uri == NULL)
    fail_msg("MKV_TEST_URI does not parse: %s", error.message);
  host = mongoc_uri_get_hosts(uri);
  if (host == NULL) {
    mongoc_uri_destroy(uri);
    fail_msg("MKV_TEST_URI has no host and port to proxy");
  }
  address = bson_strdup(host->host_and_port);
  mongoc_uri_destroy(uri);
  return address;
}

/* Reads the port from a "listen" field such as "127.0.0.1:41234". */
static int listen_port(const char *json) {
  bson_error_t error = {0};
  bson_t *reply = bson_new_from_json((const uint8_t *)json, -1, &error);
  bson_iter_t iter;
  const char *colon;
  int port = 0;

  if (reply == NULL)
    fail_msg("Toxiproxy API: the new proxy's reply is not JSON: %s", json);
  if (bson_iter_init_find(&iter, reply, "listen") &&
      BSON_ITER_HOLDS_UTF8(&iter) &&
      (colon = strrchr(bson_iter_utf8(&iter, NULL), ':')) != NULL)
    port = atoi(colon + 1);
  bson_destroy(reply);
  if (port < 1 || port > 65535)
    fail_msg("Toxiproxy API: no listen port in the new proxy: %s", json);
  return port;
}

void toxiproxy_create(test_proxy_t *proxy, const char *name) {
  char *upstream = upstream_address();
  api_response_t response;
  bson_t body = BSON_INITIALIZER;

  snprintf(proxy->name, sizeof proxy->name, "%s", name);
  BSON_APPEND_UTF8(&body, "name", proxy->name);
  BSON_APPEND_UTF8(&body, "listen", "127.0.0.1:0");
  BSON_APPEND_UTF8(&body, "upstream", upstream);
  BSON_APPEND_BOOL(&body, "enabled", true);
  response = api_call("POST", "/proxies", &body, 201);
  proxy->port = listen_port(response.body);

  bson_free(response.body);
  bson_destroy(&body);
  bson_free(upstream);
}

/* Sends a DELETE and returns whether it got HTTP 204, printing reason not. */
static bool api_delete(const char *path) {
  api_response_t response = {0};
  char reason[512];
  bool deleted =
      api_request("DELETE", path, NULL, &response, reason, sizeof reason);

  if (!deleted)
    fprintf(stderr, "Toxiproxy API: %s\n", reason);
  else if (response.status != 204)
    fprintf(stderr, "Toxiproxy API: DELETE %s returned HTTP %d: %s\n", path,
            response.status, response.body);
  deleted = deleted && response.status == 204;
  bson_free(response.body);
  return deleted;
}

bool toxiproxy_delete(const test_proxy_t *proxy) {
  char *path = bson_strdup_printf("/proxies/%s", proxy->name);
  bool deleted = api_delete(path);

  bson_free(path);
  return deleted;
}

void toxiproxy_set_enabled(const test_proxy_t *proxy, bool enabled) {
  char *path = bson_strdup_printf("/proxies/%s", proxy->name);
  bson_t body = BSON_INITIALIZER;
  api_response_t response;

  BSON_APPEND_BOOL(&body, "enabled", enabled);
  response = api_call("POST", path, &body, 200);
  bson_free(response.body);
  bson_destroy(&body);
  bson_free(path);
}

void toxiproxy_add_toxic(const test_proxy_t *proxy, const char *name,
                         const char *type, const char *stream,
                         const char *attribute, int64_t value) {
  char *path = bson_strdup_printf("/proxies/%s/toxics", proxy->name);
  bson_t body = BSON_INITIALIZER;
  bson_t attributes;
  api_response_t response;

  BSON_APPEND_UTF8(&body, "name", name);
  BSON_APPEND_UTF8(&body, "type", type);
  BSON_APPEND_UTF8(&body, "stream", stream);
  BSON_APPEND_DOUBLE(&body, "toxicity", 1.0);
  BSON_APPEND_DOCUMENT_BEGIN(&body, "attributes", &attributes);
  BSON_APPEND_INT64(&attributes, attribute, value);
  bson_append_document_end(&body, &attributes);
  response = api_call("POST", path, &body, 200);

  bson_free(response.body);
  bson_destroy(&body);
  bson_free(path);
}

bool toxiproxy_remove_toxic(const test_proxy_t *proxy, const char *name) {
  char *path = bson_strdup_printf("/proxies/%s/toxics/%s", proxy->name, name);
  bool removed = api_delete(path);

  bson_free(path);
  return removed;
}

char *toxiproxy_uri(const test_proxy_t *proxy, const char *options) {
  const char *uri = test_uri();
  const char *hosts;
  const char *hosts_end;
  const char *at;
  const char *rest;

  if (strncmp(uri, "mongodb://", 10) != 0)
    fail_msg("MKV_TEST_URI must start with mongodb:// to be proxied, because "
             "a proxy replaces its host list");
  hosts = uri + 10;
  hosts_end = hosts + strcspn(hosts, "/?");
  /* User information ends at the last "@" before the path. */
  for (at = hosts; at < hosts_end; at++) {
    if (*at == '@')
      hosts = at + 1;
  }

  rest = hosts_end;
  if (strchr(rest, '?') != NULL)
    return bson_strdup_printf("%.*s127.0.0.1:%d%s&%s", (int)(hosts - uri), uri,
                              proxy->port, rest, options);
  if (*rest == '/')
    return bson_strdup_printf("%.*s127.0.0.1:%d%s?%s", (int)(hosts - uri), uri,
                              proxy->port, rest, options);
  return bson_strdup_printf("%.*s127.0.0.1:%d/?%s", (int)(hosts - uri), uri,
                            proxy->port, options);
}
