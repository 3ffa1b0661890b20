/* Masks: which of a project's entries the sandbox must not see.
 *
 * Fixture:
 *   TMP/
 *   ├── .env                  masked (default)
 *   ├── .env.local            masked (default)
 *   ├── app.py                visible
 *   ├── link-to-env -> .env   a symlink: not masked itself
 *   ├── config/prod.json      masked only by a pattern with a '/' (config, then *.json)
 *   ├── secrets/              masked as a whole by "secrets"; not searched inside
 *   ├── deep/a/b/server.pem   masked (default), at depth
 *   ├── .git/x.pem            not searched
 *   └── node_modules/y.key    not searched
 *
 * Then the search's cache (kept under AGENTBOX_DATA_DIR): each change to the tree that
 * could change the result is made, and the next search must see it.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/config.h"
#include "tap.h"

static char top[] = "/tmp/ab-mask-XXXXXX";

static void put(const char *rel)
{
	char path[256], cmd[700];
	snprintf(path, sizeof(path), "%s/%s", top, rel);
	snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\" && echo x > '%s'", path, path);
	if (system(cmd) != 0)
		exit(1);
}

static int hit(struct ab_mask_hit *h, size_t n, const char *rel, int want_dir)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(h[i].rel, rel) == 0)
			return want_dir < 0 || (int)h[i].dir == want_dir;
	return 0;
}

static char data[] = "/tmp/ab-mask-data-XXXXXX";

static void settle(void)
{
	/* past the margin within which a directory's stamps are not trusted */
	nanosleep(&(struct timespec){ .tv_nsec = 30 * 1000 * 1000 }, NULL);
}

/* The cache file's inode (it is replaced whole when a search writes it), or 0 when there
 * is none; *count gets how many caches there are. */
static unsigned long cache_ino(int *count)
{
	char dir[600], p[900];
	struct dirent *de;
	struct stat st;
	unsigned long ino = 0;
	DIR *d;

	*count = 0;
	snprintf(dir, sizeof(dir), "%s/mask-cache", data);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (stat(p, &st) == 0)
			ino = st.st_ino;
		(*count)++;
	}
	closedir(d);
	return ino;
}

static void run(const char *cmd)
{
	if (system(cmd) != 0) {
		printf("Bail out! %s\n", cmd);
		exit(1);
	}
}

/* find with the patterns; the number of hits, or -1 */
static long find(char **patterns, size_t np, struct ab_mask_hit **h, size_t *n)
{
	struct ab_error err;
	if (ab_mask_find(top, patterns, np, h, n, &err) < 0) {
		printf("# ab_mask_find: %s\n", err.msg);
		return -1;
	}
	return (long)*n;
}

/* Rewrites the one cache under data/mask-cache to claim no hits, keeping its key and
 * stamps (what a sandbox that can write there could do); its path in out. */
static bool forge_empty_cache(char *out, size_t size)
{
	char dir[300];
	struct dirent *de;
	DIR *d;
	FILE *f;
	unsigned char *buf;
	long len;
	size_t off;
	uint64_t v, n;

	snprintf(dir, sizeof(dir), "%s/mask-cache", data);
	d = opendir(dir);
	out[0] = '\0';
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' && !out[0])
			snprintf(out, size, "%s/%s", dir, de->d_name);
	if (d)
		closedir(d);
	f = out[0] ? fopen(out, "r+") : NULL;
	if (!f)
		return false;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	buf = malloc((size_t)len);
	rewind(f);
	if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		free(buf);
		fclose(f);
		return false;
	}
	/* magic, project, the patterns, then the directories: skip to the hits */
	off = strlen("agentbox-mask-cache 1\n");
	memcpy(&v, buf + off, 8);
	off += 8 + v;
	memcpy(&n, buf + off, 8);
	off += 8;
	for (uint64_t i = 0; i < n; i++) {
		memcpy(&v, buf + off, 8);
		off += 8 + v;
	}
	memcpy(&n, buf + off, 8);
	off += 8;
	for (uint64_t i = 0; i < n; i++) {
		memcpy(&v, buf + off + 32, 8);
		off += 40 + v;
	}
	v = 0;
	fseek(f, (long)off, SEEK_SET);
	fwrite(&v, 8, 1, f);
	free(buf);
	return fclose(f) == 0 && truncate(out, (off_t)off + 8) == 0;
}

static void test_cache(char **defaults, size_t nd)
{
	struct ab_mask_hit *h = NULL;
	size_t n = 0;
	unsigned long ino1 = 0, ino2 = 0;
	int count;
	char cmd[2400];

	settle();
	ok(find(defaults, nd, &h, &n) == 3 && (ino1 = cache_ino(&count)) && count == 1,
	   "a search of a settled tree keeps its result in a cache");
	ab_mask_hits_free(h, n);
	ok(find(defaults, nd, &h, &n) == 3 && hit(h, n, "deep/a/b/server.pem", 0) &&
		   (ino2 = cache_ino(&count)) == ino1,
	   "the next search takes it as it is: the same hits, the cache not rewritten");
	ab_mask_hits_free(h, n);

	/* A secret in a new directory deep down, then another right after it, within the
	 * same tick of the clock: neither may be missed. */
	snprintf(cmd, sizeof(cmd), "mkdir '%s/deep/a/new' && echo k > '%s/deep/a/new/.env'", top, top);
	run(cmd);
	ok(find(defaults, nd, &h, &n) == 4 && hit(h, n, "deep/a/new/.env", 0), "a new directory with a .env: found");
	ab_mask_hits_free(h, n);
	snprintf(cmd, sizeof(cmd), "echo k > '%s/deep/a/new/id_rsa'", top);
	run(cmd);
	ok(find(defaults, nd, &h, &n) == 5 && hit(h, n, "deep/a/new/id_rsa", 0),
	   "a second secret added at once after a search: found");
	ab_mask_hits_free(h, n);
	settle();
	ok(find(defaults, nd, &h, &n) == 5 && cache_ino(&count) != ino1, "once settled, the cache is written again");
	ab_mask_hits_free(h, n);

	snprintf(cmd, sizeof(cmd), "mv '%s/app.py' '%s/.env.prod'", top, top);
	run(cmd);
	ok(find(defaults, nd, &h, &n) == 6 && hit(h, n, ".env.prod", 0), "a file renamed to a secret's name: found");
	ab_mask_hits_free(h, n);
	snprintf(cmd, sizeof(cmd), "rm '%s/.env.local'", top);
	run(cmd);
	ok(find(defaults, nd, &h, &n) == 5 && !hit(h, n, ".env.local", -1), "a removed secret: gone from the hits");
	ab_mask_hits_free(h, n);
	settle();
	ok(find(defaults, nd, &h, &n) == 5, "settled again");
	ab_mask_hits_free(h, n);
	snprintf(cmd, sizeof(cmd), "mv '%s/deep/a/b' '%s/moved-b' && ln -s ../../moved-b '%s/deep/a/b'", top, top, top);
	run(cmd);
	ok(find(defaults, nd, &h, &n) == 5 && hit(h, n, "moved-b/server.pem", 0) && !hit(h, n, "deep/a/b/server.pem", -1),
	   "a directory moved away and replaced by a symlink: followed where it went, not through the link");
	ab_mask_hits_free(h, n);

	/* Another set of patterns has a cache of its own. */
	settle();
	char *more[20];
	size_t nm = 0;
	for (size_t i = 0; i < nd; i++)
		more[nm++] = defaults[i];
	more[nm++] = "*.py";
	long with_py = find(more, nm, &h, &n);
	ab_mask_hits_free(h, n);
	ok(with_py == 5 && find(defaults, nd, &h, &n) == 5 && (cache_ino(&count), count == 2),
	   "another set of patterns: a cache of its own (%d)", count);
	ab_mask_hits_free(h, n);

	/* A damaged cache is searched past. */
	snprintf(cmd, sizeof(cmd), "for f in '%s'/mask-cache/*; do head -c 100 \"$f\" > \"$f.x\" && mv \"$f.x\" \"$f\"; done", data);
	run(cmd);
	ok(find(defaults, nd, &h, &n) == 5 && hit(h, n, "moved-b/server.pem", 0), "a truncated cache: searched again");
	ab_mask_hits_free(h, n);
	snprintf(cmd, sizeof(cmd), "for f in '%s'/mask-cache/*; do head -c 20000 /dev/urandom > \"$f\"; done", data);
	run(cmd);
	ok(find(defaults, nd, &h, &n) == 5, "a cache of random bytes: searched again");
	ab_mask_hits_free(h, n);

	/* The data directory inside the project (a project that holds the user's home, with
	 * --workspace-mode rw): a sandbox could write a cache of its own there, so none is
	 * kept or read. The attack: the true cache, every stamp right (the data directory's
	 * own included), its hits cut to none, written in place over the cache file there.
	 * Outside the project the same forgery is taken (the control); inside, never. */
	{
		char inside[300], forged[700], name[300];
		snprintf(inside, sizeof(inside), "%s/home/.local/share/agentbox", top);
		snprintf(cmd, sizeof(cmd), "rm -f '%s'/mask-cache/* && mkdir -p '%s/mask-cache'", data, inside);
		run(cmd);
		settle();
		forged[0] = '\0';
		ok(find(defaults, nd, &h, &n) == 5 && forge_empty_cache(forged, sizeof(forged)),
		   "a cache to learn the file's name");
		ab_mask_hits_free(h, n);
		if (!strrchr(forged, '/'))
			return;
		snprintf(name, sizeof(name), "%s", strrchr(forged, '/') + 1);
		snprintf(cmd, sizeof(cmd), "touch '%s/mask-cache/%s' && rm -f '%s'/mask-cache/*", inside, name, data);
		run(cmd);
		settle();
		ok(find(defaults, nd, &h, &n) == 5 && forge_empty_cache(forged, sizeof(forged)),
		   "the true cache, with the stamps of the data directory inside the project, forged");
		ab_mask_hits_free(h, n);
		ok(find(defaults, nd, &h, &n) == 0, "control: the forgery, every stamp right, is taken where it is (0 hits)");
		ab_mask_hits_free(h, n);
		snprintf(cmd, sizeof(cmd), "cat '%s' > '%s/mask-cache/%s'", forged, inside, name);
		run(cmd);
		setenv("AGENTBOX_DATA_DIR", inside, 1);
		ok(find(defaults, nd, &h, &n) == 5 && hit(h, n, "moved-b/server.pem", 0),
		   "the same forgery in a data directory inside the project is never read");
		ab_mask_hits_free(h, n);
		setenv("AGENTBOX_DATA_DIR", data, 1);
		snprintf(cmd, sizeof(cmd), "rm -rf '%s/home' '%s'/mask-cache/*", top, data);
		run(cmd);
	}

	/* A file system mounted over a directory changes what it lists, not the directory's
	 * own stamps: the mount's root has another identity. */
	if (geteuid() != 0) {
		ok(1, "# SKIP a mount over a directory needs root");
		return;
	}
	settle();
	ok(find(defaults, nd, &h, &n) == 5, "settled before the mount");
	ab_mask_hits_free(h, n);
	pid_t pid = fork();
	if (pid == 0) {
		char src[600], dst[600];
		snprintf(src, sizeof(src), "%s-mnt", top);
		snprintf(dst, sizeof(dst), "%s/moved-b", top);
		snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && echo k > '%s/extra.key'", src, src);
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    system(cmd) != 0 || mount(src, dst, NULL, MS_BIND, NULL) < 0)
			_exit(2);
		_exit(find(defaults, nd, &h, &n) == 5 && hit(h, n, "moved-b/extra.key", 0) &&
				      !hit(h, n, "moved-b/server.pem", -1) ? 0 : 1);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "a mount over a directory: what the mount holds is searched (status %d)", status);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s-mnt'", top);
	run(cmd);
}

int main(void)
{
	char *defaults[16], *extra[20];
	size_t nd = 0, ne = 0;
	struct ab_mask_hit *h = NULL;
	size_t n = 0;
	struct ab_error err;
	char link[512], cmd[600];

	if (!mkdtemp(top) || !mkdtemp(data))
		return 1;
	setenv("AGENTBOX_DATA_DIR", data, 1);
	put(".env");
	put(".env.local");
	put("app.py");
	put("config/prod.json");
	put("secrets/token.txt");
	put("deep/a/b/server.pem");
	put(".git/x.pem");
	put("node_modules/y.key");
	snprintf(link, sizeof(link), "%s/link-to-env", top);
	if (symlink(".env", link) < 0)
		return 1;

	for (size_t i = 0; i < ab_n_default_masks; i++)
		defaults[nd++] = (char *)ab_default_masks[i];
	ok(ab_mask_find(top, defaults, nd, &h, &n, &err) == 0, "search with the defaults: %s", err.msg);
	ok(hit(h, n, ".env", 0) && hit(h, n, ".env.local", 0), ".env and .env.* are masked");
	ok(hit(h, n, "deep/a/b/server.pem", 0), "a key file deep in the tree is masked");
	ok(!hit(h, n, "app.py", -1) && !hit(h, n, "config/prod.json", -1), "ordinary files are not");
	ok(!hit(h, n, "link-to-env", -1), "a symlink is not masked itself");
	ok(!hit(h, n, ".git/x.pem", -1) && !hit(h, n, "node_modules/y.key", -1), ".git and node_modules are not searched");
	ok(n == 3, "exactly three hits with the defaults (%zu)", n);
	ab_mask_hits_free(h, n);

	for (size_t i = 0; i < nd; i++)
		extra[ne++] = defaults[i];
	extra[ne++] = "secrets";
	extra[ne++] = "config/*.json";
	ok(ab_mask_find(top, extra, ne, &h, &n, &err) == 0, "search with more masks");
	ok(hit(h, n, "secrets", 1) && !hit(h, n, "secrets/token.txt", -1), "a masked directory is one hit, not searched inside");
	ok(hit(h, n, "config/prod.json", 0), "a pattern with '/' matches the path from the top");
	ab_mask_hits_free(h, n);

	ok(ab_mask_matches(extra, ne, "a/b/.env") && !ab_mask_matches(extra, ne, "a/config/prod.json"),
	   "names match at any depth, paths from the top only");
	ok(!ab_mask_matches(extra, ne, "environment.txt"), "'.env' does not match 'environment.txt'");

	test_cache(defaults, nd);

	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", top, data);
	if (system(cmd) != 0)
		return 1;
	return tap_done();
}
