/* A cgroup per sandbox: finding a tree we may write, the limits, stats, kills and removal.
 * See cgroup.h for the policy; rlimits.c holds the per-process side. */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "../shared/strutil.h"

/* Child cgroups the sandbox may have made below its own: walked this deep, no deeper. */
#define MAX_TREE_DEPTH 16
/* Passes of a SIGKILL by cgroup.procs, against processes forked while we read. */
#define KILL_PASSES 20
/* /proc/self/mountinfo can be large on hosts with many containers: it is streamed, and only
 * its cgroup lines (at most AB_CGROUP_READ_MAX bytes of them) are kept. */
#define MOUNTINFO_LINES_MAX 100000
#define NO_PIDFD (-2)

static const char *const v1_names[AB_CG1_N] = {
	[AB_CG1_MEMORY] = "memory",
	[AB_CG1_PIDS] = "pids",
	[AB_CG1_CPU] = "cpu",
	[AB_CG1_CPUACCT] = "cpuacct",
};

const char *ab_limits_mode_name(enum ab_limits_mode m)
{
	switch (m) {
	case AB_LIMITS_NONE: return "none";
	case AB_LIMITS_CGROUP2: return "cgroup2";
	case AB_LIMITS_CGROUP1: return "cgroup1";
	case AB_LIMITS_RLIMITS: return "rlimits";
	}
	return "unknown";
}

const char *ab_cgroup_v1_name(int controller)
{
	return controller >= 0 && controller < AB_CG1_N ? v1_names[controller] : NULL;
}

static int v1_index(const char *tok, size_t n)
{
	for (int i = 0; i < AB_CG1_N; i++)
		if (strlen(v1_names[i]) == n && memcmp(v1_names[i], tok, n) == 0)
			return i;
	return -1;
}

/* ---- pure parsers ---- */

/* Absolute, no empty, "." or ".." component, no trailing '/' (but "/" itself). */
static bool path_is_clean(const char *p, size_t n)
{
	if (n == 0 || n >= PATH_MAX || p[0] != '/')
		return false;
	if (n == 1)
		return true;
	if (p[n - 1] == '/')
		return false;
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && p[j] != '/')
			j++;
		size_t len = j - i - 1; /* the component p[i+1 .. j) */
		if (len == 0 || (len == 1 && p[i + 1] == '.') || (len == 2 && p[i + 1] == '.' && p[i + 2] == '.'))
			return false;
		i = j;
	}
	return true;
}

static void free_outputs(char **v2, char *v1[AB_CG1_N])
{
	free(*v2);
	*v2 = NULL;
	for (int i = 0; i < AB_CG1_N; i++) {
		free(v1[i]);
		v1[i] = NULL;
	}
}

static int count_outputs(char *v2, char *v1[AB_CG1_N])
{
	int n = v2 != NULL;
	for (int i = 0; i < AB_CG1_N; i++)
		n += v1[i] != NULL;
	return n;
}

int ab_cgroup_parse_self(const char *text, char **v2_path, char *v1_paths[AB_CG1_N])
{
	*v2_path = NULL;
	for (int i = 0; i < AB_CG1_N; i++)
		v1_paths[i] = NULL;

	for (const char *p = text; *p;) {
		const char *eol = strchrnul(p, '\n');
		const char *c1 = memchr(p, ':', (size_t)(eol - p));
		const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(eol - c1 - 1)) : NULL;
		const char *next = *eol ? eol + 1 : eol;
		bool id_ok = c1 && c1 > p;

		/* "ID:CONTROLLERS:PATH": the path is everything after the second colon. */
		for (const char *q = p; id_ok && q < c1; q++)
			id_ok = *q >= '0' && *q <= '9';
		if (!id_ok || !c2 || !path_is_clean(c2 + 1, (size_t)(eol - c2 - 1))) {
			p = next;
			continue;
		}
		const char *path = c2 + 1;
		size_t plen = (size_t)(eol - path);
		if (c1 - p == 1 && *p == '0' && c2 == c1 + 1) {
			if (!*v2_path && !(*v2_path = strndup(path, plen)))
				goto oom;
		} else {
			for (const char *t = c1 + 1; t < c2;) {
				const char *comma = memchr(t, ',', (size_t)(c2 - t));
				const char *end = comma ? comma : c2;
				int idx = v1_index(t, (size_t)(end - t));
				if (idx >= 0 && !v1_paths[idx] && !(v1_paths[idx] = strndup(path, plen)))
					goto oom;
				t = end + 1;
			}
		}
		p = next;
	}
	return count_outputs(*v2_path, v1_paths);
oom:
	free_outputs(v2_path, v1_paths);
	return -ENOMEM;
}

struct span {
	const char *s;
	size_t n;
};

#define MI_MAX_FIELDS 64

/* Splits on runs of spaces; returns the count, or MI_MAX_FIELDS + 1 when there are more. */
static size_t split_fields(const char *s, size_t len, struct span *f)
{
	size_t n = 0;

	for (size_t i = 0; i < len;) {
		while (i < len && s[i] == ' ')
			i++;
		if (i == len)
			break;
		size_t j = i;
		while (j < len && s[j] != ' ')
			j++;
		if (n == MI_MAX_FIELDS)
			return MI_MAX_FIELDS + 1;
		f[n++] = (struct span){ s + i, j - i };
		i = j;
	}
	return n;
}

static bool span_is(const struct span *sp, const char *word)
{
	return sp->n == strlen(word) && memcmp(sp->s, word, sp->n) == 0;
}

/* The kernel escapes space, tab, newline and backslash in mountinfo as \NNN (octal).
 * 1 with *out set, 0 when the result is not a usable path, -ENOMEM. */
static int unescape_mount(const struct span *sp, char **out)
{
	_cleanup_free_ char *buf = malloc(sp->n + 1);
	size_t o = 0;

	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < sp->n; i++) {
		const char *c = sp->s + i;
		if (*c == '\\' && i + 3 < sp->n && c[1] >= '0' && c[1] <= '3' &&
		    c[2] >= '0' && c[2] <= '7' && c[3] >= '0' && c[3] <= '7') {
			char v = (char)(((c[1] - '0') << 6) | ((c[2] - '0') << 3) | (c[3] - '0'));
			if (v == '\0')
				return 0;
			buf[o++] = v;
			i += 3;
		} else {
			buf[o++] = *c;
		}
	}
	buf[o] = '\0';
	if (!path_is_clean(buf, o))
		return 0;
	*out = TAKE_PTR(buf);
	return 1;
}

/* Takes this mount for a slot unless the slot holds a whole hierarchy already, or holds a
 * part and this is a part too (the first stays). */
static int offer_mount(char **slot, bool *slot_whole, const struct span *mnt, bool whole)
{
	char *m = NULL;
	int r;

	if (*slot && (*slot_whole || !whole))
		return 0;
	r = unescape_mount(mnt, &m);
	if (r <= 0)
		return r;
	free(*slot);
	*slot = m;
	*slot_whole = whole;
	return 0;
}

int ab_cgroup_parse_mountinfo(const char *text, char **v2_mount, char *v1_mounts[AB_CG1_N])
{
	bool whole2 = false, whole1[AB_CG1_N] = { false };
	struct span f[MI_MAX_FIELDS];

	*v2_mount = NULL;
	for (int i = 0; i < AB_CG1_N; i++)
		v1_mounts[i] = NULL;

	/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS" */
	for (const char *p = text; *p;) {
		const char *eol = strchrnul(p, '\n');
		size_t n = split_fields(p, (size_t)(eol - p), f);
		const char *next = *eol ? eol + 1 : eol;
		size_t sep = 0;
		int r = 0;

		if (n <= MI_MAX_FIELDS)
			for (size_t i = 6; i < n && !sep; i++)
				if (span_is(&f[i], "-"))
					sep = i;
		if (!sep || sep + 1 >= n) {
			p = next;
			continue;
		}
		bool whole = span_is(&f[3], "/");
		if (span_is(&f[sep + 1], "cgroup2")) {
			r = offer_mount(v2_mount, &whole2, &f[4], whole);
		} else if (span_is(&f[sep + 1], "cgroup") && sep + 3 < n) {
			const struct span *o = &f[sep + 3];
			for (const char *t = o->s; t < o->s + o->n && r >= 0;) {
				const char *end = memchr(t, ',', (size_t)(o->s + o->n - t));
				if (!end)
					end = o->s + o->n;
				int idx = v1_index(t, (size_t)(end - t));
				if (idx >= 0)
					r = offer_mount(&v1_mounts[idx], &whole1[idx], &f[4], whole);
				t = end + 1;
			}
		}
		if (r < 0) {
			free_outputs(v2_mount, v1_mounts);
			return r;
		}
		p = next;
	}
	return count_outputs(*v2_mount, v1_mounts);
}

/* ---- small file helpers ---- */

static char *join(const char *dir, const char *file)
{
	char *p;
	return asprintf(&p, "%s/%s", dir, file) < 0 ? NULL : p;
}

static int read_in(const char *dir, const char *file, char **out)
{
	_cleanup_free_ char *path = join(dir, file);

	if (!path)
		return -ENOMEM;
	return ab_read_file(path, AB_CGROUP_READ_MAX, out, NULL);
}

static int write_in(const char *dir, const char *file, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int write_in(const char *dir, const char *file, const char *fmt, ...)
{
	_cleanup_free_ char *path = join(dir, file);
	_cleanup_free_ char *val = NULL;
	va_list ap;
	int n;

	if (!path)
		return -ENOMEM;
	va_start(ap, fmt);
	n = vasprintf(&val, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	return ab_write_file(path, val, (size_t)n);
}

static bool exists_in(const char *dir, const char *file)
{
	_cleanup_free_ char *path = join(dir, file);
	return path && access(path, F_OK) == 0;
}

/* A number, or "max" (then *v = 0 and *is_max = true). */
static int parse_u64(const char *s, uint64_t *v, bool *is_max)
{
	char *end;
	unsigned long long x;

	while (*s == ' ' || *s == '\t')
		s++;
	if (is_max)
		*is_max = false;
	if (strncmp(s, "max", 3) == 0 && (s[3] == '\0' || s[3] == '\n' || s[3] == ' ')) {
		*v = 0;
		if (is_max)
			*is_max = true;
		return 0;
	}
	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno)
		return -errno;
	if (*end != '\0' && *end != '\n' && *end != ' ')
		return -EINVAL;
	*v = x;
	return 0;
}

static int read_u64_in(const char *dir, const char *file, uint64_t *v, bool *is_max)
{
	_cleanup_free_ char *text = NULL;
	int r = read_in(dir, file, &text);

	return r < 0 ? r : parse_u64(text, v, is_max);
}

/* The value of "key N" in a flat-keyed file (memory.events, cpu.stat, memory.oom_control). */
static int read_key_in(const char *dir, const char *file, const char *key, uint64_t *v)
{
	_cleanup_free_ char *text = NULL;
	size_t klen = strlen(key);
	int r = read_in(dir, file, &text);

	if (r < 0)
		return r;
	for (const char *p = text; *p;) {
		const char *eol = strchrnul(p, '\n');
		if ((size_t)(eol - p) > klen && strncmp(p, key, klen) == 0 && p[klen] == ' ')
			return parse_u64(p + klen + 1, v, NULL);
		p = *eol ? eol + 1 : eol;
	}
	return -ENOENT;
}

/* Does the space-separated list in dir/file hold word? */
static bool list_has(const char *dir, const char *file, const char *word)
{
	_cleanup_free_ char *text = NULL;
	size_t n = strlen(word);

	if (read_in(dir, file, &text) < 0)
		return false;
	for (const char *p = text; *p;) {
		p += strspn(p, " \n");
		size_t len = strcspn(p, " \n");
		if (len == n && strncmp(p, word, n) == 0)
			return true;
		p += len;
	}
	return false;
}

static bool is_permission_error(int r)
{
	return r == -EACCES || r == -EPERM || r == -EROFS;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* ---- setup ---- */

/* What the mounts and our own place in them are. */
struct found {
	char *v2_mount, *v1_mount[AB_CG1_N];
	char *v2_self, *v1_self[AB_CG1_N];
};

static void found_free(struct found *f)
{
	free_outputs(&f->v2_mount, f->v1_mount);
	free_outputs(&f->v2_self, f->v1_self);
}

/* The cgroup lines of /proc/self/mountinfo, streamed so the file's size does not matter. */
static int read_cgroup_mounts(char **out)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	_cleanup_free_ char *line = NULL;
	_cleanup_free_ char *buf = NULL;
	size_t cap = 0, used = 0;
	ssize_t n;

	if (!f)
		return -errno;
	if (!(buf = calloc(1, 1)))
		return -ENOMEM;
	for (int lines = 0; lines < MOUNTINFO_LINES_MAX && (n = getline(&line, &cap, f)) > 0; lines++) {
		if (!strstr(line, " - cgroup2 ") && !strstr(line, " - cgroup "))
			continue;
		if (used + (size_t)n > AB_CGROUP_READ_MAX)
			break;
		char *grown = realloc(buf, used + (size_t)n + 1);
		if (!grown)
			return -ENOMEM;
		buf = grown;
		memcpy(buf + used, line, (size_t)n + 1);
		used += (size_t)n;
	}
	*out = TAKE_PTR(buf);
	return 0;
}

static int find_cgroups(struct found *f)
{
	_cleanup_free_ char *mounts = NULL;
	_cleanup_free_ char *self = NULL;
	int r;

	r = read_cgroup_mounts(&mounts);
	if (r < 0)
		return r;
	r = ab_cgroup_parse_mountinfo(mounts, &f->v2_mount, f->v1_mount);
	if (r < 0)
		return r;
	/* Without /proc/self/cgroup we only lose delegation, which needs our own place. */
	if (ab_read_file("/proc/self/cgroup", AB_CGROUP_READ_MAX, &self, NULL) == 0) {
		r = ab_cgroup_parse_self(self, &f->v2_self, f->v1_self);
		if (r < 0)
			return r;
	}
	return 0;
}

/* mkdir of the sandbox's directory. A leftover of a crashed run is removed when it holds
 * nothing (rmdir of a cgroup fails while processes or child cgroups remain), else reused:
 * then *created stays false, so a failure later leaves it as it was found. */
static int make_leaf(const char *path, bool *created)
{
	*created = false;
	if (mkdir(path, 0755) == 0) {
		*created = true;
		return 0;
	}
	if (errno != EEXIST)
		return -errno;
	if (rmdir(path) < 0)
		return errno == EBUSY || errno == ENOTEMPTY ? 0 : -errno;
	if (mkdir(path, 0755) < 0)
		return -errno;
	*created = true;
	return 0;
}

static void append(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t size, const char *fmt, ...)
{
	size_t n = strnlen(buf, size);
	va_list ap;

	if (n + 1 >= size)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + n, size - n, fmt, ap);
	va_end(ap);
}

static uint64_t swap_bytes(const struct ab_limits *lim)
{
	return lim->memory_swap > 0 && (uint64_t)lim->memory_swap > lim->memory
		       ? (uint64_t)lim->memory_swap - lim->memory
		       : 0;
}

static int limit_error(struct ab_error *err, int r, const char *what, const char *value, const char *dir,
		       const char *file)
{
	ab_error_set(err, -r, "cannot set the %s limit '%s' in '%s/%s'", what, value, dir, file);
	if (r == -EBUSY)
		append(err->msg, sizeof(err->msg), " (the sandbox already uses more than that)");
	else if (r == -EINVAL)
		append(err->msg, sizeof(err->msg), " (the kernel refuses this value)");
	return r;
}

/* pids.max in dir (the same file in v1 and v2), or a note when there is no pids controller. */
static int write_pids(const char *dir, const struct ab_limits *lim, char *notes, size_t nsize, struct ab_error *err)
{
	char v[32];
	int r;

	if (!dir) {
		if (lim->pids)
			append(notes, nsize, "; pids not limited: no pids controller");
		return 0;
	}
	if (lim->pids)
		snprintf(v, sizeof(v), "%" PRIu64, lim->pids);
	else
		snprintf(v, sizeof(v), "max");
	r = write_in(dir, "pids.max", "%s", v);
	return r < 0 ? limit_error(err, r, "pids", v, dir, "pids.max") : 0;
}

static int cpu_quota_us(const struct ab_limits *lim, uint64_t *quota, struct ab_error *err)
{
	/* thousandths of a CPU times 100000 us / 1000 */
	if (lim->cpu_millis > UINT64_MAX / (AB_CGROUP_CPU_PERIOD_US / 1000))
		return ab_error_set(err, EINVAL, "cannot set the cpu limit '%" PRIu64 "' thousandths of a CPU: too large",
				    lim->cpu_millis);
	*quota = lim->cpu_millis * (AB_CGROUP_CPU_PERIOD_US / 1000);
	return 0;
}

/* Writes lim into a v2 leaf; notes what could not be limited. */
static int v2_write_limits(const char *dir, const struct ab_limits *lim, char *notes, size_t nsize,
			   struct ab_error *err)
{
	char v[64];
	int r;

	if (exists_in(dir, "memory.max")) {
		if (lim->memory)
			snprintf(v, sizeof(v), "%" PRIu64, lim->memory);
		else
			snprintf(v, sizeof(v), "max");
		r = write_in(dir, "memory.max", "%s", v);
		if (r < 0)
			return limit_error(err, r, "memory", v, dir, "memory.max");
		/* without a memory limit, swap is not limited either */
		if (lim->memory)
			snprintf(v, sizeof(v), "%" PRIu64, swap_bytes(lim));
		else
			snprintf(v, sizeof(v), "max");
		r = write_in(dir, "memory.swap.max", "%s", v);
		if (r == -ENOENT) {
			if (lim->memory)
				append(notes, nsize, "; swap not limited: no memory.swap.max");
		} else if (r < 0) {
			return limit_error(err, r, "swap", v, dir, "memory.swap.max");
		}
	} else if (lim->memory) {
		append(notes, nsize, "; memory not limited: no memory controller");
	}

	if ((r = write_pids(exists_in(dir, "pids.max") ? dir : NULL, lim, notes, nsize, err)) < 0)
		return r;

	if (exists_in(dir, "cpu.max")) {
		uint64_t quota = 0;
		if (lim->cpu_millis) {
			r = cpu_quota_us(lim, &quota, err);
			if (r < 0)
				return r;
			snprintf(v, sizeof(v), "%" PRIu64 " %d", quota, AB_CGROUP_CPU_PERIOD_US);
		} else {
			snprintf(v, sizeof(v), "max %d", AB_CGROUP_CPU_PERIOD_US);
		}
		r = write_in(dir, "cpu.max", "%s", v);
		if (r < 0)
			return limit_error(err, r, "cpu", v, dir, "cpu.max");
	} else if (lim->cpu_millis) {
		append(notes, nsize, "; cpu not limited: no cpu controller");
	}
	return 0;
}

/* Enables a controller for the children of dir, unless it is already. */
static int v2_enable(const char *dir, const char *controller)
{
	if (list_has(dir, "cgroup.subtree_control", controller))
		return 0;
	return write_in(dir, "cgroup.subtree_control", "+%s", controller);
}

static const char *const v2_controllers[] = { "memory", "pids", "cpu" };

/* Makes tree/agentbox/name with the controllers tree offers. 1 done, 0 not possible here
 * (reason set), < 0 error. */
static int v2_create(const char *tree, bool delegated, const char *name, const struct ab_limits *lim,
		     struct ab_cgroup *cg, char *reason, size_t rsize, struct ab_error *err)
{
	_cleanup_free_ char *base = join(tree, "agentbox");
	_cleanup_free_ char *leaf = NULL;
	char notes[160] = "", list[64] = "";
	bool created;
	int r;

	if (!base)
		return ab_error_set(err, ENOMEM, "cannot set up the sandbox's cgroup");
	/* Enabling controllers at the top of the tree is what needs root (or delegation). */
	for (size_t i = 0; i < AB_ELEMENTSOF(v2_controllers); i++) {
		if (!list_has(tree, "cgroup.controllers", v2_controllers[i]))
			continue;
		r = v2_enable(tree, v2_controllers[i]);
		if (r < 0) {
			snprintf(reason, rsize, "cannot enable the %s controller in '%s': %s", v2_controllers[i], tree,
				 strerror(-r));
			return 0;
		}
	}
	if (mkdir(base, 0755) < 0 && errno != EEXIST) {
		if (is_permission_error(-errno)) {
			snprintf(reason, rsize, "cannot write the cgroup tree '%s': %s", tree, strerror(errno));
			return 0;
		}
		return ab_error_set(err, errno, "cannot create the cgroup '%s'", base);
	}
	for (size_t i = 0; i < AB_ELEMENTSOF(v2_controllers); i++) {
		if (!list_has(base, "cgroup.controllers", v2_controllers[i]))
			continue;
		r = v2_enable(base, v2_controllers[i]);
		if (r < 0) {
			snprintf(reason, rsize, "cannot enable the %s controller in '%s': %s", v2_controllers[i], base,
				 strerror(-r));
			return 0;
		}
	}
	leaf = join(base, name);
	if (!leaf)
		return ab_error_set(err, ENOMEM, "cannot set up the sandbox's cgroup");
	r = make_leaf(leaf, &created);
	if (is_permission_error(r)) {
		snprintf(reason, rsize, "cannot write the cgroup tree '%s': %s", base, strerror(-r));
		return 0;
	}
	if (r < 0)
		return ab_error_set(err, -r, "cannot create the cgroup '%s'", leaf);
	r = v2_write_limits(leaf, lim, notes, sizeof(notes), err);
	if (r < 0) {
		if (created)
			(void)rmdir(leaf);
		return r;
	}
	for (size_t i = 0; i < AB_ELEMENTSOF(v2_controllers); i++)
		if (list_has(leaf, "cgroup.controllers", v2_controllers[i]))
			append(list, sizeof(list), "%s%s", list[0] ? ", " : "", v2_controllers[i]);
	cg->mode = AB_LIMITS_CGROUP2;
	cg->v2 = TAKE_PTR(leaf);
	append(cg->why, sizeof(cg->why), "cgroup v2 (%s)%s%s", list[0] ? list : "no controllers",
	       delegated ? ", in our delegated subtree" : "", notes);
	return 1;
}

#define NO_DELEGATION "no delegated cgroup (run as root, or under a systemd user session)"

static int setup_v2(const struct found *f, const char *name, const struct ab_limits *lim, struct ab_cgroup *cg,
		    char *reason, size_t rsize, struct ab_error *err)
{
	_cleanup_free_ char *parent = NULL;
	_cleanup_free_ char *tree = NULL;
	_cleanup_free_ char *procs = NULL;
	struct stat st;
	int r;

	/* The controllers a delegated subtree can have are among the root's: without memory
	 * at the root (a hybrid host keeps it on v1) this tree is no use for limits. */
	if (!list_has(f->v2_mount, "cgroup.controllers", "memory")) {
		snprintf(reason, rsize, "the cgroup2 tree '%s' has no memory controller", f->v2_mount);
		return 0;
	}
	r = v2_create(f->v2_mount, false, name, lim, cg, reason, rsize, err);
	if (r != 0)
		return r;
	/* Root that cannot write the tree (a read-only mount) keeps that reason. */
	if (geteuid() != 0)
		snprintf(reason, rsize, NO_DELEGATION);
	/* Delegation: the parent of our own cgroup, owned by us and writable (systemd's
	 * user@UID.service gives its user such a subtree). Moving a process needs write access
	 * to cgroup.procs of the common ancestor of where it is and where it goes: this one. */
	if (!f->v2_self || strcmp(f->v2_self, "/") == 0)
		return 0;
	parent = strdup(f->v2_self);
	if (!parent)
		return ab_error_set(err, ENOMEM, "cannot set up the sandbox's cgroup");
	*strrchr(parent, '/') = '\0';
	if (!parent[0])
		return 0;
	if (asprintf(&tree, "%s%s", f->v2_mount, parent) < 0 || !(procs = join(tree, "cgroup.procs"))) {
		tree = NULL;
		return ab_error_set(err, ENOMEM, "cannot set up the sandbox's cgroup");
	}
	if (stat(tree, &st) < 0 || st.st_uid != geteuid() || access(tree, W_OK) < 0 || access(procs, W_OK) < 0)
		return 0;
	/* A delegated tree that still fails says why: that is worth more than the hint. */
	return v2_create(tree, true, name, lim, cg, reason, rsize, err);
}

static int v1_write_limits(struct ab_cgroup *cg, const struct ab_limits *lim, char *notes, size_t nsize,
			   struct ab_error *err)
{
	const char *mem = cg->v1[AB_CG1_MEMORY], *pids = cg->v1[AB_CG1_PIDS], *cpu = cg->v1[AB_CG1_CPU];
	char v[64];
	int r;

	if (mem) {
		bool memsw = exists_in(mem, "memory.memsw.limit_in_bytes");
		/* memsw may never be below the memory limit: lift it first, so that both can be
		 * set in any order (a reused cgroup may hold old values). */
		if (memsw) {
			r = write_in(mem, "memory.memsw.limit_in_bytes", "-1");
			if (r < 0)
				return limit_error(err, r, "memory+swap", "-1", mem, "memory.memsw.limit_in_bytes");
		}
		if (lim->memory)
			snprintf(v, sizeof(v), "%" PRIu64, lim->memory);
		else
			snprintf(v, sizeof(v), "-1");
		r = write_in(mem, "memory.limit_in_bytes", "%s", v);
		if (r < 0)
			return limit_error(err, r, "memory", v, mem, "memory.limit_in_bytes");
		if (lim->memory && memsw) {
			snprintf(v, sizeof(v), "%" PRIu64, lim->memory + swap_bytes(lim));
			r = write_in(mem, "memory.memsw.limit_in_bytes", "%s", v);
			if (r < 0)
				return limit_error(err, r, "memory+swap", v, mem, "memory.memsw.limit_in_bytes");
		} else if (lim->memory) {
			append(notes, nsize, "; swap not limited: no memory.memsw (swap accounting off)");
		}
	} else if (lim->memory) {
		append(notes, nsize, "; memory not limited: no memory controller");
	}

	if ((r = write_pids(pids, lim, notes, nsize, err)) < 0)
		return r;

	if (cpu) {
		uint64_t quota = 0;
		r = write_in(cpu, "cpu.cfs_quota_us", "-1");
		if (r < 0)
			return limit_error(err, r, "cpu", "-1", cpu, "cpu.cfs_quota_us");
		snprintf(v, sizeof(v), "%d", AB_CGROUP_CPU_PERIOD_US);
		r = write_in(cpu, "cpu.cfs_period_us", "%s", v);
		if (r < 0)
			return limit_error(err, r, "cpu period", v, cpu, "cpu.cfs_period_us");
		if (lim->cpu_millis) {
			r = cpu_quota_us(lim, &quota, err);
			if (r < 0)
				return r;
			snprintf(v, sizeof(v), "%" PRIu64, quota);
			r = write_in(cpu, "cpu.cfs_quota_us", "%s", v);
			if (r < 0)
				return limit_error(err, r, "cpu", v, cpu, "cpu.cfs_quota_us");
		}
	} else if (lim->cpu_millis) {
		append(notes, nsize, "; cpu not limited: no cpu controller");
	}
	return 0;
}

/* One directory per v1 controller, shared by controllers mounted together. 1 done, 0 not
 * possible here (reason set), < 0 error. */
static int setup_v1(const struct found *f, const char *name, const struct ab_limits *lim, struct ab_cgroup *cg,
		    char *reason, size_t rsize, struct ab_error *err)
{
	bool created[AB_CG1_N] = { false };
	char notes[160] = "", list[64] = "";
	int r = 0;

	for (int i = 0; i < AB_CG1_N && r >= 0; i++) {
		_cleanup_free_ char *base = NULL;
		const char *mount = f->v1_mount[i];
		int same = -1;

		if (!mount)
			continue;
		for (int j = 0; j < i; j++)
			if (f->v1_mount[j] && cg->v1[j] && strcmp(f->v1_mount[j], mount) == 0)
				same = j;
		if (same >= 0) {
			if (!(cg->v1[i] = strdup(cg->v1[same])))
				r = ab_error_set(err, ENOMEM, "cannot set up the sandbox's cgroup");
			continue;
		}
		base = join(mount, "agentbox");
		if (!base) {
			r = ab_error_set(err, ENOMEM, "cannot set up the sandbox's cgroup");
			break;
		}
		if (mkdir(base, 0755) < 0 && errno != EEXIST) {
			if (is_permission_error(-errno)) {
				snprintf(reason, rsize, "cannot write the cgroup tree '%s': %s", mount, strerror(errno));
				r = 1; /* not possible: undo below, then report 0 */
			} else {
				r = ab_error_set(err, errno, "cannot create the cgroup '%s'", base);
			}
			break;
		}
		cg->v1[i] = join(base, name);
		if (!cg->v1[i]) {
			r = ab_error_set(err, ENOMEM, "cannot set up the sandbox's cgroup");
			break;
		}
		r = make_leaf(cg->v1[i], &created[i]);
		if (is_permission_error(r)) {
			snprintf(reason, rsize, "cannot write the cgroup tree '%s': %s", base, strerror(-r));
			r = 1;
			break;
		}
		if (r < 0)
			ab_error_set(err, -r, "cannot create the cgroup '%s'", cg->v1[i]);
	}
	if (r == 0)
		r = v1_write_limits(cg, lim, notes, sizeof(notes), err);
	if (r != 0) {
		for (int i = 0; i < AB_CG1_N; i++)
			if (created[i])
				(void)rmdir(cg->v1[i]);
		ab_cgroup_free(cg);
		return r < 0 ? r : 0;
	}
	for (int i = 0; i < AB_CG1_N; i++)
		if (cg->v1[i])
			append(list, sizeof(list), "%s%s", list[0] ? ", " : "", v1_names[i]);
	cg->mode = AB_LIMITS_CGROUP1;
	append(cg->why, sizeof(cg->why), "cgroup v1 (%s)%s", list, notes);
	return 1;
}

static bool name_is_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > AB_MAX_NAME_LEN || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

int ab_cgroup_setup(const char *name, const struct ab_limits *lim, struct ab_cgroup *cg, struct ab_error *err)
{
	static const struct ab_limits no_limits = { .memory_swap = -1 };
	struct found f = { 0 };
	char reason[200] = "no cgroup filesystem mounted";
	bool want;
	int r = 0;

	memset(cg, 0, sizeof(*cg));
	if (!lim)
		lim = &no_limits;
	want = lim->memory || lim->pids || lim->cpu_millis;
	if (!name || !name_is_valid(name))
		return ab_error_set(err, EINVAL, "cannot create a cgroup named '%s': not a valid name",
				    name ? name : "(null)");
	r = find_cgroups(&f);
	if (r < 0) {
		found_free(&f);
		return ab_error_set(err, -r, "cannot find the cgroup mounts in '/proc/self/mountinfo'");
	}
	r = 0;
	if (f.v2_mount)
		r = setup_v2(&f, name, lim, cg, reason, sizeof(reason), err);
	if (r == 0 && f.v1_mount[AB_CG1_MEMORY]) {
		r = setup_v1(&f, name, lim, cg, reason, sizeof(reason), err);
		/* v1 has no delegation: for an unprivileged user, no permission means no cgroup. */
		if (r == 0 && geteuid() != 0 && strstr(reason, "cannot write"))
			snprintf(reason, sizeof(reason), NO_DELEGATION);
	}
	found_free(&f);
	if (r < 0) {
		ab_cgroup_free(cg);
		return r;
	}
	if (r == 0) {
		cg->mode = want ? AB_LIMITS_RLIMITS : AB_LIMITS_NONE;
		append(cg->why, sizeof(cg->why), "%s: %s", want ? "rlimits only" : "no cgroup", reason);
	}
	return 0;
}

/* ---- using a cgroup ---- */

/* The distinct directories of cg (v1 controllers mounted together share one). */
static size_t distinct_dirs(const struct ab_cgroup *cg, const char *out[AB_CG1_N + 1])
{
	size_t n = 0;

	if (cg->v2)
		out[n++] = cg->v2;
	for (int i = 0; i < AB_CG1_N; i++) {
		bool dup = false;
		if (!cg->v1[i])
			continue;
		for (size_t j = 0; j < n; j++)
			dup = dup || strcmp(out[j], cg->v1[i]) == 0;
		if (!dup)
			out[n++] = cg->v1[i];
	}
	return n;
}

int ab_cgroup_add(const struct ab_cgroup *cg, pid_t pid, struct ab_error *err)
{
	const char *dirs[AB_CG1_N + 1];
	size_t n = distinct_dirs(cg, dirs);

	for (size_t i = 0; i < n; i++) {
		int r = write_in(dirs[i], "cgroup.procs", "%d", (int)pid);
		if (r < 0)
			return ab_error_set(err, -r, "cannot move process %d into the cgroup '%s'", (int)pid, dirs[i]);
	}
	return 0;
}

size_t ab_cgroup_procs_files(const struct ab_cgroup *cg, char **out)
{
	const char *dirs[AB_CG1_N + 1];
	size_t n = distinct_dirs(cg, dirs), k = 0;

	for (size_t i = 0; i < n; i++)
		if ((out[k] = join(dirs[i], "cgroup.procs")))
			k++;
	out[k] = NULL;
	return k;
}

int ab_cgroup_oom_kills(const struct ab_cgroup *cg, uint64_t *count)
{
	int r = 0;

	*count = 0;
	if (cg->v2)
		r = read_key_in(cg->v2, "memory.events", "oom_kill", count);
	else if (cg->v1[AB_CG1_MEMORY])
		r = read_key_in(cg->v1[AB_CG1_MEMORY], "memory.oom_control", "oom_kill", count);
	if (r < 0)
		*count = 0;
	return r;
}

/* v1 reports "no limit" as the page counter's maximum, rounded to pages. */
static uint64_t v1_limit(uint64_t v)
{
	return v >= (1ULL << 60) ? 0 : v;
}

int ab_cgroup_read_stats(const struct ab_cgroup *cg, struct ab_cgroup_stats *st)
{
	uint64_t v;
	bool is_max;

	memset(st, 0, sizeof(*st));
	if (cg->v2) {
		const char *d = cg->v2;
		if (read_key_in(d, "cpu.stat", "usage_usec", &v) == 0) {
			st->have_cpu = true;
			st->cpu_usage_ns = v * 1000;
		}
		if (read_u64_in(d, "memory.current", &st->memory_current, NULL) == 0) {
			st->have_memory = true;
			if (read_u64_in(d, "memory.max", &v, &is_max) == 0)
				st->memory_max = is_max ? 0 : v;
			(void)read_u64_in(d, "memory.peak", &st->memory_peak, NULL);
		}
		if (read_u64_in(d, "pids.current", &st->pids_current, NULL) == 0) {
			st->have_pids = true;
			if (read_u64_in(d, "pids.max", &v, &is_max) == 0)
				st->pids_max = is_max ? 0 : v;
		}
		return 0;
	}
	if (cg->v1[AB_CG1_CPUACCT] && read_u64_in(cg->v1[AB_CG1_CPUACCT], "cpuacct.usage", &v, NULL) == 0) {
		st->have_cpu = true;
		st->cpu_usage_ns = v;
	}
	if (cg->v1[AB_CG1_MEMORY]) {
		const char *d = cg->v1[AB_CG1_MEMORY];
		if (read_u64_in(d, "memory.usage_in_bytes", &st->memory_current, NULL) == 0) {
			st->have_memory = true;
			if (read_u64_in(d, "memory.limit_in_bytes", &v, NULL) == 0)
				st->memory_max = v1_limit(v);
			(void)read_u64_in(d, "memory.max_usage_in_bytes", &st->memory_peak, NULL);
		}
	}
	if (cg->v1[AB_CG1_PIDS] && read_u64_in(cg->v1[AB_CG1_PIDS], "pids.current", &st->pids_current, NULL) == 0) {
		st->have_pids = true;
		if (read_u64_in(cg->v1[AB_CG1_PIDS], "pids.max", &v, &is_max) == 0)
			st->pids_max = is_max ? 0 : v;
	}
	return 0;
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
	return (x > y) - (x < y);
}

static int push_pid(pid_t **pids, size_t *n, size_t *cap, long pid)
{
	if (pid <= 0 || *n >= AB_CGROUP_MAX_PROCS)
		return 0;
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		pid_t *grown = realloc(*pids, ncap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		*pids = grown;
		*cap = ncap;
	}
	(*pids)[(*n)++] = (pid_t)pid;
	return 0;
}

/* The pids of dir/cgroup.procs, sorted, at most AB_CGROUP_MAX_PROCS. The file is read in
 * pieces: its size grows with the number of processes, which the sandbox controls. */
static int read_pids(const char *dir, pid_t **out, size_t *n_out)
{
	_cleanup_free_ char *path = join(dir, "cgroup.procs");
	_cleanup_free_ pid_t *pids = NULL;
	_cleanup_close_ int fd = -1;
	size_t n = 0, cap = 0;
	long cur = -1;
	char buf[4096];
	int r;

	*out = NULL;
	*n_out = 0;
	if (!path)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t got = read(fd, buf, sizeof(buf));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			break;
		for (ssize_t i = 0; i < got; i++) {
			if (buf[i] >= '0' && buf[i] <= '9') {
				cur = (cur < 0 ? 0 : cur) * 10 + (buf[i] - '0');
				if (cur > INT_MAX)
					return -EINVAL;
				continue;
			}
			if ((r = push_pid(&pids, &n, &cap, cur)) < 0)
				return r;
			cur = -1;
		}
	}
	if ((r = push_pid(&pids, &n, &cap, cur)) < 0)
		return r;
	if (n)
		qsort(pids, n, sizeof(*pids), cmp_pid);
	*out = TAKE_PTR(pids);
	*n_out = n;
	return 0;
}

/* Signals the processes of dir and of its child cgroups; *found counts them. */
static int signal_tree(const char *dir, int sig, int depth, size_t *found)
{
	_cleanup_free_ pid_t *first = NULL;
	_cleanup_free_ pid_t *again = NULL;
	_cleanup_free_ int *fds = NULL;
	size_t n1 = 0, n2 = 0;
	DIR *d;
	int r;

	r = read_pids(dir, &first, &n1);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (n1) {
		/* Pin each process with a pidfd, then read again: a pid still listed is still in
		 * the cgroup, so the pinned process is that one, not a stranger given its pid. */
		fds = malloc(n1 * sizeof(*fds));
		if (!fds)
			return -ENOMEM;
		for (size_t i = 0; i < n1; i++) {
			fds[i] = first[i] == getpid() ? -1 : (int)syscall(SYS_pidfd_open, first[i], 0);
			if (fds[i] < 0 && errno == ENOSYS && first[i] != getpid())
				fds[i] = NO_PIDFD;
		}
		r = read_pids(dir, &again, &n2);
		for (size_t i = 0; i < n1; i++) {
			bool listed = r == 0 && bsearch(&first[i], again, n2, sizeof(*again), cmp_pid);
			if (fds[i] == NO_PIDFD) {
				/* before Linux 5.3: no pidfds, a plain kill of a pid listed twice */
				if (listed && kill(first[i], sig) == 0)
					(*found)++;
				continue;
			}
			if (fds[i] < 0)
				continue;
			if (listed && syscall(SYS_pidfd_send_signal, fds[i], sig, NULL, 0) == 0)
				(*found)++;
			close(fds[i]);
		}
		if (r < 0 && r != -ENOENT)
			return r;
	}
	if (depth >= MAX_TREE_DEPTH)
		return 0;
	d = opendir(dir);
	if (!d)
		return 0;
	r = 0;
	for (struct dirent *de; r >= 0 && (de = readdir(d));) {
		_cleanup_free_ char *sub = NULL;
		if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		sub = join(dir, de->d_name);
		r = sub ? signal_tree(sub, sig, depth + 1, found) : -ENOMEM;
	}
	closedir(d);
	return r;
}

/* The directory whose cgroup.procs lists every process of the sandbox. */
static const char *procs_dir(const struct ab_cgroup *cg)
{
	if (cg->v2)
		return cg->v2;
	if (cg->v1[AB_CG1_PIDS])
		return cg->v1[AB_CG1_PIDS];
	if (cg->v1[AB_CG1_MEMORY])
		return cg->v1[AB_CG1_MEMORY];
	for (int i = 0; i < AB_CG1_N; i++)
		if (cg->v1[i])
			return cg->v1[i];
	return NULL;
}

int ab_cgroup_kill(const struct ab_cgroup *cg, int sig)
{
	const char *dir = procs_dir(cg);
	int r;

	if (!dir)
		return 0;
	/* cgroup.kill (Linux 5.14) kills the whole subtree at once, forks included; older
	 * kernels and v1 go process by process. */
	if (cg->v2 && sig == SIGKILL && write_in(cg->v2, "cgroup.kill", "1") == 0)
		return 0;
	for (int pass = 0; pass < (sig == SIGKILL ? KILL_PASSES : 1); pass++) {
		size_t found = 0;
		r = signal_tree(dir, sig, 0, &found);
		if (r < 0)
			return r;
		if (!found)
			break;
		sleep_ms(5);
	}
	return 0;
}

/* rmdir of dir after its child cgroups, deepest first. */
static int remove_tree(const char *dir, int depth)
{
	DIR *d = depth < MAX_TREE_DEPTH ? opendir(dir) : NULL;

	if (d) {
		for (struct dirent *de; (de = readdir(d));) {
			_cleanup_free_ char *sub = NULL;
			if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			sub = join(dir, de->d_name);
			if (sub)
				(void)remove_tree(sub, depth + 1);
		}
		closedir(d);
	}
	if (rmdir(dir) == 0 || errno == ENOENT)
		return 0;
	return errno == ENOTEMPTY ? -EBUSY : -errno;
}

int ab_cgroup_remove(const struct ab_cgroup *cg, struct ab_error *err)
{
	const char *dirs[AB_CG1_N + 1];
	size_t n = distinct_dirs(cg, dirs);
	int64_t deadline = mono_ms() + AB_CGROUP_REMOVE_TIMEOUT_MS, last_kill = 0;
	bool killed = false;

	for (;;) {
		const char *busy = NULL;
		for (size_t i = 0; i < n; i++) {
			int r = remove_tree(dirs[i], 0);
			if (r == -EBUSY)
				busy = dirs[i];
			else if (r < 0)
				return ab_error_set(err, -r, "cannot remove the cgroup '%s'", dirs[i]);
		}
		if (!busy)
			return 0;
		if (mono_ms() > deadline)
			return ab_error_set(err, EBUSY, "cannot remove the cgroup '%s': processes remain after SIGKILL",
					    busy);
		/* Again now and then: v1 has no atomic kill, and a fork may have raced the last. */
		if (!killed || mono_ms() - last_kill >= 100) {
			(void)ab_cgroup_kill(cg, SIGKILL);
			last_kill = mono_ms();
			killed = true;
		}
		sleep_ms(5);
	}
}

void ab_cgroup_free(struct ab_cgroup *cg)
{
	if (!cg)
		return;
	free(cg->v2);
	for (int i = 0; i < AB_CG1_N; i++)
		free(cg->v1[i]);
	memset(cg, 0, sizeof(*cg));
}

/* ---- state file ---- */

struct json_object *ab_cgroup_to_json(const struct ab_cgroup *cg)
{
	json_object *o = json_object_new_object();
	json_object *v1 = NULL;

	if (!o)
		return NULL;
	for (int i = 0; i < AB_CG1_N; i++) {
		if (!cg->v1[i])
			continue;
		if (!v1 && !(v1 = json_object_new_object()))
			goto oom;
		if (json_object_object_add(v1, v1_names[i], json_object_new_string(cg->v1[i])) < 0)
			goto oom;
	}
	if (json_object_object_add(o, "mode", json_object_new_string(ab_limits_mode_name(cg->mode))) < 0 ||
	    json_object_object_add(o, "v2", cg->v2 ? json_object_new_string(cg->v2) : NULL) < 0 ||
	    json_object_object_add(o, "v1", v1) < 0)
		goto oom;
	v1 = NULL;
	if (json_object_object_add(o, "why", json_object_new_string(cg->why)) < 0)
		goto oom;
	return o;
oom:
	json_object_put(v1);
	json_object_put(o);
	return NULL;
}

/* A sandbox's cgroup directory: clean, absolute, and ".../agentbox/<valid name>". */
static bool state_path_is_valid(const char *p, size_t len)
{
	const char *last, *parent_end;

	if (strlen(p) != len || !path_is_clean(p, len))
		return false;
	last = strrchr(p, '/');
	if (!name_is_valid(last + 1))
		return false;
	parent_end = last;
	if (parent_end - p < (ptrdiff_t)strlen("/agentbox"))
		return false;
	return memcmp(parent_end - strlen("/agentbox"), "/agentbox", strlen("/agentbox")) == 0;
}

static int path_from_json(json_object *v, char **out)
{
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_string) ||
	    !state_path_is_valid(json_object_get_string(v), (size_t)json_object_get_string_len(v)))
		return -EINVAL;
	*out = strdup(json_object_get_string(v));
	return *out ? 0 : -ENOMEM;
}

int ab_cgroup_from_json(struct json_object *o, struct ab_cgroup *cg)
{
	json_object *v;
	bool any_v1 = false;
	int r, mode = -1;

	memset(cg, 0, sizeof(*cg));
	if (!o || !json_object_is_type(o, json_type_object))
		return -EINVAL;
	if (!json_object_object_get_ex(o, "mode", &v) || !json_object_is_type(v, json_type_string))
		return -EINVAL;
	for (int m = AB_LIMITS_NONE; m <= AB_LIMITS_RLIMITS; m++)
		if (strcmp(json_object_get_string(v), ab_limits_mode_name((enum ab_limits_mode)m)) == 0)
			mode = m;
	if (mode < 0)
		return -EINVAL;
	cg->mode = (enum ab_limits_mode)mode;
	if (json_object_object_get_ex(o, "v2", &v) && (r = path_from_json(v, &cg->v2)) < 0)
		goto fail;
	if (json_object_object_get_ex(o, "v1", &v) && v) {
		r = -EINVAL;
		if (!json_object_is_type(v, json_type_object))
			goto fail;
		json_object_object_foreach(v, key, val)
		{
			int idx = v1_index(key, strlen(key));
			if (idx < 0 || cg->v1[idx] || !val || (r = path_from_json(val, &cg->v1[idx])) < 0) {
				r = r < 0 ? r : -EINVAL;
				goto fail;
			}
			any_v1 = true;
		}
	}
	r = -EINVAL;
	if ((cg->mode == AB_LIMITS_CGROUP2) != (cg->v2 != NULL) || (cg->mode == AB_LIMITS_CGROUP1) != any_v1)
		goto fail;
	if (json_object_object_get_ex(o, "why", &v) && v) {
		if (!json_object_is_type(v, json_type_string))
			goto fail;
		snprintf(cg->why, sizeof(cg->why), "%s", json_object_get_string(v));
	}
	return 0;
fail:
	ab_cgroup_free(cg);
	return r;
}
