/* Helpers that every benchmark run shares: keys, values, clocks, stats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench.h"

const bench_impl_t *bench_find_impl(const char *name) {
  if (strcmp(name, bench_mkv_impl.name) == 0)
    return &bench_mkv_impl;
  if (strcmp(name, bench_libmongoc_impl.name) == 0)
    return &bench_libmongoc_impl;
  return NULL;
}

int bench_run_op(const bench_impl_t *impl, void *store, bench_op_t op,
                 const char *key, const bson_value_t *value) {
  switch (op) {
  case BENCH_SET:
    return impl->set(store, key, value);
  case BENCH_GET:
    return impl->get(store, key);
  case BENCH_REMOVE:
  default:
    return impl->remove(store, key);
  }
}

const char *bench_op_name(bench_op_t op) {
  switch (op) {
  case BENCH_SET:
    return "set";
  case BENCH_GET:
    return "get";
  case BENCH_REMOVE:
  default:
    return "remove";
  }
}

/* Writes the key of index `index`; bench/mongokv_bench.py uses the same. */
void bench_key(char *out, size_t size, uint64_t index) {
  snprintf(out, size, "key-%06llu", (unsigned long long)index);
}

/*
 * Returns the index of the key that operation `op_index` works on. remove
 * deletes each loaded key once, in order. set and get step through the
 * loaded keys by a prime stride, so a short run still touches keys from
 * the whole collection. A server that scans for a key from the start then
 * scans half of it on average, not only the part that a short run reaches.
 */
uint64_t bench_key_index(const bench_config_t *config, uint64_t op_index) {
  if (config->op == BENCH_REMOVE)
    return op_index;
  return op_index * BENCH_KEY_STRIDE % config->keys;
}

/*
 * Returns the value that every set writes and every load stores. A small
 * value is a 13-byte string. A large one is the document
 * {"data": <16,384 "x">}, built in `storage`, which the value borrows.
 */
bson_value_t bench_value(bool large, bson_t *storage) {
  bson_value_t value;
  char *text;

  bson_init(storage);
  if (!large)
    return mkv_str("a small value");

  text = bson_malloc(BENCH_LARGE_TEXT_LEN + 1);
  memset(text, 'x', BENCH_LARGE_TEXT_LEN);
  text[BENCH_LARGE_TEXT_LEN] = '\0';
  BSON_APPEND_UTF8(storage, "data", text);
  bson_free(text);

  value.value_type = BSON_TYPE_DOCUMENT;
  value.value.v_doc.data = (uint8_t *)bson_get_data(storage);
  value.value.v_doc.data_len = storage->len;
  return value;
}

uint64_t bench_now_ns(void) {
  struct timespec now;

  clock_gettime(CLOCK_MONOTONIC, &now);
  return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/* Returns the user plus system CPU time of the whole process so far. */
double bench_cpu_seconds(void) {
  struct rusage usage;

  getrusage(RUSAGE_SELF, &usage);
  return (double)usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 +
         (double)usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

/* Returns the peak resident set size of the process, in KiB. */
long bench_max_rss_kib(void) {
  struct rusage usage;

  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

int bench_compare_u64(const void *a, const void *b) {
  uint64_t left = *(const uint64_t *)a;
  uint64_t right = *(const uint64_t *)b;

  return (left > right) - (left < right);
}

/* Returns the nearest-rank percentile `p` (0 to 100) of sorted samples. */
uint64_t bench_percentile(const uint64_t *sorted, size_t count, double p) {
  size_t rank;

  if (count == 0)
    return 0;
  rank = (size_t)(p / 100.0 * (double)count + 0.999999);
  if (rank < 1)
    rank = 1;
  if (rank > count)
    rank = count;
  return sorted[rank - 1];
}
