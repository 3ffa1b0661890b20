/* Starting a sandbox: clone into new namespaces, write the id maps, follow the typed
 * messages from its init, relay the terminal and signals, and return the exit status. */
#ifndef AB_SPAWN_H
#define AB_SPAWN_H

#include <stdbool.h>

#include "../proxy/proxy.h"
#include "../shared/error.h"
#include "config.h"
#include "features.h"
#include "seccomp.h"

/* Runs cfg->argv in a new sandbox and waits for it. *exit_code gets the command's status
 * (128+N for a signal, 126/127 when it could not be executed). Returns < 0 with err set
 * when agentbox itself failed (exit 125), and then *exit_code is untouched. When the
 * command could not be executed, err also holds the reason and the return is 0. */
struct ab_run_hooks {
	/* Called in agentbox after the id maps are written and before the sandbox does
	 * anything: the place to put its init into the sandbox's cgroup. */
	int (*placed)(pid_t init_pid, void *data, struct ab_error *err);
	/* Called in agentbox while the sandbox builds its root, before its command may run:
	 * work that must precede the command (the automatic snapshot) overlaps the setup
	 * instead of adding to it. A failure stops the sandbox; err says why. */
	int (*prepare)(pid_t init_pid, void *data, struct ab_error *err);
	/* Called in agentbox with a filtered network (AB_NETWORK_FILTERED) once the sandbox's
	 * init has loaded its filter and made the proxy's listeners in its network namespace,
	 * and before the command may run: the place to hand them to the egress proxy. listeners[0..n)
	 * (at most AB_PROXY_MAX_LISTENERS, each checked to be a socket of its kind and family)
	 * become the hook's own, to close or to pass on, whether it succeeds or fails. A
	 * failure stops the sandbox as prepare's does; err says why. Without the hook the
	 * listeners are closed, and the sandbox has no way out at all. */
	int (*net_ready)(pid_t init_pid, struct ab_proxy_listener *listeners, size_t n, void *data,
			 struct ab_error *err);
	/* Called in agentbox once the command runs, with the host pid of the sandbox's init. */
	void (*started)(pid_t init_pid, void *data);
	/* When set, follows the sandbox instead of the built-in relay to agentbox's own
	 * terminal (a detached sandbox's supervisor): sfd is the signalfd (SIGCHLD and the
	 * forwarded signals), master the terminal's master or -1. Returns the exit status. */
	int (*supervise)(pid_t init_pid, int sfd, int master, void *data);
	void *data;
	/* Set when --timeout stopped the sandbox (built-in relay only; a custom supervise
	 * keeps its own). */
	bool timed_out;
	/* With --disk-limit and a copy-on-write workspace, the sandbox's changes live in its own
	 * tmpfs: a descriptor of them arrives here (initialize to -1; the caller closes it). */
	int disk_upper_fd;
};

int ab_sandbox_run(const struct ab_config *cfg, const struct ab_features *features,
		   const struct ab_seccomp_set *seccomp, struct ab_run_hooks *hooks, int *exit_code,
		   struct ab_error *err);

#endif
