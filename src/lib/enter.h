/* THE ordered hardening pipeline, run by the sandbox's init right after clone. */
#ifndef AB_ENTER_H
#define AB_ENTER_H

#include "../shared/error.h"
#include "config.h"
#include "seccomp.h"

struct ab_enter_plan {
	const struct ab_config *cfg;
	const struct ab_seccomp_set *seccomp; /* built by the parent before clone */
	int landlock_abi;                     /* 0: the kernel has none (already reported) */
	int sync_fd;
	bool use_tty;
};

/* On success the caller is confined exactly as the command will be, and *pty_slave is the
 * terminal's slave side (or -1). On failure the caller must report err and exit. */
int ab_enter_sandbox(const struct ab_enter_plan *plan, int *pty_slave, struct ab_error *err);

#endif
