/* A directory tree's metadata fingerprint: see fingerprint.h.
 *
 * Used to tell whether a sandbox's changes are still exactly what its latest automatic
 * snapshot holds, without comparing contents: no write, rename, link, removal or
 * attribute change can leave every change time (ctime) in the tree as it was, and the
 * kernel alone sets ctime. Entries are hashed one by one and the hashes added, so the
 * order in which directories list them does not matter. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fingerprint.h"
#include "../shared/dirents.h"
#include "../shared/strutil.h"

#define MAX_DEPTH 256

/* Coarse timestamps tick at most every 10 ms (HZ=100); twice that is clearly past. */
#define RELIABLE_MARGIN_NS (20 * 1000 * 1000LL)

struct walk {
	uint64_t sum;
	uint64_t count;
	int64_t newest_ctime_ns;
	char path[4096];
};


/* splitmix64's finaliser: spreads each entry's hash before the sum. */
static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void add_entry(struct walk *w, size_t path_len, const struct stat *st)
{
	const int64_t fields[] = {
		(int64_t)st->st_mode, (int64_t)st->st_uid,  (int64_t)st->st_gid,  (int64_t)st->st_size,
		(int64_t)st->st_nlink, (int64_t)st->st_rdev, (int64_t)st->st_ino,  (int64_t)st->st_mtim.tv_sec,
		(int64_t)st->st_mtim.tv_nsec, (int64_t)st->st_ctim.tv_sec, (int64_t)st->st_ctim.tv_nsec,
	};
	uint64_t h = ab_fnv1a64(AB_FNV1A64_INIT, w->path, path_len + 1);
	int64_t ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec;

	w->sum += mix(ab_fnv1a64(h, fields, sizeof(fields)));
	w->count++;
	if (ctime_ns > w->newest_ctime_ns)
		w->newest_ctime_ns = ctime_ns;
}

static int walk_dir(struct walk *w, int dfd, size_t len, int depth);

struct walk_level {
	struct walk *w;
	int dfd;
	size_t len;
	int depth;
};

static int walk_entry(const char *name, unsigned char d_type, void *data)
{
	struct walk_level *lv = data;
	struct walk *w = lv->w;
	size_t nlen = strlen(name);
	struct stat st;

	(void)d_type;
	if (lv->len + 1 + nlen >= sizeof(w->path))
		return -ENAMETOOLONG;
	w->path[lv->len] = '/';
	memcpy(w->path + lv->len + 1, name, nlen + 1);
	if (fstatat(lv->dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	add_entry(w, lv->len + 1 + nlen, &st);
	if (S_ISDIR(st.st_mode)) {
		int sub = openat(lv->dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			return -errno;
		return walk_dir(w, sub, lv->len + 1 + nlen, lv->depth + 1);
	}
	return 0;
}

/* Adds every entry of the open directory dfd, whose path (relative to the top) is
 * w->path[0..len). Takes dfd. */
static int walk_dir(struct walk *w, int dfd, size_t len, int depth)
{
	struct walk_level lv = { .w = w, .dfd = dfd, .len = len, .depth = depth };
	int r = depth > MAX_DEPTH ? -ELOOP : ab_dir_for_each(dfd, walk_entry, &lv);

	w->path[len] = '\0';
	close(dfd);
	return r;
}

static int fingerprint_walk(struct walk *w, const char *dir, uint64_t *fingerprint, int64_t *newest_ctime_ns)
{
	struct stat st;
	int dfd, r;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	if (fstat(dfd, &st) < 0) {
		r = -errno;
		close(dfd);
		return r;
	}
	w->path[0] = '\0';
	add_entry(w, 0, &st);
	if ((r = walk_dir(w, dfd, 0, 0)) < 0)
		return r;
	*fingerprint = mix(w->sum ^ mix(w->count));
	*newest_ctime_ns = w->newest_ctime_ns;
	return 0;
}

int ab_tree_fingerprint(const char *dir, uint64_t *fingerprint, int64_t *newest_ctime_ns)
{
	struct walk w = { .newest_ctime_ns = 0 };

	return fingerprint_walk(&w, dir, fingerprint, newest_ctime_ns);
}

int ab_fingerprint_is_reliable(int64_t newest_ctime_ns, int64_t now_ns)
{
	return newest_ctime_ns < now_ns - RELIABLE_MARGIN_NS;
}
