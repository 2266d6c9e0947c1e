/* The handle: opening, the connection pool, and closing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mkv-private.h"

#define DEFAULT_DB_NAME "mkv"
#define DEFAULT_COLLECTION_NAME "kv"
#define DEFAULT_SOCKET_TIMEOUT_MS 30000
#define DEFAULT_WAIT_QUEUE_TIMEOUT_MS 30000

/* libuv's own default and upper bound for UV_THREADPOOL_SIZE (1.44). */
#define MKV_UV_DEFAULT_THREADPOOL_SIZE 4
#define MKV_UV_MAX_THREADPOOL_SIZE 1024

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_process(void) {
  mongoc_init();
  mkv_fork_watch();
}

void mkv_init(void) { pthread_once(&init_once, init_process); }

/*
 * Reads the threadpool size the way libuv 1.44 does when it starts the
 * pool: atoi() into an unsigned count, 0 taken as 1, and a cap at 1024, so
 * that a negative value gives the cap.
 */
static unsigned threadpool_size(void) {
  const char *env = getenv("UV_THREADPOOL_SIZE");
  unsigned size;

  if (env == NULL)
    return MKV_UV_DEFAULT_THREADPOOL_SIZE;
  size = (unsigned)atoi(env);
  if (size == 0)
    return 1;
  if (size > MKV_UV_MAX_THREADPOOL_SIZE)
    return MKV_UV_MAX_THREADPOOL_SIZE;
  return size;
}

/*
 * Scrubs a message about a URI that did not parse of every text that could
 * be its password. libmongoc may split the user information at any "@", so
 * each text from the first ":" after "://" up to an "@" is a candidate.
 */
static void scrub_raw_uri_password(char *text, size_t size, const char *uri) {
  const char *start = strstr(uri, "://");
  const char *colon;
  const char *at;

  if (start == NULL)
    return;
  start += 3;
  colon = strchr(start, ':');
  if (colon == NULL)
    return;

  /* The longest candidate goes first, so no shorter one splits it. */
  for (at = strrchr(colon, '@'); at != NULL && at > colon;) {
    char *candidate = bson_strndup(colon + 1, (size_t)(at - colon - 1));

    mkv_scrub(text, size, candidate);
    bson_free(candidate);
    do {
      at--;
    } while (at > colon && *at != '@');
  }
}

/* MongoDB's limit on the length of a database name, in bytes. */
#define MAX_DB_NAME_LEN 63

/* MongoDB's limit on the length of "database.collection", in bytes. */
#define MAX_NAMESPACE_LEN 255

static int reject_name(const char *what, const char *name, const char *rule,
                       bson_error_t *error) {
  char quoted[MKV_KEY_QUOTE_MAX + 8];

  if (bson_utf8_validate(name, strlen(name), false))
    mkv_quote_key(name, quoted, sizeof quoted);
  else
    bson_snprintf(quoted, sizeof quoted, "(not UTF-8)");
  mkv_error_set(error, MKV_EINVAL, "mkv_open: invalid %s name \"%s\": %s", what,
                quoted, rule);
  return MKV_EINVAL;
}

/* Checks a database name against MongoDB's naming rules. */
static int check_db_name(const char *name, bson_error_t *error) {
  static const char rule[] = "it must be 1 to 63 bytes of UTF-8 without "
                             "any of / \\ . space \" $";

  if (name[0] == '\0' || strlen(name) > MAX_DB_NAME_LEN ||
      !bson_utf8_validate(name, strlen(name), false) ||
      strpbrk(name, "/\\. \"$") != NULL)
    return reject_name("database", name, rule, error);
  return MKV_OK;
}

/* Checks a collection name against MongoDB's naming rules. */
static int check_collection_name(const char *name, bson_error_t *error) {
  static const char rule[] = "it must be non-empty UTF-8 without \"$\", and "
                             "must not start with \".\" or \"system.\"";

  if (name[0] == '\0' || name[0] == '.' || strncmp(name, "system.", 7) == 0 ||
      !bson_utf8_validate(name, strlen(name), false) ||
      strchr(name, '$') != NULL)
    return reject_name("collection", name, rule, error);
  return MKV_OK;
}

/*
 * Checks that "db.collection" fits MongoDB's namespace limit and keeps a
 * copy cut for error messages.
 */
static int set_namespace(mkv_t *db, bson_error_t *error) {
  char quoted[MKV_KEY_QUOTE_MAX + 8];
  char *full = bson_strdup_printf("%s.%s", db->db_name, db->collection_name);
  size_t len = strlen(full);

  mkv_quote_key(full, quoted, sizeof quoted);
  bson_free(full);
  if (len > MAX_NAMESPACE_LEN) {
    mkv_error_set(error, MKV_EINVAL,
                  "mkv_open: namespace \"%s\" is %zu bytes, over MongoDB's "
                  "limit of %d for database, dot and collection together; "
                  "choose a shorter collection name",
                  quoted, len, MAX_NAMESPACE_LEN);
    return MKV_EINVAL;
  }
  db->namespace_quoted = bson_strdup(quoted);
  return MKV_OK;
}

/* Applies the timeouts from `options` and mkv's defaults to the URI. */
static void apply_timeouts(mongoc_uri_t *uri, const mkv_options_t *options) {
  if (options != NULL && options->server_selection_timeout_ms > 0)
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                   options->server_selection_timeout_ms);

  if (options != NULL && options->socket_timeout_ms > 0)
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS,
                                   options->socket_timeout_ms);
  else if (!mongoc_uri_has_option(uri, MONGOC_URI_SOCKETTIMEOUTMS))
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS,
                                   DEFAULT_SOCKET_TIMEOUT_MS);

  if (!mongoc_uri_has_option(uri, MONGOC_URI_WAITQUEUETIMEOUTMS))
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_WAITQUEUETIMEOUTMS,
                                   DEFAULT_WAIT_QUEUE_TIMEOUT_MS);
}

/* Frees the handle, its pool and its names; nothing may still use it. */
void mkv_handle_free(mkv_t *db) {
  mkv_loop_queue_t *queue = db->queues;

  /* async.c allocates the queues with calloc(). */
  while (queue != NULL) {
    mkv_loop_queue_t *next = queue->next;
    free(queue);
    queue = next;
  }
  if (db->pool != NULL)
    mongoc_client_pool_destroy(db->pool);
  pthread_mutex_destroy(&db->mutex);
  bson_free(db->db_name);
  bson_free(db->collection_name);
  bson_free(db->namespace_quoted);
  bson_free(db->password);
  bson_free(db);
}

/*
 * Checks that the TLS files the URI names can be read. libmongoc would
 * only fail each connection attempt until serverSelectionTimeoutMS, with
 * "Failed initialize TLS state", which does not name the file.
 */
static int check_tls_files(const mongoc_uri_t *uri, bson_error_t *error) {
  /* libmongoc's option keys are lowercase; messages use the usual case. */
  static const struct {
    const char *key;
    const char *name;
  } options[] = {
      {MONGOC_URI_TLSCAFILE, "tlsCAFile"},
      {MONGOC_URI_TLSCERTIFICATEKEYFILE, "tlsCertificateKeyFile"},
  };

  for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
    const char *path = mongoc_uri_get_option_as_utf8(uri, options[i].key, NULL);

    if (path == NULL || access(path, R_OK) == 0)
      continue;
    mkv_error_set(error, MKV_EINVAL,
                  "mkv_open: %s \"%s\" in the URI %s; give the path of a "
                  "readable PEM file",
                  options[i].name, path,
                  errno == ENOENT ? "does not exist" : "cannot be read");
    return MKV_EINVAL;
  }
  return MKV_OK;
}

/* Parses the URI string and applies `options` to it. */
static int parse_uri(const char *uri_string, const mkv_options_t *options,
                     mongoc_uri_t **uri_out, bson_error_t *error) {
  bson_error_t uri_error;
  mongoc_uri_t *uri;

  uri = mongoc_uri_new_with_error(uri_string, &uri_error);
  if (uri == NULL) {
    scrub_raw_uri_password(uri_error.message, sizeof uri_error.message,
                           uri_string);
    mkv_error_set(error, MKV_EINVAL,
                  "mkv_open: invalid URI: %s; expected "
                  "mongodb://[user:password@]host[:port][/?options]",
                  uri_error.message);
    return MKV_EINVAL;
  }

  if (check_tls_files(uri, error) != MKV_OK) {
    mongoc_uri_destroy(uri);
    return MKV_EINVAL;
  }
  apply_timeouts(uri, options);
  *uri_out = uri;
  return MKV_OK;
}

/* Creates the pool on which every operation of the handle runs. */
static int create_pool(mkv_t *db, const mongoc_uri_t *uri,
                       bson_error_t *error) {
  mongoc_apm_callbacks_t *callbacks;
  bson_error_t pool_error;

  db->pool = mongoc_client_pool_new_with_error(uri, &pool_error);
  if (db->pool == NULL) {
    mkv_error_set(error, MKV_EINVAL,
                  "mkv_open: cannot create the connection pool: %s",
                  pool_error.message);
    mkv_error_scrub(error, db->password);
    return MKV_EINVAL;
  }

  /* Version 2 reports server selection failures in their own domain. */
  mongoc_client_pool_set_error_api(db->pool, MONGOC_ERROR_API_VERSION_2);

  /* Failed commands' durations tell socket timeouts from dropped links. */
  callbacks = mongoc_apm_callbacks_new();
  mongoc_apm_set_command_failed_cb(callbacks, mkv_command_failed_cb);
  mongoc_client_pool_set_apm_callbacks(db->pool, callbacks, NULL);
  mongoc_apm_callbacks_destroy(callbacks);
  if (mongoc_uri_get_appname(uri) == NULL)
    mongoc_client_pool_set_appname(db->pool, "libmkv");
  return MKV_OK;
}

int mkv_open(mkv_t **db_out, const char *uri_string,
             const mkv_options_t *options, bson_error_t *error) {
  mongoc_uri_t *uri = NULL;
  mkv_t *db = NULL;
  unsigned pool_threads;
  int status;

  if (db_out != NULL)
    *db_out = NULL;
  if (db_out == NULL || uri_string == NULL) {
    mkv_error_set(error, MKV_EINVAL, "mkv_open: %s is NULL",
                  db_out == NULL ? "db" : "uri");
    return MKV_EINVAL;
  }

  if (options != NULL && (options->server_selection_timeout_ms < 0 ||
                          options->socket_timeout_ms < 0)) {
    mkv_error_set(error, MKV_EINVAL,
                  "mkv_open: %s is negative; pass milliseconds, or 0 for the "
                  "default",
                  options->server_selection_timeout_ms < 0
                      ? "server_selection_timeout_ms"
                      : "socket_timeout_ms");
    return MKV_EINVAL;
  }

  mkv_init();

  db = bson_malloc0(sizeof *db);
  db->generation = mkv_process_generation();
  db->pid = getpid();
  pthread_mutex_init(&db->mutex, NULL);
  db->db_name = bson_strdup(options != NULL && options->db_name != NULL
                                ? options->db_name
                                : DEFAULT_DB_NAME);
  db->collection_name =
      bson_strdup(options != NULL && options->collection_name != NULL
                      ? options->collection_name
                      : DEFAULT_COLLECTION_NAME);

  status = check_db_name(db->db_name, error);
  if (status == MKV_OK)
    status = check_collection_name(db->collection_name, error);
  if (status == MKV_OK)
    status = set_namespace(db, error);
  if (status == MKV_OK)
    status = parse_uri(uri_string, options, &uri, error);
  if (status != MKV_OK)
    goto done;

  db->password = bson_strdup(mongoc_uri_get_password(uri));
  db->socket_timeout_ms =
      mongoc_uri_get_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, 0);
  status = create_pool(db, uri, error);
  if (status != MKV_OK)
    goto done;

  pool_threads = threadpool_size();
  db->max_in_flight = options != NULL && options->max_in_flight > 0
                          ? options->max_in_flight
                          : (pool_threads > 1 ? pool_threads - 1 : 1);
  *db_out = db;
  db = NULL;

done:
  if (uri != NULL)
    mongoc_uri_destroy(uri);
  if (db != NULL)
    mkv_handle_free(db);
  return status;
}

int mkv_close(mkv_t *db) {
  int status = MKV_OK;

  if (db == NULL)
    return MKV_EINVAL;
  if (mkv_opened_in_parent(db)) {
    mkv_abandon(db);
    return MKV_OK;
  }

  pthread_mutex_lock(&db->mutex);
  if (db->closing)
    status = MKV_ECLOSED;
  else if (db->async_pending > 0 || db->sync_running > 0)
    status = MKV_EBUSY;
  else
    db->closing = true;
  pthread_mutex_unlock(&db->mutex);

  if (status == MKV_OK)
    mkv_handle_free(db);
  return status;
}

/* Counts a blocking call in, or rejects it when the handle is closing. */
int mkv_enter_sync(mkv_t *db, const mkv_op_t *op, bson_error_t *error) {
  char what[MKV_KEY_QUOTE_MAX + 32];
  int status = MKV_OK;

  pthread_mutex_lock(&db->mutex);
  if (db->closing)
    status = MKV_ECLOSED;
  else
    db->sync_running++;
  pthread_mutex_unlock(&db->mutex);

  if (status != MKV_OK) {
    mkv_describe_op(op, what, sizeof what);
    mkv_error_set(error, status, "%s: the handle is closing; open a new one",
                  what);
  }
  return status;
}

void mkv_leave_sync(mkv_t *db) {
  bool close_now;

  pthread_mutex_lock(&db->mutex);
  db->sync_running--;
  close_now = mkv_claim_close_locked(db);
  pthread_mutex_unlock(&db->mutex);

  /* Past the unlock, only the caller that saw close_now may touch db. */
  if (close_now)
    mkv_signal_close(db);
}
