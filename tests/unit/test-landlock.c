/* Landlock rules, in the shape of the kernel's selftests: each case runs in a forked child
 * that enforces the ruleset and reports errno, so assertions read as specifications.
 *
 * Fixture:
 *   TMP/
 *   ├── ro/file        under the read-only rule
 *   └── rw/file        under the read-write rule
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/config.h"
#include "lib/landlock.h"
#include "lib/rootfs.h"
#include "tap.h"

static char top[] = "/tmp/ab-landlock-XXXXXX";
static char ro[64], rw[64];

/* Runs fn in a child confined by the fixture's rules; returns the errno fn reports. */
static int confined(int (*fn)(void), int abi)
{
	struct ab_landlock_rule rules[] = { { ro, AB_LL_READ_EXEC }, { rw, AB_LL_READ_WRITE } };
	struct ab_error err;
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || ab_landlock_apply(rules, 2, abi, &err) < 0)
			_exit(255);
		_exit(fn());
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 254;
}

static int open_errno(const char *dir, const char *name, int flags)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, flags | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int read_ro(void) { return open_errno(ro, "file", O_RDONLY); }
static int write_ro(void) { return open_errno(ro, "file", O_WRONLY); }
static int create_ro(void) { return open_errno(ro, "new", O_WRONLY | O_CREAT); }
static int write_rw(void) { return open_errno(rw, "file", O_WRONLY); }
static int create_rw(void) { return open_errno(rw, "new", O_WRONLY | O_CREAT); }
static int read_outside(void) { return open_errno("/etc", "hostname", O_RDONLY); }
static int truncate_ro(void)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/file", ro);
	return truncate(path, 0) < 0 ? errno : 0;
}
static int rename_out_of_rw(void)
{
	char a[512], b[512];
	snprintf(a, sizeof(a), "%s/file", rw);
	snprintf(b, sizeof(b), "%s/stolen", ro);
	return rename(a, b) < 0 ? errno : 0;
}

int main(void)
{
	int abi = ab_landlock_abi();
	char cmd[1200];

	if (!mkdtemp(top))
		return 1;
	snprintf(ro, sizeof(ro), "%s/ro", top);
	snprintf(rw, sizeof(rw), "%s/rw", top);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s %s && echo data > %s/file && echo data > %s/file", ro, rw, ro, rw);
	if (system(cmd) != 0)
		return 1;

	/* The table itself. */
	ok(ab_landlock_handled_fs(1) == 0x1fff, "ABI 1 handles the 13 original rights");
	ok(ab_landlock_handled_fs(3) & (1ULL << 14), "ABI 3 handles truncate");
	ok(!(ab_landlock_handled_fs(2) & (1ULL << 14)), "ABI 2 does not claim truncate");
	ok(!(ab_landlock_class_rights(AB_LL_READ_EXEC, 7) & (1ULL << 1)), "read class has no write");
	ok(!(ab_landlock_class_rights(AB_LL_READ_WRITE, 7) & ((1ULL << 6) | (1ULL << 11))),
	   "no class may make device nodes");

	if (abi <= 0 && getenv("AB_MUST_WORK")) {
		ok(0, "Landlock is required (AB_MUST_WORK) but the kernel has none");
	} else if (abi <= 0) {
		printf("ok %d # SKIP the kernel has no Landlock\n", ++tap_n);
	} else {
		ok(confined(read_ro, abi) == 0, "read under a read-only rule works");
		ok(confined(write_ro, abi) == EACCES, "write under a read-only rule is refused");
		ok(confined(create_ro, abi) == EACCES, "create under a read-only rule is refused");
		if (abi >= 3)
			ok(confined(truncate_ro, abi) == EACCES, "truncate under a read-only rule is refused");
		ok(confined(write_rw, abi) == 0, "write under a read-write rule works");
		ok(confined(create_rw, abi) == 0, "create under a read-write rule works");
		ok(confined(read_outside, abi) == EACCES, "a path under no rule is refused");
		ok(confined(rename_out_of_rw, abi) != 0, "a file cannot be moved from rw into ro");
		ok(confined(read_ro, 1) == 0, "an older ABI's ruleset still applies on this kernel");
	}

	/* The rule set mirrors the mounts. */
	struct ab_tmpfs_spec tmpfs[] = { { "/tmp", 1 }, { "/scratch", 1 } };
	struct ab_bind_spec binds[] = { { "/src", "/data", true }, { "/src2", "/out", false } };
	struct ab_config cfg = { .home = "/home/u", .workspace_dest = "/w", .tmpfs = tmpfs, .n_tmpfs = 2,
				 .binds = binds, .n_binds = 2, .workspace_mode = AB_WORKSPACE_RO };
	struct ab_landlock_rule rules[AB_LANDLOCK_MAX_RULES];
	size_t n = ab_landlock_rules_for(&cfg, rules);
	bool ws_writable = false, data_writable = false, out_writable = false;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(rules[i].path, "/w") == 0 && rules[i].cls == AB_LL_READ_WRITE)
			ws_writable = true;
		if (strcmp(rules[i].path, "/data") == 0)
			data_writable = true;
		if (strcmp(rules[i].path, "/out") == 0 && rules[i].cls == AB_LL_READ_WRITE)
			out_writable = true;
	}
	ok(!ws_writable, "a read-only workspace gets no write rule");
	ok(!data_writable && out_writable, "only read-write volumes get write rules");
	ok(strcmp(rules[0].path, "/") == 0 && rules[0].cls == AB_LL_READ_EXEC, "'/' is read and execute only");

	/* The mount order: every parent before what lies beneath it. */
	struct ab_tmpfs_spec t2[] = { { "/tmp", 1 } };
	struct ab_bind_spec b2[] = { { "/x", "/tmp/ws/sub", false }, { "/y", "/home/u/.cache", false } };
	struct ab_config c2 = { .home = "/home/u", .workspace = "/tmp/ws", .workspace_dest = "/tmp/ws",
				.tmpfs = t2, .n_tmpfs = 1, .binds = b2, .n_binds = 2 };
	struct ab_user_mount m[8];
	size_t nm = ab_rootfs_user_mounts(&c2, m);
	ok(nm == 5, "five user mounts");
	ok(strcmp(m[0].dest, "/home/u") == 0 && strcmp(m[1].dest, "/home/u/.cache") == 0, "home before its volume");
	ok(strcmp(m[2].dest, "/tmp") == 0 && strcmp(m[3].dest, "/tmp/ws") == 0 && strcmp(m[4].dest, "/tmp/ws/sub") == 0,
	   "/tmp, then the workspace in it, then a volume in that");

	snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
	if (system(cmd) != 0)
		return 1;
	return tap_done();
}
