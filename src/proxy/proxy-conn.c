/* One TCP connection through the proxy, from accept to its audit line:
 *
 *   HEAD (HTTP) | SOCKS_GREETING -> SOCKS_REQUEST | capture: SNIFF or straight on
 *     -> policy by name -> RESOLVING -> every address checked -> CONNECTING (next allowed
 *     address on failure) -> RELAY (read and write through a buffer per direction,
 *     half-closes passed on) -> closed, logged with the bytes each way and the duration.
 *
 * The relay reads and writes rather than splice(2): on the machines measured (virtual,
 * two CPUs) splice through a pipe moved a 1 GiB download at a third of the direct speed,
 * large buffers at two thirds or more: the copies cost less than the pages' bookkeeping.
 *
 * A denial is logged at once and answered in the client's protocol (HTTP 403, SOCKS
 * 0x02, RST for captured traffic); a failure likewise (502, a SOCKS code, RST) with the
 * reason. After an HTTP or SOCKS answer the connection drains what the client still
 * sends for a moment, so that closing does not reset the answer away.
 *
 * Functions that may close a connection leave it PX_DEAD (freed after the current batch
 * of events), so a caller may look at c->state afterwards but must not act on a dead one. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "http.h"
#include "proxy-internal.h"
#include "sni.h"
#include "socks.h"

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80 /* linux/netfilter_ipv4.h */
#endif
#define IP6T_SO_ORIGINAL_DST_ 80 /* linux/netfilter_ipv6/ip6_tables.h */

#define SOCKS_IN_CAP 1024           /* a greeting (257) and a request (262) fit */
#define SNIFF_IN_CAP AB_HTTP_MAX_HEAD /* a first TLS record (16 KiB + 5) fits */
#define DRAIN_MS 2000
#define DRAIN_MAX (1u << 20)
#define PUMP_ROUNDS 4        /* passes of one direction per event, then others get a turn */

static const char *via_name(enum px_via via)
{
	switch (via) {
	case PX_VIA_PROXY:
		return "proxy";
	case PX_VIA_SOCKS:
		return "socks";
	case PX_VIA_CAPTURE:
		return "capture";
	}
	return "proxy";
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fmt_addr(const struct ab_net_addr *a, char *out, size_t size)
{
	if (!inet_ntop(a->family, a->addr, out, (socklen_t)size))
		snprintf(out, size, "?");
}

/* "host:port", "[v6]:port" */
static void fmt_hostport(const char *host, uint16_t port, char *out, size_t size)
{
	if (strchr(host, ':'))
		snprintf(out, size, "[%s]:%u", host, port);
	else
		snprintf(out, size, "%s:%u", host, port);
}

/* Untrusted bytes made printable, for the log. */
static void sanitize(const char *in, char *out, size_t size)
{
	size_t i = 0;

	for (; in[i] && i + 1 < size; i++)
		out[i] = (in[i] > 0x20 && in[i] < 0x7f) ? in[i] : '?';
	out[i] = '\0';
}

/* Moves c to the tail of queue q: each queue stays in deadline order. */
static void enqueue(struct px_conn *c, struct px_node *q, int64_t deadline)
{
	px_list_del(&c->node);
	px_list_add_tail(q, &c->node);
	c->deadline_ms = deadline;
}

/* ---- relay buffers ------------------------------------------------------------- */

/* A buffer of d->want bytes (PX_BUF_MIN when the budget is spent). */
static int buf_get(struct px_proxy *p, struct px_dir *d)
{
	size_t size = d->want < PX_BUF_MIN ? PX_BUF_MIN : d->want;

	if (p->buf_bytes + size > PX_BUF_BUDGET)
		size = PX_BUF_MIN;
	if (size == PX_BUF_MAX && p->n_bufs > 0)
		d->buf = p->bufs[--p->n_bufs];
	else
		d->buf = malloc(size);
	if (!d->buf)
		return -ENOMEM;
	d->size = size;
	d->off = d->len = 0;
	p->buf_bytes += size;
	return 0;
}

/* Gives an empty buffer back: large ones to the pool. */
static void buf_put(struct px_proxy *p, struct px_dir *d)
{
	if (!d->buf)
		return;
	p->buf_bytes -= d->size;
	if (d->size == PX_BUF_MAX && p->n_bufs < PX_BUF_POOL_MAX)
		p->bufs[p->n_bufs++] = d->buf;
	else
		free(d->buf);
	d->buf = NULL;
	d->size = d->off = d->len = 0;
}

void px_bufs_free(struct px_proxy *p)
{
	while (p->n_bufs > 0)
		free(p->bufs[--p->n_bufs]);
}

bool px_make_room(struct px_proxy *p)
{
	return px_conn_evict_one(p);
}

/* ---- closing -------------------------------------------------------------------- */

static void close_sock(struct px_watch *w, bool rst)
{
	if (w->fd < 0)
		return;
	if (rst) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		(void)setsockopt(w->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(w->fd); /* leaves the epoll set with it */
	w->fd = -1;
	w->registered = false;
	w->events = 0;
}

static void dir_free(struct px_proxy *p, struct px_dir *d)
{
	free(d->pre);
	d->pre = NULL;
	d->pre_off = d->pre_len = 0;
	buf_put(p, d);
}

static void conn_close(struct px_proxy *p, struct px_conn *c, bool rst)
{
	if (c->state == PX_DEAD)
		return;
	if (c->lookup_id > 0)
		ab_resolver_cancel(p->resolver, c->lookup_id);
	c->lookup_id = 0;
	close_sock(&c->cw, rst);
	close_sock(&c->uw, rst);
	dir_free(p, &c->up);
	dir_free(p, &c->down);
	free(c->in);
	c->in = NULL;
	c->in_len = c->in_cap = 0;
	free(c->upstream_head);
	c->upstream_head = NULL;
	px_list_del(&c->node);
	c->state = PX_DEAD;
	p->n_conns--;
	c->next_dead = p->dead;
	p->dead = c;
}

void px_conn_free_dead(struct px_proxy *p)
{
	while (p->dead) {
		struct px_conn *c = p->dead;
		p->dead = c->next_dead;
		free(c);
	}
}

static void audit(struct px_proxy *p, struct px_conn *c, const char *decision, const char *rule,
		  const char *reason)
{
	struct ab_audit_event ev = {
		.via = via_name(c->via),
		.method = c->via == PX_VIA_PROXY && c->method[0] ? c->method : NULL,
		.host = c->host[0] ? c->host : (c->have_orig ? c->orig_text : NULL),
		.port = c->port,
		.addr = c->addr_text[0] ? c->addr_text : NULL,
		.decision = decision,
		.rule = rule && rule[0] ? rule : NULL,
		.reason = reason,
		.bytes_out = c->up.bytes,
		.bytes_in = c->down.bytes,
		.duration_ms = (double)(now_ns() - c->born_ns) / 1e6,
	};

	if (p->cfg->log_fd >= 0)
		(void)ab_audit_write(p->cfg->log_fd, p->cfg->name, &ev);
}

/* ---- answers to the client ------------------------------------------------------ */

static void start_drain(struct px_proxy *p, struct px_conn *c)
{
	close_sock(&c->uw, false);
	free(c->in);
	c->in = NULL;
	c->in_len = c->in_cap = 0;
	(void)shutdown(c->cw.fd, SHUT_WR);
	c->state = PX_DRAIN;
	enqueue(c, &p->q_drain, px_now_ms() + DRAIN_MS);
	if (px_watch_set(p, &c->cw, EPOLLIN) < 0)
		conn_close(p, c, true);
}

static void send_small(int fd, const void *buf, size_t len)
{
	/* a fresh socket's buffer takes a short answer whole; if not, the client is gone */
	(void)send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void http_answer(struct px_proxy *p, struct px_conn *c, int status, const char *reason,
			const char *body)
{
	char buf[2048];
	int n = ab_http_format_response(buf, sizeof(buf), status, reason, body);

	if (n > 0)
		send_small(c->cw.fd, buf, (size_t)n);
	start_drain(p, c);
}

static void socks_answer(struct px_proxy *p, struct px_conn *c, uint8_t rep)
{
	uint8_t out[10];
	size_t n = ab_socks_format_reply(out, rep);

	send_small(c->cw.fd, out, n);
	start_drain(p, c);
}

/* The policy said no: body_rule goes in the 403 ("default deny: no rule allows it", a
 * rule's text, a reason like "private address 10.1.2.3"), log_rule in the log line. */
static void deny(struct px_proxy *p, struct px_conn *c, const char *body_rule, const char *log_rule,
		 const char *reason)
{
	char hp[AB_HOST_MAX + 16], body[AB_HOST_MAX + 400];

	audit(p, c, "deny", log_rule, reason);
	switch (c->via) {
	case PX_VIA_PROXY:
		fmt_hostport(c->host, c->port, hp, sizeof(hp));
		snprintf(body, sizeof(body), "agentbox: egress to %s denied by policy (%s)\n", hp, body_rule);
		http_answer(p, c, 403, "Forbidden", body);
		return;
	case PX_VIA_SOCKS:
		socks_answer(p, c, AB_SOCKS_REP_NOT_ALLOWED);
		return;
	case PX_VIA_CAPTURE:
		conn_close(p, c, true); /* a refused connection, at once */
		return;
	}
}

static void fail(struct px_proxy *p, struct px_conn *c, uint8_t socks_rep, const char *reason)
{
	char body[600];

	audit(p, c, "error", c->rule, reason);
	switch (c->via) {
	case PX_VIA_PROXY:
		snprintf(body, sizeof(body), "agentbox: %s\n", reason);
		http_answer(p, c, 502, "Bad Gateway", body);
		return;
	case PX_VIA_SOCKS:
		socks_answer(p, c, socks_rep);
		return;
	case PX_VIA_CAPTURE:
		conn_close(p, c, true);
		return;
	}
}

/* ---- relay ---------------------------------------------------------------------- */

/* Sends the pre bytes. Returns 1 when none are left, 0 when dst would block, -errno. */
static int flush_pre(struct px_dir *d, int dst)
{
	while (d->pre) {
		ssize_t n = send(dst, d->pre + d->pre_off, d->pre_len - d->pre_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		d->pre_off += (size_t)n;
		if (d->pre_counts)
			d->bytes += (uint64_t)n;
		if (d->pre_off == d->pre_len) {
			free(d->pre);
			d->pre = NULL;
			d->pre_off = d->pre_len = 0;
		}
	}
	return 1;
}

/* Moves the bytes of one direction until a side would block (or for a few rounds, then
 * the others get a turn: epoll reports what is left). Returns 0, or -errno when the
 * connection is broken (reset, or out of memory). */
static int pump(struct px_proxy *p, struct px_dir *d, int src, int dst)
{
	int r = flush_pre(d, dst);

	if (r <= 0)
		return r; /* the pre bytes go first; nothing passes them */
	for (int round = 0; round < PUMP_ROUNDS; round++) {
		ssize_t n;

		while (d->len > d->off) {
			n = send(dst, d->buf + d->off, d->len - d->off, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				return errno == EAGAIN ? 0 : -errno;
			}
			d->off += (size_t)n;
			d->bytes += (uint64_t)n;
		}
		if (d->eof)
			break;
		if (d->buf && d->want > d->size)
			buf_put(p, d); /* empty: the next one is larger */
		if (!d->buf && buf_get(p, d) < 0)
			return -ENOMEM;
		do
			n = recv(src, d->buf, d->size, MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		if (n <= 0) {
			buf_put(p, d);
			if (n == 0) {
				d->eof = true;
				break;
			}
			return errno == EAGAIN ? 0 : -errno;
		}
		d->off = 0;
		d->len = (size_t)n;
		/* a full read: a bulk transfer, which larger reads serve better */
		if ((size_t)n == d->size && d->want < PX_BUF_MAX)
			d->want = d->size * 2 > PX_BUF_MAX ? PX_BUF_MAX : d->size * 2;
	}
	if (d->len == d->off)
		buf_put(p, d);
	if (d->eof && !d->pre && !d->buf && !d->shut) {
		(void)shutdown(dst, SHUT_WR);
		d->shut = true;
	}
	return 0;
}

static bool dir_wants_read(const struct px_dir *d) { return !d->eof && !d->pre && d->len == d->off; }
static bool dir_wants_write(const struct px_dir *d) { return d->pre || d->len > d->off; }

/* Both ways done: logged and closed. */
static void relay_finish(struct px_proxy *p, struct px_conn *c, bool rst)
{
	audit(p, c, "allow", c->rule, NULL);
	conn_close(p, c, rst);
}

/* A side neither direction can use now leaves the epoll set: left in it with no events,
 * its hangup (our FIN sent and the peer's come, but not read yet while bytes wait in the
 * buffer) would be reported over and over. It comes back when a direction needs it. */
static int watch_relay_side(struct px_proxy *p, struct px_watch *w, uint32_t events)
{
	if (events)
		return px_watch_set(p, w, events);
	px_watch_drop(p, w);
	return 0;
}

static void relay_update(struct px_proxy *p, struct px_conn *c)
{
	uint32_t ce = 0, ue = 0;

	if (c->up.shut && c->down.shut) {
		relay_finish(p, c, false);
		return;
	}
	if (dir_wants_read(&c->up))
		ce |= EPOLLIN;
	if (dir_wants_write(&c->down))
		ce |= EPOLLOUT;
	if (dir_wants_read(&c->down))
		ue |= EPOLLIN;
	if (dir_wants_write(&c->up))
		ue |= EPOLLOUT;
	if (watch_relay_side(p, &c->cw, ce) < 0 || watch_relay_side(p, &c->uw, ue) < 0)
		relay_finish(p, c, true);
}

/* Readiness of one side: the directions it feeds or drains move. An error or hangup
 * shows up as a failed read or write (or the EOF) in them. */
static void relay_event(struct px_proxy *p, struct px_conn *c, struct px_watch *w, uint32_t ev)
{
	int r = 0;

	if (w == &c->cw) {
		if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
			r = pump(p, &c->up, c->cw.fd, c->uw.fd);
		if (r == 0 && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			r = pump(p, &c->down, c->uw.fd, c->cw.fd);
	} else {
		if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
			r = pump(p, &c->down, c->uw.fd, c->cw.fd);
		if (r == 0 && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			r = pump(p, &c->up, c->cw.fd, c->uw.fd);
	}
	if (r < 0) {
		relay_finish(p, c, true); /* a reset on one side is passed on to the other */
		return;
	}
	relay_update(p, c);
}

static char *take_in(struct px_conn *c, size_t *len)
{
	char *buf = c->in;

	*len = c->in_len;
	c->in = NULL;
	c->in_len = c->in_cap = 0;
	if (buf && *len == 0) {
		free(buf);
		buf = NULL;
	}
	return buf;
}

/* A relayed connection may idle for as long as its ends like (a model API's stream, a
 * websocket), so it is never timed out; but a peer that vanished without a word (a host
 * gone, a NAT that forgot the flow) must not hold its descriptors and buffers forever.
 * TCP keepalive finds it: a probe after a minute of silence, then every 15 s, and the
 * connection is reset after 4 unanswered ones. */
static void keep_alive(int fd)
{
	int on = 1, idle = 60, interval = 15, count = 4;

	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
}

static void on_connected(struct px_proxy *p, struct px_conn *c)
{
	static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	size_t in_len;
	char *in = take_in(c, &in_len);

	c->state = PX_RELAY;
	enqueue(c, &p->q_relay, 0);
	keep_alive(c->cw.fd);
	keep_alive(c->uw.fd);
	if (c->via == PX_VIA_PROXY && !c->http_connect) {
		/* the rewritten head, then any body bytes read with it */
		char *buf = realloc(c->upstream_head, c->upstream_len + in_len + 1);
		if (!buf) {
			free(in);
			fail(p, c, AB_SOCKS_REP_FAILURE, "out of memory");
			return;
		}
		if (in_len)
			memcpy(buf + c->upstream_len, in, in_len);
		c->up.pre = buf;
		c->up.pre_len = c->upstream_len + in_len;
		c->upstream_head = NULL;
		free(in);
	} else {
		c->up.pre = in;
		c->up.pre_len = in_len;
	}
	c->up.pre_counts = true;
	if (c->via == PX_VIA_PROXY && c->http_connect) {
		c->down.pre = strdup(established);
		if (!c->down.pre) {
			fail(p, c, AB_SOCKS_REP_FAILURE, "out of memory");
			return;
		}
		c->down.pre_len = sizeof(established) - 1;
	} else if (c->via == PX_VIA_SOCKS) {
		c->down.pre = malloc(10);
		if (!c->down.pre) {
			fail(p, c, AB_SOCKS_REP_FAILURE, "out of memory");
			return;
		}
		c->down.pre_len = ab_socks_format_reply((uint8_t *)c->down.pre, AB_SOCKS_REP_OK);
	}
	if (pump(p, &c->down, c->uw.fd, c->cw.fd) < 0 || pump(p, &c->up, c->cw.fd, c->uw.fd) < 0) {
		relay_finish(p, c, true);
		return;
	}
	relay_update(p, c);
}

/* ---- dialing -------------------------------------------------------------------- */

static uint8_t socks_rep_for(int e)
{
	switch (e) {
	case ECONNREFUSED:
		return AB_SOCKS_REP_REFUSED;
	case ENETUNREACH:
		return AB_SOCKS_REP_NET_UNREACH;
	case EHOSTUNREACH:
	case ETIMEDOUT:
		return AB_SOCKS_REP_HOST_UNREACH;
	default:
		return AB_SOCKS_REP_FAILURE;
	}
}

static void connect_error(struct px_conn *c, int e)
{
	char ap[80];

	fmt_hostport(c->addr_text, c->port, ap, sizeof(ap));
	switch (e) {
	case ECONNREFUSED:
		snprintf(c->last_error, sizeof(c->last_error), "connection refused by %s", ap);
		break;
	case ETIMEDOUT:
		snprintf(c->last_error, sizeof(c->last_error), "no answer from %s", ap);
		break;
	default:
		snprintf(c->last_error, sizeof(c->last_error), "%s (%s)", strerror(e), ap);
		break;
	}
}

static void dial_failed(struct px_proxy *p, struct px_conn *c, int e)
{
	char hp[AB_HOST_MAX + 16], reason[AB_HOST_MAX + 200];

	fmt_hostport(c->host, c->port, hp, sizeof(hp));
	snprintf(reason, sizeof(reason), "cannot connect to %s: %s", hp, c->last_error);
	fail(p, c, socks_rep_for(e), reason);
}

static socklen_t make_sockaddr(const struct ab_net_addr *a, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, a->addr, 4);
		return sizeof(*sin);
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	memcpy(&sin6->sin6_addr, a->addr, 16);
	return sizeof(*sin6);
}

static void connect_next(struct px_proxy *p, struct px_conn *c)
{
	int last = ECONNREFUSED;

	while (c->next_addr < c->n_addrs) {
		const struct ab_net_addr *a = &c->addrs[c->next_addr++];
		struct sockaddr_storage ss;
		socklen_t sl = make_sockaddr(a, c->port, &ss);
		int one = 1, fd;

		fmt_addr(a, c->addr_text, sizeof(c->addr_text));
		fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0 && (errno == EMFILE || errno == ENFILE) && px_make_room(p))
			fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			last = errno;
			connect_error(c, last);
			continue;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->uw.fd = fd;
		c->uw.registered = false;
		c->uw.events = 0;
		if (connect(fd, (struct sockaddr *)&ss, sl) == 0) {
			on_connected(p, c);
			return;
		}
		if (errno == EINPROGRESS) {
			if (px_watch_set(p, &c->uw, EPOLLOUT) == 0) {
				c->state = PX_CONNECTING;
				enqueue(c, &p->q_dial, px_now_ms() + AB_PROXY_CONNECT_TIMEOUT_MS);
				return;
			}
		}
		last = errno;
		connect_error(c, last);
		close_sock(&c->uw, false);
	}
	dial_failed(p, c, last);
}

static void on_connect_ready(struct px_proxy *p, struct px_conn *c, uint32_t ev)
{
	int e = 0;
	socklen_t el = sizeof(e);

	if (getsockopt(c->uw.fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
		e = errno;
	if (e == 0 && (ev & (EPOLLERR | EPOLLHUP)))
		e = ECONNREFUSED;
	if (e == 0) {
		on_connected(p, c);
		return;
	}
	if (e == EINPROGRESS || e == EALREADY)
		return;
	connect_error(c, e);
	close_sock(&c->uw, false);
	if (c->next_addr < c->n_addrs)
		connect_next(p, c);
	else
		dial_failed(p, c, e);
}

static void on_resolved(void *arg, int status, const struct ab_net_addr *addrs, size_t n)
{
	struct px_conn *c = arg;
	struct px_proxy *p = c->p;
	char why[160] = "", reason[AB_HOST_MAX + 64], first[48] = "";
	size_t k = 0;

	c->lookup_id = 0;
	if (c->state != PX_RESOLVING)
		return;
	if (status < 0) {
		snprintf(reason, sizeof(reason), "cannot resolve %s%s", c->host,
			 status == -ENOENT ? ": no such name"
			 : status == -ETIMEDOUT ? ": the DNS server did not answer"
						: "");
		fail(p, c, AB_SOCKS_REP_HOST_UNREACH, reason);
		return;
	}
	/* every address is checked here, and only those that pass are ever connected to */
	for (size_t i = 0; i < n; i++) {
		char w[160];
		const struct ab_net_rule *rule;
		if (ab_net_policy_allows_addr(&p->cfg->policy, &addrs[i], c->port, p->own, p->n_own, w,
					      sizeof(w), &rule)) {
			c->addrs[k++] = addrs[i];
		} else if (!why[0]) {
			snprintf(why, sizeof(why), "%s", w[0] ? w : "denied by rule");
			fmt_addr(&addrs[i], first, sizeof(first));
		}
	}
	if (k == 0) {
		snprintf(c->addr_text, sizeof(c->addr_text), "%s", first);
		deny(p, c, why, why, NULL);
		return;
	}
	c->n_addrs = k;
	c->next_addr = 0;
	connect_next(p, c);
}

static void start_resolve(struct px_proxy *p, struct px_conn *c)
{
	int64_t id;

	c->state = PX_RESOLVING;
	enqueue(c, &p->q_dial, px_now_ms() + AB_PROXY_CONNECT_TIMEOUT_MS);
	/* nothing more is read from the client until the outside answers; errors and
	 * hangups are still reported */
	if (px_watch_set(p, &c->cw, 0) < 0) {
		conn_close(p, c, true);
		return;
	}
	id = ab_resolver_lookup(p->resolver, c->host, on_resolved, c);
	if (id < 0)
		fail(p, c, AB_SOCKS_REP_FAILURE, "out of memory");
	else if (id > 0)
		c->lookup_id = id;
	/* 0: on_resolved already ran, and c may be anywhere now */
}

/* The host (normalised into c->host) and port are known: the policy decides. */
static void decide(struct px_proxy *p, struct px_conn *c)
{
	const struct ab_net_rule *rule = NULL;

	if (!ab_net_policy_allows(&p->cfg->policy, c->host, c->port, &rule)) {
		deny(p, c, rule ? rule->text : "default deny: no rule allows it", rule ? rule->text : "default deny", NULL);
		return;
	}
	/* the rule's text is copied: rules may move when the policy changes */
	snprintf(c->rule, sizeof(c->rule), "%s", rule ? rule->text : "");
	start_resolve(p, c);
}

/* HTTP and SOCKS: the host as the client wrote it. */
static void request_decide(struct px_proxy *p, struct px_conn *c, const char *raw)
{
	char norm[AB_HOST_MAX], body[AB_HOST_MAX + 100];
	uint8_t a[16];

	if (ab_net_host_normalize(raw, norm, sizeof(norm), a) < 0) {
		sanitize(raw, c->host, sizeof(c->host));
		audit(p, c, "deny", "not a valid host name or address", NULL);
		if (c->via == PX_VIA_SOCKS) {
			socks_answer(p, c, AB_SOCKS_REP_NOT_ALLOWED);
			return;
		}
		snprintf(body, sizeof(body), "agentbox: '%s' is not a valid host name or address\n", c->host);
		http_answer(p, c, 400, "Bad Request", body);
		return;
	}
	memcpy(c->host, norm, sizeof(c->host));
	decide(p, c);
}

/* ---- reading before the decision ------------------------------------------------ */

/* Reads what is there into c->in (at most cap bytes in all). Returns the count, 0 at
 * EOF, -EAGAIN, -ENOBUFS when full, or another -errno. */
static ssize_t read_in(struct px_conn *c, size_t cap)
{
	ssize_t n;

	if (c->in_len >= cap)
		return -ENOBUFS;
	if (c->in_cap - c->in_len < 512 && c->in_cap < cap) {
		size_t want = c->in_cap ? c->in_cap * 2 : 2048;
		char *buf;
		if (want > cap)
			want = cap;
		buf = realloc(c->in, want);
		if (!buf)
			return -ENOMEM;
		c->in = buf;
		c->in_cap = want;
	}
	do
		n = recv(c->cw.fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	c->in_len += (size_t)n;
	return n;
}

/* Whether a head can have become complete: the new bytes (with three before them) hold
 * the blank line. Parsing only then keeps a head sent a byte at a time linear. */
static bool head_may_be_whole(struct px_conn *c, size_t cap)
{
	size_t from = c->in_parsed > 3 ? c->in_parsed - 3 : 0;
	bool first = c->in_parsed == 0;

	c->in_parsed = c->in_len;
	return first || c->in_len >= cap || memmem(c->in + from, c->in_len - from, "\r\n\r\n", 4);
}

static void consume_in(struct px_conn *c, size_t n)
{
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= n;
	c->in_parsed = 0;
}

static void on_head(struct px_proxy *p, struct px_conn *c)
{
	struct ab_http_request req;
	ssize_t n = read_in(c, AB_HTTP_MAX_HEAD);
	char body[256];
	int rc;

	if (n == -EAGAIN)
		return;
	if (n == 0 || (n < 0 && n != -ENOBUFS)) {
		/* A connection that asked nothing is no decision; one cut off mid-request is
		 * logged, so that what a client sent is never silently dropped. */
		if (c->in_len > 0)
			audit(p, c, "error", NULL, "the client closed before its request was complete");
		conn_close(p, c, false);
		return;
	}
	if (!head_may_be_whole(c, AB_HTTP_MAX_HEAD))
		return;
	rc = ab_http_parse_request(c->in, c->in_len, &req);
	if (rc == 0 && c->in_len >= AB_HTTP_MAX_HEAD)
		rc = -E2BIG;
	if (rc != 1)
		ab_http_request_free(&req);
	switch (rc) {
	case 0:
		return;
	case 1:
		break;
	case -E2BIG:
		snprintf(body, sizeof(body), "agentbox: request head too large (%d KiB at most)\n",
			 AB_HTTP_MAX_HEAD / 1024);
		http_answer(p, c, 431, "Request Header Fields Too Large", body);
		return;
	case -EPROTONOSUPPORT:
		http_answer(p, c, 400, "Bad Request",
			    "agentbox: only http:// URIs are forwarded; for https:// use CONNECT "
			    "(set HTTPS_PROXY)\n");
		return;
	default:
		http_answer(p, c, 400, "Bad Request", "agentbox: malformed proxy request\n");
		return;
	}
	snprintf(c->method, sizeof(c->method), "%s", req.method);
	c->http_connect = req.connect;
	c->port = req.port;
	c->upstream_head = req.upstream_head;
	c->upstream_len = req.upstream_len;
	req.upstream_head = NULL;
	consume_in(c, req.head_len);
	ab_http_request_free(&req);
	request_decide(p, c, req.host);
}

static void on_socks(struct px_proxy *p, struct px_conn *c)
{
	static const uint8_t no_auth[2] = { 5, 0 }, no_method[2] = { 5, 0xff };
	struct ab_socks_request req;
	uint8_t rep = AB_SOCKS_REP_FAILURE;
	size_t used = 0;
	ssize_t n = read_in(c, SOCKS_IN_CAP);
	int rc;

	if (n == -EAGAIN)
		return;
	if (n <= 0) {
		if (c->in_len > 0 || c->state == PX_SOCKS_REQUEST) /* as in on_head */
			audit(p, c, "error", NULL, "the client closed before its request was complete");
		conn_close(p, c, false);
		return;
	}
	if (c->state == PX_SOCKS_GREETING) {
		rc = ab_socks_parse_greeting((const uint8_t *)c->in, c->in_len, &used);
		if (rc == 0)
			return;
		if (rc == -EACCES) {
			send_small(c->cw.fd, no_method, sizeof(no_method));
			start_drain(p, c);
			return;
		}
		if (rc < 0 || send(c->cw.fd, no_auth, 2, MSG_NOSIGNAL | MSG_DONTWAIT) != 2) {
			conn_close(p, c, true);
			return;
		}
		consume_in(c, used);
		c->state = PX_SOCKS_REQUEST;
		if (c->in_len == 0)
			return;
	}
	rc = ab_socks_parse_request((const uint8_t *)c->in, c->in_len, &req, &used, &rep);
	if (rc == 0)
		return;
	if (rc < 0) {
		socks_answer(p, c, rep);
		return;
	}
	consume_in(c, used);
	c->port = req.port;
	request_decide(p, c, req.host);
}

static void on_sniff(struct px_proxy *p, struct px_conn *c)
{
	char name[AB_HOST_MAX], norm[AB_HOST_MAX];
	uint8_t a[16];
	uint16_t hport = 0;
	ssize_t n = read_in(c, SNIFF_IN_CAP);
	int rc;

	if (n == -EAGAIN)
		return;
	if (n == 0) {
		deny(p, c, "", "default deny", "closed before sending a server name");
		return;
	}
	if (n < 0 && n != -ENOBUFS) {
		conn_close(p, c, true);
		return;
	}
	if ((uint8_t)c->in[0] == 0x16) {
		rc = ab_tls_sniff_sni((const uint8_t *)c->in, c->in_len, name, sizeof(name));
	} else {
		if (!head_may_be_whole(c, SNIFF_IN_CAP))
			return;
		rc = ab_http_sniff_host(c->in, c->in_len, name, sizeof(name), &hport);
	}
	if (rc == 0 && c->in_len < SNIFF_IN_CAP)
		return;
	if (rc != 1 || ab_net_host_normalize(name, norm, sizeof(norm), a) != AB_HOST_NAME) {
		/* no name, or an address where a name belongs: the address alone decided */
		deny(p, c, "", "default deny", "no server name in the first bytes");
		return;
	}
	/* the name decides, and the proxy connects to its own resolution of it on the port
	 * the sandbox chose; the sniffed bytes are passed on first */
	memcpy(c->host, norm, sizeof(c->host));
	decide(p, c);
}

static void on_drain(struct px_proxy *p, struct px_conn *c)
{
	static char scratch[16384];

	for (int i = 0; i < 4; i++) {
		ssize_t n = recv(c->cw.fd, scratch, sizeof(scratch), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			conn_close(p, c, false);
			return;
		}
		c->drained += (uint64_t)n;
		if (c->drained > DRAIN_MAX) {
			conn_close(p, c, true);
			return;
		}
	}
}

/* ---- capture -------------------------------------------------------------------- */

static void capture_start(struct px_proxy *p, struct px_conn *c)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct ab_net_addr a = { 0 };
	const struct ab_net_rule *rule = NULL;
	int rc;

	memset(&ss, 0, sizeof(ss));
	if (c->family == AF_INET6)
		rc = getsockopt(c->cw.fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST_, &ss, &sl);
	else
		rc = getsockopt(c->cw.fd, SOL_IP, SO_ORIGINAL_DST, &ss, &sl);
	if (rc < 0) {
		audit(p, c, "error", NULL, "cannot read the original destination");
		conn_close(p, c, true);
		return;
	}
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		a.family = AF_INET;
		memcpy(a.addr, &sin->sin_addr, 4);
		c->port = ntohs(sin->sin_port);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
		a.family = AF_INET6;
		memcpy(a.addr, &sin6->sin6_addr, 16);
		c->port = ntohs(sin6->sin6_port);
		if (memcmp(a.addr, mapped, 12) == 0) {
			a.family = AF_INET;
			memmove(a.addr, a.addr + 12, 4);
		}
	}
	fmt_addr(&a, c->orig_text, sizeof(c->orig_text));
	c->have_orig = true;
	if (a.family == AF_INET && ab_fakeip_in_range(a.addr)) {
		/* an address the sandbox's DNS handed out: the name behind it decides */
		const char *name = ab_fakeip_name(p->fake, a.addr);
		if (!name) {
			snprintf(c->host, sizeof(c->host), "%s", c->orig_text);
			deny(p, c, "", "default deny", "an address the sandbox's DNS did not hand out");
			return;
		}
		snprintf(c->host, sizeof(c->host), "%s", name);
		decide(p, c);
		return;
	}
	snprintf(c->host, sizeof(c->host), "%s", c->orig_text);
	if (ab_net_policy_allows(&p->cfg->policy, c->host, c->port, &rule)) {
		snprintf(c->rule, sizeof(c->rule), "%s", rule ? rule->text : "");
		start_resolve(p, c);
		return;
	}
	if (rule) { /* a deny rule for the address */
		deny(p, c, rule->text, rule->text, NULL);
		return;
	}
	c->state = PX_SNIFF;
	enqueue(c, &p->q_sniff, c->born_ms + AB_PROXY_SNIFF_TIMEOUT_MS);
	if (px_watch_set(p, &c->cw, EPOLLIN) < 0)
		conn_close(p, c, true);
}

/* ---- the entry points ----------------------------------------------------------- */

void px_conn_accept(struct px_proxy *p, int fd, enum ab_proxy_listener_kind kind, int family)
{
	struct px_conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);
		return;
	}
	c->p = p;
	c->cw = (struct px_watch){ .kind = PX_W_CLIENT, .fd = fd };
	c->uw = (struct px_watch){ .kind = PX_W_UPSTREAM, .fd = -1 };
	px_list_init(&c->node);
	c->born_ns = now_ns();
	c->born_ms = c->born_ns / 1000000;
	c->family = family;
	p->n_conns++;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	switch (kind) {
	case AB_PROXY_LISTEN_HTTP:
	case AB_PROXY_LISTEN_SOCKS:
		c->via = kind == AB_PROXY_LISTEN_HTTP ? PX_VIA_PROXY : PX_VIA_SOCKS;
		c->state = kind == AB_PROXY_LISTEN_HTTP ? PX_HEAD : PX_SOCKS_GREETING;
		enqueue(c, &p->q_head, c->born_ms + AB_PROXY_HEAD_TIMEOUT_MS);
		if (px_watch_set(p, &c->cw, EPOLLIN) < 0)
			conn_close(p, c, true);
		return;
	case AB_PROXY_LISTEN_CAPTURE:
		c->via = PX_VIA_CAPTURE;
		c->state = PX_SNIFF;
		enqueue(c, &p->q_sniff, c->born_ms + AB_PROXY_SNIFF_TIMEOUT_MS);
		capture_start(p, c);
		return;
	case AB_PROXY_LISTEN_DNS:
		break;
	}
	conn_close(p, c, true);
}

void px_conn_event(struct px_proxy *p, struct px_watch *w, uint32_t ev)
{
	struct px_conn *c = w->kind == PX_W_CLIENT ? px_container_of(w, struct px_conn, cw)
						   : px_container_of(w, struct px_conn, uw);

	switch (c->state) {
	case PX_HEAD:
		on_head(p, c);
		return;
	case PX_SOCKS_GREETING:
	case PX_SOCKS_REQUEST:
		on_socks(p, c);
		return;
	case PX_SNIFF:
		on_sniff(p, c);
		return;
	case PX_RESOLVING:
	case PX_CONNECTING:
		if (c->state == PX_CONNECTING && w == &c->uw) {
			on_connect_ready(p, c, ev);
			return;
		}
		if (w == &c->cw && (ev & (EPOLLERR | EPOLLHUP))) {
			audit(p, c, "error", c->rule, "the client went away before the connection was made");
			conn_close(p, c, true);
		}
		return;
	case PX_RELAY:
		relay_event(p, c, w, ev);
		return;
	case PX_DRAIN:
		on_drain(p, c);
		return;
	case PX_DEAD:
		return;
	}
}

void px_conn_expire(struct px_proxy *p, struct px_conn *c)
{
	char reason[AB_HOST_MAX + 64];

	switch (c->state) {
	case PX_SNIFF:
		deny(p, c, "", "default deny", "no server name within the first second");
		break;
	case PX_RESOLVING:
		snprintf(reason, sizeof(reason), "cannot resolve %s: timed out", c->host);
		fail(p, c, AB_SOCKS_REP_HOST_UNREACH, reason);
		break;
	case PX_CONNECTING:
		connect_error(c, ETIMEDOUT);
		close_sock(&c->uw, false);
		dial_failed(p, c, ETIMEDOUT);
		break;
	case PX_HEAD:
	case PX_SOCKS_GREETING:
	case PX_SOCKS_REQUEST:
		snprintf(reason, sizeof(reason), "no complete %s request within %d s",
			 c->state == PX_HEAD ? "HTTP" : "SOCKS5", AB_PROXY_HEAD_TIMEOUT_MS / 1000);
		audit(p, c, "error", NULL, reason);
		conn_close(p, c, false);
		break;
	case PX_DRAIN: /* answered and logged already */
	case PX_RELAY:
	case PX_DEAD:
		conn_close(p, c, false);
		break;
	}
}

bool px_conn_evict_one(struct px_proxy *p)
{
	struct px_conn *h = NULL, *s = NULL;

	if (!px_list_empty(&p->q_drain)) {
		conn_close(p, px_container_of(p->q_drain.next, struct px_conn, node), true);
		return true;
	}
	if (!px_list_empty(&p->q_head))
		h = px_container_of(p->q_head.next, struct px_conn, node);
	if (!px_list_empty(&p->q_sniff))
		s = px_container_of(p->q_sniff.next, struct px_conn, node);
	if (!h && !s)
		return false;
	struct px_conn *oldest = (h && (!s || h->born_ns <= s->born_ns)) ? h : s;
	audit(p, oldest, "error", NULL, "closed before its request, to make room for newer connections");
	conn_close(p, oldest, true);
	return true;
}

void px_conn_close_all(struct px_proxy *p)
{
	struct px_node *queues[] = { &p->q_head, &p->q_sniff, &p->q_dial, &p->q_drain, &p->q_relay };

	for (size_t i = 0; i < sizeof(queues) / sizeof(queues[0]); i++)
		while (!px_list_empty(queues[i])) {
			struct px_conn *c = px_container_of(queues[i]->next, struct px_conn, node);
			if (c->state == PX_RELAY)
				relay_finish(p, c, true);
			else
				conn_close(p, c, true);
		}
}
