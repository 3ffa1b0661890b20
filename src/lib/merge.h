#ifndef AB_MERGE_H
#define AB_MERGE_H

#include <stdbool.h>
#include <stddef.h>

struct ab_buf {
	char *data; /* NUL-terminated */
	size_t len, cap;
};

/* No NUL byte: what the merge and the diffs treat as text. */
bool ab_is_text(const char *s, size_t n);

/* Three-way line merge of host and sandbox against base into out. *conflicts counts the
 * regions both sides changed differently, written between "<<<<<<< host", "=======" and
 * ">>>>>>> sandbox". -EMEDIUMTYPE when a side is not text, -E2BIG when too large. */
int ab_merge3(const char *base, size_t nbase, const char *host, size_t nhost, const char *sbx, size_t nsbx,
	      struct ab_buf *out, size_t *conflicts);

#endif
