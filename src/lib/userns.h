/* The user namespace: one uid and one gid mapped, the invoking user's. */
#ifndef AB_USERNS_H
#define AB_USERNS_H

#include <sys/types.h>

#include "../shared/error.h"
#include "config.h"

/* Parent side: writes setgroups, uid_map and gid_map of the child `pid`. The sandbox user
 * (or root inside, with --user root) maps onto the invoking user, so the workspace's new
 * files belong to the invoking user on the host, and no other host id exists inside. */
int ab_userns_write_maps(pid_t pid, const struct ab_config *cfg, struct ab_error *err);
/* Child side: becomes the sandbox user (supplementary groups cleared where the kernel lets us). */
int ab_userns_become_user(const struct ab_config *cfg, struct ab_error *err);

#endif
