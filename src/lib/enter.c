#include "enter.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "caps.h"
#include "landlock.h"
#include "netns.h"
#include "overlay.h"
#include "rootfs.h"
#include "sync.h"
#include "userns.h"

/* The terminal lives in the sandbox's own devpts; agentbox gets the master side. */
int ab_open_terminal(int sync_fd, int *slave_out, struct ab_error *err)
{
	_cleanup_close_ int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC), slave = -1;
	char name[64];
	int r;

	*slave_out = -1;
	if (master < 0)
		return ab_error_set(err, errno, "cannot open the sandbox's '/dev/ptmx'");
	if (unlockpt(master) < 0 || ptsname_r(master, name, sizeof(name)) != 0)
		return ab_error_set(err, errno, "cannot set up the sandbox's terminal");
	slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		return ab_error_set(err, errno, "cannot open the terminal '%s'", name);
	r = ab_sync_send(sync_fd, AB_SYNC_PTY, 0, name, master);
	if (r < 0)
		return ab_error_set(err, -r, "cannot hand the terminal to agentbox");
	*slave_out = TAKE_FD(slave);
	return 0;
}

/* Returns < 0 when agentbox is already gone (its end of the socket is closed). */
static int parent_alive(int sync_fd)
{
	struct pollfd p = { .fd = sync_fd, .events = POLLIN };

	if (sync_fd < 0)
		return 0;
	if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR)))
		return -EPIPE;
	return 0;
}

/* The sandbox's own network namespace, as cfg->network says. */
static int setup_network(const struct ab_config *cfg, int sync_fd, struct ab_error *err)
{
	switch (cfg->network) {
	case AB_NETWORK_NONE: return ab_netns_loopback_up(err); /* loopback only */
	case AB_NETWORK_FILTERED: return ab_netns_filtered_setup(sync_fd, err);
	case AB_NETWORK_HOST: return 0; /* the host's namespace: nothing of ours to set up */
	}
	return ab_error_set(err, EINVAL, "unknown network mode %d", (int)cfg->network);
}

int ab_enter_sandbox(const struct ab_enter_plan *plan, int *pty_slave, struct ab_error *err)
{
	const struct ab_config *cfg = plan->cfg;
	int r;

	*pty_slave = -1;

	/* 0. The copy-on-write workspace's overlay starts being built at once, by a helper: its
	 *    layers are looked up now, by their host paths, before step 2 mounts anything over
	 *    them, and the kernel's slow part (probing the work directory) overlaps steps 1
	 *    and 2 until step 2 attaches the mount and reaps the helper. */
	ab_overlay_begin(cfg);

	/* 1. Network, first: a filtered network loads libnftnl and libmnl from the host's library
	 *    directories, which the sandbox's root (step 2) no longer shows; it needs only the
	 *    new network namespace and CAP_NET_ADMIN in the user namespace. Its listeners go
	 *    to agentbox now, so the proxy can start while the root is being built. */
	if ((r = setup_network(cfg, plan->sync_fd, err)) < 0)
		return ab_error_wrap(err, "network");

	/* 2. Root filesystem (mount namespace). Before the rest, because it needs CAP_SYS_ADMIN
	 *    in the user namespace, and every later step's paths (Landlock's, the terminal's)
	 *    are the sandbox's own. */
	if ((r = ab_rootfs_build(cfg, err)) < 0)
		return ab_error_wrap(err, "root filesystem");

	/* 3. Host name in the new uts namespace: needs CAP_SYS_ADMIN, so before step 5 takes
	 *    the capabilities; it depends on nothing else. */
	if (sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
		return ab_error_set(err, errno, "cannot set the host name '%s'", cfg->hostname);

	/* 4. The terminal: after the root (it is opened in the sandbox's own devpts, mounted by
	 *    step 2) and before any filter (Landlock and seccomp come later). */
	if (plan->use_tty && (r = ab_open_terminal(plan->sync_fd, pty_slave, err)) < 0)
		return r;

	/* 5-11. The process itself, confined as every process of the sandbox is. */
	return ab_confine(cfg, plan->seccomp, plan->landlock_abi, plan->sync_fd, err);
}

int ab_confine(const struct ab_config *cfg, const struct ab_seccomp_set *sc, int landlock_abi,
	       int parent_check_fd, struct ab_error *err)
{
	struct ab_landlock_rule rules[AB_LANDLOCK_MAX_RULES];
	size_t n_rules;
	int r;

	/* 5. Capability bounding set and securebits: needs CAP_SETPCAP, so before the switch. */
	if ((r = ab_caps_drop_bounding(err)) < 0)
		return ab_error_wrap(err, "capabilities");

	/* 6. The sandbox user. */
	if ((r = ab_userns_become_user(cfg, err)) < 0)
		return ab_error_wrap(err, "identity");

	/* 7. Every remaining capability set emptied. From here on nothing can be undone. */
	if ((r = ab_caps_clear(err)) < 0)
		return ab_error_wrap(err, "capabilities");

	/* 8. The credential change cleared the parent-death signal: set it again, then check
	 *    that agentbox did not die in between. Not dumpable (until it execs), so the
	 *    sandbox's processes (same uid) cannot ptrace its init, nor a command joining
	 *    the sandbox before its execve. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return ab_error_set(err, errno, "cannot tie the sandbox to agentbox's life");
	if (parent_alive(parent_check_fd) < 0)
		return ab_error_set(err, EPIPE, "agentbox exited during setup");

	/* 9. no_new_privs: required by Landlock and unprivileged seccomp, and it makes set-uid
	 *    binaries and file capabilities inert. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return ab_error_set(err, errno, "cannot set no_new_privs");

	/* 10. Landlock, mirroring the mounts: a second, independent line on file access. */
	if (landlock_abi > 0) {
		n_rules = ab_landlock_rules_for(cfg, rules);
		if ((r = ab_landlock_apply(rules, n_rules, landlock_abi, err)) < 0)
			return ab_error_wrap(err, "landlock");
	}

	/* 11. Seccomp last: the filter would refuse the set-up calls above (mount, sethostname). */
	if (sc && (r = ab_seccomp_install(sc)) < 0)
		return ab_error_set(err, -r, "cannot install the seccomp filter");
	return 0;
}
