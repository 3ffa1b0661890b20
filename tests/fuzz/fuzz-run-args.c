/* The `run` option parser on arbitrary argument vectors: NUL-separated strings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *environ_in[] = { "PATH=/usr/bin", "HOME=/nonexistent", "SECRET_TOKEN=x", NULL };
	char *buf, *argv[64];
	int argc = 0;
	struct ab_config cfg;
	struct ab_error err;

	if (size > 4096)
		return 0;
	buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	for (char *p = buf; p < buf + size && argc < 63;) {
		argv[argc++] = p;
		p += strlen(p) + 1;
	}
	argv[argc] = NULL;
	if (ab_config_parse_run(argc, argv, environ_in, &cfg, &err) == 0)
		ab_config_free(&cfg);
	free(buf);
	return 0;
}
