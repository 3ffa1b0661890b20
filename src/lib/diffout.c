#include "diffout.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "textdiff.h"

#define C_BOLD "\033[1m"
#define C_RED "\033[31m"
#define C_GREEN "\033[32m"
#define C_CYAN "\033[36m"
#define C_RESET "\033[m"

#define STAT_BAR_MAX 40
#define STAT_NAME_MAX 60

/* ---- UTF-8 and quoting ---- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
	unsigned char c = p[0];
	size_t len;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (left < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static bool utf8_valid(const char *s)
{
	size_t left = strlen(s);

	for (const unsigned char *p = (const unsigned char *)s; left;) {
		size_t n = utf8_seq(p, left);
		if (!n)
			return false;
		p += n;
		left -= n;
	}
	return true;
}

/* s with each byte that is not part of valid UTF-8 replaced by U+FFFD. */
static char *utf8_lossy(const char *s)
{
	size_t left = strlen(s);
	char *out = malloc(left * 3 + 1), *o = out;

	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; left;) {
		size_t n = utf8_seq(p, left);
		if (n) {
			memcpy(o, p, n);
			o += n;
			p += n;
			left -= n;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			p++;
			left--;
		}
	}
	*o = '\0';
	return out;
}

static bool needs_quoting(const char *s, bool valid)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == '"' || *p == '\\' || *p == 0x7f || (*p >= 0x80 && !valid))
			return true;
	return false;
}

char *ab_diff_quote_path(const char *prefix, const char *path)
{
	bool valid = utf8_valid(path);
	size_t n = strlen(prefix) + strlen(path);
	char *out, *o;

	if (!needs_quoting(path, valid) && !needs_quoting(prefix, true)) {
		out = malloc(n + 1);
		if (out)
			stpcpy(stpcpy(out, prefix), path);
		return out;
	}
	out = malloc(n * 4 + 3);
	if (!out)
		return NULL;
	o = out;
	*o++ = '"';
	for (int part = 0; part < 2; part++) {
		for (const unsigned char *p = (const unsigned char *)(part ? path : prefix); *p; p++) {
			const char *esc = NULL;
			switch (*p) {
			case '\n': esc = "\\n"; break;
			case '\t': esc = "\\t"; break;
			case '\r': esc = "\\r"; break;
			case '"': esc = "\\\""; break;
			case '\\': esc = "\\\\"; break;
			case '\a': esc = "\\a"; break;
			case '\b': esc = "\\b"; break;
			case '\f': esc = "\\f"; break;
			case '\v': esc = "\\v"; break;
			default: break;
			}
			if (esc)
				o = stpcpy(o, esc);
			else if (*p < ' ' || *p == 0x7f || (*p >= 0x80 && !valid))
				o += sprintf(o, "\\%03o", *p);
			else
				*o++ = (char)*p;
		}
	}
	*o++ = '"';
	*o = '\0';
	return out;
}

/* ---- reading one side ---- */

/* Opens root/rel as a regular file without following any symlink on the way. */
static int open_beneath(const char *root, const char *rel)
{
	_cleanup_close_ int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_free_ char *copy = strdup(rel);
	char *p, *slash;
	struct stat st;
	int fd;

	if (dfd < 0)
		return -errno;
	if (!copy)
		return -ENOMEM;
	for (p = copy; (slash = strchr(p, '/')); p = slash + 1) {
		int next;
		*slash = '\0';
		if (strcmp(p, "..") == 0 || strcmp(p, ".") == 0 || !*p)
			return -EINVAL;
		next = openat(dfd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			return -errno;
		close(dfd);
		dfd = next;
	}
	if (strcmp(p, "..") == 0 || strcmp(p, ".") == 0 || !*p)
		return -EINVAL;
	fd = openat(dfd, p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EBADF;
	}
	return fd;
}

/* Reads at most `max` bytes; *too_large when there were more. */
static int read_side(const char *root, const char *rel, size_t max, char **out, size_t *len,
		     bool *too_large)
{
	_cleanup_close_ int fd = open_beneath(root, rel);
	_cleanup_free_ char *buf = NULL;
	size_t used = 0, cap = 65536;

	*too_large = false;
	if (fd < 0)
		return fd;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t r;
		if (used == cap) {
			char *grown;
			if (cap > max) {
				*too_large = true;
				break;
			}
			cap *= 2;
			grown = realloc(buf, cap);
			if (!grown)
				return -ENOMEM;
			buf = grown;
		}
		r = read(fd, buf + used, cap - used);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		used += (size_t)r;
	}
	if (used > max) {
		*too_large = true;
		used = max;
	}
	*out = TAKE_PTR(buf);
	*len = used;
	return 0;
}

struct content {
	char *old, *new;
	size_t old_len, new_len;
	bool too_large;
};

static void content_free(struct content *c)
{
	free(c->old);
	free(c->new);
}

/* The text of both sides of a change, "" for a side that is not a regular file. */
static int content_load(const struct ab_change *ch, const char *upper, const char *project,
			struct content *c, struct ab_error *err)
{
	bool big = false;
	int r;

	*c = (struct content){ 0 };
	if (S_ISREG(ch->old_mode)) {
		if (ch->old_size > AB_TEXTDIFF_MAX_BYTES) {
			c->too_large = true;
			return 0;
		}
		r = read_side(project, ch->path, AB_TEXTDIFF_MAX_BYTES, &c->old, &c->old_len, &big);
		if (r < 0)
			return ab_error_set(err, r, "cannot read '%s/%s'", project, ch->path);
		c->too_large |= big;
	}
	if (S_ISREG(ch->new_mode)) {
		if (ch->new_size > AB_TEXTDIFF_MAX_BYTES) {
			c->too_large = true;
			return 0;
		}
		r = read_side(upper, ch->path, AB_TEXTDIFF_MAX_BYTES, &c->new, &c->new_len, &big);
		if (r < 0)
			return ab_error_set(err, r, "cannot read '%s/%s'", upper, ch->path);
		c->too_large |= big;
	}
	return 0;
}

static bool has_text(const struct ab_change *ch)
{
	return !ch->binary && (S_ISREG(ch->old_mode) || S_ISREG(ch->new_mode)) &&
	       ch->kind != AB_CHANGE_META;
}

struct counts {
	size_t ins, del;
};

/* Insertions and deletions of one change, without building hunks where it can. */
static int count_change(const struct ab_change *ch, const char *upper, const char *project,
			struct counts *out, struct ab_error *err)
{
	struct content c;
	int r;

	*out = (struct counts){ 0 };
	if (S_ISLNK(ch->old_mode) && ch->kind != AB_CHANGE_META &&
	    !(S_ISLNK(ch->new_mode) && ch->old_link && ch->new_link &&
	      strcmp(ch->old_link, ch->new_link) == 0))
		out->del++;
	if (S_ISLNK(ch->new_mode) && ch->kind != AB_CHANGE_META &&
	    !(S_ISLNK(ch->old_mode) && ch->old_link && ch->new_link &&
	      strcmp(ch->old_link, ch->new_link) == 0))
		out->ins++;
	if (!has_text(ch))
		return 0;
	r = content_load(ch, upper, project, &c, err);
	if (r < 0)
		return r;
	if (!c.too_large) {
		if (!c.old || !c.new) {
			out->del += c.old ? ab_textdiff_count_lines(c.old, c.old_len) : 0;
			out->ins += c.new ? ab_textdiff_count_lines(c.new, c.new_len) : 0;
		} else {
			struct ab_textdiff_stats st;
			r = ab_textdiff_count(c.old, c.old_len, c.new, c.new_len, &st);
			if (r < 0) {
				content_free(&c);
				return ab_error_set(err, r, "cannot diff '%s'", ch->path);
			}
			out->ins += st.insertions;
			out->del += st.deletions;
		}
	}
	content_free(&c);
	return 0;
}

static const char *type_name(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG: return "file";
	case S_IFDIR: return "dir";
	case S_IFLNK: return "symlink";
	case S_IFIFO: return "fifo";
	case S_IFSOCK: return "socket";
	case S_IFCHR: return "chardev";
	case S_IFBLK: return "blockdev";
	default: return "unknown";
	}
}

static char kind_letter(enum ab_change_kind k)
{
	switch (k) {
	case AB_CHANGE_ADDED: return 'A';
	case AB_CHANGE_MODIFIED: return 'M';
	case AB_CHANGE_DELETED: return 'D';
	case AB_CHANGE_META: return 'm';
	case AB_CHANGE_TYPE: return 'T';
	}
	return '?';
}

static const char *kind_name(enum ab_change_kind k)
{
	switch (k) {
	case AB_CHANGE_ADDED: return "added";
	case AB_CHANGE_MODIFIED: return "modified";
	case AB_CHANGE_DELETED: return "deleted";
	case AB_CHANGE_META: return "meta";
	case AB_CHANGE_TYPE: return "type";
	}
	return "unknown";
}

static void hex(const unsigned char *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* ---- text ---- */
struct text_out {
	FILE *f;
	bool color;
};

static void put_colored(const struct text_out *t, const char *color, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void put_colored(const struct text_out *t, const char *color, const char *fmt, ...)
{
	va_list ap;

	if (t->color && color)
		fputs(color, t->f);
	va_start(ap, fmt);
	vfprintf(t->f, fmt, ap);
	va_end(ap);
	if (t->color && color)
		fputs(C_RESET, t->f);
	fputc('\n', t->f);
}

static int text_emit(void *userdata, enum ab_textdiff_line kind, const char *text, size_t len)
{
	const struct text_out *t = userdata;
	const char *color = NULL;
	char prefix = 0;

	switch (kind) {
	case AB_TEXTDIFF_HUNK:
		color = C_CYAN;
		break;
	case AB_TEXTDIFF_CONTEXT_LINE:
		prefix = ' ';
		break;
	case AB_TEXTDIFF_DEL:
		prefix = '-';
		color = C_RED;
		break;
	case AB_TEXTDIFF_ADD:
		prefix = '+';
		color = C_GREEN;
		break;
	case AB_TEXTDIFF_NO_NEWLINE_LINE:
	case AB_TEXTDIFF_TOO_LARGE_LINE:
		break;
	}
	if (t->color && color)
		fputs(color, t->f);
	if (prefix)
		fputc(prefix, t->f);
	fwrite(text, 1, len, t->f);
	if (t->color && color)
		fputs(C_RESET, t->f);
	fputc('\n', t->f);
	return ferror(t->f) ? -EIO : 0;
}

static void binary_side(char *buf, size_t size, mode_t mode, uint64_t bytes,
			const unsigned char *sha)
{
	char h[65];

	if (!S_ISREG(mode)) {
		snprintf(buf, size, "/dev/null");
		return;
	}
	hex(sha, 32, h);
	snprintf(buf, size, "%llu bytes sha256 %.16s..", (unsigned long long)bytes, h);
}

static int write_text_one(const struct text_out *t, const struct ab_change *ch, const char *upper,
			  const char *project, struct ab_error *err)
{
	_cleanup_free_ char *qa = ab_diff_quote_path("a/", ch->path);
	_cleanup_free_ char *qb = ab_diff_quote_path("b/", ch->path);
	const char *b = t->color ? C_BOLD : NULL;
	int r;

	if (!qa || !qb)
		return ab_error_set(err, ENOMEM, "cannot write diff");
	put_colored(t, b, "diff --agentbox %s %s", qa, qb);
	switch (ch->kind) {
	case AB_CHANGE_ADDED:
		put_colored(t, b, "new %s mode %06o", S_ISDIR(ch->new_mode) ? "directory" : "file",
			    (unsigned)ch->new_mode);
		break;
	case AB_CHANGE_DELETED:
		put_colored(t, b, "deleted %s mode %06o", S_ISDIR(ch->old_mode) ? "directory" : "file",
			    (unsigned)ch->old_mode);
		break;
	case AB_CHANGE_TYPE:
		put_colored(t, b, "type changed: %s -> %s", type_name(ch->old_mode),
			    type_name(ch->new_mode));
		put_colored(t, b, "old mode %06o", (unsigned)ch->old_mode);
		put_colored(t, b, "new mode %06o", (unsigned)ch->new_mode);
		break;
	case AB_CHANGE_MODIFIED:
	case AB_CHANGE_META:
		if (ch->old_mode != ch->new_mode) {
			put_colored(t, b, "old mode %06o", (unsigned)ch->old_mode);
			put_colored(t, b, "new mode %06o", (unsigned)ch->new_mode);
		}
		break;
	}
	if (ch->old_mode && ch->new_mode &&
	    (ch->old_uid != ch->new_uid || ch->old_gid != ch->new_gid)) {
		put_colored(t, b, "old owner %u:%u", (unsigned)ch->old_uid, (unsigned)ch->old_gid);
		put_colored(t, b, "new owner %u:%u", (unsigned)ch->new_uid, (unsigned)ch->new_gid);
	}
	if (ch->kind == AB_CHANGE_META)
		return 0;
	if (S_ISLNK(ch->old_mode)) {
		_cleanup_free_ char *q = ab_diff_quote_path("", ch->old_link ? ch->old_link : "");
		if (!q)
			return ab_error_set(err, ENOMEM, "cannot write diff");
		put_colored(t, t->color ? C_RED : NULL, "-symlink -> %s", q);
	}
	if (S_ISLNK(ch->new_mode)) {
		_cleanup_free_ char *q = ab_diff_quote_path("", ch->new_link ? ch->new_link : "");
		if (!q)
			return ab_error_set(err, ENOMEM, "cannot write diff");
		put_colored(t, t->color ? C_GREEN : NULL, "+symlink -> %s", q);
	}
	if (!S_ISREG(ch->old_mode) && !S_ISREG(ch->new_mode))
		return 0;
	if (ch->binary) {
		char so[128], sn[128];
		binary_side(so, sizeof(so), ch->old_mode, ch->old_size, ch->old_sha256);
		binary_side(sn, sizeof(sn), ch->new_mode, ch->new_size, ch->new_sha256);
		put_colored(t, NULL, "Binary files differ: %s -> %s", so, sn);
		return 0;
	}
	struct content c;
	r = content_load(ch, upper, project, &c, err);
	if (r < 0)
		return r;
	if (c.too_large) {
		put_colored(t, NULL, "%s", AB_TEXTDIFF_TOO_LARGE);
		content_free(&c);
		return 0;
	}
	if (c.old_len || c.new_len) {
		put_colored(t, b, "--- %s", S_ISREG(ch->old_mode) ? qa : "/dev/null");
		put_colored(t, b, "+++ %s", S_ISREG(ch->new_mode) ? qb : "/dev/null");
	}
	r = ab_textdiff_unified(c.old ? c.old : "", c.old_len, c.new ? c.new : "", c.new_len,
				AB_TEXTDIFF_CONTEXT, text_emit, (void *)t, NULL);
	content_free(&c);
	if (r < 0)
		return ab_error_set(err, r, "cannot diff '%s'", ch->path);
	return 0;
}

/* ---- stat ---- */
static size_t digits(size_t v)
{
	size_t d = 1;

	while (v >= 10) {
		v /= 10;
		d++;
	}
	return d;
}

static int write_stat(FILE *f, const struct ab_change *changes, size_t n, const char *upper,
		      const char *project, bool color, struct ab_error *err)
{
	_cleanup_free_ struct counts *counts = calloc(n ? n : 1, sizeof(*counts));
	_cleanup_strv_free_ char **names = calloc(n + 1, sizeof(char *));
	size_t width = 0, max_total = 0, ins = 0, del = 0;
	int r;

	if (!counts || !names)
		return ab_error_set(err, ENOMEM, "cannot write diff");
	for (size_t i = 0; i < n; i++) {
		size_t w;
		r = count_change(&changes[i], upper, project, &counts[i], err);
		if (r < 0)
			return r;
		names[i] = ab_diff_quote_path("", changes[i].path);
		if (!names[i])
			return ab_error_set(err, ENOMEM, "cannot write diff");
		w = strlen(names[i]);
		if (w > width)
			width = w < STAT_NAME_MAX ? w : STAT_NAME_MAX;
		if (counts[i].ins + counts[i].del > max_total)
			max_total = counts[i].ins + counts[i].del;
		ins += counts[i].ins;
		del += counts[i].del;
	}
	for (size_t i = 0; i < n; i++) {
		const struct ab_change *ch = &changes[i];
		size_t total = counts[i].ins + counts[i].del, pi = counts[i].ins, pd = counts[i].del;

		fprintf(f, " %c %-*s | ", kind_letter(ch->kind), (int)width, names[i]);
		if (ch->kind == AB_CHANGE_META) {
			if ((ch->old_mode & 07777) != (ch->new_mode & 07777))
				fprintf(f, "mode %04o -> %04o\n", (unsigned)(ch->old_mode & 07777),
					(unsigned)(ch->new_mode & 07777));
			else
				fprintf(f, "owner %u:%u -> %u:%u\n", (unsigned)ch->old_uid,
					(unsigned)ch->old_gid, (unsigned)ch->new_uid,
					(unsigned)ch->new_gid);
			continue;
		}
		if (ch->binary) {
			fprintf(f, "Bin %llu -> %llu bytes\n", (unsigned long long)ch->old_size,
				(unsigned long long)ch->new_size);
			continue;
		}
		if (max_total > STAT_BAR_MAX && total) {
			size_t scaled = total * STAT_BAR_MAX / max_total;
			if (scaled < 1)
				scaled = 1;
			pi = counts[i].ins * scaled / total;
			if (counts[i].ins && !pi)
				pi = 1;
			pd = scaled > pi ? scaled - pi : 0;
			if (counts[i].del && !pd) {
				pd = 1;
				if (pi > 1)
					pi--;
			}
		}
		fprintf(f, "%*zu%s", (int)digits(max_total), total, pi + pd ? " " : "");
		if (color && pi)
			fputs(C_GREEN, f);
		for (size_t k = 0; k < pi; k++)
			fputc('+', f);
		if (color && pi)
			fputs(C_RESET, f);
		if (color && pd)
			fputs(C_RED, f);
		for (size_t k = 0; k < pd; k++)
			fputc('-', f);
		if (color && pd)
			fputs(C_RESET, f);
		fputc('\n', f);
	}
	fprintf(f, " %zu file%s changed, %zu insertion%s(+), %zu deletion%s(-)\n", n,
		n == 1 ? "" : "s", ins, ins == 1 ? "" : "s", del, del == 1 ? "" : "s");
	return 0;
}

/* ---- json ---- */
static int json_add_string(json_object *o, const char *key, const char *s)
{
	_cleanup_free_ char *lossy = NULL;

	if (!s)
		return json_object_object_add(o, key, NULL);
	if (!utf8_valid(s)) {
		lossy = utf8_lossy(s);
		if (!lossy)
			return -ENOMEM;
		s = lossy;
	}
	return json_object_object_add(o, key, json_object_new_string(s));
}

static json_object *json_side(mode_t mode, uid_t uid, gid_t gid, uint64_t size,
			      const unsigned char *sha, const char *link)
{
	json_object *o;
	char buf[65];

	if (!mode)
		return NULL;
	o = json_object_new_object();
	if (!o)
		return NULL;
	snprintf(buf, sizeof(buf), "%04o", (unsigned)(mode & 07777));
	json_object_object_add(o, "type", json_object_new_string(type_name(mode)));
	json_object_object_add(o, "mode", json_object_new_string(buf));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)size));
	if (S_ISREG(mode)) {
		hex(sha, 32, buf);
		json_object_object_add(o, "sha256", json_object_new_string(buf));
	} else {
		json_object_object_add(o, "sha256", NULL);
	}
	json_add_string(o, "link", S_ISLNK(mode) ? link : NULL);
	json_object_object_add(o, "uid", json_object_new_int64(uid));
	json_object_object_add(o, "gid", json_object_new_int64(gid));
	return o;
}

static int write_json(FILE *f, const struct ab_change *changes, size_t n, const char *upper,
		      const char *project, struct ab_error *err)
{
	json_object *arr = json_object_new_array();
	int r = 0;

	if (!arr)
		return ab_error_set(err, ENOMEM, "cannot write diff");
	for (size_t i = 0; i < n && r >= 0; i++) {
		const struct ab_change *ch = &changes[i];
		json_object *o = json_object_new_object();
		struct counts cnt;

		if (!o) {
			r = ab_error_set(err, ENOMEM, "cannot write diff");
			break;
		}
		json_object_array_add(arr, o);
		r = count_change(ch, upper, project, &cnt, err);
		if (r < 0)
			break;
		if (json_add_string(o, "path", ch->path) < 0) {
			r = ab_error_set(err, ENOMEM, "cannot write diff");
			break;
		}
		if (!utf8_valid(ch->path)) {
			size_t len = strlen(ch->path);
			_cleanup_free_ char *h = malloc(len * 2 + 1);
			if (!h) {
				r = ab_error_set(err, ENOMEM, "cannot write diff");
				break;
			}
			hex((const unsigned char *)ch->path, len, h);
			json_object_object_add(o, "path_bytes", json_object_new_string(h));
		}
		json_object_object_add(o, "change", json_object_new_string(kind_name(ch->kind)));
		json_object_object_add(o, "old", json_side(ch->old_mode, ch->old_uid, ch->old_gid,
							   ch->old_size, ch->old_sha256, ch->old_link));
		json_object_object_add(o, "new", json_side(ch->new_mode, ch->new_uid, ch->new_gid,
							   ch->new_size, ch->new_sha256, ch->new_link));
		json_object_object_add(o, "binary", json_object_new_boolean(ch->binary));
		json_object_object_add(o, "insertions", json_object_new_int64((int64_t)cnt.ins));
		json_object_object_add(o, "deletions", json_object_new_int64((int64_t)cnt.del));
	}
	if (r >= 0) {
		fputs(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
								  JSON_C_TO_STRING_NOSLASHESCAPE),
		      f);
		fputc('\n', f);
	}
	json_object_put(arr);
	return r;
}

int ab_diff_write(FILE *out, const struct ab_change *changes, size_t n, const char *upper,
		  const char *project, enum ab_diff_format fmt, bool color, struct ab_error *err)
{
	struct text_out t = { out, color };
	int r = 0;

	switch (fmt) {
	case AB_DIFF_TEXT:
		for (size_t i = 0; i < n && r >= 0; i++)
			r = write_text_one(&t, &changes[i], upper, project, err);
		break;
	case AB_DIFF_STAT:
		r = write_stat(out, changes, n, upper, project, color, err);
		break;
	case AB_DIFF_JSON:
		r = write_json(out, changes, n, upper, project, err);
		break;
	default:
		return ab_error_set(err, EINVAL, "unknown diff format %d", (int)fmt);
	}
	if (r >= 0 && (fflush(out) != 0 || ferror(out)))
		return ab_error_set(err, errno ? errno : EIO, "cannot write diff");
	return r;
}
