/*
 * Tests that the password of a URI stays secret: no error message, status
 * text or libmongoc log message contains it, on any error path that a test
 * can reach. Those paths are URIs that do not parse, invalid options and
 * names, a closed port, a port that never replies, and a failed
 * authentication against the test server, for every operation, sync and
 * async.
 *
 * A log handler records every libmongoc message at every level, from every
 * thread, for the whole program.
 */
#include "helpers.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

/* The password in plain form, and percent-encoded as the URI has it. */
#define PASSWORD "Pw-7Hx2-q9Zs"
#define PASSWORD_ENCODED "Pw%2D7Hx2%2Dq9Zs"

/* A password with "@" and ":", decoded and as the URI has it. */
#define ODD_PASSWORD "qR4:w@Lz81"
#define ODD_PASSWORD_ENCODED "qR4%3Aw%40Lz81"

/* Timeouts of the failing connections, in milliseconds. */
#define FAILING_TIMEOUT_MS 300

static const char *const secrets[] = {PASSWORD, PASSWORD_ENCODED, ODD_PASSWORD,
                                      ODD_PASSWORD_ENCODED};

/* The counts of the log handler, guarded by log_mutex. */
static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;
static size_t log_count;
static size_t log_leaks;
static char first_leak[1024];

static const char *find_secret(const char *text) {
  for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
    if (text != NULL && strstr(text, secrets[i]) != NULL) {
      return secrets[i];
    }
  }
  return NULL;
}

/* Counts every libmongoc log message, and those that contain a secret. */
static void capture_log(mongoc_log_level_t level, const char *domain,
                        const char *message, void *data) {
  (void)data;
  pthread_mutex_lock(&log_mutex);
  log_count++;
  if (find_secret(domain) != NULL || find_secret(message) != NULL) {
    if (log_leaks == 0) {
      snprintf(first_leak, sizeof first_leak, "%s %s: %s",
               mongoc_log_level_str(level), domain, message);
    }
    log_leaks++;
  }
  pthread_mutex_unlock(&log_mutex);
}

static size_t logged_messages(void) {
  size_t count;

  pthread_mutex_lock(&log_mutex);
  count = log_count;
  pthread_mutex_unlock(&log_mutex);
  return count;
}

/* Asserts that no log message so far has contained a secret. */
static void assert_log_clean(void) {
  size_t leaks;

  pthread_mutex_lock(&log_mutex);
  leaks = log_leaks;
  if (leaks > 0) {
    print_error("a libmongoc log message contains the password: %s\n",
                first_leak);
  }
  pthread_mutex_unlock(&log_mutex);
  assert_int_equal(leaks, 0);
}

/* Asserts that `text` contains no secret, and prints it when it does. */
static void assert_no_secret(const char *text) {
  const char *secret = find_secret(text);

  if (secret != NULL) {
    print_error("\"%s\" contains the password \"%s\"\n", text, secret);
  }
  assert_null(secret);
}

/* Asserts that the status's name and message and `error` are clean. */
static void check_failure(int status, const bson_error_t *error) {
  assert_no_secret(mkv_strerror(status));
  assert_no_secret(mkv_err_name(status));
  assert_no_secret(error->message);
  assert_log_clean();
}

/*
 * Runs every operation on fixture->db, sync and then async, and asserts
 * that each fails with `expected` and that nothing shows a secret.
 */
static void check_every_operation(test_fixture_t *fixture, int expected) {
  enum { SET, SET_AUTO, GET, REMOVE, ALL, PURGE, PING, COUNT };
  bson_value_t value = mkv_str("v");
  test_record_t records[COUNT];
  bson_value_t read = {0};
  bson_error_t error = {0};
  mkv_keys_t keys = {0};
  bool removed = false;
  char *key = NULL;
  mkv_t *db = fixture->db;
  uv_loop_t *loop = &fixture->loop;

  CHECK_STATUS(expected, mkv_set(db, "k", &value, &key, &error), &error);
  check_failure(expected, &error);
  CHECK_STATUS(expected, mkv_set(db, NULL, &value, &key, &error), &error);
  check_failure(expected, &error);
  CHECK_STATUS(expected, mkv_get(db, "k", &read, &error), &error);
  check_failure(expected, &error);
  CHECK_STATUS(expected, mkv_remove(db, "k", &removed, &error), &error);
  check_failure(expected, &error);
  CHECK_STATUS(expected, mkv_all(db, &keys, &error), &error);
  check_failure(expected, &error);
  CHECK_STATUS(expected, mkv_purge(db, &error), &error);
  check_failure(expected, &error);
  CHECK_STATUS(expected, mkv_ping(db, &error), &error);
  check_failure(expected, &error);

  memset(records, 0, sizeof records);
  CHECK_OK(
      mkv_set_async(db, loop, "k", &value, test_record_result, &records[SET]),
      NULL);
  CHECK_OK(mkv_set_async(db, loop, NULL, &value, test_record_result,
                         &records[SET_AUTO]),
           NULL);
  CHECK_OK(mkv_get_async(db, loop, "k", test_record_result, &records[GET]),
           NULL);
  CHECK_OK(
      mkv_remove_async(db, loop, "k", test_record_result, &records[REMOVE]),
      NULL);
  CHECK_OK(mkv_all_async(db, loop, test_record_result, &records[ALL]), NULL);
  CHECK_OK(mkv_purge_async(db, loop, test_record_result, &records[PURGE]),
           NULL);
  CHECK_OK(mkv_ping_async(db, loop, test_record_result, &records[PING]), NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);

  for (int i = 0; i < COUNT; i++) {
    bson_error_t copy = {0};

    assert_int_equal(records[i].calls, 1);
    CHECK_STATUS(expected, records[i].status, NULL);
    bson_strncpy(copy.message, records[i].message, sizeof copy.message);
    check_failure(expected, &copy);
  }
  test_close_all(fixture);
}

/* Replaces fixture->db by a handle on `uri`, which the teardown closes. */
static void reopen_on(test_fixture_t *fixture, const char *uri) {
  mkv_options_t options = test_options(fixture);
  bson_error_t error = {0};

  CHECK_OK(mkv_close(fixture->db), NULL);
  fixture->db = NULL;
  CHECK_OK(mkv_open(&fixture->db, uri, &options, &error), &error);
  assert_log_clean();
}

/* Writes a URI for 127.0.0.1:`port` with a password and short timeouts. */
static void uri_for_port(char *uri, size_t size, const char *password,
                         int port) {
  snprintf(uri, size,
           "mongodb://mkv-user:%s@127.0.0.1:%d/"
           "?serverSelectionTimeoutMS=%d&connectTimeoutMS=%d",
           password, port, FAILING_TIMEOUT_MS, FAILING_TIMEOUT_MS);
}

/* mkv_open() rejects each URI without quoting its password. */
static void bad_uri_hidden(void **state) {
  const char *uris[] = {
      "mongodb://mkv-user:" PASSWORD "@",
      /* libmongoc quotes a password with an unescaped ":" in its message. */
      "mongodb://mkv-user:" PASSWORD ":x@127.0.0.1:1/",
      "mongodb://mkv-user:" PASSWORD "%@127.0.0.1:1/",
      "mongodb://mkv-user:" PASSWORD "@127.0.0.1:99999999/",
      "mongodb://mkv-user:" PASSWORD "@127.0.0.1:1/?authMechanism=MONGODB-X509",
      "mongodb://mkv-user:" PASSWORD "@127.0.0.1:1/?replicaSet=",
      "mongodb://mkv-user:" PASSWORD "@127.0.0.1:1/?tls=true&tlsInsecure=true"
      "&tlsAllowInvalidCertificates=true",
      "mongodb://mkv-user:" PASSWORD "@127.0.0.1:1/?w=-5",
      "mongodb://mkv-user:" ODD_PASSWORD_ENCODED "@127.0.0.1:1/a/b",
      "mongodb://mkv-user:" PASSWORD_ENCODED "@@127.0.0.1:1/",
      "mongodb://mkv-user:" PASSWORD "@127.0.0.1:1,/",
      "mongodb://:" PASSWORD "@127.0.0.1:1/",
  };

  (void)state;
  for (size_t i = 0; i < sizeof uris / sizeof uris[0]; i++) {
    mkv_t *db = NULL;
    bson_error_t error = {0};
    int status = mkv_open(&db, uris[i], NULL, &error);

    if (status != MKV_EINVAL) {
      print_error("mkv_open accepted \"%s\"\n", uris[i]);
    }
    CHECK_STATUS(MKV_EINVAL, status, &error);
    assert_null(db);
    check_failure(status, &error);
  }
}

/*
 * URIs that parse but carry options libmongoc warns about, and options and
 * names that mkv rejects, with a password in the URI.
 */
static void bad_options_hidden(void **state) {
  const char *warned[] = {
      "mongodb://mkv-user:" PASSWORD "@127.0.0.1:1/?noSuchOption=" PASSWORD,
      "mongodb://mkv-user:" PASSWORD "@127.0.0.1:1/?connectTimeoutMS=-5",
      "mongodb://mkv-user:" PASSWORD "@127.0.0.1:1/?appname=" PASSWORD,
  };
  const mkv_options_t rejected[] = {
      {.server_selection_timeout_ms = -1},
      {.socket_timeout_ms = -1},
      {.db_name = "bad.name"},
      {.collection_name = "bad$name"},
  };
  size_t logged = logged_messages();

  (void)state;
  for (size_t i = 0; i < sizeof warned / sizeof warned[0]; i++) {
    mkv_t *db = NULL;
    bson_error_t error = {0};

    CHECK_OK(mkv_open(&db, warned[i], NULL, &error), &error);
    CHECK_OK(mkv_close(db), NULL);
    assert_log_clean();
  }
  /* libmongoc warns about the unknown option. */
  assert_true(logged_messages() > logged);

  for (size_t i = 0; i < sizeof rejected / sizeof rejected[0]; i++) {
    mkv_t *db = NULL;
    bson_error_t error = {0};

    CHECK_STATUS(MKV_EINVAL,
                 mkv_open(&db, "mongodb://mkv-user:" PASSWORD "@127.0.0.1:1/",
                          &rejected[i], &error),
                 &error);
    check_failure(MKV_EINVAL, &error);
  }
}

/* Nothing listens on the port, so every operation fails to connect. */
static void closed_port_hidden(void **state) {
  test_fixture_t *fixture = *state;
  char uri[256];

  uri_for_port(uri, sizeof uri, PASSWORD, test_closed_port());
  reopen_on(fixture, uri);
  check_every_operation(fixture, MKV_ECONNECT);
}

/*
 * Returns a socket on 127.0.0.1 that listens but never accepts, so the
 * kernel completes connections to it and nothing ever replies.
 */
static int silent_listener(int *port) {
  struct sockaddr_in address = {0};
  socklen_t length = sizeof address;
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  assert_true(fd >= 0);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&address, sizeof address), 0);
  assert_int_equal(listen(fd, 64), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&address, &length), 0);
  *port = ntohs(address.sin_port);
  return fd;
}

/* The connection handshake times out on a server that never replies. */
static void silent_server_hidden(void **state) {
  test_fixture_t *fixture = *state;
  char uri[256];
  int port = 0;
  int fd = silent_listener(&port);

  uri_for_port(uri, sizeof uri, ODD_PASSWORD_ENCODED, port);
  reopen_on(fixture, uri);
  check_every_operation(fixture, MKV_ECONNECT);
  assert_int_equal(close(fd), 0);
}

/*
 * Runs every operation against the test server with the password and the
 * URI options `options`, and asserts that each fails with MKV_ESERVER.
 */
static void check_failed_auth(test_fixture_t *fixture, const char *options) {
  bson_error_t error = {0};
  mongoc_uri_t *test = mongoc_uri_new_with_error(test_uri(), &error);
  const mongoc_host_list_t *host;
  size_t logged = logged_messages();
  char uri[512];

  assert_non_null(test);
  host = mongoc_uri_get_hosts(test);
  assert_non_null(host);
  snprintf(uri, sizeof uri, "mongodb://mkv-user:%s@%s/?%s", PASSWORD,
           host->host_and_port, options);
  mongoc_uri_destroy(test);

  reopen_on(fixture, uri);
  check_every_operation(fixture, MKV_ESERVER);
  /* libmongoc logs each failed authentication. */
  assert_true(logged_messages() > logged);
}

/*
 * The test server rejects the credentials with the default mechanism:
 * MongoDB has no such user, and FerretDB 1.24 without users does not
 * support SCRAM. FerretDB accepts any credentials with PLAIN, so that
 * mechanism cannot make authentication fail there.
 */
static void failed_auth_hidden(void **state) {
  check_failed_auth(*state, "authSource=admin");
}

/* libmongoc parses any mechanism name, and fails when it authenticates. */
static void unknown_mechanism_hidden(void **state) {
  check_failed_auth(*state, "authMechanism=NO-SUCH-MECHANISM");
}

/* The status tables never contain a password, whatever the status. */
static void status_text_clean(void **state) {
  (void)state;
  for (int status = MKV_ENOMEM - 1; status <= 1; status++) {
    assert_no_secret(mkv_strerror(status));
    assert_no_secret(mkv_err_name(status));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(bad_uri_hidden),    cmocka_unit_test(bad_options_hidden),
      TEST_CASE(closed_port_hidden),       TEST_CASE(silent_server_hidden),
      TEST_CASE(failed_auth_hidden),       TEST_CASE(unknown_mechanism_hidden),
      cmocka_unit_test(status_text_clean),
  };
  int failed;

  if (test_check_environment() != 0) {
    return 1;
  }
  mongoc_log_set_handler(capture_log, NULL);
  failed = cmocka_run_group_tests_name("secrets", tests, NULL, NULL);
  mongoc_log_set_handler(NULL, NULL);
  return failed;
}
