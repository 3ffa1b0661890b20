/* Seccomp: built from a policy table (or a Docker profile) in the parent, before any
 * namespace work, exported as classic BPF; the child only installs the ready programs. */
#ifndef AB_SECCOMP_H
#define AB_SECCOMP_H

#include <linux/filter.h>
#include <stddef.h>

#include "../shared/error.h"
#include "config.h"

#define AB_SECCOMP_MAX_PROGRAMS 2

struct ab_seccomp_program {
	struct sock_filter *insns; /* malloc'ed */
	unsigned short len;
};

struct ab_seccomp_set {
	struct ab_seccomp_program programs[AB_SECCOMP_MAX_PROGRAMS];
	size_t n_programs;
	char summary[256]; /* one line for the enforcement report */
};

/* Builds the filters for mode (profile_path only for AB_SECCOMP_PROFILE). */
int ab_seccomp_prepare(enum ab_seccomp_mode mode, const char *profile_path,
		       struct ab_seccomp_set *out, struct ab_error *err);

/* Installs every program, in order. Needs no_new_privs set. Returns 0 or -errno.
 * Async-signal-safe: no allocation, no printing. */
int ab_seccomp_install(const struct ab_seccomp_set *set);

void ab_seccomp_set_free(struct ab_seccomp_set *set);

/* Parses a Docker seccomp profile held in memory (pure; fuzzed). */
int ab_seccomp_parse_docker_profile(const char *json, size_t len, struct ab_seccomp_set *out,
				    struct ab_error *err);

#endif
