/* Starting a sandbox: clone into new namespaces, write the id maps, follow the typed
 * messages from its init, relay the terminal and signals, and return the exit status. */
#ifndef AB_SPAWN_H
#define AB_SPAWN_H

#include "../shared/error.h"
#include "config.h"
#include "features.h"
#include "seccomp.h"

/* Runs cfg->argv in a new sandbox and waits for it. *exit_code gets the command's status
 * (128+N for a signal, 126/127 when it could not be executed). Returns < 0 with err set
 * when agentbox itself failed (exit 125), and then *exit_code is untouched. When the
 * command could not be executed, err also holds the reason and the return is 0. */
struct ab_run_hooks {
	/* Called in agentbox while the sandbox builds its root, before its command may run:
	 * work that must precede the command (the automatic snapshot) overlaps the setup
	 * instead of adding to it. A failure stops the sandbox; err says why. */
	int (*prepare)(pid_t init_pid, void *data, struct ab_error *err);
	/* Called in agentbox once the command runs, with the host pid of the sandbox's init. */
	void (*started)(pid_t init_pid, void *data);
	void *data;
};

int ab_sandbox_run(const struct ab_config *cfg, const struct ab_features *features,
		   const struct ab_seccomp_set *seccomp, const struct ab_run_hooks *hooks, int *exit_code,
		   struct ab_error *err);

#endif
