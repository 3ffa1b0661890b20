/* One run of a sandbox on a copy-on-write workspace, from start to end: the sandbox is
 * chosen (or named after the project), locked, snapshotted, and afterwards its changes are
 * counted and their bases kept for merges. */
#ifndef AB_SESSION_H
#define AB_SESSION_H

#include <stdint.h>
#include <sys/types.h>

#include "../shared/error.h"
#include "config.h"
#include "workspace.h"

struct ab_session {
	struct ab_workspace ws;
	int run_lock_fd; /* held for the whole run: one run per sandbox at a time */
	char *auto_snapshot;
	bool auto_reused;   /* the newest snapshot stands for this run's automatic one */
	int64_t started_ns; /* wall clock when the run began */
	bool have_start_fingerprint;
	uint64_t start_fingerprint; /* upper's, when the run began (fingerprint.h) */
	bool recorded_valid;        /* ... as the last recorded end left it (no walk needed) */
	size_t recorded_changes;    /* the changes that end counted */
	bool upper_empty;           /* without a record: upper held no change at all */
	pid_t init_pid;     /* the sandbox's init, once started */
	bool layered;       /* the run writes to its own layer over upper (layer.h) */
	bool work_aside;    /* the last mount's work directory is set aside, to be removed */
};

/* Picks the sandbox (cfg->name, or the project's directory name, made unique), opens or
 * creates it, takes the locks, and points cfg's overlay directories at it. Sets cfg->name
 * when it was chosen here. */
int ab_session_begin(struct ab_config *cfg, struct ab_session *s, struct ab_error *err);
/* Takes the automatic snapshot and drops the oldest ones. Called while the sandbox builds
 * its root (the hook `prepare` of ab_sandbox_run), before its command may run: the work
 * overlaps the setup. */
int ab_session_prepare(struct ab_session *s, struct ab_error *err);
/* Records the running sandbox's init, so snapshots can freeze it. */
void ab_session_started(struct ab_session *s, pid_t init_pid);
/* Ends the run: folds the run's layer into upper, records the host's side and keeps the
 * bases of what changed, and counts the changes; nothing to do when the run wrote nothing
 * and upper is as the last recorded end left it. The record of the run's processes stays:
 * its init may still be ending (see ab_workspace_running). */
int ab_session_end(struct ab_session *s, size_t *n_changes, struct ab_error *err);
void ab_session_close(struct ab_session *s);

/* The masks a sandbox ran with, kept so that apply never writes a masked path. */
int ab_session_save_masks(const struct ab_workspace *ws, char *const *masks, size_t n, struct ab_error *err);
int ab_session_load_masks(const struct ab_workspace *ws, char ***masks, size_t *n, struct ab_error *err);

#endif
