/*
 * mkv _async operations on one libuv loop with a fixed number in flight,
 * while a 1 ms uv_timer measures how late the loop thread runs it. The
 * runner sets UV_THREADPOOL_SIZE before the process starts.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

/* How often the stall timer is due, in milliseconds. */
#define STALL_TIMER_MS 1

typedef struct {
  const bench_config_t *config;
  mkv_t *db;
  uv_loop_t loop;
  uv_timer_t timer;
  const bson_value_t *value;
  uint64_t deadline_ns;
  uint64_t started;   /* operations started */
  uint64_t completed; /* operations whose callback ran */
  bool failed;
  uint64_t timer_due_ns; /* uv_hrtime() at which the timer is due */
  uint64_t *lateness_ns; /* one sample per timer run */
  size_t lateness_count;
  size_t lateness_capacity;
} async_run_t;

static void start_next(async_run_t *run);
static void on_timer(uv_timer_t *timer);

static void on_done(mkv_t *db, const mkv_result_t *result, void *data) {
  async_run_t *run = data;

  (void)db;
  run->completed++;
  if (result->status != MKV_OK) {
    fprintf(stderr, "mkv-bench: async %s: %s\n", mkv_err_name(result->status),
            result->error->message);
    run->failed = true;
  }
  start_next(run);
}

/* Starts one more operation unless the count or the time has run out. */
static void start_next(async_run_t *run) {
  const bench_config_t *config = run->config;
  uint64_t index = run->started;
  char key[32];
  int status;

  if (run->failed || index >= config->max_ops ||
      bench_now_ns() >= run->deadline_ns)
    return;
  bench_key(key, sizeof key, bench_key_index(config, index));
  if (config->op == BENCH_SET)
    status = mkv_set_async(run->db, &run->loop, key, run->value, on_done, run);
  else if (config->op == BENCH_GET)
    status = mkv_get_async(run->db, &run->loop, key, on_done, run);
  else
    status = mkv_remove_async(run->db, &run->loop, key, on_done, run);
  if (status != MKV_OK) {
    fprintf(stderr, "mkv-bench: queuing %s failed: %s\n",
            bench_op_name(config->op), mkv_err_name(status));
    run->failed = true;
    return;
  }
  run->started++;
}

/*
 * Returns true once every started operation has called back and none can
 * start. With no operations in flight, the run is the timer alone on an
 * idle loop until the time runs out: the stall that the machine itself
 * causes.
 */
static bool run_finished(const async_run_t *run) {
  if (run->completed != run->started)
    return false;
  return run->config->in_flight > 0 || bench_now_ns() >= run->deadline_ns;
}

/* Starts the stall timer, due STALL_TIMER_MS of wall time from now. */
static void start_timer(async_run_t *run) {
  run->timer_due_ns = uv_hrtime() + STALL_TIMER_MS * 1000000u;
  uv_timer_start(&run->timer, on_timer, STALL_TIMER_MS, 0);
}

/*
 * Records how late the timer ran past its due time. libuv keeps loop time
 * in whole milliseconds, so the timer may also run up to 1 ms early, which
 * counts as 0.
 */
static void on_timer(uv_timer_t *timer) {
  async_run_t *run = timer->data;
  uint64_t now_ns = uv_hrtime();
  uint64_t due_ns = run->timer_due_ns;

  if (run->lateness_count == run->lateness_capacity) {
    run->lateness_capacity *= 2;
    run->lateness_ns = bson_realloc(
        run->lateness_ns, run->lateness_capacity * sizeof *run->lateness_ns);
  }
  run->lateness_ns[run->lateness_count++] =
      now_ns > due_ns ? now_ns - due_ns : 0;

  if (run_finished(run)) {
    uv_close((uv_handle_t *)timer, NULL);
    return;
  }
  start_timer(run);
}

static void print_result(async_run_t *run, double seconds, double cpu_seconds) {
  const bench_config_t *config = run->config;
  const char *pool_size = getenv("UV_THREADPOOL_SIZE");

  qsort(run->lateness_ns, run->lateness_count, sizeof *run->lateness_ns,
        bench_compare_u64);
  printf("{\"mode\": \"async\", \"impl\": \"mkv\", \"op\": \"%s\", "
         "\"large\": %s, \"in_flight\": %u, \"threadpool\": %s, "
         "\"keys\": %u, \"ops\": %" PRIu64 ", \"seconds\": %.6f, "
         "\"ops_per_s\": %.1f, \"stall_max_us\": %.1f, "
         "\"stall_p99_us\": %.1f, \"cpu_us_per_op\": %.2f}\n",
         bench_op_name(config->op), config->large ? "true" : "false",
         config->in_flight, pool_size != NULL ? pool_size : "4", config->keys,
         run->completed, seconds, (double)run->completed / seconds,
         run->lateness_ns[run->lateness_count - 1] / 1e3,
         bench_percentile(run->lateness_ns, run->lateness_count, 99) / 1e3,
         run->completed > 0 ? cpu_seconds / (double)run->completed * 1e6 : 0);
}

/* Runs the loop with the stall timer until every operation has called back. */
static double run_loop(async_run_t *run) {
  uint64_t started_ns = bench_now_ns();
  unsigned i;

  run->deadline_ns = started_ns + (uint64_t)(run->config->max_seconds * 1e9);
  uv_update_time(&run->loop);
  start_timer(run);
  for (i = 0; i < run->config->in_flight; i++)
    start_next(run);
  uv_run(&run->loop, UV_RUN_DEFAULT);
  return (bench_now_ns() - started_ns) / 1e9;
}

int bench_async(const bench_config_t *config) {
  mkv_options_t options = {.db_name = BENCH_DB_NAME,
                           .collection_name = BENCH_COLLECTION};
  async_run_t run = {.config = config, .lateness_capacity = 1024};
  bson_t storage;
  bson_value_t value = bench_value(config->large, &storage);
  bson_error_t error;
  double seconds, cpu_started;
  int status = 1;

  run.value = &value;
  run.lateness_ns = bson_malloc(run.lateness_capacity * sizeof(uint64_t));
  uv_loop_init(&run.loop);
  uv_timer_init(&run.loop, &run.timer);
  run.timer.data = &run;
  if (bench_prepare(config) != 0)
    goto done;
  if (mkv_open(&run.db, config->uri, &options, &error) != MKV_OK) {
    fprintf(stderr, "mkv-bench: mkv_open failed: %s\n", error.message);
    goto done;
  }

  cpu_started = bench_cpu_seconds();
  seconds = run_loop(&run);
  if (!run.failed && (run.completed > 0 || config->in_flight == 0)) {
    print_result(&run, seconds, bench_cpu_seconds() - cpu_started);
    status = 0;
  }
  mkv_close(run.db);

done:
  if (!uv_is_closing((uv_handle_t *)&run.timer))
    uv_close((uv_handle_t *)&run.timer, NULL);
  uv_run(&run.loop, UV_RUN_DEFAULT);
  uv_loop_close(&run.loop);
  bson_free(run.lateness_ns);
  bson_destroy(&storage);
  return status;
}
