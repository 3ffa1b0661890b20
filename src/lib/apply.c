#include "apply.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "../shared/strutil.h"
#include "apply-policy.h"
#include "merge.h"
#include "textdiff.h"

#define MAX_MERGE_BYTES (8u << 20)   /* larger files are not merged: a conflict */
#define MAX_APPLIED_BYTES (64u << 20) /* MANIFEST.applied */

/* ---- paths beneath a root, never through a symlink ---- */

static int openat2_state; /* 0 unknown, 1 works, -1 missing (ENOSYS) or filtered */

static int open_beneath(int dirfd, const char *rel, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd;

	if (openat2_state >= 0) {
		fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
		if (fd >= 0 || (errno != ENOSYS && errno != EPERM)) {
			openat2_state = 1;
			return fd < 0 ? -errno : fd;
		}
		if (openat2_state == 0)
			openat2_state = -1;
		else
			return -errno;
	}
	/* Without openat2 the callers only ever pass one component (see walk_component). */
	if (strchr(rel, '/') || strcmp(rel, "..") == 0)
		return -EINVAL;
	fd = openat(dirfd, rel, flags | O_CLOEXEC | O_NOFOLLOW);
	return fd < 0 ? -errno : fd;
}

static bool valid_relpath(const char *rel)
{
	if (!rel[0] || rel[0] == '/')
		return false;
	for (const char *p = rel;;) {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (!p[n])
			return true;
		p += n + 1;
	}
}

/* One directory component beneath dirfd, made with dmode when missing and create is set. */
static int walk_component(int dirfd, const char *comp, bool create, mode_t dmode)
{
	for (int tries = 0; tries < 2; tries++) {
		int fd = open_beneath(dirfd, comp, O_PATH | O_DIRECTORY);
		struct stat st;

		if (fd >= 0) {
			/* O_PATH|O_NOFOLLOW opens a symlink itself: make sure it is a directory. */
			if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode)) {
				close(fd);
				return S_ISLNK(st.st_mode) ? -ELOOP : -ENOTDIR;
			}
			return fd;
		}
		if (fd != -ENOENT || !create)
			return fd;
		if (mkdirat(dirfd, comp, dmode) < 0 && errno != EEXIST)
			return -errno;
	}
	return -ENOENT;
}

/* Opens (O_PATH) the directory that holds rel beneath rootfd; *name is rel's last
 * component. With create, missing directories are made with dmode. ELOOP or ENOTDIR
 * when a parent is a symlink or not a directory. */
static int open_parent(int rootfd, const char *rel, bool create, mode_t dmode, const char **name)
{
	const char *slash = strrchr(rel, '/');
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int cur = -1;
	int fd;

	if (!valid_relpath(rel))
		return -EINVAL;
	*name = slash ? slash + 1 : rel;
	if (!slash) {
		fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
		return fd < 0 ? -errno : fd;
	}
	dir = strndup(rel, (size_t)(slash - rel));
	if (!dir)
		return -ENOMEM;
	if (openat2_state >= 0) {
		fd = open_beneath(rootfd, dir, O_PATH | O_DIRECTORY);
		if (fd >= 0 || (fd != -ENOENT && openat2_state > 0) || (fd == -ENOENT && !create))
			return fd;
	}
	cur = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
	if (cur < 0)
		return -errno;
	for (char *comp = dir, *next; comp; comp = next) {
		next = strchr(comp, '/');
		if (next)
			*next++ = '\0';
		fd = walk_component(cur, comp, create, dmode);
		if (fd < 0)
			return fd;
		close(cur);
		cur = fd;
	}
	return TAKE_FD(cur);
}

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* lstat of rel beneath rootfd; -ENOENT also when a parent is not a directory or a symlink. */
static int stat_beneath(int rootfd, const char *rel, struct stat *st)
{
	const char *name;
	_cleanup_close_ int pfd = open_parent(rootfd, rel, false, 0, &name);

	if (pfd == -ELOOP || pfd == -ENOTDIR)
		return -ENOENT;
	if (pfd < 0)
		return pfd;
	if (fstatat(pfd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

static int open_file_beneath(int rootfd, const char *rel, struct stat *st)
{
	const char *name;
	_cleanup_close_ int pfd = open_parent(rootfd, rel, false, 0, &name);
	_cleanup_close_ int fd = -1;

	if (pfd < 0)
		return pfd;
	fd = openat(pfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0)
		return -errno;
	if (!S_ISREG(st->st_mode))
		return -EINVAL;
	return TAKE_FD(fd);
}

static int read_beneath(int rootfd, const char *rel, size_t max, char **out, size_t *len)
{
	struct stat st;
	_cleanup_close_ int fd = open_file_beneath(rootfd, rel, &st);

	if (fd < 0)
		return fd;
	return ab_read_fd(fd, max, out, len);
}

static int read_link_beneath(int rootfd, const char *rel, char *buf, size_t size)
{
	const char *name;
	_cleanup_close_ int pfd = open_parent(rootfd, rel, false, 0, &name);
	ssize_t n;

	if (pfd < 0)
		return pfd;
	n = readlinkat(pfd, name, buf, size - 1);
	if (n < 0)
		return -errno;
	if ((size_t)n >= size - 1)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	return 0;
}

static int copy_fd(int from, int to)
{
	char buf[65536];

	for (;;) {
		ssize_t n = read(from, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		int r = ab_write_all(to, buf, (size_t)n);
		if (r < 0)
			return r;
	}
}

static int same_content_fd(int a, int b)
{
	char x[32768], y[32768];

	for (;;) {
		ssize_t n = read(a, x, sizeof(x));
		if (n < 0)
			return -errno;
		size_t got = 0;
		while (got < (size_t)n) {
			ssize_t m = read(b, y + got, (size_t)n - got);
			if (m < 0)
				return -errno;
			if (m == 0)
				return 0;
			got += (size_t)m;
		}
		if (memcmp(x, y, (size_t)n) != 0)
			return 0;
		if (n == 0)
			return read(b, y, 1) == 0;
	}
}

/* A fresh name next to the target: "NAME.agentbox-XXXXXX". */
static int temp_name(const char *name, char *buf, size_t size)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[6];

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -EIO;
	int n = snprintf(buf, size, "%.200s.agentbox-", name);
	if (n < 0 || (size_t)n + sizeof(rnd) >= size)
		return -ENAMETOOLONG;
	for (size_t i = 0; i < sizeof(rnd); i++)
		buf[n + (int)i] = chars[rnd[i] % (sizeof(chars) - 1)];
	buf[n + (int)sizeof(rnd)] = '\0';
	return 0;
}

static void fsync_dir(int pfd)
{
	_cleanup_close_ int fd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		(void)fsync(fd);
}

/* Who owns what we create: as root, the owner of what is replaced, else of the directory. */
static void owner_for(int pfd, const char *name, uid_t *uid, gid_t *gid)
{
	struct stat st;

	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (geteuid() != 0)
		return;
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 || fstat(pfd, &st) == 0) {
		*uid = st.st_uid;
		*gid = st.st_gid;
	}
}

/* Writes data (or the content of src_fd) as pfd/name: temp file, fsync, rename. */
static int replace_file(int pfd, const char *name, int src_fd, const char *data, size_t len, mode_t mode)
{
	char tmp[NAME_MAX + 1] = "";
	_cleanup_close_ int fd = -1;
	uid_t uid;
	gid_t gid;
	int r;

	owner_for(pfd, name, &uid, &gid);
	/* The content is written to an unnamed file (O_TMPFILE) and only given a name once it
	 * is complete and synced: an apply killed while writing leaves nothing behind. Where
	 * the filesystem has no O_TMPFILE, a named temporary file does the same job. */
	bool unnamed = true;
	fd = openat(pfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0) {
		unnamed = false;
		for (int tries = 0;; tries++) {
			if ((r = temp_name(name, tmp, sizeof(tmp))) < 0)
				return r;
			fd = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
			if (fd >= 0)
				break;
			if (errno != EEXIST || tries > 16)
				return -errno;
		}
	}
	r = src_fd >= 0 ? copy_fd(src_fd, fd) : ab_write_all(fd, data, len);
	if (r >= 0 && uid != (uid_t)-1 && fchown(fd, uid, gid) < 0)
		r = -errno;
	if (r >= 0 && fchmod(fd, mode & 0777) < 0) /* setuid, setgid and sticky never travel */
		r = -errno;
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	if (r >= 0 && unnamed) {
		char self[64];
		snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
		for (int tries = 0;; tries++) {
			if ((r = temp_name(name, tmp, sizeof(tmp))) < 0)
				return r;
			if (linkat(AT_FDCWD, self, pfd, tmp, AT_SYMLINK_FOLLOW) == 0)
				break;
			if (errno != EEXIST || tries > 16)
				return -errno;
		}
	}
	if (r >= 0 && renameat(pfd, tmp, pfd, name) < 0)
		r = -errno;
	if (r < 0) {
		if (tmp[0])
			unlinkat(pfd, tmp, 0);
		return r;
	}
	fsync_dir(pfd);
	return 0;
}

static int replace_symlink(int pfd, const char *name, const char *target)
{
	char tmp[NAME_MAX + 1];
	uid_t uid;
	gid_t gid;
	int r;

	owner_for(pfd, name, &uid, &gid);
	for (int tries = 0;; tries++) {
		if ((r = temp_name(name, tmp, sizeof(tmp))) < 0)
			return r;
		if (symlinkat(target, pfd, tmp) == 0)
			break;
		if (errno != EEXIST || tries > 16)
			return -errno;
	}
	if ((uid != (uid_t)-1 && fchownat(pfd, tmp, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) ||
	    renameat(pfd, tmp, pfd, name) < 0) {
		r = -errno;
		unlinkat(pfd, tmp, 0);
		return r;
	}
	fsync_dir(pfd);
	return 0;
}

static int make_dir(int pfd, const char *name, mode_t mode)
{
	struct stat st;
	uid_t uid;
	gid_t gid;

	owner_for(pfd, name, &uid, &gid);
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode) &&
	    unlinkat(pfd, name, 0) < 0)
		return -errno;
	if (mkdirat(pfd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	_cleanup_close_ int fd = open_beneath(pfd, name, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return fd;
	if (uid != (uid_t)-1 && fchown(fd, uid, gid) < 0)
		return -errno;
	if (fchmod(fd, mode & 0777) < 0)
		return -errno;
	fsync_dir(pfd);
	return 0;
}

/* ---- the baseline: MANIFEST.applied records over the manifest ---- */

struct baseline {
	struct ab_manifest_entry *manifest;
	size_t n_manifest;
	struct ab_manifest_entry *applied; /* sorted by path; mode 0: absent */
	size_t n_applied, cap_applied;
	char *applied_path;
};

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct ab_manifest_entry *)a)->path,
		      ((const struct ab_manifest_entry *)b)->path);
}

static struct ab_manifest_entry *applied_find(const struct baseline *bl, const char *path)
{
	struct ab_manifest_entry key = { .path = (char *)path };
	if (!bl->n_applied)
		return NULL;
	return bsearch(&key, bl->applied, bl->n_applied, sizeof(key), cmp_entry);
}

/* Records are "MODE SIZE MTIME_NS INO PATH\0", the path last so it may hold any byte. */
/* Room for one more record. */
static int applied_reserve(struct baseline *bl)
{
	if (bl->n_applied == bl->cap_applied) {
		size_t ncap = bl->cap_applied ? bl->cap_applied * 2 : 64;
		struct ab_manifest_entry *g = realloc(bl->applied, ncap * sizeof(*g));
		if (!g)
			return -ENOMEM;
		bl->applied = g;
		bl->cap_applied = ncap;
	}
	return 0;
}

static int applied_load(struct baseline *bl)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r = ab_read_file(bl->applied_path, MAX_APPLIED_BYTES, &buf, &len);

	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	for (size_t off = 0; off < len;) {
		char *rec = buf + off, *end = memchr(rec, '\0', len - off), *p;
		unsigned long long v[4];
		if (!end)
			return -EBADMSG;
		p = rec;
		for (int i = 0; i < 4; i++) {
			char *q;
			errno = 0;
			v[i] = strtoull(p, &q, 10);
			if (errno || q == p || *q != ' ')
				return -EBADMSG;
			p = q + 1;
		}
		if (applied_reserve(bl) < 0)
			return -ENOMEM;
		struct ab_manifest_entry *e = &bl->applied[bl->n_applied];
		*e = (struct ab_manifest_entry){ .mode = (mode_t)v[0], .size = v[1],
						 .mtime_ns = (int64_t)v[2], .ino = v[3], .path = strdup(p) };
		if (!e->path)
			return -ENOMEM;
		bl->n_applied++;
		off = (size_t)(end - buf) + 1;
	}
	if (bl->n_applied)
		qsort(bl->applied, bl->n_applied, sizeof(*bl->applied), cmp_entry);
	return 0;
}

/* Sets (or adds) the record for path: st, or absence when st is NULL. */
static int applied_set(struct baseline *bl, const char *path, const struct stat *st)
{
	struct ab_manifest_entry *e = applied_find(bl, path);
	struct ab_manifest_entry rec = { 0 };

	if (st)
		rec = (struct ab_manifest_entry){ .mode = st->st_mode, .size = (uint64_t)st->st_size,
						  .mtime_ns = mtime_ns(st), .ino = st->st_ino };
	if (e) {
		rec.path = e->path;
		*e = rec;
		return 0;
	}
	if (applied_reserve(bl) < 0)
		return -ENOMEM;
	rec.path = strdup(path);
	if (!rec.path)
		return -ENOMEM;
	bl->applied[bl->n_applied++] = rec;
	qsort(bl->applied, bl->n_applied, sizeof(*bl->applied), cmp_entry);
	return 0;
}

static int applied_save(const struct baseline *bl)
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_fclose_ FILE *f = NULL;
	int fd;

	if (asprintf(&tmp, "%s.tmp", bl->applied_path) < 0)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	for (size_t i = 0; i < bl->n_applied; i++) {
		const struct ab_manifest_entry *e = &bl->applied[i];
		fprintf(f, "%u %llu %lld %llu %s", (unsigned)e->mode, (unsigned long long)e->size,
			(long long)e->mtime_ns, (unsigned long long)e->ino, e->path);
		fputc('\0', f);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
		unlink(tmp);
		return -errno;
	}
	if (rename(tmp, bl->applied_path) < 0) {
		int r = -errno;
		unlink(tmp);
		return r;
	}
	return 0;
}

static void baseline_free(struct baseline *bl)
{
	ab_manifest_free(bl->manifest, bl->n_manifest);
	for (size_t i = 0; i < bl->n_applied; i++)
		free(bl->applied[i].path);
	free(bl->applied);
	free(bl->applied_path);
	*bl = (struct baseline){ 0 };
}

static int baseline_load(struct ab_workspace *ws, struct baseline *bl, struct ab_error *err)
{
	int r;

	*bl = (struct baseline){ 0 };
	if (asprintf(&bl->applied_path, "%s.applied", ws->manifest) < 0)
		return ab_error_set(err, ENOMEM, "cannot load the manifest of '%s'", ws->name);
	r = ab_manifest_load(ws->manifest, &bl->manifest, &bl->n_manifest, err);
	if (r < 0)
		return r;
	r = applied_load(bl);
	if (r < 0)
		return ab_error_set(err, -r, "cannot read '%s'", bl->applied_path);
	return 0;
}

/* The baseline entry of path, or NULL when the path was absent. */
static const struct ab_manifest_entry *baseline_find(const struct baseline *bl, const char *path)
{
	const struct ab_manifest_entry *e = applied_find(bl, path);

	if (e)
		return e->mode ? e : NULL;
	return ab_manifest_find(bl->manifest, bl->n_manifest, path);
}

/* Does the host's entry (st, or NULL when absent) still match the baseline? */
static bool matches_baseline(const struct ab_manifest_entry *e, const struct stat *st)
{
	if (!e || !st)
		return !e && !st;
	if ((e->mode & S_IFMT) != (st->st_mode & S_IFMT) || e->ino != st->st_ino)
		return false;
	/* A directory's size and mtime move with its entries, which are checked one by one. */
	if (S_ISDIR(st->st_mode))
		return true;
	return e->size == (uint64_t)st->st_size && e->mtime_ns == mtime_ns(st) &&
	       (S_ISLNK(st->st_mode) || e->mode == st->st_mode);
}

/* Shows a change to the user: a unified diff of the text, or the sizes. */
static void print_line_diff(FILE *out, const char *old, size_t nold, const char *new, size_t nnew)
{
	char *text = NULL;
	size_t len = 0;
	struct ab_textdiff_stats stats = { 0 };

	if (!ab_is_text(old, nold) || !ab_is_text(new, nnew)) {
		fprintf(out, "  binary content: %zu -> %zu bytes\n", nold, nnew);
		return;
	}
	if (ab_textdiff_unified_buf(old, nold, new, nnew, 3, &text, &len, &stats) < 0 || stats.too_large)
		fprintf(out, "  content: %zu -> %zu bytes (too large to show)\n", nold, nnew);
	else
		fwrite(text, 1, len, out);
	free(text);
}

/* ---- the apply itself ---- */

enum verdict {
	V_WRITE,     /* will be written */
	V_MERGE,     /* the merged content will be written */
	V_MASKED,
	V_REFUSED,
	V_CONFLICT,
	V_RISKY,     /* unconfirmed */
	V_DECLINED,
	V_NOOP,      /* only what is never applied differs: owner, setuid/setgid/sticky */
};

struct item {
	const struct ab_change *c;
	enum verdict v;
	const char *risk;
	bool forced;            /* a conflict overwritten by --force */
	struct ab_buf merged;
	size_t merge_conflicts;
};

struct ctx {
	struct ab_workspace *ws;
	const struct ab_apply_opts *o;
	struct ab_apply_result *res;
	int proj, upper, base; /* O_PATH directories; base -1 when missing */
	struct baseline bl;
	bool baseline_dirty;
};

static const char *kind_name(enum ab_change_kind k)
{
	switch (k) {
	case AB_CHANGE_ADDED: return "added";
	case AB_CHANGE_MODIFIED: return "modified";
	case AB_CHANGE_DELETED: return "deleted";
	case AB_CHANGE_META: return "mode changed";
	case AB_CHANGE_TYPE: return "type changed";
	}
	return "changed";
}

static void report(const struct ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(const struct ctx *x, const char *fmt, ...)
{
	va_list ap;

	if (!x->o->out)
		return;
	va_start(ap, fmt);
	vfprintf(x->o->out, fmt, ap);
	va_end(ap);
	fputc('\n', x->o->out);
}

static bool one_masked(const char *rel, const struct ab_apply_opts *o)
{
	const char *base = strrchr(rel, '/');

	base = base ? base + 1 : rel;
	for (size_t i = 0; i < o->n_masks; i++)
		if (fnmatch(o->masks[i], base, 0) == 0 || fnmatch(o->masks[i], rel, FNM_PATHNAME) == 0)
			return true;
	return false;
}

/* The path or any directory above it matches a mask. */
static bool is_masked(const char *path, const struct ab_apply_opts *o)
{
	_cleanup_free_ char *p = strdup(path);

	if (!p)
		return true; /* when in doubt, do not write */
	for (char *s = p + strlen(p);;) {
		*s = '\0';
		if (one_masked(p, o))
			return true;
		s = strrchr(p, '/');
		if (!s)
			return false;
	}
}

static bool special(mode_t m)
{
	return m && !S_ISREG(m) && !S_ISDIR(m) && !S_ISLNK(m);
}

/* With no baseline entry and the host holding the path: is it what the sandbox has? */
static bool host_same_as_upper(struct ctx *x, const struct ab_change *c, const struct stat *hst)
{
	struct stat ust;

	if (stat_beneath(x->upper, c->path, &ust) < 0 || (ust.st_mode & S_IFMT) != (hst->st_mode & S_IFMT))
		return false;
	if (S_ISDIR(ust.st_mode))
		return true;
	if (S_ISLNK(ust.st_mode)) {
		char a[PATH_MAX], b[PATH_MAX];
		return read_link_beneath(x->upper, c->path, a, sizeof(a)) == 0 &&
		       read_link_beneath(x->proj, c->path, b, sizeof(b)) == 0 && strcmp(a, b) == 0;
	}
	if (!S_ISREG(ust.st_mode) || ust.st_size != hst->st_size)
		return false;
	struct stat s1, s2;
	_cleanup_close_ int f1 = open_file_beneath(x->upper, c->path, &s1);
	_cleanup_close_ int f2 = open_file_beneath(x->proj, c->path, &s2);
	return f1 >= 0 && f2 >= 0 && same_content_fd(f1, f2) > 0;
}

static bool is_conflict(struct ctx *x, const struct ab_change *c)
{
	struct stat hst;
	int r = stat_beneath(x->proj, c->path, &hst);
	const struct ab_manifest_entry *e = baseline_find(&x->bl, c->path);

	if (r < 0 && r != -ENOENT)
		return true; /* cannot tell: do not overwrite blindly */
	if (matches_baseline(e, r == 0 ? &hst : NULL))
		return false;
	return !(!e && r == 0 && host_same_as_upper(x, c, &hst));
}

/* --merge for one conflicting change: fills it->merged when a 3-way merge is possible. */
static int try_merge(struct ctx *x, struct item *it)
{
	const struct ab_change *c = it->c;
	_cleanup_free_ char *base = NULL, *host = NULL, *sbx = NULL;
	size_t nbase, nhost, nsbx;
	int r;

	if (c->kind != AB_CHANGE_MODIFIED || !S_ISREG(c->new_mode) || !S_ISREG(c->old_mode) || x->base < 0)
		return -EINVAL;
	if ((r = read_beneath(x->base, c->path, MAX_MERGE_BYTES, &base, &nbase)) < 0 ||
	    (r = read_beneath(x->proj, c->path, MAX_MERGE_BYTES, &host, &nhost)) < 0 ||
	    (r = read_beneath(x->upper, c->path, MAX_MERGE_BYTES, &sbx, &nsbx)) < 0)
		return r;
	return ab_merge3(base, nbase, host, nhost, sbx, nsbx, &it->merged, &it->merge_conflicts);
}

/* Shows one change before the question in --interactive. */
static void show_change(struct ctx *x, const struct item *it)
{
	const struct ab_change *c = it->c;
	FILE *out = x->o->out;

	fprintf(out, "--- %s (%s)%s%s\n", c->path, kind_name(c->kind), it->risk ? ", risky: " : "",
		it->risk ? it->risk : "");
	if (c->old_mode != c->new_mode)
		fprintf(out, "  mode %o -> %o\n", (unsigned)c->old_mode, (unsigned)c->new_mode);
	if (c->old_link || c->new_link)
		fprintf(out, "  link '%s' -> '%s'\n", c->old_link ? c->old_link : "",
			c->new_link ? c->new_link : "");
	if (!(S_ISREG(c->old_mode) || S_ISREG(c->new_mode)) || c->kind == AB_CHANGE_META)
		return;
	_cleanup_free_ char *old = NULL, *new = NULL;
	size_t nold = 0, nnew = 0;
	if (S_ISREG(c->old_mode) && read_beneath(x->proj, c->path, MAX_MERGE_BYTES, &old, &nold) < 0)
		return;
	if (it->v == V_MERGE) {
		print_line_diff(out, old ? old : "", nold, it->merged.data, it->merged.len);
		return;
	}
	if (S_ISREG(c->new_mode) && read_beneath(x->upper, c->path, MAX_MERGE_BYTES, &new, &nnew) < 0) {
		fprintf(out, "  content: %llu bytes\n", (unsigned long long)c->new_size);
		return;
	}
	print_line_diff(out, old ? old : "", nold, new ? new : "", nnew);
}

/* 1 yes, 0 no, -1 quit (also at end of input). */
static int ask(struct ctx *x, const char *path)
{
	char line[64];

	for (;;) {
		if (x->o->out) {
			fprintf(x->o->out, "apply %s? [y,n,q] ", path);
			fflush(x->o->out);
		}
		if (!x->o->in || !fgets(line, sizeof(line), x->o->in))
			return -1;
		switch (line[0]) {
		case 'y': case 'Y': return 1;
		case 'n': case 'N': return 0;
		case 'q': case 'Q': return -1;
		default: break;
		}
	}
}

/* Keeps base/PATH equal to what the host now holds at PATH (regular files only). */
static void base_update(struct ctx *x, const char *path, int src_root)
{
	const char *name;
	struct stat st;

	if (x->base < 0)
		return;
	_cleanup_close_ int pfd = open_parent(x->base, path, src_root >= 0, 0700, &name);
	if (pfd < 0)
		return;
	(void)unlinkat(pfd, name, 0);
	if (src_root < 0)
		return;
	_cleanup_close_ int src = open_file_beneath(src_root, path, &st);
	if (src >= 0 && replace_file(pfd, name, src, NULL, 0, 0600) < 0)
		(void)unlinkat(pfd, name, 0);
}

static int record(struct ctx *x, const char *path)
{
	struct stat st;
	int r = stat_beneath(x->proj, path, &st);

	if (r < 0 && r != -ENOENT)
		return r;
	x->baseline_dirty = true;
	return applied_set(&x->bl, path, r == 0 ? &st : NULL);
}

/* Removes the host entry (a directory only when empty). 1 when kept because not empty. */
static int remove_entry(struct ctx *x, const char *path)
{
	const char *name;
	struct stat st;
	_cleanup_close_ int pfd = open_parent(x->proj, path, false, 0, &name);

	if (pfd == -ENOENT || pfd == -ENOTDIR)
		return 0; /* already gone with its parent */
	if (pfd < 0)
		return pfd;
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (unlinkat(pfd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0)
		return errno == ENOTEMPTY || errno == EEXIST ? 1 : -errno;
	fsync_dir(pfd);
	return 0;
}

/* Writes the new side of a change to the host. */
static int write_entry(struct ctx *x, struct item *it)
{
	const struct ab_change *c = it->c;
	const char *name, *uname;
	struct stat ust, hst;
	mode_t dmode = 0755;
	int r;

	/* Missing parents get the mode they have in the sandbox. */
	{
		_cleanup_free_ char *dir = strdup(c->path);
		char *slash = dir ? strrchr(dir, '/') : NULL;
		if (!dir)
			return -ENOMEM;
		if (slash) {
			*slash = '\0';
			if (stat_beneath(x->upper, dir, &ust) == 0 && S_ISDIR(ust.st_mode))
				dmode = ust.st_mode & 0777;
		}
	}
	_cleanup_close_ int pfd = open_parent(x->proj, c->path, true, dmode, &name);
	if (pfd < 0)
		return pfd;
	_cleanup_close_ int upfd = open_parent(x->upper, c->path, false, 0, &uname);
	if (upfd < 0)
		return upfd;
	if (fstatat(upfd, uname, &ust, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;

	if (it->v == V_MERGE) {
		r = replace_file(pfd, name, -1, it->merged.data, it->merged.len, ust.st_mode);
		/* The sandbox gets the merged file too, so a later apply keeps the host's half. */
		if (r >= 0)
			r = replace_file(upfd, uname, -1, it->merged.data, it->merged.len, ust.st_mode);
		return r;
	}
	if (c->kind == AB_CHANGE_META) {
		if (fstatat(pfd, name, &hst, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		if (S_ISLNK(hst.st_mode))
			return 0; /* a symlink's mode means nothing */
		if (fchmodat(pfd, name, ust.st_mode & 0777, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		return 0;
	}
	if (S_ISREG(ust.st_mode)) {
		_cleanup_close_ int src = openat(upfd, uname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		struct stat sst;
		if (src < 0)
			return -errno;
		if (fstat(src, &sst) < 0 || !S_ISREG(sst.st_mode))
			return -EINVAL;
		return replace_file(pfd, name, src, NULL, 0, ust.st_mode);
	}
	if (S_ISLNK(ust.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(upfd, uname, target, sizeof(target) - 1);
		if (n < 0)
			return -errno;
		target[n] = '\0';
		if (fstatat(pfd, name, &hst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(hst.st_mode))
			return -EISDIR;
		return replace_symlink(pfd, name, target);
	}
	if (S_ISDIR(ust.st_mode))
		return make_dir(pfd, name, ust.st_mode);
	return -EINVAL;
}

static int classify(struct ctx *x, struct item *items, size_t n, struct ab_error *err)
{
	size_t conflicts = 0;

	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];
		const struct ab_change *c = it->c;

		it->risk = ab_apply_risk(c);
		if (is_masked(c->path, x->o)) {
			it->v = V_MASKED;
			continue;
		}
		if (c->kind != AB_CHANGE_DELETED && special(c->new_mode)) {
			it->v = V_REFUSED;
			continue;
		}
		if (c->kind == AB_CHANGE_META &&
		    (c->old_mode & (S_IFMT | 0777)) == (c->new_mode & (S_IFMT | 0777))) {
			it->v = V_NOOP;
			continue;
		}
		if (!is_conflict(x, c))
			continue;
		if (x->o->merge && try_merge(x, it) >= 0) {
			it->v = V_MERGE;
			continue;
		}
		if (x->o->force) {
			it->forced = true;
			continue;
		}
		it->v = V_CONFLICT;
		conflicts++;
	}
	if (conflicts) {
		for (size_t i = 0; i < n; i++)
			if (items[i].v == V_CONFLICT)
				report(x, "conflict: '%s' changed on the host since the sandbox started from it; "
					  "use --force to overwrite or --merge to merge", items[i].c->path);
		x->res->conflicts = conflicts;
		ab_error_set(err, 0, "%zu change%s conflict%s with edits on the host; nothing was applied",
			     conflicts, conflicts == 1 ? "" : "s", conflicts == 1 ? "s" : "");
		return -EBUSY;
	}
	return 0;
}

static void confirm(struct ctx *x, struct item *items, size_t n)
{
	bool quit = false;

	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];
		if (it->v != V_WRITE && it->v != V_MERGE)
			continue;
		if (x->o->interactive) {
			int a = 0;
			if (!quit) {
				if (x->o->out)
					show_change(x, it);
				a = ask(x, it->c->path);
			}
			if (a < 0)
				quit = true;
			if (a <= 0)
				it->v = it->risk ? V_RISKY : V_DECLINED;
		} else if (it->risk && !x->o->yes) {
			it->v = V_RISKY;
		}
	}
}

static int apply_one(struct ctx *x, struct item *it, bool removal_phase, struct ab_error *err)
{
	const struct ab_change *c = it->c;
	bool old_dir_goes = c->kind == AB_CHANGE_TYPE && S_ISDIR(c->old_mode) && !S_ISDIR(c->new_mode);
	int r;

	if (removal_phase) {
		if (c->kind != AB_CHANGE_DELETED && !old_dir_goes)
			return 0;
		r = remove_entry(x, c->path);
		if (r == 1) {
			x->res->skipped++;
			it->v = V_DECLINED; /* nothing can replace it either */
			report(x, "kept: '%s': the directory on the host is not empty", c->path);
			return 0;
		}
		if (r < 0)
			return ab_error_set(err, -r, "cannot remove '%s' from the project", c->path);
		if (c->kind == AB_CHANGE_DELETED) {
			x->res->applied++;
			report(x, "deleted: '%s'", c->path);
			base_update(x, c->path, -1);
			return record(x, c->path) < 0 ? ab_error_set(err, ENOMEM, "cannot record '%s'", c->path) : 0;
		}
		return 0;
	}
	if (c->kind == AB_CHANGE_DELETED)
		return 0;
	r = write_entry(x, it);
	if (r == -ELOOP || r == -ENOTDIR || r == -EISDIR) {
		x->res->refused++;
		report(x, "refused: '%s': a parent on the host is a symlink or not a directory", c->path);
		return 0;
	}
	if (r < 0)
		return ab_error_set(err, -r, "cannot write '%s' into the project", c->path);
	x->res->applied++;
	if (it->v == V_MERGE && it->merge_conflicts) {
		x->res->conflicts++;
		report(x, "merged with conflicts: '%s': %zu region%s between <<<<<<< host and >>>>>>> sandbox",
		       c->path, it->merge_conflicts, it->merge_conflicts == 1 ? "" : "s");
	} else if (it->v == V_MERGE) {
		report(x, "merged: '%s'", c->path);
	} else {
		report(x, "%s: '%s'%s%s", it->forced ? "overwritten" : kind_name(c->kind), c->path,
		       (c->old_uid != c->new_uid || c->old_gid != c->new_gid) && c->old_mode && c->new_mode
			       ? " (owner change not applied)" : "",
		       (c->new_mode & (S_ISUID | S_ISGID | S_ISVTX)) ? " (setuid/setgid/sticky bits dropped)" : "");
	}
	if (c->kind != AB_CHANGE_META)
		base_update(x, c->path, S_ISREG(c->new_mode) ? x->proj : -1);
	return record(x, c->path) < 0 ? ab_error_set(err, ENOMEM, "cannot record '%s'", c->path) : 0;
}

static void report_unwritten(struct ctx *x, const struct item *it)
{
	const char *p = it->c->path;

	switch (it->v) {
	case V_MASKED:
		x->res->refused++;
		report(x, "masked: '%s' is never applied", p);
		break;
	case V_REFUSED:
		x->res->refused++;
		report(x, "refused: '%s': device nodes, fifos and sockets are never applied", p);
		break;
	case V_RISKY:
		x->res->risky_unconfirmed++;
		report(x, "risky: '%s' (%s): pass --yes to apply", p, it->risk);
		break;
	case V_DECLINED:
		x->res->skipped++;
		report(x, "skipped: '%s'", p);
		break;
	case V_NOOP:
		report(x, "unchanged: '%s': owner and setuid/setgid/sticky changes are not applied", p);
		break;
	case V_WRITE:
	case V_MERGE:
	case V_CONFLICT:
		break;
	}
}

static int open_dir(const char *path)
{
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static void items_free(struct item *items, size_t n)
{
	for (size_t i = 0; items && i < n; i++)
		free(items[i].merged.data);
	free(items);
}

int ab_apply(struct ab_workspace *ws, const struct ab_apply_opts *opts, struct ab_apply_result *res,
	     struct ab_error *err)
{
	struct ab_change *changes = NULL;
	struct item *items = NULL;
	size_t n = 0;
	struct ctx x = { .ws = ws, .o = opts, .res = res, .proj = -1, .upper = -1, .base = -1 };
	int r;

	*res = (struct ab_apply_result){ 0 };
	for (size_t i = 0; i < opts->n_paths; i++)
		if (!valid_relpath(opts->paths[i]))
			return ab_error_set(err, EINVAL, "invalid path '%s': give it relative to the project",
					    opts->paths[i]);
	r = ab_changes_collect(ws->upper, ws->project, opts->paths, opts->n_paths, &changes, &n, err);
	if (r < 0)
		return r;
	if ((r = baseline_load(ws, &x.bl, err)) < 0)
		goto out;
	if ((x.proj = open_dir(ws->project)) < 0) {
		r = ab_error_set(err, -x.proj, "cannot open the project '%s'", ws->project);
		goto out;
	}
	if ((x.upper = open_dir(ws->upper)) < 0) {
		r = ab_error_set(err, -x.upper, "cannot open the sandbox's changes '%s'", ws->upper);
		goto out;
	}
	if (!opts->dry_run && mkdir(ws->base, 0700) < 0 && errno != EEXIST) {
		r = ab_error_set(err, errno, "cannot create '%s'", ws->base);
		goto out;
	}
	/* What the changes count, and what the next run's end records, changes with the
	 * project: that run's end must do its full work. */
	if (!opts->dry_run && (r = ab_workspace_recorded_forget(ws)) < 0) {
		r = ab_error_set(err, -r, "cannot void '%s/recorded'", ws->dir);
		goto out;
	}
	x.base = open_dir(ws->base);
	items = calloc(n ? n : 1, sizeof(*items));
	if (!items) {
		r = ab_error_set(err, ENOMEM, "cannot apply '%s'", ws->name);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		items[i] = (struct item){ .c = &changes[i], .v = V_WRITE };

	/* 1. Everything is checked before anything is written. */
	if ((r = classify(&x, items, n, err)) < 0)
		goto out;
	/* 2. Confirmation: --interactive asks each, risky ones need --yes otherwise. */
	confirm(&x, items, n);
	for (size_t i = 0; i < n; i++)
		report_unwritten(&x, &items[i]);
	if (opts->dry_run) {
		for (size_t i = 0; i < n; i++)
			if (items[i].v == V_WRITE || items[i].v == V_MERGE)
				report(&x, "would apply: '%s' (%s%s)", items[i].c->path,
				       items[i].v == V_MERGE ? "merge" : kind_name(items[i].c->kind),
				       items[i].forced ? ", overwriting host changes" : "");
		goto out;
	}
	/* 3. Removals deepest first, so a directory is empty when its turn comes; then the
	 *    rest in path order, so a directory exists before what goes in it. */
	for (size_t i = n; i-- > 0;)
		if ((items[i].v == V_WRITE) && (r = apply_one(&x, &items[i], true, err)) < 0)
			goto out;
	for (size_t i = 0; i < n; i++)
		if ((items[i].v == V_WRITE || items[i].v == V_MERGE) &&
		    (r = apply_one(&x, &items[i], false, err)) < 0)
			goto out;
	if (res->conflicts) {
		r = ab_error_set(err, 0, "%zu file%s merged with conflict markers: resolve them in the project",
				 res->conflicts, res->conflicts == 1 ? "" : "s");
		r = -EBUSY;
	}
out:
	if (x.baseline_dirty) {
		bool complete = r >= 0 && !opts->n_paths && !res->skipped && !res->refused &&
				!res->conflicts && !res->risky_unconfirmed;
		struct ab_error werr;
		/* Host and sandbox agree everywhere: start a fresh manifest. */
		if (complete && ab_manifest_reset(ws->manifest, &werr) >= 0)
			(void)unlink(x.bl.applied_path);
		else if (applied_save(&x.bl) < 0 && r >= 0)
			r = ab_error_set(err, errno, "cannot record what was applied in '%s'", x.bl.applied_path);
	}
	if (x.proj >= 0)
		close(x.proj);
	if (x.upper >= 0)
		close(x.upper);
	if (x.base >= 0)
		close(x.base);
	baseline_free(&x.bl);
	items_free(items, n);
	ab_changes_free(changes, n);
	return r;
}

int ab_base_capture(struct ab_workspace *ws, const struct ab_change *changes, size_t n,
		    struct ab_error *err)
{
	struct baseline bl = { 0 };
	_cleanup_close_ int proj = -1, base = -1;
	int r;

	if ((r = baseline_load(ws, &bl, err)) < 0)
		goto out;
	if ((proj = open_dir(ws->project)) < 0) {
		r = ab_error_set(err, -proj, "cannot open the project '%s'", ws->project);
		goto out;
	}
	if ((mkdir(ws->base, 0700) < 0 && errno != EEXIST) || (base = open_dir(ws->base)) < 0) {
		r = ab_error_set(err, errno, "cannot create '%s'", ws->base);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct ab_change *c = &changes[i];
		struct stat hst, bst;
		const char *name;

		if (c->kind == AB_CHANGE_ADDED || !S_ISREG(c->old_mode))
			continue;
		if (stat_beneath(base, c->path, &bst) == 0)
			continue;
		_cleanup_close_ int src = open_file_beneath(proj, c->path, &hst);
		if (src < 0 || !matches_baseline(baseline_find(&bl, c->path), &hst))
			continue; /* gone or changed on the host: no trustworthy base */
		_cleanup_close_ int pfd = open_parent(base, c->path, true, 0700, &name);
		if (pfd < 0) {
			r = ab_error_set(err, -pfd, "cannot keep a base copy of '%s'", c->path);
			goto out;
		}
		if ((r = replace_file(pfd, name, src, NULL, 0, 0600)) < 0) {
			r = ab_error_set(err, -r, "cannot keep a base copy of '%s'", c->path);
			goto out;
		}
	}
	r = 0;
out:
	baseline_free(&bl);
	return r;
}
