/* The resource-limit options of `agentbox run`: parsed and checked against what a sandbox
 * needs at least, before anything is created. Pure. */
#ifndef AB_CONFIG_LIMITS_H
#define AB_CONFIG_LIMITS_H

#include <stdint.h>

#include "../shared/error.h"
#include "config.h"

/* The least a sandbox can start with: its init, a shell and a few children. */
#define AB_MIN_MEMORY (6ULL << 20)
#define AB_MIN_PIDS 8
#define AB_MIN_DISK (1ULL << 20)
#define AB_MAX_TIMEOUT_MS (366ULL * 24 * 3600 * 1000)

/* "90", "90s", "500ms", "10m", "2h", "1h30m", "1d" -> milliseconds (> 0). */
int ab_parse_duration(const char *s, uint64_t *ms);
/* "2", "0.5", "1.25" -> thousandths of a CPU (> 0). */
int ab_parse_cpus(const char *s, uint64_t *millis);

enum ab_limit_option {
	AB_LIMIT_MEMORY,
	AB_LIMIT_MEMORY_SWAP,
	AB_LIMIT_CPUS,
	AB_LIMIT_PIDS,
	AB_LIMIT_DISK,
	AB_LIMIT_TIMEOUT,
	AB_LIMIT_ULIMIT,
};

/* One option's value into lim; err names the option and the value. */
int ab_parse_limit(enum ab_limit_option which, const char *value, struct ab_limits *lim, struct ab_error *err);
/* The options together (after all are parsed): swap with memory, cpus against the
 * machine's count, disk against the workspace mode. */
int ab_check_limits(const struct ab_config *cfg, struct ab_error *err);

#endif
