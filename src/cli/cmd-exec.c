/* agentbox exec: another command in a running sandbox, confined as its own command is.
 * The sandbox's confinement is rebuilt from the arguments its run was given (recorded in
 * its state), so exec never gets more than the sandbox has. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/cgroup.h"
#include "../lib/config.h"
#include "../lib/features.h"
#include "../lib/join.h"
#include "../lib/seccomp.h"
#include "../lib/state.h"
#include "../shared/cleanup.h"
#include "../shared/error.h"
#include "../shared/strutil.h"
#include "commands.h"

extern char **environ;

static void exec_usage(FILE *out)
{
	fprintf(out, "usage: agentbox exec [OPTIONS] NAME [--] COMMAND [ARGS...]\n\n"
		     "Runs COMMAND in the running sandbox NAME: its namespaces, cgroup, user, and the\n"
		     "same capabilities (none), no_new_privs, Landlock rules and seccomp filter.\n\n"
		     "Options:\n"
		     "  -e, --env NAME[=VALUE]   add a variable (NAME alone: the caller's value)\n"
		     "  -w, --workdir DIR        where the command starts (default: the workspace)\n"
		     "  -t, --tty / -T, --no-tty a terminal (default: when stdin is a terminal)\n");
}

/* NAME=VALUE replaces NAME in env, or is added. */
static int env_set(char ***env, const char *entry)
{
	size_t len = strcspn(entry, "="), n = 0;

	for (char **e = *env; e && *e; e++, n++)
		if (!strncmp(*e, entry, len) && (*e)[len] == '=') {
			char *copy = strdup(entry);
			if (!copy)
				return -ENOMEM;
			free(*e);
			*e = copy;
			return 0;
		}
	return ab_strv_push(env, &n, entry);
}

int cmd_exec(int argc, char **argv)
{
	struct ab_config cfg = { 0 };
	struct ab_features features;
	struct ab_seccomp_set seccomp = { 0 };
	struct ab_error err = { 0 };
	struct ab_state st = { 0 };
	struct ab_cgroup cg = { 0 };
	_cleanup_strv_free_ char **env = NULL;
	_cleanup_strv_free_ char **extra = NULL;
	_cleanup_free_ char *here = NULL;
	char *procs[AB_CG1_N + 1] = { 0 };
	const char *name = NULL, *workdir = NULL;
	int tty = -1, exit_code = AB_EXIT_INTERNAL, i;
	size_t n_extra = 0, n_procs = 0;
	bool have_cfg = false;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			exec_usage(stdout);
			return 0;
		}
		if ((!strcmp(a, "-e") || !strcmp(a, "--env")) && i + 1 < argc) {
			const char *v = argv[++i];
			char *entry = NULL;
			if (!*v || *v == '=') {
				fprintf(stderr, "agentbox: invalid variable '%s' for 'exec': use NAME or NAME=VALUE\n", v);
				return AB_EXIT_INTERNAL;
			}
			if (strchr(v, '=')) {
				entry = strdup(v);
			} else {
				const char *val = getenv(v);
				if (!val)
					continue; /* NAME alone passes the caller's value, when there is one */
				if (asprintf(&entry, "%s=%s", v, val) < 0)
					entry = NULL;
			}
			if (!entry || ab_strv_push(&extra, &n_extra, entry) < 0) {
				free(entry);
				return AB_EXIT_INTERNAL;
			}
			free(entry);
		} else if ((!strcmp(a, "-w") || !strcmp(a, "--workdir")) && i + 1 < argc) {
			workdir = argv[++i];
			if (workdir[0] != '/') {
				fprintf(stderr, "agentbox: --workdir '%s' is not an absolute path inside the sandbox\n", workdir);
				return AB_EXIT_INTERNAL;
			}
		} else if (!strcmp(a, "-t") || !strcmp(a, "--tty")) {
			tty = 1;
		} else if (!strcmp(a, "-T") || !strcmp(a, "--no-tty")) {
			tty = 0;
		} else if (a[0] == '-') {
			fprintf(stderr, "agentbox: unknown option '%s' for 'exec': see 'agentbox exec --help'\n", a);
			return AB_EXIT_INTERNAL;
		} else if (!name) {
			name = a;
		} else {
			break; /* the command, without "--" */
		}
	}
	if (!name) {
		fprintf(stderr, "agentbox: 'exec' needs a sandbox name: see 'agentbox ps'\n");
		return AB_EXIT_INTERNAL;
	}
	if (i >= argc || !argv[i][0]) {
		fprintf(stderr, "agentbox: no command given: use 'agentbox exec %s -- COMMAND [ARGS]'\n", name);
		return AB_EXIT_INTERNAL;
	}
	if (ab_state_load(name, &st, &err) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		return AB_EXIT_INTERNAL;
	}
	if (st.status != AB_STATUS_RUNNING || !ab_proc_is(st.init_pid, st.init_start)) {
		fprintf(stderr, "agentbox: cannot exec in sandbox '%s': it is not running (%s)\n", name,
			ab_status_name(st.status));
		goto out;
	}
	/* The run's own arguments, read from where it was started, give the same config. */
	here = getcwd(NULL, 0);
	int n_args = 0;
	while (st.run_args && st.run_args[n_args])
		n_args++;
	if (!st.cwd || chdir(st.cwd) < 0 || ab_config_parse_run(n_args, st.run_args, environ, &cfg, &err) < 0) {
		fprintf(stderr, "agentbox: cannot rebuild the confinement of sandbox '%s': %s\n", name,
			err.msg[0] ? err.msg : "its start directory is gone");
		goto out;
	}
	have_cfg = true;
	if (here && chdir(here) < 0) {
		/* only affects nothing further: every path from here is absolute */
	}
	if (st.cgroup && ab_cgroup_from_json(st.cgroup, &cg) >= 0) {
		cfg.limits_mode = (int)cg.mode;
		n_procs = ab_cgroup_procs_files(&cg, procs);
	}
	ab_features_probe(&features, cfg.host_uid == 0);
	if (ab_seccomp_prepare(cfg.seccomp_mode, cfg.seccomp_profile, &seccomp, &err) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		goto out;
	}
	{
		size_t n = 0;
		for (char **e = cfg.env; e && *e; e++)
			if (ab_strv_push(&env, &n, *e) < 0)
				goto out;
		for (size_t k = 0; k < n_extra; k++)
			if (env_set(&env, extra[k]) < 0)
				goto out;
	}
	struct ab_exec_request req = {
		.cfg = &cfg,
		.argv = argv + i,
		.env = env,
		.cwd = workdir,
		.init_pid = st.init_pid,
		.cgroup_procs = procs,
		.n_cgroup_procs = n_procs,
		.tty = tty == 1 || (tty == -1 && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)),
		.landlock_abi = features.landlock_abi,
		.seccomp = features.seccomp ? &seccomp : NULL,
	};
	if (ab_sandbox_exec(&req, &exit_code, &err) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		exit_code = AB_EXIT_INTERNAL;
		goto out;
	}
	if (err.msg[0])
		fprintf(stderr, "agentbox: %s\n", err.msg);
out:
	for (size_t k = 0; k < n_procs; k++)
		free(procs[k]);
	ab_cgroup_free(&cg);
	ab_seccomp_set_free(&seccomp);
	if (have_cfg)
		ab_config_free(&cfg);
	ab_state_free(&st);
	return exit_code;
}
