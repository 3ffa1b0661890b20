/* Snapshots of a sandbox's upper directory, rollback and discard, and the tree helpers
 * they share with workspace.c. None of these take the sandbox lock: the caller holds it
 * (exclusive for create, rollback, remove and discard; shared is enough for list).
 *
 * On disk (see workspace.h): sandboxes/NAME/snapshots/SNAP/{upper/,meta.json}, where
 * meta.json is {"name": "SNAP", "created": NS, "bytes": N, "auto": BOOL} with "created"
 * in nanoseconds since the epoch. A snapshot is built in snapshots/.tmp-SNAP and renamed
 * into place, so a snapshot that is listed is complete. */
#ifndef AB_SNAPSHOT_H
#define AB_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../shared/error.h"
#include "running.h"
#include "workspace.h"

/* Automatic snapshots beyond this many are dropped, oldest first. */
#define AB_MAX_AUTO_SNAPSHOTS 20

struct ab_snapshot_info {
	char *name;
	int64_t created_ns;
	uint64_t bytes; /* regular file contents and symlink targets in its upper */
	bool automatic;
	/* an automatic snapshot's upper as it was copied (see fingerprint.h); has_fingerprint
	 * is false when the tree had just changed, or for snapshots the user named */
	bool has_fingerprint;
	uint64_t fingerprint;
};

/* Copies ws->upper into a new snapshot. name == NULL names it "auto-YYYYMMDD-HHMMSS-N"
 * (local time, N from 1). When the sandbox runs (see ab_workspace_running), its
 * processes are frozen for the copy. *created_name (may be NULL) receives the name.
 * An automatic snapshot records upper's fingerprint (see fingerprint.h) as it copies it,
 * unless upper had only just changed. */
int ab_snapshot_create(struct ab_workspace *ws, const char *name, bool automatic,
		       char **created_name, struct ab_error *err);
/* Drops the oldest automatic snapshots beyond AB_MAX_AUTO_SNAPSHOTS. Kept apart from
 * creation, so that a run's start does not pay for it (its finisher does). */
int ab_snapshot_prune(struct ab_workspace *ws, struct ab_error *err);
/* Oldest first; snapshots without a readable meta.json are left out. */
/* Whether the snapshot before a run may be skipped: the newest snapshot is an automatic
 * one and upper still has the fingerprint recorded when it was copied, so it already holds
 * what a new one would, and a rollback without a name restores the same state. Returns 1
 * (its name in *name, may be NULL) or 0, also when anything cannot be read. Reads only
 * metadata: one stat per entry of upper and the newest snapshots' meta files. */
int ab_snapshot_reuse_automatic(struct ab_workspace *ws, char **name);
/* The same with upper's fingerprint already taken by the caller. */
int ab_snapshot_reuse_automatic_at(struct ab_workspace *ws, uint64_t fingerprint, char **name);
int ab_snapshot_list(struct ab_workspace *ws, struct ab_snapshot_info **out, size_t *n,
		     struct ab_error *err);
void ab_snapshot_info_free(struct ab_snapshot_info *v, size_t n);
/* Replaces upper by a copy of snapshot name (NULL: the newest) and empties work; the
 * snapshot stays. Refused while the sandbox runs. */
int ab_snapshot_rollback(struct ab_workspace *ws, const char *name, struct ab_error *err);
/* Puts a copy of the tree at src in place of the sandbox's changes, the way a rollback
 * does (an interruption leaves the old or the new one): how a --disk-limit run's changes,
 * kept in the sandbox's own tmpfs, come back. */
int ab_workspace_replace_upper(struct ab_workspace *ws, const char *src, struct ab_error *err);
int ab_snapshot_remove(struct ab_workspace *ws, const char *name, struct ab_error *err);

/* Forgets every change: empties upper, base and work and rewrites the manifest from the
 * project. Snapshots stay. Refused while the sandbox runs. */
int ab_workspace_discard(struct ab_workspace *ws, struct ab_error *err);

/* After a crash: an interrupted rollback is rolled back (upper.old becomes upper again
 * when upper is missing), then upper.new, upper.old, half-made snapshots (.snapshot-*)
 * and readers' views (view-*) are removed, and a run's layer left unfolded is folded into
 * upper (layer.h). Called by ab_workspace_open (when the lock is free) and
 * ab_workspace_lock(exclusive). */
int ab_workspace_recover(struct ab_workspace *ws, struct ab_error *err);

/* ---- tree helpers: never follow symlinks ---- */

/* Removes name beneath dirfd and everything under it; a missing name is not an error.
 * With keep_top, a directory itself stays and only its contents go. Returns 0 or -errno. */
int ab_remove_tree(int dirfd, const char *name, bool keep_top);
/* Copies the tree at src to dst, which must not exist: file types (regular, directory,
 * symlink, fifo, socket, devices including overlay's 0:0 whiteouts), permission bits,
 * owners when allowed, mtimes, "user." and "trusted." xattrs, and hard links within the
 * tree. Regular files are reflinked when the filesystem can, else copied in the kernel.
 * *bytes (may be NULL) receives the bytes of regular files and symlink targets. */
int ab_copy_tree(const char *src, const char *dst, uint64_t *bytes, struct ab_error *err);
/* Writes buf to path through a temporary file in the same directory: fsync, rename,
 * fsync of the directory. Returns 0 or -errno. */
int ab_write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode);

#endif
