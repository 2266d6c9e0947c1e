/*
 * Concurrency tests: blocking calls from many threads on one handle, many
 * _async operations on one loop, and one handle serving two loops.
 *
 * cmocka's asserts must run on the main thread, so worker threads record
 * their first failure as text and the main thread asserts on it.
 */
#include "helpers.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

enum {
  THREAD_COUNT = 8,
  ROUNDS_PER_THREAD = 250, /* four operations each: 1,000 per thread */
  OPS_IN_FLIGHT = 1000,
  LOOP_THREAD_COUNT = 2,
  OPS_PER_LOOP = 200,
};

/* One worker thread's work and its outcome. */
typedef struct {
  mkv_t *db;
  int index;
  int operations;
  int failures;
  char first_failure[640];
} worker_t;

static void record_failure(worker_t *worker, const char *what, int status,
                           const bson_error_t *error) {
  if (worker->failures++ == 0) {
    snprintf(worker->first_failure, sizeof worker->first_failure,
             "thread %d: %s: %s: %s", worker->index, what, mkv_err_name(status),
             error != NULL ? error->message : "");
  }
}

static void assert_no_failures(const worker_t *workers, size_t count) {
  for (size_t i = 0; i < count; i++) {
    if (workers[i].failures != 0) {
      print_error("%d failures, the first: %s\n", workers[i].failures,
                  workers[i].first_failure);
    }
    assert_int_equal(workers[i].failures, 0);
  }
}

/* The value that thread `thread` writes in round `round`, pass 0 or 1. */
static int64_t round_value(int thread, int round, int pass) {
  return (int64_t)thread * 1000000 + round * 2 + pass;
}

static void thread_key(char *key, size_t size, int thread, int round) {
  snprintf(key, size, "t%d_k%d", thread, round);
}

/* Calls mkv_get and checks that it returns the int64 `expected`. */
static void check_get(worker_t *worker, const char *key, int64_t expected) {
  bson_value_t read = {0};
  bson_error_t error = {0};
  int status;

  worker->operations++;
  status = mkv_get(worker->db, key, &read, &error);
  if (status != MKV_OK) {
    record_failure(worker, key, status, &error);
    return;
  }
  if (read.value_type != BSON_TYPE_INT64 || read.value.v_int64 != expected) {
    record_failure(worker, "get returned another value", MKV_OK, NULL);
  }
  bson_value_destroy(&read);
}

static void check_set(worker_t *worker, const char *key, int64_t number) {
  bson_value_t value = mkv_int64(number);
  bson_error_t error = {0};
  int status;

  worker->operations++;
  status = mkv_set(worker->db, key, &value, NULL, &error);
  if (status != MKV_OK) {
    record_failure(worker, key, status, &error);
  }
}

/*
 * Each round sets a key, reads it, overwrites it, and then removes it
 * (odd rounds) or reads the second value (even rounds).
 */
static void *run_mixed_operations(void *data) {
  worker_t *worker = data;
  char key[32];

  for (int round = 0; round < ROUNDS_PER_THREAD; round++) {
    thread_key(key, sizeof key, worker->index, round);
    check_set(worker, key, round_value(worker->index, round, 0));
    check_get(worker, key, round_value(worker->index, round, 0));
    check_set(worker, key, round_value(worker->index, round, 1));

    if (round % 2 == 1) {
      bson_error_t error = {0};
      bool removed = false;
      int status;

      worker->operations++;
      status = mkv_remove(worker->db, key, &removed, &error);
      if (status != MKV_OK) {
        record_failure(worker, key, status, &error);
      } else if (!removed) {
        record_failure(worker, "remove found no document", status, NULL);
      }
    } else {
      check_get(worker, key, round_value(worker->index, round, 1));
    }
  }
  return NULL;
}

static void threads_mixed_ops(void **state) {
  test_fixture_t *fixture = *state;
  pthread_t threads[THREAD_COUNT];
  worker_t workers[THREAD_COUNT];
  worker_t verifier = {.db = fixture->db, .index = -1};
  size_t remaining_count = THREAD_COUNT * ROUNDS_PER_THREAD / 2;
  char **expected = bson_malloc0(remaining_count * sizeof *expected);
  mkv_keys_t keys = {0};
  bson_error_t error = {0};
  uint64_t start = test_now_ms();
  size_t next = 0;

  for (int i = 0; i < THREAD_COUNT; i++) {
    workers[i] = (worker_t){.db = fixture->db, .index = i};
    assert_int_equal(
        pthread_create(&threads[i], NULL, run_mixed_operations, &workers[i]),
        0);
  }
  for (int i = 0; i < THREAD_COUNT; i++) {
    assert_int_equal(pthread_join(threads[i], NULL), 0);
  }
  print_message("%d threads x %d operations took %" PRIu64 " ms\n",
                THREAD_COUNT, 4 * ROUNDS_PER_THREAD, test_now_ms() - start);

  assert_no_failures(workers, THREAD_COUNT);
  for (int i = 0; i < THREAD_COUNT; i++) {
    assert_int_equal(workers[i].operations, 4 * ROUNDS_PER_THREAD);
  }

  /* The even rounds' keys remain, each with its second value. */
  for (int thread = 0; thread < THREAD_COUNT; thread++) {
    for (int round = 0; round < ROUNDS_PER_THREAD; round += 2) {
      char key[32];

      thread_key(key, sizeof key, thread, round);
      check_get(&verifier, key, round_value(thread, round, 1));
      expected[next++] = bson_strdup(key);
    }
  }
  assert_no_failures(&verifier, 1);

  CHECK_OK(mkv_all(fixture->db, &keys, &error), &error);
  assert_keys_equal(&keys, (const char *const *)expected, remaining_count);

  mkv_keys_destroy(&keys);
  for (size_t i = 0; i < remaining_count; i++) {
    bson_free(expected[i]);
  }
  bson_free(expected);
}

/* One _async operation's outcome, for the tests with many of them. */
typedef struct {
  int calls;
  int status;
  bool value_matches;
  int64_t expected;
} slot_t;

static void on_slot_set(mkv_t *db, const mkv_result_t *result, void *data) {
  slot_t *slot = data;

  (void)db;
  slot->calls++;
  slot->status = result->status;
}

static void on_slot_get(mkv_t *db, const mkv_result_t *result, void *data) {
  slot_t *slot = data;

  (void)db;
  slot->calls++;
  slot->status = result->status;
  slot->value_matches = result->value != NULL &&
                        result->value->value_type == BSON_TYPE_INT64 &&
                        result->value->value.v_int64 == slot->expected;
}

/* Counts the slots that were called back once with MKV_OK. */
static int count_ok_slots(const slot_t *slots, int count) {
  int ok = 0;

  for (int i = 0; i < count; i++) {
    ok += slots[i].calls == 1 && slots[i].status == MKV_OK;
  }
  return ok;
}

static void async_in_flight(void **state) {
  test_fixture_t *fixture = *state;
  slot_t *sets = bson_malloc0(OPS_IN_FLIGHT * sizeof *sets);
  slot_t *gets = bson_malloc0(OPS_IN_FLIGHT * sizeof *gets);
  int matches = 0;
  char key[32];

  for (int i = 0; i < OPS_IN_FLIGHT; i++) {
    bson_value_t value = mkv_int64(i * 7);

    snprintf(key, sizeof key, "k%d", i);
    CHECK_OK(mkv_set_async(fixture->db, &fixture->loop, key, &value,
                           on_slot_set, &sets[i]),
             NULL);
  }
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(count_ok_slots(sets, OPS_IN_FLIGHT), OPS_IN_FLIGHT);

  for (int i = 0; i < OPS_IN_FLIGHT; i++) {
    snprintf(key, sizeof key, "k%d", i);
    gets[i].expected = i * 7;
    CHECK_OK(
        mkv_get_async(fixture->db, &fixture->loop, key, on_slot_get, &gets[i]),
        NULL);
  }
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(count_ok_slots(gets, OPS_IN_FLIGHT), OPS_IN_FLIGHT);
  for (int i = 0; i < OPS_IN_FLIGHT; i++) {
    matches += gets[i].value_matches;
  }
  assert_int_equal(matches, OPS_IN_FLIGHT);
  assert_key_count(fixture, OPS_IN_FLIGHT);

  bson_free(sets);
  bson_free(gets);
  test_close_all(fixture);
}

/* A thread that runs its own loop with _async calls on a shared handle. */
typedef struct {
  worker_t worker;
  slot_t sets[OPS_PER_LOOP];
  slot_t gets[OPS_PER_LOOP];
} loop_worker_t;

static void on_loop_guard(uv_timer_t *timer) {
  bool *fired = timer->data;

  *fired = true;
  uv_stop(timer->loop);
}

/* Runs `loop` until it has no work or TEST_LOOP_TIMEOUT_MS pass. */
static bool run_loop_bounded(uv_loop_t *loop) {
  uv_timer_t guard;
  bool fired = false;

  guard.data = &fired;
  uv_timer_init(loop, &guard);
  uv_timer_start(&guard, on_loop_guard, TEST_LOOP_TIMEOUT_MS, 0);
  uv_unref((uv_handle_t *)&guard);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return !fired;
}

static void *run_loop_worker(void *data) {
  loop_worker_t *loop_worker = data;
  worker_t *worker = &loop_worker->worker;
  uv_loop_t loop;
  char key[32];
  int status;

  if (uv_loop_init(&loop) != 0) {
    record_failure(worker, "uv_loop_init failed", MKV_OK, NULL);
    return NULL;
  }

  for (int i = 0; i < OPS_PER_LOOP; i++) {
    bson_value_t value = mkv_int64(round_value(worker->index, i, 0));

    snprintf(key, sizeof key, "loop%d_k%d", worker->index, i);
    status = mkv_set_async(worker->db, &loop, key, &value, on_slot_set,
                           &loop_worker->sets[i]);
    if (status != MKV_OK) {
      record_failure(worker, "mkv_set_async", status, NULL);
    }
  }
  if (!run_loop_bounded(&loop)) {
    record_failure(worker, "the loop timed out during the sets", MKV_OK, NULL);
    return NULL;
  }

  for (int i = 0; i < OPS_PER_LOOP; i++) {
    snprintf(key, sizeof key, "loop%d_k%d", worker->index, i);
    loop_worker->gets[i].expected = round_value(worker->index, i, 0);
    status = mkv_get_async(worker->db, &loop, key, on_slot_get,
                           &loop_worker->gets[i]);
    if (status != MKV_OK) {
      record_failure(worker, "mkv_get_async", status, NULL);
    }
  }
  if (!run_loop_bounded(&loop)) {
    record_failure(worker, "the loop timed out during the gets", MKV_OK, NULL);
    return NULL;
  }

  if (uv_loop_close(&loop) != 0) {
    record_failure(worker, "uv_loop_close failed", MKV_OK, NULL);
  }
  return NULL;
}

static void loops_share_handle(void **state) {
  test_fixture_t *fixture = *state;
  loop_worker_t *workers = bson_malloc0(LOOP_THREAD_COUNT * sizeof *workers);
  pthread_t threads[LOOP_THREAD_COUNT];

  for (int i = 0; i < LOOP_THREAD_COUNT; i++) {
    workers[i].worker.db = fixture->db;
    workers[i].worker.index = i;
    assert_int_equal(
        pthread_create(&threads[i], NULL, run_loop_worker, &workers[i]), 0);
  }
  for (int i = 0; i < LOOP_THREAD_COUNT; i++) {
    assert_int_equal(pthread_join(threads[i], NULL), 0);
  }

  for (int i = 0; i < LOOP_THREAD_COUNT; i++) {
    int matches = 0;

    assert_no_failures(&workers[i].worker, 1);
    assert_int_equal(count_ok_slots(workers[i].sets, OPS_PER_LOOP),
                     OPS_PER_LOOP);
    assert_int_equal(count_ok_slots(workers[i].gets, OPS_PER_LOOP),
                     OPS_PER_LOOP);
    for (int j = 0; j < OPS_PER_LOOP; j++) {
      matches += workers[i].gets[j].value_matches;
    }
    assert_int_equal(matches, OPS_PER_LOOP);
  }
  assert_key_count(fixture, LOOP_THREAD_COUNT * OPS_PER_LOOP);

  bson_free(workers);
}

/* Blocking calls on other threads while the loop thread runs _async ones. */
static void sync_during_async(void **state) {
  test_fixture_t *fixture = *state;
  enum { SYNC_THREADS = 2, ASYNC_OPS = 300 };
  pthread_t threads[SYNC_THREADS];
  worker_t workers[SYNC_THREADS];
  slot_t *sets = bson_malloc0(ASYNC_OPS * sizeof *sets);
  char key[32];

  for (int i = 0; i < SYNC_THREADS; i++) {
    workers[i] = (worker_t){.db = fixture->db, .index = i};
    assert_int_equal(
        pthread_create(&threads[i], NULL, run_mixed_operations, &workers[i]),
        0);
  }

  for (int i = 0; i < ASYNC_OPS; i++) {
    bson_value_t value = mkv_int64(i);

    snprintf(key, sizeof key, "async_k%d", i);
    CHECK_OK(mkv_set_async(fixture->db, &fixture->loop, key, &value,
                           on_slot_set, &sets[i]),
             NULL);
  }
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);

  for (int i = 0; i < SYNC_THREADS; i++) {
    assert_int_equal(pthread_join(threads[i], NULL), 0);
  }
  assert_no_failures(workers, SYNC_THREADS);
  assert_int_equal(count_ok_slots(sets, ASYNC_OPS), ASYNC_OPS);
  assert_key_count(fixture, ASYNC_OPS + SYNC_THREADS * ROUNDS_PER_THREAD / 2);

  bson_free(sets);
  test_close_all(fixture);
}

/* A get on its own loop, timed from the call to its callback. */
typedef struct {
  mkv_t *db;
  slot_t slot;
  uint64_t elapsed_ms;
  bool loop_ok;
} timed_get_t;

static void *run_timed_get(void *data) {
  timed_get_t *timed = data;
  uv_loop_t loop;
  uint64_t start;

  if (uv_loop_init(&loop) != 0) {
    return NULL;
  }
  start = test_now_ms();
  if (mkv_get_async(timed->db, &loop, "k", on_slot_set, &timed->slot) ==
      MKV_OK) {
    timed->loop_ok = run_loop_bounded(&loop);
  }
  timed->elapsed_ms = test_now_ms() - start;
  timed->loop_ok = timed->loop_ok && uv_loop_close(&loop) == 0;
  return NULL;
}

/*
 * With max_in_flight 1, this loop's first get takes the only slot and waits
 * 2 s for a server that never replies. A get from a second loop still
 * starts at once, so it fails after about 2 s, not 4 s.
 */
static void loop_not_blocked(void **state) {
  test_fixture_t *fixture = *state;
  mkv_options_t options = test_options(fixture);
  timed_get_t timed = {0};
  slot_t slots[2] = {{0}};
  pthread_t thread;
  bson_error_t error = {0};
  char uri[128];

  snprintf(uri, sizeof uri,
           "mongodb://127.0.0.1:%d/?serverSelectionTimeoutMS=2000",
           test_closed_port());
  options.max_in_flight = 1;
  CHECK_OK(mkv_close(fixture->db), NULL);
  fixture->db = NULL;
  CHECK_OK(mkv_open(&fixture->db, uri, &options, &error), &error);

  for (int i = 0; i < 2; i++) {
    CHECK_OK(
        mkv_get_async(fixture->db, &fixture->loop, "k", on_slot_set, &slots[i]),
        NULL);
  }
  timed.db = fixture->db;
  assert_int_equal(pthread_create(&thread, NULL, run_timed_get, &timed), 0);
  test_run_loop(fixture, TEST_LOOP_TIMEOUT_MS);
  assert_int_equal(pthread_join(thread, NULL), 0);

  for (int i = 0; i < 2; i++) {
    assert_int_equal(slots[i].calls, 1);
    CHECK_STATUS(MKV_ECONNECT, slots[i].status, NULL);
  }
  assert_true(timed.loop_ok);
  assert_int_equal(timed.slot.calls, 1);
  CHECK_STATUS(MKV_ECONNECT, timed.slot.status, NULL);
  print_message("the other loop's get took %" PRIu64 " ms\n", timed.elapsed_ms);
  assert_in_range(timed.elapsed_ms, 0, 3500);
  test_close_all(fixture);
}

static void *call_init(void *data) {
  (void)data;
  for (int i = 0; i < 100; i++) {
    mkv_init();
  }
  return NULL;
}

/* mkv_init() may run any number of times, from any thread. */
static void init_many_threads(void **state) {
  test_fixture_t *fixture = *state;
  pthread_t threads[THREAD_COUNT];
  bson_error_t error = {0};

  for (int i = 0; i < THREAD_COUNT; i++) {
    assert_int_equal(pthread_create(&threads[i], NULL, call_init, NULL), 0);
  }
  call_init(NULL);
  for (int i = 0; i < THREAD_COUNT; i++) {
    assert_int_equal(pthread_join(threads[i], NULL), 0);
  }
  CHECK_OK(mkv_ping(fixture->db, &error), &error);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST_CASE(threads_mixed_ops),  TEST_CASE(async_in_flight),
      TEST_CASE(loops_share_handle), TEST_CASE(sync_during_async),
      TEST_CASE(loop_not_blocked),   TEST_CASE(init_many_threads),
  };

  if (test_check_environment() != 0) {
    return 1;
  }
  return cmocka_run_group_tests_name("threads", tests, NULL, NULL);
}
