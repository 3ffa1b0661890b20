/* What the egress proxy's tests share (test-proxy.c, test-proxy-ns.c): sockets, the
 * upstream servers, forking a proxy, the clients and the audit log. Each test is a
 * program of its own that includes this once, and each uses all of it (an unused static
 * function fails the build).
 *
 * Upstreams on 127.0.0.1, ephemeral ports:
 *   echo    sends back what it gets, half-closes after the client's EOF
 *   http    answers any request head with 200 and the head it saw as the body
 *   source  reads an 8-byte count, sends that many pattern bytes, closes
 */
#ifndef AB_PROXY_FIXTURE_H
#define AB_PROXY_FIXTURE_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/landlock.h"
#include "proxy/proxy.h"
#include "proxy/rules.h"
#include "shared/cleanup.h"

static char top[64];       /* the test's temporary directory */
static char log_path[128]; /* the audit log that find_line reads */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

/* The source's bytes: a period of 65521 (a prime), so a lost, doubled or swapped chunk
 * of any usual size shows. */
#define PATTERN_PERIOD 65521u
static uint8_t pattern(uint64_t i)
{
	uint32_t k = (uint32_t)(i % PATTERN_PERIOD);
	return (uint8_t)(k ^ (k >> 8) ^ 0x5a);
}
#define SOURCE_CHUNK (1u << 20)
static char pattern_buf[PATTERN_PERIOD + SOURCE_CHUNK];

/* ---- sockets ---- */

static int listen_on(int type, uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int one = 1, fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || (type == SOCK_STREAM && listen(fd, 4096) < 0) ||
	    getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

static void set_timeouts(int fd, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int tcp_connect(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	set_timeouts(fd, 5000);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static bool send_str(int fd, const char *s) { return send_all(fd, s, strlen(s)); }

/* s on one line, for a test's description (TAP lines must not break) */
static const char *one_line(const char *s)
{
	static char buf[512];
	size_t i = 0;

	for (; s[i] && i + 1 < sizeof(buf); i++)
		buf[i] = s[i] == '\n' || s[i] == '\r' ? ' ' : s[i];
	buf[i] = '\0';
	return buf;
}

/* Reads until EOF (or the timeout, or size - 1 bytes). Returns the count, -1 on error. */
static ssize_t read_to_eof(int fd, char *buf, size_t size)
{
	size_t len = 0;
	while (len + 1 < size) {
		ssize_t n = recv(fd, buf + len, size - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			buf[len] = '\0';
			return len ? (ssize_t)len : -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	return (ssize_t)len;
}

static bool read_exact(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len) {
		ssize_t n = recv(fd, p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* ---- upstream servers (in a child) ---- */

enum up_kind { UP_ECHO, UP_HTTP, UP_SOURCE };

struct up_conn {
	int fd;
	enum up_kind kind;
	char *buf;
	size_t len, off;
	bool eof;
	uint64_t remaining, sent;
	bool counting;
};

struct up_listener {
	int fd;
	enum up_kind kind;
};

static void up_close(int ep, struct up_conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->buf);
	free(c);
}

static void up_set(int ep, struct up_conn *c, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.ptr = c };
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* One event of an upstream connection; returns false when it was closed. */
static bool up_event(int ep, struct up_conn *c)
{
	for (;;) {
		if (c->kind == UP_SOURCE && !c->counting) {
			while (c->remaining) {
				size_t k = c->remaining < SOURCE_CHUNK ? (size_t)c->remaining : SOURCE_CHUNK;
				ssize_t w = send(c->fd, pattern_buf + c->sent % PATTERN_PERIOD, k,
						 MSG_NOSIGNAL | MSG_DONTWAIT);
				if (w < 0 && errno == EAGAIN) {
					up_set(ep, c, EPOLLOUT);
					return true;
				}
				if (w <= 0) {
					up_close(ep, c);
					return false;
				}
				c->sent += (uint64_t)w;
				c->remaining -= (uint64_t)w;
			}
			shutdown(c->fd, SHUT_WR);
			up_close(ep, c);
			return false;
		}
		if (c->len > c->off) { /* echo: write what is buffered */
			ssize_t w = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w < 0 && errno == EAGAIN) {
				up_set(ep, c, EPOLLOUT);
				return true;
			}
			if (w <= 0) {
				up_close(ep, c);
				return false;
			}
			c->off += (size_t)w;
			if (c->off < c->len)
				continue;
			c->off = c->len = 0;
		}
		if (c->eof) {
			shutdown(c->fd, SHUT_WR);
			up_close(ep, c);
			return false;
		}
		ssize_t n = recv(c->fd, c->buf + c->len, 65536 - c->len, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN) {
			up_set(ep, c, EPOLLIN);
			return true;
		}
		if (n < 0) {
			up_close(ep, c);
			return false;
		}
		if (n == 0) {
			c->eof = true;
			if (c->kind != UP_ECHO) {
				up_close(ep, c);
				return false;
			}
			continue;
		}
		c->len += (size_t)n;
		if (c->kind == UP_SOURCE) {
			if (c->len >= 8) {
				memcpy(&c->remaining, c->buf, 8);
				c->counting = false;
				c->len = 0;
			}
			continue;
		}
		if (c->kind == UP_HTTP) {
			char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
			char head[256];
			if (!end) {
				if (c->len >= 65536) {
					up_close(ep, c);
					return false;
				}
				continue;
			}
			size_t hl = (size_t)(end + 4 - c->buf);
			int k = snprintf(head, sizeof(head),
					 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", hl);
			int fl = fcntl(c->fd, F_GETFL);
			fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
			send_all(c->fd, head, (size_t)k);
			send_all(c->fd, c->buf, hl);
			shutdown(c->fd, SHUT_WR);
			up_close(ep, c);
			return false;
		}
		/* echo: loop writes it back */
	}
}

static void upstream_serve(const struct up_listener *ls, size_t n)
{
	int ep = epoll_create1(0);
	struct epoll_event evs[64];

	for (size_t i = 0; i < sizeof(pattern_buf); i++)
		pattern_buf[i] = (char)pattern(i);

	for (size_t i = 0; i < n; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.ptr = (void *)&ls[i] };
		fcntl(ls[i].fd, F_SETFL, O_NONBLOCK);
		epoll_ctl(ep, EPOLL_CTL_ADD, ls[i].fd, &e);
	}
	for (;;) {
		int k = epoll_wait(ep, evs, 64, -1);
		for (int i = 0; i < k; i++) {
			void *ptr = evs[i].data.ptr;
			const struct up_listener *l = NULL;
			for (size_t j = 0; j < n; j++)
				if (ptr == &ls[j])
					l = &ls[j];
			if (!l) {
				up_event(ep, ptr);
				continue;
			}
			for (;;) {
				int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
				if (fd < 0)
					break;
				struct up_conn *c = calloc(1, sizeof(*c));
				c->fd = fd;
				c->kind = l->kind;
				c->buf = malloc(65536);
				c->counting = l->kind == UP_SOURCE;
				struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
			}
		}
	}
}

static bool wait_exit(pid_t pid, int ms, int *status)
{
	int64_t end = now_ms() + ms;
	do {
		if (waitpid(pid, status, WNOHANG) == pid)
			return true;
		msleep(20);
	} while (now_ms() < end);
	return false;
}

/* ---- the proxy (in a child) ---- */

struct fixture {
	uint16_t http_port, socks_port, dns_port, echo_port, web_port, source_port, closed_port;
	pid_t proxy, upstream;
	int lifeline; /* write end */
};

static void fill_policy(struct ab_net_policy *pol, struct ab_net_host_entry *hosts, size_t *n_hosts,
			const char *const *allows, size_t n_allows, const char *const *denies, size_t n_denies,
			const char *const *entries, size_t n_entries)
{
	struct ab_error err = { 0 };
	struct ab_net_rule r;

	for (size_t i = 0; i < n_allows; i++)
		if (ab_net_rule_parse(allows[i], false, &r, &err) == 0)
			ab_net_policy_add(pol, &r);
	for (size_t i = 0; i < n_denies; i++)
		if (ab_net_rule_parse(denies[i], true, &r, &err) == 0)
			ab_net_policy_add(pol, &r);
	*n_hosts = 0;
	for (size_t i = 0; i < n_entries; i++)
		if (ab_net_host_entry_parse(entries[i], &hosts[*n_hosts], &err) == 0)
			(*n_hosts)++;
}

/* Forks the proxy; it inherits nothing else that matters. With ready and later (a pipe
 * and a socketpair), it answers on ready[1] and takes its listeners from later[1]; the
 * child closes the parent's ends. Without them, the listeners are in cfg. */
static pid_t start_proxy_with(struct ab_proxy_config *cfg, int lifeline_pipe[2], const int ready[2],
			      const int later[2], bool drop, const char *errfile, rlim_t nofile)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	close(lifeline_pipe[1]);
	cfg->ready_fd = -1;
	cfg->listeners_fd = -1;
	if (ready) {
		close(ready[0]);
		cfg->ready_fd = ready[1];
	}
	if (later) {
		close(later[0]);
		cfg->listeners_fd = later[1];
	}
	if (nofile) {
		struct rlimit rl = { nofile, nofile };
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	int efd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (efd >= 0) {
		dup2(efd, 2);
		close(efd);
	}
	cfg->lifeline_fd = lifeline_pipe[0];
	cfg->drop_privileges = drop;
	cfg->landlock_abi = ab_landlock_abi();
	struct ab_error err = { 0 };
	int r = ab_proxy_run(cfg, &err);
	if (r < 0) {
		dprintf(2, "agentbox proxy: %s\n", err.msg);
		_exit(1);
	}
	_exit(0);
}

/* Forks the proxy on the listeners in cfg. */
static pid_t start_proxy(struct ab_proxy_config *cfg, int lifeline_pipe[2], bool drop, const char *errfile,
			 rlim_t nofile)
{
	return start_proxy_with(cfg, lifeline_pipe, NULL, NULL, drop, errfile, nofile);
}

/* ---- clients ---- */

/* CONNECT authority: returns the tunnel's fd when the answer is 200, else -1 with the
 * status and the body read to EOF. */
static int http_connect(const struct fixture *fx, const char *authority, int *status, char *body, size_t size)
{
	char req[600], head[4096];
	size_t hl = 0;
	int fd = tcp_connect(fx->http_port);

	*status = 0;
	if (body && size)
		body[0] = '\0';
	if (fd < 0)
		return -1;
	snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: test\r\n\r\n", authority, authority);
	if (!send_str(fd, req)) {
		close(fd);
		return -1;
	}
	while (hl + 1 < sizeof(head)) { /* byte by byte: not a byte of the tunnel is taken */
		ssize_t n = recv(fd, head + hl, 1, 0);
		if (n <= 0)
			break;
		hl++;
		if (hl >= 4 && memcmp(head + hl - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	head[hl] = '\0';
	if (sscanf(head, "HTTP/1.1 %d", status) != 1)
		*status = -1;
	if (*status == 200)
		return fd;
	if (body && size)
		read_to_eof(fd, body, size);
	close(fd);
	return -1;
}

static bool echo_roundtrip(int fd, const char *msg)
{
	char back[256];
	size_t n = strlen(msg);
	return send_all(fd, msg, n) && read_exact(fd, back, n) && memcmp(back, msg, n) == 0;
}

/* One DNS question over UDP. Returns the rcode, with *ancount and the A record's address
 * (when there is one), or -1 without an answer. */
static int dns_ask(uint16_t port, const char *name, uint16_t qtype, int *ancount, uint8_t addr[4])
{
	uint8_t q[512], a[512];
	size_t n = 12;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ssize_t k;

	memset(q, 0, sizeof(q));
	q[0] = 0x12;
	q[1] = 0x34;
	q[2] = 0x01; /* RD */
	q[5] = 1;    /* QDCOUNT */
	for (const char *p = name; *p;) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		q[n++] = (uint8_t)l;
		memcpy(q + n, p, l);
		n += l;
		p += l + (dot ? 1 : 0);
	}
	q[n++] = 0;
	q[n++] = (uint8_t)(qtype >> 8);
	q[n++] = (uint8_t)qtype;
	q[n++] = 0;
	q[n++] = 1;
	set_timeouts(fd, 3000);
	if (sendto(fd, q, n, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	k = recv(fd, a, sizeof(a), 0);
	close(fd);
	if (k < 12 || a[0] != 0x12 || a[1] != 0x34 || !(a[2] & 0x80))
		return -1;
	*ancount = a[6] << 8 | a[7];
	if (*ancount == 1 && k >= 16 && addr)
		memcpy(addr, a + k - 4, 4);
	return a[3] & 0x0f;
}

/* ---- the audit log ---- */

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static bool jis(struct json_object *o, const char *key, const char *want)
{
	const char *s = jstr(o, key);
	return s && strcmp(s, want) == 0;
}

/* The first log line whose host and decision (or event) match, waited for up to 3 s.
 * Every line must parse: *bad counts those that do not. Caller puts the object. */
static struct json_object *find_line(const char *host, const char *decision, const char *via, int *bad)
{
	int64_t end = now_ms() + 3000;

	do {
		_cleanup_fclose_ FILE *f = fopen(log_path, "re");
		char line[8192];
		*bad = 0;
		while (f && fgets(line, sizeof(line), f)) {
			struct json_object *o = json_tokener_parse(line);
			if (!o || !json_object_is_type(o, json_type_object)) {
				(*bad)++;
				json_object_put(o);
				continue;
			}
			if ((!host || jis(o, "host", host) || jis(o, "rule", host)) &&
			    (jis(o, "decision", decision) || jis(o, "event", decision)) && (!via || jis(o, "via", via)))
				return o;
			json_object_put(o);
		}
		msleep(50);
	} while (now_ms() < end);
	return NULL;
}

/* ---- the test program ---- */

/* What a test program does first: SIGPIPE ignored, stdout line-buffered, as many file
 * descriptors as the hard limit allows, and a fresh directory `top` (mode 0711) named
 * after the program. Returns false, with errno, when the directory cannot be made. */
static bool fixture_begin(const char *name)
{
	struct rlimit rl;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	snprintf(top, sizeof(top), "/tmp/ab-%s.XXXXXX", name);
	if (!mkdtemp(top))
		return false;
	chmod(top, 0711);
	return true;
}

static void fixture_end(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
	if (system(cmd) != 0)
		printf("# cannot remove %s\n", top);
}

#endif
