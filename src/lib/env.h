/* The sandbox's environment: cleared, then a safe list, then what the user passes. */
#ifndef AB_ENV_H
#define AB_ENV_H

#include <stdbool.h>
#include <stddef.h>

#include "../shared/error.h"

/* A growable NAME=VALUE vector where a later set of a name replaces the earlier one. */
struct ab_env {
	char **vars; /* NULL-terminated */
	size_t n;
};

bool ab_env_name_is_valid(const char *name);
/* Names the host may pass without being asked: terminal, locale, time zone, PATH. */
bool ab_env_name_is_safe(const char *name);
const char *ab_env_lookup(char **environ_in, const char *name);
int ab_env_set(struct ab_env *env, const char *name, const char *value);
/* Copies the safe list out of environ_in. */
int ab_env_add_safe(struct ab_env *env, char **environ_in);
/* -e NAME (copied from environ_in when set there) or -e NAME=VALUE. */
int ab_env_add_arg(struct ab_env *env, const char *arg, char **environ_in, struct ab_error *err);
/* Docker's env-file format: NAME=VALUE lines taken literally, NAME alone copied from
 * environ_in, blank lines and lines starting with '#' skipped. `origin` names the file. */
int ab_env_add_file_text(struct ab_env *env, const char *text, size_t len, const char *origin,
			 char **environ_in, struct ab_error *err);
void ab_env_free(struct ab_env *env);

#endif
