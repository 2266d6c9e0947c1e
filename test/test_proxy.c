/*
 * Network faults between libmkv and the server, made by a Toxiproxy proxy
 * that each test creates: stalled replies, refused and stalled connections,
 * and connections cut in the middle of a request or a reply. The tests
 * check the status and the duration of each operation, and that no wrong
 * value comes back. They also check when a write is sent a second time,
 * that the loop thread keeps running, and that the handle works again once
 * the fault is gone.
 */
#include "helpers.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <mongoc/mongoc.h>

#include "toxiproxy.h"

/*
 * The timeouts under test, in milliseconds. They are short so that the
 * program runs in seconds, and long enough to stand apart from the delays
 * of a loaded machine.
 */
#define SOCKET_TIMEOUT_MS 1000
#define SELECTION_TIMEOUT_MS 1000
#define CONNECT_TIMEOUT_MS 500

/*
 * How much later than its timeout an operation may return. libmongoc
 * checks the server every 500 ms while an operation waits for one, and
 * the machine that runs the tests may be shared and slow.
 */
#define LATE_MARGIN_MS 1000

/*
 * How much earlier than its timeout an operation may return: libmongoc
 * computes its deadlines in microseconds from a monotonic clock, and mkv
 * itself counts 90% of socketTimeoutMS as a timeout.
 */
#define EARLY_MARGIN_MS 100

/* The proxy and the handle through it of the running test. */
typedef struct {
  test_proxy_t proxy;
  mkv_t *db; /* connects through the proxy; NULL when closed */
} proxy_case_t;

static proxy_case_t current;

/* Sets up the fixture, then creates the test's own proxy. */
static int proxy_setup(void **state) {
  test_fixture_t *fixture;

  if (test_setup(state) != 0)
    return -1;
  fixture = *state;
  memset(&current, 0, sizeof current);
  toxiproxy_create(&current.proxy, fixture->collection);
  return 0;
}

/* Closes the proxied handle, deletes the proxy and tears down the fixture. */
static int proxy_teardown(void **state) {
  int result = 0;

  if (current.db != NULL) {
    int status = mkv_close(current.db);

    if (status != MKV_OK) {
      print_error("teardown: mkv_close of the proxied handle returned %s\n",
                  mkv_err_name(status));
      result = -1;
    }
    current.db = NULL;
  }
  if (current.proxy.name[0] != '\0' && !toxiproxy_delete(&current.proxy))
    result = -1;
  if (test_teardown(state) != 0)
    result = -1;
  return result;
}

#define PROXY_CASE(fn)                                                         \
  cmocka_unit_test_prestate_setup_teardown(fn, proxy_setup, proxy_teardown,    \
                                           (void *)#fn)

/*
 * Opens current.db on the fixture's collection through the proxy, with
 * `options` added to the URI. directConnection=true keeps libmongoc on the
 * proxy's address even when the server names other replica set members.
 */
static void open_proxied(const test_fixture_t *fixture, const char *options) {
  mkv_options_t mkv_options = test_options(fixture);
  bson_error_t error = {0};
  char *query = bson_strdup_printf("directConnection=true&%s", options);
  char *uri = toxiproxy_uri(&current.proxy, query);

  CHECK_OK(mkv_open(&current.db, uri, &mkv_options, &error), &error);
  bson_free(uri);
  bson_free(query);
}

/* Returns a string value of `len` copies of `fill`, to free with
 * bson_value_destroy(). */
static bson_value_t long_string(size_t len, char fill) {
  char *text = bson_malloc(len + 1);
  bson_value_t value;

  memset(text, fill, len);
  text[len] = '\0';
  value.value_type = BSON_TYPE_UTF8;
  value.value.v_utf8.str = text;
  value.value.v_utf8.len = (uint32_t)len;
  return value;
}

/* Asserts that mkv_get() with `db` returns `expected` for `key`. */
static void assert_stored(mkv_t *db, const char *key,
                          const bson_value_t *expected) {
  bson_value_t value = {0};
  bson_error_t error = {0};

  CHECK_OK(mkv_get(db, key, &value, &error), &error);
  assert_value_equal(expected, &value);
  bson_value_destroy(&value);
}

/* Fails unless `elapsed_ms` lies in [low_ms, high_ms]. */
#define assert_elapsed(elapsed_ms, low_ms, high_ms)                            \
  do {                                                                         \
    print_message("    %s took %" PRIu64 " ms, expected %d to %d ms\n",        \
                  __func__, (uint64_t)(elapsed_ms), (int)(low_ms),             \
                  (int)(high_ms));                                             \
    assert_in_range((elapsed_ms), (low_ms), (high_ms));                        \
  } while (0)

/* socketTimeoutMS ------------------------------------------------------- */

/*
 * A get whose reply never comes fails with MKV_ETIMEDOUT once
 * socketTimeoutMS has passed. retryReads=false keeps libmongoc from sending
 * it again; the next test covers the retry.
 */
static void socket_timeout_get(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = mkv_str("before the stall");
  bson_value_t value = {0};
  bson_error_t error = {0};
  uint64_t started;
  int status;

  open_proxied(fixture, "socketTimeoutMS=1000&serverSelectionTimeoutMS=20000"
                        "&retryReads=false");
  CHECK_OK(mkv_set(current.db, "k", &stored, NULL, &error), &error);

  toxiproxy_add_toxic(&current.proxy, "stall", "timeout", "downstream",
                      "timeout", 0);
  started = test_now_ms();
  status = mkv_get(current.db, "k", &value, &error);
  CHECK_STATUS(MKV_ETIMEDOUT, status, &error);
  assert_elapsed(test_now_ms() - started, SOCKET_TIMEOUT_MS - EARLY_MARGIN_MS,
                 SOCKET_TIMEOUT_MS + LATE_MARGIN_MS);
  assert_int_equal(value.value_type, BSON_TYPE_EOD);

  assert_true(toxiproxy_remove_toxic(&current.proxy, "stall"));
  assert_stored(current.db, "k", &stored);
}

/*
 * With retryReads on, libmongoc's default, a get whose reply never comes is
 * sent once more. A timeout leaves the server selectable, so the retry
 * opens a new connection at once, whose handshake waits socketTimeoutMS
 * too. The get fails with MKV_ETIMEDOUT after twice socketTimeoutMS.
 */
static void socket_timeout_get_retried(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = mkv_str("before the stall");
  bson_value_t value = {0};
  bson_error_t error = {0};
  uint64_t started;
  int status;

  open_proxied(fixture, "socketTimeoutMS=1000&serverSelectionTimeoutMS=20000"
                        "&connectTimeoutMS=500");
  CHECK_OK(mkv_set(current.db, "k", &stored, NULL, &error), &error);

  toxiproxy_add_toxic(&current.proxy, "stall", "timeout", "downstream",
                      "timeout", 0);
  started = test_now_ms();
  status = mkv_get(current.db, "k", &value, &error);
  CHECK_STATUS(MKV_ETIMEDOUT, status, &error);
  assert_elapsed(test_now_ms() - started,
                 2 * SOCKET_TIMEOUT_MS - EARLY_MARGIN_MS,
                 2 * SOCKET_TIMEOUT_MS + LATE_MARGIN_MS);
  assert_int_equal(value.value_type, BSON_TYPE_EOD);

  assert_true(toxiproxy_remove_toxic(&current.proxy, "stall"));
  assert_stored(current.db, "k", &stored);
}

/*
 * Writes and mkv_all whose replies never come fail with MKV_ETIMEDOUT
 * after socketTimeoutMS too. libmongoc does not retry writes on a
 * standalone server, and retryWrites=false makes that so on any server.
 */
static void socket_timeout_each_operation(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = mkv_str("before the stall");
  mkv_keys_t keys = {0};
  bson_error_t error = {0};

  open_proxied(fixture, "socketTimeoutMS=1000&serverSelectionTimeoutMS=20000"
                        "&retryReads=false&retryWrites=false");
  for (int kind = 0; kind < 4; kind++) {
    uint64_t started;
    int status;

    CHECK_OK(mkv_set(current.db, "k", &stored, NULL, &error), &error);
    toxiproxy_add_toxic(&current.proxy, "stall", "timeout", "downstream",
                        "timeout", 0);
    started = test_now_ms();
    if (kind == 0)
      status = mkv_set(current.db, "k", &stored, NULL, &error);
    else if (kind == 1)
      status = mkv_remove(current.db, "k", NULL, &error);
    else if (kind == 2)
      status = mkv_all(current.db, &keys, &error);
    else
      status = mkv_purge(current.db, &error);
    CHECK_STATUS(MKV_ETIMEDOUT, status, &error);
    assert_elapsed(test_now_ms() - started, SOCKET_TIMEOUT_MS - EARLY_MARGIN_MS,
                   SOCKET_TIMEOUT_MS + LATE_MARGIN_MS);
    assert_int_equal(keys.count, 0);
    assert_true(toxiproxy_remove_toxic(&current.proxy, "stall"));
  }
  /* The purge reached the server, so the key is written again. */
  CHECK_OK(mkv_set(current.db, "k", &stored, NULL, &error), &error);
  assert_stored(current.db, "k", &stored);
}

/* serverSelectionTimeoutMS ---------------------------------------------- */

/*
 * A handle whose server refuses connections fails with MKV_ECONNECT once
 * serverSelectionTimeoutMS has passed, and works once the server is back.
 */
static void selection_timeout_refused(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = mkv_str("refused");
  bson_value_t value = {0};
  bson_error_t error = {0};
  uint64_t started;
  int status;

  CHECK_OK(mkv_set(fixture->db, "k", &stored, NULL, &error), &error);
  open_proxied(fixture, "serverSelectionTimeoutMS=1000");
  toxiproxy_set_enabled(&current.proxy, false);

  started = test_now_ms();
  status = mkv_get(current.db, "k", &value, &error);
  CHECK_STATUS(MKV_ECONNECT, status, &error);
  assert_elapsed(test_now_ms() - started,
                 SELECTION_TIMEOUT_MS - EARLY_MARGIN_MS,
                 SELECTION_TIMEOUT_MS + LATE_MARGIN_MS);

  toxiproxy_set_enabled(&current.proxy, true);
  assert_stored(current.db, "k", &stored);
}

/*
 * A server that accepts connections but never replies to the handshake also
 * gives MKV_ECONNECT. A check that starts just before the selection
 * deadline can run for connectTimeoutMS more, so that is the bound.
 */
static void selection_timeout_stalled(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = mkv_str("stalled");
  bson_value_t value = {0};
  bson_error_t error = {0};
  uint64_t started;
  int status;

  CHECK_OK(mkv_set(fixture->db, "k", &stored, NULL, &error), &error);
  open_proxied(fixture, "serverSelectionTimeoutMS=1000&connectTimeoutMS=500");
  toxiproxy_add_toxic(&current.proxy, "stall", "timeout", "upstream", "timeout",
                      0);

  started = test_now_ms();
  status = mkv_get(current.db, "k", &value, &error);
  CHECK_STATUS(MKV_ECONNECT, status, &error);
  assert_elapsed(test_now_ms() - started,
                 SELECTION_TIMEOUT_MS - EARLY_MARGIN_MS,
                 SELECTION_TIMEOUT_MS + CONNECT_TIMEOUT_MS + LATE_MARGIN_MS);

  assert_true(toxiproxy_remove_toxic(&current.proxy, "stall"));
  assert_stored(current.db, "k", &stored);
}

/* Connections cut in a request or a reply -------------------------------- */

/* A value of 100 kB, so that a cut falls inside it. */
#define BIG_VALUE_LEN 100000

/*
 * A get whose reply is cut in the middle of the value fails with
 * MKV_ECONNECT and returns no value. libmongoc's retry of the read meets
 * the same cut. Once the cut is gone the same handle reads the value.
 */
static void reset_in_get_reply(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = long_string(BIG_VALUE_LEN, 'g');
  bson_value_t value = {0};
  bson_error_t error = {0};
  uint64_t started;

  open_proxied(fixture, "serverSelectionTimeoutMS=1000&connectTimeoutMS=500");
  CHECK_OK(mkv_set(current.db, "k", &stored, NULL, &error), &error);

  toxiproxy_add_toxic(&current.proxy, "cut", "limit_data", "downstream",
                      "bytes", BIG_VALUE_LEN / 2);
  started = test_now_ms();
  CHECK_STATUS(MKV_ECONNECT, mkv_get(current.db, "k", &value, &error), &error);
  assert_elapsed(test_now_ms() - started, 0,
                 SELECTION_TIMEOUT_MS + LATE_MARGIN_MS);
  assert_int_equal(value.value_type, BSON_TYPE_EOD);

  assert_true(toxiproxy_remove_toxic(&current.proxy, "cut"));
  assert_stored(current.db, "k", &stored);
  bson_value_destroy(&stored);
}

/*
 * A set whose request is cut before the server has all of it fails with
 * MKV_ECONNECT, and the key keeps the value last written successfully.
 */
static void reset_in_set_request(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t first = mkv_str("first");
  bson_value_t second = long_string(BIG_VALUE_LEN, 's');
  bson_error_t error = {0};
  uint64_t started;

  open_proxied(fixture, "serverSelectionTimeoutMS=1000&connectTimeoutMS=500");
  CHECK_OK(mkv_set(current.db, "k", &first, NULL, &error), &error);

  toxiproxy_add_toxic(&current.proxy, "cut", "limit_data", "upstream", "bytes",
                      BIG_VALUE_LEN / 2);
  started = test_now_ms();
  CHECK_STATUS(MKV_ECONNECT, mkv_set(current.db, "k", &second, NULL, &error),
               &error);
  assert_elapsed(test_now_ms() - started, 0,
                 SELECTION_TIMEOUT_MS + LATE_MARGIN_MS);

  assert_stored(fixture->db, "k", &first);
  assert_true(toxiproxy_remove_toxic(&current.proxy, "cut"));
  assert_stored(current.db, "k", &first);
  bson_value_destroy(&second);
}

/*
 * A set whose reply is cut fails with MKV_ECONNECT although the server
 * has applied it. After an error from a write, its outcome is unknown.
 */
static void reset_in_set_reply(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t first = mkv_str("first");
  bson_value_t second = mkv_str("second");
  bson_error_t error = {0};

  open_proxied(fixture, "serverSelectionTimeoutMS=1000&connectTimeoutMS=500");
  CHECK_OK(mkv_set(current.db, "k", &first, NULL, &error), &error);

  toxiproxy_add_toxic(&current.proxy, "cut", "limit_data", "downstream",
                      "bytes", 10);
  CHECK_STATUS(MKV_ECONNECT, mkv_set(current.db, "k", &second, NULL, &error),
               &error);

  assert_stored(fixture->db, "k", &second);
  assert_true(toxiproxy_remove_toxic(&current.proxy, "cut"));
  assert_stored(current.db, "k", &second);
}

/*
 * A connection that the server side closes half way to socketTimeoutMS
 * gives MKV_ECONNECT, not MKV_ETIMEDOUT: libmongoc reports both with the
 * same error, so mkv compares how long the command ran with the timeout.
 */
static void reset_before_socket_timeout(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = mkv_str("before the reset");
  bson_value_t value = {0};
  bson_error_t error = {0};
  uint64_t started;

  open_proxied(fixture, "socketTimeoutMS=1000&serverSelectionTimeoutMS=20000"
                        "&retryReads=false");
  CHECK_OK(mkv_set(current.db, "k", &stored, NULL, &error), &error);

  /* A timeout toxic drops what it gets and closes after `timeout` ms. */
  toxiproxy_add_toxic(&current.proxy, "cut", "timeout", "downstream", "timeout",
                      SOCKET_TIMEOUT_MS / 2);
  started = test_now_ms();
  CHECK_STATUS(MKV_ECONNECT, mkv_get(current.db, "k", &value, &error), &error);
  assert_elapsed(test_now_ms() - started,
                 SOCKET_TIMEOUT_MS / 2 - EARLY_MARGIN_MS,
                 SOCKET_TIMEOUT_MS / 2 + LATE_MARGIN_MS);
  assert_int_equal(value.value_type, BSON_TYPE_EOD);

  assert_true(toxiproxy_remove_toxic(&current.proxy, "cut"));
  assert_stored(current.db, "k", &stored);
}

/* The number of keys for mkv_all, more than one batch of 101. */
#define ALL_KEY_COUNT 300

/*
 * mkv_all whose replies are cut part way through the keys fails with
 * MKV_ECONNECT and returns no keys rather than some of them.
 */
static void reset_in_all_reply(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t value = mkv_int64(1);
  mkv_keys_t keys = {0};
  bson_error_t error = {0};

  for (int i = 0; i < ALL_KEY_COUNT; i++)
    CHECK_OK(mkv_set(fixture->db, NULL, &value, NULL, &error), &error);
  open_proxied(fixture, "serverSelectionTimeoutMS=1000&connectTimeoutMS=500");
  CHECK_OK(mkv_ping(current.db, &error), &error);

  /* Each key is a document of about 40 bytes in the replies. */
  toxiproxy_add_toxic(&current.proxy, "cut", "limit_data", "downstream",
                      "bytes", ALL_KEY_COUNT * 40 / 2);
  CHECK_STATUS(MKV_ECONNECT, mkv_all(current.db, &keys, &error), &error);
  assert_null(keys.keys);
  assert_int_equal(keys.count, 0);

  assert_true(toxiproxy_remove_toxic(&current.proxy, "cut"));
  CHECK_OK(mkv_all(current.db, &keys, &error), &error);
  assert_int_equal(keys.count, ALL_KEY_COUNT);
  mkv_keys_destroy(&keys);
}

/* The loop thread while operations wait -------------------------------- */

#define ASYNC_OPERATION_COUNT 1000

/* How long the proxy delays every reply before it lets them through. */
#define STALL_MS 2000

/*
 * The maximum gap allowed between two runs of a 1 ms timer. A loop blocked
 * by an operation would show a gap of the whole stall, 2000 ms. On a
 * shared machine under load a runnable thread can wait its turn for a
 * long time: with a load average of 14 on 2 cores, the largest gap seen
 * was 161 ms under ThreadSanitizer. The bound leaves room for that and
 * stays four times below the stall.
 */
#define MAX_TIMER_GAP_MS 500

/*
 * At least this many timer runs must happen during the stall: one per
 * 10 ms on average, where an unblocked loop manages close to one per ms.
 */
#define MIN_TIMER_RUNS_IN_STALL (STALL_MS / 10)

typedef struct loop_probe_s loop_probe_t;

/* One async get: how often its callback ran, and what it returned. */
typedef struct {
  loop_probe_t *probe;
  int calls;
  int status;
  bool value_matches;
} get_slot_t;

struct loop_probe_s {
  uv_timer_t timer;
  mkv_t *db;
  const bson_value_t *expected;
  size_t queued;       /* gets that mkv_get_async() accepted */
  uint64_t queue_ns;   /* how long queuing the gets took */
  uint64_t started_ns; /* when the stall began */
  uint64_t last_run_ns;
  uint64_t max_gap_ns;
  uint64_t runs_in_stall;
  size_t done_in_stall; /* callbacks that ran before the stall ended */
  size_t done;
  get_slot_t slots[ASYNC_OPERATION_COUNT];
};

static void on_probe_get(mkv_t *db, const mkv_result_t *result, void *data);

/*
 * Queues the gets from the timer's first run. A get that blocked the loop
 * thread then keeps the timer from running in the stall, rather than
 * delaying the test before the timer starts.
 */
static void queue_gets(loop_probe_t *probe, uv_loop_t *loop) {
  for (size_t i = 0; i < ASYNC_OPERATION_COUNT; i++) {
    probe->slots[i].probe = probe;
    if (mkv_get_async(probe->db, loop, "k", on_probe_get, &probe->slots[i]) ==
        MKV_OK)
      probe->queued++;
  }
}

static void on_probe_timer(uv_timer_t *timer) {
  loop_probe_t *probe = timer->data;
  uint64_t now = uv_hrtime();

  if (now - probe->last_run_ns > probe->max_gap_ns)
    probe->max_gap_ns = now - probe->last_run_ns;
  probe->last_run_ns = now;
  if (now - probe->started_ns < (uint64_t)STALL_MS * 1000000) {
    probe->runs_in_stall++;
    probe->done_in_stall = probe->done;
  }

  /*
   * Queuing the gets is work of the loop thread, not waiting on the
   * network, so its time is reported apart from the gaps. A get that ran
   * on the loop thread would still show, because the timer would then
   * miss its runs in the stall.
   */
  if (probe->queue_ns == 0) {
    queue_gets(probe, timer->loop);
    probe->queue_ns = uv_hrtime() - now;
    probe->last_run_ns = uv_hrtime();
  }
  if (probe->done == probe->queued)
    uv_close((uv_handle_t *)timer, NULL);
}

static void on_probe_get(mkv_t *db, const mkv_result_t *result, void *data) {
  get_slot_t *slot = data;

  (void)db;
  slot->calls++;
  slot->status = result->status;
  slot->value_matches = result->value != NULL &&
                        test_value_equal(slot->probe->expected, result->value);
  slot->probe->done++;
}

/* Ends the stall after STALL_MS by removing the latency toxic, which lets
 * the replies it held through. */
static void *end_stall(void *data) {
  bool *removed = data;

  uv_sleep(STALL_MS);
  *removed = toxiproxy_remove_toxic(&current.proxy, "stall");
  return NULL;
}

/*
 * A 1 ms timer keeps running on time while 1,000 async gets wait for a
 * server whose replies the proxy delays for STALL_MS. Then every get
 * completes once, with the stored value.
 */
static void loop_not_blocked(void **state) {
  test_fixture_t *fixture = *state;
  bson_value_t stored = mkv_str("waited");
  loop_probe_t *probe = bson_malloc0(sizeof *probe);
  bson_error_t error = {0};
  bool removed = false;
  pthread_t thread;

  open_proxied(fixture, "socketTimeoutMS=20000&serverSelectionTimeoutMS=20000");
  CHECK_OK(mkv_set(current.db, "k", &stored, NULL, &error), &error);
  probe->db = current.db;
  probe->expected = &stored;

  toxiproxy_add_toxic(&current.proxy, "stall", "latency", "downstream",
                      "latency", 60000);
  probe->timer.data = probe;
  assert_int_equal(uv_timer_init(&fixture->loop, &probe->timer), 0);
  probe->started_ns = uv_hrtime();
  probe->last_run_ns = probe->started_ns;
  assert_int_equal(uv_timer_start(&probe->timer, on_probe_timer, 1, 1), 0);
  assert_int_equal(pthread_create(&thread, NULL, end_stall, &removed), 0);

  test_run_loop(fixture, 60000);
  assert_int_equal(pthread_join(thread, NULL), 0);

  print_message("    %s: largest timer gap %.1f ms, %" PRIu64
                " timer runs in the %d ms stall, queuing took %.1f ms\n",
                __func__, (double)probe->max_gap_ns / 1e6, probe->runs_in_stall,
                STALL_MS, (double)probe->queue_ns / 1e6);
  assert_true(removed);
  assert_int_equal(probe->queued, ASYNC_OPERATION_COUNT);
  assert_int_equal(probe->done_in_stall, 0);
  assert_int_equal(probe->done, ASYNC_OPERATION_COUNT);
  for (size_t i = 0; i < ASYNC_OPERATION_COUNT; i++) {
    assert_int_equal(probe->slots[i].calls, 1);
    CHECK_STATUS(MKV_OK, probe->slots[i].status, NULL);
    assert_true(probe->slots[i].value_matches);
  }
  assert_in_range(probe->runs_in_stall, MIN_TIMER_RUNS_IN_STALL, UINT64_MAX);
  assert_in_range(probe->max_gap_ns, 0, (uint64_t)MAX_TIMER_GAP_MS * 1000000);
  assert_in_range(probe->queue_ns, 0, (uint64_t)MAX_TIMER_GAP_MS * 1000000);
  bson_free(probe);
}

/* Retries ---------------------------------------------------------------- */

/* A blocking write run on its own thread while the test changes the key. */
typedef struct {
  mkv_t *db;
  bool remove; /* mkv_remove, else mkv_set of `value` */
  const bson_value_t *value;
  int status;
  bson_error_t error;
} write_call_t;

static void *run_write(void *data) {
  write_call_t *call = data;

  if (call->remove)
    call->status = mkv_remove(call->db, "k", NULL, &call->error);
  else
    call->status = mkv_set(call->db, "k", call->value, NULL, &call->error);
  return NULL;
}

/* Returns whether `value` is the string `text`. */
static bool is_string(const bson_value_t *value, const char *text) {
  return value->value_type == BSON_TYPE_UTF8 &&
         strcmp(value->value.v_utf8.str, text) == 0;
}

/*
 * Waits up to 10 s until the fixture's handle finds `key` with the string
 * `text`, or finds no key when `text` is NULL.
 */
static void wait_for_stored(test_fixture_t *fixture, const char *text) {
  for (int attempt = 0; attempt < 1000; attempt++) {
    bson_value_t value = {0};
    int status = mkv_get(fixture->db, "k", &value, NULL);
    bool match = text == NULL ? status == MKV_ENOTFOUND
                              : status == MKV_OK && is_string(&value, text);

    if (status == MKV_OK)
      bson_value_destroy(&value);
    if (match)
      return;
    uv_sleep(10);
  }
  fail_msg("the write through the proxy did not reach the server in 10 s");
}

/*
 * Runs a write through the proxy whose reply the proxy drops, so that the
 * server applies it and the client waits. Meanwhile the test stores
 * "overwritten" directly, then drops the connection. A write sent again
 * after the drop undoes "overwritten", and `retried` is whether that is
 * expected. A write sent once leaves it and fails with MKV_ECONNECT.
 */
static void check_write_sent(test_fixture_t *fixture, bool remove,
                             bool retried) {
  bson_value_t before = mkv_str("before");
  bson_value_t written = mkv_str("written");
  bson_value_t overwritten = mkv_str("overwritten");
  write_call_t call = {.remove = remove, .value = &written};
  bson_error_t error = {0};
  pthread_t thread;

  CHECK_OK(mkv_set(current.db, "k", &before, NULL, &error), &error);
  toxiproxy_add_toxic(&current.proxy, "stall", "timeout", "downstream",
                      "timeout", 0);
  call.db = current.db;
  assert_int_equal(pthread_create(&thread, NULL, run_write, &call), 0);
  wait_for_stored(fixture, remove ? NULL : "written");
  CHECK_OK(mkv_set(fixture->db, "k", &overwritten, NULL, &error), &error);

  /* Removing a timeout toxic closes the connections that it stalled. */
  assert_true(toxiproxy_remove_toxic(&current.proxy, "stall"));
  assert_int_equal(pthread_join(thread, NULL), 0);
  if (retried) {
    /* The second attempt succeeds and undoes "overwritten". */
    CHECK_OK(call.status, &call.error);
    if (remove)
      wait_for_stored(fixture, NULL);
    else
      assert_stored(fixture->db, "k", &written);
    return;
  }
  CHECK_STATUS(MKV_ECONNECT, call.status, &call.error);
  assert_stored(fixture->db, "k", &overwritten);
  assert_stored(current.db, "k", &overwritten);
}

/*
 * mkv does not retry, and with retryWrites=false neither does libmongoc,
 * on any kind of deployment: a set whose connection drops is sent once.
 */
static void set_not_retried(void **state) {
  open_proxied(*state, "socketTimeoutMS=20000&retryWrites=false");
  check_write_sent(*state, false, false);
}

static void remove_not_retried(void **state) {
  open_proxied(*state, "socketTimeoutMS=20000&retryWrites=false");
  check_write_sent(*state, true, false);
}

/*
 * Returns whether the server of MKV_TEST_URI is a replica set member or a
 * mongos, where libmongoc retries writes, and not a standalone server.
 */
static bool server_retries_writes(void) {
  mongoc_client_t *client = mongoc_client_new(test_uri());
  bson_t command = BSON_INITIALIZER;
  bson_error_t error = {0};
  bson_iter_t iter;
  bson_t reply;
  bool ok;
  bool replicated;

  assert_non_null(client);
  BSON_APPEND_INT32(&command, "hello", 1);
  ok = mongoc_client_command_simple(client, "admin", &command, NULL, &reply,
                                    &error);
  if (!ok) {
    bson_destroy(&reply);
    mongoc_client_destroy(client);
    fail_msg("hello failed: %s", error.message);
  }
  replicated = bson_has_field(&reply, "setName") ||
               (bson_iter_init_find(&iter, &reply, "msg") &&
                BSON_ITER_HOLDS_UTF8(&iter) &&
                strcmp(bson_iter_utf8(&iter, NULL), "isdbgrid") == 0);
  bson_destroy(&reply);
  bson_destroy(&command);
  mongoc_client_destroy(client);
  return replicated;
}

/*
 * With libmongoc's default retryWrites=true, whether a set is sent again
 * depends on the server. The retryWrites entry of libmongoc's mongoc_uri_t
 * documentation says that it retries a write once on a replica set or a
 * sharded cluster, so not on a standalone server, which FerretDB is.
 * NOTE: only the standalone case has been run; the replica set case
 * follows that documentation.
 */
static void set_retry_default(void **state) {
  bool retried = server_retries_writes();

  print_message("    %s: the server is %s\n", __func__,
                retried ? "replicated, so libmongoc retries"
                        : "standalone, so nothing retries");
  open_proxied(*state, "socketTimeoutMS=20000");
  check_write_sent(*state, false, retried);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      PROXY_CASE(socket_timeout_get),
      PROXY_CASE(socket_timeout_get_retried),
      PROXY_CASE(socket_timeout_each_operation),
      PROXY_CASE(selection_timeout_refused),
      PROXY_CASE(selection_timeout_stalled),
      PROXY_CASE(reset_in_get_reply),
      PROXY_CASE(reset_in_set_request),
      PROXY_CASE(reset_in_set_reply),
      PROXY_CASE(reset_in_all_reply),
      PROXY_CASE(reset_before_socket_timeout),
      PROXY_CASE(loop_not_blocked),
      PROXY_CASE(set_not_retried),
      PROXY_CASE(remove_not_retried),
      PROXY_CASE(set_retry_default),
  };

  if (test_check_environment() != 0 || toxiproxy_check_environment() != 0)
    return 1;
  return cmocka_run_group_tests(tests, NULL, NULL);
}
