/* The manifest: the project as the sandbox first saw it, one record per entry.
 *
 * File format (all integers little-endian):
 *   "agentbox-manifest 1\n"   20 bytes of magic
 *   u64 count
 *   count records, strictly increasing by path in byte order:
 *     u32 path_len  u32 mode  u64 size  i64 mtime_ns  u64 ino  path_len bytes of path
 * A path is relative ("a/b c"), holds no NUL, and no empty, "." or ".." component; any
 * other byte (spaces, newlines) is allowed. The file is replaced atomically. */
#include "workspace.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "../shared/strutil.h"

#define MAGIC "agentbox-manifest 1\n"
#define MAGIC_LEN (sizeof(MAGIC) - 1)
#define RECORD_FIXED 32
#define MAX_ENTRIES ((size_t)AB_MAX_CHANGES * 10)
#define MAX_PATH_LEN (PATH_MAX - 1)

struct walker {
	struct ab_manifest_entry *v;
	size_t n, cap;
	dev_t dev;
	const char *project;
	char path[PATH_MAX];
	struct ab_error *err;
};

void ab_manifest_free(struct ab_manifest_entry *entries, size_t n)
{
	if (!entries)
		return;
	for (size_t i = 0; i < n; i++)
		free(entries[i].path);
	free(entries);
}

static int add_entry(struct walker *w, const char *path, size_t len, const struct stat *st)
{
	if (w->n >= MAX_ENTRIES)
		return ab_error_set(w->err, E2BIG, "project '%s' has more than %zu entries", w->project,
				    MAX_ENTRIES);
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 1024;
		struct ab_manifest_entry *grown = realloc(w->v, cap * sizeof(*grown));
		if (!grown)
			return ab_error_set(w->err, ENOMEM, "cannot list project '%s'", w->project);
		w->v = grown;
		w->cap = cap;
	}
	char *copy = malloc(len + 1);
	if (!copy)
		return ab_error_set(w->err, ENOMEM, "cannot list project '%s'", w->project);
	memcpy(copy, path, len);
	copy[len] = '\0';
	w->v[w->n++] = (struct ab_manifest_entry){
		.path = copy,
		.mode = st->st_mode,
		.size = (uint64_t)st->st_size,
		.mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec,
		.ino = (uint64_t)st->st_ino,
	};
	return 0;
}

/* Lists dfd (whose relative path is w->path[0..plen)), then descends into its
 * subdirectories one at a time, so a level holds one descriptor. */
static int walk_dir(struct walker *w, int dfd, size_t plen)
{
	_cleanup_free_ size_t *subdirs = NULL;
	size_t n_subdirs = 0, cap_subdirs = 0;
	int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (fd < 0)
		return ab_error_set(w->err, errno, "cannot read '%.*s' in project '%s'", (int)plen, w->path,
				    w->project);
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return ab_error_set(w->err, errno, "cannot read '%.*s' in project '%s'", (int)plen, w->path,
				    w->project);
	}
	while ((errno = 0, de = readdir(d))) {
		const char *name = de->d_name;
		size_t nlen = strlen(name), len = plen ? plen + 1 + nlen : nlen;
		struct stat st;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (len > MAX_PATH_LEN) {
			r = ab_error_set(w->err, ENAMETOOLONG, "a path beneath '%.*s' in project '%s' is too long",
					 (int)plen, w->path, w->project);
			break;
		}
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue; /* removed meanwhile */
			r = ab_error_set(w->err, errno, "cannot inspect '%s' beneath '%.*s' in project '%s'", name,
					 (int)plen, w->path, w->project);
			break;
		}
		if (plen)
			w->path[plen] = '/';
		memcpy(w->path + (plen ? plen + 1 : 0), name, nlen);
		r = add_entry(w, w->path, len, &st);
		if (r < 0)
			break;
		/* Other filesystems mounted inside are not part of what overlay shows. */
		if (S_ISDIR(st.st_mode) && st.st_dev == w->dev) {
			if (n_subdirs == cap_subdirs) {
				size_t cap = cap_subdirs ? cap_subdirs * 2 : 16;
				size_t *grown = realloc(subdirs, cap * sizeof(*grown));
				if (!grown) {
					r = ab_error_set(w->err, ENOMEM, "cannot list project '%s'", w->project);
					break;
				}
				subdirs = grown;
				cap_subdirs = cap;
			}
			subdirs[n_subdirs++] = w->n - 1;
		}
	}
	if (r == 0 && errno)
		r = ab_error_set(w->err, errno, "cannot read '%.*s' in project '%s'", (int)plen, w->path,
				 w->project);
	closedir(d);
	for (size_t i = 0; r >= 0 && i < n_subdirs; i++) {
		const char *sub = w->v[subdirs[i]].path;
		size_t len = strlen(sub);
		_cleanup_close_ int cfd = -1;

		memcpy(w->path, sub, len);
		cfd = openat(dfd, sub + (plen ? plen + 1 : 0), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0) {
			if (errno == ENOENT || errno == EACCES || errno == ENOTDIR || errno == ELOOP)
				continue; /* gone, replaced, or unreadable: recorded without contents */
			return ab_error_set(w->err, errno, "cannot open '%s' in project '%s'", sub, w->project);
		}
		r = walk_dir(w, cfd, len);
	}
	return r;
}

static int compare_entries(const void *a, const void *b)
{
	return strcmp(((const struct ab_manifest_entry *)a)->path, ((const struct ab_manifest_entry *)b)->path);
}

static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static int write_entries(FILE *f, const struct ab_manifest_entry *v, size_t n)
{
	unsigned char buf[RECORD_FIXED];

	if (fwrite(MAGIC, 1, MAGIC_LEN, f) != MAGIC_LEN)
		return -EIO;
	put_u64(buf, n);
	if (fwrite(buf, 1, 8, f) != 8)
		return -EIO;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(v[i].path);
		put_u32(buf, (uint32_t)len);
		put_u32(buf + 4, (uint32_t)v[i].mode);
		put_u64(buf + 8, v[i].size);
		put_u64(buf + 16, (uint64_t)v[i].mtime_ns);
		put_u64(buf + 24, v[i].ino);
		if (fwrite(buf, 1, RECORD_FIXED, f) != RECORD_FIXED || fwrite(v[i].path, 1, len, f) != len)
			return -EIO;
	}
	return 0;
}

static int write_file(const char *out_path, const struct ab_manifest_entry *v, size_t n,
		      struct ab_error *err)
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_free_ char *dir = NULL;
	FILE *f;
	int fd, r;

	if (asprintf(&tmp, "%s.tmp-%d", out_path, (int)getpid()) < 0 || !(dir = strdup(out_path)))
		return ab_error_set(err, ENOMEM, "cannot write the manifest '%s'", out_path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return ab_error_set(err, errno, "cannot write the manifest '%s'", tmp);
	f = fdopen(fd, "w");
	if (!f) {
		r = errno;
		close(fd);
		unlink(tmp);
		return ab_error_set(err, r, "cannot write the manifest '%s'", tmp);
	}
	errno = 0;
	r = write_entries(f, v, n);
	if (r < 0 || fflush(f) != 0 || fsync(fileno(f)) < 0) {
		r = errno ? errno : EIO;
		fclose(f);
		unlink(tmp);
		return ab_error_set(err, r, "cannot write the manifest '%s'", tmp);
	}
	if (fclose(f) != 0) {
		r = errno;
		unlink(tmp);
		return ab_error_set(err, r, "cannot write the manifest '%s'", tmp);
	}
	if (rename(tmp, out_path) < 0) {
		r = errno;
		unlink(tmp);
		return ab_error_set(err, r, "cannot write the manifest '%s'", out_path);
	}
	char *slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		_cleanup_close_ int dfd = open(slash == dir ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0)
			(void)fsync(dfd);
	}
	return 0;
}

int ab_manifest_save(const char *out_path, struct ab_manifest_entry *entries, size_t n,
		     struct ab_error *err)
{
	if (n)
		qsort(entries, n, sizeof(*entries), compare_entries);
	return write_file(out_path, entries, n, err);
}

int ab_manifest_reset(const char *out_path, struct ab_error *err)
{
	return write_file(out_path, NULL, 0, err);
}

int ab_manifest_init(const char *out_path, struct ab_error *err)
{
	unsigned char head[MAGIC_LEN + 8] = { 0 };
	_cleanup_close_ int fd = open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);

	memcpy(head, MAGIC, MAGIC_LEN); /* and a count of zero */
	if (fd < 0 || ab_write_all(fd, head, sizeof(head)) < 0)
		return ab_error_set(err, errno, "cannot write the manifest '%s'", out_path);
	return 0;
}

int ab_manifest_write(const char *project, const char *out_path, struct ab_error *err)
{
	struct walker w = { .project = project, .err = err };
	_cleanup_close_ int fd = open(project, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;
	int r;

	if (fd < 0)
		return ab_error_set(err, errno, "cannot open project '%s'", project);
	if (fstat(fd, &st) < 0)
		return ab_error_set(err, errno, "cannot inspect project '%s'", project);
	w.dev = st.st_dev;
	r = walk_dir(&w, fd, 0);
	if (r >= 0) {
		if (w.n)
			qsort(w.v, w.n, sizeof(*w.v), compare_entries);
		r = write_file(out_path, w.v, w.n, err);
	}
	ab_manifest_free(w.v, w.n);
	return r;
}

static bool path_is_valid(const char *p, size_t len)
{
	size_t start = 0;

	if (len == 0 || memchr(p, '\0', len))
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && p[i] != '/')
			continue;
		size_t clen = i - start;
		if (clen == 0 || (clen == 1 && p[start] == '.') ||
		    (clen == 2 && p[start] == '.' && p[start + 1] == '.'))
			return false;
		start = i + 1;
	}
	return true;
}

static bool mode_is_valid(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFLNK:
	case S_IFIFO:
	case S_IFSOCK:
	case S_IFCHR:
	case S_IFBLK:
		return (mode & ~(uint32_t)(S_IFMT | 07777)) == 0;
	default:
		return false;
	}
}

int ab_manifest_load(const char *path, struct ab_manifest_entry **entries, size_t *n,
		     struct ab_error *err)
{
	_cleanup_fclose_ FILE *f = NULL;
	unsigned char head[MAGIC_LEN + 8], rec[RECORD_FIXED];
	struct ab_manifest_entry *v = NULL;
	uint64_t count, remaining;
	size_t used = 0;
	struct stat st;
	int r = 0;

	*entries = NULL;
	*n = 0;
	f = fopen(path, "rbe");
	if (!f)
		return ab_error_set(err, errno, "cannot read the manifest '%s'", path);
	if (fstat(fileno(f), &st) < 0)
		return ab_error_set(err, errno, "cannot read the manifest '%s'", path);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < sizeof(head) ||
	    fread(head, 1, sizeof(head), f) != sizeof(head) || memcmp(head, MAGIC, MAGIC_LEN) != 0)
		goto damaged;
	count = get_u64(head + MAGIC_LEN);
	remaining = (uint64_t)st.st_size - sizeof(head);
	if (count > MAX_ENTRIES || count > remaining / (RECORD_FIXED + 1))
		goto damaged;
	v = calloc(count ? count : 1, sizeof(*v));
	if (!v)
		return ab_error_set(err, ENOMEM, "cannot read the manifest '%s'", path);
	for (; used < count; used++) {
		uint32_t len, mode;
		char *p;

		if (fread(rec, 1, RECORD_FIXED, f) != RECORD_FIXED)
			goto damaged;
		len = get_u32(rec);
		mode = get_u32(rec + 4);
		if (len == 0 || len > MAX_PATH_LEN || !mode_is_valid(mode))
			goto damaged;
		p = malloc(len + 1);
		if (!p) {
			r = ab_error_set(err, ENOMEM, "cannot read the manifest '%s'", path);
			goto out;
		}
		v[used].path = p;
		if (fread(p, 1, len, f) != len)
			goto damaged_used;
		p[len] = '\0';
		if (!path_is_valid(p, len) || (used > 0 && strcmp(v[used - 1].path, p) >= 0))
			goto damaged_used;
		v[used].mode = mode;
		v[used].size = get_u64(rec + 8);
		v[used].mtime_ns = (int64_t)get_u64(rec + 16);
		v[used].ino = get_u64(rec + 24);
	}
	if (fgetc(f) != EOF)
		goto damaged;
	*entries = v;
	*n = used;
	return 0;

damaged_used:
	used++; /* v[used].path is allocated: free it too */
damaged:
	r = ab_error_set(err, 0, "the manifest '%s' is damaged: it is not a version 1 agentbox manifest", path);
out:
	ab_manifest_free(v, used);
	return r;
}

const struct ab_manifest_entry *ab_manifest_find(const struct ab_manifest_entry *entries, size_t n,
						 const char *path)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(entries[mid].path, path);
		if (c == 0)
			return &entries[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}
