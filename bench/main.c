/*
 * mkv-bench: one benchmark run per process, configured by its arguments,
 * against the server in MKV_URI. bench/run.py runs it many times and
 * writes bench/README.md from the JSON lines it prints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static void usage(void) {
  fprintf(stderr,
          "usage: mkv-bench MODE [OPTIONS]\n"
          "modes: sync, async, count, reset, all-load, all\n"
          "options:\n"
          "  --impl mkv|libmongoc  what runs the operations (default mkv)\n"
          "  --op set|get|remove   the operation (default get)\n"
          "  --large               16 KiB values in place of small ones\n"
          "  --threads N           sync: threads sharing one store (1)\n"
          "  --in-flight N         async: operations in flight, or 0 for\n"
          "                        the stall timer alone (1)\n"
          "  --ops N               stop after N operations (1000)\n"
          "  --seconds S           or after S seconds (1.0)\n"
          "  --keys N              keys loaded before the run (200)\n"
          "  --call-all            all: call mkv_all (else only connect)\n"
          "MKV_URI names the server.\n");
}

/*
 * Passes on libmongoc's errors and drops its warnings, such as the one
 * that FerretDB's missing endSessions command causes at every close.
 */
static void log_errors_only(mongoc_log_level_t level, const char *domain,
                            const char *message, void *data) {
  (void)data;
  if (level <= MONGOC_LOG_LEVEL_ERROR)
    fprintf(stderr, "mkv-bench: libmongoc %s: %s\n", domain, message);
}

static bool parse_op(const char *text, bench_op_t *op) {
  if (strcmp(text, "set") == 0)
    *op = BENCH_SET;
  else if (strcmp(text, "get") == 0)
    *op = BENCH_GET;
  else if (strcmp(text, "remove") == 0)
    *op = BENCH_REMOVE;
  else
    return false;
  return true;
}

/* Parses one "--name value" or "--flag" at argv[*i], or returns false. */
static bool parse_option(int argc, char **argv, int *i,
                         bench_config_t *config) {
  const char *name = argv[*i];
  const char *arg = *i + 1 < argc ? argv[*i + 1] : NULL;

  if (strcmp(name, "--large") == 0) {
    config->large = true;
    return true;
  }
  if (strcmp(name, "--call-all") == 0) {
    config->call_all = true;
    return true;
  }
  if (arg == NULL)
    return false;
  (*i)++;
  if (strcmp(name, "--impl") == 0)
    config->impl = arg;
  else if (strcmp(name, "--op") == 0)
    return parse_op(arg, &config->op);
  else if (strcmp(name, "--threads") == 0)
    config->threads = (unsigned)strtoul(arg, NULL, 10);
  else if (strcmp(name, "--in-flight") == 0)
    config->in_flight = (unsigned)strtoul(arg, NULL, 10);
  else if (strcmp(name, "--ops") == 0)
    config->max_ops = strtoull(arg, NULL, 10);
  else if (strcmp(name, "--seconds") == 0)
    config->max_seconds = strtod(arg, NULL);
  else if (strcmp(name, "--keys") == 0)
    config->keys = (unsigned)strtoul(arg, NULL, 10);
  else
    return false;
  return true;
}

static bool config_valid(const bench_config_t *config) {
  if (bench_find_impl(config->impl) == NULL)
    return false;
  if (config->threads == 0 || config->max_ops == 0 ||
      config->max_seconds <= 0 || config->keys == 0)
    return false;
  /* async with 0 in flight runs the stall timer alone on an idle loop. */
  if (config->in_flight == 0 && strcmp(config->mode, "async") != 0)
    return false;
  /* remove deletes each loaded key once. */
  return config->op != BENCH_REMOVE || config->max_ops <= config->keys;
}

int main(int argc, char **argv) {
  bench_config_t config = {.impl = "mkv",
                           .op = BENCH_GET,
                           .threads = 1,
                           .in_flight = 1,
                           .max_ops = 1000,
                           .max_seconds = 1.0,
                           .keys = 200};
  int i;

  if (argc < 2) {
    usage();
    return 2;
  }
  config.mode = argv[1];
  for (i = 2; i < argc; i++) {
    if (!parse_option(argc, argv, &i, &config)) {
      fprintf(stderr, "mkv-bench: invalid option or value: %s\n", argv[i]);
      usage();
      return 2;
    }
  }
  if (!config_valid(&config)) {
    fprintf(stderr, "mkv-bench: invalid combination of options; remove "
                    "needs --ops no larger than --keys, counts must be above "
                    "0, and only async takes --in-flight 0\n");
    return 2;
  }
  config.uri = getenv("MKV_URI");
  if (config.uri == NULL) {
    fprintf(stderr, "mkv-bench: MKV_URI is not set; set it to the "
                    "mongodb:// URI of the server to measure\n");
    return 2;
  }

  mongoc_log_set_handler(log_errors_only, NULL);
  if (strcmp(config.mode, "sync") == 0)
    return bench_sync(&config);
  if (strcmp(config.mode, "async") == 0)
    return bench_async(&config);
  if (strcmp(config.mode, "count") == 0)
    return bench_count(&config);
  if (strcmp(config.mode, "reset") == 0)
    return bench_reset(&config);
  if (strcmp(config.mode, "all-load") == 0)
    return bench_all_load(&config);
  if (strcmp(config.mode, "all") == 0)
    return bench_all(&config);
  fprintf(stderr, "mkv-bench: unknown mode \"%s\"\n", config.mode);
  usage();
  return 2;
}
