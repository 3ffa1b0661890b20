#include <sys/mount.h>

#include "rootfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>

#include "../shared/cleanup.h"
#include "../shared/strutil.h"
#include "mount-policy.h"
#include "mount.h"
#include "overlay.h"
#include "snapshot.h"

/* While the root is built, "/" is a scratch tmpfs: the host's tree is at OLD, the new root
 * at NEW. Sources are read through OLD; nothing is resolved against the host's "/". */
#define OLD "/oldroot"
#define NEW "/newroot"
#define EMPTY_FILE "/empty"
#define EMPTY_DIR "/emptydir"
/* With --disk-limit, one tmpfs of that size holds everything the sandbox can write: its
 * /tmp, its home, its --tmpfs mounts and its copy-on-write changes. */
#define DISK "/disk"

/* The tmpfs copy of the workspace changes, for agentbox to copy back when the run ends
 * (see ab_rootfs_take_disk_upper). */
static int disk_upper_fd = -1;

int ab_rootfs_take_disk_upper(void)
{
	int fd = disk_upper_fd;
	disk_upper_fd = -1;
	return fd;
}

static int path_join(char *buf, const char *a, const char *b, struct ab_error *err)
{
	int n = snprintf(buf, PATH_MAX, "%s%s%s", a, (b[0] == '/' || a[strlen(a) - 1] == '/') ? "" : "/", b);
	if (n < 0 || n >= PATH_MAX)
		return ab_error_set(err, ENAMETOOLONG, "path '%s%s' is too long", a, b);
	return 0;
}

static int compare_mounts(const void *a, const void *b)
{
	/* A parent is a prefix of its children, so plain byte order puts it first. */
	return strcmp(((const struct ab_user_mount *)a)->dest, ((const struct ab_user_mount *)b)->dest);
}

size_t ab_rootfs_user_mounts(const struct ab_config *cfg, struct ab_user_mount *out)
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->n_tmpfs; i++)
		out[n++] = (struct ab_user_mount){ .kind = AB_UMOUNT_TMPFS, .dest = cfg->tmpfs[i].dest,
						   .size_bytes = cfg->tmpfs[i].size_bytes };
	out[n++] = (struct ab_user_mount){ .kind = AB_UMOUNT_HOME, .dest = cfg->home,
					   .size_bytes = AB_DEFAULT_TMP_SIZE };
	out[n++] = (struct ab_user_mount){ .kind = AB_UMOUNT_WORKSPACE, .dest = cfg->workspace_dest,
					   .source = cfg->workspace,
					   .read_only = cfg->workspace_mode == AB_WORKSPACE_RO };
	for (size_t i = 0; i < cfg->n_binds; i++)
		out[n++] = (struct ab_user_mount){ .kind = AB_UMOUNT_BIND, .dest = cfg->binds[i].dest,
						   .source = cfg->binds[i].source,
						   .read_only = cfg->binds[i].read_only };
	qsort(out, n, sizeof(*out), compare_mounts);
	return n;
}

/* One entry of the system tree (host or --rootfs): symlinks copied, the rest bound read-only. */
static int share_entry(const char *root, const char *name, struct ab_error *err)
{
	char src[PATH_MAX], dst[PATH_MAX], target[PATH_MAX];
	struct stat st;
	ssize_t n;
	int r;

	if ((r = path_join(src, root, name, err)) < 0 || (r = path_join(dst, NEW, name, err)) < 0)
		return r;
	if (lstat(src, &st) < 0)
		return errno == ENOENT ? 0 : ab_error_set(err, errno, "cannot inspect '%s'", src + strlen(OLD));
	if (S_ISLNK(st.st_mode)) {
		n = readlink(src, target, sizeof(target) - 1);
		if (n < 0)
			return ab_error_set(err, errno, "cannot read the link '%s'", src + strlen(OLD));
		target[n] = '\0';
		if (symlink(target, dst) < 0 && errno != EEXIST)
			return ab_error_set(err, errno, "cannot create the link '/%s'", name);
		return 0;
	}
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
		return 0; /* sockets and devices at the top of a root are not shared */
	r = ab_mkpath_beneath(NEW, name, !S_ISDIR(st.st_mode), err);
	if (r < 0)
		return r;
	return ab_mount_bind(src, dst, AB_ATTR_SYSTEM, err);
}

static int share_system(const struct ab_config *cfg, struct ab_error *err)
{
	char root[PATH_MAX];
	int r;

	if (!cfg->rootfs) {
		for (size_t i = 0; i < ab_n_host_system_entries; i++)
			if ((r = share_entry(OLD, ab_host_system_entries[i], err)) < 0)
				return r;
		return 0;
	}
	if ((r = path_join(root, OLD, cfg->rootfs, err)) < 0)
		return r;
	DIR *d = opendir(root);
	if (!d)
		return ab_error_set(err, errno, "cannot read the root filesystem '%s'", cfg->rootfs);
	struct dirent *de;
	r = 0;
	while ((de = readdir(d))) {
		bool skip = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
		for (size_t i = 0; !skip && i < ab_n_rootfs_skipped_entries; i++)
			skip = strcmp(de->d_name, ab_rootfs_skipped_entries[i]) == 0;
		if (skip)
			continue;
		r = share_entry(root, de->d_name, err);
		if (r < 0)
			break;
	}
	closedir(d);
	return r;
}

/* Hides one path of the new root behind an empty file or directory, read-only. */
static int mask_path(const char *rel, bool dir, struct ab_error *err)
{
	char dst[PATH_MAX];
	struct stat st;
	int r;

	if ((r = path_join(dst, NEW, rel, err)) < 0)
		return r;
	if (lstat(dst, &st) < 0 || S_ISLNK(st.st_mode))
		return 0; /* absent here, or a link that leads to something masked itself */
	if (dir != S_ISDIR(st.st_mode))
		dir = S_ISDIR(st.st_mode);
	/* The scratch root is read-only, nosuid, nodev and noexec by now, and a bind mount is
	 * born with its source's flags: one system call per mask. */
	if (mount(dir ? EMPTY_DIR : EMPTY_FILE, dst, NULL, MS_BIND, NULL) < 0)
		return ab_error_set(err, errno, "cannot hide '/%s'", rel);
	return 0;
}

static int mask_glob(const char *rel, struct ab_error *err)
{
	char pattern[PATH_MAX];
	glob_t g;
	int r;

	if (!strpbrk(rel, "*?["))
		return mask_path(rel, false, err);
	if ((r = path_join(pattern, NEW, rel, err)) < 0)
		return r;
	if (glob(pattern, GLOB_NOSORT, NULL, &g) != 0)
		return 0;
	r = 0;
	for (size_t i = 0; i < g.gl_pathc && r >= 0; i++)
		r = mask_path(g.gl_pathv[i] + strlen(NEW) + 1, false, err);
	globfree(&g);
	return r;
}

static int write_scratch_file(const char *path, const char *text, struct ab_error *err)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || ab_write_all(fd, text, strlen(text)) < 0)
		return ab_error_set(err, errno, "cannot write '%s'", path);
	return 0;
}

/* The user database inside names only root, the sandbox user and nobody: the host's
 * accounts are nobody's business. Written to the scratch root before it turns read-only. */
static int write_user_database(const struct ab_config *cfg, struct ab_error *err)
{
	char passwd[1024], group[512];
	int r;

	if (cfg->sandbox_uid != 0)
		snprintf(passwd, sizeof(passwd),
			 "root:x:0:0:root:/root:/bin/sh\n%s:x:%u:%u:agentbox sandbox user:%s:/bin/sh\n"
			 "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
			 cfg->user_name, (unsigned)cfg->sandbox_uid, (unsigned)cfg->sandbox_gid, cfg->home);
	else
		snprintf(passwd, sizeof(passwd),
			 "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
	if (cfg->sandbox_gid != 0)
		snprintf(group, sizeof(group), "root:x:0:\n%s:x:%u:\nnogroup:x:65534:\n", cfg->user_name,
			 (unsigned)cfg->sandbox_gid);
	else
		snprintf(group, sizeof(group), "root:x:0:\nnogroup:x:65534:\n");
	if ((r = write_scratch_file("/passwd", passwd, err)) < 0 ||
	    (r = write_scratch_file("/group", group, err)) < 0)
		return r;
	return 0;
}

/* /etc's credential files hidden, its user database replaced. */
static int build_etc(struct ab_error *err)
{
	static const char *const replaced[] = { "passwd", "group" };
	char src[32], dst[PATH_MAX];
	struct stat st;
	int r;

	for (size_t i = 0; i < ab_n_masked_etc_files; i++)
		if ((r = mask_glob(ab_masked_etc_files[i], err)) < 0)
			return r;
	for (size_t i = 0; i < ab_n_masked_etc_dirs; i++)
		if ((r = mask_path(ab_masked_etc_dirs[i], true, err)) < 0)
			return r;
	for (size_t i = 0; i < AB_ELEMENTSOF(replaced); i++) {
		snprintf(src, sizeof(src), "/%s", replaced[i]);
		snprintf(dst, sizeof(dst), NEW "/etc/%s", replaced[i]);
		if (lstat(dst, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
			return ab_error_set(err, errno, "cannot replace '/etc/%s'", replaced[i]);
	}
	return 0;
}

static int build_proc_sys(const struct ab_config *cfg, struct ab_error *err)
{
	char path[PATH_MAX];
	int r;

	if ((r = ab_mkpath_beneath(NEW, "proc", false, err)) < 0)
		return r;
	/* A fresh procfs shows only the sandbox's own processes (new pid namespace). */
	if (mount("proc", NEW "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return ab_error_set(err, errno, "cannot mount a fresh '/proc'");
	if ((r = ab_mkpath_beneath(NEW, "sys", false, err)) < 0)
		return r;
	/* A fresh sysfs needs a network namespace of our own (none or filtered); with the
	 * host's, bind the host's. */
	if (cfg->network == AB_NETWORK_HOST ||
	    mount("sysfs", NEW "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
		if ((r = ab_mount_bind(OLD "/sys", NEW "/sys", AB_ATTR_SYSTEM | MOUNT_ATTR_NOEXEC, err)) < 0)
			return r;
	}
	for (size_t i = 0; i < ab_n_masked_kernel_files; i++)
		if ((r = mask_path(ab_masked_kernel_files[i], false, err)) < 0)
			return r;
	for (size_t i = 0; i < ab_n_masked_kernel_dirs; i++)
		if ((r = mask_path(ab_masked_kernel_dirs[i], true, err)) < 0)
			return r;
	for (size_t i = 0; i < ab_n_readonly_proc_entries; i++) {
		struct stat st;
		if ((r = path_join(path, NEW, ab_readonly_proc_entries[i], err)) < 0)
			return r;
		if (lstat(path, &st) < 0)
			continue;
		if ((r = ab_mount_bind(path, path, AB_ATTR_SYSTEM | MOUNT_ATTR_NOEXEC, err)) < 0)
			return r;
	}
	return 0;
}

static int build_dev(struct ab_error *err)
{
	static const struct {
		const char *name, *target;
	} links[] = {
		{ "ptmx", "pts/ptmx" },	     { "fd", "/proc/self/fd" },	       { "stdin", "/proc/self/fd/0" },
		{ "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" },
	};
	char src[PATH_MAX], dst[PATH_MAX];
	int r;

	if ((r = ab_mkpath_beneath(NEW, "dev", false, err)) < 0 ||
	    (r = ab_mount_tmpfs(NEW "/dev", 65536, 0755, MS_NOSUID | MS_NOEXEC, err)) < 0)
		return r;
	for (size_t i = 0; i < ab_n_device_nodes; i++) {
		snprintf(src, sizeof(src), OLD "/dev/%s", ab_device_nodes[i]);
		snprintf(dst, sizeof(dst), "dev/%s", ab_device_nodes[i]);
		if ((r = ab_mkpath_beneath(NEW, dst, true, err)) < 0)
			return r;
		snprintf(dst, sizeof(dst), NEW "/dev/%s", ab_device_nodes[i]);
		/* Born with the host's /dev flags; a device node is neither run nor set-uid. */
		if ((r = ab_mount_bind(src, dst, 0, err)) < 0)
			return r;
	}
	for (size_t i = 0; i < AB_ELEMENTSOF(links); i++) {
		snprintf(dst, sizeof(dst), NEW "/dev/%s", links[i].name);
		if (symlink(links[i].target, dst) < 0)
			return ab_error_set(err, errno, "cannot create '/dev/%s'", links[i].name);
	}
	/* A private devpts: the sandbox's terminals are its own, the host's are not listed. */
	if ((r = ab_mkpath_beneath(NEW, "dev/pts", false, err)) < 0)
		return r;
	if (mount("devpts", NEW "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		  "newinstance,ptmxmode=0666,mode=0620") < 0)
		return ab_error_set(err, errno, "cannot mount a private '/dev/pts'");
	if ((r = ab_mkpath_beneath(NEW, "dev/shm", false, err)) < 0 ||
	    (r = ab_mount_tmpfs(NEW "/dev/shm", 64ULL << 20, 01777, MS_NOSUID | MS_NODEV | MS_NOEXEC, err)) < 0)
		return r;
	return ab_mount_setattr(NEW "/dev", MOUNT_ATTR_RDONLY, false, err);
}

/* Masked project entries: an empty read-only file or directory over each, found through a
 * walk that never crosses a symlink (an entry the sandbox's own changes turned into a
 * link, or removed, no longer shows the host's file and needs no mask). */
static int mount_masks(const struct ab_config *cfg, struct ab_error *err)
{
	char ws[PATH_MAX];
	_cleanup_close_ int wsfd = -1;
	int r;

	if (cfg->n_mask_hits == 0)
		return 0;
	if ((r = path_join(ws, NEW, cfg->workspace_dest, err)) < 0)
		return r;
	wsfd = open(ws, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (wsfd < 0)
		return ab_error_set(err, errno, "cannot open the workspace to mask its secrets");
	for (size_t i = 0; i < cfg->n_mask_hits; i++) {
		struct open_how how = { .flags = O_PATH | O_CLOEXEC | O_NOFOLLOW,
					.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
		char target[64];
		struct stat st;
		_cleanup_close_ int fd = (int)syscall(SYS_openat2, wsfd, cfg->mask_hits[i].rel, &how, sizeof(how));

		if (fd < 0) {
			if (errno == ENOENT || errno == ELOOP || errno == EXDEV || errno == ENOTDIR)
				continue;
			return ab_error_set(err, errno, "cannot mask '%s'", cfg->mask_hits[i].rel);
		}
		if (fstat(fd, &st) < 0 || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)))
			continue;
		snprintf(target, sizeof(target), OLD "/proc/self/fd/%d", fd);
		if (mount(S_ISDIR(st.st_mode) ? EMPTY_DIR : EMPTY_FILE, target, NULL, MS_BIND, NULL) < 0)
			return ab_error_set(err, errno, "cannot mask '%s'", cfg->mask_hits[i].rel);
	}
	return 0;
}

/* The --disk-limit tmpfs, with the sandbox's changes so far copied in (their cost follows
 * the bytes changed, like a snapshot's). */
static int build_disk(const struct ab_config *cfg, struct ab_error *err)
{
	char src[PATH_MAX];
	int r;

	if (!cfg->limits.disk)
		return 0;
	if ((r = ab_mount_tmpfs(DISK, cfg->limits.disk, 0755, MS_NOSUID | MS_NODEV, err)) < 0)
		return ab_error_wrap(err, "--disk-limit");
	if (cfg->workspace_mode != AB_WORKSPACE_COW)
		return 0;
	if ((r = path_join(src, OLD, cfg->overlay_upper, err)) < 0)
		return r;
	if ((r = ab_copy_tree(src, DISK "/upper", NULL, err)) < 0)
		return ab_error_wrap(err, "the workspace changes do not fit in --disk-limit");
	if (mkdir(DISK "/work", 0700) < 0)
		return ab_error_set(err, errno, "cannot prepare the --disk-limit space");
	disk_upper_fd = open(DISK "/upper", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (disk_upper_fd < 0)
		return ab_error_set(err, errno, "cannot prepare the --disk-limit space");
	return 0;
}

/* A tmpfs-like mount inside the --disk-limit space: a directory of it, bound. */
static int bind_disk_dir(size_t index, unsigned mode, const char *dst, struct ab_error *err)
{
	char dir[64];

	snprintf(dir, sizeof(dir), DISK "/m%zu", index);
	if (mkdir(dir, 0700) < 0 || chmod(dir, mode) < 0)
		return ab_error_set(err, errno, "cannot prepare the --disk-limit space");
	return ab_mount_bind(dir, dst, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, err);
}

static int build_user_mounts(const struct ab_config *cfg, struct ab_error *err)
{
	struct ab_user_mount mounts[AB_MAX_MOUNTS + AB_MAX_TMPFS + 2];
	size_t n = ab_rootfs_user_mounts(cfg, mounts);
	char src[PATH_MAX], dst[PATH_MAX];
	int r;

	for (size_t i = 0; i < n; i++) {
		const struct ab_user_mount *m = &mounts[i];
		bool is_file = false;
		struct stat st;

		if ((r = path_join(dst, NEW, m->dest, err)) < 0)
			return r;
		if (m->source) {
			if ((r = path_join(src, OLD, m->source, err)) < 0)
				return r;
			if (stat(src, &st) < 0)
				return ab_error_set(err, errno, "cannot use '%s'", m->source);
			is_file = !S_ISDIR(st.st_mode);
		}
		if ((r = ab_mkpath_beneath(NEW, m->dest, is_file, err)) < 0)
			return r;
		switch (m->kind) {
		case AB_UMOUNT_TMPFS:
			r = cfg->limits.disk ? bind_disk_dir(i, 01777, dst, err) :
					       ab_mount_tmpfs(dst, m->size_bytes, 01777, MS_NOSUID | MS_NODEV, err);
			break;
		case AB_UMOUNT_HOME:
			r = cfg->limits.disk ? bind_disk_dir(i, 0700, dst, err) :
					       ab_mount_tmpfs(dst, m->size_bytes, 0700, MS_NOSUID | MS_NODEV, err);
			break;
		case AB_UMOUNT_WORKSPACE:
			if (cfg->workspace_mode == AB_WORKSPACE_COW) {
				r = ab_overlay_mount(cfg, OLD, DISK, dst, err);
				break;
			}
			r = ab_mount_bind(src, dst,
					  MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
						  (m->read_only ? MOUNT_ATTR_RDONLY : 0),
					  err);
			break;
		case AB_UMOUNT_BIND:
			r = ab_mount_bind(src, dst,
					  MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (m->read_only ? MOUNT_ATTR_RDONLY : 0),
					  err);
			break;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

int ab_rootfs_build(const struct ab_config *cfg, struct ab_error *err)
{
	int r;

	/* 1. Nothing we mount may propagate to the host. */
	if ((r = ab_mount_make_private(err)) < 0)
		return r;
	/* 2. A scratch tmpfs becomes "/", with the host's tree under OLD: sources are then read
	 *    through OLD even where the sandbox puts its own tmpfs over them (a workspace in /tmp). */
	if ((r = ab_mount_tmpfs("/tmp", 4ULL << 20, 0755, MS_NOSUID | MS_NODEV, err)) < 0)
		return r;
	if (mkdir("/tmp" OLD, 0755) < 0 || mkdir("/tmp" NEW, 0755) < 0 || mkdir("/tmp" EMPTY_DIR, 0555) < 0 ||
	    (cfg->limits.disk && mkdir("/tmp" DISK, 0755) < 0))
		return ab_error_set(err, errno, "cannot prepare the scratch root");
	if (syscall(SYS_pivot_root, "/tmp", "/tmp" OLD) < 0)
		return ab_error_set(err, errno, "cannot pivot into the scratch root");
	if (chdir("/") < 0)
		return ab_error_set(err, errno, "cannot enter the scratch root");
	if ((r = write_scratch_file(EMPTY_FILE, "", err)) < 0 || (r = write_user_database(cfg, err)) < 0)
		return r;
	chmod(EMPTY_FILE, 0444);
	if ((r = ab_mount_setattr("/", AB_ATTR_SYSTEM | MOUNT_ATTR_NOEXEC, false, err)) < 0)
		return r;
	/* 3. The new root: a small tmpfs, read-only once populated. */
	if ((r = ab_mount_tmpfs(NEW, 1ULL << 20, 0755, MS_NOSUID | MS_NODEV, err)) < 0)
		return r;
	/* 4. System tools read-only, then /etc's secrets hidden. */
	if ((r = share_system(cfg, err)) < 0 || (r = build_etc(err)) < 0)
		return r;
	/* 5. Kernel interfaces, devices, then the user's own mounts (tmp, home, workspace, -v). */
	if ((r = build_proc_sys(cfg, err)) < 0 || (r = build_dev(err)) < 0 || (r = build_disk(cfg, err)) < 0 ||
	    (r = build_user_mounts(cfg, err)) < 0 || (r = mount_masks(cfg, err)) < 0)
		return r;
	if ((r = ab_mkpath_beneath(NEW, "run", false, err)) < 0)
		return r;
	if ((r = ab_mount_setattr(NEW, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, false, err)) < 0)
		return r;
	/* 6. Forget the host's tree, then enter the new root. */
	if (umount2(OLD, MNT_DETACH) < 0)
		return ab_error_set(err, errno, "cannot detach the host's root");
	if ((r = ab_pivot_root(NEW, err)) < 0)
		return r;
	if (chdir(cfg->workspace_dest) < 0)
		return ab_error_set(err, errno, "cannot enter the workspace '%s'", cfg->workspace_dest);
	return 0;
}
