/* Capabilities: every set emptied, and the securebits locked so none comes back on exec. */
#ifndef AB_CAPS_H
#define AB_CAPS_H

#include "../shared/error.h"

/* Empties the bounding set and locks the securebits. Needs CAP_SETPCAP, so it runs
 * before the switch to the sandbox user. */
int ab_caps_drop_bounding(struct ab_error *err);
/* Empties the effective, permitted, inheritable and ambient sets. */
int ab_caps_clear(struct ab_error *err);

#endif
