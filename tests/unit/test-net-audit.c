/* The egress proxy's audit log, its control protocol, its confinement and its start.
 *
 *   audit     format -> parse round trips; hostile host names stay one line of valid
 *             JSON; the size cap; lines that are not ours are refused
 *   control   requests parsed; the client against a real SOCK_SEQPACKET server in a child
 *   confine   each probe runs in a forked child, once unconfined (the control) and once
 *             after ab_proxy_confine, and reports errno over a pipe:
 *
 *     test ── fork ──> child: [ab_proxy_confine], probes..., write(results), exit_group(0)
 *
 *             a probe the filter lacks would fail with EPERM, not kill the child: the
 *             child must end with status 0 and every "works" probe must report 0
 *   egress    ab_egress_spawn, ab_egress_hand_listeners and ab_egress_stop with
 *             ab_proxy_run replaced by a stub (defined here), which checks what the proxy
 *             process is handed, takes the listeners from listeners_fd as the real one
 *             does, and reports it all in the log. Its sandbox's name tells it what to
 *             play: a proxy slow to answer, one that refuses, one that dies, one whose
 *             listeners never come. The linker takes the stub and leaves proxy.o in the
 *             archive, as long as this test uses nothing else of proxy.o
 *
 * Skips only where the kernel lacks the feature; AB_MUST_WORK=1 turns skips into failures. */
#include <ares.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/config.h"
#include "lib/egress.h"
#include "lib/landlock.h"
#include "lib/seccomp-policy.h"
#include "proxy/audit.h"
#include "proxy/control.h"
#include "proxy/proxy-confine.h"
#include "proxy/proxy.h"
#include "proxy/rules.h"
#include "shared/cleanup.h"
#include "tap.h"

static void skip_or_fail(const char *what, const char *why)
{
	const char *must = getenv("AB_MUST_WORK");

	ok(!(must && strcmp(must, "1") == 0), "%s # SKIP %s", what, why);
}

/* exit_group itself: see test-seccomp.c (a sanitizer's exit hooks would run syscalls
 * under the filter being tested). */
static void child_exit(int code)
{
	syscall(SYS_exit_group, code);
}

/* A strict JSON check: one object, valid UTF-8, nothing after it. */
static bool strict_json(const char *s, size_t len)
{
	struct json_tokener *tok = json_tokener_new_ex(8);
	struct json_object *o;
	bool good;

	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, s, (int)len);
	good = o && json_tokener_get_error(tok) == json_tokener_success &&
	       json_tokener_get_parse_end(tok) == len && json_object_is_type(o, json_type_object);
	json_object_put(o);
	json_tokener_free(tok);
	return good;
}

/* A printable copy of s for a test's description (TAP lines must stay one line). */
static const char *printable(const char *s, size_t len)
{
	static char buf[4][128];
	static int next;
	char *out = buf[next++ % 4];
	size_t o = 0;

	for (size_t i = 0; i < len && o + 5 < sizeof(buf[0]); i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f)
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, sizeof(buf[0]) - o, "\\x%02x", c);
	}
	out[o] = '\0';
	return out;
}

static size_t count_char(const char *s, char c)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == c;
	return n;
}

/* --- audit ------------------------------------------------------------------------- */

static void test_audit_format(void)
{
	struct timespec t = { .tv_sec = 1795816862, .tv_nsec = 123456789 }; /* 2026-11-27T22:01:02 */
	struct ab_audit_event ev = {
		.via = "proxy", .method = "CONNECT", .host = "api.example.com", .port = 443,
		.addr = "192.0.2.7", .decision = "allow", .rule = "*.example.com:443",
		.bytes_out = 1234, .bytes_in = 56789, .duration_ms = 12.3456,
	};
	struct ab_audit_record rec;
	char line[AB_AUDIT_LINE_MAX];
	int n;

	n = ab_audit_format("box1", &ev, &t, line, sizeof(line));
	ok(n > 0 && (size_t)n == strlen(line) && line[n - 1] == '\n' && count_char(line, '\n') == 1,
	   "format: one line ending in a newline (%d bytes)", n);
	ok(strstr(line, "\"time\":\"2026-11-27T22:01:02.123Z\"") != NULL, "format: UTC time with milliseconds");
	ok(strstr(line, "\"duration_ms\":12.346") != NULL, "format: duration with three decimals");
	ok(n > 0 && strict_json(line, (size_t)n - 1), "format: strict JSON");
	ok(strstr(line, "\"reason\"") == NULL, "format: absent fields are left out");
	ok(n > 0 && ab_audit_parse_line(line, (size_t)n, &rec) == 0, "parse: the formatted line reads back");
	is_str(rec.time, "2026-11-27T22:01:02.123Z", "round trip: time");
	is_str(rec.via, "proxy", "round trip: via");
	is_str(rec.method, "CONNECT", "round trip: method");
	is_str(rec.host, "api.example.com", "round trip: host");
	ok(rec.port == 443, "round trip: port");
	is_str(rec.addr, "192.0.2.7", "round trip: addr");
	is_str(rec.decision, "allow", "round trip: decision");
	is_str(rec.rule, "*.example.com:443", "round trip: rule");
	ok(rec.bytes_out == 1234 && rec.bytes_in == 56789, "round trip: bytes each way");
	ok(rec.duration_ms > 12.345 && rec.duration_ms < 12.347, "round trip: duration");
	ok(rec.event[0] == '\0' && rec.reason[0] == '\0' && rec.uid == -1,
	   "round trip: no event, no reason, no uid");

	ev = (struct ab_audit_event){ .via = "dns", .host = "x.test", .decision = "deny",
				      .rule = "no rule allows it", .duration_ms = 0.0 / 0.0 };
	n = ab_audit_format("box1", &ev, &t, line, sizeof(line));
	ok(n > 0 && strstr(line, "\"port\"") == NULL && strstr(line, "\"duration_ms\":0.000"),
	   "format: port 0 left out, a NaN duration written as 0");

	n = ab_audit_format_policy("box1", "allow", "x.test", 1000, &t, line, sizeof(line));
	ok(n > 0 && strict_json(line, (size_t)n - 1) && strstr(line, "\"event\":\"policy\""),
	   "policy: a JSON line with event policy");
	ok(ab_audit_parse_line(line, (size_t)n, &rec) == 0 && !strcmp(rec.event, "policy") &&
		   !strcmp(rec.action, "allow") && !strcmp(rec.rule, "x.test") && rec.uid == 1000,
	   "policy: reads back with action, rule and uid");

	ok(ab_audit_format("box1", &ev, &t, line, 20) == -ENOSPC, "format: -ENOSPC when it cannot fit");
}

static void test_audit_hostile(void)
{
	struct timespec t = { .tv_sec = 0, .tv_nsec = 0 };
	const char *evil = "a\"b\nc\\d\r\x01\x1b[31mred\x7f/\xff\xfe\xc0\xaf" "e\xe2\x82\xac";
	struct ab_audit_event ev = { .via = "capture", .host = evil, .port = 80, .decision = "deny",
				     .rule = "no rule allows it", .reason = "\n\n{\"decision\":\"allow\"}" };
	struct ab_audit_record rec;
	char line[AB_AUDIT_LINE_MAX], *big;
	struct json_object *o, *h;
	int n;

	n = ab_audit_format("box\n1", &ev, &t, line, sizeof(line));
	ok(n > 0 && count_char(line, '\n') == 1 && line[n - 1] == '\n', "hostile: still one line");
	ok(n > 0 && strict_json(line, (size_t)n - 1), "hostile: strict JSON with valid UTF-8 (%s)", printable(line, strlen(line)));
	ok(strstr(line, "\"decision\":\"deny\"") && !strstr(line, "\"decision\":\"allow\""),
	   "hostile: a reason cannot forge a field");
	o = json_tokener_parse(line);
	ok(o && json_object_object_get_ex(o, "host", &h) &&
		   !strcmp(json_object_get_string(h),
			   "a\"b\nc\\d\r\x01\x1b[31mred\x7f/\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
			   "e\xe2\x82\xac"),
	   "hostile: JSON keeps the bytes; bad UTF-8 becomes U+FFFD");
	json_object_put(o);
	ok(ab_audit_parse_line(line, (size_t)n, &rec) == 0, "hostile: reads back");
	ok(strchr(rec.host, '\x1b') == NULL && strchr(rec.host, '\n') == NULL && strchr(rec.host, '\x7f') == NULL &&
		   strstr(rec.host, "\xe2\x82\xac") != NULL,
	   "hostile: the record shows control characters as '?' (%s), keeps UTF-8",
	   printable(rec.host, strlen(rec.host)));

	big = malloc(20000);
	memset(big, '\x01', 19999);
	big[19999] = '\0';
	ev.host = big;
	ev.rule = big;
	ev.reason = big;
	n = ab_audit_format(big, &ev, &t, line, sizeof(line));
	ok(n > 0 && n < AB_AUDIT_LINE_MAX && strict_json(line, (size_t)n - 1),
	   "hostile: 20 kB of control characters in four fields still fit one valid line (%d bytes)", n);
	memset(big, 'a', 19999);
	n = ab_audit_format(big, &ev, &t, line, sizeof(line));
	ok(n > 0 && n < AB_AUDIT_LINE_MAX && strstr(line, "aaa...\"") != NULL && ab_audit_parse_line(line, (size_t)n, &rec) == 0,
	   "hostile: a long host is cut, and says so");
	free(big);
}

static void test_audit_parse_bad(void)
{
	struct ab_audit_record rec;
	char deep[200], *huge;
	const char *bad[] = {
		"", "\n", "not json", "[1,2]", "{}", "{\"via\":\"dns\"}", "{\"time\":5}",
		"{\"time\":\"x\"} junk", "{\"time\":\"x\"", "\"time\"", "null",
	};

	for (size_t i = 0; i < AB_ELEMENTSOF(bad); i++)
		ok(ab_audit_parse_line(bad[i], strlen(bad[i]), &rec) == -EINVAL, "parse refuses '%s'",
		   printable(bad[i], strlen(bad[i])));
	ok(ab_audit_parse_line("{\"time\":\"x\"}\n", 13, &rec) == 0, "parse: a time is all a line needs");
	ok(ab_audit_parse_line("{\"time\":\"x\",\"a\":\"\0\"}", 20, &rec) == -EINVAL, "parse refuses a NUL byte");
	snprintf(deep, sizeof(deep), "{\"time\":\"x\",\"a\":{\"b\":{\"c\":{\"d\":{\"e\":1}}}}}");
	ok(ab_audit_parse_line(deep, strlen(deep), &rec) == -EINVAL, "parse refuses nesting deeper than 4");
	const char *range = "{\"time\":\"x\",\"port\":99999,\"bytes_in\":-5,\"uid\":-1}";
	ok(ab_audit_parse_line(range, strlen(range), &rec) == 0 &&
		   rec.port == 0 && rec.bytes_in == 0 && rec.uid == -1,
	   "parse: out-of-range numbers read as absent");
	huge = malloc(5 * AB_AUDIT_LINE_MAX);
	memset(huge, ' ', 5 * AB_AUDIT_LINE_MAX);
	memcpy(huge, "{\"time\":\"x\"}", 12);
	ok(ab_audit_parse_line(huge, 5 * AB_AUDIT_LINE_MAX, &rec) == -EINVAL, "parse refuses a line over 16 KiB");
	free(huge);
}

static char tmpdir[] = "/tmp/ab-net-audit-XXXXXX";

static void test_audit_write(void)
{
	char path[256], buf[8192];
	struct ab_audit_event ev = { .via = "socks", .host = "a.test", .port = 22, .decision = "deny",
				     .rule = "no rule allows it" };
	struct stat st;
	ssize_t n;
	int fd, r1, r2, r3;

	snprintf(path, sizeof(path), "%s/w.log", tmpdir);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	r1 = ab_audit_write(fd, "box", &ev);
	r2 = ab_audit_write_policy(fd, "box", "deny", "a.test", 0);
	close(fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	ok(r1 > 0 && r2 > 0 && n == r1 + r2 && count_char(buf, '\n') == 2,
	   "write: two calls append two lines (%d + %d bytes)", r1, r2);

	/* A log just short of the cap: the crossing line goes out with the note, once. */
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	ok(ftruncate(fd, (off_t)(AB_AUDIT_LOG_MAX - AB_AUDIT_LINE_MAX - 600)) == 0, "a log near the cap (sparse)");
	r1 = ab_audit_write(fd, "box", &ev);
	r2 = ab_audit_write(fd, "box", &ev);
	r3 = ab_audit_write_policy(fd, "box", "allow", "b.test", 0);
	fstat(fd, &st);
	close(fd);
	ok(r1 > 0 && r2 == -EFBIG && r3 == -EFBIG && (uint64_t)st.st_size < AB_AUDIT_LOG_MAX,
	   "write: a full log takes no more lines (%d, %d, %d), stays under the cap", r1, r2, r3);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	lseek(fd, -400, SEEK_END);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	ok(n > 0 && memmem(buf, (size_t)n, "\"event\":\"log full\"", 18) != NULL, "write: the last line says the log is full");
	unlink(path);
	ok(ab_audit_write(-1, "box", &ev) == -EBADF, "write: no fd, -EBADF");
}

/* The log rotated while the proxy runs: net.log copied into net.log.1 and begun again,
 * between two lines, with no decision lost or repeated. A small cap stands for the
 * real one. */
static void test_audit_rotation(void)
{
	enum { N = 3000, CAP = 64 * 1024 };
	char path[256], old_path[256], host[32];
	int fd, old_fd, bad = 0, rotated = 0, first_new = -1, last_old = -1, last_new = -1;
	struct stat st, ost;

	snprintf(path, sizeof(path), "%s/net.log", tmpdir);
	snprintf(old_path, sizeof(old_path), "%s/net.log.1", tmpdir);
	fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	old_fd = open(old_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ab_audit_set_rotation(old_fd, CAP);
	for (int i = 0; i < N; i++) {
		struct ab_audit_event ev = { .via = "dns", .host = host, .decision = "deny", .rule = "no rule allows it" };
		snprintf(host, sizeof(host), "h%d.test", i);
		if (ab_audit_write(fd, "box", &ev) <= 0)
			bad++;
	}
	ab_audit_set_rotation(-1, 0);
	fstat(fd, &st);
	fstat(old_fd, &ost);
	close(fd);
	close(old_fd);
	ok(bad == 0, "rotation: every line written (%d refused)", bad);
	ok(st.st_size <= CAP / 2 && ost.st_size <= CAP / 2 && ost.st_size > CAP / 4,
	   "rotation: net.log %lld and net.log.1 %lld bytes, each at most half the cap", (long long)st.st_size,
	   (long long)ost.st_size);
	for (int which = 0; which < 2; which++) {
		FILE *f = fopen(which ? path : old_path, "r");
		char line[AB_AUDIT_LINE_MAX + 2];
		int lineno = 0;
		while (f && fgets(line, sizeof(line), f)) {
			struct ab_audit_record rec;
			int k;
			lineno++;
			if (ab_audit_parse_line(line, strlen(line) - 1, &rec) < 0) {
				bad++;
				continue;
			}
			if (!strcmp(rec.event, "log rotated")) {
				rotated += which && lineno == 1;
				continue;
			}
			if (sscanf(rec.host, "h%d.test", &k) != 1) {
				bad++;
				continue;
			}
			if (which && first_new < 0)
				first_new = k;
			if (which)
				last_new = k;
			else
				last_old = k;
		}
		if (f)
			fclose(f);
	}
	ok(bad == 0 && rotated == 1, "rotation: both files hold whole lines; the new log begins with the note");
	ok(last_new == N - 1 && first_new == last_old + 1,
	   "rotation: net.log.1 ends with h%d, net.log goes on from h%d to h%d", last_old, first_new, last_new);
	unlink(path);
	unlink(old_path);
}

/* --- control ----------------------------------------------------------------------- */

static void test_control_parse(void)
{
	struct ab_net_rule rule;
	struct ab_error err = { 0 };
	char big[AB_CONTROL_MSG_MAX + 10];
	struct {
		const char *msg;
		size_t len;
	} bad[] = {
		{ "allow", 5 }, { "allow ", 6 }, { "allow  x.test", 13 }, { "allow a.test b.test", 19 },
		{ "permit x.test", 13 }, { "ALLOW x.test", 12 }, { "allow x.test\n", 13 },
		{ "allow x.test\0", 13 }, { "allow *.", 8 }, { "allow http://x", 14 }, { "deny x:0", 8 },
		{ "allow\tx.test", 12 }, { "", 0 },
	};

	ok(ab_control_parse("allow example.com", 17, &rule, &err) == 0 && !rule.deny &&
		   !strcmp(rule.text, "example.com"),
	   "control: 'allow example.com'");
	ok(ab_control_parse("deny *.GitHub.com:443", 21, &rule, &err) == 0 && rule.deny &&
		   !strcmp(rule.text, "*.github.com:443"),
	   "control: 'deny *.GitHub.com:443' (%s)", rule.text);
	ok(ab_control_parse("allow 10.0.0.0/8", 16, &rule, &err) == 0 && rule.kind == AB_NET_RULE_ADDR,
	   "control: an address rule");
	for (size_t i = 0; i < AB_ELEMENTSOF(bad); i++) {
		int r = ab_control_parse(bad[i].msg, bad[i].len, &rule, &err);
		ok(r < 0 && err.msg[0] && !strchr(err.msg, '\n'), "control refuses '%s' (%s)",
		   printable(bad[i].msg, bad[i].len), err.msg);
	}
	memset(big, 'a', sizeof(big));
	memcpy(big, "allow ", 6);
	ok(ab_control_parse(big, sizeof(big), &rule, &err) < 0, "control refuses a message over %d bytes (%s)",
	   AB_CONTROL_MSG_MAX, err.msg);
	ok(ab_control_parse(big, 400, &rule, &err) < 0, "control refuses a rule too long (%s)", err.msg);
}

enum server_mode { SERVE_ECHO, SERVE_ERROR, SERVE_CLOSE, SERVE_SILENT };

/* A control server in a child: accepts one connection and answers as mode says. */
static pid_t start_server(const char *path, enum server_mode mode)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	pid_t pid;

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 4) < 0)
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		char msg[AB_CONTROL_MSG_MAX + 1], reply[AB_ERROR_MSG_MAX + 16];
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		ssize_t n = c < 0 ? -1 : recv(c, msg, sizeof(msg) - 1, 0);
		if (n < 0)
			_exit(1);
		msg[n] = '\0';
		if (mode == SERVE_ECHO) {
			struct ab_net_rule rule;
			struct ab_error err;
			if (ab_control_parse(msg, (size_t)n, &rule, &err) < 0)
				snprintf(reply, sizeof(reply), "error %s", err.msg);
			else
				snprintf(reply, sizeof(reply), "ok %s", rule.text);
			send(c, reply, strlen(reply), MSG_NOSIGNAL);
		} else if (mode == SERVE_ERROR) {
			snprintf(reply, sizeof(reply), "error the policy is full\x1b[2J");
			send(c, reply, strlen(reply), MSG_NOSIGNAL);
		} else if (mode == SERVE_SILENT) {
			sleep(4);
		}
		_exit(0);
	}
	close(fd);
	return pid;
}

static void reap(pid_t pid)
{
	int status;
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
}

static void test_control_request(void)
{
	char path[256], applied[AB_CONTROL_MSG_MAX];
	struct ab_error err = { 0 };
	struct timespec a, b;
	pid_t pid;
	int r;

	snprintf(path, sizeof(path), "%s/net.sock", tmpdir);
	pid = start_server(path, SERVE_ECHO);
	r = ab_control_request(path, "allow", "API.Example.com:443", applied, sizeof(applied), &err);
	ok(r == 0 && !strcmp(applied, "api.example.com:443"), "request: ok, with the applied text (%s)", applied);
	reap(pid);

	pid = start_server(path, SERVE_ECHO);
	r = ab_control_request(path, "deny", "*.", applied, sizeof(applied), &err);
	ok(r < 0 && strstr(err.msg, "*.") != NULL, "request: the proxy's error comes back (%s)", err.msg);
	reap(pid);

	pid = start_server(path, SERVE_ERROR);
	r = ab_control_request(path, "allow", "x.test", applied, sizeof(applied), &err);
	ok(r < 0 && strstr(err.msg, "the policy is full") && !strchr(err.msg, '\x1b'),
	   "request: an error answer, control characters removed (%s)", err.msg);
	reap(pid);

	pid = start_server(path, SERVE_CLOSE);
	r = ab_control_request(path, "allow", "x.test", applied, sizeof(applied), &err);
	ok(r == -EPERM && strstr(err.msg, "owner"), "request: closed without an answer -> EPERM (%s)", err.msg);
	reap(pid);

	pid = start_server(path, SERVE_SILENT);
	clock_gettime(CLOCK_MONOTONIC, &a);
	r = ab_control_request(path, "allow", "x.test", applied, sizeof(applied), &err);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ok(r == -ETIMEDOUT && b.tv_sec - a.tv_sec <= 3, "request: no answer -> -ETIMEDOUT after 2 s (%s)", err.msg);
	reap(pid);

	/* The socket file of a proxy that is gone. */
	r = ab_control_request(path, "allow", "x.test", applied, sizeof(applied), &err);
	ok(r == -ECONNREFUSED, "request: a stale socket -> -ECONNREFUSED (%s)", err.msg);
	unlink(path);
	r = ab_control_request(path, "allow", "x.test", applied, sizeof(applied), &err);
	ok(r == -ENOENT, "request: no socket -> -ENOENT (%s)", err.msg);
	r = ab_control_request(path, "permit", "x.test", applied, sizeof(applied), &err);
	ok(r < 0, "request: an unknown verb is refused before connecting");
}

/* --- confinement ------------------------------------------------------------------- */

enum probe {
	P_PASSWD, P_RESOLV, P_HOSTS, P_WRITE, P_BIND, P_LISTEN, P_PTRACE, P_EXECVE, P_MOUNT,
	P_PACKET, P_UNIX, P_KILL, P_FORK, P_EXECMEM, P_SETOWN, P_PRCTL, P_SETUID, P_UNLISTED,
	P_RAW, P_CONNECT, P_SPLICE, P_EPOLL, P_AUDIT, P_CARES, P_TIME, P_MALLOC, P_UID, P_GID,
	P_NOFILE, P_MAX
};

static pid_t test_pid;
static uint16_t listen_port;
static int audit_fd = -1;
static char writable_path[256];

static int err_of(long r)
{
	return r < 0 ? errno : 0;
}

static int open_read(const char *path)
{
	char buf[64];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	int r = read(fd, buf, sizeof(buf)) < 0 ? errno : 0;
	close(fd);
	return r;
}

static int probe_bind(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), r;
	if (fd < 0)
		return errno;
	r = err_of(bind(fd, (struct sockaddr *)&sin, sizeof(sin)));
	close(fd);
	return r;
}

static int probe_listen(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), r;
	if (fd < 0)
		return errno;
	r = err_of(listen(fd, 1));
	close(fd);
	return r;
}

static int probe_socket(int family, int type, int protocol)
{
	int fd = socket(family, type | SOCK_CLOEXEC, protocol);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int probe_fork(void)
{
	pid_t pid = fork();
	if (pid == 0)
		child_exit(0);
	if (pid < 0)
		return errno;
	waitpid(pid, NULL, 0);
	return 0;
}

static int probe_connect_splice(int *splice_result)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(listen_port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), p[2], r;
	if (fd < 0)
		return errno;
	r = err_of(connect(fd, (struct sockaddr *)&sin, sizeof(sin)));
	*splice_result = -1;
	if (r == 0 && pipe2(p, O_CLOEXEC) == 0) {
		if (write(p[1], "hello", 5) == 5)
			*splice_result = splice(p[0], NULL, fd, NULL, 5, 0) == 5 ? 0 : errno;
		else
			*splice_result = errno;
		close(p[0]);
		close(p[1]);
	}
	close(fd);
	return r;
}

static int probe_epoll(void)
{
	struct epoll_event ev = { .events = EPOLLIN }, out;
	int ep = epoll_create1(EPOLL_CLOEXEC), p[2], r;
	if (ep < 0)
		return errno;
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return errno;
	ev.data.fd = p[0];
	r = err_of(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
	if (r == 0 && write(p[1], "x", 1) == 1)
		r = epoll_wait(ep, &out, 1, 100) == 1 ? 0 : errno ? errno : EIO;
	close(p[0]);
	close(p[1]);
	close(ep);
	return r;
}

static int probe_audit(void)
{
	struct ab_audit_event ev = { .via = "proxy", .host = "confined.test", .port = 443,
				     .decision = "allow", .rule = "confined.test", .duration_ms = 1.5 };
	int r = ab_audit_write(audit_fd, "confined", &ev);
	return r < 0 ? -r : 0;
}

static int probe_cares(void)
{
	ares_channel ch;
	int r;

	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
		return EIO;
	r = ares_init(&ch);
	if (r == ARES_SUCCESS)
		ares_destroy(ch);
	ares_library_cleanup();
	return r == ARES_SUCCESS ? 0 : 1000 + r;
}

static int probe_time(void)
{
	struct timespec ts = { 0, 1000000 };
	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		return errno;
	ts = (struct timespec){ 0, 1000000 };
	return err_of(nanosleep(&ts, NULL));
}

static int probe_malloc(void)
{
	char *p = malloc(8 << 20), *q;
	if (!p)
		return ENOMEM;
	memset(p, 1, 8 << 20);
	q = realloc(p, 16 << 20);
	if (!q) {
		free(p);
		return ENOMEM;
	}
	free(q);
	return 0;
}

static int probe_execmem(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return errno;
	munmap(p, 4096);
	return 0;
}

static void run_probes(int *res, bool confined)
{
	char *const argv[] = { "x", NULL };
	int p[2];

	res[P_PASSWD] = open_read("/etc/passwd");
	res[P_RESOLV] = open_read("/etc/resolv.conf");
	res[P_HOSTS] = open_read("/etc/hosts");
	{
		int fd = open(writable_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		res[P_WRITE] = fd < 0 ? errno : 0;
		if (fd >= 0)
			close(fd);
	}
	res[P_BIND] = probe_bind();
	res[P_LISTEN] = probe_listen();
	res[P_PTRACE] = confined ? err_of(ptrace(PTRACE_TRACEME, 0, NULL, NULL)) : -1;
	res[P_EXECVE] = err_of(execve("/nonexistent/agentbox-probe", argv, argv));
	res[P_MOUNT] = err_of(mount("none", "/nonexistent/agentbox-probe", "tmpfs", 0, NULL));
	res[P_PACKET] = probe_socket(AF_PACKET, SOCK_RAW, 0);
	res[P_UNIX] = probe_socket(AF_UNIX, SOCK_STREAM, 0);
	res[P_RAW] = probe_socket(AF_INET, SOCK_RAW, IPPROTO_ICMP); /* allowed by the filter: needs CAP_NET_RAW */
	res[P_KILL] = err_of(kill(test_pid, 0));
	res[P_FORK] = probe_fork();
	res[P_EXECMEM] = probe_execmem();
	if (pipe2(p, O_CLOEXEC) == 0) {
		res[P_SETOWN] = err_of(fcntl(p[0], F_SETOWN, test_pid));
		close(p[0]);
		close(p[1]);
	}
	res[P_PRCTL] = err_of(prctl(PR_SET_NAME, "probe", 0, 0, 0));
	res[P_SETUID] = confined ? err_of(setuid(0)) : -1;
	res[P_UNLISTED] = err_of(syscall(SYS_getppid) < 0 ? -1 : 0);
	res[P_CONNECT] = probe_connect_splice(&res[P_SPLICE]);
	res[P_EPOLL] = probe_epoll();
	res[P_AUDIT] = probe_audit();
	res[P_CARES] = probe_cares();
	res[P_TIME] = probe_time();
	res[P_MALLOC] = probe_malloc();
	res[P_UID] = (int)getuid();
	res[P_GID] = (int)getgid();
	{
		struct rlimit rl;
		res[P_NOFILE] = getrlimit(RLIMIT_NOFILE, &rl) < 0 ? -errno : rl.rlim_cur == rl.rlim_max ? 1 : 0;
	}
}

/* Runs the probes in a child, confined or not. Returns the child's status; res filled. */
static int probe_child(bool confine, int *res, char *msg, size_t msg_size)
{
	int p[2], status;
	pid_t pid;

	memset(res, 0xff, sizeof(int) * P_MAX);
	msg[0] = '\0';
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int out[P_MAX + 1];
		close(p[0]);
		if (confine) {
			struct ab_proxy_config cfg = { .drop_privileges = geteuid() == 0,
						       .landlock_abi = ab_landlock_abi(), .log_old_fd = -1 };
			struct ab_error err = { 0 };
			/* a small hard limit, to see the soft one raised to it */
			struct rlimit rl = { 256, 512 };
			setrlimit(RLIMIT_NOFILE, &rl);
			if (ab_proxy_confine(&cfg, &err) < 0) {
				(void)!write(p[1], err.msg, strlen(err.msg));
				child_exit(3);
			}
		}
		memset(out, 0, sizeof(out));
		out[0] = 0x5eed;
		run_probes(out + 1, confine);
		(void)!write(p[1], out, sizeof(out));
		child_exit(0);
	}
	close(p[1]);
	{
		int in[P_MAX + 1];
		ssize_t n = read(p[0], in, sizeof(in));
		if (n == (ssize_t)sizeof(in) && in[0] == 0x5eed)
			memcpy(res, in + 1, sizeof(int) * P_MAX);
		else if (n > 0)
			snprintf(msg, msg_size, "%.*s", (int)n, (char *)in);
	}
	close(p[0]);
	waitpid(pid, &status, 0);
	return status;
}

static void test_confine(void)
{
	int ctl[P_MAX], got[P_MAX], lfd, status, abi = ab_landlock_abi();
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	char path[256], msg[AB_ERROR_MSG_MAX], line[4096];
	bool root = geteuid() == 0;
	ssize_t n;

	test_pid = getpid();
	snprintf(writable_path, sizeof(writable_path), "%s/writable", tmpdir);
	snprintf(path, sizeof(path), "%s/confined.log", tmpdir);
	audit_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 16) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &len) < 0) {
		ok(0, "cannot make a loopback listener: %s", strerror(errno));
		return;
	}
	listen_port = ntohs(sin.sin_port);

	status = probe_child(false, ctl, msg, sizeof(msg));
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "control child ran its probes");
	unlink(writable_path);
	status = probe_child(true, got, msg, sizeof(msg));
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "confined child: never killed, ends normally (status 0x%x) %s", status, msg);
	if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		close(lfd);
		return;
	}

	/* What works. */
	ok(got[P_CONNECT] == 0, "confined: connect to a loopback listener works (%s)", strerror(got[P_CONNECT]));
	ok(got[P_SPLICE] == 0, "confined: splice from a pipe into the socket works (%d)", got[P_SPLICE]);
	ok(got[P_EPOLL] == 0, "confined: epoll works (%d)", got[P_EPOLL]);
	ok(got[P_AUDIT] == 0, "confined: an audit line is written with json-c (%s)", strerror(got[P_AUDIT]));
	ok(got[P_CARES] == 0, "confined: c-ares initialises, reading the resolver's files (%d)", got[P_CARES]);
	ok(got[P_TIME] == 0 && got[P_MALLOC] == 0, "confined: clocks, sleeps and large allocations work");
	ok(got[P_HOSTS] == 0 || (got[P_HOSTS] == ENOENT && ctl[P_HOSTS] == ENOENT),
	   "confined: /etc/hosts is readable (%s)", strerror(got[P_HOSTS]));
	if (ctl[P_RESOLV] == ENOENT)
		skip_or_fail("confined: /etc/resolv.conf is readable", "this machine has no /etc/resolv.conf");
	else
		ok(got[P_RESOLV] == 0, "confined: /etc/resolv.conf is readable (%s)", strerror(got[P_RESOLV]));
	ok(got[P_NOFILE] == 1, "confined: RLIMIT_NOFILE soft raised to the hard limit");

	/* What is refused, against the control. */
	if (abi <= 0)
		skip_or_fail("confined: /etc/passwd cannot be opened (Landlock)", "no Landlock in this kernel");
	else
		ok(ctl[P_PASSWD] == 0 && got[P_PASSWD] == EACCES,
		   "confined: /etc/passwd cannot be opened, EACCES (unconfined: %d)", ctl[P_PASSWD]);
	ok(ctl[P_WRITE] == 0 && got[P_WRITE] == EPERM, "confined: no file opened for writing, EPERM (%s; unconfined %d)",
	   strerror(got[P_WRITE]), ctl[P_WRITE]);
	ok(ctl[P_BIND] == 0 && got[P_BIND] != 0, "confined: a TCP socket cannot bind (%s)", strerror(got[P_BIND]));
	ok(ctl[P_LISTEN] == 0 && got[P_LISTEN] == EPERM, "confined: listen refused, EPERM");
	ok(got[P_PTRACE] == EPERM, "confined: ptrace refused, EPERM (%s)", strerror(got[P_PTRACE]));
	ok(ctl[P_EXECVE] == ENOENT && got[P_EXECVE] == EPERM, "confined: execve refused, EPERM (%s)",
	   strerror(got[P_EXECVE]));
	ok(got[P_MOUNT] == EPERM, "confined: mount refused, EPERM");
	ok(got[P_PACKET] == EPERM, "confined: socket(AF_PACKET) refused, EPERM (unconfined: %d)", ctl[P_PACKET]);
	ok(ctl[P_UNIX] == 0 && got[P_UNIX] == EPERM, "confined: socket(AF_UNIX) refused, EPERM");
	if (ctl[P_RAW] != 0)
		skip_or_fail("confined: no capabilities left (a raw socket fails)", "needs root for the control");
	else
		ok(got[P_RAW] == EPERM, "confined: no capabilities left: a raw socket fails, EPERM (%s)",
		   strerror(got[P_RAW]));
	ok(ctl[P_KILL] == 0 && got[P_KILL] == EPERM, "confined: kill refused, EPERM");
	ok(ctl[P_FORK] == 0 && got[P_FORK] == EPERM, "confined: fork refused, EPERM (%s)", strerror(got[P_FORK]));
	ok(ctl[P_EXECMEM] == 0 && got[P_EXECMEM] == EPERM, "confined: no executable memory, EPERM");
	ok(ctl[P_SETOWN] == 0 && got[P_SETOWN] == EPERM, "confined: fcntl(F_SETOWN) refused, EPERM");
	ok(ctl[P_PRCTL] == 0 && got[P_PRCTL] == EPERM, "confined: prctl refused, EPERM");
	ok(got[P_SETUID] == EPERM, "confined: setuid(0) refused, EPERM");
	ok(ctl[P_UNLISTED] == 0 && got[P_UNLISTED] == EPERM,
	   "confined: a syscall not on the list (getppid) fails with EPERM, the process lives on");
	if (root)
		ok(got[P_UID] == 65534 && got[P_GID] == 65534, "confined as root: uid and gid 65534 (%d, %d)",
		   got[P_UID], got[P_GID]);
	else
		ok(got[P_UID] == (int)getuid(), "confined as a user: the uid stays (%d)", got[P_UID]);

	close(lfd);
	close(audit_fd);
	{
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		struct ab_audit_record rec;
		n = fd < 0 ? -1 : read(fd, line, sizeof(line) - 1);
		if (fd >= 0)
			close(fd);
		line[n > 0 ? n : 0] = '\0';
		/* the control child's line first, then the confined child's */
		char *second = strchr(line, '\n');
		ok(count_char(line, '\n') == 2 && second &&
			   ab_audit_parse_line(second + 1, strlen(second + 1), &rec) == 0 &&
			   !strcmp(rec.host, "confined.test"),
		   "confined: the line it wrote reads back");
	}
	unlink(path);
}

static void test_builtin_program(void)
{
	const struct ab_seccomp_builtin *built = ab_seccomp_builtin_for(&ab_seccomp_proxy_table);
	struct ab_seccomp_program prog = { 0 };
	struct ab_error err;

	ok(built != NULL, "'proxy' has a build-time program");
	ok(ab_seccomp_compile_table(&ab_seccomp_proxy_table, &prog, &err) == 0, "'proxy' compiles at run time");
	ok(built && prog.insns && built->len == prog.len &&
		   memcmp(built->insns, prog.insns, prog.len * sizeof(struct sock_filter)) == 0,
	   "'proxy': the build-time program equals the run-time one");
	free(prog.insns);
}

/* --- egress: spawn, hand the listeners, stop, with a stub proxy --------------------- */

#define STRAY_FD 57
#define STUB_ANSWER_MS 200 /* the stub's answer comes this late: agentbox must wait for it */

static void stub_log(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void stub_log(int fd, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (len > 0)
		(void)!write(fd, line, (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1);
}

/* What the real proxy does with listeners_fd, reduced: one message, its kinds and fds.
 * Returns how many came, 0 at EOF, -1 when the message is not one of listeners. */
static int stub_receive(int sock, struct ab_proxy_listener *out)
{
	struct ab_proxy_listener_wire wire[AB_PROXY_MAX_LISTENERS];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * AB_PROXY_MAX_LISTENERS)];
	} ctl;
	struct iovec iov = { .iov_base = wire, .iov_len = sizeof(wire) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *c;
	ssize_t got = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	size_t n, n_fds;

	if (got <= 0)
		return (int)got;
	c = CMSG_FIRSTHDR(&msg);
	n = (size_t)got / sizeof(wire[0]);
	n_fds = c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS ?
			(c->cmsg_len - CMSG_LEN(0)) / sizeof(int) : 0;
	if (n_fds != n || (size_t)got % sizeof(wire[0]) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		return -1;
	for (size_t i = 0; i < n; i++) {
		memcpy(&out[i].fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
		out[i].kind = (enum ab_proxy_listener_kind)wire[i].kind;
		out[i].family = wire[i].family;
	}
	return (int)n;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int sockopt(int fd, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);

	getsockopt(fd, SOL_SOCKET, opt, &v, &len);
	return v;
}

/* The proxy process, replaced: checks what it was handed, says so in the log, takes the
 * listeners, answers, and waits for the lifeline to close. */
int ab_proxy_run(struct ab_proxy_config *cfg, struct ab_error *err)
{
	struct ab_proxy_listener ls[AB_PROXY_MAX_LISTENERS];
	struct timespec late = { 0, STUB_ANSWER_MS * 1000000L };
	bool fds_low;
	sigset_t mask;
	struct sigaction sa;
	char c;
	int n;

	if (strcmp(cfg->name, "egress-die") == 0)
		_exit(3);
	fds_low = cfg->control_fd == 3 && cfg->log_fd == 4 && cfg->lifeline_fd == 5 && cfg->ready_fd == 6 &&
		  cfg->listeners_fd == 7 && cfg->log_old_fd == 8 &&
		  (fcntl(cfg->log_fd, F_GETFL) & O_ACCMODE) == O_RDWR;
	sigprocmask(SIG_SETMASK, NULL, &mask);
	sigaction(SIGPIPE, NULL, &sa);
	stub_log(cfg->log_fd,
		 "stub name=%s n_listeners=%zu fds_low=%d next_closed=%d stray_closed=%d control=%d "
		 "seqpacket=%d listeners_seqpacket=%d owner=%d drop=%d abi_ok=%d rules=%zu first=%s "
		 "sigpipe_ign=%d mask_empty=%d session=%d\n",
		 cfg->name, cfg->n_listeners, fds_low, fcntl(9, F_GETFD) < 0, fcntl(STRAY_FD, F_GETFD) < 0,
		 sockopt(cfg->control_fd, SO_ACCEPTCONN), sockopt(cfg->control_fd, SO_TYPE) == SOCK_SEQPACKET,
		 sockopt(cfg->listeners_fd, SO_TYPE) == SOCK_SEQPACKET, (int)cfg->owner_uid == (int)getuid(),
		 cfg->drop_privileges == (geteuid() == 0), cfg->landlock_abi == ab_landlock_abi(), cfg->policy.n,
		 cfg->policy.n ? cfg->policy.rules[0].text : "-", sa.sa_handler == SIG_IGN,
		 sigisemptyset(&mask), getsid(0) == getpid());
	ab_net_policy_free(&cfg->policy);
	(void)err;

	n = stub_receive(cfg->listeners_fd, ls);
	close(cfg->listeners_fd);
	if (n == 0) { /* the sandbox never started: nobody waits for an answer */
		stub_log(cfg->log_fd, "stub %s: eof before any listener\n", cfg->name);
		return 0;
	}
	if (n < 0) {
		(void)!write(cfg->ready_fd, "stub: malformed", 15);
		return 0;
	}
	stub_log(cfg->log_fd, "stub %s: got=%d kinds=%d,%d families=%d,%d types=%d,%d cloexec=%d\n", cfg->name, n,
		 ls[0].kind, n > 1 ? (int)ls[1].kind : 0, ls[0].family, n > 1 ? ls[1].family : 0,
		 sockopt(ls[0].fd, SO_TYPE), n > 1 ? sockopt(ls[1].fd, SO_TYPE) : 0,
		 (fcntl(ls[0].fd, F_GETFD) & FD_CLOEXEC) != 0);
	if (strcmp(cfg->name, "egress-refuse") == 0) {
		(void)!write(cfg->ready_fd, "stub says no", 12);
		return 0;
	}
	nanosleep(&late, NULL);
	(void)!write(cfg->ready_fd, "OK", 2);
	close(cfg->ready_fd);
	while (read(cfg->lifeline_fd, &c, 1) > 0)
		;
	for (int i = 0; i < n; i++)
		close(ls[i].fd);
	stub_log(cfg->log_fd, "stub %s: lifeline closed\n", cfg->name);
	return 0;
}

static bool cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	return fl >= 0 && (fl & FD_CLOEXEC);
}

static bool reaped(pid_t pid)
{
	return waitpid(pid, NULL, WNOHANG) < 0 && errno == ECHILD;
}

/* The log's text (NUL-terminated) in buf. */
static void read_log(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, size - 1) : -1;

	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

/* Waits up to 2 s for the log to contain want. */
static bool log_shows(const char *path, const char *want)
{
	char buf[8192];

	for (int i = 0; i < 200; i++) {
		struct timespec t = { 0, 10000000 };
		read_log(path, buf, sizeof(buf));
		if (strstr(buf, want))
			return true;
		nanosleep(&t, NULL);
	}
	return false;
}

static void make_listeners(struct ab_proxy_listener ls[2])
{
	ls[0] = (struct ab_proxy_listener){ socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), AB_PROXY_LISTEN_HTTP,
					    AF_INET };
	ls[1] = (struct ab_proxy_listener){ socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0), AB_PROXY_LISTEN_DNS,
					    AF_INET6 };
}

static void test_egress(void)
{
	struct ab_config cfg = { 0 };
	struct ab_net_rule rules[2];
	struct ab_proxy_listener ls[2];
	struct ab_egress eg = AB_EGRESS_INIT;
	struct ab_error err = { 0 };
	char dir[256], sock_path[300], log_path[300], old_path[300], buf[8192];
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;
	sigset_t block, saved;
	int64_t t0, t1;
	int status = -1, fd, r;
	pid_t pid;

	snprintf(dir, sizeof(dir), "%s/state", tmpdir);
	mkdir(dir, 0700);
	snprintf(sock_path, sizeof(sock_path), "%s/" AB_EGRESS_CONTROL, dir);
	snprintf(log_path, sizeof(log_path), "%s/" AB_EGRESS_LOG, dir);
	snprintf(old_path, sizeof(old_path), "%s/" AB_EGRESS_LOG ".1", dir);

	/* A stale socket of an earlier run, and a log big enough to be rotated. */
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	memcpy(addr.sun_path, sock_path, strlen(sock_path) + 1 < sizeof(addr.sun_path) ? strlen(sock_path) + 1 : 0);
	bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	close(fd);
	fd = open(log_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	ok(ftruncate(fd, (off_t)(AB_AUDIT_LOG_MAX / 2)) == 0, "a log of half the cap (sparse)");
	close(fd);

	if (ab_net_rule_parse("api.example.com", false, &rules[0], &err) < 0 ||
	    ab_net_rule_parse("*.bad.test", true, &rules[1], &err) < 0) {
		ok(0, "cannot parse the rules: %s", err.msg);
		return;
	}
	cfg.name = "egress-test";
	cfg.net_rules = rules;
	cfg.n_net_rules = 2;
	/* An fd without O_CLOEXEC that the proxy must not keep; signals it must not inherit. */
	dup2(STDOUT_FILENO, STRAY_FD);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &saved);
	mode_t old_umask = umask(0);
	r = ab_egress_spawn(&cfg, dir, &eg, &err);
	umask(old_umask);
	sigprocmask(SIG_SETMASK, &saved, NULL);
	close(STRAY_FD);
	ok(r == 0 && eg.pid > 0 && eg.lifeline_fd >= 0 && eg.listeners_fd >= 0 && eg.ready_fd >= 0,
	   "egress: spawned before any listener (%s)", r < 0 ? err.msg : "ok");
	if (r < 0)
		return;
	ok(cloexec(eg.lifeline_fd) && cloexec(eg.listeners_fd) && cloexec(eg.ready_fd),
	   "egress: the lifeline, the listener socket and the ready pipe are O_CLOEXEC");
	ok(stat(sock_path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600,
	   "egress: net.sock is a socket, 0600 under umask 0 (%o)", st.st_mode & 0777);
	ok(stat(log_path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600,
	   "egress: net.log is a file, 0600 under umask 0 (%o)", st.st_mode & 0777);
	ok(stat(old_path, &st) == 0 && (uint64_t)st.st_size == AB_AUDIT_LOG_MAX / 2,
	   "egress: the big log was kept as net.log.1");
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	ok(connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0, "egress: net.sock takes connections");
	close(fd);

	/* The proxy runs (and has said what it holds) before the sandbox has listeners. */
	ok(log_shows(log_path, "stub name=egress-test n_listeners=0 "), "egress: the proxy runs before its listeners come");
	read_log(log_path, buf, sizeof(buf));
	ok(strstr(buf, " fds_low=1 next_closed=1 stray_closed=1 ") != NULL,
	   "egress: fds moved to 3..7, every other fd closed");
	ok(strstr(buf, " control=1 seqpacket=1 listeners_seqpacket=1 ") != NULL,
	   "egress: the control socket is listening SEQPACKET; the listener socket is SEQPACKET");
	ok(strstr(buf, " owner=1 drop=1 abi_ok=1 ") != NULL, "egress: owner, privilege drop and Landlock ABI set");
	ok(strstr(buf, " rules=2 first=api.example.com ") != NULL, "egress: the policy has the rules");
	ok(strstr(buf, " sigpipe_ign=1 mask_empty=1 session=1") != NULL,
	   "egress: SIGPIPE ignored, no signal blocked, a session of its own");

	make_listeners(ls);
	t0 = now_ms();
	r = ab_egress_hand_listeners(&eg, ls, 2, &err);
	t1 = now_ms();
	ok(r == 0, "egress: the listeners handed over (%s)", r < 0 ? err.msg : "ok");
	ok(t1 - t0 >= STUB_ANSWER_MS - 5, "egress: the proxy's answer is waited for (%lld ms)", (long long)(t1 - t0));
	ok(ls[0].fd == -1 && ls[1].fd == -1, "egress: the listeners are closed in the caller");
	ok(eg.listeners_fd == -1 && eg.ready_fd == -1 && eg.lifeline_fd >= 0 && eg.pid > 0,
	   "egress: the listener socket and the ready pipe are done with; the lifeline stays");
	read_log(log_path, buf, sizeof(buf));
	ok(strstr(buf, "stub egress-test: got=2 kinds=1,4 families=2,10 types=1,2 cloexec=1") != NULL,
	   "egress: both listeners arrive, in one message, with their kinds and families");

	/* End it by closing the lifeline, as ab_egress_stop does, to see its status. */
	pid = eg.pid;
	close(eg.lifeline_fd);
	eg.lifeline_fd = -1;
	waitpid(pid, &status, 0);
	eg.pid = -1;
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "egress: the proxy ends with 0 when the lifeline closes");
	ok(log_shows(log_path, "stub egress-test: lifeline closed"), "egress: after serving until the lifeline's end");
	ab_egress_stop(&eg); /* all done already: nothing to do, nothing to break */
	ab_egress_stop(NULL);

	/* The sandbox never made its listeners (it failed first): the proxy ends quietly. */
	cfg.name = "egress-eof";
	r = ab_egress_spawn(&cfg, dir, &eg, &err);
	pid = eg.pid;
	ok(r == 0 && pid > 0, "egress: spawned again (%s)", r < 0 ? err.msg : "ok");
	t0 = now_ms();
	ab_egress_stop(&eg);
	t1 = now_ms();
	ok(r == 0 && reaped(pid) && eg.pid == -1 && eg.lifeline_fd == -1 && eg.listeners_fd == -1 && eg.ready_fd == -1,
	   "egress: stopped before its listeners, the proxy is reaped (%lld ms) and nothing is held",
	   (long long)(t1 - t0));
	ok(log_shows(log_path, "stub egress-eof: eof before any listener"),
	   "egress: the proxy saw the end of its listener socket and returned");

	/* A proxy that refuses its listeners stops the sandbox, and is reaped. */
	cfg.name = "egress-refuse";
	r = ab_egress_spawn(&cfg, dir, &eg, &err);
	pid = eg.pid;
	make_listeners(ls);
	if (r == 0)
		r = ab_egress_hand_listeners(&eg, ls, 2, &err);
	ok(r < 0 && strstr(err.msg, "the egress proxy could not start: stub says no") != NULL,
	   "egress: its refusal is the error (%s)", err.msg);
	ok(reaped(pid) && eg.pid == -1 && eg.lifeline_fd == -1, "egress: and the proxy is gone");
	ok(ls[0].fd == -1 && ls[1].fd == -1, "egress: the listeners are closed in the caller all the same");
	ab_egress_stop(&eg);

	/* A proxy that died during its start-up. */
	cfg.name = "egress-die";
	r = ab_egress_spawn(&cfg, dir, &eg, &err);
	pid = eg.pid;
	make_listeners(ls);
	if (r == 0)
		r = ab_egress_hand_listeners(&eg, ls, 2, &err);
	ok(r < 0 && strstr(err.msg, "exited during start-up") != NULL, "egress: a proxy that died says so (%s)",
	   err.msg);
	ok(reaped(pid) && eg.pid == -1, "egress: and is reaped");
	ab_egress_stop(&eg);

	/* The same, with the proxy surely gone before the hand-over: the send meets a closed
	 * socket (EPIPE), and the error is still the proxy's exit, not the broken pipe. */
	r = ab_egress_spawn(&cfg, dir, &eg, &err);
	pid = eg.pid;
	if (r == 0) {
		siginfo_t si = { 0 };
		waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
	}
	make_listeners(ls);
	if (r == 0)
		r = ab_egress_hand_listeners(&eg, ls, 2, &err);
	ok(r < 0 && strstr(err.msg, "exited during start-up") != NULL,
	   "egress: a proxy already dead at the hand-over says it exited (%s)", err.msg);
	ok(reaped(pid) && eg.pid == -1, "egress: and is reaped");
	ab_egress_stop(&eg);

	/* Nothing to hand to: the listeners are still closed. */
	make_listeners(ls);
	r = ab_egress_hand_listeners(&eg, ls, 2, &err);
	ok(r < 0 && ls[0].fd == -1 && ls[1].fd == -1, "egress: no proxy: an error, and the listeners closed (%s)",
	   err.msg);

	unlink(sock_path);
	unlink(log_path);
	unlink(old_path);
	rmdir(dir);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		printf("Bail out! cannot create a temporary directory\n");
		return 1;
	}
	test_audit_format();
	test_audit_hostile();
	test_audit_parse_bad();
	test_audit_write();
	test_audit_rotation();
	test_control_parse();
	test_control_request();
	test_builtin_program();
	test_confine();
	test_egress();
	rmdir(tmpdir);
	return tap_done();
}
