/* Landlock: a file-access ruleset that mirrors the mount policy, applied when the kernel has it. */
#ifndef AB_LANDLOCK_H
#define AB_LANDLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../shared/error.h"
#include "config.h"

#define AB_LANDLOCK_MAX_RULES (AB_MAX_MOUNTS + AB_MAX_TMPFS + 8)

enum ab_landlock_class {
	AB_LL_READ_EXEC,  /* read files and directories, execute */
	AB_LL_READ_WRITE, /* everything a working directory needs */
	AB_LL_DEVICES,    /* read-write files and device ioctls, no new files */
	AB_LL_PROC,       /* read, and write to existing files */
};

struct ab_landlock_rule {
	const char *path; /* inside the sandbox */
	enum ab_landlock_class cls;
};

/* 0 when the kernel has no Landlock (or it is disabled), else the ABI version. */
int ab_landlock_abi(void);
/* The rights this ABI handles for each class (exposed for tests and the report). */
uint64_t ab_landlock_handled_fs(int abi);
uint64_t ab_landlock_class_rights(enum ab_landlock_class cls, int abi);
/* Rules for cfg: "/" read-only, workspace (rw or ro), tmpfs, home, /dev, /proc. Pure. */
size_t ab_landlock_rules_for(const struct ab_config *cfg, struct ab_landlock_rule *out);
/* Builds and enforces the ruleset for the calling thread. Needs no_new_privs. */
int ab_landlock_apply(const struct ab_landlock_rule *rules, size_t n, int abi, struct ab_error *err);
/* One line for the enforcement report. */
void ab_landlock_describe(int abi, char *buf, size_t len);

#endif
