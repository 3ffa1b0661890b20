/* Freezing a sandbox with SIGSTOP: see freeze.h. */
#include "freeze.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/nsfs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../shared/cleanup.h"

#define MAX_NS_DEPTH 32
#define MAX_ROUNDS 64

struct ns_id {
	dev_t dev;
	ino_t ino;
};

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_signal(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* The process state letter of /proc/PID/stat, or 0 when the process is gone. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512];
	_cleanup_close_ int fd = -1;
	ssize_t n;
	char *paren;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	paren = strrchr(buf, ')'); /* the command name may hold anything, ")" too */
	if (!paren || paren[1] != ' ' || !paren[2])
		return 0;
	return paren[2];
}

/* True when the pid namespace of pid is target or nested beneath it. */
static bool in_namespace(pid_t pid, const struct ns_id *target, const struct ns_id *own)
{
	char path[64];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	for (int depth = 0; depth < MAX_NS_DEPTH; depth++) {
		if (fstat(fd, &st) < 0)
			break;
		if (st.st_dev == target->dev && st.st_ino == target->ino) {
			close(fd);
			return true;
		}
		if (st.st_dev == own->dev && st.st_ino == own->ino)
			break; /* reached our own namespace: an ancestor of the sandbox's */
		int parent = ioctl(fd, NS_GET_PARENT);
		close(fd);
		fd = parent;
		if (fd < 0)
			return false;
	}
	close(fd);
	return false;
}

static int ns_of(const char *path, struct ns_id *out)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	out->dev = st.st_dev;
	out->ino = st.st_ino;
	return 0;
}

static bool already_held(const struct ab_frozen *f, pid_t pid)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->procs[i].pid == pid)
			return true;
	return false;
}

void ab_thaw_sandbox(struct ab_frozen *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++) {
		if (!f->procs[i].was_stopped)
			(void)pidfd_signal(f->procs[i].pidfd, SIGCONT);
		close(f->procs[i].pidfd);
	}
	free(f->procs);
	f->procs = NULL;
	f->n = 0;
}

/* Stops pid when it belongs to the sandbox. 1 when a new process was stopped, 0 when
 * not ours or gone, < 0 on error. */
static int stop_one(struct ab_frozen *f, size_t *cap, pid_t pid, const struct ns_id *target,
		    const struct ns_id *own, struct ab_error *err)
{
	int pidfd;
	char state;

	/* A cheap look first: most of /proc is the host's own processes. */
	if (!in_namespace(pid, target, own))
		return 0;
	pidfd = pidfd_open_(pid);
	if (pidfd < 0)
		return errno == ESRCH ? 0 : ab_error_set(err, errno, "cannot freeze process %d", (int)pid);
	/* Checked after the pidfd exists, so the pidfd is the process that was checked. */
	if (!in_namespace(pid, target, own)) {
		close(pidfd);
		return 0;
	}
	if (f->n >= AB_FREEZE_MAX_PROCS) {
		close(pidfd);
		return ab_error_set(err, E2BIG, "cannot freeze the sandbox: more than %d processes",
				    AB_FREEZE_MAX_PROCS);
	}
	if (f->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct ab_frozen_proc *grown = realloc(f->procs, ncap * sizeof(*grown));
		if (!grown) {
			close(pidfd);
			return ab_error_set(err, ENOMEM, "cannot freeze the sandbox");
		}
		f->procs = grown;
		*cap = ncap;
	}
	state = proc_state(pid);
	if (pidfd_signal(pidfd, SIGSTOP) < 0) {
		int e = errno;
		close(pidfd);
		return e == ESRCH ? 0 : ab_error_set(err, e, "cannot stop process %d", (int)pid);
	}
	f->procs[f->n++] = (struct ab_frozen_proc){ .pid = pid, .pidfd = pidfd,
						    .was_stopped = state == 'T' };
	return 1;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until processes [from, f->n) are stopped (or gone). */
static int wait_stopped(struct ab_frozen *f, size_t from, struct ab_error *err)
{
	int64_t deadline = mono_ms() + AB_FREEZE_TIMEOUT_MS;

	for (size_t i = from; i < f->n; i++) {
		for (;;) {
			char s = proc_state(f->procs[i].pid);
			if (s == 0 || s == 'T' || s == 't' || s == 'Z' || s == 'X')
				break;
			if (mono_ms() > deadline)
				return ab_error_set(err, ETIMEDOUT, "cannot freeze the sandbox: process %d did not stop",
						    (int)f->procs[i].pid);
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
	}
	return 0;
}

int ab_freeze_sandbox(pid_t init_pid, struct ab_frozen *f, struct ab_error *err)
{
	struct ns_id target = { 0 }, own = { 0 };
	char path[64];
	size_t cap = 0;
	int r;

	*f = (struct ab_frozen){ 0 };
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)init_pid);
	if ((r = ns_of(path, &target)) < 0)
		return ab_error_set(err, -r, "cannot find the pid namespace of process %d", (int)init_pid);
	if ((r = ns_of("/proc/self/ns/pid", &own)) < 0)
		return ab_error_set(err, -r, "cannot find our own pid namespace");
	if (target.dev == own.dev && target.ino == own.ino)
		return ab_error_set(err, 0, "cannot freeze process %d: it is not in a pid namespace of its own",
				    (int)init_pid);

	r = stop_one(f, &cap, init_pid, &target, &own, err);
	if (r == 0)
		r = ab_error_set(err, ESRCH, "cannot freeze the sandbox: process %d is gone", (int)init_pid);
	for (int round = 0; r >= 0; round++) {
		size_t before = f->n;
		DIR *d;
		struct dirent *de;

		if (round > 0 && (r = wait_stopped(f, 0, err)) < 0)
			break;
		if (round >= MAX_ROUNDS) {
			r = ab_error_set(err, EAGAIN, "cannot freeze the sandbox: its processes keep changing");
			break;
		}
		d = opendir("/proc");
		if (!d) {
			r = ab_error_set(err, errno, "cannot read '/proc'");
			break;
		}
		while (r >= 0 && (de = readdir(d))) {
			char *end;
			long pid;

			if (!isdigit((unsigned char)de->d_name[0]))
				continue;
			pid = strtol(de->d_name, &end, 10);
			if (*end || pid <= 0 || pid > INT_MAX || already_held(f, (pid_t)pid))
				continue;
			r = stop_one(f, &cap, (pid_t)pid, &target, &own, err);
		}
		closedir(d);
		if (r >= 0 && f->n == before && round > 0)
			break; /* a full scan with everything stopped found nobody new */
		if (r >= 0)
			r = 0;
	}
	if (r < 0) {
		ab_thaw_sandbox(f);
		return r;
	}
	return 0;
}
