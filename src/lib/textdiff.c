#include "textdiff.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../shared/cleanup.h"
#include "../shared/strutil.h"

struct line {
	const char *p;
	size_t len; /* with the "\n" when there is one */
};

struct side {
	struct line *lines;
	unsigned *ids; /* equal lines have equal ids */
	char *changed; /* 1: deleted (old side) or inserted (new side) */
	size_t n;
};

static void side_free(struct side *s)
{
	free(s->lines);
	free(s->ids);
	free(s->changed);
}

size_t ab_textdiff_count_lines(const char *buf, size_t len)
{
	size_t n = 0;

	for (const char *p = buf, *end = buf + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		n++;
		p = nl ? nl + 1 : end;
	}
	return n;
}

/* Returns 0, 1 when over a cap, or -ENOMEM. */
static int split_lines(const char *buf, size_t len, struct side *s)
{
	size_t n;

	if (len > AB_TEXTDIFF_MAX_BYTES)
		return 1;
	n = ab_textdiff_count_lines(buf, len);
	if (n > AB_TEXTDIFF_MAX_LINES)
		return 1;
	s->lines = calloc(n ? n : 1, sizeof(*s->lines));
	s->ids = calloc(n ? n : 1, sizeof(*s->ids));
	s->changed = calloc(n ? n : 1, 1);
	if (!s->lines || !s->ids || !s->changed)
		return -ENOMEM;
	s->n = 0;
	for (const char *p = buf, *end = buf + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *next = nl ? nl + 1 : end;
		s->lines[s->n++] = (struct line){ p, (size_t)(next - p) };
		p = next;
	}
	return 0;
}

static uint64_t line_hash(const struct line *l)
{
	return ab_fnv1a64(AB_FNV1A64_INIT, l->p, l->len);
}

/* Gives every distinct line of both sides a small integer, so the search compares ints. */
static int assign_ids(struct side *a, struct side *b)
{
	size_t total = a->n + b->n, cap = 16;
	struct slot {
		uint64_t hash;
		const struct line *line; /* NULL: empty slot */
		unsigned id;
	};
	_cleanup_free_ struct slot *table = NULL;
	unsigned next_id = 0;

	while (cap < total * 2)
		cap <<= 1;
	table = calloc(cap, sizeof(*table));
	if (!table)
		return -ENOMEM;
	for (int pass = 0; pass < 2; pass++) {
		struct side *s = pass == 0 ? a : b;
		for (size_t i = 0; i < s->n; i++) {
			const struct line *l = &s->lines[i];
			uint64_t h = line_hash(l);
			size_t at = (size_t)h & (cap - 1);

			for (;; at = (at + 1) & (cap - 1)) {
				struct slot *sl = &table[at];
				if (!sl->line) {
					*sl = (struct slot){ h, l, next_id++ };
					break;
				}
				if (sl->hash == h && sl->line->len == l->len &&
				    memcmp(sl->line->p, l->p, l->len) == 0)
					break;
			}
			s->ids[i] = table[at].id;
		}
	}
	return 0;
}

/* ---- the search ----
 * Coordinates are relative to the stretch being searched: x counts old lines, y new
 * lines, diagonal k = x - y. Row d of the trace holds, for k = -d, -d+2, ..., d, the
 * furthest x reachable on diagonal k with d edits, or -1 when k cannot be reached. */
struct search {
	const unsigned *a, *b; /* the stretch */
	int n, m;
	int *trace;
};

static inline int *trace_row(const struct search *s, int d)
{
	return s->trace + (size_t)d * (size_t)(d + 1) / 2;
}

static inline int trace_get(const struct search *s, int d, int k)
{
	if (k < -d || k > d)
		return -1;
	return trace_row(s, d)[(k + d) / 2];
}

/* The best first point on diagonal k after d edits, from row d-1: a move down (an
 * inserted line) from diagonal k+1, or right (a deleted line) from k-1, staying inside
 * the box. Returns x or -1; *down tells which move. Backtracking calls it again, so the
 * choice is made in one place. */
static int search_step(const struct search *s, int d, int k, bool *down)
{
	int from_down = trace_get(s, d - 1, k + 1);
	int from_right = trace_get(s, d - 1, k - 1);
	int xd = -1, xr = -1;

	if (from_down >= 0 && from_down - (k + 1) < s->m)
		xd = from_down;
	if (from_right >= 0 && from_right < s->n)
		xr = from_right + 1;
	*down = xd >= xr;
	return *down ? xd : xr;
}

static int search_snake(const struct search *s, int x, int k)
{
	int y = x - k;

	while (x < s->n && y < s->m && s->a[x] == s->b[y]) {
		x++;
		y++;
	}
	return x;
}

/* Searches from (0,0) towards (n,m), at most max_cost edits. Marks the edits of the path
 * found in del/add (relative to the stretch) and returns how far it got in *ex, *ey. */
static void search_run(struct search *s, int max_cost, char *del, char *add, int *ex, int *ey)
{
	int end_d = -1, end_k = 0;

	trace_row(s, 0)[0] = search_snake(s, 0, 0);
	if (trace_row(s, 0)[0] == s->n && s->n == s->m) {
		end_d = 0;
	}
	for (int d = 1; end_d < 0 && d <= max_cost; d++) {
		int *row = trace_row(s, d);
		for (int k = -d; k <= d; k += 2) {
			bool down;
			int x = search_step(s, d, k, &down);

			if (x >= 0)
				x = search_snake(s, x, k);
			row[(k + d) / 2] = x;
			if (x == s->n && x - k == s->m) {
				end_d = d;
				end_k = k;
				break;
			}
		}
	}
	if (end_d < 0) {
		/* Too expensive: keep the path that got furthest, the caller goes on from there. */
		int best = -1;
		end_d = max_cost;
		for (int k = -end_d; k <= end_d; k += 2) {
			int x = trace_get(s, end_d, k);
			if (x >= 0 && 2 * x - k > best) {
				best = 2 * x - k;
				end_k = k;
			}
		}
	}
	*ex = trace_get(s, end_d, end_k);
	*ey = *ex - end_k;
	for (int d = end_d, k = end_k; d > 0; d--) {
		bool down;
		int xp;

		search_step(s, d, k, &down);
		if (down) {
			xp = trace_get(s, d - 1, k + 1);
			add[xp - (k + 1)] = 1;
			k++;
		} else {
			xp = trace_get(s, d - 1, k - 1);
			del[xp] = 1;
			k--;
		}
	}
}

static int diff_sides(struct side *a, struct side *b)
{
	size_t x0 = 0, y0 = 0, xend = a->n, yend = b->n;
	_cleanup_free_ int *trace = NULL;
	size_t trace_cap = 0;

	while (x0 < xend && y0 < yend && a->ids[x0] == b->ids[y0]) {
		x0++;
		y0++;
	}
	while (xend > x0 && yend > y0 && a->ids[xend - 1] == b->ids[yend - 1]) {
		xend--;
		yend--;
	}
	while (x0 < xend || y0 < yend) {
		struct search s;
		int max_cost, ex, ey;
		size_t need;

		if (x0 == xend || y0 == yend) {
			memset(a->changed + x0, 1, xend - x0);
			memset(b->changed + y0, 1, yend - y0);
			break;
		}
		s = (struct search){ a->ids + x0, b->ids + y0, (int)(xend - x0), (int)(yend - y0), NULL };
		max_cost = s.n + s.m < AB_TEXTDIFF_MAX_COST ? s.n + s.m : AB_TEXTDIFF_MAX_COST;
		need = (size_t)(max_cost + 1) * (size_t)(max_cost + 2) / 2;
		if (need > trace_cap) {
			free(trace);
			trace = malloc(need * sizeof(int));
			if (!trace)
				return -ENOMEM;
			trace_cap = need;
		}
		s.trace = trace;
		search_run(&s, max_cost, a->changed + x0, b->changed + y0, &ex, &ey);
		x0 += (size_t)ex;
		y0 += (size_t)ey;
	}
	return 0;
}

/* Both sides split, numbered and diffed. Returns 0, 1 when too large, -ENOMEM. */
static int diff_buffers(const char *a, size_t alen, const char *b, size_t blen, struct side *sa,
			struct side *sb, struct ab_textdiff_stats *stats)
{
	int r;

	*stats = (struct ab_textdiff_stats){ 0 };
	r = split_lines(a, alen, sa);
	if (r == 0)
		r = split_lines(b, blen, sb);
	if (r == 1)
		stats->too_large = true;
	if (r != 0)
		return r;
	r = assign_ids(sa, sb);
	if (r == 0)
		r = diff_sides(sa, sb);
	if (r < 0)
		return r;
	for (size_t i = 0; i < sa->n; i++)
		stats->deletions += (size_t)sa->changed[i];
	for (size_t j = 0; j < sb->n; j++)
		stats->insertions += (size_t)sb->changed[j];
	return 0;
}

int ab_textdiff_count(const char *a, size_t alen, const char *b, size_t blen,
		      struct ab_textdiff_stats *stats)
{
	struct side sa = { 0 }, sb = { 0 };
	struct ab_textdiff_stats local;
	int r = diff_buffers(a, alen, b, blen, &sa, &sb, stats ? stats : &local);

	side_free(&sa);
	side_free(&sb);
	return r;
}

/* ---- hunks ---- */
struct op {
	char kind; /* ' ', '-', '+' */
	size_t i, j; /* positions in old and new when the op is reached */
};

static int emit_line(const struct line *l, enum ab_textdiff_line kind, ab_textdiff_emit_fn emit,
		     void *userdata)
{
	bool nl = l->len && l->p[l->len - 1] == '\n';
	int r = emit(userdata, kind, l->p, nl ? l->len - 1 : l->len);

	if (r >= 0 && !nl)
		r = emit(userdata, AB_TEXTDIFF_NO_NEWLINE_LINE, AB_TEXTDIFF_NO_NEWLINE,
			 strlen(AB_TEXTDIFF_NO_NEWLINE));
	return r;
}

static void format_range(char *buf, size_t size, char sign, size_t start, size_t count)
{
	/* GNU unified format: an empty range names the line before it; ",1" is implied. */
	if (count == 1)
		snprintf(buf, size, "%c%zu", sign, start + 1);
	else
		snprintf(buf, size, "%c%zu,%zu", sign, count ? start + 1 : start, count);
}

static int emit_hunks(const struct side *a, const struct side *b, unsigned context,
		      ab_textdiff_emit_fn emit, void *userdata)
{
	_cleanup_free_ struct op *ops = malloc((a->n + b->n + 1) * sizeof(*ops));
	size_t n_ops = 0, i = 0, j = 0, at = 0;

	if (!ops)
		return -ENOMEM;
	while (i < a->n || j < b->n) {
		char kind;
		if (i < a->n && a->changed[i])
			kind = '-';
		else if (j < b->n && b->changed[j])
			kind = '+';
		else if (i < a->n && j < b->n)
			kind = ' ';
		else
			return -EINVAL; /* not a valid alignment: cannot happen */
		ops[n_ops++] = (struct op){ kind, i, j };
		if (kind != '+')
			i++;
		if (kind != '-')
			j++;
	}
	for (;;) {
		size_t first, last, start, end, ca = 0, cb = 0;
		char head[96], ra[40], rb[40];
		int r;

		while (at < n_ops && ops[at].kind == ' ')
			at++;
		if (at == n_ops)
			return 0;
		first = last = at;
		/* Merge the next change while the unchanged gap would overlap both contexts. */
		for (size_t k = last + 1; k < n_ops; k++) {
			if (ops[k].kind == ' ')
				continue;
			if (k - last - 1 > 2 * (size_t)context)
				break;
			last = k;
		}
		/* The previous hunk ended more than `context` before `first` (it was not merged). */
		start = first > context ? first - context : 0;
		end = last + 1 + context < n_ops ? last + 1 + context : n_ops;
		for (size_t k = start; k < end; k++) {
			ca += ops[k].kind != '+';
			cb += ops[k].kind != '-';
		}
		format_range(ra, sizeof(ra), '-', ops[start].i, ca);
		format_range(rb, sizeof(rb), '+', ops[start].j, cb);
		snprintf(head, sizeof(head), "@@ %s %s @@", ra, rb);
		r = emit(userdata, AB_TEXTDIFF_HUNK, head, strlen(head));
		for (size_t k = start; r >= 0 && k < end; k++) {
			if (ops[k].kind == '+')
				r = emit_line(&b->lines[ops[k].j], AB_TEXTDIFF_ADD, emit, userdata);
			else
				r = emit_line(&a->lines[ops[k].i],
					      ops[k].kind == '-' ? AB_TEXTDIFF_DEL : AB_TEXTDIFF_CONTEXT_LINE,
					      emit, userdata);
		}
		if (r < 0)
			return r;
		at = end;
	}
}

int ab_textdiff_unified(const char *a, size_t alen, const char *b, size_t blen, unsigned context,
			ab_textdiff_emit_fn emit, void *userdata, struct ab_textdiff_stats *stats)
{
	struct side sa = { 0 }, sb = { 0 };
	struct ab_textdiff_stats local;
	int r = diff_buffers(a, alen, b, blen, &sa, &sb, stats ? stats : &local);

	if (r == 1) {
		int e = emit(userdata, AB_TEXTDIFF_TOO_LARGE_LINE, AB_TEXTDIFF_TOO_LARGE,
			     strlen(AB_TEXTDIFF_TOO_LARGE));
		if (e < 0)
			r = e;
	} else if (r == 0) {
		r = emit_hunks(&sa, &sb, context, emit, userdata);
	}
	side_free(&sa);
	side_free(&sb);
	return r;
}

struct growbuf {
	char *p;
	size_t len, cap;
};

static int growbuf_add(struct growbuf *g, const char *s, size_t n)
{
	if (g->len + n + 1 > g->cap) {
		size_t cap = g->cap ? g->cap : 256;
		char *p;
		while (cap < g->len + n + 1)
			cap *= 2;
		p = realloc(g->p, cap);
		if (!p)
			return -ENOMEM;
		g->p = p;
		g->cap = cap;
	}
	memcpy(g->p + g->len, s, n);
	g->len += n;
	g->p[g->len] = '\0';
	return 0;
}

static int buf_emit(void *userdata, enum ab_textdiff_line kind, const char *text, size_t len)
{
	struct growbuf *g = userdata;
	const char *prefix = "";
	int r;

	switch (kind) {
	case AB_TEXTDIFF_CONTEXT_LINE:
		prefix = " ";
		break;
	case AB_TEXTDIFF_DEL:
		prefix = "-";
		break;
	case AB_TEXTDIFF_ADD:
		prefix = "+";
		break;
	case AB_TEXTDIFF_HUNK:
	case AB_TEXTDIFF_NO_NEWLINE_LINE:
	case AB_TEXTDIFF_TOO_LARGE_LINE:
		break;
	}
	r = growbuf_add(g, prefix, strlen(prefix));
	if (r >= 0)
		r = growbuf_add(g, text, len);
	if (r >= 0)
		r = growbuf_add(g, "\n", 1);
	return r;
}

int ab_textdiff_unified_buf(const char *a, size_t alen, const char *b, size_t blen,
			    unsigned context, char **out, size_t *out_len,
			    struct ab_textdiff_stats *stats)
{
	struct growbuf g = { 0 };
	int r = growbuf_add(&g, "", 0);

	if (r >= 0)
		r = ab_textdiff_unified(a, alen, b, blen, context, buf_emit, &g, stats);
	if (r < 0) {
		free(g.p);
		return r;
	}
	*out = g.p;
	if (out_len)
		*out_len = g.len;
	return r;
}
