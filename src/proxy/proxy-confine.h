/* The proxy's own hardening: it needs sockets and nothing else. */
#ifndef AB_PROXY_CONFINE_H
#define AB_PROXY_CONFINE_H

#include "../shared/error.h"
#include "proxy.h"

/* In order: RLIMIT_NOFILE soft raised to the hard limit (it holds two sockets and two
 * pipes per connection); as root, become nobody (65534) with no supplementary groups;
 * every capability dropped; no_new_privs; Landlock (when cfg->landlock_abi > 0): no file
 * access but reading the resolver's files in /etc, and no TCP bind (ABI >= 4), abstract
 * unix sockets and signals scoped (ABI >= 6); then the seccomp allow list
 * ab_seccomp_proxy_table. Any failure is fatal: the proxy never serves weaker. */
int ab_proxy_confine(const struct ab_proxy_config *cfg, struct ab_error *err);

#endif
