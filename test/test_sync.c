/* Tests of the blocking operations against the server in MKV_TEST_URI. */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

/*
 * Stores a sample under its name, reads it back and checks the type and
 * content, and that key_out returns the key given.
 */
static void check_round_trip(test_fixture_t *fixture, test_sample_t sample) {
  const char *key = test_sample_name(sample);
  bson_value_t stored = test_sample_value(sample);
  bson_value_t read = {0};
  bson_error_t error = {0};
  char *key_out = NULL;

  CHECK_OK(mkv_set(fixture->db, key, &stored, &key_out, &error), &error);
  assert_non_null(key_out);
  assert_string_equal(key_out, key);
  CHECK_OK(mkv_get(fixture->db, key, &read, &error), &error);
  assert_value_equal(&stored, &read);

  bson_free(key_out);
  bson_value_destroy(&stored);
  bson_value_destroy(&read);
}

static void set_get_string(void **state) {
  check_round_trip(*state, SAMPLE_STRING);
}

static void set_get_empty_string(void **state) {
  check_round_trip(*state, SAMPLE_EMPTY_STRING);
}

static void set_get_int32(void **state) {
  check_round_trip(*state, SAMPLE_INT32);
}

static void set_get_int64(void **state) {
  check_round_trip(*state, SAMPLE_INT64);
}

static void set_get_double(void **state) {
  check_round_trip(*state, SAMPLE_DOUBLE);
}

static void set_get_bool(void **state) {
  check_round_trip(*state, SAMPLE_TRUE);
  check_round_trip(*state, SAMPLE_FALSE);
}

static void set_get_null(void **state) {
  check_round_trip(*state, SAMPLE_NULL);
}

static void set_get_document(void **state) {
  check_round_trip(*state, SAMPLE_DOCUMENT);
}

static void set_get_empty_document(void **state) {
  check_round_trip(*state, SAMPLE_EMPTY_DOCUMENT);
}

static void set_get_array(void **state) {
  check_round_trip(*state, SAMPLE_ARRAY);
}

static void set_get_binary(void **state) {
  check_round_trip(*state, SAMPLE_BINARY);
}

static void set_get_oid(void **state) { check_round_trip(*state, SAMPLE_OID); }

static void set_get_date(void **state) {
  check_round_trip(*state, SAMPLE_DATE);
}

static void set_get_json_values(void **state) {
  test_fixture_t *fixture = *state;
  const char *texts[] = {
      "{\"$numberInt\": \"7\"}",
      "{\"$date\": {\"$numberLong\": \"1700000000000\"}}",
      "{\"$binary\": {\"base64\": \"AAEC\", \"subType\": \"00\"}}",
      "{\"$oid\": \"65f000000000000000000001\"}",
      "{\"user\": {\"tags\": [\"a\", \"b\"], \"age\": 41}}",
  };

  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    bson_value_t stored = test_json(texts[i]);
    bson_value_t read = {0};
    bson_error_t error = {0};

    CHECK_OK(mkv_set(fixture->db, texts[i], &stored, NULL, &error), &error);
    CHECK_OK(mkv_get(fixture->db, texts[i], &read, &error), &error);
    assert_value_equal(&stored, &read);

    bson_value_destroy(&stored);
    bson_value_destroy(&read);
  }
}

/* A 4 MiB string, well under the 16 MiB document limit. */
static void set_get_large_string(void **state) {
  test_fixture_t *fixture = *state;
  size_t length = 4 * 1024 * 1024;
  char *text = bson_malloc(length + 1);
  bson_value_t stored;
  bson_value_t read = {0};
  bson_error_t error = {0};

  for (size_t i = 0; i < length; i++) {
    text[i] = (char)('a' + i % 26);
  }
  text[length] = '\0';
  stored = mkv_str(text);

  CHECK_OK(mkv_set(fixture->db, "large", &stored, NULL, &error), &error);
  CHECK_OK(mkv_get(fixture->db, "large", &read, &error), &error);
  assert_value_equal(&stored, &read);

  bson_value_destroy(&read);
  bson_free(text);
}

static void set_overwrite(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t first = mkv_str("first");
  bson_value_t second = mkv_int64(2);
  bson_value_t read = {0};
  bson_error_t error = {0};

  CHECK_OK(mkv_set(fixture->db, "k", &first, NULL, &error), &error);
  CHECK_OK(mkv_set(fixture->db, "k", &second, NULL, &error), &error);
  CHECK_OK(mkv_get(fixture->db, "k", &read, &error), &error);
  assert_value_equal(&second, &read);
  assert_key_count(fixture, 1);

  bson_value_destroy(&read);
}

static void set_auto_key(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = mkv_str("auto");
  bson_value_t read = {0};
  bson_error_t error = {0};
  char *first = NULL;
  char *second = NULL;

  CHECK_OK(mkv_set(fixture->db, NULL, &stored, &first, &error), &error);
  assert_non_null(first);
  assert_true(test_is_object_id_hex(first));
  CHECK_OK(mkv_set(fixture->db, NULL, &stored, &second, &error), &error);
  assert_non_null(second);
  assert_true(test_is_object_id_hex(second));
  assert_string_not_equal(first, second);

  CHECK_OK(mkv_get(fixture->db, first, &read, &error), &error);
  assert_value_equal(&stored, &read);
  assert_key_count(fixture, 2);

  bson_free(first);
  bson_free(second);
  bson_value_destroy(&read);
}

/* key_out may be NULL, also with an auto key. */
static void set_key_out_null(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = mkv_bool(true);
  bson_error_t error = {0};

  CHECK_OK(mkv_set(fixture->db, "given", &stored, NULL, &error), &error);
  CHECK_OK(mkv_set(fixture->db, NULL, &stored, NULL, &error), &error);
  assert_key_count(fixture, 2);
}

static void get_missing_key(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t value = mkv_int64(99);
  bson_value_t expected = mkv_int64(99);
  bson_error_t error = {0};

  CHECK_STATUS(MKV_ENOTFOUND,
               mkv_get(fixture->db, "missing_key", &value, &error), &error);
  assert_value_equal(&expected, &value);
  assert_int_equal(error.domain, MKV_ERROR_DOMAIN);
  assert_int_equal(error.code, (uint32_t)MKV_ENOTFOUND);
  assert_non_null(strstr(error.message, "missing_key"));
}

/* A document without a "value" field was not written by mkv. */
static void get_without_value_field(void **state) {
  test_fixture_t *fixture = *state;
  bson_t document = BSON_INITIALIZER;
  bson_value_t value = mkv_int64(99);
  bson_value_t expected = mkv_int64(99);
  bson_error_t error = {0};

  BSON_APPEND_UTF8(&document, "_id", "foreign");
  BSON_APPEND_UTF8(&document, "other", "field");
  test_insert_document(fixture, &document);

  CHECK_STATUS(MKV_ENOTFOUND, mkv_get(fixture->db, "foreign", &value, &error),
               &error);
  assert_value_equal(&expected, &value);

  bson_destroy(&document);
}

static void remove_present_key(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = mkv_str("gone soon");
  bson_value_t read = {0};
  bson_error_t error = {0};
  bool removed = false;

  CHECK_OK(mkv_set(fixture->db, "k", &stored, NULL, &error), &error);
  CHECK_OK(mkv_remove(fixture->db, "k", &removed, &error), &error);
  assert_true(removed);
  CHECK_STATUS(MKV_ENOTFOUND, mkv_get(fixture->db, "k", &read, &error), &error);
  assert_key_count(fixture, 0);
}

static void remove_absent_key(void **state) {
  test_fixture_t *fixture = *state;
  bson_error_t error = {0};
  bool removed = true;

  CHECK_OK(mkv_remove(fixture->db, "never_set", &removed, &error), &error);
  assert_false(removed);
}

static void remove_twice(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = mkv_null();
  bson_error_t error = {0};
  bool removed = false;

  CHECK_OK(mkv_set(fixture->db, "k", &stored, NULL, &error), &error);
  CHECK_OK(mkv_remove(fixture->db, "k", &removed, &error), &error);
  assert_true(removed);
  CHECK_OK(mkv_remove(fixture->db, "k", &removed, &error), &error);
  assert_false(removed);
}

/* removed and error may both be NULL. */
static void remove_null_outputs(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = mkv_null();

  CHECK_OK(mkv_set(fixture->db, "k", &stored, NULL, NULL), NULL);
  CHECK_OK(mkv_remove(fixture->db, "k", NULL, NULL), NULL);
  CHECK_OK(mkv_remove(fixture->db, "k", NULL, NULL), NULL);
  assert_key_count(fixture, 0);
}

static void all_empty(void **state) {
  test_fixture_t *fixture = *state;
  mkv_keys_t keys = {0};
  bson_error_t error = {0};

  CHECK_OK(mkv_all(fixture->db, &keys, &error), &error);
  assert_int_equal(keys.count, 0);

  mkv_keys_destroy(&keys);
  assert_null(keys.keys);
  assert_int_equal(keys.count, 0);
}

static void all_filled(void **state) {
  test_fixture_t *fixture = *state;
  const char *expected[] = {"alpha", "beta", "gamma", "delta", "epsilon"};
  size_t count = sizeof expected / sizeof expected[0];
  bson_value_t stored = mkv_int64(1);
  mkv_keys_t keys = {0};
  bson_error_t error = {0};

  for (size_t i = 0; i < count; i++) {
    CHECK_OK(mkv_set(fixture->db, expected[i], &stored, NULL, &error), &error);
  }
  /* Overwriting a key does not add a second one. */
  CHECK_OK(mkv_set(fixture->db, "beta", &stored, NULL, &error), &error);

  CHECK_OK(mkv_all(fixture->db, &keys, &error), &error);
  assert_keys_equal(&keys, expected, count);

  mkv_keys_destroy(&keys);
  assert_null(keys.keys);
  assert_int_equal(keys.count, 0);
}

/*
 * Documents that mkv did not write may have _id values of other types, and
 * mkv_all() lists them by their relaxed Extended JSON.
 */
static void all_foreign_ids(void **state) {
  test_fixture_t *fixture = *state;
  bson_t by_oid = BSON_INITIALIZER;
  bson_t by_number = BSON_INITIALIZER;
  bson_oid_t oid;
  bson_value_t stored = mkv_str("mine");
  mkv_keys_t keys = {0};
  bson_error_t error = {0};
  const char *expected[] = {
      "{ \"$oid\" : \"5f1a2b3c4d5e6f7a8b9c0d1e\" }",
      "7",
      "mine",
  };

  bson_oid_init_from_string(&oid, "5f1a2b3c4d5e6f7a8b9c0d1e");
  BSON_APPEND_OID(&by_oid, "_id", &oid);
  BSON_APPEND_INT32(&by_number, "_id", 7);
  test_insert_document(fixture, &by_oid);
  test_insert_document(fixture, &by_number);
  CHECK_OK(mkv_set(fixture->db, "mine", &stored, NULL, &error), &error);

  CHECK_OK(mkv_all(fixture->db, &keys, &error), &error);
  assert_keys_equal(&keys, expected, 3);

  mkv_keys_destroy(&keys);
  bson_destroy(&by_oid);
  bson_destroy(&by_number);
}

static void purge_all(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = mkv_int64(5);
  bson_value_t read = {0};
  bson_error_t error = {0};
  char key[16];

  for (int i = 0; i < 5; i++) {
    snprintf(key, sizeof key, "k%d", i);
    CHECK_OK(mkv_set(fixture->db, key, &stored, NULL, &error), &error);
  }
  assert_key_count(fixture, 5);

  CHECK_OK(mkv_purge(fixture->db, &error), &error);
  assert_key_count(fixture, 0);
  CHECK_STATUS(MKV_ENOTFOUND, mkv_get(fixture->db, "k0", &read, &error),
               &error);

  /* The collection is still usable after a purge. */
  CHECK_OK(mkv_set(fixture->db, "after", &stored, NULL, &error), &error);
  CHECK_OK(mkv_get(fixture->db, "after", &read, &error), &error);
  assert_value_equal(&stored, &read);
  assert_key_count(fixture, 1);

  bson_value_destroy(&read);
}

/* Returns whether the fixture's collection has an index named `name`. */
static bool collection_has_index(mongoc_collection_t *collection,
                                 const char *name) {
  mongoc_cursor_t *cursor =
      mongoc_collection_find_indexes_with_opts(collection, NULL);
  const bson_t *index;
  bson_iter_t iter;
  bool found = false;

  while (mongoc_cursor_next(cursor, &index)) {
    if (bson_iter_init_find(&iter, index, "name") &&
        BSON_ITER_HOLDS_UTF8(&iter) &&
        strcmp(bson_iter_utf8(&iter, NULL), name) == 0)
      found = true;
  }
  assert_false(mongoc_cursor_error(cursor, NULL));
  mongoc_cursor_destroy(cursor);
  return found;
}

/* A purge deletes the documents and keeps the collection's indexes. */
static void purge_keeps_indexes(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = mkv_int64(5);
  mongoc_client_t *client = mongoc_client_new(test_uri());
  mongoc_collection_t *collection;
  bson_error_t error = {0};
  bson_t *command;

  assert_non_null(client);
  CHECK_OK(mkv_set(fixture->db, "k", &stored, NULL, &error), &error);
  collection =
      mongoc_client_get_collection(client, TEST_DB_NAME, fixture->collection);
  command = BCON_NEW("createIndexes", BCON_UTF8(fixture->collection), "indexes",
                     "[", "{", "key", "{", "value", BCON_INT32(1), "}", "name",
                     BCON_UTF8("value_1"), "}", "]");
  assert_true(mongoc_collection_write_command_with_opts(collection, command,
                                                        NULL, NULL, &error));
  assert_true(collection_has_index(collection, "value_1"));

  CHECK_OK(mkv_purge(fixture->db, &error), &error);
  assert_key_count(fixture, 0);
  assert_true(collection_has_index(collection, "value_1"));

  bson_destroy(command);
  mongoc_collection_destroy(collection);
  mongoc_client_destroy(client);
}

static void purge_empty(void **state) {
  test_fixture_t *fixture = *state;
  bson_error_t error = {0};

  CHECK_OK(mkv_purge(fixture->db, &error), &error);
  CHECK_OK(mkv_purge(fixture->db, NULL), NULL);
  assert_key_count(fixture, 0);
}

static void ping_ok(void **state) {
  test_fixture_t *fixture = *state;
  bson_error_t error = {0};

  CHECK_OK(mkv_ping(fixture->db, &error), &error);
  CHECK_OK(mkv_ping(fixture->db, NULL), NULL);
}

/* Keys that are field paths, operators or non-ASCII are plain strings. */
static void odd_keys(void **state) {
  test_fixture_t *fixture = *state;
  const char *keys[] = {
      "",
      "a.b.c",
      "$x",
      "with space",
      "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87",
      "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
      "emoji \xf0\x9f\x98\x80",
      "{\"$gt\": \"\"}",
      "_id",
      "quote\"back\\slash",
  };
  size_t count = sizeof keys / sizeof keys[0];
  mkv_keys_t all = {0};
  bson_error_t error = {0};

  for (size_t i = 0; i < count; i++) {
    bson_value_t stored = mkv_int64((int64_t)i);
    char *key_out = NULL;

    CHECK_OK(mkv_set(fixture->db, keys[i], &stored, &key_out, &error), &error);
    assert_non_null(key_out);
    assert_string_equal(key_out, keys[i]);
    bson_free(key_out);
  }

  for (size_t i = 0; i < count; i++) {
    bson_value_t expected = mkv_int64((int64_t)i);
    bson_value_t read = {0};

    CHECK_OK(mkv_get(fixture->db, keys[i], &read, &error), &error);
    assert_value_equal(&expected, &read);
    bson_value_destroy(&read);
  }

  CHECK_OK(mkv_all(fixture->db, &all, &error), &error);
  assert_keys_equal(&all, keys, count);
  mkv_keys_destroy(&all);

  for (size_t i = 0; i < count; i++) {
    bool removed = false;

    CHECK_OK(mkv_remove(fixture->db, keys[i], &removed, &error), &error);
    assert_true(removed);
  }
  assert_key_count(fixture, 0);
}

/* Every operation accepts a NULL bson_error_t. */
static void error_argument_null(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = mkv_str("x");
  bson_value_t read = {0};
  mkv_keys_t keys = {0};

  CHECK_OK(mkv_set(fixture->db, "k", &stored, NULL, NULL), NULL);
  CHECK_OK(mkv_get(fixture->db, "k", &read, NULL), NULL);
  assert_value_equal(&stored, &read);
  CHECK_STATUS(MKV_ENOTFOUND, mkv_get(fixture->db, "absent", &read, NULL),
               NULL);
  CHECK_OK(mkv_all(fixture->db, &keys, NULL), NULL);
  assert_int_equal(keys.count, 1);

  mkv_keys_destroy(&keys);
  bson_value_destroy(&read);
}

/*
 * NULL options select database "mkv" and collection "kv". Only a ping is
 * sent, so nothing is written there.
 */
static void open_null_options(void **state) {
  mkv_t *db = NULL;
  bson_error_t error = {0};

  (void)state;
  CHECK_OK(mkv_open(&db, test_uri(), NULL, &error), &error);
  assert_non_null(db);
  CHECK_OK(mkv_ping(db, &error), &error);
  CHECK_OK(mkv_close(db), NULL);
}

static void open_with_options(void **state) {
  test_fixture_t *fixture = *state;
  mkv_options_t options = test_options(fixture);
  bson_value_t stored = mkv_double(2.5);
  bson_value_t read = {0};
  bson_error_t error = {0};

  options.server_selection_timeout_ms = 5000;
  options.socket_timeout_ms = 5000;
  options.max_in_flight = 1;
  test_reopen(fixture, &options);

  CHECK_OK(mkv_set(fixture->db, "k", &stored, NULL, &error), &error);
  CHECK_OK(mkv_get(fixture->db, "k", &read, &error), &error);
  assert_value_equal(&stored, &read);
}

/* mkv_open() copies the names in the options. */
static void open_copies_names(void **state) {
  test_fixture_t *fixture = *state;
  char db_name[64];
  char collection_name[128];
  mkv_options_t options = {.db_name = db_name,
                           .collection_name = collection_name};
  mkv_t *db = NULL;
  bson_value_t value = mkv_int64(3);
  bson_error_t error = {0};

  snprintf(db_name, sizeof db_name, "%s", TEST_DB_NAME);
  snprintf(collection_name, sizeof collection_name, "%s", fixture->collection);
  CHECK_OK(mkv_open(&db, test_uri(), &options, &error), &error);
  memset(db_name, 'x', sizeof db_name - 1);
  memset(collection_name, 'y', sizeof collection_name - 1);

  CHECK_OK(mkv_set(db, "k", &value, NULL, &error), &error);
  CHECK_OK(mkv_close(db), NULL);
  assert_key_count(fixture, 1);
}

/* Two handles on one collection see each other's writes. */
static void two_handles(void **state) {
  test_fixture_t *fixture = *state;
  mkv_options_t options = test_options(fixture);
  mkv_t *other = NULL;
  bson_value_t stored = mkv_str("shared");
  bson_value_t read = {0};
  bson_error_t error = {0};
  bool removed = false;

  CHECK_OK(mkv_open(&other, test_uri(), &options, &error), &error);
  CHECK_OK(mkv_set(fixture->db, "k", &stored, NULL, &error), &error);
  CHECK_OK(mkv_get(other, "k", &read, &error), &error);
  assert_value_equal(&stored, &read);
  CHECK_OK(mkv_remove(other, "k", &removed, &error), &error);
  assert_true(removed);
  CHECK_OK(mkv_close(other), NULL);

  CHECK_STATUS(MKV_ENOTFOUND, mkv_get(fixture->db, "k", &read, &error), &error);
  bson_value_destroy(&read);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST_CASE(set_get_string),
      TEST_CASE(set_get_empty_string),
      TEST_CASE(set_get_int32),
      TEST_CASE(set_get_int64),
      TEST_CASE(set_get_double),
      TEST_CASE(set_get_bool),
      TEST_CASE(set_get_null),
      TEST_CASE(set_get_document),
      TEST_CASE(set_get_empty_document),
      TEST_CASE(set_get_array),
      TEST_CASE(set_get_binary),
      TEST_CASE(set_get_oid),
      TEST_CASE(set_get_date),
      TEST_CASE(set_get_json_values),
      TEST_CASE(set_get_large_string),
      TEST_CASE(set_overwrite),
      TEST_CASE(set_auto_key),
      TEST_CASE(set_key_out_null),
      TEST_CASE(get_missing_key),
      TEST_CASE(get_without_value_field),
      TEST_CASE(remove_present_key),
      TEST_CASE(remove_absent_key),
      TEST_CASE(remove_twice),
      TEST_CASE(remove_null_outputs),
      TEST_CASE(all_empty),
      TEST_CASE(all_filled),
      TEST_CASE(all_foreign_ids),
      TEST_CASE(purge_all),
      TEST_CASE(purge_keeps_indexes),
      TEST_CASE(purge_empty),
      TEST_CASE(ping_ok),
      TEST_CASE(odd_keys),
      TEST_CASE(error_argument_null),
      TEST_CASE(open_null_options),
      TEST_CASE(open_with_options),
      TEST_CASE(open_copies_names),
      TEST_CASE(two_handles),
  };

  if (test_check_environment() != 0) {
    return 1;
  }
  return cmocka_run_group_tests_name("sync", tests, NULL, NULL);
}
