/* The copy-on-write workspace: the project is the read-only lower layer, and the run's own
 * layer (layer.h) the upper directory, which takes every change; between the two, the
 * sandbox's earlier changes are a read-only layer of their own. "userxattr" because the
 * mount is made inside a user namespace, where overlay keeps its markers in
 * user.overlay.* attributes.
 *
 * Creating an overlay superblock costs most of a millisecond on an ordinary disk, nearly
 * all of it the kernel probing the work directory (it removes and recreates work/work and
 * makes and deletes a temporary file and a whiteout). On the start-up path that would be
 * most of what a copy-on-write workspace costs over a plain bind, so the superblock is
 * created with the mount API (fsopen, fsconfig, fsmount) by a helper task started first
 * thing in the new namespaces. It runs while the network and the other mounts are set up;
 * the root's builder then only attaches the finished mount (move_mount).
 *
 * The helper shares the memory and the descriptor table (CLONE_VM | CLONE_FILES) and is
 * reaped before the builder goes on past the workspace, long before the process changes
 * its credentials or installs any filter. It makes two system calls through its own
 * syscall instruction and touches nothing else: no libc (errno and every other thread-local
 * are the main task's), no sanitizer bookkeeping. Where that instruction is not written
 * here (architectures other than x86-64 and arm64, or a build with -DAB_NO_OVERLAY_HELPER,
 * which measures what the helper saves), the overlay is mounted in line.
 *
 * The layers are set before the helper starts, before the builder mounts its scratch root
 * over /tmp or pivots, so the helper resolves nothing: by descriptors of the directories
 * where overlayfs takes them (Linux 6.13 and later), else by their host paths, which
 * fsconfig looks up at once.
 *
 * The helper is a process of the sandbox's pid namespace, so it takes a pid there; once it
 * is reaped the namespace's pid counter is set back (ns_last_pid, which the sandbox's init
 * may write: it holds CAP_SYS_ADMIN in the user namespace that owns the pid namespace), so
 * the command is still pid 2, as in every sandbox. Where that counter cannot be written
 * (no CONFIG_CHECKPOINT_RESTORE, a read-only /proc/sys), no helper is started: the
 * superblock is created in line. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "overlay.h"

#if (defined(__x86_64__) || defined(__aarch64__)) && !defined(AB_NO_OVERLAY_HELPER)
#define HAVE_HELPER 1
#else
#define HAVE_HELPER 0
#endif

#define HELPER_STACK (64u * 1024)

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

/* The overlay being built: one per sandbox process, so plain static state. The helper
 * writes mnt_fd and error; the main task reads them after reaping it. */
static struct {
	bool begun;           /* ab_overlay_begin took it on: ab_overlay_mount finishes it */
	pid_t helper;         /* > 0: the helper runs, to be reaped */
	int last_pid_fd;      /* /proc/sys/kernel/ns_last_pid, to give pid 2 back */
	void *stack;
	int fs_fd;            /* the filesystem context, its layers set */
	volatile int mnt_fd;  /* the result: the detached mount */
	volatile int error;   /* or the errno that stopped it */
} pending = { .fs_fd = -1, .mnt_fd = -1, .last_pid_fd = -1 };

/* Sets the pid namespace's last pid to 1, so that the next process gets pid 2. */
static bool reset_last_pid(int fd)
{
	return pwrite(fd, "1", 1, 0) == 1;
}

#if HAVE_HELPER
/* A system call without libc: the helper must not write the main task's errno. Returns
 * the kernel's value (-errno on failure). */
__attribute__((no_sanitize("address", "undefined"), always_inline)) static inline long
raw_syscall5(long nr, long a, long b, long c, long d, long e)
{
	long ret;
#if defined(__x86_64__)
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
#else
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
	ret = x0;
#endif
	return ret;
}

__attribute__((no_sanitize("address", "undefined"))) static int create_superblock(void *unused)
{
	long r;

	(void)unused;
	r = raw_syscall5(SYS_fsconfig, pending.fs_fd, FSCONFIG_CMD_CREATE, 0, 0, 0);
	if (r < 0) {
		pending.error = (int)-r;
		return 1;
	}
	r = raw_syscall5(SYS_fsmount, pending.fs_fd, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0);
	if (r < 0) {
		pending.error = (int)-r;
		return 1;
	}
	pending.mnt_fd = (int)r;
	return 0;
}
#endif

#if HAVE_HELPER
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
#endif

void ab_overlay_begin(const struct ab_config *cfg)
{
	if (!HAVE_HELPER || cfg->workspace_mode != AB_WORKSPACE_COW || cfg->limits.disk || !cfg->workspace ||
	    !cfg->overlay_upper || !cfg->overlay_work)
		return;
#if HAVE_HELPER
	pending.fs_fd = fsopen("overlay", FSOPEN_CLOEXEC);
	if (pending.fs_fd < 0)
		return; /* no mount API here: ab_overlay_mount falls back to mount(2) */
	pending.begun = true;
	/* A layer refused here is reported by ab_overlay_mount, in the kernel's words. */
	if (fsconfig(pending.fs_fd, FSCONFIG_SET_STRING, "source", "overlay", 0) < 0 ||
	    set_lowers(pending.fs_fd, cfg) < 0 ||
	    set_dir_layer(pending.fs_fd, "upperdir", "upperdir", cfg->overlay_upper) < 0 ||
	    set_dir_layer(pending.fs_fd, "workdir", "workdir", cfg->overlay_work) < 0 ||
	    fsconfig(pending.fs_fd, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) < 0) {
		pending.error = errno;
		return;
	}
	/* Only the init exists in the namespace yet: writing 1 changes nothing, and proves
	 * that the counter can be set back after the helper. */
	pending.last_pid_fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
	if (pending.last_pid_fd < 0 || !reset_last_pid(pending.last_pid_fd))
		return; /* ab_overlay_mount creates it in line */
	pending.stack = mmap(NULL, HELPER_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
			     -1, 0);
	if (pending.stack == MAP_FAILED) {
		pending.stack = NULL;
		return; /* ab_overlay_mount creates it in line */
	}
	pending.helper = clone(create_superblock, (char *)pending.stack + HELPER_STACK,
			       CLONE_VM | CLONE_FILES | SIGCHLD, NULL);
	if (pending.helper > 0)
		return;
	pending.helper = 0;
	munmap(pending.stack, HELPER_STACK);
	pending.stack = NULL;
#endif
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
	int status, r = 0;

	if (!pending.begun)
		return mount_classic(cfg, old_root, disk_root, dst, err);
	pending.begun = false;
	if (pending.helper > 0) {
		while (waitpid(pending.helper, &status, 0) < 0 && errno == EINTR)
			;
		pending.helper = 0;
		munmap(pending.stack, HELPER_STACK);
		pending.stack = NULL;
		(void)reset_last_pid(pending.last_pid_fd);
	}
#if HAVE_HELPER
	else if (!pending.error)
		(void)create_superblock(NULL); /* no helper could be started: in line */
#endif
	if (pending.mnt_fd < 0) {
		context_message(pending.fs_fd, why, sizeof(why));
		r = ab_error_set(err, pending.error ? pending.error : EIO,
				 "cannot mount the copy-on-write workspace '%s' (overlayfs%s)", cfg->workspace, why);
	} else if (move_mount(pending.mnt_fd, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
		r = ab_error_set(err, errno, "cannot attach the copy-on-write workspace '%s' on '%s'",
				 cfg->workspace, dst);
	}
	if (pending.mnt_fd >= 0)
		close(pending.mnt_fd);
	if (pending.last_pid_fd >= 0)
		close(pending.last_pid_fd);
	close(pending.fs_fd);
	pending.mnt_fd = pending.fs_fd = pending.last_pid_fd = -1;
	return r;
}
