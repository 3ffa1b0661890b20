/* Manifest files: any bytes load as a manifest or fail with a message, never a crash.
 * The input lives in a memfd, loaded through its /proc/self/fd path, so a run never
 * waits for a disk. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/workspace.h"
#include "shared/strutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	struct ab_manifest_entry *entries = NULL;
	struct ab_error err;
	size_t n = 0;

	if (fd < 0) {
		fd = memfd_create("fuzz-manifest", MFD_CLOEXEC);
		if (fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0 || ab_write_all(fd, data, size) < 0)
		abort();
	if (ab_manifest_load(path, &entries, &n, &err) == 0) {
		/* what loads is sorted, so every entry is found again */
		for (size_t i = 0; i < n; i++)
			if (ab_manifest_find(entries, n, entries[i].path) != &entries[i])
				abort();
		ab_manifest_free(entries, n);
	}
	return 0;
}
