#include "timer.h"

#include <errno.h>
#include <sys/timerfd.h>

int ab_timer_arm(int *tfd, uint64_t ms)
{
	struct itimerspec its = { .it_value = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000 } };

	if (*tfd < 0)
		*tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (*tfd < 0 || timerfd_settime(*tfd, 0, &its, NULL) < 0)
		return -errno;
	return 0;
}
