/*
 * Async dispatch: operations run on libuv threadpool workers and call back
 * on the loop thread. Each handle keeps at most max_in_flight of them on
 * the threadpool and queues the rest per loop, in call order, except that
 * a loop with nothing of its own running may always start one.
 */
#include <stdlib.h>
#include <string.h>

#include "mkv-private.h"

struct mkv_request_s {
  uv_work_t work;
  mkv_t *db;
  mkv_loop_queue_t *queue;
  mkv_op_t op;
  char *key_copy;
  bson_value_t value_copy;
  bool has_value;
  int status;
  bson_error_t error;
  mkv_cb cb;
  void *data;
  mkv_request_t *next;
};

static void work_cb(uv_work_t *work);
static void after_work_cb(uv_work_t *work, int uv_status);

static void request_free(mkv_request_t *req) {
  mkv_op_cleanup(&req->op);
  bson_free(req->key_copy);
  if (req->has_value)
    bson_value_destroy(&req->value_copy);
  free(req);
}

/* Finds the queue of `loop`, creating it when missing. */
static mkv_loop_queue_t *find_queue_locked(mkv_t *db, uv_loop_t *loop) {
  mkv_loop_queue_t *queue;

  for (queue = db->queues; queue != NULL; queue = queue->next) {
    if (queue->loop == loop)
      return queue;
  }
  queue = calloc(1, sizeof *queue);
  if (queue == NULL)
    return NULL;
  queue->loop = loop;
  queue->next = db->queues;
  db->queues = queue;
  return queue;
}

/* Frees the queue of a loop once it has nothing queued or running. */
static void release_queue_locked(mkv_t *db, mkv_loop_queue_t *queue) {
  mkv_loop_queue_t **link;

  if (queue->in_flight > 0 || queue->head != NULL)
    return;
  for (link = &db->queues; *link != NULL; link = &(*link)->next) {
    if (*link == queue) {
      *link = queue->next;
      free(queue);
      return;
    }
  }
}

/*
 * Takes from the head of `queue` the requests that may start now: while
 * the handle has a threadpool slot free, or while this loop has nothing of
 * its own running, so that a loop never waits for another loop's work.
 */
static mkv_request_t *take_startable_locked(mkv_t *db,
                                            mkv_loop_queue_t *queue) {
  mkv_request_t *first = NULL;
  mkv_request_t **last = &first;

  while (queue->head != NULL &&
         (db->in_flight < db->max_in_flight || queue->in_flight == 0)) {
    mkv_request_t *req = queue->head;

    queue->head = req->next;
    if (queue->head == NULL)
      queue->tail = NULL;
    req->next = NULL;
    *last = req;
    last = &req->next;
    db->in_flight++;
    queue->in_flight++;
  }
  return first;
}

/* Posts requests to the threadpool. Runs on their loop's thread. */
static void start_all(mkv_request_t *req) {
  while (req != NULL) {
    mkv_request_t *next = req->next;

    /* uv_queue_work fails only for a NULL work callback. */
    (void)uv_queue_work(req->queue->loop, &req->work, work_cb, after_work_cb);
    req = next;
  }
}

/*
 * Returns true, once per handle, when the handle is closing and nothing is
 * pending any more. The one caller that gets true must call
 * mkv_signal_close() after unlocking and touch the handle no further.
 */
bool mkv_claim_close_locked(mkv_t *db) {
  if (!db->closing || db->close_loop == NULL || db->close_signaled)
    return false;
  if (db->async_pending > 0 || db->sync_running > 0)
    return false;
  db->close_signaled = true;
  return true;
}

void mkv_signal_close(mkv_t *db) { uv_async_send(&db->close_wakeup); }

/* Calls the user's callback, frees the request and counts it out. */
static void finish(mkv_request_t *req) {
  mkv_t *db = req->db;
  mkv_result_t result;
  bool close_now;

  memset(&result, 0, sizeof result);
  result.status = req->status;
  result.error = &req->error;
  result.removed = req->op.removed;
  if (req->op.kind == MKV_OP_SET)
    result.key = req->op.key_used;
  if (req->status == MKV_OK && req->op.kind == MKV_OP_GET)
    result.value = &req->op.result_value;
  if (req->status == MKV_OK && req->op.kind == MKV_OP_ALL)
    result.keys = &req->op.keys;

  req->cb(db, &result, req->data);
  request_free(req);

  pthread_mutex_lock(&db->mutex);
  db->async_pending--;
  close_now = mkv_claim_close_locked(db);
  pthread_mutex_unlock(&db->mutex);

  if (close_now)
    mkv_signal_close(db);
}

static void cancel(mkv_request_t *req) {
  char what[MKV_KEY_QUOTE_MAX + 32];

  req->status = MKV_ECANCELED;
  mkv_describe_op(&req->op, what, sizeof what);
  mkv_error_set(&req->error, MKV_ECANCELED,
                "%s: canceled because the handle is closing", what);
}

/* Runs on a threadpool worker. */
static void work_cb(uv_work_t *work) {
  mkv_request_t *req = work->data;
  mkv_t *db = req->db;
  bool closing;

  pthread_mutex_lock(&db->mutex);
  closing = db->closing;
  pthread_mutex_unlock(&db->mutex);

  if (closing)
    cancel(req);
  else
    req->status = mkv_op_run(db, &req->op, &req->error);
}

/* Runs on the loop thread after work_cb. */
static void after_work_cb(uv_work_t *work, int uv_status) {
  mkv_request_t *req = work->data;
  mkv_t *db = req->db;
  mkv_loop_queue_t *queue = req->queue;
  mkv_request_t *start = NULL;
  mkv_request_t *canceled = NULL;

  /* mkv never calls uv_cancel, so the work always ran. */
  (void)uv_status;

  pthread_mutex_lock(&db->mutex);
  db->in_flight--;
  queue->in_flight--;
  if (db->closing) {
    canceled = queue->head;
    queue->head = NULL;
    queue->tail = NULL;
  } else {
    start = take_startable_locked(db, queue);
  }
  release_queue_locked(db, queue);
  pthread_mutex_unlock(&db->mutex);

  start_all(start);
  finish(req);
  while (canceled != NULL) {
    mkv_request_t *next = canceled->next;

    cancel(canceled);
    finish(canceled);
    canceled = next;
  }
}

/* Queues a checked request on its loop, starting it when a slot is free. */
static int submit(mkv_request_t *req, uv_loop_t *loop) {
  mkv_t *db = req->db;
  mkv_loop_queue_t *queue;
  mkv_request_t *start;

  pthread_mutex_lock(&db->mutex);
  if (db->closing) {
    pthread_mutex_unlock(&db->mutex);
    return MKV_ECLOSED;
  }
  queue = find_queue_locked(db, loop);
  if (queue == NULL) {
    pthread_mutex_unlock(&db->mutex);
    return MKV_ENOMEM;
  }

  req->queue = queue;
  if (queue->tail != NULL)
    queue->tail->next = req;
  else
    queue->head = req;
  queue->tail = req;
  db->async_pending++;
  start = take_startable_locked(db, queue);
  pthread_mutex_unlock(&db->mutex);

  start_all(start);
  return MKV_OK;
}

static int queue_op(mkv_t *db, uv_loop_t *loop, mkv_op_kind_t kind,
                    const char *key, const bson_value_t *value, mkv_cb cb,
                    void *data) {
  mkv_op_t check = {.kind = kind, .key = key, .value = value};
  mkv_request_t *req;
  int status;

  if (loop == NULL || cb == NULL)
    return MKV_EINVAL;
  status = mkv_op_check(db, &check, NULL);
  if (status != MKV_OK)
    return status;

  req = calloc(1, sizeof *req);
  if (req == NULL)
    return MKV_ENOMEM;
  req->db = db;
  req->cb = cb;
  req->data = data;
  req->work.data = req;
  req->op.kind = kind;
  if (key != NULL) {
    req->key_copy = bson_strdup(key);
    req->op.key = req->key_copy;
  }
  if (value != NULL) {
    bson_value_copy(value, &req->value_copy);
    req->has_value = true;
    req->op.value = &req->value_copy;
  }
  /* An auto key is made now, so that even a canceled set reports it. */
  if (kind == MKV_OP_SET)
    mkv_op_choose_key(&req->op);

  status = submit(req, loop);
  if (status != MKV_OK)
    request_free(req);
  return status;
}

int mkv_set_async(mkv_t *db, uv_loop_t *loop, const char *key,
                  const bson_value_t *value, mkv_cb cb, void *data) {
  return queue_op(db, loop, MKV_OP_SET, key, value, cb, data);
}

int mkv_get_async(mkv_t *db, uv_loop_t *loop, const char *key, mkv_cb cb,
                  void *data) {
  return queue_op(db, loop, MKV_OP_GET, key, NULL, cb, data);
}

int mkv_remove_async(mkv_t *db, uv_loop_t *loop, const char *key, mkv_cb cb,
                     void *data) {
  return queue_op(db, loop, MKV_OP_REMOVE, key, NULL, cb, data);
}

int mkv_all_async(mkv_t *db, uv_loop_t *loop, mkv_cb cb, void *data) {
  return queue_op(db, loop, MKV_OP_ALL, NULL, NULL, cb, data);
}

int mkv_purge_async(mkv_t *db, uv_loop_t *loop, mkv_cb cb, void *data) {
  return queue_op(db, loop, MKV_OP_PURGE, NULL, NULL, cb, data);
}

int mkv_ping_async(mkv_t *db, uv_loop_t *loop, mkv_cb cb, void *data) {
  return queue_op(db, loop, MKV_OP_PING, NULL, NULL, cb, data);
}

/* Closing ----------------------------------------------------------------
 *
 * The last operation to end (on any thread) wakes the closing loop through
 * close_wakeup. The loop then destroys the pool on a threadpool worker,
 * closes close_wakeup, calls the user's callback and frees the handle.
 */

static void close_handle_cb(uv_handle_t *handle) {
  mkv_t *db = handle->data;
  bson_error_t no_error;
  mkv_result_t result;

  memset(&no_error, 0, sizeof no_error);
  memset(&result, 0, sizeof result);
  result.status = MKV_OK;
  result.error = &no_error;
  db->close_cb(db, &result, db->close_data);
  mkv_handle_free(db);
}

static void close_work_cb(uv_work_t *work) {
  mkv_t *db = work->data;

  mongoc_client_pool_destroy(db->pool);
  db->pool = NULL;
}

static void close_after_cb(uv_work_t *work, int uv_status) {
  mkv_t *db = work->data;

  (void)uv_status;
  uv_close((uv_handle_t *)&db->close_wakeup, close_handle_cb);
}

static void close_wakeup_cb(uv_async_t *async) {
  mkv_t *db = async->data;

  db->close_work.data = db;
  (void)uv_queue_work(db->close_loop, &db->close_work, close_work_cb,
                      close_after_cb);
}

int mkv_close_async(mkv_t *db, uv_loop_t *loop, mkv_cb cb, void *data) {
  bool close_now;

  if (db == NULL || loop == NULL || cb == NULL)
    return MKV_EINVAL;
  if (mkv_opened_in_parent(db))
    return MKV_EFORKED;

  pthread_mutex_lock(&db->mutex);
  if (db->closing) {
    pthread_mutex_unlock(&db->mutex);
    return MKV_ECLOSED;
  }
  if (uv_async_init(loop, &db->close_wakeup, close_wakeup_cb) != 0) {
    pthread_mutex_unlock(&db->mutex);
    return MKV_ENOMEM;
  }
  db->close_wakeup.data = db;
  db->closing = true;
  db->close_loop = loop;
  db->close_cb = cb;
  db->close_data = data;
  close_now = mkv_claim_close_locked(db);
  pthread_mutex_unlock(&db->mutex);

  if (close_now)
    mkv_signal_close(db);
  return MKV_OK;
}
