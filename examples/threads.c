/* Shares one libmkv handle between several threads with blocking calls.
 * MKV_URI names the server (default mongodb://127.0.0.1:27017/). */

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mkv.h>

#define DEFAULT_URI "mongodb://127.0.0.1:27017/"

#define THREAD_COUNT 4
#define PAIRS_PER_THREAD 100

/* One thread's work and outcome. Only that thread writes it until joined. */
typedef struct {
  mkv_t *db;
  int index;
  int verified;   /* values that read back as stored */
  int mismatches; /* values that read back with another type or number */
  int status;     /* the first failed mkv call's status, or MKV_OK */
  char failed_key[32];
  const char *failed_step;
  bson_error_t error;
} worker_t;

/* Stores PAIRS_PER_THREAD keys "t<index>-<n>" and reads each one back. */
static void *run_worker(void *arg) {
  worker_t *worker = arg;

  for (int n = 0; n < PAIRS_PER_THREAD; n++) {
    char key[sizeof worker->failed_key];
    snprintf(key, sizeof key, "t%d-%d", worker->index, n);
    int64_t expected = (int64_t)worker->index * PAIRS_PER_THREAD + n;

    bson_value_t value = mkv_int64(expected);
    int status = mkv_set(worker->db, key, &value, NULL, &worker->error);
    if (status != MKV_OK) {
      worker->failed_step = "set";
      worker->status = status;
      memcpy(worker->failed_key, key, sizeof key);
      break;
    }

    bson_value_t read_back;
    status = mkv_get(worker->db, key, &read_back, &worker->error);
    if (status != MKV_OK) {
      worker->failed_step = "get";
      worker->status = status;
      memcpy(worker->failed_key, key, sizeof key);
      break;
    }

    if (read_back.value_type == BSON_TYPE_INT64 &&
        read_back.value.v_int64 == expected) {
      worker->verified++;
    } else {
      char *json = mkv_value_to_json(&read_back);
      fprintf(stderr, "threads: %s read back %s, expected %" PRId64 "\n", key,
              json != NULL ? json : "a value that cannot be shown as JSON",
              expected);
      bson_free(json);
      worker->mismatches++;
    }
    bson_value_destroy(&read_back);
  }

  return NULL;
}

static void report_failure(const char *step, int status,
                           const bson_error_t *error) {
  fprintf(stderr, "threads: %s failed: %s: %s\n", step, mkv_err_name(status),
          error->message);
}

static void print_connect_hint(void) {
  fprintf(stderr, "threads: is a server running? Set MKV_URI to its "
                  "connection string (default " DEFAULT_URI ").\n");
}

int main(void) {
  const char *uri = getenv("MKV_URI");
  if (uri == NULL || uri[0] == '\0') {
    uri = DEFAULT_URI;
  }

  mkv_options_t options = {0};
  options.collection_name = "threads_example";

  mkv_t *db = NULL;
  bson_error_t error = {0};
  int status = mkv_open(&db, uri, &options, &error);
  if (status != MKV_OK) {
    report_failure("open", status, &error);
    return 1;
  }

  int exit_code = 0;
  bool call_failed = false;
  bool connect_failed = false;
  worker_t workers[THREAD_COUNT] = {0};
  pthread_t threads[THREAD_COUNT];
  int started = 0;

  for (int i = 0; i < THREAD_COUNT; i++) {
    workers[i].db = db;
    workers[i].index = i;
    workers[i].status = MKV_OK;
    int rc = pthread_create(&threads[i], NULL, run_worker, &workers[i]);
    if (rc != 0) {
      fprintf(stderr, "threads: pthread_create failed: %s\n", strerror(rc));
      exit_code = 1;
      break;
    }
    started++;
  }

  /* Every thread must be joined before mkv_close(), which otherwise
   * returns MKV_EBUSY while their blocking calls are running. */
  int total = 0;
  for (int i = 0; i < started; i++) {
    int rc = pthread_join(threads[i], NULL);
    if (rc != 0) {
      fprintf(stderr, "threads: pthread_join failed: %s\n", strerror(rc));
      exit_code = 1;
      continue;
    }

    worker_t *worker = &workers[i];
    printf("thread %d: %d of %d values read back\n", worker->index,
           worker->verified, PAIRS_PER_THREAD);
    total += worker->verified;

    if (worker->status != MKV_OK) {
      char step[64];
      snprintf(step, sizeof step, "%s %s", worker->failed_step,
               worker->failed_key);
      report_failure(step, worker->status, &worker->error);
      call_failed = true;
      connect_failed = connect_failed || worker->status == MKV_ECONNECT;
      exit_code = 1;
    }
    if (worker->mismatches > 0) {
      exit_code = 1;
    }
  }
  printf("total: %d of %d values read back\n", total,
         THREAD_COUNT * PAIRS_PER_THREAD);

  /* After a failed call the server is often unreachable, and the purge would
   * wait for the same timeout again, so it is skipped. */
  if (!call_failed) {
    status = mkv_purge(db, &error);
    if (status == MKV_OK) {
      printf("purged\n");
    } else {
      report_failure("purge", status, &error);
      connect_failed = status == MKV_ECONNECT;
      exit_code = 1;
    }
  }

  if (connect_failed) {
    print_connect_hint();
  }

  status = mkv_close(db);
  if (status != MKV_OK) {
    fprintf(stderr, "threads: close failed: %s: %s\n", mkv_err_name(status),
            mkv_strerror(status));
    return 1;
  }
  printf("closed\n");
  return exit_code;
}
