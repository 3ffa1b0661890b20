/* agentbox run: parse, check what the kernel can enforce, build the seccomp filter, then
 * start the sandbox. Everything that can be wrong with the input fails before the clone. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../lib/config.h"
#include "../lib/features.h"
#include "../lib/seccomp.h"
#include "../lib/lifecycle.h"
#include "../shared/error.h"
#include "commands.h"

extern char **environ;

static void run_usage(FILE *out)
{
	fprintf(out,
		"usage: agentbox run [OPTIONS] [--] COMMAND [ARGS...]\n\n"
		"Runs COMMAND in a new sandbox: the host's tools read-only, the current directory as\n"
		"the workspace at the same path, an empty home, no network, no capabilities.\n\n"
		"Options:\n"
		"  -w, --workspace PATH        the project directory (default: the current directory)\n"
		"      --workspace-mode MODE   cow (default): changes kept apart until 'agentbox apply';\n"
		"                              rw: straight to the project; ro: read-only\n"
		"      --name NAME             the sandbox (default: named after the project); a later\n"
		"                              run with the same name continues on the same changes\n"
		"      --mask PATTERN          hide the project's files matching PATTERN (the defaults:\n"
		"                              .env .env.* *.pem *.key id_rsa* .npmrc .pypirc .netrc ...)\n"
		"      --unmask PATTERN        drop one of the default masks\n"
		"  -v, --volume HOST:SANDBOX[:ro|rw]  bind a host path into the sandbox\n"
		"      --tmpfs PATH[:size=N]   a tmpfs at PATH (/tmp is one, 512m, by default)\n"
		"      --rootfs DIR            use DIR (e.g. made by debootstrap) as the root\n"
		"  -e, --env NAME[=VALUE]      pass a variable (NAME alone: the caller's value)\n"
		"      --env-file FILE         pass the NAME=VALUE lines of FILE\n"
		"      --network MODE          none: loopback only (default); host: the host's network;\n"
		"                              filtered: out only through agentbox's egress proxy\n"
		"      --allow RULE            let the sandbox reach RULE: 'api.example.com',\n"
		"                              '*.example.com' (subdomains), '10.1.2.3', '10.0.0.0/8',\n"
		"                              each with an optional ':PORT'; implies --network filtered\n"
		"      --deny RULE             refuse RULE even where an --allow matches\n"
		"      --add-host NAME:ADDR    the egress proxy resolves NAME to ADDR\n"
		"      --seccomp MODE|FILE     default, strict, unconfined, or a Docker JSON profile\n"
		"  -u, --user root|default     root inside the user namespace only (no capabilities)\n"
		"  -t, --tty / -T, --no-tty    a terminal (default: when stdin is a terminal)\n"
		"      --explain               print what will be enforced here and exit\n"
		"      --require LAYER[,..]    fail unless LAYER is enforced: userns, mountns, pidns,\n"
		"                              netns, ipcns, utsns, cgroupns, caps, nnp, landlock, seccomp\n"
		"  -q, --quiet                 no warnings\n\n"
		"Exit status: the command's (128+N for signal N); 125 when agentbox fails, 126 when\n"
		"the command cannot be run, 127 when it is not found.\n");
}

static void print_size(char *buf, size_t size, uint64_t bytes)
{
	if (bytes >= (1ULL << 30) && !(bytes % (1ULL << 30)))
		snprintf(buf, size, "%llug", (unsigned long long)(bytes >> 30));
	else if (bytes >= (1ULL << 20))
		snprintf(buf, size, "%llum", (unsigned long long)(bytes >> 20));
	else
		snprintf(buf, size, "%lluk", (unsigned long long)(bytes >> 10));
}

/* What a person should know about how the run ended. */
static void report_end(const struct ab_config *cfg, const struct ab_run_outcome *o)
{
	char size[32];

	if (strcmp(o->reason, "oom") == 0) {
		print_size(size, sizeof(size), cfg->limits.memory);
		fprintf(stderr, "agentbox: out of memory: the sandbox reached its memory limit (--memory %s) and the kernel killed its command\n",
			size);
	} else if (strcmp(o->reason, "timeout") == 0) {
		fprintf(stderr, "agentbox: the sandbox reached its --timeout and was stopped\n");
	}
	if (o->n_changes && !cfg->quiet)
		fprintf(stderr,
			"agentbox: %zu change%s kept in sandbox '%s' (the project is untouched): "
			"'agentbox diff %s' to review, 'agentbox apply %s' to take them\n",
			o->n_changes, o->n_changes == 1 ? "" : "s", o->name, o->name, o->name);
}

int cmd_run(int argc, char **argv)
{
	struct ab_config cfg;
	struct ab_features features;
	struct ab_seccomp_set seccomp = { 0 };
	struct ab_error err = { 0 };
	int exit_code = AB_EXIT_INTERNAL;

	for (int i = 0; i < argc && strcmp(argv[i], "--") != 0 && argv[i][0] == '-'; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			run_usage(stdout);
			return 0;
		}
	if (ab_config_parse_run(argc, argv, environ, &cfg, &err) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		return AB_EXIT_INTERNAL;
	}
	ab_features_probe(&features, cfg.host_uid == 0);
	if (ab_seccomp_prepare(cfg.seccomp_mode, cfg.seccomp_profile, &seccomp, &err) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		goto out;
	}
	if (cfg.explain) {
		ab_report_write(stdout, &cfg, &features, seccomp.summary);
		if (ab_check_required(&cfg, &features, &err) < 0) {
			fprintf(stderr, "agentbox: %s\n", err.msg);
			goto out;
		}
		exit_code = 0;
		goto out;
	}
	if (ab_check_required(&cfg, &features, &err) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		goto out;
	}
	if (!cfg.quiet)
		ab_report_warnings(stderr, &cfg, &features);
	if (!features.userns) {
		fprintf(stderr, "agentbox: cannot create a user namespace: %s\n", features.userns_why);
		goto out;
	}
	if (ab_mask_find(cfg.workspace, cfg.masks, cfg.n_masks, &cfg.mask_hits, &cfg.n_mask_hits, &err) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		goto out;
	}
	/* The arguments after "run", recorded for exec (which rebuilds the same confinement). */
	struct ab_run_outcome outcome;
	if (ab_lifecycle_run(&cfg, &features, features.seccomp ? &seccomp : NULL, argc, argv, &exit_code, &outcome,
			     &err) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		exit_code = AB_EXIT_INTERNAL;
		goto out;
	}
	if (outcome.detached) {
		printf("%s\n", outcome.name);
		goto out;
	}
	if (err.msg[0])
		fprintf(stderr, "agentbox: %s\n", err.msg);
	report_end(&cfg, &outcome);
out:
	ab_seccomp_set_free(&seccomp);
	ab_config_free(&cfg);
	return exit_code;
}
