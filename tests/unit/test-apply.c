/* ab_apply: the sandbox's changes reach the host exactly, selectively, and never outside
 * the project. Each case makes a fresh sandbox over a fresh project and fills its upper
 * directory by hand, the way overlayfs would:
 *
 *   TMP/
 *   ├── data/            AGENTBOX_DATA_DIR: sandboxes/NAME/{upper,manifest,base,...}
 *   ├── outside/         must stay empty whatever the sandbox holds
 *   └── pN/              the project of case N
 *
 * Whiteouts are 0:0 character devices; an opaque directory has user.overlay.opaque=y.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "lib/apply-policy.h"
#include "lib/apply.h"
#include "lib/workspace.h"
#include "tap.h"

static char top[] = "/tmp/ab-apply-XXXXXX";
static char outside[256];

static void put(const char *dir, const char *rel, const char *content, mode_t mode)
{
	char path[512], cmd[600];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", path);
	if (system(cmd) != 0)
		abort();
	FILE *f = fopen(path, "w");
	if (!f)
		abort();
	fputs(content, f);
	fclose(f);
	chmod(path, mode);
}

static char *get(const char *dir, const char *rel)
{
	static char buf[8192];
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static bool exists(const char *dir, const char *rel)
{
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return lstat(path, &st) == 0;
}

static mode_t mode_of(const char *dir, const char *rel)
{
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return lstat(path, &st) == 0 ? st.st_mode : 0;
}

static void whiteout(const char *dir, const char *rel)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	if (mknod(path, S_IFCHR | 0000, makedev(0, 0)) < 0)
		abort();
}

static bool outside_empty(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", outside);
	return system(cmd) == 0;
}

/* A fresh project TMP/pN (filled by fill) and its sandbox "tN". */
static const char *project(int n, char *buf, size_t size)
{
	snprintf(buf, size, "%s/p%d", top, n);
	mkdir(buf, 0755);
	return buf;
}

/* What the end of a run records: the host's side of what the sandbox changed (here the
 * whole project, a superset). */
static void end_of_run(struct ab_workspace *ws, const char *proj)
{
	struct ab_error err;
	if (ab_manifest_write(proj, ws->manifest, &err) < 0)
		printf("# ab_manifest_write: %s\n", err.msg);
}

static int open_ws(int n, const char *proj, struct ab_workspace *ws)
{
	char name[32];
	struct ab_error err;
	snprintf(name, sizeof(name), "t%d", n);
	int r = ab_workspace_open(name, proj, ws, &err);
	if (r < 0) {
		printf("# ab_workspace_open: %s\n", err.msg);
		return r;
	}
	mkdir(ws->upper, 0755);
	/* A run records the host's side of what it changes when it ends; these tests build
	 * the upper directory by hand, so record the whole project as that run would. */
	if (ab_manifest_write(proj, ws->manifest, &err) < 0) {
		printf("# ab_manifest_write: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int apply(struct ab_workspace *ws, struct ab_apply_opts *o, struct ab_apply_result *res)
{
	struct ab_error err = { 0 };
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	if (!o->out)
		o->out = out;
	int r = ab_apply(ws, o, res, &err);
	fclose(out);
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
		printf("#   %s\n", line);
	if (r < 0)
		printf("#   -> %d: %s\n", r, err.msg);
	free(text);
	if (o->out == out)
		o->out = NULL;
	return r;
}

static void test_apply_all(void)
{
	char p[256];
	struct ab_workspace ws;
	struct ab_apply_opts o = { .yes = true };
	struct ab_apply_result res;
	const char *proj = project(1, p, sizeof(p));

	put(proj, "a.txt", "old\n", 0644);
	put(proj, "gone.txt", "bye\n", 0644);
	put(proj, "olddir/x", "x\n", 0644);
	put(proj, "olddir/y", "y\n", 0644);
	put(proj, "keep.txt", "keep\n", 0644);
	if (open_ws(1, proj, &ws) < 0) {
		ok(0, "workspace");
		return;
	}
	put(ws.upper, "a.txt", "new content\n", 0644);
	put(ws.upper, "new/deep/f.txt", "deep\n", 0640);
	put(ws.upper, "suid", "#!/bin/sh\n", 04755);
	chmod(ws.upper, 0755);
	whiteout(ws.upper, "gone.txt");
	whiteout(ws.upper, "olddir");
	{
		char l[512];
		snprintf(l, sizeof(l), "%s/alink", ws.upper);
		ok(symlink("a.txt", l) == 0, "fixture: link in upper");
	}

	/* An interrupted apply: part of it first, then everything. */
	const char *first[] = { "new" };
	uint64_t fp;
	size_t counted;
	o.paths = first;
	o.n_paths = 1;
	ab_workspace_recorded_set(&ws, 1, 6);
	o.dry_run = true;
	ok(apply(&ws, &o, &res) == 0 && ab_workspace_recorded_get(&ws, &fp, &counted) == 0,
	   "a dry run keeps what the last run's end recorded");
	o.dry_run = false;
	ok(apply(&ws, &o, &res) == 0 && res.applied == 3, "apply of 'new' only: %zu applied", res.applied);
	ok(ab_workspace_recorded_get(&ws, &fp, &counted) < 0,
	   "apply drops what the last run's end recorded: the next end counts again");
	ok(exists(proj, "new/deep/f.txt") && !exists(proj, "suid") && exists(proj, "gone.txt"),
	   "selective: only what lies beneath 'new' was written");
	o.paths = NULL;
	o.n_paths = 0;
	ok(apply(&ws, &o, &res) == 0, "the rest applies without conflicts on the first part");
	is_str(get(proj, "a.txt"), "new content\n", "modified file has the sandbox's bytes");
	is_str(get(proj, "new/deep/f.txt"), "deep\n", "added file in new directories");
	ok((mode_of(proj, "new/deep/f.txt") & 07777) == 0640, "added file keeps its mode");
	ok(!exists(proj, "gone.txt"), "whiteout deletes the host file");
	ok(!exists(proj, "olddir/x") && !exists(proj, "olddir"), "deleted directory removed with its entries");
	ok((mode_of(proj, "suid") & 07777) == 0755, "setuid bit stripped: %o", mode_of(proj, "suid") & 07777);
	ok(S_ISLNK(mode_of(proj, "alink")), "symlink created as a symlink");
	is_str(get(proj, "keep.txt"), "keep\n", "untouched file stays");
	ok(apply(&ws, &o, &res) == 0 && res.applied == 0, "a rerun applies nothing and succeeds");
	ab_workspace_close(&ws);
}

static void test_symlinks(void)
{
	char p[256], l[512], target[300];
	struct ab_workspace ws;
	struct ab_apply_opts o = { .yes = true };
	struct ab_apply_result res;
	const char *proj = project(2, p, sizeof(p));

	snprintf(l, sizeof(l), "%s/link", proj);
	ok(symlink(outside, l) == 0, "fixture: host link to outside");
	if (open_ws(2, proj, &ws) < 0) {
		ok(0, "workspace");
		return;
	}
	/* The sandbox replaced the host's link with a directory and wrote into it. */
	put(ws.upper, "link/file", "through the link?\n", 0644);
	snprintf(target, sizeof(target), "%s/outside-target", outside);
	snprintf(l, sizeof(l), "%s/evil", ws.upper);
	ok(symlink(target, l) == 0, "fixture: planted link in upper");

	const char *only[] = { "link/file" };
	o.paths = only;
	o.n_paths = 1;
	ok(apply(&ws, &o, &res) == 0 && res.refused == 1 && res.applied == 0,
	   "writing beneath a host symlink is refused");
	ok(outside_empty(), "nothing written outside the project");
	ok(S_ISLNK(mode_of(proj, "link")), "the host's link is left alone");

	o.paths = NULL;
	o.n_paths = 0;
	ok(apply(&ws, &o, &res) == 0, "full apply");
	ok(outside_empty(), "still nothing outside the project");
	ok(S_ISDIR(mode_of(proj, "link")) && exists(proj, "link/file"), "the link became the sandbox's directory");
	ok(S_ISLNK(mode_of(proj, "evil")), "a planted symlink is stored as a link, not followed");

	/* A later run wrote evil/x: in the sandbox evil is now a directory. */
	unlink(l);
	put(ws.upper, "evil/x", "x\n", 0644);
	end_of_run(&ws, proj);
	ok(apply(&ws, &o, &res) == 0, "evil/x applied");
	ok(S_ISDIR(mode_of(proj, "evil")) && exists(proj, "evil/x") && outside_empty(),
	   "evil/x lands in the project, never at the link's target");
	ab_workspace_close(&ws);
}

static void test_special(void)
{
	char p[256], f[512];
	struct ab_workspace ws;
	struct ab_apply_opts o = { 0 };
	struct ab_apply_result res;
	const char *proj = project(3, p, sizeof(p));

	if (open_ws(3, proj, &ws) < 0) {
		ok(0, "workspace");
		return;
	}
	snprintf(f, sizeof(f), "%s/fifo", ws.upper);
	mkfifo(f, 0644);
	snprintf(f, sizeof(f), "%s/null", ws.upper);
	mknod(f, S_IFCHR | 0666, makedev(1, 3));
	put(ws.upper, "ok.txt", "ok\n", 0644);
	ok(apply(&ws, &o, &res) == 0 && res.refused == 2 && res.applied == 1, "fifo and device refused");
	ok(!exists(proj, "fifo") && !exists(proj, "null") && exists(proj, "ok.txt"), "only the file was written");
	ab_workspace_close(&ws);
}

static void test_conflict(void)
{
	char p[256];
	struct ab_workspace ws;
	struct ab_apply_opts o = { 0 };
	struct ab_apply_result res;
	const char *proj = project(4, p, sizeof(p));

	put(proj, "c.txt", "base\n", 0644);
	if (open_ws(4, proj, &ws) < 0) {
		ok(0, "workspace");
		return;
	}
	put(ws.upper, "c.txt", "sandbox\n", 0644);
	put(ws.upper, "other.txt", "other\n", 0644);
	put(proj, "c.txt", "host edit\n", 0644);
	ok(apply(&ws, &o, &res) == -EBUSY && res.conflicts == 1, "host edit since the start is a conflict");
	is_str(get(proj, "c.txt"), "host edit\n", "the host's edit is kept");
	ok(!exists(proj, "other.txt"), "nothing written while a change conflicts");
	o.force = true;
	ok(apply(&ws, &o, &res) == 0 && res.applied == 2, "--force applies");
	is_str(get(proj, "c.txt"), "sandbox\n", "--force overwrote the host's edit");

	/* The sandbox's own writes are not host edits for a later apply. */
	o.force = false;
	put(ws.upper, "c.txt", "sandbox again\n", 0644);
	end_of_run(&ws, proj);
	ok(apply(&ws, &o, &res) == 0 && res.conflicts == 0, "a later apply over our own write: no conflict");
	is_str(get(proj, "c.txt"), "sandbox again\n", "second version applied");
	ab_workspace_close(&ws);
}

static void test_merge(void)
{
	char p[256];
	struct ab_workspace ws;
	struct ab_error err;
	struct ab_apply_opts o = { .merge = true };
	struct ab_apply_result res;
	const char *proj = project(5, p, sizeof(p));

	put(proj, "m.txt", "1\n2\n3\n4\n5\n6\n7\n8\n9\n", 0644);
	put(proj, "o.txt", "1\n2\n3\n4\n5\n", 0644);
	if (open_ws(5, proj, &ws) < 0) {
		ok(0, "workspace");
		return;
	}
	put(ws.upper, "m.txt", "1\n2\n3\n4\n5\n6\n7\nsandbox 8\n9\n", 0644);
	put(ws.upper, "o.txt", "1\n2\nsandbox 3\n4\n5\n", 0644);
	struct ab_change *changes = NULL;
	size_t n_changes = 0;
	ok(ab_changes_collect_quick(ws.upper, proj, &changes, &n_changes, &err) == 0 && n_changes == 2 &&
		   ab_base_capture(&ws, changes, n_changes, &err) == 0,
	   "base captured when the run ends");
	ab_changes_free(changes, n_changes);
	is_str(get(ws.base, "m.txt"), "1\n2\n3\n4\n5\n6\n7\n8\n9\n", "base copy is the host's file");
	put(proj, "m.txt", "1\nhost 2\n3\n4\n5\n6\n7\n8\n9\n", 0644);
	put(proj, "o.txt", "1\n2\nhost 3\n4\n5\n", 0644);

	const char *m[] = { "m.txt" };
	o.paths = m;
	o.n_paths = 1;
	ok(apply(&ws, &o, &res) == 0 && res.applied == 1 && res.conflicts == 0, "non-overlapping edits merge");
	is_str(get(proj, "m.txt"), "1\nhost 2\n3\n4\n5\n6\n7\nsandbox 8\n9\n", "both edits are in the result");
	is_str(get(ws.upper, "m.txt"), "1\nhost 2\n3\n4\n5\n6\n7\nsandbox 8\n9\n", "the sandbox holds the merge too");

	const char *oo[] = { "o.txt" };
	o.paths = oo;
	ok(apply(&ws, &o, &res) == -EBUSY && res.conflicts == 1, "overlapping edits: a conflict");
	is_str(get(proj, "o.txt"), "1\n2\n<<<<<<< host\nhost 3\n=======\nsandbox 3\n>>>>>>> sandbox\n4\n5\n",
	       "conflict markers written");
	ab_workspace_close(&ws);
}

static void test_risky(void)
{
	char p[256];
	struct ab_workspace ws;
	struct ab_apply_opts o = { 0 };
	struct ab_apply_result res;
	const char *proj = project(6, p, sizeof(p));

	put(proj, ".git/hooks/README", "hooks\n", 0644);
	if (open_ws(6, proj, &ws) < 0) {
		ok(0, "workspace");
		return;
	}
	put(ws.upper, ".git/hooks/pre-commit", "#!/bin/sh\ncurl evil\n", 0755);
	put(ws.upper, "src.c", "int x;\n", 0644);
	ok(apply(&ws, &o, &res) == 0 && res.risky_unconfirmed == 1 && res.applied == 1,
	   "a new git hook needs --yes");
	ok(!exists(proj, ".git/hooks/pre-commit") && exists(proj, "src.c"), "the hook is not written, the rest is");
	o.yes = true;
	ok(apply(&ws, &o, &res) == 0 && res.applied == 1, "--yes applies it");
	ok(exists(proj, ".git/hooks/pre-commit"), "the hook is written");
	ab_workspace_close(&ws);
}

static void test_interactive(void)
{
	char p[256];
	struct ab_workspace ws;
	char script[] = "y\nn\nq\n";
	struct ab_apply_result res;
	const char *proj = project(7, p, sizeof(p));

	put(proj, "a", "a\n", 0644);
	if (open_ws(7, proj, &ws) < 0) {
		ok(0, "workspace");
		return;
	}
	put(ws.upper, "a", "a changed\n", 0644);
	put(ws.upper, "b", "b\n", 0644);
	put(ws.upper, "c", "c\n", 0644);
	put(ws.upper, "d", "d\n", 0644);
	FILE *in = fmemopen(script, strlen(script), "r");
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	struct ab_apply_opts o = { .interactive = true, .in = in, .out = out };
	struct ab_error err;
	int r = ab_apply(&ws, &o, &res, &err);
	fclose(in);
	fclose(out);
	ok(r == 0 && res.applied == 1 && res.skipped == 3, "y, n, q: one applied, three skipped");
	is_str(get(proj, "a"), "a changed\n", "'y' applied a");
	ok(!exists(proj, "b") && !exists(proj, "c") && !exists(proj, "d"), "'n' and 'q' wrote nothing");
	ok(text && strstr(text, "apply a? [y,n,q]") && strstr(text, "-a\n+a changed\n"),
	   "the change is shown before the question");
	ok(text && !strstr(text, "apply d?"), "no question after 'q'");
	free(text);
	ab_workspace_close(&ws);
}

static void test_mask_and_dry_run(void)
{
	char p[256];
	struct ab_workspace ws;
	const char *masks[] = { ".env", "secrets/*" };
	struct ab_apply_opts o = { .masks = masks, .n_masks = 2, .dry_run = true };
	struct ab_apply_result res;
	const char *proj = project(8, p, sizeof(p));

	put(proj, "m.txt", "m\n", 0644);
	if (open_ws(8, proj, &ws) < 0) {
		ok(0, "workspace");
		return;
	}
	put(ws.upper, ".env", "TOKEN=1\n", 0600);
	put(ws.upper, "sub/.env", "TOKEN=2\n", 0600);
	put(ws.upper, "secrets/k/key", "k\n", 0600);
	whiteout(ws.upper, "m.txt");
	ok(apply(&ws, &o, &res) == 0, "dry run");
	ok(!exists(proj, ".env") && !exists(proj, "sub") && exists(proj, "m.txt"), "dry run writes nothing");
	o.dry_run = false;
	ok(apply(&ws, &o, &res) == 0 && res.refused == 4, "masked paths refused: %zu", res.refused);
	ok(!exists(proj, ".env") && !exists(proj, "sub/.env") && !exists(proj, "secrets/k/key"),
	   "masked files never written");
	ok(!exists(proj, "m.txt"), "the rest applied");
	ab_workspace_close(&ws);
}

static struct ab_change change(const char *path, enum ab_change_kind k, mode_t old, mode_t new)
{
	return (struct ab_change){ .path = (char *)path, .kind = k, .old_mode = old, .new_mode = new };
}

static void test_policy(void)
{
	struct ab_change c;

	c = change(".git/hooks/pre-commit", AB_CHANGE_ADDED, 0, S_IFREG | 0644);
	is_str(ab_apply_risk(&c), "git hook", "git hook");
	c = change("vendor/lib/.git/config", AB_CHANGE_MODIFIED, S_IFREG | 0644, S_IFREG | 0644);
	is_str(ab_apply_risk(&c), "git config", "nested git config");
	c = change("sub/.github/workflows/ci.yml", AB_CHANGE_ADDED, 0, S_IFREG | 0644);
	ok(ab_apply_risk(&c) == NULL, "workflows only at the root");
	c = change(".github/workflows/ci.yml", AB_CHANGE_ADDED, 0, S_IFREG | 0644);
	is_str(ab_apply_risk(&c), "CI workflow", "CI workflow");
	c = change("home/.bashrc", AB_CHANGE_MODIFIED, S_IFREG | 0644, S_IFREG | 0644);
	is_str(ab_apply_risk(&c), "shell start-up file", ".bashrc at any depth");
	c = change("x.bashrc", AB_CHANGE_MODIFIED, S_IFREG | 0644, S_IFREG | 0644);
	ok(ab_apply_risk(&c) == NULL, "only whole names match");
	c = change(".git/hooksy", AB_CHANGE_ADDED, 0, S_IFREG | 0644);
	ok(ab_apply_risk(&c) == NULL, "'.git/hooksy' is not beneath '.git/hooks'");
	c = change("Makefile", AB_CHANGE_MODIFIED, S_IFREG | 0644, S_IFREG | 0644);
	ok(ab_apply_risk(&c) == NULL, "Makefile is ordinary");
	c = change("run.sh", AB_CHANGE_META, S_IFREG | 0644, S_IFREG | 0755);
	is_str(ab_apply_risk(&c), "made executable", "mode gains x");
	c = change("run.sh", AB_CHANGE_ADDED, 0, S_IFREG | 0700);
	is_str(ab_apply_risk(&c), "made executable", "added executable");
	c = change("run.sh", AB_CHANGE_MODIFIED, S_IFREG | 0755, S_IFREG | 0755);
	ok(ab_apply_risk(&c) == NULL, "already executable");
}

int main(void)
{
	char data[256];

	if (!mkdtemp(top))
		return 1;
	snprintf(data, sizeof(data), "%s/data", top);
	snprintf(outside, sizeof(outside), "%s/outside", top);
	mkdir(data, 0700);
	mkdir(outside, 0755);
	setenv("AGENTBOX_DATA_DIR", data, 1);

	test_policy();
	test_apply_all();
	test_symlinks();
	test_special();
	test_conflict();
	test_merge();
	test_risky();
	test_interactive();
	test_mask_and_dry_run();

	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	if (system(cmd) != 0)
		return 1;
	return tap_done();
}
