/* The run's own layer folded into upper (layer.c), on real directories: a table of cases,
 * each a project, an upper and a layer built from a short description, folded, and upper
 * compared with what overlayfs would show. Also the views of readers (link trees) and the
 * emptiness test. Whiteouts are the kernel's 0:0 character devices, which anyone may make;
 * opaque directories carry "user.overlay.opaque". */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../../src/lib/layer.h"
#include "../../src/lib/snapshot.h"
#include "tap.h"

static char root[4096];

/* Builds entries under dir from "f path content", "d path [mode]", "m path mode" (a mode
 * changed), "w path" (whiteout),
 * "o path" (opaque directory), "l path target" (symlink), "h path other" (hard link to
 * other), separated by ';'. */
static int build(const char *dir, const char *spec)
{
	char *copy = strdup(spec), *save = NULL;
	int r = 0;

	mkdir(dir, 0755);
	for (char *item = strtok_r(copy, ";", &save); item && r == 0; item = strtok_r(NULL, ";", &save)) {
		char kind, a[512] = "", b[512] = "", path[4096], other[4096];
		while (*item == ' ')
			item++;
		if (sscanf(item, "%c %511s %511[^;]", &kind, a, b) < 2)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, a);
		if (kind == 'f') {
			FILE *f = fopen(path, "w");
			r = f ? (fputs(b, f), fclose(f)) : -1;
		} else if (kind == 'd') {
			r = mkdir(path, 0755);
			if (r == 0 && b[0])
				r = chmod(path, (mode_t)strtol(b, NULL, 8));
		} else if (kind == 'm') {
			r = chmod(path, (mode_t)strtol(b, NULL, 8));
		} else if (kind == 'o') {
			r = mkdir(path, 0755);
			if (r == 0)
				r = setxattr(path, "user.overlay.opaque", "y", 1, 0);
		} else if (kind == 'w') {
			r = mknod(path, S_IFCHR, makedev(0, 0));
		} else if (kind == 'l') {
			char target[4800];
			if (strncmp(b, "OUTSIDE", 7) == 0 &&
			    snprintf(target, sizeof(target), "%s/outside%s", root, b + 7) < (int)sizeof(target))
				r = symlink(target, path);
			else
				r = symlink(b, path);
		} else if (kind == 'h') {
			snprintf(other, sizeof(other), "%s/%s", dir, b);
			r = link(other, path);
		}
		if (r != 0)
			printf("# cannot build '%s' in %s: %m\n", item, dir);
	}
	free(copy);
	return r;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "path:type[:content|:target][:mode][:opaque]" for every entry beneath dir, sorted,
 * joined by spaces. Directories' modes are shown when not 0755. */
static void listing(const char *dir, const char *rel, char *out, size_t size)
{
	char path[4096];
	DIR *d;
	struct dirent *de;
	char *names[256];
	size_t n = 0;

	snprintf(path, sizeof(path), "%s%s%s", dir, *rel ? "/" : "", rel);
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d)) && n < 256)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			names[n++] = strdup(de->d_name);
	closedir(d);
	qsort(names, n, sizeof(char *), by_name);
	for (size_t i = 0; i < n; i++) {
		char sub[512], full[4700], item[1200] = "", v[8];
		struct stat st;

		if (snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", names[i]) >= (int)sizeof(sub) ||
		    snprintf(full, sizeof(full), "%s/%s", dir, sub) >= (int)sizeof(full) || lstat(full, &st) < 0) {
			free(names[i]);
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			snprintf(item, sizeof(item), "%s:d", sub);
			if ((st.st_mode & 07777) != 0755)
				snprintf(item + strlen(item), sizeof(item) - strlen(item), ":%o", st.st_mode & 07777);
			if (lgetxattr(full, "user.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y')
				strcat(item, ":opaque");
		} else if (S_ISCHR(st.st_mode)) {
			snprintf(item, sizeof(item), "%s:w", sub);
		} else if (S_ISLNK(st.st_mode)) {
			char target[512] = "";
			ssize_t len = readlink(full, target, sizeof(target) - 1);
			target[len > 0 ? len : 0] = '\0';
			snprintf(item, sizeof(item), "%s:l:%s", sub, target);
		} else {
			char content[512] = "";
			FILE *f = fopen(full, "r");
			if (f) {
				size_t len = fread(content, 1, sizeof(content) - 1, f);
				content[len] = '\0';
				fclose(f);
			}
			snprintf(item, sizeof(item), "%s:f:%s", sub, content);
		}
		if (*out)
			strncat(out, " ", size - strlen(out) - 1);
		strncat(out, item, size - strlen(out) - 1);
		if (S_ISDIR(st.st_mode))
			listing(dir, sub, out, size);
		free(names[i]);
	}
}

static void clean(const char *name)
{
	(void)ab_remove_tree(AT_FDCWD, name, false);
}

struct fold_case {
	const char *what;
	const char *project, *upper, *layer;
	const char *want; /* upper after the fold */
};

static const struct fold_case cases[] = {
	{ "a new file is moved in", "", "", "f a.txt new", "a.txt:f:new" },
	{ "a rewritten file replaces upper's", "f a.txt p", "f a.txt old", "f a.txt new", "a.txt:f:new" },
	{ "a whiteout over a file of upper alone goes, with the file", "", "f n.txt x", "w n.txt", "" },
	{ "a whiteout over a project file stays", "f p.txt p", "", "w p.txt", "p.txt:w" },
	{ "a whiteout over upper's copy of a project file replaces it", "f p.txt p", "f p.txt changed", "w p.txt",
	  "p.txt:w" },
	{ "a whiteout over a tree of upper alone takes the tree", "", "d t; d t/u; f t/u/x 1", "w t", "" },
	{ "an opaque directory replaces upper's, and stays opaque", "d s; f s/p p", "d s; f s/old o",
	  "o s; f s/new n", "s:d:opaque s/new:f:n" },
	{ "a directory over a file of upper is made opaque", "", "f x file", "d x; f x/in i", "x:d:opaque x/in:f:i" },
	{ "a directory over a whiteout of upper is made opaque", "d x; f x/p p", "w x", "d x; f x/in i",
	  "x:d:opaque x/in:f:i" },
	{ "directories merge: upper's entries stay, the layer's join them, the mode is the layer's", "",
	  "d m; f m/keep k; d m/deep; f m/deep/a a", "d m 700; f m/add n; d m/deep; f m/deep/b b",
	  "m:d:700 m/add:f:n m/deep:d m/deep/a:f:a m/deep/b:f:b m/keep:f:k" },
	{ "a whiteout in a merged directory the project also has stays", "d m; f m/p p", "d m; f m/u u",
	  "d m; w m/p; w m/u", "m:d m/p:w" },
	{ "a whiteout beneath an opaque directory of upper hides nothing of the project", "d o; f o/p p",
	  "o o; f o/mine m", "d o; w o/p; w o/mine", "o:d:opaque" },
	{ "a file replaces a directory of upper, all of it", "", "d x; f x/a a; d x/b", "f x now", "x:f:now" },
	{ "a symlink replaces a file; nothing is followed", "", "f target.txt t", "l target.txt /etc/passwd",
	  "target.txt:l:/etc/passwd" },
	{ "a directory over upper's symlink to a directory outside replaces the link, and writes nothing there", "",
	  "l x OUTSIDE", "d x; f x/in i", "x:d:opaque x/in:f:i" },
	{ "a file over upper's symlink to a file outside replaces the link, and writes nothing there", "",
	  "l y OUTSIDE/victim", "f y mine", "y:f:mine" },
	{ "a read-only directory of the run is folded into a read-only one, and keeps its mode", "",
	  "d ro; f ro/old o; m ro 555",
	  "d ro; f ro/new n; d ro/sub; f ro/sub/s s; m ro/sub 555; m ro 555",
	  "ro:d:555 ro/new:f:n ro/old:f:o ro/sub:d:555 ro/sub/s:f:s" },
};

static void fold_cases(void)
{
	char project[4200], upper[4200], layer[4200];

	snprintf(project, sizeof(project), "%s/project", root);
	snprintf(upper, sizeof(upper), "%s/upper", root);
	snprintf(layer, sizeof(layer), "%s/layer", root);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct fold_case *c = &cases[i];
		struct ab_error err = { 0 };
		char got[8192] = "", left[8192] = "";
		int r;

		clean(project);
		clean(upper);
		clean(layer);
		if (build(project, c->project) < 0 || build(upper, c->upper) < 0 || build(layer, c->layer) < 0) {
			ok(0, "fold: %s (could not build the case)", c->what);
			continue;
		}
		r = ab_layer_fold(layer, upper, project, &err);
		listing(upper, "", got, sizeof(got));
		listing(layer, "", left, sizeof(left));
		ok(r == 0 && strcmp(got, c->want) == 0 && !left[0], "fold: %s", c->what);
		if (r != 0 || strcmp(got, c->want) != 0 || left[0])
			printf("#   r=%d %s\n#   got  '%s'\n#   want '%s'\n#   left in the layer '%s'\n", r, err.msg, got,
			       c->want, left);
	}
	clean(project);
	clean(upper);
	clean(layer);
	char outside[4300], got[8192] = "";
	snprintf(outside, sizeof(outside), "%s/outside", root);
	listing(outside, "", got, sizeof(got));
	ok(strcmp(got, "victim:f:keep") == 0, "fold: nothing written through upper's symlinks outside (%s)", got);
	clean(outside);
}

/* An interrupted fold, run again, finishes the work; hard links within the layer stay
 * linked; the layer's root's mode is upper's after it. */
static void fold_again_and_links(void)
{
	char project[4200], upper[4200], layer[4200], a[4300], b[4300], moved[4300];
	struct ab_error err = { 0 };
	struct stat sa, sb, root_st;
	char got[8192] = "";

	snprintf(project, sizeof(project), "%s/project", root);
	snprintf(upper, sizeof(upper), "%s/upper", root);
	snprintf(layer, sizeof(layer), "%s/layer", root);
	clean(project);
	clean(upper);
	clean(layer);
	build(project, "d p; f p/x x");
	build(upper, "d p; f p/u u");
	build(layer, "d p; f p/one 1; f p/two 2; f h1 linked; h h2 h1");
	/* As if the last fold stopped after moving p/one. */
	snprintf(moved, sizeof(moved), "%s/p/one", upper);
	snprintf(a, sizeof(a), "%s/p/one", layer);
	rename(a, moved);
	chmod(layer, 0750);
	ok(ab_layer_fold(layer, upper, project, &err) == 0, "fold: run again after an interruption (%s)", err.msg);
	listing(upper, "", got, sizeof(got));
	ok(strcmp(got, "h1:f:linked h2:f:linked p:d p/one:f:1 p/two:f:2 p/u:f:u") == 0,
	   "fold: ... it finishes the work (%s)", got);
	snprintf(a, sizeof(a), "%s/h1", upper);
	snprintf(b, sizeof(b), "%s/h2", upper);
	ok(stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_ino == sb.st_ino && sa.st_nlink == 2,
	   "fold: hard links within the layer stay one file");
	ok(stat(upper, &root_st) == 0 && (root_st.st_mode & 07777) == 0750,
	   "fold: upper's root takes the layer's root's mode (%o)", root_st.st_mode & 07777);
	ok(ab_layer_is_empty(layer) == 1, "fold: the layer is empty after it");

	/* No project: no telling which whiteouts still hide something, so no fold. */
	build(layer, "d p; w p/u");
	ok(ab_layer_fold(layer, upper, "/nonexistent-project", &err) < 0 && strstr(err.msg, "/nonexistent-project"),
	   "fold: without the project it refuses, naming it (%s)", err.msg);
	ok(ab_layer_is_empty(layer) == 0, "fold: ... and the layer keeps the run's changes");
	clean(project);
	clean(upper);
	clean(layer);
}

static void emptiness_and_views(void)
{
	char dir[4200], src[4200], view[4200], a[4300], b[4300];
	struct ab_error err = { 0 };
	char want[8192] = "", got[8192] = "";
	struct stat sa, sb;

	snprintf(dir, sizeof(dir), "%s/e", root);
	ok(ab_layer_is_empty(dir) == -ENOENT, "is_empty: no such directory: -ENOENT");
	mkdir(dir, 0700);
	ok(ab_layer_is_empty(dir) == 1, "is_empty: an empty directory");
	build(dir, "w gone");
	ok(ab_layer_is_empty(dir) == 0, "is_empty: a directory with only a whiteout is not empty");
	clean(dir);

	snprintf(src, sizeof(src), "%s/src", root);
	snprintf(view, sizeof(view), "%s/view", root);
	clean(src);
	clean(view);
	build(src, "f a a; o o; f o/x x; d ro; f ro/y y; m ro 500; w gone; l s target");
	ok(ab_layer_link_tree(src, view, &err) == 0, "link tree: made (%s)", err.msg);
	listing(src, "", want, sizeof(want));
	listing(view, "", got, sizeof(got));
	ok(strcmp(got, want) == 0 && want[0], "link tree: the same entries, modes and markers (%s)", got);
	snprintf(a, sizeof(a), "%s/a", src);
	snprintf(b, sizeof(b), "%s/a", view);
	ok(stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_ino == sb.st_ino, "link tree: files are links, not copies");
	snprintf(a, sizeof(a), "%s/ro", src);
	snprintf(b, sizeof(b), "%s/ro", view);
	ok(stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_ino != sb.st_ino, "link tree: directories are its own");
	ok(ab_layer_link_tree(src, view, &err) < 0 && strstr(err.msg, view), "link tree: refuses a destination that exists (%s)",
	   err.msg);
	clean(src);
	clean(view);
}

int main(void)
{
	snprintf(root, sizeof(root), "%s/ab-layer-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(root)) {
		printf("Bail out! mkdtemp: %m\n");
		return 1;
	}
	/* Overlay's markers are "user." attributes: the file system must take them. */
	if (setxattr(root, "user.ab-probe", "1", 1, 0) < 0) {
		printf("1..0 # SKIP no user xattrs on %s: %m\n", root);
		rmdir(root);
		return 0;
	}
	umask(022);
	{
		char outside[4300], victim[4400];
		snprintf(outside, sizeof(outside), "%s/outside", root);
		snprintf(victim, sizeof(victim), "%s/victim", outside);
		mkdir(outside, 0755);
		FILE *f = fopen(victim, "w");
		if (f) {
			fputs("keep", f);
			fclose(f);
		}
	}
	fold_cases();
	fold_again_and_links();
	emptiness_and_views();
	clean(root);
	return tap_done();
}
