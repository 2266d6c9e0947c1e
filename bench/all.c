/*
 * mkv_all over a large collection: all-load adds keys up to a total, and
 * all times one mkv_all call and reports the peak RSS of the process. The
 * runner runs all once with the call and once without, and takes the
 * difference of the two peaks as the memory that mkv_all used.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

/* Returns the number of documents in the benchmark collection, or -1. */
static int64_t count_keys(const char *uri) {
  mongoc_client_t *client = bench_client_new(uri);
  mongoc_collection_t *coll;
  bson_t filter = BSON_INITIALIZER;
  bson_error_t error;
  int64_t count;

  if (client == NULL)
    return -1;
  coll = mongoc_client_get_collection(client, BENCH_DB_NAME, BENCH_COLLECTION);
  count = mongoc_collection_count_documents(coll, &filter, NULL, NULL, NULL,
                                            &error);
  if (count < 0)
    fprintf(stderr, "mkv-bench: counting keys failed: %s\n", error.message);
  mongoc_collection_destroy(coll);
  mongoc_client_destroy(client);
  return count;
}

/*
 * Adds keys until the collection has config->keys of them. The keys are
 * the 24-character hex strings of new ObjectIds, like mkv's own auto keys.
 */
int bench_all_load(const bench_config_t *config) {
  int64_t present = count_keys(config->uri);

  if (present < 0)
    return 1;
  if ((uint64_t)present < config->keys &&
      bench_load_keys(config->uri, (uint64_t)present,
                      config->keys - (uint64_t)present, false, true) != 0)
    return 1;
  printf("{\"mode\": \"all-load\", \"keys\": %u}\n", config->keys);
  return 0;
}

/* Returns the bytes of the keys themselves, each with its NUL. */
static uint64_t key_bytes(const mkv_keys_t *keys) {
  uint64_t total = 0;
  size_t i;

  for (i = 0; i < keys->count; i++)
    total += strlen(keys->keys[i]) + 1;
  return total;
}

int bench_all(const bench_config_t *config) {
  mkv_options_t options = {.db_name = BENCH_DB_NAME,
                           .collection_name = BENCH_COLLECTION};
  mkv_keys_t keys = {NULL, 0};
  bson_error_t error;
  uint64_t started, elapsed = 0, bytes = 0;
  mkv_t *db;
  int status;

  status = mkv_open(&db, config->uri, &options, &error);
  /* The ping opens the connection, so both runs count its buffers. */
  if (status == MKV_OK)
    status = mkv_ping(db, &error);
  if (status == MKV_OK && config->call_all) {
    started = bench_now_ns();
    status = mkv_all(db, &keys, &error);
    elapsed = bench_now_ns() - started;
    bytes = key_bytes(&keys);
  }
  if (status != MKV_OK) {
    fprintf(stderr, "mkv-bench: %s: %s\n", mkv_err_name(status), error.message);
    if (db != NULL)
      mkv_close(db);
    return 1;
  }

  printf("{\"mode\": \"all\", \"call_all\": %s, \"keys\": %zu, "
         "\"key_bytes\": %" PRIu64 ", \"seconds\": %.6f, "
         "\"max_rss_kib\": %ld}\n",
         config->call_all ? "true" : "false", keys.count, bytes, elapsed / 1e9,
         bench_max_rss_kib());
  mkv_keys_destroy(&keys);
  mkv_close(db);
  return 0;
}
