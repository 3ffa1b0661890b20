/* HTTP/1.x forward-proxy requests, parsed from the bytes a client sent: absolute-URI
 * requests ("GET http://host:port/path HTTP/1.1") and CONNECT ("CONNECT host:port
 * HTTP/1.1"). Pure: no I/O, no allocation except the rewritten head. Fuzzed. */
#ifndef AB_PROXY_HTTP_H
#define AB_PROXY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AB_HTTP_MAX_HEAD (64 * 1024) /* a request head longer than this is refused */
#define AB_HTTP_MAX_HEADERS 128
#define AB_HOST_MAX 256 /* a host name or address literal, NUL included */

struct ab_http_request {
	char method[16];
	char host[AB_HOST_MAX]; /* as written, lower case; IPv6 literals without brackets */
	uint16_t port;          /* explicit, or the scheme's (80 for http://) */
	bool connect;           /* CONNECT: after the reply, bytes flow both ways unchanged */
	size_t head_len;        /* bytes of the head, the blank line included */
	/* Absolute-URI requests only: the head to send to the origin, in origin-form
	 * ("GET /path HTTP/1.1"), with Proxy-* and hop-by-hop headers dropped and
	 * "Connection: close" set. NULL for CONNECT. Owned; ab_http_request_free. */
	char *upstream_head;
	size_t upstream_len;
};

/* Returns 1 with req filled when buf holds a whole request head, 0 when more bytes are
 * needed, or < 0: -E2BIG (the head passed AB_HTTP_MAX_HEAD or AB_HTTP_MAX_HEADERS),
 * -EPROTONOSUPPORT (a scheme other than http://, e.g. https:// or ftp:// in the URI),
 * -EINVAL (anything malformed: bad request line, bad authority, a port out of range,
 * a header without a colon, a NUL byte, an origin-form request with no absolute URI),
 * -ENOMEM. The host is checked only for syntax here (bracketed IPv6 allowed); the
 * policy validates it as a name. */
int ab_http_parse_request(const char *buf, size_t len, struct ab_http_request *req);
void ab_http_request_free(struct ab_http_request *req);

/* Captured plain HTTP: the Host header of the first request (port from it or 80).
 * Returns 1 found, 0 more bytes needed, -ENOENT a complete head without Host, -EPROTO
 * when the bytes do not look like an HTTP request, -E2BIG over AB_HTTP_MAX_HEAD. */
int ab_http_sniff_host(const char *buf, size_t len, char *host, size_t host_size, uint16_t *port);

/* A complete response: "HTTP/1.1 <status> <reason>", Content-Type: text/plain,
 * Content-Length, Connection: close, then body. Returns its length, or -ENOSPC. */
int ab_http_format_response(char *out, size_t size, int status, const char *reason,
			    const char *body);

#endif
