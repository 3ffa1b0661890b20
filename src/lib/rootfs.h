/* The sandbox's root filesystem: built on a tmpfs, entered with pivot_root. */
#ifndef AB_ROOTFS_H
#define AB_ROOTFS_H

#include "../shared/error.h"
#include "config.h"

enum ab_user_mount_kind { AB_UMOUNT_TMPFS, AB_UMOUNT_HOME, AB_UMOUNT_WORKSPACE, AB_UMOUNT_BIND };

struct ab_user_mount {
	enum ab_user_mount_kind kind;
	const char *dest;
	const char *source; /* binds and workspace */
	uint64_t size_bytes; /* tmpfs and home */
	bool read_only;
};

/* The mounts the user asked for (tmpfs, home, workspace, volumes) in the order they must be
 * made: a parent before anything beneath it. Pure; `out` holds at most
 * AB_MAX_MOUNTS + AB_MAX_TMPFS + 2 entries. Returns the count. */
size_t ab_rootfs_user_mounts(const struct ab_config *cfg, struct ab_user_mount *out);

/* Runs in the new mount, pid and (usually) network namespaces, with full capabilities in
 * the new user namespace. On return the process's root is the sandbox's root and its
 * working directory is the workspace. */
int ab_rootfs_build(const struct ab_config *cfg, struct ab_error *err);
/* With --disk-limit and a copy-on-write workspace: an O_PATH descriptor of the changes'
 * directory inside the sandbox's disk space (once; -1 otherwise), which the sandbox's init
 * hands to agentbox so that the changes are copied back when the run ends. */
int ab_rootfs_take_disk_upper(void);

#endif
