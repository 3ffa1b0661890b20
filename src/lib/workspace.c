/* Named sandboxes under the data root: creation, lookup, locking and listing. */
#include "workspace.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "../shared/strutil.h"
#include "config.h"
#include "fingerprint.h"
#include "snapshot.h"

#define SANDBOX_JSON_MAX (64 * 1024)
#define MAX_SANDBOXES 16384

/* mkdir -p: parents 0755, the last component `mode`. Returns 0 or -errno. */
static int mkdir_parents(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = strdup(path);
	struct stat st;

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return -errno;
	if (stat(p, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int ab_data_root(char **out, struct ab_error *err)
{
	const char *env = getenv("AGENTBOX_DATA_DIR");
	const char *xdg = getenv("XDG_DATA_HOME");
	const char *home = getenv("HOME");
	_cleanup_free_ char *root = NULL;
	int r;

	if (env && *env) {
		if (env[0] != '/')
			return ab_error_set(err, 0, "AGENTBOX_DATA_DIR '%s' is not an absolute path: set it to one",
					    env);
		root = strdup(env);
	} else if (geteuid() == 0) {
		root = strdup("/var/lib/agentbox");
	} else if (xdg && xdg[0] == '/') {
		if (asprintf(&root, "%s/agentbox", xdg) < 0)
			root = NULL;
	} else {
		if (!home || home[0] != '/') {
			struct passwd *pw = getpwuid(geteuid());
			home = pw ? pw->pw_dir : NULL;
		}
		if (!home || home[0] != '/')
			return ab_error_set(err, 0, "cannot find a data directory: set HOME or AGENTBOX_DATA_DIR");
		if (asprintf(&root, "%s/.local/share/agentbox", home) < 0)
			root = NULL;
	}
	if (!root)
		return ab_error_set(err, ENOMEM, "cannot find the data directory");
	/* Nearly always there already: one stat, not a mkdir per component. */
	struct stat st;
	r = stat(root, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : mkdir_parents(root, 0700);
	if (r < 0)
		return ab_error_set(err, -r,
				    "cannot create the data directory '%s' (choose another with AGENTBOX_DATA_DIR, or run with --workspace-mode rw)",
				    root);
	*out = TAKE_PTR(root);
	return 0;
}

static void workspace_free(struct ab_workspace *ws)
{
	free(ws->name);
	free(ws->dir);
	free(ws->project);
	free(ws->upper);
	free(ws->work);
	free(ws->base);
	free(ws->manifest);
	free(ws->layer);
	*ws = (struct ab_workspace){ .lock_fd = -1 };
}

void ab_workspace_close(struct ab_workspace *ws)
{
	if (!ws)
		return;
	if (ws->dir && ws->lock_fd >= 0)
		close(ws->lock_fd);
	workspace_free(ws);
}

/* "FINGERPRINT COUNT\n" (len bytes of text, NUL-terminated): 0, or -1 when it is not that. */
static int parse_recorded(const char *text, size_t len, uint64_t *fingerprint, size_t *n_changes)
{
	unsigned long long fp, n;
	char end;

	if (memchr(text, '\0', len) || sscanf(text, "%16llx %llu%c", &fp, &n, &end) != 3 || end != '\n' ||
	    n > AB_MAX_CHANGES)
		return -1;
	*fingerprint = fp;
	*n_changes = (size_t)n;
	return 0;
}

int ab_workspace_recorded_get(const struct ab_workspace *ws, uint64_t *fingerprint, size_t *n_changes)
{
	char path[4096];
	_cleanup_free_ char *text = NULL;
	size_t len = 0;

	snprintf(path, sizeof(path), "%s/recorded", ws->dir);
	if (ab_read_file(path, 128, &text, &len) < 0)
		return -1;
	return parse_recorded(text, len, fingerprint, n_changes);
}

void ab_workspace_recorded_set(const struct ab_workspace *ws, uint64_t fingerprint, size_t n_changes)
{
	char path[4096], text[64];
	int fd, n;

	snprintf(path, sizeof(path), "%s/recorded", ws->dir);
	n = snprintf(text, sizeof(text), "%016llx %zu\n", (unsigned long long)fingerprint, n_changes);
	/* Written in place (a new inode, from a new file or a rename, costs the most on the
	 * end's path), not forced to disk, and not truncated: a reader takes the line and
	 * ignores what an earlier, longer one left after it. After a crash a stale or torn
	 * record only costs the next run's end its full work, since the fingerprint then
	 * differs (new inodes, new times) or the line does not parse. */
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return;
	if (pwrite(fd, text, (size_t)n, 0) != n)
		(void)!pwrite(fd, "!", 1, 0);
	close(fd);
}

int ab_workspace_recorded_forget(const struct ab_workspace *ws)
{
	char path[4096];
	int fd, r = 0;

	snprintf(path, sizeof(path), "%s/recorded", ws->dir);
	/* Marked in place, so that the next record needs no new file. */
	fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (pwrite(fd, "!", 1, 0) != 1)
		r = unlink(path) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static int set_paths(struct ab_workspace *ws, const char *name, const char *dir)
{
	ws->name = strdup(name);
	ws->dir = strdup(dir);
	if (!ws->name || !ws->dir || asprintf(&ws->upper, "%s/upper", dir) < 0 ||
	    asprintf(&ws->work, "%s/work", dir) < 0 || asprintf(&ws->base, "%s/base", dir) < 0 ||
	    asprintf(&ws->manifest, "%s/manifest", dir) < 0 || asprintf(&ws->layer, "%s/layer", dir) < 0)
		return -ENOMEM;
	return 0;
}

static int now_ns(int64_t *out)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return -errno;
	*out = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
	return 0;
}

/* A file in a sandbox that is being created. The sandbox is built under a temporary name
 * and renamed into place whole, so nobody sees it half written; it holds nothing of the
 * user's yet, so nothing is forced to disk (each fsync here cost about a millisecond of
 * every new sandbox's start): after a crash at this moment the sandbox may be missing,
 * and is made again. */
static int write_new_file(const char *path, const char *text, size_t len)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return -errno;
	return ab_write_all(fd, text, len) < 0 ? -errno : 0;
}

static int write_sandbox_json(const char *dir, const char *name, const char *project)
{
	_cleanup_free_ char *path = NULL;
	json_object *o = json_object_new_object();
	const char *text;
	int64_t created = 0;
	int r;

	if (!o)
		return -ENOMEM;
	r = now_ns(&created);
	if (r >= 0 && asprintf(&path, "%s/sandbox.json", dir) < 0)
		r = -ENOMEM;
	if (r >= 0 && (json_object_object_add(o, "name", json_object_new_string(name)) < 0 ||
		       json_object_object_add(o, "project", json_object_new_string(project)) < 0 ||
		       json_object_object_add(o, "created", json_object_new_int64(created)) < 0))
		r = -ENOMEM;
	if (r >= 0) {
		text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
		r = text ? write_new_file(path, text, strlen(text)) : -ENOMEM;
	}
	json_object_put(o);
	return r;
}

/* Reads the project of an existing sandbox; -ENOENT when dir has no sandbox.json. */
static int read_sandbox_json(const char *dir, char **project, struct ab_error *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *text = NULL;
	json_object *o, *p;
	int r;

	if (asprintf(&path, "%s/sandbox.json", dir) < 0)
		return ab_error_set(err, ENOMEM, "cannot read '%s/sandbox.json'", dir);
	r = ab_read_file(path, SANDBOX_JSON_MAX, &text, NULL);
	if (r == -ENOENT)
		return r;
	if (r < 0)
		return ab_error_set(err, -r, "cannot read '%s'", path);
	o = json_tokener_parse(text);
	if (!o || !json_object_object_get_ex(o, "project", &p) || !json_object_is_type(p, json_type_string) ||
	    json_object_get_string(p)[0] != '/') {
		json_object_put(o);
		return ab_error_set(err, 0, "'%s' is damaged: it names no project; remove '%s' to start over",
				    path, dir);
	}
	*project = strdup(json_object_get_string(p));
	json_object_put(o);
	return *project ? 0 : ab_error_set(err, ENOMEM, "cannot read '%s'", path);
}

static int create_sandbox(const char *sandboxes, const char *name, const char *project,
			  struct ab_error *err)
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_free_ char *final = NULL;
	static const char *const subdirs[] = { "upper", "work", "base", "snapshots", "layer" };
	int r;

	if (asprintf(&tmp, "%s/.new-%s-%d", sandboxes, name, (int)getpid()) < 0 ||
	    asprintf(&final, "%s/%s", sandboxes, name) < 0)
		return ab_error_set(err, ENOMEM, "cannot create sandbox '%s'", name);
	(void)ab_remove_tree(AT_FDCWD, tmp, false);
	if (mkdir(tmp, 0700) < 0)
		return ab_error_set(err, errno, "cannot create sandbox '%s' in '%s'", name, sandboxes);
	for (size_t i = 0; i < AB_ELEMENTSOF(subdirs); i++) {
		_cleanup_free_ char *sub = NULL;
		if (asprintf(&sub, "%s/%s", tmp, subdirs[i]) < 0) {
			r = ab_error_set(err, ENOMEM, "cannot create sandbox '%s'", name);
			goto fail;
		}
		if (mkdir(sub, 0700) < 0) {
			r = ab_error_set(err, errno, "cannot create '%s'", sub);
			goto fail;
		}
	}
	{
		_cleanup_free_ char *manifest = NULL;
		if (asprintf(&manifest, "%s/manifest", tmp) < 0) {
			r = ab_error_set(err, ENOMEM, "cannot create sandbox '%s'", name);
			goto fail;
		}
		r = ab_manifest_init(manifest, err);
		if (r < 0) {
			ab_error_wrap(err, "cannot create sandbox '%s'", name);
			goto fail;
		}
	}
	r = write_sandbox_json(tmp, name, project);
	if (r < 0) {
		r = ab_error_set(err, -r, "cannot write '%s/sandbox.json'", tmp);
		goto fail;
	}
	/* A leftover directory without sandbox.json (an older crash) is replaced. */
	(void)ab_remove_tree(AT_FDCWD, final, false);
	if (rename(tmp, final) < 0) {
		r = errno;
		(void)ab_remove_tree(AT_FDCWD, tmp, false);
		if (r == EEXIST || r == ENOTEMPTY)
			return -EEXIST; /* created meanwhile by another command */
		return ab_error_set(err, r, "cannot create sandbox '%s'", name);
	}
	return 0;
fail:
	(void)ab_remove_tree(AT_FDCWD, tmp, false);
	return r;
}

static int workspace_open(const char *name, const char *project, bool canonical, struct ab_workspace *ws,
			  struct ab_error *err)
{
	_cleanup_free_ char *root = NULL;
	_cleanup_free_ char *sandboxes = NULL;
	_cleanup_free_ char *dir = NULL;
	_cleanup_free_ char *canon = NULL;
	_cleanup_free_ char *stored = NULL;
	struct stat st;
	int r;

	*ws = (struct ab_workspace){ .lock_fd = -1 };
	if (!ab_name_is_valid(name))
		return ab_error_set(err, 0,
				    "invalid sandbox name '%s': use up to %d letters, digits, '-', '_' or '.', "
				    "starting with a letter or digit",
				    name ? name : "", AB_MAX_NAME_LEN);
	if (project) {
		canon = canonical ? strdup(project) : realpath(project, NULL);
		if (!canon)
			return ab_error_set(err, errno, "cannot find project '%s'", project);
		if (stat(canon, &st) < 0)
			return ab_error_set(err, errno, "cannot inspect project '%s'", canon);
		if (!S_ISDIR(st.st_mode))
			return ab_error_set(err, ENOTDIR, "project '%s' is not a directory", canon);
	}
	r = ab_data_root(&root, err);
	if (r < 0)
		return r;
	if (asprintf(&sandboxes, "%s/sandboxes", root) < 0 || asprintf(&dir, "%s/%s", sandboxes, name) < 0)
		return ab_error_set(err, ENOMEM, "cannot open sandbox '%s'", name);

	for (int attempt = 0;; attempt++) {
		r = read_sandbox_json(dir, &stored, err);
		if (r != -ENOENT)
			break;
		if (!project)
			return ab_error_set(err, 0,
					    "unknown sandbox '%s': see 'agentbox snapshots' or run one with "
					    "'agentbox run --name %s'",
					    name, name);
		if (attempt > 0)
			return ab_error_set(err, EEXIST, "cannot create sandbox '%s'", name);
		if (mkdir(sandboxes, 0700) < 0 && errno != EEXIST)
			return ab_error_set(err, errno, "cannot create '%s'", sandboxes);
		r = create_sandbox(sandboxes, name, canon, err);
		if (r < 0 && r != -EEXIST)
			return r;
	}
	if (r < 0)
		return r;
	if (stat(stored, &st) < 0 || !S_ISDIR(st.st_mode))
		return ab_error_set(err, 0, "project '%s' of sandbox '%s' is gone or moved: its changes are kept in '%s/upper'",
				    stored, name, dir);
	if (canon && strcmp(canon, stored) != 0)
		return ab_error_set(err, 0, "sandbox '%s' belongs to project '%s', not '%s'", name, stored,
				    canon);

	if (set_paths(ws, name, dir) < 0) {
		workspace_free(ws);
		return ab_error_set(err, ENOMEM, "cannot open sandbox '%s'", name);
	}
	ws->project = TAKE_PTR(stored);

	/* Repairs what a crash left, when no other command holds the sandbox. */
	{
		_cleanup_close_ int fd = -1;
		_cleanup_free_ char *lock = NULL;

		if (asprintf(&lock, "%s/lock", dir) < 0) {
			workspace_free(ws);
			return ab_error_set(err, ENOMEM, "cannot open sandbox '%s'", name);
		}
		fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
			r = ab_workspace_recover(ws, err);
			if (r < 0) {
				workspace_free(ws);
				return r;
			}
		}
	}
	return 0;
}

int ab_workspace_open(const char *name, const char *project, struct ab_workspace *ws, struct ab_error *err)
{
	return workspace_open(name, project, false, ws, err);
}

int ab_workspace_open_canonical(const char *name, const char *project, struct ab_workspace *ws,
				struct ab_error *err)
{
	return workspace_open(name, project, true, ws, err);
}

int ab_workspace_lock(struct ab_workspace *ws, bool exclusive, struct ab_error *err)
{
	_cleanup_free_ char *path = NULL;
	int fd = ws->lock_fd;

	if (fd < 0) {
		if (asprintf(&path, "%s/lock", ws->dir) < 0)
			return ab_error_set(err, ENOMEM, "cannot lock sandbox '%s'", ws->name);
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			return ab_error_set(err, errno, "cannot open the lock '%s'", path);
	}
	if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
		int e = errno;
		if (fd != ws->lock_fd)
			close(fd);
		if (e == EWOULDBLOCK)
			return ab_error_set(err, 0, "sandbox '%s' is busy (another agentbox command holds it)",
					    ws->name);
		return ab_error_set(err, e, "cannot lock sandbox '%s'", ws->name);
	}
	ws->lock_fd = fd;
	if (exclusive) {
		int r = ab_workspace_recover(ws, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int ab_workspace_list(char ***names, size_t *n, struct ab_error *err)
{
	_cleanup_free_ char *root = NULL;
	_cleanup_free_ char *sandboxes = NULL;
	_cleanup_strv_free_ char **v = NULL;
	size_t count = 0;
	DIR *d;
	struct dirent *de;
	int r;

	r = ab_data_root(&root, err);
	if (r < 0)
		return r;
	if (asprintf(&sandboxes, "%s/sandboxes", root) < 0)
		return ab_error_set(err, ENOMEM, "cannot list sandboxes");
	v = calloc(1, sizeof(char *));
	if (!v)
		return ab_error_set(err, ENOMEM, "cannot list sandboxes");
	d = opendir(sandboxes);
	if (!d && errno != ENOENT)
		return ab_error_set(err, errno, "cannot list sandboxes in '%s'", sandboxes);
	while (d && (errno = 0, de = readdir(d))) {
		struct stat st;
		char sub[NAME_MAX + 32];

		if (!ab_name_is_valid(de->d_name))
			continue;
		snprintf(sub, sizeof(sub), "%s/sandbox.json", de->d_name);
		if (fstatat(dirfd(d), sub, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (count >= MAX_SANDBOXES) {
			closedir(d);
			return ab_error_set(err, E2BIG, "too many sandboxes in '%s'", sandboxes);
		}
		r = ab_strv_push(&v, &count, de->d_name);
		if (r < 0) {
			closedir(d);
			return ab_error_set(err, -r, "cannot list sandboxes");
		}
	}
	if (d) {
		r = errno;
		closedir(d);
		if (r)
			return ab_error_set(err, r, "cannot list sandboxes in '%s'", sandboxes);
	}
	qsort(v, count, sizeof(char *), compare_names);
	*names = TAKE_PTR(v);
	*n = count;
	return 0;
}
