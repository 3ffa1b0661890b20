/* Name resolution for the proxy: --add-host entries and address literals answered at
 * once, a small cache of recent answers, then c-ares: the hosts file (as the name is),
 * then DNS for the name made absolute ("name."), so that no search domain of
 * /etc/resolv.conf is ever appended: the name the policy judged is the name looked up
 * ("db" must not become "db.corp.example"). c-ares 1.18 ignores ARES_FLAG_NOSEARCH in
 * ares_getaddrinfo; the trailing dot it honours. DNS is driven by the proxy's event loop
 * (c-ares tells which sockets to watch; the loop hands readiness back). */
#include "resolve.h"

#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define CACHE_SIZE 64
#define CACHE_TTL_MAX_MS 60000 /* an answer is reused for its TTL, at most this */
#define ARES_TIMEOUT_MS 2000   /* per try and server: a dead resolver fails in seconds */
#define ARES_TRIES 2

struct lookup {
	struct ab_resolver *r;
	int64_t id;
	char name[AB_HOST_MAX];
	ab_resolve_cb cb; /* NULL once cancelled */
	void *arg;
	bool dns; /* the hosts file had nothing: now DNS */
	struct lookup *prev, *next;
	bool starting;  /* inside ares_getaddrinfo: a callback now is a synchronous one */
	bool done_sync; /* it came while starting */
};

struct cache_entry {
	char name[AB_HOST_MAX]; /* "" for an empty slot */
	struct ab_net_addr addrs[AB_RESOLVE_MAX_ADDRS];
	size_t n;
	int64_t expires_ms;
	uint64_t used;
};

struct ab_resolver {
	ares_channel channel; /* DNS */
	ares_channel files;   /* the hosts file alone: answers synchronously */
	bool channel_ok, files_ok;
	bool library_ok;
	struct ab_net_host_entry *hosts;
	size_t n_hosts;
	ab_resolve_watch_cb watch;
	void *watch_ctx;
	int64_t next_id;
	struct lookup *pending; /* started, callback not yet in */
	struct cache_entry cache[CACHE_SIZE];
	uint64_t cache_clock;
	bool destroying;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct ab_resolver *r = data;

	if (r->watch && !r->destroying)
		r->watch(r->watch_ctx, fd, readable != 0, writable != 0);
}

struct ab_resolver *ab_resolver_new(const struct ab_net_host_entry *hosts, size_t n_hosts,
				    ab_resolve_watch_cb watch, void *watch_ctx,
				    struct ab_error *err)
{
	struct ares_options opts = { 0 };
	struct ab_resolver *r = calloc(1, sizeof(*r));
	int rc;

	if (!r) {
		ab_error_set(err, ENOMEM, "cannot allocate the resolver");
		return NULL;
	}
	r->watch = watch;
	r->watch_ctx = watch_ctx;
	r->next_id = 1;
	if (n_hosts) {
		r->hosts = calloc(n_hosts, sizeof(*hosts));
		if (!r->hosts) {
			ab_error_set(err, ENOMEM, "cannot allocate the resolver's host entries");
			goto fail;
		}
		memcpy(r->hosts, hosts, n_hosts * sizeof(*hosts));
		r->n_hosts = n_hosts;
	}
	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		ab_error_set(err, 0, "cannot initialise c-ares: %s", ares_strerror(rc));
		goto fail;
	}
	r->library_ok = true;
	opts.sock_state_cb = on_sock_state;
	opts.sock_state_cb_data = r;
	opts.timeout = ARES_TIMEOUT_MS;
	opts.tries = ARES_TRIES;
	/* whatever /etc/host.conf or nsswitch say: the hosts file first, then DNS; no
	 * HOSTALIASES (the proxy's environment has no say) */
	opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	opts.lookups = (char *)"b";
	rc = ares_init_options(&r->channel, &opts,
			       ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
				       ARES_OPT_LOOKUPS | ARES_OPT_FLAGS);
	if (rc != ARES_SUCCESS) {
		ab_error_set(err, 0, "cannot read the resolver configuration '/etc/resolv.conf': %s",
			     ares_strerror(rc));
		goto fail;
	}
	r->channel_ok = true;
	opts.lookups = (char *)"f";
	rc = ares_init_options(&r->files, &opts, ARES_OPT_LOOKUPS | ARES_OPT_FLAGS);
	if (rc != ARES_SUCCESS) {
		ab_error_set(err, 0, "cannot set up the hosts file lookup: %s", ares_strerror(rc));
		goto fail;
	}
	r->files_ok = true;
	return r;
fail:
	ab_resolver_free(r);
	return NULL;
}

void ab_resolver_free(struct ab_resolver *r)
{
	if (!r)
		return;
	/* ares_destroy calls back every pending lookup with ARES_EDESTRUCTION; those free
	 * themselves and tell no one, and the event loop is not told about sockets any more */
	r->destroying = true;
	if (r->channel_ok)
		ares_destroy(r->channel);
	if (r->files_ok)
		ares_destroy(r->files);
	while (r->pending) { /* none should be left; never leak them anyway */
		struct lookup *l = r->pending;
		r->pending = l->next;
		free(l);
	}
	if (r->library_ok)
		ares_library_cleanup();
	free(r->hosts);
	free(r);
}

/* Adds a to out (IPv4 addresses before IPv6 ones, no duplicates, at most the cap). */
static void add_addr(struct ab_net_addr *out, size_t *n, const struct ab_net_addr *a)
{
	size_t alen = a->family == AF_INET ? 4 : 16, pos;

	for (size_t i = 0; i < *n; i++)
		if (out[i].family == a->family && memcmp(out[i].addr, a->addr, alen) == 0)
			return;
	if (*n >= AB_RESOLVE_MAX_ADDRS)
		return;
	pos = *n;
	if (a->family == AF_INET)
		while (pos > 0 && out[pos - 1].family != AF_INET)
			pos--;
	memmove(&out[pos + 1], &out[pos], (*n - pos) * sizeof(*out));
	out[pos] = *a;
	(*n)++;
}

static size_t from_hosts(const struct ab_resolver *r, const char *name, struct ab_net_addr *out)
{
	size_t n = 0;

	for (size_t i = 0; i < r->n_hosts; i++)
		if (strcasecmp(r->hosts[i].name, name) == 0)
			add_addr(out, &n, &r->hosts[i].addr);
	return n;
}

static size_t from_literal(const char *name, struct ab_net_addr *out)
{
	struct ab_net_addr a = { 0 };

	if (inet_pton(AF_INET, name, a.addr) == 1)
		a.family = AF_INET;
	else if (inet_pton(AF_INET6, name, a.addr) == 1)
		a.family = AF_INET6;
	else
		return 0;
	out[0] = a;
	return 1;
}

static struct cache_entry *cache_find(struct ab_resolver *r, const char *name)
{
	int64_t now = now_ms();

	for (size_t i = 0; i < CACHE_SIZE; i++) {
		struct cache_entry *e = &r->cache[i];
		if (!e->name[0] || strcmp(e->name, name) != 0)
			continue;
		if (e->expires_ms <= now) {
			e->name[0] = '\0';
			return NULL;
		}
		e->used = ++r->cache_clock;
		return e;
	}
	return NULL;
}

static void cache_put(struct ab_resolver *r, const char *name, const struct ab_net_addr *addrs,
		      size_t n, int64_t ttl_ms)
{
	struct cache_entry *victim = &r->cache[0];

	if (ttl_ms <= 0 || n == 0 || strlen(name) >= sizeof(victim->name))
		return;
	if (ttl_ms > CACHE_TTL_MAX_MS)
		ttl_ms = CACHE_TTL_MAX_MS;
	for (size_t i = 0; i < CACHE_SIZE; i++) {
		struct cache_entry *e = &r->cache[i];
		if (!e->name[0] || strcmp(e->name, name) == 0) {
			victim = e;
			break;
		}
		if (e->used < victim->used)
			victim = e;
	}
	snprintf(victim->name, sizeof(victim->name), "%s", name);
	memcpy(victim->addrs, addrs, n * sizeof(*addrs));
	victim->n = n;
	victim->expires_ms = now_ms() + ttl_ms;
	victim->used = ++r->cache_clock;
}

static void unlink_lookup(struct ab_resolver *r, struct lookup *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else if (r->pending == l)
		r->pending = l->next;
	if (l->next)
		l->next->prev = l->prev;
	l->prev = l->next = NULL;
}

static int map_status(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return 0;
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
	case ARES_ENONAME:
	case ARES_EBADNAME:
		return -ENOENT;
	case ARES_ETIMEOUT:
		return -ETIMEDOUT;
	default:
		return -EIO;
	}
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct lookup *l = arg;
	struct ab_resolver *r = l->r;
	struct ab_net_addr addrs[AB_RESOLVE_MAX_ADDRS];
	size_t n = 0;
	int64_t ttl_ms = CACHE_TTL_MAX_MS;
	int st = map_status(status);

	if (!l->dns && status != ARES_SUCCESS && status != ARES_EDESTRUCTION && status != ARES_ECANCELLED &&
	    l->cb && !r->destroying) {
		/* not in the hosts file (c-ares says so in more than one way): DNS, for the
		 * name made absolute */
		struct ares_addrinfo_hints hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
						     .ai_flags = ARES_AI_NOSORT };
		char absolute[AB_HOST_MAX + 1];
		if (res)
			ares_freeaddrinfo(res);
		snprintf(absolute, sizeof(absolute), "%s.", l->name);
		l->dns = true;
		ares_getaddrinfo(r->channel, absolute, NULL, &hints, on_addrinfo, l);
		return;
	}
	unlink_lookup(r, l);
	if (st == 0 && res) {
		for (struct ares_addrinfo_node *node = res->nodes; node; node = node->ai_next) {
			struct ab_net_addr a = { 0 };
			if (node->ai_family == AF_INET && node->ai_addr &&
			    node->ai_addrlen >= sizeof(struct sockaddr_in)) {
				a.family = AF_INET;
				memcpy(a.addr, &((struct sockaddr_in *)node->ai_addr)->sin_addr, 4);
			} else if (node->ai_family == AF_INET6 && node->ai_addr &&
				   node->ai_addrlen >= sizeof(struct sockaddr_in6)) {
				a.family = AF_INET6;
				memcpy(a.addr, &((struct sockaddr_in6 *)node->ai_addr)->sin6_addr, 16);
			} else {
				continue;
			}
			add_addr(addrs, &n, &a);
			if ((int64_t)node->ai_ttl * 1000 < ttl_ms)
				ttl_ms = (int64_t)node->ai_ttl * 1000;
		}
	}
	if (st == 0 && n == 0)
		st = -ENOENT;
	if (res)
		ares_freeaddrinfo(res);
	if (l->cb && !r->destroying) {
		ab_resolve_cb cb = l->cb;
		if (st == 0)
			cache_put(r, l->name, addrs, n, ttl_ms);
		l->cb = NULL;
		cb(l->arg, st, addrs, n);
	}
	if (l->starting)
		l->done_sync = true; /* ab_resolver_lookup frees it */
	else
		free(l);
}

int64_t ab_resolver_lookup(struct ab_resolver *r, const char *name, ab_resolve_cb cb, void *arg)
{
	struct ares_addrinfo_hints hints = { 0 };
	struct ab_net_addr addrs[AB_RESOLVE_MAX_ADDRS];
	struct cache_entry *e;
	struct lookup *l;
	size_t n;
	int64_t id;

	if (!name || !name[0] || strlen(name) >= AB_HOST_MAX) {
		cb(arg, -ENOENT, NULL, 0);
		return 0;
	}
	n = from_hosts(r, name, addrs);
	if (n == 0)
		n = from_literal(name, addrs);
	if (n > 0) {
		cb(arg, 0, addrs, n);
		return 0;
	}
	e = cache_find(r, name);
	if (e) {
		memcpy(addrs, e->addrs, e->n * sizeof(*addrs));
		cb(arg, 0, addrs, e->n);
		return 0;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->r = r;
	l->id = id = r->next_id++;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->cb = cb;
	l->arg = arg;
	l->next = r->pending;
	if (r->pending)
		r->pending->prev = l;
	r->pending = l;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	/* no RFC 6724 sorting: it connect()s probe sockets, and the proxy orders itself */
	hints.ai_flags = ARES_AI_NOSORT;
	l->starting = true;
	ares_getaddrinfo(r->files, name, NULL, &hints, on_addrinfo, l); /* then DNS: on_addrinfo */
	l->starting = false;
	if (l->done_sync) { /* answered from the hosts file, or failed at once */
		free(l);
		return 0;
	}
	return id;
}

void ab_resolver_cancel(struct ab_resolver *r, int64_t id)
{
	if (!r || id <= 0)
		return;
	for (struct lookup *l = r->pending; l; l = l->next)
		if (l->id == id) {
			l->cb = NULL; /* c-ares cannot cancel one query: its answer is dropped */
			return;
		}
}

void ab_resolver_process(struct ab_resolver *r, int fd, bool readable, bool writable)
{
	ares_process_fd(r->channel, readable ? fd : ARES_SOCKET_BAD, writable ? fd : ARES_SOCKET_BAD);
}

int ab_resolver_timeout_ms(struct ab_resolver *r)
{
	struct timeval tv, *t;
	int64_t ms;

	if (!r->pending)
		return -1;
	t = ares_timeout(r->channel, NULL, &tv);
	if (!t)
		return -1;
	ms = (int64_t)t->tv_sec * 1000 + (t->tv_usec + 999) / 1000;
	return ms > 60000 ? 60000 : (int)ms;
}

void ab_resolver_process_timeouts(struct ab_resolver *r)
{
	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}
