/* Chains libmkv _async calls through callbacks on a libuv loop.
 * MKV_URI names the server (default mongodb://127.0.0.1:27017/). */

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <mkv.h>
#include <mongoc/mongoc.h>
#include <uv.h>

#define DEFAULT_URI "mongodb://127.0.0.1:27017/"

/* How many times the counter is read and then stored plus one. */
#define COUNTER_ROUNDS 5

/* State that every callback receives as `data`. */
typedef struct {
  uv_loop_t *loop;
  int64_t increments; /* counter updates done so far */
  bool closing;       /* mkv_close_async() was called */
  bool closed;        /* its callback ran */
  int exit_code;
} app_t;

static void on_counter_set(mkv_t *db, const mkv_result_t *result, void *data);
static void on_counter_get(mkv_t *db, const mkv_result_t *result, void *data);
static void on_auto_key_set(mkv_t *db, const mkv_result_t *result, void *data);
static void on_all(mkv_t *db, const mkv_result_t *result, void *data);
static void on_remove(mkv_t *db, const mkv_result_t *result, void *data);
static void on_final_purge(mkv_t *db, const mkv_result_t *result, void *data);
static void on_close(mkv_t *db, const mkv_result_t *result, void *data);

/* Starts closing the handle, which ends the loop once its callback runs. */
static void close_handle(mkv_t *db, app_t *app) {
  if (app->closing) {
    return;
  }

  int status = mkv_close_async(db, app->loop, on_close, app);
  if (status != MKV_OK) {
    fprintf(stderr, "async: close failed: %s: %s\n", mkv_err_name(status),
            mkv_strerror(status));
    app->exit_code = 1;
    return;
  }
  app->closing = true;
}

/*
 * Reports a failed step and closes the handle. `message` is the callback's
 * error message, or mkv_strerror() when an _async call was not queued.
 */
static void fail(mkv_t *db, app_t *app, const char *step, int status,
                 const char *message) {
  fprintf(stderr, "async: %s failed: %s: %s\n", step, mkv_err_name(status),
          message);
  if (status == MKV_ECONNECT) {
    fprintf(stderr, "async: is a server running? Set MKV_URI to its "
                    "connection string (default " DEFAULT_URI ").\n");
  }
  app->exit_code = 1;
  close_handle(db, app);
}

/* Reports a failed callback status and closes. Returns whether it is OK. */
static bool check_result(mkv_t *db, app_t *app, const char *step,
                         const mkv_result_t *result) {
  if (result->status == MKV_OK) {
    return true;
  }
  fail(db, app, step, result->status, result->error->message);
  return false;
}

/* Reports an _async call that queued nothing. Returns whether it queued. */
static bool check_queued(mkv_t *db, app_t *app, const char *step, int status) {
  if (status == MKV_OK) {
    return true;
  }
  fail(db, app, step, status, mkv_strerror(status));
  return false;
}

static void on_first_purge(mkv_t *db, const mkv_result_t *result, void *data) {
  app_t *app = data;
  if (!check_result(db, app, "purge", result)) {
    return;
  }

  bson_value_t zero = mkv_int64(0);
  int status =
      mkv_set_async(db, app->loop, "counter", &zero, on_counter_set, app);
  check_queued(db, app, "set counter", status);
}

/* Runs after each store of the counter, and reads it back. */
static void on_counter_set(mkv_t *db, const mkv_result_t *result, void *data) {
  app_t *app = data;
  if (!check_result(db, app, "set counter", result)) {
    return;
  }

  int status = mkv_get_async(db, app->loop, "counter", on_counter_get, app);
  check_queued(db, app, "get counter", status);
}

/* Prints the counter and stores it plus one, COUNTER_ROUNDS times in all. */
static void on_counter_get(mkv_t *db, const mkv_result_t *result, void *data) {
  app_t *app = data;
  if (!check_result(db, app, "get counter", result)) {
    return;
  }
  if (result->value->value_type != BSON_TYPE_INT64) {
    char *json = mkv_value_to_json(result->value);
    fprintf(stderr, "async: counter is %s, expected a 64-bit integer\n",
            json != NULL ? json : "a value that cannot be shown as JSON");
    bson_free(json);
    app->exit_code = 1;
    close_handle(db, app);
    return;
  }

  int64_t counter = result->value->value.v_int64;
  printf("counter = %" PRId64 "\n", counter);

  if (app->increments == COUNTER_ROUNDS) {
    /* A NULL key makes mkv store the value under a new ObjectId. */
    bson_value_t greeting = mkv_str("hello from a callback");
    int status =
        mkv_set_async(db, app->loop, NULL, &greeting, on_auto_key_set, app);
    check_queued(db, app, "set with a new key", status);
    return;
  }

  app->increments++;
  bson_value_t next = mkv_int64(counter + 1);
  int status =
      mkv_set_async(db, app->loop, "counter", &next, on_counter_set, app);
  check_queued(db, app, "set counter", status);
}

static void on_auto_key_set(mkv_t *db, const mkv_result_t *result, void *data) {
  app_t *app = data;
  if (!check_result(db, app, "set with a new key", result)) {
    return;
  }
  printf("new key: %s\n", result->key);

  int status = mkv_all_async(db, app->loop, on_all, app);
  check_queued(db, app, "all", status);
}

static void on_all(mkv_t *db, const mkv_result_t *result, void *data) {
  app_t *app = data;
  if (!check_result(db, app, "all", result)) {
    return;
  }

  printf("keys:");
  for (size_t i = 0; i < result->keys->count; i++) {
    printf("%s %s", i == 0 ? "" : ",", result->keys->keys[i]);
  }
  printf("\n");

  int status = mkv_remove_async(db, app->loop, "counter", on_remove, app);
  check_queued(db, app, "remove counter", status);
}

static void on_remove(mkv_t *db, const mkv_result_t *result, void *data) {
  app_t *app = data;
  if (!check_result(db, app, "remove counter", result)) {
    return;
  }
  printf("removed counter: %s\n", result->removed ? "true" : "false");

  int status = mkv_purge_async(db, app->loop, on_final_purge, app);
  check_queued(db, app, "purge", status);
}

static void on_final_purge(mkv_t *db, const mkv_result_t *result, void *data) {
  app_t *app = data;
  if (!check_result(db, app, "purge", result)) {
    return;
  }
  printf("purged\n");

  close_handle(db, app);
}

/* The handle is freed after this returns, so `db` must not be used here. */
static void on_close(mkv_t *db, const mkv_result_t *result, void *data) {
  app_t *app = data;
  (void)db;

  if (result->status != MKV_OK) {
    fprintf(stderr, "async: close failed: %s: %s\n",
            mkv_err_name(result->status), result->error->message);
    app->exit_code = 1;
  }
  app->closed = true;
  printf("closed\n");
}

/*
 * Passes libmongoc's warnings and errors to stderr and drops its info and
 * debug messages, such as each failed connection attempt of its monitor.
 */
static void log_warnings_only(mongoc_log_level_t level, const char *domain,
                              const char *message, void *data) {
  (void)data;
  if (level <= MONGOC_LOG_LEVEL_WARNING)
    fprintf(stderr, "libmongoc %s: %s\n", domain, message);
}

int main(void) {
  mongoc_log_set_handler(log_warnings_only, NULL);

  const char *uri = getenv("MKV_URI");
  if (uri == NULL || uri[0] == '\0') {
    uri = DEFAULT_URI;
  }

  uv_loop_t loop;
  int uv_status = uv_loop_init(&loop);
  if (uv_status != 0) {
    fprintf(stderr, "async: uv_loop_init failed: %s\n", uv_strerror(uv_status));
    return 1;
  }

  app_t app = {0};
  app.loop = &loop;

  mkv_options_t options = {0};
  options.collection_name = "async_quickstart";

  mkv_t *db = NULL;
  bson_error_t error = {0};
  int status = mkv_open(&db, uri, &options, &error);
  if (status != MKV_OK) {
    fprintf(stderr, "async: open failed: %s: %s\n", mkv_err_name(status),
            error.message);
    uv_loop_close(&loop);
    return 1;
  }

  /* Empty the collection first, so that every run lists the same keys. */
  status = mkv_purge_async(db, &loop, on_first_purge, &app);
  check_queued(db, &app, "purge", status);

  uv_run(&loop, UV_RUN_DEFAULT);

  if (!app.closing) {
    /* mkv_close_async() failed, so free the handle with a blocking close. */
    status = mkv_close(db);
    if (status != MKV_OK) {
      fprintf(stderr, "async: close failed: %s: %s\n", mkv_err_name(status),
              mkv_strerror(status));
    }
    app.exit_code = 1;
  } else if (!app.closed) {
    fprintf(stderr, "async: the loop stopped before the handle closed\n");
    app.exit_code = 1;
  }

  /* UV_EBUSY here means that mkv left a libuv handle open on the loop. */
  uv_status = uv_loop_close(&loop);
  if (uv_status != 0) {
    fprintf(stderr, "async: uv_loop_close failed: %s\n",
            uv_err_name(uv_status));
    return 1;
  }
  return app.exit_code;
}
