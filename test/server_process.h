/*
 * A database server that one test program starts, kills and restarts on a
 * port and data folder of its own, so that it never disturbs the server
 * that the rest of the suite uses.
 *
 * The server is started from the shell command in MKV_TEST_SERVER_CMD, in
 * which every "{port}" becomes a free TCP port of 127.0.0.1 and every
 * "{dir}" a data folder made with mkdtemp(), in single quotes. The command
 * runs as `/bin/sh -c 'exec COMMAND'`, so the PID that posix_spawn()
 * returns is the server's own. Its output goes to server.log in the data
 * folder.
 */
#ifndef MKV_TEST_SERVER_PROCESS_H
#define MKV_TEST_SERVER_PROCESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The environment variable that contains the command template. */
#define SERVER_PROCESS_ENV "MKV_TEST_SERVER_CMD"

/* How long a started server may take to accept connections. */
#define SERVER_PROCESS_START_TIMEOUT_MS 30000

typedef struct {
  char dir[256];     /* data folder, removed by server_process_destroy() */
  char log[300];     /* server.log in dir, appended to by every start */
  char *command;     /* the template with {port} and {dir} filled in */
  int port;          /* on 127.0.0.1, kept across restarts */
  pid_t pid;         /* 0 while no server runs */
  uint64_t start_ms; /* when the running server was spawned */
} server_process_t;

/* The states that server_process_poll() returns. */
typedef enum {
  SERVER_STARTING, /* running, not yet accepting connections */
  SERVER_READY,    /* running and accepting connections */
  SERVER_EXITED,   /* exited on its own, or never ran */
} server_state_t;

/*
 * Returns MKV_TEST_SERVER_CMD, or prints how to set it and returns NULL
 * when it is unset or empty. Each main() calls it first.
 */
const char *server_process_command_template(void);

/*
 * Creates the data folder and picks a free port. Starts nothing. Fails the
 * test when MKV_TEST_SERVER_CMD is unset or the folder cannot be made.
 */
void server_process_init(server_process_t *server);

/*
 * Starts the server and waits, for at most SERVER_PROCESS_START_TIMEOUT_MS,
 * until its port accepts connections. Fails the test, with the end of the
 * server's log, when it exits or does not accept in time.
 */
void server_process_start(server_process_t *server);

/* Starts the server without waiting for it. */
void server_process_spawn(server_process_t *server);

/* Checks without blocking whether the spawned server accepts connections. */
server_state_t server_process_poll(server_process_t *server);

/*
 * Sends SIGKILL to the server and reaps it. Fails the test when it has not
 * exited within 10 s.
 */
void server_process_kill(server_process_t *server);

/* Kills the server if it runs and removes its data folder. */
void server_process_destroy(server_process_t *server);

/* Prints the end of the server's log, at most 4000 bytes, to stderr. */
void server_process_print_log(const server_process_t *server);

#endif /* MKV_TEST_SERVER_PROCESS_H */
