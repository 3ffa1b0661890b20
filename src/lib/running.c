/* The record of a run's processes (dir/running): which agentbox runs the sandbox, and its
 * sandbox's init, for snapshots that freeze it, commands that must not touch a running
 * sandbox, and the next run, which waits for the last one's init to be over. */
#include "running.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "../shared/strutil.h"
#include "state.h"

static bool pid_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* A live init of a sandbox is in a pid namespace other than ours. */
static bool init_alive(pid_t pid)
{
	char path[64];
	struct stat mine, theirs;

	if (!pid_alive(pid) || !ab_proc_start_time(pid))
		return false; /* gone, or a zombie: its namespaces and mounts are gone too */
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pid);
	if (stat(path, &theirs) < 0 || stat("/proc/self/ns/pid", &mine) < 0)
		return false;
	return theirs.st_ino != mine.st_ino || theirs.st_dev != mine.st_dev;
}

/* The record of the run's processes ("running"): "AGENTBOX INIT START CHECK\n", the
 * numbers at fixed widths so that every record has the same length, and CHECK a hash of
 * what comes before it. Rewritten in place by each run (no new file, which costs a run's
 * start most of a millisecond on some disks): a reader that meets it half written sees
 * the hash disagree and reads again. */
#define RUNNING_FIELDS "%10d %10d %20llu"

static uint64_t running_check(const char *text, size_t len)
{
	return ab_fnv1a64(AB_FNV1A64_INIT, text, len);
}

void ab_workspace_record_running(const struct ab_workspace *ws, pid_t agentbox_pid, pid_t init_pid)
{
	char path[4096], text[128];
	int fd, n;

	snprintf(path, sizeof(path), "%s/running", ws->dir);
	/* With agentbox's start time, so that a reused pid is never taken for it: the file
	 * stays after the run (the init may still be ending; see ab_workspace_running). */
	n = snprintf(text, sizeof(text), RUNNING_FIELDS, (int)agentbox_pid, (int)init_pid,
		     (unsigned long long)ab_proc_start_time(agentbox_pid));
	n += snprintf(text + n, sizeof(text) - (size_t)n, " %016llx\n",
		      (unsigned long long)running_check(text, (size_t)n));
	/* Not fsync'd: it means nothing after a crash, and the start should stay fast. */
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return;
	if (pwrite(fd, text, (size_t)n, 0) != n)
		(void)unlink(path); /* better none than a damaged one: nothing to go by */
	close(fd);
}

/* Reads the record: 1 when it holds a whole one, 0 when there is none to go by. Records
 * of the earlier, shorter form ("AGENTBOX [INIT [START]]\n", no check) are taken as they
 * are; anything as long as a record of this form must carry its check. */
static int read_running(const char *path, int *a, int *i, unsigned long long *a_start)
{
	const size_t record_len = 10 + 1 + 10 + 1 + 20 + 1 + 16;

	for (int attempt = 0; attempt < 5; attempt++) {
		_cleanup_free_ char *text = NULL;
		unsigned long long check;
		char *nl;
		int r = ab_read_file(path, 256, &text, NULL), fields;

		if (r < 0)
			return r == -ENOENT ? 0 : r;
		nl = strchr(text, '\n');
		if (nl)
			*nl = '\0';
		fields = sscanf(text, "%d %d %llu %llx", a, i, a_start, &check);
		if (strlen(text) < record_len)
			return fields >= 1 && fields <= 3;
		if (fields == 4 && running_check(text, record_len - 17) == check)
			return 1;
		/* Being rewritten: a moment later it is whole. */
		nanosleep(&(struct timespec){ .tv_nsec = 1000 * 1000 }, NULL);
	}
	return 0; /* damaged: nothing to go by */
}

int ab_workspace_running(const struct ab_workspace *ws, pid_t *agentbox_pid, pid_t *init_pid)
{
	_cleanup_free_ char *path = NULL;
	unsigned long long a_start = 0;
	int a = 0, i = 0, r;

	if (agentbox_pid)
		*agentbox_pid = 0;
	if (init_pid)
		*init_pid = 0;
	if (asprintf(&path, "%s/running", ws->dir) < 0)
		return -ENOMEM;
	r = read_running(path, &a, &i, &a_start);
	if (r <= 0)
		return r;
	/* agentbox (checked against its start time when recorded: the file outlives the run),
	 * or the sandbox's init, which may still be ending after agentbox is done. */
	if (a_start ? !ab_proc_is(a, a_start) : !pid_alive(a))
		a = 0;
	if (!a && !init_alive(i))
		return 0;
	if (agentbox_pid)
		*agentbox_pid = a;
	if (init_pid)
		*init_pid = init_alive(i) ? i : 0;
	return 1;
}

void ab_workspace_wait_last_init(const struct ab_workspace *ws)
{
	_cleanup_free_ char *path = NULL;
	unsigned long long a_start = 0;
	int a = 0, i = 0, fd;

	if (asprintf(&path, "%s/running", ws->dir) < 0 || read_running(path, &a, &i, &a_start) <= 0 || i <= 0)
		return;
	/* Nearly always gone: reaped (the pidfd's ESRCH says so), or a zombie (its pidfd reads
	 * as ready: it has exited, namespaces and all). Else the pidfd holds the pid, and the
	 * process is checked to be a sandbox's init before it is waited for. */
	fd = (int)syscall(SYS_pidfd_open, i, 0);
	if (fd < 0)
		return;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 0) == 0 && init_alive(i))
		while (poll(&p, 1, 10000) < 0 && errno == EINTR)
			;
	close(fd);
}
