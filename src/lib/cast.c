#include "cast.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "../shared/strutil.h"

#define DEFAULT_WIDTH 80
#define DEFAULT_HEIGHT 24
/* The most escaped data one event carries: long output is split over several events, so
 * that rotation can keep each file within its half of max_bytes. */
#define MAX_EVENT_DATA (64 * 1024)
#define MIN_EVENT_DATA 64
/* How often a follower checks stop() when nothing changes. */
#define FOLLOW_TICK_MS 250
/* Without follow, how many rotations the reader chases before it stops. */
#define MAX_CHASE 8

/* ---- a growable byte buffer ---- */

struct sbuf {
	char *p;
	size_t len, cap;
};

static int sbuf_reserve(struct sbuf *b, size_t more)
{
	size_t need, cap;
	char *grown;

	if (more > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	need = b->len + more + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	grown = realloc(b->p, cap);
	if (!grown)
		return -ENOMEM;
	b->p = grown;
	b->cap = cap;
	return 0;
}

static int sbuf_add(struct sbuf *b, const void *s, size_t n)
{
	int r = sbuf_reserve(b, n);

	if (r < 0)
		return r;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int sbuf_addc(struct sbuf *b, char c)
{
	return sbuf_add(b, &c, 1);
}

/* ---- UTF-8 and JSON string escaping ---- */

/* The character at p (n > 0 bytes): > 0 its length when valid; -k for an ill-formed
 * sequence whose maximal valid prefix is k bytes (it becomes one U+FFFD); 0 when the n
 * bytes are a valid beginning that needs more bytes. */
static int utf8_char(const unsigned char *p, size_t n)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	int need;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 1;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		if (c == 0xe0)
			lo = 0xa0; /* no overlong forms */
		else if (c == 0xed)
			hi = 0x9f; /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f; /* nothing above U+10FFFF */
	} else {
		return -1;
	}
	for (int i = 1; i <= need; i++) {
		if ((size_t)i >= n)
			return 0;
		if (p[i] < lo || p[i] > hi)
			return -i;
		lo = 0x80;
		hi = 0xbf;
	}
	return need + 1;
}

static const char REPLACEMENT[] = "\xef\xbf\xbd";

/* Appends one valid character of n bytes, escaped for a JSON string. */
static int json_add_char(struct sbuf *b, const unsigned char *p, int n)
{
	char esc[8];

	if (n > 1)
		return sbuf_add(b, p, (size_t)n);
	switch (p[0]) {
	case '"':
		return sbuf_add(b, "\\\"", 2);
	case '\\':
		return sbuf_add(b, "\\\\", 2);
	case '\n':
		return sbuf_add(b, "\\n", 2);
	case '\r':
		return sbuf_add(b, "\\r", 2);
	case '\t':
		return sbuf_add(b, "\\t", 2);
	case '\b':
		return sbuf_add(b, "\\b", 2);
	case '\f':
		return sbuf_add(b, "\\f", 2);
	default:
		if (p[0] < 0x20 || p[0] == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", p[0]);
			return sbuf_add(b, esc, 6);
		}
		return sbuf_addc(b, (char)p[0]);
	}
}

/* A whole NUL-terminated string as a JSON string, quotes included. */
static int json_add_string(struct sbuf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	int r = sbuf_addc(b, '"');

	while (r >= 0 && n) {
		int k = utf8_char(p, n);
		if (k > 0) {
			r = json_add_char(b, p, k);
		} else {
			r = sbuf_add(b, REPLACEMENT, 3);
			k = k < 0 ? -k : (int)n;
		}
		p += k;
		n -= (size_t)k;
	}
	return r < 0 ? r : sbuf_addc(b, '"');
}

/* ---- the writer ---- */

struct ab_cast_writer {
	int fd;
	char *path;
	char *term;
	unsigned width, height;
	uint64_t max_bytes;   /* 0: unbounded */
	uint64_t size;        /* bytes in the current file */
	uint64_t header_size; /* of which the header */
	int64_t base_ns;      /* CLOCK_MONOTONIC at the header's whole second */
	int64_t last_us;      /* the latest event time in this file */
	size_t event_max;     /* escaped data per event */
	unsigned char tail[4];
	size_t tail_len; /* the start of a character that the next output completes */
	struct sbuf esc, line;
};

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Writes a whole line, or nothing: a failed write is cut off again, so that a later line
 * never continues a broken one. */
static int write_line(struct ab_cast_writer *w, const char *p, size_t n)
{
	int r;

	if (w->fd < 0)
		return -EBADF;
	r = ab_write_all(w->fd, p, n);
	if (r < 0) {
		if (ftruncate(w->fd, (off_t)w->size) == 0)
			lseek(w->fd, (off_t)w->size, SEEK_SET);
		return r;
	}
	w->size += n;
	return 0;
}

/* Opens path afresh and writes its header; event times count from the header's second. */
static int start_file(struct ab_cast_writer *w)
{
	struct sbuf h = { 0 };
	struct timespec wall;
	struct stat st;
	int64_t now = mono_ns();
	int r;

	clock_gettime(CLOCK_REALTIME, &wall);
	w->base_ns = now - wall.tv_nsec;
	w->last_us = 0;
	w->size = 0;
	w->fd = open(w->path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY,
		     0600);
	if (w->fd < 0)
		return -errno;
	if (fstat(w->fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if ((st.st_mode & 07777) != 0600 && fchmod(w->fd, 0600) < 0)
		return -errno;
	char fixed[128];
	snprintf(fixed, sizeof(fixed), "{\"version\": 2, \"width\": %u, \"height\": %u, \"timestamp\": %lld",
		 w->width, w->height, (long long)wall.tv_sec);
	r = sbuf_add(&h, fixed, strlen(fixed));
	if (r >= 0 && w->term) {
		r = sbuf_add(&h, ", \"env\": {\"TERM\": ", 17);
		if (r >= 0)
			r = json_add_string(&h, w->term);
		if (r >= 0)
			r = sbuf_addc(&h, '}');
	}
	if (r >= 0)
		r = sbuf_add(&h, "}\n", 2);
	if (r >= 0)
		r = write_line(w, h.p, h.len);
	free(h.p);
	w->header_size = w->size;
	return r;
}

static void close_file(struct ab_cast_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
}

/* The current file becomes "<path>.1" and a new one begins. When the rename fails, the
 * bound gives way rather than the output: writing goes on in the current file. */
static int rotate(struct ab_cast_writer *w)
{
	char old[PATH_MAX + 8];

	snprintf(old, sizeof(old), "%s.1", w->path);
	if (rename(w->path, old) < 0)
		return 0;
	close_file(w);
	return start_file(w);
}

/* Writes one event line with the time `now`, rotating first when the line would take the
 * file past its half of the budget (a file that holds only its header takes any line). */
static int write_event(struct ab_cast_writer *w, int64_t now, char type, const char *data, size_t len)
{
	char prefix[64];
	int64_t us;
	int r;

	if (w->fd < 0 && (r = start_file(w)) < 0) {
		close_file(w);
		return r;
	}
	for (int pass = 0; pass < 2; pass++) {
		us = (now - w->base_ns) / 1000;
		if (us < w->last_us)
			us = w->last_us;
		snprintf(prefix, sizeof(prefix), "[%" PRId64 ".%06" PRId64 ", \"%c\", \"", us / 1000000,
			 us % 1000000, type);
		w->line.len = 0;
		if ((r = sbuf_add(&w->line, prefix, strlen(prefix))) < 0 ||
		    (r = sbuf_add(&w->line, data, len)) < 0 || (r = sbuf_add(&w->line, "\"]\n", 3)) < 0)
			return r;
		if (pass == 0 && w->max_bytes && w->size > w->header_size &&
		    w->size + w->line.len > w->max_bytes / 2) {
			if ((r = rotate(w)) < 0) {
				close_file(w); /* the next event tries a new file again */
				return r;
			}
			continue; /* again, with the new file's time base */
		}
		break;
	}
	if ((r = write_line(w, w->line.p, w->line.len)) < 0)
		return r;
	w->last_us = us;
	return 0;
}

static int flush_output(struct ab_cast_writer *w, int64_t now)
{
	int r = 0;

	if (w->esc.len)
		r = write_event(w, now, 'o', w->esc.p, w->esc.len);
	w->esc.len = 0;
	return r;
}

int ab_cast_open(struct ab_cast_writer **wp, const char *path, unsigned width, unsigned height,
		 const char *term, uint64_t max_bytes, struct ab_error *err)
{
	struct ab_cast_writer *w;
	char old[PATH_MAX + 8];
	int r;

	*wp = NULL;
	if (strlen(path) >= PATH_MAX)
		return ab_error_set(err, ENAMETOOLONG, "cannot record the output to '%.64s...'", path);
	w = calloc(1, sizeof(*w));
	if (!w)
		return ab_error_set(err, ENOMEM, "cannot record the output to '%s'", path);
	w->fd = -1;
	w->width = width ? width : DEFAULT_WIDTH;
	w->height = height ? height : DEFAULT_HEIGHT;
	w->max_bytes = max_bytes;
	w->event_max = MAX_EVENT_DATA;
	if (max_bytes && max_bytes / 8 < MAX_EVENT_DATA)
		w->event_max = max_bytes / 8 < MIN_EVENT_DATA ? MIN_EVENT_DATA : (size_t)(max_bytes / 8);
	w->path = strdup(path);
	w->term = term ? strdup(term) : NULL;
	if (!w->path || (term && !w->term)) {
		ab_cast_close(w);
		return ab_error_set(err, ENOMEM, "cannot record the output to '%s'", path);
	}
	/* A new recording: what an earlier run left beside it is not part of it. */
	snprintf(old, sizeof(old), "%s.1", path);
	if (unlink(old) < 0 && errno != ENOENT) {
		r = -errno;
		ab_cast_close(w);
		return ab_error_set(err, r, "cannot remove the old recording '%s'", old);
	}
	if ((r = start_file(w)) < 0) {
		ab_cast_close(w);
		return ab_error_set(err, r, "cannot create the recording '%s'", path);
	}
	*wp = w;
	return 0;
}

int ab_cast_output(struct ab_cast_writer *w, const void *data, size_t len)
{
	const unsigned char *p = data;
	int64_t now = mono_ns();
	size_t pos = 0;
	int r;

	/* First complete (or reject) the character whose start the last call kept back. */
	while (w->tail_len && pos < len) {
		unsigned char tmp[4];
		size_t have = w->tail_len;
		memcpy(tmp, w->tail, have);
		tmp[have++] = p[pos];
		int k = utf8_char(tmp, have);
		if (k == 0) {
			w->tail[w->tail_len++] = p[pos++];
			continue;
		}
		if (k > 0) {
			r = json_add_char(&w->esc, tmp, k);
			pos++;
		} else {
			/* the new byte does not continue it: it starts afresh below */
			r = sbuf_add(&w->esc, REPLACEMENT, 3);
		}
		w->tail_len = 0;
		if (r < 0)
			return r;
	}
	while (pos < len) {
		int k = utf8_char(p + pos, len - pos);
		if (k == 0) {
			memcpy(w->tail, p + pos, len - pos);
			w->tail_len = len - pos;
			break;
		}
		if (k > 0) {
			r = json_add_char(&w->esc, p + pos, k);
		} else {
			r = sbuf_add(&w->esc, REPLACEMENT, 3);
			k = -k;
		}
		if (r < 0)
			return r;
		pos += (size_t)k;
		if (w->esc.len >= w->event_max && (r = flush_output(w, now)) < 0)
			return r;
	}
	return flush_output(w, now);
}

int ab_cast_resize(struct ab_cast_writer *w, unsigned width, unsigned height)
{
	char size[32];

	if (!width || !height)
		return -EINVAL;
	w->width = width;
	w->height = height;
	snprintf(size, sizeof(size), "%ux%u", width, height);
	return write_event(w, mono_ns(), 'r', size, strlen(size));
}

void ab_cast_close(struct ab_cast_writer *w)
{
	if (!w)
		return;
	if (w->tail_len && w->fd >= 0 && sbuf_add(&w->esc, REPLACEMENT, 3) >= 0)
		flush_output(w, mono_ns());
	close_file(w);
	free(w->esc.p);
	free(w->line.p);
	free(w->path);
	free(w->term);
	free(w);
}

/* ---- parsing an event line ---- */

static size_t skip_ws(const char *s, size_t n, size_t i)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int hex4(const char *s, size_t n, size_t i, unsigned *out)
{
	unsigned v = 0;

	if (n < 4 || i > n - 4)
		return -EINVAL;
	for (size_t k = i; k < i + 4; k++) {
		char c = s[k];
		v <<= 4;
		if (is_digit(c))
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -EINVAL;
	}
	*out = v;
	return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A JSON string at s[*pos] into o (room for n - *pos bytes: unescaping never grows). */
static int parse_string(const char *s, size_t n, size_t *pos, char *o, size_t *olen)
{
	size_t i = *pos, k = 0;

	if (i >= n || s[i] != '"')
		return -EINVAL;
	for (i++;;) {
		if (i >= n)
			return -EINVAL;
		unsigned char c = (unsigned char)s[i];
		if (c == '"') {
			i++;
			break;
		}
		if (c < 0x20)
			return -EINVAL;
		if (c != '\\') {
			o[k++] = (char)c;
			i++;
			continue;
		}
		if (++i >= n)
			return -EINVAL;
		switch (s[i]) {
		case '"':
		case '\\':
		case '/':
			o[k++] = s[i++];
			break;
		case 'b':
			o[k++] = '\b', i++;
			break;
		case 'f':
			o[k++] = '\f', i++;
			break;
		case 'n':
			o[k++] = '\n', i++;
			break;
		case 'r':
			o[k++] = '\r', i++;
			break;
		case 't':
			o[k++] = '\t', i++;
			break;
		case 'u': {
			unsigned cp, lo;
			if (hex4(s, n, i + 1, &cp) < 0)
				return -EINVAL;
			i += 5;
			if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < n && s[i] == '\\' && s[i + 1] == 'u' &&
			    hex4(s, n, i + 2, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				i += 6;
			} else if (cp >= 0xd800 && cp <= 0xdfff) {
				cp = 0xfffd; /* half a pair */
			}
			k += put_utf8(o + k, cp);
			break;
		}
		default:
			return -EINVAL;
		}
	}
	*pos = i;
	*olen = k;
	return 0;
}

/* A JSON number, parsed the same in every locale. */
static int parse_number(const char *s, size_t n, size_t *pos, double *out)
{
	static locale_t c_locale;
	char num[64];
	size_t i = *pos, start = i;
	char *end;
	double v;

	if (i < n && s[i] == '-')
		i++;
	if (i >= n || !is_digit(s[i]))
		return -EINVAL;
	if (s[i] == '0')
		i++;
	else
		while (i < n && is_digit(s[i]))
			i++;
	if (i < n && s[i] == '.') {
		if (++i >= n || !is_digit(s[i]))
			return -EINVAL;
		while (i < n && is_digit(s[i]))
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= n || !is_digit(s[i]))
			return -EINVAL;
		while (i < n && is_digit(s[i]))
			i++;
	}
	if (i - start >= sizeof(num))
		return -EINVAL;
	memcpy(num, s + start, i - start);
	num[i - start] = '\0';
	if (!c_locale)
		c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	v = c_locale ? strtod_l(num, &end, c_locale) : strtod(num, &end);
	if (*end || !isfinite(v))
		return -EINVAL;
	*pos = i;
	*out = v;
	return 0;
}

int ab_cast_parse_event(const char *line, size_t len, double *t, char *type, char **data, size_t *data_len)
{
	_cleanup_free_ char *buf = NULL;
	char kind[8];
	size_t i, n;
	double v;

	i = skip_ws(line, len, 0);
	if (i >= len || line[i] != '[')
		return -EINVAL;
	i = skip_ws(line, len, i + 1);
	if (parse_number(line, len, &i, &v) < 0 || v < 0)
		return -EINVAL;
	i = skip_ws(line, len, i);
	if (i >= len || line[i] != ',')
		return -EINVAL;
	i = skip_ws(line, len, i + 1);
	/* the type: one printable ASCII character; a longer string is rejected on the way */
	if (len - i < 3 || line[i] != '"' || line[i + 2] != '"' || line[i + 1] == '\\' ||
	    (unsigned char)line[i + 1] <= 0x20 || (unsigned char)line[i + 1] >= 0x7f)
		return -EINVAL;
	kind[0] = line[i + 1];
	i = skip_ws(line, len, i + 3);
	if (i >= len || line[i] != ',')
		return -EINVAL;
	i = skip_ws(line, len, i + 1);
	buf = malloc(len - i + 1);
	if (!buf)
		return -ENOMEM;
	if (parse_string(line, len, &i, buf, &n) < 0)
		return -EINVAL;
	buf[n] = '\0';
	i = skip_ws(line, len, i);
	if (i >= len || line[i] != ']')
		return -EINVAL;
	if (skip_ws(line, len, i + 1) != len)
		return -EINVAL;
	*t = v;
	*type = kind[0];
	*data = TAKE_PTR(buf);
	*data_len = n;
	return 0;
}

/* ---- the reader ---- */

struct reader {
	const char *path; /* the file being read, for messages */
	int64_t since;
	int (*out)(const void *data, size_t len, void *ctx);
	void *ctx;
	struct ab_error *err;
	struct sbuf line; /* a line not complete yet */
	bool skipping;    /* inside a line longer than AB_CAST_MAX_LINE */
	bool have_header;
	int64_t stamp;
};

static void reader_reset(struct reader *rd, const char *path)
{
	rd->path = path;
	rd->line.len = 0;
	rd->skipping = false;
	rd->have_header = false;
	rd->stamp = 0;
}

static int read_header(struct reader *rd, const char *p, size_t n)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *h = NULL, *v;
	int r = -EINVAL;

	if (!tok)
		return ab_error_set(rd->err, ENOMEM, "cannot read '%s'", rd->path);
	if (n <= INT_MAX)
		h = json_tokener_parse_ex(tok, p, (int)n);
	if (h && json_object_is_type(h, json_type_object) && skip_ws(p, n, json_tokener_get_parse_end(tok)) == n &&
	    json_object_object_get_ex(h, "version", &v) && json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) == 2) {
		r = 0;
		if (json_object_object_get_ex(h, "timestamp", &v) &&
		    (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
			rd->stamp = json_object_get_int64(v);
	}
	json_object_put(h);
	json_tokener_free(tok);
	if (r < 0)
		return ab_error_set(rd->err, 0, "cannot read '%s': not an asciicast v2 recording", rd->path);
	rd->have_header = true;
	return 0;
}

static int read_line(struct reader *rd, const char *p, size_t n)
{
	_cleanup_free_ char *data = NULL;
	size_t len;
	double t;
	char type;

	if (skip_ws(p, n, 0) == n)
		return 0;
	if (!rd->have_header)
		return read_header(rd, p, n);
	if (ab_cast_parse_event(p, n, &t, &type, &data, &len) < 0 || type != 'o' || !len)
		return 0;
	if (rd->since && (double)rd->stamp + t < (double)rd->since)
		return 0;
	return rd->out(data, len, rd->ctx);
}

/* Takes bytes from the file; complete lines are read, the rest waits for more. */
static int reader_feed(struct reader *rd, const char *p, size_t n)
{
	int r;

	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;
		if (rd->skipping) {
			rd->skipping = !nl;
		} else if (rd->line.len + take > AB_CAST_MAX_LINE) {
			rd->line.len = 0;
			rd->skipping = !nl;
			if (!rd->have_header)
				return ab_error_set(rd->err, 0, "cannot read '%s': its header is too long",
						    rd->path);
		} else if (!nl) {
			if ((r = sbuf_add(&rd->line, p, take)) < 0)
				return ab_error_set(rd->err, r, "cannot read '%s'", rd->path);
		} else if (rd->line.len) {
			if ((r = sbuf_add(&rd->line, p, take)) < 0)
				return ab_error_set(rd->err, r, "cannot read '%s'", rd->path);
			r = read_line(rd, rd->line.p, rd->line.len);
			rd->line.len = 0;
			if (r < 0)
				return r;
		} else if ((r = read_line(rd, p, take)) < 0) {
			return r;
		}
		if (!nl)
			break;
		n -= take + 1;
		p = nl + 1;
	}
	return 0;
}

/* Reads fd from where it is to its end. */
static int reader_drain(struct reader *rd, int fd, char *buf, size_t size)
{
	for (;;) {
		ssize_t n = read(fd, buf, size);
		int r;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return ab_error_set(rd->err, errno, "cannot read '%s'", rd->path);
		if (n == 0)
			return 0;
		if ((r = reader_feed(rd, buf, (size_t)n)) < 0)
			return r;
	}
}

/* A regular file, opened without following a symlink or blocking on a FIFO; -errno. */
static int open_recording(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	struct stat st;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	return TAKE_FD(fd);
}

static bool same_file(int fd, const struct stat *st)
{
	struct stat a;

	return fstat(fd, &a) == 0 && a.st_dev == st->st_dev && a.st_ino == st->st_ino;
}

/* Waits for the directory of the recording to change, or for a tick. */
static void follow_wait(int ino)
{
	struct pollfd p = { .fd = ino, .events = POLLIN };
	char drain[4096];

	if (poll(&p, ino >= 0 ? 1 : 0, FOLLOW_TICK_MS) > 0)
		while (read(ino, drain, sizeof(drain)) > 0)
			;
}

int ab_cast_read(const char *path, int64_t since_unix, bool follow,
		 int (*out)(const void *data, size_t len, void *ctx), bool (*stop)(void *ctx), void *ctx,
		 struct ab_error *err)
{
	struct reader rd = { .since = since_unix, .out = out, .ctx = ctx, .err = err };
	_cleanup_close_ int fd = -1, prev = -1, ino = -1;
	_cleanup_free_ char *buf = NULL;
	char old[PATH_MAX + 8];
	const size_t bufsize = 64 * 1024;
	bool read_prev = false, stopping = false;
	int chase = 0, r = 0;

	if (strlen(path) >= PATH_MAX)
		return ab_error_set(err, ENAMETOOLONG, "cannot read '%.64s...'", path);
	snprintf(old, sizeof(old), "%s.1", path);
	buf = malloc(bufsize);
	if (!buf)
		return ab_error_set(err, ENOMEM, "cannot read '%s'", path);
	if (follow) {
		/* Changes in the directory wake the follower: the file growing, or being
		 * rotated away and created again. */
		_cleanup_free_ char *dir = strdup(path);
		char *slash = dir ? strrchr(dir, '/') : NULL;
		ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (ino >= 0 && dir) {
			if (slash)
				*(slash == dir ? slash + 1 : slash) = '\0';
			if (inotify_add_watch(ino, slash ? dir : ".", IN_MODIFY | IN_CREATE | IN_MOVED_TO |
									      IN_CLOSE_WRITE | IN_ONLYDIR) < 0) {
				close(ino);
				ino = -1;
			}
		}
	}

	/* The current file first, then the older one: when a rotation comes in between, both
	 * are the same file, read once. */
	fd = open_recording(path);
	if (fd < 0 && fd != -ENOENT)
		return ab_error_set(err, fd, "cannot open '%s'", path);
	prev = open_recording(old);
	if (prev < 0 && prev != -ENOENT)
		return ab_error_set(err, prev, "cannot open '%s'", old);
	if (prev >= 0) {
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0 || !same_file(prev, &st)) {
			reader_reset(&rd, old);
			r = reader_drain(&rd, prev, buf, bufsize);
			read_prev = true;
		}
		close(prev);
		prev = -1;
		if (r < 0)
			goto out;
	}
	if (fd < 0 && !follow && !read_prev) {
		r = ab_error_set(err, ENOENT, "cannot open '%s'", path);
		goto out;
	}
	reader_reset(&rd, path);

	for (;;) {
		struct stat st;
		if (fd >= 0 && (r = reader_drain(&rd, fd, buf, bufsize)) < 0)
			goto out;
		/* rotated, or created: continue with what is at path now */
		if (stat(path, &st) == 0 && (fd < 0 || !same_file(fd, &st)) && (follow || chase++ < MAX_CHASE)) {
			int nfd = open_recording(path);
			if (nfd >= 0) {
				if (fd >= 0)
					close(fd);
				fd = nfd;
				reader_reset(&rd, path);
				continue;
			}
		}
		if (!follow || stopping)
			break;
		if (stop && stop(ctx)) {
			stopping = true; /* what was written before it stopped is read once more */
			continue;
		}
		follow_wait(ino);
	}
	r = 0;
out:
	free(rd.line.p);
	return r;
}
