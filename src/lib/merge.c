/* A three-way line merge (diff3) for `apply --merge`: the host's and the sandbox's
 * edits of one base, combined where they do not overlap, between markers where they do. */
#include "merge.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define MAX_LCS_CELLS (8u << 20) /* the changed middle of two files, lines x lines */


struct lines {
	const char **start;
	size_t *len;
	uint64_t *hash;
	size_t n;
};

static void lines_free(struct lines *l)
{
	free(l->start);
	free(l->len);
	free(l->hash);
}

static int lines_split(const char *buf, size_t size, struct lines *l)
{
	size_t n = 0;

	*l = (struct lines){ 0 };
	for (size_t i = 0; i < size; i++)
		if (buf[i] == '\n')
			n++;
	if (size && buf[size - 1] != '\n')
		n++;
	l->start = calloc(n + 1, sizeof(*l->start));
	l->len = calloc(n + 1, sizeof(*l->len));
	l->hash = calloc(n + 1, sizeof(*l->hash));
	if (!l->start || !l->len || !l->hash) {
		lines_free(l);
		return -ENOMEM;
	}
	for (size_t i = 0, s = 0; i < size; i++) {
		if (buf[i] != '\n' && i + 1 < size)
			continue;
		uint64_t h = 1469598103934665603ull;
		l->start[l->n] = buf + s;
		l->len[l->n] = i + 1 - s;
		for (size_t k = s; k <= i; k++)
			h = (h ^ (unsigned char)buf[k]) * 1099511628211ull;
		l->hash[l->n++] = h;
		s = i + 1;
	}
	return 0;
}

static bool line_eq(const struct lines *a, size_t i, const struct lines *b, size_t j)
{
	return a->hash[i] == b->hash[j] && a->len[i] == b->len[j] &&
	       memcmp(a->start[i], b->start[j], a->len[i]) == 0;
}

/* match[i] = the line of b that line i of a is paired with in a longest common
 * subsequence, or -1. -E2BIG when the changed middle is too large to compare. */
static int lcs_match(const struct lines *a, const struct lines *b, ssize_t *match)
{
	size_t pre = 0, suf = 0, na, nb;

	for (size_t i = 0; i < a->n; i++)
		match[i] = -1;
	while (pre < a->n && pre < b->n && line_eq(a, pre, b, pre)) {
		match[pre] = (ssize_t)pre;
		pre++;
	}
	while (suf < a->n - pre && suf < b->n - pre && line_eq(a, a->n - 1 - suf, b, b->n - 1 - suf)) {
		match[a->n - 1 - suf] = (ssize_t)(b->n - 1 - suf);
		suf++;
	}
	na = a->n - pre - suf;
	nb = b->n - pre - suf;
	if (na == 0 || nb == 0)
		return 0;
	if (na > MAX_LCS_CELLS / nb)
		return -E2BIG;
	/* t[i][j]: LCS length of a[pre+i..] and b[pre+j..], filled from the end. */
	uint32_t *t = calloc((na + 1) * (nb + 1), sizeof(uint32_t));
	if (!t)
		return -ENOMEM;
#define T(i, j) t[(i) * (nb + 1) + (j)]
	for (size_t i = na; i-- > 0;)
		for (size_t j = nb; j-- > 0;)
			T(i, j) = line_eq(a, pre + i, b, pre + j) ? T(i + 1, j + 1) + 1
				  : T(i + 1, j) >= T(i, j + 1) ? T(i + 1, j) : T(i, j + 1);
	for (size_t i = 0, j = 0; i < na && j < nb;) {
		if (line_eq(a, pre + i, b, pre + j)) {
			match[pre + i] = (ssize_t)(pre + j);
			i++, j++;
		} else if (T(i + 1, j) >= T(i, j + 1)) {
			i++;
		} else {
			j++;
		}
	}
#undef T
	free(t);
	return 0;
}

static int buf_add(struct ab_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 4096;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		char *g = realloc(b->data, ncap);
		if (!g)
			return -ENOMEM;
		b->data = g;
		b->cap = ncap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static int buf_add_lines(struct ab_buf *b, const struct lines *l, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		int r = buf_add(b, l->start[i], l->len[i]);
		if (r < 0)
			return r;
	}
	/* A last line without a newline must not glue itself to a marker that follows. */
	if (to > from && l->start[to - 1][l->len[to - 1] - 1] != '\n')
		return buf_add(b, "\n", 1);
	return 0;
}

static bool chunk_eq(const struct lines *a, size_t a0, size_t a1, const struct lines *b, size_t b0, size_t b1)
{
	if (a1 - a0 != b1 - b0)
		return false;
	for (size_t i = 0; i < a1 - a0; i++)
		if (!line_eq(a, a0 + i, b, b0 + i))
			return false;
	return true;
}

bool ab_is_text(const char *s, size_t n)
{
	return !memchr(s, '\0', n);
}

/* Three-way line merge of host and sandbox against base. *conflicts counts the regions
 * changed differently on both sides, written between markers. -EMEDIUMTYPE when a side
 * is not text, -E2BIG when too large. */
int ab_merge3(const char *base, size_t nbase, const char *host, size_t nhost, const char *sbx, size_t nsbx,
	      struct ab_buf *out, size_t *conflicts)
{
	struct lines o = { 0 }, a = { 0 }, b = { 0 };
	ssize_t *ma = NULL, *mb = NULL;
	int r;

	*conflicts = 0;
	if (!ab_is_text(base, nbase) || !ab_is_text(host, nhost) || !ab_is_text(sbx, nsbx))
		return -EMEDIUMTYPE;
	if ((r = lines_split(base, nbase, &o)) < 0 || (r = lines_split(host, nhost, &a)) < 0 ||
	    (r = lines_split(sbx, nsbx, &b)) < 0)
		goto done;
	ma = calloc(o.n + 1, sizeof(*ma));
	mb = calloc(o.n + 1, sizeof(*mb));
	if (!ma || !mb) {
		r = -ENOMEM;
		goto done;
	}
	if ((r = lcs_match(&o, &a, ma)) < 0 || (r = lcs_match(&o, &b, mb)) < 0)
		goto done;
	size_t io = 0, ia = 0, ib = 0;
	for (;;) {
		/* The next base line kept by both sides, or the end as a sentinel. */
		size_t k = io;
		while (k < o.n && (ma[k] < 0 || mb[k] < 0))
			k++;
		size_t ea = k < o.n ? (size_t)ma[k] : a.n, eb = k < o.n ? (size_t)mb[k] : b.n;
		bool a_same = chunk_eq(&o, io, k, &a, ia, ea), b_same = chunk_eq(&o, io, k, &b, ib, eb);

		if (a_same)
			r = buf_add_lines(out, &b, ib, eb);
		else if (b_same || chunk_eq(&a, ia, ea, &b, ib, eb))
			r = buf_add_lines(out, &a, ia, ea);
		else {
			(*conflicts)++;
			if ((r = buf_add(out, "<<<<<<< host\n", 13)) >= 0 &&
			    (r = buf_add_lines(out, &a, ia, ea)) >= 0 && (r = buf_add(out, "=======\n", 8)) >= 0 &&
			    (r = buf_add_lines(out, &b, ib, eb)) >= 0)
				r = buf_add(out, ">>>>>>> sandbox\n", 16);
		}
		if (r < 0 || k >= o.n)
			break;
		if ((r = buf_add(out, o.start[k], o.len[k])) < 0)
			break;
		io = k + 1;
		ia = ea + 1;
		ib = eb + 1;
	}
	if (r >= 0 && !out->data)
		r = buf_add(out, "", 0);
done:
	free(ma);
	free(mb);
	lines_free(&o);
	lines_free(&a);
	lines_free(&b);
	return r;
}

