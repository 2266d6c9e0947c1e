/*
 * A plain loop of one operation on one key, for valgrind --tool=callgrind.
 * The runner counts the instructions of N and of 11N operations, so
 * everything outside the loop cancels out of the difference.
 */
#include <inttypes.h>
#include <stdio.h>

#include "bench.h"

int bench_count(const bench_config_t *config) {
  const bench_impl_t *impl = bench_find_impl(config->impl);
  bench_config_t one_key = *config;
  bson_t storage;
  bson_value_t value = bench_value(config->large, &storage);
  char key[32];
  uint64_t i;
  void *store;
  int status = 1;

  /* get reads, and set overwrites, the one key that is loaded. */
  one_key.keys = 1;
  bench_key(key, sizeof key, 0);
  if (bench_prepare(&one_key) != 0)
    goto done;
  store = impl->open(config->uri);
  if (store == NULL)
    goto done;

  for (i = 0; i < config->max_ops; i++) {
    if (bench_run_op(impl, store, config->op, key, &value) != 0)
      break;
  }
  if (i == config->max_ops) {
    printf("{\"mode\": \"count\", \"impl\": \"%s\", \"op\": \"%s\", "
           "\"large\": %s, \"ops\": %" PRIu64 "}\n",
           impl->name, bench_op_name(config->op),
           config->large ? "true" : "false", i);
    status = 0;
  }
  impl->close(store);

done:
  bson_destroy(&storage);
  return status;
}
