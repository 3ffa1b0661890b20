#include "lifecycle.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "../shared/strutil.h"
#include "cgroup.h"
#include "egress.h"
#include "session.h"
#include "snapshot.h"
#include "spawn.h"
#include "state.h"
#include "supervisor.h"

/* Everything one run carries between its hooks. */
struct run {
	struct ab_config *cfg;
	struct ab_state st;
	struct ab_cgroup cg;
	struct ab_session session;
	bool have_session;
	struct ab_supervisor sv;
	int ready_fd; /* detached: tells the waiting `run -d` that the command runs (or why not) */
	int claim_fd; /* the name's lock, held until the record says running */
	char *dir;    /* the state directory */
	struct ab_egress egress; /* the proxy of a filtered network */
};

static bool have_limits(const struct ab_limits *l)
{
	return l->memory || l->cpu_millis || l->pids || l->memory_swap > 0;
}

static const char *mode_name(enum ab_workspace_mode m)
{
	switch (m) {
	case AB_WORKSPACE_COW: return "cow";
	case AB_WORKSPACE_RW: return "rw";
	case AB_WORKSPACE_RO: return "ro";
	}
	return "?";
}

/* A name for a run that has no sandbox of its own (rw and ro workspaces): --name, or the
 * project's directory name, made unique among the runs that are live. */
static int claim_name(struct ab_config *cfg, struct ab_error *err)
{
	char base[48], candidate[64];
	const char *slash = strrchr(cfg->workspace, '/');
	const char *b = slash && slash[1] ? slash + 1 : "sandbox";
	size_t n = 0;
	int fd;

	if (cfg->name)
		return ab_state_claim(cfg->name, err);
	for (const char *p = b; *p && n + 1 < sizeof(base) && n < 40; p++)
		base[n++] = (isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.') ? *p : '-';
	base[n] = '\0';
	if (!n || !isalnum((unsigned char)base[0]))
		snprintf(base, sizeof(base), "sandbox");
	for (int i = 1; i < 100; i++) {
		struct ab_error ignored;
		if (i == 1)
			snprintf(candidate, sizeof(candidate), "%s", base);
		else
			snprintf(candidate, sizeof(candidate), "%s-%d", base, i);
		fd = ab_state_claim(candidate, &ignored);
		if (fd >= 0) {
			cfg->name = strdup(candidate);
			if (!cfg->name) {
				close(fd);
				return ab_error_set(err, ENOMEM, "cannot name the sandbox");
			}
			return fd;
		}
	}
	return ab_error_set(err, 0, "no free sandbox name for '%s': pass --name", base);
}

static int on_placed(pid_t init_pid, void *data, struct ab_error *err)
{
	struct run *rn = data;
	return ab_cgroup_add(&rn->cg, init_pid, err);
}

static int on_prepare(pid_t init_pid, void *data, struct ab_error *err)
{
	struct run *rn = data;
	(void)init_pid;
	return rn->have_session ? ab_session_prepare(&rn->session, err) : 0;
}

/* A filtered network: the proxy starts before the sandbox, so that its start overlaps
 * the sandbox's; it waits for the listeners (on_net_ready). */
static int start_proxy(struct run *rn, struct ab_error *err)
{
	int r;

	if (rn->cfg->network != AB_NETWORK_FILTERED)
		return 0;
	if (!rn->dir && (r = ab_state_dir(rn->st.name, &rn->dir, err)) < 0)
		return r;
	return ab_egress_spawn(rn->cfg, rn->dir, &rn->egress, err);
}

/* The sandbox made its listeners; the proxy serves them from now on. Before the command
 * runs, so that a proxy that cannot start stops the sandbox. */
static int on_net_ready(pid_t init_pid, struct ab_proxy_listener *listeners, size_t n, void *data,
			struct ab_error *err)
{
	struct run *rn = data;

	(void)init_pid;
	return ab_egress_hand_listeners(&rn->egress, listeners, n, err);
}

/* The sandbox is over, or never started: the proxy logs what it still holds (if it got
 * that far) and exits. */
static void stop_proxy(struct run *rn)
{
	ab_egress_stop(&rn->egress);
}

static void on_started(pid_t init_pid, void *data)
{
	struct run *rn = data;
	struct ab_error ignored;

	if (rn->have_session)
		ab_session_started(&rn->session, init_pid);
	rn->st.status = AB_STATUS_RUNNING;
	rn->st.init_pid = init_pid;
	rn->st.init_start = ab_proc_start_time(init_pid);
	rn->st.started_ns = ab_now_ns();
	(void)ab_state_save(&rn->st, &ignored);
	if (rn->claim_fd >= 0) {
		close(rn->claim_fd); /* recorded as running: the name is taken for all to see */
		rn->claim_fd = -1;
	}
	if (rn->ready_fd >= 0) {
		(void)ab_write_all(rn->ready_fd, "OK", 2);
		close(rn->ready_fd);
		rn->ready_fd = -1;
	}
}

static int on_supervise(pid_t init_pid, int sfd, int master, void *data)
{
	struct run *rn = data;
	struct ab_error err = { 0 };

	/* Opened once `run -d` has returned, off its path: nothing is lost meanwhile (the
	 * output waits in the terminal), and attach waits for the socket. Without them the
	 * sandbox still runs to its end and is recorded. */
	(void)ab_supervisor_open(&rn->sv, rn->dir, 80, 24, &err);
	return ab_supervisor_loop(init_pid, sfd, master, &rn->sv);
}

/* How the run ended, from the status, the kernel's OOM count and what was asked. */
static void decide_reason(struct run *rn, int code, bool timed_out, struct ab_run_outcome *out)
{
	struct ab_state now;
	struct ab_error ignored;
	uint64_t ooms = 0;
	const char *reason = code > 128 ? "signal" : "exited";

	if (rn->cg.mode == AB_LIMITS_CGROUP1 || rn->cg.mode == AB_LIMITS_CGROUP2)
		if (ab_cgroup_oom_kills(&rn->cg, &ooms) >= 0 && ooms > 0 && code == 128 + SIGKILL)
			reason = "oom";
	if (timed_out)
		reason = "timeout";
	if (ab_state_load(rn->st.name, &now, &ignored) >= 0) {
		if (now.kill_requested)
			reason = "killed";
		else if (now.stop_requested)
			reason = "stopped";
		rn->st.stop_requested = now.stop_requested;
		rn->st.kill_requested = now.kill_requested;
		ab_state_free(&now);
	}
	snprintf(out->reason, sizeof(out->reason), "%s", reason);
}

/* After the sandbox: the --disk-limit changes back, the record, the cgroup's removal. */
static void finish(struct run *rn, int code, bool timed_out, int disk_upper_fd, struct ab_run_outcome *out)
{
	struct ab_error ignored;
	int lock;

	if (rn->claim_fd >= 0) { /* the command never started: the claim is still held */
		close(rn->claim_fd);
		rn->claim_fd = -1;
	}
	decide_reason(rn, code, timed_out, out);
	/* --disk-limit: the changes were made in the sandbox's own tmpfs; they come back now. */
	if (disk_upper_fd >= 0 && rn->have_session) {
		char src[64];
		struct ab_error copy_err = { 0 };
		snprintf(src, sizeof(src), "/proc/self/fd/%d/.", disk_upper_fd);
		if (ab_workspace_replace_upper(&rn->session.ws, src, &copy_err) < 0)
			fprintf(stderr, "agentbox: the changes of '%s' could not be kept: %s\n", rn->st.name, copy_err.msg);
	}
	if (disk_upper_fd >= 0)
		close(disk_upper_fd);
	(void)ab_cgroup_remove(&rn->cg, &ignored);
	lock = ab_state_lock(rn->st.name, true, &ignored);
	free(rn->st.reason);
	rn->st.reason = strdup(out->reason);
	rn->st.status = AB_STATUS_EXITED;
	rn->st.exit_code = code;
	rn->st.finished_ns = ab_now_ns();
	if (rn->st.detached) /* a foreground run's record goes right after */
		(void)ab_state_save(&rn->st, &ignored);
	if (lock >= 0)
		close(lock);
}

/* The workspace's side of the end (ab_session_end), once the sandbox's records are done
 * with: the last thing a run does. Its walk of the changes then no longer runs while the
 * kernel is still taking the sandbox's namespaces and overlay down. */
static void end_session(struct run *rn, bool quiet, struct ab_run_outcome *out)
{
	struct ab_error end_err = { 0 };

	if (rn->have_session && ab_session_end(&rn->session, &out->n_changes, &end_err) < 0 && !quiet)
		fprintf(stderr, "agentbox: %s\n", end_err.msg);
}

/* The supervisor process of a detached sandbox: detached from the caller's terminal and
 * output, it runs the sandbox to its end and records it. Reports the start on ready_fd. */
__attribute__((noreturn)) static void supervisor_main(struct run *rn, const struct ab_features *features,
						      const struct ab_seccomp_set *seccomp)
{
	struct ab_run_hooks hooks = { .placed = on_placed, .prepare = on_prepare, .started = on_started,
				      .net_ready = on_net_ready, .supervise = on_supervise, .data = rn,
				      .disk_upper_fd = -1 };
	struct ab_run_outcome out = { 0 };
	struct ab_error err = { 0 };
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int code = AB_EXIT_INTERNAL, r;

	setsid();
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
	}
	rn->st.supervisor_pid = getpid();
	rn->sv.timeout_ms = rn->cfg->limits.timeout_ms;
	rn->sv.grace_ms = 10000;
	r = start_proxy(rn, &err);
	if (r == 0)
		r = ab_sandbox_run(rn->cfg, features, seccomp, &hooks, &code, &err);
	stop_proxy(rn);
	if (r < 0) {
		if (rn->ready_fd >= 0)
			(void)ab_write_all(rn->ready_fd, err.msg, strlen(err.msg));
		ab_supervisor_close(&rn->sv, AB_EXIT_INTERNAL, "failed");
		(void)ab_cgroup_remove(&rn->cg, &err);
		(void)ab_state_remove(rn->st.name, &err);
		_exit(AB_EXIT_INTERNAL);
	}
	if (rn->ready_fd >= 0) { /* the command could not be started: say why */
		(void)ab_write_all(rn->ready_fd, err.msg[0] ? err.msg : "the command did not start",
				   strlen(err.msg[0] ? err.msg : "the command did not start"));
		close(rn->ready_fd);
		rn->ready_fd = -1;
	}
	finish(rn, code, rn->sv.timed_out, hooks.disk_upper_fd, &out);
	end_session(rn, true, &out);
	ab_supervisor_close(&rn->sv, code, out.reason);
	if (rn->have_session)
		ab_session_close(&rn->session);
	_exit(0);
}

/* `run -d`: starts the supervisor and waits until the command runs (or failed to). */
static int start_detached(struct run *rn, const struct ab_features *features, const struct ab_seccomp_set *seccomp,
			  struct ab_error *err)
{
	char msg[AB_ERROR_MSG_MAX];
	size_t got = 0;
	int ready[2], r;
	pid_t pid;

	if ((r = ab_state_dir(rn->st.name, &rn->dir, err)) < 0)
		return r;
	if (pipe2(ready, O_CLOEXEC) < 0)
		return ab_error_set(err, errno, "cannot start the supervisor of '%s'", rn->st.name);
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(ready[0]);
		close(ready[1]);
		return ab_error_set(err, errno, "cannot start the supervisor of '%s'", rn->st.name);
	}
	if (pid == 0) {
		close(ready[0]);
		rn->ready_fd = ready[1];
		supervisor_main(rn, features, seccomp);
	}
	close(ready[1]);
	close(rn->claim_fd); /* the supervisor holds it now */
	rn->claim_fd = -1;
	for (;;) {
		ssize_t n = read(ready[0], msg + got, sizeof(msg) - 1 - got);
		if (n > 0 && (got += (size_t)n) < sizeof(msg) - 1)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
	close(ready[0]);
	msg[got] = '\0';
	if (got == 2 && memcmp(msg, "OK", 2) == 0)
		return 0;
	/* The supervisor reaps itself when it is done (it is not our child for long). */
	(void)waitpid(pid, NULL, WNOHANG);
	return ab_error_set(err, 0, "%s", got ? msg : "the supervisor exited during setup");
}

int ab_lifecycle_run(struct ab_config *cfg, const struct ab_features *features, const struct ab_seccomp_set *seccomp,
		     int n_run_args, char **run_args, int *exit_code, struct ab_run_outcome *out,
		     struct ab_error *err)
{
	struct run rn = { .cfg = cfg, .session = { .run_lock_fd = -1, .ws.lock_fd = -1 }, .ready_fd = -1,
			  .claim_fd = -1, .egress = AB_EGRESS_INIT };
	struct ab_run_hooks hooks = { .placed = on_placed, .prepare = on_prepare, .started = on_started,
				      .net_ready = on_net_ready, .data = &rn, .disk_upper_fd = -1 };
	size_t n = 0;
	int lock = -1, r;

	memset(out, 0, sizeof(*out));
	if (cfg->workspace_mode == AB_WORKSPACE_COW) {
		if ((r = ab_session_begin(cfg, &rn.session, err)) < 0)
			goto out;
		rn.have_session = true;
		if ((lock = ab_state_claim(cfg->name, err)) < 0) {
			r = lock;
			goto out;
		}
	} else if ((lock = claim_name(cfg, err)) < 0) {
		r = lock;
		goto out;
	}
	snprintf(out->name, sizeof(out->name), "%s", cfg->name);

	/* Limits: a cgroup when any is asked (and one can be had), rlimits otherwise. */
	if (have_limits(&cfg->limits)) {
		if ((r = ab_cgroup_setup(cfg->name, &cfg->limits, &rn.cg, err)) < 0)
			goto out;
		snprintf(out->limits_why, sizeof(out->limits_why), "%s", rn.cg.why);
	}
	cfg->limits_mode = (int)rn.cg.mode;
	if (cfg->detach)
		cfg->tty_mode = AB_TTY_ALWAYS; /* what attach and logs show is a terminal */

	rn.st.name = strdup(cfg->name);
	rn.st.status = AB_STATUS_CREATED;
	rn.st.detached = cfg->detach;
	rn.st.tty = cfg->detach || cfg->tty_mode == AB_TTY_ALWAYS ||
		    (cfg->tty_mode == AB_TTY_AUTO && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO));
	for (size_t i = 0; cfg->argv[i]; i++)
		if (ab_strv_push(&rn.st.command, &n, cfg->argv[i]) < 0)
			rn.st.name = NULL;
	n = 0;
	for (int i = 0; i < n_run_args; i++)
		if (ab_strv_push(&rn.st.run_args, &n, run_args[i]) < 0)
			rn.st.name = NULL;
	rn.st.cwd = getcwd(NULL, 0);
	rn.st.workspace = strdup(cfg->workspace);
	rn.st.workspace_mode = strdup(mode_name(cfg->workspace_mode));
	rn.st.created_ns = ab_now_ns();
	rn.st.supervisor_pid = getpid();
	rn.st.exit_code = -1;
	rn.st.limits = cfg->limits;
	rn.st.cgroup = ab_cgroup_to_json(&rn.cg);
	rn.st.enforced_layers = ab_layers_enforced(cfg, features);
	rn.st.seccomp_summary = seccomp ? strdup(seccomp->summary) : strdup("none");
	if (!rn.st.name || !rn.st.workspace || !rn.st.workspace_mode) {
		r = ab_error_set(err, ENOMEM, "cannot record the sandbox");
		goto out;
	}
	/* The claim's lock goes with the run until its record says running. */
	rn.claim_fd = lock;
	lock = -1;
	if (cfg->detach) {
		out->detached = true;
		r = start_detached(&rn, features, seccomp, err);
		if (r < 0)
			goto out;
		*exit_code = 0;
		goto out;
	}
	r = start_proxy(&rn, err);
	if (r == 0)
		r = ab_sandbox_run(cfg, features, seccomp, &hooks, exit_code, err);
	stop_proxy(&rn);
	if (r < 0) {
		(void)ab_cgroup_remove(&rn.cg, &(struct ab_error){ 0 });
		(void)ab_state_remove(cfg->name, &(struct ab_error){ 0 });
		goto out;
	}
	{
		struct ab_error keep = *err; /* a message about the command, for the caller */
		finish(&rn, *exit_code, hooks.timed_out, hooks.disk_upper_fd, out);
		*err = keep;
	}
	/* A foreground run leaves no record: it was seen through while it ran. Its network
	 * log stays, for `agentbox net log` (the next run of the name appends to it). */
	if (cfg->network == AB_NETWORK_FILTERED)
		(void)ab_state_remove_keeping(cfg->name, AB_EGRESS_LOG, &(struct ab_error){ 0 });
	else
		(void)ab_state_remove(cfg->name, &(struct ab_error){ 0 });
	end_session(&rn, cfg->quiet, out);
	r = 0;
out:
	if (rn.claim_fd >= 0 && lock < 0) {
		lock = rn.claim_fd; /* not started: the claim is given back below */
		rn.claim_fd = -1;
	}
	if (lock >= 0) {
		if (r < 0 && !out->detached)
			(void)ab_state_remove(cfg->name, &(struct ab_error){ 0 });
		close(lock);
	}
	free(rn.dir);
	ab_session_close(&rn.session); /* also a session whose begin failed half way */
	ab_cgroup_free(&rn.cg);
	ab_state_free(&rn.st);
	return r;
}
