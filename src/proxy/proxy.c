/* The egress proxy's process: it builds what needs the file system (the resolver reads
 * /etc/resolv.conf) and its own addresses, confines itself, takes its listeners when they
 * come later (agentbox starts it before the sandbox has made them), then serves one epoll
 * loop until the lifeline closes: the listeners (HTTP, SOCKS, capture: proxy-conn.c; DNS:
 * here), the control socket, c-ares' sockets, and the connections' deadlines.
 *
 *   setup ─> confine ─> [listeners_fd: one message, n kinds + n fds] ─> "OK" on ready_fd ─> serve
 */
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "control.h"
#include "dns.h"
#include "proxy-confine.h"
#include "proxy-internal.h"

#define MAX_EVENTS 256
#define ACCEPT_BATCH 64  /* per listener and wakeup: then the accepted get their turn */
#define DNS_BATCH 64
#define CONTROL_TIMEOUT_MS 2000
#define PAUSE_MS 100     /* out of file descriptors with nothing to evict: accept later */
#define DNS_TTL 5
#define MAX_OWN_ADDRS 256

int64_t px_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int px_watch_set(struct px_proxy *p, struct px_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (w->registered && w->events == events)
		return 0;
	if (epoll_ctl(p->epfd, w->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, w->fd, &ev) < 0)
		return -errno;
	w->registered = true;
	w->events = events;
	return 0;
}

void px_watch_drop(struct px_proxy *p, struct px_watch *w)
{
	if (w->registered && w->fd >= 0)
		(void)epoll_ctl(p->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->registered = false;
	w->events = 0;
}

/* ---- c-ares' sockets ------------------------------------------------------------ */

static void on_resolver_watch(void *ctx, int fd, bool readable, bool writable)
{
	struct px_proxy *p = ctx;
	struct px_watch *w = NULL, *slot = NULL;

	for (size_t i = 0; i < PX_MAX_RESOLVER_FDS; i++) {
		if (p->resolver_fds[i].fd == fd)
			w = &p->resolver_fds[i];
		else if (p->resolver_fds[i].fd < 0 && !slot)
			slot = &p->resolver_fds[i];
	}
	if (!readable && !writable) {
		if (w) {
			px_watch_drop(p, w);
			w->fd = -1;
		}
		return;
	}
	if (!w) {
		if (!slot)
			return; /* more sockets than c-ares ever opens: its lookups time out */
		w = slot;
		*w = (struct px_watch){ .kind = PX_W_RESOLVER, .fd = fd };
	}
	(void)px_watch_set(p, w, (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0));
}

/* ---- listeners ------------------------------------------------------------------ */

static void pause_listeners(struct px_proxy *p, bool pause)
{
	for (size_t i = 0; i < p->n_listeners; i++)
		if (p->listener_kind[i] != AB_PROXY_LISTEN_DNS)
			(void)px_watch_set(p, &p->listeners[i], pause ? 0 : EPOLLIN);
	p->listen_paused_until = pause ? px_now_ms() + PAUSE_MS : 0;
}

static void reset_close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void accept_some(struct px_proxy *p, size_t i)
{
	for (int k = 0; k < ACCEPT_BATCH; k++) {
		int fd = accept4(p->listeners[i].fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			switch (errno) {
			case EINTR:
			case ECONNABORTED:
			case EPROTO:
			case EPERM:
				continue;
			case EMFILE:
			case ENFILE:
			case ENOBUFS:
			case ENOMEM:
				/* make room by closing the oldest waiting connection; with none
				 * to close, stop accepting for a moment (never spin) */
				if (px_make_room(p))
					continue;
				pause_listeners(p, true);
				return;
			default:
				return; /* EAGAIN: all taken */
			}
		}
		if (p->n_conns >= AB_PROXY_MAX_CONNECTIONS && !px_conn_evict_one(p)) {
			reset_close(fd);
			continue;
		}
		px_conn_accept(p, fd, p->listener_kind[i], p->listener_family[i]);
	}
}

/* ---- DNS ------------------------------------------------------------------------ */

static int dns_answer(struct px_proxy *p, const uint8_t *query, size_t qlen,
		      const struct ab_dns_query *q, uint8_t *out, size_t out_size)
{
	struct ab_audit_event ev = { .via = "dns", .host = q->name[0] ? q->name : "." };
	const struct ab_net_rule *rule = NULL;
	char host[AB_HOST_MAX], addr_text[16];
	uint8_t a[16], fake[4];
	const uint8_t *answer = NULL;
	int rcode = AB_DNS_RCODE_NOERROR;

	if (ab_net_host_normalize(q->name, host, sizeof(host), a) != AB_HOST_NAME) {
		rcode = AB_DNS_RCODE_NXDOMAIN;
		ev.decision = "deny";
		ev.rule = "not a host name";
	} else if (!ab_net_policy_allows_name_any_port(&p->cfg->policy, host, &rule)) {
		rcode = AB_DNS_RCODE_NXDOMAIN;
		ev.host = host;
		ev.decision = "deny";
		ev.rule = rule ? rule->text : "default deny";
	} else {
		ev.host = host;
		ev.decision = "allow";
		ev.rule = rule ? rule->text : NULL;
		if (q->qtype == AB_DNS_TYPE_A && q->qclass == AB_DNS_CLASS_IN) {
			if (ab_fakeip_for_name(p->fake, host, fake) < 0) {
				rcode = AB_DNS_RCODE_SERVFAIL;
				ev.decision = "error";
				ev.reason = "out of memory";
			} else {
				answer = fake;
				snprintf(addr_text, sizeof(addr_text), "%u.%u.%u.%u", fake[0], fake[1], fake[2],
					 fake[3]);
				ev.addr = addr_text;
			}
		}
		/* AAAA and other types of an allowed name: no data (IPv4 fake addresses only) */
	}
	if (p->cfg->log_fd >= 0)
		(void)ab_audit_write(p->cfg->log_fd, p->cfg->name, &ev);
	return ab_dns_build_answer(query, qlen, q, rcode, answer, answer ? 4 : 0, DNS_TTL, out, out_size);
}

static void dns_serve(struct px_proxy *p, int fd)
{
	for (int k = 0; k < DNS_BATCH; k++) {
		uint8_t query[2048], out[AB_DNS_MAX_MSG];
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		struct ab_dns_query q;
		ssize_t n = recvfrom(fd, query, sizeof(query), MSG_DONTWAIT | MSG_TRUNC,
				     (struct sockaddr *)&from, &fl);
		int len, rc;

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			continue; /* a queued error of the socket: the next datagram */
		}
		if ((size_t)n > sizeof(query))
			rc = -EINVAL; /* cut: no query is that long */
		else
			rc = ab_dns_parse_query(query, (size_t)n, &q);
		if (rc < 0)
			len = ab_dns_build_error(query, (size_t)n > sizeof(query) ? sizeof(query) : (size_t)n,
						 rc == -EOPNOTSUPP ? AB_DNS_RCODE_NOTIMP : AB_DNS_RCODE_FORMERR,
						 out, sizeof(out));
		else
			len = dns_answer(p, query, (size_t)n, &q, out, sizeof(out));
		if (len > 0)
			(void)sendto(fd, out, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&from, fl);
	}
}

/* ---- the control socket --------------------------------------------------------- */

static void control_close(struct px_proxy *p, struct px_control_client *cc)
{
	if (cc->w.fd >= 0)
		close(cc->w.fd);
	cc->w.fd = -1;
	cc->w.registered = false;
	cc->busy = false;
}

static void control_accept(struct px_proxy *p)
{
	static const char busy[] = "error the proxy is busy with other requests: try again";

	for (int k = 0; k < PX_MAX_CONTROL_CLIENTS; k++) {
		struct px_control_client *cc = NULL;
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		int fd = accept4(p->control.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
			close(fd);
			continue;
		}
		for (size_t i = 0; i < PX_MAX_CONTROL_CLIENTS && !cc; i++)
			if (!p->control_clients[i].busy)
				cc = &p->control_clients[i];
		if (!cc) {
			(void)send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		cc->w = (struct px_watch){ .kind = PX_W_CONTROL_CLIENT, .fd = fd };
		cc->busy = true;
		cc->uid = cred.uid;
		/* a stranger is answered after its request, so that it reads the refusal
		 * instead of a broken pipe */
		cc->refused = cred.uid != p->cfg->owner_uid && cred.uid != 0;
		cc->deadline_ms = px_now_ms() + CONTROL_TIMEOUT_MS;
		if (px_watch_set(p, &cc->w, EPOLLIN) < 0)
			control_close(p, cc);
	}
}

static void control_read(struct px_proxy *p, struct px_control_client *cc)
{
	char msg[AB_CONTROL_MSG_MAX + 1], reply[AB_CONTROL_MSG_MAX + AB_ERROR_MSG_MAX];
	struct ab_error e = { 0 };
	struct ab_net_rule rule;
	ssize_t n = recv(cc->w.fd, msg, sizeof(msg), MSG_DONTWAIT);
	int r;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		control_close(p, cc);
		return;
	}
	if (cc->refused) {
		snprintf(reply, sizeof(reply), "error not the sandbox's owner");
	} else if (ab_control_parse(msg, (size_t)n, &rule, &e) < 0) {
		snprintf(reply, sizeof(reply), "error %s", e.msg);
	} else if ((r = ab_net_policy_add(&p->cfg->policy, &rule)) < 0) {
		if (r == -ENOSPC)
			snprintf(reply, sizeof(reply), "error the policy has %d rules already, the most it takes",
				 AB_NET_MAX_RULES);
		else
			snprintf(reply, sizeof(reply), "error cannot add rule '%s': out of memory", rule.text);
	} else {
		/* applies to every decision from now on; connections already made stay */
		snprintf(reply, sizeof(reply), "ok %s", rule.text);
		if (p->cfg->log_fd >= 0)
			(void)ab_audit_write_policy(p->cfg->log_fd, p->cfg->name, rule.deny ? "deny" : "allow",
						    rule.text, cc->uid);
	}
	(void)send(cc->w.fd, reply, strlen(reply), MSG_NOSIGNAL | MSG_DONTWAIT);
	control_close(p, cc);
}

/* ---- the loop ------------------------------------------------------------------- */

static struct px_node *timed_queue(struct px_proxy *p, size_t i)
{
	struct px_node *q[] = { &p->q_head, &p->q_sniff, &p->q_dial, &p->q_drain };

	return i < 4 ? q[i] : NULL;
}

static int next_timeout_ms(struct px_proxy *p)
{
	int64_t next = INT64_MAX, now = px_now_ms();
	int rt;

	for (size_t i = 0; timed_queue(p, i); i++) {
		struct px_node *q = timed_queue(p, i);
		if (!px_list_empty(q)) {
			int64_t d = px_container_of(q->next, struct px_conn, node)->deadline_ms;
			if (d < next)
				next = d;
		}
	}
	for (size_t i = 0; i < PX_MAX_CONTROL_CLIENTS; i++)
		if (p->control_clients[i].busy && p->control_clients[i].deadline_ms < next)
			next = p->control_clients[i].deadline_ms;
	if (p->listen_paused_until && p->listen_paused_until < next)
		next = p->listen_paused_until;
	rt = ab_resolver_timeout_ms(p->resolver);
	if (rt >= 0 && now + rt < next)
		next = now + rt;
	if (next == INT64_MAX)
		return -1;
	if (next <= now)
		return 0;
	return next - now > 60000 ? 60000 : (int)(next - now);
}

static void run_timers(struct px_proxy *p)
{
	int64_t now = px_now_ms();

	if (ab_resolver_timeout_ms(p->resolver) == 0)
		ab_resolver_process_timeouts(p->resolver);
	for (size_t i = 0; timed_queue(p, i); i++) {
		struct px_node *q = timed_queue(p, i);
		while (!px_list_empty(q)) {
			struct px_conn *c = px_container_of(q->next, struct px_conn, node);
			if (c->deadline_ms > now)
				break;
			px_conn_expire(p, c);
			if (q->next == &c->node) /* never stay first with a past deadline */
				px_list_del(&c->node);
		}
	}
	for (size_t i = 0; i < PX_MAX_CONTROL_CLIENTS; i++)
		if (p->control_clients[i].busy && p->control_clients[i].deadline_ms <= now)
			control_close(p, &p->control_clients[i]);
	if (p->listen_paused_until && p->listen_paused_until <= now)
		pause_listeners(p, false);
}

static void on_lifeline(struct px_proxy *p)
{
	char buf[64];
	ssize_t n = read(p->lifeline.fd, buf, sizeof(buf));

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		p->done = true; /* the sandbox is over */
}

static void dispatch(struct px_proxy *p, struct px_watch *w, uint32_t ev)
{
	switch (w->kind) {
	case PX_W_LISTENER: {
		size_t i = (size_t)(w - p->listeners);
		if (p->listener_kind[i] == AB_PROXY_LISTEN_DNS)
			dns_serve(p, w->fd);
		else
			accept_some(p, i);
		return;
	}
	case PX_W_CONTROL:
		control_accept(p);
		return;
	case PX_W_CONTROL_CLIENT: {
		struct px_control_client *cc = px_container_of(w, struct px_control_client, w);
		if (cc->busy)
			control_read(p, cc);
		return;
	}
	case PX_W_LIFELINE:
		on_lifeline(p);
		return;
	case PX_W_RESOLVER:
		if (w->fd >= 0)
			ab_resolver_process(p->resolver, w->fd, ev & (EPOLLIN | EPOLLERR | EPOLLHUP),
					    ev & EPOLLOUT);
		return;
	case PX_W_CLIENT:
	case PX_W_UPSTREAM:
		px_conn_event(p, w, ev);
		return;
	}
}

static int serve(struct px_proxy *p, struct ab_error *err)
{
	struct epoll_event evs[MAX_EVENTS];

	while (!p->done) {
		int n = epoll_wait(p->epfd, evs, MAX_EVENTS, next_timeout_ms(p));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return ab_error_set(err, errno, "cannot wait for events in the egress proxy");
		}
		for (int i = 0; i < n; i++)
			dispatch(p, evs[i].data.ptr, evs[i].events);
		run_timers(p);
		px_conn_free_dead(p);
	}
	return 0;
}

/* ---- setup and teardown --------------------------------------------------------- */

/* The host's own addresses: connections to them are refused unless an address rule
 * opens them (they reach services that listen on every interface). */
static void gather_own_addresses(struct px_proxy *p)
{
	struct ifaddrs *ifa = NULL;

	if (getifaddrs(&ifa) < 0)
		return;
	p->own = calloc(MAX_OWN_ADDRS, sizeof(*p->own));
	for (struct ifaddrs *i = ifa; p->own && i && p->n_own < MAX_OWN_ADDRS; i = i->ifa_next) {
		struct ab_net_addr *a = &p->own[p->n_own];
		if (!i->ifa_addr)
			continue;
		if (i->ifa_addr->sa_family == AF_INET) {
			a->family = AF_INET;
			memcpy(a->addr, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
		} else if (i->ifa_addr->sa_family == AF_INET6) {
			a->family = AF_INET6;
			memcpy(a->addr, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16);
		} else {
			continue;
		}
		p->n_own++;
	}
	freeifaddrs(ifa);
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static int watch_listeners(struct px_proxy *p, struct ab_proxy_config *cfg, struct ab_error *err)
{
	int r;

	if (cfg->n_listeners > AB_PROXY_MAX_LISTENERS)
		return ab_error_set(err, EINVAL, "too many listeners for the egress proxy (%zu)",
				    cfg->n_listeners);
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		p->listeners[i] = (struct px_watch){ .kind = PX_W_LISTENER, .fd = cfg->listeners[i].fd };
		p->listener_kind[i] = cfg->listeners[i].kind;
		p->listener_family[i] = cfg->listeners[i].family;
		p->n_listeners = i + 1;
		r = set_nonblock(cfg->listeners[i].fd);
		if (r == 0)
			r = px_watch_set(p, &p->listeners[i], EPOLLIN);
		if (r < 0)
			return ab_error_set(err, -r, "cannot watch the egress proxy's listener %zu", i);
	}
	return 0;
}

/* ---- listeners that come later -------------------------------------------------- */

static int listener_type(int32_t kind)
{
	switch (kind) {
	case AB_PROXY_LISTEN_HTTP:
	case AB_PROXY_LISTEN_SOCKS:
	case AB_PROXY_LISTEN_CAPTURE:
		return SOCK_STREAM;
	case AB_PROXY_LISTEN_DNS:
		return SOCK_DGRAM;
	default:
		return -1;
	}
}

static bool sockopt_is(int fd, int opt, int want)
{
	int got = 0;
	socklen_t len = sizeof(got);

	return getsockopt(fd, SOL_SOCKET, opt, &got, &len) == 0 && len == sizeof(got) && got == want;
}

/* Is fd what its entry says: a socket of that family and type, listening if a stream? */
static bool listener_is(int fd, const struct ab_proxy_listener_wire *w)
{
	int type = listener_type(w->kind);

	return type >= 0 && (w->family == AF_INET || w->family == AF_INET6) &&
	       sockopt_is(fd, SO_DOMAIN, w->family) && sockopt_is(fd, SO_TYPE, type) &&
	       (type != SOCK_STREAM || sockopt_is(fd, SO_ACCEPTCONN, 1));
}

/* Waits for the one message of listeners on cfg->listeners_fd (or the lifeline's end),
 * checks it and fills cfg->listeners. Returns 1 then, 0 when the socket or the lifeline
 * ended first (the sandbox never made its listeners), < 0 with err set when the message
 * is not what it must be (every fd it brought is closed). */
static int receive_listeners(struct ab_proxy_config *cfg, struct ab_error *err)
{
	struct ab_proxy_listener_wire wire[AB_PROXY_MAX_LISTENERS + 1]; /* + 1: one too many shows */
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * AB_PROXY_MAX_LISTENERS)];
	} ctl;
	struct iovec iov = { .iov_base = wire, .iov_len = sizeof(wire) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };
	struct pollfd pfd[2] = { { .fd = cfg->listeners_fd, .events = POLLIN },
				 { .fd = cfg->lifeline_fd, .events = POLLIN } };
	int fds[AB_PROXY_MAX_LISTENERS];
	size_t n_fds = 0, n = 0, i;
	ssize_t got;
	int r = 1;

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return ab_error_set(err, errno, "cannot wait for the egress proxy's listeners");
		}
		if (!pfd[0].revents && pfd[1].revents)
			return 0; /* nothing ever comes on the lifeline but its end */
		if (!pfd[0].revents)
			continue;
		got = recvmsg(cfg->listeners_fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (got >= 0)
			break;
		if (errno != EINTR && errno != EAGAIN)
			return ab_error_set(err, errno, "cannot receive the egress proxy's listeners");
	}
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		size_t k;
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (n_fds < AB_PROXY_MAX_LISTENERS)
				fds[n_fds++] = fd;
			else
				close(fd);
		}
	}
	if (got == 0 && n_fds == 0)
		return 0; /* agentbox closed it: no sandbox, no listeners */
	n = (size_t)got / sizeof(wire[0]);
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC) || (size_t)got % sizeof(wire[0]) || n == 0 ||
	    n > AB_PROXY_MAX_LISTENERS || n_fds != n)
		r = ab_error_set(err, EPROTO, "the egress proxy's listeners came malformed (%zd bytes, %zu fds)",
				 got, n_fds);
	for (i = 0; r > 0 && i < n; i++)
		if (!listener_is(fds[i], &wire[i]))
			r = ab_error_set(err, EPROTO,
					 "the egress proxy's listener %zu is not the socket it is said to be "
					 "(kind %d, family %d)", i, (int)wire[i].kind, (int)wire[i].family);
	if (r < 0) {
		for (i = 0; i < n_fds; i++)
			close(fds[i]);
		return r;
	}
	for (i = 0; i < n; i++)
		cfg->listeners[i] = (struct ab_proxy_listener){ .fd = fds[i],
								.kind = (enum ab_proxy_listener_kind)wire[i].kind,
								.family = wire[i].family };
	cfg->n_listeners = n;
	return 1;
}

/* After setup and confinement: the listeners from listeners_fd, watched. *ended when
 * they never came (then 0 is returned, and there is nothing to serve). */
static int take_listeners(struct px_proxy *p, struct ab_proxy_config *cfg, bool *ended, struct ab_error *err)
{
	int r = receive_listeners(cfg, err);

	close(cfg->listeners_fd); /* one message, and its job is done */
	cfg->listeners_fd = -1;
	*ended = r == 0;
	return r <= 0 ? r : watch_listeners(p, cfg, err);
}

static int setup(struct px_proxy *p, struct ab_proxy_config *cfg, struct ab_error *err)
{
	struct sigaction sa = { .sa_handler = SIG_IGN };
	int r;

	/* a write to a socket whose peer is gone raises SIGPIPE; errors are enough */
	if (sigaction(SIGPIPE, &sa, NULL) < 0)
		return ab_error_set(err, errno, "cannot ignore SIGPIPE in the egress proxy");
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0)
		return ab_error_set(err, errno, "cannot create the egress proxy's epoll instance");
	p->fake = ab_fakeip_new();
	if (!p->fake)
		return ab_error_set(err, ENOMEM, "cannot allocate the fake address map");
	p->resolver = ab_resolver_new(cfg->hosts, cfg->n_hosts, on_resolver_watch, p, err);
	if (!p->resolver)
		return ab_error_wrap(err, "cannot start the egress proxy's resolver");
	gather_own_addresses(p);

	if (cfg->listeners_fd >= 0 && cfg->n_listeners)
		return ab_error_set(err, EINVAL, "the egress proxy's listeners come twice");
	if ((r = watch_listeners(p, cfg, err)) < 0)
		return r;
	if (cfg->control_fd >= 0) {
		p->control = (struct px_watch){ .kind = PX_W_CONTROL, .fd = cfg->control_fd };
		r = set_nonblock(cfg->control_fd);
		if (r == 0)
			r = px_watch_set(p, &p->control, EPOLLIN);
		if (r < 0)
			return ab_error_set(err, -r, "cannot watch the egress proxy's control socket");
	}
	p->lifeline = (struct px_watch){ .kind = PX_W_LIFELINE, .fd = cfg->lifeline_fd };
	r = set_nonblock(cfg->lifeline_fd);
	if (r == 0)
		r = px_watch_set(p, &p->lifeline, EPOLLIN);
	if (r < 0)
		return ab_error_set(err, -r, "cannot watch the egress proxy's lifeline");
	return 0;
}

static void close_cfg_fds(struct ab_proxy_config *cfg)
{
	for (size_t i = 0; i < cfg->n_listeners && i < AB_PROXY_MAX_LISTENERS; i++)
		if (cfg->listeners[i].fd >= 0) {
			close(cfg->listeners[i].fd);
			cfg->listeners[i].fd = -1;
		}
	if (cfg->control_fd >= 0)
		close(cfg->control_fd);
	if (cfg->log_fd >= 0)
		close(cfg->log_fd);
	if (cfg->log_old_fd >= 0)
		close(cfg->log_old_fd);
	ab_audit_set_rotation(-1, 0);
	if (cfg->lifeline_fd >= 0)
		close(cfg->lifeline_fd);
	if (cfg->ready_fd >= 0)
		close(cfg->ready_fd);
	if (cfg->listeners_fd >= 0)
		close(cfg->listeners_fd);
	cfg->control_fd = cfg->log_fd = cfg->log_old_fd = cfg->lifeline_fd = cfg->ready_fd = cfg->listeners_fd = -1;
}

int ab_proxy_run(struct ab_proxy_config *cfg, struct ab_error *err)
{
	struct px_proxy *p = calloc(1, sizeof(*p));
	bool ended = false;
	int r;

	if (!p) {
		close_cfg_fds(cfg);
		ab_net_policy_free(&cfg->policy);
		return ab_error_set(err, ENOMEM, "cannot allocate the egress proxy");
	}
	p->cfg = cfg;
	p->epfd = -1;
	if (cfg->log_fd >= 0 && cfg->log_old_fd >= 0)
		ab_audit_set_rotation(cfg->log_old_fd, cfg->log_max);
	p->control.fd = p->lifeline.fd = -1;
	for (size_t i = 0; i < PX_MAX_RESOLVER_FDS; i++)
		p->resolver_fds[i].fd = -1;
	for (size_t i = 0; i < PX_MAX_CONTROL_CLIENTS; i++)
		p->control_clients[i].w.fd = -1;
	px_list_init(&p->q_head);
	px_list_init(&p->q_sniff);
	px_list_init(&p->q_dial);
	px_list_init(&p->q_drain);
	px_list_init(&p->q_relay);

	r = setup(p, cfg, err);
	if (r == 0)
		r = ab_proxy_confine(cfg, err);
	/* Confined before it holds a socket of the sandbox's. */
	if (r == 0 && cfg->listeners_fd >= 0)
		r = take_listeners(p, cfg, &ended, err);
	/* Whoever started the proxy learns that it serves, confined, or why not: a sandbox
	 * whose proxy could not start must not run as if it had one. A proxy whose listeners
	 * never came has nobody waiting. */
	if (cfg->ready_fd >= 0) {
		const char *msg = r == 0 ? "OK" : err->msg;
		if (!ended)
			(void)!write(cfg->ready_fd, msg, strlen(msg));
		close(cfg->ready_fd);
		cfg->ready_fd = -1;
	}
	if (r == 0 && !ended)
		r = serve(p, err);

	px_conn_close_all(p);
	px_conn_free_dead(p);
	for (size_t i = 0; i < PX_MAX_CONTROL_CLIENTS; i++)
		if (p->control_clients[i].busy)
			control_close(p, &p->control_clients[i]);
	ab_resolver_free(p->resolver);
	ab_fakeip_free(p->fake);
	px_bufs_free(p);
	free(p->own);
	if (p->epfd >= 0)
		close(p->epfd);
	close_cfg_fds(cfg);
	ab_net_policy_free(&cfg->policy);
	free(p);
	return r;
}
