/* A directory tree's metadata fingerprint: see fingerprint.h.
 *
 * Used to tell whether a sandbox's changes are still exactly what its latest automatic
 * snapshot holds, without comparing contents: no write, rename, link, removal or
 * attribute change can leave every change time (ctime) in the tree as it was, and the
 * kernel alone sets ctime. Entries are hashed one by one and the hashes added, so the
 * order in which directories list them does not matter. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fingerprint.h"
#include "../shared/strutil.h"

#define MAX_DEPTH 256

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};
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

/* Adds every entry of the open directory dfd, whose path (relative to the top) is
 * w->path[0..len). Takes dfd. Reads the directory with getdents64 into a small buffer on
 * the stack: no DIR allocation, which would cost a start's worth of page faults. */
static int walk_dir(struct walk *w, int dfd, size_t len, int depth)
{
	char buf[4096] __attribute__((aligned(8)));
	int r = 0;

	if (depth > MAX_DEPTH) {
		close(dfd);
		return -ELOOP;
	}
	for (;;) {
		long got = syscall(SYS_getdents64, dfd, buf, sizeof(buf));
		if (got < 0) {
			r = -errno;
			break;
		}
		if (got == 0)
			break;
		for (long off = 0; off < got && r == 0;) {
			const struct linux_dirent64 *de = (const void *)(buf + off);
			size_t nlen = strlen(de->d_name);
			struct stat st;

			off += de->d_reclen;
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (len + 1 + nlen >= sizeof(w->path)) {
				r = -ENAMETOOLONG;
				break;
			}
			w->path[len] = '/';
			memcpy(w->path + len + 1, de->d_name, nlen + 1);
			if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
				r = -errno;
				break;
			}
			add_entry(w, len + 1 + nlen, &st);
			if (S_ISDIR(st.st_mode)) {
				int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (sub < 0)
					r = -errno;
				else
					r = walk_dir(w, sub, len + 1 + nlen, depth + 1);
			}
		}
		if (r < 0)
			break;
	}
	w->path[len] = '\0';
	close(dfd);
	return r;
}

int ab_tree_fingerprint(const char *dir, uint64_t *fingerprint, int64_t *newest_ctime_ns)
{
	struct walk w = { .newest_ctime_ns = 0 };
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
	w.path[0] = '\0';
	add_entry(&w, 0, &st);
	if ((r = walk_dir(&w, dfd, 0, 0)) < 0)
		return r;
	*fingerprint = mix(w.sum ^ mix(w.count));
	*newest_ctime_ns = w.newest_ctime_ns;
	return 0;
}

int ab_fingerprint_is_reliable(int64_t newest_ctime_ns, int64_t now_ns)
{
	return newest_ctime_ns < now_ns - RELIABLE_MARGIN_NS;
}
