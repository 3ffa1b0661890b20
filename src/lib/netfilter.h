/* The nftables ruleset of a filtered sandbox's network namespace: every TCP connection not
 * to loopback is redirected to the proxy's capture listener, every UDP packet to port 53 to
 * its DNS listener, and anything else that would leave loopback is refused at once. The
 * rules are data (netfilter.c), loaded through libnftables, which is loaded at run time:
 * agentbox needs it only when a sandbox's network is filtered. */
#ifndef AB_NETFILTER_H
#define AB_NETFILTER_H

#include <stddef.h>

#include "../shared/error.h"

/* The ruleset as the one nft script that ab_netfilter_apply loads, NUL-terminated in buf.
 * Returns its length, or -ENOSPC when size is too small. */
int ab_netfilter_script(char *buf, size_t size);

/* Loads the ruleset into the caller's network namespace (needs CAP_NET_ADMIN over it, which
 * the sandbox's init has in its own user namespace). libnftables is dlopen'ed from the
 * host's library directories: call this before the sandbox's root replaces them. */
int ab_netfilter_apply(struct ab_error *err);

#endif
