/* The egress proxy's parsers: HTTP proxy request heads, SOCKS5, the TLS ClientHello's
 * server name, DNS queries and answers. Tables of good and bad inputs, then every input
 * cut at every byte: a prefix of a good input always asks for more bytes, and nothing
 * ever reads past the end (each prefix is copied into a buffer of exactly its size, so
 * the sanitizer build catches a read beyond it). */
#include <arpa/inet.h>
#include <ares.h>
#include <netdb.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/dns.h"
#include "proxy/http.h"
#include "proxy/sni.h"
#include "proxy/socks.h"
#include "shared/cleanup.h"
#include "tap.h"

/* Table rows name only the fields that matter to them. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

/* A copy of the first n bytes in a buffer of exactly n bytes. */
static void *exact(const void *p, size_t n)
{
	void *c = malloc(n ? n : 1);
	if (!c)
		abort();
	memcpy(c, p, n);
	return c;
}

/* ---------------------------------------------------------------- HTTP */

struct http_case {
	const char *name;
	const char *in;
	int want;
	const char *host;
	uint16_t port;
	bool connect;
	const char *upstream; /* absolute-URI requests: the head sent to the origin */
};

static const struct http_case http_cases[] = {
	{ "absolute URI: hop-by-hop and Proxy-* headers dropped, order kept",
	  "GET http://example.com/path?q=1 HTTP/1.1\r\n"
	  "Host: example.com\r\n"
	  "User-Agent: curl/7.88\r\n"
	  "Proxy-Connection: keep-alive\r\n"
	  "Proxy-Authorization: Basic YTpi\r\n"
	  "Proxy-Authenticate: x\r\n"
	  "Connection: keep-alive\r\n"
	  "Keep-Alive: 300\r\n"
	  "TE: trailers\r\n"
	  "Trailer: Expires\r\n"
	  "Upgrade: h2c\r\n"
	  "Accept: */*\r\n"
	  "\r\n",
	  1, "example.com", 80, false,
	  "GET /path?q=1 HTTP/1.1\r\nUser-Agent: curl/7.88\r\nAccept: */*\r\nHost: example.com\r\n"
	  "Connection: close\r\n\r\n" },
	{ "absolute URI without Host or path: Host added, path '/', HTTP/1.0 accepted",
	  "GET http://Example.COM:8080 HTTP/1.0\r\n\r\n", 1, "example.com", 8080, false,
	  "GET / HTTP/1.1\r\nHost: Example.COM:8080\r\nConnection: close\r\n\r\n" },
	{ "scheme is case-insensitive; a query without a path gets '/'",
	  "HEAD HTTP://x.test?a=b HTTP/1.1\r\nhost: x.test\r\n\r\n", 1, "x.test", 80, false,
	  "HEAD /?a=b HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n" },
	{ "header names match in any case",
	  "GET http://a.test/ HTTP/1.1\r\nPROXY-CONNECTION: close\r\nupgrade: websocket\r\nX-Y: z\r\n\r\n",
	  1, "a.test", 80, false,
	  "GET / HTTP/1.1\r\nX-Y: z\r\nHost: a.test\r\nConnection: close\r\n\r\n" },
	{ "the client's Host is replaced by the URI's (it could name a site the policy did not decide on)",
	  "GET http://a.test/ HTTP/1.1\r\nHost:   other.test  \r\n\r\n", 1, "a.test", 80, false,
	  "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n" },
	{ "bracketed IPv6 host; body bytes after the head are not part of it",
	  "POST http://[::1]:8000/p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 1, "::1", 8000, false,
	  "POST /p HTTP/1.1\r\nContent-Length: 3\r\nHost: [::1]:8000\r\nConnection: close\r\n\r\n" },
	{ "empty header value and obs-text in a value are accepted",
	  "GET http://a.test/x HTTP/1.1\r\nX-Empty:\r\nX-Name: caf\xc3\xa9\r\n\r\n", 1, "a.test", 80,
	  false,
	  "GET /x HTTP/1.1\r\nX-Empty:\r\nX-Name: caf\xc3\xa9\r\nHost: a.test\r\nConnection: close\r\n\r\n" },
	{ "a method of 15 characters", "ABCDEFGHIJKLMNO http://a.test/ HTTP/1.1\r\n\r\n", 1,
	  "a.test", 80, false,
	  "ABCDEFGHIJKLMNO / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n" },
	{ "port 65535", "GET http://a.test:65535/ HTTP/1.1\r\n\r\n", 1, "a.test", 65535, false,
	  "GET / HTTP/1.1\r\nHost: a.test:65535\r\nConnection: close\r\n\r\n" },
	{ "CONNECT host:port", "CONNECT Api.Example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n",
	  1, "api.example.com", 443, true, NULL },
	{ "CONNECT bracketed IPv6", "CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n", 1, "2001:db8::1", 443,
	  true, NULL },
	{ "CONNECT IPv4 literal", "CONNECT 10.0.0.1:22 HTTP/1.1\r\n\r\n", 1, "10.0.0.1", 22, true, NULL },
	{ "CONNECT all-numeric name: syntax only, the policy refuses it later",
	  "CONNECT 2130706433:80 HTTP/1.1\r\n\r\n", 1, "2130706433", 80, true, NULL },
	{ "CONNECT with a hop-by-hop header", "CONNECT a.test:443 HTTP/1.1\r\nProxy-Connection: keep-alive\r\n\r\n",
	  1, "a.test", 443, true, NULL },

	{ "origin-form request", "GET /path HTTP/1.1\r\nHost: x\r\n\r\n", -EINVAL },
	{ "asterisk-form request", "OPTIONS * HTTP/1.1\r\n\r\n", -EINVAL },
	{ "authority-form with GET", "GET a.test:80 HTTP/1.1\r\n\r\n", -EINVAL },
	{ "https:// URI", "GET https://a.test/ HTTP/1.1\r\n\r\n", -EPROTONOSUPPORT },
	{ "HTTPS:// URI", "GET HTTPS://a.test/ HTTP/1.1\r\n\r\n", -EPROTONOSUPPORT },
	{ "ftp:// URI", "GET ftp://a.test/f HTTP/1.1\r\n\r\n", -EPROTONOSUPPORT },
	{ "http: without //", "GET http:a.test/ HTTP/1.1\r\n\r\n", -EINVAL },
	{ "CONNECT without port (all digits)", "CONNECT 12345 HTTP/1.1\r\n\r\n", -EINVAL },
	{ "CONNECT without port", "CONNECT a.test HTTP/1.1\r\n\r\n", -EINVAL },
	{ "CONNECT empty port", "CONNECT a.test: HTTP/1.1\r\n\r\n", -EINVAL },
	{ "CONNECT port 0", "CONNECT a.test:0 HTTP/1.1\r\n\r\n", -EINVAL },
	{ "CONNECT port 65536", "CONNECT a.test:65536 HTTP/1.1\r\n\r\n", -EINVAL },
	{ "CONNECT port of 6 digits", "CONNECT a.test:000443 HTTP/1.1\r\n\r\n", -EINVAL },
	{ "CONNECT port with a sign", "CONNECT a.test:+443 HTTP/1.1\r\n\r\n", -EINVAL },
	{ "CONNECT two colons", "CONNECT a.test:1:2 HTTP/1.1\r\n\r\n", -EINVAL },
	{ "CONNECT absolute URI", "CONNECT http://a.test:443 HTTP/1.1\r\n\r\n", -EINVAL },
	{ "CONNECT userinfo", "CONNECT user@a.test:443 HTTP/1.1\r\n\r\n", -EINVAL },
	{ "CONNECT unbracketed IPv6", "CONNECT ::1:443 HTTP/1.1\r\n\r\n", -EINVAL },
	{ "CONNECT unclosed bracket", "CONNECT [::1:443 HTTP/1.1\r\n\r\n", -EINVAL },
	{ "CONNECT bracket without colon", "CONNECT [::1]443 HTTP/1.1\r\n\r\n", -EINVAL },
	{ "CONNECT IPv6 zone", "CONNECT [fe80::1%25eth0]:443 HTTP/1.1\r\n\r\n", -EINVAL },
	{ "CONNECT bad IPv6", "CONNECT [12345::]:443 HTTP/1.1\r\n\r\n", -EINVAL },
	{ "CONNECT empty brackets", "CONNECT []:443 HTTP/1.1\r\n\r\n", -EINVAL },
	{ "CONNECT empty host", "CONNECT :443 HTTP/1.1\r\n\r\n", -EINVAL },
	{ "connect (methods are case-sensitive)", "connect a.test:443 HTTP/1.1\r\n\r\n", -EINVAL },
	{ "URI userinfo", "GET http://u:p@a.test/ HTTP/1.1\r\n\r\n", -EINVAL },
	{ "URI empty host", "GET http:///x HTTP/1.1\r\n\r\n", -EINVAL },
	{ "URI empty host with port", "GET http://:80/ HTTP/1.1\r\n\r\n", -EINVAL },
	{ "URI percent-encoded host", "GET http://ex%41mple.com/ HTTP/1.1\r\n\r\n", -EINVAL },
	{ "URI fragment", "GET http://a.test/#top HTTP/1.1\r\n\r\n", -EINVAL },
	{ "URI port out of range", "GET http://a.test:99999/ HTTP/1.1\r\n\r\n", -EINVAL },
	{ "URI empty port", "GET http://a.test:/ HTTP/1.1\r\n\r\n", -EINVAL },
	{ "HTTP/2.0", "GET http://a.test/ HTTP/2.0\r\n\r\n", -EINVAL },
	{ "HTTP/1.2", "GET http://a.test/ HTTP/1.2\r\n\r\n", -EINVAL },
	{ "lower-case version", "GET http://a.test/ http/1.1\r\n\r\n", -EINVAL },
	{ "no version", "GET http://a.test/\r\n\r\n", -EINVAL },
	{ "trailing space after the version", "GET http://a.test/ HTTP/1.1 \r\n\r\n", -EINVAL },
	{ "two spaces", "GET  http://a.test/ HTTP/1.1\r\n\r\n", -EINVAL },
	{ "a tab for a space", "GET\thttp://a.test/ HTTP/1.1\r\n\r\n", -EINVAL },
	{ "a method of 16 characters", "ABCDEFGHIJKLMNOP http://a.test/ HTTP/1.1\r\n\r\n", -EINVAL },
	{ "a method with a slash", "GE/T http://a.test/ HTTP/1.1\r\n\r\n", -EINVAL },
	{ "a control byte in the target", "GET http://a.test/\x01 HTTP/1.1\r\n\r\n", -EINVAL },
	{ "a high byte in the target", "GET http://a.test/\xff HTTP/1.1\r\n\r\n", -EINVAL },
	{ "a header without a colon", "GET http://a.test/ HTTP/1.1\r\nNoColon\r\n\r\n", -EINVAL },
	{ "a space before the colon", "GET http://a.test/ HTTP/1.1\r\nHost : a.test\r\n\r\n", -EINVAL },
	{ "an empty header name", "GET http://a.test/ HTTP/1.1\r\n: x\r\n\r\n", -EINVAL },
	{ "obs-fold with a space", "GET http://a.test/ HTTP/1.1\r\nX-A: 1\r\n 2\r\n\r\n", -EINVAL },
	{ "obs-fold with a tab", "GET http://a.test/ HTTP/1.1\r\nX-A: 1\r\n\t2\r\n\r\n", -EINVAL },
	{ "two Host headers", "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nhost: b.test\r\n\r\n", -EINVAL },
	{ "a control byte in a value", "GET http://a.test/ HTTP/1.1\r\nX-A: a\x1b[0m\r\n\r\n", -EINVAL },
	{ "DEL in a value", "GET http://a.test/ HTTP/1.1\r\nX-A: a\x7f\r\n\r\n", -EINVAL },
	{ "a bare LF ending the request line", "GET http://a.test/ HTTP/1.1\nHost: a\r\n\r\n", -EINVAL },
	{ "bare LFs only", "GET http://a.test/ HTTP/1.1\n\n", -EINVAL },
	{ "a bare CR in a value", "GET http://a.test/ HTTP/1.1\r\nX-A: a\rb\r\n\r\n", -EINVAL },
	{ "an empty line before the request line", "\r\nGET http://a.test/ HTTP/1.1\r\n\r\n", -EINVAL },
	{ "a TLS ClientHello sent to the HTTP port", "\x16\x03\x01\x02\x01\x01", -EINVAL },
	{ "an SSH banner sent to the HTTP port", "SSH-2.0-OpenSSH_9.2p1\r\n", -EINVAL },
};

static void check_http_case(const struct http_case *c)
{
	struct ab_http_request req;
	size_t len = strlen(c->in);
	char *buf = exact(c->in, len);
	int r = ab_http_parse_request(buf, len, &req);

	if (c->want != 1) {
		ok(r == c->want, "http: %s -> %d (got %d)", c->name, c->want, r);
		ok(req.upstream_head == NULL, "http: %s: nothing allocated", c->name);
		free(buf);
		return;
	}
	ok(r == 1 && strcmp(req.host, c->host) == 0 && req.port == c->port && req.connect == c->connect,
	   "http: %s -> %s:%u (got %d %s:%u)", c->name, c->host, c->port, r, req.host, req.port);
	if (c->upstream)
		ok(req.upstream_head && req.upstream_len == strlen(c->upstream) &&
			   strcmp(req.upstream_head, c->upstream) == 0,
		   "http: %s: upstream head is exact", c->name);
	else
		ok(req.upstream_head == NULL && req.upstream_len == 0, "http: %s: no upstream head", c->name);
	ok(req.head_len == (size_t)(strstr(c->in, "\r\n\r\n") - c->in) + 4, "http: %s: head_len %zu",
	   c->name, req.head_len);
	ab_http_request_free(&req);
	ab_http_request_free(&req); /* twice is harmless */
	free(buf);
}

/* Every prefix of a good head asks for more; every prefix of a bad one asks for more or
 * gives the same refusal; none is ever accepted. */
static void check_http_prefixes(const struct http_case *c)
{
	size_t len = strlen(c->in);
	size_t head_end = c->want == 1 ? (size_t)(strstr(c->in, "\r\n\r\n") - c->in) + 4 : len;
	bool good = true;

	for (size_t i = 0; i < head_end; i++) {
		struct ab_http_request req;
		char *buf = exact(c->in, i);
		int r = ab_http_parse_request(buf, i, &req);

		if (r == 1)
			ab_http_request_free(&req);
		if (c->want == 1 ? r != 0 : (r != 0 && r != c->want))
			good = false;
		free(buf);
	}
	ok(good, "http: %s: each of %zu prefixes %s", c->name, head_end,
	   c->want == 1 ? "needs more bytes" : "needs more bytes or is refused the same way");
}

/* "GET http://a.test/ HTTP/1.1\r\n" + headers padded to make a head of `total` bytes. */
static char *make_big_head(size_t total, size_t *len)
{
	static const char first[] = "GET http://a.test/ HTTP/1.1\r\n";
	char *b = malloc(total + 1), *o = b;
	size_t left;

	if (!b)
		abort();
	o += sprintf(o, "%s", first);
	left = total - (sizeof(first) - 1) - 2;
	while (left) {
		/* "X: " + value + CRLF; at least 5 bytes */
		size_t line = left > 8000 ? 8000 : left;
		if (left - line > 0 && left - line < 5)
			line -= 5;
		memcpy(o, "X: ", 3);
		memset(o + 3, 'v', line - 5);
		memcpy(o + line - 2, "\r\n", 2);
		o += line;
		left -= line;
	}
	memcpy(o, "\r\n", 2);
	o += 2;
	*o = '\0';
	*len = (size_t)(o - b);
	return b;
}

static char *make_many_headers(size_t n, size_t *len)
{
	char *b = malloc(64 + n * 16), *o = b;

	if (!b)
		abort();
	o += sprintf(o, "GET http://a.test/ HTTP/1.1\r\n");
	for (size_t i = 0; i < n; i++)
		o += sprintf(o, "X-%zu: v\r\n", i);
	o += sprintf(o, "\r\n");
	*len = (size_t)(o - b);
	return b;
}

static void test_http_limits(void)
{
	struct ab_http_request req;
	size_t len;
	char *b;
	int r;

	b = make_big_head(AB_HTTP_MAX_HEAD, &len);
	r = ab_http_parse_request(b, len, &req);
	ok(len == AB_HTTP_MAX_HEAD && r == 1 && req.head_len == len, "http: a head of exactly 64 KiB is accepted (%d)", r);
	ab_http_request_free(&req);
	free(b);

	b = make_big_head(AB_HTTP_MAX_HEAD + 1, &len);
	r = ab_http_parse_request(b, len, &req);
	ok(len == AB_HTTP_MAX_HEAD + 1 && r == -E2BIG, "http: a head of 64 KiB + 1 is -E2BIG (%d)", r);
	r = ab_http_parse_request(b, AB_HTTP_MAX_HEAD, &req);
	ok(r == -E2BIG, "http: its first 64 KiB, still without an end, are -E2BIG already (%d)", r);
	r = ab_http_parse_request(b, AB_HTTP_MAX_HEAD - 1, &req);
	ok(r == 0, "http: one byte less needs more (%d)", r);
	free(b);

	b = make_big_head(70 * 1024, &len);
	r = ab_http_parse_request(b, len, &req);
	ok(r == -E2BIG, "http: a 70 KiB head is -E2BIG (%d)", r);
	free(b);

	b = make_many_headers(AB_HTTP_MAX_HEADERS, &len);
	r = ab_http_parse_request(b, len, &req);
	ok(r == 1, "http: %d headers are accepted (%d)", AB_HTTP_MAX_HEADERS, r);
	ab_http_request_free(&req);
	free(b);

	b = make_many_headers(AB_HTTP_MAX_HEADERS + 1, &len);
	ok(ab_http_parse_request(b, len, &req) == -E2BIG, "http: %d headers are -E2BIG", AB_HTTP_MAX_HEADERS + 1);
	free(b);

	b = make_many_headers(200, &len);
	ok(ab_http_parse_request(b, len, &req) == -E2BIG, "http: 200 headers are -E2BIG");
	free(b);

	/* Host names: 255 characters fit, 256 do not. */
	{
		char name[300], line[400];
		memset(name, 'a', 255);
		name[255] = '\0';
		snprintf(line, sizeof(line), "CONNECT %s:443 HTTP/1.1\r\n\r\n", name);
		r = ab_http_parse_request(line, strlen(line), &req);
		ok(r == 1 && strlen(req.host) == 255, "http: a host of 255 characters is accepted (%d)", r);
		snprintf(line, sizeof(line), "CONNECT %sa:443 HTTP/1.1\r\n\r\n", name);
		ok(ab_http_parse_request(line, strlen(line), &req) == -EINVAL, "http: a host of 256 characters is -EINVAL");
		snprintf(line, sizeof(line), "GET http://%sa/ HTTP/1.1\r\n\r\n", name);
		ok(ab_http_parse_request(line, strlen(line), &req) == -EINVAL, "http: so is a URI host of 256");
	}

	/* NUL bytes: in the request line, in a header, right after a CR. */
	{
		static const char nul1[] = "GET http://a.test/\0x HTTP/1.1\r\n\r\n";
		static const char nul2[] = "GET http://a.test/ HTTP/1.1\r\nX-A: a\0b\r\n\r\n";
		static const char nul3[] = "GET http://a.test/ HTTP/1.1\r\0\n\r\n";
		ok(ab_http_parse_request(nul1, sizeof(nul1) - 1, &req) == -EINVAL, "http: a NUL in the request line");
		ok(ab_http_parse_request(nul2, sizeof(nul2) - 1, &req) == -EINVAL, "http: a NUL in a header value");
		ok(ab_http_parse_request(nul3, sizeof(nul3) - 1, &req) == -EINVAL, "http: a NUL after a CR");
		ok(ab_http_parse_request(nul1, 20, &req) == -EINVAL, "http: a NUL is refused before the head is whole");
	}
	ok(ab_http_parse_request("", 0, &req) == 0, "http: no bytes: more needed");
	ok(ab_http_parse_request(NULL, 0, &req) == -EINVAL, "http: NULL buffer: -EINVAL");
}

static void test_http_sniff(void)
{
	static const struct {
		const char *name, *in;
		int want;
		const char *host;
		uint16_t port;
	} cases[] = {
		{ "Host with a port", "GET /index.html HTTP/1.1\r\nUser-Agent: x\r\nHost: Example.com:8080\r\n\r\n", 1, "example.com", 8080 },
		{ "Host without a port", "POST /api HTTP/1.1\r\nHost: api.test\r\nContent-Length: 2\r\n\r\n{}", 1, "api.test", 80 },
		{ "Host IPv6", "GET / HTTP/1.1\r\nHost: [::1]:81\r\n\r\n", 1, "::1", 81 },
		{ "Host with spaces around", "GET / HTTP/1.1\r\nHost: \t a.test \r\n\r\n", 1, "a.test", 80 },
		{ "no Host", "GET / HTTP/1.0\r\nAccept: */*\r\n\r\n", -ENOENT, NULL, 0 },
		{ "two Hosts", "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", -EPROTO, NULL, 0 },
		{ "an empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", -EPROTO, NULL, 0 },
		{ "a Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a.test\r\n\r\n", -EPROTO, NULL, 0 },
		{ "a Host with a bad port", "GET / HTTP/1.1\r\nHost: a.test:http\r\n\r\n", -EPROTO, NULL, 0 },
		{ "a TLS record", "\x16\x03\x01\x02\x00", -EPROTO, NULL, 0 },
		{ "an SSH banner", "SSH-2.0-OpenSSH_9.2p1 Debian\r\n", -EPROTO, NULL, 0 },
		{ "a short SSH banner", "SSH-2.0-Go\r\n", -EPROTO, NULL, 0 },
		{ "bare LFs", "GET / HTTP/1.1\nHost: a.test\n\n", -EPROTO, NULL, 0 },
		{ "obs-fold", "GET / HTTP/1.1\r\nHost: a.test\r\n x\r\n\r\n", -EPROTO, NULL, 0 },
		{ "not yet a whole head", "GET / HTTP/1.1\r\nHost: a.test\r\n", 0, NULL, 0 },
		{ "only a method so far", "GET", 0, NULL, 0 },
	};
	char host[AB_HOST_MAX], small[4];
	uint16_t port;

	for (size_t i = 0; i < AB_ELEMENTSOF(cases); i++) {
		size_t len = strlen(cases[i].in);
		char *buf = exact(cases[i].in, len);
		int r = ab_http_sniff_host(buf, len, host, sizeof(host), &port);
		bool prefixes = true;

		if (cases[i].want == 1)
			ok(r == 1 && strcmp(host, cases[i].host) == 0 && port == cases[i].port,
			   "sniff host: %s -> %s:%u (got %d)", cases[i].name, cases[i].host, cases[i].port, r);
		else
			ok(r == cases[i].want, "sniff host: %s -> %d (got %d)", cases[i].name, cases[i].want, r);
		free(buf);
		for (size_t j = 0; j < len; j++) {
			const char *end = strstr(cases[i].in, "\r\n\r\n");
			size_t head_end = end ? (size_t)(end - cases[i].in) + 4 : len;

			buf = exact(cases[i].in, j);
			r = ab_http_sniff_host(buf, j, host, sizeof(host), &port);
			if (cases[i].want == 1 ? r != (j < head_end ? 0 : 1) : (r == 1 || (r != 0 && r != cases[i].want)))
				prefixes = false;
			free(buf);
		}
		ok(prefixes, "sniff host: %s: prefixes need more bytes or fail alike", cases[i].name);
	}
	{
		static const char in[] = "GET / HTTP/1.1\r\nHost: long.test\r\n\r\n";
		ok(ab_http_sniff_host(in, sizeof(in) - 1, small, sizeof(small), &port) == -ENOSPC,
		   "sniff host: a name longer than the buffer is -ENOSPC");
	}
	{
		size_t len;
		char *b = make_big_head(AB_HTTP_MAX_HEAD + 10, &len);
		ok(ab_http_sniff_host(b, len, host, sizeof(host), &port) == -E2BIG, "sniff host: over 64 KiB is -E2BIG");
		free(b);
	}
}

static void test_http_response(void)
{
	char out[512];
	int n = ab_http_format_response(out, sizeof(out), 403, "Forbidden",
					"agentbox: egress to x.test:443 denied by policy (default deny: no rule allows it)\n");
	static const char want[] = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 82\r\n"
				   "Connection: close\r\n\r\n"
				   "agentbox: egress to x.test:443 denied by policy (default deny: no rule allows it)\n";

	ok(n == (int)strlen(want) && strcmp(out, want) == 0, "response: 403 with its body, exact bytes");
	n = ab_http_format_response(out, sizeof(out), 502, "Bad Gateway", NULL);
	ok(n > 0 && strstr(out, "Content-Length: 0\r\n") && strcmp(out + n - 4, "\r\n\r\n") == 0,
	   "response: no body is Content-Length: 0");
	ok(ab_http_format_response(out, 40, 403, "Forbidden", "body") == -ENOSPC, "response: too small a buffer is -ENOSPC");
	ok(ab_http_format_response(out, sizeof(out), 200, "OK\r\nSet-Cookie: x", "") == -EINVAL,
	   "response: a reason with CRLF is -EINVAL");
	ok(ab_http_format_response(out, sizeof(out), 42, "x", "") == -EINVAL, "response: status 42 is -EINVAL");
}

/* ---------------------------------------------------------------- SOCKS5 */

struct bytes_case {
	const char *name;
	uint8_t in[300];
	size_t len;
	int want;
	size_t consumed;
	uint8_t reply;
	const char *host;
	uint16_t port;
};

static void test_socks_greeting(void)
{
	static const struct bytes_case cases[] = {
		{ "no-auth only", { 5, 1, 0 }, 3, 1, 3 },
		{ "user/pass and no-auth", { 5, 2, 2, 0 }, 4, 1, 4 },
		{ "greeting followed by the request", { 5, 1, 0, 5, 1, 0, 1 }, 7, 1, 3 },
		{ "user/pass only", { 5, 1, 2 }, 3, -EACCES },
		{ "no methods", { 5, 0 }, 2, -EACCES },
		{ "SOCKS4", { 4, 1, 0, 80, 127, 0, 0, 1, 0 }, 9, -EPROTO },
		{ "an HTTP request", { 'G', 'E', 'T', ' ' }, 4, -EPROTO },
	};
	size_t consumed;

	for (size_t i = 0; i < AB_ELEMENTSOF(cases); i++) {
		const struct bytes_case *c = &cases[i];
		uint8_t *buf = exact(c->in, c->len);
		int r = ab_socks_parse_greeting(buf, c->len, &consumed);
		bool prefixes = true;

		ok(r == c->want && (r != 1 || consumed == c->consumed), "socks greeting: %s -> %d (got %d)", c->name,
		   c->want, r);
		free(buf);
		for (size_t j = 0; j < c->len; j++) {
			buf = exact(c->in, j);
			r = ab_socks_parse_greeting(buf, j, &consumed);
			if (j < c->consumed || c->want != 1 ? (r != 0 && r != c->want) || r == 1 : r != 1)
				prefixes = false;
			free(buf);
		}
		ok(prefixes, "socks greeting: %s: at every cut", c->name);
	}
	{
		uint8_t all[257] = { 5, 255 };
		for (int m = 0; m < 255; m++)
			all[2 + m] = (uint8_t)(254 - m); /* 0x00 offered last */
		ok(ab_socks_parse_greeting(all, sizeof(all), &consumed) == 1 && consumed == 257,
		   "socks greeting: 255 methods, no-auth the last");
		ok(ab_socks_parse_greeting(all, 256, &consumed) == 0, "socks greeting: one method short needs more");
	}
}

static void test_socks_request(void)
{
	static struct bytes_case cases[] = {
		{ "CONNECT IPv4", { 5, 1, 0, 1, 127, 0, 0, 1, 0, 80 }, 10, 1, 10, AB_SOCKS_REP_OK, "127.0.0.1", 80 },
		{ "CONNECT IPv6", { 5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x01, 0xbb },
		  22, 1, 22, AB_SOCKS_REP_OK, "2001:db8::1", 443 },
		{ "CONNECT name", { 5, 1, 0, 3, 11, 'E', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', 0x01, 0xbb },
		  18, 1, 18, AB_SOCKS_REP_OK, "Example.com", 443 },
		{ "CONNECT name, then data", { 5, 1, 0, 3, 1, 'a', 0, 22, 'S', 'S', 'H' }, 11, 1, 8, AB_SOCKS_REP_OK, "a", 22 },
		{ "a zero-length name", { 5, 1, 0, 3, 0, 0, 80 }, 7, -EINVAL, 0, AB_SOCKS_REP_FAILURE },
		{ "a NUL in the name", { 5, 1, 0, 3, 3, 'a', 0, 'b', 0, 80 }, 10, -EINVAL, 0, AB_SOCKS_REP_FAILURE },
		{ "a space in the name", { 5, 1, 0, 3, 3, 'a', ' ', 'b', 0, 80 }, 10, -EINVAL, 0, AB_SOCKS_REP_FAILURE },
		{ "a high byte in the name", { 5, 1, 0, 3, 2, 'a', 0xc3, 0, 80 }, 9, -EINVAL, 0, AB_SOCKS_REP_FAILURE },
		{ "BIND", { 5, 2, 0, 1, 0, 0, 0, 0, 0, 0 }, 10, -EOPNOTSUPP, 0, AB_SOCKS_REP_CMD_UNSUPPORTED },
		{ "UDP ASSOCIATE", { 5, 3, 0, 1, 0, 0, 0, 0, 0, 0 }, 10, -EOPNOTSUPP, 0, AB_SOCKS_REP_CMD_UNSUPPORTED },
		{ "command 0", { 5, 0, 0, 1, 0, 0, 0, 0, 0, 0 }, 10, -EOPNOTSUPP, 0, AB_SOCKS_REP_CMD_UNSUPPORTED },
		{ "ATYP 2", { 5, 1, 0, 2, 1, 2, 3, 4, 0, 80 }, 10, -EAFNOSUPPORT, 0, AB_SOCKS_REP_ATYP_UNSUPPORTED },
		{ "ATYP 0", { 5, 1, 0, 0 }, 4, -EAFNOSUPPORT, 0, AB_SOCKS_REP_ATYP_UNSUPPORTED },
		{ "VER 4", { 4, 1, 0, 1, 127, 0, 0, 1, 0, 80 }, 10, -EINVAL, 0, AB_SOCKS_REP_FAILURE },
		{ "RSV not zero", { 5, 1, 1, 1, 127, 0, 0, 1, 0, 80 }, 10, -EINVAL, 0, AB_SOCKS_REP_FAILURE },
		{ "port 0", { 5, 1, 0, 1, 127, 0, 0, 1, 0, 0 }, 10, -EINVAL, 0, AB_SOCKS_REP_FAILURE },
	};
	struct ab_socks_request req;
	size_t consumed;
	uint8_t reply;

	for (size_t i = 0; i < AB_ELEMENTSOF(cases); i++) {
		struct bytes_case *c = &cases[i];
		uint8_t *buf = exact(c->in, c->len);
		int r = ab_socks_parse_request(buf, c->len, &req, &consumed, &reply);
		bool prefixes = true;

		if (c->want == 1)
			ok(r == 1 && consumed == c->consumed && req.cmd == 1 && strcmp(req.host, c->host) == 0 &&
				   req.port == c->port,
			   "socks request: %s -> %s:%u (got %d %s:%u)", c->name, c->host, c->port, r, req.host, req.port);
		else
			ok(r == c->want && reply == c->reply, "socks request: %s -> %d, reply 0x%02x (got %d, 0x%02x)",
			   c->name, c->want, c->reply, r, reply);
		free(buf);
		for (size_t j = 0; j < c->len; j++) {
			buf = exact(c->in, j);
			r = ab_socks_parse_request(buf, j, &req, &consumed, &reply);
			if (c->want == 1 ? (j < c->consumed ? r != 0 : r != 1) : (r == 1 || (r != 0 && r != c->want)))
				prefixes = false;
			free(buf);
		}
		ok(prefixes, "socks request: %s: at every cut", c->name);
	}

	/* A name of 255 bytes, the most a length byte can say. */
	{
		uint8_t buf[5 + 255 + 2] = { 5, 1, 0, 3, 255 };
		bool prefixes = true;
		int r;

		memset(buf + 5, 'n', 255);
		buf[5 + 255] = 0x01;
		buf[5 + 256] = 0xbb;
		r = ab_socks_parse_request(buf, sizeof(buf), &req, &consumed, &reply);
		ok(r == 1 && strlen(req.host) == 255 && req.port == 443 && consumed == sizeof(buf),
		   "socks request: a 255-byte name is accepted");
		for (size_t j = 0; j < sizeof(buf); j++) {
			uint8_t *p = exact(buf, j);
			if (ab_socks_parse_request(p, j, &req, &consumed, &reply) != 0)
				prefixes = false;
			free(p);
		}
		ok(prefixes, "socks request: a 255-byte name at every cut needs more");
	}

	{
		uint8_t out[10], want[10] = { 5, AB_SOCKS_REP_NOT_ALLOWED, 0, 1, 0, 0, 0, 0, 0, 0 };
		ok(ab_socks_format_reply(out, AB_SOCKS_REP_NOT_ALLOWED) == 10 && memcmp(out, want, 10) == 0,
		   "socks reply: 05 02 00 01 0.0.0.0:0");
	}
}

/* ---------------------------------------------------------------- TLS SNI */

/* Captured from `openssl s_client -connect 127.0.0.1:PORT -servername x.test` (OpenSSL
 * 3.0.19) by a listener that read the first record; then the same with -noservername. */
static const char tls_captured_sni[] =
	"16030101330100012f03031e41a89a6ee722dc6ec53763f422169467a73aced1b05e85becba2fb48f28c"
	"d220fb54b568e322e54dd9cb4a83dd27f9f8fbe98cd5a512e6b7361791d667566fbf003e130213031301"
	"c02cc030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033"
	"009d009c003d003c0035002f00ff010000a80000000b0009000006782e74657374000b00040300010200"
	"0a00160014001d0017001e0019001801000101010201030104002300000016000000170000000d002a00"
	"28040305030603080708080809080a080b08040805080604010501060103030301030204020502060200"
	"2b0009080304030303020301002d00020101003300260024001d00201566b3c18042794ee2070ef5aa37"
	"3c5eaa1da9ae39c502a96589932788bc1825";
static const char tls_captured_nosni[] =
	"16030101240100012003031b63191bde5a2f5dc899012de599638fd321cf1e93d6c6696a60b41d909cdc"
	"932090466c73fc29b84e330a5ce13798efba140871b6fc6bd1bbd1e6b3ce5625e5ec003e130213031301"
	"c02cc030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033"
	"009d009c003d003c0035002f00ff01000099000b000403000102000a00160014001d0017001e00190018"
	"01000101010201030104002300000016000000170000000d002a0028040305030603080708080809080a"
	"080b080408050806040105010601030303010302040205020602002b0009080304030303020301002d00"
	"020101003300260024001d0020f64ff25c5d5842fc89889ff1453e56a0adfa92ba2880da4007a60b943d"
	"6b6d73";

static size_t unhex(const char *hex, uint8_t *out, size_t size)
{
	size_t n = 0;

	for (; hex[0] && hex[1] && n < size; hex += 2) {
		unsigned v;
		if (sscanf(hex, "%2x", &v) != 1)
			abort();
		out[n++] = (uint8_t)v;
	}
	return n;
}

static size_t put16(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return 2;
}

/* A server_name extension with the given entries (type 0 unless types says otherwise). */
static size_t sni_ext(uint8_t *out, const char *const *names, const uint8_t *types, size_t n)
{
	size_t list = 0, o = 4 + 2;

	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(names[i]);
		out[o++] = types ? types[i] : 0;
		o += put16(out + o, l);
		memcpy(out + o, names[i], l);
		o += l;
		list += 3 + l;
	}
	put16(out, 0x0000);
	put16(out + 2, list + 2);
	put16(out + 4, list);
	return o;
}

/* A TLS 1.3-shaped ClientHello in one record: supported_versions then the given
 * extensions, or no extensions block at all when exts is NULL. */
static size_t client_hello(uint8_t *out, const uint8_t *exts, size_t exts_len)
{
	static const uint8_t versions[] = { 0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04 };
	size_t o = 9;

	o += put16(out + o, 0x0303);
	memset(out + o, 0xab, 32); /* random */
	o += 32;
	out[o++] = 32; /* session id */
	memset(out + o, 0xcd, 32);
	o += 32;
	o += put16(out + o, 4); /* cipher suites */
	o += put16(out + o, 0x1301);
	o += put16(out + o, 0x1302);
	out[o++] = 1; /* compression: null */
	out[o++] = 0;
	if (exts) {
		o += put16(out + o, exts_len + sizeof(versions));
		memcpy(out + o, versions, sizeof(versions));
		o += sizeof(versions);
		memcpy(out + o, exts, exts_len);
		o += exts_len;
	}
	out[0] = 0x16;
	out[1] = 0x03;
	out[2] = 0x01;
	put16(out + 3, o - 5);
	out[5] = 0x01;
	out[6] = (uint8_t)((o - 9) >> 16);
	put16(out + 7, o - 9);
	return o;
}

/* The sniffer on an exact-size copy. */
static int sniff(const uint8_t *p, size_t n, char *host, size_t size)
{
	uint8_t *c = exact(p, n);
	int r = ab_tls_sniff_sni(c, n, host, size);
	free(c);
	return r;
}

static bool sni_prefixes_need_more(const uint8_t *p, size_t n)
{
	char host[AB_HOST_MAX];

	for (size_t j = 0; j < n; j++)
		if (sniff(p, j, host, sizeof(host)) != 0)
			return false;
	return true;
}

static void test_sni_captured(void)
{
	uint8_t hello[400], more[420];
	char host[AB_HOST_MAX];
	size_t n;
	int r;

	n = unhex(tls_captured_sni, hello, sizeof(hello));
	r = sniff(hello, n, host, sizeof(host));
	ok(n == 312 && r == 1 && strcmp(host, "x.test") == 0,
	   "sni: openssl s_client -servername x.test -> x.test (got %d '%s')", r, host);
	ok(sni_prefixes_need_more(hello, n), "sni: the captured hello at each of %zu cuts needs more", n);
	memcpy(more, hello, n);
	memcpy(more + n, "\x14\x03\x03\x00\x01\x01", 6); /* a next record */
	ok(sniff(more, n + 6, host, sizeof(host)) == 1, "sni: bytes after the first record are not read");

	n = unhex(tls_captured_nosni, hello, sizeof(hello));
	r = sniff(hello, n, host, sizeof(host));
	ok(n == 297 && r == -ENOENT && host[0] == '\0', "sni: openssl s_client -noservername -> -ENOENT (got %d)", r);
	ok(sni_prefixes_need_more(hello, n), "sni: the captured hello without SNI at every cut needs more");
}

static void test_sni_built(void)
{
	static uint8_t hello[20000], ext[2000], ext2[2000];
	char host[AB_HOST_MAX], name255[256], name256[257];
	size_t n, e;
	int r;

	{
		const char *names[] = { "API.Example.COM" };
		e = sni_ext(ext, names, NULL, 1);
		n = client_hello(hello, ext, e);
		r = sniff(hello, n, host, sizeof(host));
		ok(r == 1 && strcmp(host, "api.example.com") == 0, "sni: built hello, name lower-cased");
		ok(sni_prefixes_need_more(hello, n), "sni: built hello at every cut needs more");
		ok(sniff(hello, n, host, 4) == -EPROTO && host[0] == '\0', "sni: a name longer than host_size - 1 is -EPROTO");
		ok(ab_tls_sniff_sni(hello, n, host, 1) == -EINVAL, "sni: host_size 1 is -EINVAL");
	}
	{
		const char *names[1];
		memset(name255, 'a', 255);
		name255[255] = '\0';
		names[0] = name255;
		e = sni_ext(ext, names, NULL, 1);
		n = client_hello(hello, ext, e);
		ok(sniff(hello, n, host, sizeof(host)) == 1 && strlen(host) == 255, "sni: a 255-byte name");
		memset(name256, 'a', 256);
		name256[256] = '\0';
		names[0] = name256;
		e = sni_ext(ext, names, NULL, 1);
		n = client_hello(hello, ext, e);
		{
			char big[1024];
			ok(sniff(hello, n, big, sizeof(big)) == -EPROTO, "sni: a 256-byte name is -EPROTO even with room for it");
		}
	}
	{
		const char *names[] = { "aXb" };
		e = sni_ext(ext, names, NULL, 1);
		ext[e - 2] = 0; /* "a\0b" */
		n = client_hello(hello, ext, e);
		ok(sniff(hello, n, host, sizeof(host)) == -EPROTO, "sni: a NUL in the name is -EPROTO");
		ext[e - 2] = ' ';
		n = client_hello(hello, ext, e);
		ok(sniff(hello, n, host, sizeof(host)) == -EPROTO, "sni: a space in the name is -EPROTO");
	}
	{
		const char *names[] = { "a.test", "b.test" };
		uint8_t types[] = { 7, 0 };
		e = sni_ext(ext, names, NULL, 2);
		n = client_hello(hello, ext, e);
		ok(sniff(hello, n, host, sizeof(host)) == -EPROTO, "sni: two host_name entries are -EPROTO");
		e = sni_ext(ext, names, types, 2);
		n = client_hello(hello, ext, e);
		ok(sniff(hello, n, host, sizeof(host)) == 1 && strcmp(host, "b.test") == 0,
		   "sni: an entry of another type is skipped");
		types[1] = 7;
		e = sni_ext(ext, names, types, 2);
		n = client_hello(hello, ext, e);
		ok(sniff(hello, n, host, sizeof(host)) == -ENOENT, "sni: no host_name entry is -ENOENT");
	}
	{
		const char *names[] = { "a.test" };
		e = sni_ext(ext, names, NULL, 1);
		memcpy(ext2, ext, e);
		memcpy(ext2 + e, ext, e);
		n = client_hello(hello, ext2, 2 * e);
		ok(sniff(hello, n, host, sizeof(host)) == -EPROTO, "sni: the extension twice is -EPROTO");

		n = client_hello(hello, ext, e);
		hello[n - e + 5]++; /* server_name_list length one too many */
		ok(sniff(hello, n, host, sizeof(host)) == -EPROTO, "sni: a list length that does not add up");

		n = client_hello(hello, ext, e);
		hello[n - e + 3]++; /* the extension's length runs past the block */
		ok(sniff(hello, n, host, sizeof(host)) == -EPROTO, "sni: an extension length that does not add up");

		n = client_hello(hello, ext, e);
		put16(hello + 4 + 5 + 2 + 32 + 33 + 6 + 2, 7 + e - 1); /* extensions block one short */
		ok(sniff(hello, n, host, sizeof(host)) == -EPROTO, "sni: an extensions block length that does not add up");

		n = client_hello(hello, ext, e);
		hello[n] = 0;
		put16(hello + 3, n + 1 - 5); /* a trailing byte in the record */
		ok(sniff(hello, n + 1, host, sizeof(host)) == -EPROTO, "sni: a record longer than its handshake is -EPROTO");

		n = client_hello(hello, ext, e);
		put16(hello + 7, (n - 9) + 100); /* the handshake goes on in a next record */
		ok(sniff(hello, n, host, sizeof(host)) == -ENOENT, "sni: a ClientHello split over records is -ENOENT");

		n = client_hello(hello, ext, e);
		hello[0] = 0x17;
		ok(sniff(hello, n, host, sizeof(host)) == -EPROTO, "sni: application data is -EPROTO");
		ok(sniff(hello, 1, host, sizeof(host)) == -EPROTO, "sni: ... from its first byte");

		n = client_hello(hello, ext, e);
		hello[5] = 0x02;
		ok(sniff(hello, 6, host, sizeof(host)) == -EPROTO, "sni: a ServerHello is -EPROTO from byte 6");

		n = client_hello(hello, ext, e);
		hello[1] = 0x02;
		ok(sniff(hello, 2, host, sizeof(host)) == -EPROTO, "sni: record version 2.x is -EPROTO");

		n = client_hello(hello, ext, e);
		put16(hello + 3, 16385);
		ok(sniff(hello, 5, host, sizeof(host)) == -EPROTO, "sni: a record over 16 KiB is -EPROTO at once");

		n = client_hello(hello, ext, e);
		hello[9 + 2 + 32] = 33; /* a session id of 33 bytes */
		ok(sniff(hello, n, host, sizeof(host)) == -EPROTO, "sni: a session id over 32 bytes is -EPROTO");

		n = client_hello(hello, ext, e);
		hello[9 + 2 + 32 + 33 + 1] = 3; /* an odd cipher suites length */
		ok(sniff(hello, n, host, sizeof(host)) == -EPROTO, "sni: an odd cipher suites length is -EPROTO");
	}
	{
		n = client_hello(hello, NULL, 0);
		ok(sniff(hello, n, host, sizeof(host)) == -ENOENT, "sni: a hello without extensions is -ENOENT");
		ok(sni_prefixes_need_more(hello, n), "sni: ... at every cut needs more");
		n = client_hello(hello, ext, 0);
		ok(sniff(hello, n, host, sizeof(host)) == -ENOENT, "sni: a hello without SNI is -ENOENT");
	}
	{
		/* A big hello (a post-quantum key share) still in one record. */
		static uint8_t share[1300];
		const char *names[] = { "pq.test" };
		e = sni_ext(ext, names, NULL, 1);
		put16(share, 0x0033);
		put16(share + 2, sizeof(share) - 4);
		memset(share + 4, 0x5a, sizeof(share) - 4);
		memcpy(ext2, share, sizeof(share));
		memcpy(ext2 + sizeof(share), ext, e);
		n = client_hello(hello, ext2, sizeof(share) + e);
		ok(sniff(hello, n, host, sizeof(host)) == 1 && strcmp(host, "pq.test") == 0,
		   "sni: a 1.4 KB hello with the name after a large key share");
		ok(sni_prefixes_need_more(hello, n), "sni: ... at every cut needs more");
	}
	{
		static const char get[] = "GET / HTTP/1.1\r\n";
		ok(sniff((const uint8_t *)get, sizeof(get) - 1, host, sizeof(host)) == -EPROTO, "sni: HTTP is -EPROTO");
		ok(sniff((const uint8_t *)"", 0, host, sizeof(host)) == 0, "sni: no bytes: more needed");
	}
}

/* Every single-bit flip of the captured hello, each also cut short: an answer, never a
 * crash, and a name found is always short, printable and lower case. */
static void test_sni_flips(void)
{
	uint8_t orig[400], hello[400];
	char host[AB_HOST_MAX];
	size_t len = unhex(tls_captured_sni, orig, sizeof(orig)), found = 0;
	bool sane = true;

	for (size_t i = 0; i < len; i++)
		for (int bit = 0; bit < 8; bit++) {
			memcpy(hello, orig, len);
			hello[i] ^= (uint8_t)(1u << bit);
			for (size_t cut = (i < 60 ? 0 : len - 8); cut <= len; cut++) {
				int r = sniff(hello, cut, host, sizeof(host));
				if (r == 1) {
					found++;
					if (!host[0] || strlen(host) >= sizeof(host) ||
					    strpbrk(host, " \t\r\nABCDEFGHIJKLMNOPQRSTUVWXYZ"))
						sane = false;
				} else if (r != 0 && r != -ENOENT && r != -EPROTO) {
					sane = false;
				}
			}
		}
	ok(sane && found > 0, "sni: %zu bit flips of the captured hello, cut short: sane answers (%zu names)",
	   len * 8, found);
}

/* ---------------------------------------------------------------- DNS */

/* A query by hand: header, the name as labels, type, class, and an EDNS OPT record in
 * the additional section when edns is set. */
static size_t dns_query(uint8_t *out, uint16_t id, uint16_t flags, const char *name, uint16_t qtype,
			uint16_t qclass, bool edns)
{
	size_t o = 12;
	const char *p = name;

	put16(out, id);
	put16(out + 2, flags);
	put16(out + 4, 1);
	put16(out + 6, 0);
	put16(out + 8, 0);
	put16(out + 10, edns ? 1 : 0);
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		out[o++] = (uint8_t)l;
		memcpy(out + o, p, l);
		o += l;
		p += l + (dot ? 1 : 0);
	}
	out[o++] = 0;
	o += put16(out + o, qtype);
	o += put16(out + o, qclass);
	if (edns) {
		static const uint8_t opt[] = { 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0 };
		memcpy(out + o, opt, sizeof(opt));
		o += sizeof(opt);
	}
	return o;
}

static int parse_q(const uint8_t *p, size_t n, struct ab_dns_query *q)
{
	uint8_t *c = exact(p, n);
	int r = ab_dns_parse_query(c, n, q);
	free(c);
	return r;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static void test_dns_parse(void)
{
	uint8_t b[600];
	struct ab_dns_query q;
	size_t n;
	int r;
	bool cuts;

	n = dns_query(b, 0x1234, 0x0100, "Example.COM", AB_DNS_TYPE_A, AB_DNS_CLASS_IN, false);
	r = parse_q(b, n, &q);
	ok(r == 0 && q.id == 0x1234 && q.recursion_desired && strcmp(q.name, "example.com") == 0 &&
		   q.qtype == AB_DNS_TYPE_A && q.qclass == AB_DNS_CLASS_IN && q.question_end == n,
	   "dns: an A query, name lower-cased, question_end %zu", q.question_end);
	cuts = true;
	for (size_t j = 0; j < n; j++)
		if (parse_q(b, j, &q) != -EINVAL)
			cuts = false;
	ok(cuts, "dns: the query cut at each of %zu bytes is -EINVAL", n);

	n = dns_query(b, 7, 0x0000, "api.test", AB_DNS_TYPE_AAAA, AB_DNS_CLASS_IN, true);
	r = parse_q(b, n, &q);
	ok(r == 0 && !q.recursion_desired && strcmp(q.name, "api.test") == 0 && q.qtype == AB_DNS_TYPE_AAAA &&
		   q.question_end == n - 11,
	   "dns: an AAAA query with EDNS OPT: the OPT record is ignored");

	n = dns_query(b, 7, 0x0120, "a.test", AB_DNS_TYPE_A, AB_DNS_CLASS_IN, false);
	ok(parse_q(b, n, &q) == 0, "dns: the AD bit (dig sets it) is accepted");

	n = dns_query(b, 7, 0x0100, "", 2, AB_DNS_CLASS_IN, false);
	ok(parse_q(b, n, &q) == 0 && strcmp(q.name, "") == 0 && q.qtype == 2, "dns: the root, type NS");

	n = dns_query(b, 7, 0x0100, "_sip._tcp.a.test", 33, AB_DNS_CLASS_IN, false);
	ok(parse_q(b, n, &q) == 0 && strcmp(q.name, "_sip._tcp.a.test") == 0, "dns: an SRV name with underscores");

	/* A name of 255 bytes on the wire: three labels of 63 and one of 61. */
	{
		char name[300];
		memset(name, 'a', 63);
		name[63] = '.';
		memset(name + 64, 'b', 63);
		name[127] = '.';
		memset(name + 128, 'c', 63);
		name[191] = '.';
		memset(name + 192, 'd', 61);
		name[253] = '\0';
		n = dns_query(b, 1, 0x0100, name, 1, 1, false);
		ok(parse_q(b, n, &q) == 0 && strlen(q.name) == 253, "dns: a name of 255 bytes on the wire");
		name[253] = 'd';
		name[254] = '\0';
		n = dns_query(b, 1, 0x0100, name, 1, 1, false);
		ok(parse_q(b, n, &q) == -EINVAL, "dns: a name of 256 bytes on the wire is -EINVAL");
		memset(name, 'x', 64);
		name[64] = '\0';
		n = dns_query(b, 1, 0x0100, name, 1, 1, false);
		ok(parse_q(b, n, &q) == -EINVAL, "dns: a label of 64 bytes is -EINVAL");
	}

	n = dns_query(b, 1, 0x0100, "a.test", 1, 1, false);
	b[12 + 2] = 0xc0; /* "\x01a" then a pointer where "test" was */
	b[12 + 3] = 0x0c;
	ok(parse_q(b, n, &q) == -EINVAL, "dns: a compression pointer in the question is -EINVAL");
	n = dns_query(b, 1, 0x0100, "a.test", 1, 1, false);
	b[12] = 0x40;
	ok(parse_q(b, n, &q) == -EINVAL, "dns: an extended label type is -EINVAL");
	n = dns_query(b, 1, 0x0100, "ab.test", 1, 1, false);
	b[14] = '.';
	ok(parse_q(b, n, &q) == -EINVAL, "dns: a dot inside a label is -EINVAL");
	n = dns_query(b, 1, 0x0100, "ab.test", 1, 1, false);
	b[14] = 0;
	ok(parse_q(b, n, &q) == -EINVAL, "dns: a NUL inside a label is -EINVAL");

	n = dns_query(b, 1, 0x8180, "a.test", 1, 1, false);
	ok(parse_q(b, n, &q) == -EINVAL, "dns: an answer (QR=1) is -EINVAL");
	n = dns_query(b, 1, 0x1100, "a.test", 1, 1, false);
	ok(parse_q(b, n, &q) == -EOPNOTSUPP, "dns: opcode STATUS is -EOPNOTSUPP");
	n = dns_query(b, 1, 0x2800, "a.test", 1, 1, false);
	ok(parse_q(b, n, &q) == -EOPNOTSUPP, "dns: opcode UPDATE is -EOPNOTSUPP");
	n = dns_query(b, 1, 0x0100, "a.test", 1, 1, false);
	put16(b + 4, 0);
	ok(parse_q(b, n, &q) == -EOPNOTSUPP, "dns: QDCOUNT 0 is -EOPNOTSUPP");
	put16(b + 4, 2);
	ok(parse_q(b, n, &q) == -EOPNOTSUPP, "dns: QDCOUNT 2 is -EOPNOTSUPP");
	put16(b + 4, 1);
	put16(b + 6, 1);
	ok(parse_q(b, n, &q) == -EINVAL, "dns: ANCOUNT 1 in a query is -EINVAL");
	put16(b + 6, 0);
	put16(b + 8, 1);
	ok(parse_q(b, n, &q) == -EINVAL, "dns: NSCOUNT 1 in a query is -EINVAL");
	ok(parse_q(b, 11, &q) == -EINVAL && parse_q(b, 0, &q) == -EINVAL, "dns: shorter than a header is -EINVAL");

	/* c-ares, an independent encoder, builds a query with EDNS: it parses. */
	{
		unsigned char *abuf = NULL;
		int alen = 0;
		ok(ares_create_query("Mixed.Case.test", 1, 1, 0xbeef, 1, &abuf, &alen, 1232) == ARES_SUCCESS &&
			   parse_q(abuf, (size_t)alen, &q) == 0 && q.id == 0xbeef && strcmp(q.name, "mixed.case.test") == 0 &&
			   q.recursion_desired,
		   "dns: a query built by c-ares with EDNS parses");
		ares_free_string(abuf);
	}
}

/* Walks an answer by hand: returns the offset of the first answer's RDATA, or 0. */
static size_t walk_answer(const uint8_t *a, size_t n, const uint8_t *query, size_t question_end,
			  uint16_t type, uint32_t *ttl, uint16_t *rdlen)
{
	size_t o = question_end;

	if (n < o + 12 || memcmp(a + 12, query + 12, question_end - 12) != 0)
		return 0;
	if (get16(a + o) != 0xc00c || get16(a + o + 2) != type || get16(a + o + 4) != AB_DNS_CLASS_IN)
		return 0;
	*ttl = ((uint32_t)get16(a + o + 6) << 16) | get16(a + o + 8);
	*rdlen = get16(a + o + 10);
	if (n != o + 12 + *rdlen)
		return 0;
	return o + 12;
}

static void test_dns_answer(void)
{
	static const uint8_t fake[4] = { 198, 18, 0, 5 }, v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	uint8_t query[600], out[600];
	struct ab_dns_query q;
	size_t qn, at;
	uint32_t ttl;
	uint16_t rdlen;
	int n;

	qn = dns_query(query, 0xabcd, 0x0100, "api.example.com", AB_DNS_TYPE_A, AB_DNS_CLASS_IN, true);
	ok(ab_dns_parse_query(query, qn, &q) == 0, "dns answer: the query parses");
	n = ab_dns_build_answer(query, qn, &q, AB_DNS_RCODE_NOERROR, fake, 4, 5, out, sizeof(out));
	ok(n == (int)(q.question_end + 16), "dns answer: A: header + question + one 16-byte record (%d)", n);
	ok(get16(out) == 0xabcd && get16(out + 2) == 0x8180 && get16(out + 4) == 1 && get16(out + 6) == 1 &&
		   get16(out + 8) == 0 && get16(out + 10) == 0,
	   "dns answer: id kept, QR RD RA set, rcode 0, counts 1/1/0/0 (flags %04x)", get16(out + 2));
	at = walk_answer(out, (size_t)n, query, q.question_end, AB_DNS_TYPE_A, &ttl, &rdlen);
	ok(at && ttl == 5 && rdlen == 4 && memcmp(out + at, fake, 4) == 0,
	   "dns answer: question copied, record points at it, TTL 5, 198.18.0.5");
	{
		struct hostent *he = NULL;
		struct ares_addrttl at4[2];
		int nat = 2;
		int r = ares_parse_a_reply(out, n, &he, at4, &nat);
		ok(r == ARES_SUCCESS && nat == 1 && at4[0].ttl == 5 && memcmp(&at4[0].ipaddr, fake, 4) == 0 &&
			   strcmp(he->h_name, "api.example.com") == 0,
		   "dns answer: c-ares reads it back: api.example.com A 198.18.0.5 ttl 5");
		if (he)
			ares_free_hostent(he);
	}

	qn = dns_query(query, 0x0102, 0x0000, "v6.test", AB_DNS_TYPE_AAAA, AB_DNS_CLASS_IN, false);
	ab_dns_parse_query(query, qn, &q);
	n = ab_dns_build_answer(query, qn, &q, AB_DNS_RCODE_NOERROR, v6, 16, 60, out, sizeof(out));
	at = n > 0 ? walk_answer(out, (size_t)n, query, q.question_end, AB_DNS_TYPE_AAAA, &ttl, &rdlen) : 0;
	ok(at && get16(out + 2) == 0x8080 && rdlen == 16 && ttl == 60 && memcmp(out + at, v6, 16) == 0,
	   "dns answer: AAAA, RD not set in the query nor in the answer");
	{
		struct hostent *he = NULL;
		struct ares_addr6ttl at6[2];
		int nat = 2;
		int r = ares_parse_aaaa_reply(out, n, &he, at6, &nat);
		ok(r == ARES_SUCCESS && nat == 1 && memcmp(&at6[0].ip6addr, v6, 16) == 0, "dns answer: c-ares reads the AAAA back");
		if (he)
			ares_free_hostent(he);
	}

	n = ab_dns_build_answer(query, qn, &q, AB_DNS_RCODE_NOERROR, NULL, 0, 5, out, sizeof(out));
	ok(n == (int)q.question_end && get16(out + 2) == 0x8080 && get16(out + 6) == 0 &&
		   memcmp(out + 12, query + 12, q.question_end - 12) == 0,
	   "dns answer: NODATA: NOERROR, the question, no record");
	n = ab_dns_build_answer(query, qn, &q, AB_DNS_RCODE_NXDOMAIN, fake, 4, 5, out, sizeof(out));
	ok(n == (int)q.question_end && get16(out + 2) == 0x8083 && get16(out + 4) == 1 && get16(out + 6) == 0,
	   "dns answer: NXDOMAIN carries no record even when given an address");

	qn = dns_query(query, 9, 0x0100, "a.test", AB_DNS_TYPE_A, AB_DNS_CLASS_IN, false);
	ab_dns_parse_query(query, qn, &q);
	ok(ab_dns_build_answer(query, qn, &q, 0, v6, 16, 5, out, sizeof(out)) == -EINVAL,
	   "dns answer: a 16-byte address for an A query is -EINVAL");
	ok(ab_dns_build_answer(query, qn, &q, 0, fake, 4, 5, out, q.question_end + 15) == -ENOSPC,
	   "dns answer: one byte short is -ENOSPC");
	ok(ab_dns_build_answer(query, qn, &q, 0, fake, 4, 5, out, q.question_end + 16) == (int)q.question_end + 16,
	   "dns answer: the exact size fits");
	ok(ab_dns_build_answer(query, q.question_end - 1, &q, 0, fake, 4, 5, out, sizeof(out)) == -EINVAL,
	   "dns answer: a query shorter than its question_end is -EINVAL");
	ok(ab_dns_build_answer(query, qn, &q, 16, NULL, 0, 5, out, sizeof(out)) == -EINVAL, "dns answer: rcode 16 is -EINVAL");

	qn = dns_query(query, 9, 0x0100, "mx.test", 15, AB_DNS_CLASS_IN, false);
	ab_dns_parse_query(query, qn, &q);
	ok(ab_dns_build_answer(query, qn, &q, 0, fake, 4, 5, out, sizeof(out)) == -EINVAL,
	   "dns answer: an address for an MX query is -EINVAL");

	{
		static const uint8_t junk[] = { 0x42, 0x43, 0x11, 0xff, 0xff };
		uint8_t e[12];
		n = ab_dns_build_error(junk, sizeof(junk), AB_DNS_RCODE_FORMERR, e, sizeof(e));
		ok(n == 12 && get16(e) == 0x4243 && (get16(e + 2) & 0x800f) == 0x8001 && get16(e + 4) == 0 &&
			   get16(e + 6) == 0 && get16(e + 8) == 0 && get16(e + 10) == 0,
		   "dns error: FORMERR: id kept, header only");
		ok(((get16(e + 2) >> 11) & 0xf) == 2 && (get16(e + 2) & 0x0100),
		   "dns error: opcode and RD copied (NOTIMP answers name the opcode)");
		ok(ab_dns_build_error(junk, 1, 1, e, sizeof(e)) == -EINVAL, "dns error: one byte is -EINVAL");
		ok(ab_dns_build_error(junk, 2, 1, e, 11) == -ENOSPC, "dns error: an 11-byte buffer is -ENOSPC");
		ok(ab_dns_build_error(junk, 2, AB_DNS_RCODE_SERVFAIL, e, 12) == 12 && get16(e) == 0x4243,
		   "dns error: two bytes are enough for the id");
	}
}

int main(void)
{
	for (size_t i = 0; i < AB_ELEMENTSOF(http_cases); i++) {
		check_http_case(&http_cases[i]);
		check_http_prefixes(&http_cases[i]);
	}
	test_http_limits();
	test_http_sniff();
	test_http_response();
	test_socks_greeting();
	test_socks_request();
	test_sni_captured();
	test_sni_built();
	test_sni_flips();
	test_dns_parse();
	test_dns_answer();
	return tap_done();
}
