/* HTTP proxy request heads and captured plain HTTP: any bytes give a request, a request
 * for more bytes or a refusal, never a crash. A request accepted is well formed: a
 * lower-case host within AB_HOST_MAX, a head within the input and AB_HTTP_MAX_HEAD, an
 * origin head that ends the way the proxy promises; and one byte less than its head
 * only ever asks for more. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_host(const char *host, size_t size)
{
	size_t n = strnlen(host, size);

	if (n == 0 || n >= size)
		__builtin_trap();
	for (size_t i = 0; i < n; i++)
		if (host[i] >= 'A' && host[i] <= 'Z')
			__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char tail[] = "Connection: close\r\n\r\n";
	struct ab_http_request req;
	char *buf = malloc(size ? size : 1), host[AB_HOST_MAX], response[512];
	uint16_t port = 0;
	int r;

	if (!buf)
		return 0;
	memcpy(buf, data, size); /* exactly size bytes: a read past them is caught */

	r = ab_http_parse_request(buf, size, &req);
	if (r < -4095 || r > 1)
		__builtin_trap();
	if (r == 1) {
		check_host(req.host, sizeof(req.host));
		if (req.head_len < 4 || req.head_len > size || req.head_len > AB_HTTP_MAX_HEAD ||
		    memcmp(buf + req.head_len - 4, "\r\n\r\n", 4) != 0 || req.method[0] == '\0')
			__builtin_trap();
		if (req.connect) {
			if (req.upstream_head || req.port == 0)
				__builtin_trap();
		} else {
			if (!req.upstream_head || strlen(req.upstream_head) != req.upstream_len ||
			    req.upstream_len < sizeof(tail) - 1 || req.port == 0 ||
			    strcmp(req.upstream_head + req.upstream_len - (sizeof(tail) - 1), tail) != 0 ||
			    strncmp(req.upstream_head, req.method, strlen(req.method)) != 0)
				__builtin_trap();
		}
		ab_http_request_free(&req);
		if (ab_http_parse_request(buf, req.head_len - 1, &req) != 0)
			__builtin_trap();
	} else if (req.upstream_head) {
		__builtin_trap();
	}

	r = ab_http_sniff_host(buf, size, host, sizeof(host), &port);
	if (r == 1) {
		check_host(host, sizeof(host));
		if (port == 0)
			__builtin_trap();
	} else if (r != 0 && r != -ENOENT && r != -EPROTO && r != -E2BIG) {
		__builtin_trap();
	}

	/* The input as a reason and a body: never an overflow, never a header injected. */
	if (size < 300) {
		char text[300];
		memcpy(text, buf, size);
		text[size] = '\0';
		r = ab_http_format_response(response, sizeof(response), 403, text, text);
		if (r >= (int)sizeof(response) || (r > 0 && strpbrk(text, "\r\n")))
			__builtin_trap();
	}
	free(buf);
	return 0;
}
