/* The seccomp policy as data: the tables that seccomp-policy.c lists and reviewers diff,
 * and the small compiler in seccomp.c that turns a table (or a Docker profile, in
 * seccomp-docker.c) into classic BPF for the native architecture. */
#ifndef AB_SECCOMP_POLICY_H
#define AB_SECCOMP_POLICY_H

#include <seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../shared/error.h"
#include "seccomp.h"

#define AB_SECCOMP_MAX_VALUES 8

/* Hard caps on a Docker profile: bytes, JSON nesting, syscall names (and entries). */
#define AB_SECCOMP_PROFILE_MAX (1024 * 1024)
#define AB_SECCOMP_PROFILE_MAX_DEPTH 32
#define AB_SECCOMP_PROFILE_MAX_NAMES 4096

/* How a rule looks at one argument. Every check splits the argument's values into a
 * refused side and an allowed side, so one rule compiles for either kind of table. */
enum ab_seccomp_check {
	AB_CHECK_NONE,        /* no argument check: the whole syscall is refused or allowed */
	AB_CHECK_ANY_FLAG,    /* refused when any bit of `mask` is set in the argument */
	AB_CHECK_VALUE_IN,    /* refused when the low 32 bits are one of `values` */
	AB_CHECK_VALUE_NOT_IN /* refused unless the low 32 bits are one of `values` */
};

struct ab_seccomp_rule {
	const char *name;  /* the syscall, for people and for reports */
	int nr;            /* its native number */
	int refuse_errno;  /* errno of the refused side; 0: an allow-list entry, no refused side */
	enum ab_seccomp_check check;
	unsigned arg;      /* the argument index the check reads, 0..5 */
	uint64_t mask;     /* AB_CHECK_ANY_FLAG */
	uint32_t values[AB_SECCOMP_MAX_VALUES]; /* AB_CHECK_VALUE_IN, AB_CHECK_VALUE_NOT_IN */
	unsigned n_values;
	const char *why;   /* one line: why refused (allow-list rows share group comments) */
};

struct ab_seccomp_table {
	const char *name;   /* "default", "strict", ... */
	bool allow_list;    /* false: anything unlisted is allowed; true: refused */
	int default_errno;  /* what an unlisted syscall gets in an allow list */
	const struct ab_seccomp_rule *rules;
	size_t n_rules;
};

/* The tables of seccomp-policy.c. */
extern const struct ab_seccomp_table ab_seccomp_default_table; /* deny list */
extern const struct ab_seccomp_table ab_seccomp_strict_table;  /* allow list */
extern const struct ab_seccomp_table ab_seccomp_tty_guard_table; /* TIOCSTI/TIOCLINUX only */
extern const struct ab_seccomp_table ab_seccomp_proxy_table; /* the egress proxy's allow list */

/* One masked comparison on the low 32 bits of an argument: (arg & mask) == value. */
struct ab_seccomp_masked {
	uint32_t mask;
	uint32_t value;
};

/* --- The compiler, in seccomp.c; seccomp-docker.c and the tests use it too. --- */

/* Fills out with masked comparisons whose union is exactly the 32-bit values NOT in
 * values[0..n). Returns how many were written, or -ENOSPC when max is too small. */
int ab_seccomp_complement_cover(const uint32_t *values, size_t n, struct ab_seccomp_masked *out,
				size_t max);

/* A libseccomp context for the native architecture only, foreign ABIs (i386 through
 * int 0x80, x32) answered with EPERM, the optimizer on where libseccomp has one.
 * Returns 0 or -errno. */
int ab_seccomp_ctx_new(uint32_t default_action, scmp_filter_ctx *out);

/* Exports ctx as classic BPF into out (insns malloc'ed). Returns 0 or -errno; -E2BIG
 * when the program is longer than the kernel accepts. */
int ab_seccomp_ctx_export(scmp_filter_ctx ctx, struct ab_seccomp_program *out);

/* Compiles a table into one program. Returns 0, or < 0 with err naming the rule. */
/* A table compiled at build time (see tools/gen-seccomp-builtin.c). */
struct ab_seccomp_builtin {
	const char *table_name;
	unsigned short len;
	const struct sock_filter *insns;
};
/* The build-time program of table, or NULL when this binary has none. */
const struct ab_seccomp_builtin *ab_seccomp_builtin_for(const struct ab_seccomp_table *table);

int ab_seccomp_compile_table(const struct ab_seccomp_table *table, struct ab_seccomp_program *out,
			     struct ab_error *err);

#endif
