/* The benchmark operations through libmkv's blocking calls. */
#include <stdio.h>

#include "bench.h"

static void *mkv_store_open(const char *uri) {
  mkv_options_t options = {.db_name = BENCH_DB_NAME,
                           .collection_name = BENCH_COLLECTION};
  bson_error_t error;
  mkv_t *db;

  if (mkv_open(&db, uri, &options, &error) != MKV_OK) {
    fprintf(stderr, "mkv-bench: mkv_open failed: %s\n", error.message);
    return NULL;
  }
  return db;
}

static int report(int status, const bson_error_t *error) {
  if (status == MKV_OK)
    return 0;
  fprintf(stderr, "mkv-bench: %s: %s\n", mkv_err_name(status), error->message);
  return -1;
}

static int mkv_store_set(void *store, const char *key,
                         const bson_value_t *value) {
  bson_error_t error;

  return report(mkv_set(store, key, value, NULL, &error), &error);
}

static int mkv_store_get(void *store, const char *key) {
  bson_error_t error;
  bson_value_t value;
  int status = mkv_get(store, key, &value, &error);

  if (status == MKV_OK)
    bson_value_destroy(&value);
  return report(status, &error);
}

static int mkv_store_remove(void *store, const char *key) {
  bson_error_t error;
  bool removed;
  int status = mkv_remove(store, key, &removed, &error);

  if (status != MKV_OK)
    return report(status, &error);
  /* Every benchmark removes keys that it loaded first. */
  if (!removed) {
    fprintf(stderr, "mkv-bench: mkv_remove \"%s\": key not found\n", key);
    return -1;
  }
  return 0;
}

static void mkv_store_close(void *store) {
  int status = mkv_close(store);

  if (status != MKV_OK)
    fprintf(stderr, "mkv-bench: mkv_close: %s\n", mkv_err_name(status));
}

const bench_impl_t bench_mkv_impl = {
    .name = "mkv",
    .open = mkv_store_open,
    .set = mkv_store_set,
    .get = mkv_store_get,
    .remove = mkv_store_remove,
    .close = mkv_store_close,
};
