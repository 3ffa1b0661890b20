/* Masked paths: files of the project that the sandbox must not see (keys, tokens, .env),
 * found before the sandbox starts and hidden behind empty read-only mounts inside it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "../shared/strutil.h"
#include "config.h"
#include "fingerprint.h"
#include "workspace.h"

/* Secrets that commonly sit in a project tree. */
const char *const ab_default_masks[] = {
	".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_ed25519*", "id_ecdsa*", ".npmrc", ".pypirc", ".netrc",
};
const size_t ab_n_default_masks = AB_ELEMENTSOF(ab_default_masks);

bool ab_mask_matches(char *const *patterns, size_t n, const char *rel)
{
	const char *base = strrchr(rel, '/');

	base = base ? base + 1 : rel;
	for (size_t i = 0; i < n; i++) {
		if (strchr(patterns[i], '/')) {
			if (fnmatch(patterns[i], rel, FNM_PATHNAME | FNM_PERIOD) == 0)
				return true;
		} else if (fnmatch(patterns[i], base, 0) == 0) {
			return true;
		}
	}
	return false;
}

/* Directories the search does not enter: version-control internals and installed
 * dependencies hold no secrets of the project's own, but can hold hundreds of thousands of
 * files, and the search runs before every start. */
static const char *const unsearched_dirs[] = { ".git", ".hg", ".svn", "node_modules" };

static bool unsearched(const char *name)
{
	for (size_t i = 0; i < AB_ELEMENTSOF(unsearched_dirs); i++)
		if (strcmp(name, unsearched_dirs[i]) == 0)
			return true;
	return false;
}

/* A directory as the search listed it: any change to its entries moves one of these. */
struct stamp {
	char *rel; /* "" for the project itself */
	uint64_t dev, ino;
	int64_t mtime_ns, ctime_ns;
};

struct walk {
	char *const *patterns;
	size_t n_patterns;
	struct ab_mask_hit *hits;
	size_t n_hits;
	struct ab_error *err;
	const char *project;
	struct stamp *stamps; /* every directory listed, for the cache */
	size_t n_stamps;
	bool stamps_lost;     /* out of memory for them: no cache this time */
	int64_t newest_ctime_ns;
};

static int64_t ns_of(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static void add_stamp(struct walk *w, const char *rel, const struct stat *st)
{
	struct stamp *grown;

	if (w->stamps_lost)
		return;
	if (!(w->n_stamps & (w->n_stamps + 1))) { /* at 0, 1, 3, 7, ...: double */
		grown = realloc(w->stamps, (w->n_stamps * 2 + 2) * sizeof(*grown));
		if (!grown) {
			w->stamps_lost = true;
			return;
		}
		w->stamps = grown;
	}
	w->stamps[w->n_stamps] = (struct stamp){ .rel = strdup(rel), .dev = st->st_dev, .ino = st->st_ino,
						 .mtime_ns = ns_of(&st->st_mtim), .ctime_ns = ns_of(&st->st_ctim) };
	if (!w->stamps[w->n_stamps].rel) {
		w->stamps_lost = true;
		return;
	}
	if (w->stamps[w->n_stamps].ctime_ns > w->newest_ctime_ns)
		w->newest_ctime_ns = w->stamps[w->n_stamps].ctime_ns;
	w->n_stamps++;
}

static void stamps_free(struct stamp *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].rel);
	free(v);
}

static int add_hit(struct walk *w, const char *rel, bool dir)
{
	struct ab_mask_hit *grown;

	if (w->n_hits >= AB_MAX_MASK_HITS)
		return ab_error_set(w->err, 0,
				    "more than %d masked files in project '%s': narrow the masks (--unmask) or the workspace",
				    AB_MAX_MASK_HITS, w->project);
	grown = realloc(w->hits, (w->n_hits + 1) * sizeof(*grown));
	if (!grown)
		return ab_error_set(w->err, ENOMEM, "cannot record the masked path '%s'", rel);
	w->hits = grown;
	w->hits[w->n_hits].rel = strdup(rel);
	w->hits[w->n_hits].dir = dir;
	if (!w->hits[w->n_hits].rel)
		return ab_error_set(w->err, ENOMEM, "cannot record the masked path '%s'", rel);
	w->n_hits++;
	return 0;
}

static int walk_dir(struct walk *w, int dirfd, const char *prefix, unsigned depth)
{
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (depth > 64) {
		close(dirfd);
		return 0; /* deeper than any project needs; nothing past here is searched */
	}
	/* Stamped before it is read: a change while it is read moves the stamp away from
	 * what is kept, and the next search reads it again. */
	struct stat dst;
	if (fstat(dirfd, &dst) < 0)
		w->stamps_lost = true;
	else
		add_stamp(w, prefix, &dst);
	d = fdopendir(dirfd);
	if (!d) {
		close(dirfd);
		return 0;
	}
	while ((de = readdir(d)) && r >= 0) {
		char rel[4096];
		bool is_dir;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if ((size_t)snprintf(rel, sizeof(rel), "%s%s%s", prefix, *prefix ? "/" : "", de->d_name) >= sizeof(rel))
			continue;
		if (de->d_type == DT_UNKNOWN) {
			struct stat st;
			if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			is_dir = S_ISDIR(st.st_mode);
			if (S_ISLNK(st.st_mode))
				continue;
		} else {
			if (de->d_type == DT_LNK)
				continue;
			is_dir = de->d_type == DT_DIR;
		}
		if (ab_mask_matches(w->patterns, w->n_patterns, rel)) {
			if (is_dir || de->d_type == DT_REG || de->d_type == DT_UNKNOWN)
				r = add_hit(w, rel, is_dir);
			continue; /* a masked directory hides everything beneath it */
		}
		if (is_dir && !unsearched(de->d_name)) {
			int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				r = walk_dir(w, sub, rel, depth + 1);
		}
	}
	closedir(d);
	return r;
}

/* ---- the search's cache ----
 * The search lists every directory of the project before each start: tens of milliseconds
 * for a tree of ten thousand files, more for larger ones. What it finds depends only on
 * the names and types the directories list, and no entry of a directory can be created,
 * removed, renamed or replaced, nor a file system mounted over it, without moving that
 * directory's change time (which only the kernel sets), its mtime or its identity. So
 * each search keeps the stamps of the directories it listed with what it found, per
 * project and set of patterns (data root's mask-cache/), and the next search that finds
 * every directory with its stamp takes the result: one stat per directory, no listing.
 * A directory changed within a clock tick of the search could still change unseen, so
 * no cache is kept from a search that saw such a recent change. */
#define CACHE_MAGIC "agentbox-mask-cache 1\n"
#define CACHE_MAX_BYTES (64u << 20)

struct buf {
	char *p;
	size_t len, cap;
	bool failed;
};

static void buf_put(struct buf *b, const void *data, size_t len)
{
	if (b->failed)
		return;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + len)
			cap *= 2;
		char *p = cap <= CACHE_MAX_BYTES ? realloc(b->p, cap) : NULL;
		if (!p) {
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

static void buf_put_u64(struct buf *b, uint64_t v)
{
	buf_put(b, &v, sizeof(v));
}

static void buf_put_str(struct buf *b, const char *s)
{
	uint64_t len = strlen(s);
	buf_put_u64(b, len);
	buf_put(b, s, (size_t)len);
}

/* What the cache is for: the project and the patterns, in order. */
static void put_key(struct buf *b, const char *project, char *const *patterns, size_t n)
{
	buf_put(b, CACHE_MAGIC, strlen(CACHE_MAGIC));
	buf_put_str(b, project);
	buf_put_u64(b, n);
	for (size_t i = 0; i < n; i++)
		buf_put_str(b, patterns[i]);
}


/* data_root/mask-cache/KEYHASH, the directory created when missing; NULL without one.
 * None either when the data directory lies inside the project: a sandbox with the project
 * writable (--workspace-mode rw) could then write a cache of its own making, with stamps
 * that match, and unmask the next run's secrets. */
static char *cache_path(const struct buf *key, const char *project)
{
	_cleanup_free_ char *root = NULL, *real_root = NULL, *real_project = NULL;
	char *path = NULL;
	struct ab_error ignored;

	if (key->failed || ab_data_root(&root, &ignored) < 0)
		return NULL;
	real_root = realpath(root, NULL);
	real_project = realpath(project, NULL);
	if (!real_root || !real_project || ab_path_is_beneath(real_root, real_project))
		return NULL;
	if (asprintf(&path, "%s/mask-cache", root) < 0)
		return NULL;
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		free(path);
		return NULL;
	}
	free(path);
	if (asprintf(&path, "%s/mask-cache/%016llx", root, (unsigned long long)ab_fnv1a64(AB_FNV1A64_INIT, key->p, key->len)) < 0)
		return NULL;
	return path;
}

struct reader {
	const char *p;
	size_t left;
};

static bool get(struct reader *r, void *out, size_t len)
{
	if (r->left < len)
		return false;
	memcpy(out, r->p, len);
	r->p += len;
	r->left -= len;
	return true;
}

/* A string of the cache, NUL-terminated in a copy; NULL when malformed. */
static char *get_str(struct reader *r)
{
	uint64_t len;
	char *s;

	if (!get(r, &len, sizeof(len)) || len > r->left || len > 4096 || memchr(r->p, '\0', (size_t)len))
		return NULL;
	s = strndup(r->p, (size_t)len);
	if (s) {
		r->p += len;
		r->left -= len;
	}
	return s;
}

/* The cached result when the cache is for key and every directory still has its stamp;
 * false otherwise (no cache, another key, a malformed file, anything changed). */
static bool cache_load(const char *path, const struct buf *key, int project_fd, struct ab_mask_hit **out,
		       size_t *n_out)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	struct reader r;
	uint64_t n_dirs, n_hits;
	struct ab_mask_hit *hits = NULL;
	size_t got = 0;

	if (ab_read_file(path, CACHE_MAX_BYTES, &text, &len) < 0 || len < key->len ||
	    memcmp(text, key->p, key->len) != 0)
		return false;
	r = (struct reader){ .p = text + key->len, .left = len - key->len };
	if (!get(&r, &n_dirs, sizeof(n_dirs)) || n_dirs == 0 || n_dirs > r.left / 40)
		return false;
	for (uint64_t i = 0; i < n_dirs; i++) {
		struct stamp s;
		struct stat st;
		_cleanup_free_ char *rel = NULL;

		if (!get(&r, &s.dev, 8) || !get(&r, &s.ino, 8) || !get(&r, &s.mtime_ns, 8) ||
		    !get(&r, &s.ctime_ns, 8) || !(rel = get_str(&r)))
			return false;
		if (fstatat(project_fd, *rel ? rel : ".", &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode) ||
		    st.st_dev != s.dev || st.st_ino != s.ino || ns_of(&st.st_mtim) != s.mtime_ns ||
		    ns_of(&st.st_ctim) != s.ctime_ns)
			return false;
	}
	if (!get(&r, &n_hits, sizeof(n_hits)) || n_hits > AB_MAX_MASK_HITS || n_hits > r.left / 9)
		return false;
	hits = calloc(n_hits ? (size_t)n_hits : 1, sizeof(*hits));
	if (!hits)
		return false;
	for (; got < n_hits; got++) {
		unsigned char dir;
		if (!get(&r, &dir, 1) || dir > 1 || !(hits[got].rel = get_str(&r)) || !*hits[got].rel)
			break;
		hits[got].dir = dir;
	}
	if (got < n_hits || r.left != 0) {
		ab_mask_hits_free(hits, got + (got < n_hits && hits[got].rel));
		return false;
	}
	*out = hits;
	*n_out = (size_t)n_hits;
	return true;
}

static int64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ns_of(&ts);
}

/* Best-effort: a search without a cache only costs the next one its time. */
static void cache_store(const char *path, const struct buf *key, const struct walk *w)
{
	struct buf b = { 0 };
	char tmp[4200];
	int fd, r;

	if (w->stamps_lost || !ab_fingerprint_is_reliable(w->newest_ctime_ns, realtime_ns()))
		return;
	buf_put(&b, key->p, key->len);
	buf_put_u64(&b, w->n_stamps);
	for (size_t i = 0; i < w->n_stamps; i++) {
		buf_put_u64(&b, w->stamps[i].dev);
		buf_put_u64(&b, w->stamps[i].ino);
		buf_put(&b, &w->stamps[i].mtime_ns, 8);
		buf_put(&b, &w->stamps[i].ctime_ns, 8);
		buf_put_str(&b, w->stamps[i].rel);
	}
	buf_put_u64(&b, w->n_hits);
	for (size_t i = 0; i < w->n_hits; i++) {
		unsigned char dir = w->hits[i].dir;
		buf_put(&b, &dir, 1);
		buf_put_str(&b, w->hits[i].rel);
	}
	if (b.failed || (size_t)snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid()) >= sizeof(tmp)) {
		free(b.p);
		return;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0) {
		r = ab_write_all(fd, b.p, b.len);
		/* Not forced to disk: a cache lost in a crash is searched again, and one that
		 * survives holds only what was true then, checked stamp by stamp. */
		if (close(fd) < 0 || r < 0 || rename(tmp, path) < 0)
			unlink(tmp);
	}
	free(b.p);
}

int ab_mask_find(const char *project, char *const *patterns, size_t n, struct ab_mask_hit **out,
		 size_t *n_out, struct ab_error *err)
{
	struct walk w = { .patterns = patterns, .n_patterns = n, .err = err, .project = project };
	struct buf key = { 0 };
	_cleanup_free_ char *cache = NULL;
	int fd, r;

	*out = NULL;
	*n_out = 0;
	if (n == 0)
		return 0;
	fd = open(project, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ab_error_set(err, errno, "cannot read the project '%s'", project);
	put_key(&key, project, patterns, n);
	cache = cache_path(&key, project);
	if (cache && cache_load(cache, &key, fd, out, n_out)) {
		close(fd);
		free(key.p);
		return 0;
	}
	r = walk_dir(&w, fd, "", 0); /* takes fd */
	if (r >= 0 && cache)
		cache_store(cache, &key, &w);
	free(key.p);
	stamps_free(w.stamps, w.n_stamps);
	if (r < 0) {
		ab_mask_hits_free(w.hits, w.n_hits);
		return r;
	}
	*out = w.hits;
	*n_out = w.n_hits;
	return 0;
}

void ab_mask_hits_free(struct ab_mask_hit *hits, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(hits[i].rel);
	free(hits);
}
