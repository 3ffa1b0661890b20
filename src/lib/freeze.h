/* Holding every process of a running sandbox still while its upper directory is copied.
 *
 * A sandbox is a pid namespace: its processes are those whose /proc/PID/ns/pid is the
 * namespace of its init (or a namespace nested beneath it). Each gets SIGSTOP through a
 * pidfd, so a pid reused by an unrelated process is never signalled; a cgroup freezer can
 * replace this file later without changing its callers. */
#ifndef AB_FREEZE_H
#define AB_FREEZE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "../shared/error.h"

#define AB_FREEZE_MAX_PROCS 65536
#define AB_FREEZE_TIMEOUT_MS 2000

struct ab_frozen_proc {
	pid_t pid;
	int pidfd;
	bool was_stopped; /* already stopped before us: left stopped on thaw */
};

struct ab_frozen {
	struct ab_frozen_proc *procs;
	size_t n;
};

/* Stops init_pid and every process of its pid namespace, and waits (bounded) until each
 * is stopped; repeats until a scan finds no new process. On failure everything stopped
 * so far is resumed and f is left empty. */
int ab_freeze_sandbox(pid_t init_pid, struct ab_frozen *f, struct ab_error *err);
/* Resumes what ab_freeze_sandbox stopped and frees f; accepts an empty or zeroed f. */
void ab_thaw_sandbox(struct ab_frozen *f);

#endif
