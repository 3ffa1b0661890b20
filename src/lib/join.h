/* agentbox exec: another command in a running sandbox, confined exactly as the sandbox's own
 * command is. It joins the sandbox's namespaces and cgroup instead of building anything, so
 * it skips all mount work; then the same confinement pipeline runs (ab_confine, enter.h).
 *
 * The processes:
 *
 *   agentbox exec ──clone(VM|VFORK)──> joiner ──clone(VM|VFORK|PARENT|PIDFD)──> command
 *   relays the terminal,     cgroup.procs "0", setns: user     in the sandbox's pid namespace:
 *   forwards signals,        first, then mnt pid ipc uts net   terminal, ab_confine, chdir,
 *   waits (command's pidfd)  cgroup; rlimits; exits            execve
 *
 * The joiner cannot run the command itself: a process's own pid namespace never changes,
 * setns(CLONE_NEWPID) only places its children. CLONE_PARENT makes the command a child of
 * agentbox, so the joiner exits at once and agentbox waits on the command directly. Both
 * share agentbox's memory until they exit or execve, as posix_spawn's child does: no page
 * table is copied, and each runs while its creator sleeps (see join.c).
 *
 * Where the namespaces come from: the sandbox's init when agentbox may inspect it (root).
 * An unprivileged caller may not: init never execs, so its memory belongs to the host's
 * user namespace, and being not dumpable it can be inspected only with CAP_SYS_PTRACE
 * there. Then they are taken from one of init's children (the sandbox's command), whose
 * memory belongs to the sandbox's user namespace, which the caller owns. Either way they
 * are checked before use: the user namespace must be a child of ours, and every other
 * namespace either ours (the host's network with --network host, never when the
 * configuration says "none" or "filtered") or owned by that user namespace. Only a process with
 * CAP_SYS_ADMIN in the sandbox's user namespace can create a namespace owned by it, and
 * after setup none exists (every capability is dropped for good), so what passes is the
 * sandbox's own and never one that the sandbox made for itself. */
#ifndef AB_JOIN_H
#define AB_JOIN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "../shared/error.h"
#include "config.h"
#include "seccomp.h"

struct ab_exec_request {
	const struct ab_config *cfg;         /* the running sandbox's own config (re-parsed by the CLI
					      * from the sandbox's recorded run arguments); cfg->argv is
					      * ignored */
	char **argv;                         /* the command to run, NULL-terminated */
	char **env;                          /* its whole environment, NULL-terminated (the CLI builds
					      * it from cfg->env plus exec's -e) */
	const char *cwd;                     /* inside the sandbox; NULL = cfg->workspace_dest */
	pid_t init_pid;                      /* host pid of the sandbox's init (its PID 1) */
	char *const *cgroup_procs;           /* cgroup.procs files to join (the joining process writes
					      * "0" into each, before setns), may be NULL */
	size_t n_cgroup_procs;
	bool tty;                            /* a terminal in the sandbox's own devpts, relayed like run
					      * does */
	int landlock_abi;                    /* from ab_features */
	const struct ab_seccomp_set *seccomp; /* NULL: none (only when the sandbox had none) */
};

/* Runs req->argv in the running sandbox and waits for it. *exit_code gets the command's
 * status like run (128+N for a signal; 126/127 when it cannot be executed / is not found,
 * and then err also holds the reason and the return is 0). Returns < 0 with err set when
 * agentbox itself failed (exit 125), and then *exit_code is untouched: the sandbox is not
 * running (-ESRCH, "sandbox is not running ..."), a namespace or cgroup cannot be joined,
 * the confinement failed. The command gets the sandbox's rlimits (cfg->limits and
 * cfg->limits_mode, as its init took them) besides its cgroup. Signals sent to
 * agentbox (INT, TERM, HUP, QUIT, USR1, USR2, WINCH, CONT) are forwarded to the command;
 * with req->tty the caller's terminal is relayed as run does.
 *
 * The command dies with the sandbox (the end of its pid namespace kills it) and with the
 * caller (parent-death signal). Like the sandbox's command it starts a session of its own,
 * has stdin, stdout and stderr of the caller (or the terminal) and no other descriptor.
 *
 * One difference with the sandbox's own processes remains: Landlock gives the command a
 * domain of its own (the kernel cannot add a process to an existing one), with the same
 * rules; where Landlock scopes signals and abstract sockets (ABI 6), the command and the
 * sandbox's other processes cannot signal each other or meet on abstract sockets. */
int ab_sandbox_exec(const struct ab_exec_request *req, int *exit_code, struct ab_error *err);

#endif
