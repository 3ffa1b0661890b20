/* Seccomp: compiles the tables of seccomp-policy.c (or a Docker profile) into classic
 * BPF in the parent, and installs the ready programs in the child.
 *
 * Every program is built for the native architecture alone. A syscall made through
 * another ABI of the same CPU (i386 through int 0x80, x32) carries another audit arch
 * or syscall range and is answered EPERM by libseccomp's architecture check, before
 * any rule runs: the rules name native numbers and would mean something else there. */
#include "seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "seccomp-policy.h"

/* The tables compiled at build time by src/tools/gen-seccomp-builtin.c (libseccomp takes
 * milliseconds per compile; a sandbox should start in a few). The generator itself links
 * an empty list (src/tools/no-builtins.c) and compiles at run time. The unit tests check
 * that both ways give the same program. */
extern const struct ab_seccomp_builtin ab_seccomp_builtins[];
extern const size_t ab_n_seccomp_builtins;

static const struct ab_seccomp_builtin *find_builtin(const struct ab_seccomp_table *table)
{
	for (size_t i = 0; i < ab_n_seccomp_builtins; i++)
		if (strcmp(ab_seccomp_builtins[i].table_name, table->name) == 0)
			return &ab_seccomp_builtins[i];
	return NULL;
}

const struct ab_seccomp_builtin *ab_seccomp_builtin_for(const struct ab_seccomp_table *table)
{
	return find_builtin(table);
}

/* The program of a table: the build-time one when this binary has it. */
static int load_table(const struct ab_seccomp_table *table, struct ab_seccomp_program *out,
		      struct ab_error *err)
{
	const struct ab_seccomp_builtin *built = find_builtin(table);
	size_t bytes;

	if (!built)
		return ab_seccomp_compile_table(table, out, err);
	bytes = built->len * sizeof(struct sock_filter);
	out->insns = malloc(bytes);
	if (!out->insns)
		return ab_error_set(err, ENOMEM, "cannot load the '%s' seccomp program", table->name);
	memcpy(out->insns, built->insns, bytes);
	out->len = built->len;
	return 0;
}

/* At most 32 entries per value: one per bit where a value's prefix can be left. */
#define AB_SECCOMP_MAX_COVER (32 * AB_SECCOMP_MAX_VALUES + 1)

static int cover_node(uint32_t prefix, unsigned depth, const uint32_t *values, size_t n,
		      struct ab_seccomp_masked *out, size_t max, size_t *k)
{
	uint32_t mask = depth ? ~0u << (32 - depth) : 0;
	bool any = false;
	int r;

	for (size_t i = 0; i < n && !any; i++)
		any = (values[i] & mask) == prefix;
	if (!any) {
		/* No listed value starts with this prefix: the whole subtree is outside. */
		if (*k >= max)
			return -ENOSPC;
		out[(*k)++] = (struct ab_seccomp_masked){ .mask = mask, .value = prefix };
		return 0;
	}
	if (depth == 32)
		return 0; /* this leaf is one of the values */
	r = cover_node(prefix, depth + 1, values, n, out, max, k);
	if (r < 0)
		return r;
	return cover_node(prefix | (1u << (31 - depth)), depth + 1, values, n, out, max, k);
}

int ab_seccomp_complement_cover(const uint32_t *values, size_t n, struct ab_seccomp_masked *out,
				size_t max)
{
	size_t k = 0;
	int r = cover_node(0, 0, values, n, out, max, &k);

	return r < 0 ? r : (int)k;
}

int ab_seccomp_ctx_new(uint32_t default_action, scmp_filter_ctx *out)
{
	scmp_filter_ctx ctx = seccomp_init(default_action);
	int r;

	if (!ctx)
		return -EINVAL;
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(EPERM));
	if (r < 0) {
		seccomp_release(ctx);
		return r;
	}
#if SCMP_VER_MAJOR > 2 || (SCMP_VER_MAJOR == 2 && SCMP_VER_MINOR >= 5)
	/* A binary search over syscall numbers instead of a linear chain. Older
	 * libseccomp lacks it; the filter is the same, only slower. */
	(void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
#endif
	*out = ctx;
	return 0;
}

int ab_seccomp_ctx_export(scmp_filter_ctx ctx, struct ab_seccomp_program *out)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ struct sock_filter *insns = NULL;
	struct stat st;
	size_t size, done = 0;
	int r;

	fd = memfd_create("agentbox-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = seccomp_export_bpf(ctx, fd);
	if (r < 0)
		return r;
	if (fstat(fd, &st) < 0)
		return -errno;
	size = (size_t)st.st_size;
	if (size == 0 || size % sizeof(struct sock_filter) != 0)
		return -EIO;
	if (size / sizeof(struct sock_filter) > BPF_MAXINSNS)
		return -E2BIG;
	insns = malloc(size);
	if (!insns)
		return -ENOMEM;
	while (done < size) {
		ssize_t n = pread(fd, (char *)insns + done, size - done, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	out->insns = TAKE_PTR(insns);
	out->len = (unsigned short)(size / sizeof(struct sock_filter));
	return 0;
}

/* (arg & mask) == value, on the whole 64-bit argument. */
static int add_masked(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned arg, uint64_t mask,
		      uint64_t value)
{
	struct scmp_arg_cmp cmp = {
		.arg = arg, .op = SCMP_CMP_MASKED_EQ, .datum_a = mask, .datum_b = value,
	};

	return seccomp_rule_add_exact_array(ctx, action, nr, 1, &cmp);
}

static int add_values(scmp_filter_ctx ctx, uint32_t action, const struct ab_seccomp_rule *rule)
{
	for (unsigned i = 0; i < rule->n_values; i++) {
		int r = add_masked(ctx, action, rule->nr, rule->arg, 0xffffffffu, rule->values[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static int add_complement(scmp_filter_ctx ctx, uint32_t action, const struct ab_seccomp_rule *rule)
{
	struct ab_seccomp_masked cover[AB_SECCOMP_MAX_COVER];
	int n = ab_seccomp_complement_cover(rule->values, rule->n_values, cover,
					    AB_ELEMENTSOF(cover));

	for (int i = 0; i < n; i++) {
		int r = add_masked(ctx, action, rule->nr, rule->arg, cover[i].mask, cover[i].value);
		if (r < 0)
			return r;
	}
	return n < 0 ? n : 0;
}

/* Emits the sides of a rule that differ from the table's default: the refused side in a
 * deny list; both sides in an allow list (unless the refusal is the default anyway). */
static int compile_rule(scmp_filter_ctx ctx, const struct ab_seccomp_table *table,
			const struct ab_seccomp_rule *rule)
{
	uint32_t refuse = SCMP_ACT_ERRNO((uint32_t)rule->refuse_errno);
	bool want_refused = !table->allow_list || rule->refuse_errno != table->default_errno;
	bool want_allowed = table->allow_list;
	int r = 0;

	if (rule->arg > 5 || rule->n_values > AB_SECCOMP_MAX_VALUES)
		return -EINVAL;
	if (rule->check != AB_CHECK_NONE && rule->refuse_errno <= 0)
		return -EINVAL; /* an argument check needs a refused side */

	switch (rule->check) {
	case AB_CHECK_NONE:
		if (rule->refuse_errno > 0)
			return want_refused ? seccomp_rule_add_exact(ctx, refuse, rule->nr, 0) : 0;
		if (!table->allow_list)
			return -EINVAL; /* "allowed" means nothing in a deny list */
		return seccomp_rule_add_exact(ctx, SCMP_ACT_ALLOW, rule->nr, 0);
	case AB_CHECK_ANY_FLAG:
		for (unsigned bit = 0; bit < 64 && want_refused && r >= 0; bit++) {
			uint64_t flag = (uint64_t)1 << bit;
			if (rule->mask & flag)
				r = add_masked(ctx, refuse, rule->nr, rule->arg, flag, flag);
		}
		if (r >= 0 && want_allowed)
			r = add_masked(ctx, SCMP_ACT_ALLOW, rule->nr, rule->arg, rule->mask, 0);
		return r;
	case AB_CHECK_VALUE_IN:
		if (want_refused)
			r = add_values(ctx, refuse, rule);
		if (r >= 0 && want_allowed)
			r = add_complement(ctx, SCMP_ACT_ALLOW, rule);
		return r;
	case AB_CHECK_VALUE_NOT_IN:
		if (want_refused)
			r = add_complement(ctx, refuse, rule);
		if (r >= 0 && want_allowed)
			r = add_values(ctx, SCMP_ACT_ALLOW, rule);
		return r;
	}
	return -EINVAL;
}

int ab_seccomp_compile_table(const struct ab_seccomp_table *table, struct ab_seccomp_program *out,
			     struct ab_error *err)
{
	uint32_t def = table->allow_list ? SCMP_ACT_ERRNO((uint32_t)table->default_errno)
					 : SCMP_ACT_ALLOW;
	scmp_filter_ctx ctx = NULL;
	int r;

	r = ab_seccomp_ctx_new(def, &ctx);
	if (r < 0)
		return ab_error_set(err, -r, "cannot create seccomp filter '%s'", table->name);
	for (size_t i = 0; i < table->n_rules; i++) {
		r = compile_rule(ctx, table, &table->rules[i]);
		if (r < 0) {
			seccomp_release(ctx);
			return ab_error_set(err, -r, "cannot add seccomp rule '%s' to filter '%s'",
					    table->rules[i].name, table->name);
		}
	}
	r = ab_seccomp_ctx_export(ctx, out);
	seccomp_release(ctx);
	if (r < 0)
		return ab_error_set(err, -r, "cannot export seccomp filter '%s'", table->name);
	return 0;
}

static const char *errno_name(int e)
{
	switch (e) {
	case EPERM:
		return "EPERM";
	case ENOSYS:
		return "ENOSYS";
	default:
		return "an error";
	}
}

static void summarize_table(const struct ab_seccomp_table *table, char *buf, size_t size)
{
	size_t allowed = 0, refused = 0, by_arg = 0;

	for (size_t i = 0; i < table->n_rules; i++) {
		const struct ab_seccomp_rule *rule = &table->rules[i];
		if (rule->check != AB_CHECK_NONE)
			by_arg++;
		else if (rule->refuse_errno > 0)
			refused++;
		else
			allowed++;
	}
	if (table->allow_list)
		snprintf(buf, size,
			 "%s: %zu syscalls allowed, %zu more by argument, others fail with %s, "
			 "foreign ABIs refused",
			 table->name, allowed, by_arg, errno_name(table->default_errno));
	else
		snprintf(buf, size,
			 "%s: %zu syscalls refused, %zu more by argument, foreign ABIs refused",
			 table->name, refused, by_arg);
}

static int read_profile(const char *path, char **out, size_t *out_len, struct ab_error *err)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	struct stat st;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0)
		return ab_error_set(err, errno, "cannot read seccomp profile '%s'", path);
	if (!S_ISREG(st.st_mode))
		return ab_error_set(err, 0, "cannot read seccomp profile '%s': not a regular file",
				    path);
	if (st.st_size > AB_SECCOMP_PROFILE_MAX)
		return ab_error_set(err, 0, "seccomp profile '%s': larger than 1 MiB", path);
	buf = malloc(AB_SECCOMP_PROFILE_MAX + 1);
	if (!buf)
		return ab_error_set(err, ENOMEM, "cannot read seccomp profile '%s'", path);
	/* Read to the end even if the size changed since fstat: the cap is on bytes read. */
	for (;;) {
		ssize_t n = read(fd, buf + len, AB_SECCOMP_PROFILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return ab_error_set(err, errno, "cannot read seccomp profile '%s'", path);
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > AB_SECCOMP_PROFILE_MAX)
			return ab_error_set(err, 0, "seccomp profile '%s': larger than 1 MiB", path);
	}
	*out = TAKE_PTR(buf);
	*out_len = len;
	return 0;
}

static int prepare_profile(const char *path, struct ab_seccomp_set *out, struct ab_error *err)
{
	_cleanup_free_ char *json = NULL;
	struct ab_seccomp_program guard = { 0 };
	char profile_summary[sizeof(out->summary)];
	size_t len = 0;
	int r;

	if (!path)
		return ab_error_set(err, EINVAL, "seccomp profile mode without a profile file");
	r = read_profile(path, &json, &len, err);
	if (r < 0)
		return r;
	r = ab_seccomp_parse_docker_profile(json, len, out, err);
	if (r < 0)
		return ab_error_wrap(err, "seccomp profile '%s'", path);
	r = load_table(&ab_seccomp_tty_guard_table, &guard, err);
	if (r < 0) {
		ab_seccomp_set_free(out);
		return r;
	}
	/* The guard goes first: a profile may refuse seccomp(2) and prctl(2) themselves,
	 * which would stop any filter installed after it. The guard allows both. */
	out->programs[1] = out->programs[0];
	out->programs[0] = guard;
	out->n_programs = 2;
	memcpy(profile_summary, out->summary, sizeof(profile_summary));
	if (snprintf(out->summary, sizeof(out->summary), "profile '%s': %s, TIOCSTI/TIOCLINUX refused",
		     path, profile_summary) >= (int)sizeof(out->summary))
		memcpy(out->summary + sizeof(out->summary) - 4, "...", 4);
	return 0;
}

int ab_seccomp_prepare(enum ab_seccomp_mode mode, const char *profile_path,
		       struct ab_seccomp_set *out, struct ab_error *err)
{
	const struct ab_seccomp_table *table = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	switch (mode) {
	case AB_SECCOMP_UNCONFINED:
		snprintf(out->summary, sizeof(out->summary), "unconfined: no seccomp filter");
		return 0;
	case AB_SECCOMP_PROFILE:
		return prepare_profile(profile_path, out, err);
	case AB_SECCOMP_DEFAULT:
		table = &ab_seccomp_default_table;
		break;
	case AB_SECCOMP_STRICT:
		table = &ab_seccomp_strict_table;
		break;
	}
	if (!table)
		return ab_error_set(err, EINVAL, "unknown seccomp mode %d", (int)mode);
	r = load_table(table, &out->programs[0], err);
	if (r < 0)
		return r;
	out->n_programs = 1;
	summarize_table(table, out->summary, sizeof(out->summary));
	return 0;
}

int ab_seccomp_install(const struct ab_seccomp_set *set)
{
	for (size_t i = 0; i < set->n_programs && i < AB_SECCOMP_MAX_PROGRAMS; i++) {
		struct sock_fprog prog = {
			.len = set->programs[i].len,
			.filter = set->programs[i].insns,
		};

		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0)
			continue;
		if (errno != ENOSYS)
			return -errno;
		/* Kernels before 3.17 have only the prctl interface. */
		if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
			return -errno;
	}
	return 0;
}

void ab_seccomp_set_free(struct ab_seccomp_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < AB_SECCOMP_MAX_PROGRAMS; i++) {
		free(set->programs[i].insns);
		set->programs[i].insns = NULL;
		set->programs[i].len = 0;
	}
	set->n_programs = 0;
}
