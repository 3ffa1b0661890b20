/* Docker seccomp profiles: any bytes become a program or a message naming the JSON path,
 * never a crash or a leak. Corpus: tests/fuzz/corpus/seccomp-profile/. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lib/seccomp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ab_seccomp_set set;
	struct ab_error err = { 0 };
	int r = ab_seccomp_parse_docker_profile((const char *)data, size, &set, &err);

	/* Either outcome must leave a consistent set and a one-line message. */
	if (r < 0 && (set.n_programs != 0 || set.programs[0].insns || !err.msg[0] ||
		      strchr(err.msg, '\n')))
		__builtin_trap();
	if (r == 0 && (set.n_programs != 1 || !set.programs[0].insns || !set.programs[0].len ||
		       !set.summary[0]))
		__builtin_trap();
	ab_seccomp_set_free(&set);
	return 0;
}
