/* Everything `agentbox run` was asked for, parsed and validated before any namespace work.
 * The parser is pure: no kernel state changes, only reads of the paths it validates. */
#ifndef AB_CONFIG_H
#define AB_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../proxy/rules.h"
#include "../shared/error.h"

/* Hard caps on what a user controls. */
#define AB_MAX_MOUNTS 64
#define AB_MAX_TMPFS 16
#define AB_MAX_ENV 256
#define AB_MAX_ENV_FILE_BYTES (256 * 1024)
#define AB_MAX_NAME_LEN 63
#define AB_MAX_NET_HOSTS 256 /* --add-host entries */
#define AB_DEFAULT_TMP_SIZE (512ULL << 20)

enum ab_workspace_mode {
	AB_WORKSPACE_COW, /* overlayfs: the changes go to the sandbox's own upper directory */
	AB_WORKSPACE_RW,
	AB_WORKSPACE_RO,
};

#define AB_MAX_MASKS 64
#define AB_MAX_MASK_HITS 4096

enum ab_network_mode {
	AB_NETWORK_NONE, /* a private network namespace with loopback only */
	AB_NETWORK_HOST, /* the host's network namespace, shared (warned) */
	AB_NETWORK_FILTERED, /* loopback-only namespace, egress only through the proxy's policy */
};

enum ab_seccomp_mode {
	AB_SECCOMP_DEFAULT,    /* the deny table of src/lib/seccomp-policy.c */
	AB_SECCOMP_STRICT,     /* an allow table: anything unlisted fails */
	AB_SECCOMP_UNCONFINED, /* no filter (warned) */
	AB_SECCOMP_PROFILE,    /* a Docker seccomp profile in JSON */
};

enum ab_tty_mode {
	AB_TTY_AUTO, /* a terminal when stdin is one */
	AB_TTY_ALWAYS,
	AB_TTY_NEVER,
};

/* Layers that --require can insist on; also the rows of the enforcement report. */
enum ab_layer {
	AB_LAYER_USERNS = 1u << 0,
	AB_LAYER_MOUNTNS = 1u << 1,
	AB_LAYER_PIDNS = 1u << 2,
	AB_LAYER_NETNS = 1u << 3,
	AB_LAYER_IPCNS = 1u << 4,
	AB_LAYER_UTSNS = 1u << 5,
	AB_LAYER_CGROUPNS = 1u << 6,
	AB_LAYER_CAPS = 1u << 7,
	AB_LAYER_NNP = 1u << 8,
	AB_LAYER_LANDLOCK = 1u << 9,
	AB_LAYER_SECCOMP = 1u << 10,
};

struct ab_bind_spec {
	char *source;   /* canonical absolute host path */
	char *dest;     /* absolute path inside the sandbox, normalised */
	bool read_only;
};

struct ab_tmpfs_spec {
	char *dest;
	uint64_t size_bytes;
};

/* What a sandbox may take (`run --memory --memory-swap --cpus --pids-limit --disk-limit
 * --timeout --ulimit nofile=N`). Zero means "no limit" everywhere. */
struct ab_limits {
	uint64_t memory;      /* bytes */
	int64_t memory_swap;  /* bytes of memory + swap; -1: not given, which means no swap */
	uint64_t cpu_millis;  /* thousandths of a CPU: --cpus 0.5 is 500 */
	uint64_t pids;        /* processes and threads */
	uint64_t disk;        /* bytes the sandbox may write (workspace changes, home, /tmp) */
	uint64_t timeout_ms;  /* the sandbox is stopped after this long */
	uint64_t nofile;      /* RLIMIT_NOFILE inside; 0: the caller's */
};

struct ab_config {
	char **argv; /* the command, NULL-terminated, argv[0] non-empty */

	char *name;     /* NULL when unnamed */
	char *hostname; /* "agentbox" or the name */

	char *workspace;      /* canonical host path of the workspace */
	char *workspace_dest; /* where it appears inside (the same path) */
	enum ab_workspace_mode workspace_mode;

	char *rootfs; /* NULL: the host's own tools, read-only */

	struct ab_bind_spec *binds;
	size_t n_binds;
	struct ab_tmpfs_spec *tmpfs; /* always holds /tmp unless the user sized it */
	size_t n_tmpfs;

	char **env; /* the sandbox's whole environment, NAME=VALUE, NULL-terminated */

	enum ab_network_mode network;
	/* --allow and --deny, in the order given (AB_NETWORK_FILTERED), and --add-host. */
	struct ab_net_rule *net_rules;
	size_t n_net_rules;
	struct ab_net_host_entry *net_hosts;
	size_t n_net_hosts;
	enum ab_seccomp_mode seccomp_mode;
	char *seccomp_profile; /* the FILE of --seccomp FILE, canonical */
	enum ab_tty_mode tty_mode;

	bool user_root; /* --user root: uid 0 inside the user namespace only */
	uid_t host_uid;
	gid_t host_gid;
	uid_t sandbox_uid;
	gid_t sandbox_gid;
	char *user_name; /* the sandbox user's name in the generated /etc/passwd */
	char *home;      /* the sandbox user's home inside: an empty tmpfs */

	unsigned required_layers; /* enum ab_layer bits */
	bool explain;             /* print the enforcement report and exit */
	bool quiet;               /* no warnings on stderr */

	/* Files of the project hidden from the sandbox (fnmatch patterns on the base name,
	 * or on the relative path when the pattern has a '/'): the defaults, plus --mask,
	 * less --unmask. */
	char **masks;
	size_t n_masks;

	struct ab_limits limits;
	bool detach; /* -d: a supervisor of its own runs the sandbox; agentbox returns */

	/* Filled by the front end after parsing, before the clone: */
	char *overlay_upper; /* cow: the sandbox's upper and work directories */
	char *overlay_middle; /* and when set, a lower layer between upper and the project */
	char *overlay_work;
	struct ab_mask_hit *mask_hits; /* the project's entries that the masks match */
	size_t n_mask_hits;
	int limits_mode; /* enum ab_limits_mode (cgroup.h): how the limits are enforced */
};

struct ab_mask_hit {
	char *rel; /* relative to the workspace */
	bool dir;
};

/* The masks a sandbox starts with. */
extern const char *const ab_default_masks[];
extern const size_t ab_n_default_masks;
/* Does the relative path match one of the patterns (base name or whole path)? */
bool ab_mask_matches(char *const *patterns, size_t n, const char *rel);
/* The entries of project that the patterns match, not descending into matched
 * directories and never following symlinks (a symlink is not masked: see docs). */
int ab_mask_find(const char *project, char *const *patterns, size_t n, struct ab_mask_hit **out,
		 size_t *n_out, struct ab_error *err);
void ab_mask_hits_free(struct ab_mask_hit *hits, size_t n);

/* Parses the arguments after "run" (argv[0] is the first option) into cfg.
 * `environ_in` is the caller's environment, from which the safe list and -e NAME are taken.
 * Returns 0, or < 0 with err naming the bad flag or path. */
int ab_config_parse_run(int argc, char **argv, char **environ_in, struct ab_config *cfg,
			struct ab_error *err);

void ab_config_free(struct ab_config *cfg);

/* Pure pieces, exposed for unit tests and fuzzers. */
int ab_parse_size(const char *s, uint64_t *out);
int ab_parse_bind_spec(const char *spec, struct ab_bind_spec *out, struct ab_error *err);
int ab_parse_tmpfs_spec(const char *spec, struct ab_tmpfs_spec *out, struct ab_error *err);
int ab_normalize_path(const char *in, char **out); /* absolute, no "..", no "//" */
bool ab_name_is_valid(const char *name);
int ab_layer_from_name(const char *name, unsigned *out);
const char *ab_layer_name(unsigned layer);

#endif
