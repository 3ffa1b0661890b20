#include "userns.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../shared/strutil.h"

int ab_userns_write_maps(pid_t pid, const struct ab_config *cfg, struct ab_error *err)
{
	char path[64], map[64];
	int r;

	/* An unprivileged user may map only its own gid, and only after giving up setgroups;
	 * root keeps setgroups so that the child can clear its supplementary groups. */
	if (cfg->host_uid != 0) {
		snprintf(path, sizeof(path), "/proc/%d/setgroups", (int)pid);
		r = ab_write_file(path, "deny", 4);
		if (r < 0 && r != -ENOENT)
			return ab_error_set(err, -r, "cannot write '%s'", path);
	}
	snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)cfg->sandbox_uid, (unsigned)cfg->host_uid);
	r = ab_write_file(path, map, strlen(map));
	if (r < 0)
		return ab_error_set(err, -r, "cannot write '%s'", path);
	snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)cfg->sandbox_gid, (unsigned)cfg->host_gid);
	r = ab_write_file(path, map, strlen(map));
	if (r < 0)
		return ab_error_set(err, -r, "cannot write '%s'", path);
	return 0;
}

int ab_userns_become_user(const struct ab_config *cfg, struct ab_error *err)
{
	if (setgroups(0, NULL) < 0 && errno != EPERM)
		return ab_error_set(err, errno, "cannot clear the supplementary groups");
	if (setresgid(cfg->sandbox_gid, cfg->sandbox_gid, cfg->sandbox_gid) < 0)
		return ab_error_set(err, errno, "cannot switch to gid %u", (unsigned)cfg->sandbox_gid);
	if (setresuid(cfg->sandbox_uid, cfg->sandbox_uid, cfg->sandbox_uid) < 0)
		return ab_error_set(err, errno, "cannot switch to uid %u", (unsigned)cfg->sandbox_uid);
	return 0;
}
