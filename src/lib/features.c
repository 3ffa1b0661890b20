#include "features.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "../shared/strutil.h"
#include "landlock.h"

static long read_long(const char *path, long fallback)
{
	_cleanup_free_ char *text = NULL;
	if (ab_read_file(path, 64, &text, NULL) < 0)
		return fallback;
	return strtol(text, NULL, 10);
}

void ab_features_probe(struct ab_features *f, bool caller_is_root)
{
	memset(f, 0, sizeof(*f));
	f->userns = true;
	if (read_long("/proc/sys/user/max_user_namespaces", 1) == 0) {
		f->userns = false;
		snprintf(f->userns_why, sizeof(f->userns_why), "user.max_user_namespaces is 0");
	} else if (!caller_is_root && read_long("/proc/sys/kernel/unprivileged_userns_clone", 1) == 0) {
		f->userns = false;
		snprintf(f->userns_why, sizeof(f->userns_why),
			 "kernel.unprivileged_userns_clone is 0 (as root: sysctl -w kernel.unprivileged_userns_clone=1)");
	} else if (!caller_is_root && read_long("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", 0) == 1) {
		f->userns = false;
		snprintf(f->userns_why, sizeof(f->userns_why),
			 "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1)");
	}
	f->landlock_abi = ab_landlock_abi();
	f->seccomp = prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 || errno != EINVAL;
	f->cgroupns = access("/proc/self/ns/cgroup", F_OK) == 0;
	f->mount_setattr = !(syscall(SYS_mount_setattr, -1, "", 0, NULL, 0) < 0 && errno == ENOSYS);
}

unsigned ab_layers_enforced(const struct ab_config *cfg, const struct ab_features *f)
{
	unsigned l = AB_LAYER_MOUNTNS | AB_LAYER_PIDNS | AB_LAYER_IPCNS | AB_LAYER_UTSNS | AB_LAYER_CAPS |
		     AB_LAYER_NNP;

	if (f->userns)
		l |= AB_LAYER_USERNS;
	if (cfg->network == AB_NETWORK_NONE || cfg->network == AB_NETWORK_FILTERED)
		l |= AB_LAYER_NETNS;
	if (f->cgroupns)
		l |= AB_LAYER_CGROUPNS;
	if (f->landlock_abi > 0)
		l |= AB_LAYER_LANDLOCK;
	if (f->seccomp && cfg->seccomp_mode != AB_SECCOMP_UNCONFINED)
		l |= AB_LAYER_SECCOMP;
	return l;
}

static const char *missing_reason(unsigned layer, const struct ab_config *cfg, const struct ab_features *f)
{
	switch (layer) {
	case AB_LAYER_USERNS: return f->userns_why[0] ? f->userns_why : "user namespaces are unavailable";
	case AB_LAYER_NETNS: return "turned off by --network host";
	case AB_LAYER_CGROUPNS: return "the kernel has no cgroup namespaces";
	case AB_LAYER_LANDLOCK: return "the kernel has no Landlock (or it is not in the lsm= list)";
	case AB_LAYER_SECCOMP:
		return cfg->seccomp_mode == AB_SECCOMP_UNCONFINED ? "turned off by --seccomp unconfined"
								   : "the kernel has no seccomp filters";
	default: return "unavailable";
	}
}

int ab_check_required(const struct ab_config *cfg, const struct ab_features *f, struct ab_error *err)
{
	unsigned have = ab_layers_enforced(cfg, f);

	for (unsigned bit = 1; bit <= AB_LAYER_SECCOMP; bit <<= 1)
		if ((cfg->required_layers & bit) && !(have & bit))
			return ab_error_set(err, 0, "required layer '%s' is missing: %s", ab_layer_name(bit),
					    missing_reason(bit, cfg, f));
	return 0;
}

/* The network row: what the sandbox can reach. */
static void network_line(const struct ab_config *cfg, char *buf, size_t size)
{
	size_t deny = 0;

	if (cfg->network != AB_NETWORK_FILTERED) {
		snprintf(buf, size, "loopback only: no route out");
		return;
	}
	for (size_t i = 0; i < cfg->n_net_rules; i++)
		deny += cfg->net_rules[i].deny;
	if (cfg->n_net_rules == 0)
		snprintf(buf, size, "filtered: no rules (every destination denied), DNS answered by agentbox, every other packet refused");
	else
		snprintf(buf, size, "filtered: %zu rule%s (%zu allow, %zu deny), DNS answered by agentbox, every other packet refused",
			 cfg->n_net_rules, cfg->n_net_rules == 1 ? "" : "s", cfg->n_net_rules - deny, deny);
}

void ab_report_write(FILE *out, const struct ab_config *cfg, const struct ab_features *f,
		     const char *seccomp_summary)
{
	unsigned have = ab_layers_enforced(cfg, f);
	char ll[256];
	char uid_line[128];
	char net_line[192];

	ab_landlock_describe(f->landlock_abi, ll, sizeof(ll));
	network_line(cfg, net_line, sizeof(net_line));
	snprintf(uid_line, sizeof(uid_line), "uid %u inside, mapped to uid %u outside; no other id exists inside",
		 (unsigned)cfg->sandbox_uid, (unsigned)cfg->host_uid);
	struct {
		unsigned layer;
		const char *name;
		const char *what;
	} rows[] = {
		{ AB_LAYER_USERNS, "user namespace", uid_line },
		{ AB_LAYER_MOUNTNS, "mount namespace", "fresh root on tmpfs (pivot_root); host tools read-only; no host home" },
		{ AB_LAYER_PIDNS, "pid namespace", "only the sandbox's processes are visible; an init is PID 1" },
		{ AB_LAYER_NETNS, "network namespace", net_line },
		{ AB_LAYER_IPCNS, "ipc namespace", "private System V IPC and POSIX message queues" },
		{ AB_LAYER_UTSNS, "uts namespace", cfg->hostname },
		{ AB_LAYER_CGROUPNS, "cgroup namespace", "the host's cgroup tree is hidden" },
		{ AB_LAYER_CAPS, "capabilities", "none: bounding, permitted, effective, inheritable, ambient all empty" },
		{ AB_LAYER_NNP, "no_new_privs", "set: set-uid binaries and file capabilities grant nothing" },
		{ AB_LAYER_LANDLOCK, "landlock", ll },
		{ AB_LAYER_SECCOMP, "seccomp", seccomp_summary ? seccomp_summary : "" },
	};

	fprintf(out, "agentbox: enforcement report\n");
	for (size_t i = 0; i < AB_ELEMENTSOF(rows); i++) {
		bool on = have & rows[i].layer;
		bool req = cfg->required_layers & rows[i].layer;
		fprintf(out, "  %-18s %-8s %s%s\n", rows[i].name, on ? "on" : "MISSING",
			on ? rows[i].what : missing_reason(rows[i].layer, cfg, f), req ? " [required]" : "");
	}
	{
		const char *mode = cfg->workspace_mode == AB_WORKSPACE_RO ? "ro" : cfg->workspace_mode == AB_WORKSPACE_RW ? "rw" : "cow";
		fprintf(out, "  %-18s %-8s %s (%s)\n", "workspace", mode, cfg->workspace,
			cfg->workspace_mode == AB_WORKSPACE_COW
				? "same path inside; changes kept apart until 'agentbox apply'"
				: cfg->workspace_mode == AB_WORKSPACE_RW ? "same path inside; changes go straight to the project"
									  : "same path inside, read-only");
		if (cfg->name)
			fprintf(out, "  %-18s %-8s %s\n", "sandbox", "named", cfg->name);
		fprintf(out, "  %-18s %-8s", "masks", cfg->n_masks ? "hidden" : "none");
		for (size_t i = 0; i < cfg->n_masks; i++)
			fprintf(out, " %s", cfg->masks[i]);
		fprintf(out, "\n");
	}
	for (size_t i = 0; i < cfg->n_net_rules; i++)
		fprintf(out, "  %-18s %-8s %s\n", "egress", cfg->net_rules[i].deny ? "deny" : "allow", cfg->net_rules[i].text);
	for (size_t i = 0; i < cfg->n_net_hosts; i++) {
		char a[64] = "?";
		inet_ntop(cfg->net_hosts[i].addr.family, cfg->net_hosts[i].addr.addr, a, sizeof(a));
		fprintf(out, "  %-18s %-8s %s -> %s\n", "egress host", "mapped", cfg->net_hosts[i].name, a);
	}
	fprintf(out, "  %-18s %-8s %s\n", "root", cfg->rootfs ? "rootfs" : "host",
		cfg->rootfs ? cfg->rootfs : "/usr /bin /sbin /lib* /etc read-only, credential files hidden");
	fprintf(out, "  %-18s %-8s %s (empty tmpfs)\n", "home", "tmpfs", cfg->home);
	for (size_t i = 0; i < cfg->n_tmpfs; i++)
		fprintf(out, "  %-18s %-8s %s size=%lluk\n", "tmpfs", "rw", cfg->tmpfs[i].dest,
			(unsigned long long)(cfg->tmpfs[i].size_bytes >> 10));
	for (size_t i = 0; i < cfg->n_binds; i++)
		fprintf(out, "  %-18s %-8s %s -> %s\n", "volume", cfg->binds[i].read_only ? "ro" : "rw",
			cfg->binds[i].source, cfg->binds[i].dest);
	fprintf(out, "  %-18s %-8s %zu variables (the rest of the caller's environment is dropped)\n",
		"environment", "cleared", cfg->env ? (size_t)({ size_t k = 0; while (cfg->env[k]) k++; k; }) : 0);
}

void ab_report_warnings(FILE *out, const struct ab_config *cfg, const struct ab_features *f)
{
	if (cfg->network == AB_NETWORK_HOST)
		fprintf(out, "agentbox: warning: --network host shares the host's network: the sandbox can reach any address the host can\n");
	if (cfg->seccomp_mode == AB_SECCOMP_UNCONFINED)
		fprintf(out, "agentbox: warning: --seccomp unconfined: no system call is filtered\n");
	else if (!f->seccomp)
		fprintf(out, "agentbox: warning: this kernel has no seccomp filters: system calls are not filtered (--require seccomp refuses to run)\n");
	if (f->landlock_abi <= 0)
		fprintf(out, "agentbox: warning: this kernel has no Landlock: file access is confined by mounts alone (--require landlock refuses to run)\n");
	if (!f->cgroupns)
		fprintf(out, "agentbox: warning: this kernel has no cgroup namespaces: the host's cgroup paths are visible\n");
}
