/*
 * Blocking operations from one or more plain threads that share one store:
 * an mkv handle or a libmongoc pool. Prints ops/s, latency percentiles and
 * client CPU time per operation.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

typedef struct {
  const bench_config_t *config;
  const bench_impl_t *impl;
  void *store;
  const bson_value_t *value;
  uint64_t deadline_ns;
  atomic_uint_fast64_t next; /* the index of the next operation to claim */
  atomic_int failed;
  uint64_t *latencies_ns; /* one slot per operation index */
} sync_run_t;

/*
 * Claims operation indexes until the count or the time runs out. Each
 * index is claimed by one thread, which alone writes its latency slot.
 */
static void *sync_worker(void *arg) {
  sync_run_t *run = arg;
  const bench_config_t *config = run->config;
  char key[32];

  while (!atomic_load(&run->failed) && bench_now_ns() < run->deadline_ns) {
    uint64_t index = atomic_fetch_add(&run->next, 1);
    uint64_t started;

    if (index >= config->max_ops)
      break;
    bench_key(key, sizeof key, bench_key_index(config, index));
    started = bench_now_ns();
    if (bench_run_op(run->impl, run->store, config->op, key, run->value) != 0)
      atomic_store(&run->failed, 1);
    run->latencies_ns[index] = bench_now_ns() - started;
  }
  return NULL;
}

static void print_result(const sync_run_t *run, uint64_t ops, double seconds,
                         double cpu_seconds) {
  const bench_config_t *config = run->config;

  qsort(run->latencies_ns, ops, sizeof *run->latencies_ns, bench_compare_u64);
  printf("{\"mode\": \"sync\", \"impl\": \"%s\", \"op\": \"%s\", "
         "\"large\": %s, \"threads\": %u, \"keys\": %u, \"ops\": %" PRIu64
         ", \"seconds\": %.6f, \"ops_per_s\": %.1f, \"p50_us\": %.1f, "
         "\"p99_us\": %.1f, \"cpu_us_per_op\": %.2f}\n",
         run->impl->name, bench_op_name(config->op),
         config->large ? "true" : "false", config->threads, config->keys, ops,
         seconds, (double)ops / seconds,
         bench_percentile(run->latencies_ns, ops, 50) / 1e3,
         bench_percentile(run->latencies_ns, ops, 99) / 1e3,
         cpu_seconds / (double)ops * 1e6);
}

/* Starts the threads, waits for them, and returns the seconds they ran. */
static double run_threads(sync_run_t *run, unsigned threads) {
  pthread_t *ids = bson_malloc(threads * sizeof *ids);
  uint64_t started = bench_now_ns();
  unsigned i;

  run->deadline_ns = started + (uint64_t)(run->config->max_seconds * 1e9);
  for (i = 0; i < threads; i++)
    pthread_create(&ids[i], NULL, sync_worker, run);
  for (i = 0; i < threads; i++)
    pthread_join(ids[i], NULL);
  bson_free(ids);
  return (bench_now_ns() - started) / 1e9;
}

int bench_sync(const bench_config_t *config) {
  sync_run_t run = {.config = config, .impl = bench_find_impl(config->impl)};
  bson_t storage;
  bson_value_t value = bench_value(config->large, &storage);
  double seconds, cpu_started;
  uint64_t ops;
  int status = 1;

  run.value = &value;
  atomic_init(&run.next, 0);
  atomic_init(&run.failed, 0);
  run.latencies_ns = bson_malloc0(config->max_ops * sizeof *run.latencies_ns);
  if (bench_prepare(config) != 0)
    goto done;
  run.store = run.impl->open(config->uri);
  if (run.store == NULL)
    goto done;

  cpu_started = bench_cpu_seconds();
  seconds = run_threads(&run, config->threads);
  ops = atomic_load(&run.next);
  if (ops > config->max_ops)
    ops = config->max_ops;
  if (!atomic_load(&run.failed) && ops > 0) {
    print_result(&run, ops, seconds, bench_cpu_seconds() - cpu_started);
    status = 0;
  }
  run.impl->close(run.store);

done:
  bson_free(run.latencies_ns);
  bson_destroy(&storage);
  return status;
}
