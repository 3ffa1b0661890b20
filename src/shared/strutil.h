/* Small pure string and path helpers; they return -errno and never print. */
#ifndef AB_STRUTIL_H
#define AB_STRUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool ab_startswith(const char *s, const char *prefix);
/* true when path equals dir or lies beneath it ("/a/b" is beneath "/a", "/ab" is not) */
bool ab_path_is_beneath(const char *path, const char *dir);
/* Appends a copy of s to the NULL-terminated vector *v of *n entries. */
int ab_strv_push(char ***v, size_t *n, const char *s);
/* Reads at most max bytes of a file (or of fd, to its end) into a NUL-terminated buffer.
 * -EFBIG when larger. */
int ab_read_fd(int fd, size_t max, char **out, size_t *len);
int ab_read_file(const char *path, size_t max, char **out, size_t *len);
/* Writes the whole buffer to path (O_WRONLY|O_CLOEXEC, no create). */
int ab_write_file(const char *path, const char *buf, size_t len);
/* Like write(2) but retries short writes and EINTR. */
int ab_write_all(int fd, const void *buf, size_t len);
/* FNV-1a, 64 bits, of len bytes, continuing from h (AB_FNV1A64_INIT to start): a fast
 * hash for change checks and file names, not against an adversary. */
#define AB_FNV1A64_INIT 0xcbf29ce484222325ULL
uint64_t ab_fnv1a64(uint64_t h, const void *data, size_t len);

#endif
