/* net: a filtered sandbox's network: its audit log (`net log`), and live changes to its
 * policy (`net allow`, `net deny`) through its proxy's control socket. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/egress.h"
#include "../lib/state.h"
#include "../lib/usage.h"
#include "../proxy/audit.h"
#include "../proxy/control.h"
#include "../proxy/rules.h"
#include "../shared/cleanup.h"
#include "../shared/error.h"
#include "../shared/strutil.h"
#include "commands.h"

#define FOLLOW_TICK_NS (200 * 1000000L)
#define READ_CHUNK (64 * 1024)
#define LINE_MAX_BYTES (4 * AB_AUDIT_LINE_MAX)

static void usage_net(FILE *out)
{
	fprintf(out, "usage: agentbox net log NAME [-f|--follow] [--json]\n"
		     "       agentbox net allow NAME RULE\n"
		     "       agentbox net deny NAME RULE\n\n"
		     "The network of a sandbox started with --allow/--deny rules:\n"
		     "  log    every decision of its egress proxy: time, allow or deny, how it was\n"
		     "         reached (proxy, socks, capture, dns), destination, the deciding rule,\n"
		     "         bytes out and in, duration; -f follows while it runs; --json prints\n"
		     "         the log's JSON lines as they are\n"
		     "  allow  adds an allow rule to the running sandbox, at once\n"
		     "  deny   adds a deny rule (deny rules win over allow rules)\n\n"
		     "RULE: HOST, *.SUFFIX or an address (ADDR, ADDR/PREFIX, [IPv6]), each with an\n"
		     "optional :PORT, e.g. api.example.com, '*.github.com:443', 10.0.0.0/8.\n");
}

static bool use_color(void)
{
	const char *nc = getenv("NO_COLOR");
	return isatty(STDOUT_FILENO) && !(nc && *nc);
}

static bool sandbox_running(const char *name)
{
	struct ab_state st;
	struct ab_error ignored;
	bool running = false;

	if (ab_state_load(name, &st, &ignored) >= 0) {
		running = st.status == AB_STATUS_RUNNING || st.status == AB_STATUS_CREATED;
		ab_state_free(&st);
	}
	return running;
}

/* "2026-11-27T22:01:02.123Z" -> local "23:01:02"; the text itself when it is not that. */
static void local_time(const char *iso, char *buf, size_t size)
{
	struct tm tm = { 0 };
	const char *end = strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm);
	time_t t;

	if (!end || (*end != '.' && *end != 'Z')) {
		snprintf(buf, size, "%.8s", iso[0] ? iso : "-");
		return;
	}
	t = timegm(&tm);
	if (!localtime_r(&t, &tm) || strftime(buf, size, "%H:%M:%S", &tm) == 0)
		snprintf(buf, size, "%.8s", iso);
}

struct table {
	bool json, color;
	size_t unreadable;
};

static void print_header(const struct table *t)
{
	if (!t->json)
		printf("%-8s %-8s %-7s %-36s %-28s %7s %7s %8s\n", "TIME", "DECISION", "VIA", "DESTINATION",
		       "RULE", "OUT", "IN", "MS");
}

static void print_record(const struct table *t, const struct ab_audit_record *rec)
{
	char when[16], dest[300], out[16] = "-", in[16] = "-", ms[24] = "-";
	const char *on = "", *off = "", *rule;

	local_time(rec->time, when, sizeof(when));
	if (!strcmp(rec->event, "policy")) {
		char who[32] = "";
		if (rec->uid >= 0)
			snprintf(who, sizeof(who), " (uid %lld)", rec->uid);
		printf("%-8s policy %s %s%s\n", when, rec->action[0] ? rec->action : "?", rec->rule, who);
		return;
	}
	if (rec->event[0]) {
		printf("%-8s %s%s%s\n", when, rec->event, rec->reason[0] ? ": " : "", rec->reason);
		return;
	}
	if (!rec->port)
		snprintf(dest, sizeof(dest), "%s", rec->host[0] ? rec->host : "-");
	else if (strchr(rec->host, ':'))
		snprintf(dest, sizeof(dest), "[%s]:%u", rec->host, rec->port);
	else
		snprintf(dest, sizeof(dest), "%s:%u", rec->host[0] ? rec->host : "-", rec->port);
	rule = rec->rule[0] ? rec->rule : "-";
	if (!strcmp(rec->decision, "error") && rec->reason[0])
		rule = rec->reason;
	if (!strcmp(rec->decision, "allow") && strcmp(rec->via, "dns") != 0) {
		ab_format_bytes(out, sizeof(out), rec->bytes_out);
		ab_format_bytes(in, sizeof(in), rec->bytes_in);
		snprintf(ms, sizeof(ms), "%.0f", rec->duration_ms);
	}
	if (t->color) {
		on = !strcmp(rec->decision, "allow") ? "\033[32m" :
		     !strcmp(rec->decision, "deny")  ? "\033[31m" : "\033[33m";
		off = "\033[0m";
	}
	printf("%-8s %s%-8s%s %-7s %-36s %-28s %7s %7s %8s\n", when, on,
	       rec->decision[0] ? rec->decision : "-", off, rec->via[0] ? rec->via : "-", dest, rule, out,
	       in, ms);
}

static void print_line(struct table *t, const char *line, size_t len)
{
	struct ab_audit_record rec;

	if (t->json) {
		fwrite(line, 1, len, stdout);
		fputc('\n', stdout);
		return;
	}
	if (ab_audit_parse_line(line, len, &rec) < 0) {
		t->unreadable++;
		return;
	}
	print_record(t, &rec);
}

/* Reads what fd holds now, line by line; a last line without its newline stays in buf
 * for the next call (*used bytes). Lines longer than LINE_MAX_BYTES are skipped whole. */
static int drain(struct table *t, int fd, char *buf, size_t *used, bool *skipping)
{
	for (;;) {
		ssize_t n = read(fd, buf + *used, READ_CHUNK - *used);
		size_t start = 0;
		char *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		*used += (size_t)n;
		while ((nl = memchr(buf + start, '\n', *used - start))) {
			size_t len = (size_t)(nl - (buf + start));
			if (!*skipping && len > 0)
				print_line(t, buf + start, len);
			*skipping = false;
			start += len + 1;
		}
		memmove(buf, buf + start, *used - start);
		*used -= start;
		if (*used >= LINE_MAX_BYTES) {
			*used = 0;
			*skipping = true;
			t->unreadable++;
		}
		fflush(stdout);
	}
}

static int open_log(const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	struct stat st;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

static int net_log(const char *name, bool follow, bool json)
{
	_cleanup_free_ char *dir = NULL, *path = NULL, *old = NULL, *buf = NULL;
	_cleanup_close_ int fd = -1;
	struct table t = { .json = json, .color = !json && use_color() };
	struct ab_error err = { 0 };
	struct ab_state st;
	size_t used = 0;
	bool skipping = false, stopping = false;
	int r;

	/* A foreground run leaves no record when it ends, but keeps its network log: the log
	 * is enough to show. */
	struct ab_error unknown = { 0 };
	bool known = ab_state_load(name, &st, &unknown) >= 0;
	if (known)
		ab_state_free(&st);
	if (ab_state_dir(name, &dir, &err) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		return AB_EXIT_INTERNAL;
	}
	if (asprintf(&path, "%s/" AB_EGRESS_LOG, dir) < 0 || asprintf(&old, "%s/" AB_EGRESS_LOG ".1", dir) < 0) {
		fprintf(stderr, "agentbox: cannot read the network log of '%s': out of memory\n", name);
		return AB_EXIT_INTERNAL;
	}
	buf = malloc(READ_CHUNK);
	if (!buf) {
		fprintf(stderr, "agentbox: cannot read the network log of '%s': out of memory\n", name);
		return AB_EXIT_INTERNAL;
	}
	fd = open_log(path);
	if (fd == -ENOENT && !known) {
		fprintf(stderr, "agentbox: %s\n", unknown.msg);
		return AB_EXIT_INTERNAL;
	}
	if (fd == -ENOENT) {
		fprintf(stderr, "agentbox: sandbox '%s' has no network log: it was not started with --allow rules\n",
			name);
		return AB_EXIT_INTERNAL;
	}
	if (fd < 0) {
		fprintf(stderr, "agentbox: cannot read the network log '%s': %s\n", path, strerror(-fd));
		return AB_EXIT_INTERNAL;
	}
	print_header(&t);
	/* The rotated log of earlier runs first. */
	{
		_cleanup_close_ int ofd = open_log(old);
		if (ofd >= 0) {
			size_t oused = 0;
			bool oskip = false;
			drain(&t, ofd, buf, &oused, &oskip);
			used = 0;
		}
	}
	for (;;) {
		r = drain(&t, fd, buf, &used, &skipping);
		if (r < 0) {
			fprintf(stderr, "agentbox: cannot read the network log '%s': %s\n", path, strerror(-r));
			return AB_EXIT_INTERNAL;
		}
		if (!follow || stopping)
			break;
		/* Rotated by the proxy (audit.c): what was read so far is the start of
		 * net.log.1 now; its rest, then the new net.log from its start. */
		struct stat now;
		off_t at = lseek(fd, 0, SEEK_CUR);
		if (fstat(fd, &now) == 0 && at > 0 && now.st_size < at) {
			_cleanup_close_ int ofd = open_log(old);
			if (ofd >= 0 && lseek(ofd, at, SEEK_SET) == at)
				(void)drain(&t, ofd, buf, &used, &skipping);
			used = 0;
			skipping = false;
			if (lseek(fd, 0, SEEK_SET) < 0)
				break;
			continue;
		}
		if (!sandbox_running(name)) {
			stopping = true; /* what it wrote before it stopped is read once more */
			continue;
		}
		struct timespec tick = { 0, FOLLOW_TICK_NS };
		nanosleep(&tick, NULL);
	}
	if (t.unreadable)
		fprintf(stderr, "agentbox: %zu line%s of '%s' could not be read\n", t.unreadable,
			t.unreadable == 1 ? "" : "s", path);
	return 0;
}

static int net_change(const char *verb, const char *name, const char *spec)
{
	_cleanup_free_ char *dir = NULL, *sock = NULL;
	struct ab_net_rule rule;
	struct ab_error err = { 0 };
	struct ab_state st;
	char applied[AB_CONTROL_MSG_MAX];
	bool deny = !strcmp(verb, "deny");
	int r;

	/* The rule first: a typo is reported the same whether the sandbox runs or not. */
	if (ab_net_rule_parse(spec, deny, &rule, &err) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		return AB_EXIT_INTERNAL;
	}
	if (ab_state_load(name, &st, &err) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		return AB_EXIT_INTERNAL;
	}
	bool running = st.status == AB_STATUS_RUNNING || st.status == AB_STATUS_CREATED;
	ab_state_free(&st);
	if (!running) {
		fprintf(stderr, "agentbox: cannot change the network policy of sandbox '%s': it is not running\n",
			name);
		return AB_EXIT_INTERNAL;
	}
	if (ab_state_dir(name, &dir, &err) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		return AB_EXIT_INTERNAL;
	}
	if (asprintf(&sock, "%s/" AB_EGRESS_CONTROL, dir) < 0) {
		fprintf(stderr, "agentbox: cannot reach the egress proxy of '%s': out of memory\n", name);
		return AB_EXIT_INTERNAL;
	}
	r = ab_control_request(sock, verb, rule.text, applied, sizeof(applied), &err);
	if (r == -ENOENT || r == -ECONNREFUSED) {
		fprintf(stderr, "agentbox: cannot reach the egress proxy of '%s': is it running with --allow rules?\n",
			name);
		return AB_EXIT_INTERNAL;
	}
	if (r < 0) {
		fprintf(stderr, "agentbox: cannot %s '%s' in sandbox '%s': %s\n", verb, rule.text, name, err.msg);
		return AB_EXIT_INTERNAL;
	}
	printf("agentbox: '%s' now %s '%s'\n", name, deny ? "denies" : "allows", applied[0] ? applied : rule.text);
	return 0;
}

int cmd_net(int argc, char **argv)
{
	const char *sub = argc > 0 ? argv[0] : NULL;

	if (!sub) {
		usage_net(stderr);
		return AB_EXIT_INTERNAL;
	}
	if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
		usage_net(stdout);
		return 0;
	}
	if (!strcmp(sub, "log")) {
		const char *name = NULL;
		bool follow = false, json = false;
		for (int i = 1; i < argc; i++) {
			if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--follow"))
				follow = true;
			else if (!strcmp(argv[i], "--json"))
				json = true;
			else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
				usage_net(stdout);
				return 0;
			} else if (argv[i][0] == '-' && argv[i][1]) {
				fprintf(stderr, "agentbox: unknown option '%s' for 'net log': use 'agentbox net log [-f] [--json] NAME'\n",
					argv[i]);
				return AB_EXIT_INTERNAL;
			} else if (name) {
				fprintf(stderr, "agentbox: 'net log' takes one sandbox name, not '%s' too\n", argv[i]);
				return AB_EXIT_INTERNAL;
			} else
				name = argv[i];
		}
		if (!name) {
			fprintf(stderr, "agentbox: 'net log' needs a sandbox name: see 'agentbox ps --all'\n");
			return AB_EXIT_INTERNAL;
		}
		return net_log(name, follow, json);
	}
	if (!strcmp(sub, "allow") || !strcmp(sub, "deny")) {
		for (int i = 1; i < argc; i++)
			if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
				usage_net(stdout);
				return 0;
			}
		if (argc != 3) {
			fprintf(stderr, "agentbox: 'net %s' takes a sandbox name and one rule: use 'agentbox net %s NAME HOST[:PORT]'\n",
				sub, sub);
			return AB_EXIT_INTERNAL;
		}
		return net_change(sub, argv[1], argv[2]);
	}
	fprintf(stderr, "agentbox: unknown 'net' command '%s': use 'log', 'allow' or 'deny' (see 'agentbox net --help')\n",
		sub);
	return AB_EXIT_INTERNAL;
}
