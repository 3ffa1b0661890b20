/* TLS ClientHello server names: any bytes give a name, a request for more bytes or a
 * refusal, never a crash. A name found is lower case, printable, within the buffer; a
 * smaller buffer never gets more than it holds. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/sni.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int r, const char *host, size_t host_size)
{
	size_t n;

	if (r != 1) {
		if ((r != 0 && r != -ENOENT && r != -EPROTO) || host[0] != '\0')
			__builtin_trap();
		return;
	}
	n = strnlen(host, host_size);
	if (n == 0 || n >= host_size || n > 255)
		__builtin_trap();
	for (size_t i = 0; i < n; i++)
		if ((uint8_t)host[i] <= 0x20 || (uint8_t)host[i] >= 0x7f || (host[i] >= 'A' && host[i] <= 'Z'))
			__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	char host[256], small[8];
	int r;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	r = ab_tls_sniff_sni(buf, size, host, sizeof(host));
	check(r, host, sizeof(host));
	check(ab_tls_sniff_sni(buf, size, small, sizeof(small)), small, sizeof(small));
	/* A whole first record decides; a cut inside it only ever asks for more. */
	if (r != 0 && size > 5) {
		size_t rec = 5 + (((size_t)buf[3] << 8) | buf[4]);
		if (rec <= size && rec > 6 && ab_tls_sniff_sni(buf, rec - 1, host, sizeof(host)) != 0 &&
		    r != -EPROTO)
			__builtin_trap();
	}
	free(buf);
	return 0;
}
