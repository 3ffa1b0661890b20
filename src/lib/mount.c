#include <sys/mount.h>

#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../shared/cleanup.h"

int ab_mount_make_private(struct ab_error *err)
{
	/* Private, so that nothing the sandbox mounts propagates back into the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return ab_error_set(err, errno, "cannot make the mounts of '/' private");
	return 0;
}

int ab_mount_tmpfs(const char *dest, uint64_t size_bytes, unsigned mode, unsigned long flags,
		   struct ab_error *err)
{
	char opts[64];

	snprintf(opts, sizeof(opts), "mode=%04o,size=%" PRIu64, mode, size_bytes);
	if (mount("tmpfs", dest, "tmpfs", flags, opts) < 0)
		return ab_error_set(err, errno, "cannot mount a tmpfs on '%s'", dest);
	return 0;
}

/* The fallback for kernels before 5.12: remount each flag, keeping those the host locked. */
static int remount_legacy(const char *dest, unsigned attr_set, struct ab_error *err)
{
	struct statvfs sv;
	unsigned long flags = MS_BIND | MS_REMOUNT;

	if (statvfs(dest, &sv) < 0)
		return ab_error_set(err, errno, "cannot read the mount flags of '%s'", dest);
	if (sv.f_flag & ST_NOSUID)
		flags |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		flags |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		flags |= MS_NOEXEC;
	if (sv.f_flag & ST_RDONLY)
		flags |= MS_RDONLY;
	if (attr_set & MOUNT_ATTR_RDONLY)
		flags |= MS_RDONLY;
	if (attr_set & MOUNT_ATTR_NOSUID)
		flags |= MS_NOSUID;
	if (attr_set & MOUNT_ATTR_NODEV)
		flags |= MS_NODEV;
	if (attr_set & MOUNT_ATTR_NOEXEC)
		flags |= MS_NOEXEC;
	if (mount(NULL, dest, NULL, flags, NULL) < 0)
		return ab_error_set(err, errno, "cannot restrict the mount '%s'", dest);
	return 0;
}

int ab_mount_setattr(const char *dest, unsigned attr_set, bool recursive, struct ab_error *err)
{
	struct mount_attr attr = { .attr_set = attr_set };

	if (!attr_set)
		return 0;
	if (syscall(SYS_mount_setattr, AT_FDCWD, dest, recursive ? AT_RECURSIVE : 0, &attr,
		    sizeof(attr)) == 0)
		return 0;
	if (errno == ENOSYS)
		return remount_legacy(dest, attr_set, err);
	return ab_error_set(err, errno, "cannot restrict the mount '%s'", dest);
}

int ab_mount_bind(const char *src, const char *dest, unsigned attr_set, struct ab_error *err)
{
	if (mount(src, dest, NULL, MS_BIND | MS_REC, NULL) < 0)
		return ab_error_set(err, errno, "cannot bind '%s' on '%s'", src, dest);
	return ab_mount_setattr(dest, attr_set, true, err);
}

int ab_mkpath_beneath(const char *root, const char *rel, bool as_file, struct ab_error *err)
{
	_cleanup_close_ int dirfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	char comp[256];
	const char *p = rel;

	while (*rel == '/') /* messages show the path as "/rel", with one slash */
		rel++;
	p = rel;
	if (dirfd < 0)
		return ab_error_set(err, errno, "cannot open '%s'", root);
	while (*p) {
		const char *end;
		size_t n;
		int next;
		bool last;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		end = strchr(p, '/');
		if (!end)
			end = p + strlen(p);
		n = (size_t)(end - p);
		if (n >= sizeof(comp))
			return ab_error_set(err, ENAMETOOLONG, "cannot create mount point '/%s'", rel);
		memcpy(comp, p, n);
		comp[n] = '\0';
		p = end;
		while (*p == '/')
			p++;
		last = *p == '\0';
		if (strcmp(comp, "..") == 0 || strcmp(comp, ".") == 0)
			return ab_error_set(err, EINVAL, "cannot create mount point '/%s'", rel);

		if (last && as_file) {
			next = openat(dirfd, comp, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0444);
			if (next < 0 && errno == EEXIST)
				next = openat(dirfd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
			if (next < 0)
				return ab_error_set(err, errno, "cannot create mount point '/%s'", rel);
			close(next);
			return 0;
		}
		if (mkdirat(dirfd, comp, 0755) < 0 && errno != EEXIST)
			return ab_error_set(err, errno, "cannot create mount point '/%s'", rel);
		next = openat(dirfd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			if (errno == ENOTDIR || errno == ELOOP)
				return ab_error_set(err, 0,
						    "cannot create mount point '/%s': '%s' is a symlink or a file in the sandbox's root",
						    rel, comp);
			return ab_error_set(err, errno, "cannot create mount point '/%s'", rel);
		}
		close(dirfd);
		dirfd = next;
	}
	return 0;
}

int ab_pivot_root(const char *newroot, struct ab_error *err)
{
	/* pivot_root(".", ".") stacks the old root on top of the new one; detaching it then
	 * leaves nothing of the host's tree reachable, without needing a directory for it. */
	if (chdir(newroot) < 0)
		return ab_error_set(err, errno, "cannot enter the new root '%s'", newroot);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return ab_error_set(err, errno, "cannot pivot into the new root '%s'", newroot);
	if (umount2(".", MNT_DETACH) < 0)
		return ab_error_set(err, errno, "cannot detach the old root");
	if (chdir("/") < 0)
		return ab_error_set(err, errno, "cannot enter '/'");
	return 0;
}
