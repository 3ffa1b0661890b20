/* The nftables ruleset of a filtered sandbox's network namespace: every TCP connection not
 * to loopback is redirected to the proxy's capture listener, every UDP packet to port 53 to
 * its DNS listener, and anything else that would leave loopback is refused at once. The
 * rules are data (netfilter.c), sent to the kernel as one nf_tables netlink batch built
 * with libnftnl and libmnl, both loaded at run time: agentbox needs them only when a
 * sandbox's network is filtered. */
#ifndef AB_NETFILTER_H
#define AB_NETFILTER_H

#include <stddef.h>

#include "../shared/error.h"

/* The ruleset as `nft list ruleset` prints it once ab_netfilter_apply has loaded it (also
 * valid nft input), NUL-terminated in buf: the text a reviewer reads, and the test's
 * reference. Returns its length, or -ENOSPC when size is too small. */
int ab_netfilter_listing(char *buf, size_t size);

/* Loads the ruleset into the caller's network namespace (needs CAP_NET_ADMIN over it, which
 * the sandbox's init has in its own user namespace): one batch, applied whole or not at
 * all. libnftnl and libmnl are dlopen'ed from the host's library directories: call this
 * before the sandbox's root replaces them. */
int ab_netfilter_apply(struct ab_error *err);

#endif
