/* Internal declarations shared by the library's source files. */
#ifndef MKV_PRIVATE_H
#define MKV_PRIVATE_H

#include <pthread.h>
#include <sys/types.h>

#include <mongoc/mongoc.h>

#include "mkv.h"

/* The largest document a MongoDB server stores (maxBsonObjectSize). */
#define MKV_MAX_DOCUMENT_SIZE (16 * 1024 * 1024)

/*
 * The maximum number of levels of documents and arrays that MongoDB stores
 * in one document. The document itself is the first level.
 */
#define MKV_MAX_NESTING 100

/*
 * The maximum length of a key in a stored document: MKV_MAX_DOCUMENT_SIZE
 * less the rest of {_id: key, value: null}, which is the document's length
 * and end byte (5), the _id element's type, name, length and NUL (10), and
 * the value element's type and name (7), all in bytes.
 */
#define MKV_MAX_KEY_LEN (MKV_MAX_DOCUMENT_SIZE - 22)

/* The length of an auto key: an ObjectId as 24 hex digits. */
#define MKV_AUTO_KEY_LEN 24

/* The field of a key's document that contains its value. */
#define MKV_VALUE_FIELD "value"

/* Bytes of a key that an error message quotes before it cuts the key. */
#define MKV_KEY_QUOTE_MAX 64

typedef enum {
  MKV_OP_SET,
  MKV_OP_GET,
  MKV_OP_REMOVE,
  MKV_OP_ALL,
  MKV_OP_PURGE,
  MKV_OP_PING,
} mkv_op_kind_t;

/* The arguments and results of one operation, blocking or async. */
typedef struct {
  mkv_op_kind_t kind;
  const char *key;           /* borrowed; NULL for all, purge, ping */
  const bson_value_t *value; /* borrowed; set only */
  char *key_used;            /* set: owned copy of the key written */
  bson_value_t result_value; /* get: owned on success */
  bool removed;              /* remove */
  mkv_keys_t keys;           /* all: owned on success */
  int64_t started_us;        /* monotonic time the network part began */
} mkv_op_t;

typedef struct mkv_request_s mkv_request_t;
typedef struct mkv_loop_queue_s mkv_loop_queue_t;

/* The _async operations of one handle on one loop. */
struct mkv_loop_queue_s {
  uv_loop_t *loop;
  unsigned in_flight;  /* on the threadpool from this loop */
  mkv_request_t *head; /* waiting for a threadpool slot, in call order */
  mkv_request_t *tail;
  mkv_loop_queue_t *next;
};

struct mkv_s {
  mongoc_client_pool_t *pool;
  char *db_name;
  char *collection_name;
  char *namespace_quoted; /* "db.collection", cut for error messages */
  char *password;         /* from the URI, so messages can be scrubbed of it */
  int32_t socket_timeout_ms; /* in effect, 0 for none */
  unsigned generation;       /* mkv_process_generation() at mkv_open() */
  pid_t pid;                 /* getpid() at mkv_open() */
  mkv_t *abandoned_next;     /* fork.c's list of handles closed in a child */

  /* The fields from here to close_wakeup are guarded by mutex. */
  pthread_mutex_t mutex;
  bool closing;
  unsigned max_in_flight;
  unsigned in_flight;   /* async work on the threadpool, all loops */
  size_t async_pending; /* async requests whose callback has not ended */
  size_t sync_running;  /* blocking calls in progress */
  mkv_loop_queue_t *queues;

  /*
   * Written once under mutex by mkv_close_async() before closing is set,
   * then read without it by the closing loop after the wake-up.
   */
  uv_async_t close_wakeup;
  uv_work_t close_work;
  uv_loop_t *close_loop;
  mkv_cb close_cb;
  void *close_data;
  bool close_signaled;
};

/* errors.c */
void mkv_error_set(bson_error_t *error, int status, const char *fmt, ...)
    BSON_GNUC_PRINTF(3, 4);
int mkv_error_from_mongoc(const mkv_t *db, const mkv_op_t *op,
                          bson_error_t *error, const bson_error_t *cause);
void mkv_describe_op(const mkv_op_t *op, char *out, size_t out_size);
void mkv_command_failed_cb(const mongoc_apm_command_failed_t *event);
void mkv_reset_failed_command(void);
void mkv_scrub(char *text, size_t size, const char *secret);
void mkv_error_scrub(bson_error_t *error, const char *secret);
void mkv_repair_utf8(char *text);
void mkv_quote_key(const char *key, char *out, size_t out_size);
const char *mkv_op_name(mkv_op_kind_t kind);

/* values.c */
int mkv_check_key(const char *key, const char *op, bson_error_t *error);
int mkv_check_value(const bson_value_t *value, const char *key,
                    size_t *stored_len, bson_error_t *error);
int mkv_check_size(size_t stored_len, const char *key, bson_error_t *error);
/*
 * Appends a copy of the `len` bytes of `key` to `keys`, which starts empty.
 * `capacity` counts the slots of keys->keys and starts at 0.
 */
void mkv_keys_append(mkv_keys_t *keys, size_t *capacity, const char *key,
                     size_t len);

/* codec.c */
void mkv_build_key_filter(bson_t *filter, const char *key);
void mkv_build_insert(bson_t *doc, const char *key, const bson_value_t *value);
void mkv_build_upsert(bson_t *filter, bson_t *update, const char *key,
                      const bson_value_t *value);
bool mkv_read_value(const bson_t *doc, bson_value_t *value);
int64_t mkv_read_deleted_count(const bson_t *reply);
char *mkv_key_from_id(bson_iter_t *iter);
void mkv_keys_append_id(mkv_keys_t *keys, size_t *capacity, bson_iter_t *iter);

/* handle.c */
int mkv_enter_sync(mkv_t *db, const mkv_op_t *op, bson_error_t *error);
void mkv_leave_sync(mkv_t *db);
void mkv_handle_free(mkv_t *db);

/* async.c */
bool mkv_claim_close_locked(mkv_t *db);
void mkv_signal_close(mkv_t *db);

/* fork.c */
void mkv_fork_watch(void);
unsigned mkv_process_generation(void);
bool mkv_opened_in_parent(const mkv_t *db);
int mkv_check_process(const mkv_t *db, const char *op_description,
                      bson_error_t *error);
void mkv_abandon(mkv_t *db);

/* ops.c */
void mkv_op_choose_key(mkv_op_t *op);
int mkv_op_check(const mkv_t *db, const mkv_op_t *op, bson_error_t *error);
int mkv_op_run(mkv_t *db, mkv_op_t *op, bson_error_t *error);
void mkv_op_cleanup(mkv_op_t *op);

#endif /* MKV_PRIVATE_H */
