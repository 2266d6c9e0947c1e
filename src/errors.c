/* Status codes, their names and messages, and the error struct. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mkv-private.h"

const char *mkv_strerror(int status) {
  switch (status) {
#define MKV_STATUS_MESSAGE(name, value, message)                               \
  case MKV_##name:                                                             \
    return message;
    MKV_STATUS_MAP(MKV_STATUS_MESSAGE)
#undef MKV_STATUS_MESSAGE
  default:
    return "unknown status";
  }
}

const char *mkv_err_name(int status) {
  switch (status) {
#define MKV_STATUS_NAME(name, value, message)                                  \
  case MKV_##name:                                                             \
    return "MKV_" #name;
    MKV_STATUS_MAP(MKV_STATUS_NAME)
#undef MKV_STATUS_NAME
  default:
    return "MKV_UNKNOWN";
  }
}

const char *mkv_op_name(mkv_op_kind_t kind) {
  switch (kind) {
  case MKV_OP_SET:
    return "set";
  case MKV_OP_GET:
    return "get";
  case MKV_OP_REMOVE:
    return "remove";
  case MKV_OP_ALL:
    return "all";
  case MKV_OP_PURGE:
    return "purge";
  case MKV_OP_PING:
    return "ping";
  }
  return "unknown";
}

void mkv_error_set(bson_error_t *error, int status, const char *fmt, ...) {
  va_list args;

  if (error == NULL)
    return;

  error->domain = MKV_ERROR_DOMAIN;
  error->code = (uint32_t)status;
  va_start(args, fmt);
  vsnprintf(error->message, sizeof error->message, fmt, args);
  va_end(args);
}

/*
 * Writes `key` into `out` for an error message: cut to MKV_KEY_QUOTE_MAX
 * bytes on a UTF-8 character boundary, with "..." when cut.
 */
void mkv_quote_key(const char *key, char *out, size_t out_size) {
  size_t len;

  if (key == NULL) {
    snprintf(out, out_size, "(null)");
    return;
  }

  len = strlen(key);
  if (len <= MKV_KEY_QUOTE_MAX) {
    snprintf(out, out_size, "%s", key);
    return;
  }

  len = MKV_KEY_QUOTE_MAX;
  /* Step back over continuation bytes (10xxxxxx) to a character start. */
  while (len > 0 && ((unsigned char)key[len] & 0xC0) == 0x80)
    len--;
  snprintf(out, out_size, "%.*s...", (int)len, key);
}

/* Replaces each occurrence of `secret` in the message with "*****". */
void mkv_error_scrub(bson_error_t *error, const char *secret) {
  char scrubbed[sizeof error->message];
  const char *from;
  const char *hit;
  size_t used = 0;
  size_t secret_len;

  if (error == NULL || secret == NULL || secret[0] == '\0')
    return;
  if (strstr(error->message, secret) == NULL)
    return;

  secret_len = strlen(secret);
  from = error->message;
  while ((hit = strstr(from, secret)) != NULL) {
    used += (size_t)snprintf(scrubbed + used, sizeof scrubbed - used,
                             "%.*s*****", (int)(hit - from), from);
    if (used >= sizeof scrubbed)
      break;
    from = hit + secret_len;
  }
  if (used < sizeof scrubbed)
    snprintf(scrubbed + used, sizeof scrubbed - used, "%s", from);
  memcpy(error->message, scrubbed, sizeof scrubbed);
}

static bool message_says_timeout(const char *message) {
  return strstr(message, "timed out") != NULL ||
         strstr(message, "timeout") != NULL;
}

/* Maps an error that libmongoc reported (error API version 2) to a status. */
static int status_from_mongoc(const bson_error_t *cause) {
  switch (cause->domain) {
  case MONGOC_ERROR_SERVER_SELECTION:
    return MKV_ECONNECT;
  case MONGOC_ERROR_STREAM:
    if (cause->code == MONGOC_ERROR_STREAM_SOCKET &&
        message_says_timeout(cause->message))
      return MKV_ETIMEDOUT;
    return MKV_ECONNECT;
  case MONGOC_ERROR_BSON:
    return MKV_EINVAL;
  case MONGOC_ERROR_CLIENT:
    if (cause->code == MONGOC_ERROR_CLIENT_TOO_BIG)
      return MKV_EINVAL;
    if (cause->code == MONGOC_ERROR_CLIENT_AUTHENTICATE)
      return MKV_ESERVER;
    return MKV_ECONNECT;
  case MONGOC_ERROR_SERVER:
  case MONGOC_ERROR_WRITE_CONCERN:
    /* MaxTimeMSExpired (50) and NetworkTimeout (89). */
    if (cause->code == 50 || cause->code == 89)
      return MKV_ETIMEDOUT;
    return MKV_ESERVER;
  default:
    return MKV_ESERVER;
  }
}

static const char *status_hint(int status) {
  switch (status) {
  case MKV_ECONNECT:
    return "; check that the server in the URI is running and reachable";
  case MKV_ETIMEDOUT:
    return "; the server did not answer in time (see socketTimeoutMS)";
  default:
    return "";
  }
}

/*
 * Fills `error` from an error that libmongoc reported for operation `op`
 * on `key` (NULL for operations without a key), keeping libmongoc's domain
 * and code, and returns the matching status.
 */
int mkv_error_from_mongoc(const mkv_t *db, bson_error_t *error,
                          const bson_error_t *cause, const char *op,
                          const char *key) {
  char quoted[MKV_KEY_QUOTE_MAX + 8];
  int status = status_from_mongoc(cause);

  if (error == NULL)
    return status;

  if (key != NULL) {
    mkv_quote_key(key, quoted, sizeof quoted);
    bson_set_error(error, cause->domain, cause->code,
                   "%s key \"%s\" in %s.%s failed: %s%s", op, quoted,
                   db->db_name, db->collection_name, cause->message,
                   status_hint(status));
  } else {
    bson_set_error(error, cause->domain, cause->code, "%s on %s.%s failed: %s%s",
                   op, db->db_name, db->collection_name, cause->message,
                   status_hint(status));
  }
  mkv_error_scrub(error, db->password);
  return status;
}
