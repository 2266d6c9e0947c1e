/* Starts, kills and restarts a test program's own database server. */

/* nftw() is an XSI function. */
#define _XOPEN_SOURCE 700

#include "server_process.h"

#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

extern char **environ;

/* How long a killed server may take to be reaped. */
#define KILL_TIMEOUT_MS 10000

/* How often server_process_start() checks the port. */
#define POLL_INTERVAL_MS 20

/* Bytes of the log that server_process_print_log() shows. */
#define LOG_TAIL_BYTES 4000

/* The server that runs now, which the exit handler kills. */
static server_process_t *live_server;
static bool exit_handler_set;

/*
 * Kills a server that a failed test left running. cmocka ends a failed
 * test with longjmp() into its runner, which then calls the teardown, so
 * this is only for an exit that skips the teardown. A timeout of meson
 * test signals the whole process group, which includes the server.
 */
static void kill_live_server(void) {
  if (live_server != NULL && live_server->pid > 0) {
    kill(live_server->pid, SIGKILL);
  }
}

const char *server_process_command_template(void) {
  const char *command = getenv(SERVER_PROCESS_ENV);

  if (command == NULL || command[0] == '\0') {
    fprintf(stderr,
            "%s is not set: set it to a shell command that starts a "
            "MongoDB-compatible server on 127.0.0.1, in which {port} and "
            "{dir} are replaced by a free port and a data folder, such as "
            "'mongod --bind_ip 127.0.0.1 --port {port} --dbpath {dir}'. "
            "scripts/dev test sets it for its FerretDB server.\n",
            SERVER_PROCESS_ENV);
    return NULL;
  }
  return command;
}

/*
 * Returns `template` with every {port} and {dir} replaced, for bson_free().
 * The folder goes in single quotes, so that the shell takes it as one word
 * even in a TMPDIR with spaces.
 */
static char *fill_template(const char *template, int port, const char *dir) {
  bson_string_t *out = bson_string_new(NULL);
  const char *at = template;

  while (*at != '\0') {
    if (strncmp(at, "{port}", 6) == 0) {
      bson_string_append_printf(out, "%d", port);
      at += 6;
    } else if (strncmp(at, "{dir}", 5) == 0) {
      bson_string_append_printf(out, "'%s'", dir);
      at += 5;
    } else {
      bson_string_append_c(out, *at);
      at++;
    }
  }
  return bson_string_free(out, false);
}

void server_process_init(server_process_t *server) {
  const char *template = server_process_command_template();
  const char *tmp = getenv("TMPDIR");

  memset(server, 0, sizeof *server);
  if (template == NULL) {
    fail_msg("%s is not set", SERVER_PROCESS_ENV);
  }
  if (tmp == NULL || tmp[0] == '\0') {
    tmp = "/tmp";
  }
  if (strchr(tmp, '\'') != NULL) {
    fail_msg("TMPDIR \"%s\" contains a single quote, which the server "
             "command cannot contain; set TMPDIR to another folder",
             tmp);
  }
  snprintf(server->dir, sizeof server->dir, "%s/mkv-server.XXXXXX", tmp);
  if (mkdtemp(server->dir) == NULL) {
    fail_msg("mkdtemp(%s) failed: %s", server->dir, strerror(errno));
  }
  snprintf(server->log, sizeof server->log, "%s/server.log", server->dir);
  server->port = test_closed_port();
  server->command = fill_template(template, server->port, server->dir);
}

void server_process_spawn(server_process_t *server) {
  posix_spawn_file_actions_t actions;
  char *script = bson_strdup_printf("exec %s", server->command);
  char *argv[] = {(char *)"/bin/sh", (char *)"-c", script, NULL};
  int error;

  assert_int_equal(server->pid, 0);
  assert_int_equal(posix_spawn_file_actions_init(&actions), 0);
  assert_int_equal(
      posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0),
      0);
  assert_int_equal(
      posix_spawn_file_actions_addopen(&actions, 1, server->log,
                                       O_WRONLY | O_CREAT | O_APPEND, 0644),
      0);
  assert_int_equal(posix_spawn_file_actions_adddup2(&actions, 1, 2), 0);

  if (!exit_handler_set) {
    assert_int_equal(atexit(kill_live_server), 0);
    exit_handler_set = true;
  }
  error = posix_spawn(&server->pid, "/bin/sh", &actions, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  bson_free(script);
  if (error != 0) {
    server->pid = 0;
    fail_msg("posix_spawn of /bin/sh for \"%s\" failed: %s", server->command,
             strerror(error));
  }
  server->start_ms = test_now_ms();
  live_server = server;
}

/* Returns true when something accepts TCP connections on the port. */
static bool port_accepts(int port) {
  struct sockaddr_in address = {0};
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  bool accepted;

  assert_true(fd >= 0);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons((uint16_t)port);
  accepted = connect(fd, (struct sockaddr *)&address, sizeof address) == 0;
  close(fd);
  return accepted;
}

/* Reaps the server if it has exited, and returns true when it has. */
static bool reap_if_exited(server_process_t *server) {
  int wait_status;
  pid_t reaped;

  if (server->pid == 0) {
    return true;
  }
  reaped = waitpid(server->pid, &wait_status, WNOHANG);
  if (reaped == 0) {
    return false;
  }
  server->pid = 0;
  return true;
}

server_state_t server_process_poll(server_process_t *server) {
  if (reap_if_exited(server)) {
    return SERVER_EXITED;
  }
  if (!port_accepts(server->port)) {
    return SERVER_STARTING;
  }
  /* Whatever accepted may be another process that took the port. */
  return reap_if_exited(server) ? SERVER_EXITED : SERVER_READY;
}

void server_process_start(server_process_t *server) {
  server_state_t state = SERVER_STARTING;

  server_process_spawn(server);
  while (state == SERVER_STARTING &&
         test_now_ms() - server->start_ms < SERVER_PROCESS_START_TIMEOUT_MS) {
    uv_sleep(POLL_INTERVAL_MS);
    state = server_process_poll(server);
  }
  if (state == SERVER_READY) {
    return;
  }

  server_process_print_log(server);
  if (state == SERVER_EXITED) {
    fail_msg("the server exited before it accepted connections on "
             "127.0.0.1:%d; command: %s",
             server->port, server->command);
  }
  fail_msg("the server did not accept connections on 127.0.0.1:%d within "
           "%d ms; command: %s",
           server->port, SERVER_PROCESS_START_TIMEOUT_MS, server->command);
}

void server_process_kill(server_process_t *server) {
  uint64_t start_ms = test_now_ms();

  if (server->pid == 0) {
    return;
  }
  assert_int_equal(kill(server->pid, SIGKILL), 0);
  while (!reap_if_exited(server)) {
    if (test_now_ms() - start_ms > KILL_TIMEOUT_MS) {
      fail_msg("server pid %ld did not exit within %d ms of SIGKILL",
               (long)server->pid, KILL_TIMEOUT_MS);
    }
    uv_sleep(POLL_INTERVAL_MS);
  }
}

static int remove_entry(const char *path, const struct stat *info, int type,
                        struct FTW *ftw) {
  (void)info;
  (void)type;
  (void)ftw;
  if (remove(path) != 0) {
    print_error("removing %s failed: %s\n", path, strerror(errno));
  }
  return 0;
}

void server_process_destroy(server_process_t *server) {
  if (server->pid > 0) {
    kill(server->pid, SIGKILL);
    waitpid(server->pid, NULL, 0);
    server->pid = 0;
  }
  if (live_server == server) {
    live_server = NULL;
  }
  if (server->dir[0] != '\0') {
    nftw(server->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    server->dir[0] = '\0';
  }
  bson_free(server->command);
  server->command = NULL;
}

void server_process_print_log(const server_process_t *server) {
  char tail[LOG_TAIL_BYTES + 1];
  FILE *file = fopen(server->log, "r");
  size_t read;

  if (file == NULL) {
    print_error("cannot open the server log %s: %s\n", server->log,
                strerror(errno));
    return;
  }
  if (fseek(file, -LOG_TAIL_BYTES, SEEK_END) != 0) {
    rewind(file);
  }
  read = fread(tail, 1, LOG_TAIL_BYTES, file);
  tail[read] = '\0';
  fclose(file);
  print_error("end of %s:\n%s\n", server->log, tail);
}
