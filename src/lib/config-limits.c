#include "config-limits.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ab_parse_duration(const char *s, uint64_t *ms)
{
	static const struct {
		const char *suffix;
		uint64_t ms;
	} units[] = { { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 } };
	uint64_t total = 0;
	const char *p = s;

	if (!s || !*s)
		return -EINVAL;
	while (*p) {
		uint64_t v = 0, mult = 1000; /* a bare number is seconds */
		size_t len = 0;

		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++) {
			if (v > 1000000000ULL)
				return -ERANGE;
			v = v * 10 + (uint64_t)(*p - '0');
		}
		if (*p) {
			mult = 0;
			for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
				size_t l = strlen(units[i].suffix);
				if (strncmp(p, units[i].suffix, l) == 0 && !isalpha((unsigned char)p[l]) && l > len) {
					mult = units[i].ms;
					len = l;
				}
			}
			if (!mult)
				return -EINVAL;
			p += len;
		} else if (p != s && total) {
			return -EINVAL; /* "1h30": the last number needs its unit */
		}
		if (v > AB_MAX_TIMEOUT_MS / mult)
			return -ERANGE;
		total += v * mult;
		if (total > AB_MAX_TIMEOUT_MS)
			return -ERANGE;
	}
	if (!total)
		return -EINVAL;
	*ms = total;
	return 0;
}

int ab_parse_cpus(const char *s, uint64_t *millis)
{
	uint64_t whole = 0, frac = 0;
	int digits = 0;
	const char *p = s;

	if (!s || !isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		if (whole > 100000)
			return -ERANGE;
		whole = whole * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++) {
			if (digits < 3)
				frac = frac * 10 + (uint64_t)(*p - '0');
			else if (*p != '0')
				return -EINVAL; /* finer than a thousandth */
			digits++;
		}
		for (; digits < 3; digits++)
			frac *= 10;
	}
	if (*p)
		return -EINVAL;
	*millis = whole * 1000 + frac;
	return *millis ? 0 : -EINVAL;
}

static int size_error(struct ab_error *err, const char *option, const char *value, int r)
{
	if (r == -ERANGE)
		return ab_error_set(err, 0, "%s '%s' is too large", option, value);
	return ab_error_set(err, 0, "invalid %s '%s': use a size such as 512m or 4g", option, value);
}

int ab_parse_limit(enum ab_limit_option which, const char *value, struct ab_limits *lim, struct ab_error *err)
{
	uint64_t v = 0;
	int r;

	switch (which) {
	case AB_LIMIT_MEMORY:
		if ((r = ab_parse_size(value, &v)) < 0)
			return size_error(err, "--memory", value, r);
		if (v < AB_MIN_MEMORY)
			return ab_error_set(err, 0, "--memory '%s' is below the 6m a sandbox needs to start", value);
		lim->memory = v;
		return 0;
	case AB_LIMIT_MEMORY_SWAP:
		if (strcmp(value, "-1") == 0) {
			lim->memory_swap = INT64_MAX; /* swap without limit, as with docker */
			return 0;
		}
		if ((r = ab_parse_size(value, &v)) < 0)
			return size_error(err, "--memory-swap", value, r);
		lim->memory_swap = (int64_t)v;
		return 0;
	case AB_LIMIT_CPUS:
		if ((r = ab_parse_cpus(value, &v)) < 0)
			return ab_error_set(err, 0, "invalid --cpus '%s': use a number of CPUs such as 2 or 0.5", value);
		if (v < 10)
			return ab_error_set(err, 0, "--cpus '%s' is below 0.01", value);
		lim->cpu_millis = v;
		return 0;
	case AB_LIMIT_PIDS: {
		char *end;
		errno = 0;
		unsigned long long n = strtoull(value, &end, 10);
		if (!isdigit((unsigned char)value[0]) || *end || errno)
			return ab_error_set(err, 0, "invalid --pids-limit '%s': use a number of processes such as 512", value);
		if (n < AB_MIN_PIDS)
			return ab_error_set(err, 0, "--pids-limit '%s' is below the %d processes a sandbox needs to start",
					    value, AB_MIN_PIDS);
		if (n > 4194304)
			return ab_error_set(err, 0, "--pids-limit '%s' is above the kernel's maximum (4194304)", value);
		lim->pids = n;
		return 0;
	}
	case AB_LIMIT_DISK:
		if ((r = ab_parse_size(value, &v)) < 0)
			return size_error(err, "--disk-limit", value, r);
		if (v < AB_MIN_DISK)
			return ab_error_set(err, 0, "--disk-limit '%s' is below 1m", value);
		lim->disk = v;
		return 0;
	case AB_LIMIT_TIMEOUT:
		if ((r = ab_parse_duration(value, &v)) < 0)
			return ab_error_set(err, 0, "invalid --timeout '%s': use a duration such as 90s, 10m or 2h", value);
		lim->timeout_ms = v;
		return 0;
	case AB_LIMIT_ULIMIT: {
		char *end;
		if (strncmp(value, "nofile=", 7) != 0)
			return ab_error_set(err, 0, "unsupported --ulimit '%s': use nofile=N (core is always 0, fsize follows --disk-limit)",
					    value);
		errno = 0;
		unsigned long long n = strtoull(value + 7, &end, 10);
		if (!isdigit((unsigned char)value[7]) || *end || errno || n < 16 || n > (1ULL << 30))
			return ab_error_set(err, 0, "invalid --ulimit '%s': use nofile=N with N from 16", value);
		lim->nofile = n;
		return 0;
	}
	}
	return ab_error_set(err, 0, "unknown limit");
}

int ab_check_limits(const struct ab_config *cfg, struct ab_error *err)
{
	const struct ab_limits *lim = &cfg->limits;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (lim->memory_swap >= 0 && lim->memory_swap != INT64_MAX) {
		if (!lim->memory)
			return ab_error_set(err, 0, "--memory-swap needs --memory: it is the total of memory and swap");
		if ((uint64_t)lim->memory_swap < lim->memory)
			return ab_error_set(err, 0, "--memory-swap must be at least --memory: it is the total of memory and swap");
	}
	if (lim->memory_swap == INT64_MAX && !lim->memory)
		return ab_error_set(err, 0, "--memory-swap needs --memory: it is the total of memory and swap");
	if (lim->cpu_millis && cpus > 0 && lim->cpu_millis > (uint64_t)cpus * 1000)
		return ab_error_set(err, 0, "--cpus '%g' is more than the %ld CPUs of this machine", (double)lim->cpu_millis / 1000.0,
				    cpus);
	if (lim->disk && cfg->workspace_mode == AB_WORKSPACE_RW)
		return ab_error_set(err, 0, "--disk-limit cannot bound the workspace '%s' in rw mode (the sandbox writes the project itself): use --workspace-mode cow or ro",
				    cfg->workspace);
	if (cfg->detach && cfg->explain)
		return ab_error_set(err, 0, "--detach and --explain do not go together: --explain only prints");
	return 0;
}
