/* Changes in an overlayfs upper directory, their diff, stat and JSON forms.
 *
 * Fixture built by hand the way overlayfs writes an upper directory:
 *
 *   project/                          upper/
 *     keep.txt  copyup.txt              copyup.txt      same bytes, copied up: no change
 *     mod.txt   "one two three"         mod.txt         "one 2 three"        MODIFIED
 *     del.txt                           del.txt         whiteout             DELETED
 *     dir/{a,b,c}                       dir             whiteout             DELETED x4
 *     old-name.txt                      old-name.txt    whiteout             DELETED
 *                                       new-name.txt    same bytes           ADDED
 *     chmod.sh 0644                     chmod.sh 0755   same bytes           META
 *     link-retarget -> target-a         link-retarget -> target-b            MODIFIED
 *                                       link-new -> somewhere                ADDED
 *                                       hard1, hard2    one inode            ADDED x2
 *     bin.dat "\0\1\2"                  bin.dat "\0\1\3"                     MODIFIED binary
 *                                       empty                                ADDED
 *                                       "sp ace\nname", "bad\xff"            ADDED
 *     opq/{x,y}                         opq/ opaque, {y (same), z}           x DELETED, z ADDED
 *     typechg (file)                    typechg/inner                        TYPE, ADDED
 *     tdir/f                            tdir -> elsewhere                    TYPE, f DELETED
 *     nested/deep/file.txt              nested/deep/new.txt                  ADDED
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "lib/diffout.h"
#include "shared/cleanup.h"
#include "lib/textdiff.h"
#include "lib/workspace.h"
#include "tap.h"

static char root[] = "/tmp/ab-changes-XXXXXX";

static void put(const char *dir, const char *rel, const char *data, size_t len, mode_t mode)
{
	char p[4096];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
		printf("# cannot write %s: %s\n", p, strerror(errno));
		exit(2);
	}
	fchmod(fd, mode);
	close(fd);
}

static void puts0(const char *dir, const char *rel, const char *text)
{
	put(dir, rel, text, strlen(text), 0644);
}

static void mkd(const char *dir, const char *rel)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	if (mkdir(p, 0755) < 0 && errno != EEXIST) {
		printf("# cannot mkdir %s: %s\n", p, strerror(errno));
		exit(2);
	}
	chmod(p, 0755);
}

static void whiteout(const char *dir, const char *rel)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	if (mknod(p, S_IFCHR | 0, makedev(0, 0)) < 0) {
		printf("# cannot mknod %s: %s\n", p, strerror(errno));
		exit(2);
	}
}

static void symlink_at(const char *dir, const char *rel, const char *target)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	if (symlink(target, p) < 0) {
		printf("# cannot symlink %s: %s\n", p, strerror(errno));
		exit(2);
	}
}

static char project[256], upper[256];

static void build_fixture(void)
{
	char p[4096], q[4096];

	snprintf(project, sizeof(project), "%s/project", root);
	snprintf(upper, sizeof(upper), "%s/upper", root);
	mkdir(project, 0755);
	mkdir(upper, 0755);
	chmod(project, 0755);
	chmod(upper, 0755);

	puts0(project, "keep.txt", "same\n");
	puts0(project, "copyup.txt", "unchanged\n");
	puts0(project, "mod.txt", "one\ntwo\nthree\n");
	puts0(project, "del.txt", "bye\n");
	mkd(project, "dir");
	puts0(project, "dir/a", "a\n");
	puts0(project, "dir/b", "b\n");
	puts0(project, "dir/c", "c\n");
	puts0(project, "old-name.txt", "rename me\n");
	puts0(project, "chmod.sh", "#!/bin/sh\n");
	symlink_at(project, "link-retarget", "target-a");
	put(project, "bin.dat", "\0\1\2", 3, 0644);
	mkd(project, "opq");
	puts0(project, "opq/x", "x\n");
	puts0(project, "opq/y", "y\n");
	puts0(project, "typechg", "was a file\n");
	mkd(project, "tdir");
	puts0(project, "tdir/f", "f\n");
	mkd(project, "nested");
	mkd(project, "nested/deep");
	puts0(project, "nested/deep/file.txt", "deep\n");

	puts0(upper, "copyup.txt", "unchanged\n");
	puts0(upper, "mod.txt", "one\n2\nthree\n");
	whiteout(upper, "del.txt");
	whiteout(upper, "dir");
	whiteout(upper, "old-name.txt");
	puts0(upper, "new-name.txt", "rename me\n");
	put(upper, "chmod.sh", "#!/bin/sh\n", 10, 0755);
	symlink_at(upper, "link-retarget", "target-b");
	symlink_at(upper, "link-new", "somewhere");
	puts0(upper, "hard1", "linked\n");
	snprintf(p, sizeof(p), "%s/hard1", upper);
	snprintf(q, sizeof(q), "%s/hard2", upper);
	if (link(p, q) < 0)
		printf("# link: %s\n", strerror(errno));
	put(upper, "bin.dat", "\0\1\3", 3, 0644);
	put(upper, "empty", "", 0, 0644);
	puts0(upper, "sp ace\nname", "spaces\n");
	puts0(upper, "bad\xff", "bad name\n");
	mkd(upper, "opq");
	snprintf(p, sizeof(p), "%s/opq", upper);
	if (setxattr(p, "user.overlay.opaque", "y", 1, 0) < 0)
		printf("# setxattr: %s\n", strerror(errno));
	puts0(upper, "opq/y", "y\n");
	puts0(upper, "opq/z", "z\n");
	mkd(upper, "typechg");
	puts0(upper, "typechg/inner", "inner\n");
	symlink_at(upper, "tdir", "elsewhere");
	mkd(upper, "nested");
	mkd(upper, "nested/deep");
	puts0(upper, "nested/deep/new.txt", "new\n");
}

struct expect {
	const char *path;
	enum ab_change_kind kind;
};

static const struct expect fixture_expect[] = {
	{ "bad\xff", AB_CHANGE_ADDED },
	{ "bin.dat", AB_CHANGE_MODIFIED },
	{ "chmod.sh", AB_CHANGE_META },
	{ "del.txt", AB_CHANGE_DELETED },
	{ "dir", AB_CHANGE_DELETED },
	{ "dir/a", AB_CHANGE_DELETED },
	{ "dir/b", AB_CHANGE_DELETED },
	{ "dir/c", AB_CHANGE_DELETED },
	{ "empty", AB_CHANGE_ADDED },
	{ "hard1", AB_CHANGE_ADDED },
	{ "hard2", AB_CHANGE_ADDED },
	{ "link-new", AB_CHANGE_ADDED },
	{ "link-retarget", AB_CHANGE_MODIFIED },
	{ "mod.txt", AB_CHANGE_MODIFIED },
	{ "nested/deep/new.txt", AB_CHANGE_ADDED },
	{ "new-name.txt", AB_CHANGE_ADDED },
	{ "old-name.txt", AB_CHANGE_DELETED },
	{ "opq/x", AB_CHANGE_DELETED },
	{ "opq/z", AB_CHANGE_ADDED },
	{ "sp ace\nname", AB_CHANGE_ADDED },
	{ "tdir", AB_CHANGE_TYPE },
	{ "tdir/f", AB_CHANGE_DELETED },
	{ "typechg", AB_CHANGE_TYPE },
	{ "typechg/inner", AB_CHANGE_ADDED },
};

static const char *kind_str(enum ab_change_kind k)
{
	static const char *names[] = { "added", "modified", "deleted", "meta", "type" };
	return (unsigned)k < 5 ? names[k] : "?";
}

/* Compares a collected list with an expected table; prints the differences. */
static bool same_list(const struct ab_change *ch, size_t n, const struct expect *e, size_t ne)
{
	bool same = n == ne;

	for (size_t i = 0; i < n || i < ne; i++) {
		bool row = i < n && i < ne && strcmp(ch[i].path, e[i].path) == 0 &&
			   ch[i].kind == e[i].kind;
		if (!row) {
			printf("#   row %zu: got %s %s, want %s %s\n", i, i < n ? kind_str(ch[i].kind) : "-",
			       i < n ? ch[i].path : "-", i < ne ? kind_str(e[i].kind) : "-",
			       i < ne ? e[i].path : "-");
			same = false;
		}
	}
	return same;
}

static const struct ab_change *find(const struct ab_change *ch, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(ch[i].path, path) == 0)
			return &ch[i];
	return NULL;
}

static void test_collect(void)
{
	struct ab_change *ch = NULL;
	struct ab_error err = { 0 };
	size_t n = 0;
	const struct ab_change *c;
	int r = ab_changes_collect(upper, project, NULL, 0, &ch, &n, &err);

	ok(r == 0, "collect the fixture (%s)", r < 0 ? err.msg : "ok");
	ok(same_list(ch, n, fixture_expect, AB_ELEMENTSOF(fixture_expect)),
	   "the fixture lists exactly the expected %zu changes", AB_ELEMENTSOF(fixture_expect));
	c = find(ch, n, "bin.dat");
	ok(c && c->binary && c->old_size == 3 && c->new_size == 3, "bin.dat is binary, 3 bytes each side");
	c = find(ch, n, "mod.txt");
	ok(c && !c->binary && S_ISREG(c->old_mode) && S_ISREG(c->new_mode) &&
		   memcmp(c->old_sha256, c->new_sha256, 32) != 0,
	   "mod.txt is text with two different digests");
	/* sha256("") = e3b0c442... */
	c = find(ch, n, "empty");
	ok(c && c->new_sha256[0] == 0xe3 && c->new_sha256[1] == 0xb0 && c->old_mode == 0,
	   "the empty file has the digest of no bytes and no old side");
	c = find(ch, n, "link-retarget");
	ok(c && c->old_link && c->new_link && strcmp(c->old_link, "target-a") == 0 &&
		   strcmp(c->new_link, "target-b") == 0,
	   "a retargeted symlink keeps both targets");
	c = find(ch, n, "chmod.sh");
	ok(c && (c->old_mode & 0777) == 0644 && (c->new_mode & 0777) == 0755, "chmod.sh 0644 -> 0755");
	c = find(ch, n, "tdir");
	ok(c && S_ISDIR(c->old_mode) && S_ISLNK(c->new_mode) && c->new_link &&
		   strcmp(c->new_link, "elsewhere") == 0,
	   "a directory replaced by a symlink is a type change with its target");
	c = find(ch, n, "dir/b");
	ok(c && S_ISREG(c->old_mode) && c->new_mode == 0 && c->old_size == 2,
	   "entries beneath a deleted directory carry their old side");
	ab_changes_free(ch, n);
}

/* The end of a run's walk: the same paths without reading any content; every regular
 * file upper holds is listed, and one that was only copied up is told by its metadata. */
static void test_collect_quick(void)
{
	static const struct expect want[] = {
		{ "bad\xff", AB_CHANGE_ADDED },
		{ "bin.dat", AB_CHANGE_MODIFIED },
		{ "chmod.sh", AB_CHANGE_MODIFIED },
		{ "copyup.txt", AB_CHANGE_MODIFIED },
		{ "del.txt", AB_CHANGE_DELETED },
		{ "dir", AB_CHANGE_DELETED },
		{ "dir/a", AB_CHANGE_DELETED },
		{ "dir/b", AB_CHANGE_DELETED },
		{ "dir/c", AB_CHANGE_DELETED },
		{ "empty", AB_CHANGE_ADDED },
		{ "hard1", AB_CHANGE_ADDED },
		{ "hard2", AB_CHANGE_ADDED },
		{ "link-new", AB_CHANGE_ADDED },
		{ "link-retarget", AB_CHANGE_MODIFIED },
		{ "mod.txt", AB_CHANGE_MODIFIED },
		{ "nested/deep/new.txt", AB_CHANGE_ADDED },
		{ "new-name.txt", AB_CHANGE_ADDED },
		{ "old-name.txt", AB_CHANGE_DELETED },
		{ "opq/x", AB_CHANGE_DELETED },
		{ "opq/y", AB_CHANGE_MODIFIED },
		{ "opq/z", AB_CHANGE_ADDED },
		{ "sp ace\nname", AB_CHANGE_ADDED },
		{ "tdir", AB_CHANGE_TYPE },
		{ "tdir/f", AB_CHANGE_DELETED },
		{ "typechg", AB_CHANGE_TYPE },
		{ "typechg/inner", AB_CHANGE_ADDED },
	};
	static const unsigned char zero[32];
	struct ab_change *ch = NULL;
	struct ab_error err = { 0 };
	size_t n = 0;
	const struct ab_change *c;
	char pp[4096], up[4096];
	struct stat pst;
	int r = ab_changes_collect_quick(upper, project, &ch, &n, &err);

	ok(r == 0, "quick collect of the fixture (%s)", r < 0 ? err.msg : "ok");
	ok(same_list(ch, n, want, AB_ELEMENTSOF(want)),
	   "the quick list holds every change and every copied-up file (%zu)", AB_ELEMENTSOF(want));
	c = find(ch, n, "mod.txt");
	ok(c && !c->maybe_same && memcmp(c->old_sha256, zero, 32) == 0 && memcmp(c->new_sha256, zero, 32) == 0,
	   "mod.txt: a change, and no content was read for it");
	c = find(ch, n, "chmod.sh");
	ok(c && !c->maybe_same && (c->new_mode & 0777) == 0755, "chmod.sh: its mode change counts");
	ab_changes_free(ch, n);

	/* A copy-up keeps the project's mtime: make copyup.txt's what a copy-up leaves. */
	snprintf(pp, sizeof(pp), "%s/copyup.txt", project);
	snprintf(up, sizeof(up), "%s/copyup.txt", upper);
	if (stat(pp, &pst) < 0 || utimensat(AT_FDCWD, up, (struct timespec[]){ pst.st_atim, pst.st_mtim }, 0) < 0) {
		ok(0, "set copyup.txt's mtime: %s", strerror(errno));
		return;
	}
	/* bin.dat keeps its size; written a second after its project side. The fixture wrote
	 * both within one tick of the file system's clock. */
	snprintf(pp, sizeof(pp), "%s/bin.dat", project);
	snprintf(up, sizeof(up), "%s/bin.dat", upper);
	if (stat(pp, &pst) < 0) {
		ok(0, "stat bin.dat: %s", strerror(errno));
		return;
	}
	pst.st_mtim.tv_sec++;
	if (utimensat(AT_FDCWD, up, (struct timespec[]){ pst.st_atim, pst.st_mtim }, 0) < 0) {
		ok(0, "set bin.dat's mtime: %s", strerror(errno));
		return;
	}
	r = ab_changes_collect_quick(upper, project, &ch, &n, &err);
	c = r == 0 ? find(ch, n, "copyup.txt") : NULL;
	ok(c && c->maybe_same, "a file only copied up (same size, mtime, mode, owner) is marked maybe_same");
	c = r == 0 ? find(ch, n, "bin.dat") : NULL;
	ok(c && !c->maybe_same, "bin.dat, written after its project side: not maybe_same");
	ab_changes_free(ch, n);
	/* The same bytes written later (as apply's own copy is): compared, and the same. */
	snprintf(pp, sizeof(pp), "%s/copyup.txt", project);
	snprintf(up, sizeof(up), "%s/copyup.txt", upper);
	if (stat(pp, &pst) == 0) {
		pst.st_mtim.tv_sec += 2;
		utimensat(AT_FDCWD, up, (struct timespec[]){ pst.st_atim, pst.st_mtim }, 0);
	}
	r = ab_changes_collect_quick(upper, project, &ch, &n, &err);
	c = r == 0 ? find(ch, n, "copyup.txt") : NULL;
	ok(c && c->maybe_same, "the same bytes with a later mtime: compared, and marked maybe_same");
	ab_changes_free(ch, n);
	/* The full walk still reads the bytes and finds nothing in copyup.txt. */
	r = ab_changes_collect(upper, project, NULL, 0, &ch, &n, &err);
	ok(r == 0 && !find(ch, n, "copyup.txt"), "the full walk still leaves the copy-up out");
	ab_changes_free(ch, n);
}

static void test_filters(void)
{
	static const struct {
		const char *filters[2];
		size_t n;
		size_t want;
	} cases[] = {
		{ { "dir" }, 1, 4 },
		{ { "opq/" }, 1, 2 },
		{ { "nested/deep" }, 1, 1 },
		{ { "./mod.txt" }, 1, 1 },
		{ { "/tdir", "typechg" }, 2, 4 },
		{ { "di" }, 1, 0 },
		{ { "." }, 1, AB_ELEMENTSOF(fixture_expect) },
		{ { "nested/deep/file.txt" }, 1, 0 },
	};

	for (size_t i = 0; i < AB_ELEMENTSOF(cases); i++) {
		struct ab_change *ch = NULL;
		struct ab_error err = { 0 };
		size_t n = 0;
		int r = ab_changes_collect(upper, project, cases[i].filters, cases[i].n, &ch, &n, &err);

		ok(r == 0 && n == cases[i].want, "filter '%s'%s keeps %zu (got %zu)", cases[i].filters[0],
		   cases[i].n > 1 ? " +1" : "", cases[i].want, n);
		ab_changes_free(ch, n);
	}
}

static char *capture(const struct ab_change *ch, size_t n, enum ab_diff_format fmt, bool color,
		     int *rc)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct ab_error err = { 0 };

	*rc = ab_diff_write(f, ch, n, upper, project, fmt, color, &err);
	if (*rc < 0)
		printf("# ab_diff_write: %s\n", err.msg);
	fclose(f);
	return buf;
}

static void test_text_output(void)
{
	struct ab_change *ch = NULL;
	struct ab_error err = { 0 };
	size_t n = 0;
	int rc;
	char *out;

	ab_changes_collect(upper, project, NULL, 0, &ch, &n, &err);
	out = capture(ch, n, AB_DIFF_TEXT, false, &rc);
	ok(rc == 0 && out, "text diff of the fixture");
	if (!out)
		out = strdup("");
	ok(strstr(out, "diff --agentbox a/mod.txt b/mod.txt\n--- a/mod.txt\n+++ b/mod.txt\n"
		       "@@ -1,3 +1,3 @@\n one\n-two\n+2\n three\n") != NULL,
	   "modified text file as a unified hunk");
	ok(strstr(out, "diff --agentbox \"a/sp ace\\nname\" \"b/sp ace\\nname\"\nnew file mode 100644\n"
		       "--- /dev/null\n+++ \"b/sp ace\\nname\"\n@@ -0,0 +1 @@\n+spaces\n") != NULL,
	   "a name with a space and a newline is quoted C-style");
	ok(strstr(out, "diff --agentbox \"a/bad\\377\" \"b/bad\\377\"\n") != NULL,
	   "bytes that are not UTF-8 are quoted in octal");
	ok(strstr(out, "diff --agentbox a/del.txt b/del.txt\ndeleted file mode 100644\n--- a/del.txt\n"
		       "+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n") != NULL,
	   "deleted file");
	ok(strstr(out, "diff --agentbox a/dir b/dir\ndeleted directory mode 040755\n") != NULL,
	   "deleted directory");
	ok(strstr(out, "a/chmod.sh b/chmod.sh\nold mode 100644\nnew mode 100755\ndiff") != NULL,
	   "chmod only: modes and no content");
	ok(strstr(out, "-symlink -> target-a\n+symlink -> target-b\n") != NULL, "retargeted symlink");
	ok(strstr(out, "Binary files differ: 3 bytes sha256 ") != NULL &&
		   strstr(out, ".. -> 3 bytes sha256 ") != NULL,
	   "binary file by sizes and digests");
	ok(strstr(out, "a/tdir b/tdir\ntype changed: dir -> symlink\nold mode 040755\nnew mode 120777\n"
		       "+symlink -> elsewhere\n") != NULL,
	   "type change");
	ok(strstr(out, "copyup.txt") == NULL && strstr(out, "keep.txt") == NULL,
	   "copied-up and untouched files do not show");
	free(out);

	out = capture(ch, n, AB_DIFF_TEXT, true, &rc);
	ok(rc == 0 && out && strstr(out, "\033[1mdiff --agentbox a/mod.txt b/mod.txt\033[m\n") &&
		   strstr(out, "\033[36m@@ -1,3 +1,3 @@\033[m\n \033[31m-two\033[m") == NULL &&
		   strstr(out, "\033[36m@@ -1,3 +1,3 @@\033[m\n one\n\033[31m-two\033[m\n\033[32m+2\033[m\n"),
	   "colour: bold header, cyan hunk, red and green lines");
	free(out);

	out = capture(ch, n, AB_DIFF_STAT, false, &rc);
	ok(rc == 0 && out && strstr(out, " M mod.txt ") && strstr(out, "| 2 +-\n"),
	   "stat: modified file with one insertion and one deletion");
	ok(out && strstr(out, " 24 files changed, 12 insertions(+), 10 deletions(-)\n"),
	   "stat summary line (%s)", out ? strrchr(out, '\n') - 40 > out ? "see output" : out : "");
	ok(out && strstr(out, " m chmod.sh ") && strstr(out, "| mode 0644 -> 0755\n"), "stat: metadata");
	ok(out && strstr(out, "| Bin 3 -> 3 bytes\n"), "stat: binary");
	if (out && !strstr(out, " 24 files changed, 12 insertions(+), 10 deletions(-)\n"))
		printf("# stat output:\n%s", out);
	free(out);

	out = capture(ch, n, AB_DIFF_JSON, false, &rc);
	json_object *j = out ? json_tokener_parse(out) : NULL;
	ok(rc == 0 && j && json_object_is_type(j, json_type_array) &&
		   json_object_array_length(j) == n,
	   "json parses back as an array of %zu", n);
	bool mod_ok = false, bad_ok = false, del_ok = false, link_ok = false;
	for (size_t i = 0; j && i < json_object_array_length(j); i++) {
		json_object *o = json_object_array_get_idx(j, i), *v, *side, *s;
		const char *path = json_object_object_get_ex(o, "path", &v) ? json_object_get_string(v) : "";
		if (strcmp(path, "mod.txt") == 0) {
			mod_ok = json_object_object_get_ex(o, "change", &v) &&
				 strcmp(json_object_get_string(v), "modified") == 0 &&
				 json_object_object_get_ex(o, "insertions", &v) && json_object_get_int(v) == 1 &&
				 json_object_object_get_ex(o, "deletions", &v) && json_object_get_int(v) == 1 &&
				 json_object_object_get_ex(o, "old", &side) &&
				 json_object_object_get_ex(side, "sha256", &s) &&
				 strlen(json_object_get_string(s)) == 64 &&
				 json_object_object_get_ex(side, "mode", &s) &&
				 strcmp(json_object_get_string(s), "0644") == 0 &&
				 json_object_object_get_ex(side, "type", &s) &&
				 strcmp(json_object_get_string(s), "file") == 0 &&
				 json_object_object_get_ex(o, "binary", &v) && !json_object_get_boolean(v);
		}
		if (json_object_object_get_ex(o, "path_bytes", &v))
			bad_ok = strcmp(json_object_get_string(v), "626164ff") == 0 &&
				 strcmp(path, "bad\xef\xbf\xbd") == 0;
		if (strcmp(path, "del.txt") == 0)
			del_ok = json_object_object_get_ex(o, "new", &side) && side == NULL &&
				 json_object_object_get_ex(o, "change", &v) &&
				 strcmp(json_object_get_string(v), "deleted") == 0;
		if (strcmp(path, "link-new") == 0)
			link_ok = json_object_object_get_ex(o, "new", &side) &&
				  json_object_object_get_ex(side, "link", &s) &&
				  strcmp(json_object_get_string(s), "somewhere") == 0 &&
				  json_object_object_get_ex(side, "sha256", &s) && s == NULL;
	}
	ok(mod_ok, "json: mod.txt modified, 1+ 1-, old side with sha256, mode, type");
	ok(bad_ok, "json: a name that is not UTF-8 has path_bytes and a lossy path");
	ok(del_ok, "json: deleted entries have new: null");
	ok(link_ok, "json: symlink target, no digest");
	json_object_put(j);
	free(out);
	ab_changes_free(ch, n);
}

/* ---- text diff ---- */
static void test_textdiff(void)
{
	static const struct {
		const char *name, *a, *b, *want;
	} cases[] = {
		{ "one changed line", "a\nb\nc\n", "a\nB\nc\n", "@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n" },
		{ "identical", "x\ny\n", "x\ny\n", "" },
		{ "newline added at the end", "x", "x\n",
		  "@@ -1 +1 @@\n-x\n\\ No newline at end of file\n+x\n" },
		{ "from empty", "", "1\n2\n", "@@ -0,0 +1,2 @@\n+1\n+2\n" },
		{ "to empty", "1\n2\n", "", "@@ -1,2 +0,0 @@\n-1\n-2\n" },
		{ "insert in the middle", "1\n2\n3\n4\n5\n6\n7\n8\n", "1\n2\n3\n4\nnew\n5\n6\n7\n8\n",
		  "@@ -2,6 +2,7 @@\n 2\n 3\n 4\n+new\n 5\n 6\n 7\n" },
		{ "two hunks", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n17\n18\n19\n20\n",
		  "1\nTWO\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n17\nEIGHTEEN\n19\n20\n",
		  "@@ -1,5 +1,5 @@\n 1\n-2\n+TWO\n 3\n 4\n 5\n"
		  "@@ -15,6 +15,6 @@\n 15\n 16\n 17\n-18\n+EIGHTEEN\n 19\n 20\n" },
		{ "close changes merge", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n",
		  "1\nb\n3\n4\n5\n6\n7\nh\n9\n10\n",
		  "@@ -1,10 +1,10 @@\n 1\n-2\n+b\n 3\n 4\n 5\n 6\n 7\n-8\n+h\n 9\n 10\n" },
		{ "last line without newline changed", "a\nb", "a\nc",
		  "@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n" },
	};

	for (size_t i = 0; i < AB_ELEMENTSOF(cases); i++) {
		char *out = NULL;
		int r = ab_textdiff_unified_buf(cases[i].a, strlen(cases[i].a), cases[i].b,
						strlen(cases[i].b), 3, &out, NULL, NULL);
		is_str(out, cases[i].want, "textdiff: %s", cases[i].name);
		if (r != 0 || !out || strcmp(out, cases[i].want) != 0)
			printf("# got (r=%d):\n%s", r, out ? out : "(null)");
		free(out);
	}

	/* Over the cap: one line, no hunks. */
	size_t big = AB_TEXTDIFF_MAX_BYTES + 1;
	char *a = malloc(big);
	char *out = NULL;
	struct ab_textdiff_stats st;
	memset(a, 'a', big);
	int r = ab_textdiff_unified_buf(a, big, "x\n", 2, 3, &out, NULL, &st);
	is_str(out, AB_TEXTDIFF_TOO_LARGE "\n", "textdiff: over 8 MiB is too large (r=%d)", r);
	ok(r == 1 && st.too_large, "textdiff: too large is reported");
	free(out);
	free(a);
}

/* Applies a unified diff to the old lines and checks it gives the new text: the search
 * must stay a valid diff also where it gives up on being the shortest. */
static bool patch_gives(const char *a, const char *diff, const char *want)
{
	const char *lines[4096];
	size_t n = 0, at = 0;
	char *res = calloc(1, strlen(a) + strlen(diff) + 1), *o = res;
	const char *p;
	bool good;

	for (p = a; *p; p = strchr(p, '\n') + 1)
		lines[n++] = p;
	for (p = diff; *p; p = strchr(p, '\n') + 1) {
		size_t len = (size_t)(strchr(p, '\n') - p);
		if (*p == '@') {
			unsigned long start = strtoul(p + 4, NULL, 10);
			while (at + 1 < start) {
				size_t l = (size_t)(strchr(lines[at], '\n') - lines[at]) + 1;
				o = mempcpy(o, lines[at++], l);
			}
		} else if (*p == ' ' || *p == '+') {
			o = mempcpy(o, p + 1, len - 1);
			*o++ = '\n';
			if (*p == ' ')
				at++;
		} else if (*p == '-') {
			at++;
		}
	}
	while (at < n) {
		size_t l = (size_t)(strchr(lines[at], '\n') - lines[at]) + 1;
		o = mempcpy(o, lines[at++], l);
	}
	*o = '\0';
	good = strcmp(res, want) == 0;
	free(res);
	return good;
}

static void test_textdiff_random(void)
{
	unsigned seed = 12345;
	bool all = true;

	for (int round = 0; round < 40; round++) {
		size_t na = 50 + (size_t)(round * 70), nb = na + (size_t)round;
		char *a = calloc(na * 8 + 1, 1), *b = calloc(nb * 8 + 1, 1), *pa = a, *pb = b, *out = NULL;
		struct ab_textdiff_stats st;

		/* Few distinct lines make many equal candidates; late rounds exceed the cost cap. */
		for (size_t i = 0; i < na; i++) {
			seed = seed * 1103515245 + 12345;
			pa += sprintf(pa, "%u\n", (seed >> 16) % (round < 20 ? 8 : 5000));
		}
		for (size_t i = 0; i < nb; i++) {
			seed = seed * 1103515245 + 12345;
			pb += sprintf(pb, "%u\n", (seed >> 16) % (round < 20 ? 8 : 5000));
		}
		ab_textdiff_unified_buf(a, strlen(a), b, strlen(b), 3, &out, NULL, &st);
		if (!out || !patch_gives(a, out, b) || na - st.deletions != nb - st.insertions) {
			printf("# round %d: the diff does not turn old into new\n", round);
			all = false;
		}
		free(out);
		free(a);
		free(b);
	}
	ok(all, "textdiff: 40 random pairs (some over the cost cap) patch back exactly");
}

/* ---- --stat speed: 100 changed files ---- */
static void test_stat_speed(void)
{
	char dir_p[256], dir_u[256], name[64];
	static char text[200 * 24 + 1];
	struct ab_change *ch = NULL;
	struct ab_error err = { 0 };
	size_t n = 0;
	struct timeval t0, t1;
	int rc;
	char *out;

	snprintf(dir_p, sizeof(dir_p), "%s/speed-project", root);
	snprintf(dir_u, sizeof(dir_u), "%s/speed-upper", root);
	mkdir(dir_p, 0755);
	mkdir(dir_u, 0755);
	for (int f = 0; f < 100; f++) {
		snprintf(name, sizeof(name), "file%03d.c", f);
		for (int side = 0; side < 2; side++) {
			char *t = text;
			for (int l = 0; l < 200; l++)
				t += sprintf(t, "line %d of %d%s\n", l, f,
					     side && (l == 5 || l == 150) ? " changed" : "");
			puts0(side ? dir_u : dir_p, name, text);
		}
	}
	gettimeofday(&t0, NULL);
	rc = ab_changes_collect(dir_u, dir_p, NULL, 0, &ch, &n, &err);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	rc |= ab_diff_write(f, ch, n, dir_u, dir_p, AB_DIFF_STAT, false, &err);
	fclose(f);
	gettimeofday(&t1, NULL);
	out = buf;
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000;
#if defined(__SANITIZE_ADDRESS__)
	long limit = 1000;
#else
	long limit = 100;
#endif
	ok(rc == 0 && n == 100 && out && strstr(out, " 100 files changed, 200 insertions(+), 200 deletions(-)\n"),
	   "stat of 100 modified files");
	ok(ms < limit, "collect + stat of 100 files took %ld ms (limit %ld)", ms, limit);
	free(out);
	ab_changes_free(ch, n);
}

/* ---- a real overlay mount ---- */
static int overlay_ops(const char *merged)
{
	char p[1024], q[1024];
	int fd;

#define M(rel) (snprintf(p, sizeof(p), "%s/%s", merged, rel), p)
	fd = open(M("new.txt"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, "new\n", 4) != 4)
		return 10;
	close(fd);
	fd = open(M("a.txt"), O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0 || write(fd, "A\n", 2) != 2)
		return 11;
	close(fd);
	if (unlink(M("d/1")) < 0 || unlink(M("d/2")) < 0 || unlink(M("d/3")) < 0 || rmdir(M("d")) < 0)
		return 12;
	snprintf(q, sizeof(q), "%s/sub/b2.txt", merged);
	if (rename(M("b.txt"), q) < 0)
		return 13;
	if (chmod(M("c.txt"), 0755) < 0)
		return 14;
	if (symlink("a.txt", M("lnk")) < 0)
		return 15;
	fd = open(M("u.txt"), O_WRONLY | O_APPEND | O_CLOEXEC); /* copy-up, no change */
	if (fd < 0)
		return 16;
	close(fd);
	if (mkdir(M("newdir"), 0755) < 0)
		return 17;
	fd = open(M("newdir/f"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return 18;
	close(fd);
	if (unlink(M("sub/gone")) < 0)
		return 19;
#undef M
	return 0;
}

static void test_real_overlay(void)
{
	char lower[256], up[256], work[256], merged[256], opts[20000];
	static const struct expect want[] = {
		{ "a.txt", AB_CHANGE_MODIFIED },  { "b.txt", AB_CHANGE_DELETED },
		{ "c.txt", AB_CHANGE_META },      { "d", AB_CHANGE_DELETED },
		{ "d/1", AB_CHANGE_DELETED },     { "d/2", AB_CHANGE_DELETED },
		{ "d/3", AB_CHANGE_DELETED },     { "lnk", AB_CHANGE_ADDED },
		{ "new.txt", AB_CHANGE_ADDED },   { "newdir", AB_CHANGE_ADDED },
		{ "newdir/f", AB_CHANGE_ADDED },  { "sub/b2.txt", AB_CHANGE_ADDED },
		{ "sub/gone", AB_CHANGE_DELETED },
	};
	struct ab_change *ch = NULL;
	struct ab_error err = { 0 };
	size_t n = 0;
	int status;
	pid_t pid;

	snprintf(lower, sizeof(lower), "%s/ov-project", root);
	snprintf(up, sizeof(up), "%s/ov-upper", root);
	snprintf(work, sizeof(work), "%s/ov-work", root);
	snprintf(merged, sizeof(merged), "%s/ov-merged", root);
	mkdir(lower, 0755);
	mkdir(up, 0755);
	mkdir(work, 0755);
	mkdir(merged, 0755);
	puts0(lower, "a.txt", "a\n");
	puts0(lower, "b.txt", "b\n");
	puts0(lower, "c.txt", "c\n");
	puts0(lower, "u.txt", "u\n");
	mkd(lower, "d");
	puts0(lower, "d/1", "1\n");
	puts0(lower, "d/2", "2\n");
	puts0(lower, "d/3", "3\n");
	mkd(lower, "sub");
	puts0(lower, "sub/keep", "keep\n");
	puts0(lower, "sub/gone", "gone\n");
	snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s,userxattr", lower, up, work);

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int r;
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			_exit(100);
		if (mount("overlay", merged, "overlay", 0, opts) < 0)
			_exit(101);
		r = overlay_ops(merged);
		umount2(merged, MNT_DETACH);
		_exit(r);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status)) {
		ok(false, "real overlay: child failed");
		return;
	}
	if (WEXITSTATUS(status) == 100 || WEXITSTATUS(status) == 101) {
		if (getenv("AB_MUST_WORK"))
			ok(false, "real overlay: cannot mount (status %d)", WEXITSTATUS(status));
		else
			ok(true, "# SKIP real overlay: cannot mount overlayfs here (status %d)",
			   WEXITSTATUS(status));
		return;
	}
	ok(WEXITSTATUS(status) == 0, "real overlay: operations through the mount (status %d)",
	   WEXITSTATUS(status));
	int r = ab_changes_collect(up, lower, NULL, 0, &ch, &n, &err);
	ok(r == 0, "real overlay: collect (%s)", r < 0 ? err.msg : "ok");
	ok(same_list(ch, n, want, AB_ELEMENTSOF(want)),
	   "real overlay: exactly the changes made (write, rm -r, mv, chmod, ln -s, copy-up)");
	ab_changes_free(ch, n);
}

static void cleanup_tree(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", root);
}

int main(void)
{
	umask(022);
	if (!mkdtemp(root)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	build_fixture();
	test_collect();
	test_collect_quick();
	test_filters();
	test_text_output();
	test_textdiff();
	test_textdiff_random();
	test_stat_speed();
	if (geteuid() == 0)
		test_real_overlay();
	else
		ok(true, "# SKIP real overlay: needs root");
	cleanup_tree();
	return tap_done();
}
