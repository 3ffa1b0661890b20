/* One run of a sandbox from the claim of its name to its record: the state directory, the
 * cgroup and its limits, the copy-on-write session, the sandbox itself (in the foreground,
 * or under a supervisor of its own with -d), and how it ended. */
#ifndef AB_LIFECYCLE_H
#define AB_LIFECYCLE_H

#include <stdbool.h>

#include "../shared/error.h"
#include "config.h"
#include "features.h"
#include "seccomp.h"

struct ab_run_outcome {
	char name[AB_MAX_NAME_LEN + 1];
	char reason[16];      /* "exited", "signal", "oom", "timeout", "stopped", "killed" */
	size_t n_changes;     /* copy-on-write: changes kept in the sandbox (counted unless quiet) */
	char limits_why[256]; /* how the limits were enforced (empty without limits) */
	bool detached;        /* -d: the supervisor runs it; nothing else is filled */
};

/* cfg is parsed and checked (features probed, seccomp prepared, masks found). run_args
 * are the arguments that followed "run" (recorded so that exec rebuilds the same
 * confinement). Returns < 0 with err set when agentbox failed (exit 125); otherwise
 * *exit_code is the command's status and out says how it ended (err may still hold a
 * message about the command, e.g. not found). */
int ab_lifecycle_run(struct ab_config *cfg, const struct ab_features *features, const struct ab_seccomp_set *seccomp,
		     int n_run_args, char **run_args, int *exit_code, struct ab_run_outcome *out,
		     struct ab_error *err);

#endif
