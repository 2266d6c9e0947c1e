/* Values: helpers, Extended JSON in and out, and input checks. */
#include <string.h>

#include "mkv-private.h"

/* The field name that wraps a lone value into a parseable document. */
#define WRAP_KEY "v"

bson_value_t mkv_str(const char *str) {
  bson_value_t value;

  memset(&value, 0, sizeof value);
  value.value_type = BSON_TYPE_UTF8;
  /* libbson's struct has no const member; mkv never writes through it. */
  value.value.v_utf8.str = (char *)str;
  value.value.v_utf8.len = str == NULL ? 0 : (uint32_t)strlen(str);
  return value;
}

bson_value_t mkv_int64(int64_t number) {
  bson_value_t value;

  memset(&value, 0, sizeof value);
  value.value_type = BSON_TYPE_INT64;
  value.value.v_int64 = number;
  return value;
}

bson_value_t mkv_double(double number) {
  bson_value_t value;

  memset(&value, 0, sizeof value);
  value.value_type = BSON_TYPE_DOUBLE;
  value.value.v_double = number;
  return value;
}

bson_value_t mkv_bool(bool boolean) {
  bson_value_t value;

  memset(&value, 0, sizeof value);
  value.value_type = BSON_TYPE_BOOL;
  value.value.v_bool = boolean;
  return value;
}

bson_value_t mkv_null(void) {
  bson_value_t value;

  memset(&value, 0, sizeof value);
  value.value_type = BSON_TYPE_NULL;
  return value;
}

int mkv_json(const char *json, bson_value_t *value, bson_error_t *error) {
  bson_json_reader_t *reader;
  bson_error_t parse_error;
  bson_iter_t iter;
  bson_t doc, rest;
  char *wrapped;
  size_t len;
  int more;
  int status = MKV_OK;

  if (json == NULL || value == NULL) {
    mkv_error_set(error, MKV_EINVAL, "mkv_json: %s is NULL",
                  json == NULL ? "json" : "value");
    return MKV_EINVAL;
  }

  len = strlen(json);
  if (!bson_utf8_validate(json, len, false)) {
    mkv_error_set(error, MKV_EINVAL,
                  "mkv_json: the text is not valid UTF-8; encode it as UTF-8");
    return MKV_EINVAL;
  }

  /*
   * libbson parses only documents, so the value is parsed as the one field
   * of {"v": ...}. Text that closes the wrapper early shows up as a second
   * document or a parse error, and text that adds fields as extra keys.
   */
  wrapped = bson_strdup_printf("{\"" WRAP_KEY "\": %s\n}", json);
  reader = bson_json_data_reader_new(true, 0);
  bson_json_data_reader_ingest(reader, (const uint8_t *)wrapped,
                               strlen(wrapped));
  memset(&parse_error, 0, sizeof parse_error);
  bson_init(&doc);
  if (bson_json_reader_read(reader, &doc, &parse_error) != 1) {
    mkv_error_set(error, MKV_EINVAL, "mkv_json: invalid Extended JSON: %s",
                  parse_error.message);
    status = MKV_EINVAL;
    goto done;
  }
  bson_init(&rest);
  more = bson_json_reader_read(reader, &rest, &parse_error);
  bson_destroy(&rest);
  if (more != 0 || bson_count_keys(&doc) != 1 ||
      !bson_iter_init_find(&iter, &doc, WRAP_KEY)) {
    mkv_error_set(error, MKV_EINVAL,
                  "mkv_json: invalid Extended JSON: expected exactly one "
                  "value, found extra text after it");
    status = MKV_EINVAL;
    goto done;
  }

  bson_value_copy(bson_iter_value(&iter), value);

done:
  bson_destroy(&doc);
  bson_json_reader_destroy(reader);
  bson_free(wrapped);
  return status;
}

char *mkv_value_to_json(const bson_value_t *value) {
  static const char prefix[] = "{ \"" WRAP_KEY "\" : ";
  static const char suffix[] = " }";
  const size_t prefix_len = sizeof prefix - 1;
  const size_t suffix_len = sizeof suffix - 1;
  bson_t doc = BSON_INITIALIZER;
  char *json = NULL;
  char *text;
  size_t len = 0;

  if (value == NULL || mkv_check_value(value, NULL, NULL) != MKV_OK)
    goto done;
  if (!bson_append_value(&doc, WRAP_KEY, -1, value))
    goto done;

  /* libbson renders {"v": X} as `{ "v" : X }`; keep the X. */
  text = bson_as_relaxed_extended_json(&doc, &len);
  if (text == NULL)
    goto done;
  if (len >= prefix_len + suffix_len &&
      memcmp(text, prefix, prefix_len) == 0 &&
      memcmp(text + len - suffix_len, suffix, suffix_len) == 0) {
    json = bson_strndup(text + prefix_len, len - prefix_len - suffix_len);
  }
  bson_free(text);

done:
  bson_destroy(&doc);
  return json;
}

void mkv_keys_destroy(mkv_keys_t *keys) {
  if (keys == NULL)
    return;
  for (size_t i = 0; i < keys->count; i++)
    bson_free(keys->keys[i]);
  bson_free(keys->keys);
  keys->keys = NULL;
  keys->count = 0;
}

int mkv_check_key(const char *key, const char *op, bson_error_t *error) {
  if (key == NULL) {
    mkv_error_set(error, MKV_EINVAL, "%s: key is NULL; pass a key string", op);
    return MKV_EINVAL;
  }
  if (!bson_utf8_validate(key, strlen(key), false)) {
    mkv_error_set(error, MKV_EINVAL,
                  "%s: key is not valid UTF-8; encode keys as UTF-8", op);
    return MKV_EINVAL;
  }
  return MKV_OK;
}

static bool type_is_known(bson_type_t type) {
  switch (type) {
  case BSON_TYPE_DOUBLE:
  case BSON_TYPE_UTF8:
  case BSON_TYPE_DOCUMENT:
  case BSON_TYPE_ARRAY:
  case BSON_TYPE_BINARY:
  case BSON_TYPE_UNDEFINED:
  case BSON_TYPE_OID:
  case BSON_TYPE_BOOL:
  case BSON_TYPE_DATE_TIME:
  case BSON_TYPE_NULL:
  case BSON_TYPE_REGEX:
  case BSON_TYPE_DBPOINTER:
  case BSON_TYPE_CODE:
  case BSON_TYPE_SYMBOL:
  case BSON_TYPE_CODEWSCOPE:
  case BSON_TYPE_INT32:
  case BSON_TYPE_TIMESTAMP:
  case BSON_TYPE_INT64:
  case BSON_TYPE_DECIMAL128:
  case BSON_TYPE_MAXKEY:
  case BSON_TYPE_MINKEY:
    return true;
  case BSON_TYPE_EOD:
  default:
    return false;
  }
}

/* Checks that the string an iterator points at is UTF-8 (NUL allowed). */
static bool string_is_utf8(const bson_iter_t *iter) {
  uint32_t len = 0;
  const char *str;

  switch (bson_iter_type(iter)) {
  case BSON_TYPE_UTF8:
    str = bson_iter_utf8(iter, &len);
    break;
  case BSON_TYPE_SYMBOL:
    str = bson_iter_symbol(iter, &len);
    break;
  case BSON_TYPE_CODE:
    str = bson_iter_code(iter, &len);
    break;
  default:
    return true;
  }
  return str != NULL && bson_utf8_validate(str, len, true);
}

/*
 * Walks every key and string of a well-formed document, nested ones
 * included, and returns false at the first that is not UTF-8. It keeps its
 * own stack of iterators, so deep nesting cannot overflow the C stack.
 */
static bool document_is_utf8(const bson_t *doc) {
  bson_iter_t *stack;
  size_t depth = 0;
  size_t capacity = 16;
  bool valid = true;

  stack = bson_malloc(capacity * sizeof *stack);
  if (!bson_iter_init(&stack[0], doc)) {
    bson_free(stack);
    return false;
  }

  while (valid) {
    bson_iter_t *iter = &stack[depth];

    if (!bson_iter_next(iter)) {
      if (depth == 0)
        break;
      depth--;
      continue;
    }
    if (!bson_utf8_validate(bson_iter_key(iter), bson_iter_key_len(iter),
                            false) ||
        !string_is_utf8(iter)) {
      valid = false;
      break;
    }
    if (BSON_ITER_HOLDS_DOCUMENT(iter) || BSON_ITER_HOLDS_ARRAY(iter)) {
      if (depth + 1 == capacity) {
        capacity *= 2;
        stack = bson_realloc(stack, capacity * sizeof *stack);
        iter = &stack[depth];
      }
      if (!bson_iter_recurse(iter, &stack[depth + 1])) {
        valid = false;
        break;
      }
      depth++;
    }
  }

  bson_free(stack);
  return valid;
}

/* Checks a document or array value: well-formed BSON with UTF-8 strings. */
static int check_document(const bson_value_t *value, const char *where,
                          bson_error_t *error) {
  const char *kind =
      value->value_type == BSON_TYPE_ARRAY ? "array" : "document";
  bson_error_t invalid;
  bson_t doc;

  if (value->value.v_doc.data == NULL ||
      !bson_init_static(&doc, value->value.v_doc.data,
                        value->value.v_doc.data_len)) {
    mkv_error_set(error, MKV_EINVAL, "%s: value is not a well-formed BSON %s",
                  where, kind);
    return MKV_EINVAL;
  }
  if (!bson_validate_with_error(&doc, BSON_VALIDATE_NONE, &invalid)) {
    mkv_error_set(error, MKV_EINVAL, "%s: value is invalid BSON: %s", where,
                  invalid.message);
    return MKV_EINVAL;
  }
  /*
   * libbson 1.23's bson_validate() with BSON_VALIDATE_UTF8 accepts invalid
   * UTF-8 in string values, so the strings are checked here instead.
   */
  if (!document_is_utf8(&doc)) {
    mkv_error_set(error, MKV_EINVAL,
                  "%s: the %s value contains a key or string that is not valid "
                  "UTF-8; encode it as UTF-8 or store the bytes as binary",
                  where, kind);
    return MKV_EINVAL;
  }
  return MKV_OK;
}

/* Writes where a set failed, for the start of an error message. */
static void describe_set(const char *key, char *out, size_t out_size) {
  char quoted[MKV_KEY_QUOTE_MAX + 8];

  if (key == NULL) {
    bson_snprintf(out, out_size, "set with a new key");
    return;
  }
  mkv_quote_key(key, quoted, sizeof quoted);
  bson_snprintf(out, out_size, "set key \"%s\"", quoted);
}

/*
 * Checks that the document {_id: key, value: value} fits the server's
 * document size limit, so that a value too large is never sent. An auto
 * key is 24 bytes.
 */
int mkv_check_size(const bson_value_t *value, const char *key,
                   bson_error_t *error) {
  char where[MKV_KEY_QUOTE_MAX + 32];
  bson_t wrapper = BSON_INITIALIZER;
  size_t key_len = key == NULL ? 24 : strlen(key);
  size_t stored_len = SIZE_MAX;

  /* {value: v} plus the _id element: type, "_id\0", length, key, NUL. */
  if (bson_append_value(&wrapper, "value", 5, value))
    stored_len = wrapper.len + 1 + 4 + 4 + key_len + 1;
  bson_destroy(&wrapper);

  if (stored_len <= MKV_MAX_DOCUMENT_SIZE)
    return MKV_OK;

  describe_set(key, where, sizeof where);
  mkv_error_set(error, MKV_EINVAL,
                "%s: value too large: the document would exceed the "
                "%d-byte (16 MiB) limit of a MongoDB document; split the "
                "value or store it elsewhere",
                where, MKV_MAX_DOCUMENT_SIZE);
  return MKV_EINVAL;
}

/*
 * Checks that a value can be stored: a known BSON type, UTF-8 strings, and
 * well-formed documents. `key` names the key in the message (NULL for an
 * auto key).
 */
int mkv_check_value(const bson_value_t *value, const char *key,
                    bson_error_t *error) {
  char where[MKV_KEY_QUOTE_MAX + 32];

  describe_set(key, where, sizeof where);

  if (value == NULL) {
    mkv_error_set(error, MKV_EINVAL, "%s: value is NULL; pass a bson_value_t",
                  where);
    return MKV_EINVAL;
  }
  if (!type_is_known(value->value_type)) {
    mkv_error_set(error, MKV_EINVAL, "%s: value has unknown BSON type 0x%02x",
                  where, (unsigned)value->value_type);
    return MKV_EINVAL;
  }

  switch (value->value_type) {
  case BSON_TYPE_UTF8:
    if (value->value.v_utf8.str == NULL) {
      mkv_error_set(error, MKV_EINVAL, "%s: string value is NULL", where);
      return MKV_EINVAL;
    }
    if (!bson_utf8_validate(value->value.v_utf8.str, value->value.v_utf8.len,
                            true)) {
      mkv_error_set(error, MKV_EINVAL,
                    "%s: string value is not valid UTF-8; encode it as UTF-8 "
                    "or store it as binary",
                    where);
      return MKV_EINVAL;
    }
    return MKV_OK;
  case BSON_TYPE_DOCUMENT:
  case BSON_TYPE_ARRAY:
    return check_document(value, where, error);
  default:
    return MKV_OK;
  }
}
