/* Stores, reads, lists and removes keys with the blocking libmkv calls.
 * MKV_URI names the server (default mongodb://127.0.0.1:27017/). */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <mkv.h>
#include <mongoc/mongoc.h>

#define DEFAULT_URI "mongodb://127.0.0.1:27017/"

/* The value stored under a new ObjectId key, parsed by mkv_json(). */
static const char profile_json[] =
    "{\"name\": \"harrison\", \"languages\": [\"C\", \"Python\"]}";

/* Prints a failed mkv call to stderr. */
static void report_failure(const char *step, int status,
                           const bson_error_t *error) {
  fprintf(stderr, "quickstart: %s failed: %s: %s\n", step, mkv_err_name(status),
          error->message);
  if (status == MKV_ECONNECT) {
    fprintf(stderr, "quickstart: is a server running? Set MKV_URI to its "
                    "connection string (default " DEFAULT_URI ").\n");
  }
}

/* Prints `label = <JSON>`. Returns false when mkv_value_to_json() fails. */
static bool print_value(const char *label, const bson_value_t *value) {
  char *json = mkv_value_to_json(value);
  if (json == NULL) {
    fprintf(stderr, "quickstart: cannot render the value of %s as JSON\n",
            label);
    return false;
  }

  printf("%s = %s\n", label, json);
  bson_free(json);
  return true;
}

static void print_keys(const mkv_keys_t *keys) {
  printf("keys:");
  for (size_t i = 0; i < keys->count; i++) {
    printf("%s %s", i == 0 ? "" : ",", keys->keys[i]);
  }
  printf("\n");
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

  mkv_options_t options = {0};
  options.collection_name = "quickstart";

  mkv_t *db = NULL;
  bson_error_t error = {0};
  int status = mkv_open(&db, uri, &options, &error);
  if (status != MKV_OK) {
    report_failure("open", status, &error);
    return 1;
  }

  int exit_code = 1;
  bson_value_t name = mkv_str("harrison");
  bson_value_t username = {0};
  bool have_username = false;
  bson_value_t profile = {0};
  bool have_profile = false;
  char *new_key = NULL;
  mkv_keys_t keys = {0};
  bool removed = false;

  /* Empty the collection first, so that every run lists the same keys. */
  status = mkv_purge(db, &error);
  if (status != MKV_OK) {
    report_failure("purge", status, &error);
    goto done;
  }

  status = mkv_set(db, "username", &name, NULL, &error);
  if (status != MKV_OK) {
    report_failure("set username", status, &error);
    goto done;
  }

  status = mkv_get(db, "username", &username, &error);
  if (status != MKV_OK) {
    report_failure("get username", status, &error);
    goto done;
  }
  have_username = true;
  if (!print_value("username", &username)) {
    goto done;
  }

  /* A NULL key makes mkv store the value under a new ObjectId. */
  status = mkv_json(profile_json, &profile, &error);
  if (status != MKV_OK) {
    report_failure("parse profile JSON", status, &error);
    goto done;
  }
  have_profile = true;
  status = mkv_set(db, NULL, &profile, &new_key, &error);
  if (status != MKV_OK) {
    report_failure("set with a new key", status, &error);
    goto done;
  }
  printf("new key: %s\n", new_key);

  status = mkv_all(db, &keys, &error);
  if (status != MKV_OK) {
    report_failure("all", status, &error);
    goto done;
  }
  print_keys(&keys);

  status = mkv_remove(db, "username", &removed, &error);
  if (status != MKV_OK) {
    report_failure("remove username", status, &error);
    goto done;
  }
  printf("removed username: %s\n", removed ? "true" : "false");

  status = mkv_purge(db, &error);
  if (status != MKV_OK) {
    report_failure("purge", status, &error);
    goto done;
  }
  printf("purged\n");

  exit_code = 0;

done:
  mkv_keys_destroy(&keys);
  bson_free(new_key);
  if (have_profile) {
    bson_value_destroy(&profile);
  }
  if (have_username) {
    bson_value_destroy(&username);
  }

  /* Nothing else runs on the handle, so mkv_close() frees it at once. */
  status = mkv_close(db);
  if (status != MKV_OK) {
    fprintf(stderr, "quickstart: close failed: %s: %s\n", mkv_err_name(status),
            mkv_strerror(status));
    return 1;
  }
  printf("closed\n");
  return exit_code;
}
