#include "netns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../proxy/proxy.h"
#include "../shared/cleanup.h"
#include "netfilter.h"
#include "sync.h"

int ab_netns_loopback_up(struct ab_error *err)
{
	_cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr;

	if (fd < 0)
		return ab_error_set(err, errno, "cannot open a socket to configure 'lo'");
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return ab_error_set(err, errno, "cannot read the flags of 'lo'");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		return ab_error_set(err, errno, "cannot bring up 'lo'");
	return 0;
}

/* ---- default routes through lo (rtnetlink) ------------------------------------------ */

struct route_req {
	struct nlmsghdr nh;
	struct rtmsg rt;
	char attrs[2 * RTA_SPACE(sizeof(struct in6_addr))];
};

/* Appends an attribute to the message nh, whose buffer the caller sized for it. */
static void add_attr(struct nlmsghdr *nh, unsigned short type, const void *data, size_t len)
{
	struct rtattr *rta = (struct rtattr *)((char *)nh + NLMSG_ALIGN(nh->nlmsg_len));

	rta->rta_type = type;
	rta->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(rta), data, len);
	nh->nlmsg_len = NLMSG_ALIGN(nh->nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

/* Waits for the kernel's answer to message seq: 0, or its -errno. */
static int read_ack(int nl, uint32_t seq)
{
	union {
		char buf[8192];
		struct nlmsghdr align;
	} u;

	for (;;) {
		struct sockaddr_nl from;
		socklen_t from_len = sizeof(from);
		ssize_t n = recvfrom(nl, u.buf, sizeof(u.buf), 0, (struct sockaddr *)&from, &from_len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (from_len != sizeof(from) || from.nl_pid != 0)
			continue; /* only the kernel speaks for the kernel */
		size_t left = (size_t)n;
		for (struct nlmsghdr *nh = &u.align; NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
			const struct nlmsgerr *e = NLMSG_DATA(nh);

			if (nh->nlmsg_seq != seq || nh->nlmsg_type != NLMSG_ERROR)
				continue;
			if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
				return -EBADMSG;
			return e->error > 0 ? -e->error : e->error;
		}
	}
}

/* Sends one request and waits for the kernel's answer to it: 0, or its -errno. */
static int request(int nl, const struct nlmsghdr *nh)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };

	for (;;) {
		if (sendto(nl, nh, nh->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) >= 0)
			break;
		if (errno != EINTR)
			return -errno;
	}
	return read_ack(nl, nh->nlmsg_seq);
}

/* "ip route add default dev lo" (IPv4 with "src 127.0.0.1"), in the main table. Without the
 * source, IPv4 would pick none (127.0.0.1 is host-scoped, narrower than the route's link
 * scope) and a redirected connection would never complete. IPv6 picks ::1 by itself. */
static int add_default_route(int nl, int family, int lo_index, uint32_t seq)
{
	struct route_req req;
	uint32_t oif = (uint32_t)lo_index;

	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
	req.nh.nlmsg_type = RTM_NEWROUTE;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
	req.nh.nlmsg_seq = seq;
	req.rt.rtm_family = (unsigned char)family;
	req.rt.rtm_dst_len = 0; /* default: every destination */
	req.rt.rtm_table = RT_TABLE_MAIN;
	req.rt.rtm_protocol = RTPROT_BOOT;
	req.rt.rtm_scope = family == AF_INET ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
	req.rt.rtm_type = RTN_UNICAST;
	add_attr(&req.nh, RTA_OIF, &oif, sizeof(oif));
	if (family == AF_INET) {
		struct in_addr src = { .s_addr = htonl(INADDR_LOOPBACK) };
		add_attr(&req.nh, RTA_PREFSRC, &src, sizeof(src));
	}
	return request(nl, &req.nh);
}

/* ---- larger segments on lo (rtnetlink) ---------------------------------------------- */

#ifndef IFLA_GSO_IPV4_MAX_SIZE
#define IFLA_GSO_IPV4_MAX_SIZE 63 /* Linux 6.3; older headers lack it */
#endif

/* The size of the packets TCP hands to lo in one piece. Everything the proxy relays to the
 * sandbox crosses this lo; a packet costs the same netfilter hooks and TCP processing
 * whatever its size, so 256 KiB packets instead of lo's 64 KiB cut the relay's CPU time
 * per byte (about 8% of a download's CPU in all, measured on a 2-CPU VM). lo accepts up
 * to 512 KiB (its tso_max_size); 256 KiB fits the 17 fragments of an skb built from
 * 32 KiB pages. */
#define LO_SEGMENT_BYTES (256u * 1024)

struct link_req {
	struct nlmsghdr nh;
	struct ifinfomsg ifi;
	char attrs[2 * RTA_SPACE(sizeof(uint32_t))];
};

/* "ip link set lo gso_max_size N gso_ipv4_max_size N". Only a speed-up: a kernel before
 * 5.19 refuses sizes above 64 KiB, one before 6.3 ignores the IPv4 attribute, and either
 * way lo works as before. Returns 0 or -errno for the caller to ignore. */
static int raise_loopback_segments(int nl, int lo_index, uint32_t seq)
{
	struct link_req req;
	uint32_t size = LO_SEGMENT_BYTES;
	unsigned short types[] = { IFLA_GSO_MAX_SIZE, IFLA_GSO_IPV4_MAX_SIZE };

	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
	req.nh.nlmsg_type = RTM_NEWLINK;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	req.nh.nlmsg_seq = seq;
	req.ifi.ifi_family = AF_UNSPEC;
	req.ifi.ifi_index = lo_index;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		add_attr(&req.nh, types[i], &size, sizeof(size));
	return request(nl, &req.nh);
}

/* Does the namespace have IPv6 on loopback? Not when the kernel has no IPv6, nor when it
 * is turned off (net.ipv6.conf.*.disable_ipv6): then nothing can use it, and the IPv6
 * route and listeners are left out. */
static bool ipv6_loopback_present(void)
{
	_cleanup_close_ int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };

	return fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
}

/* The default routes, and larger packets on lo while the netlink socket is open. */
static int add_default_routes(bool ipv6, struct ab_error *err)
{
	_cleanup_close_ int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	unsigned lo_index = if_nametoindex("lo");
	int r;

	if (lo_index == 0)
		return ab_error_set(err, errno, "cannot find the index of 'lo'");
	if (nl < 0)
		return ab_error_set(err, errno, "cannot open a netlink socket to add routes");
	if ((r = add_default_route(nl, AF_INET, (int)lo_index, 1)) < 0)
		return ab_error_set(err, -r, "cannot add the IPv4 default route through 'lo'");
	if (ipv6 && (r = add_default_route(nl, AF_INET6, (int)lo_index, 2)) < 0)
		return ab_error_set(err, -r, "cannot add the IPv6 default route through 'lo'");
	(void)raise_loopback_segments(nl, (int)lo_index, 3);
	return 0;
}

/* ---- the proxy's listeners ---------------------------------------------------------- */

static const struct listener_spec {
	enum ab_proxy_listener_kind kind;
	int family;
	int type;
	uint16_t port;
	const char *what;
} listeners[] = {
	{ AB_PROXY_LISTEN_HTTP, AF_INET, SOCK_STREAM, AB_PROXY_HTTP_PORT, "HTTP proxy" },
	{ AB_PROXY_LISTEN_SOCKS, AF_INET, SOCK_STREAM, AB_PROXY_SOCKS_PORT, "SOCKS proxy" },
	{ AB_PROXY_LISTEN_CAPTURE, AF_INET, SOCK_STREAM, AB_PROXY_CAPTURE_PORT, "capture" },
	{ AB_PROXY_LISTEN_CAPTURE, AF_INET6, SOCK_STREAM, AB_PROXY_CAPTURE_PORT, "capture" },
	{ AB_PROXY_LISTEN_DNS, AF_INET, SOCK_DGRAM, AB_PROXY_DNS_PORT, "DNS" },
	{ AB_PROXY_LISTEN_DNS, AF_INET6, SOCK_DGRAM, AB_PROXY_DNS_PORT, "DNS" },
};

#define AB_LISTEN_BACKLOG 4096

/* A socket on the loopback address of l's family: the fd, or -errno. */
static int open_listener(const struct listener_spec *l)
{
	_cleanup_close_ int fd = socket(l->family, l->type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} a;
	socklen_t len;
	int one = 1;

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return -errno;
	memset(&a, 0, sizeof(a));
	if (l->family == AF_INET6) {
		/* [::1] only: the IPv4 listener is a socket of its own. */
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
			return -errno;
		a.in6.sin6_family = AF_INET6;
		a.in6.sin6_addr = in6addr_loopback;
		a.in6.sin6_port = htons(l->port);
		len = sizeof(a.in6);
	} else {
		a.in.sin_family = AF_INET;
		a.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a.in.sin_port = htons(l->port);
		len = sizeof(a.in);
	}
	if (bind(fd, &a.sa, len) < 0)
		return -errno;
	if (l->type == SOCK_STREAM && listen(fd, AB_LISTEN_BACKLOG) < 0)
		return -errno;
	return TAKE_FD(fd);
}

static int send_listeners(int sync_fd, bool ipv6, struct ab_error *err)
{
	for (size_t i = 0; i < AB_ELEMENTSOF(listeners); i++) {
		const struct listener_spec *l = &listeners[i];
		_cleanup_close_ int fd = -1;
		int r;

		if (l->family == AF_INET6 && !ipv6)
			continue;
		fd = open_listener(l);
		if (fd < 0)
			return ab_error_set(err, -fd, "cannot open the proxy's %s listener on '%s%u'", l->what,
					    l->family == AF_INET6 ? "[::1]:" : "127.0.0.1:", (unsigned)l->port);
		/* Sent, then closed here: agentbox (and the proxy after it) holds the only copy. */
		r = ab_sync_send(sync_fd, AB_SYNC_NET_LISTENER, (int)l->kind | l->family << 8, NULL, fd);
		if (r < 0)
			return ab_error_set(err, -r, "cannot hand the proxy's listeners to agentbox");
	}
	return 0;
}

int ab_netns_filtered_setup(int sync_fd, struct ab_error *err)
{
	bool ipv6;
	int r;

	if ((r = ab_netns_loopback_up(err)) < 0)
		return r;
	ipv6 = ipv6_loopback_present();
	if ((r = add_default_routes(ipv6, err)) < 0)
		return r;
	if ((r = ab_netfilter_apply(err)) < 0)
		return r;
	if ((r = send_listeners(sync_fd, ipv6, err)) < 0)
		return r;
	if ((r = ab_sync_send(sync_fd, AB_SYNC_NET_READY, 0, NULL, -1)) < 0)
		return ab_error_set(err, -r, "cannot tell agentbox that the network is ready");
	return 0;
}
