/* timeit: wall-clock timer for short commands, used by bench/run.sh.
 *
 *   timeit [-r RUNS] [-w WARMUP] [-g MS] [-t SECONDS] [-e FILE] [-k] [-d FILE] SPEC [:: SPEC]...
 *   SPEC := [@LABEL] [+ns=PATH]... [+cwd=DIR] COMMAND [ARG]...
 *
 * Every command runs WARMUP untimed times, then RUNS timed times. With several SPECs the
 * runs are interleaved round-robin, and the order inside a round rotates, so drift (CPU
 * frequency, page cache, a noisy neighbour) touches every command alike.
 *
 * One run is: fork, [setns into each +ns=PATH in order, chdir], execvp with stdin, stdout and
 * stderr on /dev/null (stderr on FILE with -e, kept with -k), reap with wait4. The time is
 * CLOCK_MONOTONIC from just before fork to just after the reap. The child leads its own
 * process group, which is killed when a run exceeds -t SECONDS (default 60).
 *
 * -g MS pauses MS milliseconds, untimed, after every run: for commands that leave work
 * behind them in the background (and would otherwise be timed against their own
 * predecessor's).
 *
 * "{i}" inside an argument becomes the run's sequence number (unique within one timeit), for
 * tools that need a fresh container name on every run.
 *
 * Output, one line per SPEC after a '#' header, times in microseconds:
 *   label runs failed median p10 p90 min max cpu_median
 * cpu_median is user+system CPU of the command and of the descendants it reaped.
 * -d FILE also writes every timed run as "label wall_us cpu_us", in the order they ran.
 * Failed runs (non-zero exit, signal, timeout) are left out of the figures; the first
 * failure of each SPEC is described on stderr. Exit status: 0 when no run failed, 1 when
 * one did, 2 on a usage or system error, 130 when interrupted. */

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_NS 4

struct spec {
	const char *label;
	char **argv;  /* points into the caller's argv; NULL-terminated copy */
	int argc;
	int ns_fd[MAX_NS];
	const char *ns_path[MAX_NS];
	int n_ns;
	const char *cwd;
	double *wall_us; /* successful timed runs */
	double *cpu_us;
	int n_ok;
	int n_failed;
	bool reported;
};

static const char *prog = "timeit";

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: %s [-r RUNS] [-w WARMUP] [-g MS] [-t SECONDS] [-e FILE] [-k] [-d FILE] SPEC [:: SPEC]...\n"
		"  SPEC := [@LABEL] [+ns=PATH]... [+cwd=DIR] COMMAND [ARG]...\n"
		"  -r RUNS     timed runs per command (default 20)\n"
		"  -w WARMUP   untimed runs per command first (default 2)\n"
		"  -g MS       pause MS milliseconds, untimed, after every run (default 0)\n"
		"  -t SECONDS  kill a run that takes longer (default 60)\n"
		"  -e FILE     append the commands' stderr to FILE instead of /dev/null\n"
		"  -k          keep the commands' stderr on timeit's stderr\n"
		"  -d FILE     write every timed run to FILE as: label wall_us cpu_us\n"
		"  \"{i}\" in an argument is replaced by the run's sequence number.\n",
		prog);
	exit(2);
}

static long parse_count(const char *s, const char *what, long min)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > 10000000)
		die("bad %s: '%s'", what, s);
	return v;
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Linear interpolation between closest ranks; v must be sorted, n > 0. */
static double percentile(const double *v, int n, double p)
{
	if (n == 1)
		return v[0];
	double pos = p * (n - 1);
	int lo = (int)pos;
	if (lo >= n - 1)
		return v[n - 1];
	return v[lo] + (v[lo + 1] - v[lo]) * (pos - lo);
}

/* Copies argv with every "{i}" replaced by seq. Returns a malloc'd vector (leaked on purpose
 * in the child, freed by the parent). */
static char **expand_argv(struct spec *s, unsigned long seq)
{
	char **out = calloc((size_t)s->argc + 1, sizeof *out);
	if (!out)
		die("out of memory");
	char num[24];
	snprintf(num, sizeof num, "%lu", seq);
	for (int i = 0; i < s->argc; i++) {
		const char *a = s->argv[i];
		size_t n = 0;
		for (const char *p = a; (p = strstr(p, "{i}")); p += 3)
			n++;
		if (!n) {
			out[i] = (char *)a;
			continue;
		}
		char *buf = malloc(strlen(a) + n * strlen(num) + 1);
		if (!buf)
			die("out of memory");
		char *w = buf;
		for (const char *p = a; *p;) {
			if (!strncmp(p, "{i}", 3)) {
				w = stpcpy(w, num);
				p += 3;
			} else {
				*w++ = *p++;
			}
		}
		*w = '\0';
		out[i] = buf;
	}
	return out;
}

static void free_argv(struct spec *s, char **v)
{
	for (int i = 0; i < s->argc; i++)
		if (v[i] != s->argv[i])
			free(v[i]);
	free(v);
}

struct runcfg {
	int devnull;
	int errfd; /* -1: /dev/null, -2: keep */
	double timeout_s;
	sigset_t waitset; /* SIGCHLD, SIGINT, SIGTERM, SIGHUP: blocked, taken by sigtimedwait */
	sigset_t origmask;
	char *cwd;
};

/* The child's half: never returns. Only async-signal-safe calls plus execvp. */
static void child(struct spec *s, char **argv, const struct runcfg *rc)
{
	setpgid(0, 0);
	for (int i = 0; i < s->n_ns; i++) {
		if (setns(s->ns_fd[i], 0) < 0) {
			dprintf(rc->errfd >= 0 ? rc->errfd : 2, "%s: setns %s: %s\n", prog, s->ns_path[i],
				strerror(errno));
			_exit(126);
		}
	}
	/* setns into a mount namespace resets the working directory to its root. */
	const char *dir = s->cwd ? s->cwd : rc->cwd;
	if (dir && chdir(dir) < 0 && s->cwd) {
		dprintf(rc->errfd >= 0 ? rc->errfd : 2, "%s: chdir %s: %s\n", prog, dir, strerror(errno));
		_exit(126);
	}
	dup2(rc->devnull, 0);
	dup2(rc->devnull, 1);
	if (rc->errfd >= 0)
		dup2(rc->errfd, 2);
	else if (rc->errfd == -1)
		dup2(rc->devnull, 2);
	/* A shell starts background jobs with SIGINT and SIGQUIT ignored; do not pass that on. */
	signal(SIGPIPE, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	sigprocmask(SIG_SETMASK, &rc->origmask, NULL);
	execvp(argv[0], argv);
	int e = errno;
	dprintf(2, "%s: exec %s: %s\n", prog, argv[0], strerror(e));
	_exit(e == ENOENT ? 127 : 126);
}

static bool interrupted;

/* Runs one command once. Returns true on success (exit status 0) and fills wall/cpu. */
static bool run_once(struct spec *s, unsigned long seq, const struct runcfg *rc, double *wall,
		     double *cpu, char *why, size_t whylen)
{
	char **argv = expand_argv(s, seq);
	double t0 = now_us();
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0)
		child(s, argv, rc);

	int status = 0;
	struct rusage ru;
	bool timed_out = false;
	double deadline = t0 + rc->timeout_s * 1e6;
	for (;;) {
		pid_t w = wait4(pid, &status, WNOHANG, &ru);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			die("wait4: %s", strerror(errno));
		double left = deadline - now_us();
		if (left <= 0) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			timed_out = true;
			while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
				;
			break;
		}
		long long ns = (long long)(left * 1e3);
		struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000LL),
				      .tv_nsec = (long)(ns % 1000000000LL)};
		int sig = sigtimedwait(&rc->waitset, NULL, &ts);
		if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
				;
			interrupted = true;
			free_argv(s, argv);
			snprintf(why, whylen, "interrupted");
			return false;
		}
	}
	double t1 = now_us();
	free_argv(s, argv);

	if (timed_out) {
		snprintf(why, whylen, "timed out after %.0f s", rc->timeout_s);
		return false;
	}
	if (WIFSIGNALED(status)) {
		snprintf(why, whylen, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
		return false;
	}
	if (WEXITSTATUS(status) != 0) {
		snprintf(why, whylen, "exit status %d", WEXITSTATUS(status));
		return false;
	}
	*wall = t1 - t0;
	*cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
	return true;
}

int main(int argc, char **argv)
{
	long runs = 20, warmup = 2;
	double timeout_s = 60;
	const char *errfile = NULL;
	const char *dumpfile = NULL;
	bool keep_err = false;
	long gap_ms = 0;
	int opt;

	prog = argv[0];
	const char *slash = strrchr(prog, '/');
	if (slash)
		prog = slash + 1;

	while ((opt = getopt(argc, argv, "+r:w:g:t:e:kd:h")) != -1) {
		switch (opt) {
		case 'r':
			runs = parse_count(optarg, "run count", 1);
			break;
		case 'w':
			warmup = parse_count(optarg, "warm-up count", 0);
			break;
		case 'g':
			gap_ms = parse_count(optarg, "gap", 0);
			break;
		case 't':
			timeout_s = (double)parse_count(optarg, "timeout", 1);
			break;
		case 'e':
			errfile = optarg;
			break;
		case 'k':
			keep_err = true;
			break;
		case 'd':
			dumpfile = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind < argc && !strcmp(argv[optind], "--"))
		optind++;
	if (optind >= argc)
		usage();

	/* Split the rest at "::" into SPECs. */
	int max_specs = argc - optind + 1;
	struct spec *specs = calloc((size_t)max_specs, sizeof *specs);
	if (!specs)
		die("out of memory");
	int n_specs = 0;
	for (int i = optind; i < argc;) {
		struct spec *s = &specs[n_specs];
		while (i < argc && argv[i][0] == '@' && argv[i][1]) {
			s->label = argv[i] + 1;
			i++;
		}
		while (i < argc && !strncmp(argv[i], "+ns=", 4)) {
			if (s->n_ns == MAX_NS)
				die("at most %d +ns= per command", MAX_NS);
			const char *p = argv[i] + 4;
			int fd = open(p, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				die("open %s: %s", p, strerror(errno));
			s->ns_path[s->n_ns] = p;
			s->ns_fd[s->n_ns++] = fd;
			i++;
		}
		if (i < argc && !strncmp(argv[i], "+cwd=", 5))
			s->cwd = argv[i++] + 5;
		int start = i;
		while (i < argc && strcmp(argv[i], "::"))
			i++;
		if (i == start)
			die("empty command in spec %d", n_specs + 1);
		s->argc = i - start;
		s->argv = calloc((size_t)s->argc + 1, sizeof *s->argv);
		if (!s->argv)
			die("out of memory");
		memcpy(s->argv, &argv[start], (size_t)s->argc * sizeof *s->argv);
		if (!s->label) {
			const char *b = strrchr(s->argv[0], '/');
			s->label = b ? b + 1 : s->argv[0];
		}
		s->wall_us = calloc((size_t)runs, sizeof(double));
		s->cpu_us = calloc((size_t)runs, sizeof(double));
		if (!s->wall_us || !s->cpu_us)
			die("out of memory");
		n_specs++;
		if (i < argc)
			i++; /* skip "::" */
	}

	struct runcfg rc = {.errfd = -1, .timeout_s = timeout_s};
	rc.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (rc.devnull < 0)
		die("open /dev/null: %s", strerror(errno));
	if (keep_err)
		rc.errfd = -2;
	if (errfile) {
		rc.errfd = open(errfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (rc.errfd < 0)
			die("open %s: %s", errfile, strerror(errno));
	}
	rc.cwd = getcwd(NULL, 0);
	FILE *dump = NULL;
	if (dumpfile) {
		dump = fopen(dumpfile, "we");
		if (!dump)
			die("open %s: %s", dumpfile, strerror(errno));
	}

	sigemptyset(&rc.waitset);
	sigaddset(&rc.waitset, SIGCHLD);
	sigaddset(&rc.waitset, SIGINT);
	sigaddset(&rc.waitset, SIGTERM);
	sigaddset(&rc.waitset, SIGHUP);
	sigprocmask(SIG_BLOCK, &rc.waitset, &rc.origmask);

	unsigned long seq = 0;
	char why[160];
	long rounds = warmup + runs;
	for (long r = 0; r < rounds && !interrupted; r++) {
		bool timed = r >= warmup;
		for (int k = 0; k < n_specs && !interrupted; k++) {
			struct spec *s = &specs[(r + k) % n_specs];
			double wall = 0, cpu = 0;
			bool ok = run_once(s, seq++, &rc, &wall, &cpu, why, sizeof why);
			if (interrupted)
				break;
			if (gap_ms) {
				struct timespec gap = { .tv_sec = gap_ms / 1000, .tv_nsec = (gap_ms % 1000) * 1000000 };
				while (nanosleep(&gap, &gap) < 0 && errno == EINTR && !interrupted)
					;
			}
			if (!ok) {
				s->n_failed++;
				if (!s->reported) {
					fprintf(stderr, "%s: %s: %s run failed: %s\n", prog, s->label,
						timed ? "timed" : "warm-up", why);
					s->reported = true;
				}
				continue;
			}
			if (timed) {
				s->wall_us[s->n_ok] = wall;
				s->cpu_us[s->n_ok] = cpu;
				s->n_ok++;
				if (dump)
					fprintf(dump, "%s %.1f %.1f\n", s->label, wall, cpu);
			}
		}
	}
	if (interrupted) {
		fprintf(stderr, "%s: interrupted\n", prog);
		return 130;
	}

	int rcode = 0;
	printf("# label runs failed median_us p10_us p90_us min_us max_us cpu_median_us\n");
	for (int k = 0; k < n_specs; k++) {
		struct spec *s = &specs[k];
		if (s->n_failed)
			rcode = 1;
		if (!s->n_ok) {
			printf("%s 0 %d - - - - - -\n", s->label, s->n_failed);
			continue;
		}
		qsort(s->wall_us, (size_t)s->n_ok, sizeof(double), cmp_double);
		qsort(s->cpu_us, (size_t)s->n_ok, sizeof(double), cmp_double);
		printf("%s %d %d %.1f %.1f %.1f %.1f %.1f %.1f\n", s->label, s->n_ok, s->n_failed,
		       percentile(s->wall_us, s->n_ok, 0.5), percentile(s->wall_us, s->n_ok, 0.1),
		       percentile(s->wall_us, s->n_ok, 0.9), s->wall_us[0], s->wall_us[s->n_ok - 1],
		       percentile(s->cpu_us, s->n_ok, 0.5));
	}
	fflush(stdout);
	if (dump && fclose(dump) != 0)
		die("write %s: %s", dumpfile, strerror(errno));

	for (int k = 0; k < n_specs; k++) {
		for (int i = 0; i < specs[k].n_ns; i++)
			close(specs[k].ns_fd[i]);
		free(specs[k].argv);
		free(specs[k].wall_us);
		free(specs[k].cpu_us);
	}
	free(specs);
	free(rc.cwd);
	return rcode;
}
