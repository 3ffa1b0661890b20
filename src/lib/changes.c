/* What an overlayfs upper directory changes in the project beneath it.
 *
 * The upper directory is read the way overlayfs itself reads it (rootless mounts with
 * "userxattr", so the markers are in the user.overlay.* namespace):
 *   - a 0:0 character device, or a regular file with "user.overlay.whiteout", is a
 *     whiteout: the project entry there is deleted (a directory with all beneath it);
 *   - a directory with "user.overlay.opaque" = "y" hides the project's directory: project
 *     entries beneath it that upper lacks are deleted ("x" means something else, see the
 *     kernel's overlayfs docs, and is not opaque);
 *   - a directory with "user.overlay.redirect" (a renamed directory, only with
 *     redirect_dir=on) is treated as opaque: its content is what upper holds, and entries
 *     merged from the redirect's origin are not seen; a rename shows as delete + add;
 *   - a regular file with "user.overlay.metacopy" has no data of its own: its content is
 *     the project's, only its metadata is compared.
 * Everything is opened with openat(O_NOFOLLOW) relative to the two roots; no symlink is
 * ever followed, link targets are read with readlinkat. Each directory level holds two
 * descriptors while its children are walked. */
#include "workspace.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sha2.h> /* libmd: SHA-256 without a crypto library's start-up cost */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "../shared/strutil.h"

#define BINARY_PROBE 8192

struct collector {
	struct ab_change *v;
	size_t n, cap;
	char **filters; /* normalized: no leading "/" or "./", no trailing "/" */
	size_t n_filters;
	bool quick; /* no digests (ab_changes_collect_quick) */
	char *path; /* relative path of the entry being visited */
	size_t path_len, path_cap;
	struct ab_error *err;
};

static void filters_free(char **f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(f[i]);
	free(f);
}

void ab_changes_free(struct ab_change *changes, size_t n)
{
	if (!changes)
		return;
	for (size_t i = 0; i < n; i++) {
		free(changes[i].path);
		free(changes[i].old_link);
		free(changes[i].new_link);
	}
	free(changes);
}

/* ---- filters ---- */
static bool beneath(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return n == 0 || (strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/'));
}

static bool wanted(const struct collector *c)
{
	if (c->n_filters == 0)
		return true;
	for (size_t i = 0; i < c->n_filters; i++)
		if (beneath(c->path, c->filters[i]))
			return true;
	return false;
}

/* A directory is worth walking when it is wanted or holds something wanted. */
static bool may_descend(const struct collector *c)
{
	if (wanted(c))
		return true;
	for (size_t i = 0; i < c->n_filters; i++)
		if (beneath(c->filters[i], c->path))
			return true;
	return false;
}

static int filters_normalize(const char *const *in, size_t n, struct collector *c)
{
	c->filters = calloc(n + 1, sizeof(char *));
	if (!c->filters)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *f = in[i];
		size_t len;

		for (;;) {
			if (f[0] == '/')
				f++;
			else if (f[0] == '.' && (f[1] == '/' || f[1] == '\0'))
				f++;
			else
				break;
		}
		len = strlen(f);
		while (len > 0 && f[len - 1] == '/')
			len--;
		c->filters[i] = strndup(f, len);
		if (!c->filters[i])
			return -ENOMEM;
		c->n_filters++;
	}
	return 0;
}

/* ---- the path being visited ---- */
static int path_push(struct collector *c, const char *name, size_t *saved)
{
	size_t n = strlen(name), need = c->path_len + 1 + n + 1;

	if (need > c->path_cap) {
		size_t cap = c->path_cap ? c->path_cap * 2 : 256;
		char *p;
		while (cap < need)
			cap *= 2;
		p = realloc(c->path, cap);
		if (!p)
			return -ENOMEM;
		c->path = p;
		c->path_cap = cap;
	}
	*saved = c->path_len;
	if (c->path_len)
		c->path[c->path_len++] = '/';
	memcpy(c->path + c->path_len, name, n + 1);
	c->path_len += n;
	return 0;
}

static void path_pop(struct collector *c, size_t saved)
{
	c->path_len = saved;
	c->path[saved] = '\0';
}

/* ---- reading entries ---- */
static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in a directory (without "." and ".."), sorted, NULL-terminated. */
static int list_dir(int fd, char ***out, size_t *n)
{
	_cleanup_strv_free_ char **names = NULL;
	size_t count = 0;
	int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	DIR *d;
	struct dirent *de;

	if (dfd < 0)
		return -errno;
	if (lseek(dfd, 0, SEEK_SET) < 0) {
		int e = -errno;
		close(dfd);
		return e;
	}
	d = fdopendir(dfd);
	if (!d) {
		int e = -errno;
		close(dfd);
		return e;
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de)
			break;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (ab_strv_push(&names, &count, de->d_name) < 0) {
			closedir(d);
			return -ENOMEM;
		}
	}
	if (errno) {
		int e = -errno;
		closedir(d);
		return e;
	}
	closedir(d);
	if (count)
		qsort(names, count, sizeof(char *), cmp_names);
	*out = TAKE_PTR(names);
	*n = count;
	return 0;
}

/* SHA-256 of a regular file, and whether its first 8 KiB hold a NUL byte. */
static int file_digest(int dirfd, const char *name, unsigned char sha[32], bool *binary)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
							 O_CLOEXEC);
	SHA2_CTX ctx;
	char buf[65536];
	size_t seen = 0;
	struct stat st;
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADF; /* replaced while we looked */
	SHA256Init(&ctx);
	while (r == 0) {
		ssize_t got = read(fd, buf, sizeof(buf));
		if (got < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (got == 0)
			break;
		if (seen < BINARY_PROBE) {
			size_t probe = (size_t)got < BINARY_PROBE - seen ? (size_t)got : BINARY_PROBE - seen;
			if (memchr(buf, '\0', probe))
				*binary = true;
			seen += probe;
		}
		SHA256Update(&ctx, (const uint8_t *)buf, (size_t)got);
	}
	SHA256Final(sha, &ctx);
	return r;
}

/* Up to size bytes, fewer only at the end of the file; -1 on error. */
static ssize_t read_up_to(int fd, char *buf, size_t size)
{
	size_t got = 0;

	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Whether name holds the same bytes in both directories; false when either cannot be read. */
static bool same_bytes(int ufd, int pfd, const char *name)
{
	const int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
	_cleanup_close_ int a = openat(ufd, name, flags), b = openat(pfd, name, flags);
	char x[16384], y[16384];

	if (a < 0 || b < 0)
		return false;
	for (;;) {
		ssize_t n = read_up_to(a, x, sizeof(x)), m = read_up_to(b, y, sizeof(y));
		if (n < 0 || m != n || memcmp(x, y, (size_t)n) != 0)
			return false;
		if (n < (ssize_t)sizeof(x))
			return true;
	}
}

static int read_link(int dirfd, const char *name, char **out)
{
	char buf[4097];
	ssize_t n = readlinkat(dirfd, name, buf, sizeof(buf));

	if (n < 0)
		return -errno;
	if ((size_t)n >= sizeof(buf))
		return -ENAMETOOLONG;
	*out = strndup(buf, (size_t)n);
	return *out ? 0 : -ENOMEM;
}

/* The value of a user.overlay.* xattr of an open file: 0..n bytes, or -ENODATA. */
static ssize_t overlay_xattr(int fd, const char *name, char *buf, size_t size)
{
	ssize_t n = fgetxattr(fd, name, buf, size);

	if (n < 0 && (errno == ENOTSUP || errno == ERANGE))
		return errno == ERANGE ? 0 : -ENODATA;
	return n < 0 ? -errno : n;
}

bool ab_overlay_is_whiteout(int dirfd, const char *name, const struct stat *st)
{
	char v[8];

	if (S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0))
		return true;
	if (S_ISREG(st->st_mode) && st->st_size == 0) {
		_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
								    O_NOCTTY | O_CLOEXEC);
		return fd >= 0 && overlay_xattr(fd, "user.overlay.whiteout", v, sizeof(v)) >= 0;
	}
	return false;
}

static bool has_metacopy(int dirfd, const char *name)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
							 O_CLOEXEC);
	char v[64];

	return fd >= 0 && overlay_xattr(fd, "user.overlay.metacopy", v, sizeof(v)) >= 0;
}

static bool meta_differs(const struct stat *a, const struct stat *b)
{
	bool mode = !S_ISLNK(a->st_mode) && (a->st_mode & 07777) != (b->st_mode & 07777);

	return mode || a->st_uid != b->st_uid || a->st_gid != b->st_gid;
}

/* ---- recording ---- */
static int fail(struct collector *c, int r, const char *what, const char *root)
{
	return ab_error_set(c->err, r, "%s '%s%s%s'", what, root, c->path_len ? "/" : "", c->path);
}

/* Appends a change for c->path; fills the old side from `old` in dirfd `ofd`, the new side
 * from `new` in `nfd` (either may be NULL): modes, owners, sizes, link targets, digests. */
static int record(struct collector *c, enum ab_change_kind kind, int ofd, const char *name,
		  const struct stat *old, int nfd, const struct stat *new, struct ab_change **out)
{
	struct ab_change *ch;
	int r;

	if (c->n >= AB_MAX_CHANGES)
		return ab_error_set(c->err, E2BIG, "too many changes (more than %d)", AB_MAX_CHANGES);
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct ab_change *v = realloc(c->v, cap * sizeof(*v));
		if (!v)
			return ab_error_set(c->err, ENOMEM, "cannot list changes");
		c->v = v;
		c->cap = cap;
	}
	ch = &c->v[c->n];
	*ch = (struct ab_change){ .kind = kind };
	ch->path = strdup(c->path);
	if (!ch->path)
		return ab_error_set(c->err, ENOMEM, "cannot list changes");
	c->n++;
	if (old) {
		ch->old_mode = old->st_mode;
		ch->old_uid = old->st_uid;
		ch->old_gid = old->st_gid;
		ch->old_size = S_ISDIR(old->st_mode) ? 0 : (uint64_t)old->st_size;
		if (S_ISREG(old->st_mode) && !c->quick &&
		    (r = file_digest(ofd, name, ch->old_sha256, &ch->binary)) < 0)
			return fail(c, r, "cannot read", "project");
		if (S_ISLNK(old->st_mode) && (r = read_link(ofd, name, &ch->old_link)) < 0)
			return fail(c, r, "cannot read link", "project");
	}
	if (new) {
		ch->new_mode = new->st_mode;
		ch->new_uid = new->st_uid;
		ch->new_gid = new->st_gid;
		ch->new_size = S_ISDIR(new->st_mode) ? 0 : (uint64_t)new->st_size;
		if (S_ISREG(new->st_mode) && !c->quick &&
		    (r = file_digest(nfd, name, ch->new_sha256, &ch->binary)) < 0)
			return fail(c, r, "cannot read", "upper");
		if (S_ISLNK(new->st_mode) && (r = read_link(nfd, name, &ch->new_link)) < 0)
			return fail(c, r, "cannot read link", "upper");
	}
	if (out)
		*out = ch;
	return 0;
}

static int delete_children(struct collector *c, int pdirfd);

/* The project entry `name` (at c->path) is gone: it, and all beneath it when a directory. */
static int delete_tree(struct collector *c, int pfd, const char *name, const struct stat *ps)
{
	_cleanup_close_ int dfd = -1;
	int r;

	if (wanted(c) && (r = record(c, AB_CHANGE_DELETED, pfd, name, ps, -1, NULL, NULL)) < 0)
		return r;
	if (!S_ISDIR(ps->st_mode) || !may_descend(c))
		return 0;
	dfd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return fail(c, -errno, "cannot open", "project");
	return delete_children(c, dfd);
}

static int delete_children(struct collector *c, int pdirfd)
{
	_cleanup_strv_free_ char **names = NULL;
	size_t n = 0;
	int r = list_dir(pdirfd, &names, &n);

	if (r < 0)
		return fail(c, r, "cannot list", "project");
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		size_t saved;

		if (path_push(c, names[i], &saved) < 0)
			return ab_error_set(c->err, ENOMEM, "cannot list changes");
		if (fstatat(pdirfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			r = fail(c, -errno, "cannot stat", "project");
		else
			r = delete_tree(c, pdirfd, names[i], &st);
		path_pop(c, saved);
		if (r < 0)
			return r;
	}
	return 0;
}

static int walk_dir(struct collector *c, int ufd, int pfd, bool opaque);

static int visit_dir(struct collector *c, int ufd, int pfd, const char *name, bool have_p,
		     const struct stat *us, const struct stat *ps)
{
	_cleanup_close_ int cu = -1, cp = -1;
	bool opaque = false;
	char v[8];
	int r;

	if (!may_descend(c))
		return 0;
	cu = openat(ufd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cu < 0)
		return fail(c, -errno, "cannot open", "upper");
	r = (int)overlay_xattr(cu, "user.overlay.opaque", v, sizeof(v));
	opaque = r == 1 && v[0] == 'y';
	if (overlay_xattr(cu, "user.overlay.redirect", NULL, 0) >= 0)
		opaque = true;
	if (!have_p) {
		if (wanted(c) && (r = record(c, AB_CHANGE_ADDED, -1, name, NULL, ufd, us, NULL)) < 0)
			return r;
	} else if (!S_ISDIR(ps->st_mode)) {
		if (wanted(c) && (r = record(c, AB_CHANGE_TYPE, pfd, name, ps, ufd, us, NULL)) < 0)
			return r;
	} else {
		if (wanted(c) && meta_differs(ps, us) &&
		    (r = record(c, AB_CHANGE_META, pfd, name, ps, ufd, us, NULL)) < 0)
			return r;
		cp = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cp < 0)
			return fail(c, -errno, "cannot open", "project");
	}
	return walk_dir(c, cu, cp, opaque);
}

static int visit(struct collector *c, int ufd, int pfd, const char *name)
{
	struct stat us, ps;
	bool have_p = false, same;
	struct ab_change *ch;
	int r;

	if (fstatat(ufd, name, &us, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(c, -errno, "cannot stat", "upper");
	if (pfd >= 0) {
		if (fstatat(pfd, name, &ps, AT_SYMLINK_NOFOLLOW) == 0)
			have_p = true;
		else if (errno != ENOENT && errno != ENOTDIR)
			return fail(c, -errno, "cannot stat", "project");
	}
	if (ab_overlay_is_whiteout(ufd, name, &us))
		return have_p ? delete_tree(c, pfd, name, &ps) : 0;
	if (S_ISDIR(us.st_mode))
		return visit_dir(c, ufd, pfd, name, have_p, &us, &ps);
	if (!wanted(c) && !(have_p && S_ISDIR(ps.st_mode) && may_descend(c)))
		return 0;
	if (!have_p)
		return record(c, AB_CHANGE_ADDED, -1, name, NULL, ufd, &us, NULL);
	if ((us.st_mode & S_IFMT) != (ps.st_mode & S_IFMT)) {
		/* A directory replaced by a file takes everything beneath it along. */
		if (wanted(c) && (r = record(c, AB_CHANGE_TYPE, pfd, name, &ps, ufd, &us, NULL)) < 0)
			return r;
		if (S_ISDIR(ps.st_mode)) {
			_cleanup_close_ int cp = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
									   O_CLOEXEC);
			if (cp < 0)
				return fail(c, -errno, "cannot open", "project");
			return delete_children(c, cp);
		}
		return 0;
	}
	if (S_ISREG(us.st_mode) && has_metacopy(ufd, name)) {
		/* Only metadata was copied up: the data is the project's. */
		if (!meta_differs(&ps, &us))
			return 0;
		r = record(c, AB_CHANGE_META, pfd, name, &ps, -1, NULL, &ch);
		if (r < 0)
			return r;
		ch->new_mode = us.st_mode;
		ch->new_uid = us.st_uid;
		ch->new_gid = us.st_gid;
		ch->new_size = ch->old_size;
		memcpy(ch->new_sha256, ch->old_sha256, sizeof(ch->new_sha256));
		return 0;
	}
	/* Record, then drop it again when nothing but the copy-up happened. */
	if (S_ISREG(us.st_mode) || S_ISLNK(us.st_mode) || S_ISCHR(us.st_mode) ||
	    S_ISBLK(us.st_mode) || S_ISFIFO(us.st_mode) || S_ISSOCK(us.st_mode)) {
		r = record(c, AB_CHANGE_MODIFIED, pfd, name, &ps, ufd, &us, &ch);
		if (r < 0)
			return r;
		if (c->quick && S_ISREG(us.st_mode)) {
			/* Kept either way: the caller wants every path the sandbox holds. A copy-up
			 * keeps the size and mtime; an edit nearly always moves one of them, and
			 * only same-size files written since (apply's own copies among them) are
			 * compared, byte for byte. */
			bool same_time = us.st_mtim.tv_sec == ps.st_mtim.tv_sec &&
					 us.st_mtim.tv_nsec == ps.st_mtim.tv_nsec;
			ch->maybe_same = us.st_size == ps.st_size && !meta_differs(&ps, &us) &&
					 (same_time || same_bytes(ufd, pfd, name));
			return 0;
		}
		if (S_ISREG(us.st_mode))
			same = ch->old_size == ch->new_size &&
			       memcmp(ch->old_sha256, ch->new_sha256, sizeof(ch->old_sha256)) == 0;
		else if (S_ISLNK(us.st_mode))
			same = strcmp(ch->old_link, ch->new_link) == 0;
		else
			same = us.st_rdev == ps.st_rdev;
		if (same && meta_differs(&ps, &us)) {
			ch->kind = AB_CHANGE_META;
		} else if (same) {
			c->n--;
			free(ch->path);
			free(ch->old_link);
			free(ch->new_link);
		}
	}
	return 0;
}

static int walk_dir(struct collector *c, int ufd, int pfd, bool opaque)
{
	_cleanup_strv_free_ char **names = NULL, **pnames = NULL;
	size_t n = 0, pn = 0, saved;
	int r = list_dir(ufd, &names, &n);

	if (r < 0)
		return fail(c, r, "cannot list", "upper");
	for (size_t i = 0; i < n; i++) {
		if (path_push(c, names[i], &saved) < 0)
			return ab_error_set(c->err, ENOMEM, "cannot list changes");
		r = visit(c, ufd, pfd, names[i]);
		path_pop(c, saved);
		if (r < 0)
			return r;
	}
	if (!opaque || pfd < 0)
		return 0;
	r = list_dir(pfd, &pnames, &pn);
	if (r < 0)
		return fail(c, r, "cannot list", "project");
	for (size_t i = 0; i < pn; i++) {
		struct stat st;

		if (n && bsearch(&pnames[i], names, n, sizeof(char *), cmp_names))
			continue;
		if (path_push(c, pnames[i], &saved) < 0)
			return ab_error_set(c->err, ENOMEM, "cannot list changes");
		if (fstatat(pfd, pnames[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			r = fail(c, -errno, "cannot stat", "project");
		else
			r = delete_tree(c, pfd, pnames[i], &st);
		path_pop(c, saved);
		if (r < 0)
			return r;
	}
	return 0;
}

static int cmp_changes(const void *a, const void *b)
{
	return strcmp(((const struct ab_change *)a)->path, ((const struct ab_change *)b)->path);
}

static int collect(const char *upper, const char *project, const char *const *filters,
		   size_t n_filters, bool quick, struct ab_change **out, size_t *n, struct ab_error *err)
{
	struct collector c = { .err = err, .quick = quick };
	_cleanup_close_ int ufd = -1, pfd = -1;
	char v[8];
	bool opaque;
	int r;

	*out = NULL;
	*n = 0;
	ufd = open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ufd < 0)
		return ab_error_set(err, errno, "cannot open upper directory '%s'", upper);
	pfd = open(project, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0)
		return ab_error_set(err, errno, "cannot open project '%s'", project);
	if (filters_normalize(filters, n_filters, &c) < 0) {
		filters_free(c.filters, c.n_filters);
		return ab_error_set(err, ENOMEM, "cannot list changes");
	}
	c.path = calloc(1, 256);
	c.path_cap = 256;
	if (!c.path) {
		filters_free(c.filters, c.n_filters);
		return ab_error_set(err, ENOMEM, "cannot list changes");
	}
	opaque = overlay_xattr(ufd, "user.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y';
	r = walk_dir(&c, ufd, pfd, opaque);
	free(c.path);
	filters_free(c.filters, c.n_filters);
	if (r < 0) {
		ab_changes_free(c.v, c.n);
		return r;
	}
	if (c.n)
		qsort(c.v, c.n, sizeof(*c.v), cmp_changes);
	*out = c.v;
	*n = c.n;
	return 0;
}

int ab_changes_collect(const char *upper, const char *project, const char *const *filters,
		       size_t n_filters, struct ab_change **out, size_t *n, struct ab_error *err)
{
	return collect(upper, project, filters, n_filters, false, out, n, err);
}

int ab_changes_collect_quick(const char *upper, const char *project, struct ab_change **out,
			     size_t *n, struct ab_error *err)
{
	return collect(upper, project, NULL, 0, true, out, n, err);
}
