/*
 * Fault tests against a server that this program starts itself: the server
 * killed with SIGKILL under load and restarted on the same data folder and
 * port, and the server down when mkv_open() runs.
 *
 * MKV_TEST_SERVER_CMD gives the command that starts the server (see
 * server_process.h), and MKV_TEST_URI is not used. cmocka's asserts must
 * run on the main thread, so the sync threads record what they see and the
 * main thread asserts on it after joining them.
 */
#include "helpers.h"
#include "server_process.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

enum {
  SYNC_THREADS = 8,
  ASYNC_OPS = 500,
  /* The timeouts in the handle's URI, in milliseconds. */
  SERVER_SELECTION_TIMEOUT_MS = 1000,
  CONNECT_TIMEOUT_MS = 1000,
  SOCKET_TIMEOUT_MS = 1500,
  /* Time on top of the timeouts for a loaded machine, in milliseconds. */
  MARGIN_MS = 2000,
  /*
   * The maximum time that one set may take: a server selection, a new
   * connection, its handshake and the command. libmongoc retries a write
   * only on a replica set or a sharded cluster, so a set is not retried.
   */
  SET_LIMIT_MS = SERVER_SELECTION_TIMEOUT_MS + CONNECT_TIMEOUT_MS +
                 2 * SOCKET_TIMEOUT_MS + MARGIN_MS,
  /*
   * The maximum time that one get may take: as for a set, twice, because
   * libmongoc retries a read once after a network error.
   */
  GET_LIMIT_MS = 2 * (SET_LIMIT_MS - MARGIN_MS) + MARGIN_MS,
  /*
   * Every GET_EVERY-th async operation is a get of a key written before the
   * kill test starts. The others are sets of new keys.
   */
  GET_EVERY = 5,
  /*
   * The maximum time that an operation may take to fail while no server
   * listens. Connections are refused at once, so server selection times
   * out.
   */
  DOWN_LIMIT_MS = SERVER_SELECTION_TIMEOUT_MS + MARGIN_MS,
  /*
   * The server is killed once this many async callbacks have run and each
   * sync thread has had this many writes succeed.
   */
  KILL_AFTER_ASYNC = 100,
  KILL_AFTER_SYNC = 5,
  /*
   * Time from the kill to the restart, in milliseconds. It is longer than
   * SET_LIMIT_MS, so a set that waited for the server to come back instead
   * of timing out would break that limit.
   */
  DOWNTIME_MS = SET_LIMIT_MS + 1000,
  /* A sync thread stops after this many writes succeed after the restart. */
  RECOVERED_WRITES = 5,
  SYNC_MAX_WRITES = 1000,
  SYNC_PAUSE_MS = 20,
  /* The limit for the whole kill test's loop and threads, in milliseconds. */
  RUN_LIMIT_MS = 90000,
  TICK_MS = 10,
  /* The bounds of the retries once a stopped server has started. */
  RETRY_ATTEMPTS = 50,
  RETRY_LIMIT_MS = 20000,
};

/* The values of the async keys start here, away from the sync threads'. */
#define ASYNC_VALUE_BASE INT64_C(900000000)

/* The stage of the kill test, which the timer on the loop moves forward. */
typedef enum {
  PHASE_RUNNING,  /* the server runs and has not been killed yet */
  PHASE_DOWN,     /* killed, not yet restarted */
  PHASE_STARTING, /* restarted, not yet accepting connections */
  PHASE_UP,       /* the restarted server accepts connections */
} phase_t;

typedef struct restart_fixture_s restart_fixture_t;

/* One sync thread of the kill test and what it saw. */
typedef struct {
  restart_fixture_t *fixture;
  int index;
  pthread_t thread;
  bool started;
  int writes; /* mkv_set calls made */
  int status[SYNC_MAX_WRITES];
  atomic_int ok_count;
  int ok_after_restart; /* successes of writes begun in PHASE_UP */
  int slow_calls;
  uint64_t max_call_ms;
  char first_slow[640];
} sync_worker_t;

/* One async operation of the kill test and its callback's outcome. */
typedef struct {
  restart_fixture_t *fixture;
  int index;
  bool is_get;
  bool wrong_value; /* a get returned MKV_OK with another value */
  int calls;
  int status;
  phase_t phase; /* when the callback ran */
  uint64_t done_ms;
  char message[sizeof(((bson_error_t *)0)->message)];
} async_op_t;

struct restart_fixture_s {
  test_fixture_t base; /* name, collection, db and loop */
  server_process_t server;
  uv_timer_t ticker;
  atomic_int phase;
  atomic_bool stop;
  atomic_int threads_done;
  uint64_t kill_ms;
  uint64_t restart_ms;
  uint64_t submit_ms;
  sync_worker_t workers[SYNC_THREADS];
  async_op_t ops[ASYNC_OPS];
  int async_done;                 /* callbacks run, in order */
  uint64_t done_times[ASYNC_OPS]; /* the time of each callback, in order */
};

/*
 * Passes warnings and errors to libmongoc's default handler and drops the
 * rest, because the monitor of a server that is down logs a debug line
 * every half second.
 */
static void log_warnings(mongoc_log_level_t level, const char *domain,
                         const char *message, void *data) {
  if (level <= MONGOC_LOG_LEVEL_WARNING) {
    mongoc_log_default_handler(level, domain, message, data);
  }
}

static int restart_setup(void **state) {
  restart_fixture_t *fixture = bson_malloc0(sizeof *fixture);

  fixture->base.name = *state;
  snprintf(fixture->base.collection, sizeof fixture->base.collection, "%s_%ld",
           fixture->base.name, (long)getpid());
  if (uv_loop_init(&fixture->base.loop) != 0) {
    bson_free(fixture);
    return -1;
  }
  atomic_init(&fixture->phase, PHASE_RUNNING);
  atomic_init(&fixture->stop, false);
  atomic_init(&fixture->threads_done, 0);
  *state = fixture;
  server_process_init(&fixture->server);
  return 0;
}

static void stop_sync_threads(restart_fixture_t *fixture) {
  atomic_store(&fixture->stop, true);
  for (int i = 0; i < SYNC_THREADS; i++) {
    if (fixture->workers[i].started) {
      pthread_join(fixture->workers[i].thread, NULL);
      fixture->workers[i].started = false;
    }
  }
}

/*
 * Stops the threads, closes what the test left open and kills the server.
 * A failed test can leave async operations in flight that still use the
 * loop and the handle, so then the fixture is leaked rather than freed
 * under them.
 */
static int restart_teardown(void **state) {
  restart_fixture_t *fixture = *state;
  bool leak = false;

  stop_sync_threads(fixture);
  if (fixture->base.db != NULL) {
    int status = mkv_close(fixture->base.db);

    if (status == MKV_OK) {
      fixture->base.db = NULL;
    } else {
      print_error("teardown of %s: mkv_close returned %s, so the handle is "
                  "left open\n",
                  fixture->base.name, mkv_err_name(status));
      leak = true;
    }
  }
  if (!fixture->base.loop_closed && uv_loop_close(&fixture->base.loop) != 0) {
    leak = true;
  }
  server_process_destroy(&fixture->server);
  if (!leak) {
    bson_free(fixture);
  }
  return leak ? -1 : 0;
}

/*
 * Opens fixture->base.db on the fixture's server, whether it runs or not.
 * journal=true makes each write wait for the server's journal: a
 * standalone MongoDB acknowledges a w:1 write once it is in memory, and a
 * SIGKILL may lose that write.
 */
static void open_handle(restart_fixture_t *fixture) {
  mkv_options_t options = test_options(&fixture->base);
  bson_error_t error = {0};
  char uri[256];

  snprintf(uri, sizeof uri,
           "mongodb://127.0.0.1:%d/?serverSelectionTimeoutMS=%d"
           "&connectTimeoutMS=%d&socketTimeoutMS=%d&journal=true",
           fixture->server.port, SERVER_SELECTION_TIMEOUT_MS,
           CONNECT_TIMEOUT_MS, SOCKET_TIMEOUT_MS);
  CHECK_OK(mkv_open(&fixture->base.db, uri, &options, &error), &error);
}

/* Returns true for the statuses that an operation may end with. */
static bool fault_status(int status) {
  return status == MKV_OK || status == MKV_ECONNECT || status == MKV_ETIMEDOUT;
}

static void sync_key(char *key, size_t size, int thread, int write) {
  snprintf(key, size, "s%d_%d", thread, write);
}

static int64_t sync_value(int thread, int write) {
  return (int64_t)thread * 1000000 + write;
}

static void async_key(char *key, size_t size, int index) {
  snprintf(key, size, "a%d", index);
}

/* Records one sync call's duration, and its error when it ran too long. */
static void note_call(sync_worker_t *worker, const char *key, int status,
                      const bson_error_t *error, uint64_t elapsed_ms) {
  if (elapsed_ms > worker->max_call_ms) {
    worker->max_call_ms = elapsed_ms;
  }
  if (elapsed_ms > SET_LIMIT_MS && worker->slow_calls++ == 0) {
    snprintf(worker->first_slow, sizeof worker->first_slow,
             "set key \"%s\" took %" PRIu64 " ms and returned %s: %s", key,
             elapsed_ms, mkv_err_name(status), error->message);
  }
}

/*
 * Writes new keys, one at a time, until RECOVERED_WRITES of them succeed
 * after the restart, or the test stops it, or SYNC_MAX_WRITES or
 * RUN_LIMIT_MS runs out.
 */
static void *sync_writer(void *arg) {
  sync_worker_t *worker = arg;
  restart_fixture_t *fixture = worker->fixture;
  uint64_t deadline = test_now_ms() + RUN_LIMIT_MS;

  for (int i = 0; i < SYNC_MAX_WRITES; i++) {
    bson_value_t value = mkv_int64(sync_value(worker->index, i));
    bson_error_t error = {0};
    phase_t phase = (phase_t)atomic_load(&fixture->phase);
    uint64_t start_ms;
    char key[32];
    int status;

    if (atomic_load(&fixture->stop) || test_now_ms() > deadline) {
      break;
    }
    sync_key(key, sizeof key, worker->index, i);
    start_ms = test_now_ms();
    status = mkv_set(fixture->base.db, key, &value, NULL, &error);
    note_call(worker, key, status, &error, test_now_ms() - start_ms);
    worker->status[i] = status;
    worker->writes = i + 1;

    if (status == MKV_OK) {
      atomic_fetch_add(&worker->ok_count, 1);
      if (phase == PHASE_UP && ++worker->ok_after_restart >= RECOVERED_WRITES) {
        break;
      }
    }
    uv_sleep(SYNC_PAUSE_MS);
  }
  atomic_fetch_add(&fixture->threads_done, 1);
  return NULL;
}

static int64_t async_value(int index) { return ASYNC_VALUE_BASE + index; }

static void on_async_done(mkv_t *db, const mkv_result_t *result, void *data) {
  async_op_t *op = data;
  restart_fixture_t *fixture = op->fixture;
  bson_value_t expected = mkv_int64(async_value(op->index));
  uint64_t now = test_now_ms();

  (void)db;
  op->calls++;
  op->status = result->status;
  if (op->is_get && result->status == MKV_OK) {
    op->wrong_value = !test_value_equal(&expected, result->value);
  }
  op->phase = (phase_t)atomic_load(&fixture->phase);
  op->done_ms = now;
  bson_strncpy(op->message, result->error->message, sizeof op->message);
  if (fixture->async_done < ASYNC_OPS) {
    fixture->done_times[fixture->async_done] = now;
  }
  fixture->async_done++;
}

static bool sync_threads_ready(restart_fixture_t *fixture) {
  for (int i = 0; i < SYNC_THREADS; i++) {
    if (atomic_load(&fixture->workers[i].ok_count) < KILL_AFTER_SYNC) {
      return false;
    }
  }
  return true;
}

/* Moves the kill test from one phase to the next, on the loop thread. */
static void on_tick(uv_timer_t *timer) {
  restart_fixture_t *fixture = timer->data;
  uint64_t now = test_now_ms();

  switch ((phase_t)atomic_load(&fixture->phase)) {
  case PHASE_RUNNING:
    if (fixture->async_done >= ASYNC_OPS) {
      fail_msg("all %d async operations ended before the kill; raise ASYNC_OPS",
               ASYNC_OPS);
    }
    if (fixture->async_done >= KILL_AFTER_ASYNC &&
        sync_threads_ready(fixture)) {
      server_process_kill(&fixture->server);
      fixture->kill_ms = now;
      atomic_store(&fixture->phase, PHASE_DOWN);
    }
    break;
  case PHASE_DOWN:
    if (now - fixture->kill_ms >= DOWNTIME_MS) {
      server_process_spawn(&fixture->server);
      atomic_store(&fixture->phase, PHASE_STARTING);
    }
    break;
  case PHASE_STARTING:
    switch (server_process_poll(&fixture->server)) {
    case SERVER_READY:
      fixture->restart_ms = now;
      atomic_store(&fixture->phase, PHASE_UP);
      break;
    case SERVER_EXITED:
      server_process_print_log(&fixture->server);
      fail_msg("the restarted server exited; command: %s",
               fixture->server.command);
      break;
    case SERVER_STARTING:
      if (now - fixture->server.start_ms > SERVER_PROCESS_START_TIMEOUT_MS) {
        server_process_print_log(&fixture->server);
        fail_msg("the restarted server did not accept connections within "
                 "%d ms",
                 SERVER_PROCESS_START_TIMEOUT_MS);
      }
      break;
    }
    break;
  case PHASE_UP:
    if (atomic_load(&fixture->threads_done) == SYNC_THREADS &&
        fixture->async_done >= ASYNC_OPS) {
      uv_close((uv_handle_t *)timer, NULL);
    }
    break;
  }
}

/* Writes the keys that the async gets read, before anything is killed. */
static void write_get_keys(restart_fixture_t *fixture) {
  bson_error_t error = {0};

  for (int i = GET_EVERY - 1; i < ASYNC_OPS; i += GET_EVERY) {
    bson_value_t value = mkv_int64(async_value(i));
    char key[32];

    async_key(key, sizeof key, i);
    CHECK_OK(mkv_set(fixture->base.db, key, &value, NULL, &error), &error);
  }
}

static void submit_async_ops(restart_fixture_t *fixture) {
  mkv_t *db = fixture->base.db;
  uv_loop_t *loop = &fixture->base.loop;

  fixture->submit_ms = test_now_ms();
  for (int i = 0; i < ASYNC_OPS; i++) {
    async_op_t *op = &fixture->ops[i];
    bson_value_t value = mkv_int64(async_value(i));
    char key[32];

    async_key(key, sizeof key, i);
    op->fixture = fixture;
    op->index = i;
    op->is_get = i % GET_EVERY == GET_EVERY - 1;
    if (op->is_get) {
      CHECK_OK(mkv_get_async(db, loop, key, on_async_done, op), NULL);
    } else {
      CHECK_OK(mkv_set_async(db, loop, key, &value, on_async_done, op), NULL);
    }
  }
}

static void start_sync_threads(restart_fixture_t *fixture) {
  for (int i = 0; i < SYNC_THREADS; i++) {
    sync_worker_t *worker = &fixture->workers[i];

    worker->fixture = fixture;
    worker->index = i;
    atomic_init(&worker->ok_count, 0);
    assert_int_equal(pthread_create(&worker->thread, NULL, sync_writer, worker),
                     0);
    worker->started = true;
  }
}

/*
 * Asserts that each callback ran once, with a status of a lost server, and
 * that no get returned a wrong value.
 */
static void assert_async_outcomes(const restart_fixture_t *fixture, int *failed,
                                  int *ok_after_restart) {
  for (int i = 0; i < ASYNC_OPS; i++) {
    const async_op_t *op = &fixture->ops[i];

    if (op->calls != 1 || !fault_status(op->status) || op->wrong_value) {
      print_error("async %s %d: %d callbacks, last with %s: %s\n",
                  op->is_get ? "get" : "set", i, op->calls,
                  mkv_err_name(op->status), op->message);
    }
    assert_int_equal(op->calls, 1);
    assert_true(fault_status(op->status));
    assert_false(op->wrong_value);
    *failed += op->status != MKV_OK;
    *ok_after_restart += op->status == MKV_OK && op->phase == PHASE_UP;
  }
  if (fixture->async_done != ASYNC_OPS) {
    print_error("%d callbacks ran for %d async operations\n",
                fixture->async_done, ASYNC_OPS);
  }
  assert_int_equal(fixture->async_done, ASYNC_OPS);
}

/*
 * Asserts that no async set ran longer than SET_LIMIT_MS, and no get
 * longer than GET_LIMIT_MS. mkv starts the
 * queued operations of one loop in call order, one each time a running
 * operation completes, so with M on the threadpool at once, operation k
 * (k >= M) started just before callback number k - M ran. Returns the
 * longest duration.
 */
static uint64_t assert_async_durations(const restart_fixture_t *fixture) {
  unsigned max_in_flight = test_default_max_in_flight();
  uint64_t longest = 0;
  int slow = 0;

  for (int k = 0; k < ASYNC_OPS; k++) {
    const async_op_t *op = &fixture->ops[k];
    uint64_t start = (unsigned)k < max_in_flight
                         ? fixture->submit_ms
                         : fixture->done_times[k - max_in_flight];
    uint64_t elapsed = op->done_ms - start;
    uint64_t limit = op->is_get ? GET_LIMIT_MS : SET_LIMIT_MS;

    if (elapsed > longest) {
      longest = elapsed;
    }
    if (elapsed > limit && slow++ == 0) {
      print_error("async %s %d took %" PRIu64 " ms, over %" PRIu64
                  " ms: %s: %s\n",
                  op->is_get ? "get" : "set", k, elapsed, limit,
                  mkv_err_name(op->status), op->message);
    }
  }
  assert_int_equal(slow, 0);
  return longest;
}

/* Asserts what each sync thread saw and returns its failed writes, summed. */
static int assert_sync_outcomes(const restart_fixture_t *fixture,
                                uint64_t *longest) {
  int failed = 0;

  for (int t = 0; t < SYNC_THREADS; t++) {
    const sync_worker_t *worker = &fixture->workers[t];

    if (worker->slow_calls > 0) {
      print_error("thread %d: %d calls over %d ms, the first: %s\n", t,
                  worker->slow_calls, SET_LIMIT_MS, worker->first_slow);
    }
    assert_int_equal(worker->slow_calls, 0);
    if (worker->ok_after_restart != RECOVERED_WRITES) {
      print_error("thread %d: %d of %d writes after the restart succeeded, "
                  "expected %d\n",
                  t, worker->ok_after_restart, worker->writes,
                  RECOVERED_WRITES);
    }
    assert_int_equal(worker->ok_after_restart, RECOVERED_WRITES);
    for (int i = 0; i < worker->writes; i++) {
      if (!fault_status(worker->status[i])) {
        print_error("thread %d: write %d returned %s\n", t, i,
                    mkv_err_name(worker->status[i]));
      }
      assert_true(fault_status(worker->status[i]));
      failed += worker->status[i] != MKV_OK;
    }
    if (worker->max_call_ms > *longest) {
      *longest = worker->max_call_ms;
    }
  }
  return failed;
}

/*
 * Asserts that a key whose write returned MKV_OK reads back with its exact
 * value, and that a key whose write failed is either missing or has it: a
 * failed write may still have been applied, but never as another value.
 */
static void assert_reads_back(mkv_t *db, const char *key, int64_t number,
                              bool written) {
  bson_value_t expected = mkv_int64(number);
  bson_value_t read = {0};
  bson_error_t error = {0};
  int status = mkv_get(db, key, &read, &error);

  if (written || status != MKV_ENOTFOUND) {
    if (status != MKV_OK) {
      print_error("key \"%s\", %s\n", key,
                  written ? "written with MKV_OK" : "whose write failed");
    }
    CHECK_OK(status, &error);
    assert_value_equal(&expected, &read);
    bson_value_destroy(&read);
  }
}

/* Reads back every key that the threads and the async operations used. */
static int assert_all_read_back(restart_fixture_t *fixture) {
  mkv_t *db = fixture->base.db;
  int checked = 0;
  char key[32];

  for (int t = 0; t < SYNC_THREADS; t++) {
    const sync_worker_t *worker = &fixture->workers[t];

    for (int i = 0; i < worker->writes; i++) {
      sync_key(key, sizeof key, t, i);
      assert_reads_back(db, key, sync_value(t, i), worker->status[i] == MKV_OK);
      checked++;
    }
  }
  for (int i = 0; i < ASYNC_OPS; i++) {
    async_key(key, sizeof key, i);
    assert_reads_back(db, key, async_value(i),
                      fixture->ops[i].is_get ||
                          fixture->ops[i].status == MKV_OK);
    checked++;
  }
  return checked;
}

/*
 * SIGKILL of the server while 8 threads write and 500 async sets and gets
 * are in flight, then a restart on the same port and data folder. Every
 * call ends in bounded time, every callback runs once, no get returns a
 * wrong value, the handle works again without a reopen, and every write
 * that succeeded reads back.
 */
static void kill_and_restart(void **state) {
  restart_fixture_t *fixture = *state;
  uint64_t longest_sync = 0;
  uint64_t longest_async;
  int async_failed = 0;
  int async_ok_after = 0;
  int sync_failed;
  int checked;
  bson_error_t error = {0};

  server_process_start(&fixture->server);
  open_handle(fixture);
  CHECK_OK(mkv_ping(fixture->base.db, &error), &error);

  fixture->ticker.data = fixture;
  assert_int_equal(uv_timer_init(&fixture->base.loop, &fixture->ticker), 0);
  write_get_keys(fixture);
  submit_async_ops(fixture);
  start_sync_threads(fixture);
  assert_int_equal(uv_timer_start(&fixture->ticker, on_tick, TICK_MS, TICK_MS),
                   0);
  test_run_loop(&fixture->base, RUN_LIMIT_MS);
  stop_sync_threads(fixture);

  assert_int_equal(atomic_load(&fixture->phase), PHASE_UP);
  assert_async_outcomes(fixture, &async_failed, &async_ok_after);
  longest_async = assert_async_durations(fixture);
  sync_failed = assert_sync_outcomes(fixture, &longest_sync);

  /* The kill must have hit both kinds of call, and the restart helped. */
  assert_true(async_failed > 0);
  assert_true(async_ok_after > 0);
  assert_true(sync_failed > 0);

  CHECK_OK(mkv_ping(fixture->base.db, &error), &error);
  checked = assert_all_read_back(fixture);
  print_message("down %" PRIu64 " ms until accepting, %d sync writes and %d "
                "async operations failed, longest call %" PRIu64
                " ms sync and %" PRIu64 " ms async, %d keys read back\n",
                fixture->restart_ms - fixture->kill_ms, sync_failed,
                async_failed, longest_sync, longest_async, checked);
  test_close_all(&fixture->base);
}

/* The outcome of one async get. */
typedef struct {
  int calls;
  int status;
  bson_value_t value; /* an owned copy on success */
} get_record_t;

static void on_get(mkv_t *db, const mkv_result_t *result, void *data) {
  get_record_t *record = data;

  (void)db;
  record->calls++;
  record->status = result->status;
  if (result->value != NULL) {
    bson_value_copy(result->value, &record->value);
  }
}

/* Asserts that a blocking call failed with MKV_ECONNECT in bounded time. */
#define CHECK_DOWN(expr, error)                                                \
  do {                                                                         \
    uint64_t start_ms_ = test_now_ms();                                        \
    CHECK_STATUS(MKV_ECONNECT, expr, error);                                   \
    assert_in_range(test_now_ms() - start_ms_, 0, DOWN_LIMIT_MS);              \
  } while (0)

/*
 * Sets `key` to `value` until it succeeds, for at most RETRY_ATTEMPTS tries
 * and RETRY_LIMIT_MS. Every failed try must be MKV_ECONNECT. Returns the
 * number of tries.
 */
static int set_until_ok(mkv_t *db, const char *key, const bson_value_t *value) {
  uint64_t start_ms = test_now_ms();
  bson_error_t error = {0};
  int attempts = 0;
  int status = MKV_ECONNECT;

  while (status != MKV_OK && attempts < RETRY_ATTEMPTS &&
         test_now_ms() - start_ms < RETRY_LIMIT_MS) {
    status = mkv_set(db, key, value, NULL, &error);
    attempts++;
    if (status != MKV_OK) {
      CHECK_STATUS(MKV_ECONNECT, status, &error);
    }
  }
  CHECK_OK(status, &error);
  return attempts;
}

/*
 * mkv_open with no server listening succeeds, because it does not contact
 * the server. Operations fail with MKV_ECONNECT until the server starts,
 * and then the same handle works.
 */
static void server_down_at_open(void **state) {
  restart_fixture_t *fixture = *state;
  mkv_t *db;
  bson_value_t value = mkv_str("later");
  bson_value_t read = {0};
  get_record_t down = {0};
  get_record_t up = {0};
  bson_error_t error = {0};
  int attempts;

  open_handle(fixture);
  db = fixture->base.db;
  CHECK_DOWN(mkv_ping(db, &error), &error);
  CHECK_DOWN(mkv_set(db, "k", &value, NULL, &error), &error);
  CHECK_DOWN(mkv_get(db, "k", &read, &error), &error);
  CHECK_OK(mkv_get_async(db, &fixture->base.loop, "k", on_get, &down), NULL);
  test_run_loop(&fixture->base, DOWN_LIMIT_MS);
  assert_int_equal(down.calls, 1);
  assert_int_equal(down.status, MKV_ECONNECT);

  server_process_start(&fixture->server);
  attempts = set_until_ok(db, "k", &value);
  CHECK_OK(mkv_get(db, "k", &read, &error), &error);
  assert_value_equal(&value, &read);
  bson_value_destroy(&read);

  CHECK_OK(mkv_get_async(db, &fixture->base.loop, "k", on_get, &up), NULL);
  test_run_loop(&fixture->base, SET_LIMIT_MS);
  assert_int_equal(up.calls, 1);
  assert_int_equal(up.status, MKV_OK);
  assert_value_equal(&value, &up.value);
  bson_value_destroy(&up.value);
  print_message("the first set after the start took %d tries\n", attempts);
  test_close_all(&fixture->base);
}

#define RESTART_CASE(fn)                                                       \
  cmocka_unit_test_prestate_setup_teardown(fn, restart_setup,                  \
                                           restart_teardown, (void *)#fn)

int main(void) {
  const struct CMUnitTest tests[] = {
      RESTART_CASE(server_down_at_open),
      RESTART_CASE(kill_and_restart),
  };

  mongoc_log_set_handler(log_warnings, NULL);
  if (server_process_command_template() == NULL) {
    return 1;
  }
  return cmocka_run_group_tests_name("restart", tests, NULL, NULL);
}
