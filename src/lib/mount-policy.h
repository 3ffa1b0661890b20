/* What the sandbox's root is made of, as tables a reviewer can diff. */
#ifndef AB_MOUNT_POLICY_H
#define AB_MOUNT_POLICY_H

#include <stddef.h>

/* Top-level host entries shared read-only in the default view (symlinks are copied). */
extern const char *const ab_host_system_entries[];
extern const size_t ab_n_host_system_entries;

/* Top-level entries of a --rootfs tree that are NOT taken from it: agentbox builds them. */
extern const char *const ab_rootfs_skipped_entries[];
extern const size_t ab_n_rootfs_skipped_entries;

/* Credential files and directories hidden under /etc (globs allowed in the file names). */
extern const char *const ab_masked_etc_files[];
extern const size_t ab_n_masked_etc_files;
extern const char *const ab_masked_etc_dirs[];
extern const size_t ab_n_masked_etc_dirs;

/* /proc and /sys entries hidden (masked) or made read-only, as Docker does. */
extern const char *const ab_masked_kernel_files[];
extern const size_t ab_n_masked_kernel_files;
extern const char *const ab_masked_kernel_dirs[];
extern const size_t ab_n_masked_kernel_dirs;
extern const char *const ab_readonly_proc_entries[];
extern const size_t ab_n_readonly_proc_entries;

/* Device nodes bound from the host's /dev into the sandbox's minimal /dev. */
extern const char *const ab_device_nodes[];
extern const size_t ab_n_device_nodes;

#endif
