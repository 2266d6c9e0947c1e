#include "helpers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

/* MongoDB's error code for a namespace that does not exist. */
#define NAMESPACE_NOT_FOUND 26

const char *test_uri(void) {
  const char *uri = getenv("MKV_TEST_URI");

  if (uri == NULL || uri[0] == '\0') {
    fail_msg("MKV_TEST_URI is not set");
  }
  return uri;
}

/*
 * Passes warnings and errors to libmongoc's default handler and drops the
 * rest, because an unreachable server makes its monitor log a debug line
 * every half second.
 */
static void log_warnings(mongoc_log_level_t level, const char *domain,
                         const char *message, void *data) {
  if (level <= MONGOC_LOG_LEVEL_WARNING) {
    mongoc_log_default_handler(level, domain, message, data);
  }
}

int test_check_environment(void) {
  const char *uri = getenv("MKV_TEST_URI");
  mkv_options_t options = {.db_name = TEST_DB_NAME,
                           .server_selection_timeout_ms = 5000};
  bson_error_t error = {0};
  mkv_t *db = NULL;
  int status;

  mongoc_log_set_handler(log_warnings, NULL);
  if (uri == NULL || uri[0] == '\0') {
    fprintf(stderr, "MKV_TEST_URI is not set: set it to the mongodb:// URI "
                    "of a MongoDB or FerretDB server that the tests may "
                    "write to.\n");
    return 1;
  }

  status = mkv_open(&db, uri, &options, &error);
  if (status != MKV_OK) {
    fprintf(stderr, "MKV_TEST_URI: mkv_open failed with %s: %s\n",
            mkv_err_name(status), error.message);
    return 1;
  }

  status = mkv_ping(db, &error);
  mkv_close(db);
  if (status != MKV_OK) {
    fprintf(stderr,
            "MKV_TEST_URI: the server did not reply to a ping within 5 s: "
            "%s: %s\n",
            mkv_err_name(status), error.message);
    return 1;
  }
  return 0;
}

/* Drops the fixture's collection with libmongoc, which mkv cannot do. */
static bool drop_collection(const test_fixture_t *fixture) {
  bson_error_t error = {0};
  mongoc_client_t *client;
  mongoc_collection_t *collection;
  bool dropped;

  client = mongoc_client_new(test_uri());
  if (client == NULL) {
    print_error("teardown of %s: mongoc_client_new failed\n", fixture->name);
    return false;
  }

  collection =
      mongoc_client_get_collection(client, TEST_DB_NAME, fixture->collection);
  dropped = mongoc_collection_drop_with_opts(collection, NULL, &error);
  if (!dropped && error.code == NAMESPACE_NOT_FOUND) {
    dropped = true;
  }
  if (!dropped) {
    print_error("teardown of %s: dropping collection %s failed: %s\n",
                fixture->name, fixture->collection, error.message);
  }

  mongoc_collection_destroy(collection);
  mongoc_client_destroy(client);
  return dropped;
}

mkv_options_t test_options(const test_fixture_t *fixture) {
  mkv_options_t options = {.db_name = TEST_DB_NAME,
                           .collection_name = fixture->collection};

  return options;
}

int test_setup(void **state) {
  test_fixture_t *fixture = bson_malloc0(sizeof *fixture);
  mkv_options_t options;
  bson_error_t error = {0};
  int status;

  fixture->name = *state;
  snprintf(fixture->collection, sizeof fixture->collection, "%s_%ld",
           fixture->name, (long)getpid());

  if (uv_loop_init(&fixture->loop) != 0) {
    print_error("setup of %s: uv_loop_init failed\n", fixture->name);
    bson_free(fixture);
    return -1;
  }

  options = test_options(fixture);
  status = mkv_open(&fixture->db, test_uri(), &options, &error);
  if (status != MKV_OK) {
    print_error("setup of %s: mkv_open returned %s: %s\n", fixture->name,
                mkv_err_name(status), error.message);
    uv_loop_close(&fixture->loop);
    bson_free(fixture);
    return -1;
  }

  *state = fixture;
  return 0;
}

/*
 * Closes what the test left open and drops its collection. A failed test
 * can leave operations in flight whose workers still use the loop and the
 * handle, so then the fixture is leaked rather than freed under them.
 */
int test_teardown(void **state) {
  test_fixture_t *fixture = *state;
  bool leak = false;
  int result = 0;

  if (fixture->db != NULL) {
    int status = mkv_close(fixture->db);

    if (status == MKV_OK) {
      fixture->db = NULL;
    } else {
      print_error("teardown of %s: mkv_close returned %s, so the handle is "
                  "left open\n",
                  fixture->name, mkv_err_name(status));
      leak = true;
      result = -1;
    }
  }

  if (!fixture->loop_closed && uv_loop_close(&fixture->loop) != 0) {
    print_error("teardown of %s: the loop still has handles or requests\n",
                fixture->name);
    leak = true;
    result = -1;
  }

  if (!drop_collection(fixture)) {
    result = -1;
  }

  if (!leak) {
    bson_free(fixture);
  }
  return result;
}

void test_reopen(test_fixture_t *fixture, const mkv_options_t *options) {
  mkv_options_t copy = *options;
  bson_error_t error = {0};

  if (copy.db_name == NULL) {
    copy.db_name = TEST_DB_NAME;
  }
  if (copy.collection_name == NULL) {
    copy.collection_name = fixture->collection;
  }

  CHECK_OK(mkv_close(fixture->db), NULL);
  fixture->db = NULL;
  CHECK_OK(mkv_open(&fixture->db, test_uri(), &copy, &error), &error);
}

static void on_guard_expired(uv_timer_t *timer) {
  test_fixture_t *fixture = timer->data;

  fixture->guard_fired = true;
  uv_stop(timer->loop);
}

void test_run_loop_at(test_fixture_t *fixture, uint64_t timeout_ms,
                      const char *file, int line) {
  fixture->guard_fired = false;
  fixture->guard.data = fixture;
  /*
   * The loop's cached time stops while blocking calls run between loop
   * runs, so refresh it: otherwise the guard counts from a stale time and
   * fires early.
   */
  uv_update_time(&fixture->loop);
  assert_int_equal(uv_timer_init(&fixture->loop, &fixture->guard), 0);
  assert_int_equal(
      uv_timer_start(&fixture->guard, on_guard_expired, timeout_ms, 0), 0);
  /* An unreferenced timer fires but does not keep uv_run() going. */
  uv_unref((uv_handle_t *)&fixture->guard);

  uv_run(&fixture->loop, UV_RUN_DEFAULT);

  if (fixture->guard_fired) {
    print_error("%s:%d: the loop still had work after %" PRIu64 " ms\n", file,
                line, timeout_ms);
    _fail(file, line);
  }

  uv_close((uv_handle_t *)&fixture->guard, NULL);
  uv_run(&fixture->loop, UV_RUN_DEFAULT);
}

void test_close_all(test_fixture_t *fixture) {
  if (fixture->db != NULL) {
    CHECK_OK(mkv_close(fixture->db), NULL);
    fixture->db = NULL;
  }
  assert_int_equal(uv_loop_close(&fixture->loop), 0);
  fixture->loop_closed = true;
}

void test_check_status_at(int expected, int actual, const bson_error_t *error,
                          const char *expr, const char *file, int line) {
  if (actual == expected) {
    return;
  }
  print_error("%s:%d: %s returned %s (%d), expected %s (%d); error message: "
              "\"%s\"\n",
              file, line, expr, mkv_err_name(actual), actual,
              mkv_err_name(expected), expected,
              error != NULL ? error->message : "(no bson_error_t)");
  _fail(file, line);
}

static bool bytes_equal(const char *what, const void *expected,
                        size_t expected_len, const void *actual,
                        size_t actual_len) {
  if (expected_len != actual_len) {
    print_error("%s length is %zu, expected %zu\n", what, actual_len,
                expected_len);
    return false;
  }
  if (expected_len > 0 && memcmp(expected, actual, expected_len) != 0) {
    print_error("%s bytes differ\n", what);
    return false;
  }
  return true;
}

bool test_value_equal(const bson_value_t *expected,
                      const bson_value_t *actual) {
  if (actual == NULL) {
    print_error("value is NULL\n");
    return false;
  }
  if (expected->value_type != actual->value_type) {
    print_error("value type is 0x%02x, expected 0x%02x\n",
                (unsigned)actual->value_type, (unsigned)expected->value_type);
    return false;
  }

  switch (expected->value_type) {
  case BSON_TYPE_UTF8:
    return bytes_equal("string", expected->value.v_utf8.str,
                       expected->value.v_utf8.len, actual->value.v_utf8.str,
                       actual->value.v_utf8.len);
  case BSON_TYPE_DOCUMENT:
  case BSON_TYPE_ARRAY:
    return bytes_equal("document", expected->value.v_doc.data,
                       expected->value.v_doc.data_len, actual->value.v_doc.data,
                       actual->value.v_doc.data_len);
  case BSON_TYPE_BINARY:
    if (expected->value.v_binary.subtype != actual->value.v_binary.subtype) {
      print_error("binary subtype is 0x%02x, expected 0x%02x\n",
                  (unsigned)actual->value.v_binary.subtype,
                  (unsigned)expected->value.v_binary.subtype);
      return false;
    }
    return bytes_equal("binary", expected->value.v_binary.data,
                       expected->value.v_binary.data_len,
                       actual->value.v_binary.data,
                       actual->value.v_binary.data_len);
  case BSON_TYPE_OID:
    return bytes_equal("ObjectId", &expected->value.v_oid,
                       sizeof expected->value.v_oid, &actual->value.v_oid,
                       sizeof actual->value.v_oid);
  case BSON_TYPE_INT32:
    if (expected->value.v_int32 != actual->value.v_int32) {
      print_error("int32 is %" PRId32 ", expected %" PRId32 "\n",
                  actual->value.v_int32, expected->value.v_int32);
      return false;
    }
    return true;
  case BSON_TYPE_INT64:
    if (expected->value.v_int64 != actual->value.v_int64) {
      print_error("int64 is %" PRId64 ", expected %" PRId64 "\n",
                  actual->value.v_int64, expected->value.v_int64);
      return false;
    }
    return true;
  case BSON_TYPE_DATE_TIME:
    if (expected->value.v_datetime != actual->value.v_datetime) {
      print_error("date is %" PRId64 " ms, expected %" PRId64 " ms\n",
                  actual->value.v_datetime, expected->value.v_datetime);
      return false;
    }
    return true;
  case BSON_TYPE_DOUBLE:
    /* Bits, not ==, so that -0.0 and 0.0 differ. */
    if (memcmp(&expected->value.v_double, &actual->value.v_double,
               sizeof(double)) != 0) {
      print_error("double is %.17g, expected %.17g\n", actual->value.v_double,
                  expected->value.v_double);
      return false;
    }
    return true;
  case BSON_TYPE_BOOL:
    if (expected->value.v_bool != actual->value.v_bool) {
      print_error("bool is %d, expected %d\n", (int)actual->value.v_bool,
                  (int)expected->value.v_bool);
      return false;
    }
    return true;
  case BSON_TYPE_NULL:
    return true;
  default:
    print_error("test_value_equal cannot compare type 0x%02x\n",
                (unsigned)expected->value_type);
    return false;
  }
}

static const char *const sample_names[SAMPLE_COUNT] = {
    [SAMPLE_STRING] = "string",     [SAMPLE_EMPTY_STRING] = "empty_string",
    [SAMPLE_INT32] = "int32",       [SAMPLE_INT64] = "int64",
    [SAMPLE_DOUBLE] = "double",     [SAMPLE_TRUE] = "true",
    [SAMPLE_FALSE] = "false",       [SAMPLE_NULL] = "null",
    [SAMPLE_DOCUMENT] = "document", [SAMPLE_EMPTY_DOCUMENT] = "empty_document",
    [SAMPLE_ARRAY] = "array",       [SAMPLE_BINARY] = "binary",
    [SAMPLE_OID] = "oid",           [SAMPLE_DATE] = "date",
};

const char *test_sample_name(test_sample_t sample) {
  return sample_names[sample];
}

/* {"name": "harrison", "n": 1, "big": 5, "f": 1.25, "nested": {...}} */
static void append_sample_document(bson_t *document) {
  bson_t nested;
  bson_t list;

  BSON_APPEND_UTF8(document, "name", "harrison");
  BSON_APPEND_INT32(document, "n", 1);
  BSON_APPEND_INT64(document, "big", 5);
  BSON_APPEND_DOUBLE(document, "f", 1.25);
  BSON_APPEND_DOCUMENT_BEGIN(document, "nested", &nested);
  BSON_APPEND_ARRAY_BEGIN(&nested, "list", &list);
  BSON_APPEND_INT32(&list, "0", 1);
  BSON_APPEND_UTF8(&list, "1", "two");
  BSON_APPEND_NULL(&list, "2");
  bson_append_array_end(&nested, &list);
  bson_append_document_end(document, &nested);
}

/* ["x", 2, null, {"a": true}] */
static void append_sample_array(bson_t *array) {
  bson_t item;

  BSON_APPEND_UTF8(array, "0", "x");
  BSON_APPEND_INT32(array, "1", 2);
  BSON_APPEND_NULL(array, "2");
  BSON_APPEND_DOCUMENT_BEGIN(array, "3", &item);
  BSON_APPEND_BOOL(&item, "a", true);
  bson_append_document_end(array, &item);
}

bson_value_t test_sample_value(test_sample_t sample) {
  static const uint8_t binary[] = {0x00, 0x01, 0x02, 0xff};
  bson_t bson = BSON_INITIALIZER;
  bson_value_t borrowed = {0};
  bson_value_t owned = {0};

  switch (sample) {
  case SAMPLE_STRING:
    /* Quotes, a backslash and Cyrillic letters. */
    borrowed = mkv_str("it's \"harrison\" \\ \xd0\xba\xd0\xbb\xd1\x8e\xd1\x87");
    break;
  case SAMPLE_EMPTY_STRING:
    borrowed = mkv_str("");
    break;
  case SAMPLE_INT32:
    borrowed.value_type = BSON_TYPE_INT32;
    borrowed.value.v_int32 = INT32_MIN;
    break;
  case SAMPLE_INT64:
    /* 2^53 + 1, which a double cannot hold. */
    borrowed = mkv_int64(INT64_C(9007199254740993));
    break;
  case SAMPLE_DOUBLE:
    borrowed = mkv_double(0.1);
    break;
  case SAMPLE_TRUE:
    borrowed = mkv_bool(true);
    break;
  case SAMPLE_FALSE:
    borrowed = mkv_bool(false);
    break;
  case SAMPLE_NULL:
    borrowed = mkv_null();
    break;
  case SAMPLE_DOCUMENT:
    append_sample_document(&bson);
    borrowed = test_document_value(&bson);
    break;
  case SAMPLE_EMPTY_DOCUMENT:
    borrowed = test_document_value(&bson);
    break;
  case SAMPLE_ARRAY:
    append_sample_array(&bson);
    borrowed = test_array_value(&bson);
    break;
  case SAMPLE_BINARY:
    borrowed.value_type = BSON_TYPE_BINARY;
    borrowed.value.v_binary.subtype = BSON_SUBTYPE_BINARY;
    borrowed.value.v_binary.data = (uint8_t *)binary;
    borrowed.value.v_binary.data_len = sizeof binary;
    break;
  case SAMPLE_OID:
    borrowed.value_type = BSON_TYPE_OID;
    bson_oid_init_from_string(&borrowed.value.v_oid,
                              "5f1a2b3c4d5e6f7a8b9c0d1e");
    break;
  case SAMPLE_DATE:
    borrowed.value_type = BSON_TYPE_DATE_TIME;
    borrowed.value.v_datetime = INT64_C(1700000000000);
    break;
  case SAMPLE_COUNT:
    fail_msg("SAMPLE_COUNT is not a sample");
  }

  bson_value_copy(&borrowed, &owned);
  bson_destroy(&bson);
  return owned;
}

bson_value_t test_json(const char *json) {
  bson_value_t value = {0};
  bson_error_t error = {0};
  int status = mkv_json(json, &value, &error);

  if (status != MKV_OK) {
    fail_msg("mkv_json(%s) returned %s: %s", json, mkv_err_name(status),
             error.message);
  }
  return value;
}

bson_value_t test_document_value(const bson_t *bson) {
  bson_value_t value = {0};

  value.value_type = BSON_TYPE_DOCUMENT;
  value.value.v_doc.data = (uint8_t *)bson_get_data(bson);
  value.value.v_doc.data_len = bson->len;
  return value;
}

bson_value_t test_array_value(const bson_t *bson) {
  bson_value_t value = test_document_value(bson);

  value.value_type = BSON_TYPE_ARRAY;
  return value;
}

static int compare_strings(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool test_keys_equal(const mkv_keys_t *keys, const char *const *expected,
                     size_t count) {
  const char **sorted_actual;
  const char **sorted_expected;
  bool equal = true;

  if (keys->count != count) {
    print_error("mkv_all returned %zu keys, expected %zu\n", keys->count,
                count);
    return false;
  }
  if (count == 0) {
    return true;
  }

  sorted_actual = bson_malloc(count * sizeof *sorted_actual);
  sorted_expected = bson_malloc(count * sizeof *sorted_expected);
  for (size_t i = 0; i < count; i++) {
    sorted_actual[i] = keys->keys[i];
    sorted_expected[i] = expected[i];
  }
  qsort(sorted_actual, count, sizeof *sorted_actual, compare_strings);
  qsort(sorted_expected, count, sizeof *sorted_expected, compare_strings);

  for (size_t i = 0; i < count; i++) {
    if (strcmp(sorted_actual[i], sorted_expected[i]) != 0) {
      print_error("sorted key %zu is \"%s\", expected \"%s\"\n", i,
                  sorted_actual[i], sorted_expected[i]);
      equal = false;
      break;
    }
  }

  bson_free(sorted_actual);
  bson_free(sorted_expected);
  return equal;
}

void test_assert_key_count_at(test_fixture_t *fixture, size_t count,
                              const char *file, int line) {
  mkv_keys_t keys = {0};
  bson_error_t error = {0};

  test_check_status_at(MKV_OK, mkv_all(fixture->db, &keys, &error), &error,
                       "mkv_all", file, line);
  if (keys.count != count) {
    print_error("%s:%d: mkv_all returned %zu keys, expected %zu\n", file, line,
                keys.count, count);
    mkv_keys_destroy(&keys);
    _fail(file, line);
  }
  mkv_keys_destroy(&keys);
}

bool test_is_object_id_hex(const char *key) {
  if (key == NULL || strlen(key) != 24) {
    return false;
  }
  for (size_t i = 0; i < 24; i++) {
    if (strchr("0123456789abcdef", key[i]) == NULL) {
      return false;
    }
  }
  return true;
}

void test_insert_document(const test_fixture_t *fixture,
                          const bson_t *document) {
  bson_error_t error = {0};
  mongoc_client_t *client = mongoc_client_new(test_uri());
  mongoc_collection_t *collection;
  bool inserted;

  assert_non_null(client);
  collection =
      mongoc_client_get_collection(client, TEST_DB_NAME, fixture->collection);
  inserted =
      mongoc_collection_insert_one(collection, document, NULL, NULL, &error);
  mongoc_collection_destroy(collection);
  mongoc_client_destroy(client);
  if (!inserted) {
    fail_msg("inserting a document with libmongoc failed: %s", error.message);
  }
}

int test_closed_port(void) {
  struct sockaddr_in address = {0};
  socklen_t length = sizeof address;
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  assert_true(fd >= 0);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  assert_int_equal(bind(fd, (struct sockaddr *)&address, sizeof address), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&address, &length), 0);
  assert_int_equal(close(fd), 0);
  return ntohs(address.sin_port);
}

unsigned test_default_max_in_flight(void) {
  const char *text = getenv("UV_THREADPOOL_SIZE");
  long size = text != NULL ? strtol(text, NULL, 10) : 4;

  if (size < 1) {
    size = 1;
  }
  if (size > 1024) {
    size = 1024;
  }
  return size > 1 ? (unsigned)size - 1 : 1;
}

uint64_t test_now_ms(void) { return uv_hrtime() / 1000000; }

void test_nest_documents(bson_t *out, int levels) {
  bson_t inner = BSON_INITIALIZER;

  BSON_APPEND_INT32(&inner, "leaf", levels);
  for (int i = 1; i < levels; i++) {
    bson_t outer = BSON_INITIALIZER;

    BSON_APPEND_DOCUMENT(&outer, "d", &inner);
    bson_destroy(&inner);
    bson_steal(&inner, &outer);
  }
  bson_steal(out, &inner);
}

void test_record_result(mkv_t *db, const mkv_result_t *result, void *data) {
  test_record_t *record = data;

  (void)db;
  record->calls++;
  record->status = result->status;
  if (result->error != NULL) {
    bson_strncpy(record->message, result->error->message,
                 sizeof record->message);
  }
}
