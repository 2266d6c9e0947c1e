/*
 * Stress test: 16 threads make blocking calls and two threads each run a
 * libuv loop with many _async operations, all on one handle, for
 * MKV_TEST_STRESS_SECONDS (default 60). Then one loop calls
 * mkv_close_async() while every thread still has calls under way.
 *
 * Each thread and each async slot works on keys of its own, and keeps
 * track of what it stored. So every read has one exact expected result,
 * and after the close a new handle finds exactly the writes that returned
 * MKV_OK. The statuses allowed are MKV_OK and MKV_ENOTFOUND (get) while
 * the handle is open, then MKV_ECLOSED for calls and MKV_ECANCELED for
 * callbacks, and these two only once the close has started.
 *
 * The handle is freed when the close callback returns, so a call made after
 * that would read freed memory. The close callback therefore waits, bounded
 * in time, until every blocking thread has seen MKV_ECLOSED and stopped.
 * The async slots stop inside their own callbacks, which all end before
 * the close callback runs.
 */
#include "helpers.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
  SYNC_THREAD_COUNT = 16,
  SYNC_KEYS_PER_THREAD = 8,
  LOOP_COUNT = 2,
  SLOTS_PER_LOOP = 64,
  /* A bound on each thread's calls, so that its loop ends without the clock. */
  SYNC_MAX_CALLS = 10000000,
  /* On average one blocking call in this many is an all. */
  SYNC_ALL_EVERY = 50,
};

/* The default run time, and the range MKV_TEST_STRESS_SECONDS may set. */
#define DEFAULT_STRESS_SECONDS 60
#define MAX_STRESS_SECONDS 3600

/*
 * How long after the close is due every thread must have stopped and the
 * close callback must have run. Each call that is under way at the close
 * finishes first, within socketTimeoutMS (mkv's default 30000 ms).
 */
#define CLOSE_GRACE_MS 60000

/* The state that a thread or slot expects of one of its keys. */
typedef struct {
  bool present;
  int64_t value;
} key_state_t;

/* The first failure of a thread, and how many there were. */
typedef struct {
  int count;
  char first[640];
} failures_t;

static void record_failure(failures_t *failures, const char *fmt, ...)
    BSON_GNUC_PRINTF(2, 3);

static void record_failure(failures_t *failures, const char *fmt, ...) {
  va_list args;

  if (failures->count++ > 0) {
    return;
  }
  va_start(args, fmt);
  vsnprintf(failures->first, sizeof failures->first, fmt, args);
  va_end(args);
}

/* Counts of the statuses that calls or callbacks returned. */
typedef struct {
  uint64_t ok;
  uint64_t not_found;
  uint64_t closed;
  uint64_t canceled;
} status_counts_t;

typedef struct stress_s stress_t;

typedef struct {
  stress_t *stress;
  int index;
  key_state_t keys[SYNC_KEYS_PER_THREAD];
  uint32_t random_state;
  uint64_t calls;
  status_counts_t counts;
  failures_t failures;
} sync_worker_t;

typedef struct loop_worker_s loop_worker_t;

/* The steps of an async slot, one operation in flight at a time. */
typedef enum {
  STEP_SET_FIRST,
  STEP_GET_FIRST,
  STEP_SET_SECOND,
  STEP_GET_SECOND,
  STEP_REMOVE,
  STEP_GET_REMOVED,
  STEP_ALL,
  STEP_COUNT
} slot_step_t;

typedef struct {
  loop_worker_t *owner;
  char key[32];
  slot_step_t step;
  key_state_t state;
  int64_t pending_value; /* what the set in flight writes */
  bool in_flight;
  bool done; /* a submit returned MKV_ECLOSED */
  uint64_t writes;
} slot_t;

struct loop_worker_s {
  stress_t *stress;
  int index;
  uv_loop_t loop;
  uv_timer_t guard;
  bool guard_fired;
  uv_timer_t close_timer; /* the first loop's only */
  slot_t slots[SLOTS_PER_LOOP];
  uint64_t submitted;
  uint64_t callbacks;
  uint64_t rejected; /* submits that returned MKV_ECLOSED */
  status_counts_t counts;
  int slots_done;
  failures_t failures;
};

struct stress_s {
  mkv_t *db;
  uint64_t start_ms;
  uint64_t close_due_ms;    /* when the first loop calls mkv_close_async() */
  uint64_t deadline_ms;     /* close_due_ms + CLOSE_GRACE_MS */
  atomic_bool closing;      /* set just before mkv_close_async() */
  atomic_int sync_active;   /* blocking threads that may still call */
  atomic_int async_pending; /* accepted _async calls not yet called back */
  sync_worker_t sync_workers[SYNC_THREAD_COUNT];
  loop_worker_t loop_workers[LOOP_COUNT];

  /* Written on the first loop's thread, read after it is joined. */
  int close_calls;
  int close_status;
  uint64_t close_called_ms; /* when mkv_close_async() was called */
  uint64_t close_ms;        /* time from that call to its callback */
  int pending_at_close;
  failures_t close_failures;
};

static void sleep_ms(uint64_t ms) {
  struct timespec pause = {.tv_sec = (time_t)(ms / 1000),
                           .tv_nsec = (long)(ms % 1000) * 1000000L};

  nanosleep(&pause, NULL);
}

/* Reads MKV_TEST_STRESS_SECONDS, or fails the test when it is invalid. */
static int stress_seconds(void) {
  const char *text = getenv("MKV_TEST_STRESS_SECONDS");
  char *end = NULL;
  long seconds;

  if (text == NULL || text[0] == '\0') {
    return DEFAULT_STRESS_SECONDS;
  }
  errno = 0;
  seconds = strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || seconds < 1 ||
      seconds > MAX_STRESS_SECONDS) {
    fail_msg("MKV_TEST_STRESS_SECONDS is \"%s\"; expected whole seconds "
             "from 1 to %d",
             text, MAX_STRESS_SECONDS);
  }
  return (int)seconds;
}

/* Blocking threads ------------------------------------------------------ */

/* A xorshift generator, so that each thread's choices are reproducible. */
static uint32_t next_random(uint32_t *state) {
  uint32_t x = *state;

  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  *state = x;
  return x;
}

static void sync_key(char *key, size_t size, int thread, int index) {
  snprintf(key, size, "sync%d_k%d", thread, index);
}

/*
 * Counts a call's status and checks it against those allowed. Returns true
 * when the thread should stop because the handle is closing.
 */
static bool sync_count_status(sync_worker_t *worker, const char *call,
                              const char *key, int status, bool may_miss,
                              const bson_error_t *error) {
  worker->calls++;
  if (status == MKV_OK) {
    worker->counts.ok++;
    return false;
  }
  if (status == MKV_ENOTFOUND && may_miss) {
    worker->counts.not_found++;
    return false;
  }
  if (status == MKV_ECLOSED) {
    worker->counts.closed++;
    if (!atomic_load(&worker->stress->closing)) {
      record_failure(&worker->failures,
                     "thread %d: %s \"%s\" returned MKV_ECLOSED before the "
                     "close started",
                     worker->index, call, key);
    }
    return true;
  }
  record_failure(&worker->failures, "thread %d: %s \"%s\" returned %s: %s",
                 worker->index, call, key, mkv_err_name(status),
                 error->message);
  return false;
}

static bool sync_set(sync_worker_t *worker, int index, const char *key) {
  int64_t number = (int64_t)worker->index * 1000000000 + (int64_t)worker->calls;
  bson_value_t value = mkv_int64(number);
  bson_error_t error = {0};
  int status = mkv_set(worker->stress->db, key, &value, NULL, &error);

  if (status == MKV_OK) {
    worker->keys[index].present = true;
    worker->keys[index].value = number;
  }
  return sync_count_status(worker, "set", key, status, false, &error);
}

static bool sync_get(sync_worker_t *worker, int index, const char *key) {
  const key_state_t *expected = &worker->keys[index];
  bson_value_t read = {0};
  bson_error_t error = {0};
  int status = mkv_get(worker->stress->db, key, &read, &error);
  bool stop = sync_count_status(worker, "get", key, status, true, &error);

  if (status == MKV_OK && !expected->present) {
    record_failure(&worker->failures,
                   "thread %d: get \"%s\" found a value after its remove",
                   worker->index, key);
  } else if (status == MKV_ENOTFOUND && expected->present) {
    record_failure(&worker->failures,
                   "thread %d: get \"%s\" found nothing, expected %" PRId64,
                   worker->index, key, expected->value);
  } else if (status == MKV_OK && (read.value_type != BSON_TYPE_INT64 ||
                                  read.value.v_int64 != expected->value)) {
    record_failure(&worker->failures,
                   "thread %d: get \"%s\" read another value than %" PRId64,
                   worker->index, key, expected->value);
  }
  if (status == MKV_OK) {
    bson_value_destroy(&read);
  }
  return stop;
}

static bool sync_remove(sync_worker_t *worker, int index, const char *key) {
  bson_error_t error = {0};
  bool removed = false;
  int status = mkv_remove(worker->stress->db, key, &removed, &error);

  if (status == MKV_OK && removed != worker->keys[index].present) {
    record_failure(&worker->failures,
                   "thread %d: remove \"%s\" reported removed=%d, expected %d",
                   worker->index, key, (int)removed,
                   (int)worker->keys[index].present);
  }
  if (status == MKV_OK) {
    worker->keys[index].present = false;
  }
  return sync_count_status(worker, "remove", key, status, false, &error);
}

static bool keys_contain(const mkv_keys_t *keys, const char *key) {
  for (size_t i = 0; i < keys->count; i++) {
    if (strcmp(keys->keys[i], key) == 0) {
      return true;
    }
  }
  return false;
}

/* Lists every key and checks that this thread's keys are listed exactly. */
static bool sync_all(sync_worker_t *worker) {
  mkv_keys_t keys = {0};
  bson_error_t error = {0};
  int status = mkv_all(worker->stress->db, &keys, &error);
  char key[32];

  for (int i = 0; status == MKV_OK && i < SYNC_KEYS_PER_THREAD; i++) {
    sync_key(key, sizeof key, worker->index, i);
    if (keys_contain(&keys, key) != worker->keys[i].present) {
      record_failure(&worker->failures, "thread %d: all %s \"%s\", which is %s",
                     worker->index,
                     worker->keys[i].present ? "missed" : "listed", key,
                     worker->keys[i].present ? "stored" : "removed");
    }
  }
  mkv_keys_destroy(&keys);
  return sync_count_status(worker, "all", "", status, false, &error);
}

/* Runs one random call: set, get or remove, and all now and then. */
static bool sync_call(sync_worker_t *worker) {
  uint32_t choice = next_random(&worker->random_state);
  int index = (int)(choice % SYNC_KEYS_PER_THREAD);
  char key[32];

  sync_key(key, sizeof key, worker->index, index);
  choice = (choice / SYNC_KEYS_PER_THREAD) % (uint32_t)(SYNC_ALL_EVERY * 20);
  if (choice < 20) {
    return sync_all(worker);
  }
  choice %= 20;
  if (choice < 8) {
    return sync_set(worker, index, key);
  }
  if (choice < 17) {
    return sync_get(worker, index, key);
  }
  return sync_remove(worker, index, key);
}

/* Calls until a call returns MKV_ECLOSED, within the deadline. */
static void *run_sync_worker(void *data) {
  sync_worker_t *worker = data;
  stress_t *stress = worker->stress;
  bool stopped = false;

  for (int i = 0; i < SYNC_MAX_CALLS && !stopped; i++) {
    if (test_now_ms() > stress->deadline_ms) {
      record_failure(&worker->failures,
                     "thread %d: no MKV_ECLOSED within %d ms of the close",
                     worker->index, CLOSE_GRACE_MS);
      break;
    }
    stopped = sync_call(worker);
  }
  if (!stopped && worker->failures.count == 0) {
    record_failure(&worker->failures,
                   "thread %d: made %d calls without seeing MKV_ECLOSED",
                   worker->index, SYNC_MAX_CALLS);
  }
  atomic_fetch_sub(&stress->sync_active, 1);
  return NULL;
}

/* Async slots ----------------------------------------------------------- */

static void on_slot_done(mkv_t *db, const mkv_result_t *result, void *data);

/* Submits the slot's current step. Returns the status of the _async call. */
static int slot_submit(slot_t *slot) {
  loop_worker_t *owner = slot->owner;
  stress_t *stress = owner->stress;
  bson_value_t value;
  int status;

  switch (slot->step) {
  case STEP_SET_FIRST:
  case STEP_SET_SECOND:
    slot->pending_value = (int64_t)owner->index * 1000000000 +
                          (int64_t)(slot - owner->slots) * 1000000 +
                          (int64_t)slot->writes++;
    value = mkv_int64(slot->pending_value);
    status = mkv_set_async(stress->db, &owner->loop, slot->key, &value,
                           on_slot_done, slot);
    break;
  case STEP_REMOVE:
    status = mkv_remove_async(stress->db, &owner->loop, slot->key, on_slot_done,
                              slot);
    break;
  case STEP_ALL:
    status = mkv_all_async(stress->db, &owner->loop, on_slot_done, slot);
    break;
  default:
    status =
        mkv_get_async(stress->db, &owner->loop, slot->key, on_slot_done, slot);
    break;
  }
  return status;
}

/* Starts the slot's next operation, or marks the slot done when closing. */
static void slot_start(slot_t *slot) {
  loop_worker_t *owner = slot->owner;
  int status = slot_submit(slot);

  if (status == MKV_OK) {
    owner->submitted++;
    slot->in_flight = true;
    atomic_fetch_add(&owner->stress->async_pending, 1);
    return;
  }
  slot->done = true;
  owner->slots_done++;
  if (status == MKV_ECLOSED) {
    owner->rejected++;
    if (!atomic_load(&owner->stress->closing)) {
      record_failure(&owner->failures,
                     "loop %d: an _async call on \"%s\" returned MKV_ECLOSED "
                     "before the close started",
                     owner->index, slot->key);
    }
    return;
  }
  record_failure(&owner->failures,
                 "loop %d: an _async call on \"%s\" returned %s", owner->index,
                 slot->key, mkv_err_name(status));
}

/* Checks a get's result against what the slot stored. */
static void slot_check_get(slot_t *slot, const mkv_result_t *result) {
  loop_worker_t *owner = slot->owner;

  if (result->status == MKV_ENOTFOUND && slot->state.present) {
    record_failure(&owner->failures,
                   "loop %d: get \"%s\" found nothing, expected %" PRId64,
                   owner->index, slot->key, slot->state.value);
  } else if (result->status == MKV_OK && !slot->state.present) {
    record_failure(&owner->failures,
                   "loop %d: get \"%s\" found a value after its remove",
                   owner->index, slot->key);
  } else if (result->status == MKV_OK &&
             (result->value == NULL ||
              result->value->value_type != BSON_TYPE_INT64 ||
              result->value->value.v_int64 != slot->state.value)) {
    record_failure(&owner->failures,
                   "loop %d: get \"%s\" read another value than %" PRId64,
                   owner->index, slot->key, slot->state.value);
  }
}

/* Applies a successful operation to the slot's state and checks it. */
static void slot_apply(slot_t *slot, const mkv_result_t *result) {
  loop_worker_t *owner = slot->owner;

  switch (slot->step) {
  case STEP_SET_FIRST:
  case STEP_SET_SECOND:
    slot->state.present = true;
    slot->state.value = slot->pending_value;
    break;
  case STEP_REMOVE:
    if (result->removed != slot->state.present) {
      record_failure(&owner->failures,
                     "loop %d: remove \"%s\" reported removed=%d, expected %d",
                     owner->index, slot->key, (int)result->removed,
                     (int)slot->state.present);
    }
    slot->state.present = false;
    break;
  case STEP_ALL:
    if (result->keys == NULL ||
        keys_contain(result->keys, slot->key) != slot->state.present) {
      record_failure(
          &owner->failures, "loop %d: all listed \"%s\" wrongly, which is %s",
          owner->index, slot->key, slot->state.present ? "stored" : "removed");
    }
    break;
  default:
    slot_check_get(slot, result);
    break;
  }
}

/* Counts a callback's status. Returns false when it is not allowed. */
static bool slot_count_status(slot_t *slot, int status) {
  loop_worker_t *owner = slot->owner;
  bool is_get = slot->step == STEP_GET_FIRST || slot->step == STEP_GET_SECOND ||
                slot->step == STEP_GET_REMOVED;

  if (status == MKV_OK) {
    owner->counts.ok++;
    return true;
  }
  if (status == MKV_ENOTFOUND && is_get) {
    owner->counts.not_found++;
    return true;
  }
  if (status == MKV_ECANCELED && atomic_load(&owner->stress->closing)) {
    owner->counts.canceled++;
    return true;
  }
  return false;
}

static void on_slot_done(mkv_t *db, const mkv_result_t *result, void *data) {
  slot_t *slot = data;
  loop_worker_t *owner = slot->owner;

  owner->callbacks++;
  if (db != owner->stress->db) {
    record_failure(&owner->failures, "loop %d: a callback got another handle",
                   owner->index);
  }
  if (!slot->in_flight) {
    record_failure(&owner->failures,
                   "loop %d: a second callback for one operation on \"%s\"",
                   owner->index, slot->key);
  }
  slot->in_flight = false;
  atomic_fetch_sub(&owner->stress->async_pending, 1);

  if (!slot_count_status(slot, result->status)) {
    record_failure(&owner->failures,
                   "loop %d: step %d on \"%s\" called back with %s: %s",
                   owner->index, (int)slot->step, slot->key,
                   mkv_err_name(result->status), result->error->message);
  }
  if (result->status == MKV_OK || result->status == MKV_ENOTFOUND) {
    slot_apply(slot, result);
  }
  slot->step = (slot->step + 1) % STEP_COUNT;
  slot_start(slot);
}

/* Closing ---------------------------------------------------------------- */

/* Waits, bounded, until every blocking thread has stopped calling. */
static void wait_for_sync_workers(stress_t *stress) {
  while (atomic_load(&stress->sync_active) > 0 &&
         test_now_ms() < stress->deadline_ms) {
    sleep_ms(1);
  }
  if (atomic_load(&stress->sync_active) > 0) {
    record_failure(&stress->close_failures,
                   "%d blocking threads still ran when the close callback "
                   "gave up waiting, so the test aborts before they read the "
                   "freed handle",
                   atomic_load(&stress->sync_active));
    fprintf(stderr, "%s\n", stress->close_failures.first);
    abort();
  }
}

static void on_closed(mkv_t *db, const mkv_result_t *result, void *data) {
  stress_t *stress = data;

  stress->close_calls++;
  stress->close_status = result->status;
  stress->close_ms = test_now_ms() - stress->close_called_ms;
  stress->pending_at_close = atomic_load(&stress->async_pending);
  if (db != stress->db) {
    record_failure(&stress->close_failures,
                   "the close callback got another handle");
  }
  wait_for_sync_workers(stress);
}

static void on_close_due(uv_timer_t *timer) {
  loop_worker_t *owner = timer->data;
  stress_t *stress = owner->stress;
  int status;

  stress->close_called_ms = test_now_ms();
  atomic_store(&stress->closing, true);
  status = mkv_close_async(stress->db, &owner->loop, on_closed, stress);
  if (status != MKV_OK) {
    record_failure(&owner->failures, "mkv_close_async returned %s",
                   mkv_err_name(status));
  }
}

/* Loops ------------------------------------------------------------------ */

static void on_loop_guard(uv_timer_t *timer) {
  loop_worker_t *owner = timer->data;

  owner->guard_fired = true;
  uv_stop(timer->loop);
}

/*
 * Starts every slot, and on the first loop the close timer, then runs the
 * loop until all slots are done and the close has called back.
 */
static void *run_loop_worker(void *data) {
  loop_worker_t *owner = data;
  stress_t *stress = owner->stress;

  owner->guard.data = owner;
  uv_timer_init(&owner->loop, &owner->guard);
  uv_timer_start(&owner->guard, on_loop_guard,
                 stress->deadline_ms - test_now_ms(), 0);
  uv_unref((uv_handle_t *)&owner->guard);
  if (owner->index == 0) {
    owner->close_timer.data = owner;
    uv_timer_init(&owner->loop, &owner->close_timer);
    uv_timer_start(&owner->close_timer, on_close_due,
                   stress->close_due_ms - test_now_ms(), 0);
  }

  for (int i = 0; i < SLOTS_PER_LOOP; i++) {
    slot_start(&owner->slots[i]);
  }
  uv_run(&owner->loop, UV_RUN_DEFAULT);
  if (owner->guard_fired) {
    record_failure(&owner->failures,
                   "loop %d: still had work %d ms after the close was due",
                   owner->index, CLOSE_GRACE_MS);
    return NULL;
  }

  uv_close((uv_handle_t *)&owner->guard, NULL);
  if (owner->index == 0) {
    uv_close((uv_handle_t *)&owner->close_timer, NULL);
  }
  uv_run(&owner->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&owner->loop) != 0) {
    record_failure(&owner->failures, "loop %d: uv_loop_close failed",
                   owner->index);
  }
  return NULL;
}

/* Checks and report ------------------------------------------------------ */

static void assert_no_failures(const failures_t *failures) {
  if (failures->count != 0) {
    print_error("%d failures, the first: %s\n", failures->count,
                failures->first);
  }
  assert_int_equal(failures->count, 0);
}

/* Asserts that `db` stores `key` as `state` records it. */
static void assert_stored(mkv_t *db, const char *key,
                          const key_state_t *state) {
  bson_value_t read = {0};
  bson_error_t error = {0};

  if (!state->present) {
    CHECK_STATUS(MKV_ENOTFOUND, mkv_get(db, key, &read, &error), &error);
    return;
  }
  CHECK_OK(mkv_get(db, key, &read, &error), &error);
  assert_int_equal(read.value_type, BSON_TYPE_INT64);
  assert_int_equal(read.value.v_int64, state->value);
  bson_value_destroy(&read);
}

static void print_report(const stress_t *stress, int seconds) {
  status_counts_t sync = {0};
  status_counts_t async = {0};
  uint64_t sync_calls = 0;
  uint64_t submitted = 0;
  uint64_t rejected = 0;

  for (int i = 0; i < SYNC_THREAD_COUNT; i++) {
    const sync_worker_t *worker = &stress->sync_workers[i];

    sync_calls += worker->calls;
    sync.ok += worker->counts.ok;
    sync.not_found += worker->counts.not_found;
    sync.closed += worker->counts.closed;
  }
  for (int i = 0; i < LOOP_COUNT; i++) {
    const loop_worker_t *owner = &stress->loop_workers[i];

    submitted += owner->submitted;
    rejected += owner->rejected;
    async.ok += owner->counts.ok;
    async.not_found += owner->counts.not_found;
    async.canceled += owner->counts.canceled;
  }
  print_message("stress: %d s; %d blocking threads made %" PRIu64
                " calls: %" PRIu64 " MKV_OK, %" PRIu64
                " MKV_ENOTFOUND, %" PRIu64 " MKV_ECLOSED\n",
                seconds, SYNC_THREAD_COUNT, sync_calls, sync.ok, sync.not_found,
                sync.closed);
  print_message("stress: %d loops made %" PRIu64 " _async calls: %" PRIu64
                " MKV_OK, %" PRIu64 " MKV_ENOTFOUND, %" PRIu64
                " MKV_ECANCELED; %" PRIu64 " more returned MKV_ECLOSED\n",
                LOOP_COUNT, submitted, async.ok, async.not_found,
                async.canceled, rejected);
  print_message("stress: the close called back %" PRIu64
                " ms after mkv_close_async()\n",
                stress->close_ms);
}

static void init_stress(stress_t *stress, mkv_t *db, int seconds) {
  stress->db = db;
  stress->start_ms = test_now_ms();
  stress->close_due_ms = stress->start_ms + (uint64_t)seconds * 1000;
  stress->deadline_ms = stress->close_due_ms + CLOSE_GRACE_MS;
  atomic_init(&stress->closing, false);
  atomic_init(&stress->sync_active, SYNC_THREAD_COUNT);
  atomic_init(&stress->async_pending, 0);

  for (int i = 0; i < SYNC_THREAD_COUNT; i++) {
    stress->sync_workers[i].stress = stress;
    stress->sync_workers[i].index = i;
    stress->sync_workers[i].random_state = 2463534242u + (uint32_t)i * 7919u;
  }
  for (int i = 0; i < LOOP_COUNT; i++) {
    loop_worker_t *owner = &stress->loop_workers[i];

    owner->stress = stress;
    owner->index = i;
    for (int j = 0; j < SLOTS_PER_LOOP; j++) {
      owner->slots[j].owner = owner;
      snprintf(owner->slots[j].key, sizeof owner->slots[j].key, "loop%d_k%d", i,
               j);
    }
  }
}

/* Asserts what every thread and the close reported. */
static void assert_outcome(const stress_t *stress) {
  for (int i = 0; i < SYNC_THREAD_COUNT; i++) {
    assert_no_failures(&stress->sync_workers[i].failures);
    assert_int_equal(stress->sync_workers[i].counts.closed, 1);
  }
  for (int i = 0; i < LOOP_COUNT; i++) {
    const loop_worker_t *owner = &stress->loop_workers[i];

    assert_no_failures(&owner->failures);
    assert_int_equal(owner->callbacks, owner->submitted);
    assert_int_equal(owner->slots_done, SLOTS_PER_LOOP);
    assert_int_equal(owner->rejected, SLOTS_PER_LOOP);
    for (int j = 0; j < SLOTS_PER_LOOP; j++) {
      assert_false(owner->slots[j].in_flight);
    }
  }
  assert_no_failures(&stress->close_failures);
  assert_int_equal(stress->close_calls, 1);
  assert_int_equal(stress->close_status, MKV_OK);
  assert_int_equal(stress->pending_at_close, 0);
  assert_int_equal(atomic_load(&stress->async_pending), 0);
}

/* Reads every key with a new handle: each write that returned MKV_OK. */
static void assert_final_state(test_fixture_t *fixture,
                               const stress_t *stress) {
  mkv_options_t options = test_options(fixture);
  bson_error_t error = {0};
  char key[32];

  CHECK_OK(mkv_open(&fixture->db, test_uri(), &options, &error), &error);
  for (int i = 0; i < SYNC_THREAD_COUNT; i++) {
    for (int j = 0; j < SYNC_KEYS_PER_THREAD; j++) {
      sync_key(key, sizeof key, i, j);
      assert_stored(fixture->db, key, &stress->sync_workers[i].keys[j]);
    }
  }
  for (int i = 0; i < LOOP_COUNT; i++) {
    for (int j = 0; j < SLOTS_PER_LOOP; j++) {
      const slot_t *slot = &stress->loop_workers[i].slots[j];

      assert_stored(fixture->db, slot->key, &slot->state);
    }
  }
}

static void stress_close_races_calls(void **state) {
  test_fixture_t *fixture = *state;
  stress_t *stress = bson_malloc0(sizeof *stress);
  pthread_t sync_threads[SYNC_THREAD_COUNT];
  pthread_t loop_threads[LOOP_COUNT];
  int seconds = stress_seconds();

  init_stress(stress, fixture->db, seconds);
  /* mkv_close_async() frees the handle, so teardown must not close it. */
  fixture->db = NULL;

  for (int i = 0; i < LOOP_COUNT; i++) {
    assert_int_equal(uv_loop_init(&stress->loop_workers[i].loop), 0);
  }
  for (int i = 0; i < LOOP_COUNT; i++) {
    assert_int_equal(pthread_create(&loop_threads[i], NULL, run_loop_worker,
                                    &stress->loop_workers[i]),
                     0);
  }
  for (int i = 0; i < SYNC_THREAD_COUNT; i++) {
    assert_int_equal(pthread_create(&sync_threads[i], NULL, run_sync_worker,
                                    &stress->sync_workers[i]),
                     0);
  }
  for (int i = 0; i < SYNC_THREAD_COUNT; i++) {
    assert_int_equal(pthread_join(sync_threads[i], NULL), 0);
  }
  for (int i = 0; i < LOOP_COUNT; i++) {
    assert_int_equal(pthread_join(loop_threads[i], NULL), 0);
  }

  print_report(stress, seconds);
  assert_outcome(stress);
  assert_final_state(fixture, stress);
  bson_free(stress);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST_CASE(stress_close_races_calls),
  };

  if (test_check_environment() != 0) {
    return 1;
  }
  return cmocka_run_group_tests_name("stress", tests, NULL, NULL);
}
