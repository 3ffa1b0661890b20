/* Name resolution for the proxy, without blocking its event loop: --add-host entries
 * first, then DNS through c-ares (the host's /etc/resolv.conf and /etc/hosts). */
#ifndef AB_PROXY_RESOLVE_H
#define AB_PROXY_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../shared/error.h"
#include "rules.h"

#define AB_RESOLVE_MAX_ADDRS 8

struct ab_resolver;

/* status: 0 with n >= 1 addresses (IPv4 first), -ENOENT (no such name), -ETIMEDOUT,
 * -EIO (any other failure). Never called after ab_resolver_cancel(id). */
typedef void (*ab_resolve_cb)(void *arg, int status, const struct ab_net_addr *addrs, size_t n);

/* The event loop's side: the resolver asks to watch fd for reading and/or writing
 * (both false: stop watching it). */
typedef void (*ab_resolve_watch_cb)(void *ctx, int fd, bool read, bool write);

/* Reads the resolver configuration now (call before the proxy is confined). */
struct ab_resolver *ab_resolver_new(const struct ab_net_host_entry *hosts, size_t n_hosts,
				    ab_resolve_watch_cb watch, void *watch_ctx,
				    struct ab_error *err);
void ab_resolver_free(struct ab_resolver *r);

/* Starts a lookup of a normalised name. Returns an id > 0 (the callback comes later from
 * ab_resolver_process or ab_resolver_process_timeouts), 0 when the callback was already
 * called (an --add-host entry), or < 0 (-ENOMEM). */
int64_t ab_resolver_lookup(struct ab_resolver *r, const char *name, ab_resolve_cb cb, void *arg);
void ab_resolver_cancel(struct ab_resolver *r, int64_t id);

/* The event loop calls these: when a watched fd is ready, and when the timeout passed. */
void ab_resolver_process(struct ab_resolver *r, int fd, bool readable, bool writable);
int ab_resolver_timeout_ms(struct ab_resolver *r); /* -1: no lookup pending */
void ab_resolver_process_timeouts(struct ab_resolver *r);

#endif
