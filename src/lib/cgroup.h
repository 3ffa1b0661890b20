/* Resource limits: a cgroup per sandbox where the kernel lets us have one, rlimits always.
 *
 * A sandbox's memory, processes and CPU are bounded by a cgroup of its own, because only a
 * cgroup bounds a whole tree of processes (an rlimit bounds one process, or one uid). Where
 * we cannot write a cgroup (unprivileged without a delegated subtree, a read-only cgroup
 * mount) the limits fall back to rlimits, which are weaker, and `why` says so for the
 * enforcement report. cgroup v2 is tried first (most machines), then v1 (hybrid hosts such
 * as Debian with systemd.unified_cgroup_hierarchy=0, where the controllers live on v1 and the
 * cgroup2 mount at /sys/fs/cgroup/unified holds none).
 *
 * Layout: <tree>/agentbox/<name>, where <tree> is the cgroup2 mount (root), our delegated
 * cgroup2 subtree (unprivileged under systemd's user@UID.service), or, on v1, each
 * controller's mount. The "agentbox" directory is shared by all sandboxes and never removed. */
#ifndef AB_CGROUP_H
#define AB_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../shared/error.h"
#include "config.h"

struct json_object;

/* Every cgroup file we read is small; a larger one is refused rather than trusted. */
#define AB_CGROUP_READ_MAX (64 * 1024)
/* The CFS period: 100 ms, the kernel's default, so a quota reads as "ms per 100 ms". */
#define AB_CGROUP_CPU_PERIOD_US 100000
/* At most this many processes are signalled per cgroup and pass. */
#define AB_CGROUP_MAX_PROCS 65536
/* How long ab_cgroup_remove waits for killed processes to leave. */
#define AB_CGROUP_REMOVE_TIMEOUT_MS 1000

enum ab_limits_mode {
	AB_LIMITS_NONE,    /* no limits asked and no cgroup to be had: nothing beyond rlimits */
	AB_LIMITS_CGROUP2,
	AB_LIMITS_CGROUP1,
	AB_LIMITS_RLIMITS, /* limits asked but no cgroup: RLIMIT_DATA and RLIMIT_NPROC stand in */
};

/* The v1 controllers we use, which on v1 each have a mount (and a directory) of their own,
 * or share one ("cpu,cpuacct"): then the entries hold equal paths. */
enum { AB_CG1_MEMORY, AB_CG1_PIDS, AB_CG1_CPU, AB_CG1_CPUACCT, AB_CG1_N };

struct ab_cgroup {
	enum ab_limits_mode mode;
	char *v2;           /* the sandbox's cgroup2 directory, or NULL */
	char *v1[AB_CG1_N]; /* the sandbox's directory per v1 controller, or NULL */
	char why[256];      /* one line for reports: how limits are enforced here and why, e.g.
			     * "cgroup v1 (memory, pids, cpu, cpuacct)" or "rlimits only: no delegated
			     * cgroup (run as root, or under a systemd user session)" */
};

/* "none", "cgroup2", "cgroup1", "rlimits". */
const char *ab_limits_mode_name(enum ab_limits_mode m);

/* The v1 controller's name ("memory", "pids", "cpu", "cpuacct"), or NULL. */
const char *ab_cgroup_v1_name(int controller);

/* Creates the sandbox's cgroup (name already validated by the caller: [A-Za-z0-9._-]) and
 * writes the limits of lim (NULL: none):
 *  - root (we can write the mount): <mount>/agentbox/<name>, enabling memory, pids and cpu
 *    in cgroup.subtree_control of the mount and of agentbox/ (v2), or one directory per
 *    controller (v1);
 *  - unprivileged: only in a delegated cgroup2 subtree, i.e. when the parent of our own
 *    cgroup is owned by us and writable (systemd's user@UID.service), since the kernel lets
 *    us move a process only below a common ancestor whose cgroup.procs we can write;
 *  - otherwise mode RLIMITS (limits asked) or NONE (none asked), with why saying why not.
 * Memory: memory.max and memory.swap.max (v2), memory.limit_in_bytes and
 * memory.memsw.limit_in_bytes (v1); swap is off unless memory_swap > memory, and then it
 * is memory_swap - memory. Processes: pids.max. CPU: a quota per 100 ms period.
 * Without any limit the cgroup is still made when possible: it gives stats and clean kills.
 * A leftover directory of the same name (a crashed run) is removed when empty, else reused.
 * Returns < 0 only for a real error (e.g. the kernel refusing a value, named in err);
 * on error cg is left empty and no sandbox directory we made remains (the shared agentbox/
 * directory stays). */
int ab_cgroup_setup(const char *name, const struct ab_limits *lim, struct ab_cgroup *cg,
		    struct ab_error *err);

/* Moves pid (the sandbox's init, right after clone and before it runs anything, so that
 * nothing it forks escapes) into every directory of cg. No-op without a cgroup. */
int ab_cgroup_add(const struct ab_cgroup *cg, pid_t pid, struct ab_error *err);

/* For a process joining later (agentbox exec): the distinct cgroup.procs files of cg, into
 * which the joining process itself writes "0" (it may be in another user namespace by then,
 * where its pid means nothing to us). out has AB_CG1_N + 1 entries, NULL-terminated; the
 * caller frees each. Returns how many. */
size_t ab_cgroup_procs_files(const struct ab_cgroup *cg, char **out);

/* How many processes the kernel's OOM killer killed in cg: "oom_kill" of memory.events (v2,
 * which counts descendants too) or of memory.oom_control (v1). *count is 0 when unknown;
 * returns 0, or -errno when the file could not be read. */
int ab_cgroup_oom_kills(const struct ab_cgroup *cg, uint64_t *count);

struct ab_cgroup_stats {
	bool have_cpu, have_memory, have_pids;
	uint64_t cpu_usage_ns;   /* v2 cpu.stat usage_usec * 1000; v1 cpuacct.usage */
	uint64_t memory_current; /* v2 memory.current; v1 memory.usage_in_bytes */
	uint64_t memory_max;     /* 0 = none */
	uint64_t memory_peak;    /* v2 memory.peak if present; v1 memory.max_usage_in_bytes */
	uint64_t pids_current, pids_max; /* pids_max 0 = none */
};

/* Fills what cg's files tell (the have_ flags say what); 0 even when nothing is known. */
int ab_cgroup_read_stats(const struct ab_cgroup *cg, struct ab_cgroup_stats *st);

/* Signals every process in cg and its child cgroups. v2 SIGKILL uses cgroup.kill when the
 * kernel has it (atomic, even against forks); otherwise cgroup.procs is read (v2, or v1's
 * pids or memory controller), each pid is pinned with a pidfd and signalled only when a
 * second read still lists it, so a reused pid is never hit. SIGKILL repeats until no
 * process is left or a few passes found new ones. Returns 0 or -errno. */
int ab_cgroup_kill(const struct ab_cgroup *cg, int sig);

/* Removes cg's directories (and any child cgroups the sandbox made); when processes remain
 * they are SIGKILLed and given AB_CGROUP_REMOVE_TIMEOUT_MS to leave, then -EBUSY. Missing
 * directories are fine: removing twice is not an error. */
int ab_cgroup_remove(const struct ab_cgroup *cg, struct ab_error *err);

/* Frees the paths and leaves cg empty (mode NONE); accepts NULL and empty objects. */
void ab_cgroup_free(struct ab_cgroup *cg);

/* For the state file: {"mode":"cgroup1","v2":null,"v1":{"memory":"/sys/...",...},"why":"..."}.
 * from_json checks every path is absolute, clean and ends in "/agentbox/<name>", so a
 * tampered state file cannot point removal or kills at another cgroup. NULL on ENOMEM. */
struct json_object *ab_cgroup_to_json(const struct ab_cgroup *cg);
int ab_cgroup_from_json(struct json_object *o, struct ab_cgroup *cg);

/* In the sandbox's process before the command runs (after the user switch, before
 * seccomp, which may forbid setrlimit): RLIMIT_CORE 0 (a dump would land in the workspace
 * and may hold secrets); RLIMIT_NOFILE lim->nofile when set; RLIMIT_FSIZE a little above
 * lim->disk when set (a per-file bound: the total is the job of the sandbox's filesystems,
 * which fill up first); and in mode RLIMITS the fallbacks RLIMIT_DATA = memory and
 * RLIMIT_NPROC = pids. Each sets soft and hard to the
 * value clamped to the current hard limit: without CAP_SYS_RESOURCE a hard limit cannot be
 * raised, and a sandbox must not raise its soft limit back. Never raises a hard limit. */
int ab_rlimits_apply(const struct ab_limits *lim, enum ab_limits_mode mode, struct ab_error *err);

/* Pure helpers (fuzzed, unit-tested). Both fill their outputs with malloc'ed strings or
 * NULL, return how many they found, or -ENOMEM (then every output is NULL). */

/* /proc/self/cgroup: "0::/path" (v2), "N:memory:/path", "N:cpu,cpuacct:/path" (v1). Paths
 * that are not absolute and clean (no ".", "..", "//") are ignored. */
int ab_cgroup_parse_self(const char *proc_self_cgroup_text, char **v2_path, char *v1_paths[AB_CG1_N]);
/* /proc/self/mountinfo: the cgroup2 mount, and the mount of each v1 controller (found in the
 * super options; a combined "cpu,cpuacct" mount fills both). Mount points are unescaped
 * (\040 and the like). A mount of the whole hierarchy (root "/") wins over a bind of a part;
 * otherwise the first. */
int ab_cgroup_parse_mountinfo(const char *mountinfo_text, char **v2_mount, char *v1_mounts[AB_CG1_N]);

#endif
