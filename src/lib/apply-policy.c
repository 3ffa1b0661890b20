#include "apply-policy.h"

#include <string.h>
#include <sys/stat.h>

#include "../shared/cleanup.h"

/* Git reads hooks and config from nested repositories too, so those match at any depth.
 * CI systems read their pipelines from the repository root only. Shells, direnv, npm and
 * twine pick up their files from whatever directory they run in, so those match anywhere.
 * Not listed, knowingly: Makefile, package.json scripts, build files in general; building
 * or testing a project runs its code by design, and review of the diff covers them. */
const struct ab_risk_rule ab_risk_rules[] = {
	{ ".git/hooks", AB_RISK_BENEATH, true, "git hook" },
	{ ".git/config", AB_RISK_EXACT, true, "git config" },
	{ ".gitmodules", AB_RISK_EXACT, true, "git submodules" },
	{ ".github/workflows", AB_RISK_BENEATH, false, "CI workflow" },
	{ ".gitlab-ci.yml", AB_RISK_EXACT, false, "CI pipeline" },
	{ ".circleci", AB_RISK_BENEATH, false, "CI pipeline" },
	{ "Jenkinsfile", AB_RISK_EXACT, false, "CI pipeline" },
	{ ".envrc", AB_RISK_EXACT, true, "direnv script" },
	{ ".bashrc", AB_RISK_EXACT, true, "shell start-up file" },
	{ ".bash_profile", AB_RISK_EXACT, true, "shell start-up file" },
	{ ".bash_logout", AB_RISK_EXACT, true, "shell start-up file" },
	{ ".profile", AB_RISK_EXACT, true, "shell start-up file" },
	{ ".zshrc", AB_RISK_EXACT, true, "shell start-up file" },
	{ ".zprofile", AB_RISK_EXACT, true, "shell start-up file" },
	{ ".npmrc", AB_RISK_EXACT, true, "npm settings" },
	{ ".pypirc", AB_RISK_EXACT, true, "PyPI credentials" },
};
const size_t ab_n_risk_rules = AB_ELEMENTSOF(ab_risk_rules);

/* Does path, from offset 0 on, match the rule? */
static bool matches_here(const char *path, const struct ab_risk_rule *rule)
{
	size_t n = strlen(rule->pattern);

	if (strncmp(path, rule->pattern, n) != 0)
		return false;
	if (path[n] == '\0')
		return true;
	return rule->match == AB_RISK_BENEATH && path[n] == '/';
}

static bool rule_matches(const char *path, const struct ab_risk_rule *rule)
{
	if (matches_here(path, rule))
		return true;
	if (!rule->any_depth)
		return false;
	for (const char *p = strchr(path, '/'); p; p = strchr(p + 1, '/'))
		if (matches_here(p + 1, rule))
			return true;
	return false;
}

static bool gains_exec(const struct ab_change *c)
{
	const mode_t x = S_IXUSR | S_IXGRP | S_IXOTH;

	if (!S_ISREG(c->new_mode) || !(c->new_mode & x))
		return false;
	/* An added file, a file that replaced something else, or one that had no x bit. */
	return !S_ISREG(c->old_mode) || !(c->old_mode & x);
}

const char *ab_apply_risk(const struct ab_change *c)
{
	for (size_t i = 0; i < ab_n_risk_rules; i++)
		if (rule_matches(c->path, &ab_risk_rules[i]))
			return ab_risk_rules[i].reason;
	if (c->kind != AB_CHANGE_DELETED && gains_exec(c))
		return "made executable";
	return NULL;
}
