#include "join.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#endif

#include "../shared/cleanup.h"
#include "cgroup.h"
#include "enter.h"
#include "init.h"
#include "pty.h"
#include "sync.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#define AB_P_PIDFD ((idtype_t)3) /* waitid on a pidfd (Linux 5.4); glibc 2.36 has no name for it */

extern char **environ;

/* ---- the sandbox's namespaces ------------------------------------------------------- */

enum { NS_USER, NS_MNT, NS_PID, NS_IPC, NS_UTS, NS_NET, NS_CGROUP, NS_N };

static const struct {
	const char *name; /* under /proc/PID/ns/ */
	int type;
	bool always; /* every sandbox has its own; the others may be the host's */
} ns_table[NS_N] = {
	/* The user namespace first: the others are owned by it, and joining them needs the
	 * capabilities that joining it gives. */
	[NS_USER] = { "user", CLONE_NEWUSER, true },
	[NS_MNT] = { "mnt", CLONE_NEWNS, true },
	[NS_PID] = { "pid", CLONE_NEWPID, true },
	[NS_IPC] = { "ipc", CLONE_NEWIPC, true },
	[NS_UTS] = { "uts", CLONE_NEWUTS, true },
	[NS_NET] = { "net", CLONE_NEWNET, false },          /* --network host: the host's */
	[NS_CGROUP] = { "cgroup", CLONE_NEWCGROUP, false }, /* kernels without cgroup namespaces */
};

/* One descriptor per namespace to join; -1 where the sandbox shares ours. */
struct ns_handles {
	int fd[NS_N];
};

static void ns_handles_close(struct ns_handles *h)
{
	for (int i = 0; i < NS_N; i++)
		if (h->fd[i] >= 0) {
			close(h->fd[i]);
			h->fd[i] = -1;
		}
}

static int pidfd_open_pid(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* A pidfd turns readable when its process has exited (a zombie included). */
static bool process_alive(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return poll(&p, 1, 0) == 0;
}

static int read_small(const char *path, char *buf, size_t size)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	do
		n = read(fd, buf, size - 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/* -ESRCH, which callers may tell apart from the other failures. */
static int sandbox_not_running(pid_t init_pid, struct ab_error *err)
{
	ab_error_set(err, 0, "sandbox is not running (its init, pid %d, is gone)", (int)init_pid);
	return -ESRCH;
}

/* A pidfd for the sandbox's init, checked to be one: a reused pid is not taken for it. */
static int open_init(pid_t init_pid, int *pidfd_out, struct ab_error *err)
{
	_cleanup_close_ int pidfd = -1;
	char path[64], comm[64];

	if (init_pid <= 0)
		return ab_error_set(err, EINVAL, "invalid init pid %d", (int)init_pid);
	pidfd = pidfd_open_pid(init_pid);
	if (pidfd < 0) {
		if (errno == ESRCH)
			return sandbox_not_running(init_pid, err);
		return ab_error_set(err, errno, "cannot open the sandbox's init (pid %d)", (int)init_pid);
	}
	/* Read after the pidfd pins the process, checked alive after: the name is its own. */
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)init_pid);
	if (read_small(path, comm, sizeof(comm)) < 0 || !process_alive(pidfd))
		return sandbox_not_running(init_pid, err);
	if (strcmp(comm, "agentbox-init\n") != 0) {
		ab_error_set(err, 0, "sandbox is not running (pid %d is not its init)", (int)init_pid);
		return -ESRCH;
	}
	*pidfd_out = TAKE_FD(pidfd);
	return 0;
}

/* Opens the namespaces of pid, which pidfd pins: checked alive after the opens, so they
 * are pid's and not those of a process that took its number. -EACCES when the caller may
 * not inspect pid (see join.h). */
static int open_ns_of(pid_t pid, int pidfd, struct ns_handles *h)
{
	char path[64];

	for (int i = 0; i < NS_N; i++)
		h->fd[i] = -1;
	for (int i = 0; i < NS_N; i++) {
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, ns_table[i].name);
		h->fd[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (h->fd[i] < 0) {
			int r = -errno;
			if (r == -ENOENT && !ns_table[i].always)
				continue; /* no such namespace on this kernel: shared by everyone */
			ns_handles_close(h);
			return r;
		}
	}
	if (!process_alive(pidfd)) {
		ns_handles_close(h);
		return -ESRCH;
	}
	return 0;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Is the namespace that ioctl `req` returns for fd the one described by want? */
static bool ns_relative_is(int fd, unsigned long req, const struct stat *want)
{
	_cleanup_close_ int rel = ioctl(fd, req);
	struct stat st;

	return rel >= 0 && fstat(rel, &st) == 0 && same_file(&st, want);
}

/* The checks of join.h: the user namespace a child of ours, every other namespace ours
 * (then it is not joined) or owned by that user namespace. A sandbox configured with a
 * network of its own (none, or filtered) must have its own network namespace: the command
 * never gets the host's network because the configuration and the sandbox disagree. */
static int check_ns(struct ns_handles *h, const struct ab_config *cfg, struct ab_error *err)
{
	struct stat own, st, user_st = { 0 };
	char path[64];

	for (int i = 0; i < NS_N; i++) {
		if (h->fd[i] < 0)
			continue;
		snprintf(path, sizeof(path), "/proc/self/ns/%s", ns_table[i].name);
		if (stat(path, &own) < 0 || fstat(h->fd[i], &st) < 0)
			return ab_error_set(err, errno, "cannot compare the %s namespaces", ns_table[i].name);
		if (same_file(&st, &own)) {
			if (ns_table[i].always || (i == NS_NET && cfg->network != AB_NETWORK_HOST))
				return ab_error_set(err, 0, "the sandbox shares agentbox's %s namespace",
						    ns_table[i].name);
			close(h->fd[i]);
			h->fd[i] = -1;
			continue;
		}
		if (i == NS_USER) {
			if (!ns_relative_is(h->fd[i], NS_GET_PARENT, &own))
				return ab_error_set(err, 0, "the sandbox's user namespace is not a child of agentbox's");
			user_st = st;
		} else if (!ns_relative_is(h->fd[i], NS_GET_USERNS, &user_st)) {
			return ab_error_set(err, 0, "the sandbox's %s namespace is not its own", ns_table[i].name);
		}
	}
	return 0;
}

/* The parent pid from /proc/PID/stat (after the command name, which may hold anything). */
static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512];
	const char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_small(path, buf, sizeof(buf)) < 0 || !(p = strrchr(buf, ')')))
		return -1;
	int ppid = -1;
	if (sscanf(p + 1, " %*c %d", &ppid) != 1)
		return -1;
	return (pid_t)ppid;
}

#define MAX_CANDIDATES 64

/* The children of init: /proc/PID/task/PID/children (kernels built with it, readable by
 * anyone), else a scan of /proc. */
static size_t children_of(pid_t init_pid, pid_t *out, size_t max)
{
	char path[80], buf[4096];
	size_t n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)init_pid, (int)init_pid);
	if (read_small(path, buf, sizeof(buf)) == 0) {
		char *save = NULL;
		for (char *tok = strtok_r(buf, " \n", &save); tok && n < max; tok = strtok_r(NULL, " \n", &save))
			out[n++] = (pid_t)atoi(tok);
		return n;
	}
	DIR *d = opendir("/proc");
	struct dirent *de;
	if (!d)
		return 0;
	while (n < max && (de = readdir(d))) {
		pid_t pid = (pid_t)atoi(de->d_name);
		if (pid > 0 && parent_of(pid) == init_pid)
			out[n++] = pid;
	}
	closedir(d);
	return n;
}

/* The sandbox's namespaces, from its init, else from one of init's children (see join.h). */
static int open_sandbox_ns(pid_t init_pid, int init_pidfd, const struct ab_config *cfg, struct ns_handles *h,
			   struct ab_error *err)
{
	struct ab_error rejected = { 0 };
	pid_t kids[MAX_CANDIDATES];
	size_t n;
	int r;

	r = open_ns_of(init_pid, init_pidfd, h);
	if (r == -ESRCH)
		return sandbox_not_running(init_pid, err);
	if (r == 0) {
		if ((r = check_ns(h, cfg, err)) < 0)
			ns_handles_close(h);
		return r;
	}
	if (r != -EACCES && r != -EPERM)
		return ab_error_set(err, -r, "cannot open the namespaces of the sandbox's init (pid %d)", (int)init_pid);

	n = children_of(init_pid, kids, MAX_CANDIDATES);
	for (size_t i = 0; i < n; i++) {
		_cleanup_close_ int pidfd = pidfd_open_pid(kids[i]);

		/* Pinned first, then checked to be init's child: not a process that took its pid. */
		if (pidfd < 0 || parent_of(kids[i]) != init_pid)
			continue;
		if (open_ns_of(kids[i], pidfd, h) < 0)
			continue;
		if (check_ns(h, cfg, &rejected) == 0)
			return 0;
		ns_handles_close(h); /* in namespaces of its own: try another */
	}
	if (!process_alive(init_pidfd))
		return sandbox_not_running(init_pid, err);
	if (rejected.msg[0])
		return ab_error_restore(err, rejected.code, rejected.msg);
	return ab_error_set(err, EACCES,
			    "cannot reach the sandbox's namespaces: its init may be inspected only with "
			    "CAP_SYS_PTRACE, and it has no other process to take them from");
}

/* ---- the processes that join -------------------------------------------------------- */

/* Both processes are made like posix_spawn makes its child: CLONE_VM | CLONE_VFORK, on a
 * stack of their own, so that no page table of agentbox is copied (a copy costs more than
 * all the rest of an exec together) and each runs at once while its creator sleeps. They
 * share agentbox's memory until they exit or execve, one at a time while the others
 * sleep: they write only their own stacks, errno, environ (the command's, put back by
 * agentbox after) and the heap (the joiner's rlimits read a file), and agentbox's signal
 * handlers never run in them (every signal is blocked around the clone, and the command
 * resets the handlers before it unblocks). Their descriptor tables, credentials,
 * namespaces, limits and signal dispositions are their own. */
#define JOIN_STACK_SIZE (256 * 1024)
#define JOIN_GUARD_SIZE (64 * 1024) /* PROT_NONE below each stack: an overflow faults */
#define JOIN_STACKS_SIZE (2 * (JOIN_GUARD_SIZE + JOIN_STACK_SIZE))

/* Under AddressSanitizer, the functions that run on those stacks are left uninstrumented:
 * before each call to a noreturn function (_exit) the instrumentation checks the stack
 * pointer against the thread's stack, and warns (on stderr) when it is elsewhere. What
 * they call is instrumented as usual. */
#define ON_OWN_STACK __attribute__((no_sanitize_address))

struct join_ctx {
	const struct ab_exec_request *req;
	const char *cwd;
	struct ns_handles *ns;
	int sync_fd;
	char *command_stack_top;
};

ON_OWN_STACK __attribute__((noreturn)) static void fail(int sync_fd, const struct ab_error *err)
{
	ab_sync_send(sync_fd, AB_SYNC_ERROR, err->code, err->msg, -1);
	_exit(AB_EXIT_INTERNAL);
}

/* Closes every descriptor but those in keep (ascending order not required). */
static int close_other_fds(int *keep, size_t n)
{
	unsigned lo = 0;

	for (size_t i = 1; i < n; i++) /* insertion sort: a handful of entries */
		for (size_t j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
			int t = keep[j];
			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	for (size_t i = 0; i < n; i++) {
		if (keep[i] < 0 || (unsigned)keep[i] < lo)
			continue;
		if ((unsigned)keep[i] > lo && syscall(SYS_close_range, lo, (unsigned)keep[i] - 1, 0) < 0)
			return -errno;
		lo = (unsigned)keep[i] + 1;
	}
	if (syscall(SYS_close_range, lo, ~0U, 0) < 0)
		return -errno;
	return 0;
}

/* The command, in the sandbox's namespaces (its pid namespace too), with the joiner's full
 * capabilities in the sandbox's user namespace until ab_confine drops them. It never
 * prints: failures go to agentbox over the sync socket. */
ON_OWN_STACK __attribute__((noreturn)) static int command_main(void *arg)
{
	const struct join_ctx *c = arg;
	const struct ab_exec_request *req = c->req;
	struct ab_error err = { 0 };
	int slave = -1, e;
	sigset_t none;

	/* CLONE_PARENT made agentbox our parent: die with it. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
		ab_error_set(&err, errno, "cannot set the parent-death signal");
		fail(c->sync_fd, &err);
	}
	/* 4. The terminal, in the sandbox's devpts and before any filter (as in enter.c). */
	if (req->tty && ab_open_terminal(c->sync_fd, &slave, &err) < 0)
		fail(c->sync_fd, &err);
	/* 5-11. Confined as the sandbox's command is; ab_confine checks that agentbox lives. */
	if (ab_confine(req->cfg, req->seccomp, req->landlock_abi, c->sync_fd, &err) < 0)
		fail(c->sync_fd, &err);
	/* As the sandbox user, so the directory is entered with its rights alone. */
	if (chdir(c->cwd) < 0) {
		ab_error_set(&err, errno, "cannot enter '%s' in the sandbox", c->cwd);
		fail(c->sync_fd, &err);
	}
	/* agentbox's handlers must not run here, on its memory: the default, as execve would
	 * make it anyway (an ignored signal stays ignored, as for the sandbox's command). */
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction sa;
		if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN) {
			sa.sa_handler = SIG_DFL;
			sa.sa_flags = 0;
			sigaction(sig, &sa, NULL);
		}
	}
	/* What the sandbox's init does for its command: no blocked signal, a session of its
	 * own (no way back to the caller's terminal), the sandbox's terminal as controlling. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	if (slave >= 0) {
		if (ioctl(slave, TIOCSCTTY, 0) < 0 || dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0) {
			ab_error_set(&err, errno, "cannot make the terminal the command's own");
			fail(c->sync_fd, &err);
		}
		if (slave > 2)
			close(slave);
	}
	/* execvp searches the command's own PATH, as the sandbox's init does for its command;
	 * agentbox puts its environ back once we are gone. */
	environ = req->env;
	execvp(req->argv[0], req->argv);
	e = errno;
	ab_sync_send(c->sync_fd, AB_SYNC_EXEC_FAILED, e, req->argv[0], -1);
	_exit(e == ENOENT ? AB_EXIT_NOT_FOUND : AB_EXIT_CANNOT_RUN);
}

/* Made by agentbox: moves into the sandbox's cgroup and namespaces, starts the command as
 * agentbox's child, hands agentbox its pidfd and exits. */
ON_OWN_STACK __attribute__((noreturn)) static int joiner_main(void *arg)
{
	const struct join_ctx *c = arg;
	const struct ab_exec_request *req = c->req;
	struct ab_error err = { 0 };
	int keep[3 + 1 + NS_N], n_keep = 0, pidfd = -1, r;
	pid_t pid;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		_exit(AB_EXIT_INTERNAL);
	/* Not dumpable, before anything of the sandbox is joined: its processes (same uid)
	 * must not ptrace or read us while we hold capabilities in its user namespace. The
	 * flag belongs to the memory, which the command shares until its execve (and agentbox
	 * too, which puts its own flag back after). */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		ab_error_set(&err, errno, "cannot make the joining process not dumpable");
		fail(c->sync_fd, &err);
	}
	/* Nothing agentbox holds open may leak into the sandbox but stdio, the sync socket,
	 * and the namespaces about to be joined (closed as they are). */
	keep[n_keep++] = 0;
	keep[n_keep++] = 1;
	keep[n_keep++] = 2;
	keep[n_keep++] = c->sync_fd;
	for (int i = 0; i < NS_N; i++)
		if (c->ns->fd[i] >= 0)
			keep[n_keep++] = c->ns->fd[i];
	if ((r = close_other_fds(keep, (size_t)n_keep)) < 0) {
		ab_error_set(&err, -r, "cannot close agentbox's descriptors");
		fail(c->sync_fd, &err);
	}
	/* The cgroup first: its files are host paths, out of sight once the mount namespace
	 * is joined. The command, made later, is born in it. */
	for (size_t i = 0; i < req->n_cgroup_procs; i++) {
		int fd = open(req->cgroup_procs[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1) {
			ab_error_set(&err, errno, "cannot join the cgroup '%s'", req->cgroup_procs[i]);
			fail(c->sync_fd, &err);
		}
		close(fd);
	}
	/* The user namespace first (full capabilities there, which the others need), then the
	 * rest. setns(CLONE_NEWNS) also sets root and working directory to the sandbox's root. */
	for (int i = 0; i < NS_N; i++) {
		if (c->ns->fd[i] < 0)
			continue;
		if (setns(c->ns->fd[i], ns_table[i].type) < 0) {
			ab_error_set(&err, errno, "cannot join the sandbox's %s namespace", ns_table[i].name);
			fail(c->sync_fd, &err);
		}
		close(c->ns->fd[i]);
	}
	/* The sandbox's resource limits, where its init took them (spawn.c): before any
	 * confinement, inherited by the command. Here and not in the command, because this
	 * allocates on agentbox's heap: the command is visible to the sandbox's processes
	 * (same uid), which could kill it half-way before its Landlock scope is on; this
	 * process they cannot even name (it is outside their pid namespace). */
	if (ab_rlimits_apply(&req->cfg->limits, (enum ab_limits_mode)req->cfg->limits_mode, &err) < 0)
		fail(c->sync_fd, &err);
	/* Our own pid namespace stays the host's; a child is born in the sandbox's. It is made
	 * agentbox's child (CLONE_PARENT; its exit signal is then ours, SIGCHLD), so we need
	 * not wait for it, and we sleep only until it execs (CLONE_VFORK). ENOMEM: the pid
	 * namespace has lost its init (the sandbox is ending). */
	pid = clone(command_main, c->command_stack_top, CLONE_VM | CLONE_VFORK | CLONE_PARENT | CLONE_PIDFD,
		    (void *)c, &pidfd);
	if (pid < 0) {
		ab_error_set(&err, errno, "cannot start a process in the sandbox");
		fail(c->sync_fd, &err);
	}
	/* "Started" as a process; whether it runs the command, agentbox learns from the
	 * socket: EXEC_FAILED or ERROR, or the end of the socket at its execve. */
	if (ab_sync_send(c->sync_fd, AB_SYNC_STARTED, 0, NULL, pidfd) < 0)
		_exit(AB_EXIT_INTERNAL); /* agentbox is gone: the command's own check stops it */
	_exit(0);
}

/* ---- agentbox's side ---------------------------------------------------------------- */

static int reap(int pidfd)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	while (waitid(AB_P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0)
		if (errno != EINTR)
			return AB_EXIT_INTERNAL;
	if (si.si_code == CLD_EXITED)
		return si.si_status;
	return 128 + si.si_status;
}

static void forward(int pidfd, int sig)
{
	syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

static bool relay_signal(const struct signalfd_siginfo *si, void *ctx)
{
	forward(*(int *)ctx, (int)si->ssi_signo);
	return false;
}

static bool relay_done(void *ctx)
{
	(void)ctx;
	return true; /* the command's pidfd: it exited */
}

/* Follows the command until it exits: forwards signals, relays the terminal. */
static int relay(int cmd_pidfd, int sfd, int master, int *exit_code)
{
	struct ab_relay r = { .sfd = sfd, .master = master, .extra_fd = cmd_pidfd, .on_signal = relay_signal,
			      .on_extra = relay_done, .sync_fd = -1, .ctx = &cmd_pidfd };

	ab_relay_terminal(&r);
	*exit_code = reap(cmd_pidfd);
	return 0;
}

/* The joiner's and the command's stacks, once both are gone. Under AddressSanitizer their
 * frames' poisoned redzones are cleared first: frames that never returned (they exec'd or
 * exited) would leave false reports for whatever is mapped there later. */
static void release_stack(char *stack)
{
#ifdef __SANITIZE_ADDRESS__
	ASAN_UNPOISON_MEMORY_REGION(stack, JOIN_STACKS_SIZE);
#endif
	munmap(stack, JOIN_STACKS_SIZE);
}

/* [guard][command's stack][guard][joiner's stack]; stacks grow down. */
static char *alloc_stacks(void)
{
	char *p = mmap(NULL, JOIN_STACKS_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (mprotect(p + JOIN_GUARD_SIZE, JOIN_STACK_SIZE, PROT_READ | PROT_WRITE) < 0 ||
	    mprotect(p + 2 * JOIN_GUARD_SIZE + JOIN_STACK_SIZE, JOIN_STACK_SIZE, PROT_READ | PROT_WRITE) < 0) {
		munmap(p, JOIN_STACKS_SIZE);
		return NULL;
	}
	return p;
}

int ab_sandbox_exec(const struct ab_exec_request *req, int *exit_code, struct ab_error *err)
{
	_cleanup_close_ int init_pidfd = -1, parent_fd = -1, child_fd = -1, sfd = -1, master = -1, cmd_pidfd = -1;
	_cleanup_(ns_handles_close) struct ns_handles ns = { { -1, -1, -1, -1, -1, -1, -1 } };
	struct ab_sync_msg msg;
	struct ab_error child_err = { 0 };
	bool have_error = false, exec_failed = false;
	int exec_errno = 0, socks[2], status = 0, r;
	char exec_name[AB_ERROR_MSG_MAX] = "";
	struct join_ctx c;
	char **saved_environ;
	char *stack = NULL;
	int dumpable, clone_errno;
	sigset_t set, old, set_with_old, all;
	pid_t pid;

	if (!req->cfg || !req->argv || !req->argv[0] || !req->argv[0][0] || !req->env)
		return ab_error_set(err, EINVAL, "nothing to run in the sandbox");
	if ((r = open_init(req->init_pid, &init_pidfd, err)) < 0)
		return r;
	if ((r = open_sandbox_ns(req->init_pid, init_pidfd, req->cfg, &ns, err)) < 0)
		return r;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, socks) < 0)
		return ab_error_set(err, errno, "cannot create the sync socket");
	parent_fd = socks[0];
	child_fd = socks[1];

	/* Signals through a signalfd from before the fork, so none is lost while the command
	 * starts (as in spawn.c, INT and QUIT taken back from a shell's "ignore"). */
	signal(SIGINT, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	sigemptyset(&set);
	for (int i = 0; i < ab_n_forwarded_signals; i++)
		sigaddset(&set, ab_forwarded_signals[i]);
	sigprocmask(SIG_BLOCK, &set, &old);
	sigprocmask(SIG_SETMASK, NULL, &set_with_old);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0) {
		r = ab_error_set(err, errno, "cannot create a signalfd");
		goto out;
	}

	stack = alloc_stacks();
	if (!stack) {
		r = ab_error_set(err, errno, "cannot allocate the joining process's stack");
		goto out;
	}
	c = (struct join_ctx){ .req = req, .cwd = req->cwd ? req->cwd : req->cfg->workspace_dest, .ns = &ns,
			       .sync_fd = child_fd, .command_stack_top = stack + JOIN_GUARD_SIZE + JOIN_STACK_SIZE };
	saved_environ = environ;
	dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	fflush(NULL);
	/* We sleep until the joiner exits, by which time the command has exec'd or failed and
	 * every message is waiting on the socket. */
	pid = clone(joiner_main, stack + JOIN_STACKS_SIZE, CLONE_VM | CLONE_VFORK | SIGCHLD, &c);
	clone_errno = errno;
	sigprocmask(SIG_SETMASK, &set_with_old, NULL);
	environ = saved_environ;
	if (dumpable == 1)
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	release_stack(stack);
	stack = NULL;
	if (pid < 0) {
		r = ab_error_set(err, clone_errno, "cannot start the process that joins the sandbox");
		goto out;
	}
	close(TAKE_FD(child_fd));
	ns_handles_close(&ns);

	/* Until the socket ends: the joiner exits, the command execs (or fails and says so). */
	for (;;) {
		int passed = -1;
		r = ab_sync_recv(parent_fd, &msg, &passed);
		if (r < 0)
			break;
		if (msg.type == AB_SYNC_PTY && master < 0) {
			master = passed;
		} else if (msg.type == AB_SYNC_STARTED && cmd_pidfd < 0) {
			cmd_pidfd = passed;
		} else {
			if (passed >= 0)
				close(passed);
			if (msg.type == AB_SYNC_ERROR && !have_error) {
				ab_error_restore(&child_err, msg.code, msg.text);
				have_error = true;
			} else if (msg.type == AB_SYNC_EXEC_FAILED) {
				exec_failed = true;
				exec_errno = msg.code;
				snprintf(exec_name, sizeof(exec_name), "%s", msg.text);
			}
		}
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;

	if (have_error || cmd_pidfd < 0) {
		if (cmd_pidfd >= 0)
			reap(cmd_pidfd);
		if (!process_alive(init_pidfd))
			r = sandbox_not_running(req->init_pid, err);
		else if (have_error)
			r = ab_error_restore(err, child_err.code, child_err.msg);
		else
			r = ab_error_set(err, 0, "the process joining the sandbox exited during setup (status %d)",
					 WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		goto out;
	}
	if (exec_failed) {
		if (exec_errno == ENOENT)
			ab_error_set(err, 0, "command '%s' not found in the sandbox", exec_name);
		else
			ab_error_set(err, exec_errno, "command '%s' cannot be run", exec_name);
		*exit_code = reap(cmd_pidfd);
		r = 0;
		goto out;
	}
	err->code = 0;
	err->msg[0] = '\0';
	r = relay(cmd_pidfd, sfd, master, exit_code);
out:
	if (stack)
		release_stack(stack);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return r;
}
