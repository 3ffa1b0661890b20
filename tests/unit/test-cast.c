/* The asciicast v2 recording of a detached sandbox's terminal: what the writer produces
 * is read back line by line with json-c (an independent parser), the reader is fed
 * rotated, filtered, growing and broken files.
 *
 * Fixture (under a fresh temporary directory):
 *   out.cast, out.cast.1    recordings made by the tests
 *   hand.cast, hand.cast.1  recordings written by hand
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/cast.h"
#include "shared/cleanup.h"
#include "shared/strutil.h"
#include "tap.h"

static char top[256];

static void path_of(char *buf, size_t size, const char *rel)
{
	snprintf(buf, size, "%s/%s", top, rel);
}

static void write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ab_write_all(fd, text, strlen(text)) < 0)
		fprintf(stderr, "# cannot write %s: %m\n", path);
	if (fd >= 0)
		close(fd);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static off_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* ---- an accumulating buffer for what the reader gives ---- */

struct acc {
	char *p;
	size_t len, cap;
	int calls;
};

static void acc_add(struct acc *a, const void *data, size_t len)
{
	if (a->len + len + 1 > a->cap) {
		a->cap = (a->len + len + 1) * 2;
		a->p = realloc(a->p, a->cap);
		if (!a->p)
			abort();
	}
	memcpy(a->p + a->len, data, len);
	a->len += len;
	a->p[a->len] = '\0';
}

static void acc_reset(struct acc *a)
{
	free(a->p);
	memset(a, 0, sizeof(*a));
}

static int collect(const void *data, size_t len, void *ctx)
{
	struct acc *a = ctx;
	a->calls++;
	acc_add(a, data, len);
	return 0;
}

static bool acc_is(const struct acc *a, const void *want, size_t len)
{
	return a->len == len && (len == 0 || memcmp(a->p, want, len) == 0);
}

/* ---- an independent check of a recording: json-c, line by line ---- */

struct checked {
	int errors;
	int64_t timestamp;
	int width, height;
	char term[64];
	int events;
	struct acc out;     /* the data of "o" events */
	char resizes[256];  /* "r" data, space-separated */
	bool utf8;          /* the whole file is valid UTF-8 */
};

static bool valid_utf8(const unsigned char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = p[i];
		size_t k;
		unsigned cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			k = 1, cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2, cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3, cp = c & 0x07;
		} else {
			return false;
		}
		if (i + k >= n)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + j] & 0x3f);
		}
		if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

static void check_recording(const char *path, struct checked *c)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	double last = -1;
	char *line, *save = NULL;
	int n = 0;

	memset(c, 0, sizeof(*c));
	if (ab_read_file(path, 64 << 20, &text, &len) < 0) {
		printf("# cannot read %s\n", path);
		c->errors++;
		return;
	}
	c->utf8 = valid_utf8((unsigned char *)text, len);
	if (len == 0 || text[len - 1] != '\n') {
		printf("# %s does not end with a newline\n", path);
		c->errors++;
	}
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
		struct json_object *j = json_tokener_parse(line), *v;
		if (!j) {
			printf("# line %d is not JSON: %.80s\n", n + 1, line);
			c->errors++;
			continue;
		}
		if (n == 0) {
			struct json_object *env, *term;
			if (!json_object_is_type(j, json_type_object) || !json_object_object_get_ex(j, "version", &v) ||
			    json_object_get_int(v) != 2) {
				printf("# bad header: %s\n", line);
				c->errors++;
			}
			if (json_object_object_get_ex(j, "width", &v) && json_object_is_type(v, json_type_int))
				c->width = json_object_get_int(v);
			if (json_object_object_get_ex(j, "height", &v) && json_object_is_type(v, json_type_int))
				c->height = json_object_get_int(v);
			if (json_object_object_get_ex(j, "timestamp", &v) && json_object_is_type(v, json_type_int))
				c->timestamp = json_object_get_int64(v);
			if (json_object_object_get_ex(j, "env", &env) &&
			    json_object_object_get_ex(env, "TERM", &term))
				snprintf(c->term, sizeof(c->term), "%s", json_object_get_string(term));
		} else if (!json_object_is_type(j, json_type_array) || json_object_array_length(j) != 3) {
			printf("# line %d is not an event: %.80s\n", n + 1, line);
			c->errors++;
		} else {
			struct json_object *t = json_object_array_get_idx(j, 0);
			struct json_object *k = json_object_array_get_idx(j, 1);
			struct json_object *d = json_object_array_get_idx(j, 2);
			double tv = json_object_get_double(t);
			const char *kind = json_object_get_string(k);
			if (!(json_object_is_type(t, json_type_double) || json_object_is_type(t, json_type_int)) ||
			    !json_object_is_type(k, json_type_string) || !json_object_is_type(d, json_type_string)) {
				printf("# line %d has wrong types: %.80s\n", n + 1, line);
				c->errors++;
			} else {
				if (tv < last || tv < 0) {
					printf("# line %d goes back in time: %f after %f\n", n + 1, tv, last);
					c->errors++;
				}
				last = tv;
				c->events++;
				if (strcmp(kind, "o") == 0) {
					acc_add(&c->out, json_object_get_string(d), (size_t)json_object_get_string_len(d));
				} else if (strcmp(kind, "r") == 0) {
					size_t used = strlen(c->resizes);
					snprintf(c->resizes + used, sizeof(c->resizes) - used, "%s%s", used ? " " : "",
						 json_object_get_string(d));
				} else {
					printf("# line %d has type %s\n", n + 1, kind);
					c->errors++;
				}
			}
		}
		json_object_put(j);
	}
}

static void checked_free(struct checked *c)
{
	acc_reset(&c->out);
}

/* ---- the writer ---- */

static void test_writer_basic(void)
{
	char path[512];
	struct ab_cast_writer *w = NULL;
	struct ab_error err = { 0 };
	struct checked c;
	struct stat st;
	const char *a = "hello world\r\n", *b = "\x1b[31mred\x1b[0m \"quoted\" back\\slash\ttab";
	char want[256];
	time_t now = time(NULL);

	path_of(path, sizeof(path), "out.cast");
	ok(ab_cast_open(&w, path, 80, 24, "xterm-256color", 0, &err) == 0, "open a recording (%s)", err.msg);
	if (!w)
		return;
	ok(ab_cast_output(w, a, strlen(a)) == 0, "output is recorded");
	ok(ab_cast_resize(w, 100, 30) == 0, "a resize is recorded");
	ok(ab_cast_output(w, b, strlen(b)) == 0, "more output is recorded");
	ok(ab_cast_resize(w, 0, 30) == -EINVAL, "a zero size is refused");
	ab_cast_close(w);

	check_recording(path, &c);
	ok(c.errors == 0, "every line is asciicast v2, in time order");
	ok(c.width == 80 && c.height == 24, "the header has the size (%dx%d)", c.width, c.height);
	ok(c.timestamp >= now - 2 && c.timestamp <= now + 2, "the header has the wall time (%lld)",
	   (long long)c.timestamp);
	is_str(c.term, "xterm-256color", "the header has TERM");
	snprintf(want, sizeof(want), "%s%s", a, b);
	ok(acc_is(&c.out, want, strlen(want)), "the output reads back exactly");
	is_str(c.resizes, "100x30", "the resize reads back as COLSxROWS");
	ok(c.events == 3, "three events (%d)", c.events);
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "the recording is private (0%o)",
	   st.st_mode & 0777);
	checked_free(&c);
}

static void test_writer_bytes(void)
{
	char path[512];
	struct ab_cast_writer *w = NULL;
	struct ab_error err = { 0 };
	struct checked c;
	unsigned char ctl[40];
	size_t n = 0;
	/* é € 😀 and a combining sequence, each written a byte at a time */
	const char *utf8 = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 e\xcc\x81";
	struct acc want = { 0 };

	path_of(path, sizeof(path), "out.cast");
	ok(ab_cast_open(&w, path, 0, 0, NULL, 0, &err) == 0, "open a recording (%s)", err.msg);
	if (!w)
		return;
	for (const char *p = utf8; *p; p++)
		ab_cast_output(w, p, 1);
	acc_add(&want, utf8, strlen(utf8));
	/* every control byte, NUL included, DEL, and JSON's own specials */
	for (int i = 0; i < 0x20; i++)
		ctl[n++] = (unsigned char)i;
	ctl[n++] = 0x7f;
	ctl[n++] = '"';
	ctl[n++] = '\\';
	ctl[n++] = '/';
	ab_cast_output(w, ctl, n);
	acc_add(&want, ctl, n);
	/* a character split across two writes, the split in a different place */
	ab_cast_output(w, "x\xf0\x9f", 3);
	ab_cast_output(w, "\x98\x80y", 3);
	acc_add(&want, "x\xf0\x9f\x98\x80y", 6);
	ab_cast_close(w);

	check_recording(path, &c);
	ok(c.errors == 0, "every line is asciicast v2");
	ok(c.width == 80 && c.height == 24, "an unknown size is recorded as 80x24");
	ok(c.term[0] == '\0', "no TERM, no env");
	ok(c.utf8, "the file is valid UTF-8");
	ok(acc_is(&c.out, want.p, want.len), "UTF-8 split across writes and control bytes read back exactly");
	checked_free(&c);
	acc_reset(&want);
}

static void test_writer_invalid_utf8(void)
{
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} cases[] = {
		{ "a\xff" "b", 3, "a\xef\xbf\xbd" "b" },
		{ "\xc3(", 2, "\xef\xbf\xbd(" },                                     /* a lead without its byte */
		{ "\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd" },                       /* overlong */
		{ "\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },       /* a surrogate */
		{ "\xe2\x82(", 3, "\xef\xbf\xbd(" },                                 /* one U+FFFD per broken prefix */
		{ "\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* > U+10FFFF */
		{ "\x80z", 2, "\xef\xbf\xbdz" },                                      /* a lone continuation */
	};
	char path[512];
	struct ab_error err = { 0 };

	path_of(path, sizeof(path), "out.cast");
	for (size_t i = 0; i < AB_ELEMENTSOF(cases); i++) {
		struct ab_cast_writer *w = NULL;
		struct checked c;
		if (ab_cast_open(&w, path, 80, 24, NULL, 0, &err) < 0) {
			ok(0, "open (%s)", err.msg);
			continue;
		}
		ab_cast_output(w, cases[i].in, cases[i].len);
		ab_cast_close(w);
		check_recording(path, &c);
		ok(c.errors == 0 && c.utf8 && acc_is(&c.out, cases[i].out, strlen(cases[i].out)),
		   "invalid UTF-8 case %zu becomes U+FFFD", i);
		checked_free(&c);
	}

	/* a character cut off by the end of the recording */
	struct ab_cast_writer *w = NULL;
	struct checked c;
	if (ab_cast_open(&w, path, 80, 24, NULL, 0, &err) == 0) {
		ab_cast_output(w, "end\xe2\x82", 5);
		ab_cast_close(w);
		check_recording(path, &c);
		ok(c.errors == 0 && c.utf8 && acc_is(&c.out, "end\xef\xbf\xbd", 6),
		   "an incomplete character at close becomes U+FFFD");
		checked_free(&c);
	}
}

static void test_writer_errors(void)
{
	char path[512], link[512];
	struct ab_cast_writer *w = NULL;
	struct ab_error err = { 0 };

	path_of(path, sizeof(path), "missing/out.cast");
	ok(ab_cast_open(&w, path, 80, 24, NULL, 0, &err) == -ENOENT && !w, "no directory: -ENOENT");
	ok(strstr(err.msg, "'") && strstr(err.msg, "missing/out.cast"), "the message names the path (%s)",
	   err.msg);
	path_of(path, sizeof(path), "target");
	path_of(link, sizeof(link), "link.cast");
	write_text(path, "keep");
	if (symlink(path, link) < 0)
		printf("# symlink: %m\n");
	ok(ab_cast_open(&w, link, 80, 24, NULL, 0, &err) < 0 && !w, "a symlink is not followed");
	_cleanup_free_ char *kept = NULL;
	ok(ab_read_file(path, 100, &kept, NULL) == 0 && strcmp(kept, "keep") == 0, "its target is untouched");
}

/* ---- rotation ---- */

static void test_rotation(void)
{
	char path[512], old[512];
	struct ab_cast_writer *w = NULL;
	struct ab_error err = { 0 };
	struct acc all = { 0 }, got = { 0 };
	struct checked c0, c1;
	const uint64_t max = 4096;

	path_of(path, sizeof(path), "rot.cast");
	path_of(old, sizeof(old), "rot.cast.1");
	write_text(old, "{\"version\": 2, \"width\": 80, \"height\": 24, \"timestamp\": 1}\n[0.1, \"o\", \"STALE\"]\n");
	ok(ab_cast_open(&w, path, 80, 24, "xterm", max, &err) == 0, "open a bounded recording (%s)", err.msg);
	if (!w)
		return;
	ok(access(old, F_OK) < 0, "a new recording removes the older one's .1");
	for (int i = 0; i < 400; i++) {
		char line[32];
		snprintf(line, sizeof(line), "line %04d\r\n", i);
		if (i == 200)
			ab_cast_resize(w, 120, 40);
		ab_cast_output(w, line, strlen(line));
		acc_add(&all, line, strlen(line));
	}
	ab_cast_close(w);

	ok(file_size(old) > 0, "the recording rotated");
	ok(file_size(path) <= (off_t)(max / 2) && file_size(old) <= (off_t)(max / 2),
	   "each file stays within max_bytes/2 (%lld, %lld)", (long long)file_size(path),
	   (long long)file_size(old));
	check_recording(old, &c1);
	check_recording(path, &c0);
	ok(c0.errors == 0 && c1.errors == 0, "both files are asciicast v2 with a header");
	ok(c0.width == 120 && c0.height == 40, "the new header has the latest size (%dx%d)", c0.width, c0.height);
	ok(ab_cast_read(path, 0, false, collect, NULL, &got, &err) == 0, "read the rotated recording (%s)",
	   err.msg);
	ok(got.len > 0 && got.len < all.len && memcmp(all.p + all.len - got.len, got.p, got.len) == 0,
	   "what is kept is the newest output, .1 first, without a gap (%zu of %zu bytes)", got.len, all.len);
	ok(got.len >= max / 8, "a fair part of max_bytes is output (%zu)", got.len);
	checked_free(&c0);
	checked_free(&c1);
	acc_reset(&got);
	acc_reset(&all);

	/* one huge output: split into events, its end is what is kept */
	unsigned char *big = malloc(100000);
	for (size_t i = 0; i < 100000; i++)
		big[i] = (unsigned char)('a' + i % 26);
	big[99999] = '!';
	if (ab_cast_open(&w, path, 80, 24, NULL, max, &err) == 0) {
		ab_cast_output(w, big, 100000);
		ab_cast_close(w);
	}
	ok(file_size(path) <= (off_t)(max / 2) && file_size(old) <= (off_t)(max / 2),
	   "a huge output stays within the bound (%lld, %lld)", (long long)file_size(path),
	   (long long)file_size(old));
	ok(ab_cast_read(path, 0, false, collect, NULL, &got, &err) == 0 && got.len > 0 &&
		   memcmp(big + 100000 - got.len, got.p, got.len) == 0 && got.p[got.len - 1] == '!',
	   "its newest part reads back (%zu bytes)", got.len);
	acc_reset(&got);
	free(big);
}

/* ---- one event line ---- */

static void test_parse_event(void)
{
	static const struct {
		const char *line;
		double t;
		char type;
		const char *data;
		size_t len;
	} good[] = {
		{ "[0.248848, \"o\", \"hi\"]", 0.248848, 'o', "hi", 2 },
		{ "  [ 12 ,\"r\",\"80x24\" ]  \r\n", 12, 'r', "80x24", 5 },
		{ "[1e2, \"i\", \"\"]", 100, 'i', "", 0 },
		{ "[0, \"o\", \"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]", 0, 'o', "\"\\/\b\f\n\r\t", 8 },
		{ "[0.5, \"o\", \"\\u00e9\\u20AC\\ud83d\\ude00\"]", 0.5, 'o', "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9 },
		{ "[0.5, \"o\", \"a\\u0000b\"]", 0.5, 'o', "a\0b", 3 },
		{ "[0.5, \"o\", \"\\ud800x\\udc00\"]", 0.5, 'o', "\xef\xbf\xbdx\xef\xbf\xbd", 7 },
		{ "[0.5, \"o\", \"\\ud83d\\u0041\"]", 0.5, 'o', "\xef\xbf\xbd" "A", 4 },
		{ "[3.25E-1, \"m\", \"raw \xff bytes\"]", 0.325, 'm', "raw \xff bytes", 11 },
	};
	static const char *const bad[] = {
		"",
		"{\"version\": 2}",
		"[1.0, \"o\"]",
		"[1.0, \"o\", \"x\", 1]",
		"[1.0, \"o\", \"x\"",
		"[1.0, \"o\", \"x]",
		"[1.0, \"o\", \"x\"] trailing",
		"[-1.0, \"o\", \"x\"]",
		"[01, \"o\", \"x\"]",
		"[1., \"o\", \"x\"]",
		"[.5, \"o\", \"x\"]",
		"[1e, \"o\", \"x\"]",
		"[1e999, \"o\", \"x\"]",
		"[NaN, \"o\", \"x\"]",
		"[\"1\", \"o\", \"x\"]",
		"[1, \"oo\", \"x\"]",
		"[1, \"\", \"x\"]",
		"[1, \"\\u006f\", \"x\"]",
		"[1, o, \"x\"]",
		"[1, \"o\", \"tab\there\"]",
		"[1, \"o\", \"\\x41\"]",
		"[1, \"o\", \"\\u12\"]",
		"[1, \"o\", \"\\u12G4\"]",
		"[1, \"o\", \"end\\\"]",
		"[1, \"o\", x]",
	};

	for (size_t i = 0; i < AB_ELEMENTSOF(good); i++) {
		double t = -1;
		char type = 0;
		char *data = NULL;
		size_t len = 99;
		int r = ab_cast_parse_event(good[i].line, strlen(good[i].line), &t, &type, &data, &len);
		ok(r == 0 && t > good[i].t - 1e-9 && t < good[i].t + 1e-9 && type == good[i].type &&
			   len == good[i].len && memcmp(data, good[i].data, len) == 0 && data[len] == '\0',
		   "event %zu decodes: %s", i, good[i].line);
		free(data);
	}
	for (size_t i = 0; i < AB_ELEMENTSOF(bad); i++) {
		double t;
		char type;
		char *data = NULL;
		size_t len;
		ok(ab_cast_parse_event(bad[i], strlen(bad[i]), &t, &type, &data, &len) == -EINVAL && !data,
		   "not an event: %s", bad[i]);
	}
	/* the length counts, not a NUL: the same line cut short is refused */
	const char *line = "[1, \"o\", \"abc\"]";
	double t;
	char type, *data = NULL;
	size_t len;
	ok(ab_cast_parse_event(line, strlen(line) - 1, &t, &type, &data, &len) == -EINVAL && !data,
	   "a line cut by its length is refused");
}

/* ---- the reader ---- */

static const char HEADER_1000[] = "{\"version\": 2, \"width\": 80, \"height\": 24, \"timestamp\": 1000000}\n";

static void test_reader_since(void)
{
	char path[512], old[512], text[1024];
	struct ab_error err = { 0 };
	struct acc got = { 0 };

	path_of(path, sizeof(path), "hand.cast");
	path_of(old, sizeof(old), "hand.cast.1");
	unlink(old);
	snprintf(text, sizeof(text),
		 "%s[1.0, \"o\", \"a\"]\n[2.5, \"i\", \"secret\"]\n[5.0, \"o\", \"b\"]\n[6, \"r\", \"90x30\"]\n"
		 "[10.25, \"o\", \"c\\u0000d\"]\n",
		 HEADER_1000);
	write_text(path, text);
	ok(ab_cast_read(path, 0, false, collect, NULL, &got, &err) == 0 && acc_is(&got, "abc\0d", 5),
	   "everything: only output, NUL kept (%s)", err.msg);
	acc_reset(&got);
	ok(ab_cast_read(path, 1000005, false, collect, NULL, &got, &err) == 0 && acc_is(&got, "bc\0d", 4),
	   "since: from the event at that second on");
	acc_reset(&got);
	ok(ab_cast_read(path, 1000011, false, collect, NULL, &got, &err) == 0 && got.len == 0,
	   "since after the end: nothing");
	acc_reset(&got);

	write_text(old, "{\"version\": 2, \"width\": 80, \"height\": 24, \"timestamp\": 999990}\n"
			"[1.0, \"o\", \"x\"]\n[9.5, \"o\", \"y\"]\n");
	ok(ab_cast_read(path, 0, false, collect, NULL, &got, &err) == 0 && acc_is(&got, "xyabc\0d", 7),
	   ".1 is read before the current file");
	acc_reset(&got);
	ok(ab_cast_read(path, 999995, false, collect, NULL, &got, &err) == 0 && acc_is(&got, "yabc\0d", 6),
	   "since applies to .1 with its own header time");
	acc_reset(&got);
	unlink(path);
	ok(ab_cast_read(path, 0, false, collect, NULL, &got, &err) == 0 && acc_is(&got, "xy", 2),
	   ".1 alone (between a rotation's rename and create) reads");
	acc_reset(&got);
	unlink(old);

	/* a real recording, against the wall clock */
	struct ab_cast_writer *w = NULL;
	path_of(path, sizeof(path), "out.cast");
	if (ab_cast_open(&w, path, 80, 24, NULL, 0, &err) == 0) {
		ab_cast_output(w, "now", 3);
		ab_cast_close(w);
	}
	ok(ab_cast_read(path, time(NULL) - 60, false, collect, NULL, &got, &err) == 0 && acc_is(&got, "now", 3),
	   "since a minute ago: the output just written");
	acc_reset(&got);
	ok(ab_cast_read(path, time(NULL) + 60, false, collect, NULL, &got, &err) == 0 && got.len == 0,
	   "since a minute ahead: nothing");
	acc_reset(&got);
}

static int stop_after(const void *data, size_t len, void *ctx)
{
	(void)data;
	(void)len;
	return ++*(int *)ctx >= 2 ? -ECANCELED : 0;
}

static void test_reader_broken(void)
{
	char path[512], text[2048];
	struct ab_error err = { 0 };
	struct acc got = { 0 };
	int calls = 0;

	path_of(path, sizeof(path), "hand.cast");
	snprintf(text, sizeof(text), "%s[1.0, \"o\", \"one\"]\n[2.0, \"o\", \"two\"]\n[3.0, \"o\", \"par", HEADER_1000);
	write_text(path, text);
	ok(ab_cast_read(path, 0, false, collect, NULL, &got, &err) == 0 && acc_is(&got, "onetwo", 6),
	   "a truncated last line is left out");
	acc_reset(&got);
	snprintf(text, sizeof(text), "%s[1.0, \"o\", \"one\"]\n[3.0, \"o\", \"three\"]", HEADER_1000);
	write_text(path, text);
	ok(ab_cast_read(path, 0, false, collect, NULL, &got, &err) == 0 && acc_is(&got, "one", 3),
	   "a last line without its newline is still being written: left out");
	acc_reset(&got);

	snprintf(text, sizeof(text),
		 "%s\n[1.0, \"o\", \"a\"]\nnot json\n[1.0, \"o\"]\n[-1, \"o\", \"neg\"]\n{\"version\": 2}\n"
		 "[1.0, \"o\", \"b\", 4]\n[1e999, \"o\", \"inf\"]\n[1.5, \"oo\", \"long type\"]\n"
		 "\x01\xff\xfe\n[1.0, \"o\", \"bad \\x escape\"]\n[2.0,\"o\",\"c\"]  \r\n",
		 HEADER_1000);
	write_text(path, text);
	ok(ab_cast_read(path, 0, false, collect, NULL, &got, &err) == 0 && acc_is(&got, "ac", 2),
	   "lines that are not events are skipped (%.*s)", (int)got.len, got.p ? got.p : "");
	acc_reset(&got);

	/* a line longer than the bound, between two good ones */
	size_t big = AB_CAST_MAX_LINE + 1000;
	char *huge = malloc(big + 512);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t n = (size_t)snprintf(huge, 512, "%s[1.0, \"o\", \"x\"]\n[1.0, \"o\", \"", HEADER_1000);
	memset(huge + n, 'z', big);
	n += big;
	n += (size_t)sprintf(huge + n, "\"]\n[2.0, \"o\", \"y\"]\n");
	if (fd >= 0) {
		ab_write_all(fd, huge, n);
		close(fd);
	}
	free(huge);
	ok(ab_cast_read(path, 0, false, collect, NULL, &got, &err) == 0 && acc_is(&got, "xy", 2),
	   "a line longer than AB_CAST_MAX_LINE is skipped");
	acc_reset(&got);

	write_text(path, "this is not a recording\n[1.0, \"o\", \"x\"]\n");
	ok(ab_cast_read(path, 0, false, collect, NULL, &got, &err) == -EINVAL && got.len == 0,
	   "a file without an asciicast header is an error");
	ok(strstr(err.msg, "hand.cast'") != NULL, "which names the file (%s)", err.msg);
	write_text(path, "{\"version\": 1, \"width\": 80}\n");
	ok(ab_cast_read(path, 0, false, collect, NULL, &got, &err) == -EINVAL, "version 1 is refused");
	write_text(path, "");
	ok(ab_cast_read(path, 0, false, collect, NULL, &got, &err) == 0 && got.len == 0, "an empty file is empty");

	snprintf(text, sizeof(text), "%s[1.0, \"o\", \"a\"]\n[2.0, \"o\", \"b\"]\n[3.0, \"o\", \"c\"]\n", HEADER_1000);
	write_text(path, text);
	ok(ab_cast_read(path, 0, false, stop_after, NULL, &calls, &err) == -ECANCELED && calls == 2,
	   "an error from out ends the read and is returned");

	path_of(path, sizeof(path), "nothing.cast");
	ok(ab_cast_read(path, 0, false, collect, NULL, &got, &err) == -ENOENT, "a missing recording is -ENOENT");
	ok(strstr(err.msg, "'") && strstr(err.msg, "nothing.cast"), "which names it (%s)", err.msg);
	path_of(path, sizeof(path), "fifo.cast");
	mkfifo(path, 0600);
	ok(ab_cast_read(path, 0, false, collect, NULL, &got, &err) < 0, "a FIFO is refused, not waited on");
	acc_reset(&got);
}

/* ---- follow ---- */

static pid_t follow_child;
static int follow_stops;

static bool child_gone(void *ctx)
{
	int status;
	follow_stops++;
	return waitpid(follow_child, &status, WNOHANG) == follow_child;
}

static bool always(void *ctx)
{
	return true;
}

static void test_follow(void)
{
	char path[512], old[512];
	struct ab_error err = { 0 };
	struct acc got = { 0 }, want = { 0 };
	struct timespec t0, t1;

	path_of(path, sizeof(path), "follow.cast");
	path_of(old, sizeof(old), "follow.cast.1");
	for (int i = 0; i < 150; i++) {
		char line[32];
		snprintf(line, sizeof(line), "line %03d\n", i);
		acc_add(&want, line, strlen(line));
	}
	follow_child = fork();
	if (follow_child == 0) {
		struct ab_cast_writer *w = NULL;
		struct ab_error e;
		/* created after the follower started, rotating (about 60 events a file) as it goes */
		sleep_ms(100);
		if (ab_cast_open(&w, path, 80, 24, NULL, 4096, &e) < 0)
			_exit(1);
		for (int i = 0; i < 150; i++) {
			char line[32];
			snprintf(line, sizeof(line), "line %03d\n", i);
			ab_cast_output(w, line, strlen(line));
			sleep_ms(i % 50 == 0 ? 200 : 2);
		}
		ab_cast_close(w);
		_exit(0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ok(ab_cast_read(path, 0, true, collect, child_gone, &got, &err) == 0, "follow until the writer is gone (%s)",
	   err.msg);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ok(acc_is(&got, want.p, want.len), "follow saw every output, across rotations (%zu of %zu bytes)", got.len,
	   want.len);
	ok(follow_stops > 1, "it asked whether to stop while waiting (%d)", follow_stops);
	ok(access(old, F_OK) == 0, "the recording did rotate meanwhile");
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	ok(ms < 3000, "and stopped soon after (%ld ms)", ms);
	acc_reset(&got);

	/* stop at once: what is there is read, then it returns */
	ok(ab_cast_read(path, 0, true, collect, always, &got, &err) == 0 && got.len > 0 &&
		   memcmp(want.p + want.len - got.len, got.p, got.len) == 0,
	   "a stopped sandbox: follow reads what is there and returns");
	acc_reset(&got);

	/* a last line still being written is shown once it is complete */
	char text[512];
	path_of(path, sizeof(path), "grow.cast");
	snprintf(text, sizeof(text), "%s[1.0, \"o\", \"a\"]\n[2.0, \"o\", \"b", HEADER_1000);
	write_text(path, text);
	follow_child = fork();
	if (follow_child == 0) {
		int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
		sleep_ms(300);
		if (fd < 0 || ab_write_all(fd, "c\"]\n[3.0, \"o\", \"d\"]\n", 20) < 0)
			_exit(1);
		_exit(0);
	}
	ok(ab_cast_read(path, 0, true, collect, child_gone, &got, &err) == 0 && acc_is(&got, "abcd", 4),
	   "follow completes a line being written (%.*s)", (int)got.len, got.p ? got.p : "");
	acc_reset(&got);
	acc_reset(&want);
}

/* ---- asciinema itself, when it happens to be installed ---- */

static void test_asciinema(void)
{
	char path[512], cmd[1200];
	struct ab_cast_writer *w = NULL;
	struct ab_error err = { 0 };
	const char *text = "plain \xc3\xa9 \x1b[1mbold\x1b[0m\r\n";

	if (system("command -v asciinema >/dev/null 2>&1") != 0) {
		ok(1, "asciinema cat reproduces the output # SKIP asciinema is not installed");
		return;
	}
	path_of(path, sizeof(path), "out.cast");
	if (ab_cast_open(&w, path, 80, 24, "xterm", 0, &err) == 0) {
		ab_cast_output(w, text, strlen(text));
		ab_cast_resize(w, 90, 20);
		ab_cast_output(w, "more", 4);
		ab_cast_close(w);
	}
	/* asciinema 2 reads keys from /dev/tty even for cat: give it a terminal (script(1)),
	 * which also turns a lone \n into \r\n; the text below has none. */
	snprintf(cmd, sizeof(cmd), "script -qec \"asciinema cat '%s'\" /dev/null </dev/null 2>/dev/null", path);
	FILE *p = popen(cmd, "r");
	struct acc got = { 0 };
	char buf[4096];
	size_t n;
	while (p && (n = fread(buf, 1, sizeof(buf), p)) > 0)
		acc_add(&got, buf, n);
	int rc = p ? pclose(p) : -1;
	char want[256];
	snprintf(want, sizeof(want), "%smore", text);
	ok(rc == 0 && acc_is(&got, want, strlen(want)), "asciinema cat reproduces the output");
	acc_reset(&got);
}

int main(void)
{
	char cmd[300];

	snprintf(top, sizeof(top), "/tmp/ab-test-cast.XXXXXX");
	if (!mkdtemp(top)) {
		perror("mkdtemp");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	test_writer_basic();
	test_writer_bytes();
	test_writer_invalid_utf8();
	test_writer_errors();
	test_parse_event();
	test_rotation();
	test_reader_since();
	test_reader_broken();
	test_follow();
	test_asciinema();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	if (system(cmd) != 0)
		printf("# cannot remove %s\n", top);
	return tap_done();
}
