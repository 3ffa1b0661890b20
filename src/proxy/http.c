/* HTTP/1.x forward-proxy request heads (RFC 9110, RFC 9112), parsed strictly: lines end
 * in CRLF, no NUL, no obs-fold, no whitespace before a header's colon, one Host at most.
 * Everything is read within `len` and within AB_HTTP_MAX_HEAD; the only allocation is
 * the rewritten head for the origin. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/http.h"

struct span {
	const char *p;
	size_t n;
};

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 9110 section 5.6.2: token characters. */
static bool is_tchar(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool span_is(struct span s, const char *lit)
{
	size_t n = strlen(lit);
	return s.n == n && strncasecmp(s.p, lit, n) == 0;
}

/* Before the head is whole, a request must start with a token of at most 15 characters
 * and a space: anything else (TLS, SSH, binary) is refused at its first bytes. */
static bool starts_like_request(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == ' ' && i > 0)
			return true;
		if (i >= 15 || !is_tchar((unsigned char)buf[i]))
			return false;
	}
	return true;
}

/* Finds the blank line that ends the head. Refuses early what can never become a valid
 * head: a NUL, a bare LF, a CR not followed by LF, an empty request line, too many lines.
 * Returns 1 with *head_len, 0 when more bytes are needed, or -EINVAL/-E2BIG. */
static int find_head(const char *buf, size_t len, size_t *head_len)
{
	size_t n = len < AB_HTTP_MAX_HEAD ? len : AB_HTTP_MAX_HEAD;
	size_t lines = 0, line_start = 0;

	for (size_t i = 0; i < n; i++) {
		char c = buf[i];

		if (c == '\0')
			return -EINVAL;
		if (c == '\r') {
			if (i + 1 < n && buf[i + 1] != '\n')
				return -EINVAL;
			continue;
		}
		if (c != '\n')
			continue;
		if (i == 0 || buf[i - 1] != '\r')
			return -EINVAL;
		if (i - 1 == line_start) {
			if (lines == 0)
				return -EINVAL; /* an empty request line */
			*head_len = i + 1;
			return 1;
		}
		if (++lines > AB_HTTP_MAX_HEADERS + 1)
			return -E2BIG;
		line_start = i + 1;
	}
	if (len >= AB_HTTP_MAX_HEAD)
		return -E2BIG;
	return 0;
}

/* The next line of a complete head (CRLF excluded); *pos moves past its CRLF. */
static struct span next_line(const char *head, size_t head_len, size_t *pos)
{
	struct span s = { head + *pos, 0 };

	while (*pos + s.n + 1 < head_len && !(s.p[s.n] == '\r' && s.p[s.n + 1] == '\n'))
		s.n++;
	*pos += s.n + 2;
	return s;
}

/* "METHOD SP request-target SP HTTP/1.x": single spaces, a token method of at most 15
 * characters, a target of visible ASCII. */
static int parse_request_line(struct span line, struct span *method, struct span *target)
{
	size_t i = 0, start;

	while (i < line.n && is_tchar((unsigned char)line.p[i]))
		i++;
	if (i == 0 || i >= 16 || i >= line.n || line.p[i] != ' ')
		return -EINVAL;
	*method = (struct span){ line.p, i };
	start = ++i;
	while (i < line.n && line.p[i] > 0x20 && line.p[i] < 0x7f)
		i++;
	if (i == start || i >= line.n || line.p[i] != ' ')
		return -EINVAL;
	*target = (struct span){ line.p + start, i - start };
	i++;
	if (line.n - i != 8 || memcmp(line.p + i, "HTTP/1.", 7) != 0 ||
	    (line.p[i + 7] != '0' && line.p[i + 7] != '1'))
		return -EINVAL;
	return 0;
}

/* "host[:port]" or "[v6]:port" into a lower-case host (brackets dropped) and a port.
 * No userinfo, no percent-encoding, no zone identifier, port 1..65535. */
static int parse_authority(struct span a, bool port_required, uint16_t default_port,
			   char host[AB_HOST_MAX], uint16_t *port)
{
	struct span h;
	size_t i;

	if (a.n == 0 || memchr(a.p, '@', a.n))
		return -EINVAL;
	if (a.p[0] == '[') {
		char tmp[64];
		unsigned char bin[16];
		const char *close = memchr(a.p, ']', a.n);

		if (!close)
			return -EINVAL;
		h = (struct span){ a.p + 1, (size_t)(close - a.p - 1) };
		if (h.n < 2 || h.n >= sizeof(tmp))
			return -EINVAL;
		for (i = 0; i < h.n; i++) {
			char c = h.p[i];
			if (!is_digit((unsigned char)c) && !(c && strchr("abcdefABCDEF:.", c)))
				return -EINVAL;
		}
		memcpy(tmp, h.p, h.n);
		tmp[h.n] = '\0';
		if (inet_pton(AF_INET6, tmp, bin) != 1)
			return -EINVAL;
		i = (size_t)(close - a.p) + 1;
	} else {
		for (i = 0; i < a.n && a.p[i] != ':'; i++) {
			char c = a.p[i];
			if (!is_alpha((unsigned char)c) && !is_digit((unsigned char)c) && c != '-' &&
			    c != '.' && c != '_')
				return -EINVAL;
		}
		h = (struct span){ a.p, i };
		if (h.n == 0)
			return -EINVAL;
	}
	if (h.n >= AB_HOST_MAX)
		return -EINVAL;

	if (i == a.n) {
		if (port_required)
			return -EINVAL;
		*port = default_port;
	} else {
		unsigned long v = 0;
		size_t digits = a.n - i - 1;

		if (a.p[i] != ':' || digits == 0 || digits > 5)
			return -EINVAL;
		for (i++; i < a.n; i++) {
			if (!is_digit((unsigned char)a.p[i]))
				return -EINVAL;
			v = v * 10 + (unsigned long)(a.p[i] - '0');
		}
		if (v == 0 || v > 65535)
			return -EINVAL;
		*port = (uint16_t)v;
	}
	for (i = 0; i < h.n; i++)
		host[i] = lower(h.p[i]);
	host[h.n] = '\0';
	return 0;
}

/* "http://authority[/path][?query]": the authority and the origin-form path (which may
 * be empty: "/" is meant). Other schemes written as "scheme://" are -EPROTONOSUPPORT. */
static int parse_absolute_uri(struct span t, struct span *authority, struct span *path)
{
	size_t i = 0, start;

	if (memchr(t.p, '#', t.n))
		return -EINVAL;
	if (!is_alpha((unsigned char)t.p[0]))
		return -EINVAL; /* origin-form "/x", asterisk-form "*" */
	while (i < t.n && (is_alpha((unsigned char)t.p[i]) || is_digit((unsigned char)t.p[i]) ||
			   t.p[i] == '+' || t.p[i] == '-' || t.p[i] == '.'))
		i++;
	if (t.n - i < 3 || memcmp(t.p + i, "://", 3) != 0)
		return -EINVAL;
	if (i != 4 || strncasecmp(t.p, "http", 4) != 0)
		return -EPROTONOSUPPORT;
	start = i + 3;
	for (i = start; i < t.n && t.p[i] != '/' && t.p[i] != '?'; i++)
		;
	*authority = (struct span){ t.p + start, i - start };
	*path = (struct span){ t.p + i, t.n - i };
	return 0;
}

/* "Name: value": a token name right before the colon, a value of visible characters,
 * spaces, tabs and obs-text. A line that starts with whitespace is obs-fold: refused. */
static int parse_header(struct span line, struct span *name, struct span *value)
{
	size_t i = 0;

	while (i < line.n && is_tchar((unsigned char)line.p[i]))
		i++;
	if (i == 0 || i >= line.n || line.p[i] != ':')
		return -EINVAL;
	*name = (struct span){ line.p, i };
	for (size_t j = i + 1; j < line.n; j++) {
		unsigned char c = (unsigned char)line.p[j];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -EINVAL;
	}
	i++;
	while (i < line.n && (line.p[i] == ' ' || line.p[i] == '\t'))
		i++;
	*value = (struct span){ line.p + i, line.n - i };
	while (value->n && (value->p[value->n - 1] == ' ' || value->p[value->n - 1] == '\t'))
		value->n--;
	return 0;
}

/* Headers that stay with this hop, and Host: the origin gets the Host of the URI the
 * policy decided on (RFC 9112 3.2.2), never one the client wrote, which could name a site
 * the policy did not approve on a shared server or CDN. */
static bool hop_by_hop(struct span name)
{
	static const char *const drop[] = {
		"Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate", "Connection",
		"Keep-Alive",	    "TE",		   "Trailer",		 "Upgrade",
		"Host",
	};
	for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
		if (span_is(name, drop[i]))
			return true;
	return false;
}

/* The client's header lines but the hop-by-hop ones, each with its CRLF, copied to o
 * when o is not NULL; returns their length. */
static size_t kept_headers(const char *head, size_t head_len, char *o)
{
	size_t pos = 0, n = 0;

	next_line(head, head_len, &pos); /* the request line: rewritten, not kept */
	while (pos + 2 < head_len) {
		struct span line = next_line(head, head_len, &pos), name, value;

		if (parse_header(line, &name, &value) < 0 || hop_by_hop(name))
			continue;
		if (o) {
			memcpy(o + n, line.p, line.n);
			memcpy(o + n + line.n, "\r\n", 2);
		}
		n += line.n + 2;
	}
	return n;
}

/* "METHOD /path HTTP/1.1", the kept headers, "Host: AUTHORITY" (have_host false: the
 * client's own Host was dropped with the hop-by-hop headers), "Connection: close", the
 * blank line. */
static int build_upstream(const char *head, size_t head_len, struct span method,
			  struct span authority, struct span path, bool have_host,
			  struct ab_http_request *req)
{
	static const char version[] = " HTTP/1.1\r\n", close_hdr[] = "Connection: close\r\n\r\n";
	bool slash = path.n == 0 || path.p[0] != '/';
	size_t headers = kept_headers(head, head_len, NULL);
	size_t size = method.n + 1 + slash + path.n + (sizeof(version) - 1) + headers +
		      (have_host ? 0 : 6 + authority.n + 2) + (sizeof(close_hdr) - 1) + 1;
	char *out = malloc(size), *o = out;

	if (!out)
		return -ENOMEM;
	memcpy(o, method.p, method.n);
	o += method.n;
	*o++ = ' ';
	if (slash)
		*o++ = '/';
	memcpy(o, path.p, path.n);
	o += path.n;
	memcpy(o, version, sizeof(version) - 1);
	o += sizeof(version) - 1;
	o += kept_headers(head, head_len, o);
	if (!have_host) {
		memcpy(o, "Host: ", 6);
		memcpy(o + 6, authority.p, authority.n);
		memcpy(o + 6 + authority.n, "\r\n", 2);
		o += 6 + authority.n + 2;
	}
	memcpy(o, close_hdr, sizeof(close_hdr) - 1);
	o += sizeof(close_hdr) - 1;
	*o = '\0';
	req->upstream_head = out;
	req->upstream_len = (size_t)(o - out);
	return 0;
}

int ab_http_parse_request(const char *buf, size_t len, struct ab_http_request *req)
{
	struct span line, method, target, authority = { 0 }, path = { 0 };
	size_t head_len = 0, pos = 0;
	bool have_host = false;
	int r;

	if (!req)
		return -EINVAL;
	memset(req, 0, sizeof(*req)); /* ab_http_request_free is safe whatever the result */
	if (!buf)
		return -EINVAL;
	if (!starts_like_request(buf, len))
		return -EINVAL;
	r = find_head(buf, len, &head_len);
	if (r <= 0)
		return r;

	line = next_line(buf, head_len, &pos);
	r = parse_request_line(line, &method, &target);
	if (r < 0)
		return r;
	if (method.n == 7 && memcmp(method.p, "CONNECT", 7) == 0) { /* methods are case-sensitive */
		r = parse_authority(target, true, 0, req->host, &req->port);
		if (r < 0)
			return r;
		req->connect = true;
	} else {
		r = parse_absolute_uri(target, &authority, &path);
		if (r < 0)
			return r;
		r = parse_authority(authority, false, 80, req->host, &req->port);
		if (r < 0)
			return r;
	}

	while (pos + 2 < head_len) {
		struct span name, value;

		line = next_line(buf, head_len, &pos);
		r = parse_header(line, &name, &value);
		if (r < 0)
			return r;
		if (span_is(name, "Host")) {
			if (have_host)
				return -EINVAL;
			have_host = true;
		}
	}

	memcpy(req->method, method.p, method.n);
	req->method[method.n] = '\0';
	req->head_len = head_len;
	if (!req->connect) {
		r = build_upstream(buf, head_len, method, authority, path, false, req);
		if (r < 0)
			return r;
	}
	return 1;
}

void ab_http_request_free(struct ab_http_request *req)
{
	if (!req)
		return;
	free(req->upstream_head);
	req->upstream_head = NULL;
	req->upstream_len = 0;
}

int ab_http_sniff_host(const char *buf, size_t len, char *host, size_t host_size, uint16_t *port)
{
	struct span line, method, target;
	size_t head_len = 0, pos = 0, n;
	char found[AB_HOST_MAX];
	uint16_t found_port = 0;
	bool have_host = false;
	int r;

	if (!buf || !host || !host_size || !port)
		return -EINVAL;
	if (!starts_like_request(buf, len))
		return -EPROTO;
	r = find_head(buf, len, &head_len);
	if (r == -EINVAL)
		return -EPROTO;
	if (r <= 0)
		return r;

	line = next_line(buf, head_len, &pos);
	if (parse_request_line(line, &method, &target) < 0)
		return -EPROTO;
	while (pos + 2 < head_len) {
		struct span name, value;

		line = next_line(buf, head_len, &pos);
		if (parse_header(line, &name, &value) < 0)
			return -EPROTO;
		if (!span_is(name, "Host"))
			continue;
		if (have_host)
			return -EPROTO;
		if (parse_authority(value, false, 80, found, &found_port) < 0)
			return -EPROTO;
		have_host = true;
	}
	if (!have_host)
		return -ENOENT;
	n = strlen(found);
	if (n >= host_size)
		return -ENOSPC;
	memcpy(host, found, n + 1);
	*port = found_port;
	return 1;
}

int ab_http_format_response(char *out, size_t size, int status, const char *reason,
			    const char *body)
{
	size_t body_len;
	int n;

	if (!out || !reason || status < 100 || status > 999 || strpbrk(reason, "\r\n"))
		return -EINVAL;
	if (!body)
		body = "";
	body_len = strlen(body);
	if (body_len > AB_HTTP_MAX_HEAD || strlen(reason) > 256)
		return -EINVAL;
	n = snprintf(out, size,
		     "HTTP/1.1 %d %s\r\n"
		     "Content-Type: text/plain\r\n"
		     "Content-Length: %zu\r\n"
		     "Connection: close\r\n"
		     "\r\n"
		     "%s",
		     status, reason, body_len, body);
	if (n < 0 || (size_t)n >= size)
		return -ENOSPC;
	return n;
}
