/* The egress proxy end to end, with real sockets and no mocks. A forked child runs
 * ab_proxy_run (confined as in a real run: seccomp, Landlock, and as root nobody) on
 * listeners this test made on 127.0.0.1; another child serves the upstreams; the test
 * talks HTTP proxy, SOCKS5, DNS and the control socket to it and reads the audit log back
 * with json-c. Then a proxy with 48 file descriptors (eviction, no spinning), and proxies
 * that get their listeners later, from ab_egress_hand_listeners over listeners_fd, as in
 * a real run (or never: the socket's end, the lifeline's end). The same proxy in
 * namespaces of the test's own, with c-ares and the capture for real, is
 * test-proxy-ns.c; what both use is in proxy-fixture.h.
 *
 * Fixture (under a fresh temporary directory):
 *   net.sock     the control socket (SOCK_SEQPACKET, listening, 0666 so that another
 *                user reaches it and SO_PEERCRED decides)
 *   net.log      the audit log
 *   stderr*      what the proxies wrote on stderr (nothing, in normal operation)
 *
 * Upstreams on 127.0.0.1, ephemeral ports: echo, http and source (see proxy-fixture.h).
 *
 * `test-proxy --bench` instead measures 1 GiB through CONNECT against the same download
 * direct, 1,000 concurrent tunnels, the head timeout and 10,000 idle connections (not a
 * test). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/egress.h"
#include "proxy/dns.h"
#include "proxy/control.h"
#include "proxy/proxy.h"
#include "proxy/rules.h"
#include "shared/cleanup.h"
#include "tap.h"
#include "proxy-fixture.h"

static char sock_path[128], err_path[128];

/* ---- the fixture: one proxy and the upstreams, for every test here ---- */

static const char *const allow_rules[] = {
	"allowed.test", "private.test", "meta.test", "localhost", "127.0.0.1", "*.wild.test",
};
static const char *const deny_rules[] = { "no.wild.test" };
static const char *const host_entries[] = {
	"allowed.test:127.0.0.1",  "denied.test:127.0.0.1", "later.test:127.0.0.1",
	"private.test:10.1.2.3",   "meta.test:169.254.169.254",
	"a.wild.test:127.0.0.1",   "no.wild.test:127.0.0.1", "evilwild.test:127.0.0.1",
};

static int make_control_socket(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof(a.sun_path))
		return -1;
	memcpy(a.sun_path, path, strlen(path) + 1);
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0)
		return -1;
	return fd;
}

static bool setup(struct fixture *fx)
{
	struct up_listener ups[3];
	struct ab_proxy_config *cfg = calloc(1, sizeof(*cfg));
	if (cfg)
		cfg->log_old_fd = -1; /* no rotation: 0 would be stdin */
	static struct ab_net_host_entry hosts[16];
	int lp[2], closed;
	uint16_t port;

	memset(fx, 0, sizeof(*fx));
	ups[0] = (struct up_listener){ listen_on(SOCK_STREAM, &fx->echo_port), UP_ECHO };
	ups[1] = (struct up_listener){ listen_on(SOCK_STREAM, &fx->web_port), UP_HTTP };
	ups[2] = (struct up_listener){ listen_on(SOCK_STREAM, &fx->source_port), UP_SOURCE };
	closed = listen_on(SOCK_STREAM, &fx->closed_port); /* a port nobody listens on */
	close(closed);
	if (ups[0].fd < 0 || ups[1].fd < 0 || ups[2].fd < 0)
		return false;
	fx->upstream = fork();
	if (fx->upstream == 0)
		upstream_serve(ups, 3);
	for (int i = 0; i < 3; i++)
		close(ups[i].fd);

	snprintf(cfg->name, sizeof(cfg->name), "unit");
	fill_policy(&cfg->policy, hosts, &cfg->n_hosts, allow_rules, AB_ELEMENTSOF(allow_rules), deny_rules,
		    AB_ELEMENTSOF(deny_rules), host_entries, AB_ELEMENTSOF(host_entries));
	cfg->hosts = hosts;
	cfg->listeners[0] = (struct ab_proxy_listener){ listen_on(SOCK_STREAM, &fx->http_port), AB_PROXY_LISTEN_HTTP, AF_INET };
	cfg->listeners[1] = (struct ab_proxy_listener){ listen_on(SOCK_STREAM, &fx->socks_port), AB_PROXY_LISTEN_SOCKS, AF_INET };
	cfg->listeners[2] = (struct ab_proxy_listener){ listen_on(SOCK_DGRAM, &fx->dns_port), AB_PROXY_LISTEN_DNS, AF_INET };
	cfg->n_listeners = 3;
	(void)port;
	cfg->control_fd = make_control_socket(sock_path);
	chmod(sock_path, 0666); /* so that another user reaches it, and SO_PEERCRED decides */
	cfg->log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	cfg->owner_uid = getuid();
	if (pipe2(lp, O_CLOEXEC) < 0)
		return false;
	fx->proxy = start_proxy(cfg, lp, geteuid() == 0, err_path, 0);
	close(lp[0]);
	fx->lifeline = lp[1];
	/* the parent's copies go: only the proxy holds them */
	for (size_t i = 0; i < cfg->n_listeners; i++)
		close(cfg->listeners[i].fd);
	close(cfg->control_fd);
	close(cfg->log_fd);
	ab_net_policy_free(&cfg->policy);
	free(cfg);
	return fx->proxy > 0 && fx->upstream > 0;
}

/* ---- clients ---- */

/* SOCKS5: greeting and a CONNECT to a domain name. Returns the reply code (0 ok: fd
 * is the tunnel), or -1 when there was no proper reply. */
static int socks_connect(const struct fixture *fx, const char *name, size_t name_len, uint16_t port, int *out_fd)
{
	uint8_t req[300], rep[10];
	size_t n = 0;
	int fd = tcp_connect(fx->socks_port);

	*out_fd = -1;
	if (fd < 0)
		return -1;
	if (!send_all(fd, "\x05\x01\x00", 3) || !read_exact(fd, rep, 2) || rep[0] != 5 || rep[1] != 0) {
		close(fd);
		return -1;
	}
	req[n++] = 5;
	req[n++] = 1;
	req[n++] = 0;
	req[n++] = 3;
	req[n++] = (uint8_t)name_len;
	memcpy(req + n, name, name_len);
	n += name_len;
	req[n++] = (uint8_t)(port >> 8);
	req[n++] = (uint8_t)port;
	if (!send_all(fd, req, n) || !read_exact(fd, rep, 10) || rep[0] != 5) {
		close(fd);
		return -1;
	}
	if (rep[1] == 0)
		*out_fd = fd;
	else
		close(fd);
	return rep[1];
}

/* ---- the audit log ---- */

static int64_t jint(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : -1;
}

/* ---- the tests ---- */

static void test_http(struct fixture *fx)
{
	char auth[128], body[4096], exp[256];
	int status, fd, bad;
	int64_t t0;

	snprintf(auth, sizeof(auth), "allowed.test:%u", fx->echo_port);
	fd = http_connect(fx, auth, &status, body, sizeof(body));
	ok(fd >= 0 && status == 200, "CONNECT to an allowed name is established (status %d)", status);
	ok(fd >= 0 && echo_roundtrip(fd, "hello through the tunnel"), "CONNECT relays bytes both ways");
	if (fd >= 0) {
		/* half-close: the echo server sees our EOF, sends the rest, then its own EOF */
		char buf[64];
		send_str(fd, "tail");
		shutdown(fd, SHUT_WR);
		ssize_t n = read_to_eof(fd, buf, sizeof(buf));
		ok(n == 4 && memcmp(buf, "tail", 4) == 0, "a half-close passes through, and the rest comes back");
		close(fd);
	} else {
		ok(0, "a half-close passes through, and the rest comes back");
	}
	struct json_object *o = find_line("allowed.test", "allow", "proxy", &bad);
	ok(o && jis(o, "method", "CONNECT") && jint(o, "port") == fx->echo_port && jis(o, "addr", "127.0.0.1") &&
		   jis(o, "rule", "allowed.test") && jint(o, "bytes_out") == 28 && jint(o, "bytes_in") == 28 &&
		   jis(o, "sandbox", "unit") && jstr(o, "time") && jstr(o, "duration_ms"),
	   "the closed tunnel is logged: method, port, address, rule, bytes each way, duration");
	json_object_put(o);

	/* absolute-URI GET: the server sees origin form and Connection: close */
	fd = tcp_connect(fx->http_port);
	snprintf(exp, sizeof(exp),
		 "GET http://allowed.test:%u/path/x?q=1 HTTP/1.1\r\nHost: allowed.test:%u\r\n"
		 "Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\nAccept: */*\r\n\r\n",
		 fx->web_port, fx->web_port);
	ok(fd >= 0 && send_str(fd, exp) && read_to_eof(fd, body, sizeof(body)) > 0 &&
		   strncmp(body, "HTTP/1.1 200 OK\r\n", 17) == 0,
	   "an absolute-URI GET gets the server's answer");
	ok(strstr(body, "\r\n\r\nGET /path/x?q=1 HTTP/1.1\r\n") != NULL, "the server saw an origin-form request");
	ok(strstr(body, "Connection: close\r\n") && !strstr(body, "Proxy-Connection") && !strstr(body, "Proxy-Authorization") &&
		   strstr(body, "Accept: */*\r\n"),
	   "with Connection: close, without Proxy-* headers, other headers kept");
	if (fd >= 0)
		close(fd);

	/* denied at once, with the message */
	snprintf(auth, sizeof(auth), "denied.test:%u", fx->echo_port);
	t0 = now_ms();
	fd = http_connect(fx, auth, &status, body, sizeof(body));
	snprintf(exp, sizeof(exp), "agentbox: egress to denied.test:%u denied by policy (default deny: no rule allows it)\n", fx->echo_port);
	ok(fd < 0 && status == 403 && strcmp(body, exp) == 0, "CONNECT to a name no rule allows: 403 '%s'", one_line(body));
	ok(now_ms() - t0 < 1000, "the denial comes at once (%lld ms)", (long long)(now_ms() - t0));
	o = find_line("denied.test", "deny", "proxy", &bad);
	ok(o && jis(o, "rule", "default deny") && jint(o, "port") == fx->echo_port, "the denial is logged");
	json_object_put(o);

	snprintf(auth, sizeof(auth), "no.wild.test:%u", fx->echo_port);
	fd = http_connect(fx, auth, &status, body, sizeof(body));
	ok(fd < 0 && status == 403 && strstr(body, "(no.wild.test)"), "a deny rule wins over a wildcard, and is named: %s", one_line(body));
	snprintf(auth, sizeof(auth), "a.wild.test:%u", fx->echo_port);
	fd = http_connect(fx, auth, &status, body, sizeof(body));
	ok(fd >= 0 && status == 200 && echo_roundtrip(fd, "wild"), "a wildcard allows a subdomain");
	if (fd >= 0)
		close(fd);
	snprintf(auth, sizeof(auth), "evilwild.test:%u", fx->echo_port);
	fd = http_connect(fx, auth, &status, body, sizeof(body));
	ok(fd < 0 && status == 403, "but not a look-alike of its suffix");

	/* names that resolve to closed address classes */
	snprintf(auth, sizeof(auth), "private.test:%u", fx->echo_port);
	fd = http_connect(fx, auth, &status, body, sizeof(body));
	snprintf(exp, sizeof(exp), "agentbox: egress to private.test:%u denied by policy (private address 10.1.2.3)\n",
		 fx->echo_port);
	ok(fd < 0 && status == 403 && strcmp(body, exp) == 0, "a name resolving to 10.1.2.3: 403 naming the class");
	snprintf(auth, sizeof(auth), "meta.test:%u", fx->echo_port);
	fd = http_connect(fx, auth, &status, body, sizeof(body));
	ok(fd < 0 && status == 403 && strstr(body, "(cloud metadata address 169.254.169.254)"),
	   "a name resolving to 169.254.169.254: 403 naming the class: %s", one_line(body));
	o = find_line("meta.test", "deny", NULL, &bad);
	ok(o && jis(o, "addr", "169.254.169.254") && jis(o, "rule", "cloud metadata address 169.254.169.254"),
	   "logged with the address and the class");
	json_object_put(o);

	/* a literal address: ADDR rules only */
	snprintf(auth, sizeof(auth), "127.0.0.1:%u", fx->echo_port);
	fd = http_connect(fx, auth, &status, body, sizeof(body));
	ok(fd >= 0 && status == 200 && echo_roundtrip(fd, "literal"), "CONNECT to an address an ADDR rule allows");
	if (fd >= 0)
		close(fd);
	snprintf(auth, sizeof(auth), "2130706433:%u", fx->echo_port);
	fd = http_connect(fx, auth, &status, body, sizeof(body));
	ok(fd < 0 && (status == 400 || status == 403), "CONNECT to a number is refused (%d)", status);

	/* upstream refuses: 502 with the reason */
	snprintf(auth, sizeof(auth), "allowed.test:%u", fx->closed_port);
	fd = http_connect(fx, auth, &status, body, sizeof(body));
	snprintf(exp, sizeof(exp), "connection refused by 127.0.0.1:%u", fx->closed_port);
	ok(fd < 0 && status == 502 && strstr(body, exp), "a refused upstream: 502 '%s'", one_line(body));
	o = find_line("allowed.test", "error", NULL, &bad);
	ok(o && jstr(o, "reason") && strstr(jstr(o, "reason"), exp), "logged as an error with the reason");
	json_object_put(o);

	/* through c-ares: the hosts file */
	snprintf(auth, sizeof(auth), "localhost:%u", fx->echo_port);
	fd = http_connect(fx, auth, &status, body, sizeof(body));
	ok(fd >= 0 && status == 200 && echo_roundtrip(fd, "via /etc/hosts"),
	   "a name from /etc/hosts through c-ares (confined: Landlock reads it) (%d %s)", status, one_line(body));
	if (fd >= 0)
		close(fd);

	/* malformed requests */
	fd = tcp_connect(fx->http_port);
	snprintf(exp, sizeof(exp), "GET https://allowed.test:%u/ HTTP/1.1\r\nHost: x\r\n\r\n", fx->web_port);
	ok(fd >= 0 && send_str(fd, exp) && read_to_eof(fd, body, sizeof(body)) > 0 &&
		   strncmp(body, "HTTP/1.1 400", 12) == 0 && strstr(body, "CONNECT"),
	   "an https:// URI: 400 with a hint to use CONNECT");
	if (fd >= 0)
		close(fd);
	fd = tcp_connect(fx->http_port);
	ok(fd >= 0 && send_str(fd, "GARBAGE\r\n\r\n") && read_to_eof(fd, body, sizeof(body)) > 0 &&
		   strncmp(body, "HTTP/1.1 400", 12) == 0,
	   "garbage: 400");
	if (fd >= 0)
		close(fd);
}

static void test_oversized(struct fixture *fx)
{
	char *big = malloc(80 * 1024), body[4096], auth[64];
	int fd = tcp_connect(fx->http_port), status;
	size_t n;

	n = (size_t)snprintf(big, 200, "GET http://allowed.test:%u/ HTTP/1.1\r\nHost: allowed.test\r\n", fx->web_port);
	while (n < 75 * 1024) {
		memcpy(big + n, "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 64);
		n += 64;
	}
	memcpy(big + n, "\r\n", 2);
	n += 2;
	ok(fd >= 0 && send_all(fd, big, n) && read_to_eof(fd, body, sizeof(body)) > 0 &&
		   strncmp(body, "HTTP/1.1 431", 12) == 0,
	   "a head over 64 KiB: 431 (%.20s)", body);
	if (fd >= 0)
		close(fd);
	free(big);
	snprintf(auth, sizeof(auth), "allowed.test:%u", fx->echo_port);
	fd = http_connect(fx, auth, &status, body, sizeof(body));
	ok(fd >= 0 && echo_roundtrip(fd, "still here"), "and the proxy lives on");
	if (fd >= 0)
		close(fd);
}

static void test_socks(struct fixture *fx)
{
	char name[300];
	int fd, rep, bad;

	rep = socks_connect(fx, "allowed.test", 12, fx->echo_port, &fd);
	ok(rep == 0 && echo_roundtrip(fd, "socks bytes"), "SOCKS5 to an allowed name relays (reply %d)", rep);
	if (fd >= 0)
		close(fd);
	struct json_object *o = find_line("allowed.test", "allow", "socks", &bad);
	ok(o && jint(o, "bytes_out") == 11 && jint(o, "bytes_in") == 11 && !jstr(o, "method"),
	   "logged via socks with the bytes");
	json_object_put(o);
	rep = socks_connect(fx, "denied.test", 11, fx->echo_port, &fd);
	ok(rep == 2, "SOCKS5 to a denied name: reply 0x02 (%d)", rep);
	o = find_line("denied.test", "deny", "socks", &bad);
	ok(o != NULL, "logged via socks");
	json_object_put(o);

	memset(name, 'a', 255);
	for (int i = 60; i < 255; i += 61)
		name[i] = '.';
	rep = socks_connect(fx, name, 255, fx->echo_port, &fd);
	ok(rep > 0, "SOCKS5 with a 255-byte name: a refusal (%d)", rep);
	rep = socks_connect(fx, "allowed.test", 12, fx->echo_port, &fd);
	ok(rep == 0 && echo_roundtrip(fd, "after"), "and the proxy lives on");
	if (fd >= 0)
		close(fd);

	/* no method the proxy takes: 05 FF */
	fd = tcp_connect(fx->socks_port);
	uint8_t rp[2] = { 0, 0 };
	ok(fd >= 0 && send_all(fd, "\x05\x01\x02", 3) && read_exact(fd, rp, 2) && rp[0] == 5 && rp[1] == 0xff,
	   "SOCKS5 without the no-auth method: 05 FF");
	if (fd >= 0)
		close(fd);
}

static void test_dns(struct fixture *fx)
{
	uint8_t a[4] = { 0 };
	int an = -1, rc, bad;
	char text[32];

	rc = dns_ask(fx->dns_port, "allowed.test", AB_DNS_TYPE_A, &an, a);
	ok(rc == 0 && an == 1 && a[0] == 198 && (a[1] & 0xfe) == 18, "DNS A for an allowed name: %u.%u.%u.%u", a[0], a[1],
	   a[2], a[3]);
	snprintf(text, sizeof(text), "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
	uint8_t again[4] = { 0 };
	rc = dns_ask(fx->dns_port, "ALLOWED.test", AB_DNS_TYPE_A, &an, again);
	ok(rc == 0 && memcmp(a, again, 4) == 0, "the same name gets the same address");
	rc = dns_ask(fx->dns_port, "x.wild.test", AB_DNS_TYPE_A, &an, again);
	ok(rc == 0 && an == 1 && memcmp(a, again, 4) != 0, "another allowed name another address");
	rc = dns_ask(fx->dns_port, "allowed.test", AB_DNS_TYPE_AAAA, &an, NULL);
	ok(rc == 0 && an == 0, "AAAA for it: no data");
	rc = dns_ask(fx->dns_port, "denied.test", AB_DNS_TYPE_A, &an, NULL);
	ok(rc == AB_DNS_RCODE_NXDOMAIN && an == 0, "DNS A for a denied name: NXDOMAIN (%d)", rc);
	struct json_object *o = find_line("allowed.test", "allow", "dns", &bad);
	ok(o && jis(o, "addr", text) && jint(o, "port") <= 0, "the DNS answer is logged with the fake address");
	json_object_put(o);
	o = find_line("denied.test", "deny", "dns", &bad);
	ok(o != NULL, "the NXDOMAIN is logged as a deny via dns");
	json_object_put(o);

	/* malformed: FORMERR, and it keeps answering */
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(fx->dns_port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	uint8_t junk[20] = { 0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 63 }, ans[512];
	set_timeouts(fd, 3000);
	sendto(fd, junk, sizeof(junk), 0, (struct sockaddr *)&sa, sizeof(sa));
	ssize_t k = recv(fd, ans, sizeof(ans), 0);
	ok(k >= 12 && ans[0] == 0xab && ans[1] == 0xcd && (ans[3] & 0x0f) == AB_DNS_RCODE_FORMERR, "a malformed query: FORMERR");
	close(fd);
	rc = dns_ask(fx->dns_port, "allowed.test", AB_DNS_TYPE_A, &an, again);
	ok(rc == 0 && an == 1, "and the next query is answered");
}

static void test_control(struct fixture *fx)
{
	char auth[64], body[1024], applied[300];
	struct ab_error err = { 0 };
	int status, fd, bad;

	snprintf(auth, sizeof(auth), "later.test:%u", fx->echo_port);
	fd = http_connect(fx, auth, &status, body, sizeof(body));
	ok(fd < 0 && status == 403, "before 'net allow': denied");
	int r = ab_control_request(sock_path, "allow", "Later.test", applied, sizeof(applied), &err);
	ok(r == 0 && strcmp(applied, "later.test") == 0, "control 'allow Later.test' is applied: '%s' %s", applied, r ? err.msg : "");
	fd = http_connect(fx, auth, &status, body, sizeof(body));
	ok(fd >= 0 && status == 200 && echo_roundtrip(fd, "live"), "after it: the same CONNECT goes through");
	if (fd >= 0)
		close(fd);
	r = ab_control_request(sock_path, "deny", "later.test", applied, sizeof(applied), &err);
	fd = http_connect(fx, auth, &status, body, sizeof(body));
	ok(r == 0 && fd < 0 && status == 403 && strstr(body, "(later.test)"), "control 'deny' turns it around at once: %s", one_line(body));
	r = ab_control_request(sock_path, "allow", "*.", applied, sizeof(applied), &err);
	ok(r < 0 && strstr(err.msg, "*."), "a bad rule is refused with the proxy's message: %s", err.msg);
	struct json_object *o = find_line("later.test", "policy", NULL, &bad);
	ok(o && jis(o, "action", "allow") && jint(o, "uid") == (int64_t)getuid(), "the change is logged with the uid");
	json_object_put(o);

	if (geteuid() != 0) {
		ok(1, "# skip another user's request: not root");
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		struct ab_error e = { 0 };
		if (setgid(12345) < 0 || setuid(12345) < 0)
			_exit(3);
		int rr = ab_control_request(sock_path, "allow", "sneaky.test", NULL, 0, &e);
		if (rr < 0 && strstr(e.msg, "not the sandbox's owner"))
			_exit(0);
		printf("# the other user got: %s\n", rr < 0 ? e.msg : "ok");
		_exit(1);
	}
	int ws = 0;
	waitpid(pid, &ws, 0);
	ok(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "another user is refused: 'not the sandbox's owner'");
}

static void test_flood(struct fixture *fx)
{
	enum { IDLE = 2000 };
	static int idle[IDLE];
	char auth[64], body[1024];
	int opened = 0, status, fd;
	int64_t t0;

	for (int i = 0; i < IDLE; i++) {
		idle[i] = tcp_connect(i % 2 ? fx->http_port : fx->socks_port);
		if (idle[i] >= 0)
			opened++;
	}
	/* some send half a head and stop */
	for (int i = 0; i < IDLE; i += 10)
		if (idle[i] >= 0)
			send_str(idle[i], i % 20 ? "CONNECT allowed.test:1 HTTP/1.1\r\nX: " : "\x05");
	t0 = now_ms();
	snprintf(auth, sizeof(auth), "allowed.test:%u", fx->echo_port);
	fd = http_connect(fx, auth, &status, body, sizeof(body));
	ok(opened == IDLE && fd >= 0 && echo_roundtrip(fd, "legit"), "%d idle connections, then a real one is served (%lld ms)",
	   opened, (long long)(now_ms() - t0));
	if (fd >= 0)
		close(fd);
	for (int i = 0; i < IDLE; i++)
		if (idle[i] >= 0)
			close(idle[i]);
}

/* Seeded junk at every listener: blobs of random bytes, and random bytes after a valid
 * start (an HTTP request line, a SOCKS greeting), each on its own connection. */
static void test_hostile(struct fixture *fx)
{
	static const char *const starts[] = { "", "CONNECT ", "GET http://", "\x05\x01\x00", "\x05\x01\x00\x05\x01\x00\x03" };
	uint32_t seed = 12345;
	char auth[64], body[512];
	int status, fd, sent = 0;

	for (int i = 0; i < 300; i++) {
		uint8_t blob[3000];
		const char *start = starts[i % 5];
		size_t sl = strlen(start), n;
		seed = seed * 1103515245 + 12345;
		n = sl + (seed >> 16) % (sizeof(blob) - sl);
		memcpy(blob, start, sl);
		for (size_t k = sl; k < n; k++) {
			seed = seed * 1103515245 + 12345;
			blob[k] = (uint8_t)(seed >> 16);
		}
		if (i % 3 == 2) { /* DNS */
			struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(fx->dns_port),
						  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
			int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			if (sendto(u, blob, n % 600, 0, (struct sockaddr *)&sa, sizeof(sa)) >= 0)
				sent++;
			close(u);
			continue;
		}
		fd = tcp_connect(i % 2 ? fx->http_port : fx->socks_port);
		if (fd < 0)
			continue;
		set_timeouts(fd, 200);
		if (send_all(fd, blob, n))
			sent++;
		shutdown(fd, SHUT_WR);
		read_to_eof(fd, body, sizeof(body));
		close(fd);
	}
	snprintf(auth, sizeof(auth), "allowed.test:%u", fx->echo_port);
	fd = http_connect(fx, auth, &status, body, sizeof(body));
	ok(sent > 250 && fd >= 0 && echo_roundtrip(fd, "unharmed"), "%d blobs of junk at every listener: the proxy serves on", sent);
	if (fd >= 0)
		close(fd);
	int an = 0;
	ok(dns_ask(fx->dns_port, "allowed.test", AB_DNS_TYPE_A, &an, NULL) == 0 && an == 1, "and its DNS answers");
}

/* utime + stime of a process, in clock ticks */
static long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long ut = 0, st = 0;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	/* after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (long)(ut + st);
}

/* A proxy with 48 file descriptors: accepting past them evicts waiting connections, and
 * with nothing left to evict it waits instead of spinning. */
static void test_out_of_fds(struct fixture *fx)
{
	static const char *const allows[] = { "allowed.test", "127.0.0.1" };
	static const char *const entries[] = { "allowed.test:127.0.0.1" };
	static struct ab_net_host_entry hosts[1];
	struct ab_proxy_config *cfg = calloc(1, sizeof(*cfg));
	if (cfg)
		cfg->log_old_fd = -1; /* no rotation: 0 would be stdin */
	struct fixture small = { 0 };
	char auth[64], body[512], req[128], errfile[128];
	int idle[60], tun[40], lp[2], status, fd, ws = 0;

	snprintf(cfg->name, sizeof(cfg->name), "small");
	fill_policy(&cfg->policy, hosts, &cfg->n_hosts, allows, 2, NULL, 0, entries, 1);
	cfg->hosts = hosts;
	cfg->listeners[0] = (struct ab_proxy_listener){ listen_on(SOCK_STREAM, &small.http_port), AB_PROXY_LISTEN_HTTP, AF_INET };
	cfg->n_listeners = 1;
	cfg->control_fd = cfg->log_fd = -1;
	snprintf(errfile, sizeof(errfile), "%s/stderr-small", top);
	if (pipe2(lp, O_CLOEXEC) < 0)
		return;
	pid_t pid = start_proxy(cfg, lp, geteuid() == 0, errfile, 48);
	close(lp[0]);
	close(cfg->listeners[0].fd);
	ab_net_policy_free(&cfg->policy);
	free(cfg);

	snprintf(auth, sizeof(auth), "allowed.test:%u", fx->echo_port);
	for (int i = 0; i < 60; i++)
		idle[i] = tcp_connect(small.http_port);
	fd = http_connect(&small, auth, &status, body, sizeof(body));
	ok(fd >= 0 && echo_roundtrip(fd, "room made"), "48 fds and 60 idle connections: the oldest make room for a real one");
	if (fd >= 0)
		close(fd);
	for (int i = 0; i < 60; i++)
		if (idle[i] >= 0)
			close(idle[i]);

	/* tunnels take every fd; more clients wait in the backlog */
	snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\n\r\n", auth);
	for (int i = 0; i < 40; i++) {
		tun[i] = tcp_connect(small.http_port);
		if (tun[i] >= 0)
			send_str(tun[i], req);
	}
	msleep(300);
	{
		int established = 0, refused = 0, silent = 0;
		for (int i = 0; i < 40; i++) {
			char b[64] = "";
			ssize_t k = tun[i] >= 0 ? recv(tun[i], b, sizeof(b) - 1, MSG_DONTWAIT | MSG_PEEK) : -1;
			if (k > 12 && strncmp(b, "HTTP/1.1 200", 12) == 0)
				established++;
			else if (k != 0 && !(k < 0 && errno == EAGAIN))
				refused++;
			else
				silent++;
		}
		printf("# tunnels: %d established, %d refused or reset, %d waiting\n", established, refused, silent);
	}
	/* these find no fd and nothing to evict: they wait in the backlog */
	for (int i = 0; i < 10; i++)
		idle[i] = tcp_connect(small.http_port);
	msleep(200);
	long t0 = cpu_ticks(pid);
	msleep(1000);
	long t1 = cpu_ticks(pid);
	ok(t0 >= 0 && t1 >= 0 && t1 - t0 < 25, "out of fds with nothing to evict, it waits instead of spinning (%ld ticks in 1 s)",
	   t1 - t0);
	for (int i = 0; i < 40; i++)
		if (tun[i] >= 0)
			close(tun[i]);
	for (int i = 0; i < 10; i++)
		if (idle[i] >= 0)
			close(idle[i]);
	msleep(300);
	fd = http_connect(&small, auth, &status, body, sizeof(body));
	ok(fd >= 0 && echo_roundtrip(fd, "fds back"), "once they close, it serves again");
	if (fd >= 0)
		close(fd);
	close(lp[1]);
	ok(wait_exit(pid, 5000, &ws) && WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "and exits 0 on the lifeline's end");
}

/* ---- listeners that come later ---- */

/* "Seccomp:" and "NoNewPrivs:" of a process, from /proc. */
static bool is_confined(pid_t pid)
{
	char path[64], line[256];
	int seccomp = -1, nnp = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		sscanf(line, "Seccomp: %d", &seccomp);
		sscanf(line, "NoNewPrivs: %d", &nnp);
	}
	if (f)
		fclose(f);
	return seccomp == 2 && nnp == 1;
}

static bool file_empty(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && st.st_size == 0;
}

/* A proxy started as agentbox starts it: no listeners yet, a ready pipe, and the other end
 * of its listener socket in eg (with its lifeline). */
static bool start_later(const char *name, struct ab_egress *eg, const char *errfile)
{
	char logfile[128];
	static const char *const allows[] = { "allowed.test", "127.0.0.1" };
	static const char *const entries[] = { "allowed.test:127.0.0.1" };
	static struct ab_net_host_entry hosts[1];
	struct ab_proxy_config *cfg = calloc(1, sizeof(*cfg));
	if (cfg)
		cfg->log_old_fd = -1; /* no rotation: 0 would be stdin */
	int lp[2], ready[2], later[2];

	*eg = (struct ab_egress)AB_EGRESS_INIT;
	if (!cfg || pipe2(lp, O_CLOEXEC) < 0 || pipe2(ready, O_CLOEXEC) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, later) < 0) {
		free(cfg);
		return false;
	}
	snprintf(cfg->name, sizeof(cfg->name), "%s", name);
	snprintf(logfile, sizeof(logfile), "%s/%s.log", top, name);
	fill_policy(&cfg->policy, hosts, &cfg->n_hosts, allows, 2, NULL, 0, entries, 1);
	cfg->hosts = hosts;
	cfg->n_listeners = 0;
	cfg->control_fd = -1;
	cfg->log_fd = open(logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	cfg->owner_uid = getuid();
	eg->pid = start_proxy_with(cfg, lp, ready, later, geteuid() == 0, errfile, 0);
	close(lp[0]);
	close(ready[1]);
	close(later[1]);
	close(cfg->log_fd);
	eg->lifeline_fd = lp[1];
	eg->ready_fd = ready[0];
	eg->listeners_fd = later[0];
	ab_net_policy_free(&cfg->policy);
	free(cfg);
	return eg->pid > 0;
}

static void test_listeners_later(struct fixture *fx)
{
	struct ab_proxy_listener ls[2];
	struct ab_egress eg;
	struct ab_error err = { 0 };
	struct fixture later = { 0 };
	char logfile[128], errfile[128], auth[64], body[512], c;
	struct stat st;
	struct pollfd pfd;
	uint8_t addr[4];
	int status = 0, fd, ancount = 0, ws = 0, r;
	bool confined = false;
	pid_t pid;

	snprintf(errfile, sizeof(errfile), "%s/stderr-later", top);
	if (!start_later("later", &eg, errfile)) {
		ok(0, "later: cannot start the proxy");
		return;
	}
	/* It confines itself, then waits: no answer before its listeners. */
	for (int i = 0; i < 250 && !(confined = is_confined(eg.pid)); i++)
		msleep(20);
	ok(confined, "later: the proxy confines itself (seccomp, no_new_privs) before any listener comes");
	pfd = (struct pollfd){ .fd = eg.ready_fd, .events = POLLIN };
	ok(poll(&pfd, 1, 200) == 0, "later: and gives no answer until its listeners come");

	ls[0] = (struct ab_proxy_listener){ listen_on(SOCK_STREAM, &later.http_port), AB_PROXY_LISTEN_HTTP, AF_INET };
	ls[1] = (struct ab_proxy_listener){ listen_on(SOCK_DGRAM, &later.dns_port), AB_PROXY_LISTEN_DNS, AF_INET };
	pid = eg.pid;
	r = ab_egress_hand_listeners(&eg, ls, 2, &err);
	ok(r == 0 && ls[0].fd == -1 && ls[1].fd == -1, "later: ab_egress_hand_listeners hands both over and has its OK (%s)",
	   r < 0 ? err.msg : "ok");
	snprintf(auth, sizeof(auth), "allowed.test:%u", fx->echo_port);
	fd = http_connect(&later, auth, &status, body, sizeof(body));
	ok(fd >= 0 && status == 200 && echo_roundtrip(fd, "came later"),
	   "later: the confined proxy serves CONNECT on the HTTP listener it received (%d)", status);
	if (fd >= 0)
		close(fd);
	ok(dns_ask(later.dns_port, "allowed.test", 1, &ancount, addr) == 0 && ancount == 1 && addr[0] == 198,
	   "later: and answers DNS on the UDP one");
	close(eg.lifeline_fd);
	eg.lifeline_fd = -1;
	ok(wait_exit(pid, 5000, &ws) && WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
	   "later: it exits 0 on the lifeline's end (status %#x)", ws);
	eg.pid = -1;
	ab_egress_stop(&eg);
	ok(file_empty(errfile), "later: nothing on stderr");
	snprintf(logfile, sizeof(logfile), "%s/later.log", top);
	ok(stat(logfile, &st) == 0 && st.st_size > 0, "later: its decisions are in its log");

	/* The sandbox never started: agentbox closes the listener socket. */
	if (!start_later("later-eof", &eg, errfile)) {
		ok(0, "later: cannot start the proxy");
		return;
	}
	pid = eg.pid;
	close(eg.listeners_fd);
	eg.listeners_fd = -1;
	ok(wait_exit(pid, 5000, &ws) && WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
	   "later: no listeners, the socket's end: it exits 0 (status %#x)", ws);
	ok(read(eg.ready_fd, &c, 1) == 0, "later: with no answer on the ready pipe");
	ok(file_empty(errfile), "later: and nothing on stderr");
	eg.pid = -1;
	ab_egress_stop(&eg);

	/* The same with only the lifeline's end. */
	if (!start_later("later-life", &eg, errfile)) {
		ok(0, "later: cannot start the proxy");
		return;
	}
	pid = eg.pid;
	close(eg.lifeline_fd);
	eg.lifeline_fd = -1;
	ok(wait_exit(pid, 5000, &ws) && WIFEXITED(ws) && WEXITSTATUS(ws) == 0 && file_empty(errfile),
	   "later: no listeners, the lifeline's end: it exits 0, quietly (status %#x)", ws);
	eg.pid = -1;
	ab_egress_stop(&eg);
	snprintf(logfile, sizeof(logfile), "%s/later-eof.log", top);
	ok(file_empty(logfile), "later: neither logged anything");
	snprintf(logfile, sizeof(logfile), "%s/later-life.log", top);
	ok(file_empty(logfile), "later: (nor the other)");

	/* A listener that is not what it is said to be: a UDP socket as the HTTP listener. */
	if (!start_later("later-bad", &eg, errfile)) {
		ok(0, "later: cannot start the proxy");
		return;
	}
	pid = eg.pid;
	ls[0] = (struct ab_proxy_listener){ listen_on(SOCK_DGRAM, &later.http_port), AB_PROXY_LISTEN_HTTP, AF_INET };
	r = ab_egress_hand_listeners(&eg, ls, 1, &err);
	ok(r < 0 && strstr(err.msg, "is not the socket it is said to be") != NULL && eg.pid == -1 &&
		   waitpid(pid, NULL, WNOHANG) < 0,
	   "later: a UDP socket announced as the HTTP listener is refused, and the proxy reaped (%s)",
	   r < 0 ? err.msg : "accepted");
	ab_egress_stop(&eg);
}

/* Asks the source for want bytes through a tunnel; checks them all. half_close: the
 * client shuts its side at once and starts reading late, so that the server's FIN meets
 * bytes still on their way in the proxy. */
static bool fetch_through(struct fixture *fx, uint64_t want, bool half_close, uint64_t *got_out)
{
	static char buf[1 << 16];
	char auth[64], body[256];
	uint64_t got = 0;
	int status, fd;
	bool same = true;

	snprintf(auth, sizeof(auth), "allowed.test:%u", fx->source_port);
	fd = http_connect(fx, auth, &status, body, sizeof(body));
	if (fd < 0 || !send_all(fd, &want, 8)) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	if (half_close) {
		shutdown(fd, SHUT_WR);
		msleep(300);
	}
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0) {
			if (n < 0)
				printf("# recv after %llu bytes: %s\n", (unsigned long long)got, strerror(errno));
			break;
		}
		for (ssize_t i = 0; i < n && same; i++)
			same = (uint8_t)buf[i] == pattern(got + (uint64_t)i);
		got += (uint64_t)n;
	}
	close(fd);
	*got_out = got;
	return got == want && same;
}

static void test_big_transfer(struct fixture *fx)
{
	uint64_t got = 0;

	ok(fetch_through(fx, 32u << 20, false, &got), "32 MiB through CONNECT arrive whole and in order (%llu bytes)",
	   (unsigned long long)got);
	got = 0;
	ok(fetch_through(fx, 16u << 20, true, &got),
	   "with the client's side shut first and the server closing while bytes are in the proxy: all arrive (%llu)",
	   (unsigned long long)got);
}

static void test_end(struct fixture *fx)
{
	struct stat st;
	int ws = 0, bad = 0;

	int lines = 0;
	{
		_cleanup_fclose_ FILE *f = fopen(log_path, "re");
		char line[8192];
		while (f && fgets(line, sizeof(line), f)) {
			struct json_object *o = json_tokener_parse(line);
			lines++;
			if (!o || !json_object_is_type(o, json_type_object) || !jstr(o, "time") || !jis(o, "sandbox", "unit"))
				bad++;
			json_object_put(o);
		}
	}
	ok(lines > 20 && bad == 0, "every one of the %d lines of the log is JSON with the time and the sandbox", lines);
	close(fx->lifeline);
	ok(wait_exit(fx->proxy, 5000, &ws) && WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
	   "the lifeline closes: the proxy exits 0 (status %#x)", ws);
	ok(stat(err_path, &st) == 0 && st.st_size == 0, "the proxy wrote nothing on stderr");
	if (st.st_size) {
		char buf[512] = "";
		int f = open(err_path, O_RDONLY | O_CLOEXEC);
		if (f >= 0) {
			read_to_eof(f, buf, sizeof(buf));
			close(f);
		}
		printf("# stderr: %s\n", buf);
	}
	kill(fx->upstream, SIGKILL);
	waitpid(fx->upstream, NULL, 0);
}

/* ---- measurements (--bench) ---- */

static double transfer(uint16_t port, const struct fixture *fx, uint64_t bytes)
{
	static char buf[1 << 20];
	char auth[64], body[256];
	int status, fd;
	uint64_t got = 0;
	int64_t t0 = now_ms();

	if (fx) {
		snprintf(auth, sizeof(auth), "allowed.test:%u", port);
		fd = http_connect(fx, auth, &status, body, sizeof(body));
	} else {
		fd = tcp_connect(port);
	}
	if (fd < 0 || !send_all(fd, &bytes, 8))
		return 0;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		got += (uint64_t)n;
	}
	close(fd);
	double s = (double)(now_ms() - t0) / 1000.0;
	return got == bytes && s > 0 ? (double)bytes / s / 1e6 : 0;
}

static void bench(struct fixture *fx)
{
	uint64_t gb = 1ull << 30;
	double direct = 0, proxied = 0;

	for (int i = 0; i < 3; i++) {
		long u0 = cpu_ticks(fx->upstream), s0 = cpu_ticks(getpid());
		int64_t t0 = now_ms();
		double d = transfer(fx->source_port, NULL, gb);
		long u1 = cpu_ticks(fx->upstream), s1 = cpu_ticks(getpid()), p1 = cpu_ticks(fx->proxy);
		int64_t t1 = now_ms();
		double p = transfer(fx->source_port, fx, gb);
		long u2 = cpu_ticks(fx->upstream), s2 = cpu_ticks(getpid()), p2 = cpu_ticks(fx->proxy);
		int64_t t2 = now_ms();
		printf("# 1 GiB: direct %.0f MB/s, through CONNECT %.0f MB/s (%.0f%%)\n", d, p, d > 0 ? 100 * p / d : 0);
		printf("#   CPU%% direct: server %ld client %ld; proxied: server %ld client %ld proxy %ld\n",
		       (u1 - u0) * 1000 / (t1 - t0 + 1), (s1 - s0) * 1000 / (t1 - t0 + 1), (u2 - u1) * 1000 / (t2 - t1 + 1),
		       (s2 - s1) * 1000 / (t2 - t1 + 1), (p2 - p1) * 1000 / (t2 - t1 + 1));
		if (d > direct)
			direct = d;
		if (p > proxied)
			proxied = p;
	}
	printf("# best: direct %.0f MB/s, proxied %.0f MB/s: %.0f%%\n", direct, proxied, 100 * proxied / direct);

	/* 1,000 concurrent relayed connections: all open at once, each echoes */
	enum { N = 1000 };
	static int fds[N];
	char auth[64], body[256];
	int okc = 0, status;
	int64_t t0 = now_ms();
	snprintf(auth, sizeof(auth), "allowed.test:%u", fx->echo_port);
	for (int i = 0; i < N; i++)
		fds[i] = http_connect(fx, auth, &status, body, sizeof(body));
	int64_t t1 = now_ms();
	for (int i = 0; i < N; i++)
		if (fds[i] >= 0)
			send_str(fds[i], "0123456789abcdef");
	for (int i = 0; i < N; i++) {
		char b[16];
		if (fds[i] >= 0 && read_exact(fds[i], b, 16) && memcmp(b, "0123456789abcdef", 16) == 0)
			okc++;
	}
	printf("# %d concurrent tunnels: %d echoed; %lld ms to open all (%.2f ms each), %lld ms to echo\n", N, okc,
	       (long long)(t1 - t0), (double)(t1 - t0) / N, (long long)(now_ms() - t1));
	for (int i = 0; i < N; i++)
		if (fds[i] >= 0)
			close(fds[i]);

	/* an idle connection is closed after the head timeout */
	{
		int s = tcp_connect(fx->http_port);
		char c;
		int64_t h0 = now_ms();
		set_timeouts(s, 15000);
		ssize_t k = recv(s, &c, 1, 0);
		printf("# an idle connection: %s after %lld ms\n", k == 0 ? "closed" : "still open or reset",
		       (long long)(now_ms() - h0));
		close(s);
	}

	/* 10,000 idle connections, then a real one */
	enum { IDLE = 10000 };
	static int idle[IDLE];
	int opened = 0;
	for (int i = 0; i < IDLE; i++)
		if ((idle[i] = tcp_connect(fx->http_port)) >= 0)
			opened++;
	t0 = now_ms();
	int fd = http_connect(fx, auth, &status, body, sizeof(body));
	printf("# %d idle connections, then a real one: %s in %lld ms\n", opened,
	       fd >= 0 && echo_roundtrip(fd, "x") ? "served" : "NOT served", (long long)(now_ms() - t0));
	if (fd >= 0)
		close(fd);
	for (int i = 0; i < IDLE; i++)
		if (idle[i] >= 0)
			close(idle[i]);
}

int main(int argc, char **argv)
{
	struct fixture fx;

	if (!fixture_begin("test-proxy")) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	snprintf(sock_path, sizeof(sock_path), "%s/net.sock", top);
	snprintf(log_path, sizeof(log_path), "%s/net.log", top);
	snprintf(err_path, sizeof(err_path), "%s/stderr", top);
	if (!setup(&fx)) {
		printf("Bail out! cannot set up the fixture: %s\n", strerror(errno));
		return 1;
	}
	if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
		bench(&fx);
		test_end(&fx);
	} else {
		test_http(&fx);
		test_oversized(&fx);
		test_socks(&fx);
		test_dns(&fx);
		test_control(&fx);
		test_flood(&fx);
		test_big_transfer(&fx);
		test_hostile(&fx);
		test_out_of_fds(&fx);
		test_listeners_later(&fx);
		test_end(&fx);
	}
	fixture_end();
	return tap_done();
}
