/* Values: helpers, Extended JSON in and out, and input checks. */
#include <stdarg.h>
#include <string.h>

#include "mkv-private.h"

/* The field name that wraps a lone value into a parseable document. */
#define WRAP_KEY "v"

/* The text that mkv_json() puts before the caller's JSON. */
#define WRAP_PREFIX "{\"" WRAP_KEY "\": "

/*
 * Reports a libbson parse error of the wrapped text, with the position
 * counted from the start of the caller's `json_len` bytes.
 */
/* NOTE: this depends on the wording of libbson 1.23's parse errors. */
static void report_parse_error(const char *message, size_t json_len,
                               bson_error_t *error) {
  static const char marker[] = ", position ";
  const char *at = strstr(message, marker);
  const long prefix_len = (long)sizeof WRAP_PREFIX - 1;
  char *rest = NULL;
  long position;

  if (at == NULL) {
    mkv_error_set(error, MKV_EINVAL, "mkv_json: invalid Extended JSON: %s",
                  message);
    return;
  }
  position = strtol(at + sizeof marker - 1, &rest, 10) - prefix_len;
  if (position < 0 || (size_t)position >= json_len) {
    mkv_error_set(error, MKV_EINVAL,
                  "mkv_json: invalid Extended JSON: the text ends before "
                  "its value is complete");
    return;
  }
  mkv_error_set(error, MKV_EINVAL,
                "mkv_json: invalid Extended JSON: %.*s, position %ld%s",
                (int)(at - message), message, position, rest);
}

bson_value_t mkv_str(const char *str) {
  bson_value_t value;

  memset(&value, 0, sizeof value);
  value.value_type = BSON_TYPE_UTF8;
  /* libbson's struct has no const member; mkv never writes through it. */
  value.value.v_utf8.str = (char *)str;
  /* A string too long for BSON gets a length that encoding rejects. */
  value.value.v_utf8.len =
      str == NULL
          ? 0
          : (strlen(str) >= UINT32_MAX ? UINT32_MAX : (uint32_t)strlen(str));
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
  wrapped = bson_strdup_printf(WRAP_PREFIX "%s\n}", json);
  reader = bson_json_data_reader_new(true, 0);
  bson_json_data_reader_ingest(reader, (const uint8_t *)wrapped,
                               strlen(wrapped));
  memset(&parse_error, 0, sizeof parse_error);
  bson_init(&doc);
  if (bson_json_reader_read(reader, &doc, &parse_error) != 1) {
    report_parse_error(parse_error.message, len, error);
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

  if (value == NULL || mkv_check_value(value, NULL, NULL, NULL) != MKV_OK)
    goto done;
  if (!bson_append_value(&doc, WRAP_KEY, -1, value))
    goto done;

  /*
   * libbson renders {"v": X} as `{ "v" : X }`; keep the X.
   * NOTE: libbson 1.23 renders a date after the year 9999 as an ISO
   * string with more than four year digits, which mkv_json() rejects.
   * Dates before 1970 render as $numberLong and parse back.
   */
  text = bson_as_relaxed_extended_json(&doc, &len);
  if (text == NULL)
    goto done;
  if (len >= prefix_len + suffix_len && memcmp(text, prefix, prefix_len) == 0 &&
      memcmp(text + len - suffix_len, suffix, suffix_len) == 0) {
    json = bson_strndup(text + prefix_len, len - prefix_len - suffix_len);
  }
  bson_free(text);

done:
  bson_destroy(&doc);
  return json;
}

/*
 * A block of key strings. The keys of one mkv_keys_t live in a chain of
 * blocks, newest first, that the slot before keys->keys[0] points to. So a
 * million short keys cost a few hundred allocations, not a million, each
 * with malloc's header and rounding.
 */
typedef struct mkv_key_block_s {
  struct mkv_key_block_s *prev;
  size_t used;
  size_t size;
  char text[];
} mkv_key_block_t;

/* The first block holds 4 KiB of keys, and each next one twice as much,
 * up to 1 MiB. */
#define KEY_BLOCK_MIN_SIZE 4096
#define KEY_BLOCK_MAX_SIZE (1024 * 1024)

static mkv_key_block_t *newest_block(const mkv_keys_t *keys) {
  return (mkv_key_block_t *)(void *)keys->keys[-1];
}

/* Returns `len` bytes for a key in the newest block, adding a block when
 * it has no room. keys->keys must have its hidden slot. */
static char *key_block_alloc(mkv_keys_t *keys, size_t len) {
  mkv_key_block_t *block = newest_block(keys);
  char *text;

  if (block == NULL || block->size - block->used < len) {
    size_t size = block == NULL ? KEY_BLOCK_MIN_SIZE : block->size * 2;
    mkv_key_block_t *next;

    if (size > KEY_BLOCK_MAX_SIZE)
      size = KEY_BLOCK_MAX_SIZE;
    if (size < len)
      size = len;
    next = bson_malloc(sizeof *next + size);
    next->prev = block;
    next->used = 0;
    next->size = size;
    keys->keys[-1] = (char *)(void *)next;
    block = next;
  }
  text = block->text + block->used;
  block->used += len;
  return text;
}

void mkv_keys_append(mkv_keys_t *keys, size_t *capacity, const char *key,
                     size_t len) {
  char *copy;

  if (keys->count == *capacity) {
    char **slots = keys->keys == NULL ? NULL : keys->keys - 1;

    *capacity = *capacity == 0 ? 64 : *capacity * 2;
    slots = bson_realloc(slots, (*capacity + 1) * sizeof *slots);
    if (keys->keys == NULL)
      slots[0] = NULL;
    keys->keys = slots + 1;
  }
  copy = key_block_alloc(keys, len + 1);
  memcpy(copy, key, len);
  copy[len] = '\0';
  keys->keys[keys->count++] = copy;
}

void mkv_keys_destroy(mkv_keys_t *keys) {
  mkv_key_block_t *block;

  if (keys == NULL)
    return;
  if (keys->keys != NULL) {
    block = newest_block(keys);
    while (block != NULL) {
      mkv_key_block_t *prev = block->prev;

      bson_free(block);
      block = prev;
    }
    bson_free(keys->keys - 1);
  }
  keys->keys = NULL;
  keys->count = 0;
}

/*
 * Checks that a key is UTF-8 and short enough to be stored. A get or remove
 * of a longer key could match nothing, and libmongoc would reject some of
 * those commands and send others, so mkv rejects them all alike.
 * NOTE: MongoDB before 4.2 limits index keys to 1024 bytes, so such a
 * server rejects a longer key itself, as a server error.
 */
int mkv_check_key(const char *key, const char *op, bson_error_t *error) {
  size_t len;

  if (key == NULL) {
    mkv_error_set(error, MKV_EINVAL, "%s: key is NULL; pass a key string", op);
    return MKV_EINVAL;
  }
  len = strlen(key);
  if (len > MKV_MAX_KEY_LEN) {
    mkv_error_set(error, MKV_EINVAL,
                  "%s: key too long: %zu bytes, over the maximum of %d that "
                  "fits in a 16 MiB MongoDB document; use a shorter key",
                  op, len, MKV_MAX_KEY_LEN);
    return MKV_EINVAL;
  }
  if (!bson_utf8_validate(key, len, false)) {
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

/* The regular expression options that MongoDB accepts. */
#define REGEX_OPTIONS "ilmsux"

/*
 * Checks the text fields that libbson's bson_append_value() reads up to
 * their NUL rather than by length, so each must end with a NUL at its
 * length. Regex options must be ones MongoDB accepts, because libbson
 * silently drops the others.
 */
static bool text_fields_consistent(const bson_value_t *value) {
  const bson_value_t *v = value;

  switch (v->value_type) {
  case BSON_TYPE_CODE:
    return strlen(v->value.v_code.code) == v->value.v_code.code_len;
  case BSON_TYPE_CODEWSCOPE:
    return strlen(v->value.v_codewscope.code) == v->value.v_codewscope.code_len;
  case BSON_TYPE_DBPOINTER:
    return strlen(v->value.v_dbpointer.collection) ==
           v->value.v_dbpointer.collection_len;
  case BSON_TYPE_REGEX:
    return strspn(v->value.v_regex.options, REGEX_OPTIONS) ==
           strlen(v->value.v_regex.options);
  default:
    return true;
  }
}

/* Checks that every pointer a value of its type needs is set. */
static bool pointers_present(const bson_value_t *value) {
  const bson_value_t *v = value;

  switch (v->value_type) {
  case BSON_TYPE_UTF8:
    return v->value.v_utf8.str != NULL;
  case BSON_TYPE_SYMBOL:
    return v->value.v_symbol.symbol != NULL;
  case BSON_TYPE_CODE:
    return v->value.v_code.code != NULL;
  case BSON_TYPE_DOCUMENT:
  case BSON_TYPE_ARRAY:
    return v->value.v_doc.data != NULL;
  case BSON_TYPE_BINARY:
    return v->value.v_binary.data != NULL || v->value.v_binary.data_len == 0;
  case BSON_TYPE_REGEX:
    return v->value.v_regex.regex != NULL && v->value.v_regex.options != NULL;
  case BSON_TYPE_DBPOINTER:
    return v->value.v_dbpointer.collection != NULL;
  case BSON_TYPE_CODEWSCOPE:
    return v->value.v_codewscope.code != NULL &&
           v->value.v_codewscope.scope_data != NULL;
  default:
    return true;
  }
}

static bool cstring_is_utf8(const char *str) {
  return str != NULL && bson_utf8_validate(str, strlen(str), false);
}

/*
 * Returns the length of the ASCII prefix of `len` bytes. It tests 32 bytes
 * at a time, so the common all-ASCII text costs a fraction of
 * bson_utf8_validate(), which decodes one character at a time.
 */
static size_t ascii_prefix_len(const char *str, size_t len) {
  const uint64_t high_bits = UINT64_C(0x8080808080808080);
  uint64_t words[4];
  size_t i = 0;

  for (; i + sizeof words <= len; i += sizeof words) {
    memcpy(words, str + i, sizeof words);
    if (((words[0] | words[1] | words[2] | words[3]) & high_bits) != 0)
      break;
  }
  while (i < len && (unsigned char)str[i] < 0x80)
    i++;
  return i;
}

/*
 * Checks that `len` bytes are UTF-8, NUL bytes included. libbson 1.23's
 * bson_utf8_validate() with NUL allowed also accepts 0xC0 0x80, the
 * overlong NUL of modified UTF-8, which is not UTF-8 and which libbson's
 * JSON rendering rejects. UTF-8 never contains the byte 0xC0, and libbson
 * rejects every other sequence that starts with it.
 */
static bool text_is_utf8(const char *str, uint32_t len) {
  size_t ascii;

  if (str == NULL)
    return false;
  /* ASCII characters are whole, so libbson checks only the rest. */
  ascii = ascii_prefix_len(str, len);
  return bson_utf8_validate(str + ascii, len - ascii, true) &&
         memchr(str + ascii, 0xC0, len - ascii) == NULL;
}

/* Checks that the strings of the element an iterator points at are UTF-8. */
static bool element_strings_are_utf8(const bson_iter_t *iter) {
  uint32_t len = 0;
  uint32_t scope_len = 0;
  const uint8_t *scope = NULL;
  const char *str = NULL;
  const char *options = NULL;
  const bson_oid_t *oid = NULL;

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
  case BSON_TYPE_CODEWSCOPE:
    str = bson_iter_codewscope(iter, &len, &scope_len, &scope);
    break;
  case BSON_TYPE_DBPOINTER:
    bson_iter_dbpointer(iter, &len, &str, &oid);
    break;
  case BSON_TYPE_REGEX:
    str = bson_iter_regex(iter, &options);
    return cstring_is_utf8(str) && cstring_is_utf8(options);
  default:
    return true;
  }
  return text_is_utf8(str, len);
}

/* Starts `child` on the document or code scope that `iter` points at. */
static bool enter_element(const bson_iter_t *iter, bson_iter_t *child) {
  uint32_t len = 0;
  uint32_t scope_len = 0;
  const uint8_t *scope = NULL;

  if (BSON_ITER_HOLDS_DOCUMENT(iter) || BSON_ITER_HOLDS_ARRAY(iter))
    return bson_iter_recurse(iter, child);
  bson_iter_codewscope(iter, &len, &scope_len, &scope);
  return scope != NULL && bson_iter_init_from_data(child, scope, scope_len);
}

static bool element_has_children(const bson_iter_t *iter) {
  return BSON_ITER_HOLDS_DOCUMENT(iter) || BSON_ITER_HOLDS_ARRAY(iter) ||
         BSON_ITER_HOLDS_CODEWSCOPE(iter);
}

typedef enum {
  CONTENT_OK,
  CONTENT_EMPTY_KEY,
  CONTENT_NOT_UTF8,
  CONTENT_TOO_DEEP,
  CONTENT_CORRUPT,
} content_check_t;

/*
 * Walks every key and string of a well-formed document, nested documents
 * and code scopes included, and checks that each is UTF-8 and that nesting
 * stays within MKV_MAX_NESTING levels (the document itself is level 1). It
 * keeps its own stack of iterators, so no input can overflow the C stack.
 */
static content_check_t check_content(const bson_t *doc, size_t max_levels) {
  /* A struct per level, because bson_iter_t's alignment exceeds its size. */
  struct {
    bson_iter_t iter;
  } stack[MKV_MAX_NESTING];
  size_t depth = 0;

  if (!bson_iter_init(&stack[0].iter, doc))
    return CONTENT_CORRUPT;

  for (;;) {
    bson_iter_t *iter = &stack[depth].iter;

    if (!bson_iter_next(iter)) {
      if (iter->err_off != 0)
        return CONTENT_CORRUPT;
      if (depth == 0)
        return CONTENT_OK;
      depth--;
      continue;
    }
    if (bson_iter_key_len(iter) == 0)
      return CONTENT_EMPTY_KEY;
    if (!bson_utf8_validate(bson_iter_key(iter), bson_iter_key_len(iter),
                            false) ||
        !element_strings_are_utf8(iter))
      return CONTENT_NOT_UTF8;
    if (!element_has_children(iter))
      continue;
    if (depth + 1 >= max_levels)
      return CONTENT_TOO_DEEP;
    if (!enter_element(iter, &stack[depth + 1].iter))
      return CONTENT_CORRUPT;
    depth++;
  }
}

/* Writes where a set failed, for the start of an error message. */
static void describe_set(const char *key, char *out, size_t out_size) {
  mkv_op_t op = {.kind = MKV_OP_SET, .key = key};

  mkv_describe_op(&op, out, out_size);
}

/*
 * Sets an MKV_EINVAL error that names the set of `key` that failed, then
 * the detail, and returns MKV_EINVAL. The description is formatted only
 * here, on failure, so a valid value costs no formatting.
 */
static int reject_value(bson_error_t *error, const char *key, const char *fmt,
                        ...) BSON_GNUC_PRINTF(3, 4);
static int reject_value(bson_error_t *error, const char *key, const char *fmt,
                        ...) {
  char where[MKV_KEY_QUOTE_MAX + 32];
  char detail[sizeof error->message];
  va_list args;

  if (error == NULL)
    return MKV_EINVAL;
  describe_set(key, where, sizeof where);
  va_start(args, fmt);
  bson_vsnprintf(detail, sizeof detail, fmt, args);
  va_end(args);
  mkv_error_set(error, MKV_EINVAL, "%s: %s", where, detail);
  return MKV_EINVAL;
}

/*
 * Checks a document of at most `max_levels` levels, in one walk: a
 * {value: v} wrapper, or a document or array value itself.
 * bson_iter_next() and bson_iter_recurse() in check_content() reject every
 * element and nested document whose lengths or terminators are wrong, as
 * bson_validate() with BSON_VALIDATE_NONE does, and test_malformed checks
 * that against bson_validate(). A second walk by bson_validate() would
 * check every string for UTF-8 again, which costs as much as the rest of a
 * set for a 16 KiB string, and libbson 1.23.1 accepts invalid UTF-8 there
 * anyway. check_content() also stops at MKV_MAX_NESTING levels without
 * recursion, where bson_validate() recurses once per level.
 */
static int check_wrapped(const bson_t *doc, size_t max_levels, const char *key,
                         bson_error_t *error) {
  switch (check_content(doc, max_levels)) {
  case CONTENT_OK:
    break;
  case CONTENT_EMPTY_KEY:
    /* libmongoc 1.23 rejects such documents in inserts and updates. */
    return reject_value(error, key,
                        "value contains a document with an empty field name; "
                        "give every field a name");
  case CONTENT_NOT_UTF8:
    return reject_value(error, key,
                        "value contains a key or string that is not valid "
                        "UTF-8; encode text as UTF-8 or store the bytes as "
                        "binary");
  case CONTENT_TOO_DEEP:
    return reject_value(error, key,
                        "value nests documents and arrays more than %d "
                        "levels deep, the most MongoDB stores (the key's "
                        "document is the first level); flatten the value",
                        MKV_MAX_NESTING);
  case CONTENT_CORRUPT:
  default:
    return reject_value(error, key, "value is malformed BSON");
  }
  return MKV_OK;
}

/* Checks that the keys of an array are "0", "1", "2" and so on. */
static bool array_keys_are_indexes(const bson_t *array) {
  char buffer[16];
  const char *expected;
  uint32_t index = 0;
  bson_iter_t iter;

  if (!bson_iter_init(&iter, array))
    return false;
  while (bson_iter_next(&iter)) {
    bson_uint32_to_string(index++, &expected, buffer, sizeof buffer);
    if (strcmp(bson_iter_key(&iter), expected) != 0)
      return false;
  }
  return true;
}

/*
 * Checks a document or array value where it lies, since copying it into a
 * {value: v} wrapper first would cost as much as the check for a large
 * value. The value is the second level of the stored document. Sets
 * `wrapped_len` to the size the wrapper would have.
 */
static int check_nested_value(const bson_value_t *value, const char *key,
                              size_t *wrapped_len, bson_error_t *error) {
  bson_t doc;
  int status;

  if (!bson_init_static(&doc, value->value.v_doc.data,
                        value->value.v_doc.data_len))
    return reject_value(error, key, "value is malformed BSON");
  status = check_wrapped(&doc, MKV_MAX_NESTING - 1, key, error);
  if (status != MKV_OK)
    return status;
  /* libbson prints a warning to stderr when it appends such an array. */
  if (value->value_type == BSON_TYPE_ARRAY && !array_keys_are_indexes(&doc))
    return reject_value(error, key,
                        "value is an array whose keys are not \"0\", \"1\", "
                        "\"2\" and so on; number its elements from \"0\", as "
                        "bson_uint32_to_string() does");
  /* Length, type byte, field name and its NUL, the value, final NUL. */
  *wrapped_len = 4 + 1 + sizeof MKV_VALUE_FIELD + doc.len + 1;
  return MKV_OK;
}

/*
 * Checks that a value can be stored: a known BSON type with the pointers it
 * needs, well-formed BSON, UTF-8 keys and strings, and at most
 * MKV_MAX_NESTING levels. `key` names the key in the message (NULL for an
 * auto key). When `stored_len` is not NULL it receives the size of the
 * document {_id: key, value: value}.
 */
int mkv_check_value(const bson_value_t *value, const char *key,
                    size_t *stored_len, bson_error_t *error) {
  bson_t wrapper = BSON_INITIALIZER;
  size_t wrapped_len = 0;
  size_t key_len;
  int status;

  if (value == NULL)
    return reject_value(error, key, "value is NULL; pass a bson_value_t");
  if (!type_is_known(value->value_type))
    return reject_value(error, key, "value has unknown BSON type 0x%02x",
                        (unsigned)value->value_type);
  if (!pointers_present(value))
    return reject_value(error, key,
                        "value of BSON type 0x%02x has a NULL data pointer",
                        (unsigned)value->value_type);
  if (!text_fields_consistent(value))
    return reject_value(error, key,
                        "value of BSON type 0x%02x has text whose length "
                        "field does not match its NUL terminator, or regex "
                        "options other than \"" REGEX_OPTIONS "\"",
                        (unsigned)value->value_type);
  if (value->value_type == BSON_TYPE_DOCUMENT ||
      value->value_type == BSON_TYPE_ARRAY) {
    status = check_nested_value(value, key, &wrapped_len, error);
  } else {
    if (!bson_append_value(&wrapper, MKV_VALUE_FIELD, -1, value)) {
      bson_destroy(&wrapper);
      return reject_value(error, key,
                          "value cannot be encoded as BSON; check its lengths");
    }
    status = check_wrapped(&wrapper, MKV_MAX_NESTING, key, error);
    wrapped_len = wrapper.len;
    bson_destroy(&wrapper);
  }

  /* {value: v} plus the _id element: type, "_id\0", length, key, NUL. */
  key_len = key == NULL ? MKV_AUTO_KEY_LEN : strlen(key);
  if (status == MKV_OK && stored_len != NULL)
    *stored_len = wrapped_len + 1 + 4 + 4 + key_len + 1;
  return status;
}

/*
 * Checks that the document {_id: key, value: value} of a checked value fits
 * the server's document size limit, so a value too large is never sent.
 */
int mkv_check_size(size_t stored_len, const char *key, bson_error_t *error) {
  char where[MKV_KEY_QUOTE_MAX + 32];

  if (stored_len <= MKV_MAX_DOCUMENT_SIZE)
    return MKV_OK;

  describe_set(key, where, sizeof where);
  mkv_error_set(error, MKV_EINVAL,
                "%s: value too large: the document {_id, value} would be %zu "
                "bytes, %zu of them the key, over the %d-byte (16 MiB) limit "
                "of a MongoDB document; split the value, use a shorter key, "
                "or store the value elsewhere",
                where, stored_len, key == NULL ? MKV_AUTO_KEY_LEN : strlen(key),
                MKV_MAX_DOCUMENT_SIZE);
  return MKV_EINVAL;
}
