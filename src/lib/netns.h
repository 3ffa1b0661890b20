#ifndef AB_NETNS_H
#define AB_NETNS_H

#include "../shared/error.h"

/* Brings up "lo" in a fresh network namespace: the sandbox's only interface. */
int ab_netns_loopback_up(struct ab_error *err);

#endif
