/*
 * Fuzzes the check of a key and everything mkv derives from a key before it
 * sends an operation: the quoted key of error messages, the description of
 * the operation, the filter {_id: key} and the size of a set's document.
 * The input ends at its first NUL, as keys are C strings.
 */
#include "fuzz.h"

/* Checks the key quoted in error messages: a UTF-8 prefix of the key. */
static void check_quote(const char *key) {
  char quoted[MKV_KEY_QUOTE_MAX + 8];
  size_t key_len = strlen(key);
  size_t quoted_len;

  mkv_quote_key(key, quoted, sizeof quoted);
  quoted_len = strlen(quoted);
  FUZZ_REQUIRE(fuzz_is_utf8(quoted));
  if (key_len <= MKV_KEY_QUOTE_MAX) {
    FUZZ_REQUIRE(strcmp(quoted, key) == 0);
    return;
  }
  FUZZ_REQUIRE(quoted_len >= 3);
  FUZZ_REQUIRE(quoted_len - 3 <= MKV_KEY_QUOTE_MAX);
  FUZZ_REQUIRE(strcmp(quoted + quoted_len - 3, "...") == 0);
  FUZZ_REQUIRE(memcmp(quoted, key, quoted_len - 3) == 0);
}

/*
 * Checks the documents built for a valid key: the filter selects exactly
 * that string, and the size that mkv_check_value() computes before a set
 * equals the size of the document that the set sends.
 */
static void check_documents(const char *key) {
  bson_value_t null_value = mkv_null();
  bson_error_t error = {0};
  bson_iter_t iter;
  bson_t filter, doc;
  size_t stored_len = 0;
  uint32_t id_len = 0;
  const char *id;

  mkv_build_key_filter(&filter, key);
  FUZZ_REQUIRE(bson_validate(&filter, BSON_VALIDATE_UTF8, NULL));
  FUZZ_REQUIRE(bson_count_keys(&filter) == 1);
  FUZZ_REQUIRE(bson_iter_init_find(&iter, &filter, "_id"));
  FUZZ_REQUIRE(BSON_ITER_HOLDS_UTF8(&iter));
  id = bson_iter_utf8(&iter, &id_len);
  FUZZ_REQUIRE(id_len == strlen(key));
  FUZZ_REQUIRE(memcmp(id, key, id_len) == 0);
  bson_destroy(&filter);

  FUZZ_REQUIRE(mkv_check_value(&null_value, key, &stored_len, &error) ==
               MKV_OK);
  mkv_build_insert(&doc, key, &null_value);
  FUZZ_REQUIRE(stored_len == doc.len);
  bson_destroy(&doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *key = fuzz_text(data, size);
  bson_error_t error = {0};
  char described[MKV_KEY_QUOTE_MAX + 32];
  mkv_op_t op = {.kind = MKV_OP_REMOVE, .key = key};
  int status = mkv_check_key(key, "remove", &error);

  mkv_describe_op(&op, described, sizeof described);
  FUZZ_REQUIRE(fuzz_is_utf8(described));

  if (fuzz_is_utf8(key)) {
    FUZZ_REQUIRE(status == MKV_OK);
    check_quote(key);
    check_documents(key);
  } else {
    fuzz_check_rejected(status, &error);
  }
  free(key);
  return 0;
}
