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

/*
 * Replaces each byte of `text` that does not start a valid UTF-8 character
 * with "?", so that a message cut at its size limit, or one quoting bytes
 * from the server, is still valid UTF-8.
 */
void mkv_repair_utf8(char *text) {
  size_t len = strlen(text);
  size_t i = 0;

  while (i < len) {
    size_t width = 1;

    while (width <= 4 && i + width <= len &&
           !bson_utf8_validate(text + i, width, false))
      width++;
    if (width > 4 || i + width > len) {
      text[i] = '?';
      width = 1;
    }
    i += width;
  }
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
  mkv_repair_utf8(error->message);
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

/* Secrets shorter than this withhold a whole message rather than a part. */
#define MIN_SCRUBBED_SECRET_LEN 4

/*
 * Replaces each occurrence of `secret` in the NUL-terminated `text`, of
 * capacity `size`, with "*****". A secret of 1 to 3 bytes would match
 * ordinary words, so a message containing one is withheld whole. When
 * `text` fills its buffer it may have been cut inside the secret, so a tail
 * that starts the secret goes too.
 */
void mkv_scrub(char *text, size_t size, const char *secret) {
  char *scrubbed;
  const char *from;
  const char *hit;
  size_t used = 0;
  size_t secret_len;
  size_t text_len;

  if (text == NULL || size == 0 || secret == NULL || secret[0] == '\0')
    return;
  secret_len = strlen(secret);

  if (secret_len < MIN_SCRUBBED_SECRET_LEN && strstr(text, secret) != NULL) {
    snprintf(text, size,
             "(message withheld because it contains text equal "
             "to the URI's password)");
    return;
  }
  if (strstr(text, secret) != NULL) {
    scrubbed = bson_malloc(size);
    from = text;
    while ((hit = strstr(from, secret)) != NULL && used < size) {
      used += (size_t)snprintf(scrubbed + used, size - used, "%.*s*****",
                               (int)(hit - from), from);
      from = hit + secret_len;
    }
    if (used < size)
      snprintf(scrubbed + used, size - used, "%s", from);
    memcpy(text, scrubbed, size);
    bson_free(scrubbed);
  }

  text_len = strlen(text);
  if (text_len + 1 < size)
    return;
  for (size_t k = secret_len - 1; k > 0; k--) {
    if (k <= text_len && memcmp(text + text_len - k, secret, k) == 0) {
      snprintf(text + text_len - k, size - (text_len - k), "*****");
      return;
    }
  }
}

void mkv_error_scrub(bson_error_t *error, const char *secret) {
  if (error != NULL)
    mkv_scrub(error->message, sizeof error->message, secret);
}

static bool message_says_timeout(const char *message) {
  return strstr(message, "timed out") != NULL ||
         strstr(message, "timeout") != NULL;
}

/*
 * How long the last command that failed on this thread ran, in
 * microseconds, or -1 when none has failed since mkv_reset_failed_command().
 * Each operation runs on one thread, and libmongoc calls its command
 * monitoring callbacks on the thread that runs the command.
 */
static _Thread_local int64_t failed_command_us = -1;

void mkv_command_failed_cb(const mongoc_apm_command_failed_t *event) {
  failed_command_us = mongoc_apm_command_failed_get_duration(event);
}

void mkv_reset_failed_command(void) { failed_command_us = -1; }

/*
 * Tells a socket timeout from a dropped connection. libmongoc 1.23 reports
 * both as MONGOC_ERROR_STREAM_SOCKET with "socket error or timeout", so a
 * failure counts as a timeout only when the failed command itself ran for
 * about socketTimeoutMS. The whole operation's time also counts retries
 * and the wait before libmongoc checks the server again, so it serves only
 * when no command-failed event came, as when the failure came before any
 * command was sent.
 */
static bool socket_timed_out(const mkv_t *db, const mkv_op_t *op,
                             const bson_error_t *cause) {
  int64_t ran_us = failed_command_us;

  if (ran_us < 0)
    ran_us = bson_get_monotonic_time() - op->started_us;
  /* 90% leaves room for clock granularity in libmongoc's own timing. */
  return db->socket_timeout_ms > 0 && message_says_timeout(cause->message) &&
         ran_us / 1000 >= (int64_t)db->socket_timeout_ms * 9 / 10;
}

/* Maps an error that libmongoc reported (error API version 2) to a status. */
static int status_from_mongoc(const mkv_t *db, const mkv_op_t *op,
                              const bson_error_t *cause) {
  switch (cause->domain) {
  case MONGOC_ERROR_SERVER_SELECTION:
    return MKV_ECONNECT;
  case MONGOC_ERROR_STREAM:
    if (cause->code == MONGOC_ERROR_STREAM_SOCKET &&
        socket_timed_out(db, op, cause))
      return MKV_ETIMEDOUT;
    return MKV_ECONNECT;
  case MONGOC_ERROR_BSON:
    return MKV_EINVAL;
  case MONGOC_ERROR_COMMAND:
    /* libmongoc rejected the arguments itself, so nothing was sent. */
    if (cause->code == MONGOC_ERROR_COMMAND_INVALID_ARG)
      return MKV_EINVAL;
    return MKV_ESERVER;
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

/*
 * libmongoc 1.23 with OpenSSL reports a server certificate that does not
 * verify as "TLS handshake failed: certificate verify failed (N): ..." for
 * a wrong CA, or "... Failed certificate verification" for a host name
 * that the certificate does not name.
 */
static bool is_tls_verify_failure(const char *message) {
  return strstr(message, "certificate verify failed") != NULL ||
         strstr(message, "Failed certificate verification") != NULL;
}

static const char *status_hint(int status, const bson_error_t *cause) {
  if (status == MKV_ECONNECT && is_tls_verify_failure(cause->message))
    return "; TLS verification of the server's certificate failed: check "
           "that tlsCAFile in the URI names the CA that signed it, and that "
           "the certificate names the host in the URI";

  switch (status) {
  case MKV_ECONNECT:
    return "; check that the server in the URI is running and reachable";
  case MKV_ETIMEDOUT:
    return "; the server did not reply within socketTimeoutMS";
  default:
    return "";
  }
}

/*
 * Writes what an operation is for the start of an error message: `get key
 * "k"`, `set with a new key`, `purge` or `ping`.
 */
void mkv_describe_op(const mkv_op_t *op, char *out, size_t out_size) {
  char quoted[MKV_KEY_QUOTE_MAX + 8];
  const char *key = op->key_used != NULL ? op->key_used : op->key;

  if (key != NULL && !bson_utf8_validate(key, strlen(key), false)) {
    bson_snprintf(out, out_size, "%s with a key that is not UTF-8",
                  mkv_op_name(op->kind));
  } else if (key != NULL) {
    mkv_quote_key(key, quoted, sizeof quoted);
    bson_snprintf(out, out_size, "%s key \"%s\"", mkv_op_name(op->kind),
                  quoted);
  } else if (op->kind == MKV_OP_SET) {
    bson_snprintf(out, out_size, "set with a new key");
  } else {
    bson_snprintf(out, out_size, "%s", mkv_op_name(op->kind));
  }
}

/*
 * Fills `error` from an error that libmongoc reported for `op`, keeping
 * libmongoc's domain and code, and returns the matching status.
 */
int mkv_error_from_mongoc(const mkv_t *db, const mkv_op_t *op,
                          bson_error_t *error, const bson_error_t *cause) {
  char what[MKV_KEY_QUOTE_MAX + 32];
  char detail[sizeof cause->message];
  int status = status_from_mongoc(db, op, cause);

  if (error == NULL)
    return status;

  memcpy(detail, cause->message, sizeof detail);
  detail[sizeof detail - 1] = '\0';
  mkv_scrub(detail, sizeof detail, db->password);
  mkv_describe_op(op, what, sizeof what);

  if (op->kind == MKV_OP_PING)
    bson_set_error(error, cause->domain, cause->code, "ping failed: %s%s",
                   detail, status_hint(status, cause));
  else
    bson_set_error(error, cause->domain, cause->code, "%s in %s failed: %s%s",
                   what, db->namespace_quoted, detail,
                   status_hint(status, cause));
  mkv_error_scrub(error, db->password);
  mkv_repair_utf8(error->message);
  return status;
}
