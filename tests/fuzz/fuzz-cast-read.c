/* Recordings: any bytes, as one event line or as a whole file, parse or are skipped,
 * never a crash; and any bytes written as output read back as valid UTF-8, exactly the
 * bytes themselves when they were valid UTF-8. The files live in a private directory
 * under /dev/shm when there is one, so a run never waits for a disk. */
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/cast.h"
#include "shared/strutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], file_path[96], rec_path[96];

static void cleanup(void)
{
	char old[128];

	unlink(file_path);
	unlink(rec_path);
	snprintf(old, sizeof(old), "%s.1", rec_path);
	unlink(old);
	rmdir(dir);
}

static bool setup(void)
{
	if (dir[0])
		return true;
	snprintf(dir, sizeof(dir), "%s/fuzz-cast.XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(dir))
		return false;
	snprintf(file_path, sizeof(file_path), "%s/in.cast", dir);
	snprintf(rec_path, sizeof(rec_path), "%s/rec.cast", dir);
	atexit(cleanup);
	return true;
}

struct acc {
	uint8_t *p;
	size_t len, cap;
};

static int collect(const void *data, size_t len, void *ctx)
{
	struct acc *a = ctx;

	if (!len)
		__builtin_trap();
	if (a->len + len > a->cap) {
		size_t cap = (a->len + len) * 2;
		uint8_t *grown = realloc(a->p, cap);
		if (!grown)
			return -1;
		a->p = grown;
		a->cap = cap;
	}
	memcpy(a->p + a->len, data, len);
	a->len += len;
	return 0;
}

static bool valid_utf8(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint8_t c = p[i];
		size_t k;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			k = 1, cp = c & 0x1f;
		else if ((c & 0xf0) == 0xe0)
			k = 2, cp = c & 0x0f;
		else if ((c & 0xf8) == 0xf0)
			k = 3, cp = c & 0x07;
		else
			return false;
		if (i + k >= n)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + j] & 0x3f);
		}
		if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

static bool write_file(const char *path, const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int r;

	if (fd < 0)
		return false;
	r = ab_write_all(fd, data, size);
	close(fd);
	return r == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ab_cast_writer *w = NULL;
	struct ab_error err;
	struct acc got = { 0 };
	char *event = NULL, type;
	size_t len;
	double t;

	/* one line */
	if (ab_cast_parse_event((const char *)data, size, &t, &type, &event, &len) == 0) {
		if (!isfinite(t) || t < 0 || type <= ' ' || type >= 0x7f || len > size || event[len] != '\0')
			__builtin_trap();
		free(event);
	}
	if (!setup())
		abort();

	/* a whole file, read with and without a time filter */
	if (!write_file(file_path, data, size))
		abort();
	ab_cast_read(file_path, 0, false, collect, NULL, &got, &err);
	got.len = 0;
	ab_cast_read(file_path, size ? (int64_t)data[0] * 1000 : 0, false, collect, NULL, &got, &err);
	got.len = 0;

	/* the bytes as terminal output, written in two pieces, read back */
	if (ab_cast_open(&w, rec_path, 80, 24, "xterm", size > 2 && data[1] < 16 ? 4096 : 0, &err) < 0)
		abort();
	size_t cut = size ? data[0] % (size + 1) : 0;
	if (ab_cast_output(w, data, cut) < 0 || ab_cast_output(w, data + cut, size - cut) < 0)
		abort();
	ab_cast_close(w);
	if (ab_cast_read(rec_path, 0, false, collect, NULL, &got, &err) < 0)
		__builtin_trap();
	if (!valid_utf8(got.p, got.len))
		__builtin_trap();
	/* unbounded, valid UTF-8 reads back exactly */
	if (!(size > 2 && data[1] < 16) && valid_utf8(data, size) &&
	    (got.len != size || (size && memcmp(got.p, data, size) != 0)))
		__builtin_trap();
	free(got.p);
	return 0;
}
