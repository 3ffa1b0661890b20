/* probe: network commands, the egress clients and servers, and the benchmark servers
 * (see probe.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

/* ---- network ----------------------------------------------------------------------- */

int cmd_ifaces(void)
{
	struct if_nameindex *ifs = if_nameindex();
	if (!ifs) {
		printf("ifaces=%s\n", errname(errno));
		return 0;
	}
	size_t n = 0;
	for (struct if_nameindex *i = ifs; i->if_index; i++, n++)
		printf("iface=%s\n", i->if_name);
	if_freenameindex(ifs);
	printf("count=%zu\n", n);
	return 0;
}

#ifndef IFLA_GSO_IPV4_MAX_SIZE
#define IFLA_GSO_IPV4_MAX_SIZE 63
#endif

/* link-gso IFNAME: the largest packet TCP hands to the interface in one piece, as the kernel
 * reports it (RTM_GETLINK). Prints gso_max_size= and gso_ipv4_max_size= ("absent" when the
 * kernel does not report one), or link_gso=ERRNO. */
int cmd_link_gso(const char *ifname)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
	} req = { .nh = { .nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)),
			  .nlmsg_type = RTM_GETLINK, .nlmsg_flags = NLM_F_REQUEST, .nlmsg_seq = 1 },
		  .ifi = { .ifi_family = AF_UNSPEC } };
	union {
		char buf[16384];
		struct nlmsghdr align;
	} u;
	long gso = -1, gso4 = -1;
	int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

	req.ifi.ifi_index = (int)if_nametoindex(ifname);
	if (nl < 0 || req.ifi.ifi_index == 0) {
		printf("link_gso=%s\n", errname(errno));
		if (nl >= 0)
			close(nl);
		return 0;
	}
	ssize_t n = -1;
	if (send(nl, &req, req.nh.nlmsg_len, 0) >= 0)
		n = recv(nl, u.buf, sizeof(u.buf), 0);
	int e = errno;
	close(nl);
	if (n < 0) {
		printf("link_gso=%s\n", errname(e));
		return 0;
	}
	size_t left = (size_t)n;
	for (struct nlmsghdr *nh = &u.align; NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
		if (nh->nlmsg_type != RTM_NEWLINK)
			continue;
		struct ifinfomsg *ifi = NLMSG_DATA(nh);
		size_t alen = nh->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi));
		for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
			uint32_t v;
			if (RTA_PAYLOAD(a) != sizeof(v))
				continue;
			memcpy(&v, RTA_DATA(a), sizeof(v));
			if (a->rta_type == IFLA_GSO_MAX_SIZE)
				gso = v;
			else if (a->rta_type == IFLA_GSO_IPV4_MAX_SIZE)
				gso4 = v;
		}
	}
	if (gso < 0)
		printf("gso_max_size=absent\n");
	else
		printf("gso_max_size=%ld\n", gso);
	if (gso4 < 0)
		printf("gso_ipv4_max_size=absent\n");
	else
		printf("gso_ipv4_max_size=%ld\n", gso4);
	return 0;
}

static int make_addr(const char *ip, long port, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, ip, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*len = sizeof(*in4);
		return AF_INET;
	}
	if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return AF_INET6;
	}
	return -1;
}

/* ADDR is a path, or @NAME for the abstract namespace. */
static int make_unix_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_un *un = (struct sockaddr_un *)ss;
	size_t n = strlen(addr);
	memset(ss, 0, sizeof(*ss));
	if (n == 0 || n >= sizeof(un->sun_path))
		return -1;
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, addr, n);
	if (addr[0] == '@')
		un->sun_path[0] = '\0';
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (addr[0] == '@' ? 0 : 1));
	return AF_UNIX;
}

/* Connects a stream socket, waiting at most a second; prints connect=OK or the errno. */
static int do_connect(int family, const struct sockaddr_storage *ss, socklen_t len)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		printf("connect=%s\n", errname(errno));
		return 0;
	}
	int err = 0;
	if (connect(fd, (const struct sockaddr *)ss, len) < 0) {
		err = errno;
		if (err == EINPROGRESS) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int r = poll(&p, 1, 1000);
			if (r == 0) {
				err = ETIMEDOUT;
			} else if (r < 0) {
				err = errno;
			} else {
				socklen_t sl = sizeof(err);
				if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
					err = errno;
			}
		}
	}
	close(fd);
	report("connect", err ? -1 : 0, err);
	return 0;
}

int cmd_connect(const char *ip, const char *port_arg)
{
	long port;
	struct sockaddr_storage ss;
	socklen_t len;
	int family;
	if (!parse_long(port_arg, 1, 65535, &port) || (family = make_addr(ip, port, &ss, &len)) < 0)
		return usage();
	return do_connect(family, &ss, len);
}

int cmd_connect_unix(const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (make_unix_addr(addr, &ss, &len) < 0)
		return usage();
	return do_connect(AF_UNIX, &ss, len);
}

/* Host-side helpers for network tests: listen on an address, print `listen=OK` (and
 * `port=N` for TCP, where port 0 picks one), then accept and close connections, printing
 * `accepted=1` for each, until SECONDS pass. */
static int do_listen(int family, struct sockaddr_storage *ss, socklen_t len, long secs)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 ||
	    (family != AF_UNIX && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) ||
	    bind(fd, (struct sockaddr *)ss, len) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)ss, &len) < 0) {
		printf("listen=%s\n", errname(errno));
		return 1;
	}
	printf("listen=OK\n");
	if (family == AF_INET)
		printf("port=%d\n", ntohs(((struct sockaddr_in *)ss)->sin_port));
	else if (family == AF_INET6)
		printf("port=%d\n", ntohs(((struct sockaddr_in6 *)ss)->sin6_port));
	fflush(stdout);
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		long left_ms = secs * 1000 - ((now.tv_sec - start.tv_sec) * 1000 +
					      (now.tv_nsec - start.tv_nsec) / 1000000);
		if (left_ms <= 0)
			break;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, (int)left_ms) > 0) {
			int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
			if (c >= 0) {
				printf("accepted=1\n");
				fflush(stdout);
				close(c);
			}
		}
	}
	close(fd);
	return 0;
}

int cmd_listen(const char *ip, const char *port_arg, const char *secs_arg)
{
	long port, secs;
	struct sockaddr_storage ss;
	socklen_t len;
	int family;
	if (!parse_long(port_arg, 0, 65535, &port) || !parse_long(secs_arg, 1, 3600, &secs) ||
	    (family = make_addr(ip, port, &ss, &len)) < 0)
		return usage();
	return do_listen(family, &ss, len, secs);
}

int cmd_listen_unix(const char *addr, const char *secs_arg)
{
	long secs;
	struct sockaddr_storage ss;
	socklen_t len;
	if (!parse_long(secs_arg, 1, 3600, &secs) || make_unix_addr(addr, &ss, &len) < 0)
		return usage();
	return do_listen(AF_UNIX, &ss, len, secs);
}

int cmd_hostname(void)
{
	struct utsname u;
	if (uname(&u) < 0) {
		printf("hostname=%s\n", errname(errno));
		return 0;
	}
	printf("hostname=%s\n", u.nodename);
	return 0;
}

/* ---- egress: clients and servers for the network policy tests ------------------------ */

/* These resolve names with getaddrinfo, so inside a sandbox DNS goes through its
 * resolver like any program's; none of them reads a proxy variable. Times are wall
 * clock (CLOCK_MONOTONIC). */

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static const char *gai_name(int e)
{
	switch (e) {
	case EAI_NONAME: return "EAI_NONAME";
	case EAI_AGAIN: return "EAI_AGAIN";
	case EAI_FAIL: return "EAI_FAIL";
	case EAI_FAMILY: return "EAI_FAMILY";
	case EAI_SERVICE: return "EAI_SERVICE";
	case EAI_MEMORY: return "EAI_MEMORY";
#ifdef EAI_NODATA
	case EAI_NODATA: return "EAI_NODATA";
#endif
	case EAI_SYSTEM: return errname(errno);
	default: return "EAI_OTHER";
	}
}

/* The first stream address of HOST:PORT. Prints error=EAI_... and returns -1 when the
 * name does not resolve. */
static int resolve_tcp(const char *host, long port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints, *res = NULL;
	char service[16];
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(service, sizeof(service), "%ld", port);
	int r = getaddrinfo(host, service, &hints, &res);
	if (r != 0 || !res) {
		printf("error=%s\nstage=resolve\n", r ? gai_name(r) : "EAI_NONAME");
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void print_addr(const char *key, const struct sockaddr_storage *ss)
{
	char buf[INET6_ADDRSTRLEN] = "?";
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, sizeof(buf));
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, sizeof(buf));
	printf("%s=%s\n", key, buf);
}

/* A blocking stream socket connected to ss within timeout_ms, with that timeout on every
 * later send and receive too. Returns the fd, or -errno. */
static int connect_timeout(const struct sockaddr_storage *ss, socklen_t len, int timeout_ms)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)ss, len) < 0) {
		int e = errno == EINPROGRESS || errno == EAGAIN ? ETIMEDOUT : errno;
		close(fd);
		return -e;
	}
	return fd;
}

static int send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -(errno == EAGAIN ? ETIMEDOUT : errno);
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Reads one HTTP response: the head, then the body as far as Content-Length says (or to
 * EOF without one). *status gets the code; the first body line goes to first (size
 * bytes). Returns the body length, or -errno. */
static long long read_http_response(int fd, int *status, char *first, size_t size)
{
	char buf[65536];
	size_t have = 0;
	char *end = NULL;
	*status = 0;
	if (first && size)
		first[0] = '\0';
	while (!end) {
		if (have == sizeof(buf) - 1)
			return -EMSGSIZE;
		ssize_t n = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -(errno == EAGAIN ? ETIMEDOUT : errno);
		if (n == 0)
			return -ECONNABORTED; /* closed before a whole head */
		have += (size_t)n;
		buf[have] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	if (sscanf(buf, "HTTP/%*d.%*d %d", status) != 1)
		return -EPROTO;
	long long clen = -1;
	for (char *l = strstr(buf, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n")) {
		if (strncasecmp(l + 2, "Content-Length:", 15) == 0)
			clen = strtoll(l + 17, NULL, 10);
	}
	char *body = end + 4;
	size_t in_buf = have - (size_t)(body - buf);
	if (first && size) {
		size_t k = in_buf < size - 1 ? in_buf : size - 1;
		memcpy(first, body, k);
		first[k] = '\0';
		first[strcspn(first, "\r\n")] = '\0';
	}
	long long got = (long long)in_buf;
	while (clen < 0 || got < clen) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -(errno == EAGAIN ? ETIMEDOUT : errno);
		if (n == 0)
			break;
		if (first && size && got == 0) {
			size_t k = (size_t)n < size - 1 ? (size_t)n : size - 1;
			memcpy(first, buf, k);
			first[k] = '\0';
			first[strcspn(first, "\r\n")] = '\0';
		}
		got += n;
	}
	if (clen >= 0 && got < clen)
		return -ECONNABORTED;
	return got;
}

/* http-get HOST PORT PATH: one GET with a raw socket, as a program that ignores proxy
 * variables does. Prints status= and body= (the first line), or error= and stage=;
 * ms= always. */
int cmd_http_get(const char *host, const char *port_arg, const char *path)
{
	long port;
	if (!parse_long(port_arg, 1, 65535, &port))
		return usage();
	long long t0 = now_us();
	struct sockaddr_storage ss;
	socklen_t len;
	if (resolve_tcp(host, port, &ss, &len) < 0) {
		printf("ms=%lld\n", (now_us() - t0) / 1000);
		return 0;
	}
	print_addr("addr", &ss);
	int fd = connect_timeout(&ss, len, 10000);
	if (fd < 0) {
		printf("error=%s\nstage=connect\nms=%lld\n", errname(-fd), (now_us() - t0) / 1000);
		return 0;
	}
	char req[1024];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: %s:%ld\r\nUser-Agent: agentbox-probe\r\n"
			 "Connection: close\r\n\r\n",
			 path, host, port);
	if (n < 0 || (size_t)n >= sizeof(req)) {
		close(fd);
		return usage();
	}
	int r = send_all(fd, req, (size_t)n);
	if (r < 0) {
		printf("error=%s\nstage=send\nms=%lld\n", errname(-r), (now_us() - t0) / 1000);
		close(fd);
		return 0;
	}
	int status;
	char first[512];
	long long got = read_http_response(fd, &status, first, sizeof(first));
	close(fd);
	if (got < 0) {
		printf("error=%s\nstage=recv\nms=%lld\n", errname((int)-got), (now_us() - t0) / 1000);
		return 0;
	}
	printf("status=%d\nbody=%s\nbytes=%lld\nms=%lld\n", status, first, got,
	       (now_us() - t0) / 1000);
	return 0;
}

/* The first nameserver of /etc/resolv.conf. */
static int first_nameserver(struct sockaddr_storage *ss, socklen_t *len)
{
	FILE *f = fopen("/etc/resolv.conf", "re");
	if (!f)
		return -errno;
	char line[512];
	int r = -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		char ip[256];
		if (sscanf(line, " nameserver %255s", ip) == 1) {
			char *pct = strchr(ip, '%');
			if (pct)
				*pct = '\0';
			if (make_addr(ip, 53, ss, len) > 0) {
				r = 0;
				break;
			}
		}
	}
	fclose(f);
	return r;
}

/* Skips a (maybe compressed) name in a DNS message; returns the offset after it or -1. */
static long dns_skip_name(const unsigned char *m, size_t n, size_t off)
{
	for (int hops = 0; off < n && hops < 128; hops++) {
		unsigned l = m[off];
		if (l == 0)
			return (long)off + 1;
		if ((l & 0xc0) == 0xc0)
			return off + 2 <= n ? (long)off + 2 : -1;
		off += 1 + l;
	}
	return -1;
}

static int dns_type(const char *s)
{
	static const struct {
		const char *name;
		int type;
	} types[] = { { "A", 1 }, { "NS", 2 }, { "CNAME", 5 }, { "MX", 15 }, { "TXT", 16 },
		      { "AAAA", 28 }, { "SRV", 33 }, { "HTTPS", 65 }, { "ANY", 255 } };
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcasecmp(s, types[i].name) == 0)
			return types[i].type;
	long v;
	return parse_long(s, 1, 65535, &v) ? (int)v : -1;
}

/* dns-query NAME [TYPE]: one raw UDP query to the first nameserver of /etc/resolv.conf.
 * Prints server=, then rcode= (3 is NXDOMAIN), answers=, and addr= for each A/AAAA
 * answer (ttl= for the first); or error= when no answer came within 2 s. */
int cmd_dns_query(const char *name, const char *type_arg)
{
	int qtype = type_arg ? dns_type(type_arg) : 1;
	if (qtype < 0 || strlen(name) > 253)
		return usage();
	unsigned char q[512], a[4096];
	size_t n = 12;
	memset(q, 0, 12);
	uint16_t id = (uint16_t)(getpid() ^ now_us());
	q[0] = (unsigned char)(id >> 8);
	q[1] = (unsigned char)id;
	q[2] = 0x01; /* recursion desired */
	q[5] = 1;    /* one question */
	const char *p = name;
	while (*p) {
		size_t l = strcspn(p, ".");
		if (l == 0 || l > 63)
			return usage();
		q[n++] = (unsigned char)l;
		memcpy(q + n, p, l);
		n += l;
		p += l;
		if (*p == '.')
			p++;
	}
	q[n++] = 0;
	q[n++] = (unsigned char)(qtype >> 8);
	q[n++] = (unsigned char)qtype;
	q[n++] = 0;
	q[n++] = 1; /* IN */

	struct sockaddr_storage ss;
	socklen_t len;
	int r = first_nameserver(&ss, &len);
	if (r < 0) {
		printf("error=%s\nstage=resolv.conf\n", errname(-r));
		return 0;
	}
	print_addr("server", &ss);
	int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		printf("error=%s\nstage=socket\n", errname(errno));
		return 0;
	}
	long long t0 = now_us();
	ssize_t got = -1;
	int err = ETIMEDOUT;
	for (int attempt = 0; attempt < 2 && got < 0; attempt++) {
		if (sendto(fd, q, n, 0, (struct sockaddr *)&ss, len) < 0) {
			err = errno;
			break;
		}
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		while (poll(&pfd, 1, 1000) > 0) {
			ssize_t k = recv(fd, a, sizeof(a), 0);
			if (k < 0) {
				err = errno;
				break;
			}
			if (k >= 12 && a[0] == q[0] && a[1] == q[1]) {
				got = k;
				break;
			}
		}
		if (got < 0 && err != ETIMEDOUT)
			break;
	}
	close(fd);
	if (got < 0) {
		printf("error=%s\nstage=query\nms=%lld\n", errname(err), (now_us() - t0) / 1000);
		return 0;
	}
	unsigned ancount = (unsigned)a[6] << 8 | a[7];
	printf("rcode=%d\nanswers=%u\nms=%lld\n", a[3] & 0x0f, ancount, (now_us() - t0) / 1000);
	long off = dns_skip_name(a, (size_t)got, 12);
	off = off < 0 ? -1 : off + 4;
	for (unsigned i = 0; i < ancount && off > 0; i++) {
		off = dns_skip_name(a, (size_t)got, (size_t)off);
		if (off < 0 || off + 10 > got)
			break;
		int type = a[off] << 8 | a[off + 1];
		unsigned long ttl = (unsigned long)a[off + 4] << 24 | (unsigned long)a[off + 5] << 16 |
				    (unsigned long)a[off + 6] << 8 | a[off + 7];
		size_t rdlen = (size_t)a[off + 8] << 8 | a[off + 9];
		off += 10;
		if (off + (long)rdlen > got)
			break;
		char buf[INET6_ADDRSTRLEN];
		if (i == 0)
			printf("ttl=%lu\n", ttl);
		if (type == 1 && rdlen == 4 && inet_ntop(AF_INET, a + off, buf, sizeof(buf)))
			printf("addr=%s\n", buf);
		else if (type == 28 && rdlen == 16 && inet_ntop(AF_INET6, a + off, buf, sizeof(buf)))
			printf("addr=%s\n", buf);
		else
			printf("answer_type=%d\n", type);
		off += (long)rdlen;
	}
	return 0;
}

/* Raises the soft limit of open files to the hard one; returns the soft limit. */
static long raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	return rl.rlim_cur == RLIM_INFINITY ? 1L << 20 : (long)rl.rlim_cur;
}

/* hold-conns HOST PORT N SECS: opens N TCP connections (each within 3 s) and keeps them
 * idle. Prints held= failed= (first_error=) once done, then sleeps SECS and prints
 * open=, how many the peer had not closed meanwhile. */
int cmd_hold_conns(const char *host, const char *port_arg, const char *n_arg,
		   const char *secs_arg)
{
	long port, n, secs;
	if (!parse_long(port_arg, 1, 65535, &port) || !parse_long(n_arg, 1, 1000000, &n) ||
	    !parse_long(secs_arg, 0, 86400, &secs))
		return usage();
	long limit = raise_nofile();
	struct sockaddr_storage ss;
	socklen_t len;
	if (resolve_tcp(host, port, &ss, &len) < 0)
		return 0;
	struct pollfd *fds = calloc((size_t)n, sizeof(*fds));
	if (!fds)
		abort();
	long held = 0, failed = 0;
	int first_err = 0;
	long long deadline = now_us() + 120LL * 1000000;
	for (long i = 0; i < n; i++) {
		if (held + 16 >= limit) {
			failed += n - i;
			if (!first_err)
				first_err = EMFILE;
			break;
		}
		int fd = now_us() < deadline ? connect_timeout(&ss, len, 3000) : -ETIMEDOUT;
		if (fd < 0) {
			failed++;
			if (!first_err)
				first_err = -fd;
			continue;
		}
		fds[held].fd = fd;
		fds[held].events = POLLIN;
		held++;
	}
	printf("held=%ld\nfailed=%ld\n", held, failed);
	if (first_err)
		printf("first_error=%s\n", errname(first_err));
	fflush(stdout);
	struct timespec ts = { .tv_sec = secs, .tv_nsec = 0 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	long open_n = held;
	if (held > 0 && poll(fds, (nfds_t)held, 0) > 0) {
		for (long i = 0; i < held; i++)
			if (fds[i].revents & (POLLIN | POLLHUP | POLLERR))
				open_n--;
	}
	printf("open=%ld\n", open_n);
	for (long i = 0; i < held; i++)
		close(fds[i].fd);
	free(fds);
	return 0;
}

/* udp-send IP PORT: one datagram to IP:PORT from a connected UDP socket. Prints send=,
 * then async= for an error reported back within 300 ms (an ICMP reply), or none. */
int cmd_udp_send(const char *ip, const char *port_arg)
{
	long port;
	struct sockaddr_storage ss;
	socklen_t len;
	int family;
	if (!parse_long(port_arg, 1, 65535, &port) || (family = make_addr(ip, port, &ss, &len)) < 0)
		return usage();
	long long t0 = now_us();
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		printf("send=%s\nstage=socket\n", errname(errno));
		return 0;
	}
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		printf("send=%s\nstage=connect\nms=%lld\n", errname(errno), (now_us() - t0) / 1000);
		close(fd);
		return 0;
	}
	ssize_t r = send(fd, "agentbox-probe", 14, 0);
	report("send", r, errno);
	if (r >= 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		char c;
		if (poll(&pfd, 1, 300) > 0 && recv(fd, &c, 1, MSG_DONTWAIT) < 0)
			printf("async=%s\n", errname(errno));
		else
			printf("async=none\n");
	}
	printf("ms=%lld\n", (now_us() - t0) / 1000);
	close(fd);
	return 0;
}

static uint16_t inet_cksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t sum = 0;
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

/* ping-raw IP: an ICMP echo request to an IPv4 address, through a raw socket and through
 * an unprivileged ping socket. For each prints KIND_socket=, and if it opened, KIND_send=
 * and KIND_reply= (OK, none within 500 ms, or the errno). */
int cmd_ping_raw(const char *ip)
{
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (inet_pton(AF_INET, ip, &sin.sin_addr) != 1)
		return usage();
	static const struct {
		const char *kind;
		int type;
	} kinds[] = { { "raw", SOCK_RAW }, { "dgram", SOCK_DGRAM } };
	for (size_t k = 0; k < 2; k++) {
		char key[32];
		snprintf(key, sizeof(key), "%s_socket", kinds[k].kind);
		int fd = socket(AF_INET, kinds[k].type | SOCK_CLOEXEC, IPPROTO_ICMP);
		report(key, fd, errno);
		if (fd < 0)
			continue;
		uint8_t pkt[64];
		memset(pkt, 0xa5, sizeof(pkt));
		pkt[0] = 8; /* echo request */
		pkt[1] = 0;
		pkt[2] = pkt[3] = 0;
		pkt[4] = 0x12;
		pkt[5] = 0x34;
		pkt[6] = 0;
		pkt[7] = 1;
		uint16_t ck = inet_cksum(pkt, sizeof(pkt));
		memcpy(pkt + 2, &ck, 2);
		snprintf(key, sizeof(key), "%s_send", kinds[k].kind);
		ssize_t r = sendto(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&sin, sizeof(sin));
		report(key, r, errno);
		if (r >= 0) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			uint8_t buf[1500];
			int pr = poll(&pfd, 1, 500);
			ssize_t got = pr > 0 ? recv(fd, buf, sizeof(buf), MSG_DONTWAIT) : 0;
			if (pr > 0 && got < 0)
				printf("%s_reply=%s\n", kinds[k].kind, errname(errno));
			else
				printf("%s_reply=%s\n", kinds[k].kind, pr > 0 ? "OK" : "none");
		}
		close(fd);
	}
	return 0;
}

/* send-raw HOST PORT [SECS]: connects, sends what stdin holds (up to 1 MiB) as it is,
 * then waits up to SECS (default 2) for the peer. Prints connect=, sent=, received=,
 * reply= (the first line, non-printable bytes as '.'), reply_hex= (the first 32 bytes),
 * closed=1 when the peer closed (or error= when it reset), and ms=. For hostile input
 * to a proxy. */
int cmd_send_raw(const char *host, const char *port_arg, const char *secs_arg)
{
	long port, secs = 2;
	if (!parse_long(port_arg, 1, 65535, &port) ||
	    (secs_arg && !parse_long(secs_arg, 0, 3600, &secs)))
		return usage();
	static char in[1 << 20];
	size_t n = 0;
	for (;;) {
		ssize_t r = read(0, in + n, sizeof(in) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == sizeof(in))
			break;
	}
	struct sockaddr_storage ss;
	socklen_t len;
	if (resolve_tcp(host, port, &ss, &len) < 0)
		return 0;
	int fd = connect_timeout(&ss, len, 5000);
	report("connect", fd, -fd);
	if (fd < 0)
		return 0;
	int r = n ? send_all(fd, in, n) : 0;
	printf("sent=%zu\n", r < 0 ? (size_t)0 : n);
	if (r < 0)
		printf("send_error=%s\n", errname(-r));
	char buf[65536], first[201] = "", hex[65] = "";
	size_t total = 0;
	int closed = 0, err = 0;
	long long t0 = now_us(), deadline = t0 + secs * 1000000LL;
	while (!closed && !err) {
		long long left = (deadline - now_us()) / 1000;
		if (left <= 0)
			break;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, (int)left) <= 0)
			break;
		ssize_t k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k < 0) {
			err = errno;
			break;
		}
		if (k == 0) {
			closed = 1;
			break;
		}
		if (total == 0) {
			size_t m = 0;
			while (m < (size_t)k && m < sizeof(first) - 1 && buf[m] != '\r' && buf[m] != '\n') {
				first[m] = buf[m] >= 0x20 && buf[m] < 0x7f ? buf[m] : '.';
				m++;
			}
			first[m] = '\0';
		}
		for (ssize_t i = 0; i < k && total + (size_t)i < 32; i++)
			snprintf(hex + 2 * (total + (size_t)i), 3, "%02x", (unsigned char)buf[i]);
		total += (size_t)k;
	}
	close(fd);
	printf("received=%zu\nreply=%s\nreply_hex=%s\nclosed=%d\n", total, first, hex, closed);
	if (err)
		printf("error=%s\n", errname(err));
	printf("ms=%lld\n", (now_us() - t0) / 1000);
	return 0;
}

/* ---- servers for the benchmarks: epoll, one thread ---- */

enum serve_mode { SERVE_BYTES, SERVE_ECHO };

struct serve_conn {
	char buf[8192];
	size_t len, off;    /* head bytes read; echo: pending bytes [off, len) */
	unsigned long long left; /* body bytes still to send */
	bool head_done;
};

static unsigned long long parse_bytes_path(const char *head, unsigned long long dflt)
{
	const char *p = strchr(head, ' ');
	if (p && strncmp(p + 1, "/bytes/", 7) == 0) {
		char *end;
		unsigned long long v = strtoull(p + 8, &end, 10);
		if (end != p + 8)
			return v;
	}
	return dflt;
}

/* Serves on 127.0.0.1:PORT for SECS: SERVE_BYTES answers every request with a body of
 * `size` bytes (or /bytes/N: N) and closes; SERVE_ECHO sends back what arrives. */
static int serve_loop(enum serve_mode mode, long port, unsigned long long size, long secs)
{
	static char zeros[1 << 20];
	memset(zeros, 'x', sizeof(zeros));
	long maxfd = raise_nofile();
	struct serve_conn **conns = calloc((size_t)maxfd, sizeof(*conns));
	struct sockaddr_storage ss;
	socklen_t len;
	make_addr("127.0.0.1", port, &ss, &len);
	int one = 1;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || lfd < 0 || ep < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&ss, len) < 0 || listen(lfd, 4096) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&ss, &len) < 0) {
		printf("listen=%s\n", errname(errno));
		return 1;
	}
	printf("listen=OK\nport=%d\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
	fflush(stdout);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd };
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	long long deadline = now_us() + secs * 1000000LL;
	struct epoll_event evs[256];
	for (;;) {
		long long left = (deadline - now_us()) / 1000;
		if (left <= 0)
			break;
		int k = epoll_wait(ep, evs, 256, left > 1000 ? 1000 : (int)left);
		for (int i = 0; i < k; i++) {
			int fd = evs[i].data.fd;
			if (fd == lfd) {
				int c;
				while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					if (c >= maxfd || !(conns[c] = calloc(1, sizeof(**conns)))) {
						close(c);
						continue;
					}
					setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					struct epoll_event cev = { .events = EPOLLIN, .data.fd = c };
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
				}
				continue;
			}
			struct serve_conn *c = conns[fd];
			bool done = false;
			if (!c->head_done || mode == SERVE_ECHO) {
				if (mode == SERVE_ECHO && c->off < c->len) {
					/* a reply still pending: finish it before reading more */
				} else {
					size_t room = sizeof(c->buf) - 1 - (mode == SERVE_ECHO ? 0 : c->len);
					char *at = c->buf + (mode == SERVE_ECHO ? 0 : c->len);
					ssize_t n = recv(fd, at, room, 0);
					if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
						done = true;
					} else if (n > 0 && mode == SERVE_ECHO) {
						c->off = 0;
						c->len = (size_t)n;
					} else if (n > 0) {
						c->len += (size_t)n;
						c->buf[c->len] = '\0';
						if (strstr(c->buf, "\r\n\r\n")) {
							c->head_done = true;
							c->left = parse_bytes_path(c->buf, size);
							int h = snprintf(c->buf, sizeof(c->buf),
									 "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n"
									 "Content-Type: application/octet-stream\r\n"
									 "Connection: close\r\n\r\n",
									 c->left);
							c->off = 0;
							c->len = (size_t)h;
						} else if (c->len >= sizeof(c->buf) - 1) {
							done = true;
						}
					}
				}
			}
			/* write what is due: the head, then the body; or the echo */
			while (!done && c->off < c->len) {
				ssize_t w = send(fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
				if (w < 0) {
					done = errno != EAGAIN && errno != EINTR;
					break;
				}
				c->off += (size_t)w;
			}
			while (!done && mode == SERVE_BYTES && c->head_done && c->off >= c->len &&
			       c->left > 0) {
				size_t chunk = c->left < sizeof(zeros) ? (size_t)c->left : sizeof(zeros);
				ssize_t w = send(fd, zeros, chunk, MSG_NOSIGNAL);
				if (w < 0) {
					done = errno != EAGAIN && errno != EINTR;
					break;
				}
				c->left -= (unsigned long long)w;
			}
			if (!done && mode == SERVE_BYTES && c->head_done && c->off >= c->len &&
			    c->left == 0)
				done = true;
			if (done) {
				epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
				close(fd);
				free(c);
				conns[fd] = NULL;
				continue;
			}
			bool want_out = c->off < c->len || (mode == SERVE_BYTES && c->head_done);
			struct epoll_event cev = { .events = want_out ? EPOLLOUT : EPOLLIN, .data.fd = fd };
			epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
		}
	}
	return 0;
}

/* serve-bytes PORT N [SECS]: an HTTP server on 127.0.0.1 (PORT 0: any) answering every
 * GET with N bytes (GET /bytes/K: K bytes), for SECS (default 600). Prints listen= port=. */
int cmd_serve_bytes(const char *port_arg, const char *n_arg, const char *secs_arg)
{
	long port, secs = 600;
	char *end;
	errno = 0;
	unsigned long long n = strtoull(n_arg, &end, 10);
	if (!parse_long(port_arg, 0, 65535, &port) || errno || end == n_arg || *end ||
	    (secs_arg && !parse_long(secs_arg, 1, 86400, &secs)))
		return usage();
	return serve_loop(SERVE_BYTES, port, n, secs);
}

/* serve-echo PORT [SECS]: a TCP echo server on 127.0.0.1, for SECS (default 600). */
int cmd_serve_echo(const char *port_arg, const char *secs_arg)
{
	long port, secs = 600;
	if (!parse_long(port_arg, 0, 65535, &port) ||
	    (secs_arg && !parse_long(secs_arg, 1, 86400, &secs)))
		return usage();
	return serve_loop(SERVE_ECHO, port, 0, secs);
}

/* "IP:PORT" of --proxy-style arguments. */
static int parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char ip[128];
	const char *colon = strrchr(s, ':');
	long port;
	if (!colon || (size_t)(colon - s) >= sizeof(ip) || !parse_long(colon + 1, 1, 65535, &port))
		return -1;
	memcpy(ip, s, (size_t)(colon - s));
	ip[colon - s] = '\0';
	if (ip[0] == '[' && ip[strlen(ip) - 1] == ']') {
		memmove(ip, ip + 1, strlen(ip));
		ip[strlen(ip) - 1] = '\0';
	}
	return make_addr(ip, port, ss, len);
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

static long long pct(const long long *sorted, long n, double p)
{
	long i = (long)(p * (double)(n - 1) + 0.5);
	return sorted[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* http-bench HOST PORT PATH N [PROXY_IP:PORT]: N fresh connections one after another,
 * each connect + GET + whole response + close, timed (after 10 untimed). HOST is
 * resolved once, before timing. With a proxy, the requests go to it as absolute URIs.
 * Prints runs= errors= median_us= p10_us= p90_us= min_us= (first_error=). */
int cmd_http_bench(const char *host, const char *port_arg, const char *path,
		   const char *n_arg, const char *proxy)
{
	long port, n;
	if (!parse_long(port_arg, 1, 65535, &port) || !parse_long(n_arg, 1, 1000000, &n))
		return usage();
	struct sockaddr_storage ss;
	socklen_t len;
	if (proxy) {
		if (parse_hostport(proxy, &ss, &len) < 0)
			return usage();
	} else if (resolve_tcp(host, port, &ss, &len) < 0) {
		return 0;
	}
	char req[1024];
	int rl;
	if (proxy)
		rl = snprintf(req, sizeof(req),
			      "GET http://%s:%ld%s HTTP/1.1\r\nHost: %s:%ld\r\nConnection: close\r\n\r\n",
			      host, port, path, host, port);
	else
		rl = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s:%ld\r\nConnection: close\r\n\r\n",
			      path, host, port);
	if (rl < 0 || (size_t)rl >= sizeof(req))
		return usage();
	long long *t = calloc((size_t)n, sizeof(*t));
	if (!t)
		abort();
	long ok = 0, errors = 0;
	int first_err = 0, first_status = 0;
	for (long i = 0; i < n + 10; i++) {
		long long t0 = now_us();
		int fd = connect_timeout(&ss, len, 5000);
		int r = fd;
		int status = 0;
		if (fd >= 0) {
			r = send_all(fd, req, (size_t)rl);
			if (r == 0) {
				long long got = read_http_response(fd, &status, NULL, 0);
				r = got < 0 ? (int)got : 0;
			}
			close(fd);
		}
		long long dt = now_us() - t0;
		if (r == 0 && status != 200) {
			if (!first_status)
				first_status = status;
			r = -EPROTO;
		}
		if (i < 10)
			continue;
		if (r < 0) {
			errors++;
			if (!first_err)
				first_err = -r;
			continue;
		}
		t[ok++] = dt;
	}
	printf("runs=%ld\nerrors=%ld\n", ok, errors);
	if (first_err)
		printf("first_error=%s\n", errname(first_err));
	if (first_status)
		printf("first_status=%d\n", first_status);
	if (ok > 0) {
		qsort(t, (size_t)ok, sizeof(*t), cmp_ll);
		printf("median_us=%lld\np10_us=%lld\np90_us=%lld\nmin_us=%lld\n", pct(t, ok, 0.5),
		       pct(t, ok, 0.1), pct(t, ok, 0.9), t[0]);
	}
	free(t);
	return 0;
}

/* echo-conns HOST PORT N [PROXY_IP:PORT]: opens N connections to an echo server (with a
 * proxy: each through an HTTP CONNECT), keeps them all open, then sends a distinct line
 * on every one and checks that each comes back on its own connection. Prints connected=
 * echoed= errors= (first_error=) setup_ms= echo_ms=. */
int cmd_echo_conns(const char *host, const char *port_arg, const char *n_arg,
		   const char *proxy)
{
	long port, n;
	if (!parse_long(port_arg, 1, 65535, &port) || !parse_long(n_arg, 1, 1000000, &n))
		return usage();
	long limit = raise_nofile();
	if (n + 16 > limit) {
		printf("error=EMFILE\nlimit=%ld\n", limit);
		return 0;
	}
	struct sockaddr_storage ss;
	socklen_t len;
	if (proxy) {
		if (parse_hostport(proxy, &ss, &len) < 0)
			return usage();
	} else if (resolve_tcp(host, port, &ss, &len) < 0) {
		return 0;
	}
	int *fds = calloc((size_t)n, sizeof(*fds));
	if (!fds)
		abort();
	long connected = 0, errors = 0, echoed = 0;
	int first_err = 0;
#define ECHO_ERR(e)                      \
	do {                             \
		errors++;                \
		if (!first_err)          \
			first_err = (e); \
	} while (0)
	long long t0 = now_us();
	for (long i = 0; i < n; i++) {
		fds[i] = -1;
		int fd = connect_timeout(&ss, len, 10000);
		if (fd < 0) {
			ECHO_ERR(-fd);
			continue;
		}
		if (proxy) {
			char req[600], resp[1024];
			int rl = snprintf(req, sizeof(req), "CONNECT %s:%ld HTTP/1.1\r\nHost: %s:%ld\r\n\r\n",
					  host, port, host, port);
			int r = send_all(fd, req, (size_t)rl);
			size_t have = 0;
			resp[0] = '\0';
			while (r == 0 && !strstr(resp, "\r\n\r\n")) {
				/* byte by byte: nothing past the head may be eaten */
				ssize_t k = recv(fd, resp + have, 1, 0);
				if (k <= 0 || have + 2 >= sizeof(resp))
					r = k < 0 ? -errno : -EPROTO;
				else
					resp[++have] = '\0';
			}
			if (r == 0 && strncmp(resp + 9, "200", 3) != 0)
				r = -EACCES;
			if (r < 0) {
				ECHO_ERR(-r);
				close(fd);
				continue;
			}
		}
		fds[i] = fd;
		connected++;
	}
	long long t1 = now_us();
	for (long i = 0; i < n; i++) {
		if (fds[i] < 0)
			continue;
		char line[64];
		int l = snprintf(line, sizeof(line), "agentbox-echo-%ld\n", i);
		int r = send_all(fds[i], line, (size_t)l);
		if (r < 0) {
			ECHO_ERR(-r);
			close(fds[i]);
			fds[i] = -1;
		}
	}
	for (long i = 0; i < n; i++) {
		if (fds[i] < 0)
			continue;
		char want[64], got[64];
		int l = snprintf(want, sizeof(want), "agentbox-echo-%ld\n", i);
		size_t have = 0;
		while (have < (size_t)l) {
			ssize_t k = recv(fds[i], got + have, (size_t)l - have, 0);
			if (k <= 0) {
				ECHO_ERR(k < 0 ? (errno == EAGAIN ? ETIMEDOUT : errno) : ECONNABORTED);
				break;
			}
			have += (size_t)k;
		}
		if (have == (size_t)l) {
			if (memcmp(got, want, (size_t)l) == 0)
				echoed++;
			else
				ECHO_ERR(EBADMSG);
		}
		close(fds[i]);
	}
#undef ECHO_ERR
	long long t2 = now_us();
	printf("connected=%ld\nechoed=%ld\nerrors=%ld\n", connected, echoed, errors);
	if (first_err)
		printf("first_error=%s\n", errname(first_err));
	printf("setup_ms=%lld\necho_ms=%lld\n", (t1 - t0) / 1000, (t2 - t1) / 1000);
	free(fds);
	return 0;
}
