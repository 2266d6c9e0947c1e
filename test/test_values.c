/*
 * Tests of the value helpers: mkv_json(), mkv_value_to_json(), mkv_str()
 * and its siblings, mkv_strerror() and mkv_err_name(). Only the tests at
 * the end write to the server.
 */
#include "helpers.h"

#include <limits.h>
#include <string.h>

/* A value that no failing mkv_json() call may change. */
static bson_value_t sentinel_value(void) {
  bson_value_t value = {0};

  value.value_type = BSON_TYPE_INT32;
  value.value.v_int32 = 1234;
  return value;
}

static void json_object(void **state) {
  bson_value_t value = test_json("{\"a\": 1, \"b\": \"x\"}");
  bson_t expected = BSON_INITIALIZER;
  bson_value_t expected_value;

  (void)state;
  BSON_APPEND_INT32(&expected, "a", 1);
  BSON_APPEND_UTF8(&expected, "b", "x");
  expected_value = test_document_value(&expected);

  assert_value_equal(&expected_value, &value);

  bson_destroy(&expected);
  bson_value_destroy(&value);
}

static void json_nested_object(void **state) {
  bson_value_t value = test_json("{\"a\": {\"b\": [1, {\"c\": null}]}}");
  bson_t expected = BSON_INITIALIZER;
  bson_t a;
  bson_t b;
  bson_t item;
  bson_value_t expected_value;

  (void)state;
  BSON_APPEND_DOCUMENT_BEGIN(&expected, "a", &a);
  BSON_APPEND_ARRAY_BEGIN(&a, "b", &b);
  BSON_APPEND_INT32(&b, "0", 1);
  BSON_APPEND_DOCUMENT_BEGIN(&b, "1", &item);
  BSON_APPEND_NULL(&item, "c");
  bson_append_document_end(&b, &item);
  bson_append_array_end(&a, &b);
  bson_append_document_end(&expected, &a);
  expected_value = test_document_value(&expected);

  assert_value_equal(&expected_value, &value);

  bson_destroy(&expected);
  bson_value_destroy(&value);
}

static void json_array(void **state) {
  bson_value_t value = test_json("[1, \"two\", true]");
  bson_t expected = BSON_INITIALIZER;
  bson_value_t expected_value;

  (void)state;
  BSON_APPEND_INT32(&expected, "0", 1);
  BSON_APPEND_UTF8(&expected, "1", "two");
  BSON_APPEND_BOOL(&expected, "2", true);
  expected_value = test_array_value(&expected);

  assert_value_equal(&expected_value, &value);

  bson_destroy(&expected);
  bson_value_destroy(&value);
}

static void json_empty_object_array(void **state) {
  bson_value_t object = test_json("{}");
  bson_value_t array = test_json("[]");
  bson_t empty = BSON_INITIALIZER;
  bson_value_t expected_object = test_document_value(&empty);
  bson_value_t expected_array = test_array_value(&empty);

  (void)state;
  assert_value_equal(&expected_object, &object);
  assert_value_equal(&expected_array, &array);

  bson_value_destroy(&object);
  bson_value_destroy(&array);
}

static void json_string(void **state) {
  bson_value_t value = test_json("\"harrison\"");

  (void)state;
  assert_int_equal(value.value_type, BSON_TYPE_UTF8);
  assert_int_equal(value.value.v_utf8.len, 8);
  assert_string_equal(value.value.v_utf8.str, "harrison");

  bson_value_destroy(&value);
}

static void json_string_escapes(void **state) {
  bson_value_t value = test_json("\"a\\\"b\\\\c\\n\\u00e9\\u65e5\"");
  const char *expected = "a\"b\\c\n\xc3\xa9\xe6\x97\xa5";

  (void)state;
  assert_int_equal(value.value_type, BSON_TYPE_UTF8);
  assert_int_equal(value.value.v_utf8.len, strlen(expected));
  assert_string_equal(value.value.v_utf8.str, expected);

  bson_value_destroy(&value);
}

static void json_integer(void **state) {
  bson_value_t small = test_json("42");
  bson_value_t negative = test_json("-7");
  bson_value_t large = test_json("4294967296");

  (void)state;
  /* libbson reads an integer as int32 when it fits and as int64 otherwise. */
  assert_int_equal(small.value_type, BSON_TYPE_INT32);
  assert_int_equal(small.value.v_int32, 42);
  assert_int_equal(negative.value_type, BSON_TYPE_INT32);
  assert_int_equal(negative.value.v_int32, -7);
  assert_int_equal(large.value_type, BSON_TYPE_INT64);
  assert_true(large.value.v_int64 == INT64_C(4294967296));

  bson_value_destroy(&small);
  bson_value_destroy(&negative);
  bson_value_destroy(&large);
}

static void json_double(void **state) {
  bson_value_t value = test_json("1.5");

  (void)state;
  assert_int_equal(value.value_type, BSON_TYPE_DOUBLE);
  assert_true(value.value.v_double == 1.5);

  bson_value_destroy(&value);
}

static void json_canonical_numbers(void **state) {
  bson_value_t int32 = test_json("{\"$numberInt\": \"7\"}");
  bson_value_t int64 = test_json("{\"$numberLong\": \"7\"}");
  bson_value_t real = test_json("{\"$numberDouble\": \"2.5\"}");

  (void)state;
  assert_int_equal(int32.value_type, BSON_TYPE_INT32);
  assert_int_equal(int32.value.v_int32, 7);
  assert_int_equal(int64.value_type, BSON_TYPE_INT64);
  assert_true(int64.value.v_int64 == 7);
  assert_int_equal(real.value_type, BSON_TYPE_DOUBLE);
  assert_true(real.value.v_double == 2.5);

  bson_value_destroy(&int32);
  bson_value_destroy(&int64);
  bson_value_destroy(&real);
}

static void json_true_false_null(void **state) {
  bson_value_t yes = test_json("true");
  bson_value_t no = test_json("false");
  bson_value_t null = test_json("null");

  (void)state;
  assert_int_equal(yes.value_type, BSON_TYPE_BOOL);
  assert_true(yes.value.v_bool);
  assert_int_equal(no.value_type, BSON_TYPE_BOOL);
  assert_false(no.value.v_bool);
  assert_int_equal(null.value_type, BSON_TYPE_NULL);

  bson_value_destroy(&yes);
  bson_value_destroy(&no);
  bson_value_destroy(&null);
}

static void json_surrounding_space(void **state) {
  bson_value_t value = test_json(" \t\n 42 \n");

  (void)state;
  assert_int_equal(value.value_type, BSON_TYPE_INT32);
  assert_int_equal(value.value.v_int32, 42);

  bson_value_destroy(&value);
}

static void json_oid(void **state) {
  bson_value_t value = test_json("{\"$oid\": \"5f1a2b3c4d5e6f7a8b9c0d1e\"}");
  bson_oid_t expected;

  (void)state;
  bson_oid_init_from_string(&expected, "5f1a2b3c4d5e6f7a8b9c0d1e");
  assert_int_equal(value.value_type, BSON_TYPE_OID);
  assert_memory_equal(&value.value.v_oid, &expected, sizeof expected);

  bson_value_destroy(&value);
}

static void json_date(void **state) {
  bson_value_t canonical =
      test_json("{\"$date\": {\"$numberLong\": \"1700000000000\"}}");
  bson_value_t relaxed = test_json("{\"$date\": \"2023-11-14T22:13:20Z\"}");

  (void)state;
  assert_int_equal(canonical.value_type, BSON_TYPE_DATE_TIME);
  assert_true(canonical.value.v_datetime == INT64_C(1700000000000));
  assert_int_equal(relaxed.value_type, BSON_TYPE_DATE_TIME);
  assert_true(relaxed.value.v_datetime == INT64_C(1700000000000));

  bson_value_destroy(&canonical);
  bson_value_destroy(&relaxed);
}

static void json_binary(void **state) {
  bson_value_t value =
      test_json("{\"$binary\": {\"base64\": \"AAEC\", \"subType\": \"00\"}}");
  const uint8_t expected[] = {0x00, 0x01, 0x02};

  (void)state;
  assert_int_equal(value.value_type, BSON_TYPE_BINARY);
  assert_int_equal(value.value.v_binary.subtype, BSON_SUBTYPE_BINARY);
  assert_int_equal(value.value.v_binary.data_len, sizeof expected);
  assert_memory_equal(value.value.v_binary.data, expected, sizeof expected);

  bson_value_destroy(&value);
}

/* Asserts that mkv_json() rejects `json` and leaves the value as it was. */
static void check_json_rejected(const char *json) {
  bson_value_t value = sentinel_value();
  bson_value_t expected = sentinel_value();
  bson_error_t error = {0};
  int status = mkv_json(json, &value, &error);

  if (status != MKV_EINVAL) {
    print_error("mkv_json did not reject: %s\n", json);
  }
  CHECK_STATUS(MKV_EINVAL, status, &error);
  assert_value_equal(&expected, &value);
  assert_true(strlen(error.message) > 0);
}

static void json_invalid(void **state) {
  const char *texts[] = {
      "",
      " \n ",
      "{",
      "[1,",
      "tru",
      "nul",
      "'x'",
      "{\"a\" 1}",
      "{a: 1}",
      "\"open",
      "[1, 2,]",
      "{\"a\":}",
      "undefined",
      "0x10",
      "+",
      "{\"$oid\": \"nothex\"}",
      "{\"$numberInt\": \"x\"}",
  };

  (void)state;
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    check_json_rejected(texts[i]);
  }
}

/*
 * Text after the first value must fail, so that no input can add fields to
 * a document that the implementation builds around the value.
 */
static void json_trailing_text(void **state) {
  const char *texts[] = {
      "1, \"x\": 2",
      "1} {",
      "1 2",
      "{} {}",
      "\"a\" \"b\"",
      "[1]]",
      "{\"a\":1}}",
      "true,",
      "null x",
      "1}",
      "1, \"$x\": {\"y\": 1}",
  };

  (void)state;
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    check_json_rejected(texts[i]);
  }
}

/* A parse error gives its position in the caller's text. */
static void json_error_position(void **state) {
  bson_value_t value = mkv_int64(5);
  bson_error_t error = {0};

  (void)state;
  assert_int_equal(mkv_json("1 2", &value, &error), MKV_EINVAL);
  assert_non_null(strstr(error.message, "position 2"));
  assert_int_equal(mkv_json("[1, 2", &value, &error), MKV_EINVAL);
  assert_non_null(strstr(error.message, "ends before"));
  assert_int_equal(mkv_json("", &value, &error), MKV_EINVAL);
  assert_non_null(strstr(error.message, "ends before"));
  assert_int_equal(value.value_type, BSON_TYPE_INT64);
}

static void json_invalid_utf8(void **state) {
  const char *texts[] = {
      "\"\xff\xfe\"",           "\"abc\x80\"", "\"\xc3\x28\"", "{\"\xff\": 1}",
      "[\"ok\", \"\xe6\x97\"]",
  };

  (void)state;
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    check_json_rejected(texts[i]);
  }
}

static void json_null_arguments(void **state) {
  bson_value_t value = sentinel_value();
  bson_value_t expected = sentinel_value();
  bson_error_t error = {0};

  (void)state;
  CHECK_STATUS(MKV_EINVAL, mkv_json(NULL, &value, &error), &error);
  assert_value_equal(&expected, &value);
  CHECK_STATUS(MKV_EINVAL, mkv_json("1", NULL, &error), &error);
  CHECK_STATUS(MKV_EINVAL, mkv_json("{", &value, NULL), NULL);
  assert_value_equal(&expected, &value);

  CHECK_OK(mkv_json("1", &value, NULL), NULL);
  assert_int_equal(value.value_type, BSON_TYPE_INT32);
  assert_int_equal(value.value.v_int32, 1);
}

/* Asserts that mkv_value_to_json(value) returns exactly `expected`. */
static void check_to_json(const bson_value_t *value, const char *expected) {
  char *json = mkv_value_to_json(value);

  assert_non_null(json);
  assert_string_equal(json, expected);
  bson_free(json);
}

static void to_json_string(void **state) {
  bson_value_t value = mkv_str("harrison");
  bson_value_t escaped = mkv_str("a\"b\\c\n\xc3\xa9");

  (void)state;
  check_to_json(&value, "\"harrison\"");
  check_to_json(&escaped, "\"a\\\"b\\\\c\\n\xc3\xa9\"");
}

static void to_json_numbers(void **state) {
  bson_value_t int64 = mkv_int64(42);
  bson_value_t int32 = {.value_type = BSON_TYPE_INT32, .value.v_int32 = -7};
  bson_value_t real = mkv_double(1.5);
  bson_value_t whole = mkv_double(2.0);

  (void)state;
  check_to_json(&int64, "42");
  check_to_json(&int32, "-7");
  check_to_json(&real, "1.5");
  check_to_json(&whole, "2.0");
}

static void to_json_bool_null(void **state) {
  bson_value_t yes = mkv_bool(true);
  bson_value_t no = mkv_bool(false);
  bson_value_t null = mkv_null();

  (void)state;
  check_to_json(&yes, "true");
  check_to_json(&no, "false");
  check_to_json(&null, "null");
}

static void to_json_document(void **state) {
  bson_t document = BSON_INITIALIZER;
  bson_t array;
  bson_value_t value;

  (void)state;
  BSON_APPEND_ARRAY_BEGIN(&document, "a", &array);
  BSON_APPEND_INT32(&array, "0", 1);
  BSON_APPEND_INT32(&array, "1", 2);
  bson_append_array_end(&document, &array);
  value = test_document_value(&document);

  check_to_json(&value, "{ \"a\" : [ 1, 2 ] }");

  bson_destroy(&document);
}

static void to_json_array(void **state) {
  bson_t array = BSON_INITIALIZER;
  bson_value_t value;

  (void)state;
  BSON_APPEND_UTF8(&array, "0", "x");
  BSON_APPEND_NULL(&array, "1");
  value = test_array_value(&array);

  check_to_json(&value, "[ \"x\", null ]");

  bson_destroy(&array);
}

static void to_json_typed(void **state) {
  bson_value_t oid = test_json("{\"$oid\": \"5f1a2b3c4d5e6f7a8b9c0d1e\"}");
  bson_value_t date =
      test_json("{\"$date\": {\"$numberLong\": \"1700000000000\"}}");
  bson_value_t binary =
      test_json("{\"$binary\": {\"base64\": \"AAEC\", \"subType\": \"00\"}}");

  (void)state;
  check_to_json(&oid, "{ \"$oid\" : \"5f1a2b3c4d5e6f7a8b9c0d1e\" }");
  check_to_json(&date, "{ \"$date\" : \"2023-11-14T22:13:20Z\" }");
  check_to_json(&binary,
                "{ \"$binary\" : { \"base64\" : \"AAEC\", \"subType\" : "
                "\"00\" } }");

  bson_value_destroy(&oid);
  bson_value_destroy(&date);
  bson_value_destroy(&binary);
}

static void to_json_invalid(void **state) {
  bson_value_t bad_type = {0};
  bson_value_t bad_utf8 = {0};

  (void)state;
  assert_null(mkv_value_to_json(NULL));

  bad_type.value_type = (bson_type_t)0x42;
  assert_null(mkv_value_to_json(&bad_type));

  bad_utf8.value_type = BSON_TYPE_UTF8;
  bad_utf8.value.v_utf8.str = "\xff\xfe";
  bad_utf8.value.v_utf8.len = 2;
  assert_null(mkv_value_to_json(&bad_utf8));
}

/*
 * Texts to parse, render and parse again, and both parses must be equal.
 * The relaxed form of an int64 that fits in 32 bits reads back as int32, so
 * the int64 values here are larger. FerretDB 1.24 rejects an array directly
 * inside an array ("nested arrays are not supported"), so there is none.
 */
static const char *const round_trip_texts[] = {
    "\"harrison\"",
    "\"\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87 \xf0\x9f\x98\x80\"",
    "42",
    "-2147483648",
    "{\"$numberLong\": \"9007199254740993\"}",
    "0.1",
    "true",
    "null",
    "{\"a\": [1, 2, {\"b\": \"c\"}], \"d\": {\"$numberLong\": \"5000000000\"}}",
    "[{}, \"\", {\"a\": []}]",
    "{\"$oid\": \"5f1a2b3c4d5e6f7a8b9c0d1e\"}",
    "{\"$date\": {\"$numberLong\": \"1700000000000\"}}",
    "{\"$binary\": {\"base64\": \"AAEC/w==\", \"subType\": \"80\"}}",
};

static void to_json_round_trip(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof round_trip_texts / sizeof round_trip_texts[0];
       i++) {
    bson_value_t first = test_json(round_trip_texts[i]);
    char *json = mkv_value_to_json(&first);
    bson_value_t second;

    assert_non_null(json);
    second = test_json(json);
    assert_value_equal(&first, &second);

    bson_free(json);
    bson_value_destroy(&first);
    bson_value_destroy(&second);
  }
}

static void helpers_str(void **state) {
  const char *text = "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87";
  bson_value_t value = mkv_str(text);
  bson_value_t empty = mkv_str("");

  (void)state;
  assert_int_equal(value.value_type, BSON_TYPE_UTF8);
  assert_int_equal(value.value.v_utf8.len, 8);
  /* The value borrows the string instead of copying it. */
  assert_ptr_equal(value.value.v_utf8.str, text);
  assert_int_equal(empty.value_type, BSON_TYPE_UTF8);
  assert_int_equal(empty.value.v_utf8.len, 0);
}

static void helpers_scalars(void **state) {
  bson_value_t int64 = mkv_int64(INT64_MIN);
  bson_value_t real = mkv_double(-0.25);
  bson_value_t yes = mkv_bool(true);
  bson_value_t no = mkv_bool(false);
  bson_value_t null = mkv_null();

  (void)state;
  assert_int_equal(int64.value_type, BSON_TYPE_INT64);
  assert_true(int64.value.v_int64 == INT64_MIN);
  assert_int_equal(real.value_type, BSON_TYPE_DOUBLE);
  assert_true(real.value.v_double == -0.25);
  assert_int_equal(yes.value_type, BSON_TYPE_BOOL);
  assert_true(yes.value.v_bool);
  assert_int_equal(no.value_type, BSON_TYPE_BOOL);
  assert_false(no.value.v_bool);
  assert_int_equal(null.value_type, BSON_TYPE_NULL);
}

/* The status table of mkv.h, written out so that a change to it shows. */
static const struct {
  int status;
  const char *name;
  const char *message;
} status_rows[] = {
    {MKV_OK, "MKV_OK", "success"},
    {MKV_ENOTFOUND, "MKV_ENOTFOUND", "key not found"},
    {MKV_EINVAL, "MKV_EINVAL", "invalid argument"},
    {MKV_ECONNECT, "MKV_ECONNECT", "server unreachable or connection failed"},
    {MKV_ETIMEDOUT, "MKV_ETIMEDOUT", "operation timed out"},
    {MKV_ESERVER, "MKV_ESERVER", "server rejected the operation"},
    {MKV_ECANCELED, "MKV_ECANCELED", "operation canceled"},
    {MKV_ECLOSED, "MKV_ECLOSED", "handle is closing"},
    {MKV_EBUSY, "MKV_EBUSY", "handle has operations in progress"},
    {MKV_ENOMEM, "MKV_ENOMEM", "out of memory"},
    {MKV_EFORKED, "MKV_EFORKED",
     "handle was opened before fork(); open a new handle in this process"},
};

static void status_values(void **state) {
  (void)state;
  assert_int_equal(MKV_OK, 0);
  for (size_t i = 1; i < sizeof status_rows / sizeof status_rows[0]; i++) {
    assert_true(status_rows[i].status == -(int)i);
  }
}

static void strerror_each_code(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof status_rows / sizeof status_rows[0]; i++) {
    assert_string_equal(mkv_strerror(status_rows[i].status),
                        status_rows[i].message);
  }
}

static void err_name_each_code(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof status_rows / sizeof status_rows[0]; i++) {
    assert_string_equal(mkv_err_name(status_rows[i].status),
                        status_rows[i].name);
  }
}

static void status_unknown(void **state) {
  const int unknown[] = {1, 2, -11, -12, 12345, INT_MAX, INT_MIN};

  (void)state;
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    assert_string_equal(mkv_strerror(unknown[i]), "unknown status");
    assert_string_equal(mkv_err_name(unknown[i]), "MKV_UNKNOWN");
  }
}

static void keys_destroy_empty(void **state) {
  mkv_keys_t keys = {0};

  (void)state;
  mkv_keys_destroy(&keys);
  assert_null(keys.keys);
  assert_int_equal(keys.count, 0);
}

/* Every parsed value, stored and read back, is the same value. */
static void json_server_round_trip(void **state) {
  test_fixture_t *fixture = *state;

  for (size_t i = 0; i < sizeof round_trip_texts / sizeof round_trip_texts[0];
       i++) {
    bson_value_t stored = test_json(round_trip_texts[i]);
    bson_value_t read = {0};
    bson_error_t error = {0};
    char key[32];

    snprintf(key, sizeof key, "text%zu", i);
    CHECK_OK(mkv_set(fixture->db, key, &stored, NULL, &error), &error);
    CHECK_OK(mkv_get(fixture->db, key, &read, &error), &error);
    assert_value_equal(&stored, &read);

    bson_value_destroy(&stored);
    bson_value_destroy(&read);
  }
}

/*
 * Text with 0xC0 0x80, the overlong NUL of modified UTF-8, is not UTF-8, so
 * a set rejects it in each type of text whose length it takes. libbson
 * 1.23's UTF-8 check accepts it when NUL is allowed, and its JSON rendering
 * then fails.
 */
static void overlong_nul_rejected(void **state) {
  static char text[] = "a\xc0\x80z";
  test_fixture_t *fixture = *state;
  bson_t document = BSON_INITIALIZER;
  bson_value_t values[4];

  memset(values, 0, sizeof values);
  values[0].value_type = BSON_TYPE_UTF8;
  values[0].value.v_utf8.str = text;
  values[0].value.v_utf8.len = 4;
  values[1].value_type = BSON_TYPE_SYMBOL;
  values[1].value.v_symbol.symbol = text;
  values[1].value.v_symbol.len = 4;
  values[2].value_type = BSON_TYPE_CODE;
  values[2].value.v_code.code = text;
  values[2].value.v_code.code_len = 4;
  bson_append_utf8(&document, "s", 1, text, 4);
  values[3] = test_document_value(&document);

  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    bson_error_t error = {0};

    CHECK_STATUS(MKV_EINVAL,
                 mkv_set(fixture->db, "k", &values[i], NULL, &error), &error);
    assert_non_null(strstr(error.message, "UTF-8"));
    assert_null(mkv_value_to_json(&values[i]));
  }
  assert_key_count(fixture, 0);
  bson_destroy(&document);
}

/* A NUL byte inside a string is UTF-8, and a set stores it. */
static void nul_byte_in_string_stored(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = {0};
  bson_value_t read = {0};
  bson_error_t error = {0};

  stored.value_type = BSON_TYPE_UTF8;
  stored.value.v_utf8.str = (char *)"a\0z";
  stored.value.v_utf8.len = 3;

  CHECK_OK(mkv_set(fixture->db, "nul", &stored, NULL, &error), &error);
  CHECK_OK(mkv_get(fixture->db, "nul", &read, &error), &error);
  assert_value_equal(&stored, &read);
  bson_value_destroy(&read);
}

/* Sets a string of 64 'x' followed by `tail` under key "long". */
static int set_long_text(test_fixture_t *fixture, const char *tail,
                         bson_error_t *error) {
  char text[128];
  bson_value_t value = {0};

  memset(text, 'x', 64);
  bson_strncpy(text + 64, tail, sizeof text - 64);
  value.value_type = BSON_TYPE_UTF8;
  value.value.v_utf8.str = text;
  value.value.v_utf8.len = (uint32_t)strlen(text);
  return mkv_set(fixture->db, "long", &value, NULL, error);
}

/*
 * Text whose first bytes are ASCII is still checked past them: a set
 * rejects an invalid byte and the overlong NUL after 64 ASCII bytes, and
 * stores a two-byte character there.
 */
static void utf8_checked_after_ascii(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t read = {0};
  bson_error_t error = {0};

  CHECK_STATUS(MKV_EINVAL, set_long_text(fixture, "\xff", &error), &error);
  CHECK_STATUS(MKV_EINVAL, set_long_text(fixture, "a\xc0\x80", &error), &error);
  assert_key_count(fixture, 0);

  CHECK_OK(set_long_text(fixture, "\xc3\xa9", &error), &error);
  CHECK_OK(mkv_get(fixture->db, "long", &read, &error), &error);
  assert_int_equal(read.value.v_utf8.len, 66);
  assert_memory_equal(read.value.v_utf8.str + 64, "\xc3\xa9", 2);
  bson_value_destroy(&read);
}

/*
 * An array value must number its elements "0", "1", "2" and so on. A set
 * rejects one that does not, before libbson would print a warning about
 * it, and stores nothing.
 */
static void array_keys_misnumbered(void **state) {
  test_fixture_t *fixture = *state;
  bson_t skips = BSON_INITIALIZER;
  bson_t named = BSON_INITIALIZER;
  bson_value_t values[2];

  BSON_APPEND_INT32(&skips, "0", 1);
  BSON_APPEND_INT32(&skips, "2", 2);
  BSON_APPEND_INT32(&named, "a", 1);
  values[0] = test_array_value(&skips);
  values[1] = test_array_value(&named);

  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    bson_error_t error = {0};

    CHECK_STATUS(MKV_EINVAL,
                 mkv_set(fixture->db, "k", &values[i], NULL, &error), &error);
    assert_non_null(strstr(error.message, "array"));
  }
  assert_key_count(fixture, 0);
  bson_destroy(&skips);
  bson_destroy(&named);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(json_object),
      cmocka_unit_test(json_nested_object),
      cmocka_unit_test(json_array),
      cmocka_unit_test(json_empty_object_array),
      cmocka_unit_test(json_string),
      cmocka_unit_test(json_string_escapes),
      cmocka_unit_test(json_integer),
      cmocka_unit_test(json_double),
      cmocka_unit_test(json_canonical_numbers),
      cmocka_unit_test(json_true_false_null),
      cmocka_unit_test(json_surrounding_space),
      cmocka_unit_test(json_oid),
      cmocka_unit_test(json_date),
      cmocka_unit_test(json_binary),
      cmocka_unit_test(json_invalid),
      cmocka_unit_test(json_trailing_text),
      cmocka_unit_test(json_error_position),
      cmocka_unit_test(json_invalid_utf8),
      cmocka_unit_test(json_null_arguments),
      cmocka_unit_test(to_json_string),
      cmocka_unit_test(to_json_numbers),
      cmocka_unit_test(to_json_bool_null),
      cmocka_unit_test(to_json_document),
      cmocka_unit_test(to_json_array),
      cmocka_unit_test(to_json_typed),
      cmocka_unit_test(to_json_invalid),
      cmocka_unit_test(to_json_round_trip),
      cmocka_unit_test(helpers_str),
      cmocka_unit_test(helpers_scalars),
      cmocka_unit_test(status_values),
      cmocka_unit_test(strerror_each_code),
      cmocka_unit_test(err_name_each_code),
      cmocka_unit_test(status_unknown),
      cmocka_unit_test(keys_destroy_empty),
      TEST_CASE(json_server_round_trip),
      TEST_CASE(overlong_nul_rejected),
      TEST_CASE(nul_byte_in_string_stored),
      TEST_CASE(utf8_checked_after_ascii),
      TEST_CASE(array_keys_misnumbered),
  };

  if (test_check_environment() != 0) {
    return 1;
  }
  return cmocka_run_group_tests_name("values", tests, NULL, NULL);
}
