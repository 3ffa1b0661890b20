/* Snapshots, rollback and discard of a sandbox's upper directory: see snapshot.h. */
#include "snapshot.h"
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <linux/fs.h>
#include <poll.h>
#include <search.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "../shared/dirents.h"
#include "../shared/strutil.h"
#include "config.h"
#include "fingerprint.h"
#include "layer.h"
#include "freeze.h"

#define META_MAX (64 * 1024)
#define XATTR_LIST_MAX_ (64 * 1024)
#define XATTR_VALUE_MAX_ (64 * 1024)
#define MAX_DIR_ENTRIES (1u << 22)
#define COPY_CHUNK (1u << 30)

/* ---- small helpers ---- */

static int fsync_dir(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

static int fsync_parent(const char *path)
{
	_cleanup_free_ char *dir = strdup(path);
	char *slash;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (!slash)
		return fsync_dir(".");
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	return fsync_dir(dir);
}

int ab_write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode)
{
	_cleanup_free_ char *tmp = NULL;
	int fd, r;

	if (asprintf(&tmp, "%s.tmp-%d", path, (int)getpid()) < 0)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	r = ab_write_all(fd, buf, len);
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r >= 0)
		r = -errno;
	if (r >= 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	(void)fsync_parent(path);
	return 0;
}

static void free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Every name in the directory fd but "." and "..", so the caller can close the stream
 * before descending. Returns 0 or -errno. */
struct names {
	char **v;
	size_t n, cap;
};

static int add_name(const char *name, unsigned char d_type, void *data)
{
	struct names *names = data;

	(void)d_type;
	if (names->n >= MAX_DIR_ENTRIES)
		return -E2BIG;
	if (names->n == names->cap) {
		size_t ncap = names->cap ? names->cap * 2 : 32;
		char **grown = realloc(names->v, ncap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		names->v = grown;
		names->cap = ncap;
	}
	if (!(names->v[names->n] = strdup(name)))
		return -ENOMEM;
	names->n++;
	return 0;
}

static int read_names(int fd, char ***out, size_t *n_out)
{
	struct names names = { 0 };
	int r = ab_dir_for_each(fd, add_name, &names);

	if (r < 0) {
		free_names(names.v, names.n);
		return r;
	}
	*out = names.v;
	*n_out = names.n;
	return 0;
}

/* ---- removal ---- */

int ab_remove_tree(int dirfd, const char *name, bool keep_top)
{
	_cleanup_close_ int fd = -1;
	char **names = NULL;
	size_t n = 0;
	struct stat st;
	int r;

	if (!keep_top) {
		if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
			return 0;
		if (errno != EISDIR && errno != EPERM)
			return -errno;
	}
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT && !keep_top ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	/* A read-only directory copied from an upper must still be emptied. */
	if ((st.st_mode & 0700) != 0700)
		if (fchmodat(dirfd, name, (st.st_mode & 07777) | 0700, 0) < 0) {
			/* the open or the removals below report it */
		}
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT && !keep_top ? 0 : -errno; /* removed meanwhile */
	r = read_names(fd, &names, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r >= 0; i++)
		r = ab_remove_tree(fd, names[i], false);
	free_names(names, n);
	if (r < 0)
		return r;
	if (!keep_top && unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int remove_path(const char *path)
{
	return ab_remove_tree(AT_FDCWD, path, false);
}

/* ---- copy ---- */

struct link_node {
	dev_t dev;
	ino_t ino;
	char *rel; /* the first copy, relative to the destination root */
};

struct copier {
	const char *src;
	int dst_root;
	void *links; /* tsearch tree of struct link_node */
	uint64_t bytes;
	char path[PATH_MAX]; /* relative path of the entry being copied */
	struct ab_error *err;
	/* What each file would otherwise ask the kernel again (a snapshot's cost is per file):
	 * whether reflinks failed once, and who we are, and our umask. */
	bool no_reflink;
	uid_t uid;
	gid_t gid;
	mode_t umask;
};

static int compare_links(const void *a, const void *b)
{
	const struct link_node *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return 0;
}

static void free_link(void *p)
{
	struct link_node *node = p;

	free(node->rel);
	free(node);
}

static int copy_fail(struct copier *c, int code, const char *what)
{
	return ab_error_set(c->err, code, "cannot %s '%s' of '%s'", what, c->path, c->src);
}

static bool trusted_xattr(const char *name)
{
	return strncmp(name, "trusted.", 8) == 0;
}

static int copy_xattrs(struct copier *c, int sfd, int dfd)
{
	_cleanup_free_ char *list = NULL;
	_cleanup_free_ char *value = NULL;
	ssize_t len = flistxattr(sfd, NULL, 0);

	if (len < 0)
		return errno == ENOTSUP ? 0 : copy_fail(c, errno, "list the xattrs of");
	if (len == 0)
		return 0;
	/* Room for the largest list: the set may grow between the two calls (the overlay
	 * records its uuid on the upper root when a run mounts it for the first time). */
	list = malloc(XATTR_LIST_MAX_);
	value = malloc(XATTR_VALUE_MAX_);
	if (!list || !value)
		return copy_fail(c, ENOMEM, "copy the xattrs of");
	len = flistxattr(sfd, list, XATTR_LIST_MAX_);
	if (len < 0)
		return copy_fail(c, errno, "list the xattrs of");
	for (ssize_t off = 0; off < len; off += (ssize_t)strlen(list + off) + 1) {
		const char *name = list + off;
		ssize_t vlen;

		if (strncmp(name, "user.", 5) != 0 && !trusted_xattr(name))
			continue;
		vlen = fgetxattr(sfd, name, value, XATTR_VALUE_MAX_);
		if (vlen < 0) {
			if (errno == ENODATA || (trusted_xattr(name) && (errno == EPERM || errno == ENOTSUP)))
				continue;
			return ab_error_set(c->err, errno, "cannot read the xattr '%s' of '%s' in '%s'", name,
					    c->path, c->src);
		}
		if (fsetxattr(dfd, name, value, (size_t)vlen, 0) < 0) {
			if (trusted_xattr(name) && (errno == EPERM || errno == ENOTSUP))
				continue;
			return ab_error_set(c->err, errno, "cannot copy the xattr '%s' of '%s' in '%s'", name,
					    c->path, c->src);
		}
	}
	return 0;
}

/* Owner (when allowed), permission bits and times, in that order: chown clears setuid. */
/* created_mode: the permission bits the entry was created with (before the umask), or
 * (mode_t)-1 when unknown. */
static int copy_attrs_fd(struct copier *c, int fd, const struct stat *st, mode_t created_mode)
{
	struct timespec times[2] = { st->st_atim, st->st_mtim };

	if ((st->st_uid != c->uid || st->st_gid != c->gid) && fchown(fd, st->st_uid, st->st_gid) < 0 &&
	    errno != EPERM)
		return copy_fail(c, errno, "set the owner of");
	if ((created_mode == (mode_t)-1 || (created_mode & ~c->umask) != (st->st_mode & 07777)) &&
	    fchmod(fd, st->st_mode & 07777) < 0)
		return copy_fail(c, errno, "set the mode of");
	if (futimens(fd, times) < 0)
		return copy_fail(c, errno, "set the times of");
	return 0;
}

/* size: what the source holds (it cannot change: the sandbox is frozen or gone), so the
 * copy stops there without asking for an end of file. */
static int copy_data(struct copier *c, int sfd, int dfd, uint64_t size, uint64_t *copied)
{
	uint64_t total = 0;
	bool kernel_copy = true;
	static char buf[128 * 1024];

	if (!c->no_reflink) {
		if (ioctl(dfd, FICLONE, sfd) == 0) {
			*copied = size;
			return 0;
		}
		c->no_reflink = errno == EOPNOTSUPP || errno == ENOTTY || errno == EXDEV || errno == EINVAL;
	}
	while (total < size || !kernel_copy) {
		ssize_t n;

		if (kernel_copy) {
			n = copy_file_range(sfd, NULL, dfd, NULL, COPY_CHUNK, 0);
			if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS) &&
			    total == 0) {
				kernel_copy = false;
				continue;
			}
		} else {
			n = read(sfd, buf, sizeof(buf));
			if (n > 0) {
				int r = ab_write_all(dfd, buf, (size_t)n);
				if (r < 0)
					return r;
			}
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
	}
	*copied = total;
	return 0;
}

static int copy_dir(struct copier *c, int sfd, int dfd, size_t plen, unsigned depth);

static int remember_link(struct copier *c, const struct stat *st, size_t len)
{
	struct link_node *node = calloc(1, sizeof(*node));

	if (!node || !(node->rel = strndup(c->path, len))) {
		free(node);
		return copy_fail(c, ENOMEM, "copy");
	}
	node->dev = st->st_dev;
	node->ino = st->st_ino;
	if (!tsearch(node, &c->links, compare_links)) {
		free_link(node);
		return copy_fail(c, ENOMEM, "copy");
	}
	return 0;
}

static int copy_regular(struct copier *c, int sdir, int ddir, const char *name, const struct stat *st)
{
	_cleanup_close_ int sfd = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	_cleanup_close_ int dfd = -1;
	struct stat now;
	uint64_t copied = 0;
	int r;

	if (sfd < 0)
		return copy_fail(c, errno, "open");
	if (fstat(sfd, &now) < 0)
		return copy_fail(c, errno, "inspect");
	if (!S_ISREG(now.st_mode) || now.st_ino != st->st_ino)
		return copy_fail(c, EAGAIN, "copy (it changed meanwhile)");
	/* Created with its own permission bits (the tree is private to the sandbox's owner
	 * anyway), so that most files need no chmod afterwards. */
	dfd = openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, st->st_mode & 0777);
	if (dfd < 0)
		return copy_fail(c, errno, "create the copy of");
	r = copy_data(c, sfd, dfd, (uint64_t)now.st_size, &copied);
	if (r < 0)
		return copy_fail(c, -r, "copy");
	c->bytes += copied;
	if ((r = copy_xattrs(c, sfd, dfd)) < 0 || (r = copy_attrs_fd(c, dfd, st, st->st_mode & 0777)) < 0)
		return r;
	return 0;
}

static int copy_special(struct copier *c, int sdir, int ddir, const char *name, const struct stat *st)
{
	struct timespec times[2] = { st->st_atim, st->st_mtim };

	if (S_ISLNK(st->st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(sdir, name, target, sizeof(target) - 1);
		if (n < 0)
			return copy_fail(c, errno, "read the link");
		target[n] = '\0';
		if (symlinkat(target, ddir, name) < 0)
			return copy_fail(c, errno, "create the link");
		c->bytes += (uint64_t)n;
	} else if (S_ISFIFO(st->st_mode)) {
		if (mkfifoat(ddir, name, 0600) < 0)
			return copy_fail(c, errno, "create the fifo");
	} else {
		/* Character devices 0:0 are overlay's whiteouts; mknod allows them unprivileged. */
		if (mknodat(ddir, name, (st->st_mode & S_IFMT) | 0600, st->st_rdev) < 0)
			return copy_fail(c, errno, "create the node");
	}
	if (fchownat(ddir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EPERM)
		return copy_fail(c, errno, "set the owner of");
	if (!S_ISLNK(st->st_mode) && fchmodat(ddir, name, st->st_mode & 07777, 0) < 0)
		return copy_fail(c, errno, "set the mode of");
	if (utimensat(ddir, name, times, AT_SYMLINK_NOFOLLOW) < 0)
		return copy_fail(c, errno, "set the times of");
	return 0;
}

static int copy_entry(struct copier *c, int sdir, int ddir, const char *name, size_t len, unsigned depth)
{
	struct stat st;
	int r;

	if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : copy_fail(c, errno, "inspect");

	if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
		struct link_node key = { .dev = st.st_dev, .ino = st.st_ino };
		struct link_node **found = tfind(&key, &c->links, compare_links);
		if (found) {
			if (linkat(c->dst_root, (*found)->rel, ddir, name, 0) < 0)
				return copy_fail(c, errno, "link");
			return 0;
		}
	}

	switch (st.st_mode & S_IFMT) {
	case S_IFREG:
		r = copy_regular(c, sdir, ddir, name, &st);
		break;
	case S_IFDIR: {
		_cleanup_close_ int sfd = -1;
		_cleanup_close_ int dfd = -1;

		if (mkdirat(ddir, name, 0700) < 0)
			return copy_fail(c, errno, "create the directory");
		sfd = openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sfd < 0)
			return copy_fail(c, errno, "open");
		dfd = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0)
			return copy_fail(c, errno, "open the copy of");
		r = copy_dir(c, sfd, dfd, len, depth + 1);
		if (r >= 0) {
			memcpy(c->path + len, "", 1);
			if ((r = copy_xattrs(c, sfd, dfd)) >= 0)
				r = copy_attrs_fd(c, dfd, &st, (mode_t)-1);
		}
		return r;
	}
	case S_IFLNK:
	case S_IFIFO:
	case S_IFSOCK:
	case S_IFCHR:
	case S_IFBLK:
		r = copy_special(c, sdir, ddir, name, &st);
		break;
	default:
		return copy_fail(c, EINVAL, "copy (unknown file type)");
	}
	if (r >= 0 && st.st_nlink > 1)
		r = remember_link(c, &st, len);
	return r;
}

static int copy_dir(struct copier *c, int sfd, int dfd, size_t plen, unsigned depth)
{
	char **names = NULL;
	size_t n = 0;
	int r;

	if (depth > PATH_MAX / 2)
		return copy_fail(c, ELOOP, "copy (too deep)");
	r = read_names(sfd, &names, &n);
	if (r < 0)
		return copy_fail(c, -r, "read the directory");
	for (size_t i = 0; i < n && r >= 0; i++) {
		size_t nlen = strlen(names[i]);
		size_t len = plen ? plen + 1 + nlen : nlen;

		if (len >= sizeof(c->path)) {
			r = copy_fail(c, ENAMETOOLONG, "copy what is beneath");
			break;
		}
		if (plen)
			c->path[plen] = '/';
		memcpy(c->path + (plen ? plen + 1 : 0), names[i], nlen + 1);
		r = copy_entry(c, sfd, dfd, names[i], len, depth);
	}
	free_names(names, n);
	return r;
}

int ab_copy_tree(const char *src, const char *dst, uint64_t *bytes, struct ab_error *err)
{
	_cleanup_close_ int sfd = open(src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int dfd = -1;
	struct copier c = { .src = src, .err = err, .uid = geteuid(), .gid = getegid() };
	struct stat st;
	int r;

	if (sfd < 0)
		return ab_error_set(err, errno, "cannot open '%s'", src);
	if (fstat(sfd, &st) < 0)
		return ab_error_set(err, errno, "cannot inspect '%s'", src);
	if (mkdir(dst, 0700) < 0)
		return ab_error_set(err, errno, "cannot create '%s'", dst);
	dfd = open(dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return ab_error_set(err, errno, "cannot open '%s'", dst);
	c.dst_root = dfd;
	c.umask = umask(0); /* read it, and put it back at once */
	umask(c.umask);
	r = copy_dir(&c, sfd, dfd, 0, 0);
	tdestroy(c.links, free_link);
	if (r < 0)
		return r;
	c.path[0] = '\0';
	if ((r = copy_xattrs(&c, sfd, dfd)) < 0 || (r = copy_attrs_fd(&c, dfd, &st, (mode_t)-1)) < 0)
		return r;
	if (bytes)
		*bytes = c.bytes;
	return 0;
}

/* ---- state of the sandbox ---- */

static int refuse_running(struct ab_workspace *ws, struct ab_error *err)
{
	int r = ab_workspace_running(ws, NULL, NULL);

	if (r < 0)
		return ab_error_set(err, -r, "cannot tell whether sandbox '%s' is running", ws->name);
	if (r > 0)
		return ab_error_set(err, 0, "sandbox '%s' is running: stop it first", ws->name);
	return 0;
}

static int ensure_dir(const char *path, struct ab_error *err)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return ab_error_set(err, errno, "cannot create '%s'", path);
	return 0;
}

static int64_t now_ns_for_trash(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Removes path in a detached process, so that the command that discarded it returns
 * at once: deleting files whose blocks were already written back costs real work (block
 * bitmaps, the journal), and the user is waiting. The tree is first renamed into the
 * sandbox's trash/ under a unique name, so nothing else ever sees it again; a trash left
 * by a crash is emptied the same way by ab_workspace_recover. */
static int trash_later(struct ab_workspace *ws, const char *path)
{
	_cleanup_free_ char *trash = NULL;
	_cleanup_free_ char *slot = NULL;
	static unsigned counter;
	pid_t pid;

	if (asprintf(&trash, "%s/trash", ws->dir) < 0 ||
	    asprintf(&slot, "%s/%d-%lld-%u", trash, (int)getpid(), (long long)now_ns_for_trash(), counter++) < 0)
		return -ENOMEM;
	if (mkdir(trash, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (rename(path, slot) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return remove_path(slot); /* no process to spare: remove it here */
	if (pid == 0) {
		/* Every descriptor goes first: the sandbox's lock must never outlive this
		 * command in the cleaner. Then detached twice over, so that nobody waits for it
		 * and it holds no terminal; the parent waits only for the first child. */
		syscall(SYS_close_range, 0, ~0U, 0);
		setsid();
		if (fork() != 0)
			_exit(0);
		(void)ab_remove_tree(AT_FDCWD, slot, false);
		_exit(0);
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return 0;
}

/* Empties a trash left behind (a crash, or a cleaner still at work: the second remover
 * only finds less to do). */
static void empty_trash(struct ab_workspace *ws)
{
	_cleanup_free_ char *trash = NULL;
	_cleanup_free_ char *aside = NULL;
	struct stat st;

	if (asprintf(&trash, "%s/trash", ws->dir) < 0 || lstat(trash, &st) < 0)
		return;
	if (rmdir(trash) == 0)
		return; /* empty: the usual case, the cleaners did their work */
	if (asprintf(&aside, "%s/trash.%d", ws->dir, (int)getpid()) < 0 || rename(trash, aside) < 0)
		return;
	(void)trash_later(ws, aside);
}

/* A snapshot being made, in the sandbox's directory: .snapshot-NAME-PID */
#define SNAPSHOT_TMP ".snapshot-"

/* What ab_workspace_recover looks for in a sandbox's directory. */
struct sandbox_entries {
	bool upper, upper_new, upper_old, trash, work, base, snapshots, views, old_list, snapshot_tmp;
};

static int note_sandbox_entry(const char *name, unsigned char d_type, void *data)
{
	struct sandbox_entries *has = data;
	/* A directory's type comes with its entry on most file systems; where it does not
	 * (DT_UNKNOWN), mkdir below meets it with EEXIST, as before. */
	bool dir = d_type == DT_DIR || d_type == DT_UNKNOWN;

	if (!strcmp(name, "upper"))
		has->upper = dir;
	else if (!strcmp(name, "upper.new"))
		has->upper_new = true;
	else if (!strcmp(name, "upper.old"))
		has->upper_old = true;
	else if (!strcmp(name, "trash"))
		has->trash = true;
	else if (!strcmp(name, "work"))
		has->work = dir;
	else if (!strcmp(name, "base"))
		has->base = dir;
	else if (!strcmp(name, "snapshots"))
		has->snapshots = dir;
	else if (ab_startswith(name, "view-"))
		has->views = true;
	else if (ab_startswith(name, SNAPSHOT_TMP))
		has->snapshot_tmp = true;
	else if (!strcmp(name, "recorded-list"))
		has->old_list = true; /* an earlier version's end check: runs now have a layer */
	return 0;
}

/* Removes the file NAME of the sandbox's directory. Apart, with its path buffer, from the
 * recovery that every start runs: each new page of stack costs a fault on some VMs. */
__attribute__((noinline)) static void remove_in(const struct ab_workspace *ws, const char *name)
{
	char path[4200];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", ws->dir, name) < sizeof(path))
		(void)unlink(path);
}

int ab_workspace_recover(struct ab_workspace *ws, struct ab_error *err)
{
	_cleanup_free_ char *new = NULL;
	_cleanup_free_ char *old = NULL;
	_cleanup_free_ char *snaps = NULL;
	_cleanup_close_ int dfd = -1;
	char **names = NULL;
	size_t n = 0;
	struct sandbox_entries has = { 0 };
	struct stat st;
	int r;

	if (asprintf(&new, "%s.new", ws->upper) < 0 || asprintf(&old, "%s.old", ws->upper) < 0 ||
	    asprintf(&snaps, "%s/snapshots", ws->dir) < 0)
		return ab_error_set(err, ENOMEM, "cannot check sandbox '%s'", ws->name);
	/* One read of the sandbox's directory says what is there: what a crash can leave is
	 * rare, and every run comes through here. */
	dfd = open(ws->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return ab_error_set(err, errno, "cannot open '%s'", ws->dir);
	if ((r = ab_dir_for_each(dfd, note_sandbox_entry, &has)) < 0)
		return ab_error_set(err, -r, "cannot read '%s'", ws->dir);
	close(TAKE_FD(dfd));
	/* Interrupted between "upper -> upper.old" and "upper.new -> upper": go back. */
	if (!has.upper && has.upper_old) {
		if (lstat(ws->upper, &st) < 0 && errno == ENOENT && rename(old, ws->upper) < 0)
			return ab_error_set(err, errno, "cannot restore '%s' from '%s'", ws->upper, old);
		has.upper = true;
		has.upper_old = false;
	}
	if (has.upper_new && (r = remove_path(new)) < 0)
		return ab_error_set(err, -r, "cannot remove the leftover '%s'", new);
	if (has.upper_old && (r = remove_path(old)) < 0)
		return ab_error_set(err, -r, "cannot remove the leftover '%s'", old);
	if (has.trash)
		empty_trash(ws);
	if (has.old_list)
		remove_in(ws, "recorded-list");
	if ((!has.upper && (r = ensure_dir(ws->upper, err)) < 0) || (!has.work && (r = ensure_dir(ws->work, err)) < 0) ||
	    (!has.base && (r = ensure_dir(ws->base, err)) < 0) || (!has.snapshots && (r = ensure_dir(snaps, err)) < 0))
		return r;
	/* After upper is whole again: a run's layer left unfolded goes into it. */
	if ((r = ab_layer_recover(ws, has.views, err)) < 0)
		return r;
	/* Snapshots being made when the crash came (they are made beside the snapshots, and
	 * renamed in among them whole). */
	if (has.snapshot_tmp) {
		dfd = open(ws->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0)
			return ab_error_set(err, errno, "cannot open '%s'", ws->dir);
		r = read_names(dfd, &names, &n);
		if (r < 0)
			return ab_error_set(err, -r, "cannot read '%s'", ws->dir);
		for (size_t i = 0; i < n && r >= 0; i++)
			if (ab_startswith(names[i], SNAPSHOT_TMP) && (r = ab_remove_tree(dfd, names[i], false)) < 0)
				ab_error_set(err, -r, "cannot remove the leftover '%s/%s'", ws->dir, names[i]);
		free_names(names, n);
	}
	return r;
}

/* ---- snapshots ---- */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int snapshots_dir(struct ab_workspace *ws, char **out, struct ab_error *err)
{
	if (asprintf(out, "%s/snapshots", ws->dir) < 0)
		return ab_error_set(err, ENOMEM, "cannot find the snapshots of sandbox '%s'", ws->name);
	return 0;
}

static int load_meta(const char *snaps, const char *name, struct ab_snapshot_info *out)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *text = NULL;
	json_object *o, *v;
	int r = -EBADMSG;

	if (asprintf(&path, "%s/%s/meta.json", snaps, name) < 0)
		return -ENOMEM;
	if ((r = ab_read_file(path, META_MAX, &text, NULL)) < 0)
		return r;
	o = json_tokener_parse(text);
	if (!o || !json_object_is_type(o, json_type_object))
		goto out;
	*out = (struct ab_snapshot_info){ 0 };
	if (!json_object_object_get_ex(o, "created", &v) || !json_object_is_type(v, json_type_int))
		goto out;
	out->created_ns = json_object_get_int64(v);
	if (json_object_object_get_ex(o, "bytes", &v) && json_object_is_type(v, json_type_int))
		out->bytes = (uint64_t)json_object_get_int64(v);
	if (json_object_object_get_ex(o, "auto", &v) && json_object_is_type(v, json_type_boolean))
		out->automatic = json_object_get_boolean(v);
	if (json_object_object_get_ex(o, "upper_fingerprint", &v) && json_object_is_type(v, json_type_string)) {
		const char *hex = json_object_get_string(v);
		char *end = NULL;
		unsigned long long fp;

		errno = 0;
		fp = strtoull(hex, &end, 16);
		if (!errno && end != hex && !*end && strlen(hex) == 16) {
			out->fingerprint = fp;
			out->has_fingerprint = true;
		}
	}
	out->name = strdup(name);
	r = out->name ? 0 : -ENOMEM;
out:
	json_object_put(o);
	return r;
}

/* The meta file lands in the snapshot's temporary directory, whose rename commits it.
 * A snapshot the user named is made durable (fsync); an automatic one, taken before every
 * run, is not: a crash can lose it, never tear it, and the start stays fast. */
static int write_meta(const char *dir, const struct ab_snapshot_info *info, bool durable)
{
	_cleanup_free_ char *path = NULL;
	json_object *o = json_object_new_object();
	const char *text;
	int r = 0;

	if (!o || asprintf(&path, "%s/meta.json", dir) < 0)
		r = -ENOMEM;
	if (r >= 0 && (json_object_object_add(o, "name", json_object_new_string(info->name)) < 0 ||
		       json_object_object_add(o, "created", json_object_new_int64(info->created_ns)) < 0 ||
		       json_object_object_add(o, "bytes", json_object_new_int64((int64_t)info->bytes)) < 0 ||
		       json_object_object_add(o, "auto", json_object_new_boolean(info->automatic)) < 0))
		r = -ENOMEM;
	if (r >= 0 && info->has_fingerprint) {
		char hex[17];

		snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)info->fingerprint);
		if (json_object_object_add(o, "upper_fingerprint", json_object_new_string(hex)) < 0)
			r = -ENOMEM;
	}
	if (r >= 0) {
		text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
		if (!text)
			r = -ENOMEM;
		else if (durable)
			r = ab_write_file_atomic(path, text, strlen(text), 0600);
		else {
			int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
			r = fd < 0 ? -errno : ab_write_all(fd, text, strlen(text));
			if (fd >= 0)
				close(fd);
		}
	}
	json_object_put(o);
	return r;
}

void ab_snapshot_info_free(struct ab_snapshot_info *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

static int compare_info(const void *a, const void *b)
{
	const struct ab_snapshot_info *x = a, *y = b;

	if (x->created_ns != y->created_ns)
		return x->created_ns < y->created_ns ? -1 : 1;
	return strcmp(x->name, y->name);
}

int ab_snapshot_list(struct ab_workspace *ws, struct ab_snapshot_info **out, size_t *n_out,
		     struct ab_error *err)
{
	_cleanup_free_ char *snaps = NULL;
	_cleanup_close_ int dfd = -1;
	struct ab_snapshot_info *v = NULL;
	char **names = NULL;
	size_t n_names = 0, n = 0;
	int r;

	*out = NULL;
	*n_out = 0;
	if ((r = snapshots_dir(ws, &snaps, err)) < 0)
		return r;
	dfd = open(snaps, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT ? 0 : ab_error_set(err, errno, "cannot read '%s'", snaps);
	r = read_names(dfd, &names, &n_names);
	if (r < 0)
		return ab_error_set(err, -r, "cannot read '%s'", snaps);
	v = calloc(n_names ? n_names : 1, sizeof(*v));
	if (!v) {
		free_names(names, n_names);
		return ab_error_set(err, ENOMEM, "cannot list the snapshots of sandbox '%s'", ws->name);
	}
	for (size_t i = 0; i < n_names; i++) {
		if (!ab_name_is_valid(names[i]))
			continue;
		r = load_meta(snaps, names[i], &v[n]);
		if (r == -ENOMEM) {
			free_names(names, n_names);
			ab_snapshot_info_free(v, n);
			return ab_error_set(err, ENOMEM, "cannot list the snapshots of sandbox '%s'", ws->name);
		}
		if (r >= 0)
			n++;
	}
	free_names(names, n_names);
	qsort(v, n, sizeof(*v), compare_info);
	*out = v;
	*n_out = n;
	return 0;
}

static int remove_snapshot_dir(const char *snaps, const char *name)
{
	_cleanup_free_ char *path = NULL;

	if (asprintf(&path, "%s/%s", snaps, name) < 0)
		return -ENOMEM;
	return remove_path(path);
}

int ab_snapshot_remove(struct ab_workspace *ws, const char *name, struct ab_error *err)
{
	_cleanup_free_ char *snaps = NULL;
	_cleanup_free_ char *path = NULL;
	struct stat st;
	int r;

	if (!ab_name_is_valid(name))
		return ab_error_set(err, 0, "unknown snapshot '%s' of sandbox '%s': see 'agentbox snapshots %s'",
				    name ? name : "", ws->name, ws->name);
	if ((r = snapshots_dir(ws, &snaps, err)) < 0)
		return r;
	if (asprintf(&path, "%s/%s", snaps, name) < 0)
		return ab_error_set(err, ENOMEM, "cannot remove snapshot '%s'", name);
	if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return ab_error_set(err, 0, "unknown snapshot '%s' of sandbox '%s': see 'agentbox snapshots %s'",
				    name, ws->name, ws->name);
	if ((r = remove_path(path)) < 0)
		return ab_error_set(err, -r, "cannot remove snapshot '%s' of sandbox '%s'", name, ws->name);
	return 0;
}

/* Snapshot directories under snaps whose name starts with prefix ("" for all), counted
 * from the directory alone: the meta files are read only when a count says they must be. */
static size_t count_snapshot_dirs(const char *snaps, const char *prefix)
{
	DIR *d = opendir(snaps);
	struct dirent *de;
	size_t n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

/* An automatic snapshot's place in time, from its name alone ("auto-YYYYMMDD-HHMMSS-N"):
 * pruning reads no meta file. */
struct auto_entry {
	char *name;
	unsigned long long stamp;
	unsigned int seq;
};

static int compare_auto(const void *a, const void *b)
{
	const struct auto_entry *x = a, *y = b;

	if (x->stamp != y->stamp)
		return x->stamp < y->stamp ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Drops the oldest automatic snapshots while there are more than keep of them. */
static int prune_automatic(struct ab_workspace *ws, const char *snaps, size_t keep, struct ab_error *err)
{
	struct auto_entry *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int r = 0;

	d = opendir(snaps);
	if (!d)
		return errno == ENOENT ? 0 : ab_error_set(err, errno, "cannot read '%s'", snaps);
	while ((de = readdir(d))) {
		unsigned int day, tod, seq;
		int end = 0;
		if (sscanf(de->d_name, "auto-%8u-%6u-%u%n", &day, &tod, &seq, &end) != 3 || de->d_name[end])
			continue;
		if (n == cap) {
			struct auto_entry *grown = realloc(v, (cap = cap ? cap * 2 : 32) * sizeof(*v));
			if (!grown) {
				r = ab_error_set(err, ENOMEM, "cannot prune the snapshots of '%s'", ws->name);
				break;
			}
			v = grown;
		}
		v[n] = (struct auto_entry){ .name = strdup(de->d_name),
					    .stamp = (unsigned long long)day * 1000000 + tod, .seq = seq };
		if (!v[n].name) {
			r = ab_error_set(err, ENOMEM, "cannot prune the snapshots of '%s'", ws->name);
			break;
		}
		n++;
	}
	closedir(d);
	if (r == 0 && n > keep) {
		qsort(v, n, sizeof(*v), compare_auto);
		for (size_t i = 0; i < n - keep; i++) {
			int e = remove_snapshot_dir(snaps, v[i].name);
			if (e < 0) {
				r = ab_error_set(err, -e, "cannot remove the old snapshot '%s' of sandbox '%s'",
						 v[i].name, ws->name);
				break;
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	return r;
}

int ab_snapshot_prune(struct ab_workspace *ws, struct ab_error *err)
{
	_cleanup_free_ char *snaps = NULL;
	int r;

	if ((r = snapshots_dir(ws, &snaps, err)) < 0)
		return r;
	return prune_automatic(ws, snaps, AB_MAX_AUTO_SNAPSHOTS, err);
}

static bool snapshot_exists(const char *snaps, const char *name)
{
	_cleanup_free_ char *path = NULL;
	struct stat st;

	if (asprintf(&path, "%s/%s", snaps, name) < 0)
		return true;
	return lstat(path, &st) == 0;
}

static int auto_name(const char *snaps, char **out)
{
	time_t t = time(NULL);
	struct tm tm;
	char stamp[32];

	if (!localtime_r(&t, &tm) || strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm) == 0)
		return -EINVAL;
	for (int i = 1; i <= AB_MAX_SNAPSHOTS + 1; i++) {
		char *name;
		if (asprintf(&name, "auto-%s-%d", stamp, i) < 0)
			return -ENOMEM;
		if (!snapshot_exists(snaps, name)) {
			*out = name;
			return 0;
		}
		free(name);
	}
	return -EEXIST;
}

/* The newest snapshot (by creation time) into *out: the one a rollback without a name
 * would restore. Reads the meta of the newest automatic snapshot (found by name alone)
 * and of the ones the user named. Returns 1 when there is one, 0 when none, -errno. */
static int newest_snapshot(const char *snaps, struct ab_snapshot_info *out)
{
	_cleanup_close_ int dfd = open(snaps, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	char **names = NULL;
	size_t n_names = 0;
	struct auto_entry newest_auto = { 0 };
	const char *auto_name_found = NULL;
	int r, found = 0;

	*out = (struct ab_snapshot_info){ 0 };
	if (dfd < 0)
		return errno == ENOENT ? 0 : -errno;
	if ((r = read_names(dfd, &names, &n_names)) < 0)
		return r;
	for (size_t i = 0; i < n_names; i++) {
		unsigned int day, tod, seq;
		int end = 0;
		struct ab_snapshot_info info;

		if (!ab_name_is_valid(names[i]))
			continue;
		if (sscanf(names[i], "auto-%8u-%6u-%u%n", &day, &tod, &seq, &end) == 3 && !names[i][end]) {
			struct auto_entry e = { .stamp = (unsigned long long)day * 1000000 + tod, .seq = seq };
			if (!auto_name_found || compare_auto(&e, &newest_auto) > 0) {
				newest_auto = e;
				auto_name_found = names[i];
			}
			continue;
		}
		if (load_meta(snaps, names[i], &info) < 0)
			continue;
		if (!found || info.created_ns > out->created_ns) {
			free(out->name);
			*out = info;
			found = 1;
		} else {
			free(info.name);
		}
	}
	if (auto_name_found) {
		struct ab_snapshot_info info;
		if (load_meta(snaps, auto_name_found, &info) == 0) {
			if (!found || info.created_ns >= out->created_ns) {
				free(out->name);
				*out = info;
				found = 1;
			} else {
				free(info.name);
			}
		}
	}
	free_names(names, n_names);
	return found;
}

int ab_snapshot_reuse_automatic(struct ab_workspace *ws, char **name)
{
	uint64_t fingerprint;
	int64_t newest_ctime_ns;

	if (ab_tree_fingerprint(ws->upper, &fingerprint, &newest_ctime_ns) < 0)
		return 0;
	return ab_snapshot_reuse_automatic_at(ws, fingerprint, name);
}

int ab_snapshot_reuse_automatic_at(struct ab_workspace *ws, uint64_t fingerprint, char **name)
{
	_cleanup_free_ char *snaps = NULL;
	struct ab_snapshot_info newest;
	struct ab_error ignored;
	int r;

	if (snapshots_dir(ws, &snaps, &ignored) < 0 || newest_snapshot(snaps, &newest) <= 0)
		return 0;
	r = newest.automatic && newest.has_fingerprint && newest.fingerprint == fingerprint;
	if (r && name)
		*name = TAKE_PTR(newest.name);
	free(newest.name);
	return r;
}

int ab_snapshot_create(struct ab_workspace *ws, const char *name, bool automatic,
		       char **created_name, struct ab_error *err)
{
	_cleanup_free_ char *snaps = NULL;
	_cleanup_free_ char *chosen = NULL;
	_cleanup_free_ char *tmp = NULL;
	_cleanup_free_ char *tmp_upper = NULL;
	_cleanup_free_ char *tmp_layer = NULL;
	_cleanup_free_ char *final = NULL;
	struct ab_snapshot_info *v = NULL, info = { 0 };
	uint64_t layer_bytes;
	bool live_layer;
	struct ab_frozen frozen = { 0 };
	size_t n = 0;
	pid_t init_pid = 0;
	uint64_t fingerprint = 0;
	int64_t newest_ctime_ns = 0, fingerprint_ns = 0;
	int r;

	if (name && !ab_name_is_valid(name))
		return ab_error_set(err, 0,
				    "invalid snapshot name '%s': use up to %d letters, digits, '-', '_' or '.', "
				    "starting with a letter or digit",
				    name, AB_MAX_NAME_LEN);
	if ((r = snapshots_dir(ws, &snaps, err)) < 0 || (r = ensure_dir(snaps, err)) < 0)
		return r;
	if (name) {
		if (snapshot_exists(snaps, name))
			return ab_error_set(err, 0, "snapshot '%s' of sandbox '%s' already exists: choose another name",
					    name, ws->name);
		chosen = strdup(name);
		if (!chosen)
			return ab_error_set(err, ENOMEM, "cannot create snapshot '%s'", name);
	} else {
		if (ab_tree_fingerprint(ws->upper, &fingerprint, &newest_ctime_ns) == 0)
			fingerprint_ns = now_ns();
		if ((r = auto_name(snaps, &chosen)) < 0)
			return ab_error_set(err, -r, "cannot name a new snapshot of sandbox '%s'", ws->name);
	}

	/* Room for one more: the oldest automatic snapshot makes way. */
	if (count_snapshot_dirs(snaps, "") >= AB_MAX_SNAPSHOTS) {
		size_t n_auto = 0;
		if ((r = ab_snapshot_list(ws, &v, &n, err)) < 0)
			return r;
		for (size_t i = 0; i < n; i++)
			n_auto += v[i].automatic;
		ab_snapshot_info_free(v, n);
		if (n >= AB_MAX_SNAPSHOTS) {
			if (!n_auto)
				return ab_error_set(err, 0,
						    "sandbox '%s' has %d snapshots: remove some with 'agentbox snapshots %s' first",
						    ws->name, AB_MAX_SNAPSHOTS, ws->name);
			if ((r = prune_automatic(ws, snaps, n_auto - 1, err)) < 0)
				return r;
		}
	}

	/* Per process: snapshots may be taken under a shared lock, two at a time. Beside the
	 * snapshots, not among them: the one read of the sandbox's directory that every start
	 * makes finds what a crash left. */
	if (asprintf(&tmp, "%s/" SNAPSHOT_TMP "%s-%d", ws->dir, chosen, (int)getpid()) < 0 ||
	    asprintf(&tmp_upper, "%s/upper", tmp) < 0)
		return ab_error_set(err, ENOMEM, "cannot create snapshot '%s'", chosen);
	(void)remove_path(tmp);
	if (mkdir(tmp, 0700) < 0)
		return ab_error_set(err, errno, "cannot create '%s'", tmp);

	r = ab_workspace_running(ws, NULL, &init_pid);
	if (r < 0) {
		r = ab_error_set(err, -r, "cannot tell whether sandbox '%s' is running", ws->name);
		goto fail;
	}
	if (init_pid > 0 && (r = ab_freeze_sandbox(init_pid, &frozen, err)) < 0) {
		ab_error_wrap(err, "cannot snapshot sandbox '%s' while it runs", ws->name);
		goto fail;
	}
	info.created_ns = now_ns();
	/* The running command's changes are in its layer over upper (layer.h): that is what
	 * the freeze is for. upper itself does not change until the run's end, which waits for
	 * this command's lock. Both copies are then folded as the run's end folds them. */
	layer_bytes = 0;
	live_layer = ab_layer_is_empty(ws->layer) == 0;
	r = live_layer ? (asprintf(&tmp_layer, "%s/layer", tmp) < 0 ? ab_error_set(err, ENOMEM, "cannot snapshot") :
				ab_copy_tree(ws->layer, tmp_layer, &layer_bytes, err)) : 0;
	if (live_layer)
		ab_thaw_sandbox(&frozen);
	if (r >= 0)
		r = ab_copy_tree(ws->upper, tmp_upper, &info.bytes, err);
	ab_thaw_sandbox(&frozen);
	if (r >= 0 && live_layer && (r = ab_layer_fold(tmp_layer, tmp_upper, ws->project, err)) >= 0 && rmdir(tmp_layer) < 0)
		r = ab_error_set(err, errno, "cannot remove '%s'", tmp_layer);
	info.bytes += layer_bytes;
	if (r < 0) {
		ab_error_wrap(err, "cannot snapshot sandbox '%s'", ws->name);
		goto fail;
	}
	info.automatic = automatic;
	/* The fingerprint, taken before the copy of an upper nothing else writes to (no run can
	 * start meanwhile), vouches for the copy unless the tree had only just changed. */
	info.has_fingerprint = automatic && fingerprint_ns && init_pid <= 0 &&
			       ab_fingerprint_is_reliable(newest_ctime_ns, fingerprint_ns);
	info.fingerprint = fingerprint;
	for (int attempt = 0;; attempt++) {
		info.name = chosen;
		if ((r = write_meta(tmp, &info, !automatic)) < 0) {
			r = ab_error_set(err, -r, "cannot write '%s/meta.json'", tmp);
			goto fail;
		}
		free(final);
		if (asprintf(&final, "%s/%s", snaps, chosen) < 0) {
			final = NULL;
			r = ab_error_set(err, ENOMEM, "cannot create snapshot '%s'", chosen);
			goto fail;
		}
		if (rename(tmp, final) == 0)
			break;
		if (errno != EEXIST && errno != ENOTEMPTY) {
			r = ab_error_set(err, errno, "cannot create snapshot '%s'", final);
			goto fail;
		}
		/* Another command took the name meanwhile: a chosen name is an error, a
		 * generated one is generated again. */
		if (name || attempt >= 16) {
			r = ab_error_set(err, 0, "snapshot '%s' of sandbox '%s' already exists: choose another name",
					 chosen, ws->name);
			goto fail;
		}
		free(chosen);
		chosen = NULL;
		if ((r = auto_name(snaps, &chosen)) < 0) {
			r = ab_error_set(err, -r, "cannot name a new snapshot of sandbox '%s'", ws->name);
			goto fail;
		}
	}
	if (!automatic)
		(void)fsync_dir(snaps);
	if (created_name)
		*created_name = TAKE_PTR(chosen);
	return 0;
fail:
	(void)remove_path(tmp);
	return r;
}

/* Puts a copy of src (NULL: an empty directory) in place of upper, so that an
 * interruption leaves the old or the new one (see ab_workspace_recover), and empties work. */
static int replace_upper(struct ab_workspace *ws, const char *src, struct ab_error *err)
{
	_cleanup_free_ char *new = NULL;
	_cleanup_free_ char *old = NULL;
	int r;

	if (asprintf(&new, "%s.new", ws->upper) < 0 || asprintf(&old, "%s.old", ws->upper) < 0)
		return ab_error_set(err, ENOMEM, "cannot replace '%s'", ws->upper);
	/* The next run's end must look at the new upper afresh. */
	if ((r = ab_workspace_recorded_forget(ws)) < 0)
		return ab_error_set(err, -r, "cannot void '%s/recorded'", ws->dir);
	if ((r = remove_path(new)) < 0 || (r = remove_path(old)) < 0)
		return ab_error_set(err, -r, "cannot remove a leftover beside '%s'", ws->upper);
	if (src) {
		if ((r = ab_copy_tree(src, new, NULL, err)) < 0) {
			(void)remove_path(new);
			return r;
		}
	} else if (mkdir(new, 0700) < 0) {
		return ab_error_set(err, errno, "cannot create '%s'", new);
	}
	if (rename(ws->upper, old) < 0 && errno != ENOENT) {
		r = ab_error_set(err, errno, "cannot move '%s' aside", ws->upper);
		(void)remove_path(new);
		return r;
	}
	if (rename(new, ws->upper) < 0) {
		r = ab_error_set(err, errno, "cannot put '%s' in place", new);
		(void)rename(old, ws->upper);
		return r;
	}
	/* Atomic by the renames; not forced to disk here (that fsync was a quarter of a
	 * rollback's time): the filesystem's next commit, seconds later, makes it durable, and
	 * a crash before then finds the old changes or the new ones whole (see recover). */
	if ((r = trash_later(ws, old)) < 0)
		return ab_error_set(err, -r, "cannot remove '%s'", old);
	/* overlayfs wants an empty work directory of its own */
	if ((r = remove_path(ws->work)) < 0)
		return ab_error_set(err, -r, "cannot empty '%s'", ws->work);
	return ensure_dir(ws->work, err);
}

int ab_workspace_replace_upper(struct ab_workspace *ws, const char *src, struct ab_error *err)
{
	return replace_upper(ws, src, err);
}

int ab_snapshot_rollback(struct ab_workspace *ws, const char *name, struct ab_error *err)
{
	_cleanup_free_ char *snaps = NULL;
	_cleanup_free_ char *chosen = NULL;
	_cleanup_free_ char *src = NULL;
	struct ab_snapshot_info info = { 0 };
	int r;

	if ((r = refuse_running(ws, err)) < 0 || (r = snapshots_dir(ws, &snaps, err)) < 0)
		return r;
	if (!name) {
		struct ab_snapshot_info *v = NULL;
		size_t n = 0;
		if ((r = ab_snapshot_list(ws, &v, &n, err)) < 0)
			return r;
		if (n == 0)
			return ab_error_set(err, 0, "sandbox '%s' has no snapshots: take one with 'agentbox snapshot %s'",
					    ws->name, ws->name);
		chosen = TAKE_PTR(v[n - 1].name);
		ab_snapshot_info_free(v, n);
	} else {
		if (!ab_name_is_valid(name) || load_meta(snaps, name, &info) < 0)
			return ab_error_set(err, 0, "unknown snapshot '%s' of sandbox '%s': see 'agentbox snapshots %s'",
					    name, ws->name, ws->name);
		chosen = TAKE_PTR(info.name);
	}
	if (asprintf(&src, "%s/%s/upper", snaps, chosen) < 0)
		return ab_error_set(err, ENOMEM, "cannot roll back to snapshot '%s'", chosen);
	if ((r = replace_upper(ws, src, err)) < 0)
		return ab_error_wrap(err, "cannot roll sandbox '%s' back to snapshot '%s'", ws->name, chosen);
	return 0;
}

int ab_workspace_discard(struct ab_workspace *ws, struct ab_error *err)
{
	int r;

	if ((r = refuse_running(ws, err)) < 0)
		return r;
	if ((r = replace_upper(ws, NULL, err)) < 0)
		return ab_error_wrap(err, "cannot discard the changes of sandbox '%s'", ws->name);
	if ((r = ab_remove_tree(AT_FDCWD, ws->base, true)) < 0 && r != -ENOENT)
		return ab_error_set(err, -r, "cannot empty '%s'", ws->base);
	if ((r = ensure_dir(ws->base, err)) < 0)
		return r;
	if ((r = ab_manifest_reset(ws->manifest, err)) < 0)
		return ab_error_wrap(err, "cannot discard the changes of sandbox '%s'", ws->name);
	return 0;
}
