/* A one-shot monotonic timer as a file descriptor, for poll loops. */
#ifndef AB_TIMER_H
#define AB_TIMER_H

#include <stdint.h>

/* Arms *tfd (created on first use, CLOEXEC and non-blocking) to fire once after ms
 * milliseconds, replacing what it was set to. Returns 0 or -errno. */
int ab_timer_arm(int *tfd, uint64_t ms);

#endif
