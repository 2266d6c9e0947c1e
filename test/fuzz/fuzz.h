/* Checks shared by the libFuzzer targets. */
#ifndef MKV_FUZZ_H
#define MKV_FUZZ_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mkv-private.h"

/*
 * Aborts with the failed condition when `cond` is false, so libFuzzer
 * saves the input as a crash.
 */
#define FUZZ_REQUIRE(cond)                                                     \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* Returns a NUL-terminated copy of the input, to release with free(). */
static inline char *fuzz_text(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);

  FUZZ_REQUIRE(text != NULL);
  if (size > 0)
    memcpy(text, data, size);
  text[size] = '\0';
  return text;
}

static inline bool fuzz_is_utf8(const char *text) {
  return bson_utf8_validate(text, strlen(text), false);
}

/*
 * Checks the error of a rejected input: MKV_EINVAL in mkv's domain, with a
 * message that is not empty and is valid UTF-8.
 */
static inline void fuzz_check_rejected(int status, const bson_error_t *error) {
  FUZZ_REQUIRE(status == MKV_EINVAL);
  FUZZ_REQUIRE(error->domain == MKV_ERROR_DOMAIN);
  FUZZ_REQUIRE((int)error->code == MKV_EINVAL);
  FUZZ_REQUIRE(error->message[0] != '\0');
  FUZZ_REQUIRE(fuzz_is_utf8(error->message));
}

/*
 * Returns true when two values encode to the same bytes as the one field of
 * a document, which is how mkv sends them.
 */
static inline bool fuzz_same_encoding(const bson_value_t *a,
                                      const bson_value_t *b) {
  bson_t wrap_a = BSON_INITIALIZER;
  bson_t wrap_b = BSON_INITIALIZER;
  bool same;

  FUZZ_REQUIRE(bson_append_value(&wrap_a, MKV_VALUE_FIELD, -1, a));
  FUZZ_REQUIRE(bson_append_value(&wrap_b, MKV_VALUE_FIELD, -1, b));
  same = bson_equal(&wrap_a, &wrap_b);
  bson_destroy(&wrap_a);
  bson_destroy(&wrap_b);
  return same;
}

#endif /* MKV_FUZZ_H */
