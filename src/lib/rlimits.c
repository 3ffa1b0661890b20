/* The per-process limits a sandbox's command starts with: see ab_rlimits_apply in cgroup.h.
 *
 * About RLIMIT_NPROC, the stand-in for pids.max when there is no cgroup: since Linux 5.14
 * the kernel counts it per user namespace and real uid (ucounts), not per host uid alone.
 * A sandbox in its own user namespace therefore counts only its own processes (and those of
 * namespaces nested in it): the host user's other processes do not use up its budget, and
 * it cannot exceed it by forking in a nested namespace, since each level is charged. Two
 * exceptions make the limit void: a process whose real uid is host root (kernel/fork.c
 * skips the check for INIT_USER), and one with CAP_SYS_RESOURCE or CAP_SYS_ADMIN in the
 * initial user namespace. A sandbox started by root maps its user onto host root, so there
 * RLIMIT_NPROC bounds nothing; root has cgroups, which is why this is only a fallback.
 * tests/unit/test-cgroup.c checks the count in a fresh user namespace.
 *
 * RLIMIT_DATA, the stand-in for memory.max, bounds each process's private writable
 * mappings (heap, anonymous memory), per process, not per sandbox. Not RLIMIT_AS: that
 * counts address space merely reserved (PROT_NONE), which Node's V8 and Go runtimes take by
 * the gigabyte, so agents built on them would fail to start under any modest limit.
 *
 * RLIMIT_FSIZE follows --disk-limit with a margin: the disk limit itself is a tmpfs of that
 * size, so writing past it fails there with ENOSPC first (what programs expect of a full
 * disk), while a file on a host volume (-v) is still bounded. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/resource.h>

#include "../shared/cleanup.h"
#include "../shared/strutil.h"
#include "cgroup.h"

/* fs.nr_open bounds RLIMIT_NOFILE even when the hard limit is infinite. */
static rlim_t nr_open(void)
{
	_cleanup_free_ char *text = NULL;
	unsigned long long v;

	if (ab_read_file("/proc/sys/fs/nr_open", 64, &text, NULL) < 0 || sscanf(text, "%llu", &v) != 1 || v == 0)
		return RLIM_INFINITY;
	return (rlim_t)v;
}

/* Sets soft and hard to want, clamped to the hard limit (and to ceiling). */
static int set_limit(int resource, const char *what, uint64_t want, rlim_t ceiling, struct ab_error *err)
{
	struct rlimit rl;
	rlim_t v = want >= (uint64_t)RLIM_INFINITY ? RLIM_INFINITY : (rlim_t)want;

	if (getrlimit(resource, &rl) < 0)
		return ab_error_set(err, errno, "cannot read the %s limit", what);
	if (rl.rlim_max != RLIM_INFINITY && v > rl.rlim_max)
		v = rl.rlim_max;
	if (ceiling != RLIM_INFINITY && v > ceiling)
		v = ceiling;
	rl.rlim_cur = rl.rlim_max = v;
	if (setrlimit(resource, &rl) < 0)
		return ab_error_set(err, errno, "cannot set the %s limit to '%" PRIu64 "'", what, (uint64_t)v);
	return 0;
}

int ab_rlimits_apply(const struct ab_limits *lim, enum ab_limits_mode mode, struct ab_error *err)
{
	int r;

	r = set_limit(RLIMIT_CORE, "core file size", 0, RLIM_INFINITY, err);
	if (r < 0)
		return r;
	if (!lim)
		return 0;
	if (lim->nofile && (r = set_limit(RLIMIT_NOFILE, "open files", lim->nofile, nr_open(), err)) < 0)
		return r;
	if (lim->disk && (r = set_limit(RLIMIT_FSIZE, "file size", lim->disk + (lim->disk >> 3) + (1ULL << 20),
					RLIM_INFINITY, err)) < 0)
		return r;
	if (mode != AB_LIMITS_RLIMITS)
		return 0;
	if (lim->memory && (r = set_limit(RLIMIT_DATA, "data size", lim->memory, RLIM_INFINITY, err)) < 0)
		return r;
	if (lim->pids && (r = set_limit(RLIMIT_NPROC, "process count", lim->pids, RLIM_INFINITY, err)) < 0)
		return r;
	return 0;
}
