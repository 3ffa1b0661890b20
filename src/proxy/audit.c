/* The audit log: one JSON line per decision, appended to the sandbox's net.log.
 *
 * Lines are built with json-c, which escapes quotes, backslashes and control characters;
 * strings are made valid UTF-8 first (each bad byte becomes U+FFFD) and cut to a cap, so
 * that whatever host name the sandbox sends, a line stays one line of valid JSON that
 * fits in AB_AUDIT_LINE_MAX and is appended with one write(2) on an O_APPEND fd (the
 * kernel does not interleave it with another writer's line).
 *
 * Size: the run directory is often a tmpfs, and a sandbox that floods the proxy with
 * denied queries must not fill the host's memory, so a sandbox's log takes at most
 * AB_AUDIT_LOG_MAX: net.log and net.log.1, half each. ab_egress_spawn moves a log of half
 * that to net.log.1 when the proxy starts. While it runs, the proxy cannot rename or
 * create files (Landlock leaves it no access to the state directory): it holds net.log
 * and net.log.1 open, and rotates by copying the log into net.log.1 (copy_file_range,
 * in the kernel) and truncating it, between two lines; the new log begins with a line
 * that says so, and `agentbox net log -f` follows it across. Without net.log.1 (or when
 * the copy fails), a log that nears AB_AUDIT_LOG_MAX gets one last line saying so and
 * nothing more (ab_audit_write returns -EFBIG). */
#include "audit.h"

#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Bytes of one string field before escaping; the second pass cuts harder when the
 * escaped line does not fit (a field of control characters grows six times). */
#define FIELD_CAP 320
#define FIELD_CAP_TIGHT 96

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0; /* no overlong forms */
		else if (c == 0xed)
			hi = 0x9f; /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f; /* nothing past U+10FFFF */
	} else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/* Copies s into out as valid UTF-8 of at most cap bytes (bad bytes become U+FFFD; a cut
 * string ends in "..."). out has room for cap + 1 bytes. */
static void clean_utf8(const char *s, char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), o = 0;

	for (size_t i = 0; i < n;) {
		size_t len = utf8_seq(p + i, n - i);
		const char *add = len ? (const char *)p + i : "\xef\xbf\xbd";
		size_t add_len = len ? len : 3;
		if (o + add_len > cap - 3 && (i + (len ? len : 1) < n || o + add_len > cap)) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(out + o, add, add_len);
		o += add_len;
		i += len ? len : 1;
	}
	out[o] = '\0';
}

static void add_string(struct json_object *o, const char *key, const char *value, size_t cap)
{
	char buf[FIELD_CAP + 1];

	if (!value)
		return;
	clean_utf8(value, buf, cap);
	json_object_object_add(o, key, json_object_new_string(buf));
}

static void add_uint(struct json_object *o, const char *key, uint64_t v)
{
	/* JSON numbers past 2^63 do not round-trip through json-c's int64. */
	json_object_object_add(o, key, json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t)v));
}

static void format_time(const struct timespec *now, char *buf, size_t size)
{
	struct tm tm;
	time_t t = now->tv_sec;
	long ms = now->tv_nsec / 1000000;

	if (!gmtime_r(&t, &tm)) {
		snprintf(buf, size, "1970-01-01T00:00:00.000Z");
		return;
	}
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms < 0 ? 0 : ms > 999 ? 999 : ms);
}

/* Serialises o plus a newline into out. Returns the length or -ENOSPC. */
static int finish(struct json_object *o, char *out, size_t size)
{
	size_t len;
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							      JSON_C_TO_STRING_NOSLASHESCAPE);

	if (!s)
		return -ENOMEM;
	len = strlen(s);
	if (len + 2 > size)
		return -ENOSPC;
	memcpy(out, s, len);
	out[len++] = '\n';
	out[len] = '\0';
	return (int)len;
}

static int format_event(const char *sandbox, const struct ab_audit_event *ev,
			const struct timespec *now, char *out, size_t size, size_t cap)
{
	struct json_object *o = json_object_new_object();
	char when[80], ms[32];
	double d = ev->duration_ms;
	int r;

	if (!o)
		return -ENOMEM;
	format_time(now, when, sizeof(when));
	json_object_object_add(o, "time", json_object_new_string(when));
	add_string(o, "sandbox", sandbox, cap);
	add_string(o, "via", ev->via, cap);
	add_string(o, "method", ev->method, cap);
	add_string(o, "host", ev->host, cap);
	if (ev->port)
		json_object_object_add(o, "port", json_object_new_int(ev->port));
	add_string(o, "addr", ev->addr, cap);
	add_string(o, "decision", ev->decision, cap);
	add_string(o, "rule", ev->rule, cap);
	add_string(o, "reason", ev->reason, cap);
	add_uint(o, "bytes_out", ev->bytes_out);
	add_uint(o, "bytes_in", ev->bytes_in);
	if (!isfinite(d) || d < 0)
		d = 0;
	if (d > 1e12)
		d = 1e12;
	/* Three decimals, not json-c's %.17g (12.300000000000001). */
	snprintf(ms, sizeof(ms), "%.3f", d);
	json_object_object_add(o, "duration_ms", json_object_new_double_s(d, ms));
	r = finish(o, out, size);
	json_object_put(o);
	return r;
}

int ab_audit_format(const char *sandbox, const struct ab_audit_event *ev,
		    const struct timespec *now, char *out, size_t size)
{
	int r = format_event(sandbox, ev, now, out, size, FIELD_CAP);

	if (r == -ENOSPC)
		r = format_event(sandbox, ev, now, out, size, FIELD_CAP_TIGHT);
	return r;
}

static int format_policy(const char *sandbox, const char *action, const char *rule, uid_t uid,
			 const struct timespec *now, char *out, size_t size, size_t cap)
{
	struct json_object *o = json_object_new_object();
	char when[80];
	int r;

	if (!o)
		return -ENOMEM;
	format_time(now, when, sizeof(when));
	json_object_object_add(o, "time", json_object_new_string(when));
	add_string(o, "sandbox", sandbox, cap);
	json_object_object_add(o, "event", json_object_new_string("policy"));
	add_string(o, "action", action, cap);
	add_string(o, "rule", rule, cap);
	add_uint(o, "uid", (uint64_t)uid);
	r = finish(o, out, size);
	json_object_put(o);
	return r;
}

int ab_audit_format_policy(const char *sandbox, const char *action, const char *rule,
			   uid_t uid, const struct timespec *now, char *out, size_t size)
{
	int r = format_policy(sandbox, action, rule, uid, now, out, size, FIELD_CAP);

	if (r == -ENOSPC)
		r = format_policy(sandbox, action, rule, uid, now, out, size, FIELD_CAP_TIGHT);
	return r;
}

static int rotate_fd = -1;
static uint64_t log_max = AB_AUDIT_LOG_MAX;

/* A line about the log itself: {"time", "sandbox", "event", "reason"}. */
static int format_note(const char *sandbox, const char *event, const char *why, char *out, size_t size)
{
	struct json_object *o = json_object_new_object();
	struct timespec now;
	char when[80];
	int r;

	if (!o)
		return -ENOMEM;
	clock_gettime(CLOCK_REALTIME, &now);
	format_time(&now, when, sizeof(when));
	json_object_object_add(o, "time", json_object_new_string(when));
	add_string(o, "sandbox", sandbox, FIELD_CAP_TIGHT);
	json_object_object_add(o, "event", json_object_new_string(event));
	json_object_object_add(o, "reason", json_object_new_string(why));
	r = finish(o, out, size);
	json_object_put(o);
	return r;
}

/* The last line of a log that reached its cap. */
static int format_full(const char *sandbox, char *out, size_t size)
{
	char why[160];

	snprintf(why, sizeof(why),
		 "the log reached %llu KiB: later decisions are not logged until the sandbox restarts",
		 (unsigned long long)log_max >> 10);
	return format_note(sandbox, "log full", why, out, size);
}

void ab_audit_set_rotation(int old_fd, uint64_t max_bytes)
{
	rotate_fd = old_fd;
	log_max = max_bytes ? max_bytes : AB_AUDIT_LOG_MAX;
}

/* The first line of a log that was rotated. */
static int format_rotated(const char *sandbox, char *out, size_t size)
{
	char why[160];

	snprintf(why, sizeof(why), "the log reached %llu KiB: its earlier lines are in net.log.1",
		 (unsigned long long)(log_max / 2) >> 10);
	return format_note(sandbox, "log rotated", why, out, size);
}

/* Bytes [0, len) of in to out at 0; 0 or -errno. */
static int copy_all(int in, int out, uint64_t len)
{
	loff_t off_in = 0, off_out = 0;
	char buf[65536];

	while ((uint64_t)off_in < len) {
		ssize_t n = syscall(SYS_copy_file_range, in, &off_in, out, &off_out, (size_t)(len - (uint64_t)off_in), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0)
			continue;
		if (n == 0)
			return -EIO; /* shorter than it was a moment ago: nobody else writes it */
		if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
			return -errno;
		/* Not in the kernel here: through a buffer. */
		while ((uint64_t)off_in < len) {
			ssize_t got = pread(in, buf, sizeof(buf), off_in), put;
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0)
				return got < 0 ? -errno : -EIO;
			put = pwrite(out, buf, (size_t)got, off_out);
			if (put < 0 && errno == EINTR)
				continue;
			if (put != got)
				return put < 0 ? -errno : -EIO;
			off_in += got;
			off_out += got;
		}
	}
	return 0;
}

/* net.log into net.log.1, then net.log empty with its first line saying so. Returns the
 * log's new size, or -errno with the log as it was (rotation is then not tried again). */
static int64_t rotate(int fd, const char *sandbox, uint64_t size)
{
	char note[512];
	int r;

	if (ftruncate(rotate_fd, 0) < 0 || (r = copy_all(fd, rotate_fd, size)) < 0 ||
	    ftruncate(rotate_fd, (off_t)size) < 0) {
		rotate_fd = -1;
		return -EIO;
	}
	if (ftruncate(fd, 0) < 0) {
		rotate_fd = -1;
		return -errno;
	}
	r = format_rotated(sandbox, note, sizeof(note));
	if (r > 0 && write(fd, note, (size_t)r) == r)
		return r;
	return 0;
}

/* A log is full FULL_RESERVE bytes before AB_AUDIT_LOG_MAX: the line that crosses that
 * mark goes out together with the note, in one write, and every later write sees a full
 * log. So there is exactly one note, and the file never passes AB_AUDIT_LOG_MAX. */
#define FULL_NOTE_MAX 512
#define FULL_RESERVE (AB_AUDIT_LINE_MAX + FULL_NOTE_MAX)

static int write_line(int fd, const char *sandbox, const char *line, size_t len)
{
	char both[AB_AUDIT_LINE_MAX + FULL_NOTE_MAX];
	const uint64_t mark = log_max - FULL_RESERVE;
	const char *out = line;
	size_t out_len = len;
	struct stat st;
	ssize_t n;

	if (fd < 0)
		return -EBADF;
	if (len > AB_AUDIT_LINE_MAX)
		return -ENOSPC;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (rotate_fd >= 0 && st.st_size > 0 && (uint64_t)st.st_size + len > log_max / 2) {
		int64_t now_size = rotate(fd, sandbox, (uint64_t)st.st_size);
		if (now_size >= 0)
			st.st_size = (off_t)now_size;
	}
	if ((uint64_t)st.st_size >= mark)
		return -EFBIG;
	if ((uint64_t)st.st_size + len >= mark) {
		int r;
		memcpy(both, line, len);
		r = format_full(sandbox, both + len, FULL_NOTE_MAX);
		if (r < 0)
			return r;
		out = both;
		out_len = len + (size_t)r;
	}
	do
		n = write(fd, out, out_len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != out_len)
		return -EIO;
	return (int)len;
}

int ab_audit_write(int fd, const char *sandbox, const struct ab_audit_event *ev)
{
	char line[AB_AUDIT_LINE_MAX];
	struct timespec now;
	int r;

	clock_gettime(CLOCK_REALTIME, &now);
	r = ab_audit_format(sandbox, ev, &now, line, sizeof(line));
	if (r < 0)
		return r;
	return write_line(fd, sandbox, line, (size_t)r);
}

int ab_audit_write_policy(int fd, const char *sandbox, const char *action, const char *rule,
			  uid_t uid)
{
	char line[AB_AUDIT_LINE_MAX];
	struct timespec now;
	int r;

	clock_gettime(CLOCK_REALTIME, &now);
	r = ab_audit_format_policy(sandbox, action, rule, uid, &now, line, sizeof(line));
	if (r < 0)
		return r;
	return write_line(fd, sandbox, line, (size_t)r);
}

/* --- reading the log back (`agentbox net log`) ----------------------------------- */

/* Lines longer than this are not ours (ours stay under AB_AUDIT_LINE_MAX). */
#define PARSE_LINE_MAX (4 * AB_AUDIT_LINE_MAX)
#define PARSE_DEPTH 4

/* Copies a string for display: control characters (a terminal would obey them) become
 * '?', and a cut never splits a UTF-8 sequence. */
static void copy_display(char *dst, size_t size, const char *src)
{
	const unsigned char *p = (const unsigned char *)src;
	size_t n = strlen(src), o = 0;

	for (size_t i = 0; i < n;) {
		size_t len = utf8_seq(p + i, n - i);
		if (len == 0) {
			if (o + 1 >= size)
				break;
			dst[o++] = '?';
			i++;
			continue;
		}
		if (o + len >= size)
			break;
		if (len == 1 && (p[i] < 0x20 || p[i] == 0x7f))
			dst[o] = '?';
		else if (len == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0) {
			dst[o] = '?'; /* C1 controls, U+0080..U+009F */
			len = 1;
			o += 1;
			i += 2;
			continue;
		} else
			memcpy(dst + o, p + i, len);
		o += len;
		i += len;
	}
	dst[o] = '\0';
}

static void get_string(struct json_object *o, const char *key, char *dst, size_t size)
{
	struct json_object *v;

	dst[0] = '\0';
	if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
		copy_display(dst, size, json_object_get_string(v));
}

static uint64_t get_uint(struct json_object *o, const char *key)
{
	struct json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return 0;
	n = json_object_get_int64(v);
	return n < 0 ? 0 : (uint64_t)n;
}

int ab_audit_parse_line(const char *line, size_t len, struct ab_audit_record *rec)
{
	struct json_tokener *tok;
	struct json_object *o, *v;
	enum json_tokener_error jerr;
	size_t end;
	int r = -EINVAL;

	memset(rec, 0, sizeof(*rec));
	rec->uid = -1;
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len == 0 || len > PARSE_LINE_MAX || memchr(line, '\0', len))
		return -EINVAL;
	tok = json_tokener_new_ex(PARSE_DEPTH);
	if (!tok)
		return -ENOMEM;
	o = json_tokener_parse_ex(tok, line, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!o || jerr != json_tokener_success)
		goto out;
	/* Nothing but blanks after the object. */
	for (; end < len; end++)
		if (line[end] != ' ' && line[end] != '\t')
			goto out;
	if (!json_object_is_type(o, json_type_object))
		goto out;
	if (!json_object_object_get_ex(o, "time", &v) || !json_object_is_type(v, json_type_string))
		goto out;
	get_string(o, "time", rec->time, sizeof(rec->time));
	get_string(o, "event", rec->event, sizeof(rec->event));
	get_string(o, "via", rec->via, sizeof(rec->via));
	get_string(o, "method", rec->method, sizeof(rec->method));
	get_string(o, "host", rec->host, sizeof(rec->host));
	get_string(o, "addr", rec->addr, sizeof(rec->addr));
	get_string(o, "decision", rec->decision, sizeof(rec->decision));
	get_string(o, "action", rec->action, sizeof(rec->action));
	get_string(o, "rule", rec->rule, sizeof(rec->rule));
	get_string(o, "reason", rec->reason, sizeof(rec->reason));
	rec->port = (unsigned)(get_uint(o, "port") > 65535 ? 0 : get_uint(o, "port"));
	rec->bytes_out = get_uint(o, "bytes_out");
	rec->bytes_in = get_uint(o, "bytes_in");
	if (json_object_object_get_ex(o, "uid", &v) && json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) >= 0 && json_object_get_int64(v) <= UINT32_MAX)
		rec->uid = json_object_get_int64(v);
	if (json_object_object_get_ex(o, "duration_ms", &v) &&
	    (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int))) {
		double d = json_object_get_double(v);
		rec->duration_ms = isfinite(d) && d >= 0 ? d : 0;
	}
	r = 0;
out:
	json_object_put(o);
	return r;
}
