/*
 * Shared fixture and checks for the libmkv tests. Every test program runs
 * against the server that MKV_TEST_URI names, and every test works on a
 * collection of its own, so programs may run in parallel.
 */
#ifndef MKV_TEST_HELPERS_H
#define MKV_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <mkv.h>

/* The database that contains every test collection. */
#define TEST_DB_NAME "mkv_test"

/* The default limit for one uv_run() of a test, in milliseconds. */
#define TEST_LOOP_TIMEOUT_MS 30000

/* Per-test state, created by test_setup() and freed by test_teardown(). */
typedef struct {
  const char *name;     /* the test function's name */
  char collection[128]; /* "<name>_<pid>", unique per test and process */
  mkv_t *db;            /* open on collection; NULL once the test closed it */
  uv_loop_t loop;       /* for async tests; test_close_all() closes it */
  bool loop_closed;
  uv_timer_t guard; /* stops the loop when a test_run_loop() runs too long */
  bool guard_fired;
} test_fixture_t;

/*
 * A test case whose setup opens fixture->db on a fresh collection named
 * after the test and whose teardown drops that collection.
 */
#define TEST_CASE(fn)                                                          \
  cmocka_unit_test_prestate_setup_teardown(fn, test_setup, test_teardown,      \
                                           (void *)#fn)

/*
 * Checks that MKV_TEST_URI is set and that its server replies to a ping.
 * Returns 0, or prints why not and returns 1. Each main() calls it first.
 */
int test_check_environment(void);

/* Returns MKV_TEST_URI. */
const char *test_uri(void);

int test_setup(void **state);
int test_teardown(void **state);

/* Returns options with the fixture's database and collection names. */
mkv_options_t test_options(const test_fixture_t *fixture);

/*
 * Closes fixture->db and opens it again with `options`, whose NULL names
 * are replaced by the fixture's.
 */
void test_reopen(test_fixture_t *fixture, const mkv_options_t *options);

/*
 * Runs fixture->loop until it has no more work, and fails the test when
 * that takes longer than timeout_ms.
 */
#define test_run_loop(fixture, timeout_ms)                                     \
  test_run_loop_at((fixture), (timeout_ms), __FILE__, __LINE__)
void test_run_loop_at(test_fixture_t *fixture, uint64_t timeout_ms,
                      const char *file, int line);

/* Asserts that mkv_close(fixture->db) and uv_loop_close() both return 0. */
void test_close_all(test_fixture_t *fixture);

/*
 * Asserts that `expr` returns the status `expected`. On a mismatch it prints
 * both status names and error->message (error may be NULL), then fails.
 */
#define CHECK_STATUS(expected, expr, error)                                    \
  test_check_status_at((expected), (expr), (error), #expr, __FILE__, __LINE__)
#define CHECK_OK(expr, error) CHECK_STATUS(MKV_OK, expr, error)
void test_check_status_at(int expected, int actual, const bson_error_t *error,
                          const char *expr, const char *file, int line);

/*
 * Asserts that two values have the same type and the same content: for
 * documents and arrays the same bytes, for doubles the same bits.
 */
#define assert_value_equal(expected, actual)                                   \
  do {                                                                         \
    if (!test_value_equal((expected), (actual))) {                             \
      _fail(__FILE__, __LINE__);                                               \
    }                                                                          \
  } while (0)
bool test_value_equal(const bson_value_t *expected, const bson_value_t *actual);

/* Sample values that the round trip tests store, one or two per BSON type. */
typedef enum {
  SAMPLE_STRING,
  SAMPLE_EMPTY_STRING,
  SAMPLE_INT32,
  SAMPLE_INT64,
  SAMPLE_DOUBLE,
  SAMPLE_TRUE,
  SAMPLE_FALSE,
  SAMPLE_NULL,
  SAMPLE_DOCUMENT,
  SAMPLE_EMPTY_DOCUMENT,
  SAMPLE_ARRAY,
  SAMPLE_BINARY,
  SAMPLE_OID,
  SAMPLE_DATE,
  SAMPLE_COUNT
} test_sample_t;

/*
 * Returns an owned copy of a sample value, to be released with
 * bson_value_destroy().
 */
bson_value_t test_sample_value(test_sample_t sample);

/* Returns the sample's name, such as "int64", for keys and messages. */
const char *test_sample_name(test_sample_t sample);

/* Parses Extended JSON with mkv_json() and fails the test if that fails. */
bson_value_t test_json(const char *json);

/*
 * Builds `levels` nested documents {"d": {"d": ... {"leaf": levels}}} into
 * `out`, which must not be initialized; release it with bson_destroy().
 */
void test_nest_documents(bson_t *out, int levels);

/* Returns a document or array value that borrows the bytes of `bson`. */
bson_value_t test_document_value(const bson_t *bson);
bson_value_t test_array_value(const bson_t *bson);

/*
 * Asserts that `keys` contains exactly the `count` strings of `expected`, in
 * any order.
 */
#define assert_keys_equal(keys, expected, count)                               \
  do {                                                                         \
    if (!test_keys_equal((keys), (expected), (count))) {                       \
      _fail(__FILE__, __LINE__);                                               \
    }                                                                          \
  } while (0)
bool test_keys_equal(const mkv_keys_t *keys, const char *const *expected,
                     size_t count);

/* Asserts that mkv_all() on fixture->db finds exactly `count` keys. */
#define assert_key_count(fixture, count)                                       \
  test_assert_key_count_at((fixture), (count), __FILE__, __LINE__)
void test_assert_key_count_at(test_fixture_t *fixture, size_t count,
                              const char *file, int line);

/* Returns true when `key` is 24 lowercase hexadecimal digits. */
bool test_is_object_id_hex(const char *key);

/* Inserts `document` into the fixture's collection with libmongoc itself. */
void test_insert_document(const test_fixture_t *fixture,
                          const bson_t *document);

/*
 * Returns a TCP port on 127.0.0.1 that nothing listens on: the port that
 * the kernel gave a socket that was then closed.
 */
int test_closed_port(void);

/*
 * Returns the default max_in_flight of a handle: the threadpool size from
 * UV_THREADPOOL_SIZE (libuv's default 4, clamped to 1..1024) minus one, and
 * at least 1.
 */
unsigned test_default_max_in_flight(void);

/* One async callback's outcome, filled by test_record_result(). */
typedef struct {
  int calls;  /* how many times the callback ran */
  int status; /* the last status */
  char message[sizeof(((bson_error_t *)0)->message)]; /* the last message */
} test_record_t;

/* Records a callback's outcome into the test_record_t that `data` names. */
void test_record_result(mkv_t *db, const mkv_result_t *result, void *data);

/* Returns a monotonic time in milliseconds. */
uint64_t test_now_ms(void);

#endif /* MKV_TEST_HELPERS_H */
