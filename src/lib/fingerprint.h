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

/* The same, and the path of every entry it hashed, in the order it did ("" for dir
 * itself, then "/a", "/a/b"...: each NUL-terminated, list_len bytes in all; *list is to be
 * freed). *list is NULL, and the fingerprint still given, when the listing would pass
 * AB_FINGERPRINT_LIST_MAX bytes. */
#define AB_FINGERPRINT_LIST_MAX (8u << 20)
int ab_tree_fingerprint_listed(const char *dir, uint64_t *fingerprint, int64_t *newest_ctime_ns, char **list,
			       size_t *list_len);

/* The fingerprint of the entries a listing names, as they are now: one stat each, no
 * directory read. It equals ab_tree_fingerprint's of the whole tree when it equals the
 * fingerprint the listing was taken with: the directories' times are then unchanged too,
 * and a directory whose entries were added, removed or renamed has a new change time
 * (a reliable fingerprint, below, guarantees a new time). Returns 0, or -errno (-ENOENT:
 * an entry is gone; -EINVAL: not a listing). */
int ab_tree_fingerprint_of_list(const char *dir, const char *list, size_t list_len, uint64_t *fingerprint);

/* Whether a fingerprint taken at now_ns (CLOCK_REALTIME) can vouch for the tree later:
 * every change time seen must lie clearly before it. File systems stamp change times
 * with a coarse clock, so a change made within the same tick as an earlier one, just
 * after the fingerprint, could otherwise leave every time as it was. */
int ab_fingerprint_is_reliable(int64_t newest_ctime_ns, int64_t now_ns);

#endif
