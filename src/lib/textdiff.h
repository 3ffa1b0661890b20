/* A line diff of two text buffers, as unified hunks ("@@ -a,b +c,d @@", GNU conventions:
 * ",1" is left out, and an empty range names the line before it). Pure: no I/O, no globals.
 *
 * Lines are compared by their bytes including the "\n", so a last line without one differs
 * from the same line with one, and "\ No newline at end of file" follows it in the output.
 * The edit script is Myers' greedy O(ND) search, exact up to AB_TEXTDIFF_MAX_COST edits
 * per stretch; beyond that it keeps the path that got furthest and searches on from there
 * (a valid diff, possibly not the shortest), so time stays near O((N+M) * MAX_COST). */
#ifndef AB_TEXTDIFF_H
#define AB_TEXTDIFF_H

#include <stdbool.h>
#include <stddef.h>

#define AB_TEXTDIFF_MAX_BYTES (8u << 20) /* per side */
#define AB_TEXTDIFF_MAX_LINES 200000     /* per side */
#define AB_TEXTDIFF_MAX_COST 1024
#define AB_TEXTDIFF_CONTEXT 3
#define AB_TEXTDIFF_TOO_LARGE "files differ (too large to show)"
#define AB_TEXTDIFF_NO_NEWLINE "\\ No newline at end of file"

enum ab_textdiff_line {
	AB_TEXTDIFF_HUNK,       /* "@@ -a,b +c,d @@" */
	AB_TEXTDIFF_CONTEXT_LINE, /* text of an unchanged line, without prefix or "\n" */
	AB_TEXTDIFF_DEL,        /* text of a removed line */
	AB_TEXTDIFF_ADD,        /* text of an added line */
	AB_TEXTDIFF_NO_NEWLINE_LINE, /* AB_TEXTDIFF_NO_NEWLINE, after the line it is about */
	AB_TEXTDIFF_TOO_LARGE_LINE,  /* AB_TEXTDIFF_TOO_LARGE: the only line, nothing else */
};

struct ab_textdiff_stats {
	size_t insertions, deletions;
	bool too_large; /* over a cap: no hunks, counts are 0 */
};

/* Receives one output line: `text` (len bytes, not NUL-terminated, may hold any byte) is
 * the line without its "+"/"-"/" " prefix and without "\n". A negative return stops the
 * diff and is returned by ab_textdiff_unified. */
typedef int (*ab_textdiff_emit_fn)(void *userdata, enum ab_textdiff_line kind, const char *text,
				   size_t len);

/* Diffs a (old) against b (new) with `context` lines around changes. Returns 0, or 1 when
 * a side is over a cap (one AB_TEXTDIFF_TOO_LARGE_LINE emitted), or -ENOMEM, or what emit
 * returned. stats may be NULL. Identical inputs emit nothing. */
int ab_textdiff_unified(const char *a, size_t alen, const char *b, size_t blen, unsigned context,
			ab_textdiff_emit_fn emit, void *userdata, struct ab_textdiff_stats *stats);

/* Only the counts (no hunks are built). Returns 0, 1 when too large, or -ENOMEM. */
int ab_textdiff_count(const char *a, size_t alen, const char *b, size_t blen,
		      struct ab_textdiff_stats *stats);

/* The whole unified text ("+"/"-"/" " prefixes, "\n" after each line) into a new
 * NUL-terminated buffer; "" when equal, AB_TEXTDIFF_TOO_LARGE "\n" when too large.
 * Returns as ab_textdiff_unified. */
int ab_textdiff_unified_buf(const char *a, size_t alen, const char *b, size_t blen,
			    unsigned context, char **out, size_t *out_len,
			    struct ab_textdiff_stats *stats);

/* Lines in a buffer (a last line without "\n" counts). */
size_t ab_textdiff_count_lines(const char *buf, size_t len);

#endif
