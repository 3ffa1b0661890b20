/* The sandboxes as a whole: ps, inspect, stats, stop, kill, rm. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cgroup.h"
#include "../lib/config.h"
#include "../lib/state.h"
#include "../lib/usage.h"
#include "../lib/snapshot.h"
#include "../lib/workspace.h"
#include "../shared/cleanup.h"
#include "../shared/error.h"
#include "../shared/strutil.h"
#include "commands.h"

static void print_json(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static bool use_color(void)
{
	const char *nc = getenv("NO_COLOR");
	return isatty(STDOUT_FILENO) && !(nc && *nc);
}

/* The upper directory of a copy-on-write sandbox of that name and the run's layer over it,
 * or NULLs. */
static void changes_dirs_of(const struct ab_state *st, char **upper, char **layer)
{
	struct ab_workspace ws = { .lock_fd = -1 };
	struct ab_error ignored;

	*upper = *layer = NULL;
	if (!st->workspace_mode || strcmp(st->workspace_mode, "cow") != 0)
		return;
	if (ab_workspace_open(st->name, NULL, &ws, &ignored) >= 0) {
		*upper = ws.upper ? strdup(ws.upper) : NULL;
		*layer = ws.layer ? strdup(ws.layer) : NULL;
		ab_workspace_close(&ws);
	}
}

static void command_line(const struct ab_state *st, char *buf, size_t size)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; st->command && st->command[i] && off + 1 < size; i++)
		off += (size_t)snprintf(buf + off, size - off, "%s%s", i ? " " : "", st->command[i]);
	if (off >= size && size > 4)
		memcpy(buf + size - 4, "...", 4);
}

static void status_text(const struct ab_state *st, char *buf, size_t size)
{
	if (st->status == AB_STATUS_EXITED && st->reason && strcmp(st->reason, "exited") != 0)
		snprintf(buf, size, "exited (%s)", st->reason);
	else if (st->status == AB_STATUS_DEAD)
		snprintf(buf, size, "dead (%s)", st->reason ? st->reason : "lost");
	else
		snprintf(buf, size, "%s", ab_status_name(st->status));
}

/* The network the run asked for, from its arguments (they were validated when it
 * started): the mode, the rules as given, the --add-host entries. Live changes made with
 * `agentbox net allow|deny` are in the network log, named here. */
static struct json_object *network_json(const struct ab_state *st)
{
	static const struct {
		const char *flag, *key;
	} lists[] = { { "--allow", "allow" }, { "--deny", "deny" }, { "--add-host", "hosts" } };
	struct json_object *o = json_object_new_object(), *arr[3];
	const char *mode = "none";
	bool filtered = false;

	for (size_t k = 0; k < 3; k++)
		arr[k] = json_object_new_array();
	for (size_t i = 0; st->run_args && st->run_args[i]; i++) {
		const char *a = st->run_args[i];
		if (!strcmp(a, "--"))
			break;
		if (!strncmp(a, "--network", 9) && (a[9] == '=' || a[9] == '\0')) {
			const char *v = a[9] == '=' ? a + 10 : st->run_args[i + 1];
			if (v)
				mode = v;
			continue;
		}
		for (size_t k = 0; k < 3; k++) {
			size_t n = strlen(lists[k].flag);
			const char *v = NULL;
			if (!strncmp(a, lists[k].flag, n) && a[n] == '=')
				v = a + n + 1;
			else if (!strcmp(a, lists[k].flag))
				v = st->run_args[++i];
			if (v) {
				json_object_array_add(arr[k], json_object_new_string(v));
				filtered = filtered || k < 2;
			}
			if (v || !st->run_args[i])
				break;
		}
		if (!st->run_args[i])
			break;
	}
	if (filtered)
		mode = "filtered";
	json_object_object_add(o, "mode", json_object_new_string(mode));
	for (size_t k = 0; k < 3; k++)
		json_object_object_add(o, lists[k].key, arr[k]);
	if (!strcmp(mode, "filtered")) {
		char *dir = NULL, *log = NULL;
		struct ab_error ignored;
		if (ab_state_dir(st->name, &dir, &ignored) >= 0 && asprintf(&log, "%s/net.log", dir) >= 0)
			json_object_object_add(o, "log", json_object_new_string(log));
		free(log);
		free(dir);
	}
	return o;
}

static struct json_object *state_json(const struct ab_state *st, const struct ab_usage *u, bool full)
{
	struct json_object *o = json_object_new_object(), *cmd = json_object_new_array();
	int64_t now = ab_now_ns();

	for (size_t i = 0; st->command && st->command[i]; i++)
		json_object_array_add(cmd, json_object_new_string(st->command[i]));
	json_object_object_add(o, "name", json_object_new_string(st->name));
	json_object_object_add(o, "status", json_object_new_string(ab_status_name(st->status)));
	json_object_object_add(o, "reason", st->reason ? json_object_new_string(st->reason) : NULL);
	json_object_object_add(o, "command", cmd);
	json_object_object_add(o, "detached", json_object_new_boolean(st->detached));
	json_object_object_add(o, "workspace", st->workspace ? json_object_new_string(st->workspace) : NULL);
	json_object_object_add(o, "workspace_mode", st->workspace_mode ? json_object_new_string(st->workspace_mode) : NULL);
	json_object_object_add(o, "created", json_object_new_int64(st->created_ns / 1000000000));
	json_object_object_add(o, "started", json_object_new_int64(st->started_ns / 1000000000));
	json_object_object_add(o, "finished", st->finished_ns ? json_object_new_int64(st->finished_ns / 1000000000) : NULL);
	json_object_object_add(o, "uptime_seconds",
			       u->live && st->started_ns ? json_object_new_int64((now - st->started_ns) / 1000000000) : NULL);
	json_object_object_add(o, "exit_code", st->status == AB_STATUS_EXITED ? json_object_new_int(st->exit_code) : NULL);
	json_object_object_add(o, "cpu_seconds", u->live ? json_object_new_double((double)u->cpu_ns / 1e9) : NULL);
	json_object_object_add(o, "memory_bytes", u->live ? json_object_new_int64((int64_t)u->memory) : NULL);
	json_object_object_add(o, "memory_limit_bytes", u->memory_max ? json_object_new_int64((int64_t)u->memory_max) : NULL);
	json_object_object_add(o, "pids", u->live ? json_object_new_int64((int64_t)u->pids) : NULL);
	json_object_object_add(o, "pids_limit", u->pids_max ? json_object_new_int64((int64_t)u->pids_max) : NULL);
	json_object_object_add(o, "disk_bytes", json_object_new_int64((int64_t)u->disk));
	json_object_object_add(o, "net_rx_bytes", json_object_new_int64((int64_t)u->net_rx));
	json_object_object_add(o, "net_tx_bytes", json_object_new_int64((int64_t)u->net_tx));
	if (full) {
		struct json_object *lim = json_object_new_object(), *layers = json_object_new_array(), *pids;
		json_object_object_add(lim, "memory", json_object_new_int64((int64_t)st->limits.memory));
		json_object_object_add(lim, "memory_swap", json_object_new_int64(st->limits.memory_swap));
		json_object_object_add(lim, "cpus", json_object_new_double((double)st->limits.cpu_millis / 1000.0));
		json_object_object_add(lim, "pids", json_object_new_int64((int64_t)st->limits.pids));
		json_object_object_add(lim, "disk", json_object_new_int64((int64_t)st->limits.disk));
		json_object_object_add(lim, "timeout_seconds", json_object_new_double((double)st->limits.timeout_ms / 1000.0));
		json_object_object_add(lim, "nofile", json_object_new_int64((int64_t)st->limits.nofile));
		json_object_object_add(o, "limits", lim);
		json_object_object_add(o, "cgroup", st->cgroup ? json_object_get(st->cgroup) : NULL);
		for (unsigned bit = 1; bit && bit <= AB_LAYER_SECCOMP; bit <<= 1)
			if (st->enforced_layers & bit)
				json_object_array_add(layers, json_object_new_string(ab_layer_name(bit)));
		json_object_object_add(o, "enforced", layers);
		json_object_object_add(o, "seccomp", st->seccomp_summary ? json_object_new_string(st->seccomp_summary) : NULL);
		json_object_object_add(o, "supervisor_pid", json_object_new_int(st->supervisor_pid));
		json_object_object_add(o, "init_pid", json_object_new_int(st->init_pid));
		pids = json_object_new_array();
		for (size_t i = 0; i < u->n_pid_list; i++)
			json_object_array_add(pids, json_object_new_int(u->pid_list[i]));
		json_object_object_add(o, "pids_list", pids);
		struct json_object *args = json_object_new_array();
		for (size_t i = 0; st->run_args && st->run_args[i]; i++)
			json_object_array_add(args, json_object_new_string(st->run_args[i]));
		json_object_object_add(o, "run_args", args);
		json_object_object_add(o, "network", network_json(st));
	}
	return o;
}

static void usage_ps(FILE *out)
{
	fprintf(out, "usage: agentbox ps [--all] [--json]\n\n"
		     "Lists the running sandboxes (--all: also those that ended): name, status, command,\n"
		     "uptime, CPU time, memory, processes and exit status.\n");
}

int cmd_ps(int argc, char **argv)
{
	_cleanup_strv_free_ char **names = NULL;
	struct ab_error err = { 0 };
	bool all = false, json = false;
	size_t n = 0;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--all") || !strcmp(argv[i], "-a"))
			all = true;
		else if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage_ps(stdout);
			return 0;
		} else {
			fprintf(stderr, "agentbox: unknown option '%s' for 'ps': see 'agentbox ps --help'\n", argv[i]);
			return AB_EXIT_INTERNAL;
		}
	}
	if (ab_state_list(&names, &n, &err) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		return AB_EXIT_INTERNAL;
	}
	struct json_object *arr = json ? json_object_new_array() : NULL;
	bool color = !json && use_color();
	if (!json)
		printf("%-24s %-16s %-24s %8s %9s %15s %6s %5s\n", "NAME", "STATUS", "COMMAND", "UPTIME", "CPU", "MEMORY",
		       "PIDS", "EXIT");
	for (size_t i = 0; i < n; i++) {
		struct ab_state st;
		struct ab_usage u;
		struct ab_error ignored;
		char status[40], cmd[25], up[24] = "-", cpu[32] = "-", mem[48] = "-", pids[24] = "-", ex[16] = "-";

		if (ab_state_load(names[i], &st, &ignored) < 0)
			continue;
		if (!all && st.status != AB_STATUS_RUNNING && st.status != AB_STATUS_CREATED) {
			ab_state_free(&st);
			continue;
		}
		ab_usage_read(&st, NULL, NULL, &u);
		if (json) {
			json_object_array_add(arr, state_json(&st, &u, false));
		} else {
			status_text(&st, status, sizeof(status));
			command_line(&st, cmd, sizeof(cmd));
			if (u.live) {
				char a[16], b[16];
				ab_format_duration(up, sizeof(up), (uint64_t)(ab_now_ns() - st.started_ns) / 1000000000);
				snprintf(cpu, sizeof(cpu), "%.2fs", (double)u.cpu_ns / 1e9);
				ab_format_bytes(a, sizeof(a), u.memory);
				if (u.memory_max) {
					ab_format_bytes(b, sizeof(b), u.memory_max);
					snprintf(mem, sizeof(mem), "%s / %s", a, b);
				} else {
					snprintf(mem, sizeof(mem), "%s", a);
				}
				snprintf(pids, sizeof(pids), "%" PRIu64, u.pids);
			}
			if (st.status == AB_STATUS_EXITED)
				snprintf(ex, sizeof(ex), "%d", st.exit_code);
			const char *on = "", *off = "";
			if (color) {
				on = st.status == AB_STATUS_RUNNING ? "\033[32m" :
				     st.status == AB_STATUS_DEAD ? "\033[31m" : "\033[2m";
				off = "\033[0m";
			}
			printf("%-24s %s%-16s%s %-24s %8s %9s %15s %6s %5s\n", st.name, on, status, off, cmd, up, cpu, mem,
			       pids, ex);
		}
		ab_usage_free(&u);
		ab_state_free(&st);
	}
	if (json)
		print_json(arr);
	return 0;
}

/* NAME [--json] for inspect and stats. */
static int one_name(const char *cmd, int argc, char **argv, const char **name, bool *json)
{
	*name = NULL;
	*json = false;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			*json = true;
		else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "agentbox: unknown option '%s' for '%s'\n", argv[i], cmd);
			return -1;
		} else if (*name) {
			fprintf(stderr, "agentbox: '%s' takes one sandbox name, not '%s' too\n", cmd, argv[i]);
			return -1;
		} else {
			*name = argv[i];
		}
	}
	if (!*name) {
		fprintf(stderr, "agentbox: '%s' needs a sandbox name: see 'agentbox ps --all'\n", cmd);
		return -1;
	}
	return 0;
}

/* NAME [--json], loaded with what it uses now: the common start of inspect and stats. */
static int load_with_usage(const char *cmd, int argc, char **argv, struct ab_state *st, struct ab_usage *u,
			   bool *json)
{
	struct ab_error err = { 0 };
	const char *name;

	if (one_name(cmd, argc, argv, &name, json) < 0)
		return -1;
	if (ab_state_load(name, st, &err) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		return -1;
	}
	_cleanup_free_ char *upper = NULL, *layer = NULL;
	changes_dirs_of(st, &upper, &layer);
	ab_usage_read(st, upper, layer, u);
	return 0;
}

int cmd_inspect(int argc, char **argv)
{
	struct ab_state st;
	struct ab_usage u;
	bool json;

	if (load_with_usage("inspect", argc, argv, &st, &u, &json) < 0)
		return AB_EXIT_INTERNAL;
	print_json(state_json(&st, &u, true));
	ab_usage_free(&u);
	ab_state_free(&st);
	return 0;
}

int cmd_stats(int argc, char **argv)
{
	struct ab_state st;
	struct ab_usage u;
	bool json;

	if (load_with_usage("stats", argc, argv, &st, &u, &json) < 0)
		return AB_EXIT_INTERNAL;
	if (json) {
		print_json(state_json(&st, &u, false));
	} else {
		char mem[16], lim[16] = "-", disk[16], rx[16], tx[16], pl[24] = "-";
		ab_format_bytes(mem, sizeof(mem), u.memory);
		if (u.memory_max)
			ab_format_bytes(lim, sizeof(lim), u.memory_max);
		if (u.pids_max)
			snprintf(pl, sizeof(pl), "%" PRIu64, u.pids_max);
		ab_format_bytes(disk, sizeof(disk), u.disk);
		ab_format_bytes(rx, sizeof(rx), u.net_rx);
		ab_format_bytes(tx, sizeof(tx), u.net_tx);
		printf("%-24s %-10s %10s %18s %12s %10s %19s\n", "NAME", "STATUS", "CPU", "MEMORY / LIMIT", "PIDS / LIMIT",
		       "DISK", "NET RX / TX");
		char cpu[32], m[40], p[48], n[40];
		snprintf(cpu, sizeof(cpu), "%.2fs", (double)u.cpu_ns / 1e9);
		snprintf(m, sizeof(m), "%s / %s", mem, lim);
		snprintf(p, sizeof(p), "%" PRIu64 " / %s", u.pids, pl);
		snprintf(n, sizeof(n), "%s / %s", rx, tx);
		printf("%-24s %-10s %10s %18s %12s %10s %19s\n", st.name, ab_status_name(st.status), cpu, m, p, disk, n);
	}
	ab_usage_free(&u);
	ab_state_free(&st);
	return 0;
}

static void set_stop(struct ab_state *st, void *ctx)
{
	(void)ctx;
	st->stop_requested = true;
}

static void set_kill(struct ab_state *st, void *ctx)
{
	(void)ctx;
	st->kill_requested = true;
}

/* Waits up to ms for the sandbox's init to be gone. */
static bool wait_gone(const struct ab_state *st, int ms)
{
	int fd = (int)syscall(SYS_pidfd_open, st->init_pid, 0);

	if (fd < 0)
		return true;
	if (!ab_proc_is(st->init_pid, st->init_start)) {
		close(fd);
		return true;
	}
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r = poll(&p, 1, ms);
	close(fd);
	return r > 0;
}

/* Waits (briefly) for the supervisor to write how it ended. */
static void wait_recorded(const char *name)
{
	for (int i = 0; i < 200; i++) {
		struct ab_state st;
		struct ab_error ignored;
		if (ab_state_load(name, &st, &ignored) < 0)
			return;
		bool done = st.status != AB_STATUS_RUNNING && st.status != AB_STATUS_CREATED;
		ab_state_free(&st);
		if (done)
			return;
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}
}

static int load_running(const char *cmd, const char *name, struct ab_state *st)
{
	struct ab_error err = { 0 };

	if (ab_state_load(name, st, &err) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		return -1;
	}
	if (st->status != AB_STATUS_RUNNING && st->status != AB_STATUS_CREATED) {
		fprintf(stderr, "agentbox: cannot %s sandbox '%s': it is not running (%s)\n", cmd, name,
			ab_status_name(st->status));
		ab_state_free(st);
		return -1;
	}
	return 0;
}

int cmd_stop(int argc, char **argv)
{
	const char *name = NULL;
	long grace = 10;
	struct ab_error err = { 0 };
	struct ab_state st;

	for (int i = 0; i < argc; i++) {
		if ((!strcmp(argv[i], "-t") || !strcmp(argv[i], "--time")) && i + 1 < argc) {
			char *end;
			grace = strtol(argv[++i], &end, 10);
			if (*end || grace < 0 || grace > 3600) {
				fprintf(stderr, "agentbox: invalid --time '%s': use seconds from 0 to 3600\n", argv[i]);
				return AB_EXIT_INTERNAL;
			}
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "agentbox: unknown option '%s' for 'stop': use 'agentbox stop [-t SECONDS] NAME'\n", argv[i]);
			return AB_EXIT_INTERNAL;
		} else if (!name) {
			name = argv[i];
		}
	}
	if (!name) {
		fprintf(stderr, "agentbox: 'stop' needs a sandbox name: see 'agentbox ps'\n");
		return AB_EXIT_INTERNAL;
	}
	if (load_running("stop", name, &st) < 0)
		return AB_EXIT_INTERNAL;
	if (ab_state_update(name, set_stop, NULL, &err) < 0)
		fprintf(stderr, "agentbox: %s\n", err.msg);
	/* TERM to the command (its init passes it on), KILL to the whole sandbox after the
	 * grace period. A detached supervisor does the same on its own TERM. */
	if (st.detached && st.supervisor_pid > 0)
		kill(st.supervisor_pid, SIGTERM);
	else if (st.init_pid > 0 && ab_proc_is(st.init_pid, st.init_start))
		kill(st.init_pid, SIGTERM);
	if (!wait_gone(&st, (int)grace * 1000) && ab_proc_is(st.init_pid, st.init_start))
		kill(st.init_pid, SIGKILL);
	wait_gone(&st, 5000);
	wait_recorded(name);
	ab_state_free(&st);
	printf("%s\n", name);
	return 0;
}

int cmd_kill(int argc, char **argv)
{
	const char *name = NULL;
	int sig = SIGKILL;
	struct ab_error err = { 0 };
	struct ab_state st;

	for (int i = 0; i < argc; i++) {
		if ((!strcmp(argv[i], "-s") || !strcmp(argv[i], "--signal")) && i + 1 < argc) {
			const char *v = argv[++i];
			if (!strncmp(v, "SIG", 3))
				v += 3;
			static const struct { const char *n; int s; } sigs[] = {
				{ "KILL", SIGKILL }, { "TERM", SIGTERM }, { "INT", SIGINT }, { "HUP", SIGHUP },
				{ "QUIT", SIGQUIT }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "STOP", SIGSTOP },
				{ "CONT", SIGCONT },
			};
			sig = 0;
			for (size_t k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++)
				if (!strcmp(v, sigs[k].n))
					sig = sigs[k].s;
			if (!sig && (sig = atoi(v)) <= 0) {
				fprintf(stderr, "agentbox: unknown signal '%s': use a name such as TERM or a number\n", argv[i]);
				return AB_EXIT_INTERNAL;
			}
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "agentbox: unknown option '%s' for 'kill': use 'agentbox kill [-s SIGNAL] NAME'\n", argv[i]);
			return AB_EXIT_INTERNAL;
		} else if (!name) {
			name = argv[i];
		}
	}
	if (!name) {
		fprintf(stderr, "agentbox: 'kill' needs a sandbox name: see 'agentbox ps'\n");
		return AB_EXIT_INTERNAL;
	}
	if (load_running("kill", name, &st) < 0)
		return AB_EXIT_INTERNAL;
	if (sig == SIGKILL && ab_state_update(name, set_kill, NULL, &err) < 0)
		fprintf(stderr, "agentbox: %s\n", err.msg);
	/* SIGKILL ends the init and with it every process of the sandbox; any other signal
	 * goes to the command through its init. */
	if (ab_proc_is(st.init_pid, st.init_start))
		kill(st.init_pid, sig);
	if (sig == SIGKILL) {
		wait_gone(&st, 5000);
		wait_recorded(name);
	}
	ab_state_free(&st);
	printf("%s\n", name);
	return 0;
}

/* A copy-on-write sandbox's data goes with it when it holds no change; changes are never
 * dropped by rm (that is what discard is for): they stay, and rm says so. */
static void remove_workspace_if_unchanged(const char *name)
{
	struct ab_workspace ws = { .lock_fd = -1 };
	struct ab_error err = { 0 };
	struct ab_change *changes = NULL;
	size_t n = 0;

	if (ab_workspace_open(name, NULL, &ws, &err) < 0)
		return;
	if (ab_workspace_lock(&ws, true, &err) < 0 ||
	    ab_changes_collect(ws.upper, ws.project, NULL, 0, &changes, &n, &err) < 0) {
		ab_workspace_close(&ws);
		return;
	}
	ab_changes_free(changes, n);
	if (n) {
		fprintf(stderr,
			"agentbox: the %zu workspace change%s of '%s' %s kept: 'agentbox diff %s' shows them, 'agentbox discard %s' drops them\n",
			n, n == 1 ? "" : "s", name, n == 1 ? "is" : "are", name, name);
	} else if (ab_remove_tree(AT_FDCWD, ws.dir, false) < 0) {
		fprintf(stderr, "agentbox: cannot remove the data of '%s' in '%s'\n", name, ws.dir);
	}
	ab_workspace_close(&ws);
}

static int remove_one(const char *name, bool force)
{
	struct ab_error err = { 0 };
	struct ab_state st;
	struct ab_cgroup cg = { 0 };
	int lock;

	lock = ab_state_lock(name, true, &err);
	if (lock < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		return -1;
	}
	if (ab_state_load(name, &st, &err) < 0) {
		/* A damaged record: remove it all the same. */
		if (ab_state_remove(name, &err) < 0)
			fprintf(stderr, "agentbox: %s\n", err.msg);
		close(lock);
		return 0;
	}
	if (st.status == AB_STATUS_RUNNING || st.status == AB_STATUS_CREATED) {
		if (!force) {
			fprintf(stderr, "agentbox: sandbox '%s' is running: 'agentbox stop %s' first, or 'agentbox rm --force %s'\n",
				name, name, name);
			ab_state_free(&st);
			close(lock);
			return -1;
		}
		if (ab_proc_is(st.init_pid, st.init_start))
			kill(st.init_pid, SIGKILL);
		if (st.detached && st.supervisor_pid > 0)
			kill(st.supervisor_pid, SIGKILL);
		wait_gone(&st, 5000);
	}
	/* What a killed supervisor could not clean: its cgroup. */
	if (st.cgroup && ab_cgroup_from_json(st.cgroup, &cg) >= 0) {
		if (ab_cgroup_remove(&cg, &err) < 0)
			fprintf(stderr, "agentbox: %s\n", err.msg);
		ab_cgroup_free(&cg);
	}
	if (ab_state_remove(name, &err) < 0) {
		fprintf(stderr, "agentbox: %s\n", err.msg);
		ab_state_free(&st);
		close(lock);
		return -1;
	}
	if (st.workspace_mode && !strcmp(st.workspace_mode, "cow"))
		remove_workspace_if_unchanged(name);
	ab_state_free(&st);
	close(lock);
	printf("%s\n", name);
	return 0;
}

int cmd_rm(int argc, char **argv)
{
	bool force = false;
	int failed = 0, n = 0;

	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--force"))
			force = true;
		else if (argv[i][0] == '-') {
			fprintf(stderr, "agentbox: unknown option '%s' for 'rm': use 'agentbox rm [--force] NAME...'\n", argv[i]);
			return AB_EXIT_INTERNAL;
		}
	for (int i = 0; i < argc; i++)
		if (argv[i][0] != '-') {
			n++;
			failed += remove_one(argv[i], force) < 0;
		}
	if (!n) {
		fprintf(stderr, "agentbox: 'rm' needs a sandbox name: see 'agentbox ps --all'\n");
		return AB_EXIT_INTERNAL;
	}
	return failed ? AB_EXIT_INTERNAL : 0;
}
