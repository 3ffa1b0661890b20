/* The sandbox's own network namespace: loopback only (--network none), or loopback with
 * every way out captured for the egress proxy (filtered). */
#ifndef AB_NETNS_H
#define AB_NETNS_H

#include "../shared/error.h"

/* Brings up "lo" in a fresh network namespace: the sandbox's only interface. */
int ab_netns_loopback_up(struct ab_error *err);

/* The filtered network, built by the sandbox's init in its fresh network namespace (with
 * CAP_NET_ADMIN and CAP_NET_BIND_SERVICE there), in this order:
 *   1. "lo" up;
 *   2. default routes for IPv4 (source 127.0.0.1) and IPv6 through "lo", so that a
 *      connection to any address is routed, and meets the ruleset instead of failing
 *      with "network unreachable";
 *   3. the nftables ruleset of netfilter.c (TCP to the capture listener, UDP port 53 to
 *      the DNS listener, everything else not to loopback refused);
 *   4. the proxy's listeners, made here so that they live in this namespace: TCP
 *      127.0.0.1:3128 (HTTP), 127.0.0.1:1080 (SOCKS), 127.0.0.1:15001 and [::1]:15001
 *      (capture), UDP 127.0.0.1:53 and [::1]:53 (DNS), non-blocking and close-on-exec.
 *      Each goes to agentbox over sync_fd (AB_SYNC_NET_LISTENER, code = kind | family << 8,
 *      the socket as SCM_RIGHTS) and the caller's copy is closed; then AB_SYNC_NET_READY.
 * Where the namespace has no IPv6 (no ::1), the IPv6 route and listeners are left out.
 * libnftnl and libmnl are loaded from the host's libraries: call this before the sandbox's root. */
int ab_netns_filtered_setup(int sync_fd, struct ab_error *err);

#endif
