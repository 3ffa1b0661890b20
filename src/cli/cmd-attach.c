/* attach and logs: a detached sandbox's terminal, live or recorded. */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/attach.h"
#include "../lib/cast.h"
#include "../lib/config-limits.h"
#include "../lib/state.h"
#include "../lib/supervisor.h"
#include "../shared/cleanup.h"
#include "../shared/error.h"
#include "../shared/strutil.h"
#include "commands.h"

int cmd_attach(int argc, char **argv)
{
	const char *name = NULL;
	bool read_only = false;
	struct ab_error err = { 0 };
	struct ab_state st;
	_cleanup_free_ char *dir = NULL;
	_cleanup_free_ char *sock = NULL;
	char reason[64] = "";
	int code = 0, r;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--read-only") || !strcmp(argv[i], "-r"))
			read_only = true;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: agentbox attach [--read-only] NAME\n\n"
			       "Shows a detached sandbox's live terminal and types into it (the first viewer\n"
			       "that asks is the writer; others watch). Ctrl-p Ctrl-q detaches.\n");
			return 0;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "agentbox: unknown option '%s' for 'attach': use 'agentbox attach [--read-only] NAME'\n",
				argv[i]);
			return AB_EXIT_INTERNAL;
		} else if (!name) {
			name = argv[i];
		}
	}
	if (!name) {
		fprintf(stderr, "agentbox: 'attach' needs a sandbox name: see 'agentbox ps'\n");
		return AB_EXIT_INTERNAL;
	}
	if (ab_state_load(name, &st, &err) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		return AB_EXIT_INTERNAL;
	}
	bool running = st.status == AB_STATUS_RUNNING || st.status == AB_STATUS_CREATED, detached = st.detached;
	ab_state_free(&st);
	if (!running) {
		fprintf(stderr, "agentbox: cannot attach to sandbox '%s': it is not running ('agentbox logs %s' shows its output)\n",
			name, name);
		return AB_EXIT_INTERNAL;
	}
	if (!detached) {
		fprintf(stderr, "agentbox: sandbox '%s' runs in the foreground of another terminal: only sandboxes started with 'run -d' can be attached\n",
			name);
		return AB_EXIT_INTERNAL;
	}
	if (ab_state_dir(name, &dir, &err) < 0 || asprintf(&sock, "%s/" AB_ATTACH_SOCKET, dir) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		return AB_EXIT_INTERNAL;
	}
	/* A supervisor opens its socket just after `run -d` has returned: give it a moment. */
	for (int tries = 0;; tries++) {
		r = ab_attach_client(sock, STDIN_FILENO, STDOUT_FILENO, read_only, &code, reason, sizeof(reason), &err);
		if ((r != -ENOENT && r != -ECONNREFUSED) || tries >= 100)
			break;
		struct timespec pause = { 0, 20 * 1000000 };
		nanosleep(&pause, NULL);
	}
	if (r < 0) {
		if (r == -ENOENT || r == -ECONNREFUSED)
			fprintf(stderr, "agentbox: cannot attach to sandbox '%s': it is not running\n", name);
		else
			fprintf(stderr, "agentbox: %s\n", err.msg);
		return AB_EXIT_INTERNAL;
	}
	if (r == AB_ATTACH_DETACHED) {
		fprintf(stderr, "\r\nagentbox: detached from '%s' (it keeps running: 'agentbox attach %s' to return)\r\n", name,
			name);
		return 0;
	}
	if (r == AB_ATTACH_EXITED) {
		if (reason[0] && strcmp(reason, "exited") != 0)
			fprintf(stderr, "\r\nagentbox: sandbox '%s' ended (%s), status %d\r\n", name, reason, code);
		return code;
	}
	fprintf(stderr, "\r\nagentbox: lost the connection to sandbox '%s'\r\n", name);
	return AB_EXIT_INTERNAL;
}

struct follow_ctx {
	const char *name;
};

static int write_out(const void *data, size_t len, void *ctx)
{
	(void)ctx;
	return ab_write_all(STDOUT_FILENO, data, len) < 0 ? -EPIPE : 0;
}

static bool sandbox_over(void *ctx)
{
	struct follow_ctx *f = ctx;
	struct ab_state st;
	struct ab_error ignored;
	bool over = true;

	if (ab_state_load(f->name, &st, &ignored) >= 0) {
		over = st.status != AB_STATUS_RUNNING && st.status != AB_STATUS_CREATED;
		ab_state_free(&st);
	}
	return over;
}

int cmd_logs(int argc, char **argv)
{
	const char *name = NULL;
	bool follow = false;
	int64_t since = 0;
	struct ab_error err = { 0 };
	struct ab_state st;
	_cleanup_free_ char *dir = NULL;
	_cleanup_free_ char *path = NULL;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--follow")) {
			follow = true;
		} else if (!strcmp(argv[i], "--since") && i + 1 < argc) {
			uint64_t ms;
			const char *v = argv[++i];
			if (ab_parse_duration(v, &ms) < 0) {
				fprintf(stderr, "agentbox: invalid --since '%s': use a duration such as 10m or 2h\n", v);
				return AB_EXIT_INTERNAL;
			}
			since = (int64_t)time(NULL) - (int64_t)(ms / 1000);
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: agentbox logs [-f] [--since DURATION] NAME\n\n"
			       "Prints what a detached sandbox's terminal showed (also after it ended); -f keeps\n"
			       "following it. The recording is asciicast v2: 'asciinema play' replays the file\n"
			       "named by 'agentbox inspect'.\n");
			return 0;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "agentbox: unknown option '%s' for 'logs': use 'agentbox logs [-f] [--since 10m] NAME'\n",
				argv[i]);
			return AB_EXIT_INTERNAL;
		} else if (!name) {
			name = argv[i];
		}
	}
	if (!name) {
		fprintf(stderr, "agentbox: 'logs' needs a sandbox name: see 'agentbox ps --all'\n");
		return AB_EXIT_INTERNAL;
	}
	if (ab_state_load(name, &st, &err) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		return AB_EXIT_INTERNAL;
	}
	bool detached = st.detached;
	ab_state_free(&st);
	if (!detached) {
		fprintf(stderr, "agentbox: sandbox '%s' runs in the foreground: its output is on its own terminal\n", name);
		return AB_EXIT_INTERNAL;
	}
	if (ab_state_dir(name, &dir, &err) < 0 || asprintf(&path, "%s/" AB_CAST_FILE, dir) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		return AB_EXIT_INTERNAL;
	}
	struct follow_ctx f = { .name = name };
	int r = ab_cast_read(path, since, follow, write_out, sandbox_over, &f, &err);
	if (r == -EPIPE)
		return 0;
	if (r < 0) {
		if (r == -ENOENT)
			fprintf(stderr, "agentbox: sandbox '%s' has no recorded output yet\n", name);
		else
			fprintf(stderr, "agentbox: %s\n", err.msg);
		return AB_EXIT_INTERNAL;
	}
	return 0;
}
