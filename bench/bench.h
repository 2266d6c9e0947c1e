/*
 * Shared declarations of the mkv-bench program, which measures libmkv and
 * the same operations written by hand with libmongoc. Each run prints one
 * JSON object on stdout for bench/run.py to collect.
 */
#ifndef MKV_BENCH_H
#define MKV_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mkv.h>
#include <mongoc/mongoc.h>

/* The database and collection of the benchmarks' keys, apart from the tests'.
 */
#define BENCH_DB_NAME "mkv_bench"
#define BENCH_COLLECTION "kv"

/* The length of the string in a large value, so a document is 16 KiB. */
#define BENCH_LARGE_TEXT_LEN 16384

/*
 * The step between the keys of successive set and get operations, a prime
 * that divides no key count that the runner uses.
 */
#define BENCH_KEY_STRIDE 7919

/* Keys that one insert_many call sends when a benchmark loads keys. */
#define BENCH_LOAD_BATCH 10000

typedef enum { BENCH_SET, BENCH_GET, BENCH_REMOVE } bench_op_t;

/* What one run measures, from the command line. */
typedef struct {
  const char *mode;   /* sync, async, count, all-load or all */
  const char *impl;   /* mkv or libmongoc */
  bench_op_t op;      /* set, get or remove */
  bool large;         /* 16 KiB values in place of small ones */
  unsigned threads;   /* sync: threads that share one handle or pool */
  unsigned in_flight; /* async: operations kept running at once */
  uint64_t max_ops;   /* the run stops after this many operations */
  double max_seconds; /* or after this long, whichever comes first */
  unsigned keys;      /* keys loaded before the run (all: in total) */
  bool call_all;      /* all: call mkv_all, or measure the process alone */
  const char *uri;    /* MKV_URI */
} bench_config_t;

/*
 * One implementation of the three operations. Each function returns 0 on
 * success, or prints what failed to stderr and returns -1. get reads and
 * copies the value, as a caller that keeps it would.
 */
typedef struct {
  const char *name;
  void *(*open)(const char *uri);
  int (*set)(void *store, const char *key, const bson_value_t *value);
  int (*get)(void *store, const char *key);
  int (*remove)(void *store, const char *key);
  void (*close)(void *store);
} bench_impl_t;

extern const bench_impl_t bench_mkv_impl;
extern const bench_impl_t bench_libmongoc_impl;

/* common.c */
const bench_impl_t *bench_find_impl(const char *name);
int bench_run_op(const bench_impl_t *impl, void *store, bench_op_t op,
                 const char *key, const bson_value_t *value);
const char *bench_op_name(bench_op_t op);
void bench_key(char *out, size_t size, uint64_t index);
uint64_t bench_key_index(const bench_config_t *config, uint64_t op_index);
bson_value_t bench_value(bool large, bson_t *storage);
uint64_t bench_now_ns(void);
double bench_cpu_seconds(void);
long bench_max_rss_kib(void);
int bench_compare_u64(const void *a, const void *b);
uint64_t bench_percentile(const uint64_t *sorted, size_t count, double p);

/* load.c */
mongoc_client_t *bench_client_new(const char *uri);
int bench_reset_collection(const char *uri);
int bench_load_keys(const char *uri, uint64_t first, uint64_t count, bool large,
                    bool object_id_keys);
int bench_prepare(const bench_config_t *config);
int bench_reset(const bench_config_t *config);

/* The runs, one file each. Each returns the process exit status. */
int bench_sync(const bench_config_t *config);
int bench_async(const bench_config_t *config);
int bench_count(const bench_config_t *config);
int bench_all_load(const bench_config_t *config);
int bench_all(const bench_config_t *config);

#endif /* MKV_BENCH_H */
