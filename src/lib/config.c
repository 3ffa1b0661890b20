/* `agentbox run` options -> one validated struct ab_config.
 * Everything the user can get wrong is caught here, before any namespace is made. */
#include "config.h"
#include "config-limits.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../proxy/proxy.h"
#include "../shared/cleanup.h"
#include "../shared/strutil.h"
#include "env.h"

#define AB_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

enum opt_id {
	OPT_ENV, OPT_ENV_FILE, OPT_VOLUME, OPT_TMPFS, OPT_WORKSPACE, OPT_WORKSPACE_MODE,
	OPT_ROOTFS, OPT_NETWORK, OPT_SECCOMP, OPT_TTY, OPT_NO_TTY, OPT_USER, OPT_NAME,
	OPT_EXPLAIN, OPT_REQUIRE, OPT_QUIET, OPT_MASK, OPT_UNMASK, OPT_DETACH, OPT_MEMORY,
	OPT_MEMORY_SWAP, OPT_CPUS, OPT_PIDS_LIMIT, OPT_DISK_LIMIT, OPT_TIMEOUT, OPT_ULIMIT,
	OPT_ALLOW, OPT_DENY, OPT_ADD_HOST,
};

struct opt_def {
	const char *long_name;
	char short_name;
	bool takes_value;
	enum opt_id id;
};

static const struct opt_def run_options[] = {
	{ "env", 'e', true, OPT_ENV },
	{ "env-file", 0, true, OPT_ENV_FILE },
	{ "volume", 'v', true, OPT_VOLUME },
	{ "tmpfs", 0, true, OPT_TMPFS },
	{ "workspace", 'w', true, OPT_WORKSPACE },
	{ "workspace-mode", 0, true, OPT_WORKSPACE_MODE },
	{ "rootfs", 0, true, OPT_ROOTFS },
	{ "network", 0, true, OPT_NETWORK },
	{ "net", 0, true, OPT_NETWORK },
	{ "seccomp", 0, true, OPT_SECCOMP },
	{ "tty", 't', false, OPT_TTY },
	{ "no-tty", 'T', false, OPT_NO_TTY },
	{ "user", 'u', true, OPT_USER },
	{ "name", 0, true, OPT_NAME },
	{ "explain", 0, false, OPT_EXPLAIN },
	{ "require", 0, true, OPT_REQUIRE },
	{ "quiet", 'q', false, OPT_QUIET },
	{ "mask", 0, true, OPT_MASK },
	{ "unmask", 0, true, OPT_UNMASK },
	{ "detach", 'd', false, OPT_DETACH },
	{ "memory", 'm', true, OPT_MEMORY },
	{ "memory-swap", 0, true, OPT_MEMORY_SWAP },
	{ "cpus", 0, true, OPT_CPUS },
	{ "pids-limit", 0, true, OPT_PIDS_LIMIT },
	{ "disk-limit", 0, true, OPT_DISK_LIMIT },
	{ "timeout", 0, true, OPT_TIMEOUT },
	{ "ulimit", 0, true, OPT_ULIMIT },
	{ "allow", 0, true, OPT_ALLOW },
	{ "deny", 0, true, OPT_DENY },
	{ "add-host", 0, true, OPT_ADD_HOST },
};

static const struct {
	const char *name;
	unsigned bit;
} layer_names[] = {
	{ "userns", AB_LAYER_USERNS },	 { "mountns", AB_LAYER_MOUNTNS }, { "pidns", AB_LAYER_PIDNS },
	{ "netns", AB_LAYER_NETNS },	 { "ipcns", AB_LAYER_IPCNS },	  { "utsns", AB_LAYER_UTSNS },
	{ "cgroupns", AB_LAYER_CGROUPNS }, { "caps", AB_LAYER_CAPS },	  { "nnp", AB_LAYER_NNP },
	{ "landlock", AB_LAYER_LANDLOCK }, { "seccomp", AB_LAYER_SECCOMP },
};

/* Paths the sandbox builds itself; nothing may be mounted over or under them. */
static const char *const reserved_dests[] = { "/proc", "/sys", "/dev" };

int ab_layer_from_name(const char *name, unsigned *out)
{
	for (size_t i = 0; i < AB_ELEMENTSOF(layer_names); i++)
		if (strcmp(name, layer_names[i].name) == 0) {
			*out = layer_names[i].bit;
			return 0;
		}
	return -EINVAL;
}

const char *ab_layer_name(unsigned layer)
{
	for (size_t i = 0; i < AB_ELEMENTSOF(layer_names); i++)
		if (layer_names[i].bit == layer)
			return layer_names[i].name;
	return "?";
}

int ab_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0, mult = 1;
	const char *p = s;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	switch (tolower((unsigned char)*p)) {
	case '\0': break;
	case 'b': mult = 1; p++; break;
	case 'k': mult = 1ULL << 10; p++; break;
	case 'm': mult = 1ULL << 20; p++; break;
	case 'g': mult = 1ULL << 30; p++; break;
	case 't': mult = 1ULL << 40; p++; break;
	default: return -EINVAL;
	}
	if (mult > 1 && (*p == 'b' || *p == 'B'))
		p++;
	else if (mult > 1 && (strcmp(p, "iB") == 0 || strcmp(p, "ib") == 0))
		p += 2;
	if (*p)
		return -EINVAL;
	if (v > (1ULL << 50) / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

int ab_normalize_path(const char *in, char **out)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	const char *p = in;

	if (!in || in[0] != '/' || strlen(in) >= PATH_MAX)
		return -EINVAL;
	buf = malloc(strlen(in) + 2);
	if (!buf)
		return -ENOMEM;
	while (*p) {
		const char *start, *end;
		size_t n;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		start = p;
		end = strchr(p, '/');
		if (!end)
			end = p + strlen(p);
		n = (size_t)(end - start);
		p = end;
		if (n == 1 && start[0] == '.')
			continue;
		if (n == 2 && start[0] == '.' && start[1] == '.')
			return -EINVAL; /* ".." is refused, never resolved */
		buf[len++] = '/';
		memcpy(buf + len, start, n);
		len += n;
	}
	if (len == 0)
		buf[len++] = '/';
	buf[len] = '\0';
	*out = TAKE_PTR(buf);
	return 0;
}

bool ab_name_is_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > AB_MAX_NAME_LEN || !isalnum((unsigned char)name[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '_' && name[i] != '.')
			return false;
	return true;
}

static int check_dest(const char *dest, const char *what, struct ab_error *err)
{
	if (strcmp(dest, "/") == 0)
		return ab_error_set(err, 0, "%s destination '/' is not allowed: choose a directory", what);
	for (size_t i = 0; i < AB_ELEMENTSOF(reserved_dests); i++)
		if (ab_path_is_beneath(dest, reserved_dests[i]))
			return ab_error_set(err, 0,
					    "%s destination '%s' is inside '%s', which agentbox builds itself: choose another path",
					    what, dest, reserved_dests[i]);
	return 0;
}

static int canonical_existing(const char *path, const char *what, char **out, struct ab_error *err)
{
	char *real = realpath(path, NULL);

	if (!real)
		return ab_error_set(err, errno, "%s '%s' cannot be used", what, path);
	*out = real;
	return 0;
}

int ab_parse_bind_spec(const char *spec, struct ab_bind_spec *out, struct ab_error *err)
{
	_cleanup_free_ char *copy = strdup(spec);
	_cleanup_free_ char *dest = NULL;
	char *src, *dst, *opts;
	struct stat st;
	int r;

	memset(out, 0, sizeof(*out));
	if (!copy)
		return ab_error_set(err, ENOMEM, "cannot parse volume");
	src = copy;
	dst = strchr(src, ':');
	if (!dst || dst == src || !dst[1])
		return ab_error_set(err, 0, "invalid volume '%s': use HOST:SANDBOX[:ro|rw]", spec);
	*dst++ = '\0';
	opts = strchr(dst, ':');
	if (opts)
		*opts++ = '\0';
	if (opts && strcmp(opts, "ro") == 0)
		out->read_only = true;
	else if (opts && strcmp(opts, "rw") != 0)
		return ab_error_set(err, 0, "invalid volume option '%s' in '%s': use ro or rw", opts, spec);
	if (src[0] != '/')
		return ab_error_set(err, 0, "volume source '%s' must be an absolute path", src);
	r = ab_normalize_path(dst, &dest);
	if (r < 0)
		return ab_error_set(err, 0, "volume destination '%s' must be an absolute path without '..'", dst);
	r = check_dest(dest, "volume", err);
	if (r < 0)
		return r;
	if (stat(src, &st) < 0)
		return ab_error_set(err, errno, "volume source '%s' cannot be used", src);
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
		return ab_error_set(err, 0, "volume source '%s' is neither a file nor a directory", src);
	r = canonical_existing(src, "volume source", &out->source, err);
	if (r < 0)
		return r;
	out->dest = TAKE_PTR(dest);
	return 0;
}

int ab_parse_tmpfs_spec(const char *spec, struct ab_tmpfs_spec *out, struct ab_error *err)
{
	_cleanup_free_ char *copy = strdup(spec);
	char *opts;
	int r;

	memset(out, 0, sizeof(*out));
	if (!copy)
		return ab_error_set(err, ENOMEM, "cannot parse tmpfs");
	out->size_bytes = AB_DEFAULT_TMP_SIZE;
	opts = strchr(copy, ':');
	if (opts)
		*opts++ = '\0';
	if (opts) {
		if (!ab_startswith(opts, "size="))
			return ab_error_set(err, 0, "invalid tmpfs option '%s' in '%s': use PATH[:size=N]", opts, spec);
		if (ab_parse_size(opts + 5, &out->size_bytes) < 0 || out->size_bytes < 4096)
			return ab_error_set(err, 0, "invalid tmpfs size '%s' in '%s': use a number with k, m or g, at least 4k",
					    opts + 5, spec);
	}
	r = ab_normalize_path(copy, &out->dest);
	if (r < 0)
		return ab_error_set(err, 0, "tmpfs path '%s' must be an absolute path without '..'", copy);
	r = check_dest(out->dest, "tmpfs", err);
	if (r < 0) {
		free(out->dest);
		out->dest = NULL;
	}
	return r;
}

static int parse_require(const char *list, struct ab_config *cfg, struct ab_error *err)
{
	_cleanup_free_ char *copy = strdup(list);
	char *save = NULL;

	if (!copy)
		return ab_error_set(err, ENOMEM, "cannot parse --require");
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		unsigned bit;
		if (ab_layer_from_name(tok, &bit) < 0)
			return ab_error_set(err, 0,
					    "unknown layer '%s' for --require: use userns, mountns, pidns, netns, ipcns, utsns, cgroupns, caps, nnp, landlock or seccomp",
					    tok);
		cfg->required_layers |= bit;
	}
	return 0;
}

static int add_tmpfs(struct ab_config *cfg, struct ab_tmpfs_spec *spec, struct ab_error *err)
{
	for (size_t i = 0; i < cfg->n_tmpfs; i++)
		if (strcmp(cfg->tmpfs[i].dest, spec->dest) == 0) { /* a later --tmpfs replaces */
			free(cfg->tmpfs[i].dest);
			cfg->tmpfs[i] = *spec;
			return 0;
		}
	if (cfg->n_tmpfs >= AB_MAX_TMPFS)
		return ab_error_set(err, 0, "too many --tmpfs mounts: at most %d", AB_MAX_TMPFS);
	struct ab_tmpfs_spec *grown = realloc(cfg->tmpfs, (cfg->n_tmpfs + 1) * sizeof(*grown));
	if (!grown)
		return ab_error_set(err, ENOMEM, "cannot add tmpfs '%s'", spec->dest);
	grown[cfg->n_tmpfs++] = *spec;
	cfg->tmpfs = grown;
	return 0;
}

static int add_bind(struct ab_config *cfg, struct ab_bind_spec *spec, struct ab_error *err)
{
	if (cfg->n_binds >= AB_MAX_MOUNTS)
		return ab_error_set(err, 0, "too many volumes: at most %d", AB_MAX_MOUNTS);
	struct ab_bind_spec *grown = realloc(cfg->binds, (cfg->n_binds + 1) * sizeof(*grown));
	if (!grown)
		return ab_error_set(err, ENOMEM, "cannot add volume '%s'", spec->dest);
	grown[cfg->n_binds++] = *spec;
	cfg->binds = grown;
	return 0;
}

/* --allow / --deny: parsed now, so a malformed rule stops the run before anything starts.
 * The same rule twice is kept once; the same rule both allowed and denied is refused. */
static int add_net_rule(struct ab_config *cfg, const char *spec, bool deny, struct ab_error *err)
{
	struct ab_net_rule rule;
	struct ab_net_rule *grown;
	int r;

	r = ab_net_rule_parse(spec, deny, &rule, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < cfg->n_net_rules; i++) {
		if (strcmp(cfg->net_rules[i].text, rule.text) != 0)
			continue;
		if (cfg->net_rules[i].deny == deny)
			return 0;
		return ab_error_set(err, 0, "--allow '%s' and --deny '%s' contradict each other: keep one", rule.text,
				    rule.text);
	}
	if (cfg->n_net_rules >= AB_NET_MAX_RULES)
		return ab_error_set(err, 0, "too many network rules at '%s': at most %d --allow and --deny", rule.text,
				    AB_NET_MAX_RULES);
	grown = realloc(cfg->net_rules, (cfg->n_net_rules + 1) * sizeof(*grown));
	if (!grown)
		return ab_error_set(err, ENOMEM, "cannot add network rule '%s'", rule.text);
	grown[cfg->n_net_rules++] = rule;
	cfg->net_rules = grown;
	return 0;
}

/* --add-host NAME:ADDR; a name may be given several addresses, as in /etc/hosts. */
static int add_net_host(struct ab_config *cfg, const char *spec, struct ab_error *err)
{
	struct ab_net_host_entry e;
	struct ab_net_host_entry *grown;
	int r;

	r = ab_net_host_entry_parse(spec, &e, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < cfg->n_net_hosts; i++)
		if (strcmp(cfg->net_hosts[i].name, e.name) == 0 && cfg->net_hosts[i].addr.family == e.addr.family &&
		    memcmp(cfg->net_hosts[i].addr.addr, e.addr.addr, sizeof(e.addr.addr)) == 0)
			return 0;
	if (cfg->n_net_hosts >= AB_MAX_NET_HOSTS)
		return ab_error_set(err, 0, "too many --add-host entries at '%s': at most %d", spec, AB_MAX_NET_HOSTS);
	grown = realloc(cfg->net_hosts, (cfg->n_net_hosts + 1) * sizeof(*grown));
	if (!grown)
		return ab_error_set(err, ENOMEM, "cannot add --add-host '%s'", spec);
	grown[cfg->n_net_hosts++] = e;
	cfg->net_hosts = grown;
	return 0;
}

/* --network, --allow, --deny and --add-host together: one network mode, or a message. */
static int settle_network(struct ab_config *cfg, bool network_given, const char *first_net_flag,
			  struct ab_error *err)
{
	if (first_net_flag && network_given && cfg->network != AB_NETWORK_FILTERED)
		return ab_error_set(err, 0, "%s needs the egress proxy: drop '--network %s'", first_net_flag,
				    cfg->network == AB_NETWORK_HOST ? "host" : "none");
	if (cfg->n_net_rules)
		cfg->network = AB_NETWORK_FILTERED;
	if (cfg->n_net_hosts && cfg->network != AB_NETWORK_FILTERED)
		return ab_error_set(err, 0, "--add-host names are resolved by the egress proxy: add --allow rules");
	return 0;
}

/* Filtered: programs that honour the proxy variables go to the proxy's listeners inside
 * the sandbox (the rest is captured anyway). A variable the user set is kept. */
static int add_proxy_env(struct ab_env *env)
{
	char http[64], socks[64];
	const char *no_proxy = "localhost,127.0.0.1,::1";
	const struct {
		const char *name;
		const char *value;
	} vars[] = {
		{ "HTTP_PROXY", http },	  { "http_proxy", http },   { "HTTPS_PROXY", http }, { "https_proxy", http },
		{ "ALL_PROXY", socks },	  { "all_proxy", socks },   { "NO_PROXY", no_proxy }, { "no_proxy", no_proxy },
	};
	int r;

	snprintf(http, sizeof(http), "http://127.0.0.1:%d", AB_PROXY_HTTP_PORT);
	snprintf(socks, sizeof(socks), "socks5h://127.0.0.1:%d", AB_PROXY_SOCKS_PORT);
	for (size_t i = 0; i < AB_ELEMENTSOF(vars); i++) {
		if (ab_env_lookup(env->vars, vars[i].name))
			continue;
		if ((r = ab_env_set(env, vars[i].name, vars[i].value)) < 0)
			return r;
	}
	return 0;
}

static const struct opt_def *find_option(const char *arg, const char **inline_value)
{
	*inline_value = NULL;
	if (arg[0] == '-' && arg[1] == '-') {
		const char *name = arg + 2;
		const char *eq = strchr(name, '=');
		size_t n = eq ? (size_t)(eq - name) : strlen(name);
		for (size_t i = 0; i < AB_ELEMENTSOF(run_options); i++)
			if (strlen(run_options[i].long_name) == n && strncmp(run_options[i].long_name, name, n) == 0) {
				if (eq)
					*inline_value = eq + 1;
				return &run_options[i];
			}
		return NULL;
	}
	for (size_t i = 0; i < AB_ELEMENTSOF(run_options); i++)
		if (run_options[i].short_name && arg[1] == run_options[i].short_name) {
			if (arg[2])
				*inline_value = arg + 2;
			return &run_options[i];
		}
	return NULL;
}

/* The workspace is handed to the agent read-write: refuse the places where that would hand
 * over the user's whole home or the system. */
static int check_workspace(struct ab_config *cfg, char **environ_in, struct ab_error *err)
{
	/* The system itself: never a workspace, nor anything beneath it. (/var and /run hold
	 * projects on some machines, /var/www say, so only they themselves are refused.) */
	static const char *const system_trees[] = { "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64",
						    "/boot", "/proc", "/sys", "/dev" };
	static const char *const system_dirs[] = { "/var", "/run" };
	const char *home = ab_env_lookup(environ_in, "HOME");
	struct passwd *pw = getpwuid(cfg->host_uid);
	_cleanup_free_ char *env_home = home ? realpath(home, NULL) : NULL;
	_cleanup_free_ char *pw_home = pw && pw->pw_dir ? realpath(pw->pw_dir, NULL) : NULL;
	const char *homes[] = { env_home, pw_home };
	const char *ws = cfg->workspace;

	if (strcmp(ws, "/") == 0)
		return ab_error_set(err, 0, "workspace '/' would expose the whole host: cd into a project or pass --workspace");
	for (size_t i = 0; i < AB_ELEMENTSOF(system_trees); i++)
		if (ab_path_is_beneath(ws, system_trees[i]))
			return ab_error_set(err, 0, "workspace '%s' is a system directory: cd into a project or pass --workspace", ws);
	for (size_t i = 0; i < AB_ELEMENTSOF(system_dirs); i++)
		if (strcmp(ws, system_dirs[i]) == 0)
			return ab_error_set(err, 0, "workspace '%s' is a system directory: cd into a project or pass --workspace", ws);
	for (size_t i = 0; i < AB_ELEMENTSOF(homes); i++)
		if (homes[i] && strcmp(homes[i], "/") != 0 && ab_path_is_beneath(homes[i], ws))
			return ab_error_set(err, 0,
					    "workspace '%s' holds your home directory and its secrets (~/.ssh and the like): cd into a project or pass --workspace",
					    ws);
	return 0;
}

static int set_identity(struct ab_config *cfg, struct ab_error *err)
{
	struct passwd *pw;

	cfg->host_uid = getuid();
	cfg->host_gid = getgid();
	if (cfg->user_root) {
		cfg->sandbox_uid = 0;
		cfg->sandbox_gid = 0;
		cfg->user_name = strdup("root");
		cfg->home = strdup("/root");
	} else if (cfg->host_uid == 0) {
		/* Root's work runs as an ordinary user inside; its files still belong to root. */
		cfg->sandbox_uid = 1000;
		cfg->sandbox_gid = 1000;
		cfg->user_name = strdup("agentbox");
		cfg->home = strdup("/home/agentbox");
	} else {
		pw = getpwuid(cfg->host_uid);
		cfg->sandbox_uid = cfg->host_uid;
		cfg->sandbox_gid = cfg->host_gid;
		cfg->user_name = strdup(pw && pw->pw_name && ab_name_is_valid(pw->pw_name) ? pw->pw_name : "agentbox");
		if (cfg->user_name && asprintf(&cfg->home, "/home/%s", cfg->user_name) < 0)
			cfg->home = NULL;
	}
	if (!cfg->user_name || !cfg->home)
		return ab_error_set(err, ENOMEM, "cannot set up the sandbox user");
	return 0;
}

static int finish_env(struct ab_config *cfg, struct ab_env *env, struct ab_error *err)
{
	int r = 0;

	if (!ab_env_lookup(env->vars, "PATH"))
		r = ab_env_set(env, "PATH", AB_DEFAULT_PATH);
	/* These describe the sandbox, so the user cannot override them by accident. */
	if (r >= 0)
		r = ab_env_set(env, "HOME", cfg->home);
	if (r >= 0)
		r = ab_env_set(env, "USER", cfg->user_name);
	if (r >= 0)
		r = ab_env_set(env, "LOGNAME", cfg->user_name);
	if (r >= 0)
		r = ab_env_set(env, "HOSTNAME", cfg->hostname);
	if (r >= 0 && !ab_env_lookup(env->vars, "SHELL"))
		r = ab_env_set(env, "SHELL", "/bin/sh");
	if (r >= 0 && !ab_env_lookup(env->vars, "TERM") && cfg->tty_mode == AB_TTY_ALWAYS)
		r = ab_env_set(env, "TERM", "xterm");
	if (r >= 0)
		r = ab_env_set(env, "AGENTBOX", "1");
	if (r < 0)
		return ab_error_set(err, -r, "cannot build the sandbox environment");
	cfg->env = TAKE_PTR(env->vars);
	env->n = 0;
	return 0;
}

int ab_config_parse_run(int argc, char **argv, char **environ_in, struct ab_config *cfg,
			struct ab_error *err)
{
	struct ab_env env = { 0 };
	_cleanup_free_ char *workspace_arg = NULL;
	_cleanup_strv_free_ char **env_args = NULL;
	_cleanup_strv_free_ char **env_files = NULL;
	_cleanup_strv_free_ char **unmasks = NULL;
	size_t n_env_args = 0, n_env_files = 0, n_unmasks = 0;
	bool have_tmp = false, network_given = false;
	const char *first_net_flag = NULL; /* "--allow", "--deny" or "--add-host", for messages */
	int i, r = 0;

	memset(cfg, 0, sizeof(*cfg));
	cfg->limits.memory_swap = -1;
	for (size_t m = 0; m < ab_n_default_masks; m++)
		if ((r = ab_strv_push(&cfg->masks, &cfg->n_masks, ab_default_masks[m])) < 0) {
			r = ab_error_set(err, -r, "cannot set up the masks");
			goto fail;
		}
	for (i = 0; i < argc; i++) {
		const char *arg = argv[i], *value = NULL;
		const struct opt_def *opt;

		if (strcmp(arg, "--") == 0) {
			i++;
			break;
		}
		if (arg[0] != '-' || arg[1] == '\0')
			break; /* the command starts here */
		opt = find_option(arg, &value);
		if (!opt) {
			r = ab_error_set(err, 0, "unknown option '%s' for 'run': see 'agentbox run --help'", arg);
			goto fail;
		}
		if (!opt->takes_value && value) {
			if (opt->short_name && arg[1] != '-')
				r = ab_error_set(err, 0, "unknown option '%s' for 'run': give short options one by one", arg);
			else
				r = ab_error_set(err, 0, "option '--%s' takes no value", opt->long_name);
			goto fail;
		}
		if (opt->takes_value && !value) {
			if (i + 1 >= argc) {
				r = ab_error_set(err, 0, "option '%s' needs a value", arg);
				goto fail;
			}
			value = argv[++i];
		}
		switch (opt->id) {
		case OPT_ENV:
			r = ab_strv_push(&env_args, &n_env_args, value);
			break;
		case OPT_ENV_FILE:
			r = ab_strv_push(&env_files, &n_env_files, value);
			break;
		case OPT_VOLUME: {
			struct ab_bind_spec b;
			r = ab_parse_bind_spec(value, &b, err);
			if (r >= 0 && (r = add_bind(cfg, &b, err)) < 0) {
				free(b.source);
				free(b.dest);
			}
			if (r < 0)
				goto fail;
			break;
		}
		case OPT_TMPFS: {
			struct ab_tmpfs_spec t;
			r = ab_parse_tmpfs_spec(value, &t, err);
			if (r >= 0 && (r = add_tmpfs(cfg, &t, err)) < 0)
				free(t.dest);
			if (r < 0)
				goto fail;
			break;
		}
		case OPT_WORKSPACE:
			free(workspace_arg);
			workspace_arg = strdup(value);
			if (!workspace_arg)
				r = -ENOMEM;
			break;
		case OPT_WORKSPACE_MODE:
			if (strcmp(value, "cow") == 0)
				cfg->workspace_mode = AB_WORKSPACE_COW;
			else if (strcmp(value, "rw") == 0)
				cfg->workspace_mode = AB_WORKSPACE_RW;
			else if (strcmp(value, "ro") == 0)
				cfg->workspace_mode = AB_WORKSPACE_RO;
			else {
				r = ab_error_set(err, 0, "unknown workspace mode '%s': use cow, rw or ro", value);
				goto fail;
			}
			break;
		case OPT_ROOTFS:
			free(cfg->rootfs);
			cfg->rootfs = strdup(value);
			if (!cfg->rootfs)
				r = -ENOMEM;
			break;
		case OPT_NETWORK:
			if (strcmp(value, "none") == 0)
				cfg->network = AB_NETWORK_NONE;
			else if (strcmp(value, "host") == 0)
				cfg->network = AB_NETWORK_HOST;
			else if (strcmp(value, "filtered") == 0)
				cfg->network = AB_NETWORK_FILTERED;
			else {
				r = ab_error_set(err, 0,
						 "unknown network mode '%s': use none, host or filtered (or --allow rules)",
						 value);
				goto fail;
			}
			network_given = true;
			break;
		case OPT_ALLOW:
		case OPT_DENY:
			if (!first_net_flag)
				first_net_flag = opt->id == OPT_ALLOW ? "--allow" : "--deny";
			if ((r = add_net_rule(cfg, value, opt->id == OPT_DENY, err)) < 0)
				goto fail;
			break;
		case OPT_ADD_HOST:
			if (!first_net_flag)
				first_net_flag = "--add-host";
			if ((r = add_net_host(cfg, value, err)) < 0)
				goto fail;
			break;
		case OPT_SECCOMP:
			free(cfg->seccomp_profile);
			cfg->seccomp_profile = NULL;
			if (strcmp(value, "default") == 0)
				cfg->seccomp_mode = AB_SECCOMP_DEFAULT;
			else if (strcmp(value, "strict") == 0)
				cfg->seccomp_mode = AB_SECCOMP_STRICT;
			else if (strcmp(value, "unconfined") == 0)
				cfg->seccomp_mode = AB_SECCOMP_UNCONFINED;
			else {
				struct stat st;
				if (stat(value, &st) < 0) {
					r = ab_error_set(err, errno,
							 "seccomp profile '%s' cannot be read (use default, strict, unconfined or a JSON file)",
							 value);
					goto fail;
				}
				if (!S_ISREG(st.st_mode)) {
					r = ab_error_set(err, 0, "seccomp profile '%s' is not a regular file", value);
					goto fail;
				}
				cfg->seccomp_mode = AB_SECCOMP_PROFILE;
				r = canonical_existing(value, "seccomp profile", &cfg->seccomp_profile, err);
				if (r < 0)
					goto fail;
			}
			break;
		case OPT_TTY:
			cfg->tty_mode = AB_TTY_ALWAYS;
			break;
		case OPT_NO_TTY:
			cfg->tty_mode = AB_TTY_NEVER;
			break;
		case OPT_USER:
			if (strcmp(value, "root") == 0 || strcmp(value, "0") == 0)
				cfg->user_root = true;
			else if (strcmp(value, "default") == 0)
				cfg->user_root = false;
			else {
				r = ab_error_set(err, 0, "unknown user '%s': use root (uid 0 inside only) or default", value);
				goto fail;
			}
			break;
		case OPT_NAME:
			if (!ab_name_is_valid(value)) {
				r = ab_error_set(err, 0,
						 "invalid sandbox name '%s': use up to %d letters, digits, '-', '_' or '.', starting with a letter or digit",
						 value, AB_MAX_NAME_LEN);
				goto fail;
			}
			free(cfg->name);
			cfg->name = strdup(value);
			if (!cfg->name)
				r = -ENOMEM;
			break;
		case OPT_EXPLAIN:
			cfg->explain = true;
			break;
		case OPT_REQUIRE:
			r = parse_require(value, cfg, err);
			if (r < 0)
				goto fail;
			break;
		case OPT_QUIET:
			cfg->quiet = true;
			break;
		case OPT_MASK:
			if (!*value || strlen(value) > 255) {
				r = ab_error_set(err, 0, "invalid mask '%s': use a file name pattern such as '*.pem'", value);
				goto fail;
			}
			if (cfg->n_masks >= AB_MAX_MASKS) {
				r = ab_error_set(err, 0, "too many masks at '%s': at most %d", value, AB_MAX_MASKS);
				goto fail;
			}
			r = ab_strv_push(&cfg->masks, &cfg->n_masks, value);
			break;
		case OPT_UNMASK:
			r = ab_strv_push(&unmasks, &n_unmasks, value);
			break;
		case OPT_DETACH:
			cfg->detach = true;
			break;
		case OPT_MEMORY:
		case OPT_MEMORY_SWAP:
		case OPT_CPUS:
		case OPT_PIDS_LIMIT:
		case OPT_DISK_LIMIT:
		case OPT_TIMEOUT:
		case OPT_ULIMIT: {
			static const enum ab_limit_option which[] = {
				[OPT_MEMORY] = AB_LIMIT_MEMORY,	      [OPT_MEMORY_SWAP] = AB_LIMIT_MEMORY_SWAP,
				[OPT_CPUS] = AB_LIMIT_CPUS,	      [OPT_PIDS_LIMIT] = AB_LIMIT_PIDS,
				[OPT_DISK_LIMIT] = AB_LIMIT_DISK,     [OPT_TIMEOUT] = AB_LIMIT_TIMEOUT,
				[OPT_ULIMIT] = AB_LIMIT_ULIMIT,
			};
			if ((r = ab_parse_limit(which[opt->id], value, &cfg->limits, err)) < 0)
				goto fail;
			break;
		}
		}
		if (r < 0) {
			r = ab_error_set(err, -r, "cannot parse option '%s'", arg);
			goto fail;
		}
	}

	for (size_t u = 0; u < n_unmasks; u++) {
		size_t kept = 0;
		bool found = false;
		for (size_t m = 0; m < cfg->n_masks; m++) {
			if (strcmp(cfg->masks[m], unmasks[u]) == 0) {
				free(cfg->masks[m]);
				found = true;
				continue;
			}
			cfg->masks[kept++] = cfg->masks[m];
		}
		if (cfg->masks)
			cfg->masks[kept] = NULL;
		cfg->n_masks = kept;
		if (!found) {
			r = ab_error_set(err, 0, "--unmask '%s' names no mask: the masks are the defaults (see 'agentbox run --explain') and --mask", unmasks[u]);
			goto fail;
		}
	}

	r = settle_network(cfg, network_given, first_net_flag, err);
	if (r < 0)
		goto fail;

	if (i >= argc && !cfg->explain) {
		r = ab_error_set(err, 0, "no command given: use 'agentbox run [OPTIONS] -- COMMAND [ARGS]'");
		goto fail;
	}
	if (i < argc && argv[i][0] == '\0') {
		r = ab_error_set(err, 0, "the command '' is empty: use 'agentbox run [OPTIONS] -- COMMAND [ARGS]'");
		goto fail;
	}
	cfg->argv = calloc((size_t)(argc - i) + 1, sizeof(char *));
	if (!cfg->argv) {
		r = ab_error_set(err, ENOMEM, "cannot copy the command");
		goto fail;
	}
	for (int j = i; j < argc; j++)
		if (!(cfg->argv[j - i] = strdup(argv[j]))) {
			r = ab_error_set(err, ENOMEM, "cannot copy the command");
			goto fail;
		}

	cfg->hostname = strdup(cfg->name ? cfg->name : "agentbox");
	if (!cfg->hostname) {
		r = ab_error_set(err, ENOMEM, "cannot set the host name");
		goto fail;
	}
	r = set_identity(cfg, err);
	if (r < 0)
		goto fail;

	/* The workspace: the current directory unless --workspace says otherwise. */
	if (!workspace_arg) {
		workspace_arg = getcwd(NULL, 0);
		if (!workspace_arg) {
			r = ab_error_set(err, errno, "cannot find the current directory for the workspace");
			goto fail;
		}
	}
	{
		struct stat st;
		if (stat(workspace_arg, &st) < 0) {
			r = ab_error_set(err, errno, "workspace '%s' cannot be used", workspace_arg);
			goto fail;
		}
		if (!S_ISDIR(st.st_mode)) {
			r = ab_error_set(err, 0, "workspace '%s' is not a directory: pass a project directory with --workspace",
					 workspace_arg);
			goto fail;
		}
	}
	r = canonical_existing(workspace_arg, "workspace", &cfg->workspace, err);
	if (r < 0)
		goto fail;
	r = check_workspace(cfg, environ_in, err);
	if (r < 0)
		goto fail;
	cfg->workspace_dest = strdup(cfg->workspace);
	if (!cfg->workspace_dest) {
		r = ab_error_set(err, ENOMEM, "cannot set up the workspace");
		goto fail;
	}
	r = check_dest(cfg->workspace_dest, "workspace", err);
	if (r < 0)
		goto fail;

	if (cfg->rootfs) {
		char *real = NULL;
		struct stat st;
		if (stat(cfg->rootfs, &st) < 0) {
			r = ab_error_set(err, errno, "root filesystem '%s' cannot be used", cfg->rootfs);
			goto fail;
		}
		if (!S_ISDIR(st.st_mode)) {
			r = ab_error_set(err, 0, "root filesystem '%s' is not a directory", cfg->rootfs);
			goto fail;
		}
		r = canonical_existing(cfg->rootfs, "root filesystem", &real, err);
		if (r < 0)
			goto fail;
		free(cfg->rootfs);
		cfg->rootfs = real;
		if (strcmp(real, "/") == 0) {
			free(cfg->rootfs);
			cfg->rootfs = NULL; /* the host's own root: the default view */
		}
	}

	for (size_t t = 0; t < cfg->n_tmpfs; t++)
		if (strcmp(cfg->tmpfs[t].dest, "/tmp") == 0)
			have_tmp = true;
	if (!have_tmp) {
		struct ab_tmpfs_spec t = { .dest = strdup("/tmp"), .size_bytes = AB_DEFAULT_TMP_SIZE };
		if (!t.dest || add_tmpfs(cfg, &t, err) < 0) {
			free(t.dest);
			r = ab_error_set(err, ENOMEM, "cannot add /tmp");
			goto fail;
		}
	}

	/* Two mounts at one place would silently hide one of them. */
	for (size_t a = 0; a < cfg->n_binds; a++) {
		if (strcmp(cfg->binds[a].dest, cfg->workspace_dest) == 0) {
			r = ab_error_set(err, 0, "volume destination '%s' is the workspace itself", cfg->binds[a].dest);
			goto fail;
		}
		for (size_t b = a + 1; b < cfg->n_binds; b++)
			if (strcmp(cfg->binds[a].dest, cfg->binds[b].dest) == 0) {
				r = ab_error_set(err, 0, "volume destination '%s' is given twice", cfg->binds[a].dest);
				goto fail;
			}
		for (size_t t = 0; t < cfg->n_tmpfs; t++)
			if (strcmp(cfg->binds[a].dest, cfg->tmpfs[t].dest) == 0) {
				r = ab_error_set(err, 0, "'%s' is both a volume and a tmpfs", cfg->binds[a].dest);
				goto fail;
			}
	}
	/* A tmpfs above the workspace is fine (the workspace is mounted on it); one at the
	 * workspace's own path would hide it. */
	for (size_t t = 0; t < cfg->n_tmpfs; t++)
		if (strcmp(cfg->workspace_dest, cfg->tmpfs[t].dest) == 0) {
			r = ab_error_set(err, 0, "tmpfs '%s' would hide the workspace", cfg->tmpfs[t].dest);
			goto fail;
		}

	r = ab_check_limits(cfg, err);
	if (r < 0)
		goto fail;

	/* The environment: the safe list, then env files, then -e, in the order given. */
	r = ab_env_add_safe(&env, environ_in);
	if (r < 0) {
		r = ab_error_set(err, -r, "cannot build the sandbox environment");
		goto fail;
	}
	for (size_t f = 0; f < n_env_files; f++) {
		_cleanup_free_ char *text = NULL;
		size_t len = 0;
		r = ab_read_file(env_files[f], AB_MAX_ENV_FILE_BYTES, &text, &len);
		if (r == -EFBIG) {
			r = ab_error_set(err, 0, "env file '%s' is larger than %d bytes", env_files[f], AB_MAX_ENV_FILE_BYTES);
			goto fail;
		}
		if (r < 0) {
			r = ab_error_set(err, -r, "env file '%s' cannot be read", env_files[f]);
			goto fail;
		}
		r = ab_env_add_file_text(&env, text, len, env_files[f], environ_in, err);
		if (r < 0)
			goto fail;
	}
	for (size_t e = 0; e < n_env_args; e++) {
		r = ab_env_add_arg(&env, env_args[e], environ_in, err);
		if (r < 0)
			goto fail;
	}
	if (cfg->network == AB_NETWORK_FILTERED && (r = add_proxy_env(&env)) < 0) {
		r = ab_error_set(err, -r, "cannot set the proxy variables");
		goto fail;
	}
	r = finish_env(cfg, &env, err);
	if (r < 0)
		goto fail;
	return 0;

fail:
	ab_env_free(&env);
	ab_config_free(cfg);
	return r < 0 ? r : -EINVAL;
}

void ab_config_free(struct ab_config *cfg)
{
	ab_strv_free(cfg->argv);
	free(cfg->name);
	free(cfg->hostname);
	free(cfg->workspace);
	free(cfg->workspace_dest);
	free(cfg->rootfs);
	for (size_t i = 0; i < cfg->n_binds; i++) {
		free(cfg->binds[i].source);
		free(cfg->binds[i].dest);
	}
	free(cfg->binds);
	for (size_t i = 0; i < cfg->n_tmpfs; i++)
		free(cfg->tmpfs[i].dest);
	free(cfg->tmpfs);
	ab_strv_free(cfg->env);
	free(cfg->seccomp_profile);
	free(cfg->user_name);
	free(cfg->home);
	ab_strv_free(cfg->masks);
	free(cfg->overlay_upper);
	free(cfg->overlay_middle);
	free(cfg->overlay_work);
	ab_mask_hits_free(cfg->mask_hits, cfg->n_mask_hits);
	free(cfg->net_rules);
	free(cfg->net_hosts);
	memset(cfg, 0, sizeof(*cfg));
}
