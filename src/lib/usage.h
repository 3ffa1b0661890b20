/* What a running sandbox costs, for ps, stats and inspect: from its cgroup when it has
 * one, else from its processes (the tree under its init), plus the disk its changes take
 * and the bytes its network namespace moved. */
#ifndef AB_USAGE_H
#define AB_USAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "state.h"

struct ab_usage {
	bool live;
	uint64_t cpu_ns;       /* CPU time used so far */
	uint64_t memory;       /* bytes in use (cgroup) or resident (processes) */
	uint64_t memory_max;   /* 0: no limit */
	uint64_t pids;         /* processes (and threads, with a cgroup) */
	uint64_t pids_max;
	uint64_t disk;         /* bytes of the sandbox's workspace changes */
	uint64_t net_rx, net_tx;
	pid_t *pid_list;       /* host pids of the sandbox's processes */
	size_t n_pid_list;
};

/* Fills u for st (any status; only live sandboxes have processes). data_upper and
 * data_layer: the copy-on-write upper directory and the run's layer over it (layer.h),
 * or NULL. */
void ab_usage_read(const struct ab_state *st, const char *data_upper, const char *data_layer, struct ab_usage *u);
void ab_usage_free(struct ab_usage *u);
/* "12.3m", "4g", "512k" */
void ab_format_bytes(char *buf, size_t size, uint64_t bytes);
/* "3h12m", "45s" */
void ab_format_duration(char *buf, size_t size, uint64_t seconds);

#endif
