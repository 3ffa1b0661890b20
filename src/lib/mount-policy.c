#include "mount-policy.h"

#include "../shared/cleanup.h"

/* The host's tools; /etc is shared for configuration (resolv.conf, ssl certificates, alternatives).
 * Not shared: /home, /root, /var, /srv, /opt, /mnt, /media, /run — the user's data and the
 * host's live state. */
const char *const ab_host_system_entries[] = {
	"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc",
};
const size_t ab_n_host_system_entries = AB_ELEMENTSOF(ab_host_system_entries);

const char *const ab_rootfs_skipped_entries[] = {
	"proc", "sys", "dev", "tmp", "run", "home", "root", "lost+found",
};
const size_t ab_n_rootfs_skipped_entries = AB_ELEMENTSOF(ab_rootfs_skipped_entries);

/* Paths are relative to the root. A masked file reads as empty; a masked directory as empty. */
const char *const ab_masked_etc_files[] = {
	"etc/shadow",	  "etc/shadow-",	 "etc/gshadow",		"etc/gshadow-",
	"etc/sudoers",	  "etc/security/opasswd", "etc/ssh/ssh_host_*key", "etc/ssh/ssh_host_*key.pub",
	"etc/krb5.keytab",
};
const size_t ab_n_masked_etc_files = AB_ELEMENTSOF(ab_masked_etc_files);

const char *const ab_masked_etc_dirs[] = {
	"etc/sudoers.d",
	"etc/ssl/private",
	"etc/NetworkManager/system-connections",
	"etc/wireguard",
	"etc/letsencrypt",
};
const size_t ab_n_masked_etc_dirs = AB_ELEMENTSOF(ab_masked_etc_dirs);

/* Kernel memory, key rings, timers and interrupts leak host state or allow side channels. */
const char *const ab_masked_kernel_files[] = {
	"proc/kcore",	      "proc/keys",	 "proc/key-users", "proc/latency_stats",
	"proc/timer_list",    "proc/timer_stats", "proc/sched_debug", "proc/kallsyms",
	"proc/kpagecount",    "proc/kpageflags", "proc/kpagecgroup", "proc/vmallocinfo",
};
const size_t ab_n_masked_kernel_files = AB_ELEMENTSOF(ab_masked_kernel_files);

const char *const ab_masked_kernel_dirs[] = {
	"proc/acpi", "proc/asound", "proc/scsi", "proc/driver",
	"sys/firmware", "sys/devices/virtual/powercap", "sys/kernel/debug", "sys/kernel/tracing",
};
const size_t ab_n_masked_kernel_dirs = AB_ELEMENTSOF(ab_masked_kernel_dirs);

const char *const ab_readonly_proc_entries[] = {
	"proc/sys", "proc/sysrq-trigger", "proc/irq", "proc/bus", "proc/fs",
};
const size_t ab_n_readonly_proc_entries = AB_ELEMENTSOF(ab_readonly_proc_entries);

const char *const ab_device_nodes[] = {
	"null", "zero", "full", "random", "urandom", "tty",
};
const size_t ab_n_device_nodes = AB_ELEMENTSOF(ab_device_nodes);
