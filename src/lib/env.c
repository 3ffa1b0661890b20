#include "env.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../shared/cleanup.h"
#include "../shared/strutil.h"
#include "config.h"

/* What a program needs to draw and speak the user's language, and nothing that carries a
 * credential. Anything else must be asked for with -e or --env-file. */
static const char *const safe_names[] = {
	"PATH", "TERM", "COLORTERM", "NO_COLOR", "LANG", "LANGUAGE", "TZ",
	"COLUMNS", "LINES", "TERM_PROGRAM", "TERM_PROGRAM_VERSION",
};

bool ab_env_name_is_valid(const char *name)
{
	/* What a shell can name: letters, digits and '_', not starting with a digit. */
	if (!name || !*name || strlen(name) > 255 || (name[0] >= '0' && name[0] <= '9'))
		return false;
	for (const char *p = name; *p; p++)
		if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
			return false;
	return true;
}

bool ab_env_name_is_safe(const char *name)
{
	if (ab_startswith(name, "LC_"))
		return true;
	for (size_t i = 0; i < AB_ELEMENTSOF(safe_names); i++)
		if (strcmp(name, safe_names[i]) == 0)
			return true;
	return false;
}

const char *ab_env_lookup(char **environ_in, const char *name)
{
	size_t n = strlen(name);

	for (char **e = environ_in; e && *e; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

int ab_env_set(struct ab_env *env, const char *name, const char *value)
{
	size_t n = strlen(name);
	char *entry;

	if (asprintf(&entry, "%s=%s", name, value) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < env->n; i++) {
		if (strncmp(env->vars[i], name, n) == 0 && env->vars[i][n] == '=') {
			free(env->vars[i]);
			env->vars[i] = entry;
			return 0;
		}
	}
	if (env->n >= AB_MAX_ENV) {
		free(entry);
		return -E2BIG;
	}
	char **grown = realloc(env->vars, (env->n + 2) * sizeof(char *));
	if (!grown) {
		free(entry);
		return -ENOMEM;
	}
	grown[env->n++] = entry;
	grown[env->n] = NULL;
	env->vars = grown;
	return 0;
}

int ab_env_add_safe(struct ab_env *env, char **environ_in)
{
	for (char **e = environ_in; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		char name[256];
		size_t n;
		int r;

		if (!eq || eq == *e || (n = (size_t)(eq - *e)) >= sizeof(name))
			continue;
		memcpy(name, *e, n);
		name[n] = '\0';
		if (!ab_env_name_is_safe(name))
			continue;
		r = ab_env_set(env, name, eq + 1);
		if (r < 0)
			return r;
	}
	return 0;
}

static int add_one(struct ab_env *env, const char *name, size_t name_len, const char *value,
		   char **environ_in, const char *origin, struct ab_error *err)
{
	_cleanup_free_ char *n = strndup(name, name_len);
	int r;

	if (!n)
		return ab_error_set(err, ENOMEM, "cannot add variable");
	if (!ab_env_name_is_valid(n))
		return ab_error_set(err, 0, "invalid variable name '%s' in %s: use letters, digits and '_', not starting with a digit, as NAME or NAME=VALUE",
				    n, origin);
	if (!value) {
		value = ab_env_lookup(environ_in, n);
		if (!value) /* as Docker does: a name the caller has not set is left out */
			return 0;
	}
	r = ab_env_set(env, n, value);
	if (r == -E2BIG)
		return ab_error_set(err, 0, "too many variables at '%s' in %s: at most %d", n, origin,
				    AB_MAX_ENV);
	if (r < 0)
		return ab_error_set(err, -r, "cannot add variable '%s'", n);
	return 0;
}

int ab_env_add_arg(struct ab_env *env, const char *arg, char **environ_in, struct ab_error *err)
{
	const char *eq = strchr(arg, '=');

	if (eq)
		return add_one(env, arg, (size_t)(eq - arg), eq + 1, environ_in, "-e", err);
	return add_one(env, arg, strlen(arg), NULL, environ_in, "-e", err);
}

int ab_env_add_file_text(struct ab_env *env, const char *text, size_t len, const char *origin,
			 char **environ_in, struct ab_error *err)
{
	const char *p = text, *end = text + len;
	unsigned line = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = nl ? nl : end;
		const char *eq;
		char where[512];
		_cleanup_free_ char *value = NULL;
		int r;

		line++;
		while (p < line_end && (*p == ' ' || *p == '\t'))
			p++;
		if (p == line_end || *p == '#') {
			p = nl ? nl + 1 : end;
			continue;
		}
		if (memchr(p, '\0', (size_t)(line_end - p)))
			return ab_error_set(err, 0, "env file '%s' line %u: contains a NUL byte", origin, line);
		snprintf(where, sizeof(where), "env file '%s' line %u", origin, line);
		eq = memchr(p, '=', (size_t)(line_end - p));
		if (eq) {
			const char *vend = line_end;
			if (vend > eq + 1 && vend[-1] == '\r')
				vend--;
			value = strndup(eq + 1, (size_t)(vend - eq - 1));
			if (!value)
				return ab_error_set(err, ENOMEM, "cannot read %s", where);
			r = add_one(env, p, (size_t)(eq - p), value, environ_in, where, err);
		} else {
			const char *nend = line_end;
			while (nend > p && (nend[-1] == ' ' || nend[-1] == '\t' || nend[-1] == '\r'))
				nend--;
			r = add_one(env, p, (size_t)(nend - p), NULL, environ_in, where, err);
		}
		if (r < 0)
			return r;
		p = nl ? nl + 1 : end;
	}
	return 0;
}

void ab_env_free(struct ab_env *env)
{
	ab_strv_free(env->vars);
	env->vars = NULL;
	env->n = 0;
}
