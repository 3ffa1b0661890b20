#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "../shared/timer.h"
#include "cgroup.h"
#include "enter.h"
#include "init.h"
#include "pty.h"
#include "rootfs.h"
#include "sync.h"
#include "userns.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static unsigned long clone_flags(const struct ab_config *cfg, const struct ab_features *f)
{
	unsigned long flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;

	if (f->cgroupns)
		flags |= CLONE_NEWCGROUP;
	if (cfg->network != AB_NETWORK_HOST)
		flags |= CLONE_NEWNET;
	return flags;
}

static bool want_tty(const struct ab_config *cfg)
{
	switch (cfg->tty_mode) {
	case AB_TTY_ALWAYS: return true;
	case AB_TTY_NEVER: return false;
	case AB_TTY_AUTO: return isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	}
	return false;
}

/* The child after clone: PID 1 of the new namespaces. It never prints; every failure goes
 * back over the sync socket and ends the child with 125. */
__attribute__((noreturn)) static void child_main(const struct ab_config *cfg, const struct ab_seccomp_set *sc,
						 int landlock_abi, bool use_tty, int sync_fd)
{
	struct ab_enter_plan plan = { .cfg = cfg, .seccomp = sc, .landlock_abi = landlock_abi,
				      .sync_fd = sync_fd, .use_tty = use_tty };
	struct ab_error err = { 0 };
	struct ab_sync_msg msg;
	int pty_slave = -1, r;

	/* Die with agentbox, even when it is killed with SIGKILL. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		_exit(AB_EXIT_INTERNAL);
	/* Nothing agentbox holds open may leak into the sandbox but stdio and the sync socket. */
	if (sync_fd > 3)
		syscall(SYS_close_range, 3, sync_fd - 1, 0);
	syscall(SYS_close_range, sync_fd + 1, ~0U, 0);

	r = ab_sync_recv(sync_fd, &msg, NULL);
	if (r < 0 || msg.type != AB_SYNC_GO)
		_exit(AB_EXIT_INTERNAL);
	/* Resource limits of the process itself (core dumps off, open files, file size, and
	 * the fallbacks when no cgroup holds the sandbox), inherited by all it starts. */
	if (ab_rlimits_apply(&cfg->limits, (enum ab_limits_mode)cfg->limits_mode, &err) < 0) {
		ab_sync_send(sync_fd, AB_SYNC_ERROR, err.code, err.msg, -1);
		_exit(AB_EXIT_INTERNAL);
	}
	if (ab_enter_sandbox(&plan, &pty_slave, &err) < 0) {
		ab_sync_send(sync_fd, AB_SYNC_ERROR, err.code, err.msg, -1);
		_exit(AB_EXIT_INTERNAL);
	}
	/* The --disk-limit copy of the changes goes to agentbox, which copies it back at the end. */
	int disk_upper = ab_rootfs_take_disk_upper();
	if (disk_upper >= 0) {
		ab_sync_send(sync_fd, AB_SYNC_DISK_UPPER, 0, NULL, disk_upper);
		close(disk_upper);
	}
	/* agentbox may still be preparing (its snapshot of the workspace must come first). */
	r = ab_sync_recv(sync_fd, &msg, NULL);
	if (r < 0 || msg.type != AB_SYNC_PROCEED)
		_exit(AB_EXIT_INTERNAL);
	ab_init_run(cfg, sync_fd, pty_slave);
}

static int wait_child(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return AB_EXIT_INTERNAL;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/* How long a sandbox stopped by --timeout has between SIGTERM and SIGKILL. */
#define AB_STOP_GRACE_MS 10000

/* The built-in supervisor of a foreground run: the relay's callbacks. */
struct follow {
	pid_t pid;
	int tfd; /* --timeout, then the grace period */
	int sync_fd;
	bool timed_out;
	bool exited; /* init said the command exited: code holds its status */
	int code;
	int status;
};

/* init's last word: the command's status, with the sandbox empty. The init itself may
 * still be tearing the namespaces down; nobody needs to wait for that. */
static int follow_sync(void *ctx)
{
	struct follow *f = ctx;
	struct ab_sync_msg msg;

	if (ab_sync_recv(f->sync_fd, &msg, NULL) < 0)
		return -1; /* gone without a word: SIGCHLD tells the rest */
	if (msg.type != AB_SYNC_EXITED)
		return 0;
	f->exited = true;
	f->code = msg.code;
	return 1;
}

static bool follow_signal(const struct signalfd_siginfo *si, void *ctx)
{
	struct follow *f = ctx;

	if (si->ssi_signo == SIGCHLD)
		return waitpid(f->pid, &f->status, WNOHANG) == f->pid;
	kill(f->pid, (int)si->ssi_signo); /* init passes it to the command */
	return false;
}

/* --timeout: TERM to the command through its init, KILL after a grace period. */
static bool follow_timer(void *ctx)
{
	struct follow *f = ctx;
	uint64_t ticks;

	(void)!read(f->tfd, &ticks, sizeof(ticks));
	if (!f->timed_out) {
		f->timed_out = true;
		kill(f->pid, SIGTERM);
		(void)ab_timer_arm(&f->tfd, AB_STOP_GRACE_MS);
	} else {
		kill(f->pid, SIGKILL); /* the whole sandbox goes with its init */
	}
	return false;
}

/* Follows the sandbox until its init exits: forwards signals, relays the terminal, stops
 * it at --timeout. */
static void supervise(pid_t pid, int sfd, int sync_fd, int master, uint64_t timeout_ms, bool *timed_out,
		      int *exit_code)
{
	struct follow f = { .pid = pid, .tfd = -1, .sync_fd = sync_fd };
	struct ab_relay relay = { .sfd = sfd, .master = master, .on_signal = follow_signal,
				  .on_extra = follow_timer, .sync_fd = sync_fd, .on_sync = follow_sync, .ctx = &f };

	if (timeout_ms)
		(void)ab_timer_arm(&f.tfd, timeout_ms);
	relay.extra_fd = f.tfd;
	ab_relay_terminal(&relay);
	if (f.tfd >= 0)
		close(f.tfd);
	*timed_out = f.timed_out;
	if (f.exited) {
		(void)waitpid(pid, NULL, WNOHANG); /* reaped now if already gone; else by whoever inherits it */
		*exit_code = f.code;
		return;
	}
	*exit_code = WIFEXITED(f.status) ? WEXITSTATUS(f.status) : 128 + WTERMSIG(f.status);
}

/* The proxy's listeners, from the sandbox's init (AB_SYNC_NET_LISTENER) until the
 * net_ready hook takes them. */
struct net_listeners {
	struct ab_proxy_listener l[AB_PROXY_MAX_LISTENERS];
	size_t n;
	bool pending; /* a filtered network whose AB_SYNC_NET_READY has not come yet */
};

static void net_listeners_close(struct net_listeners *net)
{
	for (size_t i = 0; i < net->n; i++)
		close(net->l[i].fd);
	net->n = 0;
}

static bool socket_is(int fd, int family, int type)
{
	int got_family, got_type;
	socklen_t len = sizeof(int);

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &got_family, &len) < 0 || len != sizeof(int))
		return false;
	len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &got_type, &len) < 0 || len != sizeof(int))
		return false;
	return got_family == family && got_type == type;
}

/* Takes one listener (code = kind | family << 8, fd passed). Anything odd (none expected,
 * one too many, an unknown kind or family, a socket not of that kind) is closed and stops
 * the sandbox: its network would not be the one the proxy serves. */
static int net_listener_take(struct net_listeners *net, int code, int fd, struct ab_error *err)
{
	int kind = code & 0xff, family = code >> 8, type;

	if (kind == AB_PROXY_LISTEN_HTTP || kind == AB_PROXY_LISTEN_SOCKS || kind == AB_PROXY_LISTEN_CAPTURE)
		type = SOCK_STREAM;
	else if (kind == AB_PROXY_LISTEN_DNS)
		type = SOCK_DGRAM;
	else
		type = -1;
	if (!net->pending || net->n >= AB_PROXY_MAX_LISTENERS || fd < 0 || type < 0 ||
	    (family != AF_INET && family != AF_INET6) || !socket_is(fd, family, type)) {
		if (fd >= 0)
			close(fd);
		return ab_error_set(err, 0, "the sandbox sent an unexpected network listener (code 0x%x)",
				    (unsigned)code);
	}
	net->l[net->n++] = (struct ab_proxy_listener){ .fd = fd, .kind = (enum ab_proxy_listener_kind)kind,
						       .family = family };
	return 0;
}

/* The listeners go to the net_ready hook, which owns them from here, whatever it returns. */
static int net_listeners_hand_over(struct net_listeners *net, pid_t pid, struct ab_run_hooks *hooks,
				   struct ab_error *err)
{
	size_t n = net->n;

	if (!net->pending)
		return ab_error_set(err, 0, "the sandbox said its network is ready, but it has no filtered network");
	net->pending = false;
	if (!hooks || !hooks->net_ready) {
		net_listeners_close(net);
		return 0;
	}
	net->n = 0;
	return hooks->net_ready(pid, net->l, n, hooks->data, err);
}

static void stop_child(pid_t pid)
{
	kill(pid, SIGKILL);
	wait_child(pid);
}

int ab_sandbox_run(const struct ab_config *cfg, const struct ab_features *features,
		   const struct ab_seccomp_set *seccomp, struct ab_run_hooks *hooks, int *exit_code,
		   struct ab_error *err)
{
	_cleanup_close_ int parent_fd = -1, child_fd = -1, sfd = -1, master = -1;
	bool use_tty = want_tty(cfg);
	struct net_listeners net = { .pending = cfg->network == AB_NETWORK_FILTERED };
	sigset_t set, old;
	struct ab_sync_msg msg;
	int socks[2], r;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, socks) < 0)
		return ab_error_set(err, errno, "cannot create the sync socket");
	parent_fd = socks[0];
	child_fd = socks[1];

	/* Signals are taken through a signalfd from before the clone, so none is lost while
	 * the sandbox starts; the child inherits the mask and init keeps it for its own. */
	/* A shell starts background jobs with SIGINT and SIGQUIT ignored, and an ignored signal
	 * never reaches a signalfd: take them back, so `kill -INT` reaches the command as it
	 * does with docker run. SIGHUP keeps what the caller chose (nohup ignores it, and so
	 * will the command). */
	signal(SIGINT, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	for (int i = 0; i < ab_n_forwarded_signals; i++)
		sigaddset(&set, ab_forwarded_signals[i]);
	sigprocmask(SIG_BLOCK, &set, &old);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0) {
		r = ab_error_set(err, errno, "cannot create a signalfd");
		goto out;
	}

	fflush(NULL);
	pid = (pid_t)syscall(SYS_clone, clone_flags(cfg, features) | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid < 0) {
		r = ab_error_set(err, errno, "cannot create the sandbox's namespaces");
		if (errno == EPERM || errno == ENOSPC || errno == EINVAL)
			ab_error_wrap(err, "%s", features->userns_why[0] ? features->userns_why : "user namespaces");
		goto out;
	}
	if (pid == 0) {
		close(parent_fd);
		child_main(cfg, seccomp, features->landlock_abi, use_tty, child_fd);
	}
	close(TAKE_FD(child_fd));

	r = ab_userns_write_maps(pid, cfg, err);
	if (r < 0) {
		stop_child(pid);
		goto out;
	}
	if (hooks && hooks->placed && (r = hooks->placed(pid, hooks->data, err)) < 0) {
		stop_child(pid);
		goto out;
	}
	r = ab_sync_send(parent_fd, AB_SYNC_GO, 0, NULL, -1);
	/* The child builds the sandbox now; what agentbox must do before the command runs
	 * happens meanwhile, and the child waits for PROCEED before it starts the command. */
	if (r >= 0 && hooks && hooks->prepare && hooks->prepare(pid, hooks->data, err) < 0) {
		stop_child(pid);
		goto out;
	}
	/* A child that already failed has closed its end: its error is still queued for the
	 * reads below, so a failed send here is not the story to tell. With a filtered
	 * network, PROCEED waits for the proxy's listeners and the net_ready hook. */
	if (r >= 0 && !net.pending)
		(void)ab_sync_send(parent_fd, AB_SYNC_PROCEED, 0, NULL, -1);
	for (;;) {
		int passed = -1;
		if (r >= 0)
			r = ab_sync_recv(parent_fd, &msg, &passed);
		if (r < 0) {
			int code = wait_child(pid);
			r = ab_error_set(err, 0, "the sandbox exited during setup (status %d)", code);
			goto out;
		}
		if (msg.type == AB_SYNC_PTY) {
			if (master >= 0)
				close(master);
			master = passed;
			continue;
		}
		if (msg.type == AB_SYNC_DISK_UPPER) {
			if (hooks && hooks->disk_upper_fd < 0)
				hooks->disk_upper_fd = passed;
			else if (passed >= 0)
				close(passed);
			continue;
		}
		if (msg.type == AB_SYNC_NET_LISTENER) {
			if ((r = net_listener_take(&net, msg.code, passed, err)) < 0) {
				stop_child(pid);
				goto out;
			}
			continue;
		}
		if (passed >= 0)
			close(passed);
		if (msg.type == AB_SYNC_ERROR) {
			wait_child(pid);
			r = ab_error_restore(err, msg.code, msg.text);
			goto out;
		}
		if (msg.type == AB_SYNC_NET_READY) {
			/* The filter is in place and the listeners are here: the proxy starts
			 * before the command may run. */
			if ((r = net_listeners_hand_over(&net, pid, hooks, err)) < 0) {
				stop_child(pid);
				goto out;
			}
			(void)ab_sync_send(parent_fd, AB_SYNC_PROCEED, 0, NULL, -1);
			continue;
		}
		if (msg.type == AB_SYNC_EXEC_FAILED) {
			if (msg.code == ENOENT)
				ab_error_set(err, 0, "command '%s' not found in the sandbox", msg.text);
			else
				ab_error_set(err, msg.code, "command '%s' cannot be run", msg.text);
			*exit_code = wait_child(pid);
			r = 0;
			goto out;
		}
		if (msg.type == AB_SYNC_STARTED)
			break;
	}
	err->code = 0;
	err->msg[0] = '\0';
	if (hooks && hooks->started)
		hooks->started(pid, hooks->data);
	if (hooks && hooks->supervise) {
		*exit_code = hooks->supervise(pid, sfd, master, hooks->data);
		r = 0;
	} else {
		bool timed_out = false;
		supervise(pid, sfd, parent_fd, master, cfg->limits.timeout_ms, &timed_out, exit_code);
		r = 0;
		if (hooks)
			hooks->timed_out = timed_out;
	}
out:
	net_listeners_close(&net);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return r;
}
