/* The workspace commands: diff, snapshot, snapshots, rollback, apply, discard.
 * Each opens the named sandbox, takes its lock, calls the library, and reports. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "../lib/apply.h"
#include "../lib/diffout.h"
#include "../lib/layer.h"
#include "../lib/session.h"
#include "../lib/snapshot.h"
#include "../lib/workspace.h"
#include "../shared/cleanup.h"
#include "../shared/error.h"
#include "commands.h"

static int fail(const struct ab_error *err)
{
	fprintf(stderr, "agentbox: %s\n", err->msg);
	return AB_EXIT_INTERNAL;
}

__attribute__((format(printf, 2, 3))) static int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "agentbox: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": see 'agentbox %s --help'\n", cmd);
	return AB_EXIT_INTERNAL;
}

static bool is_help(int argc, char **argv)
{
	for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

/* Opens NAME (which must exist) and takes its lock. */
static int open_locked(const char *name, bool exclusive, struct ab_workspace *ws, struct ab_error *err)
{
	int r;

	ws->lock_fd = -1;
	if ((r = ab_workspace_open(name, NULL, ws, err)) < 0)
		return r;
	if ((r = ab_workspace_lock(ws, exclusive, err)) < 0) {
		if (exclusive)
			ab_error_wrap(err, "sandbox '%s' is in use (running, or another command holds it)", name);
		return r;
	}
	return 0;
}

static bool want_color(const char *mode)
{
	if (strcmp(mode, "always") == 0)
		return true;
	if (strcmp(mode, "never") == 0)
		return false;
	return isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
}

int cmd_diff(int argc, char **argv)
{
	struct ab_workspace ws = { .lock_fd = -1 };
	struct ab_error err = { 0 };
	struct ab_change *changes = NULL;
	size_t n = 0;
	char *view = NULL;
	enum ab_diff_format fmt = AB_DIFF_TEXT;
	const char *color = "auto", *name = NULL;
	const char *const *paths = NULL;
	size_t n_paths = 0;
	int rc = AB_EXIT_INTERNAL;

	if (is_help(argc, argv)) {
		printf("usage: agentbox diff NAME [--stat | --json] [--color auto|always|never] [-- PATH...]\n\n"
		       "Shows what the sandbox changed against the real project: added, modified, deleted\n"
		       "files, mode changes, symlinks (targets shown, never followed), binary files (size\n"
		       "and SHA-256). Text changes are unified diffs.\n");
		return 0;
	}
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			paths = (const char *const *)argv + i + 1;
			n_paths = (size_t)(argc - i - 1);
			break;
		} else if (strcmp(argv[i], "--stat") == 0)
			fmt = AB_DIFF_STAT;
		else if (strcmp(argv[i], "--json") == 0)
			fmt = AB_DIFF_JSON;
		else if (strncmp(argv[i], "--color=", 8) == 0)
			color = argv[i] + 8;
		else if (strcmp(argv[i], "--color") == 0 && i + 1 < argc)
			color = argv[++i];
		else if (argv[i][0] == '-')
			return usage_error("diff", "unknown option '%s' for 'diff'", argv[i]);
		else if (!name)
			name = argv[i];
		else
			return usage_error("diff", "unexpected argument '%s' (paths go after '--')", argv[i]);
	}
	if (!name)
		return usage_error("diff", "%s", "no sandbox named: use 'agentbox diff NAME'");
	if (strcmp(color, "auto") != 0 && strcmp(color, "always") != 0 && strcmp(color, "never") != 0)
		return usage_error("diff", "unknown colour mode '%s': use auto, always or never", color);
	if (open_locked(name, false, &ws, &err) < 0)
		return fail(&err);
	/* While a command runs, its changes are in a layer over upper: a view folds them. */
	if (ab_layer_view(&ws, &view, &err) < 0 ||
	    ab_changes_collect(view, ws.project, paths, n_paths, &changes, &n, &err) < 0 ||
	    ab_diff_write(stdout, changes, n, view, ws.project, fmt, want_color(color), &err) < 0) {
		rc = fail(&err);
		goto out;
	}
	rc = 0;
out:
	ab_layer_view_release(&ws, view);
	ab_changes_free(changes, n);
	ab_workspace_close(&ws);
	return rc;
}

int cmd_snapshot(int argc, char **argv)
{
	struct ab_workspace ws = { .lock_fd = -1 };
	struct ab_error err = { 0 };
	_cleanup_free_ char *created = NULL;

	if (is_help(argc, argv) || argc < 1 || argc > 2) {
		if (!is_help(argc, argv))
			return usage_error("snapshot", "%s", "use 'agentbox snapshot NAME [SNAPSHOT]'");
		printf("usage: agentbox snapshot NAME [SNAPSHOT]\n\n"
		       "Takes a consistent snapshot of the sandbox's changes, also while it runs (its\n"
		       "processes are paused during the copy). Without SNAPSHOT a name is made up.\n");
		return 0;
	}
	if (open_locked(argv[0], false, &ws, &err) < 0)
		return fail(&err);
	if (ab_snapshot_create(&ws, argc == 2 ? argv[1] : NULL, false, &created, &err) < 0) {
		ab_workspace_close(&ws);
		return fail(&err);
	}
	printf("%s\n", created);
	ab_workspace_close(&ws);
	return 0;
}

static void format_size(uint64_t bytes, char *buf, size_t size)
{
	if (bytes >= (1ULL << 30))
		snprintf(buf, size, "%.1fG", (double)bytes / (1 << 30));
	else if (bytes >= (1ULL << 20))
		snprintf(buf, size, "%.1fM", (double)bytes / (1 << 20));
	else if (bytes >= 1024)
		snprintf(buf, size, "%.1fK", (double)bytes / 1024);
	else
		snprintf(buf, size, "%lluB", (unsigned long long)bytes);
}

int cmd_snapshots(int argc, char **argv)
{
	struct ab_workspace ws = { .lock_fd = -1 };
	struct ab_error err = { 0 };
	struct ab_snapshot_info *snaps = NULL;
	size_t n = 0;
	bool json = false;
	const char *name = NULL;

	if (is_help(argc, argv)) {
		printf("usage: agentbox snapshots NAME [--json]\n\nLists the sandbox's snapshots, oldest first, with time and size.\n");
		return 0;
	}
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (argv[i][0] == '-')
			return usage_error("snapshots", "unknown option '%s' for 'snapshots'", argv[i]);
		else if (!name)
			name = argv[i];
		else
			return usage_error("snapshots", "unexpected argument '%s'", argv[i]);
	}
	if (!name)
		return usage_error("snapshots", "%s", "no sandbox named: use 'agentbox snapshots NAME'");
	if (open_locked(name, false, &ws, &err) < 0)
		return fail(&err);
	if (ab_snapshot_list(&ws, &snaps, &n, &err) < 0) {
		ab_workspace_close(&ws);
		return fail(&err);
	}
	if (json) {
		json_object *arr = json_object_new_array();
		for (size_t i = 0; i < n; i++) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "name", json_object_new_string(snaps[i].name));
			json_object_object_add(o, "created_ns", json_object_new_int64(snaps[i].created_ns));
			json_object_object_add(o, "bytes", json_object_new_int64((int64_t)snaps[i].bytes));
			json_object_object_add(o, "automatic", json_object_new_boolean(snaps[i].automatic));
			json_object_array_add(arr, o);
		}
		printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY));
		json_object_put(arr);
	} else {
		printf("%-32s %-20s %10s %s\n", "SNAPSHOT", "CREATED", "SIZE", "KIND");
		for (size_t i = 0; i < n; i++) {
			char when[32], size[32];
			time_t t = (time_t)(snaps[i].created_ns / 1000000000);
			struct tm tm;
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
			format_size(snaps[i].bytes, size, sizeof(size));
			printf("%-32s %-20s %10s %s\n", snaps[i].name, when, size, snaps[i].automatic ? "auto" : "named");
		}
	}
	ab_snapshot_info_free(snaps, n);
	ab_workspace_close(&ws);
	return 0;
}

int cmd_rollback(int argc, char **argv)
{
	struct ab_workspace ws = { .lock_fd = -1 };
	struct ab_error err = { 0 };

	if (is_help(argc, argv) || argc < 1 || argc > 2) {
		if (!is_help(argc, argv))
			return usage_error("rollback", "%s", "use 'agentbox rollback NAME [SNAPSHOT]'");
		printf("usage: agentbox rollback NAME [SNAPSHOT]\n\n"
		       "Puts the sandbox's workspace back exactly as it was at SNAPSHOT; without one, as it\n"
		       "was before its last run (undo the last command). The sandbox must not be running.\n");
		return 0;
	}
	if (open_locked(argv[0], true, &ws, &err) < 0)
		return fail(&err);
	if (ab_snapshot_rollback(&ws, argc == 2 ? argv[1] : NULL, &err) < 0) {
		ab_workspace_close(&ws);
		return fail(&err);
	}
	ab_workspace_close(&ws);
	return 0;
}

int cmd_apply(int argc, char **argv)
{
	struct ab_workspace ws = { .lock_fd = -1 };
	struct ab_error err = { 0 };
	struct ab_apply_opts opts = { .in = stdin, .out = stdout };
	struct ab_apply_result res = { 0 };
	_cleanup_strv_free_ char **masks = NULL;
	size_t n_masks = 0;
	const char *name = NULL;
	int rc;

	if (is_help(argc, argv)) {
		printf("usage: agentbox apply NAME [--yes] [-i | --interactive] [--force] [--merge] [--dry-run] [-- PATH...]\n\n"
		       "Writes the sandbox's changes into the real project: each file atomically, modes kept\n"
		       "without set-uid bits, never through a symlink, never outside the project. Files\n"
		       "the host changed since the sandbox saw them stop the apply (--force overwrites,\n"
		       "--merge merges text). Risky paths (git hooks and config, CI workflows, shell\n"
		       "start-up files, new executables) need --yes or a 'y' in --interactive.\n");
		return 0;
	}
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			opts.paths = (const char *const *)argv + i + 1;
			opts.n_paths = (size_t)(argc - i - 1);
			break;
		} else if (strcmp(argv[i], "--yes") == 0 || strcmp(argv[i], "-y") == 0)
			opts.yes = true;
		else if (strcmp(argv[i], "--interactive") == 0 || strcmp(argv[i], "-i") == 0)
			opts.interactive = true;
		else if (strcmp(argv[i], "--force") == 0)
			opts.force = true;
		else if (strcmp(argv[i], "--merge") == 0)
			opts.merge = true;
		else if (strcmp(argv[i], "--dry-run") == 0 || strcmp(argv[i], "-n") == 0)
			opts.dry_run = true;
		else if (argv[i][0] == '-')
			return usage_error("apply", "unknown option '%s' for 'apply'", argv[i]);
		else if (!name)
			name = argv[i];
		else
			return usage_error("apply", "unexpected argument '%s' (paths go after '--')", argv[i]);
	}
	if (!name)
		return usage_error("apply", "%s", "no sandbox named: use 'agentbox apply NAME'");
	if (open_locked(name, true, &ws, &err) < 0)
		return fail(&err);
	if (ab_session_load_masks(&ws, &masks, &n_masks, &err) < 0) {
		ab_workspace_close(&ws);
		return fail(&err);
	}
	opts.masks = (const char *const *)masks;
	opts.n_masks = n_masks;
	rc = ab_apply(&ws, &opts, &res, &err) < 0 ? fail(&err) : 0;
	if (rc == 0 && res.applied == 0 && res.skipped == 0 && res.refused == 0 && res.conflicts == 0 &&
	    res.risky_unconfirmed == 0) {
		fprintf(stderr, "agentbox: sandbox '%s' has nothing to apply%s\n", name,
			opts.n_paths ? " under those paths" : "");
		rc = AB_EXIT_INTERNAL;
	}
	ab_workspace_close(&ws);
	return rc;
}

int cmd_discard(int argc, char **argv)
{
	struct ab_workspace ws = { .lock_fd = -1 };
	struct ab_error err = { 0 };

	if (is_help(argc, argv) || argc != 1) {
		if (!is_help(argc, argv))
			return usage_error("discard", "%s", "use 'agentbox discard NAME'");
		printf("usage: agentbox discard NAME\n\nThrows every change of the sandbox away (its snapshots stay, so a rollback can\nbring them back). The project is not touched.\n");
		return 0;
	}
	if (open_locked(argv[0], true, &ws, &err) < 0)
		return fail(&err);
	if (ab_workspace_discard(&ws, &err) < 0) {
		ab_workspace_close(&ws);
		return fail(&err);
	}
	ab_workspace_close(&ws);
	return 0;
}
