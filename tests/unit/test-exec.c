/* agentbox exec against the real kernel: sandboxes started with ab_sandbox_run in forked
 * children (as `agentbox run` starts them), commands run in them with ab_sandbox_exec, and
 * what the commands see compared with what the sandbox's own command saw.
 *
 * Fixture:
 *   TOP/                  mkdtemp under $TMPDIR, removed at exit
 *   └── ws/               the workspace of every sandbox (bound at the same path inside)
 *       ├── probe         copy of the static probe ($PROBE, or ../probe beside this test)
 *       └── ready-a       made by sandbox A's command once it recorded what it sees
 *
 *   A  --workspace-mode rw --ulimit nofile=200, default seccomp, no network; its command
 *      writes into its own /tmp (invisible to the host) its status, namespaces, limits and
 *      a marker, then sleeps.
 *   B  --user root --network host --workspace-mode ro; sleeps; killed near the end.
 *   C  a python3 command that makes itself not dumpable (skipped without python3).
 *   T  /bin/true, run again and again to time `run` against `exec`.
 *
 * Every sandbox is started by a child that dies with this process (parent-death signal),
 * and each sandbox's init dies with that child: nothing outlives the test. Run as root and
 * as an unprivileged user; AB_MUST_WORK=1 turns skips into failures. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/config.h"
#include "lib/features.h"
#include "lib/join.h"
#include "lib/seccomp.h"
#include "lib/spawn.h"
#include "shared/error.h"
#include "tap.h"

extern char **environ;

static char top[1024], ws[1088], probe[1152];
static struct ab_features features;

struct sandbox {
	const char *label;
	struct ab_config cfg; /* parsed again here, as the CLI re-parses a sandbox's run arguments */
	bool have_cfg;
	struct ab_seccomp_set sc;
	pid_t runner; /* the forked child in ab_sandbox_run */
	pid_t init;
};

static struct sandbox box_a = { .label = "A" }, box_b = { .label = "B" };

static void skip(const char *what, const char *why)
{
	const char *must = getenv("AB_MUST_WORK");
	ok(!(must && strcmp(must, "1") == 0), "%s # SKIP %s", what, why);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static bool has_line(const char *out, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0' || p[n] == '\r'))
			return true;
	return false;
}

/* The value of the first KEY= line, or "" (a static buffer, one at a time). */
static const char *value_of(const char *out, const char *key)
{
	static char buf[256];
	size_t n = strlen(key);

	buf[0] = '\0';
	for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, key, n) == 0 && p[n] == '=') {
			size_t len = strcspn(p + n + 1, "\r\n");
			if (len >= sizeof(buf))
				len = sizeof(buf) - 1;
			memcpy(buf, p + n + 1, len);
			buf[len] = '\0';
			break;
		}
	return buf;
}

static int read_text(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	buf[0] = '\0';
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in = open(from, O_RDONLY | O_CLOEXEC), out;

	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	if (out < 0) {
		close(in);
		return -errno;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	close(in);
	if (close(out) < 0 || n < 0)
		return -EIO;
	return 0;
}

/* ---- sandboxes ---------------------------------------------------------------------- */

static void on_started(pid_t init_pid, void *data)
{
	(void)!write(*(int *)data, &init_pid, sizeof(init_pid));
}

static int parse(struct sandbox *sb, char **args, struct ab_error *err)
{
	int argc = 0;

	while (args[argc])
		argc++;
	if (ab_config_parse_run(argc, args, environ, &sb->cfg, err) < 0)
		return -1;
	sb->have_cfg = true;
	if (ab_seccomp_prepare(sb->cfg.seccomp_mode, sb->cfg.seccomp_profile, &sb->sc, err) < 0)
		return -1;
	return 0;
}

/* Starts sb (args: what follows "agentbox run") in a forked child, as `agentbox run` would,
 * and waits for its init pid from the started hook. */
static int start_sandbox(struct sandbox *sb, char **args, struct ab_error *err)
{
	int p[2], r;
	struct pollfd pf;

	if (parse(sb, args, err) < 0)
		return -1;
	if (pipe2(p, O_CLOEXEC) < 0)
		return ab_error_set(err, errno, "pipe");
	fflush(stdout);
	sb->runner = fork();
	if (sb->runner == 0) {
		int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC), code = 125;
		struct ab_run_hooks hooks = { .started = on_started, .data = &p[1] };
		struct ab_error run_err = { 0 };

		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		close(p[0]);
		dup2(devnull, STDOUT_FILENO); /* nothing of the sandbox's may reach the TAP stream */
		r = ab_sandbox_run(&sb->cfg, &features, features.seccomp ? &sb->sc : NULL, &hooks, &code, &run_err);
		if (r < 0)
			fprintf(stderr, "# sandbox %s: %s\n", sb->label, run_err.msg);
		_exit(r < 0 ? 125 : code);
	}
	close(p[1]);
	pf = (struct pollfd){ .fd = p[0], .events = POLLIN };
	r = poll(&pf, 1, 20000) == 1 && read(p[0], &sb->init, sizeof(sb->init)) == (ssize_t)sizeof(sb->init) ? 0 : -1;
	close(p[0]);
	if (r < 0)
		return ab_error_set(err, 0, "sandbox %s did not start", sb->label);
	return 0;
}

static void stop_sandbox(struct sandbox *sb)
{
	if (sb->runner > 0) {
		kill(sb->runner, SIGKILL); /* its init dies with it, and the pid namespace with init */
		waitpid(sb->runner, NULL, 0);
		sb->runner = 0;
	}
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

static void cleanup(void)
{
	stop_sandbox(&box_a);
	stop_sandbox(&box_b);
	if (top[0]) {
		nftw(top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		top[0] = '\0';
	}
}

/* ---- running commands in them ------------------------------------------------------- */

struct exec_opts {
	const char *cwd;
	char **env; /* NULL: the sandbox's own */
	bool tty;
	char *const *cgroup_procs;
	size_t n_cgroup_procs;
};

struct result {
	int r, code;
	struct ab_error err;
	char out[32768];
};

static void exec_in(struct sandbox *sb, char **argv, const struct exec_opts *o, struct result *res)
{
	static const struct exec_opts none;
	struct ab_exec_request req;
	int mfd, saved;
	ssize_t n;

	if (!o)
		o = &none;
	req = (struct ab_exec_request){
		.cfg = &sb->cfg,
		.argv = argv,
		.env = o->env ? o->env : sb->cfg.env,
		.cwd = o->cwd,
		.init_pid = sb->init,
		.cgroup_procs = o->cgroup_procs,
		.n_cgroup_procs = o->n_cgroup_procs,
		.tty = o->tty,
		.landlock_abi = features.landlock_abi,
		.seccomp = features.seccomp ? &sb->sc : NULL,
	};
	memset(res, 0, sizeof(*res));
	res->code = -1;
	/* The command's stdout goes to a memfd in place of ours (the TAP stream). */
	mfd = memfd_create("exec-out", MFD_CLOEXEC);
	fflush(stdout);
	saved = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 10);
	dup2(mfd, STDOUT_FILENO);
	res->r = ab_sandbox_exec(&req, &res->code, &res->err);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	n = pread(mfd, res->out, sizeof(res->out) - 1, 0);
	res->out[n > 0 ? n : 0] = '\0';
	close(mfd);
}

/* exec_in with argv given inline. */
#define EXEC(sb, o, res, ...) exec_in((sb), (char *[]){ __VA_ARGS__, NULL }, (o), (res))

static void diag_result(const char *what, const struct result *res)
{
	printf("# %s: r=%d code=%d err='%s'\n", what, res->r, res->code, res->err.msg);
	for (const char *p = res->out; *p;) {
		size_t len = strcspn(p, "\n");
		printf("#   | %.*s\n", (int)len, p);
		p += len;
		if (*p)
			p++;
	}
}

#define CHECK(cond, res, ...)                                   \
	do {                                                    \
		bool c_ = (cond);                               \
		ok(c_, __VA_ARGS__);                            \
		if (!c_)                                        \
			diag_result("last exec", (res));        \
	} while (0)

/* Is there a live process with `word` among its arguments? (cmdline is readable by all) */
static bool process_with_arg(const char *word)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	bool found = false;

	if (!d)
		return false;
	while (!found && (de = readdir(d))) {
		char path[300], buf[4096], stat[512], *rp;
		int fd;
		ssize_t n;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		if (read_text(path, stat, sizeof(stat)) < 0 || !(rp = strrchr(stat, ')')) || rp[2] == 'Z')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		for (ssize_t off = 0; n > 0 && off < n; off += (ssize_t)strlen(buf + off) + 1) {
			buf[n] = '\0';
			if (strcmp(buf + off, word) == 0)
				found = true;
		}
	}
	closedir(d);
	return found;
}

static bool wait_for(bool (*cond)(const char *), const char *arg, bool want, long ms)
{
	for (long waited = 0; waited < ms; waited += 20) {
		if (cond(arg) == want)
			return true;
		sleep_ms(20);
	}
	return cond(arg) == want;
}

static bool file_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static bool file_has_ready(const char *path)
{
	char buf[4096];
	return read_text(path, buf, sizeof(buf)) == 0 && strstr(buf, "ready=") != NULL;
}

/* Waits for a child for at most ms; its exit code (128+N for a signal), or -1 when it was
 * still running (then it is killed). */
static int wait_child_ms(pid_t pid, long ms)
{
	int status;

	for (long waited = 0;; waited += 20) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (r < 0 || waited >= ms)
			break;
		sleep_ms(20);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

/* Forks a child that runs argv in sb with its stdout in out_path, and exits with the
 * command's status (200 when agentbox failed). */
static pid_t exec_in_background(struct sandbox *sb, char **args, const char *out_path)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct result res;
		int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		struct ab_exec_request req = {
			.cfg = &sb->cfg, .argv = args, .env = sb->cfg.env, .init_pid = sb->init,
			.landlock_abi = features.landlock_abi, .seccomp = features.seccomp ? &sb->sc : NULL,
		};
		dup2(fd, STDOUT_FILENO);
		res.r = ab_sandbox_exec(&req, &res.code, &res.err);
		if (res.r < 0)
			fprintf(stderr, "# background exec: %s\n", res.err.msg);
		_exit(res.r < 0 ? 200 : res.code);
	}
	return pid;
}

static int median_of(double *v, int n, double *out)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	*out = v[n / 2];
	return 0;
}

/* ---- the cases ---------------------------------------------------------------------- */

static void test_identity_and_caps(void)
{
	struct result res, own;
	unsigned want_uid = getuid() == 0 ? 1000 : getuid();
	static const char *zero_caps[] = { "CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh" };

	EXEC(&box_a, NULL, &own, "/bin/cat", "/tmp/ab-exec-status");
	EXEC(&box_a, NULL, &res, probe, "status");
	CHECK(res.r == 0 && res.code == 0, &res, "exec runs the probe (status 0)");
	char uid[64];
	snprintf(uid, sizeof(uid), "%u", want_uid);
	CHECK(strcmp(value_of(res.out, "uid"), uid) == 0 && strcmp(value_of(res.out, "euid"), uid) == 0, &res,
	      "the command runs as the sandbox user (uid %s)", uid);
	{
		char a[64], b[64];
		snprintf(a, sizeof(a), "%s", value_of(res.out, "uid"));
		snprintf(b, sizeof(b), "%s", value_of(own.out, "uid"));
		CHECK(a[0] && strcmp(a, b) == 0, &own, "same uid as the sandbox's command (%s)", b);
		snprintf(a, sizeof(a), "%s", value_of(res.out, "gid"));
		snprintf(b, sizeof(b), "%s", value_of(own.out, "gid"));
		CHECK(a[0] && strcmp(a, b) == 0, &own, "same gid as the sandbox's command (%s)", b);
	}
	for (size_t i = 0; i < sizeof(zero_caps) / sizeof(zero_caps[0]); i++)
		CHECK(strcmp(value_of(res.out, zero_caps[i]), "0000000000000000") == 0, &res, "%s is empty",
		      zero_caps[i]);
	CHECK(strcmp(value_of(res.out, "NoNewPrivs"), "1") == 0, &res, "no_new_privs is set");
	if (features.seccomp) {
		char a[64], b[64];
		CHECK(strcmp(value_of(res.out, "Seccomp"), "2") == 0, &res, "a seccomp filter is installed");
		snprintf(a, sizeof(a), "%s", value_of(res.out, "Seccomp_filters"));
		snprintf(b, sizeof(b), "%s", value_of(own.out, "Seccomp_filters"));
		CHECK(a[0] && strcmp(a, b) == 0, &own, "as many seccomp filters as the sandbox's command (%s)", b);
	} else {
		skip("a seccomp filter is installed", "the kernel has no seccomp filters");
		skip("as many seccomp filters as the sandbox's command", "the kernel has no seccomp filters");
	}
}

static void test_namespaces(void)
{
	static const char *const names[] = { "user", "mnt", "pid", "ipc", "uts", "net", "cgroup" };
	const char *script = "for n in user mnt pid ipc uts net cgroup; do echo \"$n=$(readlink /proc/self/ns/$n)\"; done";
	struct result res, own;
	char marker[PATH_MAX];

	EXEC(&box_a, NULL, &res, "/bin/sh", "-c", (char *)script);
	EXEC(&box_a, NULL, &own, "/bin/cat", "/tmp/ab-exec-ns");
	CHECK(res.r == 0 && res.out[0] && strcmp(res.out, own.out) == 0, &own,
	      "the command is in every namespace of the sandbox's command");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[64], host[128];
		ssize_t n;
		snprintf(path, sizeof(path), "/proc/self/ns/%s", names[i]);
		n = readlink(path, host, sizeof(host) - 1);
		host[n > 0 ? n : 0] = '\0';
		if (strcmp(names[i], "cgroup") == 0 && !features.cgroupns)
			continue;
		CHECK(n > 0 && strcmp(value_of(res.out, names[i]), host) != 0, &res, "its %s namespace is not the host's",
		      names[i]);
	}

	EXEC(&box_a, NULL, &res, probe, "pids");
	CHECK(res.r == 0 && strcmp(value_of(res.out, "pid1_comm"), "agentbox-init") == 0, &res,
	      "PID 1 is the sandbox's agentbox-init");
	CHECK(atoi(value_of(res.out, "self")) > 1, &res, "the command has a pid of the sandbox's namespace (%s)",
	      value_of(res.out, "self"));

	snprintf(marker, sizeof(marker), "/tmp/ab-exec-marker-%d", (int)getpid());
	EXEC(&box_a, NULL, &res, probe, "read", marker);
	CHECK(has_line(res.out, "read=OK") && has_line(res.out, "head=marker"), &res,
	      "it sees the file the sandbox's command made in the sandbox's /tmp");
	ok(!file_exists(marker), "which the host does not see");

	EXEC(&box_a, NULL, &res, probe, "hostname");
	CHECK(res.r == 0 && strcmp(value_of(res.out, "hostname"), box_a.cfg.hostname) == 0, &res,
	      "the sandbox's host name (%s)", box_a.cfg.hostname);
	EXEC(&box_a, NULL, &res, probe, "ifaces");
	CHECK(res.r == 0 && has_line(res.out, "iface=lo") && strstr(res.out, "iface=") == strstr(res.out, "iface=lo"),
	      &res, "loopback only");
}

static void test_confinement(void)
{
	struct result res, own;
	char path[PATH_MAX];

	EXEC(&box_a, NULL, &res, probe, "try", "unshare-user");
	CHECK(has_line(res.out, "unshare-user=EPERM"), &res, "unshare(CLONE_NEWUSER) is refused with EPERM");
	EXEC(&box_a, NULL, &res, probe, "try", "mount");
	CHECK(has_line(res.out, "mount=EPERM"), &res, "mount is refused with EPERM");
	EXEC(&box_a, NULL, &res, probe, "try", "setns");
	CHECK(has_line(res.out, "setns=EPERM"), &res, "setns is refused with EPERM");
	EXEC(&box_a, NULL, &res, probe, "try", "ptrace-attach-1");
	CHECK(res.r == 0 && !has_line(res.out, "ptrace-attach-1=OK") && value_of(res.out, "ptrace-attach-1")[0], &res,
	      "the sandbox's init cannot be ptraced (%s)", value_of(res.out, "ptrace-attach-1"));

	EXEC(&box_a, NULL, &res, probe, "write", "/usr/ab-exec-probe");
	EXEC(&box_a, NULL, &own, "/bin/cat", "/tmp/ab-exec-usr");
	CHECK(!has_line(res.out, "write=OK") && value_of(res.out, "write")[0], &res, "/usr cannot be written (%s)",
	      value_of(res.out, "write"));
	{
		char a[64];
		snprintf(a, sizeof(a), "%s", value_of(res.out, "write"));
		CHECK(strcmp(a, value_of(own.out, "write")) == 0, &own, "and fails as it did for the sandbox's command");
	}
	snprintf(path, sizeof(path), "%s/from-exec", ws);
	EXEC(&box_a, NULL, &res, probe, "write", path);
	CHECK(has_line(res.out, "write=OK") && file_exists(path), &res, "the rw workspace can be written, and the host sees it");
	EXEC(&box_a, NULL, &res, probe, "write", "/etc/ab-exec-probe");
	CHECK(!has_line(res.out, "write=OK"), &res, "/etc cannot be written (%s)", value_of(res.out, "write"));
}

static void test_process(void)
{
	struct result res;
	char path[PATH_MAX];
	int fd;

	EXEC(&box_a, NULL, &res, probe, "exit", "7");
	CHECK(res.r == 0 && res.code == 7, &res, "exit status 7 passes through");
	EXEC(&box_a, NULL, &res, probe, "kill-self", "15");
	CHECK(res.r == 0 && res.code == 143, &res, "a command killed by SIGTERM gives 143");
	EXEC(&box_a, NULL, &res, "agentbox-no-such-command-xyz");
	CHECK(res.r == 0 && res.code == 127 && strstr(res.err.msg, "'agentbox-no-such-command-xyz'") &&
		      strstr(res.err.msg, "not found"),
	      &res, "a missing command gives 127 and a message naming it");
	EXEC(&box_a, NULL, &res, ws);
	CHECK(res.r == 0 && res.code == 126 && strstr(res.err.msg, "cannot be run"), &res,
	      "a directory as the command gives 126");

	EXEC(&box_a, NULL, &res, "/bin/pwd");
	snprintf(path, sizeof(path), "%s\n", ws);
	CHECK(res.r == 0 && strcmp(res.out, path) == 0, &res, "it starts in the workspace");
	EXEC(&box_a, (&(struct exec_opts){ .cwd = "/tmp" }), &res, "/bin/pwd");
	CHECK(res.r == 0 && strcmp(res.out, "/tmp\n") == 0, &res, "or where asked");
	EXEC(&box_a, (&(struct exec_opts){ .cwd = "/nonexistent-dir" }), &res, "/bin/pwd");
	CHECK(res.r < 0 && strstr(res.err.msg, "'/nonexistent-dir'"), &res, "a missing directory fails, named");

	char *env[] = { "FOO=bar", "PATH=/usr/bin:/bin", NULL };
	EXEC(&box_a, (&(struct exec_opts){ .env = env }), &res, probe, "env", "FOO", "HOME");
	CHECK(has_line(res.out, "FOO=bar") && has_line(res.out, "unset=HOME"), &res,
	      "the command gets exactly the environment given");

	/* A descriptor the caller left inheritable must not reach the sandbox. */
	fd = open("/dev/null", O_RDONLY);
	dup2(fd, 57);
	close(fd);
	EXEC(&box_a, NULL, &res, probe, "ls", "/proc/self/fd");
	close(57);
	CHECK(res.r == 0 && !has_line(res.out, "entry=57") && has_line(res.out, "count=4"), &res,
	      "only stdin, stdout and stderr are open in the command");

	{
		struct result own;
		EXEC(&box_a, NULL, &res, "/bin/sh", "-c", "echo \"nofile=$(ulimit -n) core=$(ulimit -c)\"");
		EXEC(&box_a, NULL, &own, "/bin/cat", "/tmp/ab-exec-limits");
		CHECK(res.r == 0 && strcmp(res.out, "nofile=200 core=0\n") == 0 && strcmp(res.out, own.out) == 0, &own,
		      "the sandbox's resource limits (--ulimit nofile=200, no core dumps)");
	}

	EXEC(&box_a, NULL, &res, probe, "tty");
	CHECK(has_line(res.out, "tty0=0") && has_line(res.out, "tty1=0"), &res, "no terminal unless asked");
	EXEC(&box_a, (&(struct exec_opts){ .tty = true }), &res, probe, "tty");
	CHECK(res.r == 0 && has_line(res.out, "tty0=1") && has_line(res.out, "tty1=1") && has_line(res.out, "tty2=1"),
	      &res, "with tty: a terminal of the sandbox's on stdin, stdout and stderr, relayed");
}

static void test_signals_and_death(void)
{
	char out[PATH_MAX], tag[64], buf[4096];
	pid_t child;
	int code;

	/* A signal to agentbox exec reaches the command. */
	snprintf(out, sizeof(out), "%s/sig.out", top);
	child = exec_in_background(&box_a, (char *[]){ probe, "wait-signal", "20", NULL }, out);
	if (!wait_for(file_has_ready, out, true, 10000)) {
		ok(false, "SIGTERM sent to agentbox exec reaches the command (it never got ready)");
		wait_child_ms(child, 0);
	} else {
		kill(child, SIGTERM);
		code = wait_child_ms(child, 10000);
		read_text(out, buf, sizeof(buf));
		ok(code == 0 && has_line(buf, "signal=15"), "SIGTERM sent to agentbox exec reaches the command");
		if (code != 0)
			printf("# exit %d, output: %s\n", code, buf);
	}

	/* agentbox exec killed with SIGKILL: the command dies too (parent-death signal). */
	snprintf(tag, sizeof(tag), "ab-exec-pdeath-%d", (int)getpid());
	snprintf(out, sizeof(out), "%s/pdeath.out", top);
	child = exec_in_background(&box_a, (char *[]){ probe, "sleep", "30", tag, NULL }, out);
	if (!wait_for(process_with_arg, tag, true, 10000)) {
		ok(false, "the command dies with agentbox exec (it never started)");
		wait_child_ms(child, 0);
	} else {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		ok(wait_for(process_with_arg, tag, false, 5000), "the command dies with agentbox exec, even by SIGKILL");
	}
	{
		struct result res;
		EXEC(&box_a, NULL, &res, probe, "exit", "0");
		CHECK(res.r == 0 && res.code == 0, &res, "and the sandbox goes on");
	}
}

static void test_cgroup(void)
{
	char dir[256], procs[300], name[64];
	const char *root = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/pids";
	struct result res;

	char *bad[] = { "/nonexistent/cgroup.procs" };
	EXEC(&box_a, (&(struct exec_opts){ .cgroup_procs = bad, .n_cgroup_procs = 1 }), &res, "/bin/true");
	CHECK(res.r < 0 && strstr(res.err.msg, "'/nonexistent/cgroup.procs'"), &res,
	      "a cgroup that cannot be joined fails, named");

	snprintf(name, sizeof(name), "ab-exec-test-%d", (int)getpid());
	snprintf(dir, sizeof(dir), "%s/%s", root, name);
	if (mkdir(dir, 0755) < 0) {
		skip("the command joins the cgroup given", "cannot create a cgroup here (not root, no delegation)");
		return;
	}
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
	char *procs_v[] = { procs };
	EXEC(&box_a, (&(struct exec_opts){ .cgroup_procs = procs_v, .n_cgroup_procs = 1 }), &res, "/bin/cat",
	     "/proc/self/cgroup");
	CHECK(res.r == 0 && strstr(res.out, name), &res, "the command joins the cgroup given (%s)", dir);
	for (int i = 0; i < 50 && rmdir(dir) < 0; i++)
		sleep_ms(20);
}

static void test_startup_time(void)
{
	enum { N = 5 };
	double t_run[N], t_exec[N], m_run, m_exec;
	struct sandbox t = { .label = "T" };
	struct ab_error err = { 0 };
	char name[] = "exec-t";
	char *args[] = { "-q", "-T", "--workspace-mode", "rw", "-w", ws, "--name", name, "--", "/bin/true", NULL };
	struct result res;

	if (parse(&t, args, &err) < 0) {
		ok(false, "timing: %s", err.msg);
		return;
	}
	for (int i = 0; i < N; i++) {
		int code = -1, r;
		double t0 = now_ms();
		fflush(stdout);
		r = ab_sandbox_run(&t.cfg, &features, features.seccomp ? &t.sc : NULL, NULL, &code, &err);
		t_run[i] = now_ms() - t0;
		if (r < 0 || code != 0) {
			ok(false, "timing: run failed (%d, %d): %s", r, code, err.msg);
			goto out;
		}
		t0 = now_ms();
		EXEC(&box_a, NULL, &res, "/bin/true");
		t_exec[i] = now_ms() - t0;
		if (res.r < 0 || res.code != 0) {
			CHECK(false, &res, "timing: exec failed");
			goto out;
		}
	}
	median_of(t_run, N, &m_run);
	median_of(t_exec, N, &m_exec);
	printf("# start-up and exit of /bin/true, median of %d: run %.2f ms, exec %.2f ms\n", N, m_run, m_exec);
	ok(m_exec < m_run, "exec starts faster than run (%.2f ms < %.2f ms)", m_exec, m_run);
out:
	ab_seccomp_set_free(&t.sc);
	ab_config_free(&t.cfg);
}

/* A sandbox whose command made itself not dumpable (ssh-agent, gpg-agent do): root takes
 * the namespaces from init; an unprivileged caller from the command, which it may still
 * inspect since the command's memory belongs to the sandbox's user namespace, its own. */
static void test_not_dumpable(void)
{
	struct sandbox sb = { .label = "C" };
	struct ab_error err = { 0 };
	char script[2048], ready[1200], name[] = "exec-c";
	struct result res;

	if (access("/usr/bin/python3", X_OK) < 0) {
		skip("a sandbox whose processes are not dumpable", "no /usr/bin/python3 to make one");
		return;
	}
	snprintf(ready, sizeof(ready), "%s/ready-c", ws);
	snprintf(script, sizeof(script),
		 "import ctypes, time; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); open('%s', 'w').close(); time.sleep(120)",
		 ready);
	char *args[] = { "-q", "-T", "--workspace-mode", "rw", "-w", ws, "--name", name, "--", "/usr/bin/python3", "-c",
			 script, NULL };
	if (start_sandbox(&sb, args, &err) < 0 || !wait_for(file_exists, ready, true, 20000)) {
		ok(false, "a sandbox whose command is not dumpable starts: %s", err.msg);
		goto out;
	}
	EXEC(&sb, NULL, &res, probe, "exit", "3");
	CHECK(res.r == 0 && res.code == 3, &res, "a sandbox whose command is not dumpable can be joined");
out:
	stop_sandbox(&sb);
	ab_seccomp_set_free(&sb.sc);
	if (sb.have_cfg)
		ab_config_free(&sb.cfg);
}

static void test_root_host_network_and_end(void)
{
	char tag[64], out[PATH_MAX], host_net[128], host_user[128];
	struct result res;
	pid_t child;
	ssize_t n;

	EXEC(&box_b, NULL, &res, probe, "status");
	CHECK(res.r == 0 && strcmp(value_of(res.out, "uid"), "0") == 0 && strcmp(value_of(res.out, "gid"), "0") == 0,
	      &res, "--user root: the command is uid 0 inside");
	CHECK(strcmp(value_of(res.out, "CapEff"), "0000000000000000") == 0 &&
		      strcmp(value_of(res.out, "CapBnd"), "0000000000000000") == 0,
	      &res, "--user root: and has no capability");

	n = readlink("/proc/self/ns/net", host_net, sizeof(host_net) - 1);
	host_net[n > 0 ? n : 0] = '\0';
	n = readlink("/proc/self/ns/user", host_user, sizeof(host_user) - 1);
	host_user[n > 0 ? n : 0] = '\0';
	EXEC(&box_b, NULL, &res, "/bin/sh", "-c", "echo net=$(readlink /proc/self/ns/net); echo user=$(readlink /proc/self/ns/user)");
	CHECK(res.r == 0 && strcmp(value_of(res.out, "net"), host_net) == 0, &res,
	      "--network host: the command shares the host's network namespace, as the sandbox does");
	CHECK(value_of(res.out, "user")[0] && strcmp(value_of(res.out, "user"), host_user) != 0, &res,
	      "but not its user namespace");

	/* The configuration says "no network" but the sandbox has the host's: refused, never
	 * the host's network for a command that should have none. */
	{
		struct sandbox mixed = box_b;
		mixed.cfg = box_a.cfg;
		EXEC(&mixed, NULL, &res, "/bin/true");
		CHECK(res.r < 0 && strstr(res.err.msg, "net namespace"), &res,
		      "a configuration without network does not join a sandbox that has the host's: '%s'", res.err.msg);
	}

	/* The sandbox ends while a command runs in it: the command ends too. */
	snprintf(tag, sizeof(tag), "ab-exec-end-%d", (int)getpid());
	snprintf(out, sizeof(out), "%s/end.out", top);
	child = exec_in_background(&box_b, (char *[]){ probe, "sleep", "30", tag, NULL }, out);
	if (!wait_for(process_with_arg, tag, true, 10000)) {
		ok(false, "a command dies with the sandbox (it never started)");
		wait_child_ms(child, 0);
	} else {
		int code;
		stop_sandbox(&box_b);
		code = wait_child_ms(child, 10000);
		ok(code == 128 + SIGKILL, "a command dies with the sandbox's init: status %d", code);
	}
	stop_sandbox(&box_b);
	EXEC(&box_b, NULL, &res, "/bin/true");
	CHECK(res.r < 0 && strstr(res.err.msg, "not running"), &res, "exec into a sandbox that ended: '%s'", res.err.msg);

	/* A pid that is no sandbox's init (ours) is not taken for one. */
	box_b.init = getpid();
	EXEC(&box_b, NULL, &res, "/bin/true");
	CHECK(res.r < 0 && strstr(res.err.msg, "not running"), &res, "a pid that is not a sandbox's init is refused");
}

int main(int argc, char **argv)
{
	struct ab_error err = { 0 };
	char path[PATH_MAX], data[1088], script[8192], name_a[] = "exec-a", name_b[] = "exec-b";
	const char *env_probe = getenv("PROBE");
	int fd;

	alarm(600); /* a hang fails the test instead of blocking the suite */
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	dup2(fd, STDIN_FILENO);
	close(fd);
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (env_probe) {
		snprintf(path, sizeof(path), "%s", env_probe);
	} else {
		char self[2048];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		self[n > 0 ? n : 0] = '\0';
		char *slash = strrchr(self, '/');
		if (slash)
			*slash = '\0';
		snprintf(path, sizeof(path), "%s/../probe", self);
	}
	snprintf(top, sizeof(top), "%s/ab-exec-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(top)) {
		printf("Bail out! cannot create a scratch directory: %s\n", strerror(errno));
		return 1;
	}
	atexit(cleanup);
	{
		char real[PATH_MAX];
		if (realpath(top, real) && strlen(real) < sizeof(top))
			memcpy(top, real, strlen(real) + 1);
	}
	chmod(top, 0755);
	snprintf(ws, sizeof(ws), "%s/ws", top);
	snprintf(probe, sizeof(probe), "%s/probe", ws);
	snprintf(data, sizeof(data), "%s/data", top);
	setenv("AGENTBOX_DATA_DIR", data, 1);
	if (mkdir(ws, 0755) < 0 || copy_file(path, probe) < 0) {
		printf("Bail out! cannot copy the probe '%s' (set PROBE)\n", path);
		return 1;
	}
	(void)argc;
	(void)argv;

	ab_features_probe(&features, getuid() == 0);
	if (!features.userns) {
		skip("agentbox exec", features.userns_why);
		return tap_done();
	}

	/* A: its command records what it sees, inside the sandbox only, then sleeps. */
	snprintf(script, sizeof(script),
		 "P=%s; $P status > /tmp/ab-exec-status; "
		 "for n in user mnt pid ipc uts net cgroup; do echo \"$n=$(readlink /proc/self/ns/$n)\"; done > /tmp/ab-exec-ns; "
		 "$P write /usr/ab-exec-probe > /tmp/ab-exec-usr; "
		 "echo \"nofile=$(ulimit -n) core=$(ulimit -c)\" > /tmp/ab-exec-limits; "
		 "echo marker > /tmp/ab-exec-marker-%d; touch %s/ready-a; exec sleep 120",
		 probe, (int)getpid(), ws);
	char *args_a[] = { "-q", "-T", "--workspace-mode", "rw", "--ulimit", "nofile=200", "-w", ws, "--name", name_a,
			   "--", "/bin/sh", "-c", script, NULL };
	char *args_b[] = { "-q", "-T", "--workspace-mode", "ro", "-u", "root", "--network", "host",
			   "-w", ws, "--name", name_b, "--", "sleep", "120", NULL };
	if (start_sandbox(&box_a, args_a, &err) < 0 || start_sandbox(&box_b, args_b, &err) < 0) {
		printf("Bail out! %s\n", err.msg);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/ready-a", ws);
	if (!wait_for(file_exists, path, true, 20000)) {
		printf("Bail out! sandbox A's command never got ready\n");
		return 1;
	}
	printf("# sandboxes: A init %d, B init %d; running as uid %u; Landlock ABI %d\n", (int)box_a.init,
	       (int)box_b.init, (unsigned)getuid(), features.landlock_abi);

	test_identity_and_caps();
	test_namespaces();
	test_confinement();
	test_process();
	test_signals_and_death();
	test_cgroup();
	test_startup_time();
	test_not_dumpable();
	test_root_host_network_and_end();

	cleanup();
	ab_seccomp_set_free(&box_a.sc);
	ab_seccomp_set_free(&box_b.sc);
	ab_config_free(&box_a.cfg);
	ab_config_free(&box_b.cfg);
	return tap_done();
}
