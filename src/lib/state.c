#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "../shared/strutil.h"
#include "snapshot.h"

#define STATE_FILE "state.json"
#define MAX_STATE_BYTES (1024 * 1024)

static const char *const status_names[] = {
	[AB_STATUS_CREATED] = "created",
	[AB_STATUS_RUNNING] = "running",
	[AB_STATUS_EXITED] = "exited",
	[AB_STATUS_DEAD] = "dead",
};

const char *ab_status_name(enum ab_status s)
{
	return (unsigned)s < AB_ELEMENTSOF(status_names) ? status_names[s] : "unknown";
}

int64_t ab_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t ab_proc_start_time(pid_t pid)
{
	char path[64], *text = NULL, *p, state = 0;
	unsigned long long start = 0;
	size_t len = 0;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (ab_read_file(path, 4096, &text, &len) < 0)
		return 0;
	/* The command name may hold spaces and parentheses: fields start after the last ')'.
	 * A zombie (its parent gone, not yet reaped) counts as gone. */
	p = strrchr(text, ')');
	if (!p || sscanf(p + 1, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
			 &state, &start) != 2 || state == 'Z' || state == 'X')
		start = 0;
	free(text);
	return start;
}

bool ab_proc_is(pid_t pid, uint64_t start_time)
{
	uint64_t now = ab_proc_start_time(pid);
	return now && (!start_time || now == start_time);
}

/* mkdir -p with the last component 0700 and owned by us: state of other users (or a
 * directory planted by them in /tmp) is never used. */
static int make_private_dir(const char *path, struct ab_error *err)
{
	struct stat st;

	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return ab_error_set(err, errno, "cannot create the state directory '%s'", path);
	if (lstat(path, &st) < 0)
		return ab_error_set(err, errno, "cannot use the state directory '%s'", path);
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
		return ab_error_set(err, 0,
				    "the state directory '%s' is not a private directory of this user: remove it, or set AGENTBOX_RUN_DIR",
				    path);
	return 0;
}

int ab_run_root(char **out, struct ab_error *err)
{
	/* Checked once per process: a run asks for it several times. */
	static char *checked;
	const char *env = getenv("AGENTBOX_RUN_DIR");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	_cleanup_free_ char *root = NULL;
	int r;

	if (checked) {
		*out = strdup(checked);
		return *out ? 0 : ab_error_set(err, ENOMEM, "cannot find the state directory");
	}

	if (env && *env) {
		if (env[0] != '/')
			return ab_error_set(err, 0, "AGENTBOX_RUN_DIR '%s' is not an absolute path: set it to one", env);
		root = strdup(env);
	} else if (geteuid() == 0) {
		root = strdup("/run/agentbox");
	} else if (xdg && xdg[0] == '/' && access(xdg, W_OK) == 0) {
		if (asprintf(&root, "%s/agentbox", xdg) < 0)
			root = NULL;
	} else if (asprintf(&root, "/tmp/agentbox-%u", (unsigned)geteuid()) < 0) {
		root = NULL;
	}
	if (!root)
		return ab_error_set(err, ENOMEM, "cannot find the state directory");
	if ((r = make_private_dir(root, err)) < 0)
		return r;
	checked = strdup(root);
	*out = TAKE_PTR(root);
	return 0;
}

int ab_state_dir(const char *name, char **out, struct ab_error *err)
{
	_cleanup_free_ char *root = NULL;
	int r;

	if (!ab_name_is_valid(name))
		return ab_error_set(err, 0,
				    "invalid sandbox name '%s': use up to %d letters, digits, '-', '_' or '.', starting with a letter or digit",
				    name, AB_MAX_NAME_LEN);
	if ((r = ab_run_root(&root, err)) < 0)
		return r;
	if (asprintf(out, "%s/%s", root, name) < 0)
		return ab_error_set(err, ENOMEM, "cannot find the state of '%s'", name);
	return 0;
}

/* The lock is the sandbox's state directory itself (flock on its descriptor): no lock
 * file to create and remove, which on a disk-backed run root costs every run. */
static int open_dir_locked(const char *dir, const char *name, int how, struct ab_error *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT)
			return ab_error_set(err, 0, "unknown sandbox '%s': see 'agentbox ps --all'", name);
		return ab_error_set(err, errno, "cannot open '%s'", dir);
	}
	while (flock(fd, how) < 0) {
		int e = errno;
		if (e == EINTR)
			continue;
		close(fd);
		if (e == EWOULDBLOCK)
			return ab_error_set(err, 0, "sandbox '%s' is busy (another agentbox command holds it): try again",
					    name);
		return ab_error_set(err, e, "cannot lock sandbox '%s'", name);
	}
	return fd;
}

int ab_state_lock(const char *name, bool exclusive, struct ab_error *err)
{
	_cleanup_free_ char *dir = NULL;
	int r;

	if ((r = ab_state_dir(name, &dir, err)) < 0)
		return r;
	return open_dir_locked(dir, name, exclusive ? LOCK_EX : LOCK_SH, err);
}

static bool record_is_live(const struct ab_state *st)
{
	if (st->status != AB_STATUS_RUNNING && st->status != AB_STATUS_CREATED)
		return false;
	if (st->supervisor_pid > 0 && ab_proc_is(st->supervisor_pid, 0))
		return true;
	return st->init_pid > 0 && ab_proc_is(st->init_pid, st->init_start);
}

int ab_state_claim(const char *name, struct ab_error *err)
{
	_cleanup_free_ char *dir = NULL;
	int fd, r;

	if ((r = ab_state_dir(name, &dir, err)) < 0)
		return r;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return ab_error_set(err, errno, "cannot create the state directory '%s'", dir);
	if ((fd = open_dir_locked(dir, name, LOCK_EX | LOCK_NB, err)) < 0)
		return fd;
	/* A record already there: a run of this name that is over gives way; a live one not. */
	struct ab_state old = { 0 };
	struct ab_error ignored;
	if (ab_state_load(name, &old, &ignored) >= 0) {
		bool live = old.status == AB_STATUS_RUNNING || old.status == AB_STATUS_CREATED;
		ab_state_free(&old);
		if (live) {
			close(fd);
			return ab_error_set(err, 0, "sandbox '%s' is already running: use another --name, or 'agentbox stop %s'",
					    name, name);
		}
	}
	return fd;
}

/* JSON helpers: absent or mistyped members read as empty. */
static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) ?
		       json_object_get_string(v) :
		       NULL;
}

static int64_t get_i64(struct json_object *o, const char *key, int64_t dflt)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int) ?
		       json_object_get_int64(v) :
		       dflt;
}

static bool get_bool(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static int get_strv(struct json_object *o, const char *key, char ***out)
{
	struct json_object *v;
	size_t n = 0;

	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		struct json_object *e = json_object_array_get_idx(v, i);
		if (json_object_is_type(e, json_type_string) && ab_strv_push(out, &n, json_object_get_string(e)) < 0)
			return -ENOMEM;
	}
	return 0;
}

static struct json_object *strv_json(char *const *v)
{
	struct json_object *a = json_object_new_array();
	for (size_t i = 0; a && v && v[i]; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static struct json_object *limits_json(const struct ab_limits *l)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "memory", json_object_new_int64((int64_t)l->memory));
	json_object_object_add(o, "memory_swap", json_object_new_int64(l->memory_swap));
	json_object_object_add(o, "cpu_millis", json_object_new_int64((int64_t)l->cpu_millis));
	json_object_object_add(o, "pids", json_object_new_int64((int64_t)l->pids));
	json_object_object_add(o, "disk", json_object_new_int64((int64_t)l->disk));
	json_object_object_add(o, "timeout_ms", json_object_new_int64((int64_t)l->timeout_ms));
	json_object_object_add(o, "nofile", json_object_new_int64((int64_t)l->nofile));
	return o;
}

static void limits_from_json(struct json_object *o, struct ab_limits *l)
{
	l->memory = (uint64_t)get_i64(o, "memory", 0);
	l->memory_swap = get_i64(o, "memory_swap", -1);
	l->cpu_millis = (uint64_t)get_i64(o, "cpu_millis", 0);
	l->pids = (uint64_t)get_i64(o, "pids", 0);
	l->disk = (uint64_t)get_i64(o, "disk", 0);
	l->timeout_ms = (uint64_t)get_i64(o, "timeout_ms", 0);
	l->nofile = (uint64_t)get_i64(o, "nofile", 0);
}

int ab_state_save(const struct ab_state *st, struct ab_error *err)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_free_ char *path = NULL;
	struct json_object *o;
	const char *text;
	int r;

	if ((r = ab_state_dir(st->name, &dir, err)) < 0)
		return r;
	if (asprintf(&path, "%s/" STATE_FILE, dir) < 0)
		return ab_error_set(err, ENOMEM, "cannot save the state of '%s'", st->name);
	o = json_object_new_object();
	if (!o)
		return ab_error_set(err, ENOMEM, "cannot save the state of '%s'", st->name);
	json_object_object_add(o, "name", json_object_new_string(st->name));
	json_object_object_add(o, "status", json_object_new_string(ab_status_name(st->status)));
	json_object_object_add(o, "detached", json_object_new_boolean(st->detached));
	json_object_object_add(o, "tty", json_object_new_boolean(st->tty));
	json_object_object_add(o, "command", strv_json(st->command));
	json_object_object_add(o, "run_args", strv_json(st->run_args));
	json_object_object_add(o, "cwd", st->cwd ? json_object_new_string(st->cwd) : NULL);
	json_object_object_add(o, "workspace", st->workspace ? json_object_new_string(st->workspace) : NULL);
	json_object_object_add(o, "workspace_mode",
			       st->workspace_mode ? json_object_new_string(st->workspace_mode) : NULL);
	json_object_object_add(o, "created_ns", json_object_new_int64(st->created_ns));
	json_object_object_add(o, "started_ns", json_object_new_int64(st->started_ns));
	json_object_object_add(o, "finished_ns", json_object_new_int64(st->finished_ns));
	json_object_object_add(o, "supervisor_pid", json_object_new_int64(st->supervisor_pid));
	json_object_object_add(o, "init_pid", json_object_new_int64(st->init_pid));
	json_object_object_add(o, "init_start", json_object_new_int64((int64_t)st->init_start));
	json_object_object_add(o, "exit_code", json_object_new_int64(st->exit_code));
	json_object_object_add(o, "reason", st->reason ? json_object_new_string(st->reason) : NULL);
	json_object_object_add(o, "stop_requested", json_object_new_boolean(st->stop_requested));
	json_object_object_add(o, "kill_requested", json_object_new_boolean(st->kill_requested));
	json_object_object_add(o, "limits", limits_json(&st->limits));
	json_object_object_add(o, "cgroup", st->cgroup ? json_object_get(st->cgroup) : NULL);
	json_object_object_add(o, "enforced_layers", json_object_new_int64(st->enforced_layers));
	json_object_object_add(o, "seccomp",
			       st->seccomp_summary ? json_object_new_string(st->seccomp_summary) : NULL);
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	/* Replaced whole (rename), so a reader never sees half a record; not fsync'd: /run
	 * does not outlive a crash anyway. */
	r = text ? 0 : -ENOMEM;
	if (r == 0) {
		_cleanup_free_ char *tmp = NULL;
		if (asprintf(&tmp, "%s.tmp-%d", path, (int)getpid()) < 0) {
			r = -ENOMEM;
		} else {
			int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
			if (fd < 0)
				r = -errno;
			else {
				r = ab_write_all(fd, text, strlen(text));
				if (close(fd) < 0 && r >= 0)
					r = -errno;
				if (r >= 0 && rename(tmp, path) < 0)
					r = -errno;
				if (r < 0)
					unlink(tmp);
			}
		}
	}
	json_object_put(o);
	return r < 0 ? ab_error_set(err, -r, "cannot save the state '%s'", path) : 0;
}

int ab_state_load(const char *name, struct ab_state *st, struct ab_error *err)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *text = NULL;
	struct json_object *o, *v;
	const char *status;
	size_t len = 0;
	int r;

	memset(st, 0, sizeof(*st));
	st->exit_code = -1;
	if ((r = ab_state_dir(name, &dir, err)) < 0)
		return r;
	if (asprintf(&path, "%s/" STATE_FILE, dir) < 0)
		return ab_error_set(err, ENOMEM, "cannot read the state of '%s'", name);
	r = ab_read_file(path, MAX_STATE_BYTES, &text, &len);
	if (r == -ENOENT)
		return ab_error_set(err, 0, "unknown sandbox '%s': see 'agentbox ps --all'", name);
	if (r < 0)
		return ab_error_set(err, -r, "cannot read '%s'", path);
	o = json_tokener_parse(text);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return ab_error_set(err, 0, "the state '%s' is damaged: 'agentbox rm %s' removes it", path, name);
	}
	st->name = strdup(name);
	status = get_str(o, "status");
	st->status = AB_STATUS_DEAD;
	for (size_t i = 0; status && i < AB_ELEMENTSOF(status_names); i++)
		if (strcmp(status, status_names[i]) == 0)
			st->status = (enum ab_status)i;
	st->detached = get_bool(o, "detached");
	st->tty = get_bool(o, "tty");
	r = get_strv(o, "command", &st->command);
	if (r >= 0)
		r = get_strv(o, "run_args", &st->run_args);
	st->cwd = dup_or_null(get_str(o, "cwd"));
	st->workspace = dup_or_null(get_str(o, "workspace"));
	st->workspace_mode = dup_or_null(get_str(o, "workspace_mode"));
	st->created_ns = get_i64(o, "created_ns", 0);
	st->started_ns = get_i64(o, "started_ns", 0);
	st->finished_ns = get_i64(o, "finished_ns", 0);
	st->supervisor_pid = (pid_t)get_i64(o, "supervisor_pid", 0);
	st->init_pid = (pid_t)get_i64(o, "init_pid", 0);
	st->init_start = (uint64_t)get_i64(o, "init_start", 0);
	st->exit_code = (int)get_i64(o, "exit_code", -1);
	st->reason = dup_or_null(get_str(o, "reason"));
	st->stop_requested = get_bool(o, "stop_requested");
	st->kill_requested = get_bool(o, "kill_requested");
	if (json_object_object_get_ex(o, "limits", &v))
		limits_from_json(v, &st->limits);
	if (json_object_object_get_ex(o, "cgroup", &v) && json_object_is_type(v, json_type_object))
		st->cgroup = json_object_get(v);
	st->enforced_layers = (unsigned)get_i64(o, "enforced_layers", 0);
	st->seccomp_summary = dup_or_null(get_str(o, "seccomp"));
	json_object_put(o);
	if (!st->name || r < 0) {
		ab_state_free(st);
		return ab_error_set(err, ENOMEM, "cannot read the state of '%s'", name);
	}
	/* Recorded as live, but nothing of it is left: its supervisor was killed. */
	if (st->status != AB_STATUS_EXITED && !record_is_live(st)) {
		st->status = AB_STATUS_DEAD;
		if (!st->reason)
			st->reason = strdup("lost");
	}
	return 0;
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int ab_state_list(char ***names, size_t *n, struct ab_error *err)
{
	_cleanup_free_ char *root = NULL;
	struct dirent *de;
	DIR *d;
	int r;

	*names = NULL;
	*n = 0;
	if ((r = ab_run_root(&root, err)) < 0)
		return r;
	d = opendir(root);
	if (!d)
		return ab_error_set(err, errno, "cannot read '%s'", root);
	while ((de = readdir(d))) {
		if (!ab_name_is_valid(de->d_name))
			continue;
		if (ab_strv_push(names, n, de->d_name) < 0) {
			closedir(d);
			return ab_error_set(err, ENOMEM, "cannot list the sandboxes");
		}
	}
	closedir(d);
	if (*n)
		qsort(*names, *n, sizeof(char *), compare_strings);
	return 0;
}

int ab_state_remove(const char *name, struct ab_error *err)
{
	_cleanup_free_ char *dir = NULL;
	int r;

	if ((r = ab_state_dir(name, &dir, err)) < 0)
		return r;
	r = ab_remove_tree(AT_FDCWD, dir, false);
	if (r < 0 && r != -ENOENT)
		return ab_error_set(err, -r, "cannot remove '%s'", dir);
	return 0;
}

int ab_state_remove_keeping(const char *name, const char *keep, struct ab_error *err)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int dfd = -1;
	struct stat st;
	DIR *d;
	struct dirent *e;
	int r = 0;

	if ((r = ab_state_dir(name, &dir, err)) < 0)
		return r;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dfd < 0)
		return errno == ENOENT ? 0 : ab_error_set(err, errno, "cannot open '%s'", dir);
	if (fstatat(dfd, keep, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return ab_state_remove(name, err);
	d = fdopendir(dup(dfd));
	if (!d)
		return ab_error_set(err, errno, "cannot read '%s'", dir);
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, keep))
			continue;
		int q = ab_remove_tree(dfd, e->d_name, false);
		if (q < 0 && q != -ENOENT && r == 0)
			r = ab_error_set(err, -q, "cannot remove '%s/%s'", dir, e->d_name);
	}
	closedir(d);
	return r;
}

int ab_state_update(const char *name, void (*fn)(struct ab_state *st, void *ctx), void *ctx, struct ab_error *err)
{
	struct ab_state st;
	int fd, r;

	fd = ab_state_lock(name, true, err);
	if (fd < 0)
		return fd;
	r = ab_state_load(name, &st, err);
	if (r >= 0) {
		fn(&st, ctx);
		r = ab_state_save(&st, err);
		ab_state_free(&st);
	}
	close(fd);
	return r;
}

void ab_state_free(struct ab_state *st)
{
	free(st->name);
	ab_strv_free(st->command);
	ab_strv_free(st->run_args);
	free(st->cwd);
	free(st->workspace);
	free(st->workspace_mode);
	free(st->reason);
	json_object_put(st->cgroup);
	free(st->seccomp_summary);
	memset(st, 0, sizeof(*st));
	st->exit_code = -1;
}
