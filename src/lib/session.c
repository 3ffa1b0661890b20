#include "session.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "../shared/strutil.h"
#include "apply.h"
#include "fingerprint.h"
#include "layer.h"
#include "snapshot.h"
#include "state.h"

/* The project's directory name, reduced to what a sandbox name may hold. */
static void name_from_project(const char *project, char *out, size_t size)
{
	const char *base = strrchr(project, '/');
	size_t n = 0;

	base = base && base[1] ? base + 1 : "workspace";
	for (const char *p = base; *p && n + 1 < size && n < 40; p++)
		out[n++] = (isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.') ? *p : '-';
	out[n] = '\0';
	if (!n || !isalnum((unsigned char)out[0])) {
		char copy[64];
		snprintf(copy, sizeof(copy), "%s", n ? out : "workspace");
		snprintf(out, size, "ws-%.40s", copy);
	}
}

/* The first of NAME, NAME-2, NAME-3, ... that is free or already this project's. */
static int pick_name(const char *project, char **out, struct ab_error *err)
{
	char base[64], candidate[80];

	name_from_project(project, base, sizeof(base));
	for (int i = 1; i < 100; i++) {
		struct ab_workspace probe = { .lock_fd = -1 };
		struct ab_error ignored;
		if (i == 1)
			snprintf(candidate, sizeof(candidate), "%s", base);
		else
			snprintf(candidate, sizeof(candidate), "%s-%d", base, i);
		if (ab_workspace_open(candidate, NULL, &probe, &ignored) < 0) {
			/* unknown: free to take (a broken one would fail again when created) */
			*out = strdup(candidate);
			return *out ? 0 : ab_error_set(err, ENOMEM, "cannot name the sandbox");
		}
		bool mine = probe.project && strcmp(probe.project, project) == 0;
		ab_workspace_close(&probe);
		if (mine) {
			*out = strdup(candidate);
			return *out ? 0 : ab_error_set(err, ENOMEM, "cannot name the sandbox");
		}
	}
	return ab_error_set(err, 0, "no free sandbox name for project '%s': pass --name", project);
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Apart (noinline), with its path buffer: every page of stack that the start touches for
 * the first time costs a fault, which on some VMs is dearer than the open itself. */
__attribute__((noinline)) static int open_run_lock(const struct ab_workspace *ws, struct ab_error *err)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/run.lock", ws->dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	return fd >= 0 ? fd : ab_error_set(err, errno, "cannot open '%s'", path);
}

#define WORK_ASIDE "work.aside"

/* The last mount's work/work, renamed to work/work.aside. A rename replaces an empty one
 * left by a run that never started its command; one with something in it (an interrupted
 * mount's) is removed first. */
__attribute__((noinline)) static bool move_work_aside(const struct ab_workspace *ws)
{
	_cleanup_close_ int fd = open(ws->work, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (renameat(fd, "work", fd, WORK_ASIDE) == 0)
		return true;
	if (errno != ENOTEMPTY && errno != EEXIST)
		return false;
	return ab_remove_tree(fd, WORK_ASIDE, false) == 0 && renameat(fd, "work", fd, WORK_ASIDE) == 0;
}

/* Empty after a mount that ended well; what an interrupted one left in it goes too. */
__attribute__((noinline)) static void remove_work_aside(const struct ab_workspace *ws)
{
	_cleanup_close_ int fd = open(ws->work, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0)
		(void)ab_remove_tree(fd, WORK_ASIDE, false);
}

int ab_session_begin(struct ab_config *cfg, struct ab_session *s, struct ab_error *err)
{
	int r;

	memset(s, 0, sizeof(*s));
	s->started_ns = now_ns();
	s->ws.lock_fd = -1;
	s->run_lock_fd = -1;
	if (!cfg->name) {
		if ((r = pick_name(cfg->workspace, &cfg->name, err)) < 0)
			return r;
	}
	if ((r = ab_workspace_open_canonical(cfg->name, cfg->workspace, &s->ws, err)) < 0)
		return r;
	/* One run at a time: two overlays on one upper directory would corrupt it. */
	s->run_lock_fd = open_run_lock(&s->ws, err);
	if (s->run_lock_fd < 0)
		return s->run_lock_fd;
	if (flock(s->run_lock_fd, LOCK_EX | LOCK_NB) < 0)
		return ab_error_set(err, 0, "sandbox '%s' is already running: wait for it, or use another --name",
				    cfg->name);
	/* The last run's init may still be ending (its exit unmounts the overlay of this upper
	 * directory, and nobody waited for it): wait for it, a few milliseconds at most. */
	ab_workspace_wait_last_init(&s->ws);
	/* Shared: diff and snapshot may read while we run; apply, rollback and discard wait. */
	if ((r = ab_workspace_lock(&s->ws, false, err)) < 0)
		return r;
	if ((r = ab_session_save_masks(&s->ws, cfg->masks, cfg->n_masks, err)) < 0)
		return r;
	/* The run writes to its own layer over upper (layer.h), empty as it starts: one left
	 * by a run that never reached its end is folded in first. --disk-limit runs write to
	 * the sandbox's own tmpfs instead, a copy of upper that replaces it at the end. */
	s->layered = !cfg->limits.disk;
	if (!s->ws.layer_empty && (r = ab_layer_recover(&s->ws, false, err)) < 0)
		return r;
	/* overlayfs removes the work directory's "work" at each mount and makes it again; the
	 * removal frees a block, which on a file system with online discard (this VM's) is a
	 * synchronous discard of about 0.1 ms inside the mount, and slows what runs beside
	 * it. Moved aside here (a rename in the same directory: nothing freed), it is removed
	 * while the command runs (ab_session_started). */
	s->work_aside = move_work_aside(&s->ws);
	/* Whether this run needs its own automatic snapshot, decided here, before the
	 * sandbox's process is cloned, rather than in ab_session_prepare: done there it would
	 * compete for the CPU with the sandbox's init just woken on it (the copy, when one is
	 * needed, still overlaps the building of the sandbox). Upper's fingerprint for it is
	 * the one recorded by the last end that changed upper (whatever else changes upper
	 * drops the record); else one walk of upper. */
	int64_t newest_ctime_ns;
	s->recorded_valid = ab_workspace_recorded_get(&s->ws, &s->start_fingerprint, &s->recorded_changes) == 0;
	s->have_start_fingerprint = s->recorded_valid ||
				    ab_tree_fingerprint(s->ws.upper, &s->start_fingerprint, &newest_ctime_ns) == 0;
	/* No record (a new sandbox, or one just rolled back): an upper with no changes at all
	 * needs none either, when the run writes nothing. */
	s->upper_empty = !s->recorded_valid && ab_layer_is_empty(s->ws.upper) == 1;
	s->auto_reused = s->have_start_fingerprint &&
			 ab_snapshot_reuse_automatic_at(&s->ws, s->start_fingerprint, &s->auto_snapshot) == 1;
	free(cfg->overlay_upper);
	free(cfg->overlay_middle);
	free(cfg->overlay_work);
	cfg->overlay_upper = strdup(s->layered ? s->ws.layer : s->ws.upper);
	cfg->overlay_middle = s->layered ? strdup(s->ws.upper) : NULL;
	cfg->overlay_work = strdup(s->ws.work);
	if (!cfg->overlay_upper || !cfg->overlay_work || (s->layered && !cfg->overlay_middle))
		return ab_error_set(err, ENOMEM, "cannot prepare the workspace of '%s'", cfg->name);
	return 0;
}

int ab_session_prepare(struct ab_session *s, struct ab_error *err)
{
	if (s->auto_reused)
		return 0; /* nothing changed since the newest snapshot (ab_session_begin) */
	int r = ab_snapshot_create(&s->ws, NULL, true, &s->auto_snapshot, err);
	if (r < 0)
		return ab_error_wrap(err, "automatic snapshot of sandbox '%s'", s->ws.name);
	/* The oldest automatic snapshots make way here too, while the sandbox is still being
	 * built, rather than at the end of the run. */
	return ab_snapshot_prune(&s->ws, err);
}

void ab_session_started(struct ab_session *s, pid_t init_pid)
{
	s->init_pid = init_pid;
	ab_workspace_record_running(&s->ws, getpid(), init_pid);
	if (s->work_aside) {
		remove_work_aside(&s->ws);
		s->work_aside = false;
	}
}

/* The host's side of each path this run was the first to change: its entry as it is
 * now; or, when the host itself touched it after the run began, an entry that matches
 * nothing, so that apply reports a conflict instead of overwriting the host's edit. */
static int record_host_side(struct ab_session *s, const struct ab_change *changes, size_t n,
			    struct ab_error *err)
{
	struct ab_manifest_entry *entries = NULL;
	size_t m = 0, known;
	int r;

	if ((r = ab_manifest_load(s->ws.manifest, &entries, &m, err)) < 0)
		return r;
	known = m;
	for (size_t i = 0; i < n; i++) {
		char full[8192];
		struct stat st;
		struct ab_manifest_entry *grown;
		int64_t mtime;

		if (ab_manifest_find(entries, known, changes[i].path))
			continue;
		if ((size_t)snprintf(full, sizeof(full), "%s/%s", s->ws.project, changes[i].path) >= sizeof(full) ||
		    fstatat(AT_FDCWD, full, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* the host has no such path: nothing to protect */
		grown = realloc(entries, (m + 1) * sizeof(*entries));
		if (!grown) {
			ab_manifest_free(entries, m);
			return ab_error_set(err, ENOMEM, "cannot record the changes of '%s'", s->ws.name);
		}
		entries = grown;
		mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		entries[m] = (struct ab_manifest_entry){ .path = strdup(changes[i].path), .mode = st.st_mode,
							 .size = (uint64_t)st.st_size,
							 .mtime_ns = mtime > s->started_ns ? -1 : mtime,
							 .ino = (uint64_t)st.st_ino };
		if (!entries[m].path) {
			ab_manifest_free(entries, m);
			return ab_error_set(err, ENOMEM, "cannot record the changes of '%s'", s->ws.name);
		}
		m++;
	}
	r = m > known ? ab_manifest_save(s->ws.manifest, entries, m, err) : 0;
	ab_manifest_free(entries, m);
	return r;
}

int ab_session_end(struct ab_session *s, size_t *n_changes, struct ab_error *err)
{
	struct ab_change *changes = NULL;
	size_t n = 0;
	uint64_t now;
	int64_t newest_ctime_ns;
	int r;

	*n_changes = 0;
	/* The command changed nothing (tests, builds that write outside the project,
	 * questions to the agent): upper is as the recorded end left it. */
	int empty = s->layered ? ab_layer_is_empty(s->ws.layer) : 1;
	if (s->layered && empty == 1 && (s->recorded_valid || s->upper_empty)) {
		*n_changes = s->recorded_valid ? s->recorded_changes : 0;
		return 0;
	}
	/* The record goes before upper changes: an end cut short is never taken for the
	 * recorded state, and the next command finishes the fold. */
	if ((r = ab_workspace_recorded_forget(&s->ws)) < 0)
		return ab_error_set(err, -r, "cannot void '%s/recorded'", s->ws.dir);
	if (empty != 1 && (r = ab_layer_fold(s->ws.layer, s->ws.upper, s->ws.project, err)) < 0)
		return r;
	/* Metadata only: the end of every run must not read back every byte the sandbox has
	 * changed so far. A file that was only copied up (opened for writing, left as it was)
	 * is still recorded, with the host's side as it was then, which is what its copy
	 * holds; it is not counted. */
	if ((r = ab_changes_collect_quick(s->ws.upper, s->ws.project, &changes, &n, err)) < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		*n_changes += !changes[i].maybe_same;
	if (n)
		r = record_host_side(s, changes, n, err);
	if (r >= 0 && n)
		r = ab_base_capture(&s->ws, changes, n, err);
	ab_changes_free(changes, n);
	if (r < 0)
		return r;
	/* Kept only when the fingerprint can vouch for the tree (fingerprint.h): an upper
	 * changed just before this leaves that to the next end. */
	if (ab_tree_fingerprint(s->ws.upper, &now, &newest_ctime_ns) == 0 &&
	    ab_fingerprint_is_reliable(newest_ctime_ns, now_ns()))
		ab_workspace_recorded_set(&s->ws, now, *n_changes);
	return 0;
}

void ab_session_close(struct ab_session *s)
{
	if (s->run_lock_fd >= 0)
		close(s->run_lock_fd);
	s->run_lock_fd = -1;
	free(s->auto_snapshot);
	s->auto_snapshot = NULL;
	ab_workspace_close(&s->ws);
}

/* Writes the masks anew (path: the masks file). Apart (noinline), with its second path
 * buffer: the usual start only reads them, on a shallower stack. */
__attribute__((noinline)) static int write_masks(const char *path, char *const *masks, size_t n,
						 struct ab_error *err)
{
	char tmp[4110];
	_cleanup_close_ int fd = -1;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return ab_error_set(err, errno, "cannot write '%s'", tmp);
	for (size_t i = 0; i < n; i++)
		if (ab_write_all(fd, masks[i], strlen(masks[i]) + 1) < 0) /* NUL-separated */
			return ab_error_set(err, errno, "cannot write '%s'", tmp);
	/* Replaced by rename, not forced to disk: after a crash the masks may be the defaults
	 * again (a missing file), and apply never writes a path the sandbox could not see
	 * anyway (a mask is a read-only mount there). */
	if (rename(tmp, path) < 0)
		return ab_error_set(err, errno, "cannot write '%s'", path);
	return 0;
}

int ab_session_save_masks(const struct ab_workspace *ws, char *const *masks, size_t n, struct ab_error *err)
{
	char path[4096];
	_cleanup_free_ char *old = NULL;
	size_t old_len = 0, want = 0;

	snprintf(path, sizeof(path), "%s/masks", ws->dir);
	/* Unchanged since the last run (the usual case): nothing to write. */
	for (size_t i = 0; i < n; i++)
		want += strlen(masks[i]) + 1;
	int r = ab_read_file(path, 64 * 1024, &old, &old_len);
	if (r >= 0 && old_len == want) {
		size_t off = 0;
		bool same = true;
		for (size_t i = 0; i < n && same; i++) {
			size_t l = strlen(masks[i]) + 1;
			same = memcmp(old + off, masks[i], l) == 0;
			off += l;
		}
		if (same)
			return 0;
	}
	/* No file reads as the defaults (ab_session_load_masks): a new sandbox run with them
	 * needs none, and its first start one new file less. */
	if (r == -ENOENT && n == ab_n_default_masks) {
		bool defaults = true;
		for (size_t i = 0; i < n && defaults; i++)
			defaults = strcmp(masks[i], ab_default_masks[i]) == 0;
		if (defaults)
			return 0;
	}
	return write_masks(path, masks, n, err);
}

int ab_session_load_masks(const struct ab_workspace *ws, char ***masks, size_t *n, struct ab_error *err)
{
	char path[4096];
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r;

	*masks = NULL;
	*n = 0;
	snprintf(path, sizeof(path), "%s/masks", ws->dir);
	r = ab_read_file(path, 64 * 1024, &text, &len);
	if (r == -ENOENT) {
		/* never run yet: the defaults */
		for (size_t i = 0; i < ab_n_default_masks; i++)
			if (ab_strv_push(masks, n, ab_default_masks[i]) < 0)
				return ab_error_set(err, ENOMEM, "cannot load the masks");
		return 0;
	}
	if (r < 0)
		return ab_error_set(err, -r, "cannot read '%s'", path);
	for (size_t off = 0; off < len;) {
		size_t l = strnlen(text + off, len - off);
		if (l && ab_strv_push(masks, n, text + off) < 0)
			return ab_error_set(err, ENOMEM, "cannot load the masks");
		off += l + 1;
	}
	return 0;
}
