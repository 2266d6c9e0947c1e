/*
 * Tests of handles across fork(): a child that uses its parent's handle
 * gets MKV_EFORKED from every call but mkv_close(), a handle that the child
 * opens works, and the parent's handle and data survive the child.
 *
 * A child must not run cmocka's asserts, whose failure would jump back into
 * the parent's test runner inside the child. It writes each failed check as
 * a line to a pipe and exits with 1, and the parent asserts on both.
 */
#include "helpers.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sys/wait.h>
#include <unistd.h>

/* The maximum time a child may run before the test kills it and fails. */
#define CHILD_TIMEOUT_MS 20000

/* How often the parent checks whether the child has exited. */
#define CHILD_POLL_MS 10

/* The outcome of a child's checks, written to the pipe as they fail. */
typedef struct {
  int fd;
  int failures;
} child_report_t;

static void child_fail(child_report_t *report, const char *fmt, ...)
    BSON_GNUC_PRINTF(2, 3);

static void child_fail(child_report_t *report, const char *fmt, ...) {
  char line[1024];
  va_list args;
  int len;

  va_start(args, fmt);
  len = vsnprintf(line, sizeof line - 1, fmt, args);
  va_end(args);
  if (len < 0) {
    len = 0;
  }
  if ((size_t)len > sizeof line - 2) {
    len = (int)sizeof line - 2;
  }
  line[len++] = '\n';
  report->failures++;
  /*
   * A pipe buffers 64 KiB on Linux, more than a child's few lines, and a
   * short write would only cut the parent's message.
   */
  (void)!write(report->fd, line, (size_t)len);
}

/*
 * Checks in the child that a call returned MKV_EFORKED, with the error's
 * domain and code set to match, and a message that names the operation and
 * asks for a new handle.
 */
static void child_expect_forked(child_report_t *report, const char *call,
                                int status, const bson_error_t *error,
                                const char *operation) {
  if (status != MKV_EFORKED) {
    child_fail(report, "%s returned %s, expected MKV_EFORKED: \"%s\"", call,
               mkv_err_name(status), error != NULL ? error->message : "");
    return;
  }
  if (error == NULL) {
    return;
  }
  if (error->domain != MKV_ERROR_DOMAIN) {
    child_fail(report, "%s: error domain is %" PRIu32 ", expected %d", call,
               error->domain, MKV_ERROR_DOMAIN);
  }
  if (error->code != (uint32_t)MKV_EFORKED) {
    child_fail(report, "%s: error code is %" PRIu32 ", expected %" PRIu32, call,
               error->code, (uint32_t)MKV_EFORKED);
  }
  if (strncmp(error->message, operation, strlen(operation)) != 0) {
    child_fail(report, "%s: message \"%s\" does not start with \"%s\"", call,
               error->message, operation);
  }
  if (strstr(error->message, "open a new handle in this process") == NULL) {
    child_fail(report, "%s: message \"%s\" does not say to open a new handle",
               call, error->message);
  }
}

static void child_expect_status(child_report_t *report, const char *call,
                                int expected, int status,
                                const bson_error_t *error) {
  if (status != expected) {
    child_fail(report, "%s returned %s, expected %s: \"%s\"", call,
               mkv_err_name(status), mkv_err_name(expected),
               error != NULL ? error->message : "");
  }
}

/* Counts callbacks, none of which may run for a rejected call. */
static void count_callback(mkv_t *db, const mkv_result_t *result, void *data) {
  int *calls = data;

  (void)db;
  (void)result;
  (*calls)++;
}

/* Calls every blocking operation on the parent's handle. */
static void child_try_blocking(child_report_t *report, mkv_t *db) {
  bson_value_t value = mkv_str("from the child");
  bson_value_t read = {0};
  mkv_keys_t keys = {0};
  bson_error_t error = {0};
  bool removed = false;
  char *key_out = NULL;

  child_expect_forked(report, "mkv_set",
                      mkv_set(db, "child", &value, &key_out, &error), &error,
                      "set key \"child\"");
  if (key_out != NULL) {
    child_fail(report, "mkv_set: key_out is \"%s\", expected NULL", key_out);
  }
  child_expect_forked(report, "mkv_set with a new key",
                      mkv_set(db, NULL, &value, NULL, &error), &error,
                      "set with a new key");
  child_expect_forked(report, "mkv_get", mkv_get(db, "parent", &read, &error),
                      &error, "get key \"parent\"");
  if (read.value_type != BSON_TYPE_EOD) {
    child_fail(report, "mkv_get: value has type 0x%02x, expected untouched",
               (unsigned)read.value_type);
  }
  child_expect_forked(report, "mkv_remove",
                      mkv_remove(db, "parent", &removed, &error), &error,
                      "remove key \"parent\"");
  child_expect_forked(report, "mkv_all", mkv_all(db, &keys, &error), &error,
                      "all");
  if (keys.count != 0) {
    child_fail(report, "mkv_all: %zu keys, expected 0", keys.count);
  }
  child_expect_forked(report, "mkv_purge", mkv_purge(db, &error), &error,
                      "purge");
  child_expect_forked(report, "mkv_ping", mkv_ping(db, &error), &error, "ping");
  /* The status is the same without a bson_error_t. */
  child_expect_forked(report, "mkv_get without error",
                      mkv_get(db, "parent", &read, NULL), NULL, "get");
}

/* Calls every _async operation on the parent's handle, on a new loop. */
static void child_try_async(child_report_t *report, mkv_t *db) {
  bson_value_t value = mkv_str("from the child");
  uv_loop_t loop;
  int calls = 0;

  if (uv_loop_init(&loop) != 0) {
    child_fail(report, "uv_loop_init failed in the child");
    return;
  }
  child_expect_status(
      report, "mkv_set_async", MKV_EFORKED,
      mkv_set_async(db, &loop, "child", &value, count_callback, &calls), NULL);
  child_expect_status(
      report, "mkv_get_async", MKV_EFORKED,
      mkv_get_async(db, &loop, "parent", count_callback, &calls), NULL);
  child_expect_status(
      report, "mkv_remove_async", MKV_EFORKED,
      mkv_remove_async(db, &loop, "parent", count_callback, &calls), NULL);
  child_expect_status(report, "mkv_all_async", MKV_EFORKED,
                      mkv_all_async(db, &loop, count_callback, &calls), NULL);
  child_expect_status(report, "mkv_purge_async", MKV_EFORKED,
                      mkv_purge_async(db, &loop, count_callback, &calls), NULL);
  child_expect_status(report, "mkv_ping_async", MKV_EFORKED,
                      mkv_ping_async(db, &loop, count_callback, &calls), NULL);
  child_expect_status(report, "mkv_close_async", MKV_EFORKED,
                      mkv_close_async(db, &loop, count_callback, &calls), NULL);

  uv_run(&loop, UV_RUN_DEFAULT);
  if (calls != 0) {
    child_fail(report, "%d callbacks ran, expected 0", calls);
  }
  if (uv_loop_close(&loop) != 0) {
    child_fail(report, "the child's loop still has handles or requests");
  }
}

/*
 * Runs `body` in a child of fork() and returns its pid. The child reports
 * to `fd` and exits with _exit(), so that no atexit handler of the test
 * runner or of a sanitizer runs twice.
 */
static pid_t start_child(void (*body)(child_report_t *, test_fixture_t *),
                         test_fixture_t *fixture, int fd) {
  pid_t pid = fork();

  if (pid == 0) {
    child_report_t report = {.fd = fd};

    body(&report, fixture);
    _exit(report.failures == 0 ? 0 : 1);
  }
  return pid;
}

/*
 * Waits up to CHILD_TIMEOUT_MS for the child, killing it when it takes
 * longer, prints what it reported, and asserts that it exited with 0.
 */
static void wait_for_child(pid_t pid, int fd) {
  uint64_t deadline = test_now_ms() + CHILD_TIMEOUT_MS;
  char output[4096];
  ssize_t len;
  int wstatus = 0;
  pid_t done = 0;

  while (done == 0 && test_now_ms() < deadline) {
    done = waitpid(pid, &wstatus, WNOHANG);
    if (done == 0) {
      struct timespec pause = {.tv_nsec = CHILD_POLL_MS * 1000000L};

      nanosleep(&pause, NULL);
    } else if (done < 0 && errno == EINTR) {
      done = 0;
    }
  }
  if (done == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &wstatus, 0);
    print_error("the child did not exit within %d ms, so it was killed\n",
                CHILD_TIMEOUT_MS);
  }

  len = read(fd, output, sizeof output - 1);
  if (len > 0) {
    output[len] = '\0';
    print_error("the child reported:\n%s", output);
  }
  assert_int_equal(done, pid);
  assert_true(WIFEXITED(wstatus));
  assert_int_equal(WEXITSTATUS(wstatus), 0);
}

static void run_in_child(void (*body)(child_report_t *, test_fixture_t *),
                         test_fixture_t *fixture) {
  int fds[2];
  pid_t pid;

  assert_int_equal(pipe(fds), 0);
  pid = start_child(body, fixture, fds[1]);
  assert_true(pid > 0);
  close(fds[1]);
  wait_for_child(pid, fds[0]);
  close(fds[0]);
}

/* Stores "parent" through the parent's handle, which starts its pool. */
static void store_parent_value(test_fixture_t *fixture) {
  bson_value_t value = mkv_str("from the parent");
  bson_error_t error = {0};

  CHECK_OK(mkv_set(fixture->db, "parent", &value, NULL, &error), &error);
}

/* Asserts that the parent's handle still reads "parent" and writes. */
static void assert_parent_handle_works(test_fixture_t *fixture) {
  bson_value_t expected = mkv_str("from the parent");
  bson_value_t again = mkv_str("from the parent, again");
  bson_value_t read = {0};
  bson_error_t error = {0};

  CHECK_OK(mkv_get(fixture->db, "parent", &read, &error), &error);
  assert_value_equal(&expected, &read);
  bson_value_destroy(&read);
  CHECK_OK(mkv_set(fixture->db, "parent", &again, NULL, &error), &error);
  CHECK_OK(mkv_get(fixture->db, "parent", &read, &error), &error);
  assert_value_equal(&again, &read);
  bson_value_destroy(&read);
}

static void child_uses_parent_handle(child_report_t *report,
                                     test_fixture_t *fixture) {
  child_try_blocking(report, fixture->db);
  child_try_async(report, fixture->db);
  child_expect_status(report, "mkv_close", MKV_OK, mkv_close(fixture->db),
                      NULL);
}

static void fork_parent_handle_rejected(void **state) {
  test_fixture_t *fixture = *state;

  store_parent_value(fixture);
  run_in_child(child_uses_parent_handle, fixture);

  /* The child's rejected remove and purge deleted nothing. */
  assert_key_count(fixture, 1);
  assert_parent_handle_works(fixture);
}

/*
 * Releases the parent's handle, then opens one of its own on the same
 * collection, reads the parent's key and writes one of its own.
 */
static void child_opens_own_handle(child_report_t *report,
                                   test_fixture_t *fixture) {
  mkv_options_t options = test_options(fixture);
  bson_value_t value = mkv_str("from the child");
  bson_value_t read = {0};
  bson_error_t error = {0};
  mkv_t *db = NULL;

  child_expect_status(report, "mkv_close of the parent's handle", MKV_OK,
                      mkv_close(fixture->db), NULL);
  child_expect_status(report, "mkv_open", MKV_OK,
                      mkv_open(&db, test_uri(), &options, &error), &error);
  if (db == NULL) {
    return;
  }
  child_expect_status(report, "mkv_get", MKV_OK,
                      mkv_get(db, "parent", &read, &error), &error);
  if (read.value_type != BSON_TYPE_UTF8 ||
      strcmp(read.value.v_utf8.str, "from the parent") != 0) {
    child_fail(report, "mkv_get did not read \"from the parent\"");
  }
  if (read.value_type != BSON_TYPE_EOD) {
    bson_value_destroy(&read);
  }
  child_expect_status(report, "mkv_set", MKV_OK,
                      mkv_set(db, "child", &value, NULL, &error), &error);
  child_expect_status(report, "mkv_close of the child's handle", MKV_OK,
                      mkv_close(db), NULL);
}

/*
 * The parent writes through a second handle and closes it, and leaves
 * fixture->db open but unused until the child has exited. So the parent has
 * no libmongoc monitor threads at fork(), since those start with a pool's
 * first operation and stop when it is destroyed. ThreadSanitizer supports a
 * child that starts threads only after a fork() from a single-threaded
 * process. fork_parent_handle_rejected covers a parent whose pool runs.
 */
static void fork_child_opens_handle(void **state) {
  test_fixture_t *fixture = *state;
  mkv_options_t options = test_options(fixture);
  bson_value_t parent_value = mkv_str("from the parent");
  bson_value_t expected = mkv_str("from the child");
  bson_value_t read = {0};
  bson_error_t error = {0};
  mkv_t *writer = NULL;

  CHECK_OK(mkv_open(&writer, test_uri(), &options, &error), &error);
  CHECK_OK(mkv_set(writer, "parent", &parent_value, NULL, &error), &error);
  CHECK_OK(mkv_close(writer), NULL);

  run_in_child(child_opens_own_handle, fixture);

  CHECK_OK(mkv_get(fixture->db, "child", &read, &error), &error);
  assert_value_equal(&expected, &read);
  bson_value_destroy(&read);
  assert_key_count(fixture, 2);
  assert_parent_handle_works(fixture);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST_CASE(fork_parent_handle_rejected),
      TEST_CASE(fork_child_opens_handle),
  };

  if (test_check_environment() != 0) {
    return 1;
  }
  return cmocka_run_group_tests_name("fork", tests, NULL, NULL);
}
