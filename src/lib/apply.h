/* Applying a sandbox's changes to the host project, with the safety rules of
 * docs/workspace.md: never through a symlink on the host, never outside the project, each
 * file replaced atomically, host edits made since the sandbox started detected as conflicts.
 *
 * Conflict policy: every selected change is checked before anything is written. When one
 * or more conflict (and neither --force nor a successful --merge covers them), nothing at
 * all is written: all conflicts are reported and ab_apply returns -EBUSY with the count in
 * err. Masked, refused, declined and unconfirmed risky changes do not stop the others.
 *
 * Baseline: a host entry "changed on the host" when it differs from the baseline, which is
 * the last state agentbox itself saw or wrote there:
 *   - a record in MANIFEST.applied, where every apply records what it wrote (path, type,
 *     mode, size, mtime, inode, or absence), so that a later apply does not take its own
 *     writes for host edits;
 *   - else the manifest entry (the project when the sandbox started).
 * When an apply has neither a path filter nor anything left unapplied (skipped, refused,
 * risky, conflicting), host and sandbox agree everywhere: the manifest is rewritten from
 * the project (ab_manifest_write) and MANIFEST.applied removed.
 *
 * base/PATH holds the content of PATH at the baseline (for 3-way merges): ab_base_capture
 * copies it when a run ends; ab_apply replaces it with what it wrote. After a merge the
 * merged file is written to the sandbox's upper directory too, so both sides agree and a
 * later apply does not undo the host's half of the merge. */
#ifndef AB_APPLY_H
#define AB_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "workspace.h"

struct ab_apply_opts {
	const char *const *paths; /* only these paths and what lies beneath (relative to the project); none: everything */
	size_t n_paths;
	bool yes;         /* risky changes are applied without asking (ignored with interactive: it asks) */
	bool interactive; /* file by file: show the change, ask "apply PATH? [y,n,q]" on in/out */
	bool force;       /* overwrite host entries changed since the sandbox's baseline */
	bool merge;       /* 3-way merge of text files changed on both sides, base from ws->base/PATH */
	bool dry_run;     /* report what would happen; write nothing */
	const char *const *masks; /* fnmatch(3) patterns on the base name and on the relative path of */
	size_t n_masks;           /* an entry or any directory above it: never written */
	FILE *in, *out;   /* prompts and one report line per change; either may be NULL */
};

struct ab_apply_result {
	size_t applied;           /* written (merges included) */
	size_t skipped;           /* declined interactively, or a directory kept because not empty */
	size_t conflicts;         /* changed on both sides; with --merge: merged with conflict markers */
	size_t refused;           /* masked, device/fifo/socket, or a parent that is a symlink on the host */
	size_t risky_unconfirmed; /* risky and neither --yes nor a 'y' */
};

/* The caller holds the workspace's exclusive lock and no run is going on. Returns 0 when
 * every selected change was handled (the result says how); -EBUSY when changes conflict
 * (nothing written) or were merged with conflict markers (written); another -errno when a
 * write failed (what was written before stays; a rerun finishes the job). */
int ab_apply(struct ab_workspace *ws, const struct ab_apply_opts *opts, struct ab_apply_result *res,
	     struct ab_error *err);

/* When a run ends: for each MODIFIED/DELETED/TYPE/META change of `changes` (n; from
 * ab_changes_collect or ab_changes_collect_quick) without ws->base/PATH yet, copies the
 * host's regular file there when it still matches the baseline. */
int ab_base_capture(struct ab_workspace *ws, const struct ab_change *changes, size_t n,
		    struct ab_error *err);

#endif
