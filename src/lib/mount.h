/* Mount primitives used while the sandbox's root is built. All return 0 or < 0 with err set. */
#ifndef AB_MOUNT_H
#define AB_MOUNT_H

#include <stdbool.h>
#include <stdint.h>

#include "../shared/error.h"

/* Read-only, no set-uid, no device nodes: what every shared system path gets. */
#define AB_ATTR_SYSTEM (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)

int ab_mount_make_private(struct ab_error *err);
int ab_mount_tmpfs(const char *dest, uint64_t size_bytes, unsigned mode, unsigned long flags,
		   struct ab_error *err);
/* Recursive bind of src on dest, then the attributes in attr_set (MOUNT_ATTR_*) applied
 * to the whole tree; a lock the host put on a mount is never lifted. */
int ab_mount_bind(const char *src, const char *dest, unsigned attr_set, struct ab_error *err);
int ab_mount_setattr(const char *dest, unsigned attr_set, bool recursive, struct ab_error *err);
/* Creates every missing directory of rel (relative to root) with a checked walk that refuses
 * to cross a symlink; when as_file, the last component is created as an empty file. */
int ab_mkpath_beneath(const char *root, const char *rel, bool as_file, struct ab_error *err);
/* Makes newroot the root of the mount namespace and detaches the old root entirely. */
int ab_pivot_root(const char *newroot, struct ab_error *err);

#endif
