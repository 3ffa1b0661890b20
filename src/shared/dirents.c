#include "dirents.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

int ab_dir_for_each(int fd, int (*fn)(const char *name, unsigned char d_type, void *data), void *data)
{
	char buf[4096] __attribute__((aligned(8)));

	for (;;) {
		long got = syscall(SYS_getdents64, fd, buf, sizeof(buf));

		if (got < 0)
			return -errno;
		if (got == 0)
			return 0;
		for (long off = 0; off < got;) {
			const struct linux_dirent64 *de = (const void *)(buf + off);
			int r;

			off += de->d_reclen;
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if ((r = fn(de->d_name, de->d_type, data)) != 0)
				return r;
		}
	}
}
