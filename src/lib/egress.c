/* Starting a filtered sandbox's egress proxy: its control socket and audit log in the
 * state directory, then a process of its own that keeps only its fds. It starts before
 * the sandbox is cloned, so that its setup and confinement overlap the sandbox's; the
 * sandbox's listeners reach it later.
 *
 *   agentbox ── fork ──> proxy: setsid, PDEATHSIG, fds 3.. = control, log, lifeline,
 *      │                        ready, listeners socket; everything else closed;
 *      │                        ab_proxy_run: setup, confinement, then waits
 *      ├── clones the sandbox, which makes its listeners and sends them up
 *      ├── net_ready: listeners ── SCM_RIGHTS ──> proxy; waits for its "OK" on ready
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
#define EGRESS_FDS 6 /* what the proxy process keeps: control, log, lifeline, ready, listeners, old log */

static char *path_in(const char *dir, const char *file)
{
	char *p;

	return asprintf(&p, "%s/%s", dir, file) < 0 ? NULL : p;
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
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

/* AGENTBOX_NET_LOG_MAX: what a sandbox's network log may take (net.log and net.log.1
 * together), in bytes, from 64 KiB to 4 GiB; AB_AUDIT_LOG_MAX without it. */
static int net_log_max(uint64_t *out, struct ab_error *err)
{
	const char *env = getenv("AGENTBOX_NET_LOG_MAX");
	unsigned long long v;
	char *end;

	*out = AB_AUDIT_LOG_MAX;
	if (!env || !*env)
		return 0;
	errno = 0;
	v = strtoull(env, &end, 10);
	if (errno || end == env || *end || env[0] == '-' || v < (64ULL << 10) || v > (4ULL << 30))
		return ab_error_set(err, 0,
				    "AGENTBOX_NET_LOG_MAX '%s' is not a size in bytes from 65536 to 4294967296: "
				    "fix it or unset it",
				    env);
	*out = v;
	return 0;
}

/* STATE_DIR/net.log for appending (and reading: the proxy copies it into net.log.1 when
 * it rotates, see audit.c), 0600. A log already half AB_AUDIT_LOG_MAX is kept as
 * net.log.1 and a new one begins. */
static int open_log(const char *path, const char *old_path, uint64_t log_max, struct ab_error *err)
{
	struct stat st;
	int fd;

	if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size >= log_max / 2 &&
	    rename(path, old_path) < 0)
		return ab_error_set(err, errno, "cannot rotate the network log '%s'", path);
	fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0)
		return ab_error_set(err, errno, "cannot open the network log '%s'", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return ab_error_set(err, EINVAL, "cannot open the network log '%s': not a regular file", path);
	}
	return fd;
}

/* In the child: fds[i] moves to 3 + i (one of -1 stays -1), stdin and stdout to /dev/null
 * (stderr stays, for a sanitizer's report), every other fd is closed. Returns 0 or -errno. */
static int keep_only(int *fds, size_t n)
{
	int base = 3 + (int)n, tmp[EGRESS_FDS];
	int null;

	if (n > sizeof(tmp) / sizeof(tmp[0]))
		return -E2BIG;
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= base)
			base = fds[i] + 1;
	/* First above every fd involved, then down into place: no move overwrites a
	 * descriptor still to be moved. */
	for (size_t i = 0; i < n; i++) {
		tmp[i] = fds[i] < 0 ? -1 : fcntl(fds[i], F_DUPFD_CLOEXEC, base);
		if (fds[i] >= 0 && tmp[i] < 0)
			return -errno;
	}
	for (size_t i = 0; i < n; i++) {
		if (tmp[i] < 0)
			continue; /* none given: stays -1, and 3 + i stays free */
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
run_proxy(const struct ab_config *cfg, const char *name, struct ab_net_policy *policy, int control_fd,
	  int log_fd, int lifeline_fd, int ready_fd, int listeners_fd, int log_old_fd, uint64_t log_max,
	  pid_t parent)
{
	struct ab_proxy_config pc = { .control_fd = -1, .log_fd = -1, .log_old_fd = -1, .lifeline_fd = -1,
				      .ready_fd = -1, .listeners_fd = -1 };
	int fds[EGRESS_FDS] = { control_fd, log_fd, lifeline_fd, ready_fd, listeners_fd, log_old_fd };
	struct ab_error err = { 0 };
	int r;

	/* Gone with the process that started it (and its lifeline with it). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent)
		_exit(1);
	/* Its own session: a Ctrl-C on agentbox's terminal is for the sandbox, not for it. */
	setsid();
	reset_signals();
	if (keep_only(fds, EGRESS_FDS) < 0)
		_exit(1);

	snprintf(pc.name, sizeof(pc.name), "%s", name);
	pc.policy = *policy; /* this process's copy of the parent's memory; the proxy frees it */
	pc.hosts = cfg->net_hosts;
	pc.n_hosts = cfg->n_net_hosts;
	pc.n_listeners = 0; /* they come on listeners_fd */
	pc.control_fd = fds[0];
	pc.log_fd = fds[1];
	pc.lifeline_fd = fds[2];
	pc.ready_fd = fds[3];
	pc.listeners_fd = fds[4];
	pc.log_old_fd = fds[5];
	pc.log_max = log_max;
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

/* "OK" from the proxy once it is confined, with its listeners, and serving; anything
 * else is why it is not. Returns 0, or -1 with the text in msg (empty: none came). */
static int read_ready(int fd, char *msg, size_t size)
{
	size_t got = 0;

	for (;;) {
		ssize_t n = read(fd, msg + got, size - 1 - got);
		if (n > 0 && (got += (size_t)n) < size - 1)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
	msg[got] = '\0';
	return got == 2 && memcmp(msg, "OK", 2) == 0 ? 0 : -1;
}

static void reap(pid_t pid)
{
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

int ab_egress_spawn(const struct ab_config *cfg, const char *state_dir, struct ab_egress *eg,
		    struct ab_error *err)
{
	_cleanup_free_ char *sock_path = NULL, *log_path = NULL, *old_log = NULL;
	_cleanup_close_ int control = -1, log = -1, log_old = -1, life_r = -1, life_w = -1, ready_r = -1,
			    ready_w = -1, lis_ours = -1, lis_theirs = -1;
	struct ab_net_policy policy = { 0 };
	const char *name = cfg->name;
	uint64_t log_max;
	int pipefd[2], r = 0;
	pid_t parent = getpid(), pid;

	*eg = (struct ab_egress)AB_EGRESS_INIT;
	if ((r = net_log_max(&log_max, err)) < 0)
		return r;
	if (!name) {
		const char *slash = strrchr(state_dir, '/');
		name = slash ? slash + 1 : state_dir;
	}
	sock_path = path_in(state_dir, AB_EGRESS_CONTROL);
	log_path = path_in(state_dir, AB_EGRESS_LOG);
	old_log = path_in(state_dir, AB_EGRESS_LOG ".1");
	if (!sock_path || !log_path || !old_log)
		return ab_error_set(err, ENOMEM, "cannot start the egress proxy");
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
	log = open_log(log_path, old_log, log_max, err);
	if (log < 0) {
		r = log;
		goto fail_sock;
	}
	/* Where the proxy rotates to while it runs. Without it the proxy stops logging at
	 * the cap instead, which is no reason not to start. */
	log_old = open(old_log, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		r = ab_error_set(err, errno, "cannot create the egress proxy's lifeline");
		goto fail_sock;
	}
	life_r = pipefd[0];
	life_w = pipefd[1];
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		r = ab_error_set(err, errno, "cannot create the egress proxy's ready pipe");
		goto fail_sock;
	}
	ready_r = pipefd[0];
	ready_w = pipefd[1];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pipefd) < 0) {
		r = ab_error_set(err, errno, "cannot create the egress proxy's listener socket");
		goto fail_sock;
	}
	lis_ours = pipefd[0];
	lis_theirs = pipefd[1];

	fflush(NULL); /* nothing buffered is written twice */
	pid = fork();
	if (pid < 0) {
		r = ab_error_set(err, errno, "cannot start the egress proxy");
		goto fail_sock;
	}
	if (pid == 0) {
		close(life_w);
		close(ready_r);
		close(lis_ours);
		run_proxy(cfg, name, &policy, control, log, life_r, ready_w, lis_theirs, log_old, log_max, parent);
	}

	ab_net_policy_free(&policy);
	/* The proxy sets itself up meanwhile; ab_egress_hand_listeners waits for its answer. */
	eg->pid = pid;
	eg->lifeline_fd = TAKE_FD(life_w);
	eg->listeners_fd = TAKE_FD(lis_ours);
	eg->ready_fd = TAKE_FD(ready_r);
	return 0;

fail_sock:
	unlink(sock_path);
fail:
	ab_net_policy_free(&policy);
	return r;
}

/* One message: the kinds and families as the payload, the fds as SCM_RIGHTS. */
static int send_listeners(int sock, const struct ab_proxy_listener *listeners, size_t n)
{
	struct ab_proxy_listener_wire wire[AB_PROXY_MAX_LISTENERS];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * AB_PROXY_MAX_LISTENERS)];
	} ctl;
	struct iovec iov = { .iov_base = wire, .iov_len = n * sizeof(wire[0]) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			      .msg_controllen = CMSG_SPACE(sizeof(int) * n) };
	struct cmsghdr *c;
	ssize_t sent;

	memset(&ctl, 0, sizeof(ctl));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * n);
	for (size_t i = 0; i < n; i++) {
		wire[i] = (struct ab_proxy_listener_wire){ .kind = (int32_t)listeners[i].kind,
							   .family = listeners[i].family };
		memcpy(CMSG_DATA(c) + i * sizeof(int), &listeners[i].fd, sizeof(int));
	}
	do
		sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (sent < 0 && errno == EINTR);
	if (sent < 0)
		return -errno;
	return (size_t)sent == iov.iov_len ? 0 : -EIO;
}

int ab_egress_hand_listeners(struct ab_egress *eg, struct ab_proxy_listener *listeners, size_t n,
			     struct ab_error *err)
{
	char msg[AB_ERROR_MSG_MAX];
	int r;

	if (eg->pid <= 0 || eg->listeners_fd < 0 || eg->ready_fd < 0) {
		close_listeners(listeners, n);
		return ab_error_set(err, ESRCH, "the egress proxy is not running");
	}
	if (n == 0 || n > AB_PROXY_MAX_LISTENERS) {
		close_listeners(listeners, n);
		return ab_error_set(err, EINVAL, "cannot hand %zu listeners to the egress proxy", n);
	}
	r = send_listeners(eg->listeners_fd, listeners, n);
	close_listeners(listeners, n); /* the proxy's own now (or nobody's) */
	close_fd(&eg->listeners_fd);  /* a proxy still waiting sees the end: no wait forever below */
	/* The proxy confined itself while the sandbox was built; registering the listeners is
	 * all that is left before its answer. */
	if (read_ready(eg->ready_fd, msg, sizeof(msg)) == 0) {
		close_fd(&eg->ready_fd);
		return 0;
	}
	close_fd(&eg->ready_fd);
	close_fd(&eg->lifeline_fd);
	kill(eg->pid, SIGKILL);
	reap(eg->pid);
	eg->pid = -1;
	if (msg[0])
		return ab_error_set(err, 0, "the egress proxy could not start: %s", msg);
	/* EPIPE and ECONNRESET only say that the proxy was gone before the send: its exit is
	 * the news, and the race decides which of the two the caller would otherwise see. */
	if (r < 0 && r != -EPIPE && r != -ECONNRESET)
		return ab_error_set(err, -r, "cannot hand the listeners to the egress proxy");
	return ab_error_set(err, 0, "the egress proxy could not start: it exited during start-up");
}

void ab_egress_stop(struct ab_egress *eg)
{
	if (!eg)
		return;
	/* Either end tells a proxy still waiting for its listeners that none will come; a
	 * serving one logs what it still holds and exits. */
	close_fd(&eg->lifeline_fd);
	close_fd(&eg->listeners_fd);
	close_fd(&eg->ready_fd);
	if (eg->pid > 0) {
		reap(eg->pid);
		eg->pid = -1;
	}
}
