#include "usage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "../shared/strutil.h"
#include "cgroup.h"

#define MAX_TREE 4096

void ab_format_bytes(char *buf, size_t size, uint64_t bytes)
{
	static const char units[] = "kmgt";
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, size, "%" PRIu64 "b", bytes);
		return;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	if (v >= 100 || v == (double)(uint64_t)v)
		snprintf(buf, size, "%.0f%c", v, units[u]);
	else
		snprintf(buf, size, "%.1f%c", v, units[u]);
}

void ab_format_duration(char *buf, size_t size, uint64_t s)
{
	if (s >= 86400)
		snprintf(buf, size, "%" PRIu64 "d%" PRIu64 "h", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, size, "%" PRIu64 "h%" PRIu64 "m", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, size, "%" PRIu64 "m%" PRIu64 "s", s / 60, s % 60);
	else
		snprintf(buf, size, "%" PRIu64 "s", s);
}

/* utime+stime (+ what it reaped, for init) and resident bytes of one process. */
static bool proc_usage(pid_t pid, bool with_children, uint64_t *cpu_ns, uint64_t *rss)
{
	char path[64], *text = NULL, *p;
	unsigned long long ut = 0, st = 0, cut = 0, cst = 0, rss_pages = 0;
	long tick = sysconf(_SC_CLK_TCK);
	size_t len;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (ab_read_file(path, 4096, &text, &len) < 0)
		return false;
	p = strrchr(text, ')');
	/* fields 14-17: utime stime cutime cstime; 24: rss */
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu %*d %*d %*d %*d %*u %*u %llu",
			 &ut, &st, &cut, &cst, &rss_pages) != 5) {
		free(text);
		return false;
	}
	free(text);
	if (tick <= 0)
		tick = 100;
	*cpu_ns += (ut + st + (with_children ? cut + cst : 0)) * (1000000000ULL / (uint64_t)tick);
	*rss += rss_pages * (uint64_t)sysconf(_SC_PAGESIZE);
	return true;
}

/* The processes under init, breadth first through /proc/PID/task/TID/children. */
static void walk_tree(pid_t init, struct ab_usage *u)
{
	pid_t *v = calloc(MAX_TREE, sizeof(pid_t));
	size_t n = 0;

	if (!v)
		return;
	v[n++] = init;
	for (size_t i = 0; i < n; i++) {
		char path[400], *text = NULL;
		size_t len = 0;
		DIR *d;
		struct dirent *de;

		snprintf(path, sizeof(path), "/proc/%d/task", (int)v[i]);
		d = opendir(path);
		if (!d)
			continue;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%d/task/%s/children", (int)v[i], de->d_name);
			if (ab_read_file(path, 65536, &text, &len) < 0)
				continue;
			for (char *tok = strtok(text, " \n"); tok && n < MAX_TREE; tok = strtok(NULL, " \n"))
				v[n++] = (pid_t)atoi(tok);
			free(text);
			text = NULL;
		}
		closedir(d);
	}
	for (size_t i = 0; i < n; i++)
		if (proc_usage(v[i], i == 0, &u->cpu_ns, &u->memory))
			u->pids++;
	u->pid_list = v;
	u->n_pid_list = n;
}

static uint64_t tree_bytes(int dirfd, int depth)
{
	DIR *d = fdopendir(dirfd);
	struct dirent *de;
	uint64_t total = 0;

	if (!d) {
		close(dirfd);
		return 0;
	}
	while ((de = readdir(d))) {
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		total += (uint64_t)st.st_blocks * 512;
		if (S_ISDIR(st.st_mode) && depth < 256) {
			int fd = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd >= 0)
				total += tree_bytes(fd, depth + 1);
		}
	}
	closedir(d);
	return total;
}

static void net_bytes(pid_t init, struct ab_usage *u)
{
	char path[64], *text = NULL;
	size_t len;

	snprintf(path, sizeof(path), "/proc/%d/net/dev", (int)init);
	if (ab_read_file(path, 65536, &text, &len) < 0)
		return;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *colon = strchr(line, ':');
		unsigned long long rx, tx;
		if (!colon)
			continue;
		if (sscanf(colon + 1, "%llu %*u %*u %*u %*u %*u %*u %*u %llu", &rx, &tx) == 2) {
			u->net_rx += rx;
			u->net_tx += tx;
		}
	}
	free(text);
}

void ab_usage_read(const struct ab_state *st, const char *data_upper, const char *data_layer, struct ab_usage *u)
{
	struct ab_cgroup cg = { 0 };
	bool from_cgroup = false;

	memset(u, 0, sizeof(*u));
	u->live = (st->status == AB_STATUS_RUNNING || st->status == AB_STATUS_CREATED) && st->init_pid > 0 &&
		  ab_proc_is(st->init_pid, st->init_start);
	if (u->live && st->cgroup && ab_cgroup_from_json(st->cgroup, &cg) >= 0 &&
	    (cg.mode == AB_LIMITS_CGROUP1 || cg.mode == AB_LIMITS_CGROUP2)) {
		struct ab_cgroup_stats s = { 0 };
		if (ab_cgroup_read_stats(&cg, &s) >= 0 && s.have_memory) {
			from_cgroup = true;
			u->cpu_ns = s.cpu_usage_ns;
			u->memory = s.memory_current;
			u->memory_max = s.memory_max;
			u->pids = s.pids_current;
			u->pids_max = s.pids_max;
		}
	}
	ab_cgroup_free(&cg);
	if (u->live) {
		struct ab_usage tree = { 0 };
		walk_tree(st->init_pid, &tree);
		if (!from_cgroup) {
			u->cpu_ns = tree.cpu_ns;
			u->memory = tree.memory;
			u->pids = tree.pids;
		}
		u->pid_list = tree.pid_list;
		u->n_pid_list = tree.n_pid_list;
		net_bytes(st->init_pid, u);
	}
	if (!u->memory_max)
		u->memory_max = st->limits.memory;
	if (!u->pids_max)
		u->pids_max = st->limits.pids;
	for (int i = 0; i < 2; i++) {
		const char *dir = i ? data_layer : data_upper;
		int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
		if (fd >= 0)
			u->disk += tree_bytes(fd, 0);
	}
}

void ab_usage_free(struct ab_usage *u)
{
	free(u->pid_list);
	u->pid_list = NULL;
	u->n_pid_list = 0;
}
