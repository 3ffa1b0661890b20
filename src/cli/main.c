/* agentbox: the command table. Each command lives in its own file. */
#include <stdio.h>
#include <string.h>

#include "../shared/cleanup.h"
#include "../shared/error.h"
#include "commands.h"

#define AB_VERSION "0.1.0"

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "run", cmd_run, "run a command in a sandbox" },
	{ "diff", cmd_diff, "show what a sandbox changed in its project" },
	{ "apply", cmd_apply, "write a sandbox's changes into the real project" },
	{ "discard", cmd_discard, "throw a sandbox's changes away" },
	{ "snapshot", cmd_snapshot, "take a snapshot of a sandbox's changes" },
	{ "snapshots", cmd_snapshots, "list a sandbox's snapshots" },
	{ "rollback", cmd_rollback, "put a sandbox back as it was at a snapshot" },
	{ "ps", cmd_ps, "list the running sandboxes (--all: also those that ended)" },
	{ "attach", cmd_attach, "the live terminal of a detached sandbox (Ctrl-p Ctrl-q detaches)" },
	{ "logs", cmd_logs, "what a detached sandbox's terminal showed" },
	{ "exec", cmd_exec, "run another command in a running sandbox, equally confined" },
	{ "stats", cmd_stats, "what a sandbox uses: CPU, memory, processes, disk, network" },
	{ "inspect", cmd_inspect, "everything about a sandbox, as JSON" },
	{ "stop", cmd_stop, "stop a sandbox (TERM, then KILL after a grace period)" },
	{ "kill", cmd_kill, "send a signal to a sandbox (KILL by default)" },
	{ "rm", cmd_rm, "remove an ended sandbox's record, logs and cgroup" },
	{ "net", cmd_net, "a filtered sandbox's network: 'net log', 'net allow', 'net deny'" },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: agentbox COMMAND [OPTIONS]\n\n"
		     "A sandbox for AI coding agents: namespaces, a read-only system, a private\n"
		     "workspace view, no secrets, no network, seccomp and Landlock, no daemon.\n\n"
		     "Commands:\n");
	for (size_t i = 0; i < AB_ELEMENTSOF(commands); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nRun 'agentbox COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return AB_EXIT_INTERNAL;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("agentbox %s\n", AB_VERSION);
		return 0;
	}
	for (size_t i = 0; i < AB_ELEMENTSOF(commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 2, argv + 2);
	fprintf(stderr, "agentbox: unknown command '%s': see 'agentbox --help'\n", argv[1]);
	return AB_EXIT_INTERNAL;
}
