/* Fake addresses for the sandbox's DNS: name -> 198.18.x.y and back.
 *
 * The table holds at most FAKEIP_CAP names (so the memory a sandbox can make the proxy
 * hold is bounded: about FAKEIP_CAP names of at most 253 bytes each). Entry i owns the
 * address 198.18.0.0 + i, i >= 1 (198.18.0.0 itself is never handed out), so the reverse
 * map is an array index. Names are found through an open-addressing hash table with a
 * per-table random seed (the sandbox picks the names, so it must not pick collisions).
 * When every entry is taken, the least recently handed out one is given to the new name. */
#include "fakeip.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "http.h" /* AB_HOST_MAX */

#define FAKEIP_CAP 16384u          /* entries 1..FAKEIP_CAP; well inside the /15 */
#define FAKEIP_SLOTS (2 * 16384u)  /* hash slots: a power of two, twice the entries */
#define NIL 0u                     /* no entry (entry 0 would be 198.18.0.0) */

struct entry {
	char *name;    /* NULL: free */
	uint32_t prev; /* LRU list: older neighbour, or NIL */
	uint32_t next; /* newer neighbour, or NIL */
};

struct ab_fakeip {
	struct entry *e; /* [FAKEIP_CAP + 1], index 0 unused */
	uint32_t *slot;  /* [FAKEIP_SLOTS]: entry index, or NIL */
	uint32_t used;   /* entries handed out so far: 1..used are in use */
	uint32_t oldest, newest;
	uint64_t seed;
};

static uint64_t hash_name(const struct ab_fakeip *m, const char *s)
{
	uint64_t h = m->seed ^ 0xcbf29ce484222325ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	/* A finaliser, so the low bits (the slot) depend on every byte. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

struct ab_fakeip *ab_fakeip_new(void)
{
	struct ab_fakeip *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->e = calloc(FAKEIP_CAP + 1, sizeof(*m->e));
	m->slot = calloc(FAKEIP_SLOTS, sizeof(*m->slot));
	if (!m->e || !m->slot) {
		ab_fakeip_free(m);
		return NULL;
	}
	if (getrandom(&m->seed, sizeof(m->seed), GRND_NONBLOCK) != (ssize_t)sizeof(m->seed))
		m->seed = (uint64_t)(uintptr_t)m ^ 0x9e3779b97f4a7c15ULL;
	return m;
}

void ab_fakeip_free(struct ab_fakeip *m)
{
	if (!m)
		return;
	if (m->e)
		for (uint32_t i = 1; i <= m->used; i++)
			free(m->e[i].name);
	free(m->e);
	free(m->slot);
	free(m);
}

/* The slot holding name, or the empty slot where it would go. */
static uint32_t find_slot(const struct ab_fakeip *m, const char *name)
{
	uint32_t s = (uint32_t)hash_name(m, name) & (FAKEIP_SLOTS - 1);

	while (m->slot[s] != NIL && strcmp(m->e[m->slot[s]].name, name) != 0)
		s = (s + 1) & (FAKEIP_SLOTS - 1);
	return s;
}

/* Linear probing without tombstones: after emptying slot s, entries later in its run
 * that would not be found any more move back. */
static void slot_remove(struct ab_fakeip *m, uint32_t s)
{
	uint32_t j = s;

	m->slot[s] = NIL;
	for (;;) {
		uint32_t home;
		j = (j + 1) & (FAKEIP_SLOTS - 1);
		if (m->slot[j] == NIL)
			return;
		home = (uint32_t)hash_name(m, m->e[m->slot[j]].name) & (FAKEIP_SLOTS - 1);
		/* Move j's entry into the hole s unless its home lies cyclically in (s, j]. */
		if ((s < j) ? (home <= s || home > j) : (home <= s && home > j)) {
			m->slot[s] = m->slot[j];
			m->slot[j] = NIL;
			s = j;
		}
	}
}

static void lru_unlink(struct ab_fakeip *m, uint32_t i)
{
	struct entry *x = &m->e[i];

	if (x->prev != NIL)
		m->e[x->prev].next = x->next;
	else
		m->oldest = x->next;
	if (x->next != NIL)
		m->e[x->next].prev = x->prev;
	else
		m->newest = x->prev;
	x->prev = x->next = NIL;
}

static void lru_push_newest(struct ab_fakeip *m, uint32_t i)
{
	struct entry *x = &m->e[i];

	x->prev = m->newest;
	x->next = NIL;
	if (m->newest != NIL)
		m->e[m->newest].next = i;
	else
		m->oldest = i;
	m->newest = i;
}

static void index_to_addr(uint32_t i, uint8_t out[4])
{
	out[0] = 198;
	out[1] = (uint8_t)(18 + (i >> 16));
	out[2] = (uint8_t)(i >> 8);
	out[3] = (uint8_t)i;
}

int ab_fakeip_for_name(struct ab_fakeip *m, const char *name, uint8_t out[4])
{
	uint32_t s, i;
	size_t len;
	char *copy;

	if (!m || !name)
		return -EINVAL;
	len = strnlen(name, AB_HOST_MAX);
	if (len == 0 || len >= AB_HOST_MAX)
		return -EINVAL;
	s = find_slot(m, name);
	if (m->slot[s] != NIL) {
		i = m->slot[s];
		lru_unlink(m, i);
		lru_push_newest(m, i);
		index_to_addr(i, out);
		return 0;
	}
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	if (m->used < FAKEIP_CAP) {
		i = ++m->used;
	} else {
		/* Full: the least recently handed out address goes to the new name. */
		i = m->oldest;
		lru_unlink(m, i);
		slot_remove(m, find_slot(m, m->e[i].name));
		free(m->e[i].name);
		m->e[i].name = NULL;
		s = find_slot(m, name); /* the removal may have moved entries */
	}
	m->e[i].name = copy;
	m->slot[s] = i;
	lru_push_newest(m, i);
	index_to_addr(i, out);
	return 0;
}

bool ab_fakeip_in_range(const uint8_t addr[4])
{
	return addr && addr[0] == 198 && (addr[1] & 0xfe) == 18;
}

const char *ab_fakeip_name(const struct ab_fakeip *m, const uint8_t addr[4])
{
	uint32_t i;

	if (!m || !ab_fakeip_in_range(addr))
		return NULL;
	i = (uint32_t)(addr[1] - 18) << 16 | (uint32_t)addr[2] << 8 | addr[3];
	if (i == NIL || i > m->used)
		return NULL;
	return m->e[i].name;
}
