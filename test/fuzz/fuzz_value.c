/*
 * Fuzzes the path of a value: the checks of mkv_check_value(), the
 * documents that a set sends, and the reading of the documents that a get
 * or an all receives.
 *
 * Input layout: byte 0 is the BSON type of the value. Byte 1, when its top
 * bit is set, shortens the length field of the value's text by its low 7
 * bits, to test lengths that disagree with the text. The rest is the
 * payload: the bytes of a document or array, the text, or the scalar. The
 * payload is also read as a document from the server.
 */
#include "fuzz.h"

/* The key of every set; its length enters the size of the document. */
#define FUZZ_KEY "fuzz"

/* A value that borrows the payload, and the copies it owns. */
typedef struct {
  bson_value_t value;
  uint8_t *payload; /* the payload with a NUL after its last byte */
  char *code;       /* the code of a code with scope */
} built_value_t;

/* Returns `len` less the low 7 bits of `cut` when its top bit is set. */
static uint32_t cut_length(size_t len, uint8_t cut) {
  size_t by = (cut & 0x80) != 0 ? (size_t)(cut & 0x7f) : 0;

  return (uint32_t)(by > len ? 0 : len - by);
}

/*
 * Fills a code with scope: payload byte 0 is the length of the code that
 * follows, and the bytes after the code are the scope document.
 */
static void build_code_with_scope(built_value_t *built, size_t size,
                                  uint8_t cut) {
  bson_value_t *v = &built->value;
  size_t header_len = size > 0 ? 1 : 0;
  size_t code_len = size > 0 ? built->payload[0] : 0;

  if (code_len > size - header_len)
    code_len = size - header_len;
  built->code = fuzz_text(built->payload + header_len, code_len);
  v->value.v_codewscope.code = built->code;
  v->value.v_codewscope.code_len = cut_length(code_len, cut);
  v->value.v_codewscope.scope_data = built->payload + header_len + code_len;
  v->value.v_codewscope.scope_len = (uint32_t)(size - header_len - code_len);
}

/* Fills a DBPointer: the first 12 payload bytes are its ObjectId. */
static void build_dbpointer(built_value_t *built, size_t size, uint8_t cut) {
  bson_value_t *v = &built->value;
  size_t oid_len = size < 12 ? size : 12;

  memcpy(&v->value.v_dbpointer.oid, built->payload, oid_len);
  v->value.v_dbpointer.collection = (char *)built->payload + oid_len;
  v->value.v_dbpointer.collection_len = cut_length(size - oid_len, cut);
}

/* Fills a regex: its pattern ends at the first NUL, its options follow. */
static void build_regex(built_value_t *built, size_t size) {
  bson_value_t *v = &built->value;
  size_t pattern_len = strlen((char *)built->payload);

  v->value.v_regex.regex = (char *)built->payload;
  v->value.v_regex.options =
      (char *)built->payload + (pattern_len < size ? pattern_len + 1 : size);
}

static void build_value(built_value_t *built, uint8_t type, uint8_t cut,
                        const uint8_t *payload, size_t size) {
  bson_value_t *v = &built->value;
  char *text;

  built->payload = (uint8_t *)fuzz_text(payload, size);
  text = (char *)built->payload;
  v->value_type = (bson_type_t)type;

  switch (v->value_type) {
  case BSON_TYPE_UTF8:
    v->value.v_utf8.str = text;
    v->value.v_utf8.len = cut_length(size, cut);
    break;
  case BSON_TYPE_SYMBOL:
    v->value.v_symbol.symbol = text;
    v->value.v_symbol.len = cut_length(size, cut);
    break;
  case BSON_TYPE_CODE:
    v->value.v_code.code = text;
    v->value.v_code.code_len = cut_length(size, cut);
    break;
  case BSON_TYPE_CODEWSCOPE:
    build_code_with_scope(built, size, cut);
    break;
  case BSON_TYPE_DBPOINTER:
    build_dbpointer(built, size, cut);
    break;
  case BSON_TYPE_REGEX:
    build_regex(built, size);
    break;
  case BSON_TYPE_DOCUMENT:
  case BSON_TYPE_ARRAY:
    v->value.v_doc.data = built->payload;
    v->value.v_doc.data_len = (uint32_t)size;
    break;
  case BSON_TYPE_BINARY:
    v->value.v_binary.subtype =
        (bson_subtype_t)(size == 0 ? 0 : built->payload[0]);
    v->value.v_binary.data = size == 0 ? built->payload : built->payload + 1;
    v->value.v_binary.data_len = (uint32_t)(size == 0 ? 0 : size - 1);
    break;
  case BSON_TYPE_BOOL:
    v->value.v_bool = size > 0 && (built->payload[0] & 1) != 0;
    break;
  default:
    /* Scalars take their bits from the payload. */
    memcpy(&v->value, built->payload,
           size < sizeof v->value ? size : sizeof v->value);
    break;
  }
}

/* Checks that the field `path` of `doc` encodes as `expected` does. */
static void check_field(const bson_t *doc, const char *path,
                        const bson_value_t *expected) {
  bson_iter_t iter, field;

  FUZZ_REQUIRE(bson_iter_init(&iter, doc));
  FUZZ_REQUIRE(bson_iter_find_descendant(&iter, path, &field));
  FUZZ_REQUIRE(fuzz_same_encoding(expected, bson_iter_value(&field)));
}

/* Returns the text of a string-like element, or NULL for other types. */
static const char *element_text(const bson_iter_t *iter, uint32_t *len) {
  const bson_oid_t *oid = NULL;
  const uint8_t *scope = NULL;
  const char *text = NULL;
  uint32_t scope_len = 0;

  switch (bson_iter_type(iter)) {
  case BSON_TYPE_UTF8:
    return bson_iter_utf8(iter, len);
  case BSON_TYPE_SYMBOL:
    return bson_iter_symbol(iter, len);
  case BSON_TYPE_CODE:
    return bson_iter_code(iter, len);
  case BSON_TYPE_CODEWSCOPE:
    return bson_iter_codewscope(iter, len, &scope_len, &scope);
  case BSON_TYPE_DBPOINTER:
    bson_iter_dbpointer(iter, len, &text, &oid);
    return text;
  default:
    return NULL;
  }
}

/*
 * Checks that every key and text in an accepted value is UTF-8, in nested
 * documents, arrays and code scopes too. mkv_check_value() allows at most
 * 100 levels, which bounds the recursion.
 */
static void check_all_utf8(bson_iter_t *iter) {
  while (bson_iter_next(iter)) {
    const char *options = NULL;
    const uint8_t *scope = NULL;
    uint32_t len = 0, scope_len = 0;
    const char *text = element_text(iter, &len);
    bson_iter_t child;

    FUZZ_REQUIRE(fuzz_is_utf8(bson_iter_key(iter)));
    if (text != NULL)
      FUZZ_REQUIRE(fuzz_is_utf8_bytes(text, len));
    if (BSON_ITER_HOLDS_REGEX(iter)) {
      text = bson_iter_regex(iter, &options);
      FUZZ_REQUIRE(fuzz_is_utf8(text));
      FUZZ_REQUIRE(fuzz_is_utf8(options));
    }
    if (BSON_ITER_HOLDS_DOCUMENT(iter) || BSON_ITER_HOLDS_ARRAY(iter)) {
      FUZZ_REQUIRE(bson_iter_recurse(iter, &child));
      check_all_utf8(&child);
    } else if (BSON_ITER_HOLDS_CODEWSCOPE(iter)) {
      bson_iter_codewscope(iter, &len, &scope_len, &scope);
      FUZZ_REQUIRE(bson_iter_init_from_data(&child, scope, scope_len));
      check_all_utf8(&child);
    }
  }
}

/* Checks the documents a set sends for a value that passed its checks. */
static void check_encoding(const bson_value_t *value, size_t stored_len) {
  const bson_validate_flags_t flags = BSON_VALIDATE_UTF8 |
                                      BSON_VALIDATE_UTF8_ALLOW_NULL |
                                      BSON_VALIDATE_EMPTY_KEYS;
  bson_value_t read = {0};
  bson_t doc, filter, update;
  bson_iter_t iter;

  mkv_build_insert(&doc, FUZZ_KEY, value);
  FUZZ_REQUIRE(doc.len == stored_len);
  FUZZ_REQUIRE(bson_validate(&doc, flags, NULL));
  FUZZ_REQUIRE(bson_iter_init(&iter, &doc));
  check_all_utf8(&iter);
  check_field(&doc, MKV_VALUE_FIELD, value);

  /* The get of what the set stored returns the same value. */
  FUZZ_REQUIRE(mkv_read_value(&doc, &read));
  FUZZ_REQUIRE(fuzz_same_encoding(value, &read));
  bson_value_destroy(&read);
  bson_destroy(&doc);

  mkv_build_upsert(&filter, &update, FUZZ_KEY, value);
  FUZZ_REQUIRE(bson_validate(&update, flags, NULL));
  check_field(&update, "$set." MKV_VALUE_FIELD, value);
  bson_destroy(&update);
  bson_destroy(&filter);
}

/* Checks the key that mkv_all() makes of an _id: always UTF-8 text. */
static void check_key_from_id(bson_iter_t *id) {
  char *key = mkv_key_from_id(id);

  FUZZ_REQUIRE(key != NULL);
  FUZZ_REQUIRE(fuzz_is_utf8(key));
  bson_free(key);
}

static void check_value(const bson_value_t *value) {
  bson_error_t error = {0};
  size_t stored_len = 0;
  int status = mkv_check_value(value, FUZZ_KEY, &stored_len, &error);
  char *json = mkv_value_to_json(value);
  bson_t id_doc = BSON_INITIALIZER;
  bson_iter_t id;

  if (status != MKV_OK) {
    fuzz_check_rejected(status, &error);
    FUZZ_REQUIRE(json == NULL);
    return;
  }
  FUZZ_REQUIRE(json != NULL);
  FUZZ_REQUIRE(fuzz_is_utf8(json));
  bson_free(json);
  FUZZ_REQUIRE(mkv_check_size(stored_len, FUZZ_KEY, &error) == MKV_OK);
  check_encoding(value, stored_len);

  FUZZ_REQUIRE(bson_append_value(&id_doc, "_id", -1, value));
  FUZZ_REQUIRE(bson_iter_init_find(&id, &id_doc, "_id"));
  check_key_from_id(&id);
  bson_destroy(&id_doc);
}

/*
 * Reads the payload as a document from the server, which may be anything:
 * the reading of a get, a remove and an all must not crash on it.
 */
static void check_reply(const uint8_t *payload, size_t size) {
  bson_value_t read = {0};
  bson_iter_t id;
  bson_t reply;

  if (!bson_init_static(&reply, payload, size))
    return;
  if (mkv_read_value(&reply, &read))
    bson_value_destroy(&read);
  (void)mkv_read_deleted_count(&reply);
  if (bson_iter_init_find(&id, &reply, "_id"))
    check_key_from_id(&id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  built_value_t built = {0};

  if (size < 2)
    return 0;
  build_value(&built, data[0], data[1], data + 2, size - 2);
  check_value(&built.value);
  check_reply(built.payload, size - 2);
  free(built.code);
  free(built.payload);
  return 0;
}
