/* probe: a small static program that integration tests run INSIDE a sandbox.
 *
 * Each subcommand observes one thing and prints what it saw as `key=value` lines, so a
 * shell test can assert with grep. Errors are reported by errno name ("EPERM"), success
 * as "OK". The exit status is 0 whatever was observed; 2 means the probe was misused.
 *
 * This file holds main, the command dispatch, the output helpers and the status, file,
 * process and misc commands; probe-try.c the syscalls a sandbox must refuse
 * (`probe try NAME`); probe-net.c the network commands, the egress clients and servers
 * and the benchmark servers. probe.h declares what they share.
 */
#include <dirent.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

/* ---- output helpers ---------------------------------------------------------------- */

const char *errname(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "EUNKNOWN";
}

/* Prints `key=OK` when r >= 0, else `key=ERRNAME` for the errno e. */
void report(const char *key, long r, int e)
{
	if (r >= 0)
		printf("%s=OK\n", key);
	else
		printf("%s=%s\n", key, errname(e));
}

int usage(void)
{
	fputs("usage: probe status | try NAME | read PATH | write PATH [BYTES] | ls PATH\n"
	      "       | pids | ifaces | link-gso IFNAME | env [NAME...] | exit N | kill-self SIGNUM\n"
	      "       | sleep SECONDS [TAG...] | connect IP PORT | listen IP PORT SECONDS\n"
	      "       | connect-unix PATH|@NAME | listen-unix PATH|@NAME SECONDS | hostname\n"
	      "       | syscall-bench N | wait-signal [TIMEOUT] | spawn-zombies N | tty\n"
	      "       | http-get HOST PORT PATH | dns-query NAME [TYPE] | udp-send IP PORT\n"
	      "       | hold-conns HOST PORT N SECS | ping-raw IP | send-raw HOST PORT [SECS]\n"
	      "       | serve-bytes PORT N [SECS] | serve-echo PORT [SECS]\n"
	      "       | http-bench HOST PORT PATH N [PROXY_IP:PORT]\n"
	      "       | echo-conns HOST PORT N [PROXY_IP:PORT]\n"
	      "       | without-mount-api CMD [ARG...] | without-layer-fds CMD [ARG...]\n",
	      stderr);
	return 2;
}

bool parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* ---- status ------------------------------------------------------------------------ */

static int cmd_status(void)
{
	static const char *const keys[] = { "CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh",
					    "NoNewPrivs", "Seccomp", "Seccomp_filters" };
	FILE *f = fopen("/proc/self/status", "re");
	if (!f) {
		printf("status=%s\n", errname(errno));
	} else {
		char line[512];
		while (fgets(line, sizeof(line), f)) {
			char *colon = strchr(line, ':');
			if (!colon)
				continue;
			*colon = '\0';
			for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
				if (strcmp(line, keys[i]) != 0)
					continue;
				char *v = colon + 1;
				v += strspn(v, " \t");
				v[strcspn(v, "\n")] = '\0';
				printf("%s=%s\n", keys[i], v);
			}
		}
		fclose(f);
	}
	printf("uid=%u\ngid=%u\neuid=%u\negid=%u\n", (unsigned)getuid(), (unsigned)getgid(),
	       (unsigned)geteuid(), (unsigned)getegid());
	return 0;
}

/* ---- files ------------------------------------------------------------------------- */

static int cmd_read(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		printf("read=%s\n", errname(errno));
		return 0;
	}
	char buf[65536], head[201] = "";
	size_t total = 0;
	bool first = true;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			printf("read=%s\n", errname(errno));
			close(fd);
			return 0;
		}
		if (n == 0)
			break;
		if (first) {
			size_t len = (size_t)n < sizeof(head) - 1 ? (size_t)n : sizeof(head) - 1;
			memcpy(head, buf, len);
			head[len] = '\0';
			head[strcspn(head, "\n")] = '\0';
			first = false;
		}
		total += (size_t)n;
	}
	close(fd);
	printf("read=OK\nbytes=%zu\nhead=%s\n", total, head);
	return 0;
}

/* Appends BYTES bytes (default: one line) to PATH, creating it. */
static int cmd_write(const char *path, const char *bytes_arg)
{
	long want = -1;
	if (bytes_arg && !parse_long(bytes_arg, 0, LONG_MAX, &want))
		return usage();
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		printf("write=%s\n", errname(errno));
		return 0;
	}
	static char chunk[65536];
	const char *line = "agentbox-probe\n";
	const char *src = line;
	size_t left = strlen(line);
	if (want >= 0) {
		memset(chunk, 'x', sizeof(chunk));
		left = (size_t)want;
	}
	size_t written = 0;
	int err = 0;
	while (left > 0) {
		/* One line, or the same 64 KiB chunk again and again. */
		size_t n = left;
		if (want >= 0) {
			src = chunk;
			if (n > sizeof(chunk))
				n = sizeof(chunk);
		} else {
			src = line + written;
		}
		ssize_t w = write(fd, src, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			err = errno;
			break;
		}
		written += (size_t)w;
		left -= (size_t)w;
	}
	if (!err && close(fd) < 0)
		err = errno;
	else if (err)
		close(fd);
	if (err)
		printf("write=%s\n", errname(err));
	else
		printf("write=OK\n");
	printf("written=%zu\n", written);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_ls(const char *path)
{
	DIR *d = opendir(path);
	if (!d) {
		printf("ls=%s\n", errname(errno));
		return 0;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **p = realloc(names, cap * sizeof(*names));
			if (!p)
				abort();
			names = p;
		}
		names[n] = strdup(de->d_name);
		if (!names[n])
			abort();
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	printf("ls=OK\ncount=%zu\n", n);
	for (size_t i = 0; i < n; i++) {
		printf("entry=%s\n", names[i]);
		free(names[i]);
	}
	free(names);
	return 0;
}

/* ---- processes --------------------------------------------------------------------- */

static bool is_number(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static void read_small(const char *path, char *buf, size_t size)
{
	buf[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
}

static int cmd_pids(void)
{
	DIR *d = opendir("/proc");
	if (!d) {
		printf("pids=%s\n", errname(errno));
		return 0;
	}
	size_t count = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!is_number(de->d_name))
			continue;
		printf("pid=%s\n", de->d_name);
		count++;
	}
	closedir(d);
	char comm[64];
	read_small("/proc/1/comm", comm, sizeof(comm));
	comm[strcspn(comm, "\n")] = '\0';
	printf("count=%zu\nself=%d\npid1_comm=%s\n", count, (int)getpid(), comm);
	return 0;
}

static int cmd_sleep(const char *arg)
{
	long secs;
	if (!parse_long(arg, 0, 86400, &secs))
		return usage();
	printf("pid=%d\n", (int)getpid());
	fflush(stdout);
	struct timespec ts = { .tv_sec = secs, .tv_nsec = 0 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	printf("slept=%ld\n", secs);
	return 0;
}

static int cmd_kill_self(const char *arg)
{
	long sig;
	if (!parse_long(arg, 1, 64, &sig))
		return usage();
	fflush(stdout);
	signal((int)sig, SIG_DFL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, (int)sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	kill(getpid(), (int)sig);
	sleep(1);
	printf("kill-self=survived\n");
	return 1;
}

static int cmd_wait_signal(const char *timeout_arg)
{
	long timeout = 60;
	if (timeout_arg && !parse_long(timeout_arg, 1, 86400, &timeout))
		return usage();
	/* A disposition inherited as "ignore" must not hide a signal from sigtimedwait. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	printf("ready=%d\n", (int)getpid());
	fflush(stdout);
	struct timespec ts = { .tv_sec = timeout, .tv_nsec = 0 };
	int sig;
	while ((sig = sigtimedwait(&set, NULL, &ts)) < 0 && errno == EINTR)
		;
	if (sig < 0) {
		printf("signal=none\n");
		return 1;
	}
	printf("signal=%d\n", sig);
	return 0;
}

/* Counts the processes in /proc that are zombies. */
static size_t count_zombies(void)
{
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!is_number(de->d_name))
			continue;
		char path[300], stat[512];
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		read_small(path, stat, sizeof(stat));
		char *rp = strrchr(stat, ')'); /* comm may hold spaces and parentheses */
		if (rp && rp[1] == ' ' && rp[2] == 'Z')
			n++;
	}
	closedir(d);
	return n;
}

/* A child forks N grandchildren that exit at once, and exits without waiting for them:
 * they become zombies of whoever reaps orphans (the sandbox's PID 1). Then we watch them
 * disappear, for up to 2 seconds. */
static int cmd_spawn_zombies(const char *arg)
{
	long n;
	if (!parse_long(arg, 1, 1000, &n))
		return usage();
	fflush(stdout);
	pid_t mid = fork();
	if (mid < 0) {
		printf("spawn=%s\n", errname(errno));
		return 0;
	}
	if (mid == 0) {
		long made = 0;
		for (long i = 0; i < n; i++) {
			pid_t c = fork();
			if (c == 0)
				_exit(0);
			if (c > 0)
				made++;
		}
		_exit(made == n ? 0 : 1);
	}
	int status = 0;
	waitpid(mid, &status, 0);
	printf("spawned=%ld\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? n : -1L);
	size_t z = count_zombies();
	for (int i = 0; i < 200 && z > 0; i++) {
		usleep(10000);
		z = count_zombies();
	}
	printf("zombies=%zu\n", z);
	return 0;
}

/* ---- misc -------------------------------------------------------------------------- */

extern char **environ;

static int cmd_env(int argc, char **argv)
{
	if (argc == 0) {
		for (char **e = environ; *e; e++)
			printf("%s\n", *e);
		return 0;
	}
	for (int i = 0; i < argc; i++) {
		const char *v = getenv(argv[i]);
		if (v)
			printf("%s=%s\n", argv[i], v);
		else
			printf("unset=%s\n", argv[i]);
	}
	return 0;
}

static int cmd_syscall_bench(const char *arg)
{
	long n;
	if (!parse_long(arg, 1, 1000000000L, &n))
		return usage();
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
	printf("calls=%ld\nns_per_call=%.2f\n", n, ns / (double)n);
	return 0;
}

static int cmd_tty(void)
{
	for (int fd = 0; fd <= 2; fd++)
		printf("tty%d=%d\n", fd, isatty(fd) ? 1 : 0);
	return 0;
}

/* Runs argv under the seccomp filter (inherited by all it starts, with no_new_privs). */
static int exec_filtered(struct sock_filter *filter, unsigned short len, char **argv)
{
	struct sock_fprog prog = { .len = len, .filter = filter };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) {
		printf("filter=%s\n", errname(errno));
		return 1;
	}
	execvp(argv[0], argv);
	printf("exec=%s\n", errname(errno));
	return 127;
}

/* without-mount-api CMD [ARG...]: runs CMD as on a kernel older than the mount API
 * (Linux 5.2): fsopen, fsconfig, fsmount and move_mount fail with ENOSYS, through a
 * seccomp filter that CMD and all it starts inherit (with no_new_privs). The four calls
 * have the same numbers on every architecture (428 and up). Prints nothing itself. */
static int cmd_without_mount_api(char **argv)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_move_mount, 4, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fsopen, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fsconfig, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fsmount, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
	};
	return exec_filtered(filter, sizeof(filter) / sizeof(filter[0]), argv);
}

/* without-layer-fds CMD [ARG...]: runs CMD as on a kernel whose overlayfs takes its layers
 * only as paths (before Linux 6.13): fsconfig(FSCONFIG_SET_FD) fails with EINVAL, through
 * an inherited seccomp filter as above. Prints nothing itself. */
static int cmd_without_layer_fds(char **argv)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fsconfig, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 5 /* FSCONFIG_SET_FD */, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	return exec_filtered(filter, sizeof(filter) / sizeof(filter[0]), argv);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	const char *cmd = argv[1];
	int nargs = argc - 2;
	char **args = argv + 2;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(cmd, "status") == 0 && nargs == 0)
		rc = cmd_status();
	else if (strcmp(cmd, "try") == 0 && nargs == 1)
		rc = cmd_try(args[0]);
	else if (strcmp(cmd, "read") == 0 && nargs == 1)
		rc = cmd_read(args[0]);
	else if (strcmp(cmd, "write") == 0 && (nargs == 1 || nargs == 2))
		rc = cmd_write(args[0], nargs == 2 ? args[1] : NULL);
	else if (strcmp(cmd, "ls") == 0 && nargs == 1)
		rc = cmd_ls(args[0]);
	else if (strcmp(cmd, "pids") == 0 && nargs == 0)
		rc = cmd_pids();
	else if (strcmp(cmd, "ifaces") == 0 && nargs == 0)
		rc = cmd_ifaces();
	else if (strcmp(cmd, "link-gso") == 0 && nargs == 1)
		rc = cmd_link_gso(args[0]);
	else if (strcmp(cmd, "env") == 0)
		rc = cmd_env(nargs, args);
	else if (strcmp(cmd, "exit") == 0 && nargs == 1) {
		long v;
		if (!parse_long(args[0], 0, 255, &v))
			return usage();
		rc = (int)v;
	} else if (strcmp(cmd, "kill-self") == 0 && nargs == 1)
		rc = cmd_kill_self(args[0]);
	else if (strcmp(cmd, "sleep") == 0 && nargs >= 1) /* extra words: a tag to find it by */
		rc = cmd_sleep(args[0]);
	else if (strcmp(cmd, "connect") == 0 && nargs == 2)
		rc = cmd_connect(args[0], args[1]);
	else if (strcmp(cmd, "listen") == 0 && nargs == 3)
		rc = cmd_listen(args[0], args[1], args[2]);
	else if (strcmp(cmd, "connect-unix") == 0 && nargs == 1)
		rc = cmd_connect_unix(args[0]);
	else if (strcmp(cmd, "listen-unix") == 0 && nargs == 2)
		rc = cmd_listen_unix(args[0], args[1]);
	else if (strcmp(cmd, "hostname") == 0 && nargs == 0)
		rc = cmd_hostname();
	else if (strcmp(cmd, "syscall-bench") == 0 && nargs == 1)
		rc = cmd_syscall_bench(args[0]);
	else if (strcmp(cmd, "wait-signal") == 0 && nargs <= 1)
		rc = cmd_wait_signal(nargs == 1 ? args[0] : NULL);
	else if (strcmp(cmd, "spawn-zombies") == 0 && nargs == 1)
		rc = cmd_spawn_zombies(args[0]);
	else if (strcmp(cmd, "tty") == 0 && nargs == 0)
		rc = cmd_tty();
	else if (strcmp(cmd, "http-get") == 0 && nargs == 3)
		rc = cmd_http_get(args[0], args[1], args[2]);
	else if (strcmp(cmd, "dns-query") == 0 && (nargs == 1 || nargs == 2))
		rc = cmd_dns_query(args[0], nargs == 2 ? args[1] : NULL);
	else if (strcmp(cmd, "hold-conns") == 0 && nargs == 4)
		rc = cmd_hold_conns(args[0], args[1], args[2], args[3]);
	else if (strcmp(cmd, "udp-send") == 0 && nargs == 2)
		rc = cmd_udp_send(args[0], args[1]);
	else if (strcmp(cmd, "ping-raw") == 0 && nargs == 1)
		rc = cmd_ping_raw(args[0]);
	else if (strcmp(cmd, "send-raw") == 0 && (nargs == 2 || nargs == 3))
		rc = cmd_send_raw(args[0], args[1], nargs == 3 ? args[2] : NULL);
	else if (strcmp(cmd, "serve-bytes") == 0 && (nargs == 2 || nargs == 3))
		rc = cmd_serve_bytes(args[0], args[1], nargs == 3 ? args[2] : NULL);
	else if (strcmp(cmd, "serve-echo") == 0 && (nargs == 1 || nargs == 2))
		rc = cmd_serve_echo(args[0], nargs == 2 ? args[1] : NULL);
	else if (strcmp(cmd, "http-bench") == 0 && (nargs == 4 || nargs == 5))
		rc = cmd_http_bench(args[0], args[1], args[2], args[3], nargs == 5 ? args[4] : NULL);
	else if (strcmp(cmd, "echo-conns") == 0 && (nargs == 3 || nargs == 4))
		rc = cmd_echo_conns(args[0], args[1], args[2], nargs == 4 ? args[3] : NULL);
	else if (strcmp(cmd, "without-mount-api") == 0 && nargs >= 1)
		rc = cmd_without_mount_api(args);
	else if (strcmp(cmd, "without-layer-fds") == 0 && nargs >= 1)
		rc = cmd_without_layer_fds(args);
	else
		return usage();
	fflush(stdout);
	return rc;
}
