/* Resource limits: the pure parsers of /proc/self/cgroup and /proc/self/mountinfo, the
 * state-file form, then the kernel itself, in the shape of the kernel's selftests: each case
 * runs in a forked child that ab_cgroup_add moves in before it runs anything (it waits on a
 * pipe), and the assertions read its exit status, its rusage and the cgroup's own counters.
 *
 * Fixture (as root; on a v2 host the same names under /sys/fs/cgroup/agentbox/):
 *   /sys/fs/cgroup/{memory,pids,cpu,cpuacct}/agentbox/
 *   ├── test-cgroup-PID        memory 64 MiB, no swap, pids 20, cpu 0.5
 *   ├── test-cgroup-PID-none   no limits: stats and kills only
 *   ├── test-cgroup-PID-left   a leftover directory from a "crashed" run
 *   └── test-cgroup-PID-bad    a cpu quota the kernel refuses: must not remain
 * Every cgroup is removed at exit, also after a failed assertion or the watchdog.
 * Unprivileged (no delegation on this host): setup falls back to rlimits, and the rlimit
 * cases run in children. AB_MUST_WORK=1 turns skips into failures. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <json-c/json.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/cgroup.h"
#include "shared/cleanup.h"
#include "shared/strutil.h"
#include "tap.h"

#define MiB (1024ULL * 1024)

static void skip(const char *what, const char *why)
{
	const char *must = getenv("AB_MUST_WORK");
	ok(!(must && strcmp(must, "1") == 0), "%s # SKIP %s", what, why);
}

static bool contains(const char *s, const char *part)
{
	return s && part && strstr(s, part) != NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- cleanup, whatever happens ---- */

static struct ab_cgroup *live[8];

static void track(struct ab_cgroup *cg)
{
	for (size_t i = 0; i < AB_ELEMENTSOF(live); i++)
		if (!live[i] || live[i] == cg) {
			live[i] = cg;
			return;
		}
}

static void cleanup_all(void)
{
	struct ab_error err;

	for (size_t i = 0; i < AB_ELEMENTSOF(live); i++)
		if (live[i]) {
			if (ab_cgroup_remove(live[i], &err) < 0)
				fprintf(stderr, "# cleanup: %s\n", err.msg);
			ab_cgroup_free(live[i]);
		}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static void watchdog(int sig)
{
	(void)sig;
	printf("not ok - the test took longer than 60 s\n");
	cleanup_all();
	_exit(1);
}

/* ---- pure parsers ---- */

static void test_parse_self(void)
{
	char *v2, *v1[AB_CG1_N];
	int r;

	r = ab_cgroup_parse_self("0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope\n", &v2, v1);
	ok(r == 1, "self v2: one path (%d)", r);
	is_str(v2, "/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope", "self v2: the path");
	ok(!v1[AB_CG1_MEMORY] && !v1[AB_CG1_CPU], "self v2: no v1 paths");
	free(v2);

	r = ab_cgroup_parse_self("12:cpu,cpuacct:/docker/abc\n11:memory:/docker/abc\n10:pids:/docker/p\n"
				 "3:cpuset:/\n1:name=systemd:/docker/abc",
				 &v2, v1);
	ok(r == 4, "self v1: four controllers (%d)", r);
	ok(!v2, "self v1: no v2 line, no v2 path");
	is_str(v1[AB_CG1_CPU], "/docker/abc", "self v1: cpu of a combined cpu,cpuacct line");
	is_str(v1[AB_CG1_CPUACCT], "/docker/abc", "self v1: cpuacct of the same line");
	is_str(v1[AB_CG1_PIDS], "/docker/p", "self v1: pids, last line without a newline");
	for (int i = 0; i < AB_CG1_N; i++)
		free(v1[i]);

	/* this host's shape: v1 controllers and an empty cgroup2 */
	r = ab_cgroup_parse_self("9:name=systemd:/\n8:pids:/\n4:memory:/process_api/194a\n2:cpuacct:/\n1:cpu:/\n0::/\n",
				 &v2, v1);
	ok(r == 5, "self hybrid: v2 and four v1 paths (%d)", r);
	is_str(v2, "/", "self hybrid: v2 root");
	is_str(v1[AB_CG1_MEMORY], "/process_api/194a", "self hybrid: memory");
	is_str(v1[AB_CG1_CPU], "/", "self hybrid: cpu");
	free(v2);
	for (int i = 0; i < AB_CG1_N; i++)
		free(v1[i]);

	r = ab_cgroup_parse_self("4:memory:/a:b\n8:pids:relative\n0::/x/../y\n2:cpu:/a//b\nx:cpuacct:/z\n1:cpuacct\n",
				 &v2, v1);
	ok(r == 1, "self: unclean, relative, malformed lines are ignored (%d)", r);
	is_str(v1[AB_CG1_MEMORY], "/a:b", "self: a colon inside the path is part of it");
	free(v1[AB_CG1_MEMORY]);
	ok(ab_cgroup_parse_self("", &v2, v1) == 0 && !v2, "self: empty text, nothing found");
}

static void test_parse_mountinfo(void)
{
	char *v2, *v1[AB_CG1_N];
	int r;

	r = ab_cgroup_parse_mountinfo(
		"22 1 0:21 / /proc rw shared:5 - proc proc rw\n"
		"24 30 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n",
		&v2, v1);
	ok(r == 1, "mountinfo v2: one mount (%d)", r);
	is_str(v2, "/sys/fs/cgroup", "mountinfo v2: the cgroup2 mount point");
	ok(!v1[AB_CG1_MEMORY], "mountinfo v2: no v1 mounts");
	free(v2);

	r = ab_cgroup_parse_mountinfo(
		"40 30 0:40 / /sys/fs/cgroup/cpu,cpuacct rw shared:15 - cgroup cgroup rw,cpu,cpuacct\n"
		"41 30 0:41 /docker/x /mnt/part rw - cgroup cgroup rw,memory\n"
		"42 30 0:41 / /sys/fs/cgroup/my\\040memory rw shared:1 master:2 - cgroup cgroup rw,memory\n"
		"43 30 0:42 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
		"44 30 0:43 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
		"45 30 0:42 / /elsewhere/pids rw - cgroup cgroup rw,pids\n",
		&v2, v1);
	ok(r == 4, "mountinfo v1: four controllers (%d)", r);
	ok(!v2, "mountinfo v1: no cgroup2");
	is_str(v1[AB_CG1_CPU], "/sys/fs/cgroup/cpu,cpuacct", "mountinfo v1: cpu of the combined mount");
	is_str(v1[AB_CG1_CPUACCT], "/sys/fs/cgroup/cpu,cpuacct", "mountinfo v1: cpuacct, the same directory");
	is_str(v1[AB_CG1_MEMORY], "/sys/fs/cgroup/my memory",
	       "mountinfo v1: the whole hierarchy wins over a bind of a part, \\040 unescaped");
	is_str(v1[AB_CG1_PIDS], "/sys/fs/cgroup/pids", "mountinfo v1: the first of two whole mounts");
	free(v2);
	for (int i = 0; i < AB_CG1_N; i++)
		free(v1[i]);

	/* this host's shape */
	r = ab_cgroup_parse_mountinfo(
		"30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
		"31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
		"32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
		"34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
		"38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
		"39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
		"40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
		&v2, v1);
	ok(r == 5, "mountinfo hybrid: cgroup2 and four controllers (%d)", r);
	is_str(v2, "/sys/fs/cgroup/unified", "mountinfo hybrid: the cgroup2 mount");
	is_str(v1[AB_CG1_CPU], "/sys/fs/cgroup/cpu", "mountinfo hybrid: cpu apart");
	is_str(v1[AB_CG1_CPUACCT], "/sys/fs/cgroup/cpuacct", "mountinfo hybrid: cpuacct apart");
	free(v2);
	for (int i = 0; i < AB_CG1_N; i++)
		free(v1[i]);

	r = ab_cgroup_parse_mountinfo("1 2 0:3 / /a\\000b rw - cgroup2 cgroup2 rw\n"
				      "1 2 0:3 / rel rw - cgroup2 cgroup2 rw\n"
				      "1 2 0:3 / /x rw cgroup2 cgroup2 rw\n"
				      "1 2 0:3 / /y rw -\n",
				      &v2, v1);
	ok(r == 0 && !v2, "mountinfo: NUL escapes, relative mount points, missing separators ignored (%d)", r);
}

static void test_json(void)
{
	struct ab_cgroup cg = { .mode = AB_LIMITS_CGROUP1 }, back;
	struct json_object *o, *t;
	const char *text;

	cg.v1[AB_CG1_MEMORY] = strdup("/sys/fs/cgroup/memory/agentbox/box");
	cg.v1[AB_CG1_CPU] = strdup("/sys/fs/cgroup/cpu,cpuacct/agentbox/box");
	cg.v1[AB_CG1_CPUACCT] = strdup("/sys/fs/cgroup/cpu,cpuacct/agentbox/box");
	snprintf(cg.why, sizeof(cg.why), "cgroup v1 (memory, cpu, cpuacct)");
	o = ab_cgroup_to_json(&cg);
	text = o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) : NULL;
	ok(contains(text, "\"mode\":\"cgroup1\"") && contains(text, "\"v2\":null") &&
		   contains(text, "\"memory\":\"/sys/fs/cgroup/memory/agentbox/box\""),
	   "json: %s", text ? text : "(null)");
	ok(o && ab_cgroup_from_json(o, &back) == 0, "json: reads back");
	ok(back.mode == AB_LIMITS_CGROUP1 && !back.v2 && !back.v1[AB_CG1_PIDS], "json: mode and absent paths kept");
	is_str(back.v1[AB_CG1_CPUACCT], cg.v1[AB_CG1_CPUACCT], "json: a path kept");
	is_str(back.why, cg.why, "json: why kept");
	ab_cgroup_free(&back);
	json_object_put(o);
	ab_cgroup_free(&cg);

	t = json_tokener_parse("{\"mode\":\"cgroup2\",\"v2\":\"/sys/fs/cgroup/system.slice\",\"v1\":null}");
	ok(ab_cgroup_from_json(t, &back) == -EINVAL && !back.v2, "json: a path not under agentbox/ is refused");
	json_object_put(t);
	t = json_tokener_parse("{\"mode\":\"cgroup2\",\"v2\":\"/sys/fs/cgroup/agentbox/../../x/agentbox/b\"}");
	ok(ab_cgroup_from_json(t, &back) == -EINVAL, "json: a path with '..' is refused");
	json_object_put(t);
	t = json_tokener_parse("{\"mode\":\"cgroup1\",\"v2\":\"/sys/fs/cgroup/agentbox/b\"}");
	ok(ab_cgroup_from_json(t, &back) == -EINVAL, "json: a mode that does not match the paths is refused");
	json_object_put(t);
	t = json_tokener_parse("{\"mode\":\"rlimits\",\"v2\":null,\"v1\":null,\"why\":\"rlimits only: x\"}");
	ok(ab_cgroup_from_json(t, &back) == 0 && back.mode == AB_LIMITS_RLIMITS, "json: rlimits mode reads back");
	json_object_put(t);
}

/* ---- children in a cgroup ---- */

/* Forks a child that waits until it is in cg, then returns fn's value as its status. */
static pid_t spawn_in(const struct ab_cgroup *cg, int (*fn)(void *), void *arg)
{
	struct ab_error err;
	int go[2];
	char c = 0;
	pid_t pid;

	if (pipe2(go, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(120);
		_exit(fn(arg));
	}
	close(go[0]);
	if (pid > 0 && ab_cgroup_add(cg, pid, &err) < 0) {
		printf("# %s\n", err.msg);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		pid = -1;
	}
	if (pid > 0 && write(go[1], &c, 1) != 1)
		pid = -1;
	close(go[1]);
	return pid;
}

struct fork_counts {
	int ok, eagain, other;
};

/* Tries 100 forks (each child just waits to be killed), reports, then waits too. */
static int fork_many(void *arg)
{
	int fd = *(int *)arg;
	struct fork_counts n = { 0, 0, 0 };

	for (int i = 0; i < 100; i++) {
		pid_t p = fork();
		if (p == 0) {
			for (;;)
				pause();
		}
		if (p > 0)
			n.ok++;
		else if (errno == EAGAIN)
			n.eagain++;
		else
			n.other++;
	}
	if (write(fd, &n, sizeof(n)) != sizeof(n))
		return 1;
	for (;;)
		pause();
}

/* Touches 200 MiB; the OOM killer should end it first. */
static int hog(void *arg)
{
	size_t size = 200 * MiB;
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	(void)arg;
	if (p == MAP_FAILED)
		return 2;
	for (size_t i = 0; i < size; i += 4096)
		p[i] = 1;
	return 0;
}

/* Spins for one second of wall time. */
static int spin(void *arg)
{
	double end = now_s() + 1.0;
	volatile unsigned long x = 0;

	(void)arg;
	while (now_s() < end)
		x++;
	return 0;
}

static int sleeper(void *arg)
{
	(void)arg;
	while (pause() < 0 || true)
		;
	return 0;
}

/* Uses 8 MiB, then waits. */
static int holder(void *arg)
{
	size_t size = 8 * MiB;
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)arg;
	if (p == MAP_FAILED)
		return 2;
	memset(p, 1, size);
	for (;;)
		pause();
}

/* Joins by writing "0" into each cgroup.procs, as agentbox exec does, then checks that
 * /proc/self/cgroup names the sandbox's cgroup on every line it should. */
static int join_self(void *arg)
{
	const struct ab_cgroup *cg = arg;
	char *files[AB_CG1_N + 1];
	_cleanup_free_ char *self = NULL;
	size_t n = ab_cgroup_procs_files(cg, files);
	char want[128];
	int bad = 0;

	for (size_t i = 0; i < n; i++) {
		if (ab_write_file(files[i], "0", 1) < 0)
			bad = 10;
		free(files[i]);
	}
	if (bad)
		return bad;
	const char *dir = cg->v2 ? cg->v2 : cg->v1[AB_CG1_MEMORY];
	snprintf(want, sizeof(want), "/agentbox/%s\n", strrchr(dir, '/') + 1);
	if (ab_read_file("/proc/self/cgroup", 65536, &self, NULL) < 0)
		return 11;
	int lines = 0;
	for (char *p = self; (p = strstr(p, want)); p++)
		lines++;
	/* v2: one line; v1: memory, pids and cpu/cpuacct (one line when mounted together) */
	return lines >= (cg->v2 ? 1 : 3) ? 0 : 12;
}

static int wait_status(pid_t pid, struct rusage *ru)
{
	int status = -1;
	struct rusage dummy;

	if (wait4(pid, &status, 0, ru ? ru : &dummy) < 0)
		return -1;
	return status;
}

/* Waits until the cgroup holds no process (our subreaper role reaps the orphans). */
static bool wait_empty(const struct ab_cgroup *cg)
{
	struct ab_cgroup_stats st;

	for (int i = 0; i < 200; i++) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		ab_cgroup_read_stats(cg, &st);
		if (st.have_pids && st.pids_current == 0)
			return true;
		sleep_ms(5);
	}
	return false;
}

static bool dir_exists(const char *p)
{
	struct stat st;
	return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool any_dir_exists(const struct ab_cgroup *cg)
{
	bool any = dir_exists(cg->v2);
	for (int i = 0; i < AB_CG1_N; i++)
		any = any || dir_exists(cg->v1[i]);
	return any;
}

/* The directory of cg with its last component replaced. */
static void sibling(const char *dir, const char *name, char *out, size_t size)
{
	snprintf(out, size, "%.*s/%s", (int)(strrchr(dir, '/') - dir), dir, name);
}

static const char *first_dir(const struct ab_cgroup *cg)
{
	if (cg->v2)
		return cg->v2;
	for (int i = 0; i < AB_CG1_N; i++)
		if (cg->v1[i])
			return cg->v1[i];
	return NULL;
}

static void test_pids(const struct ab_cgroup *cg)
{
	struct fork_counts n = { -1, -1, -1 };
	struct ab_cgroup_stats st;
	int res[2], status;
	pid_t pid, host;

	if (pipe2(res, O_CLOEXEC) < 0)
		return;
	pid = spawn_in(cg, fork_many, &res[1]);
	close(res[1]);
	ok(pid > 0, "pids: a child moved into the cgroup");
	if (pid <= 0) {
		close(res[0]);
		return;
	}
	ok(read(res[0], &n, sizeof(n)) == sizeof(n), "pids: the child reports its forks");
	close(res[0]);
	ok(n.eagain > 0 && n.ok <= 19 && n.other == 0,
	   "pids: under pids.max 20, forks fail with EAGAIN (%d ok, %d EAGAIN, %d other)", n.ok, n.eagain, n.other);
	host = fork();
	if (host == 0)
		_exit(0);
	ok(host > 0 && wait_status(host, NULL) == 0, "pids: the host still forks meanwhile");
	ab_cgroup_read_stats(cg, &st);
	ok(st.have_pids && st.pids_current == 20 && st.pids_max == 20, "pids: stats say 20 of 20 (%llu of %llu)",
	   (unsigned long long)st.pids_current, (unsigned long long)st.pids_max);
	ok(ab_cgroup_kill(cg, SIGKILL) == 0, "kill: SIGKILL to the whole cgroup");
	status = wait_status(pid, NULL);
	ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "kill: the child died of SIGKILL (status %#x)", status);
	ok(wait_empty(cg), "kill: its orphans are gone too, the cgroup is empty");
}

static void test_memory(const struct ab_cgroup *cg)
{
	struct ab_cgroup_stats st;
	uint64_t kills = 0, before = 0;
	pid_t pid;
	int status;

	ab_cgroup_oom_kills(cg, &before);
	pid = spawn_in(cg, hog, NULL);
	status = pid > 0 ? wait_status(pid, NULL) : -1;
	ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	   "memory: a child touching 200 MiB under 64 MiB is SIGKILLed (status %#x)", status);
	ok(ab_cgroup_oom_kills(cg, &kills) == 0 && kills >= before + 1, "memory: the OOM killer counted it (%llu)",
	   (unsigned long long)kills);
	ab_cgroup_read_stats(cg, &st);
	ok(st.have_memory && st.memory_max == 64 * MiB, "memory: stats give the limit (%llu)",
	   (unsigned long long)st.memory_max);
	ok(st.memory_peak >= 32 * MiB && st.memory_peak <= 66 * MiB, "memory: the peak is near the limit (%llu MiB)",
	   (unsigned long long)(st.memory_peak / MiB));
}

static void test_cpu(const struct ab_cgroup *cg)
{
	struct ab_cgroup_stats a, b;
	struct rusage ru = { 0 };
	double t0, wall, cpu;
	pid_t pid;
	int status;

	ab_cgroup_read_stats(cg, &a);
	t0 = now_s();
	pid = spawn_in(cg, spin, NULL);
	status = pid > 0 ? wait_status(pid, &ru) : -1;
	wall = now_s() - t0;
	cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	      (double)ru.ru_stime.tv_usec / 1e6;
	ok(status == 0, "cpu: the spinning child ran");
	ok(cpu / wall >= 0.3 && cpu / wall <= 0.7, "cpu: 0.5 CPU gives it %.2f s of CPU in %.2f s (%.2f)", cpu, wall,
	   cpu / wall);
	ab_cgroup_read_stats(cg, &b);
	double acct = (double)(b.cpu_usage_ns - a.cpu_usage_ns) / 1e9;
	ok(a.have_cpu && b.have_cpu && acct >= cpu * 0.8 && acct <= cpu * 1.2 + 0.05,
	   "cpu: the cgroup's usage agrees (%.2f s)", acct);
}

static void test_join(const struct ab_cgroup *cg)
{
	char *files[AB_CG1_N + 1];
	size_t n = ab_cgroup_procs_files(cg, files);
	bool shape = n >= 1 && !files[n];
	pid_t pid;
	int status;

	for (size_t i = 0; i < n; i++) {
		shape = shape && contains(files[i], "/agentbox/") && contains(files[i], "/cgroup.procs");
		free(files[i]);
	}
	ok(shape, "procs files: %zu cgroup.procs paths, NULL-terminated", n);
	pid = fork();
	if (pid == 0)
		_exit(join_self((void *)cg));
	status = wait_status(pid, NULL);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "join: a process writing 0 into them is in the cgroup (%d)",
	   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* A value the kernel refuses fails setup with the value named, and leaves nothing. */
static void test_refused(const struct ab_cgroup *cg, const char *name)
{
	struct ab_limits lim = { .memory_swap = -1, .cpu_millis = 5 }; /* a 500 us quota: below 1 ms */
	struct ab_cgroup bad;
	struct ab_error err = { 0 };
	char n[96], path[512];
	int r;

	snprintf(n, sizeof(n), "%s-bad", name);
	r = ab_cgroup_setup(n, &lim, &bad, &err);
	ok(r < 0 && contains(err.msg, "cpu") && contains(err.msg, "500"), "refused: setup fails naming the value (%s)",
	   err.msg);
	sibling(first_dir(cg), n, path, sizeof(path));
	ok(!dir_exists(path) && bad.mode == AB_LIMITS_NONE && !bad.v2 && !bad.v1[0],
	   "refused: no directory remains, cg is empty");
	ab_cgroup_free(&bad);
}

/* A leftover of a crashed run: reused while a process is in it; a limit below what it
 * uses is refused by v1 with a clear message; remove kills what is left. */
static void test_leftover(struct ab_cgroup *cg, const char *name, const struct ab_limits *lim)
{
	struct ab_limits small = *lim;
	struct ab_cgroup again;
	struct ab_error err = { 0 };
	struct ab_cgroup_stats st;
	int status, r;
	pid_t pid;

	pid = spawn_in(cg, holder, NULL);
	ok(pid > 0, "leftover: a process stays in the cgroup");
	/* until it has touched its 8 MiB (a loaded machine may take a while) */
	for (int i = 0; i < 200; i++) {
		struct ab_cgroup_stats now = { 0 };
		if (ab_cgroup_read_stats(cg, &now) == 0 && now.have_memory && now.memory_current >= 8 * MiB)
			break;
		sleep_ms(10);
	}
	r = ab_cgroup_setup(name, lim, &again, &err);
	ok(r == 0 && again.mode == cg->mode, "leftover: setup with the same name reuses a busy directory (%s)",
	   r < 0 ? err.msg : again.why);
	ab_cgroup_read_stats(&again, &st);
	ok(st.have_pids && st.pids_current >= 1, "leftover: the process is still there (%llu)",
	   (unsigned long long)st.pids_current);
	ab_cgroup_free(&again);

	if (cg->mode == AB_LIMITS_CGROUP1) {
		/* It uses 8 MiB that cannot be swapped: the v1 kernel refuses 4 MiB. */
		small.memory = 4 * MiB;
		r = ab_cgroup_setup(name, &small, &again, &err);
		ok(r < 0 && contains(err.msg, "memory") && contains(err.msg, "4194304"),
		   "leftover: a memory limit below the usage is refused, value named (%s)", r < 0 ? err.msg : "no error");
		ab_cgroup_free(&again);
	} else {
		printf("# cgroup v2 meets a memory.max below the usage by reclaim and OOM kills, not a refusal\n");
	}

	r = ab_cgroup_remove(cg, &err);
	ok(r == 0, "remove: succeeds with a process inside%s%s", r < 0 ? ": " : "", r < 0 ? err.msg : "");
	status = pid > 0 ? wait_status(pid, NULL) : -1;
	ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "remove: the process was SIGKILLed");
	ok(!any_dir_exists(cg), "remove: no directory is left");
	ok(ab_cgroup_remove(cg, &err) == 0, "remove: again is fine");
}

static void test_kernel(const char *name)
{
	static struct ab_cgroup cg, none, left;
	struct ab_limits lim = { .memory = 64 * MiB, .memory_swap = -1, .pids = 20, .cpu_millis = 500 };
	struct ab_limits nolim = { .memory_swap = -1 };
	struct ab_cgroup_stats st;
	struct ab_error err = { 0 };
	char n[96], path[512];
	int r, status;
	pid_t pid;

	r = ab_cgroup_setup(name, &lim, &cg, &err);
	track(&cg);
	ok(r == 0, "setup: %s", r < 0 ? err.msg : cg.why);
	ok(any_dir_exists(&cg), "setup: the directories exist");
	ok(contains(cg.why, cg.mode == AB_LIMITS_CGROUP1 ? "cgroup v1 (memory, pids, cpu" : "cgroup v2 (memory, pids, cpu"),
	   "setup: why lists the controllers");
	if (r < 0)
		return;

	test_pids(&cg);
	test_memory(&cg);
	test_cpu(&cg);
	test_join(&cg);

	/* SIGTERM goes process by process, also on v2 */
	pid = spawn_in(&cg, sleeper, NULL);
	ok(pid > 0 && ab_cgroup_kill(&cg, SIGTERM) == 0, "kill: SIGTERM to the cgroup");
	status = pid > 0 ? wait_status(pid, NULL) : -1;
	ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "kill: the child died of SIGTERM");

	test_refused(&cg, name);

	/* No limits: still a cgroup, for stats and clean kills */
	snprintf(n, sizeof(n), "%s-none", name);
	r = ab_cgroup_setup(n, &nolim, &none, &err);
	track(&none);
	ok(r == 0 && none.mode == cg.mode && any_dir_exists(&none), "no limits: a cgroup all the same (%s)",
	   r < 0 ? err.msg : none.why);
	ab_cgroup_read_stats(&none, &st);
	ok(st.have_memory && st.have_pids && st.memory_max == 0 && st.pids_max == 0,
	   "no limits: stats say no memory and pids limit");
	ok(ab_cgroup_remove(&none, &err) == 0 && !any_dir_exists(&none), "no limits: removed");

	/* An empty leftover directory from a crashed run */
	snprintf(n, sizeof(n), "%s-left", name);
	sibling(first_dir(&cg), n, path, sizeof(path));
	ok(mkdir(path, 0755) == 0, "empty leftover: made '%s'", path);
	r = ab_cgroup_setup(n, &lim, &left, &err);
	track(&left);
	ab_cgroup_read_stats(&left, &st);
	ok(r == 0 && st.pids_max == 20, "empty leftover: setup succeeds with the limits (%s)", r < 0 ? err.msg : left.why);
	ok(ab_cgroup_remove(&left, &err) == 0 && !dir_exists(path), "empty leftover: removed");

	test_leftover(&cg, name, &lim);
}

/* Forks once more, then both wait: a process tree for kills. */
static int parent_of_one(void *arg)
{
	(void)arg;
	if (fork() < 0)
		return 3;
	return sleeper(NULL);
}

/* On a hybrid host the cgroup2 mount has no controller, so setup picks v1; the v2 code for
 * kills, stats of the core files and removal still runs here on a cgroup2 directory made
 * by hand. On a v2 host test_kernel covers all of it. */
static void test_v2_core(const char *name)
{
	static struct ab_cgroup cg;
	_cleanup_free_ char *mounts = NULL;
	char *v2 = NULL, *v1[AB_CG1_N] = { NULL };
	struct ab_cgroup_stats st;
	struct ab_error err = { 0 };
	char path[512];
	pid_t pid;
	int status;

	if (ab_read_file("/proc/self/mountinfo", 1 << 20, &mounts, NULL) < 0 ||
	    ab_cgroup_parse_mountinfo(mounts, &v2, v1) < 0 || !v2) {
		printf("# no cgroup2 mount: the v2 core test does not apply\n");
		for (int i = 0; i < AB_CG1_N; i++)
			free(v1[i]);
		return;
	}
	for (int i = 0; i < AB_CG1_N; i++)
		free(v1[i]);
	snprintf(path, sizeof(path), "%s/agentbox", v2);
	(void)mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/agentbox/%s-v2", v2, name);
	free(v2);
	cg.mode = AB_LIMITS_CGROUP2;
	cg.v2 = strdup(path);
	track(&cg);
	ok(mkdir(path, 0755) == 0, "v2 core: made '%s'", path);

	pid = spawn_in(&cg, parent_of_one, NULL);
	sleep_ms(20);
	ab_cgroup_read_stats(&cg, &st);
	ok(pid > 0 && st.have_cpu, "v2 core: a process tree inside, cpu.stat read (%llu ns)",
	   (unsigned long long)st.cpu_usage_ns);
	ok(ab_cgroup_kill(&cg, SIGKILL) == 0, "v2 core: SIGKILL by cgroup.kill");
	status = pid > 0 ? wait_status(pid, NULL) : -1;
	ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "v2 core: the child died of SIGKILL");
	bool empty = false;
	for (int i = 0; i < 200 && !empty; i++) {
		_cleanup_free_ char *procs = NULL;
		char file[600];
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		snprintf(file, sizeof(file), "%s/cgroup.procs", path);
		empty = ab_read_file(file, 65536, &procs, NULL) == 0 && procs[0] == '\0';
		if (!empty)
			sleep_ms(5);
	}
	ok(empty, "v2 core: the grandchild is gone too");
	pid = spawn_in(&cg, sleeper, NULL);
	int r = ab_cgroup_remove(&cg, &err);
	ok(pid > 0 && r == 0, "v2 core: remove with a process inside%s%s", r < 0 ? ": " : "", r < 0 ? err.msg : "");
	status = pid > 0 ? wait_status(pid, NULL) : -1;
	ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && !dir_exists(path),
	   "v2 core: the process was killed and the directory is gone");
}

/* ---- rlimits, in children ---- */

static int check_rlimit(int res, rlim_t soft, rlim_t hard)
{
	struct rlimit rl;
	return getrlimit(res, &rl) == 0 && rl.rlim_cur == soft && rl.rlim_max == hard;
}

static int rl_clamp(void)
{
	struct ab_limits lim = { .memory_swap = -1, .nofile = 1ULL << 40 };
	struct ab_error err;
	struct rlimit before;
	rlim_t want;

	getrlimit(RLIMIT_NOFILE, &before);
	want = before.rlim_max == RLIM_INFINITY ? 1048576 : before.rlim_max;
	if (ab_rlimits_apply(&lim, AB_LIMITS_CGROUP1, &err) < 0)
		return 1;
	if (!check_rlimit(RLIMIT_CORE, 0, 0))
		return 2;
	return check_rlimit(RLIMIT_NOFILE, want, want) ? 0 : 3;
}

static int rl_exact(void)
{
	/* the file size bound is the disk limit with a margin of 1/8 and 1 MiB: 2.125 MiB */
	struct ab_limits lim = { .memory_swap = -1, .nofile = 64, .disk = 1 * MiB };
	const rlim_t fsize = MiB + MiB / 8 + MiB;
	struct ab_error err;
	char buf[4096] = { 0 };
	int fd;

	if (ab_rlimits_apply(&lim, AB_LIMITS_CGROUP2, &err) < 0)
		return 1;
	if (!check_rlimit(RLIMIT_NOFILE, 64, 64) || !check_rlimit(RLIMIT_FSIZE, fsize, fsize))
		return 2;
	/* the file size bound holds: the write past it fails with EFBIG */
	signal(SIGXFSZ, SIG_IGN);
	fd = memfd_create("fsize", MFD_CLOEXEC);
	if (fd < 0)
		return 3;
	for (rlim_t i = 0; i < fsize / sizeof(buf); i++)
		if (write(fd, buf, sizeof(buf)) != sizeof(buf))
			return 4;
	return write(fd, buf, sizeof(buf)) < 0 && errno == EFBIG ? 0 : 5;
}

static int rl_never_raise(void)
{
	struct ab_limits lim = { .memory_swap = -1, .nofile = 5000 };
	struct rlimit rl = { 1000, 1000 };
	struct ab_error err;

	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1;
	if (ab_rlimits_apply(&lim, AB_LIMITS_CGROUP1, &err) < 0)
		return 2;
	return check_rlimit(RLIMIT_NOFILE, 1000, 1000) ? 0 : 3;
}

static int rl_as(void)
{
	struct ab_limits lim = { .memory = 64 * MiB, .memory_swap = -1 };
	struct ab_error err;
	void *p;

	if (ab_rlimits_apply(&lim, AB_LIMITS_RLIMITS, &err) < 0)
		return 1;
	if (!check_rlimit(RLIMIT_DATA, 64 * MiB, 64 * MiB))
		return 2;
	p = mmap(NULL, 200 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED && errno == ENOMEM ? 0 : 3;
}

static int rl_as_not_in_cgroup_mode(void)
{
	struct ab_limits lim = { .memory = 64 * MiB, .memory_swap = -1, .pids = 5 };
	struct rlimit as0, np0;
	struct ab_error err;

	getrlimit(RLIMIT_DATA, &as0);
	getrlimit(RLIMIT_NPROC, &np0);
	if (ab_rlimits_apply(&lim, AB_LIMITS_CGROUP2, &err) < 0)
		return 1;
	return check_rlimit(RLIMIT_DATA, as0.rlim_cur, as0.rlim_max) &&
			       check_rlimit(RLIMIT_NPROC, np0.rlim_cur, np0.rlim_max)
		       ? 0
		       : 2;
}

static int run_child(int (*fn)(void))
{
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit(fn());
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 200 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

#define NPROC_UID 61234
#define NO_USERNS 77

static int write_proc(const char *file, const char *text)
{
	return ab_write_file(file, text, strlen(text));
}

static int forks_under_limit(void);

/* In a fresh user namespace mapped onto host_uid, with RLIMIT_NPROC 5 through
 * ab_rlimits_apply: how many of 10 forks succeed. */
static int nproc_in_userns(uid_t host_uid)
{
	struct ab_limits lim = { .memory_swap = -1, .pids = 5 };
	struct ab_error err;
	char map[64];

	if (geteuid() == 0 && host_uid != 0) {
		if (setgroups(0, NULL) < 0 || setresgid(host_uid, host_uid, host_uid) < 0 ||
		    setresuid(host_uid, host_uid, host_uid) < 0)
			return 101;
		/* a uid change leaves us undumpable: /proc/self/uid_map would stay root's */
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	}
	/* Six processes of the same uid outside: RLIMIT_NPROC 5 counted per host uid would
	 * leave no fork at all. */
	pid_t outside[6];
	for (int i = 0; i < 6; i++) {
		outside[i] = fork();
		if (outside[i] == 0) {
			for (;;)
				pause();
		}
	}
	int r = unshare(CLONE_NEWUSER);
	if (r == 0) {
		snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)host_uid);
		if (write_proc("/proc/self/setgroups", "deny") < 0 || write_proc("/proc/self/uid_map", map) < 0)
			r = 102;
		else if (ab_rlimits_apply(&lim, AB_LIMITS_RLIMITS, &err) < 0)
			r = 103;
		else
			r = forks_under_limit();
	} else {
		r = NO_USERNS;
	}
	for (int i = 0; i < 6; i++)
		if (outside[i] > 0) {
			kill(outside[i], SIGKILL);
			waitpid(outside[i], NULL, 0);
		}
	return r;
}

/* How many of 10 forks succeed (each child waits, then is killed). */
static int forks_under_limit(void)
{
	pid_t kids[10];
	int ok_forks = 0;

	for (int i = 0; i < 10; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			for (;;)
				pause();
		}
		if (kids[i] > 0)
			ok_forks++;
	}
	for (int i = 0; i < 10; i++)
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
		}
	return ok_forks;
}

static int nproc_unprivileged(void)
{
	return nproc_in_userns(geteuid() == 0 ? NPROC_UID : geteuid());
}

static int nproc_host_root(void)
{
	return nproc_in_userns(0);
}

static void test_rlimits(void)
{
	int r;

	ok((r = run_child(rl_clamp)) == 0, "rlimits: core 0, nofile clamped to the hard limit (%d)", r);
	ok((r = run_child(rl_exact)) == 0, "rlimits: nofile 64 and a 1 MiB file size bound that holds (%d)", r);
	ok((r = run_child(rl_never_raise)) == 0, "rlimits: a lower hard limit is never raised (%d)", r);
	ok((r = run_child(rl_as)) == 0, "rlimits mode: RLIMIT_DATA stands in for memory, a 200 MiB map fails (%d)", r);
	ok((r = run_child(rl_as_not_in_cgroup_mode)) == 0, "cgroup mode: no RLIMIT_DATA or RLIMIT_NPROC fallback (%d)",
	   r);
	r = run_child(nproc_unprivileged);
	if (r == NO_USERNS)
		skip("rlimits mode: RLIMIT_NPROC in a user namespace", "cannot create a user namespace here");
	else
		ok(r == 4,
		   "rlimits mode: RLIMIT_NPROC 5 in a fresh user namespace counts only its processes, not 6 of the same uid outside: 4 forks (%d)",
		   r);
	if (geteuid() == 0) {
		r = run_child(nproc_host_root);
		if (r == NO_USERNS)
			skip("RLIMIT_NPROC mapped onto host root", "cannot create a user namespace here");
		else
			ok(r == 10, "rlimits mode: RLIMIT_NPROC binds nothing when the sandbox is host root: 10 forks (%d)",
			   r);
	}
}

static void test_unprivileged_setup(const char *name)
{
	static struct ab_cgroup cg;
	struct ab_limits lim = { .memory = 64 * MiB, .memory_swap = -1, .pids = 20 };
	struct ab_limits nolim = { .memory_swap = -1 };
	struct ab_cgroup_stats st;
	struct ab_error err = { 0 };
	uint64_t kills = 1;
	char *files[AB_CG1_N + 1];
	int r;

	r = ab_cgroup_setup(name, &lim, &cg, &err);
	track(&cg);
	ok(r == 0 && cg.mode == AB_LIMITS_RLIMITS, "unprivileged: setup falls back to rlimits (%s)",
	   r < 0 ? err.msg : ab_limits_mode_name(cg.mode));
	ok(contains(cg.why, "rlimits only") && contains(cg.why, "no delegated cgroup"), "unprivileged: why: %s", cg.why);
	ok(!cg.v2 && !cg.v1[AB_CG1_MEMORY] && !cg.v1[AB_CG1_PIDS], "unprivileged: no directories");
	ab_cgroup_read_stats(&cg, &st);
	ok(!st.have_cpu && !st.have_memory && !st.have_pids, "unprivileged: no stats");
	ok(ab_cgroup_oom_kills(&cg, &kills) == 0 && kills == 0, "unprivileged: no OOM kills known");
	ok(ab_cgroup_procs_files(&cg, files) == 0 && !files[0], "unprivileged: no cgroup.procs to join");
	ok(ab_cgroup_add(&cg, getpid(), &err) == 0 && ab_cgroup_kill(&cg, SIGKILL) == 0 &&
		   ab_cgroup_remove(&cg, &err) == 0,
	   "unprivileged: add, kill and remove are no-ops");
	ab_cgroup_free(&cg);
	r = ab_cgroup_setup(name, &nolim, &cg, &err);
	ok(r == 0 && cg.mode == AB_LIMITS_NONE && contains(cg.why, "no cgroup"),
	   "unprivileged, no limits asked: mode none (%s)", cg.why);
	ab_cgroup_free(&cg);
}

int main(void)
{
	struct ab_cgroup probe;
	struct ab_error err;
	char name[64];

	setvbuf(stdout, NULL, _IOLBF, 0);
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); /* orphans of the fork test come to us */
	signal(SIGALRM, watchdog);
	alarm(60);
	atexit(cleanup_all);

	ok(strcmp(ab_limits_mode_name(AB_LIMITS_CGROUP1), "cgroup1") == 0 &&
		   strcmp(ab_limits_mode_name(AB_LIMITS_RLIMITS), "rlimits") == 0,
	   "mode names");
	test_parse_self();
	test_parse_mountinfo();
	test_json();
	test_rlimits();

	snprintf(name, sizeof(name), "test-cgroup-%d", (int)getpid());
	{
		struct ab_limits lim = { .memory = 64 * MiB, .memory_swap = -1 };
		/* Which world are we in? A cgroup we can write, or the rlimit fallback. */
		if (ab_cgroup_setup(name, &lim, &probe, &err) < 0) {
			ok(0, "setup: %s", err.msg);
			return tap_done();
		}
		ab_cgroup_remove(&probe, &err);
	}
	if (probe.mode == AB_LIMITS_CGROUP1 || probe.mode == AB_LIMITS_CGROUP2) {
		printf("# %s\n", probe.why);
		test_kernel(name);
		if (probe.mode == AB_LIMITS_CGROUP1 && geteuid() == 0)
			test_v2_core(name);
	} else if (geteuid() == 0) {
		skip("cgroup limits as root", probe.why);
	} else {
		test_unprivileged_setup(name);
	}
	ab_cgroup_free(&probe);
	return tap_done();
}
