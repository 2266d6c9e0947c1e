/*
 * libmkv: MongoDB as a key-value store.
 *
 * Each key is one document {"_id": <key>, "value": <any BSON value>} in one
 * collection. Every operation has a blocking form, which any thread may call
 * on a shared handle, and an _async form, which runs on a libuv threadpool
 * worker and calls back on the loop thread.
 *
 * Status codes: every function that returns int returns MKV_OK (0) on
 * success or one of the negative MKV_E* codes below. Functions that take a
 * bson_error_t *error also fill it on failure when it is not NULL. Its
 * message names the operation and the key, and never contains the password
 * of the URI. Its domain and code are libmongoc's when libmongoc reported
 * the failure. Otherwise the domain is MKV_ERROR_DOMAIN and the code is the
 * status converted to uint32_t, so that (int)error.code == status.
 *
 * Async contract: an _async function must be called on the thread that runs
 * the loop it is given. When it returns 0 the operation was queued, and its
 * callback then runs exactly once, on that loop's thread. When it returns a
 * negative status the callback is never called.
 *
 * fork(): a handle belongs to the process that opened it, because
 * libmongoc's connection pool is not fork-safe. In a child, the pool's
 * monitor threads do not exist and its sockets are shared with the parent.
 * A child may only call mkv_close() on a handle from its parent. That call
 * sends nothing, touches no socket and frees nothing. Destroying the pool
 * would join threads that exist only in the parent, which hangs the child,
 * and send endSessions on the parent's connections. The handle's
 * memory stays allocated, and reachable, until the child exits. Every other
 * call on it fails with MKV_EFORKED, mkv_close_async() included, and no
 * callback runs. The child opens its own handles with mkv_open(), and the
 * parent's handle keeps working in the parent. That holds only when no
 * other thread of the parent was inside libmongoc at fork(), such as a
 * thread in an mkv call or a pool's monitor thread. libmongoc 1.23 keeps
 * process-wide mutexes, its log mutex among them, and a child that
 * inherits one locked blocks forever at its first libmongoc log line. A
 * child of such a parent should call exec() before it uses mkv. mkv
 * detects a child through a pthread_atfork() handler, so a child made by
 * vfork(), _Fork() or clone(), which run no such handler, is not detected.
 */
#ifndef MKV_H
#define MKV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MKV_BUILDING) && defined(__GNUC__)
#define MKV_EXTERN __attribute__((visibility("default")))
#else
#define MKV_EXTERN
#endif

#define MKV_VERSION_MAJOR 0
#define MKV_VERSION_MINOR 1
#define MKV_VERSION_PATCH 0
#define MKV_VERSION_STRING "0.1.0"

/*
 * Status codes. X(name, value, message) feeds both mkv_strerror() and
 * mkv_err_name(), so a code, its name and its message stay together.
 */
#define MKV_STATUS_MAP(X)                                                      \
  X(OK, 0, "success")                                                          \
  X(ENOTFOUND, -1, "key not found")                                            \
  X(EINVAL, -2, "invalid argument")                                            \
  X(ECONNECT, -3, "server unreachable or connection failed")                   \
  X(ETIMEDOUT, -4, "operation timed out")                                      \
  X(ESERVER, -5, "server rejected the operation")                              \
  X(ECANCELED, -6, "operation canceled")                                       \
  X(ECLOSED, -7, "handle is closing")                                          \
  X(EBUSY, -8, "handle has operations in progress")                            \
  X(ENOMEM, -9, "out of memory")                                               \
  X(EFORKED, -10,                                                              \
    "handle was opened before fork(); open a new handle in this process")

typedef enum {
#define MKV_STATUS_ENUM(name, value, message) MKV_##name = (value),
  MKV_STATUS_MAP(MKV_STATUS_ENUM)
#undef MKV_STATUS_ENUM
} mkv_status_t;

/* The bson_error_t domain of errors that mkv itself detects. */
#define MKV_ERROR_DOMAIN 0x6d6b76

/*
 * Returns a static, human-readable message for a status ("key not found"),
 * or "unknown status" for a value that is not an MKV_* code.
 */
MKV_EXTERN const char *mkv_strerror(int status);

/*
 * Returns the static name of a status ("MKV_ENOTFOUND"), or
 * "MKV_UNKNOWN" for a value that is not an MKV_* code.
 */
MKV_EXTERN const char *mkv_err_name(int status);

/* An open store: one connection pool, one database, one collection. */
typedef struct mkv_s mkv_t;

/*
 * Options for mkv_open(). Zero-initialize the struct and set what you need;
 * every zero or NULL field takes the default that its comment gives.
 */
typedef struct {
  /*
   * Database name, copied by mkv_open(). NULL means "mkv". The database in
   * the URI's path is used only to authenticate, never for keys.
   */
  const char *db_name;
  /* Collection name, copied by mkv_open(). NULL means "kv". */
  const char *collection_name;
  /*
   * How long an operation waits for a usable server, in milliseconds,
   * before it fails with MKV_ECONNECT. 0 keeps the URI's
   * serverSelectionTimeoutMS, or libmongoc's default of 30000.
   */
  int32_t server_selection_timeout_ms;
  /*
   * How long one network read or write may block, in milliseconds, before
   * the operation fails with MKV_ETIMEDOUT. 0 keeps the URI's
   * socketTimeoutMS, or else mkv's default of 30000 (libmongoc's own
   * default is 300000, five minutes, which would hold a worker that long).
   */
  int32_t socket_timeout_ms;
  /*
   * The maximum number of _async operations that this handle keeps on
   * the libuv threadpool at once. The rest wait in mkv's own queue in call
   * order. 0 means the threadpool size minus one: UV_THREADPOOL_SIZE, whose
   * libuv default of 4 gives 3. That leaves a thread for uv_fs_* and
   * uv_getaddrinfo work even while the server does not reply. The one
   * exception: a loop with none of its own operations running may always
   * start one, so with several loops on one handle each may take one
   * thread beyond the limit. The limit is per handle, and the threadpool
   * is per process, so handles that share it should share one limit too.
   */
  unsigned max_in_flight;
} mkv_options_t;

/*
 * Opens a store on the MongoDB server that `uri` names.
 *
 * Parses and checks the URI and creates the connection pool, but does not
 * contact the server: the first operation does, and a server that cannot be
 * reached shows up there as MKV_ECONNECT. mkv_ping() checks at once.
 * Initializes libmongoc on first use (see mkv_init()).
 *
 * Timeouts that apply when neither the URI nor `options` sets them:
 * serverSelectionTimeoutMS 30000 and connectTimeoutMS 10000 are
 * libmongoc's defaults. socketTimeoutMS 30000 is mkv's, in place of
 * libmongoc's 300000. waitQueueTimeoutMS 30000 is also mkv's, in place of
 * libmongoc's unbounded wait: it is the maximum time an operation waits
 * for a free client when all maxPoolSize clients (default 100) are busy.
 *
 * db:      out; receives the handle, to be released with mkv_close() or
 *          mkv_close_async(). Set to NULL on failure.
 * uri:     borrowed; a mongodb:// or mongodb+srv:// connection string.
 * options: borrowed, may be NULL; the strings in it are copied.
 * error:   may be NULL.
 *
 * Returns MKV_OK, MKV_EINVAL (NULL db or uri, a URI that does not parse, a
 * tlsCAFile or tlsCertificateKeyFile in it that cannot be read, a negative
 * timeout, a database or collection name that MongoDB rejects), or
 * MKV_ENOMEM. It does not contact the server.
 */
MKV_EXTERN int mkv_open(mkv_t **db, const char *uri,
                        const mkv_options_t *options, bson_error_t *error);

/*
 * Initializes libmongoc for this process (mongoc_init()). mkv_open() calls
 * it, so most programs never need to. It is safe to call any number of
 * times from any thread. A program that also uses libmongoc directly may
 * call mongoc_init() itself, before or after. Such a program calls
 * mongoc_cleanup(), if at all, only after every mkv handle is closed; mkv
 * never calls it.
 */
MKV_EXTERN void mkv_init(void);

/*
 * Sends a ping command to the server and waits for the reply.
 *
 * Returns MKV_OK, MKV_EINVAL (NULL db), MKV_ECONNECT, MKV_ETIMEDOUT,
 * MKV_ESERVER, MKV_ECLOSED or MKV_ENOMEM. Thread-safe.
 */
MKV_EXTERN int mkv_ping(mkv_t *db, bson_error_t *error);

/*
 * Closes the handle and frees it with its connection pool.
 *
 * It blocks while libmongoc sends endSessions and stops the pool's monitor
 * threads. Against a stalled server that takes up to socketTimeoutMS, and
 * against one that accepts connections but never replies, up to
 * connectTimeoutMS. Lower those in the URI for a fast close.
 *
 * Returns MKV_OK when the handle was freed; db must not be used again.
 * Returns MKV_EBUSY and keeps the handle open when _async operations have
 * not yet called back or blocking operations are still running on other
 * threads. Inside an mkv callback it always returns MKV_EBUSY, because
 * that callback's operation is still pending: use mkv_close_async() there.
 * Returns MKV_ECLOSED when mkv_close_async() was already called on it, and
 * MKV_EINVAL for a NULL db. In a child of fork() it returns MKV_OK for a
 * handle from the parent without sending or freeing anything (see fork()
 * at the top of this file). MKV_EBUSY is a check, not a wait, so no other
 * call on db may run or start while mkv_close() runs. Once it returns
 * MKV_OK the handle is freed, and any later call on it, a second
 * mkv_close() included, reads freed memory. Join the threads that use db
 * first, or use mkv_close_async(), which waits for them.
 */
MKV_EXTERN int mkv_close(mkv_t *db);

/* Values ---------------------------------------------------------------- */

/*
 * Value helpers. Each returns a bson_value_t that borrows its argument and
 * owns nothing: do not pass it to bson_value_destroy(). The string passed to
 * mkv_str() must be NUL-terminated UTF-8 and outlive the value's use.
 */
MKV_EXTERN bson_value_t mkv_str(const char *str);
MKV_EXTERN bson_value_t mkv_int64(int64_t number);
MKV_EXTERN bson_value_t mkv_double(double number);
MKV_EXTERN bson_value_t mkv_bool(bool boolean);
MKV_EXTERN bson_value_t mkv_null(void);

/*
 * Parses relaxed or canonical Extended JSON text of any one value: an
 * object, array, string, number, true, false, null, or a typed wrapper
 * such as {"$oid": "..."} or {"$date": ...}. A plain integer becomes an
 * int32 when it fits and an int64 otherwise, and a number with a fraction
 * or exponent a double. Nesting may go 98 levels deep (libbson's parser
 * allows 100 with the wrapper that mkv_json adds around the text).
 *
 * json:  borrowed, NUL-terminated UTF-8.
 * value: out; on success an owned value, to be released with
 *        bson_value_destroy(). Untouched on failure.
 *
 * Returns MKV_OK, MKV_EINVAL (NULL argument, invalid UTF-8, text that is
 * not exactly one JSON value) or MKV_ENOMEM.
 */
MKV_EXTERN int mkv_json(const char *json, bson_value_t *value,
                        bson_error_t *error);

/*
 * Renders a value as relaxed Extended JSON in libbson's layout:
 * "harrison", 42, { "a" : [ 1 ] }, { "$oid" : "..." }.
 * Returns a string to release with bson_free(), or NULL for a NULL value
 * or one that mkv_set() would reject as invalid (its size aside).
 */
MKV_EXTERN char *mkv_value_to_json(const bson_value_t *value);

/* Keys ------------------------------------------------------------------ */

/*
 * The keys that mkv_all() returns. The strings share memory that only
 * mkv_keys_destroy() may free: never free or reallocate one key alone, and
 * copy a key that must outlive the set.
 */
typedef struct {
  char **keys;  /* count strings, each NUL-terminated UTF-8 */
  size_t count; /* number of keys */
} mkv_keys_t;

/* Frees every key and the array, then sets keys to NULL and count to 0. */
MKV_EXTERN void mkv_keys_destroy(mkv_keys_t *keys);

/* Blocking operations ----------------------------------------------------
 *
 * Each may be called from any thread, concurrently, on one shared handle.
 * Each takes a client from the pool for its duration and blocks the calling
 * thread for up to the timeouts that mkv_open() lists. A key is a
 * NUL-terminated UTF-8 string, borrowed for the call; invalid UTF-8 gets
 * MKV_EINVAL and nothing is sent. So does a key longer than 16777194 bytes,
 * the longest that fits in a 16 MiB document {_id: key, value: null}.
 * Values are borrowed for the call.
 *
 * Statuses that any of them can return besides those listed: MKV_EINVAL
 * (NULL db or other required argument), MKV_ECONNECT (no server could be
 * selected in time, or the connection failed), MKV_ETIMEDOUT (the server
 * did not reply within socketTimeoutMS, or no pooled client came free
 * within waitQueueTimeoutMS), MKV_ESERVER (the server rejected the
 * operation; the error contains its code and message), MKV_ECLOSED (the
 * handle is closing), MKV_EFORKED (a child of fork() called it on its
 * parent's handle) and MKV_ENOMEM. libmongoc 1.23 reports a timed-out and
 * a dropped connection alike, so a socket failure counts as MKV_ETIMEDOUT
 * when its command ran for at least 90% of socketTimeoutMS.
 */

/*
 * Stores `value` under `key`, replacing any value the key had.
 *
 * key:     borrowed; NULL makes a new ObjectId and uses its 24-character
 *          hex string as the key.
 * value:   borrowed; any BSON value. MKV_EINVAL, with nothing stored, for
 *          an unknown type, a NULL pointer the type needs, malformed BSON,
 *          a key or text (string, symbol, code, regex, DBPointer) that is
 *          not valid UTF-8, documents and arrays nested more than 99 levels
 *          deep (MongoDB's limit is 100 with the key's document), an
 *          array value whose keys are not "0", "1", "2" and so on, or a
 *          document {_id, value} larger than 16 MiB. Text other than a
 *          string's (code, regex, DBPointer collection) must end with a NUL
 *          at its length field, as libbson's values do, regex options
 *          must come from "ilmsux", and field names must not be empty.
 * key_out: may be NULL; on success receives the key used, to be released
 *          with bson_free(). Set to NULL on failure.
 */
MKV_EXTERN int mkv_set(mkv_t *db, const char *key, const bson_value_t *value,
                       char **key_out, bson_error_t *error);

/*
 * Reads the value stored under `key`.
 *
 * value: out; on success an owned copy, to be released with
 *        bson_value_destroy(). Untouched on failure.
 *
 * Returns MKV_ENOTFOUND when no document has this key, or when the
 * document has no "value" field (it was not written by mkv).
 */
MKV_EXTERN int mkv_get(mkv_t *db, const char *key, bson_value_t *value,
                       bson_error_t *error);

/*
 * Deletes `key`. Returns MKV_OK whether or not the key existed.
 *
 * removed: may be NULL; receives true when a document was deleted and
 *          false when the key did not exist.
 */
MKV_EXTERN int mkv_remove(mkv_t *db, const char *key, bool *removed,
                          bson_error_t *error);

/*
 * Lists every key in the collection, in the server's order.
 *
 * keys: out, need not be initialized; on success owns the keys, to be
 *       released with mkv_keys_destroy(). Set to empty on failure. A
 *       document whose _id is not a UTF-8 string (one not written by mkv)
 *       is listed by the relaxed Extended JSON of its _id, such as
 *       { "$oid" : "..." }, which mkv_get() cannot look up.
 */
MKV_EXTERN int mkv_all(mkv_t *db, mkv_keys_t *keys, bson_error_t *error);

/* Deletes every document, and keeps the collection and its indexes. */
MKV_EXTERN int mkv_purge(mkv_t *db, bson_error_t *error);

/* Async operations -------------------------------------------------------
 *
 * Each queues the blocking operation of the same name to run on a libuv
 * threadpool worker, with a client from the handle's pool, and then calls
 * `cb` on the loop's thread. Call them only on the thread that runs
 * `loop`; one handle may serve several loops.
 *
 * They copy the key and value before they return. The request and its
 * queue are allocated with malloc(), so running out of memory there gives
 * MKV_ENOMEM; copies of keys and values go through libbson's allocator,
 * which aborts the process instead unless bson_mem_set_vtable() installs
 * another. They return MKV_OK when
 * the operation was queued, and then `cb` runs exactly once. They return
 * MKV_EINVAL (NULL db, loop, cb, or an invalid key or value), MKV_ECLOSED
 * (the handle is closing), MKV_EFORKED (the handle is from the parent of
 * this process) or MKV_ENOMEM without queuing, and then `cb` is never
 * called.
 *
 * At most max_in_flight operations of a handle (see mkv_options_t) occupy
 * the threadpool at once; the others wait in mkv's queue, in call order.
 * A loop with none of its own operations on the threadpool may always
 * start one, so that no loop waits on another's work.
 *
 * A callback may call any mkv function, mkv_close_async() included.
 */

/*
 * The outcome of an _async operation; everything in it is borrowed. Fields
 * that the operation does not fill are NULL or false.
 */
typedef struct {
  int status;                /* MKV_OK or a negative MKV_E* status */
  const bson_error_t *error; /* details; message is "" on success */
  const char *key;           /* set: the key used, also on failure */
  const bson_value_t *value; /* get on success: the value read; else NULL */
  bool removed;              /* remove: whether a document was deleted */
  const mkv_keys_t *keys;    /* all on success: the keys read; else NULL */
} mkv_result_t;

/*
 * Called once per queued _async operation, on the loop's thread. `result`
 * and everything it points to are valid only until the callback returns:
 * copy what you keep (bson_value_copy(), bson_strdup()). `data` is the
 * pointer given to the _async call.
 */
typedef void (*mkv_cb)(mkv_t *db, const mkv_result_t *result, void *data);

MKV_EXTERN int mkv_set_async(mkv_t *db, uv_loop_t *loop, const char *key,
                             const bson_value_t *value, mkv_cb cb, void *data);
MKV_EXTERN int mkv_get_async(mkv_t *db, uv_loop_t *loop, const char *key,
                             mkv_cb cb, void *data);
MKV_EXTERN int mkv_remove_async(mkv_t *db, uv_loop_t *loop, const char *key,
                                mkv_cb cb, void *data);
MKV_EXTERN int mkv_all_async(mkv_t *db, uv_loop_t *loop, mkv_cb cb, void *data);
MKV_EXTERN int mkv_purge_async(mkv_t *db, uv_loop_t *loop, mkv_cb cb,
                               void *data);
MKV_EXTERN int mkv_ping_async(mkv_t *db, uv_loop_t *loop, mkv_cb cb,
                              void *data);

/*
 * Closes the handle without blocking the loop.
 *
 * From this call on, every mkv call on the handle fails with MKV_ECLOSED.
 * _async operations that have not started complete with MKV_ECANCELED,
 * running ones and running blocking calls finish, the pool is destroyed on
 * a threadpool worker, and then `cb` runs on this loop's thread with
 * status MKV_OK. Destroying the pool can take as long as in mkv_close(),
 * which delays `cb` but does not block the loop. The handle is freed after `cb`
 * returns, so `cb` may read `db` only as an identifier and must not call mkv
 * functions on it.
 *
 * Returns MKV_OK, MKV_EINVAL (NULL db, loop or cb), MKV_ECLOSED (already
 * closing), MKV_EFORKED (the handle is from the parent of this process:
 * call mkv_close() instead) or MKV_ENOMEM, which means that libuv could
 * not create the wake-up handle for lack of memory or file descriptors. On
 * failure `cb` is never called.
 */
MKV_EXTERN int mkv_close_async(mkv_t *db, uv_loop_t *loop, mkv_cb cb,
                               void *data);

#ifdef __cplusplus
}
#endif

#endif /* MKV_H */
