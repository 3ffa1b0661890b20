/* /proc/self/cgroup, /proc/self/mountinfo and the cgroup part of a state file: any bytes
 * parse to clean absolute paths or to nothing, never a crash. Every input goes to all three
 * parsers; a state that loads must survive a round trip unchanged. */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/cgroup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_path(const char *p)
{
	if (!p)
		return;
	if (p[0] != '/' || strstr(p, "//") || strstr(p, "/../") || strstr(p, "/./"))
		abort();
	size_t n = strlen(p);
	if (n > 1 && p[n - 1] == '/')
		abort();
	if ((n >= 3 && strcmp(p + n - 3, "/..") == 0) || (n >= 2 && strcmp(p + n - 2, "/.") == 0))
		abort();
}

static void check_outputs(int r, char *v2, char *v1[AB_CG1_N])
{
	int n = v2 != NULL;

	check_path(v2);
	for (int i = 0; i < AB_CG1_N; i++) {
		check_path(v1[i]);
		n += v1[i] != NULL;
	}
	if (r >= 0 && r != n)
		abort();
	if (r < 0 && n)
		abort();
	free(v2);
	for (int i = 0; i < AB_CG1_N; i++)
		free(v1[i]);
}

static void fuzz_state(const char *text)
{
	struct json_object *o = json_tokener_parse(text), *back;
	struct ab_cgroup cg, again;

	if (!o)
		return;
	if (ab_cgroup_from_json(o, &cg) == 0) {
		check_path(cg.v2);
		for (int i = 0; i < AB_CG1_N; i++)
			check_path(cg.v1[i]);
		back = ab_cgroup_to_json(&cg);
		if (!back || ab_cgroup_from_json(back, &again) < 0)
			abort();
		if (again.mode != cg.mode || strcmp(again.why, cg.why) != 0 ||
		    (!again.v2 != !cg.v2) || (cg.v2 && strcmp(again.v2, cg.v2) != 0))
			abort();
		for (int i = 0; i < AB_CG1_N; i++)
			if (!again.v1[i] != !cg.v1[i] || (cg.v1[i] && strcmp(again.v1[i], cg.v1[i]) != 0))
				abort();
		ab_cgroup_free(&again);
		json_object_put(back);
		ab_cgroup_free(&cg);
	}
	json_object_put(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	char *v2 = NULL, *v1[AB_CG1_N] = { NULL };

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	int r = ab_cgroup_parse_self(text, &v2, v1);
	check_outputs(r, v2, v1);
	r = ab_cgroup_parse_mountinfo(text, &v2, v1);
	check_outputs(r, v2, v1);
	fuzz_state(text);
	free(text);
	return 0;
}
