/* The egress proxy's own hardening, in the order it is applied. The proxy holds sockets
 * the sandbox made, talks to the sandbox's untrusted bytes all day, and needs nothing but
 * those sockets, new TCP/UDP sockets out, and the resolver's files: so it gets nothing
 * else. Every step is fatal when it fails; the proxy never serves weaker than this.
 *
 *   1. RLIMIT_NOFILE soft = hard      two sockets and two pipes per connection
 *   2. as root: bounding set emptied, securebits locked, then nobody:nogroup, no groups
 *   3. every capability cleared       (the locked securebits keep them over the uid change)
 *   4. not dumpable                   no ptrace or /proc/PID/mem by same-uid processes
 *   5. no_new_privs
 *   6. Landlock                       read the resolver's files only; no TCP bind (ABI 4);
 *                                     abstract unix sockets and signals scoped (ABI 6)
 *   7. seccomp                        ab_seccomp_proxy_table, an allow list (EPERM)
 */
#include "proxy-confine.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../lib/caps.h"
#include "../lib/landlock-uapi.h"
#include "../lib/landlock.h"
#include "../lib/seccomp-policy.h"
#include "../lib/seccomp.h"
#include "../shared/cleanup.h"

#define NOBODY 65534

/* What the proxy may read, and why. A file that does not exist is skipped: the resolver
 * copes without it. Nothing may be written, executed, listed or created anywhere. */
static const struct {
	const char *path;
	const char *why;
} readable[] = {
	{ "/etc/resolv.conf", "c-ares: the name servers" },
	{ "/etc/hosts", "c-ares: names the host maps itself" },
	{ "/etc/nsswitch.conf", "c-ares: the order of files and DNS" },
	{ "/etc/host.conf", "c-ares: the same, older form" },
	{ "/etc/gai.conf", "glibc: the order of IPv4 and IPv6 addresses" },
	{ "/dev/urandom", "c-ares: query ids, where it has no getrandom" },
};

static int raise_nofile(struct ab_error *err)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return ab_error_set(err, errno, "cannot read the proxy's RLIMIT_NOFILE");
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return ab_error_set(err, errno, "cannot raise the proxy's RLIMIT_NOFILE to %llu",
				    (unsigned long long)rl.rlim_max);
	return 0;
}

static int become_nobody(struct ab_error *err)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	int r;

	/* While still root: no capability can come back, whatever runs later. */
	r = ab_caps_drop_bounding(err);
	if (r < 0)
		return r;
	if (setgroups(0, NULL) < 0)
		return ab_error_set(err, errno, "cannot drop the proxy's supplementary groups");
	if (setresgid(NOBODY, NOBODY, NOBODY) < 0)
		return ab_error_set(err, errno, "cannot switch the proxy to group %d", NOBODY);
	if (setresuid(NOBODY, NOBODY, NOBODY) < 0)
		return ab_error_set(err, errno, "cannot switch the proxy to user %d", NOBODY);
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || ru != NOBODY ||
	    eu != NOBODY || su != NOBODY || rg != NOBODY || eg != NOBODY || sg != NOBODY)
		return ab_error_set(err, EPERM, "the proxy is not user %d after the switch", NOBODY);
	return 0;
}

static int apply_landlock(int abi, struct ab_error *err)
{
	struct ll_ruleset_attr attr = {
		.handled_access_fs = ab_landlock_handled_fs(abi),
		.handled_access_net = abi >= 4 ? LL_NET_BIND_TCP : 0,
		.scoped = abi >= 6 ? LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL : 0,
	};
	/* Older kernels refuse fields they do not know, even when zero. */
	size_t attr_size = abi >= 6 ? sizeof(attr) : abi >= 4 ? 2 * sizeof(uint64_t) : sizeof(uint64_t);
	_cleanup_close_ int ruleset = -1;

	ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
	if (ruleset < 0)
		return ab_error_set(err, errno, "cannot create the proxy's Landlock ruleset (ABI %d)", abi);
	for (size_t i = 0; i < AB_ELEMENTSOF(readable); i++) {
		struct ll_path_beneath_attr pb = { .allowed_access = LL_READ_FILE };
		_cleanup_close_ int fd = open(readable[i].path, O_PATH | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			return ab_error_set(err, errno, "cannot open '%s' for the proxy's Landlock ruleset",
					    readable[i].path);
		}
		pb.parent_fd = fd;
		if (syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &pb, 0) < 0)
			return ab_error_set(err, errno, "cannot add the proxy's Landlock rule for '%s'",
					    readable[i].path);
	}
	if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0)
		return ab_error_set(err, errno, "cannot enforce the proxy's Landlock ruleset");
	return 0;
}

/* The build-time program when this binary has one, else compiled now (before any
 * restriction: libseccomp needs a memfd). */
static int load_filter(struct ab_seccomp_set *set, struct ab_error *err)
{
	const struct ab_seccomp_builtin *built = ab_seccomp_builtin_for(&ab_seccomp_proxy_table);

	memset(set, 0, sizeof(*set));
	if (!built) {
		int r = ab_seccomp_compile_table(&ab_seccomp_proxy_table, &set->programs[0], err);
		if (r < 0)
			return r;
	} else {
		size_t bytes = built->len * sizeof(struct sock_filter);
		set->programs[0].insns = malloc(bytes);
		if (!set->programs[0].insns)
			return ab_error_set(err, ENOMEM, "cannot load the proxy's seccomp program");
		memcpy(set->programs[0].insns, built->insns, bytes);
		set->programs[0].len = built->len;
	}
	set->n_programs = 1;
	return 0;
}

int ab_proxy_confine(const struct ab_proxy_config *cfg, struct ab_error *err)
{
	struct ab_seccomp_set filter;
	int r;

	r = load_filter(&filter, err);
	if (r < 0)
		return r;
	r = raise_nofile(err);
	if (r >= 0 && cfg->drop_privileges)
		r = become_nobody(err);
	if (r >= 0)
		r = ab_caps_clear(err);
	/* The securebits keep capabilities over the uid change: only now is root gone. */
	if (r >= 0 && cfg->drop_privileges && setuid(0) == 0)
		r = ab_error_set(err, EPERM, "the proxy could become root again");
	if (r >= 0 && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		r = ab_error_set(err, errno, "cannot make the proxy undumpable");
	if (r >= 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		r = ab_error_set(err, errno, "cannot set no_new_privs on the proxy");
	if (r >= 0 && cfg->landlock_abi > 0)
		r = apply_landlock(cfg->landlock_abi, err);
	if (r >= 0) {
		r = ab_seccomp_install(&filter);
		if (r < 0)
			ab_error_set(err, -r, "cannot install the proxy's seccomp filter");
	}
	ab_seccomp_set_free(&filter);
	return r < 0 ? r : 0;
}
