/* The line diff on any two buffers: the input splits at its first NUL byte (or in the
 * middle when there is none). Hunks must add up to the counts, and nothing may crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/textdiff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct tally {
	size_t add, del, ctx, hunks;
};

static int count_emit(void *userdata, enum ab_textdiff_line kind, const char *text, size_t len)
{
	struct tally *t = userdata;

	(void)text;
	(void)len;
	switch (kind) {
	case AB_TEXTDIFF_HUNK:
		t->hunks++;
		break;
	case AB_TEXTDIFF_ADD:
		t->add++;
		break;
	case AB_TEXTDIFF_DEL:
		t->del++;
		break;
	case AB_TEXTDIFF_CONTEXT_LINE:
		t->ctx++;
		break;
	case AB_TEXTDIFF_NO_NEWLINE_LINE:
	case AB_TEXTDIFF_TOO_LARGE_LINE:
		break;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *a = (const char *)data, *nul = memchr(data, '\0', size);
	size_t alen = nul ? (size_t)(nul - a) : size / 2;
	const char *b = a + alen + (nul ? 1 : 0);
	size_t blen = size - alen - (nul ? 1 : 0);
	struct ab_textdiff_stats st, st2;
	struct tally t = { 0 };
	char *out = NULL;
	int r = ab_textdiff_unified(a, alen, b, blen, AB_TEXTDIFF_CONTEXT, count_emit, &t, &st);

	if (r == 0 && (t.add != st.insertions || t.del != st.deletions ||
		       ab_textdiff_count_lines(a, alen) - st.deletions !=
			       ab_textdiff_count_lines(b, blen) - st.insertions ||
		       (t.hunks == 0) != (t.add + t.del == 0)))
		__builtin_trap();
	if (ab_textdiff_count(a, alen, b, blen, &st2) != r || st2.insertions != st.insertions ||
	    st2.deletions != st.deletions)
		__builtin_trap();
	if (ab_textdiff_unified_buf(a, alen, b, blen, 0, &out, NULL, NULL) >= 0)
		free(out);
	return 0;
}
