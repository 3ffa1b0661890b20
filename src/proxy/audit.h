/* The audit log: one JSON line per decision, appended to the sandbox's net.log. */
#ifndef AB_PROXY_AUDIT_H
#define AB_PROXY_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define AB_AUDIT_LINE_MAX 4096
/* The most a sandbox's network log takes: net.log and net.log.1, half of it each. A log of
 * half this size is moved to net.log.1 when the next proxy starts (egress.c), and while
 * the proxy runs, by ab_audit_set_rotation's copy. Without a net.log.1 to rotate into, the
 * line that reaches this goes out with a "log full" note and later ones are dropped. */
#define AB_AUDIT_LOG_MAX (64ULL << 20)

struct ab_audit_event {
	const char *via;      /* "proxy", "socks", "capture", "dns" */
	const char *method;   /* "CONNECT", "GET", ...; NULL when not HTTP */
	const char *host;     /* name or address literal as the sandbox asked for it */
	uint16_t port;        /* 0 for dns */
	const char *addr;     /* the address connected to (or answered with), NULL if none */
	const char *decision; /* "allow", "deny", "error" */
	const char *rule;     /* the deciding rule's text, "default deny", "private address ..." */
	const char *reason;   /* errors: what failed ("connection refused by 127.0.0.1:9"); or NULL */
	uint64_t bytes_out;   /* sandbox -> outside */
	uint64_t bytes_in;    /* outside -> sandbox */
	double duration_ms;
};

/* {"time":"2026-11-27T22:01:02.123Z","sandbox":..,"via":..,"method":..,"host":..,"port":..,
 *  "addr":..,"decision":..,"rule":..,"reason":..,"bytes_out":..,"bytes_in":..,
 *  "duration_ms":..}\n  (absent fields left out). Returns the length or -ENOSPC. */
int ab_audit_format(const char *sandbox, const struct ab_audit_event *ev,
		    const struct timespec *now, char *out, size_t size);
/* A live policy change: {"time":..,"sandbox":..,"event":"policy","action":"allow"|"deny",
 * "rule":..,"uid":..}\n */
int ab_audit_format_policy(const char *sandbox, const char *action, const char *rule,
			   uid_t uid, const struct timespec *now, char *out, size_t size);
/* Where a log that reaches half of max_bytes (0: AB_AUDIT_LOG_MAX) goes: old_fd, net.log.1
 * opened for reading and writing, takes a copy of it, and the log starts again empty
 * with a line that says so. The proxy holds no right to rename or create files (see
 * audit.c), only these two descriptors, so rotation is a copy and a truncation. The log
 * fd must then be readable too. old_fd -1: no rotation. */
void ab_audit_set_rotation(int old_fd, uint64_t max_bytes);
/* Formats with the current time and appends with one write(2). Returns the line's length,
 * or < 0 (-EFBIG: the log is full); the proxy carries on either way. */
int ab_audit_write(int fd, const char *sandbox, const struct ab_audit_event *ev);
int ab_audit_write_policy(int fd, const char *sandbox, const char *action, const char *rule,
			  uid_t uid);

/* `agentbox net log`: one line of the log read back, for the table. Strings point into
 * storage of the record; absent ones are "". */
struct ab_audit_record {
	char time[40];
	char event[16]; /* "" for a connection or DNS decision, "policy" for a change */
	char via[16];
	char method[16];
	char host[256];
	unsigned port;
	char addr[64];
	char decision[16];
	char action[16];
	char rule[300];
	char reason[256];
	uint64_t bytes_out, bytes_in;
	double duration_ms;
	long long uid; /* a policy change: who made it; -1 when absent */
};
/* Returns 0, or -EINVAL for a line that is not one JSON object with a "time" (longer
 * than 4 * AB_AUDIT_LINE_MAX, nested deeper than 4, NUL bytes, trailing junk). Control
 * characters in strings come back as '?', so the table can print them. */
int ab_audit_parse_line(const char *line, size_t len, struct ab_audit_record *rec);

#endif
