/*
 * The documents that operations send and the reading of the server's
 * replies. These functions do no I/O, so they can be tested and fuzzed
 * without a server.
 */
#include "mkv-private.h"

/* Builds the filter {_id: key} that selects one key's document. */
void mkv_build_key_filter(bson_t *filter, const char *key) {
  bson_init(filter);
  BSON_APPEND_UTF8(filter, "_id", key);
}

/* Builds the document {_id: key, value: value} that a new key inserts. */
void mkv_build_insert(bson_t *doc, const char *key, const bson_value_t *value) {
  bson_init(doc);
  BSON_APPEND_UTF8(doc, "_id", key);
  BSON_APPEND_VALUE(doc, MKV_VALUE_FIELD, value);
}

/*
 * Builds the filter {_id: key} and the update {$set: {value: value}} of a
 * set with an upsert.
 */
void mkv_build_upsert(bson_t *filter, bson_t *update, const char *key,
                      const bson_value_t *value) {
  bson_t child;

  mkv_build_key_filter(filter, key);
  bson_init(update);
  BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &child);
  BSON_APPEND_VALUE(&child, MKV_VALUE_FIELD, value);
  bson_append_document_end(update, &child);
}

/*
 * Copies the value field of a document that a get read into `value`, to be
 * released with bson_value_destroy(). Returns false, and leaves `value`
 * untouched, when the document has no value field.
 */
bool mkv_read_value(const bson_t *doc, bson_value_t *value) {
  bson_iter_t iter;

  if (!bson_iter_init_find(&iter, doc, MKV_VALUE_FIELD))
    return false;
  bson_value_copy(bson_iter_value(&iter), value);
  return true;
}

/* Reads the deletedCount of a delete reply, or 0 when it has none. */
int64_t mkv_read_deleted_count(const bson_t *reply) {
  bson_iter_t iter;

  if (bson_iter_init_find(&iter, reply, "deletedCount") &&
      BSON_ITER_HOLDS_NUMBER(&iter))
    return bson_iter_as_int64(&iter);
  return 0;
}

/* Returns the string of an _id that is UTF-8 without NUL, or NULL. */
static const char *id_string(bson_iter_t *iter, uint32_t *len) {
  const char *id;

  if (!BSON_ITER_HOLDS_UTF8(iter))
    return NULL;
  id = bson_iter_utf8(iter, len);
  return bson_utf8_validate(id, *len, false) ? id : NULL;
}

/* Returns the relaxed Extended JSON of an _id, to free with bson_free(). */
static char *id_json(bson_iter_t *iter) {
  char *json = mkv_value_to_json(bson_iter_value(iter));

  if (json == NULL)
    json = bson_strdup_printf("(unprintable _id of BSON type 0x%02x)",
                              (unsigned)bson_iter_type(iter));
  return json;
}

/*
 * Makes the key of an _id: the string itself, or the relaxed Extended JSON
 * of an _id that is not a UTF-8 string without NUL (one mkv did not write).
 * Returns a string to release with bson_free().
 */
char *mkv_key_from_id(bson_iter_t *iter) {
  uint32_t len = 0;
  const char *id = id_string(iter, &len);

  return id != NULL ? bson_strndup(id, len) : id_json(iter);
}

/*
 * Appends the key of an _id to `keys`, copying a string _id straight from
 * the reply, so that the common case allocates nothing of its own.
 */
void mkv_keys_append_id(mkv_keys_t *keys, size_t *capacity, bson_iter_t *iter) {
  uint32_t len = 0;
  const char *id = id_string(iter, &len);
  char *json;

  if (id != NULL) {
    mkv_keys_append(keys, capacity, id, len);
    return;
  }
  json = id_json(iter);
  mkv_keys_append(keys, capacity, json, strlen(json));
  bson_free(json);
}
