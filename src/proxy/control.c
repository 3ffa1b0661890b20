/* The control socket's protocol: one SOCK_SEQPACKET message each way. The parser is pure
 * (the proxy runs it on whatever a client sends); the client runs in `agentbox net`. */
#include "control.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../shared/cleanup.h"

#define CONTROL_TIMEOUT_MS 2000

/* A short, printable rendering of untrusted bytes for an error message. */
static void quote_bytes(const char *s, size_t len, char *out, size_t size)
{
	size_t o = 0, i = 0, max = size > 4 ? size - 4 : 0;

	for (; i < len && o < max; i++) {
		unsigned char c = (unsigned char)s[i];
		out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (i < len && size >= 4) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

int ab_control_parse(const char *msg, size_t len, struct ab_net_rule *rule, struct ab_error *err)
{
	char spec[AB_NET_RULE_TEXT_MAX];
	char shown[48];
	const char *arg;
	size_t verb_len, arg_len;
	bool deny;

	memset(rule, 0, sizeof(*rule));
	if (len > AB_CONTROL_MSG_MAX)
		return ab_error_set(err, 0, "request longer than %d bytes", AB_CONTROL_MSG_MAX);
	if (memchr(msg, '\0', len))
		return ab_error_set(err, 0, "request with a NUL byte");
	if (len >= 6 && memcmp(msg, "allow ", 6) == 0) {
		deny = false;
		verb_len = 5;
	} else if (len >= 5 && memcmp(msg, "deny ", 5) == 0) {
		deny = true;
		verb_len = 4;
	} else {
		quote_bytes(msg, len, shown, 24);
		return ab_error_set(err, 0, "unknown request '%s': use 'allow RULE' or 'deny RULE'", shown);
	}
	arg = msg + verb_len + 1;
	arg_len = len - verb_len - 1;
	if (arg_len == 0)
		return ab_error_set(err, 0, "'%s' without a rule: use '%s HOST[:PORT]'", deny ? "deny" : "allow",
				    deny ? "deny" : "allow");
	for (size_t i = 0; i < arg_len; i++) {
		unsigned char c = (unsigned char)arg[i];
		if (c <= 0x20 || c >= 0x7f) {
			quote_bytes(arg, arg_len, shown, sizeof(shown));
			return ab_error_set(err, 0,
					    "rule '%s' has a space or a control character: send exactly one rule",
					    shown);
		}
	}
	if (arg_len >= sizeof(spec)) {
		quote_bytes(arg, arg_len, shown, sizeof(shown));
		return ab_error_set(err, 0, "rule '%s' is longer than %zu bytes", shown, sizeof(spec) - 1);
	}
	memcpy(spec, arg, arg_len);
	spec[arg_len] = '\0';
	return ab_net_rule_parse(spec, deny, rule, err);
}

static int unreachable(struct ab_error *err, int code, const char *path)
{
	return ab_error_set(err, code, "cannot reach the egress proxy on '%s'", path);
}

int ab_control_request(const char *path, const char *verb, const char *rule, char *applied,
		       size_t applied_size, struct ab_error *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char msg[AB_CONTROL_MSG_MAX + 1], reply[AB_CONTROL_MSG_MAX + 1], shown[AB_CONTROL_MSG_MAX];
	_cleanup_close_ int fd = -1;
	struct pollfd p;
	ssize_t n;
	int len, r;

	if (applied && applied_size)
		applied[0] = '\0';
	if (strcmp(verb, "allow") != 0 && strcmp(verb, "deny") != 0)
		return ab_error_set(err, EINVAL, "unknown control verb '%s'", verb);
	len = snprintf(msg, sizeof(msg), "%s %s", verb, rule);
	if (len < 0 || (size_t)len > AB_CONTROL_MSG_MAX)
		return ab_error_set(err, 0, "rule '%.64s...' is too long", rule);
	if (strlen(path) >= sizeof(addr.sun_path))
		return ab_error_set(err, ENAMETOOLONG, "cannot reach the egress proxy on '%s'", path);
	memcpy(addr.sun_path, path, strlen(path) + 1);

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ab_error_set(err, errno, "cannot create a socket for the egress proxy");
	do
		r = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return unreachable(err, errno, path);
	do
		n = send(fd, msg, (size_t)len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return unreachable(err, errno, path);
	if (n != len)
		return unreachable(err, EIO, path);

	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	do
		r = poll(&p, 1, CONTROL_TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return unreachable(err, errno, path);
	if (r == 0)
		return ab_error_set(err, ETIMEDOUT, "the egress proxy on '%s' did not answer within %d s",
				    path, CONTROL_TIMEOUT_MS / 1000);
	do
		n = recv(fd, reply, sizeof(reply) - 1, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return unreachable(err, errno, path);
	if (n == 0)
		/* The proxy closes without a word on a client that is not the sandbox's owner. */
		return ab_error_set(err, EPERM,
				    "the egress proxy on '%s' closed the connection without an answer "
				    "(only the sandbox's owner or root may change its policy)",
				    path);
	quote_bytes(reply, (size_t)n, shown, sizeof(shown));
	if (n >= 3 && memcmp(reply, "ok ", 3) == 0) {
		if (applied && applied_size)
			snprintf(applied, applied_size, "%s", shown + 3);
		return 0;
	}
	if (n >= 6 && memcmp(reply, "error ", 6) == 0)
		return ab_error_set(err, 0, "%s", shown + 6);
	return ab_error_set(err, EBADMSG, "unexpected answer '%.64s' from the egress proxy on '%s'",
			    shown, path);
}
