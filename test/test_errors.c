/*
 * Tests of failures: bad arguments, invalid keys and values, invalid URIs,
 * an unreachable server, closing with work pending, and a threadpool that
 * stays usable while the server does not reply.
 *
 * The unreachable server is a port on 127.0.0.1 that nothing listens on,
 * so connections are refused at once and only the server selection
 * timeout decides how long an operation waits.
 */
#include "helpers.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <mongoc/mongoc.h>

/* The maximum time that an operation may take to fail with a 500 ms timeout. */
#define UNREACHABLE_LIMIT_MS 2000

static const char *const invalid_key = "\xff\xfe";

/* A value that no failing mkv_get() call may change. */
static bson_value_t sentinel_value(void) { return mkv_int64(1234); }

/* Counts callbacks across the records of a test, to check their order. */
static int callback_sequence;

/* One callback's outcome. */
typedef struct {
  int calls;
  int status;
  int sequence;
  uint64_t time_ms;
  char message[sizeof(((bson_error_t *)0)->message)];
} record_t;

static void record_result(mkv_t *db, const mkv_result_t *result, void *data) {
  record_t *record = data;

  (void)db;
  record->calls++;
  record->status = result->status;
  record->sequence = callback_sequence++;
  record->time_ms = test_now_ms();
  if (result->error != NULL) {
    bson_strncpy(record->message, result->error->message,
                 sizeof record->message);
  }
}

/* Writes a URI for the closed port, with optional user information. */
static void unreachable_uri(char *uri, size_t size, const char *userinfo,
                            int timeout_ms) {
  int port = test_closed_port();

  if (timeout_ms > 0) {
    snprintf(uri, size, "mongodb://%s127.0.0.1:%d/?serverSelectionTimeoutMS=%d",
             userinfo, port, timeout_ms);
  } else {
    snprintf(uri, size, "mongodb://%s127.0.0.1:%d/", userinfo, port);
  }
}

/* Replaces fixture->db by a handle on `uri`, which the teardown closes. */
static void reopen_on(test_fixture_t *fixture, const char *uri,
                      const mkv_options_t *options) {
  mkv_options_t copy = test_options(fixture);
  bson_error_t error = {0};

  if (options != NULL) {
    copy.server_selection_timeout_ms = options->server_selection_timeout_ms;
    copy.socket_timeout_ms = options->socket_timeout_ms;
    copy.max_in_flight = options->max_in_flight;
  }
  CHECK_OK(mkv_close(fixture->db), NULL);
  fixture->db = NULL;
  CHECK_OK(mkv_open(&fixture->db, uri, &copy, &error), &error);
}

static void null_handle(void **state) {
  test_fixture_t *fixture = *state;
  uv_loop_t *loop = &fixture->loop;
  bson_value_t value = mkv_null();
  bson_value_t read = sentinel_value();
  bson_value_t expected = sentinel_value();
  char *garbage[] = {(char *)"not", (char *)"freed"};
  mkv_keys_t keys = {.keys = garbage, .count = 2};
  bson_error_t error = {0};
  record_t record = {0};
  char *key_out = (char *)"unchanged";
  bool removed = true;

  CHECK_STATUS(MKV_EINVAL, mkv_ping(NULL, &error), &error);
  CHECK_STATUS(MKV_EINVAL, mkv_close(NULL), NULL);
  CHECK_STATUS(MKV_EINVAL, mkv_set(NULL, "k", &value, &key_out, &error),
               &error);
  assert_null(key_out);
  CHECK_STATUS(MKV_EINVAL, mkv_get(NULL, "k", &read, &error), &error);
  assert_value_equal(&expected, &read);
  CHECK_STATUS(MKV_EINVAL, mkv_remove(NULL, "k", &removed, &error), &error);
  CHECK_STATUS(MKV_EINVAL, mkv_all(NULL, &keys, &error), &error);
  assert_null(keys.keys);
  assert_int_equal(keys.count, 0);
  CHECK_STATUS(MKV_EINVAL, mkv_purge(NULL, &error), &error);
  assert_int_equal(error.domain, MKV_ERROR_DOMAIN);
  assert_int_equal(error.code, (uint32_t)MKV_EINVAL);

  CHECK_STATUS(MKV_EINVAL,
               mkv_set_async(NULL, loop, "k", &value, record_result, &record),
               NULL);
  CHECK_STATUS(MKV_EINVAL,
               mkv_get_async(NULL, loop, "k", record_result, &record), NULL);
  CHECK_STATUS(MKV_EINVAL,
               mkv_remove_async(NULL, loop, "k", record_result, &record), NULL);
  CHECK_STATUS(MKV_EINVAL, mkv_all_async(NULL, loop, record_result, &record),
               NULL);
  CHECK_STATUS(MKV_EINVAL, mkv_purge_async(NULL, loop, record_result, &record),
               NULL);
  CHECK_STATUS(MKV_EINVAL, mkv_ping_async(NULL, loop, record_result, &record),
               NULL);
  CHECK_STATUS(MKV_EINVAL, mkv_close_async(NULL, loop, record_result, &record),
               NULL);

  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(record.calls, 0);
  test_close_all(fixture);
}

static void null_arguments(void **state) {
  test_fixture_t *fixture = *state;
  mkv_t *db = fixture->db;
  uv_loop_t *loop = &fixture->loop;
  bson_value_t value = mkv_null();
  bson_value_t read = sentinel_value();
  bson_value_t expected = sentinel_value();
  bson_error_t error = {0};
  record_t record = {0};
  char *key_out = (char *)"unchanged";
  mkv_t *opened = (mkv_t *)&record;

  CHECK_STATUS(MKV_EINVAL, mkv_set(db, "k", NULL, &key_out, &error), &error);
  assert_null(key_out);
  assert_non_null(strstr(error.message, "set"));
  CHECK_STATUS(MKV_EINVAL, mkv_get(db, NULL, &read, &error), &error);
  assert_value_equal(&expected, &read);
  assert_non_null(strstr(error.message, "get"));
  CHECK_STATUS(MKV_EINVAL, mkv_get(db, "k", NULL, &error), &error);
  CHECK_STATUS(MKV_EINVAL, mkv_remove(db, NULL, NULL, &error), &error);
  assert_non_null(strstr(error.message, "remove"));
  CHECK_STATUS(MKV_EINVAL, mkv_all(db, NULL, &error), &error);

  CHECK_STATUS(MKV_EINVAL,
               mkv_set_async(db, loop, "k", NULL, record_result, &record),
               NULL);
  CHECK_STATUS(MKV_EINVAL,
               mkv_get_async(db, loop, NULL, record_result, &record), NULL);
  CHECK_STATUS(MKV_EINVAL,
               mkv_remove_async(db, loop, NULL, record_result, &record), NULL);
  CHECK_STATUS(MKV_EINVAL,
               mkv_set_async(db, NULL, "k", &value, record_result, &record),
               NULL);
  CHECK_STATUS(MKV_EINVAL, mkv_get_async(db, loop, "k", NULL, &record), NULL);
  CHECK_STATUS(MKV_EINVAL, mkv_all_async(db, NULL, record_result, &record),
               NULL);
  CHECK_STATUS(MKV_EINVAL, mkv_purge_async(db, loop, NULL, &record), NULL);
  CHECK_STATUS(MKV_EINVAL, mkv_ping_async(db, NULL, record_result, &record),
               NULL);
  CHECK_STATUS(MKV_EINVAL, mkv_close_async(db, NULL, record_result, &record),
               NULL);
  CHECK_STATUS(MKV_EINVAL, mkv_close_async(db, loop, NULL, &record), NULL);

  CHECK_STATUS(MKV_EINVAL, mkv_open(NULL, test_uri(), NULL, &error), &error);
  CHECK_STATUS(MKV_EINVAL, mkv_open(&opened, NULL, NULL, &error), &error);
  assert_null(opened);

  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(record.calls, 0);

  /* The rejected calls left the handle open and the collection empty. */
  CHECK_OK(mkv_ping(db, &error), &error);
  assert_key_count(fixture, 0);
  test_close_all(fixture);
}

static void invalid_utf8_key(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t value = mkv_str("valid");
  bson_value_t read = sentinel_value();
  bson_value_t expected = sentinel_value();
  bson_error_t error = {0};
  char *key_out = (char *)"unchanged";
  bool removed = true;

  CHECK_STATUS(MKV_EINVAL,
               mkv_set(fixture->db, invalid_key, &value, &key_out, &error),
               &error);
  assert_null(key_out);
  assert_non_null(strstr(error.message, "set"));
  assert_int_equal(error.domain, MKV_ERROR_DOMAIN);
  assert_int_equal(error.code, (uint32_t)MKV_EINVAL);

  CHECK_STATUS(MKV_EINVAL, mkv_get(fixture->db, invalid_key, &read, &error),
               &error);
  assert_value_equal(&expected, &read);
  assert_non_null(strstr(error.message, "get"));

  CHECK_STATUS(MKV_EINVAL,
               mkv_remove(fixture->db, invalid_key, &removed, &error), &error);
  assert_non_null(strstr(error.message, "remove"));

  assert_key_count(fixture, 0);
}

static void invalid_utf8_key_async(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t value = mkv_str("valid");
  record_t record = {0};

  CHECK_STATUS(MKV_EINVAL,
               mkv_set_async(fixture->db, &fixture->loop, invalid_key, &value,
                             record_result, &record),
               NULL);
  CHECK_STATUS(MKV_EINVAL,
               mkv_get_async(fixture->db, &fixture->loop, invalid_key,
                             record_result, &record),
               NULL);
  CHECK_STATUS(MKV_EINVAL,
               mkv_remove_async(fixture->db, &fixture->loop, invalid_key,
                                record_result, &record),
               NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(record.calls, 0);
  assert_key_count(fixture, 0);
  test_close_all(fixture);
}

/*
 * Asserts that mkv_set(), with a key and with an auto key, and
 * mkv_set_async() reject `value`, and that nothing was stored.
 */
static void check_value_rejected(test_fixture_t *fixture,
                                 const bson_value_t *value) {
  bson_error_t error = {0};
  record_t record = {0};

  CHECK_STATUS(MKV_EINVAL, mkv_set(fixture->db, "k", value, NULL, &error),
               &error);
  assert_int_equal(error.domain, MKV_ERROR_DOMAIN);
  assert_int_equal(error.code, (uint32_t)MKV_EINVAL);
  CHECK_STATUS(MKV_EINVAL, mkv_set(fixture->db, NULL, value, NULL, &error),
               &error);
  CHECK_STATUS(MKV_EINVAL,
               mkv_set_async(fixture->db, &fixture->loop, "k", value,
                             record_result, &record),
               NULL);

  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(record.calls, 0);
  assert_key_count(fixture, 0);
  test_close_all(fixture);
}

/* 0x42 is no BSON type. */
static void invalid_value_type(void **state) {
  bson_value_t value = {0};

  value.value_type = (bson_type_t)0x42;
  check_value_rejected(*state, &value);
}

static void invalid_string_utf8(void **state) {
  bson_value_t value = {0};

  value.value_type = BSON_TYPE_UTF8;
  value.value.v_utf8.str = (char *)"abc\xff";
  value.value.v_utf8.len = 4;
  check_value_rejected(*state, &value);
}

static void invalid_document_utf8(void **state) {
  bson_t document = BSON_INITIALIZER;
  bson_t nested;
  bson_value_t value;

  /* bson_append_utf8() does not check UTF-8, so the bytes go in as given. */
  BSON_APPEND_DOCUMENT_BEGIN(&document, "nested", &nested);
  bson_append_utf8(&nested, "s", 1, "abc\xff", 4);
  bson_append_document_end(&document, &nested);
  value = test_document_value(&document);

  check_value_rejected(*state, &value);
  bson_destroy(&document);
}

/* A document whose length prefix claims more bytes than there are. */
static void invalid_document_bytes(void **state) {
  static const uint8_t truncated[] = {0x10, 0x00, 0x00, 0x00, 0x02, 'a'};
  bson_value_t value = {0};

  value.value_type = BSON_TYPE_DOCUMENT;
  value.value.v_doc.data = (uint8_t *)truncated;
  value.value.v_doc.data_len = sizeof truncated;
  check_value_rejected(*state, &value);
}

/*
 * Asserts that mkv_set() rejects each of `count` values with a message that
 * contains `expected` and not `unexpected` (either may be NULL), that
 * mkv_value_to_json() renders none of them, and that nothing was stored.
 */
static void check_values_rejected(test_fixture_t *fixture,
                                  const bson_value_t *values, size_t count,
                                  const char *expected,
                                  const char *unexpected) {
  for (size_t i = 0; i < count; i++) {
    bson_error_t error = {0};

    CHECK_STATUS(MKV_EINVAL,
                 mkv_set(fixture->db, "k", &values[i], NULL, &error), &error);
    if (expected != NULL)
      assert_non_null(strstr(error.message, expected));
    if (unexpected != NULL)
      assert_null(strstr(error.message, unexpected));
    assert_null(mkv_value_to_json(&values[i]));
  }
  assert_key_count(fixture, 0);
}

/* Each BSON type that carries text rejects invalid UTF-8 in it. */
static void invalid_text_types(void **state) {
  static const uint8_t scope[] = {0x0e, 0x00, 0x00, 0x00, 0x02, 's',  0x00,
                                  0x02, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00};
  bson_value_t values[5];

  memset(values, 0, sizeof values);
  values[0].value_type = BSON_TYPE_REGEX;
  values[0].value.v_regex.regex = (char *)"r\xff";
  values[0].value.v_regex.options = (char *)"i";
  values[1].value_type = BSON_TYPE_CODE;
  values[1].value.v_code.code = (char *)"x\xff";
  values[1].value.v_code.code_len = 2;
  values[2].value_type = BSON_TYPE_SYMBOL;
  values[2].value.v_symbol.symbol = (char *)"x\xff";
  values[2].value.v_symbol.len = 2;
  values[3].value_type = BSON_TYPE_DBPOINTER;
  values[3].value.v_dbpointer.collection = (char *)"c\xff";
  values[3].value.v_dbpointer.collection_len = 2;
  values[4].value_type = BSON_TYPE_CODEWSCOPE;
  values[4].value.v_codewscope.code = (char *)"f()";
  values[4].value.v_codewscope.code_len = 3;
  values[4].value.v_codewscope.scope_data = (uint8_t *)scope;
  values[4].value.v_codewscope.scope_len = sizeof scope;

  check_values_rejected(*state, values, sizeof values / sizeof values[0],
                        "UTF-8", NULL);
}

/* A value whose type needs a pointer that is NULL is rejected, not read. */
static void value_null_pointers(void **state) {
  bson_value_t values[5];

  memset(values, 0, sizeof values);
  values[0].value_type = BSON_TYPE_REGEX;
  values[0].value.v_regex.options = (char *)"";
  values[1].value_type = BSON_TYPE_CODE;
  values[1].value.v_code.code_len = 4;
  values[2].value_type = BSON_TYPE_DBPOINTER;
  values[2].value.v_dbpointer.collection_len = 4;
  values[3].value_type = BSON_TYPE_BINARY;
  values[3].value.v_binary.data_len = 5;
  values[4].value_type = BSON_TYPE_ARRAY;
  values[4].value.v_doc.data_len = 5;

  check_values_rejected(*state, values, sizeof values / sizeof values[0],
                        "NULL", "too large");
}

/*
 * MongoDB stores at most 100 levels of documents and arrays, the key's own
 * document being the first, so a value may nest 99 levels deep.
 */
static void value_nesting_limit(void **state) {
  test_fixture_t *fixture = *state;
  bson_t deepest_allowed, too_deep;
  bson_value_t allowed, rejected;
  bson_error_t error = {0};
  char *json;

  test_nest_documents(&deepest_allowed, 99);
  test_nest_documents(&too_deep, 100);
  allowed = test_document_value(&deepest_allowed);
  rejected = test_document_value(&too_deep);

  json = mkv_value_to_json(&allowed);
  assert_non_null(json);
  bson_free(json);
  assert_null(mkv_value_to_json(&rejected));

  CHECK_STATUS(MKV_EINVAL,
               mkv_set(fixture->db, "deep", &rejected, NULL, &error), &error);
  assert_non_null(strstr(error.message, "100 levels"));
  assert_key_count(fixture, 0);

  bson_destroy(&deepest_allowed);
  bson_destroy(&too_deep);
}

/*
 * Builds, as raw bytes, `levels` documents each holding the next under
 * "d", so that building it needs no recursion. Release with bson_free().
 */
static uint8_t *deep_document(int levels, uint32_t *len) {
  const uint32_t total = 5 + 8 * (uint32_t)(levels - 1);
  uint8_t *bytes = bson_malloc0(total);

  for (int i = 0; i < levels - 1; i++) {
    uint32_t doc_len = total - 8 * (uint32_t)i;
    uint8_t *header = bytes + 7 * i;

    memcpy(header, &doc_len, 4); /* BSON lengths are little-endian */
    header[4] = BSON_TYPE_DOCUMENT;
    header[5] = 'd';
    header[6] = '\0';
  }
  bytes[7 * (levels - 1)] = 5; /* the innermost {} */
  *len = total;
  return bytes;
}

/* The nesting check neither recurses nor reads past the limit. */
static void value_nesting_huge(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t value = {0};
  bson_error_t error = {0};
  record_t record = {0};
  uint32_t len = 0;
  uint8_t *bytes = deep_document(100000, &len);

  value.value_type = BSON_TYPE_DOCUMENT;
  value.value.v_doc.data = bytes;
  value.value.v_doc.data_len = len;

  CHECK_STATUS(MKV_EINVAL, mkv_set(fixture->db, "deep", &value, NULL, &error),
               &error);
  assert_non_null(strstr(error.message, "levels"));
  assert_null(mkv_value_to_json(&value));
  CHECK_STATUS(MKV_EINVAL,
               mkv_set_async(fixture->db, &fixture->loop, "deep", &value,
                             record_result, &record),
               NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(record.calls, 0);
  assert_key_count(fixture, 0);
  bson_free(bytes);
}

/*
 * libbson encodes code and DBPointer text up to its NUL, so a length field
 * that disagrees would store other text than the caller meant. It also
 * drops regex options that it does not know.
 */
static void value_text_lengths(void **state) {
  bson_value_t values[3];

  memset(values, 0, sizeof values);
  values[0].value_type = BSON_TYPE_CODE;
  values[0].value.v_code.code = (char *)"abcdef";
  values[0].value.v_code.code_len = 2;
  values[1].value_type = BSON_TYPE_DBPOINTER;
  values[1].value.v_dbpointer.collection = (char *)"coll";
  values[1].value.v_dbpointer.collection_len = 6;
  values[2].value_type = BSON_TYPE_REGEX;
  values[2].value.v_regex.regex = (char *)"^a";
  values[2].value.v_regex.options = (char *)"iz";

  check_values_rejected(*state, values, sizeof values / sizeof values[0], NULL,
                        NULL);
}

/* A message that names a key which is not UTF-8 is still UTF-8 itself. */
static void message_stays_utf8(void **state) {
  test_fixture_t *fixture = *state;
  bson_error_t error = {0};
  bool removed = true;

  CHECK_STATUS(MKV_EINVAL, mkv_get(fixture->db, "bad\xff\xfekey", NULL, &error),
               &error);
  assert_true(bson_utf8_validate(error.message, strlen(error.message), false));
  CHECK_STATUS(MKV_EINVAL,
               mkv_remove(fixture->db, "bad\xffkey", &removed, &error), &error);
  assert_true(bson_utf8_validate(error.message, strlen(error.message), false));
  assert_false(removed);
}

/* libmongoc rejects an empty field name, so mkv does before queuing. */
static void value_empty_field_name(void **state) {
  bson_t document = BSON_INITIALIZER;
  bson_value_t value;

  BSON_APPEND_INT32(&document, "", 1);
  value = test_document_value(&document);
  check_value_rejected(*state, &value);
  bson_destroy(&document);
}

/* Negative timeouts in the options are rejected rather than ignored. */
static void open_negative_timeout(void **state) {
  mkv_options_t options[2] = {{.server_selection_timeout_ms = -1},
                              {.socket_timeout_ms = -5}};

  (void)state;
  for (size_t i = 0; i < 2; i++) {
    mkv_t *db = NULL;
    bson_error_t error = {0};

    CHECK_STATUS(MKV_EINVAL, mkv_open(&db, test_uri(), &options[i], &error),
                 &error);
    assert_null(db);
    assert_non_null(strstr(error.message, "negative"));
  }
}

/* A 17 MiB string cannot fit in a 16 MiB document. */
static void value_too_large(void **state) {
  test_fixture_t *fixture = *state;
  size_t length = 17 * 1024 * 1024;
  char *text = bson_malloc(length + 1);
  bson_value_t value;
  bson_value_t read = sentinel_value();
  bson_error_t error = {0};
  record_t record = {0};

  memset(text, 'x', length);
  text[length] = '\0';
  value = mkv_str(text);

  CHECK_STATUS(MKV_EINVAL, mkv_set(fixture->db, "big", &value, NULL, &error),
               &error);
  assert_non_null(strstr(error.message, "big"));
  CHECK_STATUS(MKV_EINVAL,
               mkv_set_async(fixture->db, &fixture->loop, "big", &value,
                             record_result, &record),
               NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(record.calls, 0);

  CHECK_STATUS(MKV_ENOTFOUND, mkv_get(fixture->db, "big", &read, &error),
               &error);
  assert_key_count(fixture, 0);

  bson_free(text);
  test_close_all(fixture);
}

static void open_invalid_uri(void **state) {
  const char *uris[] = {
      "not a uri",
      "mongodb://",
      "mongodb://127.0.0.1:99999999/",
      "",
      "http://127.0.0.1:27017/",
  };
  int sentinel = 0;

  (void)state;
  for (size_t i = 0; i < sizeof uris / sizeof uris[0]; i++) {
    mkv_t *db = (mkv_t *)&sentinel;
    bson_error_t error = {0};

    int status = mkv_open(&db, uris[i], NULL, &error);

    if (status != MKV_EINVAL) {
      print_error("mkv_open accepted \"%s\"\n", uris[i]);
    }
    CHECK_STATUS(MKV_EINVAL, status, &error);
    assert_null(db);
    assert_true(strlen(error.message) > 0);
  }
}

/*
 * A TLS file in the URI that does not exist is rejected at open, with a
 * message that names the option and the path.
 */
static void open_missing_tls_file(void **state) {
  const char *options[] = {"tlsCAFile", "tlsCertificateKeyFile"};
  const char *path = "/nonexistent-mkv-test/ca.pem";

  (void)state;
  for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
    char uri[256];
    mkv_t *db = NULL;
    bson_error_t error = {0};

    bson_snprintf(uri, sizeof uri, "mongodb://127.0.0.1:%d/?tls=true&%s=%s",
                  test_closed_port(), options[i], path);
    CHECK_STATUS(MKV_EINVAL, mkv_open(&db, uri, NULL, &error), &error);
    assert_null(db);
    assert_non_null(strstr(error.message, options[i]));
    assert_non_null(strstr(error.message, path));
    assert_non_null(strstr(error.message, "does not exist"));
  }
}

static void open_invalid_names(void **state) {
  /* 64 bytes, one more than MongoDB allows in a database name. */
  static const char long_db_name[] =
      "a234567890123456789012345678901234567890123456789012345678901234";
  /* With the default database "mkv" the namespace is 259 bytes, over 255. */
  char long_collection_name[256];
  memset(long_collection_name, 'c', sizeof long_collection_name - 1);
  long_collection_name[sizeof long_collection_name - 1] = '\0';

  const mkv_options_t options[] = {
      {.db_name = ""},
      {.collection_name = ""},
      {.db_name = "bad.name"},
      {.db_name = "bad/name"},
      {.db_name = "bad\xff"},
      {.collection_name = "bad$name"},
      {.collection_name = "system.users"},
      {.collection_name = ".hidden"},
      {.db_name = long_db_name},
      {.collection_name = long_collection_name},
  };
  int sentinel = 0;

  (void)state;
  for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
    mkv_t *db = (mkv_t *)&sentinel;
    bson_error_t error = {0};

    int status = mkv_open(&db, test_uri(), &options[i], &error);

    if (status != MKV_EINVAL) {
      print_error("mkv_open accepted options row %zu\n", i);
    }
    CHECK_STATUS(MKV_EINVAL, status, &error);
    assert_null(db);
  }
}

/*
 * URIs that do not parse, with passwords that libmongoc quotes in its
 * message: an "@" or "?" inside the password, and one longer than a
 * bson_error_t message.
 */
static void password_hidden_bad_uri(void **state) {
  char long_uri[1024];
  char long_password[601];
  const char *uris[] = {
      "mongodb://user:secret:pw@x@127.0.0.1:1/",
      "mongodb://user:secret?pw:x@127.0.0.1:1/",
      long_uri,
  };
  const char *passwords[] = {"secret", "secret", long_password + 301};

  (void)state;
  /* The ":" makes libmongoc reject the password and quote it. */
  memset(long_password, 'q', sizeof long_password - 1);
  long_password[sizeof long_password - 1] = '\0';
  long_password[300] = ':';
  snprintf(long_uri, sizeof long_uri, "mongodb://user:%s@127.0.0.1:1/",
           long_password);

  for (size_t i = 0; i < sizeof uris / sizeof uris[0]; i++) {
    mkv_t *db = NULL;
    bson_error_t error = {0};

    CHECK_STATUS(MKV_EINVAL, mkv_open(&db, uris[i], NULL, &error), &error);
    assert_null(db);
    assert_null(strstr(error.message, passwords[i]));
    assert_null(strstr(error.message, "qqqqq"));
  }
}

/* Neither a URI that does not parse nor a failed operation shows the password.
 */
static void password_hidden(void **state) {
  test_fixture_t *fixture = *state;
  char uri[128];
  mkv_t *db = NULL;
  bson_value_t read = {0};
  bson_error_t error = {0};
  record_t record = {0};

  CHECK_STATUS(MKV_EINVAL,
               mkv_open(&db, "mongodb://user:secretpw@127.0.0.1:99999999/",
                        NULL, &error),
               &error);
  assert_null(strstr(error.message, "secretpw"));

  unreachable_uri(uri, sizeof uri, "user:secretpw@", 500);
  reopen_on(fixture, uri, NULL);

  CHECK_STATUS(MKV_ECONNECT, mkv_get(fixture->db, "k", &read, &error), &error);
  assert_null(strstr(error.message, "secretpw"));
  CHECK_STATUS(MKV_ECONNECT, mkv_ping(fixture->db, &error), &error);
  assert_null(strstr(error.message, "secretpw"));

  CHECK_OK(
      mkv_get_async(fixture->db, &fixture->loop, "k", record_result, &record),
      NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(record.calls, 1);
  CHECK_STATUS(MKV_ECONNECT, record.status, NULL);
  assert_null(strstr(record.message, "secretpw"));
  test_close_all(fixture);
}

static void unreachable_sync(void **state) {
  test_fixture_t *fixture = *state;
  char uri[128];
  bson_value_t read = sentinel_value();
  bson_value_t expected = sentinel_value();
  bson_value_t value = mkv_null();
  char *garbage[] = {(char *)"not", (char *)"freed"};
  mkv_keys_t keys = {.keys = garbage, .count = 2};
  char *key_out = (char *)"unchanged";
  bson_error_t error = {0};
  uint64_t start;

  unreachable_uri(uri, sizeof uri, "", 500);
  reopen_on(fixture, uri, NULL);

  start = test_now_ms();
  CHECK_STATUS(MKV_ECONNECT, mkv_get(fixture->db, "k1", &read, &error), &error);
  assert_in_range(test_now_ms() - start, 0, UNREACHABLE_LIMIT_MS);
  assert_value_equal(&expected, &read);
  assert_int_equal(error.domain, MONGOC_ERROR_SERVER_SELECTION);
  assert_non_null(strstr(error.message, "get"));
  assert_non_null(strstr(error.message, "k1"));

  start = test_now_ms();
  CHECK_STATUS(MKV_ECONNECT,
               mkv_set(fixture->db, "k2", &value, &key_out, &error), &error);
  assert_in_range(test_now_ms() - start, 0, UNREACHABLE_LIMIT_MS);
  assert_null(key_out);

  CHECK_STATUS(MKV_ECONNECT, mkv_all(fixture->db, &keys, &error), &error);
  assert_null(keys.keys);
  assert_int_equal(keys.count, 0);

  start = test_now_ms();
  CHECK_STATUS(MKV_ECONNECT, mkv_ping(fixture->db, &error), &error);
  assert_in_range(test_now_ms() - start, 0, UNREACHABLE_LIMIT_MS);
}

static void unreachable_async(void **state) {
  test_fixture_t *fixture = *state;
  char uri[128];
  record_t record = {0};
  uint64_t start;

  unreachable_uri(uri, sizeof uri, "", 500);
  reopen_on(fixture, uri, NULL);

  start = test_now_ms();
  CHECK_OK(
      mkv_get_async(fixture->db, &fixture->loop, "k1", record_result, &record),
      NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(record.calls, 1);
  CHECK_STATUS(MKV_ECONNECT, record.status, NULL);
  assert_in_range(record.time_ms - start, 0, UNREACHABLE_LIMIT_MS);
  assert_non_null(strstr(record.message, "k1"));
  test_close_all(fixture);
}

/* server_selection_timeout_ms applies when the URI sets no timeout. */
static void unreachable_option(void **state) {
  test_fixture_t *fixture = *state;
  mkv_options_t options = {.server_selection_timeout_ms = 500};
  char uri[128];
  bson_error_t error = {0};
  uint64_t start;

  unreachable_uri(uri, sizeof uri, "", 0);
  reopen_on(fixture, uri, &options);

  start = test_now_ms();
  CHECK_STATUS(MKV_ECONNECT, mkv_ping(fixture->db, &error), &error);
  assert_in_range(test_now_ms() - start, 0, UNREACHABLE_LIMIT_MS);
}

/* mkv_close() refuses while callbacks are due and keeps the handle. */
static void close_busy_async(void **state) {
  test_fixture_t *fixture = *state;
  record_t records[3] = {{0}};
  bson_error_t error = {0};

  for (size_t i = 0; i < 3; i++) {
    CHECK_OK(
        mkv_ping_async(fixture->db, &fixture->loop, record_result, &records[i]),
        NULL);
  }
  CHECK_STATUS(MKV_EBUSY, mkv_close(fixture->db), NULL);
  CHECK_OK(mkv_ping(fixture->db, &error), &error);

  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(records[i].calls, 1);
    CHECK_STATUS(MKV_OK, records[i].status, NULL);
  }
  test_close_all(fixture);
}

/* A blocking call on another thread, on a server that never replies. */
typedef struct {
  mkv_t *db;
  atomic_bool started;
  uint64_t start_ms;
  int status;
} blocking_call_t;

static void *run_blocking_get(void *data) {
  blocking_call_t *call = data;
  bson_value_t read = {0};

  call->start_ms = test_now_ms();
  atomic_store(&call->started, true);
  call->status = mkv_get(call->db, "k", &read, NULL);
  return NULL;
}

/* Starts run_blocking_get() and returns once it is inside mkv_get(). */
static void start_blocking_get(pthread_t *thread, blocking_call_t *call) {
  assert_int_equal(pthread_create(thread, NULL, run_blocking_get, call), 0);
  for (int i = 0; i < 1000 && !atomic_load(&call->started); i++) {
    uv_sleep(1);
  }
  assert_true(atomic_load(&call->started));
  /* The call blocks for 2 s, so 200 ms later it is still running. */
  uv_sleep(200);
}

static void close_busy_blocking(void **state) {
  test_fixture_t *fixture = *state;
  blocking_call_t call = {0};
  pthread_t thread;
  char uri[128];

  unreachable_uri(uri, sizeof uri, "", 2000);
  reopen_on(fixture, uri, NULL);
  call.db = fixture->db;

  start_blocking_get(&thread, &call);
  CHECK_STATUS(MKV_EBUSY, mkv_close(fixture->db), NULL);

  assert_int_equal(pthread_join(thread, NULL), 0);
  CHECK_STATUS(MKV_ECONNECT, call.status, NULL);
  test_close_all(fixture);
}

/* The outcome of mkv_close_async(), as its callback saw it. */
typedef struct {
  int calls;
  int status;
  int sequence;
  uint64_t time_ms;
  mkv_t *db;
} close_record_t;

static void on_closed(mkv_t *db, const mkv_result_t *result, void *data) {
  close_record_t *record = data;

  record->calls++;
  record->status = result->status;
  record->sequence = callback_sequence++;
  record->time_ms = test_now_ms();
  record->db = db;
}

enum { CLOSE_OP_COUNT = 500 };

static void close_async_pending(void **state) {
  test_fixture_t *fixture = *state;
  mkv_t *db = fixture->db;
  record_t *records = bson_malloc0(CLOSE_OP_COUNT * sizeof *records);
  record_t late = {0};
  close_record_t closed = {0};
  close_record_t late_close = {0};
  bson_value_t value = mkv_int64(1);
  bson_value_t read = {0};
  bson_error_t error = {0};
  int ok_count = 0;
  int canceled_count = 0;
  int last_sequence = -1;
  char key[32];

  for (int i = 0; i < CLOSE_OP_COUNT; i++) {
    snprintf(key, sizeof key, "k%d", i);
    CHECK_OK(mkv_set_async(db, &fixture->loop, key, &value, record_result,
                           &records[i]),
             NULL);
  }
  CHECK_OK(mkv_close_async(db, &fixture->loop, on_closed, &closed), NULL);
  fixture->db = NULL;

  /* From here on every call fails at once and calls nothing back. */
  CHECK_STATUS(MKV_ECLOSED,
               mkv_get_async(db, &fixture->loop, "k0", record_result, &late),
               NULL);
  CHECK_STATUS(
      MKV_ECLOSED,
      mkv_set_async(db, &fixture->loop, "k0", &value, record_result, &late),
      NULL);
  CHECK_STATUS(MKV_ECLOSED, mkv_get(db, "k0", &read, &error), &error);
  CHECK_STATUS(MKV_ECLOSED, mkv_ping(db, &error), &error);
  CHECK_STATUS(MKV_ECLOSED, mkv_close(db), NULL);
  CHECK_STATUS(MKV_ECLOSED,
               mkv_close_async(db, &fixture->loop, on_closed, &late_close),
               NULL);

  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);

  for (int i = 0; i < CLOSE_OP_COUNT; i++) {
    assert_int_equal(records[i].calls, 1);
    ok_count += records[i].status == MKV_OK;
    canceled_count += records[i].status == MKV_ECANCELED;
    if (records[i].sequence > last_sequence) {
      last_sequence = records[i].sequence;
    }
  }
  print_message("%d completed and %d canceled\n", ok_count, canceled_count);
  assert_int_equal(ok_count + canceled_count, CLOSE_OP_COUNT);
  /* Only operations already on the threadpool may complete. */
  assert_in_range(ok_count, 0, test_default_max_in_flight());
  assert_int_equal(late.calls, 0);
  assert_int_equal(late_close.calls, 0);

  assert_int_equal(closed.calls, 1);
  CHECK_STATUS(MKV_OK, closed.status, NULL);
  assert_ptr_equal(closed.db, db);
  assert_true(closed.sequence > last_sequence);

  bson_free(records);
  test_close_all(fixture);
}

static void close_async_idle(void **state) {
  test_fixture_t *fixture = *state;
  close_record_t closed = {0};

  CHECK_OK(mkv_close_async(fixture->db, &fixture->loop, on_closed, &closed),
           NULL);
  fixture->db = NULL;
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(closed.calls, 1);
  CHECK_STATUS(MKV_OK, closed.status, NULL);
  test_close_all(fixture);
}

/* A callback that closes the handle it was called for. */
typedef struct {
  test_fixture_t *fixture;
  int calls;
  int status;
  int close_status;
  close_record_t closed;
} closing_callback_t;

static void on_set_then_close(mkv_t *db, const mkv_result_t *result,
                              void *data) {
  closing_callback_t *closing = data;

  closing->calls++;
  closing->status = result->status;
  closing->close_status =
      mkv_close_async(db, &closing->fixture->loop, on_closed, &closing->closed);
}

static void close_async_in_callback(void **state) {
  test_fixture_t *fixture = *state;
  closing_callback_t closing = {.fixture = fixture};
  record_t second = {0};
  bson_value_t value = mkv_str("last");

  closing.close_status = MKV_ENOMEM;
  CHECK_OK(mkv_set_async(fixture->db, &fixture->loop, "k", &value,
                         on_set_then_close, &closing),
           NULL);
  CHECK_OK(mkv_ping_async(fixture->db, &fixture->loop, record_result, &second),
           NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);

  assert_int_equal(closing.calls, 1);
  CHECK_STATUS(MKV_OK, closing.status, NULL);
  CHECK_STATUS(MKV_OK, closing.close_status, NULL);
  fixture->db = NULL;

  /* The ping was queued before the close, so it completes or is canceled. */
  assert_int_equal(second.calls, 1);
  assert_true(second.status == MKV_OK || second.status == MKV_ECANCELED);
  assert_int_equal(closing.closed.calls, 1);
  CHECK_STATUS(MKV_OK, closing.closed.status, NULL);
  assert_true(closing.closed.sequence > second.sequence);
  test_close_all(fixture);
}

/* Running blocking calls finish before the close callback runs. */
static void close_async_waits_blocking(void **state) {
  test_fixture_t *fixture = *state;
  blocking_call_t call = {0};
  close_record_t closed = {0};
  bson_error_t error = {0};
  pthread_t thread;
  char uri[128];
  mkv_t *db;

  unreachable_uri(uri, sizeof uri, "", 2000);
  reopen_on(fixture, uri, NULL);
  db = fixture->db;
  call.db = db;

  start_blocking_get(&thread, &call);
  CHECK_OK(mkv_close_async(db, &fixture->loop, on_closed, &closed), NULL);
  fixture->db = NULL;
  CHECK_STATUS(MKV_ECLOSED, mkv_ping(db, &error), &error);

  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(pthread_join(thread, NULL), 0);

  CHECK_STATUS(MKV_ECONNECT, call.status, NULL);
  assert_int_equal(closed.calls, 1);
  CHECK_STATUS(MKV_OK, closed.status, NULL);
  /* The blocking call waits 2000 ms for a server, and the close waited too. */
  assert_true(closed.time_ms - call.start_ms >= 1500);
  test_close_all(fixture);
}

/*
 * While every mkv operation waits for a server that never replies, the
 * threadpool keeps a thread for other work, so uv_fs_stat() completes at once.
 */
enum { STARVING_OP_COUNT = 1000 };

typedef struct {
  test_fixture_t *fixture;
  uint64_t start_ns;
  uint64_t elapsed_ns;
  int calls;
  int stat_result;
  int close_status;
  close_record_t closed;
} stat_probe_t;

static void on_stat(uv_fs_t *request) {
  stat_probe_t *probe = request->data;

  probe->elapsed_ns = uv_hrtime() - probe->start_ns;
  probe->calls++;
  probe->stat_result = (int)request->result;
  uv_fs_req_cleanup(request);
  probe->close_status = mkv_close_async(
      probe->fixture->db, &probe->fixture->loop, on_closed, &probe->closed);
}

static void threadpool_not_starved(void **state) {
  test_fixture_t *fixture = *state;
  record_t *records = bson_malloc0(STARVING_OP_COUNT * sizeof *records);
  stat_probe_t probe = {.fixture = fixture};
  uv_fs_t request;
  int connect_count = 0;
  int canceled_count = 0;
  uint64_t start;
  char uri[128];

  unreachable_uri(uri, sizeof uri, "", 3000);
  reopen_on(fixture, uri, NULL);

  start = test_now_ms();
  for (int i = 0; i < STARVING_OP_COUNT; i++) {
    CHECK_OK(mkv_get_async(fixture->db, &fixture->loop, "k", record_result,
                           &records[i]),
             NULL);
  }

  probe.close_status = MKV_ENOMEM;
  request.data = &probe;
  probe.start_ns = uv_hrtime();
  assert_int_equal(uv_fs_stat(&fixture->loop, &request, "/", on_stat), 0);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);

  assert_int_equal(probe.calls, 1);
  assert_int_equal(probe.stat_result, 0);
  print_message("uv_fs_stat called back after %" PRIu64 " us\n",
                probe.elapsed_ns / 1000);
  assert_in_range(probe.elapsed_ns / 1000000, 0, 100);
  CHECK_STATUS(MKV_OK, probe.close_status, NULL);
  fixture->db = NULL;

  for (int i = 0; i < STARVING_OP_COUNT; i++) {
    assert_int_equal(records[i].calls, 1);
    connect_count += records[i].status == MKV_ECONNECT;
    canceled_count += records[i].status == MKV_ECANCELED;
  }
  print_message("%d failed to connect and %d were canceled\n", connect_count,
                canceled_count);
  assert_int_equal(connect_count + canceled_count, STARVING_OP_COUNT);
  assert_in_range(connect_count, 0, test_default_max_in_flight());
  assert_int_equal(probe.closed.calls, 1);
  CHECK_STATUS(MKV_OK, probe.closed.status, NULL);
  /* Operations already running wait out their 3 s, and no longer. */
  assert_in_range(test_now_ms() - start, 0, 10000);

  bson_free(records);
  test_close_all(fixture);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST_CASE(null_handle),
      TEST_CASE(null_arguments),
      TEST_CASE(invalid_utf8_key),
      TEST_CASE(invalid_utf8_key_async),
      TEST_CASE(invalid_value_type),
      TEST_CASE(invalid_string_utf8),
      TEST_CASE(invalid_document_utf8),
      TEST_CASE(invalid_document_bytes),
      TEST_CASE(invalid_text_types),
      TEST_CASE(value_null_pointers),
      TEST_CASE(value_nesting_limit),
      TEST_CASE(value_nesting_huge),
      TEST_CASE(value_empty_field_name),
      TEST_CASE(open_negative_timeout),
      TEST_CASE(value_text_lengths),
      TEST_CASE(message_stays_utf8),
      TEST_CASE(value_too_large),
      TEST_CASE(open_invalid_uri),
      cmocka_unit_test(open_missing_tls_file),
      TEST_CASE(open_invalid_names),
      TEST_CASE(password_hidden),
      TEST_CASE(password_hidden_bad_uri),
      TEST_CASE(unreachable_sync),
      TEST_CASE(unreachable_async),
      TEST_CASE(unreachable_option),
      TEST_CASE(close_busy_async),
      TEST_CASE(close_busy_blocking),
      TEST_CASE(close_async_pending),
      TEST_CASE(close_async_idle),
      TEST_CASE(close_async_in_callback),
      TEST_CASE(close_async_waits_blocking),
      TEST_CASE(threadpool_not_starved),
  };

  if (test_check_environment() != 0) {
    return 1;
  }
  return cmocka_run_group_tests_name("errors", tests, NULL, NULL);
}
