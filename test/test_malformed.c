/*
 * Tests that mkv rejects malformed BSON inside a value: documents mutated
 * byte by byte, each checked by mkv_value_to_json(), which runs the same
 * check as mkv_set(), against bson_validate() as the reference.
 */
#include "helpers.h"

#include <string.h>

/* Mutated documents per run. The generator is seeded, so every run checks
 * the same documents. */
#define MUTATION_ROUNDS 20000

/* xorshift32: a fixed sequence on every platform, unlike rand(). */
static uint32_t next_random(uint32_t *state) {
  uint32_t x = *state;

  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  *state = x;
  return x;
}

/* Builds a valid document with one element of most BSON types. */
static void build_seed(bson_t *doc) {
  bson_t child, array, scope = BSON_INITIALIZER;
  bson_oid_t oid;

  bson_init(doc);
  BSON_APPEND_UTF8(doc, "a", "hello");
  BSON_APPEND_INT32(doc, "b", 7);
  BSON_APPEND_DOCUMENT_BEGIN(doc, "c", &child);
  BSON_APPEND_UTF8(&child, "d", "xyz");
  BSON_APPEND_ARRAY_BEGIN(&child, "e", &array);
  BSON_APPEND_INT64(&array, "0", 1);
  BSON_APPEND_UTF8(&array, "1", "q");
  bson_append_array_end(&child, &array);
  bson_append_document_end(doc, &child);
  BSON_APPEND_INT32(&scope, "s", 1);
  BSON_APPEND_CODE_WITH_SCOPE(doc, "f", "return s", &scope);
  BSON_APPEND_REGEX(doc, "g", "ab+", "i");
  BSON_APPEND_BINARY(doc, "h", BSON_SUBTYPE_BINARY, (const uint8_t *)"xy", 2);
  bson_oid_init_from_string(&oid, "0123456789abcdef01234567");
  BSON_APPEND_DBPOINTER(doc, "i", "coll", &oid);
  BSON_APPEND_SYMBOL(doc, "j", "sym");
  BSON_APPEND_CODE(doc, "k", "code");
  bson_destroy(&scope);
}

/* Changes one to three bytes: a random byte, a flipped bit, +-2, or 0. */
static void mutate(uint8_t *bytes, uint32_t len, uint32_t *random) {
  uint32_t changes = 1 + next_random(random) % 3;

  for (uint32_t i = 0; i < changes; i++) {
    uint32_t at = next_random(random) % len;

    switch (next_random(random) % 4) {
    case 0:
      bytes[at] = (uint8_t)next_random(random);
      break;
    case 1:
      bytes[at] ^= (uint8_t)(1u << (next_random(random) % 8));
      break;
    case 2:
      bytes[at] = (uint8_t)(bytes[at] + next_random(random) % 5 - 2);
      break;
    default:
      bytes[at] = 0;
      break;
    }
  }
}

/* Returns whether {value: <bytes as a document>} passes bson_validate(). */
static bool reference_accepts(const bson_value_t *value) {
  bson_t wrapper = BSON_INITIALIZER;
  bool valid = bson_append_value(&wrapper, "value", -1, value) &&
               bson_validate(&wrapper, BSON_VALIDATE_NONE, NULL);

  bson_destroy(&wrapper);
  return valid;
}

/*
 * No mutated document that bson_validate() rejects passes mkv's check.
 * Both outcomes must occur, so the mutations reach past the easy cases.
 */
static void mutated_documents_rejected(void **state) {
  bson_t seed;
  uint32_t random = 0x6d6b76u;
  size_t accepted = 0, rejected = 0, accepted_malformed = 0;

  (void)state;
  build_seed(&seed);
  for (int round = 0; round < MUTATION_ROUNDS; round++) {
    uint8_t *bytes = bson_malloc(seed.len);
    bson_value_t value = {0};
    char *json;

    memcpy(bytes, bson_get_data(&seed), seed.len);
    mutate(bytes, seed.len, &random);
    value.value_type = BSON_TYPE_DOCUMENT;
    value.value.v_doc.data = bytes;
    value.value.v_doc.data_len = seed.len;

    json = mkv_value_to_json(&value);
    if (json == NULL) {
      rejected++;
    } else {
      accepted++;
      if (!reference_accepts(&value))
        accepted_malformed++;
    }
    bson_free(json);
    bson_free(bytes);
  }
  bson_destroy(&seed);

  assert_int_equal(accepted_malformed, 0);
  assert_true(accepted > 0);
  assert_true(rejected > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(mutated_documents_rejected),
  };

  if (test_check_environment() != 0) {
    return 1;
  }
  return cmocka_run_group_tests_name("malformed", tests, NULL, NULL);
}
