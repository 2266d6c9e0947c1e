/*
 * The benchmark operations written by hand with libmongoc: the baseline
 * that shows what mkv costs. Each call sends what src/ops.c sends (the same
 * filter, update, options and projection) with a client popped from a pool.
 */
#include <stdio.h>

#include "bench.h"

static void *pool_open(const char *uri) {
  mongoc_client_pool_t *pool;
  bson_error_t error;
  mongoc_uri_t *parsed;

  mongoc_init();
  parsed = mongoc_uri_new_with_error(uri, &error);
  if (parsed == NULL) {
    fprintf(stderr, "mkv-bench: invalid MKV_URI: %s\n", error.message);
    return NULL;
  }
  /*
   * The same bounded waits that mkv_open() sets when the URI has none: 30 s
   * for a socket read or write, and for a free pooled client.
   */
  if (!mongoc_uri_has_option(parsed, MONGOC_URI_SOCKETTIMEOUTMS))
    mongoc_uri_set_option_as_int32(parsed, MONGOC_URI_SOCKETTIMEOUTMS, 30000);
  if (!mongoc_uri_has_option(parsed, MONGOC_URI_WAITQUEUETIMEOUTMS))
    mongoc_uri_set_option_as_int32(parsed, MONGOC_URI_WAITQUEUETIMEOUTMS,
                                   30000);
  pool = mongoc_client_pool_new(parsed);
  mongoc_uri_destroy(parsed);
  if (pool != NULL)
    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
  return pool;
}

static int report(const char *op, const char *key, const bson_error_t *error) {
  fprintf(stderr, "mkv-bench: libmongoc %s \"%s\" failed: %s\n", op, key,
          error->message);
  return -1;
}

static int pool_set(void *store, const char *key, const bson_value_t *value) {
  mongoc_client_t *client = mongoc_client_pool_pop(store);
  mongoc_collection_t *coll =
      mongoc_client_get_collection(client, BENCH_DB_NAME, BENCH_COLLECTION);
  bson_t filter = BSON_INITIALIZER;
  bson_t update = BSON_INITIALIZER;
  bson_t opts = BSON_INITIALIZER;
  bson_t child;
  bson_error_t error;
  int status = 0;

  BSON_APPEND_UTF8(&filter, "_id", key);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &child);
  BSON_APPEND_VALUE(&child, "value", value);
  bson_append_document_end(&update, &child);
  BSON_APPEND_BOOL(&opts, "upsert", true);
  if (!mongoc_collection_update_one(coll, &filter, &update, &opts, NULL,
                                    &error))
    status = report("update_one", key, &error);

  bson_destroy(&opts);
  bson_destroy(&update);
  bson_destroy(&filter);
  mongoc_collection_destroy(coll);
  mongoc_client_pool_push(store, client);
  return status;
}

static int pool_get(void *store, const char *key) {
  mongoc_client_t *client = mongoc_client_pool_pop(store);
  mongoc_collection_t *coll =
      mongoc_client_get_collection(client, BENCH_DB_NAME, BENCH_COLLECTION);
  bson_t filter = BSON_INITIALIZER;
  bson_t opts = BSON_INITIALIZER;
  bson_t projection;
  mongoc_cursor_t *cursor;
  const bson_t *doc;
  bson_error_t error;
  bson_iter_t iter;
  bson_value_t value;
  int status = -1;

  BSON_APPEND_UTF8(&filter, "_id", key);
  BSON_APPEND_INT64(&opts, "limit", 1);
  BSON_APPEND_BOOL(&opts, "singleBatch", true);
  BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &projection);
  BSON_APPEND_INT32(&projection, "value", 1);
  bson_append_document_end(&opts, &projection);

  cursor = mongoc_collection_find_with_opts(coll, &filter, &opts, NULL);
  if (mongoc_cursor_next(cursor, &doc) &&
      bson_iter_init_find(&iter, doc, "value")) {
    bson_value_copy(bson_iter_value(&iter), &value);
    bson_value_destroy(&value);
    status = 0;
  } else if (mongoc_cursor_error(cursor, &error)) {
    report("find", key, &error);
  } else {
    fprintf(stderr, "mkv-bench: libmongoc find \"%s\": key not found\n", key);
  }

  mongoc_cursor_destroy(cursor);
  bson_destroy(&opts);
  bson_destroy(&filter);
  mongoc_collection_destroy(coll);
  mongoc_client_pool_push(store, client);
  return status;
}

static int pool_remove(void *store, const char *key) {
  mongoc_client_t *client = mongoc_client_pool_pop(store);
  mongoc_collection_t *coll =
      mongoc_client_get_collection(client, BENCH_DB_NAME, BENCH_COLLECTION);
  bson_t filter = BSON_INITIALIZER;
  bson_t reply;
  bson_error_t error;
  bson_iter_t iter;
  bool removed = false;
  int status = 0;

  BSON_APPEND_UTF8(&filter, "_id", key);
  if (mongoc_collection_delete_one(coll, &filter, NULL, &reply, &error))
    removed = bson_iter_init_find(&iter, &reply, "deletedCount") &&
              bson_iter_as_int64(&iter) > 0;
  else
    status = report("delete_one", key, &error);
  /* Every benchmark removes keys that it loaded first. */
  if (status == 0 && !removed) {
    fprintf(stderr, "mkv-bench: libmongoc delete_one \"%s\": key not found\n",
            key);
    status = -1;
  }

  bson_destroy(&reply);
  bson_destroy(&filter);
  mongoc_collection_destroy(coll);
  mongoc_client_pool_push(store, client);
  return status;
}

static void pool_close(void *store) { mongoc_client_pool_destroy(store); }

const bench_impl_t bench_libmongoc_impl = {
    .name = "libmongoc",
    .open = pool_open,
    .set = pool_set,
    .get = pool_get,
    .remove = pool_remove,
    .close = pool_close,
};
