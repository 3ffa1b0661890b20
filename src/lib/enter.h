/* THE ordered hardening pipeline. Building the sandbox (its network, root, host name and
 * terminal) is done once, by the sandbox's init right after clone; confining a process
 * (capabilities, identity, no_new_privs, Landlock, seccomp) is done by that init and again
 * by every process that joins the sandbox later (agentbox exec), in the same order. */
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

/* Builds the sandbox (steps 1-4), then confines the caller (ab_confine, steps 5-11).
 * On success the caller is confined exactly as the command will be, and *pty_slave is the
 * terminal's slave side (or -1). On failure the caller must report err and exit. */
int ab_enter_sandbox(const struct ab_enter_plan *plan, int *pty_slave, struct ab_error *err);

/* Confines the calling process as a sandbox's command is confined (steps 5-11): bounding
 * set emptied and securebits locked, the sandbox user (cfg), every capability cleared,
 * parent-death signal and not dumpable, no_new_privs, Landlock (landlock_abi > 0) and the
 * seccomp filter last (sc NULL: none). The caller must already be in the sandbox's user
 * namespace with CAP_SETPCAP there, and in its mount namespace (the Landlock rules name
 * paths inside). parent_check_fd: a socket whose peer is agentbox; the confinement fails
 * when agentbox is gone by the time the death signal is set (-1: no check). After the
 * first irreversible step any failure is fatal: the caller must report err and exit. */
int ab_confine(const struct ab_config *cfg, const struct ab_seccomp_set *sc, int landlock_abi,
	       int parent_check_fd, struct ab_error *err);

/* Step 4 on its own, for a process joining a running sandbox: opens a terminal in the
 * sandbox's own devpts (the caller is in its mount namespace, before any filter), sends
 * the master side to agentbox over sync_fd (AB_SYNC_PTY) and returns the slave side in
 * *slave_out. */
int ab_open_terminal(int sync_fd, int *slave_out, struct ab_error *err);

#endif
