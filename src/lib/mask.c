/* Masked paths: files of the project that the sandbox must not see (keys, tokens, .env),
 * found before the sandbox starts and hidden behind empty read-only mounts inside it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "config.h"

/* Secrets that commonly sit in a project tree. */
const char *const ab_default_masks[] = {
	".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_ed25519*", "id_ecdsa*", ".npmrc", ".pypirc", ".netrc",
};
const size_t ab_n_default_masks = AB_ELEMENTSOF(ab_default_masks);

bool ab_mask_matches(char *const *patterns, size_t n, const char *rel)
{
	const char *base = strrchr(rel, '/');

	base = base ? base + 1 : rel;
	for (size_t i = 0; i < n; i++) {
		if (strchr(patterns[i], '/')) {
			if (fnmatch(patterns[i], rel, FNM_PATHNAME | FNM_PERIOD) == 0)
				return true;
		} else if (fnmatch(patterns[i], base, 0) == 0) {
			return true;
		}
	}
	return false;
}

/* Directories the search does not enter: version-control internals and installed
 * dependencies hold no secrets of the project's own, but can hold hundreds of thousands of
 * files, and the search runs before every start. */
static const char *const unsearched_dirs[] = { ".git", ".hg", ".svn", "node_modules" };

static bool unsearched(const char *name)
{
	for (size_t i = 0; i < AB_ELEMENTSOF(unsearched_dirs); i++)
		if (strcmp(name, unsearched_dirs[i]) == 0)
			return true;
	return false;
}

struct walk {
	char *const *patterns;
	size_t n_patterns;
	struct ab_mask_hit *hits;
	size_t n_hits;
	struct ab_error *err;
	const char *project;
};

static int add_hit(struct walk *w, const char *rel, bool dir)
{
	struct ab_mask_hit *grown;

	if (w->n_hits >= AB_MAX_MASK_HITS)
		return ab_error_set(w->err, 0,
				    "more than %d masked files in project '%s': narrow the masks (--unmask) or the workspace",
				    AB_MAX_MASK_HITS, w->project);
	grown = realloc(w->hits, (w->n_hits + 1) * sizeof(*grown));
	if (!grown)
		return ab_error_set(w->err, ENOMEM, "cannot record the masked path '%s'", rel);
	w->hits = grown;
	w->hits[w->n_hits].rel = strdup(rel);
	w->hits[w->n_hits].dir = dir;
	if (!w->hits[w->n_hits].rel)
		return ab_error_set(w->err, ENOMEM, "cannot record the masked path '%s'", rel);
	w->n_hits++;
	return 0;
}

static int walk_dir(struct walk *w, int dirfd, const char *prefix, unsigned depth)
{
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (depth > 64)
		return 0; /* deeper than any project needs; nothing past here is searched */
	d = fdopendir(dirfd);
	if (!d) {
		close(dirfd);
		return 0;
	}
	while ((de = readdir(d)) && r >= 0) {
		char rel[4096];
		bool is_dir;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if ((size_t)snprintf(rel, sizeof(rel), "%s%s%s", prefix, *prefix ? "/" : "", de->d_name) >= sizeof(rel))
			continue;
		if (de->d_type == DT_UNKNOWN) {
			struct stat st;
			if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			is_dir = S_ISDIR(st.st_mode);
			if (S_ISLNK(st.st_mode))
				continue;
		} else {
			if (de->d_type == DT_LNK)
				continue;
			is_dir = de->d_type == DT_DIR;
		}
		if (ab_mask_matches(w->patterns, w->n_patterns, rel)) {
			if (is_dir || de->d_type == DT_REG || de->d_type == DT_UNKNOWN)
				r = add_hit(w, rel, is_dir);
			continue; /* a masked directory hides everything beneath it */
		}
		if (is_dir && !unsearched(de->d_name)) {
			int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				r = walk_dir(w, sub, rel, depth + 1);
		}
	}
	closedir(d);
	return r;
}

int ab_mask_find(const char *project, char *const *patterns, size_t n, struct ab_mask_hit **out,
		 size_t *n_out, struct ab_error *err)
{
	struct walk w = { .patterns = patterns, .n_patterns = n, .err = err, .project = project };
	int fd, r;

	*out = NULL;
	*n_out = 0;
	if (n == 0)
		return 0;
	fd = open(project, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ab_error_set(err, errno, "cannot read the project '%s'", project);
	r = walk_dir(&w, fd, "", 0);
	if (r < 0) {
		ab_mask_hits_free(w.hits, w.n_hits);
		return r;
	}
	*out = w.hits;
	*n_out = w.n_hits;
	return 0;
}

void ab_mask_hits_free(struct ab_mask_hit *hits, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(hits[i].rel);
	free(hits);
}
