/* The runtime state of sandboxes: one directory per sandbox under the run root
 * (/run/agentbox for root, $XDG_RUNTIME_DIR/agentbox otherwise), holding state.json
 * (replaced whole by rename, never edited in place), a lock, the attach socket and the
 * terminal recording. Persistent data (workspace changes) lives in the data root instead
 * (see workspace.h). Readers never need the lock; writers take it. */
#ifndef AB_STATE_H
#define AB_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../shared/error.h"
#include "config.h"

struct json_object;

enum ab_status {
	AB_STATUS_CREATED, /* being set up */
	AB_STATUS_RUNNING,
	AB_STATUS_EXITED,
	AB_STATUS_DEAD, /* never written: recorded as running or created, but its supervisor is gone */
};

struct ab_state {
	char *name;
	enum ab_status status;
	bool detached;
	bool tty;
	char **command;  /* NULL-terminated */
	char **run_args; /* what followed "run" on the command line: exec rebuilds the config from it */
	char *cwd;       /* where `run` was started (the arguments are relative to it) */
	char *workspace;
	char *workspace_mode; /* "cow", "rw", "ro" */
	int64_t created_ns, started_ns, finished_ns; /* wall clock */
	pid_t supervisor_pid;  /* agentbox itself for a foreground run */
	pid_t init_pid;
	uint64_t init_start; /* the init's start time (/proc/PID/stat), against pid reuse */
	int exit_code;       /* -1 while not exited */
	char *reason;        /* "exited", "signal", "oom", "timeout", "stopped", "killed", "lost" */
	bool stop_requested, kill_requested;
	struct ab_limits limits;
	struct json_object *cgroup;   /* ab_cgroup_to_json's object, or NULL */
	unsigned enforced_layers;     /* enum ab_layer bits */
	char *seccomp_summary;
};

/* The run root, created (0700, owned by the caller) when missing. AGENTBOX_RUN_DIR
 * overrides it (tests). */
int ab_run_root(char **out, struct ab_error *err);
/* The directory of a sandbox's state (not checked for existence). */
int ab_state_dir(const char *name, char **out, struct ab_error *err);

/* Claims name for a new run: creates its directory, or takes over the record of a run of
 * that name that is over (exited or dead). Fails when one is running. Returns the lock's
 * fd (exclusive; the caller keeps it while it writes the first state). */
int ab_state_claim(const char *name, struct ab_error *err);
int ab_state_save(const struct ab_state *st, struct ab_error *err);
/* Loads name's state; "unknown sandbox" when there is none. The status is corrected to
 * AB_STATUS_DEAD when the record says running but its processes are gone. */
int ab_state_load(const char *name, struct ab_state *st, struct ab_error *err);
/* Sandbox names with a state directory, sorted. */
int ab_state_list(char ***names, size_t *n, struct ab_error *err);
/* Takes the sandbox's state lock; returns its fd. */
int ab_state_lock(const char *name, bool exclusive, struct ab_error *err);
/* Removes the state directory (the caller holds the lock and checked it is not running). */
int ab_state_remove(const char *name, struct ab_error *err);
/* Removes the record but keeps the file named keep (a foreground run's network log):
 * the directory stays only when that file is there. */
int ab_state_remove_keeping(const char *name, const char *keep, struct ab_error *err);
/* Updates one record under the lock: load, fn, save. */
int ab_state_update(const char *name, void (*fn)(struct ab_state *st, void *ctx), void *ctx, struct ab_error *err);
void ab_state_free(struct ab_state *st);

const char *ab_status_name(enum ab_status s);
/* Start time of pid from /proc (0 when gone), and whether pid is still the process that
 * had that start time. */
uint64_t ab_proc_start_time(pid_t pid);
bool ab_proc_is(pid_t pid, uint64_t start_time);
int64_t ab_now_ns(void);

#endif
