/*
 * Fuzzes mkv_json() with arbitrary text, then renders each value it accepts
 * with mkv_value_to_json() and parses that again. The input ends at its
 * first NUL, as mkv_json() reads a C string.
 */
#include "fuzz.h"

/* The last millisecond of the year 9999: 9999-12-31T23:59:59.999Z. */
#define YEAR_9999_END_MS INT64_C(253402300799999)

typedef bool (*element_match_t)(const bson_iter_t *iter);

static bool is_int64(const bson_iter_t *iter) {
  return BSON_ITER_HOLDS_INT64(iter);
}

static bool has_dollar_key(const bson_iter_t *iter) {
  return bson_iter_key(iter)[0] == '$';
}

static bool is_date_after_year_9999(const bson_iter_t *iter) {
  return BSON_ITER_HOLDS_DATE_TIME(iter) &&
         bson_iter_date_time(iter) > YEAR_9999_END_MS;
}

/*
 * Returns true when an element of `iter`, or of a document, array or code
 * scope inside it, matches. libbson's JSON parser nests at most 100
 * levels, which bounds the recursion.
 */
static bool any_element(bson_iter_t *iter, element_match_t match) {
  while (bson_iter_next(iter)) {
    bson_iter_t child;
    const uint8_t *scope = NULL;
    uint32_t scope_len = 0;
    uint32_t code_len = 0;

    if (match(iter))
      return true;
    if (BSON_ITER_HOLDS_DOCUMENT(iter) || BSON_ITER_HOLDS_ARRAY(iter)) {
      if (bson_iter_recurse(iter, &child) && any_element(&child, match))
        return true;
    } else if (BSON_ITER_HOLDS_CODEWSCOPE(iter)) {
      bson_iter_codewscope(iter, &code_len, &scope_len, &scope);
      if (bson_iter_init_from_data(&child, scope, scope_len) &&
          any_element(&child, match))
        return true;
    }
  }
  return false;
}

static bool value_contains(const bson_value_t *value, element_match_t match) {
  bson_t wrapper = BSON_INITIALIZER;
  bson_iter_t iter;
  bool found;

  FUZZ_REQUIRE(bson_append_value(&wrapper, MKV_VALUE_FIELD, -1, value));
  FUZZ_REQUIRE(bson_iter_init(&iter, &wrapper));
  found = any_element(&iter, match);
  bson_destroy(&wrapper);
  return found;
}

/*
 * Renders a value that mkv_json() returned and parses the text again. The
 * text of the second value must equal the first text. The value itself
 * must come back unchanged unless it contains an int64, because relaxed
 * JSON writes an int64 as a plain number, which mkv_json() reads as an
 * int32 when it fits.
 *
 * A document with a key that starts with "$" has no such promise, because
 * Extended JSON reads keys such as "$oid", "$date" or "$type" as the
 * wrapper of a typed value: {"$type": 1} renders as text that libbson
 * rejects, and {"$oid": "..."} comes back as an ObjectId. Its text must
 * still parse or fail with MKV_EINVAL, without a crash or a leak.
 */
static void check_round_trip(const bson_value_t *value) {
  bson_value_t again = {0};
  bson_error_t error = {0};
  char *second = NULL;
  char *text = mkv_value_to_json(value);
  bool exact = !value_contains(value, has_dollar_key);
  int status;

  if (text == NULL) {
    /* Only a value that mkv_set() would reject may have no text. */
    FUZZ_REQUIRE(mkv_check_value(value, NULL, NULL, NULL) == MKV_EINVAL);
    return;
  }
  FUZZ_REQUIRE(fuzz_is_utf8(text));

  status = mkv_json(text, &again, &error);
  if (status != MKV_OK) {
    /*
     * libbson 1.23 renders a date after the year 9999 as ISO 8601 text
     * with a five-digit year, which its own parser then rejects.
     */
    fuzz_check_rejected(status, &error);
    FUZZ_REQUIRE(!exact || value_contains(value, is_date_after_year_9999));
    goto done;
  }

  second = mkv_value_to_json(&again);
  if (exact) {
    FUZZ_REQUIRE(second != NULL);
    FUZZ_REQUIRE(strcmp(text, second) == 0);
    if (!value_contains(value, is_int64))
      FUZZ_REQUIRE(fuzz_same_encoding(value, &again));
  }
  bson_value_destroy(&again);

done:
  bson_free(second);
  bson_free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *json = fuzz_text(data, size);
  bson_value_t value = {0};
  bson_error_t error = {0};
  int status = mkv_json(json, &value, &error);

  if (status == MKV_OK) {
    check_round_trip(&value);
    bson_value_destroy(&value);
  } else {
    fuzz_check_rejected(status, &error);
    FUZZ_REQUIRE(value.value_type == BSON_TYPE_EOD);
  }
  free(json);
  return 0;
}
