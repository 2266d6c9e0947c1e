/* The operations, run with a pooled client, and their blocking forms. */
#include <string.h>

#include "mkv-private.h"

static int not_found(const mkv_t *db, const char *op, const char *key,
                     const char *why, bson_error_t *error) {
  char quoted[MKV_KEY_QUOTE_MAX + 8];

  mkv_quote_key(key, quoted, sizeof quoted);
  mkv_error_set(error, MKV_ENOTFOUND, "%s key \"%s\" in %s: %s", op, quoted,
                db->namespace_quoted, why);
  return MKV_ENOTFOUND;
}

/*
 * Inserts {_id: key, value: v} under a new auto key. An insert needs no
 * lookup of an existing document, which an upsert does.
 */
static int insert_new(mkv_t *db, mongoc_collection_t *coll, mkv_op_t *op,
                      bson_error_t *error) {
  bson_error_t cause;
  bson_t doc;
  int status = MKV_OK;

  mkv_build_insert(&doc, op->key_used, op->value);
  if (!mongoc_collection_insert_one(coll, &doc, NULL, NULL, &cause))
    status = mkv_error_from_mongoc(db, op, error, &cause);
  bson_destroy(&doc);
  return status;
}

static int run_set(mkv_t *db, mongoc_collection_t *coll, mkv_op_t *op,
                   bson_error_t *error) {
  bson_error_t cause;
  bson_t filter, update, opts;
  int status = MKV_OK;

  if (op->key == NULL)
    return insert_new(db, coll, op, error);

  mkv_build_upsert(&filter, &update, op->key_used, op->value);
  bson_init(&opts);
  BSON_APPEND_BOOL(&opts, "upsert", true);

  if (!mongoc_collection_update_one(coll, &filter, &update, &opts, NULL,
                                    &cause))
    status = mkv_error_from_mongoc(db, op, error, &cause);

  bson_destroy(&opts);
  bson_destroy(&update);
  bson_destroy(&filter);
  return status;
}

static int run_get(mkv_t *db, mongoc_collection_t *coll, mkv_op_t *op,
                   bson_error_t *error) {
  mongoc_cursor_t *cursor;
  const bson_t *doc;
  bson_error_t cause;
  bson_t filter, opts, projection;
  int status;

  mkv_build_key_filter(&filter, op->key);
  bson_init(&opts);
  BSON_APPEND_INT64(&opts, "limit", 1);
  BSON_APPEND_BOOL(&opts, "singleBatch", true);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &projection);
  BSON_APPEND_INT32(&projection, MKV_VALUE_FIELD, 1);
  bson_append_document_end(&opts, &projection);

  cursor = mongoc_collection_find_with_opts(coll, &filter, &opts, NULL);
  if (mongoc_cursor_next(cursor, &doc)) {
    if (mkv_read_value(doc, &op->result_value)) {
      status = MKV_OK;
    } else {
      status = not_found(db, "get", op->key,
                         "the document has no \"value\" field", error);
    }
  } else if (mongoc_cursor_error(cursor, &cause)) {
    status = mkv_error_from_mongoc(db, op, error, &cause);
  } else {
    status = not_found(db, "get", op->key, "key not found", error);
  }

  mongoc_cursor_destroy(cursor);
  bson_destroy(&opts);
  bson_destroy(&filter);
  return status;
}

static int run_remove(mkv_t *db, mongoc_collection_t *coll, mkv_op_t *op,
                      bson_error_t *error) {
  bson_error_t cause;
  bson_t filter, reply;
  int status = MKV_OK;

  mkv_build_key_filter(&filter, op->key);
  if (mongoc_collection_delete_one(coll, &filter, NULL, &reply, &cause))
    op->removed = mkv_read_deleted_count(&reply) > 0;
  else
    status = mkv_error_from_mongoc(db, op, error, &cause);

  bson_destroy(&reply);
  bson_destroy(&filter);
  return status;
}

static int run_all(mkv_t *db, mongoc_collection_t *coll, mkv_op_t *op,
                   bson_error_t *error) {
  mongoc_cursor_t *cursor;
  const bson_t *doc;
  bson_error_t cause;
  bson_iter_t iter;
  bson_t filter = BSON_INITIALIZER;
  bson_t opts, projection;
  size_t capacity = 0;
  int status = MKV_OK;

  bson_init(&opts);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &projection);
  BSON_APPEND_INT32(&projection, "_id", 1);
  bson_append_document_end(&opts, &projection);

  cursor = mongoc_collection_find_with_opts(coll, &filter, &opts, NULL);
  while (mongoc_cursor_next(cursor, &doc)) {
    if (!bson_iter_init_find(&iter, doc, "_id"))
      continue;
    mkv_keys_append_id(&op->keys, &capacity, &iter);
  }
  if (mongoc_cursor_error(cursor, &cause)) {
    status = mkv_error_from_mongoc(db, op, error, &cause);
    mkv_keys_destroy(&op->keys);
  }

  mongoc_cursor_destroy(cursor);
  bson_destroy(&opts);
  bson_destroy(&filter);
  return status;
}

static int run_purge(mkv_t *db, mongoc_collection_t *coll, mkv_op_t *op,
                     bson_error_t *error) {
  bson_error_t cause;
  bson_t filter = BSON_INITIALIZER;
  int status = MKV_OK;

  if (!mongoc_collection_delete_many(coll, &filter, NULL, NULL, &cause))
    status = mkv_error_from_mongoc(db, op, error, &cause);
  bson_destroy(&filter);
  return status;
}

static int run_ping(mkv_t *db, mongoc_client_t *client, mkv_op_t *op,
                    bson_error_t *error) {
  bson_error_t cause;
  bson_t command, reply;
  int status = MKV_OK;

  bson_init(&command);
  BSON_APPEND_INT32(&command, "ping", 1);
  if (!mongoc_client_command_simple(client, "admin", &command, NULL, &reply,
                                    &cause))
    status = mkv_error_from_mongoc(db, op, error, &cause);
  bson_destroy(&reply);
  bson_destroy(&command);
  return status;
}

/* Makes the key of a set: the caller's, or a new ObjectId's hex string. */
void mkv_op_choose_key(mkv_op_t *op) {
  char hex[25];
  bson_oid_t oid;

  if (op->key != NULL) {
    op->key_used = bson_strdup(op->key);
    return;
  }
  bson_oid_init(&oid, NULL);
  bson_oid_to_string(&oid, hex);
  op->key_used = bson_strdup(hex);
}

/*
 * Runs one checked operation with a client from the pool. The caller has
 * validated the arguments and counted the operation in, so the pool stays
 * alive throughout.
 */
int mkv_op_run(mkv_t *db, mkv_op_t *op, bson_error_t *error) {
  mongoc_collection_t *coll;
  mongoc_client_t *client;
  int status;

  if (op->kind == MKV_OP_SET && op->key_used == NULL)
    mkv_op_choose_key(op);

  op->started_us = bson_get_monotonic_time();
  mkv_reset_failed_command();
  client = mongoc_client_pool_pop(db->pool);
  if (client == NULL) {
    char what[MKV_KEY_QUOTE_MAX + 32];

    mkv_describe_op(op, what, sizeof what);
    mkv_error_set(error, MKV_ETIMEDOUT,
                  "%s: no pooled client came free within waitQueueTimeoutMS; "
                  "raise maxPoolSize or waitQueueTimeoutMS in the URI",
                  what);
    return MKV_ETIMEDOUT;
  }
  coll = mongoc_client_get_collection(client, db->db_name, db->collection_name);

  switch (op->kind) {
  case MKV_OP_SET:
    status = run_set(db, coll, op, error);
    break;
  case MKV_OP_GET:
    status = run_get(db, coll, op, error);
    break;
  case MKV_OP_REMOVE:
    status = run_remove(db, coll, op, error);
    break;
  case MKV_OP_ALL:
    status = run_all(db, coll, op, error);
    break;
  case MKV_OP_PURGE:
    status = run_purge(db, coll, op, error);
    break;
  case MKV_OP_PING:
  default:
    status = run_ping(db, client, op, error);
    break;
  }

  mongoc_collection_destroy(coll);
  mongoc_client_pool_push(db->pool, client);
  return status;
}

void mkv_op_cleanup(mkv_op_t *op) {
  bson_free(op->key_used);
  op->key_used = NULL;
  if (op->result_value.value_type != BSON_TYPE_EOD)
    bson_value_destroy(&op->result_value);
  memset(&op->result_value, 0, sizeof op->result_value);
  mkv_keys_destroy(&op->keys);
}

/* Checks the handle and the key or value that an operation takes. */
int mkv_op_check(const mkv_t *db, const mkv_op_t *op, bson_error_t *error) {
  const char *name = mkv_op_name(op->kind);
  size_t stored_len = 0;

  if (db == NULL) {
    mkv_error_set(error, MKV_EINVAL, "%s: db is NULL; pass an open handle",
                  name);
    return MKV_EINVAL;
  }
  if (mkv_opened_in_parent(db)) {
    char what[MKV_KEY_QUOTE_MAX + 32];

    mkv_describe_op(op, what, sizeof what);
    return mkv_check_process(db, what, error);
  }
  switch (op->kind) {
  case MKV_OP_SET:
    if (op->key != NULL && mkv_check_key(op->key, name, error) != MKV_OK)
      return MKV_EINVAL;
    if (mkv_check_value(op->value, op->key, &stored_len, error) != MKV_OK)
      return MKV_EINVAL;
    return mkv_check_size(stored_len, op->key, error);
  case MKV_OP_GET:
  case MKV_OP_REMOVE:
    return mkv_check_key(op->key, name, error);
  default:
    return MKV_OK;
  }
}

/* Runs a blocking operation from start to end on the calling thread. */
static int run_blocking(mkv_t *db, mkv_op_t *op, bson_error_t *error) {
  int status = mkv_op_check(db, op, error);

  if (status != MKV_OK)
    return status;
  status = mkv_enter_sync(db, op, error);
  if (status != MKV_OK)
    return status;
  status = mkv_op_run(db, op, error);
  mkv_leave_sync(db);
  return status;
}

int mkv_set(mkv_t *db, const char *key, const bson_value_t *value,
            char **key_out, bson_error_t *error) {
  mkv_op_t op = {.kind = MKV_OP_SET, .key = key, .value = value};
  int status;

  if (key_out != NULL)
    *key_out = NULL;
  status = run_blocking(db, &op, error);
  if (status == MKV_OK && key_out != NULL) {
    *key_out = op.key_used;
    op.key_used = NULL;
  }
  mkv_op_cleanup(&op);
  return status;
}

int mkv_get(mkv_t *db, const char *key, bson_value_t *value,
            bson_error_t *error) {
  mkv_op_t op = {.kind = MKV_OP_GET, .key = key};
  int status;

  if (value == NULL) {
    char what[MKV_KEY_QUOTE_MAX + 32];

    mkv_describe_op(&op, what, sizeof what);
    mkv_error_set(error, MKV_EINVAL,
                  "%s: value is NULL; pass a bson_value_t to receive the value",
                  what);
    return MKV_EINVAL;
  }
  status = run_blocking(db, &op, error);
  if (status == MKV_OK) {
    *value = op.result_value;
    memset(&op.result_value, 0, sizeof op.result_value);
  }
  mkv_op_cleanup(&op);
  return status;
}

int mkv_remove(mkv_t *db, const char *key, bool *removed, bson_error_t *error) {
  mkv_op_t op = {.kind = MKV_OP_REMOVE, .key = key};
  int status;

  if (removed != NULL)
    *removed = false;
  status = run_blocking(db, &op, error);
  if (status == MKV_OK && removed != NULL)
    *removed = op.removed;
  mkv_op_cleanup(&op);
  return status;
}

int mkv_all(mkv_t *db, mkv_keys_t *keys, bson_error_t *error) {
  mkv_op_t op = {.kind = MKV_OP_ALL};
  int status;

  if (keys == NULL) {
    mkv_error_set(error, MKV_EINVAL,
                  "all: keys is NULL; pass an mkv_keys_t to receive the keys");
    return MKV_EINVAL;
  }
  keys->keys = NULL;
  keys->count = 0;
  status = run_blocking(db, &op, error);
  if (status == MKV_OK) {
    *keys = op.keys;
    op.keys.keys = NULL;
    op.keys.count = 0;
  }
  mkv_op_cleanup(&op);
  return status;
}

int mkv_purge(mkv_t *db, bson_error_t *error) {
  mkv_op_t op = {.kind = MKV_OP_PURGE};
  int status = run_blocking(db, &op, error);

  mkv_op_cleanup(&op);
  return status;
}

int mkv_ping(mkv_t *db, bson_error_t *error) {
  mkv_op_t op = {.kind = MKV_OP_PING};
  int status = run_blocking(db, &op, error);

  mkv_op_cleanup(&op);
  return status;
}
