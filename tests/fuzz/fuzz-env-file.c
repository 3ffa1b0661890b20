/* Docker-format env files: any bytes become variables or a message, never a crash. */
#include <stdint.h>
#include <stdlib.h>

#include "lib/env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *environ_in[] = { "PATH=/usr/bin", "TOKEN=x", NULL };
	struct ab_env env = { 0 };
	struct ab_error err;

	ab_env_add_file_text(&env, (const char *)data, size, "fuzz", environ_in, &err);
	ab_env_free(&env);
	return 0;
}
