/*
 * Handles across fork(). libmongoc's pool is not fork-safe: in a child its
 * monitor threads are gone and its sockets are shared with the parent. A
 * handle records the process generation it was opened in, and every entry
 * point rejects a handle from another generation.
 */
#include <stdatomic.h>
#include <unistd.h>

#include "mkv-private.h"

/* Bumped in each child of fork(), so it differs from the parent's value. */
static atomic_uint process_generation;

/*
 * Set when pthread_atfork() failed (it fails only with ENOMEM). Handles are
 * then told apart by process ID, which costs a system call per operation.
 */
static atomic_bool watch_failed;

/* Handles closed in a child, kept so that their memory stays reachable. */
static _Atomic(mkv_t *) abandoned_handles;

static void on_fork_child(void) {
  atomic_fetch_add_explicit(&process_generation, 1, memory_order_relaxed);
}

/*
 * Registers the fork handler. mkv_init() calls it once per process, before
 * any handle exists, so every fork() after the first handle bumps the
 * generation.
 */
void mkv_fork_watch(void) {
  if (pthread_atfork(NULL, NULL, on_fork_child) != 0)
    atomic_store(&watch_failed, true);
}

unsigned mkv_process_generation(void) {
  return atomic_load_explicit(&process_generation, memory_order_relaxed);
}

bool mkv_opened_in_parent(const mkv_t *db) {
  if (db->generation != mkv_process_generation())
    return true;
  return atomic_load_explicit(&watch_failed, memory_order_relaxed) &&
         db->pid != getpid();
}

int mkv_check_process(const mkv_t *db, const char *op_description,
                      bson_error_t *error) {
  if (!mkv_opened_in_parent(db))
    return MKV_OK;
  mkv_error_set(error, MKV_EFORKED,
                "%s: the handle was opened in a parent process before fork(), "
                "and its connections belong to that process; call mkv_close() "
                "on it and open a new handle in this process with mkv_open()",
                op_description);
  return MKV_EFORKED;
}

/*
 * Releases a parent's handle in a child without touching its state. It
 * takes no mutex, because a parent thread may have held it at fork(). It
 * does not destroy the pool, because that joins monitor threads that exist
 * only in the parent and sends endSessions on the parent's connections.
 * The handle joins a list, so that leak checkers see its memory as
 * reachable until the process exits.
 */
void mkv_abandon(mkv_t *db) {
  mkv_t *head = atomic_load(&abandoned_handles);

  do {
    db->abandoned_next = head;
  } while (!atomic_compare_exchange_weak(&abandoned_handles, &head, db));
}
