/* The egress proxy with c-ares and the capture for real. In a user, mount and network
 * namespace of the test's own ("the host"):
 *
 *   the host's namespace                      the sandbox's namespace (a child's)
 *     DNS server of the test 127.0.0.1:53       made by ab_netns_filtered_setup: lo,
 *     /etc/resolv.conf bind-mounted to it       routes, nftables capture, listeners
 *     echo and http upstreams                   handed over the sync socket
 *     the proxy, serving both namespaces   <--  clients: DNS, captured TCP (fake
 *     (names through c-ares for real)           address, TLS SNI, Host), 127.0.0.1:3128
 *
 * Fixture (under a fresh temporary directory):
 *   ns.log       the namespace proxy's audit log
 *   stderr-ns    what the proxy wrote on stderr
 *   resolv.conf  for the namespaces: "nameserver 127.0.0.1", "search corp.test"
 *
 * The proxy, the upstreams and the clients are those of test-proxy.c, from
 * proxy-fixture.h. AB_MUST_WORK=1 turns the skips into failures. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/netns.h"
#include "lib/sync.h"
#include "proxy/dns.h"
#include "proxy/proxy.h"
#include "shared/cleanup.h"
#include "tap.h"
#include "proxy-fixture.h"

/* ---- c-ares and the capture for real, in namespaces of our own ---- */

/* A DNS server of the test: dyn.test A 127.0.0.1, priv.test A 10.9.8.7, single.corp.test
 * A 127.0.0.1 (what "single" would become with the search domain), the rest NXDOMAIN. */
static void fake_dns_serve(int fd)
{
	for (;;) {
		uint8_t q[512], out[512];
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		struct ab_dns_query dq;
		ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
		const uint8_t lo[4] = { 127, 0, 0, 1 }, priv[4] = { 10, 9, 8, 7 };
		const uint8_t *addr = NULL;
		int rcode = AB_DNS_RCODE_NXDOMAIN, len;

		if (n <= 0 || ab_dns_parse_query(q, (size_t)n, &dq) < 0)
			continue;
		if (strcmp(dq.name, "dyn.test") == 0 || strcmp(dq.name, "priv.test") == 0 ||
		    strcmp(dq.name, "single.corp.test") == 0) {
			rcode = 0;
			if (dq.qtype == AB_DNS_TYPE_A)
				addr = dq.name[0] == 'p' ? priv : lo;
		}
		len = ab_dns_build_answer(q, (size_t)n, &dq, rcode, addr, addr ? 4 : 0, 30, out, sizeof(out));
		if (len > 0)
			sendto(fd, out, (size_t)len, 0, (struct sockaddr *)&from, fl);
	}
}

static bool write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	bool r = fd >= 0 && write(fd, s, strlen(s)) == (ssize_t)strlen(s);
	if (fd >= 0)
		close(fd);
	return r;
}

/* A TLS ClientHello with one SNI entry, as a client's first bytes. */
static size_t client_hello(const char *name, uint8_t *out)
{
	size_t nl = strlen(name), n = 0, hs, ext;

	out[n++] = 0x16, out[n++] = 3, out[n++] = 1, n += 2; /* record, length later */
	hs = n;
	out[n++] = 1, n += 3;      /* ClientHello, length later */
	out[n++] = 3, out[n++] = 3; /* TLS 1.2 */
	memset(out + n, 0x42, 32), n += 32;
	out[n++] = 0;                                    /* session id */
	out[n++] = 0, out[n++] = 2, out[n++] = 0x13, out[n++] = 0x01; /* one cipher suite */
	out[n++] = 1, out[n++] = 0;                      /* no compression */
	ext = n;
	n += 2;
	out[n++] = 0, out[n++] = 0; /* server_name */
	out[n++] = (uint8_t)((nl + 5) >> 8), out[n++] = (uint8_t)(nl + 5);
	out[n++] = (uint8_t)((nl + 3) >> 8), out[n++] = (uint8_t)(nl + 3);
	out[n++] = 0;
	out[n++] = (uint8_t)(nl >> 8), out[n++] = (uint8_t)nl;
	memcpy(out + n, name, nl), n += nl;
	out[ext] = (uint8_t)((n - ext - 2) >> 8), out[ext + 1] = (uint8_t)(n - ext - 2);
	out[hs + 1] = 0, out[hs + 2] = (uint8_t)((n - hs - 4) >> 8), out[hs + 3] = (uint8_t)(n - hs - 4);
	out[3] = (uint8_t)((n - 5) >> 8), out[4] = (uint8_t)(n - 5);
	return n;
}

static int connect_to(int family, const char *addr, uint16_t port, int timeout_ms)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		inet_pton(AF_INET, addr, &a->sin_addr);
		sl = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		inet_pton(AF_INET6, addr, &a->sin6_addr);
		sl = sizeof(*a);
	}
	if (fd < 0)
		return -1;
	set_timeouts(fd, timeout_ms);
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* How a captured connection ends when the proxy refuses it: -1 with ECONNRESET at once. */
static bool is_reset(int fd, int64_t *ms)
{
	char c;
	int64_t t0 = now_ms();
	ssize_t n = recv(fd, &c, 1, 0);
	int e = errno;

	*ms = now_ms() - t0;
	return n < 0 && e == ECONNRESET;
}

/* The sandbox's side, in a network namespace of its own made by ab_netns_filtered_setup:
 * only loopback, every TCP connection captured, DNS answered by the proxy. */
static void sandbox_checks(int out, uint16_t echo_port, uint16_t web_port)
{
	uint8_t fake[4] = { 0 }, hello[600], back[600];
	char text[32], body[2048], req[256];
	int an = -1, rc, fd, status;
	int64_t ms = -1;
	size_t n;
	struct fixture in = { .http_port = AB_PROXY_HTTP_PORT };

	rc = dns_ask(AB_PROXY_DNS_PORT, "dyn.test", AB_DNS_TYPE_A, &an, fake);
	snprintf(text, sizeof(text), "%u.%u.%u.%u", fake[0], fake[1], fake[2], fake[3]);
	dprintf(out, "%d sandbox: its DNS answers an allowed name with a fake address (%s)\n",
		rc == 0 && an == 1 && fake[0] == 198 && (fake[1] & 0xfe) == 18, text);
	/* a query to any server lands on the proxy too: nothing leaves */
	{
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(53) };
		uint8_t q[64] = { 0x77, 0x77, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 4, 'n', 'o', 'p', 'e', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1 }, a[512];
		int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		inet_pton(AF_INET, "192.0.2.53", &sa.sin_addr);
		set_timeouts(s, 3000);
		ssize_t k = sendto(s, q, 27, 0, (struct sockaddr *)&sa, sizeof(sa)) == 27 ? recv(s, a, sizeof(a), 0) : -1;
		dprintf(out, "%d sandbox: a query to another server is answered by the proxy: NXDOMAIN for a denied name\n",
			k >= 12 && a[0] == 0x77 && (a[3] & 0x0f) == AB_DNS_RCODE_NXDOMAIN);
		close(s);
	}

	fd = connect_to(AF_INET, text, echo_port, 3000);
	dprintf(out, "%d sandbox: a connection to the fake address is relayed to the name's own resolution\n",
		fd >= 0 && echo_roundtrip(fd, "captured"));
	if (fd >= 0)
		close(fd);

	n = client_hello("dyn.test", hello);
	fd = connect_to(AF_INET, "203.0.113.7", echo_port, 3000);
	dprintf(out, "%d sandbox: a connection to an address is decided by its TLS SNI, the ClientHello passed on\n",
		fd >= 0 && send_all(fd, hello, n) && read_exact(fd, back, n) && memcmp(back, hello, n) == 0);
	if (fd >= 0)
		close(fd);

	fd = connect_to(AF_INET, "203.0.113.7", web_port, 3000);
	snprintf(req, sizeof(req), "GET /plain HTTP/1.1\r\nHost: dyn.test:%u\r\n\r\n", web_port);
	dprintf(out, "%d sandbox: plain HTTP to an address is decided by its Host header\n",
		fd >= 0 && send_str(fd, req) && read_to_eof(fd, body, sizeof(body)) > 0 &&
			strncmp(body, "HTTP/1.1 200", 12) == 0 && strstr(body, "GET /plain HTTP/1.1"));
	if (fd >= 0)
		close(fd);

	n = client_hello("nope.test", hello);
	fd = connect_to(AF_INET, "203.0.113.7", echo_port, 3000);
	bool reset = fd >= 0 && send_all(fd, hello, n) && is_reset(fd, &ms);
	dprintf(out, "%d sandbox: an SNI the policy denies: the connection is reset at once (%lld ms)\n", reset && ms < 500,
		(long long)ms);
	if (fd >= 0)
		close(fd);

	fd = connect_to(AF_INET, "203.0.113.7", echo_port, 5000);
	reset = fd >= 0 && is_reset(fd, &ms);
	dprintf(out, "%d sandbox: silence to an address: reset after the sniff time (%lld ms)\n",
		reset && ms >= 700 && ms < 3000, (long long)ms);
	if (fd >= 0)
		close(fd);

	fd = connect_to(AF_INET, "198.18.200.200", echo_port, 3000);
	reset = fd >= 0 && is_reset(fd, &ms);
	dprintf(out, "%d sandbox: a fake address its DNS never handed out: reset\n", reset);
	if (fd >= 0)
		close(fd);

	fd = connect_to(AF_INET6, "2001:db8::7", echo_port, 3000);
	if (fd < 0 && (errno == ENETUNREACH || errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
		dprintf(out, "S sandbox IPv6: %s\n", strerror(errno));
	} else {
		n = client_hello("dyn.test", hello);
		dprintf(out, "%d sandbox: IPv6 captured too (the [::1] capture listener)\n",
			fd >= 0 && send_all(fd, hello, n) && read_exact(fd, back, n) && memcmp(back, hello, n) == 0);
	}
	if (fd >= 0)
		close(fd);

	char auth[64];
	snprintf(auth, sizeof(auth), "dyn.test:%u", echo_port);
	fd = http_connect(&in, auth, &status, body, sizeof(body));
	dprintf(out, "%d sandbox: the HTTP proxy on its own 127.0.0.1:3128 works (%d)\n",
		fd >= 0 && status == 200 && echo_roundtrip(fd, "inside"), status);
	if (fd >= 0)
		close(fd);
}

/* Runs in a child: reports "1 description" / "0 description" / "S why" lines on out. */
static void ns_child(int out)
{
	char map[64], resolv[128], auth[64], body[1024];
	uid_t uid = getuid();
	gid_t gid = getgid();
	struct ifreq ifr = { 0 };
	struct fixture fx = { 0 };
	static struct ab_net_host_entry hosts[1];
	struct ab_proxy_config *cfg = calloc(1, sizeof(*cfg));
	if (cfg)
		cfg->log_old_fd = -1; /* no rotation: 0 would be stdin */
	struct up_listener ups[2];
	struct ab_error err = { 0 };
	int lp[2], sp[2], go[2], s, status, fd, dns, bad;
	bool capture = true;

	if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET) < 0) {
		dprintf(out, "S user namespaces unavailable: %s\n", strerror(errno));
		_exit(0);
	}
	snprintf(map, sizeof(map), "0 %u 1", uid);
	write_file("/proc/self/setgroups", "deny");
	snprintf(resolv, sizeof(resolv), "0 %u 1", gid);
	if (!write_file("/proc/self/uid_map", map) || !write_file("/proc/self/gid_map", resolv)) {
		dprintf(out, "S cannot map ids\n");
		_exit(0);
	}
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	ioctl(s, SIOCGIFFLAGS, &ifr);
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
		dprintf(out, "S cannot bring lo up: %s\n", strerror(errno));
		_exit(0);
	}
	close(s);
	snprintf(resolv, sizeof(resolv), "%s/resolv.conf", top);
	int rf = open(resolv, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	static const char conf[] = "nameserver 127.0.0.1\nsearch corp.test\n";
	if (rf < 0 || write(rf, conf, sizeof(conf) - 1) != (ssize_t)sizeof(conf) - 1) {
		dprintf(out, "0 write %s\n", resolv);
		_exit(0);
	}
	close(rf);
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount(resolv, "/etc/resolv.conf", NULL, MS_BIND, NULL) < 0) {
		dprintf(out, "S cannot bind-mount /etc/resolv.conf: %s\n", strerror(errno));
		_exit(0);
	}
	/* the DNS server on 127.0.0.1:53 and the upstreams, in this ("the host's") namespace */
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(53), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	dns = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (dns < 0 || bind(dns, (struct sockaddr *)&a, sizeof(a)) < 0) {
		dprintf(out, "S cannot bind the DNS server: %s\n", strerror(errno));
		_exit(0);
	}
	pid_t dns_pid = fork();
	if (dns_pid == 0)
		fake_dns_serve(dns);
	close(dns);
	ups[0] = (struct up_listener){ listen_on(SOCK_STREAM, &fx.echo_port), UP_ECHO };
	ups[1] = (struct up_listener){ listen_on(SOCK_STREAM, &fx.web_port), UP_HTTP };
	pid_t up_pid = fork();
	if (up_pid == 0)
		upstream_serve(ups, 2);
	close(ups[0].fd);
	close(ups[1].fd);

	/* the sandbox: a network namespace of its own, set up as agentbox does */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0 || pipe2(go, O_CLOEXEC) < 0)
		_exit(1);
	pid_t sandbox = fork();
	if (sandbox == 0) {
		char c;
		close(sp[0]);
		close(go[1]);
		if (unshare(CLONE_NEWNET) < 0 || ab_netns_filtered_setup(sp[1], &err) < 0) {
			dprintf(out, "S the filtered network namespace: %s\n", err.msg[0] ? err.msg : strerror(errno));
			_exit(0);
		}
		close(sp[1]);
		if (read(go[0], &c, 1) == 1)
			sandbox_checks(out, fx.echo_port, fx.web_port);
		_exit(0);
	}
	close(sp[1]);
	close(go[0]);

	static const char *const allows[] = { "dyn.test", "priv.test", "nx.test", "single", "127.0.0.1" };
	snprintf(cfg->name, sizeof(cfg->name), "ns");
	size_t nh = 0;
	fill_policy(&cfg->policy, hosts, &nh, allows, AB_ELEMENTSOF(allows), NULL, 0, NULL, 0);
	cfg->listeners[0] = (struct ab_proxy_listener){ listen_on(SOCK_STREAM, &fx.http_port), AB_PROXY_LISTEN_HTTP, AF_INET };
	cfg->n_listeners = 1;
	for (;;) {
		struct ab_sync_msg msg;
		int lfd = -1;
		if (ab_sync_recv(sp[0], &msg, &lfd) < 0) {
			capture = false;
			break;
		}
		if (msg.type == AB_SYNC_NET_READY)
			break;
		if (msg.type == AB_SYNC_NET_LISTENER && lfd >= 0 && cfg->n_listeners < AB_PROXY_MAX_LISTENERS)
			cfg->listeners[cfg->n_listeners++] =
				(struct ab_proxy_listener){ lfd, (enum ab_proxy_listener_kind)(msg.code & 0xff), msg.code >> 8 };
		else if (lfd >= 0)
			close(lfd);
	}
	close(sp[0]);
	cfg->control_fd = -1;
	snprintf(log_path, sizeof(log_path), "%s/ns.log", top);
	cfg->log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	cfg->owner_uid = 0;
	char errfile[128];
	snprintf(errfile, sizeof(errfile), "%s/stderr-ns", top);
	if (pipe2(lp, O_CLOEXEC) < 0)
		_exit(1);
	pid_t proxy = start_proxy(cfg, lp, false, errfile, 0);
	close(lp[0]);
	for (size_t i = 0; i < cfg->n_listeners; i++)
		close(cfg->listeners[i].fd);
	close(cfg->log_fd);

	snprintf(auth, sizeof(auth), "dyn.test:%u", fx.echo_port);
	fd = http_connect(&fx, auth, &status, body, sizeof(body));
	dprintf(out, "%d a name answered by the DNS server through c-ares is relayed (%d %s)\n",
		fd >= 0 && status == 200 && echo_roundtrip(fd, "dns"), status, one_line(body));
	if (fd >= 0)
		close(fd);
	snprintf(auth, sizeof(auth), "priv.test:%u", fx.echo_port);
	fd = http_connect(&fx, auth, &status, body, sizeof(body));
	dprintf(out, "%d a DNS answer of a private address is refused at connect time (%d)\n",
		fd < 0 && status == 403 && strstr(body, "private address 10.9.8.7") != NULL, status);
	snprintf(auth, sizeof(auth), "nx.test:%u", fx.echo_port);
	fd = http_connect(&fx, auth, &status, body, sizeof(body));
	dprintf(out, "%d a name the DNS server does not know: 502 'cannot resolve' (%d)\n",
		fd < 0 && status == 502 && strstr(body, "cannot resolve nx.test") != NULL, status);
	snprintf(auth, sizeof(auth), "single:%u", fx.echo_port);
	fd = http_connect(&fx, auth, &status, body, sizeof(body));
	dprintf(out, "%d the name judged is the name looked up: no search domain appended (%d)\n",
		fd < 0 && status == 502 && strstr(body, "cannot resolve single") != NULL, status);
	snprintf(auth, sizeof(auth), "dyn.test:%u", fx.echo_port);
	fd = http_connect(&fx, auth, &status, body, sizeof(body));
	dprintf(out, "%d a second lookup of the same name works\n", fd >= 0 && status == 200 && echo_roundtrip(fd, "again"));
	if (fd >= 0)
		close(fd);

	/* now the sandbox's side */
	int ws = 0;
	if (capture && write(go[1], "g", 1) == 1) {
		waitpid(sandbox, &ws, 0);
		struct json_object *o = find_line("dyn.test", "allow", "capture", &bad);
		dprintf(out, "%d captured connections are logged via capture\n", o != NULL && bad == 0);
		json_object_put(o);
		o = find_line("nope.test", "deny", "capture", &bad);
		dprintf(out, "%d and so is a captured denial\n", o != NULL);
		json_object_put(o);
	} else {
		close(go[1]);
		waitpid(sandbox, &ws, 0);
	}
	close(lp[1]);
	bool exited = wait_exit(proxy, 5000, &ws);
	dprintf(out, "%d the namespace's proxy exits 0 on the lifeline's end\n", exited && WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	kill(dns_pid, SIGKILL);
	kill(up_pid, SIGKILL);
	ab_net_policy_free(&cfg->policy);
	free(cfg);
	_exit(0);
}

static void test_namespaces(void)
{
	int p[2];
	char buf[8192];
	ssize_t n;
	size_t len = 0;

	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		ns_child(p[1]);
	}
	close(p[1]);
	while ((n = read(p[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(p[0]);
	waitpid(pid, NULL, 0);
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		if (line[0] == 'S') {
			bool must = getenv("AB_MUST_WORK") && strcmp(getenv("AB_MUST_WORK"), "1") == 0;
			ok(!must, "# skip%s", line + 1);
			continue;
		}
		ok(line[0] == '1', "%s", line + 2);
	}
}

int main(void)
{
	if (!fixture_begin("test-proxy-ns")) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	test_namespaces();
	fixture_end();
	return tap_done();
}
