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

/*
 * Returns true when `len` bytes are UTF-8 as RFC 3629 defines it, NUL bytes
 * included: no overlong forms, no surrogates, nothing above U+10FFFF. It
 * does not use libbson, so it can check what libbson's own check accepts.
 */
static inline bool fuzz_is_utf8_bytes(const char *text, size_t len) {
  const unsigned char *bytes = (const unsigned char *)text;
  size_t i = 0;

  while (i < len) {
    unsigned char lead = bytes[i];
    size_t continuation_count;
    uint32_t code_point, min;

    if (lead < 0x80) {
      i++;
      continue;
    }
    if ((lead & 0xE0) == 0xC0) {
      continuation_count = 1;
      code_point = lead & 0x1F;
      min = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      continuation_count = 2;
      code_point = lead & 0x0F;
      min = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
      continuation_count = 3;
      code_point = lead & 0x07;
      min = 0x10000;
    } else {
      return false;
    }
    if (len - i - 1 < continuation_count)
      return false;
    for (size_t k = 1; k <= continuation_count; k++) {
      if ((bytes[i + k] & 0xC0) != 0x80)
        return false;
      code_point = (code_point << 6) | (bytes[i + k] & 0x3F);
    }
    if (code_point < min || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF))
      return false;
    i += continuation_count + 1;
  }
  return true;
}

static inline bool fuzz_is_utf8(const char *text) {
  return fuzz_is_utf8_bytes(text, strlen(text));
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
