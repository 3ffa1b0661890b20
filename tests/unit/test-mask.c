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
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

int main(void)
{
	char *defaults[16], *extra[20];
	size_t nd = 0, ne = 0;
	struct ab_mask_hit *h = NULL;
	size_t n = 0;
	struct ab_error err;
	char link[512], cmd[600];

	if (!mkdtemp(top))
		return 1;
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

	snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
	if (system(cmd) != 0)
		return 1;
	return tap_done();
}
