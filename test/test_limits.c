/*
 * Tests of inputs at and past MongoDB's limits: values that fill a 16 MiB
 * document, keys up to the longest that fits in one, documents nested to
 * the depth limit, and NUL bytes inside strings, field names and _id.
 * Every rejected write must leave the key's earlier value in place.
 */
#include "helpers.h"

#include <string.h>

/* MongoDB's maximum document size (maxBsonObjectSize), in bytes. */
#define DOCUMENT_LIMIT (16 * 1024 * 1024)

/*
 * Bytes of {_id: key, value: "..."} besides the two strings: the length and
 * end byte (5), the _id element's type, name and string length and the
 * key's NUL (10), and the value element's type, name and string length and
 * the string's NUL (12).
 */
#define STRING_DOCUMENT_OVERHEAD 27

/* The maximum key length: {_id: key, value: null} without the key is 22 bytes.
 */
#define MAX_KEY_LEN (DOCUMENT_LIMIT - 22)

/* MongoDB's limit of nested documents, the key's document included. */
#define MAX_NESTING 100

/* The length of an ObjectId key as hexadecimal text. */
#define AUTO_KEY_LEN 24

/* Returns the maximum length of a string value stored with a key. */
static size_t max_string_len(size_t key_len) {
  return DOCUMENT_LIMIT - STRING_DOCUMENT_OVERHEAD - key_len;
}

/* Returns `len` bytes of `fill` and a NUL, to be released with bson_free(). */
static char *make_text(size_t len, char fill) {
  char *text = bson_malloc(len + 1);

  memset(text, fill, len);
  text[len] = '\0';
  return text;
}

/* Asserts that `key` reads back as the string `text`. */
static void assert_string_stored(test_fixture_t *fixture, const char *key,
                                 const char *text) {
  bson_value_t read = {0};
  bson_error_t error = {0};

  CHECK_OK(mkv_get(fixture->db, key, &read, &error), &error);
  assert_int_equal(read.value_type, BSON_TYPE_UTF8);
  assert_int_equal(read.value.v_utf8.len, strlen(text));
  assert_memory_equal(read.value.v_utf8.str, text, strlen(text));
  bson_value_destroy(&read);
}

/*
 * A value that makes the document exactly 16 MiB is stored, and one byte
 * more is rejected before it is sent, leaving the stored value as it was.
 */
static void string_at_size_limit(void **state) {
  test_fixture_t *fixture = *state;
  char *fits = make_text(max_string_len(1), 'a');
  char *over = make_text(max_string_len(1) + 1, 'b');
  bson_value_t value = mkv_str(fits);
  bson_error_t error = {0};

  CHECK_OK(mkv_set(fixture->db, "k", &value, NULL, &error), &error);
  assert_string_stored(fixture, "k", fits);

  value = mkv_str(over);
  CHECK_STATUS(MKV_EINVAL, mkv_set(fixture->db, "k", &value, NULL, &error),
               &error);
  assert_non_null(strstr(error.message, "too large"));
  assert_non_null(strstr(error.message, "16777217 bytes"));
  assert_string_stored(fixture, "k", fits);
  assert_key_count(fixture, 1);

  bson_free(fits);
  bson_free(over);
}

static void string_at_size_limit_async(void **state) {
  test_fixture_t *fixture = *state;
  char *fits = make_text(max_string_len(1), 'c');
  char *over = make_text(max_string_len(1) + 1, 'd');
  bson_value_t value = mkv_str(fits);
  test_record_t stored = {0};
  test_record_t rejected = {0};

  CHECK_OK(mkv_set_async(fixture->db, &fixture->loop, "k", &value,
                         test_record_result, &stored),
           NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(stored.calls, 1);
  CHECK_OK(stored.status, NULL);

  value = mkv_str(over);
  CHECK_STATUS(MKV_EINVAL,
               mkv_set_async(fixture->db, &fixture->loop, "k", &value,
                             test_record_result, &rejected),
               NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(rejected.calls, 0);
  assert_string_stored(fixture, "k", fits);

  bson_free(fits);
  bson_free(over);
  test_close_all(fixture);
}

/* An auto key is 24 characters, which the size check counts. */
static void auto_key_at_size_limit(void **state) {
  test_fixture_t *fixture = *state;
  char *fits = make_text(max_string_len(AUTO_KEY_LEN), 'e');
  char *over = make_text(max_string_len(AUTO_KEY_LEN) + 1, 'f');
  bson_value_t value = mkv_str(fits);
  bson_error_t error = {0};
  char *key = NULL;

  CHECK_OK(mkv_set(fixture->db, NULL, &value, &key, &error), &error);
  assert_true(test_is_object_id_hex(key));
  assert_string_stored(fixture, key, fits);

  value = mkv_str(over);
  CHECK_STATUS(MKV_EINVAL, mkv_set(fixture->db, NULL, &value, NULL, &error),
               &error);
  assert_non_null(strstr(error.message, "too large"));
  assert_key_count(fixture, 1);

  bson_free(key);
  bson_free(fits);
  bson_free(over);
}

/*
 * MongoDB 4.2 and later have no limit on the size of an index key, so a key
 * of 1 MiB is stored, read, listed and removed like any other.
 */
static void key_one_mebibyte(void **state) {
  test_fixture_t *fixture = *state;
  char *key = make_text(1024 * 1024, 'k');
  bson_value_t value = mkv_int64(1048576);
  bson_value_t read = {0};
  bson_error_t error = {0};
  mkv_keys_t keys = {0};
  bool removed = false;

  CHECK_OK(mkv_set(fixture->db, key, &value, NULL, &error), &error);
  CHECK_OK(mkv_get(fixture->db, key, &read, &error), &error);
  assert_value_equal(&value, &read);

  CHECK_OK(mkv_all(fixture->db, &keys, &error), &error);
  assert_int_equal(keys.count, 1);
  assert_string_equal(keys.keys[0], key);
  mkv_keys_destroy(&keys);

  CHECK_OK(mkv_remove(fixture->db, key, &removed, &error), &error);
  assert_true(removed);
  assert_key_count(fixture, 0);
  bson_free(key);
}

/*
 * A key of the maximum length is stored with a null value. One
 * byte more is rejected by every operation that takes a key, sync and
 * async, before anything is sent.
 */
static void key_at_length_limit(void **state) {
  test_fixture_t *fixture = *state;
  char *key = make_text(MAX_KEY_LEN + 1, 'x');
  bson_value_t value = mkv_null();
  bson_value_t read = {0};
  bson_error_t error = {0};
  test_record_t record = {0};
  bool removed = true;

  /* The first MAX_KEY_LEN bytes are a key of the maximum length. */
  key[MAX_KEY_LEN] = '\0';
  CHECK_OK(mkv_set(fixture->db, key, &value, NULL, &error), &error);
  CHECK_OK(mkv_get(fixture->db, key, &read, &error), &error);
  assert_int_equal(read.value_type, BSON_TYPE_NULL);
  key[MAX_KEY_LEN] = 'x';

  CHECK_STATUS(MKV_EINVAL, mkv_set(fixture->db, key, &value, NULL, &error),
               &error);
  assert_non_null(strstr(error.message, "key too long"));
  CHECK_STATUS(MKV_EINVAL, mkv_get(fixture->db, key, &read, &error), &error);
  assert_non_null(strstr(error.message, "key too long"));
  CHECK_STATUS(MKV_EINVAL, mkv_remove(fixture->db, key, &removed, &error),
               &error);
  assert_non_null(strstr(error.message, "key too long"));
  assert_false(removed);

  CHECK_STATUS(MKV_EINVAL,
               mkv_set_async(fixture->db, &fixture->loop, key, &value,
                             test_record_result, &record),
               NULL);
  CHECK_STATUS(MKV_EINVAL,
               mkv_get_async(fixture->db, &fixture->loop, key,
                             test_record_result, &record),
               NULL);
  CHECK_STATUS(MKV_EINVAL,
               mkv_remove_async(fixture->db, &fixture->loop, key,
                                test_record_result, &record),
               NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(record.calls, 0);
  assert_key_count(fixture, 1);

  bson_free(key);
  test_close_all(fixture);
}

/*
 * A value nested to the depth limit is stored and reads back unchanged,
 * sync and async. One level more is rejected and leaves it in place.
 */
static void nesting_at_depth_limit(void **state) {
  test_fixture_t *fixture = *state;
  bson_t deepest, too_deep;
  bson_value_t allowed, rejected;
  bson_value_t read = {0};
  bson_error_t error = {0};
  test_record_t record = {0};

  test_nest_documents(&deepest, MAX_NESTING - 1);
  test_nest_documents(&too_deep, MAX_NESTING);
  allowed = test_document_value(&deepest);
  rejected = test_document_value(&too_deep);

  CHECK_OK(mkv_set(fixture->db, "sync", &allowed, NULL, &error), &error);
  CHECK_OK(mkv_set_async(fixture->db, &fixture->loop, "async", &allowed,
                         test_record_result, &record),
           NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(record.calls, 1);
  CHECK_OK(record.status, NULL);

  CHECK_STATUS(MKV_EINVAL,
               mkv_set(fixture->db, "sync", &rejected, NULL, &error), &error);
  assert_non_null(strstr(error.message, "levels"));
  CHECK_STATUS(MKV_EINVAL,
               mkv_set_async(fixture->db, &fixture->loop, "async", &rejected,
                             test_record_result, &record),
               NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(record.calls, 1);

  CHECK_OK(mkv_get(fixture->db, "sync", &read, &error), &error);
  assert_value_equal(&allowed, &read);
  bson_value_destroy(&read);
  CHECK_OK(mkv_get(fixture->db, "async", &read, &error), &error);
  assert_value_equal(&allowed, &read);
  bson_value_destroy(&read);

  bson_destroy(&deepest);
  bson_destroy(&too_deep);
  test_close_all(fixture);
}

/* A BSON string may contain NUL, because its length gives where it ends. */
static void string_with_nul(void **state) {
  test_fixture_t *fixture = *state;
  static const char text[] = "a\0b";
  bson_value_t value = {0};
  bson_value_t read = {0};
  bson_error_t error = {0};

  value.value_type = BSON_TYPE_UTF8;
  value.value.v_utf8.str = (char *)text;
  value.value.v_utf8.len = 3;
  CHECK_OK(mkv_set(fixture->db, "nul", &value, NULL, &error), &error);

  CHECK_OK(mkv_get(fixture->db, "nul", &read, &error), &error);
  assert_int_equal(read.value_type, BSON_TYPE_UTF8);
  assert_int_equal(read.value.v_utf8.len, 3);
  assert_memory_equal(read.value.v_utf8.str, text, 3);
  bson_value_destroy(&read);
}

/*
 * A field name ends at its first NUL, so a document whose bytes put "a\0b"
 * where a field name goes does not parse, and is rejected.
 */
static void field_name_with_nul(void **state) {
  test_fixture_t *fixture = *state;
  static const uint8_t bytes[] = {
      14, 0, 0, 0, BSON_TYPE_INT32, 'a', 0, 'b', 0, 1, 0, 0, 0, 0};
  bson_value_t earlier = mkv_int64(5);
  bson_value_t value = {0};
  bson_value_t read = {0};
  bson_error_t error = {0};
  test_record_t record = {0};

  CHECK_OK(mkv_set(fixture->db, "k", &earlier, NULL, &error), &error);
  value.value_type = BSON_TYPE_DOCUMENT;
  value.value.v_doc.data = (uint8_t *)bytes;
  value.value.v_doc.data_len = sizeof bytes;

  CHECK_STATUS(MKV_EINVAL, mkv_set(fixture->db, "k", &value, NULL, &error),
               &error);
  assert_non_null(strstr(error.message, "malformed"));
  CHECK_STATUS(MKV_EINVAL,
               mkv_set_async(fixture->db, &fixture->loop, "k", &value,
                             test_record_result, &record),
               NULL);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(record.calls, 0);

  CHECK_OK(mkv_get(fixture->db, "k", &read, &error), &error);
  assert_value_equal(&earlier, &read);
  bson_value_destroy(&read);
  test_close_all(fixture);
}

/*
 * "\u0000" in a JSON string gives a string that contains NUL, which is
 * stored whole. In a field name it is rejected, because BSON cannot
 * encode it, and so is an escaped lone surrogate, which is no character.
 */
static void json_nul_escape(void **state) {
  test_fixture_t *fixture = *state;
  const char *rejected[] = {"{\"a\\u0000b\": 1}", "\"\\ud800\"",
                            "[\"\\udc00\"]"};
  bson_value_t value = {0};
  bson_value_t read = {0};
  bson_error_t error = {0};

  CHECK_OK(mkv_json("\"a\\u0000b\"", &value, &error), &error);
  assert_int_equal(value.value_type, BSON_TYPE_UTF8);
  assert_int_equal(value.value.v_utf8.len, 3);
  assert_memory_equal(value.value.v_utf8.str, "a\0b", 3);
  CHECK_OK(mkv_set(fixture->db, "json", &value, NULL, &error), &error);
  CHECK_OK(mkv_get(fixture->db, "json", &read, &error), &error);
  assert_value_equal(&value, &read);
  bson_value_destroy(&read);
  bson_value_destroy(&value);

  for (size_t i = 0; i < sizeof rejected / sizeof rejected[0]; i++) {
    bson_value_t untouched = mkv_int64(9);

    CHECK_STATUS(MKV_EINVAL, mkv_json(rejected[i], &untouched, &error), &error);
    assert_int_equal(untouched.value_type, BSON_TYPE_INT64);
  }
}

/*
 * A key is a C string, so it cannot contain NUL. An _id string with NUL,
 * written by another client, is listed as Extended JSON, and the key up
 * to its NUL does not find it.
 */
static void id_with_nul(void **state) {
  test_fixture_t *fixture = *state;
  bson_t document = BSON_INITIALIZER;
  bson_value_t read = {0};
  bson_error_t error = {0};
  mkv_keys_t keys = {0};

  bson_append_utf8(&document, "_id", 3, "a\0b", 3);
  BSON_APPEND_INT32(&document, "value", 7);
  test_insert_document(fixture, &document);
  bson_destroy(&document);

  CHECK_OK(mkv_all(fixture->db, &keys, &error), &error);
  assert_int_equal(keys.count, 1);
  assert_string_equal(keys.keys[0], "\"a\\u0000b\"");
  mkv_keys_destroy(&keys);

  CHECK_STATUS(MKV_ENOTFOUND, mkv_get(fixture->db, "a", &read, &error), &error);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST_CASE(string_at_size_limit),   TEST_CASE(string_at_size_limit_async),
      TEST_CASE(auto_key_at_size_limit), TEST_CASE(key_one_mebibyte),
      TEST_CASE(key_at_length_limit),    TEST_CASE(nesting_at_depth_limit),
      TEST_CASE(string_with_nul),        TEST_CASE(field_name_with_nul),
      TEST_CASE(json_nul_escape),        TEST_CASE(id_with_nul),
  };

  if (test_check_environment() != 0) {
    return 1;
  }
  return cmocka_run_group_tests_name("limits", tests, NULL, NULL);
}
