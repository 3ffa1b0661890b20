/* The workspace as a transaction: sandbox directories, the manifest, snapshots, rollback,
 * discard, and freezing a running sandbox for a consistent copy.
 *
 * Fixture (under a fresh temporary directory):
 *   data/                 AGENTBOX_DATA_DIR
 *   proj/                 a project: a.txt, "dir with space/file\nnewline", link -> a.txt
 *   other/ moving/        more projects, for the wrong-project and moved-project errors
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "lib/freeze.h"
#include "lib/layer.h"
#include "lib/config.h"
#include "lib/session.h"
#include "lib/fingerprint.h"
#include "lib/snapshot.h"
#include "lib/state.h"
#include "lib/workspace.h"
#include "shared/cleanup.h"
#include "tap.h"

#define RECORD 64

static char top[256];

static void path_of(char *buf, size_t size, const char *rel)
{
	snprintf(buf, size, "%s/%s", top, rel);
}

static void write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		fprintf(stderr, "# cannot write %s: %m\n", path);
	if (fd >= 0)
		close(fd);
}

static bool contains(const char *s, const char *part)
{
	return s && part && strstr(s, part) != NULL;
}

static off_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* ---- tree comparison: the number of differences, each shown as a diagnostic ---- */

static int compare_xattrs(const char *a, const char *b)
{
	char la[4096], lb[4096], va[4096], vb[4096];
	ssize_t na = llistxattr(a, la, sizeof(la)), nb = llistxattr(b, lb, sizeof(lb));
	int diffs = 0;

	if (na < 0)
		na = 0;
	if (nb < 0)
		nb = 0;
	if (na != nb) {
		printf("# xattr lists differ: %s %s\n", a, b);
		return 1;
	}
	for (ssize_t off = 0; off < na; off += (ssize_t)strlen(la + off) + 1) {
		ssize_t x = lgetxattr(a, la + off, va, sizeof(va)), y = lgetxattr(b, la + off, vb, sizeof(vb));
		if (x != y || (x > 0 && memcmp(va, vb, (size_t)x) != 0)) {
			printf("# xattr %s differs: %s %s\n", la + off, a, b);
			diffs++;
		}
	}
	return diffs;
}

static int compare_content(const char *a, const char *b)
{
	_cleanup_free_ char *x = NULL;
	_cleanup_free_ char *y = NULL;
	size_t nx = 0, ny = 0;
	FILE *f;

	f = fopen(a, "re");
	if (f) {
		x = malloc(1 << 20);
		nx = x ? fread(x, 1, 1 << 20, f) : 0;
		fclose(f);
	}
	f = fopen(b, "re");
	if (f) {
		y = malloc(1 << 20);
		ny = y ? fread(y, 1, 1 << 20, f) : 0;
		fclose(f);
	}
	return !x || !y || nx != ny || memcmp(x, y, nx) != 0;
}

static int compare_trees(const char *a, const char *b)
{
	struct stat sa, sb;
	int diffs = 0;

	if (lstat(a, &sa) < 0 || lstat(b, &sb) < 0) {
		printf("# missing: %s or %s\n", a, b);
		return 1;
	}
	if (sa.st_mode != sb.st_mode || sa.st_uid != sb.st_uid || sa.st_gid != sb.st_gid ||
	    sa.st_nlink != sb.st_nlink || sa.st_rdev != sb.st_rdev ||
	    sa.st_mtim.tv_sec != sb.st_mtim.tv_sec || sa.st_mtim.tv_nsec != sb.st_mtim.tv_nsec ||
	    (!S_ISDIR(sa.st_mode) && sa.st_size != sb.st_size)) {
		printf("# metadata differs: %s (mode %o nlink %lu) %s (mode %o nlink %lu)\n", a, sa.st_mode,
		       (unsigned long)sa.st_nlink, b, sb.st_mode, (unsigned long)sb.st_nlink);
		diffs++;
	}
	diffs += compare_xattrs(a, b);
	if (S_ISREG(sa.st_mode) && compare_content(a, b)) {
		printf("# content differs: %s %s\n", a, b);
		diffs++;
	}
	if (S_ISLNK(sa.st_mode)) {
		char ta[4096] = "", tb[4096] = "";
		if (readlink(a, ta, sizeof(ta) - 1) < 0 || readlink(b, tb, sizeof(tb) - 1) < 0 || strcmp(ta, tb)) {
			printf("# link target differs: %s %s\n", a, b);
			diffs++;
		}
	}
	if (S_ISDIR(sa.st_mode) && S_ISDIR(sb.st_mode)) {
		struct dirent **na = NULL, **nb = NULL;
		int ca = scandir(a, &na, NULL, alphasort), cb = scandir(b, &nb, NULL, alphasort);
		if (ca != cb) {
			printf("# entry counts differ: %s %d, %s %d\n", a, ca, b, cb);
			diffs++;
		}
		for (int i = 0; i < ca && i < cb; i++) {
			char pa[4096], pb[4096];
			if (strcmp(na[i]->d_name, nb[i]->d_name) != 0) {
				printf("# names differ: %s/%s %s/%s\n", a, na[i]->d_name, b, nb[i]->d_name);
				diffs++;
				continue;
			}
			if (!strcmp(na[i]->d_name, ".") || !strcmp(na[i]->d_name, ".."))
				continue;
			snprintf(pa, sizeof(pa), "%s/%s", a, na[i]->d_name);
			snprintf(pb, sizeof(pb), "%s/%s", b, nb[i]->d_name);
			diffs += compare_trees(pa, pb);
		}
		for (int i = 0; i < ca; i++)
			free(na[i]);
		for (int i = 0; i < cb; i++)
			free(nb[i]);
		free(na);
		free(nb);
	}
	return diffs;
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (!d)
		return (size_t)-1;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

/* ---- manifest ---- */

static void test_manifest(void)
{
	char proj[512], sub[600], out[512];
	struct ab_manifest_entry *v = NULL;
	size_t n = 0;
	struct ab_error err = { 0 };
	const struct ab_manifest_entry *e;

	path_of(proj, sizeof(proj), "proj");
	mkdir(proj, 0755);
	snprintf(sub, sizeof(sub), "%s/a.txt", proj);
	write_text(sub, "alpha\n");
	snprintf(sub, sizeof(sub), "%s/dir with space", proj);
	mkdir(sub, 0750);
	snprintf(sub, sizeof(sub), "%s/dir with space/file\nnewline", proj);
	write_text(sub, "0123456789");
	snprintf(sub, sizeof(sub), "%s/link", proj);
	if (symlink("a.txt", sub) < 0)
		printf("# symlink: %m\n");
	snprintf(sub, sizeof(sub), "%s/dangling", proj);
	if (symlink("/nonexistent/x", sub) < 0)
		printf("# symlink: %m\n");

	path_of(out, sizeof(out), "manifest-test");
	ok(ab_manifest_write(proj, out, &err) == 0, "manifest written: %s", err.msg);
	ok(ab_manifest_load(out, &v, &n, &err) == 0, "manifest loaded: %s", err.msg);
	ok(n == 5, "manifest holds 5 entries (got %zu)", n);
	bool sorted = true;
	for (size_t i = 1; i < n; i++)
		sorted &= strcmp(v[i - 1].path, v[i].path) < 0;
	ok(sorted, "manifest is sorted by path");
	e = ab_manifest_find(v, n, "dir with space/file\nnewline");
	ok(e && S_ISREG(e->mode) && e->size == 10, "a name with a space and a newline survives");
	e = ab_manifest_find(v, n, "dir with space");
	ok(e && S_ISDIR(e->mode) && (e->mode & 07777) == 0750, "directory with its mode");
	e = ab_manifest_find(v, n, "link");
	ok(e && S_ISLNK(e->mode) && e->size == 5, "symlink recorded as a link, not followed");
	e = ab_manifest_find(v, n, "dangling");
	ok(e && S_ISLNK(e->mode), "dangling symlink recorded");
	struct stat st;
	snprintf(sub, sizeof(sub), "%s/a.txt", proj);
	stat(sub, &st);
	e = ab_manifest_find(v, n, "a.txt");
	ok(e && e->ino == st.st_ino && e->mtime_ns == st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
	   "inode and mtime in nanoseconds");
	ok(ab_manifest_find(v, n, "nope") == NULL && ab_manifest_find(v, 0, "a.txt") == NULL,
	   "find misses what is absent");
	ab_manifest_free(v, n);

	/* damaged files are refused */
	write_text(out, "agentbox-manifest 1\n\xff\xff\xff\xff\xff\xff\xff\xff");
	v = NULL;
	ok(ab_manifest_load(out, &v, &n, &err) < 0 && contains(err.msg, "damaged") && !v,
	   "a huge count is refused: %s", err.msg);
	write_text(out, "not a manifest");
	ok(ab_manifest_load(out, &v, &n, &err) < 0, "garbage is refused");

	/* 10,000 files are walked quickly */
	char big[512];
	path_of(big, sizeof(big), "bigproj");
	mkdir(big, 0755);
	for (int d = 0; d < 100; d++) {
		snprintf(sub, sizeof(sub), "%s/d%03d", big, d);
		mkdir(sub, 0755);
		for (int f = 0; f < 100; f++) {
			char file[700];
			snprintf(file, sizeof(file), "%s/f%03d", sub, f);
			close(open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
		}
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int r = ab_manifest_write(big, out, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ok(r == 0 && ab_manifest_load(out, &v, &n, &err) == 0 && n == 10100,
	   "10,100 entries written and loaded (%zu, %.3f s)", n, secs);
	ok(secs < 2.0, "the walk of 10,100 entries is fast (%.3f s)", secs);
	ab_manifest_free(v, n);
	remove(out);
}

/* ---- open, create, errors, list, lock ---- */

static void test_open(void)
{
	char proj[512], other[512], moving[512], moved[512], path[700];
	struct ab_workspace ws, ws2;
	struct ab_error err = { 0 };
	char **names = NULL;
	size_t n = 0;

	path_of(proj, sizeof(proj), "proj");
	path_of(other, sizeof(other), "other");
	path_of(moving, sizeof(moving), "moving");
	path_of(moved, sizeof(moved), "moved");
	mkdir(other, 0755);
	mkdir(moving, 0755);

	ok(ab_workspace_open("one", proj, &ws, &err) == 0, "sandbox created: %s", err.msg);
	snprintf(path, sizeof(path), "%s/sandbox.json", ws.dir);
	struct stat st;
	ok(stat(path, &st) == 0 && S_ISREG(st.st_mode), "sandbox.json written");
	ok(stat(ws.upper, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700, "upper is 0700");
	ok(stat(ws.work, &st) == 0 && stat(ws.base, &st) == 0 && stat(ws.manifest, &st) == 0,
	   "work, base and manifest exist");
	ok(ws.project && strcmp(ws.project, proj) == 0, "project is canonical");
	ok(ws.lock_fd == -1, "not locked after open");
	ab_workspace_close(&ws);

	ok(ab_workspace_open("one", NULL, &ws, &err) == 0 && ws.project && strcmp(ws.project, proj) == 0,
	   "sandbox reopened without a project: %s", err.msg);
	ab_workspace_close(&ws);
	ok(ab_workspace_open("one", proj, &ws, &err) == 0, "sandbox reopened for its project");
	ab_workspace_close(&ws);

	ok(ab_workspace_open("nope", NULL, &ws, &err) < 0 && contains(err.msg, "unknown sandbox 'nope'") &&
		   contains(err.msg, "agentbox run --name nope"),
	   "unknown sandbox: %s", err.msg);
	ok(ab_workspace_open("../x", proj, &ws, &err) < 0 && contains(err.msg, "invalid sandbox name"),
	   "invalid name: %s", err.msg);
	ok(ab_workspace_open("one", other, &ws, &err) < 0 && contains(err.msg, "belongs to project") &&
		   contains(err.msg, proj) && contains(err.msg, other),
	   "other project: %s", err.msg);

	ok(ab_workspace_open("mover", moving, &ws, &err) == 0, "sandbox for a project about to move");
	ab_workspace_close(&ws);
	rename(moving, moved);
	ok(ab_workspace_open("mover", NULL, &ws, &err) < 0 && contains(err.msg, "is gone or moved") &&
		   contains(err.msg, "/upper"),
	   "moved project: %s", err.msg);
	rename(moved, moving);

	ok(ab_workspace_list(&names, &n, &err) == 0 && n == 2 && !strcmp(names[0], "mover") &&
		   !strcmp(names[1], "one") && names[2] == NULL,
	   "list: sorted names (%zu)", n);
	ab_strv_free(names);

	/* locks */
	ok(ab_workspace_open("one", NULL, &ws, &err) == 0 && ab_workspace_open("one", NULL, &ws2, &err) == 0,
	   "two handles on one sandbox");
	ok(ab_workspace_lock(&ws, true, &err) == 0, "exclusive lock taken");
	ok(ab_workspace_lock(&ws2, true, &err) < 0 && contains(err.msg, "sandbox 'one' is busy"),
	   "second exclusive lock: %s", err.msg);
	ok(ab_workspace_lock(&ws2, false, &err) < 0, "shared lock refused while exclusive");
	ok(ws2.lock_fd == -1, "failed lock leaves no descriptor");
	ab_workspace_close(&ws);
	ok(ab_workspace_lock(&ws2, false, &err) == 0, "shared lock after the writer left");
	ok(ab_workspace_open("one", NULL, &ws, &err) == 0 && ab_workspace_lock(&ws, false, &err) == 0,
	   "two readers share");
	ab_workspace_close(&ws);
	ab_workspace_close(&ws2);
}

/* ---- snapshots ---- */

static void mkfile(const char *dir, const char *name, const char *text, mode_t mode)
{
	char p[1024];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	write_text(p, text);
	chmod(p, mode);
}

/* An upper as overlayfs leaves it: a file, a directory, a link, a whiteout, an opaque
 * directory, a hard link pair, a fifo. */
static void fill_upper(const char *u)
{
	char p[1024], q[1024];

	mkfile(u, "f", "hello\n", 0640);
	snprintf(p, sizeof(p), "%s/d", u);
	mkdir(p, 0750);
	mkfile(p, "inner", "inside\n", 0600);
	snprintf(p, sizeof(p), "%s/l", u);
	if (symlink("f", p) < 0)
		printf("# symlink: %m\n");
	snprintf(p, sizeof(p), "%s/gone", u);
	if (mknod(p, S_IFCHR | 0000, makedev(0, 0)) < 0)
		printf("# mknod whiteout: %m\n");
	snprintf(p, sizeof(p), "%s/op", u);
	mkdir(p, 0755);
	if (setxattr(p, "user.overlay.opaque", "y", 1, 0) < 0)
		printf("# setxattr user: %m\n");
	if (setxattr(p, "trusted.overlay.opaque", "y", 1, 0) < 0 && errno != EPERM)
		printf("# setxattr trusted: %m\n");
	mkfile(p, "new", "fresh\n", 0644);
	mkfile(u, "h1", "linked\n", 0644);
	snprintf(p, sizeof(p), "%s/h1", u);
	snprintf(q, sizeof(q), "%s/d/h2", u);
	if (link(p, q) < 0)
		printf("# link: %m\n");
	snprintf(p, sizeof(p), "%s/p", u);
	if (mkfifo(p, 0620) < 0)
		printf("# mkfifo: %m\n");
	snprintf(p, sizeof(p), "%s/ro", u);
	mkdir(p, 0500);
}

/* ---- what a fingerprint notices, and when an automatic snapshot is reused ---- */

static uint64_t fp_of(const char *dir)
{
	uint64_t fp = 0;
	int64_t newest = 0;

	if (ab_tree_fingerprint(dir, &fp, &newest) < 0)
		printf("# fingerprint of %s: %m\n", dir);
	return fp;
}

static void pause_ms(int ms)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = ms * 1000000L };
	nanosleep(&ts, NULL);
}

static void test_fingerprint(void)
{
	char d[512], p[1024], q[1024];
	uint64_t fp, before;
	int64_t newest = 0;
	struct timespec now;

	path_of(d, sizeof(d), "fp");
	mkdir(d, 0755);
	ok(ab_tree_fingerprint(d, &fp, &newest) == 0, "an empty tree has a fingerprint");
	fill_upper(d);
	before = fp_of(d);
	ok(before != fp && fp_of(d) == before, "a filled tree differs from the empty one, and stays equal to itself");

	/* each change, made clearly after the fingerprint, shows */
	pause_ms(25);
	snprintf(p, sizeof(p), "%s/f", d);
	write_text(p, "HELLO\n"); /* same size */
	ok(fp_of(d) != before, "rewriting a file with as many bytes changes the fingerprint");
	before = fp_of(d);
	pause_ms(25);
	chmod(p, 0600);
	ok(fp_of(d) != before, "a mode change changes it");
	before = fp_of(d);
	pause_ms(25);
	snprintf(q, sizeof(q), "%s/d/f-moved", d);
	if (rename(p, q) < 0)
		printf("# rename: %m\n");
	ok(fp_of(d) != before, "a rename changes it");
	before = fp_of(d);
	pause_ms(25);
	snprintf(p, sizeof(p), "%s/d/inner", d);
	unlink(p);
	ok(fp_of(d) != before, "a removal deep down changes it");
	before = fp_of(d);
	pause_ms(25);
	snprintf(p, sizeof(p), "%s/d", d);
	if (setxattr(p, "user.agentbox.test", "1", 1, 0) < 0)
		printf("# setxattr: %m\n");
	ok(fp_of(d) != before, "an extended attribute changes it");
	before = fp_of(d);
	pause_ms(25);
	snprintf(p, sizeof(p), "%s/l", d);
	unlink(p);
	if (symlink("g", p) < 0) /* a target of the same length */
		printf("# symlink: %m\n");
	ok(fp_of(d) != before, "a symlink pointed elsewhere changes it");

	clock_gettime(CLOCK_REALTIME, &now);
	int64_t now_ns = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
	ok(!ab_fingerprint_is_reliable(now_ns - 1000000, now_ns), "a change a millisecond old: not reliable");
	ok(ab_fingerprint_is_reliable(now_ns - 1000000000LL, now_ns), "a change a second old: reliable");
	snprintf(p, sizeof(p), "%s/no-such-dir", d);
	ok(ab_tree_fingerprint(p, &fp, &newest) == -ENOENT, "a missing tree: -ENOENT");
}

static void test_snapshot_reuse(void)
{
	char proj[512], p[1024];
	struct ab_workspace ws;
	struct ab_error err = { 0 };
	char *created = NULL, *reused = NULL;
	struct ab_snapshot_info *v = NULL;
	size_t n = 0;

	path_of(proj, sizeof(proj), "proj");
	if (ab_workspace_open("reuse", proj, &ws, &err) < 0 || ab_workspace_lock(&ws, true, &err) < 0) {
		ok(0, "sandbox for reuse: %s", err.msg);
		return;
	}
	ok(ab_snapshot_reuse_automatic(&ws, &reused) == 0, "no snapshot yet: nothing to reuse");
	mkfile(ws.upper, "a", "one\n", 0644);
	ok(ab_snapshot_create(&ws, NULL, true, &created, &err) == 0, "automatic snapshot right after a change: %s",
	   err.msg);
	ok(ab_snapshot_reuse_automatic(&ws, &reused) == 0,
	   "a snapshot of a tree changed a moment before vouches for nothing");
	free(created);
	created = NULL;
	pause_ms(25);
	ok(ab_snapshot_create(&ws, NULL, true, &created, &err) == 0, "automatic snapshot of a settled tree");
	snprintf(p, sizeof(p), "%s/snapshots/%s/meta.json", ws.dir, created ? created : "?");
	FILE *f = fopen(p, "r");
	char meta[2048] = "";
	if (f) {
		meta[fread(meta, 1, sizeof(meta) - 1, f)] = '\0';
		fclose(f);
	}
	ok(contains(meta, "\"upper_fingerprint\""), "its meta records the fingerprint");
	ok(ab_snapshot_reuse_automatic(&ws, &reused) == 1 && reused && created && !strcmp(reused, created),
	   "nothing changed since: that snapshot is reused (%s)", reused ? reused : "none");
	free(reused);
	reused = NULL;
	ok(ab_snapshot_list(&ws, &v, &n, &err) == 0 && n == 2, "reuse takes no snapshot (%zu)", n);
	ab_snapshot_info_free(v, n);

	mkfile(ws.upper, "a", "two\n", 0644);
	ok(ab_snapshot_reuse_automatic(&ws, &reused) == 0, "a changed tree is not vouched for");
	pause_ms(25);
	free(created);
	created = NULL;
	ok(ab_snapshot_create(&ws, NULL, true, &created, &err) == 0 &&
		   ab_snapshot_reuse_automatic(&ws, &reused) == 1,
	   "a new automatic snapshot vouches again");
	free(reused);
	reused = NULL;
	ok(ab_snapshot_create(&ws, "named", false, NULL, &err) == 0 && ab_snapshot_reuse_automatic(&ws, &reused) == 0,
	   "a newer snapshot the user named is never stood for by an automatic one");
	ok(ab_snapshot_rollback(&ws, created, &err) == 0 && ab_snapshot_reuse_automatic(&ws, &reused) == 0,
	   "after a rollback (a new copy of the tree) nothing is reused");
	free(created);
	free(reused);
	ab_workspace_close(&ws);
}

static void test_snapshots(void)
{
	char proj[512], snapu[700], ref[3][512], p[1024];
	struct ab_workspace ws;
	struct ab_error err = { 0 };
	struct ab_snapshot_info *v = NULL;
	size_t n = 0;
	char *created = NULL;
	struct stat st;

	path_of(proj, sizeof(proj), "proj");
	if (ab_workspace_open("snap", proj, &ws, &err) < 0 || ab_workspace_lock(&ws, true, &err) < 0) {
		ok(0, "sandbox for snapshots: %s", err.msg);
		return;
	}
	fill_upper(ws.upper);

	ok(ab_snapshot_create(&ws, "s1", false, &created, &err) == 0 && created && !strcmp(created, "s1"),
	   "snapshot s1: %s", err.msg);
	free(created);
	snprintf(snapu, sizeof(snapu), "%s/snapshots/s1/upper", ws.dir);
	ok(compare_trees(ws.upper, snapu) == 0, "the snapshot is identical to upper");
	snprintf(p, sizeof(p), "%s/d/h2", snapu);
	ok(stat(p, &st) == 0 && st.st_nlink == 2, "the hard link pair stays one inode");
	snprintf(p, sizeof(p), "%s/gone", snapu);
	ok(lstat(p, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0), "whiteout copied");
	char val[8] = "";
	snprintf(p, sizeof(p), "%s/op", snapu);
	ok(getxattr(p, "user.overlay.opaque", val, sizeof(val)) == 1 && val[0] == 'y', "opaque marker copied");

	ok(ab_snapshot_list(&ws, &v, &n, &err) == 0 && n == 1 && !strcmp(v[0].name, "s1") && !v[0].automatic &&
		   v[0].bytes > 0 && v[0].created_ns > 0,
	   "list shows s1 (%zu, %llu bytes)", n, n ? (unsigned long long)v[0].bytes : 0ULL);
	ab_snapshot_info_free(v, n);
	ok(ab_snapshot_create(&ws, "s1", false, NULL, &err) < 0 && contains(err.msg, "already exists"),
	   "duplicate name: %s", err.msg);
	ok(ab_snapshot_create(&ws, "bad/name", false, NULL, &err) < 0 && contains(err.msg, "invalid snapshot name"),
	   "invalid name: %s", err.msg);
	created = NULL;
	ok(ab_snapshot_create(&ws, NULL, true, &created, &err) == 0 && created && !strncmp(created, "auto-", 5),
	   "automatic snapshot named %s", created ? created : "(none)");
	free(created);

	/* three states, three snapshots, each restored exactly */
	const char *names[3] = { "A", "B", "C" };
	for (int i = 0; i < 3; i++) {
		char m[32];
		snprintf(m, sizeof(m), "state %d\n", i);
		mkfile(ws.upper, "f", m, 0600 + (mode_t)i);
		snprintf(p, sizeof(p), "%s/added-%d", ws.upper, i);
		mkdir(p, 0700);
		if (i == 1) {
			snprintf(p, sizeof(p), "%s/d/inner", ws.upper);
			unlink(p);
			if (mknod(p, S_IFCHR, makedev(0, 0)) < 0)
				printf("# mknod: %m\n");
		}
		snprintf(ref[i], sizeof(ref[i]), "%s/ref-%d", top, i);
		ok(ab_copy_tree(ws.upper, ref[i], NULL, &err) == 0, "reference copy %d", i);
		ok(ab_snapshot_create(&ws, names[i], false, NULL, &err) == 0, "snapshot %s: %s", names[i], err.msg);
	}
	mkfile(ws.upper, "after", "more\n", 0644);
	for (int i = 0; i < 3; i++) {
		ok(ab_snapshot_rollback(&ws, names[i], &err) == 0, "rollback to %s: %s", names[i], err.msg);
		ok(compare_trees(ws.upper, ref[i]) == 0, "upper is state %s again", names[i]);
		ok(count_entries(ws.work) == 0, "work is empty");
	}
	mkfile(ws.upper, "after", "more\n", 0644);
	ok(ab_snapshot_rollback(&ws, NULL, &err) == 0 && compare_trees(ws.upper, ref[2]) == 0,
	   "rollback without a name restores the newest: %s", err.msg);
	snprintf(p, sizeof(p), "%s/snapshots/A/meta.json", ws.dir);
	ok(stat(p, &st) == 0, "the snapshot stays after a rollback");
	ok(ab_snapshot_rollback(&ws, "zzz", &err) < 0 &&
		   contains(err.msg, "unknown snapshot 'zzz' of sandbox 'snap'") &&
		   contains(err.msg, "agentbox snapshots snap"),
	   "unknown snapshot: %s", err.msg);

	/* refused while running: our own pid stands for agentbox */
	snprintf(p, sizeof(p), "%s/running", ws.dir);
	char line[64];
	snprintf(line, sizeof(line), "%d %d\n", (int)getpid(), 0);
	write_text(p, line);
	ok(ab_workspace_running(&ws, NULL, NULL) == 1, "running file with a live pid: running");
	ok(ab_snapshot_rollback(&ws, "A", &err) < 0 && contains(err.msg, "sandbox 'snap' is running: stop it first"),
	   "rollback while running: %s", err.msg);
	ok(ab_workspace_discard(&ws, &err) < 0 && contains(err.msg, "is running"), "discard while running");
	write_text(p, "999999999 999999998\n");
	ok(ab_workspace_running(&ws, NULL, NULL) == 0, "a stale running file is not running");
	snprintf(line, sizeof(line), "%d 0 1\n", (int)getpid());
	write_text(p, line);
	ok(ab_workspace_running(&ws, NULL, NULL) == 0, "a live pid with another start time is not running (pid reuse)");
	snprintf(line, sizeof(line), "%d 0 %llu\n", (int)getpid(), (unsigned long long)ab_proc_start_time(getpid()));
	write_text(p, line);
	ok(ab_workspace_running(&ws, NULL, NULL) == 1, "the same pid and start time: running");
	unlink(p);
	/* The record a run writes, in place over whatever was there. */
	write_text(p, "999999999 999999998\n");
	ab_workspace_record_running(&ws, getpid(), 0);
	pid_t who = 0;
	ok(ab_workspace_running(&ws, &who, NULL) == 1 && who == getpid(), "a run's own record: running (%d)", (int)who);
	{
		char rec[256] = "";
		FILE *f = fopen(p, "r");
		if (f) {
			if (!fgets(rec, sizeof(rec), f))
				rec[0] = '\0';
			fclose(f);
		}
		ok(strlen(rec) == 60, "the record has its fixed length (%zu)", strlen(rec));
		/* Half rewritten: the start of one record, the rest of another. */
		char torn[256];
		snprintf(torn, sizeof(torn), "%.30s%s", rec, "99999999999 0123456789abcdef\n");
		write_text(p, torn);
		ok(ab_workspace_running(&ws, &who, NULL) == 0, "a half-written record is nothing to go by: %s", torn);
		rec[50] = rec[50] == 'a' ? 'b' : 'a';
		write_text(p, rec);
		ok(ab_workspace_running(&ws, &who, NULL) == 0, "a record whose check disagrees: nothing to go by");
	}
	unlink(p);

	/* automatic snapshots are capped */
	for (int i = 0; i < AB_MAX_AUTO_SNAPSHOTS + 3; i++)
		if (ab_snapshot_create(&ws, NULL, true, NULL, &err) < 0)
			printf("# auto snapshot: %s\n", err.msg);
	err.msg[0] = '\0';
	ok(ab_snapshot_prune(&ws, &err) == 0, "prune the automatic snapshots %s", err.msg);
	size_t n_auto = 0;
	ok(ab_snapshot_list(&ws, &v, &n, &err) == 0, "list after many automatic snapshots");
	for (size_t i = 0; i < n; i++)
		n_auto += v[i].automatic;
	ok(n_auto == AB_MAX_AUTO_SNAPSHOTS && n == AB_MAX_AUTO_SNAPSHOTS + 4,
	   "automatic snapshots capped at %d, named ones kept (%zu auto of %zu)", AB_MAX_AUTO_SNAPSHOTS, n_auto, n);
	bool oldest_first = true;
	for (size_t i = 1; i < n; i++)
		oldest_first &= v[i - 1].created_ns <= v[i].created_ns;
	ok(oldest_first && !strcmp(v[0].name, "s1"), "sorted oldest first");
	ab_snapshot_info_free(v, n);
	ok(ab_snapshot_remove(&ws, "B", &err) == 0 && ab_snapshot_rollback(&ws, "B", &err) < 0,
	   "a removed snapshot is gone");

	/* a crash in the middle of a rollback: upper moved aside, upper.new half built */
	char old[1024], new[1024];
	snprintf(old, sizeof(old), "%s.old", ws.upper);
	snprintf(new, sizeof(new), "%s.new", ws.upper);
	rename(ws.upper, old);
	mkdir(new, 0700);
	ab_workspace_close(&ws);
	ok(ab_workspace_open("snap", NULL, &ws, &err) == 0, "reopened after a crash: %s", err.msg);
	ok(compare_trees(ws.upper, ref[2]) == 0 && stat(old, &st) < 0 && stat(new, &st) < 0,
	   "the old upper is back, the leftovers gone");
	ok(ab_workspace_lock(&ws, true, &err) == 0, "locked again");

	/* discard */
	snprintf(p, sizeof(p), "%s/kept", ws.base);
	write_text(p, "base\n");
	ok(ab_workspace_discard(&ws, &err) == 0, "discard: %s", err.msg);
	ok(count_entries(ws.upper) == 0 && count_entries(ws.base) == 0 && count_entries(ws.work) == 0,
	   "upper, base and work are empty");
	struct ab_manifest_entry *m = NULL;
	size_t nm = 0;
	ok(ab_manifest_load(ws.manifest, &m, &nm, &err) == 0 && nm == 0,
	   "manifest emptied: the next run records afresh (%zu)", nm);
	ab_manifest_free(m, nm);
	ab_workspace_close(&ws);
}

/* ---- freezing a running sandbox ---- */

static char proc_state(pid_t pid)
{
	char path[64], buf[512], *paren;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	paren = strrchr(buf, ')');
	return paren && paren[1] ? paren[2] : 0;
}

static void writer(const char *log)
{
	char rec[RECORD];
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	memset(rec, 'r', sizeof(rec));
	rec[RECORD - 1] = '\n';
	for (;;) {
		if (write(fd, rec, sizeof(rec)) != sizeof(rec))
			_exit(1);
		usleep(20);
	}
}

/* Starts "init" of a new pid namespace that starts the writer; returns init's pid. */
static pid_t start_sandbox(const char *log, pid_t *outer)
{
	int pfd[2];
	pid_t init = -1;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	*outer = fork();
	if (*outer == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (unshare(CLONE_NEWPID) < 0)
			_exit(77);
		pid_t child = fork();
		if (child == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (fork() == 0)
				writer(log);
			for (;;)
				pause();
		}
		if (write(pfd[1], &child, sizeof(child)) != sizeof(child))
			_exit(1);
		waitpid(child, NULL, 0);
		_exit(0);
	}
	close(pfd[1]);
	if (*outer < 0 || read(pfd[0], &init, sizeof(init)) != sizeof(init))
		init = -1;
	close(pfd[0]);
	return init;
}

static void test_freeze(void)
{
	char proj[512], log[1024], running[1024], line[64], snaplog[1024];
	struct ab_workspace ws;
	struct ab_error err = { 0 };
	struct ab_frozen f = { 0 };
	pid_t outer = -1, init;
	off_t a, b;

	path_of(proj, sizeof(proj), "proj");
	if (ab_workspace_open("live", proj, &ws, &err) < 0 || ab_workspace_lock(&ws, true, &err) < 0) {
		ok(0, "sandbox for the freeze test: %s", err.msg);
		return;
	}
	snprintf(log, sizeof(log), "%s/log", ws.upper);
	init = start_sandbox(log, &outer);
	if (init <= 0) {
		ok(1, "# SKIP no pid namespace here");
		ab_workspace_close(&ws);
		return;
	}
	for (int i = 0; i < 200 && file_size(log) <= 0; i++)
		sleep_ms(10);
	ok(file_size(log) > 0, "the writer writes");

	ok(ab_freeze_sandbox(init, &f, &err) == 0, "sandbox frozen: %s", err.msg);
	ok(f.n == 2, "init and the writer are held (%zu)", f.n);
	bool all_stopped = f.n > 0;
	for (size_t i = 0; i < f.n; i++)
		all_stopped &= proc_state(f.procs[i].pid) == 'T';
	ok(all_stopped, "each shows state T");
	a = file_size(log);
	sleep_ms(100);
	b = file_size(log);
	ok(a == b && a % RECORD == 0, "the file stays still while frozen (%lld, %lld)", (long long)a, (long long)b);
	ab_thaw_sandbox(&f);
	ok(f.n == 0 && f.procs == NULL, "thaw empties the set");
	sleep_ms(100);
	ok(file_size(log) > b, "the writer resumes after thaw");
	ok(proc_state(init) != 'T', "init runs again");

	snprintf(running, sizeof(running), "%s/running", ws.dir);
	snprintf(line, sizeof(line), "%d %d\n", (int)outer, (int)init);
	write_text(running, line);
	ok(ab_snapshot_create(&ws, "live", false, NULL, &err) == 0, "snapshot while running: %s", err.msg);
	snprintf(snaplog, sizeof(snaplog), "%s/snapshots/live/upper/log", ws.dir);
	{
		_cleanup_free_ char *buf = NULL;
		FILE *fp = fopen(snaplog, "re");
		off_t size = file_size(snaplog);
		bool whole = fp && size > 0 && size % RECORD == 0;
		if (whole) {
			buf = malloc((size_t)size);
			whole = buf && fread(buf, 1, (size_t)size, fp) == (size_t)size;
		}
		for (off_t i = 0; whole && i < size; i++)
			whole = buf[i] == ((i % RECORD == RECORD - 1) ? '\n' : 'r');
		if (fp)
			fclose(fp);
		ok(whole, "the snapshot holds whole records only (%lld bytes)", (long long)size);
	}
	a = file_size(log);
	sleep_ms(100);
	ok(file_size(log) > a, "the sandbox runs on after the snapshot");
	ok(ab_snapshot_rollback(&ws, "live", &err) < 0 && contains(err.msg, "is running"),
	   "no rollback while it runs");

	kill(init, SIGKILL);
	waitpid(outer, NULL, 0);
	ok(ab_workspace_running(&ws, NULL, NULL) == 0, "not running once init and agentbox are gone");
	unlink(running);
	ok(ab_freeze_sandbox(init, &f, &err) < 0, "freezing a gone sandbox fails: %s", err.msg);
	ab_workspace_close(&ws);
}

/* The state the end of a run keeps so that the next end may skip its work: whatever else
 * changes upper (rollback, discard) must drop it. */
/* The masks a sandbox ran with: none written while they are the defaults (no file reads
 * as the defaults), written once they are not, and written back to the defaults. */
static void test_masks_saved(void)
{
	char proj[512], p[1024];
	struct ab_workspace ws;
	struct ab_error err = { 0 };
	char **loaded = NULL;
	size_t n = 0;
	char *custom[] = { "*.secret" };

	path_of(proj, sizeof(proj), "proj");
	if (ab_workspace_open("masks", proj, &ws, &err) < 0) {
		ok(0, "sandbox for the masks: %s", err.msg);
		return;
	}
	snprintf(p, sizeof(p), "%s/masks", ws.dir);
	ok(ab_session_save_masks(&ws, (char *const *)ab_default_masks, ab_n_default_masks, &err) == 0 &&
		   access(p, F_OK) < 0,
	   "the default masks: no file written");
	ok(ab_session_load_masks(&ws, &loaded, &n, &err) == 0 && n == ab_n_default_masks &&
		   strcmp(loaded[0], ab_default_masks[0]) == 0,
	   "... and they load as the defaults");
	ab_strv_free(loaded);
	loaded = NULL;
	ok(ab_session_save_masks(&ws, custom, 1, &err) == 0 && ab_session_load_masks(&ws, &loaded, &n, &err) == 0 &&
		   n == 1 && strcmp(loaded[0], "*.secret") == 0,
	   "other masks are written and load as written");
	ab_strv_free(loaded);
	loaded = NULL;
	ok(ab_session_save_masks(&ws, (char *const *)ab_default_masks, ab_n_default_masks, &err) == 0 &&
		   ab_session_load_masks(&ws, &loaded, &n, &err) == 0 && n == ab_n_default_masks,
	   "back to the defaults, they are written back");
	ab_strv_free(loaded);
	ab_workspace_close(&ws);
}

static void test_recorded(void)
{
	char proj[512], p[1024], q[1024], data_dir[512];
	struct ab_workspace ws;
	struct ab_error err = { 0 };
	uint64_t fp = 0;
	size_t n = 0;
	FILE *f;

	path_of(proj, sizeof(proj), "proj");
	if (ab_workspace_open("recorded", proj, &ws, &err) < 0 || ab_workspace_lock(&ws, true, &err) < 0) {
		ok(0, "sandbox for the recorded state: %s", err.msg);
		return;
	}
	ok(ab_workspace_recorded_get(&ws, &fp, &n) < 0, "a new sandbox has no recorded state");
	ab_workspace_recorded_set(&ws, 0x0123456789abcdefULL, 42);
	ok(ab_workspace_recorded_get(&ws, &fp, &n) == 0 && fp == 0x0123456789abcdefULL && n == 42,
	   "set, then read back: fingerprint and count");
	snprintf(p, sizeof(p), "%s/recorded", ws.dir);
	static const char *const bad[] = { "", "0123 4", "zz 1\n", "0123456789abcdef 99999999\n",
					   "0123456789abcdef 1\n\0", "0123456789abcdef -1\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f = fopen(p, "w");
		if (f) {
			fwrite(bad[i], 1, strlen(bad[i]) + (i == 4), f);
			fclose(f);
		}
		ok(ab_workspace_recorded_get(&ws, &fp, &n) < 0, "a malformed record is no record (case %zu)", i);
	}
	ab_workspace_recorded_set(&ws, 0xabcULL, 12345);
	ab_workspace_recorded_set(&ws, 0xabcULL, 3);
	ok(ab_workspace_recorded_get(&ws, &fp, &n) == 0 && fp == 0xabcULL && n == 3,
	   "rewritten in place over a longer record, the new one is read");
	struct stat before_st, after_st;
	snprintf(p, sizeof(p), "%s/recorded", ws.dir);
	bool same_file = stat(p, &before_st) == 0 && ab_workspace_recorded_forget(&ws) == 0;
	ab_workspace_recorded_set(&ws, 0xabcULL, 3);
	ok(same_file && stat(p, &after_st) == 0 && after_st.st_ino == before_st.st_ino,
	   "forget and set rewrite the same file: no new inode on the end's path");
	ab_workspace_recorded_set(&ws, 7, 1);
	ok(ab_workspace_recorded_forget(&ws) == 0 && ab_workspace_recorded_get(&ws, &fp, &n) < 0,
	   "forget drops it");
	ok(ab_workspace_recorded_forget(&ws) == 0, "forgetting nothing is fine");

	/* The run's own layer (layer.h): there and empty in a sandbox; a run's changes left in
	 * it (the run never reached its end) are folded into upper by the next command that
	 * holds the sandbox alone, and the record goes. */
	ok(ws.layer && ab_layer_is_empty(ws.layer) == 1 && ws.layer_empty, "a sandbox has an empty layer");
	mkfile(ws.upper, "kept", "kept\n", 0644);
	mkfile(ws.layer, "left", "left by a run\n", 0644);
	ab_workspace_recorded_set(&ws, 0xabcULL, 3);
	char *view = NULL;
	ok(ab_layer_view(&ws, &view, &err) == 0 && view && strcmp(view, ws.upper) != 0 &&
		   strncmp(view, ws.dir, strlen(ws.dir)) == 0,
	   "a reader beside the run gets a view of its own (%s)", view ? view : err.msg);
	snprintf(p, sizeof(p), "%s/left", view ? view : "");
	bool left_seen = access(p, F_OK) == 0;
	snprintf(p, sizeof(p), "%s/kept", view ? view : "");
	ok(left_seen && access(p, F_OK) == 0, "... with upper's changes and the layer's");
	char *view_dir = view ? strndup(view, strrchr(view, '/') - view) : NULL;
	ab_layer_view_release(&ws, view);
	ok(view_dir && access(view_dir, F_OK) < 0, "... removed when released");
	free(view_dir);
	char *snap_live = NULL;
	ok(ab_snapshot_create(&ws, "with-layer", false, &snap_live, &err) == 0, "a snapshot with changes in the layer");
	snprintf(p, sizeof(p), "%s/snapshots/with-layer/upper/left", ws.dir);
	ok(access(p, F_OK) == 0, "... holds the layer's changes");
	free(snap_live);
	ok(ab_layer_is_empty(ws.layer) == 0, "... and leaves them in the layer");
	ab_workspace_close(&ws);
	if (ab_workspace_open("recorded", proj, &ws, &err) < 0 || ab_workspace_lock(&ws, true, &err) < 0) {
		ok(0, "sandbox for the recorded state, again: %s", err.msg);
		return;
	}
	snprintf(p, sizeof(p), "%s/left", ws.upper);
	ok(ab_layer_is_empty(ws.layer) == 1 && access(p, F_OK) == 0, "the next command folds a layer left behind");
	ok(ab_workspace_recorded_get(&ws, &fp, &n) < 0, "... and drops the record, which no longer holds");
	/* A sandbox made before the layer: its first command makes one, as upper is. */
	ab_workspace_close(&ws);
	path_of(data_dir, sizeof(data_dir), "data");
	snprintf(p, sizeof(p), "%s/sandboxes/recorded/layer", data_dir);
	rmdir(p);
	snprintf(q, sizeof(q), "%s/sandboxes/recorded/upper", data_dir);
	chmod(q, 0750);
	struct stat layer_st;
	ok(ab_workspace_open("recorded", proj, &ws, &err) == 0 && stat(p, &layer_st) == 0 &&
		   (layer_st.st_mode & 07777) == 0750 && ab_layer_is_empty(p) == 1,
	   "a sandbox without a layer gets one, with upper's mode");
	chmod(q, 0700);
	/* A snapshot that a crash cut short is made beside the snapshots: the next command
	 * that holds the sandbox alone removes it. */
	ab_workspace_close(&ws);
	snprintf(p, sizeof(p), "%s/sandboxes/recorded/.snapshot-cut-123", data_dir);
	snprintf(q, sizeof(q), "%s/sandboxes/recorded/.snapshot-cut-123/upper", data_dir);
	mkdir(p, 0700);
	mkdir(q, 0700);
	mkfile(q, "half", "half\n", 0644);
	ok(ab_workspace_open("recorded", proj, &ws, &err) == 0 && access(p, F_OK) < 0,
	   "a snapshot left half made is removed");

	mkfile(ws.upper, "a", "one\n", 0644);
	char *snap = NULL;
	ok(ab_snapshot_create(&ws, "s1", false, &snap, &err) == 0, "a snapshot to roll back to");
	ab_workspace_recorded_set(&ws, 7, 1);
	ok(ab_snapshot_rollback(&ws, "s1", &err) == 0 && ab_workspace_recorded_get(&ws, &fp, &n) < 0,
	   "rollback drops the recorded state");
	ab_workspace_recorded_set(&ws, 7, 1);
	ok(ab_workspace_discard(&ws, &err) == 0 && ab_workspace_recorded_get(&ws, &fp, &n) < 0,
	   "discard drops the recorded state");
	free(snap);
	ab_workspace_close(&ws);
}

int main(void)
{
	char data[512];

	snprintf(top, sizeof(top), "/tmp/agentbox-test-workspace.XXXXXX");
	if (!mkdtemp(top)) {
		printf("Bail out! mkdtemp: %m\n");
		return 1;
	}
	path_of(data, sizeof(data), "data");
	setenv("AGENTBOX_DATA_DIR", data, 1);

	test_manifest();
	test_open();
	test_snapshots();
	test_fingerprint();
	test_snapshot_reuse();
	test_recorded();
	test_masks_saved();
	if (geteuid() == 0)
		test_freeze();
	else
		ok(1, "# SKIP the freeze test needs root for a pid namespace");

	ab_remove_tree(AT_FDCWD, top, false);
	return tap_done();
}
