/* A fingerprint of a directory tree's metadata: equal fingerprints mean nothing in the
 * tree was created, removed, renamed, written or had its metadata changed in between. */
#ifndef AB_FINGERPRINT_H
#define AB_FINGERPRINT_H

#include <stdint.h>

/* Hashes, for dir itself and every entry beneath it (symlinks not followed): its path,
 * type and mode, owner, size, link count, device, inode number, and modification and
 * change times. *newest_ctime_ns gets the latest change time seen (CLOCK_REALTIME).
 * Returns 0, or -errno (-ELOOP past 256 levels). Cost: one stat per entry, no reads. */
int ab_tree_fingerprint(const char *dir, uint64_t *fingerprint, int64_t *newest_ctime_ns);

/* Whether a fingerprint taken at now_ns (CLOCK_REALTIME) can vouch for the tree later:
 * every change time seen must lie clearly before it. File systems stamp change times
 * with a coarse clock, so a change made within the same tick as an earlier one, just
 * after the fingerprint, could otherwise leave every time as it was. */
int ab_fingerprint_is_reliable(int64_t newest_ctime_ns, int64_t now_ns);

#endif
