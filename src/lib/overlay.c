/* The copy-on-write workspace: the project is the read-only lower layer, and the run's own
 * layer (layer.h) the upper directory, which takes every change; between the two, the
 * sandbox's earlier changes are a read-only layer of their own. "userxattr" because the
 * mount is made inside a user namespace, where overlay keeps its markers in
 * user.overlay.* attributes.
 *
 * The mount is built with the mount API (fsopen, fsconfig, fsmount, move_mount). The
 * layers are set first thing in the sandbox's new mount namespace, before anything is
 * mounted there (the scratch root over /tmp, the pivot), so nothing has to be looked up
 * through the root being built: by descriptors of the directories where overlayfs takes
 * them (Linux 6.13 and later), else by their host paths, which fsconfig looks up at once.
 * The superblock is created when the workspace is attached, in line.
 *
 * Creating the superblock is most of what the overlay costs: overlayfs probes the work
 * directory, and removes the last mount's work/work and makes it again. The session sets
 * the old one aside before the sandbox starts and removes it while the command runs
 * (session.c), since the removal frees a block, which costs a synchronous discard where
 * the file system discards online. A task of its own creating the superblock beside the
 * rest of the set-up was measured slower on two CPUs: its clone, and its kernel work
 * slowing the set-up it ran beside, cost more than the overlap saved.
 *
 * Where the kernel has no mount API, the overlay is mounted with mount(2). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "overlay.h"

/* Appends s to buf with the characters that overlayfs's option parser splits on escaped. */
static int append_escaped(char *buf, size_t size, size_t *used, const char *s)
{
	for (; *s; s++) {
		if (*used + 3 >= size)
			return -ENAMETOOLONG;
		if (*s == ',' || *s == ':' || *s == '\\')
			buf[(*used)++] = '\\';
		buf[(*used)++] = *s;
	}
	buf[*used] = '\0';
	return 0;
}

/* prefix + path, escaped; -ENAMETOOLONG when it does not fit. */
static int escaped_path(char *buf, size_t size, const char *prefix, const char *path)
{
	size_t used = strlen(prefix);

	if (used >= size)
		return -ENAMETOOLONG;
	memcpy(buf, prefix, used + 1);
	return append_escaped(buf, size, &used, path);
}

/* The overlay being built: one per sandbox process, so plain static state. */
static struct {
	bool begun; /* ab_overlay_begin took it on: ab_overlay_mount finishes it */
	int fs_fd;  /* the filesystem context, its layers set */
	int error;  /* or the errno that stopped it */
} pending = { .fs_fd = -1 };

/* Apart (noinline), as every user of a path buffer here: the buffers stay off the stack
 * of the usual path, where each new page of stack costs the sandbox's process a fault. */
__attribute__((noinline)) static int set_layer(int fs_fd, const char *key, const char *path)
{
	char value[3 * PATH_MAX];

	if (escaped_path(value, sizeof(value), "", path) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return fsconfig(fs_fd, FSCONFIG_SET_STRING, key, value, 0);
}

/* A layer by a descriptor of the directory (fd_key), where overlayfs takes one (Linux
 * 6.13 and later): nothing is looked up again, and no path has to be escaped. Else by
 * its path (path_key), whose lookup also words the kernel's refusal of a layer that
 * cannot be opened here. The context holds its own reference: the descriptor goes. */
static int set_dir_layer(int fs_fd, const char *fd_key, const char *path_key, const char *path)
{
	int dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = -1;

	if (dir >= 0) {
		r = fsconfig(fs_fd, FSCONFIG_SET_FD, fd_key, NULL, dir);
		close(dir);
	}
	return r == 0 ? 0 : set_layer(fs_fd, path_key, path);
}

/* Both lower layers by their paths, in one value, top first (before Linux 6.13). */
__attribute__((noinline)) static int set_lowers_by_path(int fs_fd, const struct ab_config *cfg)
{
	char value[6 * PATH_MAX + 2];
	size_t used;

	if (escaped_path(value, sizeof(value), "", cfg->overlay_middle) < 0 ||
	    (used = strlen(value)) + 1 >= sizeof(value)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	value[used++] = ':';
	value[used] = '\0';
	if (append_escaped(value, sizeof(value), &used, cfg->workspace) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return fsconfig(fs_fd, FSCONFIG_SET_STRING, "lowerdir", value, 0);
}

/* The lower layers, top first: the middle one when there is one (the sandbox's earlier
 * changes, under the run's own layer), then the project. By descriptors where overlayfs
 * takes them, else by path. */
static int set_lowers(int fs_fd, const struct ab_config *cfg)
{
	int mid, low, r = -1, e;

	if (!cfg->overlay_middle)
		return set_dir_layer(fs_fd, "lowerdir+", "lowerdir", cfg->workspace);
	mid = open(cfg->overlay_middle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mid >= 0 && fsconfig(fs_fd, FSCONFIG_SET_FD, "lowerdir+", NULL, mid) == 0) {
		low = open(cfg->workspace, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		r = low >= 0 ? fsconfig(fs_fd, FSCONFIG_SET_FD, "lowerdir+", NULL, low) : -1;
		e = errno;
		if (low >= 0)
			close(low);
		close(mid);
		errno = e;
		return r;
	}
	if (mid >= 0)
		close(mid);
	return set_lowers_by_path(fs_fd, cfg);
}

void ab_overlay_begin(const struct ab_config *cfg)
{
	if (cfg->workspace_mode != AB_WORKSPACE_COW || cfg->limits.disk || !cfg->workspace || !cfg->overlay_upper ||
	    !cfg->overlay_work)
		return;
	pending.fs_fd = fsopen("overlay", FSOPEN_CLOEXEC);
	if (pending.fs_fd < 0)
		return; /* no mount API here: ab_overlay_mount falls back to mount(2) */
	pending.begun = true;
	/* A layer refused here is reported by ab_overlay_mount, in the kernel's words. */
	if (fsconfig(pending.fs_fd, FSCONFIG_SET_STRING, "source", "overlay", 0) < 0 ||
	    set_lowers(pending.fs_fd, cfg) < 0 ||
	    set_dir_layer(pending.fs_fd, "upperdir", "upperdir", cfg->overlay_upper) < 0 ||
	    set_dir_layer(pending.fs_fd, "workdir", "workdir", cfg->overlay_work) < 0 ||
	    fsconfig(pending.fs_fd, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) < 0)
		pending.error = errno;
}

/* The kernel's own words on why the superblock was refused, from the context's log
 * ("e overlay: ..."), or "" when it left none. */
static void context_message(int fs_fd, char *buf, size_t size)
{
	char line[512];
	ssize_t n;

	buf[0] = '\0';
	while ((n = read(fs_fd, line, sizeof(line) - 1)) > 0) {
		line[n] = '\0';
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == 'e' && line[1] == ' ')
			snprintf(buf, size, ": %s", line + 2);
	}
}

__attribute__((noinline)) static int mount_classic(const struct ab_config *cfg, const char *old_root, const char *disk_root,
			 const char *dst, struct ab_error *err)
{
	char lower[6 * PATH_MAX + 2], project[3 * PATH_MAX], upper[3 * PATH_MAX], work[3 * PATH_MAX],
		opts[12 * PATH_MAX + 64];
	/* With --disk-limit the changes live in the sandbox's own disk space while it runs. */
	bool in_disk = cfg->limits.disk && disk_root;

	lower[0] = '\0';
	/* Top first: the sandbox's earlier changes, when the run has a layer of its own. */
	if (cfg->overlay_middle && !in_disk &&
	    (escaped_path(lower, sizeof(lower) - 1, old_root, cfg->overlay_middle) < 0 || !strcat(lower, ":")))
		return ab_error_set(err, ENAMETOOLONG, "cannot mount the copy-on-write workspace '%s'",
				    cfg->workspace);
	if (escaped_path(project, sizeof(project), old_root, cfg->workspace) < 0 ||
	    strlen(lower) + strlen(project) >= sizeof(lower) || !strcat(lower, project) ||
	    escaped_path(upper, sizeof(upper), in_disk ? disk_root : old_root,
			 in_disk ? "/upper" : cfg->overlay_upper) < 0 ||
	    escaped_path(work, sizeof(work), in_disk ? disk_root : old_root,
			 in_disk ? "/work" : cfg->overlay_work) < 0 ||
	    snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s,userxattr", lower, upper, work) >=
		    (int)sizeof(opts))
		return ab_error_set(err, ENAMETOOLONG, "cannot mount the copy-on-write workspace '%s'",
				    cfg->workspace);
	if (mount("overlay", dst, "overlay", MS_NOSUID | MS_NODEV, opts) < 0)
		return ab_error_set(err, errno, "cannot mount the copy-on-write workspace '%s' (overlayfs)",
				    cfg->workspace);
	return 0;
}

int ab_overlay_mount(const struct ab_config *cfg, const char *old_root, const char *disk_root, const char *dst,
		     struct ab_error *err)
{
	char why[512];
	int mnt_fd = -1, r = 0;

	if (!pending.begun)
		return mount_classic(cfg, old_root, disk_root, dst, err);
	pending.begun = false;
	if (!pending.error && fsconfig(pending.fs_fd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		pending.error = errno;
	if (!pending.error) {
		mnt_fd = fsmount(pending.fs_fd, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
		if (mnt_fd < 0)
			pending.error = errno;
	}
	if (mnt_fd < 0) {
		context_message(pending.fs_fd, why, sizeof(why));
		r = ab_error_set(err, pending.error ? pending.error : EIO,
				 "cannot mount the copy-on-write workspace '%s' (overlayfs%s)", cfg->workspace, why);
	} else if (move_mount(mnt_fd, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
		r = ab_error_set(err, errno, "cannot attach the copy-on-write workspace '%s' on '%s'",
				 cfg->workspace, dst);
	}
	if (mnt_fd >= 0)
		close(mnt_fd);
	close(pending.fs_fd);
	pending.fs_fd = -1;
	pending.error = 0;
	return r;
}
