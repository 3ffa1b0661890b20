/* SOCKS5 greetings and requests: any bytes give an answer, never a crash. What is
 * accepted stays within the input and names a printable host and a port; a refusal
 * always carries one of the reply codes the header promises. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/socks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ab_socks_request req;
	uint8_t *buf = malloc(size ? size : 1), reply = 0xff, out[10];
	size_t consumed = 0, at = 0;
	int r;

	if (!buf)
		return 0;
	memcpy(buf, data, size);

	r = ab_socks_parse_greeting(buf, size, &consumed);
	if (r == 1) {
		if (consumed < 3 || consumed > size || consumed > 257)
			__builtin_trap();
		at = consumed;
	} else if (r != 0 && r != -EPROTO && r != -EACCES) {
		__builtin_trap();
	}

	/* The request, after the greeting when there was one, else from the start. */
	consumed = 0;
	r = ab_socks_parse_request(buf + at, size - at, &req, &consumed, &reply);
	switch (r) {
	case 1: {
		size_t n = strnlen(req.host, sizeof(req.host));
		if (consumed < 8 || consumed > size - at || n == 0 || n >= sizeof(req.host) ||
		    req.cmd != 1 || req.port == 0 || reply != AB_SOCKS_REP_OK)
			__builtin_trap();
		for (size_t i = 0; i < n; i++)
			if ((uint8_t)req.host[i] <= 0x20 || (uint8_t)req.host[i] >= 0x7f)
				__builtin_trap();
		break;
	}
	case 0:
		break;
	case -EOPNOTSUPP:
		if (reply != AB_SOCKS_REP_CMD_UNSUPPORTED)
			__builtin_trap();
		break;
	case -EAFNOSUPPORT:
		if (reply != AB_SOCKS_REP_ATYP_UNSUPPORTED)
			__builtin_trap();
		break;
	case -EINVAL:
		if (reply != AB_SOCKS_REP_FAILURE)
			__builtin_trap();
		break;
	default:
		__builtin_trap();
	}
	if (ab_socks_format_reply(out, reply) != 10 || out[0] != 5 || out[1] != reply)
		__builtin_trap();
	free(buf);
	return 0;
}
