/* The copy-on-write workspace's overlay mount, built ahead of the rest of the root. */
#ifndef AB_OVERLAY_H
#define AB_OVERLAY_H

#include "../shared/error.h"
#include "config.h"

/* Starts building the overlay of cfg's copy-on-write workspace (nothing for other modes,
 * or with --disk-limit, whose layers only exist once the root is being built). Called in
 * the sandbox's new mount namespace before anything is mounted there: the layers are
 * taken now, by their host paths. Never fails: what goes wrong is reported by
 * ab_overlay_mount, and where the kernel lacks the mount API it mounts the classic way
 * instead. */
void ab_overlay_begin(const struct ab_config *cfg);

/* Puts the workspace's overlay on dst: the one ab_overlay_begin started when there is one
 * (its superblock created now), else a plain mount(2) whose layers are read through old_root (the host's tree, still
 * reachable there while the root is built), with the changes in disk_root's "upper" and
 * "work" under --disk-limit (the sandbox's own disk space). */
int ab_overlay_mount(const struct ab_config *cfg, const char *old_root, const char *disk_root, const char *dst,
		     struct ab_error *err);

#endif
