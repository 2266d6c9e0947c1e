/*
 * Tests of TLS connections: a round trip through a TLS listener whose
 * certificate the given CA signed, a CA that did not sign it, and a port
 * that speaks the other protocol.
 *
 * MKV_TEST_TLS_URI names the TLS listener, with tls=true and tlsCAFile, and
 * MKV_TEST_TLS_WRONG_CA a CA file that did not sign the listener's
 * certificate. scripts/dev test sets both for the server it starts.
 */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

/* The server selection timeout of the connections that must fail. */
#define FAILING_SELECTION_TIMEOUT_MS 1000

/*
 * The maximum time that an operation may take to fail with that timeout.
 * The margin allows for a loaded machine, and is still far below
 * libmongoc's default timeout of 30 s that the failure would take if the
 * URI's timeout were ignored.
 */
#define FAILING_LIMIT_MS 6000

static const char *tls_uri(void) { return getenv("MKV_TEST_TLS_URI"); }

static const char *wrong_ca(void) { return getenv("MKV_TEST_TLS_WRONG_CA"); }

/*
 * Returns "mongodb://HOST:PORT/" of the first host of `uri_string` with
 * short timeouts, tls=true when `ca_file` is not NULL, and tlsCAFile. The
 * caller releases it with bson_free(). The URI is written out because
 * mongoc_uri_get_string() returns the text as parsed, without options set
 * on the mongoc_uri_t since.
 */
static char *make_uri(const char *uri_string, const char *ca_file) {
  bson_error_t error = {0};
  mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_string, &error);
  const mongoc_host_list_t *host;
  char *result;

  if (uri == NULL) {
    fail_msg("cannot parse \"%s\": %s", uri_string, error.message);
  }
  host = mongoc_uri_get_hosts(uri);
  assert_non_null(host);
  result = bson_strdup_printf(
      "mongodb://%s/?serverSelectionTimeoutMS=%d&connectTimeoutMS=%d%s%s",
      host->host_and_port, FAILING_SELECTION_TIMEOUT_MS,
      FAILING_SELECTION_TIMEOUT_MS,
      ca_file != NULL ? "&tls=true&tlsCAFile=" : "",
      ca_file != NULL ? ca_file : "");
  mongoc_uri_destroy(uri);
  return result;
}

/*
 * Opens a handle on `uri` with the fixture's names, and asserts that a ping
 * fails with MKV_ECONNECT within FAILING_LIMIT_MS. Copies the error into
 * `error`.
 */
static void check_connect_fails(const test_fixture_t *fixture, const char *uri,
                                bson_error_t *error) {
  mkv_options_t options = test_options(fixture);
  mkv_t *db = NULL;
  uint64_t start;

  CHECK_OK(mkv_open(&db, uri, &options, error), error);
  start = test_now_ms();
  CHECK_STATUS(MKV_ECONNECT, mkv_ping(db, error), error);
  assert_in_range(test_now_ms() - start, 0, FAILING_LIMIT_MS);
  CHECK_OK(mkv_close(db), NULL);
}

/* A key set through the TLS listener reads back, and then is gone. */
static void tls_round_trip(void **state) {
  test_fixture_t *fixture = *state;
  mkv_options_t options = test_options(fixture);
  bson_value_t value = mkv_str("over TLS");
  bson_value_t read = {0};
  bson_error_t error = {0};
  mkv_keys_t keys = {0};
  bool removed = false;
  mkv_t *db = NULL;

  CHECK_OK(mkv_open(&db, tls_uri(), &options, &error), &error);
  CHECK_OK(mkv_ping(db, &error), &error);
  CHECK_OK(mkv_set(db, "tls", &value, NULL, &error), &error);
  CHECK_OK(mkv_get(db, "tls", &read, &error), &error);
  assert_value_equal(&value, &read);
  bson_value_destroy(&read);

  CHECK_OK(mkv_all(db, &keys, &error), &error);
  assert_int_equal(keys.count, 1);
  assert_string_equal(keys.keys[0], "tls");
  mkv_keys_destroy(&keys);

  CHECK_OK(mkv_remove(db, "tls", &removed, &error), &error);
  assert_true(removed);
  CHECK_OK(mkv_close(db), NULL);
}

/* The outcome of one async get. */
typedef struct {
  int calls;
  int status;
  int64_t value;
} get_record_t;

static void on_get(mkv_t *db, const mkv_result_t *result, void *data) {
  get_record_t *record = data;

  (void)db;
  record->calls++;
  record->status = result->status;
  if (result->value != NULL && result->value->value_type == BSON_TYPE_INT64) {
    record->value = result->value->value.v_int64;
  }
}

/* The async path goes through the same pool, so it gets TLS too. */

static void tls_round_trip_async(void **state) {
  test_fixture_t *fixture = *state;
  mkv_options_t options = test_options(fixture);
  bson_value_t value = mkv_int64(443);
  bson_error_t error = {0};
  get_record_t record = {0};
  mkv_t *db = NULL;

  CHECK_OK(mkv_open(&db, tls_uri(), &options, &error), &error);
  CHECK_OK(mkv_set(db, "tls", &value, NULL, &error), &error);
  CHECK_OK(mkv_get_async(db, &fixture->loop, "tls", on_get, &record), NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(record.calls, 1);
  CHECK_OK(record.status, NULL);
  assert_int_equal(record.value, 443);
  CHECK_OK(mkv_purge(db, &error), &error);
  CHECK_OK(mkv_close(db), NULL);
  test_close_all(fixture);
}

/* A CA that did not sign the server's certificate fails verification. */
static void tls_wrong_ca(void **state) {
  char *uri = make_uri(tls_uri(), wrong_ca());
  bson_error_t error = {0};

  check_connect_fails(*state, uri, &error);
  assert_int_equal(error.domain, MONGOC_ERROR_SERVER_SELECTION);
  assert_non_null(strstr(error.message, "TLS verification"));
  assert_non_null(strstr(error.message, "failed"));
  assert_non_null(strstr(error.message, "tlsCAFile"));
  bson_free(uri);
}

/* A plain connection to the TLS port gets no reply it can read. */
static void plain_to_tls_port(void **state) {
  char *uri = make_uri(tls_uri(), NULL);
  bson_error_t error = {0};

  check_connect_fails(*state, uri, &error);
  assert_null(strstr(error.message, "TLS verification"));
  bson_free(uri);
}

/* A TLS connection to the plain port never completes its handshake. */
static void tls_to_plain_port(void **state) {
  bson_error_t error = {0};
  mongoc_uri_t *tls = mongoc_uri_new_with_error(tls_uri(), &error);
  const char *ca_file;
  char *uri;

  assert_non_null(tls);
  ca_file = mongoc_uri_get_option_as_utf8(tls, MONGOC_URI_TLSCAFILE, NULL);
  assert_non_null(ca_file);
  uri = make_uri(test_uri(), ca_file);

  check_connect_fails(*state, uri, &error);
  assert_null(strstr(error.message, "TLS verification"));

  bson_free(uri);
  mongoc_uri_destroy(tls);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST_CASE(tls_round_trip),    TEST_CASE(tls_round_trip_async),
      TEST_CASE(tls_wrong_ca),      TEST_CASE(plain_to_tls_port),
      TEST_CASE(tls_to_plain_port),
  };

  if (test_check_environment() != 0) {
    return 1;
  }
  if (tls_uri() == NULL || tls_uri()[0] == '\0' || wrong_ca() == NULL ||
      wrong_ca()[0] == '\0') {
    fprintf(stderr,
            "MKV_TEST_TLS_URI and MKV_TEST_TLS_WRONG_CA must be set: the "
            "mongodb:// URI, with tls=true and tlsCAFile, of a server's TLS "
            "listener, and a CA file that did not sign its certificate. "
            "scripts/dev test sets both for the server it starts.\n");
    return 1;
  }
  return cmocka_run_group_tests_name("tls", tests, NULL, NULL);
}
