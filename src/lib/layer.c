/* The run's own layer (layer.h): folding it into upper, and views of the two for readers. */
#include "layer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "../shared/dirents.h"
#include "../shared/strutil.h"
#include "snapshot.h"

#define OPAQUE_XATTR "user.overlay.opaque"
#define OVERLAY_XATTRS "user.overlay."
#define XATTR_LIST_MAX_ 65536
#define XATTR_VALUE_MAX_ 65536
#define MAX_DEPTH 2048

static int stop_at_first(const char *name, unsigned char d_type, void *data)
{
	(void)name;
	(void)d_type;
	(void)data;
	return 1;
}

int ab_layer_is_empty(const char *layer)
{
	_cleanup_close_ int fd = open(layer, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int r;

	if (fd < 0)
		return -errno;
	r = ab_dir_for_each(fd, stop_at_first, NULL);
	return r < 0 ? r : r == 0;
}

struct name_list {
	char **v;
	size_t n;
};

static int collect_name(const char *name, unsigned char d_type, void *data)
{
	struct name_list *l = data;

	(void)d_type;
	return ab_strv_push(&l->v, &l->n, name);
}

/* The names in the directory at fd (a NULL-terminated list), read before any of them
 * moves. */
static int read_names(int fd, char ***names)
{
	struct name_list l = { .v = calloc(1, sizeof(char *)) };
	int r;

	*names = NULL;
	if (!l.v)
		return -ENOMEM;
	r = ab_dir_for_each(fd, collect_name, &l);
	if (r < 0) {
		ab_strv_free(l.v);
		return r;
	}
	*names = l.v;
	return 0;
}

struct folder {
	const char *layer;
	char path[4096]; /* of the entry at hand, relative to the layer */
	struct ab_error *err;
};

static int fold_fail(struct folder *f, int e, const char *what)
{
	return ab_error_set(f->err, e, "cannot fold the run's changes in '%s' into the sandbox: cannot %s '%s'",
			    f->layer, what, f->path[0] ? f->path : ".");
}

static bool is_opaque(int fd)
{
	char v[2];

	return fgetxattr(fd, OPAQUE_XATTR, v, sizeof(v)) == 1 && v[0] == 'y';
}

/* The "user." attributes of dst made those of src, overlay's own markers aside (dst
 * keeps whether it is opaque). */
static int sync_xattrs(int src, int dst)
{
	_cleanup_free_ char *have = malloc(XATTR_LIST_MAX_), *want = malloc(XATTR_LIST_MAX_);
	_cleanup_free_ char *value = malloc(XATTR_VALUE_MAX_);
	ssize_t nh, nw;

	if (!have || !want || !value)
		return -ENOMEM;
	nw = flistxattr(src, want, XATTR_LIST_MAX_);
	nh = flistxattr(dst, have, XATTR_LIST_MAX_);
	if (nw < 0 || nh < 0)
		return errno == ENOTSUP ? 0 : -errno;
	for (ssize_t off = 0; off < nh; off += (ssize_t)strlen(have + off) + 1) {
		const char *name = have + off;
		if (!ab_startswith(name, "user.") || ab_startswith(name, OVERLAY_XATTRS))
			continue;
		if (fgetxattr(src, name, NULL, 0) < 0 && errno == ENODATA && fremovexattr(dst, name) < 0 &&
		    errno != ENODATA)
			return -errno;
	}
	for (ssize_t off = 0; off < nw; off += (ssize_t)strlen(want + off) + 1) {
		const char *name = want + off;
		ssize_t len;
		if (!ab_startswith(name, "user.") || ab_startswith(name, OVERLAY_XATTRS))
			continue;
		len = fgetxattr(src, name, value, XATTR_VALUE_MAX_);
		if (len < 0) {
			if (errno == ENODATA)
				continue;
			return -errno;
		}
		if (fsetxattr(dst, name, value, (size_t)len, 0) < 0)
			return -errno;
	}
	return 0;
}

/* A directory's mode, owner, times and attributes, as the run left them (st: taken before
 * the fold opened it up). An owner or attribute this user may not set stays as it was:
 * the run's changes must not be held up by them. */
static int take_dir_attrs(int src, const struct stat *st, int dst)
{
	struct stat now;
	int r;

	if ((r = sync_xattrs(src, dst)) < 0 && r != -EPERM && r != -ENOTSUP)
		return r;
	if (fstat(dst, &now) < 0)
		return -errno;
	if ((now.st_uid != st->st_uid || now.st_gid != st->st_gid) && fchown(dst, st->st_uid, st->st_gid) < 0 &&
	    errno != EPERM)
		return -errno;
	if ((now.st_mode & 07777) != (st->st_mode & 07777) && fchmod(dst, st->st_mode & 07777) < 0)
		return -errno;
	return futimens(dst, (struct timespec[]){ st->st_atim, st->st_mtim }) < 0 ? -errno : 0;
}

/* Entries are moved out of a directory and into another, which takes write access to
 * both, and a directory moved whole must be writable too (its ".." changes): a directory
 * the sandbox made read-only is opened up for the fold; callers put the mode back. */
static int open_up(int fd, const struct stat *st)
{
	if ((st->st_mode & 0700) == 0700)
		return 0;
	return fchmod(fd, (st->st_mode & 07777) | 0700) < 0 ? -errno : 0;
}

static int fold_dir(struct folder *f, int lfd, int ufd, int pfd, size_t plen, int depth);

/* pfd: the project's directory that this one merges with, or -1 when there is none to see
 * (absent, or hidden by an opaque directory of upper). */
static int fold_entry(struct folder *f, int lfd, int ufd, int pfd, const char *name, size_t plen, int depth)
{
	struct stat ls, us, ps;
	bool have_u;
	int r;

	if (fstatat(lfd, name, &ls, AT_SYMLINK_NOFOLLOW) < 0)
		return fold_fail(f, errno, "inspect");
	have_u = fstatat(ufd, name, &us, AT_SYMLINK_NOFOLLOW) == 0;
	if (!have_u && errno != ENOENT)
		return fold_fail(f, errno, "inspect the sandbox's");
	if (S_ISDIR(ls.st_mode)) {
		_cleanup_close_ int cl = openat(lfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		bool opaque;

		if (cl < 0)
			return fold_fail(f, errno, "open");
		opaque = is_opaque(cl);
		if (!opaque && have_u && S_ISDIR(us.st_mode)) {
			/* Both hold the directory: overlayfs merges them, so does the fold. */
			_cleanup_close_ int cu = openat(ufd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			_cleanup_close_ int cp = -1;
			if (cu < 0)
				return fold_fail(f, errno, "open the sandbox's");
			if (pfd >= 0 && !is_opaque(cu)) {
				cp = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (cp < 0 && errno != ENOENT && errno != ENOTDIR)
					return fold_fail(f, errno, "open the project's");
			}
			if ((r = open_up(cl, &ls)) < 0 || (r = open_up(cu, &us)) < 0)
				return fold_fail(f, -r, "open up");
			if ((r = fold_dir(f, cl, cu, cp, plen, depth + 1)) < 0)
				return r;
			f->path[plen] = '\0';
			if ((r = take_dir_attrs(cl, &ls, cu)) < 0)
				return fold_fail(f, -r, "take the attributes of");
			if (unlinkat(lfd, name, AT_REMOVEDIR) < 0)
				return fold_fail(f, errno, "remove the folded");
			return 0;
		}
		/* Over a file or a whiteout of upper, overlayfs showed this directory alone: so it
		 * stays, as an opaque one. */
		if (have_u && !opaque && fsetxattr(cl, OPAQUE_XATTR, "y", 1, 0) < 0)
			return fold_fail(f, errno, "mark opaque");
		if ((ls.st_mode & 0200) == 0 && fchmod(cl, (ls.st_mode & 07777) | 0200) < 0)
			return fold_fail(f, errno, "open up");
		if (have_u && (r = ab_remove_tree(ufd, name, false)) < 0)
			return fold_fail(f, -r, "replace the sandbox's");
		if (renameat(lfd, name, ufd, name) < 0)
			return fold_fail(f, errno, "move");
		if ((ls.st_mode & 0200) == 0 && fchmod(cl, ls.st_mode & 07777) < 0)
			return fold_fail(f, errno, "restore the mode of");
		return 0;
	}
	/* A whiteout the run made over an entry of upper alone hides nothing once upper holds
	 * the result: it goes, with the entry. Kept, overlayfs would list it as a file in a
	 * directory that is upper's alone (it reads such a directory as it is). */
	if (ab_overlay_is_whiteout(lfd, name, &ls) &&
	    (pfd < 0 || (fstatat(pfd, name, &ps, AT_SYMLINK_NOFOLLOW) < 0 && (errno == ENOENT || errno == ENOTDIR)))) {
		if (have_u && (r = ab_remove_tree(ufd, name, false)) < 0)
			return fold_fail(f, -r, "remove the sandbox's");
		if (unlinkat(lfd, name, 0) < 0)
			return fold_fail(f, errno, "remove the folded");
		return 0;
	}
	/* A file, a symlink, a whiteout...: it replaces whatever upper has. */
	if (have_u && S_ISDIR(us.st_mode) && (r = ab_remove_tree(ufd, name, false)) < 0)
		return fold_fail(f, -r, "replace the sandbox's");
	if (renameat(lfd, name, ufd, name) < 0)
		return fold_fail(f, errno, "move");
	return 0;
}

static int fold_dir(struct folder *f, int lfd, int ufd, int pfd, size_t plen, int depth)
{
	_cleanup_strv_free_ char **names = NULL;
	int r;

	if (depth > MAX_DEPTH)
		return fold_fail(f, ELOOP, "fold (too deep)");
	if ((r = read_names(lfd, &names)) < 0)
		return fold_fail(f, -r, "read");
	for (size_t i = 0; names[i]; i++) {
		size_t nlen = strlen(names[i]), len = plen ? plen + 1 + nlen : nlen;

		if (len >= sizeof(f->path))
			return fold_fail(f, ENAMETOOLONG, "fold what is beneath");
		if (plen)
			f->path[plen] = '/';
		memcpy(f->path + (plen ? plen + 1 : 0), names[i], nlen + 1);
		if ((r = fold_entry(f, lfd, ufd, pfd, names[i], len, depth)) < 0)
			return r;
		f->path[plen] = '\0';
	}
	return 0;
}

int ab_layer_fold(const char *layer, const char *upper, const char *project, struct ab_error *err)
{
	struct folder f = { .layer = layer, .err = err };
	_cleanup_close_ int lfd = open(layer, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int ufd = -1, pfd = -1;
	struct stat ls, us;
	int r;

	if (lfd < 0)
		return fold_fail(&f, errno, "open");
	ufd = open(upper, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ufd < 0)
		return ab_error_set(err, errno, "cannot open the sandbox's changes '%s'", upper);
	/* Which whiteouts still hide something: without the project, none can be told. */
	pfd = open(project, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0)
		return ab_error_set(err, errno, "cannot fold the run's changes: cannot open the project '%s'", project);
	if (fstat(lfd, &ls) < 0 || fstat(ufd, &us) < 0)
		return fold_fail(&f, errno, "inspect");
	if ((r = open_up(lfd, &ls)) < 0 || (r = open_up(ufd, &us)) < 0)
		return fold_fail(&f, -r, "open up");
	if ((r = fold_dir(&f, lfd, ufd, is_opaque(ufd) ? -1 : pfd, 0, 0)) < 0)
		return r;
	/* The workspace's own root: the sandbox saw the layer's, which stays as it was for the
	 * next run. */
	if ((r = take_dir_attrs(lfd, &ls, ufd)) < 0)
		return fold_fail(&f, -r, "take the attributes of");
	if ((ls.st_mode & 0700) != 0700 && fchmod(lfd, ls.st_mode & 07777) < 0)
		return fold_fail(&f, errno, "restore the mode of");
	return 0;
}

/* ---- views ---- */

struct linker {
	const char *src;
	char path[4096];
	struct ab_error *err;
};

static int link_fail(struct linker *k, int e, const char *what)
{
	return ab_error_set(k->err, e, "cannot %s '%s' in '%s'", what, k->path[0] ? k->path : ".", k->src);
}

static int link_dir(struct linker *k, int sfd, int dfd, size_t plen, int depth)
{
	_cleanup_strv_free_ char **names = NULL;
	int r;

	if (depth > MAX_DEPTH)
		return link_fail(k, ELOOP, "link (too deep)");
	if ((r = read_names(sfd, &names)) < 0)
		return link_fail(k, -r, "read");
	for (size_t i = 0; names[i]; i++) {
		size_t nlen = strlen(names[i]), len = plen ? plen + 1 + nlen : nlen;
		struct stat st;

		if (len >= sizeof(k->path))
			return link_fail(k, ENAMETOOLONG, "link what is beneath");
		if (plen)
			k->path[plen] = '/';
		memcpy(k->path + (plen ? plen + 1 : 0), names[i], nlen + 1);
		if (fstatat(sfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue; /* removed meanwhile by the running sandbox */
			return link_fail(k, errno, "inspect");
		}
		if (S_ISDIR(st.st_mode)) {
			_cleanup_close_ int cs = openat(sfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			_cleanup_close_ int cd = -1;
			if (cs < 0) {
				if (errno == ENOENT)
					continue;
				return link_fail(k, errno, "open");
			}
			if (mkdirat(dfd, names[i], 0700) < 0)
				return link_fail(k, errno, "make the view of");
			cd = openat(dfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cd < 0)
				return link_fail(k, errno, "open the view of");
			if ((r = link_dir(k, cs, cd, len, depth + 1)) < 0)
				return r;
			k->path[len] = '\0';
			/* Overlay's marker too: a view is read the way upper is. */
			if (is_opaque(cs) && fsetxattr(cd, OPAQUE_XATTR, "y", 1, 0) < 0)
				return link_fail(k, errno, "mark opaque");
			if ((r = take_dir_attrs(cs, &st, cd)) < 0)
				return link_fail(k, -r, "take the attributes of");
		} else if (linkat(sfd, names[i], dfd, names[i], 0) < 0 && errno != ENOENT) {
			return link_fail(k, errno, "link");
		}
		k->path[plen] = '\0';
	}
	return 0;
}

int ab_layer_link_tree(const char *src, const char *dst, struct ab_error *err)
{
	struct linker k = { .src = src, .err = err };
	_cleanup_close_ int sfd = open(src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int dfd = -1;
	struct stat st;
	int r;

	if (sfd < 0 || fstat(sfd, &st) < 0)
		return link_fail(&k, errno, "open");
	if (mkdir(dst, 0700) < 0)
		return ab_error_set(err, errno, "cannot create '%s'", dst);
	dfd = open(dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return ab_error_set(err, errno, "cannot open '%s'", dst);
	if ((r = link_dir(&k, sfd, dfd, 0, 0)) < 0)
		return r;
	if (is_opaque(sfd) && fsetxattr(dfd, OPAQUE_XATTR, "y", 1, 0) < 0)
		return link_fail(&k, errno, "mark opaque");
	if ((r = take_dir_attrs(sfd, &st, dfd)) < 0)
		return link_fail(&k, -r, "take the attributes of");
	return 0;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int ab_layer_view(const struct ab_workspace *ws, char **view, struct ab_error *err)
{
	_cleanup_free_ char *dir = NULL, *upper = NULL, *layer = NULL;
	int r = ab_layer_is_empty(ws->layer);

	*view = NULL;
	if (r == 1 || r == -ENOENT) {
		*view = strdup(ws->upper);
		return *view ? 0 : ab_error_set(err, ENOMEM, "cannot read the changes of '%s'", ws->name);
	}
	if (r < 0)
		return ab_error_set(err, -r, "cannot read '%s'", ws->layer);
	if (asprintf(&dir, "%s/view-%d-%lld", ws->dir, (int)getpid(), (long long)now_ns()) < 0 ||
	    asprintf(&upper, "%s/upper", dir) < 0 || asprintf(&layer, "%s/layer", dir) < 0)
		return ab_error_set(err, ENOMEM, "cannot read the changes of '%s'", ws->name);
	if (mkdir(dir, 0700) < 0)
		return ab_error_set(err, errno, "cannot create '%s'", dir);
	/* Links, not copies: upper does not change while a run lasts (its changes go to the
	 * layer), and the layer's files are read as they are now, as a diff of a running
	 * sandbox always read them. */
	if ((r = ab_layer_link_tree(ws->upper, upper, err)) < 0 || (r = ab_layer_link_tree(ws->layer, layer, err)) < 0 ||
	    (r = ab_layer_fold(layer, upper, ws->project, err)) < 0) {
		(void)ab_remove_tree(AT_FDCWD, dir, false);
		return r;
	}
	*view = TAKE_PTR(upper);
	return 0;
}

void ab_layer_view_release(const struct ab_workspace *ws, char *view)
{
	if (view && strcmp(view, ws->upper) != 0) {
		char *slash = strrchr(view, '/');
		if (slash) {
			*slash = '\0';
			(void)ab_remove_tree(AT_FDCWD, view, false);
		}
	}
	free(view);
}

/* ---- recovery ---- */

static int remove_views(const char *name, unsigned char d_type, void *data)
{
	(void)d_type;
	if (ab_startswith(name, "view-"))
		(void)ab_remove_tree(*(int *)data, name, false);
	return 0;
}

int ab_layer_recover(struct ab_workspace *ws, bool have_views, struct ab_error *err)
{
	int r;

	ws->layer_empty = false;
	if (have_views) {
		_cleanup_close_ int dfd = open(ws->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd >= 0)
			(void)ab_dir_for_each(dfd, remove_views, &dfd);
	}
	r = ab_layer_is_empty(ws->layer);
	if (r == -ENOENT) {
		struct stat us;
		if (stat(ws->upper, &us) < 0)
			return ab_error_set(err, errno, "cannot inspect '%s'", ws->upper);
		if (mkdir(ws->layer, 0700) < 0 && errno != EEXIST)
			return ab_error_set(err, errno, "cannot create '%s'", ws->layer);
		/* The sandbox sees its workspace's root as the layer's: as upper's until now. */
		if (chmod(ws->layer, us.st_mode & 07777) < 0 ||
		    (lchown(ws->layer, us.st_uid, us.st_gid) < 0 && errno != EPERM))
			return ab_error_set(err, errno, "cannot prepare '%s'", ws->layer);
		ws->layer_empty = true;
		return 0;
	}
	if (r < 0)
		return ab_error_set(err, -r, "cannot read '%s'", ws->layer);
	if (r == 0) {
		/* A run whose agentbox was killed leaves its init ending: the layer is its
		 * mount's upper until then. */
		ab_workspace_wait_last_init(ws);
		/* upper changes: its record goes first, so that an interruption here is never
		 * taken for the recorded state. */
		if ((r = ab_workspace_recorded_forget(ws)) < 0)
			return ab_error_set(err, -r, "cannot void '%s/recorded'", ws->dir);
		if ((r = ab_layer_fold(ws->layer, ws->upper, ws->project, err)) < 0)
			return r;
	}
	ws->layer_empty = true;
	return 0;
}
