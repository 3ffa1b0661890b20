/* Starting a filtered sandbox's egress proxy: its control socket and audit log in the
 * state directory, then a process of its own that keeps only its fds.
 *
 *   agentbox ── fork ──> proxy: setsid, PDEATHSIG, fds 3.. = listeners, control, log,
 *      │                        lifeline; everything else closed; ab_proxy_run; _exit
 *      └── keeps the lifeline's write end: when it closes, the proxy ends
 *
 * The proxy leaves with _exit(), never exit(): atexit handlers (the sanitizer's leak
 * check among them) would run under a seccomp filter that refuses what they need. */
#include "egress.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../proxy/audit.h"
#include "../shared/cleanup.h"
#include "landlock.h"

#define CONTROL_BACKLOG 16

static char *path_in(const char *dir, const char *file)
{
	char *p;

	return asprintf(&p, "%s/%s", dir, file) < 0 ? NULL : p;
}

static void close_listeners(struct ab_proxy_listener *listeners, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (listeners[i].fd >= 0) {
			close(listeners[i].fd);
			listeners[i].fd = -1;
		}
}

/* STATE_DIR/net.sock, listening, 0600 whatever the umask. A stale socket of an earlier
 * run is removed first. */
static int make_control(const char *path, struct ab_error *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	mode_t old;
	int r;

	if (strlen(path) >= sizeof(addr.sun_path))
		return ab_error_set(err, ENAMETOOLONG, "cannot create the control socket '%s'", path);
	memcpy(addr.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ab_error_set(err, errno, "cannot create the control socket '%s'", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return ab_error_set(err, errno, "cannot remove the stale control socket '%s'", path);
	/* agentbox has no threads, so the umask can be changed for the bind alone. */
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old);
	if (r < 0)
		return ab_error_set(err, errno, "cannot create the control socket '%s'", path);
	if (chmod(path, 0600) < 0 || listen(fd, CONTROL_BACKLOG) < 0) {
		r = ab_error_set(err, errno, "cannot set up the control socket '%s'", path);
		unlink(path);
		return r;
	}
	return TAKE_FD(fd);
}

/* STATE_DIR/net.log for appending, 0600. The proxy itself cannot rename (see audit.c) and
 * stops logging at AB_AUDIT_LOG_MAX, so a log already half that size is kept as net.log.1
 * and a new one begins: every run has at least half the cap to write in. */
static int open_log(const char *path, const char *old_path, struct ab_error *err)
{
	struct stat st;
	int fd;

	if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size >= AB_AUDIT_LOG_MAX / 2 &&
	    rename(path, old_path) < 0)
		return ab_error_set(err, errno, "cannot rotate the network log '%s'", path);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0)
		return ab_error_set(err, errno, "cannot open the network log '%s'", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return ab_error_set(err, EINVAL, "cannot open the network log '%s': not a regular file", path);
	}
	return fd;
}

/* In the child: fds[i] moves to 3 + i, stdin and stdout to /dev/null (stderr stays, for a
 * sanitizer's report), every other fd is closed. Returns 0 or -errno. */
static int keep_only(int *fds, size_t n)
{
	int base = 3 + (int)n, tmp[AB_PROXY_MAX_LISTENERS + 4]; /* listeners, control, log, lifeline, ready */
	int null;

	if (n > sizeof(tmp) / sizeof(tmp[0]))
		return -E2BIG;
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= base)
			base = fds[i] + 1;
	/* First above every fd involved, then down into place: no move overwrites a
	 * descriptor still to be moved. */
	for (size_t i = 0; i < n; i++) {
		tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, base);
		if (tmp[i] < 0)
			return -errno;
	}
	for (size_t i = 0; i < n; i++) {
		if (dup3(tmp[i], 3 + (int)i, O_CLOEXEC) < 0)
			return -errno;
		fds[i] = 3 + (int)i;
	}
	if (syscall(SYS_close_range, 3 + (unsigned)n, ~0U, 0) < 0) {
		struct rlimit rl;
		int max = 65536;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)max)
			max = (int)rl.rlim_cur;
		for (int fd = 3 + (int)n; fd < max; fd++)
			close(fd);
	}
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0)
		return -errno;
	if (dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0)
		return -errno;
	if (null > STDERR_FILENO)
		close(null);
	return 0;
}

static void reset_signals(void)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigset_t none;

	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &sa, NULL);
	/* A relay splices into sockets whose peer may be gone: EPIPE, not death. */
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* The proxy process. Never returns. */
static void __attribute__((noreturn))
run_proxy(const struct ab_config *cfg, const char *name, struct ab_net_policy *policy,
	  const struct ab_proxy_listener *listeners, size_t n_listeners, int control_fd, int log_fd,
	  int lifeline_fd, int ready_fd, pid_t parent)
{
	struct ab_proxy_config pc = { .control_fd = -1, .log_fd = -1, .lifeline_fd = -1, .ready_fd = -1 };
	int fds[AB_PROXY_MAX_LISTENERS + 4];
	size_t n = 0;
	struct ab_error err = { 0 };
	int r;

	/* Gone with the process that started it (and its lifeline with it). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent)
		_exit(1);
	/* Its own session: a Ctrl-C on agentbox's terminal is for the sandbox, not for it. */
	setsid();
	reset_signals();

	for (size_t i = 0; i < n_listeners; i++)
		fds[n++] = listeners[i].fd;
	fds[n++] = control_fd;
	fds[n++] = log_fd;
	fds[n++] = lifeline_fd;
	fds[n++] = ready_fd;
	if (keep_only(fds, n) < 0)
		_exit(1);

	snprintf(pc.name, sizeof(pc.name), "%s", name);
	pc.policy = *policy; /* this process's copy of the parent's memory; the proxy frees it */
	pc.hosts = cfg->net_hosts;
	pc.n_hosts = cfg->n_net_hosts;
	for (size_t i = 0; i < n_listeners; i++) {
		pc.listeners[i] = listeners[i];
		pc.listeners[i].fd = fds[i];
	}
	pc.n_listeners = n_listeners;
	pc.control_fd = fds[n_listeners];
	pc.log_fd = fds[n_listeners + 1];
	pc.lifeline_fd = fds[n_listeners + 2];
	pc.ready_fd = fds[n_listeners + 3];
	pc.owner_uid = getuid();
	pc.drop_privileges = geteuid() == 0;
	pc.landlock_abi = ab_landlock_abi();

	r = ab_proxy_run(&pc, &err);
	if (r < 0) {
		/* Nobody reads this process's errors but the log and the terminal. */
		struct ab_audit_event ev = { .via = "proxy", .decision = "error", .reason = err.msg };
		char line[AB_ERROR_MSG_MAX + 96];
		int len = snprintf(line, sizeof(line), "agentbox: the egress proxy of '%s' stopped: %s\n",
				   pc.name, err.msg);
		ab_audit_write(pc.log_fd, pc.name, &ev);
		if (len > 0)
			(void)!write(STDERR_FILENO, line, (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1);
		_exit(1);
	}
	_exit(0);
}

/* "OK" from the proxy once it is confined and serving; anything else is why it is not.
 * A proxy that failed is reaped here. */
static int wait_ready(int fd, pid_t pid, struct ab_error *err)
{
	char msg[AB_ERROR_MSG_MAX];
	size_t got = 0;

	for (;;) {
		ssize_t n = read(fd, msg + got, sizeof(msg) - 1 - got);
		if (n > 0 && (got += (size_t)n) < sizeof(msg) - 1)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
	msg[got] = '\0';
	if (got == 2 && memcmp(msg, "OK", 2) == 0)
		return 0;
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return ab_error_set(err, 0, "the egress proxy could not start: %s",
			    got ? msg : "it exited during start-up");
}

int ab_egress_start(const struct ab_config *cfg, const char *state_dir,
		    struct ab_proxy_listener *listeners, size_t n_listeners, pid_t *pid_out,
		    int *lifeline_out, struct ab_error *err)
{
	_cleanup_free_ char *sock_path = NULL, *log_path = NULL, *old_log = NULL;
	_cleanup_close_ int control = -1, log = -1, life_r = -1, life_w = -1, ready_r = -1, ready_w = -1;
	struct ab_net_policy policy = { 0 };
	const char *name = cfg->name;
	int pipefd[2], r = 0;
	pid_t parent = getpid(), pid;

	*pid_out = -1;
	*lifeline_out = -1;
	if (!name) {
		const char *slash = strrchr(state_dir, '/');
		name = slash ? slash + 1 : state_dir;
	}
	if (n_listeners > AB_PROXY_MAX_LISTENERS) {
		r = ab_error_set(err, E2BIG, "too many proxy listeners (%zu)", n_listeners);
		goto fail;
	}
	sock_path = path_in(state_dir, AB_EGRESS_CONTROL);
	log_path = path_in(state_dir, AB_EGRESS_LOG);
	old_log = path_in(state_dir, AB_EGRESS_LOG ".1");
	if (!sock_path || !log_path || !old_log) {
		r = ab_error_set(err, ENOMEM, "cannot start the egress proxy");
		goto fail;
	}
	for (size_t i = 0; i < cfg->n_net_rules; i++) {
		r = ab_net_policy_add(&policy, &cfg->net_rules[i]);
		if (r < 0) {
			r = ab_error_set(err, -r, "cannot add the rule '%s' to the egress policy",
					 cfg->net_rules[i].text);
			goto fail;
		}
	}
	control = make_control(sock_path, err);
	if (control < 0) {
		r = control;
		goto fail;
	}
	log = open_log(log_path, old_log, err);
	if (log < 0) {
		r = log;
		goto fail_sock;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		r = ab_error_set(err, errno, "cannot create the egress proxy's lifeline");
		goto fail_sock;
	}
	life_r = pipefd[0];
	life_w = pipefd[1];
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		r = ab_error_set(err, errno, "cannot create the egress proxy's lifeline");
		goto fail_sock;
	}
	ready_r = pipefd[0];
	ready_w = pipefd[1];

	fflush(NULL); /* nothing buffered is written twice */
	pid = fork();
	if (pid < 0) {
		r = ab_error_set(err, errno, "cannot start the egress proxy");
		goto fail_sock;
	}
	if (pid == 0) {
		close(life_w);
		close(ready_r);
		run_proxy(cfg, name, &policy, listeners, n_listeners, control, log, life_r, ready_w, parent);
	}

	ab_net_policy_free(&policy);
	close_listeners(listeners, n_listeners);
	close(ready_w);
	ready_w = -1;
	/* The sandbox builds its root meanwhile; its command waits for this answer. */
	if ((r = wait_ready(ready_r, pid, err)) < 0) {
		unlink(sock_path);
		return r;
	}
	*pid_out = pid;
	*lifeline_out = TAKE_FD(life_w);
	return 0;

fail_sock:
	unlink(sock_path);
fail:
	ab_net_policy_free(&policy);
	close_listeners(listeners, n_listeners);
	return r;
}
