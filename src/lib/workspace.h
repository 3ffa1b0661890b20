/* The workspace as a transaction: a named sandbox keeps the agent's changes to a project
 * in an overlayfs upper directory of its own, until they are applied or discarded.
 *
 * On disk, under the data root (ab_data_root):
 *   sandboxes/NAME/
 *     sandbox.json      {"name", "project", "created"}: written atomically
 *     lock              flock(2): exclusive for writers (run, snapshot, rollback, apply,
 *                       discard), shared for readers (diff, snapshots)
 *     upper/ work/      overlayfs upperdir and workdir; upper holds the changes, with
 *                       overlay's own markers: whiteouts (0:0 character devices) for
 *                       deletions, the "user.overlay.opaque" xattr for replaced directories
 *     manifest          the host's version of each path the sandbox changed, as it was
 *                       when the sandbox changed it (recorded when each run ends)
 *     base/             copies of host files as they were before the agent changed them,
 *                       captured when a run ends (for conflict checks and merges)
 *     snapshots/SNAP/   upper/ (a copy of upper at that time) and meta.json {"name",
 *                       "created", "bytes", "auto"}
 *     manifest.applied  what apply wrote since the manifest was last taken whole:
 *                       records "MODE SIZE MTIME INO PATH\0" (mode 0: removed); looked up
 *                       before the manifest, so apply never mistakes its own writes for
 *                       the host's
 *     masks             the patterns the sandbox last ran with, NUL-separated
 *     recorded          "FINGERPRINT COUNT\n": upper's fingerprint (fingerprint.h) after
 *                       the end of a run recorded everything upper held, and the number
 *                       of changes it counted; marked void ('!' in place of its first
 *                       byte) by a run's start and by whatever else changes upper or
 *                       applies changes
 *     recorded-list     "FINGERPRINT LENGTH\n" and the paths of upper's entries that the
 *                       walk which took that fingerprint hashed (fingerprint.h)
 *     run.lock          flock(2) held by the one run at a time
 *     running           while a run is going on: "AGENTBOX_PID INIT_PID\n"
 *   mask-cache/KEY      what the search for masked files found in a project, with the
 *                       stamps of the directories it read (mask.c)
 */
#ifndef AB_WORKSPACE_H
#define AB_WORKSPACE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "../shared/error.h"

#define AB_MAX_SNAPSHOTS 256
#define AB_MAX_CHANGES 100000

/* $AGENTBOX_DATA_DIR when set (tests), else /var/lib/agentbox for root, else
 * $XDG_DATA_HOME/agentbox or ~/.local/share/agentbox. Created when missing (0700). */
int ab_data_root(char **out, struct ab_error *err);

struct ab_workspace {
	char *name;
	char *dir;       /* data_root/sandboxes/NAME */
	char *project;   /* canonical host path of the real project */
	char *upper;     /* dir/upper */
	char *work;      /* dir/work */
	char *base;      /* dir/base */
	char *manifest;  /* dir/manifest */
	char *layer;     /* dir/layer: the running command's own changes (layer.h) */
	bool layer_empty; /* found empty (and there) by this process's recovery */
	int lock_fd;     /* -1 when not locked */
};

/* Opens the sandbox NAME. With project != NULL it is created when missing (writing the
 * manifest of project), and it is an error when it exists for another project. With
 * project == NULL it must exist ("unknown sandbox 'NAME'"). A project directory that is
 * gone or moved is an error that says so; nothing is deleted. */
int ab_workspace_open(const char *name, const char *project, struct ab_workspace *ws,
		      struct ab_error *err);
/* The same for a project path that is canonical already (ab_config's workspace, resolved
 * when the command line was read): not resolved again, one lookup per component less. */
int ab_workspace_open_canonical(const char *name, const char *project, struct ab_workspace *ws,
				struct ab_error *err);
int ab_workspace_lock(struct ab_workspace *ws, bool exclusive, struct ab_error *err);
void ab_workspace_close(struct ab_workspace *ws);
/* The state of upper that the last end which changed it recorded (its fingerprint and
 * the changes counted), kept while nothing changes upper: a run that writes nothing (its
 * layer stays empty, layer.h) has nothing to record, and the next start needs no walk.
 * get returns 0, or -1 when there is none; set is best-effort (without it the next run's
 * end only does the full work); forget returns 0 or -errno, and a caller that is about to
 * change upper or the project must not go on when it fails. */
int ab_workspace_recorded_get(const struct ab_workspace *ws, uint64_t *fingerprint, size_t *n_changes);
void ab_workspace_recorded_set(const struct ab_workspace *ws, uint64_t fingerprint, size_t n_changes);
int ab_workspace_recorded_forget(const struct ab_workspace *ws);
/* Every sandbox name under the data root, sorted. */
int ab_workspace_list(char ***names, size_t *n, struct ab_error *err);

/* ---- manifest: the host's side of what the sandbox changed ----
 * One record per entry beneath the project: relative path, type, mode, size, mtime (ns),
 * inode. Binary-safe for any file name. A sandbox starts with an empty manifest; when a run
 * ends, each path it changed for the first time gets the host's entry as it is then, so
 * that apply can tell a host edit made later (a conflict) from the version the sandbox
 * worked on. Taking it per changed path keeps a sandbox's start independent of the
 * project's size. */
struct ab_manifest_entry {
	char *path; /* relative, no leading "/" */
	mode_t mode; /* type and permission bits */
	uint64_t size;
	int64_t mtime_ns;
	uint64_t ino;
};
/* The whole project (tests and tools); ab_manifest_reset writes an empty manifest. */
int ab_manifest_write(const char *project, const char *out_path, struct ab_error *err);
int ab_manifest_reset(const char *out_path, struct ab_error *err);
/* An empty manifest in a directory not yet published (a sandbox being created): written
 * once, not forced to disk; the directory's rename publishes it. */
int ab_manifest_init(const char *out_path, struct ab_error *err);
/* Writes entries (sorted here) atomically. */
int ab_manifest_save(const char *out_path, struct ab_manifest_entry *entries, size_t n,
		     struct ab_error *err);
int ab_manifest_load(const char *path, struct ab_manifest_entry **entries, size_t *n,
		     struct ab_error *err);
/* Binary search in a loaded manifest (entries are sorted by path). */
const struct ab_manifest_entry *ab_manifest_find(const struct ab_manifest_entry *entries, size_t n,
						 const char *path);
void ab_manifest_free(struct ab_manifest_entry *entries, size_t n);

/* ---- changes: what the upper directory holds, compared with the project ---- */
enum ab_change_kind {
	AB_CHANGE_ADDED,    /* not in the project */
	AB_CHANGE_MODIFIED, /* content differs (regular files, symlink targets) */
	AB_CHANGE_DELETED,  /* whiteout, or beneath an opaque directory that replaced it */
	AB_CHANGE_META,     /* same content; mode or owner changed */
	AB_CHANGE_TYPE,     /* a file became a directory, a link, ... */
};

struct ab_change {
	char *path; /* relative to the project, no leading "/"; may hold any byte but NUL */
	enum ab_change_kind kind;
	mode_t old_mode, new_mode; /* 0 when absent on that side */
	uid_t old_uid, new_uid;
	gid_t old_gid, new_gid;
	uint64_t old_size, new_size;
	char *old_link, *new_link; /* symlink targets, never followed */
	bool binary;               /* either side is not text (NUL byte in the first 8 KiB) */
	unsigned char old_sha256[32], new_sha256[32]; /* regular files only */
	bool maybe_same; /* quick collection only: the project's size, mode and owner, and its
			  * mtime too (what a copy-up leaves: taken as the same without reading)
			  * or the same bytes (compared when only the mtime differs) */
};

/* Walks upper against project. `filters` (n_filters) keeps only paths equal to or beneath
 * one of them (relative to the project). Sorted by path; deletions of a whole directory
 * list the directory and each entry beneath it. */
int ab_changes_collect(const char *upper, const char *project, const char *const *filters,
		       size_t n_filters, struct ab_change **out, size_t *n, struct ab_error *err);
/* The same walk without digests: every regular file that upper holds on top of the
 * project's is listed as MODIFIED, with maybe_same set when it most likely holds what the
 * project does (see the field). Only same-size files with another mtime are read. For
 * when a run ends, where the paths matter and the cost should grow with the number of
 * changes, not with their bytes. */
int ab_changes_collect_quick(const char *upper, const char *project, struct ab_change **out,
			     size_t *n, struct ab_error *err);
void ab_changes_free(struct ab_change *changes, size_t n);
/* Whether the entry name of dirfd (st: its lstat) is an overlayfs whiteout: a 0:0
 * character device, or an empty regular file marked "user.overlay.whiteout". */
bool ab_overlay_is_whiteout(int dirfd, const char *name, const struct stat *st);

#endif
