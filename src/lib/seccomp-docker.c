/* Docker seccomp profiles (the JSON of moby's profiles/seccomp/default.json) compiled
 * into one program for the native architecture.
 *
 * Read as Docker reads them, for a process with no capabilities:
 *   - a rule whose includes.caps is non-empty is skipped; excludes.caps never skips;
 *   - includes/excludes.arches use Docker's short names ("amd64", "arm64", ...);
 *   - includes/excludes.minKernel compare with the running kernel;
 *   - a syscall name unknown here (another architecture's, a newer kernel's) is skipped;
 *   - architectures/archMap are checked but only the native architecture is honoured:
 *     foreign ABIs stay refused whatever the profile lists.
 * Stricter than Docker, on purpose: defaultAction is required (Docker reads an empty
 * profile as "no filter"), SCMP_ACT_NOTIFY is refused (no listener here), and a string
 * holding a NUL byte is an error (it would name one syscall and filter another).
 * A malformed structure is an error whose message starts with the JSON path. */
#include "seccomp.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "../shared/cleanup.h"
#include "seccomp-policy.h"

/* Docker's names for the native architecture in includes/excludes.arches. */
#if defined(__x86_64__)
#define NATIVE_ARCH "amd64"
#elif defined(__aarch64__)
#define NATIVE_ARCH "arm64"
#elif defined(__i386__)
#define NATIVE_ARCH "x86"
#elif defined(__riscv) && __riscv_xlen == 64
#define NATIVE_ARCH "riscv64"
#else
#define NATIVE_ARCH "unknown"
#endif

#define PATH_MAX_LEN 96

struct kernel_version {
	unsigned long major, minor, patch;
};

struct profile {
	struct ab_error *err;
	scmp_filter_ctx ctx;
	uint32_t default_action;
	struct kernel_version kernel;
	bool have_kernel;
	size_t n_names;   /* every name seen, against the cap */
	size_t n_added;   /* syscall names that became rules */
	size_t n_unknown; /* names this architecture does not have */
	size_t n_rules;   /* entries applied */
	size_t n_skipped; /* entries skipped for caps, arch or kernel */
};

struct rule_entry {
	uint32_t action;
	struct scmp_arg_cmp args[6];
	unsigned n_args;
	bool skip;
};

/* JSON paths for messages; a path too long for the buffer is cut, never overflows. */
static void __attribute__((format(printf, 2, 3))) pathf(char *buf, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, PATH_MAX_LEN, fmt, ap);
	va_end(ap);
}

static void join(char *buf, const char *where, const char *key)
{
	pathf(buf, "%s%s%s", where, *where ? "." : "", key);
}

/* A profile's string as it may appear in a one-line message: control bytes become '?',
 * and a long string is cut. */
struct shown {
	char s[68];
};

static struct shown show(const char *in)
{
	struct shown out;
	size_t n = 0;

	for (; *in && n < 64; in++)
		out.s[n++] = (unsigned char)*in < 0x20 || *in == 0x7f ? '?' : *in;
	if (*in) {
		memcpy(out.s + n, "...", 3);
		n += 3;
	}
	out.s[n] = '\0';
	return out;
}

/* json-c holds JSON null as a NULL object: absent and null both come back NULL, which
 * is also how Go's decoder (hence Docker) treats a null field. */
static struct json_object *field(struct json_object *obj, const char *key)
{
	struct json_object *v = NULL;

	return json_object_object_get_ex(obj, key, &v) ? v : NULL;
}

static int type_error(struct ab_error *err, const char *path, const char *what)
{
	return ab_error_set(err, 0, "%s: must be %s", path, what);
}

static int get_string(struct json_object *v, const char *path, const char **out,
		      struct ab_error *err)
{
	const char *s;

	if (!json_object_is_type(v, json_type_string))
		return type_error(err, path, "a string");
	s = json_object_get_string(v);
	if (strlen(s) != (size_t)json_object_get_string_len(v))
		return ab_error_set(err, 0, "%s: must not contain a NUL byte", path);
	*out = s;
	return 0;
}

static int get_u64(struct json_object *v, const char *path, uint64_t *out, struct ab_error *err)
{
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
		return type_error(err, path, "a non-negative integer");
	*out = json_object_get_uint64(v);
	return 0;
}

/* An optional array: absent or null yields NULL and 0. */
static int get_array(struct json_object *obj, const char *where, const char *key,
		     struct json_object **out, size_t *n, struct ab_error *err)
{
	char path[PATH_MAX_LEN];
	struct json_object *v = field(obj, key);

	*out = NULL;
	*n = 0;
	if (!v)
		return 0;
	join(path, where, key);
	if (!json_object_is_type(v, json_type_array))
		return type_error(err, path, "an array");
	*out = v;
	*n = json_object_array_length(v);
	return 0;
}

/* Checks every element of an optional array of strings; tells whether `want` is one. */
static int string_list_has(struct json_object *obj, const char *where, const char *key,
			   const char *want, bool *has, size_t *n, struct ab_error *err)
{
	struct json_object *arr;
	int r = get_array(obj, where, key, &arr, n, err);

	*has = false;
	for (size_t i = 0; r >= 0 && i < *n; i++) {
		char path[PATH_MAX_LEN], elem[PATH_MAX_LEN];
		const char *s;
		join(path, where, key);
		pathf(elem, "%s[%zu]", path, i);
		r = get_string(json_object_array_get_idx(arr, i), elem, &s, err);
		if (r >= 0 && want && strcmp(s, want) == 0)
			*has = true;
	}
	return r;
}

/* "MAJOR.MINOR[.PATCH][anything]", as Docker's kernel version parser accepts. */
static int parse_kernel_version(const char *s, struct kernel_version *out)
{
	char *end;

	*out = (struct kernel_version){ 0 };
	if (*s < '0' || *s > '9')
		return -EINVAL;
	out->major = strtoul(s, &end, 10);
	if (*end != '.' || end[1] < '0' || end[1] > '9')
		return -EINVAL;
	out->minor = strtoul(end + 1, &end, 10);
	if (*end == '.' && end[1] >= '0' && end[1] <= '9')
		out->patch = strtoul(end + 1, &end, 10);
	return 0;
}

static int kernel_cmp(const struct kernel_version *a, const struct kernel_version *b)
{
	if (a->major != b->major)
		return a->major < b->major ? -1 : 1;
	if (a->minor != b->minor)
		return a->minor < b->minor ? -1 : 1;
	if (a->patch != b->patch)
		return a->patch < b->patch ? -1 : 1;
	return 0;
}

/* Sets *at_least to whether the running kernel is at least the version at key. */
static int min_kernel(struct profile *p, struct json_object *obj, const char *where,
		      bool *present, bool *at_least)
{
	char path[PATH_MAX_LEN];
	struct json_object *v = field(obj, "minKernel");
	struct kernel_version want;
	const char *s;
	int r;

	*present = false;
	if (!v)
		return 0;
	join(path, where, "minKernel");
	r = get_string(v, path, &s, p->err);
	if (r < 0)
		return r;
	if (!*s)
		return 0; /* Docker reads "" as absent */
	if (parse_kernel_version(s, &want) < 0)
		return ab_error_set(p->err, 0, "%s: invalid kernel version '%s'", path,
				    show(s).s);
	if (!p->have_kernel) {
		struct utsname u;
		if (uname(&u) < 0 || parse_kernel_version(u.release, &p->kernel) < 0)
			return ab_error_set(p->err, 0, "%s: cannot read the running kernel's version",
					    path);
		p->have_kernel = true;
	}
	*present = true;
	*at_least = kernel_cmp(&p->kernel, &want) >= 0;
	return 0;
}

/* includes / excludes: {caps, arches, minKernel}. Sets *skip when the rule does not
 * apply to a process with no capabilities on the native architecture. */
static int parse_filter(struct profile *p, struct json_object *entry, const char *where,
			bool include, bool *skip)
{
	const char *key = include ? "includes" : "excludes";
	char path[PATH_MAX_LEN];
	struct json_object *obj = field(entry, key);
	bool unused, native, kernel_present = false, kernel_ok = false;
	size_t n_caps, n_arches;
	int r;

	if (!obj)
		return 0;
	join(path, where, key);
	if (!json_object_is_type(obj, json_type_object))
		return type_error(p->err, path, "an object");
	r = string_list_has(obj, path, "caps", NULL, &unused, &n_caps, p->err);
	if (r < 0)
		return r;
	r = string_list_has(obj, path, "arches", NATIVE_ARCH, &native, &n_arches, p->err);
	if (r < 0)
		return r;
	r = min_kernel(p, obj, path, &kernel_present, &kernel_ok);
	if (r < 0)
		return r;
	if (include)
		*skip = *skip || n_caps > 0 || (n_arches > 0 && !native) ||
			(kernel_present && !kernel_ok);
	else
		*skip = *skip || (n_arches > 0 && native) || (kernel_present && kernel_ok);
	return 0;
}

static const struct {
	const char *name;
	uint32_t action;
	bool takes_errno;
} actions[] = {
	{ "SCMP_ACT_KILL", SCMP_ACT_KILL_THREAD, false },
	{ "SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD, false },
	{ "SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS, false },
	{ "SCMP_ACT_TRAP", SCMP_ACT_TRAP, false },
	{ "SCMP_ACT_ERRNO", SCMP_ACT_ERRNO(0), true },
	{ "SCMP_ACT_TRACE", SCMP_ACT_TRACE(0), true },
	{ "SCMP_ACT_ALLOW", SCMP_ACT_ALLOW, false },
	{ "SCMP_ACT_LOG", SCMP_ACT_LOG, false },
};

/* The action at key "action"/"defaultAction" with its errno at errno_key. */
static int parse_action(struct profile *p, struct json_object *obj, const char *where,
			const char *key, const char *errno_key, uint32_t *out)
{
	char path[PATH_MAX_LEN], epath[PATH_MAX_LEN];
	struct json_object *v = field(obj, key), *ev = field(obj, errno_key);
	uint64_t errno_ret = EPERM; /* Docker's default for ERRNO and TRACE */
	const char *s;
	int r;

	join(path, where, key);
	join(epath, where, errno_key);
	if (!v)
		return ab_error_set(p->err, 0, "%s: missing", path);
	r = get_string(v, path, &s, p->err);
	if (r < 0)
		return r;
	if (ev) {
		r = get_u64(ev, epath, &errno_ret, p->err);
		if (r < 0)
			return r;
		if (errno_ret > 4095)
			return ab_error_set(p->err, 0, "%s: must be between 0 and 4095", epath);
	}
	for (size_t i = 0; i < AB_ELEMENTSOF(actions); i++) {
		if (strcmp(s, actions[i].name) != 0)
			continue;
		if (ev && !actions[i].takes_errno)
			return ab_error_set(p->err, 0, "%s: only valid with SCMP_ACT_ERRNO or "
					    "SCMP_ACT_TRACE", epath);
		*out = actions[i].action | (actions[i].takes_errno ? (uint32_t)errno_ret : 0);
		return 0;
	}
	if (strcmp(s, "SCMP_ACT_NOTIFY") == 0)
		return ab_error_set(p->err, 0, "%s: unsupported action '%s'", path, show(s).s);
	return ab_error_set(p->err, 0, "%s: unknown action '%s'", path, show(s).s);
}

static const struct {
	const char *name;
	enum scmp_compare op;
} ops[] = {
	{ "SCMP_CMP_NE", SCMP_CMP_NE }, { "SCMP_CMP_LT", SCMP_CMP_LT },
	{ "SCMP_CMP_LE", SCMP_CMP_LE }, { "SCMP_CMP_EQ", SCMP_CMP_EQ },
	{ "SCMP_CMP_GE", SCMP_CMP_GE }, { "SCMP_CMP_GT", SCMP_CMP_GT },
	{ "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
};

static int parse_arg(struct profile *p, struct json_object *a, const char *where,
		     struct scmp_arg_cmp *out)
{
	char path[PATH_MAX_LEN];
	struct json_object *v;
	uint64_t index, value = 0, value_two = 0;
	const char *op;
	int r;

	if (!json_object_is_type(a, json_type_object))
		return type_error(p->err, where, "an object");
	join(path, where, "index");
	v = field(a, "index");
	if (!v)
		return ab_error_set(p->err, 0, "%s: missing", path);
	r = get_u64(v, path, &index, p->err);
	if (r < 0)
		return r;
	if (index > 5)
		return ab_error_set(p->err, 0, "%s: %llu is not an argument index (0 to 5)", path,
				    (unsigned long long)index);
	join(path, where, "value");
	if ((v = field(a, "value")) && (r = get_u64(v, path, &value, p->err)) < 0)
		return r;
	join(path, where, "valueTwo");
	if ((v = field(a, "valueTwo")) && (r = get_u64(v, path, &value_two, p->err)) < 0)
		return r;
	join(path, where, "op");
	v = field(a, "op");
	if (!v)
		return ab_error_set(p->err, 0, "%s: missing", path);
	r = get_string(v, path, &op, p->err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < AB_ELEMENTSOF(ops); i++) {
		if (strcmp(op, ops[i].name) == 0) {
			/* For MASKED_EQ Docker's value is the mask and valueTwo the datum,
			 * which is libseccomp's order too. */
			*out = (struct scmp_arg_cmp){
				.arg = (unsigned)index, .op = ops[i].op,
				.datum_a = value, .datum_b = value_two,
			};
			return 0;
		}
	}
	return ab_error_set(p->err, 0, "%s: unknown operator '%s'", path, show(op).s);
}

static int parse_args(struct profile *p, struct json_object *entry, const char *where,
		      struct rule_entry *rule)
{
	struct json_object *arr;
	size_t n;
	int r = get_array(entry, where, "args", &arr, &n, p->err);

	if (r < 0)
		return r;
	if (n > 6)
		return ab_error_set(p->err, 0, "%s.args: more than 6 comparisons", where);
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX_LEN];
		pathf(path, "%s.args[%zu]", where, i);
		r = parse_arg(p, json_object_array_get_idx(arr, i), path, &rule->args[i]);
		if (r < 0)
			return r;
		for (size_t j = 0; j < i; j++)
			if (rule->args[j].arg == rule->args[i].arg)
				return ab_error_set(p->err, 0, "%s.index: argument %u compared twice",
						    path, rule->args[i].arg);
	}
	rule->n_args = (unsigned)n;
	return 0;
}

static int add_name(struct profile *p, const struct rule_entry *rule, const char *name,
		    const char *where)
{
	int nr = seccomp_syscall_resolve_name(name);
	int r;

	/* Unknown here, or a pseudo-number: a syscall this architecture does not have. */
	if (nr < 0) {
		p->n_unknown++;
		return 0;
	}
	r = seccomp_rule_add_array(p->ctx, rule->action, nr, rule->n_args, rule->args);
	if (r == -EACCES)
		return 0; /* the rule's action is the default action: nothing to add */
	if (r < 0)
		return ab_error_set(p->err, -r, "%s: cannot add rule for '%s'", where,
				    show(name).s);
	p->n_added++;
	return 0;
}

/* Walks the names of an entry; with rule NULL only checks them. */
static int entry_names(struct profile *p, struct json_object *entry, const char *where,
		       const struct rule_entry *rule)
{
	char path[PATH_MAX_LEN];
	struct json_object *one = field(entry, "name"), *arr;
	const char *name;
	size_t n;
	int r = get_array(entry, where, "names", &arr, &n, p->err);

	if (r < 0)
		return r;
	if (one) {
		join(path, where, "name");
		r = get_string(one, path, &name, p->err);
		if (r < 0)
			return r;
		if (*name && n > 0)
			return ab_error_set(p->err, 0, "%s: both 'name' and 'names' given", where);
		if (*name) {
			if (!rule && ++p->n_names > AB_SECCOMP_PROFILE_MAX_NAMES)
				goto too_many;
			return rule ? add_name(p, rule, name, where) : 0;
		}
	}
	for (size_t i = 0; i < n; i++) {
		pathf(path, "%s.names[%zu]", where, i);
		r = get_string(json_object_array_get_idx(arr, i), path, &name, p->err);
		if (r < 0)
			return r;
		if (!rule && ++p->n_names > AB_SECCOMP_PROFILE_MAX_NAMES)
			goto too_many;
		if (rule && (r = add_name(p, rule, name, where)) < 0)
			return r;
	}
	return 0;
too_many:
	return ab_error_set(p->err, 0, "%s: more than %d syscall names in the profile", path,
			    AB_SECCOMP_PROFILE_MAX_NAMES);
}

static int parse_entry(struct profile *p, struct json_object *entry, size_t i)
{
	char where[PATH_MAX_LEN], path[PATH_MAX_LEN];
	struct rule_entry rule = { 0 };
	struct json_object *comment;
	int r;

	pathf(where, "syscalls[%zu]", i);
	if (!json_object_is_type(entry, json_type_object))
		return type_error(p->err, where, "an object");
	/* The whole entry is checked first, so a malformed one is an error even when it
	 * would have been skipped. */
	r = entry_names(p, entry, where, NULL);
	if (r >= 0)
		r = parse_action(p, entry, where, "action", "errnoRet", &rule.action);
	if (r >= 0)
		r = parse_args(p, entry, where, &rule);
	if (r >= 0)
		r = parse_filter(p, entry, where, false, &rule.skip);
	if (r >= 0)
		r = parse_filter(p, entry, where, true, &rule.skip);
	if (r >= 0 && (comment = field(entry, "comment"))) {
		const char *unused;
		join(path, where, "comment");
		r = get_string(comment, path, &unused, p->err);
	}
	if (r < 0)
		return r;
	if (rule.skip) {
		p->n_skipped++;
		return 0;
	}
	p->n_rules++;
	return entry_names(p, entry, where, &rule);
}

/* architectures: [string]; archMap: [{architecture: string, subArchitectures: [string]}].
 * Checked for shape only: the native architecture is the only one compiled in. */
static int parse_arches(struct profile *p, struct json_object *root)
{
	struct json_object *map;
	size_t n_arches, n_map, n_sub;
	bool unused;
	int r;

	r = string_list_has(root, "", "architectures", NULL, &unused, &n_arches, p->err);
	if (r < 0)
		return r;
	r = get_array(root, "", "archMap", &map, &n_map, p->err);
	if (r < 0)
		return r;
	if (n_arches > 0 && n_map > 0)
		return ab_error_set(p->err, 0, "archMap: both 'architectures' and 'archMap' given");
	for (size_t i = 0; i < n_map; i++) {
		char where[PATH_MAX_LEN], path[PATH_MAX_LEN];
		struct json_object *m = json_object_array_get_idx(map, i), *a;
		const char *name;

		pathf(where, "archMap[%zu]", i);
		if (!json_object_is_type(m, json_type_object))
			return type_error(p->err, where, "an object");
		join(path, where, "architecture");
		if (!(a = field(m, "architecture")))
			return ab_error_set(p->err, 0, "%s: missing", path);
		r = get_string(a, path, &name, p->err);
		if (r >= 0)
			r = string_list_has(m, where, "subArchitectures", NULL, &unused, &n_sub,
					    p->err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_root(struct profile *p, struct json_object *root)
{
	struct json_object *syscalls;
	size_t n;
	int r;

	if (!json_object_is_type(root, json_type_object))
		return ab_error_set(p->err, 0, "the profile must be a JSON object");
	r = parse_action(p, root, "", "defaultAction", "defaultErrnoRet", &p->default_action);
	if (r < 0)
		return r;
	r = parse_arches(p, root);
	if (r < 0)
		return r;
	r = get_array(root, "", "syscalls", &syscalls, &n, p->err);
	if (r < 0)
		return r;
	if (n > AB_SECCOMP_PROFILE_MAX_NAMES)
		return ab_error_set(p->err, 0, "syscalls: more than %d entries",
				    AB_SECCOMP_PROFILE_MAX_NAMES);
	r = ab_seccomp_ctx_new(p->default_action, &p->ctx);
	if (r < 0)
		return ab_error_set(p->err, -r, "cannot create seccomp filter");
	for (size_t i = 0; i < n; i++) {
		r = parse_entry(p, json_object_array_get_idx(syscalls, i), i);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Appends to the summary; a summary too long is cut. */
static void __attribute__((format(printf, 2, 3)))
summary_append(struct ab_seccomp_set *out, const char *fmt, ...)
{
	size_t used = strlen(out->summary);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out->summary + used, sizeof(out->summary) - used, fmt, ap);
	va_end(ap);
}

static const char *action_name(uint32_t action)
{
	for (size_t i = 0; i < AB_ELEMENTSOF(actions); i++)
		if ((action & (actions[i].takes_errno ? 0xffff0000u : 0xffffffffu)) ==
		    actions[i].action)
			return actions[i].name;
	return "SCMP_ACT_?";
}

int ab_seccomp_parse_docker_profile(const char *json, size_t len, struct ab_seccomp_set *out,
				    struct ab_error *err)
{
	struct profile p = { .err = err };
	struct json_tokener *tok;
	struct json_object *root;
	enum json_tokener_error jerr;
	size_t end;
	int r;

	memset(out, 0, sizeof(*out));
	if (len > AB_SECCOMP_PROFILE_MAX)
		return ab_error_set(err, 0, "larger than 1 MiB");
	tok = json_tokener_new_ex(AB_SECCOMP_PROFILE_MAX_DEPTH);
	if (!tok)
		return ab_error_set(err, ENOMEM, "cannot parse JSON");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, json, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (jerr == json_tokener_continue) {
		json_object_put(root);
		return ab_error_set(err, 0, "invalid JSON: unexpected end of input");
	}
	if (jerr != json_tokener_success) {
		json_object_put(root);
		return ab_error_set(err, 0, "invalid JSON at byte %zu: %s", end,
				    json_tokener_error_desc(jerr));
	}
	for (size_t i = end; i < len; i++) {
		if (!strchr(" \t\r\n", json[i]) || json[i] == '\0') {
			json_object_put(root);
			return ab_error_set(err, 0, "invalid JSON at byte %zu: trailing data", i);
		}
	}
	r = parse_root(&p, root);
	json_object_put(root);
	if (r >= 0) {
		r = ab_seccomp_ctx_export(p.ctx, &out->programs[0]);
		if (r < 0)
			r = ab_error_set(err, -r, "cannot export seccomp filter");
	}
	if (p.ctx)
		seccomp_release(p.ctx);
	if (r < 0) {
		ab_seccomp_set_free(out);
		return r;
	}
	out->n_programs = 1;
	if (p.default_action >> 16 == SCMP_ACT_ERRNO(0) >> 16)
		summary_append(out, "default %s(%u)", action_name(p.default_action),
			       p.default_action & 0xffffu);
	else
		summary_append(out, "default %s", action_name(p.default_action));
	summary_append(out, ", %zu syscalls in %zu rules (%zu skipped), %zu names unknown here, "
		       "foreign ABIs refused", p.n_added, p.n_rules, p.n_skipped, p.n_unknown);
	return 0;
}
