/* The egress proxy: one process per filtered sandbox, in the host's network namespace,
 * serving listeners that live in the sandbox's loopback-only namespace (the sandbox made
 * them and handed them over, so it never gets a route out). It speaks HTTP forward proxy
 * and SOCKS5, takes captured connections (nftables redirect, original destination from
 * conntrack), answers the sandbox's DNS, decides each connection by policy, logs every
 * decision, and takes live rule changes on its control socket. */
#ifndef AB_PROXY_PROXY_H
#define AB_PROXY_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../shared/error.h"
#include "rules.h"

/* The listeners inside the sandbox's network namespace, on its loopback. Fixed ports: the
 * namespace is the sandbox's alone, so nothing else can hold them. */
#define AB_PROXY_HTTP_PORT 3128
#define AB_PROXY_SOCKS_PORT 1080
#define AB_PROXY_CAPTURE_PORT 15001 /* where nftables redirects every other TCP connection */
#define AB_PROXY_DNS_PORT 53        /* UDP; every UDP packet to port 53 is redirected here */
#define AB_PROXY_MAX_LISTENERS 8

enum ab_proxy_listener_kind {
	AB_PROXY_LISTEN_HTTP = 1,
	AB_PROXY_LISTEN_SOCKS,
	AB_PROXY_LISTEN_CAPTURE,
	AB_PROXY_LISTEN_DNS, /* a UDP socket */
};

struct ab_proxy_listener {
	int fd;
	enum ab_proxy_listener_kind kind;
	int family; /* AF_INET or AF_INET6 */
};

/* The listeners' one message on listeners_fd (a SOCK_SEQPACKET socket): n of these as
 * the payload and the n listeners' fds (SCM_RIGHTS) in the same order. */
struct ab_proxy_listener_wire {
	int32_t kind;   /* enum ab_proxy_listener_kind */
	int32_t family; /* AF_INET or AF_INET6 */
};

/* Caps on what the sandbox can make the proxy hold. */
#define AB_PROXY_MAX_CONNECTIONS 4096   /* past this, the oldest connection still waiting for
					 * its request (or its first bytes) is closed */
#define AB_PROXY_HEAD_TIMEOUT_MS 10000  /* a request head must arrive within this */
#define AB_PROXY_SNIFF_TIMEOUT_MS 1000  /* captured traffic to an address: SNI / Host wait */
#define AB_PROXY_CONNECT_TIMEOUT_MS 10000

struct ab_proxy_config {
	char name[64]; /* the sandbox's name, in every log line */
	struct ab_net_policy policy; /* moved into the proxy; it frees it */
	struct ab_net_host_entry *hosts; /* --add-host; borrowed */
	size_t n_hosts;
	struct ab_proxy_listener listeners[AB_PROXY_MAX_LISTENERS];
	size_t n_listeners;
	int listeners_fd; /* >= 0: the listeners are not above yet (n_listeners is 0); they
			   * come later as one message on this socket, after the proxy set
			   * itself up and confined itself. EOF first: the sandbox never
			   * started, and the proxy returns 0. -1: they are above */
	int control_fd;  /* a listening AF_UNIX SOCK_SEQPACKET socket, or -1 */
	int log_fd;      /* the audit log, O_WRONLY|O_APPEND (O_RDWR with log_old_fd), or -1 */
	int log_old_fd;  /* net.log.1, O_RDWR, for rotation while it runs (audit.h), or -1 */
	uint64_t log_max; /* what net.log and net.log.1 take together; 0: AB_AUDIT_LOG_MAX */
	int lifeline_fd; /* readable end of a pipe: EOF means the sandbox is over */
	int ready_fd;    /* written "OK" once confined, with its listeners, about to serve, or
			  * the reason it could not start; then closed. -1: nobody waits */
	uid_t owner_uid; /* who may change the policy on the control socket (root may too) */
	bool drop_privileges; /* running as root: become nobody before serving */
	int landlock_abi;     /* 0: none */
};

/* Sets itself up, confines the calling process (see proxy-confine.c), takes its
 * listeners from listeners_fd if they come that way, then serves until the lifeline
 * closes. Returns 0 then (or when listeners_fd or the lifeline ended before any listener
 * came), or < 0 with err set when it could not start. Closes every fd of cfg. Never
 * call it in agentbox itself: it runs in a process of its own. */
int ab_proxy_run(struct ab_proxy_config *cfg, struct ab_error *err);

#endif
