/*
 * Loads the keys that a run works on, with libmongoc's insert_many in large
 * batches, before the run starts its clock.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

/* Returns a client that replied to a ping, or NULL after printing the error. */
mongoc_client_t *bench_client_new(const char *uri) {
  bson_t ping = BSON_INITIALIZER;
  bson_error_t error;
  mongoc_client_t *client;
  bool ok;

  mongoc_init();
  client = mongoc_client_new(uri);
  if (client == NULL) {
    fprintf(stderr, "mkv-bench: MKV_URI is not a valid MongoDB URI\n");
    return NULL;
  }
  mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
  BSON_APPEND_INT32(&ping, "ping", 1);
  ok = mongoc_client_command_simple(client, "admin", &ping, NULL, NULL, &error);
  bson_destroy(&ping);
  if (!ok) {
    fprintf(stderr, "mkv-bench: ping failed: %s\n", error.message);
    mongoc_client_destroy(client);
    return NULL;
  }
  return client;
}

/* Drops the benchmark collection; a missing collection is no error. */
int bench_reset_collection(const char *uri) {
  mongoc_client_t *client = bench_client_new(uri);
  mongoc_collection_t *coll;
  bson_error_t error;
  int status = 0;

  if (client == NULL)
    return -1;
  coll = mongoc_client_get_collection(client, BENCH_DB_NAME, BENCH_COLLECTION);
  if (!mongoc_collection_drop(coll, &error) &&
      error.code != 26 /* NamespaceNotFound */) {
    fprintf(stderr, "mkv-bench: dropping %s.%s failed: %s\n", BENCH_DB_NAME,
            BENCH_COLLECTION, error.message);
    status = -1;
  }
  mongoc_collection_destroy(coll);
  mongoc_client_destroy(client);
  return status;
}

/* Fills `docs` with {_id: key, value: value} for one batch of keys. */
static void make_batch(bson_t *docs, size_t count, uint64_t first,
                       const bson_value_t *value, bool object_id_keys) {
  char key[32];
  bson_oid_t oid;
  size_t i;

  for (i = 0; i < count; i++) {
    if (object_id_keys) {
      bson_oid_init(&oid, NULL);
      bson_oid_to_string(&oid, key);
    } else {
      bench_key(key, sizeof key, first + i);
    }
    bson_init(&docs[i]);
    BSON_APPEND_UTF8(&docs[i], "_id", key);
    BSON_APPEND_VALUE(&docs[i], "value", value);
  }
}

static int insert_batch(mongoc_collection_t *coll, bson_t *docs, size_t count) {
  const bson_t **pointers = bson_malloc(count * sizeof *pointers);
  bson_error_t error;
  size_t i;
  int status = 0;

  for (i = 0; i < count; i++)
    pointers[i] = &docs[i];
  if (!mongoc_collection_insert_many(coll, pointers, count, NULL, NULL,
                                     &error)) {
    fprintf(stderr, "mkv-bench: insert_many of %zu keys failed: %s\n", count,
            error.message);
    status = -1;
  }
  for (i = 0; i < count; i++)
    bson_destroy(&docs[i]);
  bson_free(pointers);
  return status;
}

/*
 * Inserts `count` keys from index `first` on. Keys are bench_key() names,
 * or the hex strings of new ObjectIds when object_id_keys is true.
 */
int bench_load_keys(const char *uri, uint64_t first, uint64_t count, bool large,
                    bool object_id_keys) {
  mongoc_client_t *client = bench_client_new(uri);
  mongoc_collection_t *coll;
  bson_t *docs = bson_malloc(BENCH_LOAD_BATCH * sizeof *docs);
  bson_t storage;
  bson_value_t value = bench_value(large, &storage);
  uint64_t done;
  int status = 0;

  if (client == NULL) {
    bson_free(docs);
    bson_destroy(&storage);
    return -1;
  }
  coll = mongoc_client_get_collection(client, BENCH_DB_NAME, BENCH_COLLECTION);
  for (done = 0; done < count && status == 0;) {
    size_t batch = count - done < BENCH_LOAD_BATCH ? (size_t)(count - done)
                                                   : BENCH_LOAD_BATCH;

    make_batch(docs, batch, first + done, &value, object_id_keys);
    status = insert_batch(coll, docs, batch);
    done += batch;
  }

  mongoc_collection_destroy(coll);
  mongoc_client_destroy(client);
  bson_free(docs);
  bson_destroy(&storage);
  return status;
}

/*
 * Drops the collection and loads config->keys keys, so set overwrites,
 * get finds and remove deletes keys that exist.
 */
int bench_prepare(const bench_config_t *config) {
  if (bench_reset_collection(config->uri) != 0)
    return -1;
  return bench_load_keys(config->uri, 0, config->keys, config->large, false);
}

/* The reset mode: drops the benchmark collection. */
int bench_reset(const bench_config_t *config) {
  if (bench_reset_collection(config->uri) != 0)
    return 1;
  printf("{\"mode\": \"reset\"}\n");
  return 0;
}
