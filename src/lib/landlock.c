#include "landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "landlock-uapi.h"

/* What each ABI adds. A right the kernel does not know cannot be handled, so each ABI's
 * ruleset handles exactly the rights up to its row. */
static const struct {
	int abi;
	uint64_t fs_rights;
	uint64_t scopes;
	const char *what;
} abi_table[] = {
	{ 1,
	  LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | LL_READ_DIR | LL_REMOVE_DIR | LL_REMOVE_FILE | LL_MAKE_CHAR |
		  LL_MAKE_DIR | LL_MAKE_REG | LL_MAKE_SOCK | LL_MAKE_FIFO | LL_MAKE_BLOCK | LL_MAKE_SYM,
	  0, "file access" },
	{ 2, LL_REFER, 0, "links and renames across directories" },
	{ 3, LL_TRUNCATE, 0, "truncation" },
	{ 4, 0, 0, "(TCP rules: the network namespace does this job)" },
	{ 5, LL_IOCTL_DEV, 0, "device ioctls" },
	{ 6, 0, LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL, "abstract sockets and signals scoped to the sandbox" },
	{ 7, 0, 0, "(audit logging)" },
};

#define RIGHTS_READ_EXEC (LL_EXECUTE | LL_READ_FILE | LL_READ_DIR)
#define RIGHTS_WRITE_EXISTING (LL_WRITE_FILE | LL_TRUNCATE)
#define RIGHTS_CREATE                                                                                 \
	(LL_REMOVE_DIR | LL_REMOVE_FILE | LL_MAKE_DIR | LL_MAKE_REG | LL_MAKE_SOCK | LL_MAKE_FIFO | LL_MAKE_SYM | \
	 LL_REFER)

/* The classes, as the table of what each kind of path may do. Device nodes cannot be made
 * anywhere (MAKE_CHAR and MAKE_BLOCK are in no class). */
static const uint64_t class_rights[] = {
	[AB_LL_READ_EXEC] = RIGHTS_READ_EXEC,
	[AB_LL_READ_WRITE] = RIGHTS_READ_EXEC | RIGHTS_WRITE_EXISTING | RIGHTS_CREATE,
	[AB_LL_DEVICES] = RIGHTS_READ_EXEC | RIGHTS_WRITE_EXISTING | LL_IOCTL_DEV | RIGHTS_CREATE,
	[AB_LL_PROC] = LL_READ_FILE | LL_READ_DIR | LL_WRITE_FILE,
};

int ab_landlock_abi(void)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
	return abi < 0 ? 0 : (int)abi;
}

uint64_t ab_landlock_handled_fs(int abi)
{
	uint64_t r = 0;
	for (size_t i = 0; i < AB_ELEMENTSOF(abi_table); i++)
		if (abi_table[i].abi <= abi)
			r |= abi_table[i].fs_rights;
	return r;
}

static uint64_t handled_scopes(int abi)
{
	uint64_t r = 0;
	for (size_t i = 0; i < AB_ELEMENTSOF(abi_table); i++)
		if (abi_table[i].abi <= abi)
			r |= abi_table[i].scopes;
	return r;
}

uint64_t ab_landlock_class_rights(enum ab_landlock_class cls, int abi)
{
	return class_rights[cls] & ab_landlock_handled_fs(abi);
}

size_t ab_landlock_rules_for(const struct ab_config *cfg, struct ab_landlock_rule *out)
{
	size_t n = 0;

	out[n++] = (struct ab_landlock_rule){ "/", AB_LL_READ_EXEC };
	out[n++] = (struct ab_landlock_rule){ "/dev", AB_LL_DEVICES };
	out[n++] = (struct ab_landlock_rule){ "/proc", AB_LL_PROC };
	out[n++] = (struct ab_landlock_rule){ cfg->home, AB_LL_READ_WRITE };
	for (size_t i = 0; i < cfg->n_tmpfs; i++)
		out[n++] = (struct ab_landlock_rule){ cfg->tmpfs[i].dest, AB_LL_READ_WRITE };
	if (cfg->workspace_mode != AB_WORKSPACE_RO)
		out[n++] = (struct ab_landlock_rule){ cfg->workspace_dest, AB_LL_READ_WRITE };
	for (size_t i = 0; i < cfg->n_binds; i++)
		if (!cfg->binds[i].read_only)
			out[n++] = (struct ab_landlock_rule){ cfg->binds[i].dest, AB_LL_READ_WRITE };
	return n;
}

int ab_landlock_apply(const struct ab_landlock_rule *rules, size_t n, int abi, struct ab_error *err)
{
	struct ll_ruleset_attr attr = {
		.handled_access_fs = ab_landlock_handled_fs(abi),
		.scoped = handled_scopes(abi),
	};
	/* The kernel takes the struct size as the ABI of the caller: older kernels refuse
	 * fields they do not know, even when zero, so pass only what this ABI has. */
	size_t attr_size = abi >= 6 ? sizeof(attr) : abi >= 4 ? 2 * sizeof(uint64_t) : sizeof(uint64_t);
	_cleanup_close_ int ruleset = -1;

	ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
	if (ruleset < 0)
		return ab_error_set(err, errno, "cannot create the Landlock ruleset (ABI %d)", abi);
	for (size_t i = 0; i < n; i++) {
		struct ll_path_beneath_attr pb = { .allowed_access = ab_landlock_class_rights(rules[i].cls, abi) };
		_cleanup_close_ int fd = open(rules[i].path, O_PATH | O_CLOEXEC);
		if (fd < 0)
			return ab_error_set(err, errno, "cannot open '%s' for the Landlock ruleset", rules[i].path);
		pb.parent_fd = fd;
		if (syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &pb, 0) < 0)
			return ab_error_set(err, errno, "cannot add the Landlock rule for '%s'", rules[i].path);
	}
	if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0)
		return ab_error_set(err, errno, "cannot enforce the Landlock ruleset");
	return 0;
}

void ab_landlock_describe(int abi, char *buf, size_t len)
{
	size_t used = 0;

	if (abi <= 0) {
		snprintf(buf, len, "not available on this kernel");
		return;
	}
	used += (size_t)snprintf(buf, len, "ABI %d:", abi);
	for (size_t i = 0; i < AB_ELEMENTSOF(abi_table) && used < len; i++)
		if (abi_table[i].abi <= abi && abi_table[i].what[0] != '(')
			used += (size_t)snprintf(buf + used, len - used, "%s %s", i ? "," : "", abi_table[i].what);
}
