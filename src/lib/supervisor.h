/* The supervisor of a detached sandbox: one small process per sandbox (no daemon shared
 * between sandboxes). It owns the sandbox's terminal, records everything the terminal
 * shows in asciicast v2 (bounded), serves attach clients on a unix socket in the
 * sandbox's state directory (one writer, many readers), forwards signals, stops the
 * sandbox at its timeout, and returns the exit status for the caller to record. */
#ifndef AB_SUPERVISOR_H
#define AB_SUPERVISOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../shared/error.h"

/* What the terminal recording may take on disk per sandbox. */
#define AB_CAST_MAX_BYTES (32ULL << 20)
#define AB_CAST_FILE "output.cast"
#define AB_ATTACH_SOCKET "attach.sock"

struct ab_cast_writer;
struct ab_attach_server;

struct ab_supervisor {
	struct ab_cast_writer *cast;
	struct ab_attach_server *attach;
	uint64_t timeout_ms;
	uint64_t grace_ms;
	bool timed_out; /* out: --timeout stopped it */
	bool stopped;   /* out: a stop (SIGTERM to the supervisor) stopped it */
};

/* Opens the recording and the attach socket in dir (the sandbox's state directory). */
int ab_supervisor_open(struct ab_supervisor *sv, const char *dir, unsigned cols, unsigned rows,
		       struct ab_error *err);
/* The loop, for ab_run_hooks.supervise (data: the struct ab_supervisor). */
int ab_supervisor_loop(pid_t init_pid, int sfd, int master, void *data);
/* Tells attached clients how it ended, then closes the socket and the recording. */
void ab_supervisor_close(struct ab_supervisor *sv, int exit_code, const char *reason);

#endif
