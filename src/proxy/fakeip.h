/* The addresses the sandbox's DNS answers with: each allowed name gets its own address in
 * 198.18.0.0/15 (a range reserved for benchmarks, never routed), and the capture maps a
 * connection to that address back to the name. Pure. */
#ifndef AB_PROXY_FAKEIP_H
#define AB_PROXY_FAKEIP_H

#include <stdbool.h>
#include <stdint.h>

struct ab_fakeip;

struct ab_fakeip *ab_fakeip_new(void);
void ab_fakeip_free(struct ab_fakeip *m);
/* The address of name (allocating one the first time). Returns 0, -ENOMEM; once the range
 * is used up, the least recently handed out address is given to the new name. */
int ab_fakeip_for_name(struct ab_fakeip *m, const char *name, uint8_t out[4]);
/* The name behind a fake address, or NULL. */
const char *ab_fakeip_name(const struct ab_fakeip *m, const uint8_t addr[4]);
/* Is addr in the fake range at all? */
bool ab_fakeip_in_range(const uint8_t addr[4]);

#endif
